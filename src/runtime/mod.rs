//! A running worker: its broker connections and consume loop, which shards it owns and
//! stands by for (`worker`), and the admin API it serves (`admin`). It wires the engine to
//! the broker; the engine, workflows and billing clients know nothing of it.

pub mod admin;
pub mod worker;
