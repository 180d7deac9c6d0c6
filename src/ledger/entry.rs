//! One ledger entry as it travels in a shard's stream: a stage record, or a marker of who
//! holds the shard. Signed like stage messages, because an entry decides whether a call is
//! made: a forged "completed" would skip a stage, a forged "retrying" would repeat one.

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
}

#[derive(Serialize, Deserialize)]
struct Versioned {
    v: u32,
    #[serde(flatten)]
    entry: Entry,
}

/// Why an entry read from the stream was skipped.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Unreadable {
    #[error("entry of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("entry signature: {0}")]
    Signature(String),
    #[error("entry is not a ledger entry: {0}")]
    Format(String),
    #[error("entry of version {0}, this worker reads version {VERSION}")]
    Version(u32),
}

impl Entry {
    /// The body and its signature (the value of `x-billflow-signature`).
    pub fn encode(&self, signer: &Signer) -> (Vec<u8>, String) {
        let body = serde_json::to_vec(&Versioned {
            v: VERSION,
            entry: self.clone(),
        })
        .expect("an entry (strings, numbers, a stage record) always serializes");
        let signature = signer.sign(&body);
        (body, signature)
    }

    pub fn decode(
        body: &[u8],
        signature: Option<&str>,
        signer: &Signer,
        limit: usize,
    ) -> Result<Entry, Unreadable> {
        if body.len() > limit {
            return Err(Unreadable::TooLarge {
                size: body.len(),
                limit,
            });
        }
        signer
            .verify(body, signature)
            .map_err(|e| Unreadable::Signature(e.to_string()))?;
        let versioned: Versioned =
            serde_json::from_slice(body).map_err(|e| Unreadable::Format(e.to_string()))?;
        if versioned.v != VERSION {
            return Err(Unreadable::Version(versioned.v));
        }
        Ok(versioned.entry)
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
    fn entries_round_trip_signed() {
        let s = signer("0123456789abcdef0123456789abcdef");
        for entry in [
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
        ] {
            let (body, sig) = entry.encode(&s);
            assert_eq!(Entry::decode(&body, Some(&sig), &s, 1 << 20), Ok(entry));
        }
    }

    #[test]
    fn forged_altered_oversized_or_foreign_entries_are_refused() {
        let s = signer("0123456789abcdef0123456789abcdef");
        let (body, sig) = stage().encode(&s);
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
        for junk in [
            &b"{}"[..],
            b"not json",
            br#"{"v":1,"kind":"stage","worker":1}"#,
            br#"{"v":1,"kind":"coup","worker":1}"#,
        ] {
            let sig = s.sign(junk);
            assert!(matches!(
                Entry::decode(junk, Some(&sig), &s, 1 << 20),
                Err(Unreadable::Format(_))
            ));
        }
        let future = br#"{"v":2,"kind":"release","worker":1,"nonce":"x"}"#;
        assert_eq!(
            Entry::decode(future, Some(&s.sign(future)), &s, 1 << 20),
            Err(Unreadable::Version(2))
        );
    }
}
