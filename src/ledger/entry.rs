//! Ledger entries as they travel in a shard's stream: a stage record, or a marker of who
//! holds the shard. One stream message carries a batch of them (those appended while the
//! previous message was being confirmed), signed like stage messages, because an entry
//! decides whether a call is made: a forged "completed" would skip a stage, a forged
//! "retrying" would repeat one.

use serde::{Deserialize, Serialize};

use crate::contract::envelope::Header;
use crate::contract::signing::Signer;
use crate::store::StageRecord;

/// The entry format's version; readers skip entries of any other.
const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    /// A stage record as its writer made it durable.
    Stage {
        worker: u16,
        command_id: String,
        stage: String,
        record: StageRecord,
    },
    /// Appended by a reader before it reads: everything before it in the stream is
    /// what the fleet had written by then. `acquire`: the reader takes the shard over
    /// (a new tenure, as a Raft leader's first no-op entry opens its term).
    Barrier {
        worker: u16,
        nonce: String,
        acquire: bool,
    },
    /// A worker stepped back from the shard and its stages on it have ended: it writes
    /// nothing more there until it holds the shard again.
    Release { worker: u16, nonce: String },
    /// The worker holds the shard from here: appended once its takeover read (and any
    /// wait for a release) is over, and read back before it runs anything. Stage entries
    /// another worker appends after it count for nothing (the fence).
    Took { worker: u16, nonce: String },
}

#[derive(Deserialize)]
struct Read {
    v: u32,
    #[serde(default)]
    entries: Vec<serde_json::Value>,
}

/// Why an entry read from the stream was skipped.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Unreadable {
    #[error("entry of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("entry signature: {0}")]
    Signature(String),
    #[error("not a batch of ledger entries: {0}")]
    Format(String),
    #[error("entry of version {0}, this worker reads version {VERSION}")]
    Version(u32),
}

impl Entry {
    /// Each entry as it goes into a batch.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self)
            .expect("an entry (strings, numbers, a stage record) always serializes")
    }

    /// A batch's body and its signature (the value of `x-billflow-signature`), from
    /// entries already serialized by [`Entry::to_json`].
    pub fn encode_json(entries: &[Vec<u8>], signer: &Signer) -> (Vec<u8>, String) {
        let size: usize = entries.iter().map(|e| e.len() + 1).sum();
        let mut body = Vec::with_capacity(size + 32);
        body.extend_from_slice(format!("{{\"v\":{VERSION},\"entries\":[").as_bytes());
        for (i, entry) in entries.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(entry);
        }
        body.extend_from_slice(b"]}");
        let signature = signer.sign(&body);
        (body, signature)
    }

    /// A batch's body and its signature.
    pub fn encode(entries: &[Entry], signer: &Signer) -> (Vec<u8>, String) {
        let json: Vec<Vec<u8>> = entries.iter().map(Entry::to_json).collect();
        Entry::encode_json(&json, signer)
    }

    /// A batch's entries; one that is not an entry of this version is returned as such,
    /// so the others still count.
    pub fn decode(
        body: &[u8],
        signature: Option<&str>,
        signer: &Signer,
        limit: usize,
    ) -> Result<Vec<Result<Entry, Unreadable>>, Unreadable> {
        if body.len() > limit {
            return Err(Unreadable::TooLarge {
                size: body.len(),
                limit,
            });
        }
        signer
            .verify(body, signature)
            .map_err(|e| Unreadable::Signature(e.to_string()))?;
        let read: Read =
            serde_json::from_slice(body).map_err(|e| Unreadable::Format(e.to_string()))?;
        if read.v != VERSION {
            return Err(Unreadable::Version(read.v));
        }
        Ok(read
            .entries
            .into_iter()
            .map(|e| serde_json::from_value(e).map_err(|e| Unreadable::Format(e.to_string())))
            .collect())
    }

    pub fn signature_header() -> &'static str {
        Header::SIGNATURE.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StageState;

    fn signer(key: &str) -> Signer {
        Signer::from_keys(Some(key), None).unwrap()
    }

    fn stage() -> Entry {
        Entry::Stage {
            worker: 1,
            command_id: "c-1".into(),
            stage: "renew".into(),
            record: StageRecord::started(1).with_state(StageState::Completed {
                output: serde_json::json!({"order_id": 7}),
                next: None,
            }),
        }
    }

    #[test]
    fn batches_round_trip_signed() {
        let s = signer("0123456789abcdef0123456789abcdef");
        let entries = vec![
            stage(),
            Entry::Barrier {
                worker: 0,
                nonce: "n".into(),
                acquire: true,
            },
            Entry::Release {
                worker: 2,
                nonce: "r".into(),
            },
        ];
        let (body, sig) = Entry::encode(&entries, &s);
        let read = Entry::decode(&body, Some(&sig), &s, 1 << 20).unwrap();
        assert_eq!(read, entries.into_iter().map(Ok).collect::<Vec<_>>());
    }

    #[test]
    fn an_unknown_entry_does_not_hide_the_others() {
        let s = signer("0123456789abcdef0123456789abcdef");
        let body = br#"{"v":1,"entries":[{"kind":"coup","worker":1},{"kind":"release","worker":1,"nonce":"x"}]}"#;
        let read = Entry::decode(body, Some(&s.sign(body)), &s, 1 << 20).unwrap();
        assert!(matches!(read[0], Err(Unreadable::Format(_))));
        assert_eq!(
            read[1],
            Ok(Entry::Release {
                worker: 1,
                nonce: "x".into()
            })
        );
    }

    #[test]
    fn forged_altered_oversized_or_foreign_entries_are_refused() {
        let s = signer("0123456789abcdef0123456789abcdef");
        let (body, sig) = Entry::encode(&[stage()], &s);
        let other = signer("fedcba9876543210fedcba9876543210");
        assert!(matches!(
            Entry::decode(&body, Some(&other.sign(&body)), &s, 1 << 20),
            Err(Unreadable::Signature(_))
        ));
        assert!(matches!(
            Entry::decode(&body, None, &s, 1 << 20),
            Err(Unreadable::Signature(_))
        ));
        let mut altered = body.clone();
        let at = altered.len() - 3;
        altered[at] ^= 1;
        assert!(Entry::decode(&altered, Some(&sig), &s, 1 << 20).is_err());
        assert!(matches!(
            Entry::decode(&body, Some(&sig), &s, 10),
            Err(Unreadable::TooLarge { .. })
        ));
        for junk in [&b"not json"[..], br#"{"entries":[]}"#, br#"[1,2]"#] {
            let sig = s.sign(junk);
            assert!(matches!(
                Entry::decode(junk, Some(&sig), &s, 1 << 20),
                Err(Unreadable::Format(_))
            ));
        }
        let future = br#"{"v":2,"entries":[]}"#;
        assert_eq!(
            Entry::decode(future, Some(&s.sign(future)), &s, 1 << 20),
            Err(Unreadable::Version(2))
        );
    }
}
