//! HMAC-SHA256 signatures of stage messages. Only a worker (or `billflow dlq`, run by a
//! person holding the key) writes a stage; a stage message without a valid signature is
//! refused, so nobody with mere broker access can skip a check or forge an earlier output.
//!
//! The signature covers the body byte for byte: the command, the stage, the attempt and
//! every earlier output. Two keys are accepted while keys rotate: the current one (which
//! signs) and the previous one.

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// Header carrying `v1=<hex HMAC-SHA256 of the body>`.
pub const SIGNATURE_HEADER: &str = "x-billflow-signature";

/// Shortest accepted key: 32 bytes, the HMAC-SHA256 block's half.
pub const MIN_KEY_LEN: usize = 32;

const VERSION: &str = "v1=";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    #[error("{name} is not set: every worker of a prefix needs the same signing key (at least {MIN_KEY_LEN} characters; e.g. `openssl rand -hex 32`)")]
    Missing { name: &'static str },
    #[error(
        "{name} is too short: at least {MIN_KEY_LEN} characters (e.g. `openssl rand -hex 32`)"
    )]
    TooShort { name: &'static str },
}

/// Why a stage message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error(
        "stage message is not signed (no {SIGNATURE_HEADER} header): only billflow writes stages"
    )]
    Unsigned,
    #[error("stage message signature is malformed")]
    Malformed,
    #[error("stage message signature does not match: altered, or signed with another key")]
    Mismatch,
}

/// Signs with the current key; verifies with the current or the previous one.
#[derive(Clone)]
pub struct Signer {
    current: hmac::Key,
    previous: Option<hmac::Key>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(***)")
    }
}

impl Signer {
    /// From the configured keys; `None` for the current key is an error that says what to do.
    pub fn from_keys(current: Option<&str>, previous: Option<&str>) -> Result<Self, SigningError> {
        let current = match current {
            None | Some("") => {
                return Err(SigningError::Missing {
                    name: "BILLFLOW_SIGNING_KEY",
                })
            }
            Some(k) if k.len() < MIN_KEY_LEN => {
                return Err(SigningError::TooShort {
                    name: "BILLFLOW_SIGNING_KEY",
                })
            }
            Some(k) => k,
        };
        let previous = match previous {
            None | Some("") => None,
            Some(k) if k.len() < MIN_KEY_LEN => {
                return Err(SigningError::TooShort {
                    name: "BILLFLOW_SIGNING_KEY_PREVIOUS",
                })
            }
            Some(k) => Some(k),
        };
        Ok(Signer {
            current: hmac::Key::new(hmac::HMAC_SHA256, current.as_bytes()),
            previous: previous.map(|k| hmac::Key::new(hmac::HMAC_SHA256, k.as_bytes())),
        })
    }

    /// A fresh random key, for processes that run their own workers (demo, bench, tests).
    pub fn generate_key() -> String {
        let mut bytes = [0u8; 32];
        // The system RNG does not fail on Linux; a fixed key would only weaken a demo.
        let _ = SystemRandom::new().fill(&mut bytes);
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn sign(&self, body: &[u8]) -> String {
        let tag = hmac::sign(&self.current, body);
        let mut out = String::with_capacity(VERSION.len() + 64);
        out.push_str(VERSION);
        for b in tag.as_ref() {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }

    /// Checks `signature` (the header's value, if any) against `body` in constant time.
    pub fn verify(&self, body: &[u8], signature: Option<&str>) -> Result<(), SignatureError> {
        let signature = signature.ok_or(SignatureError::Unsigned)?;
        let tag = signature
            .strip_prefix(VERSION)
            .and_then(decode_hex)
            .ok_or(SignatureError::Malformed)?;
        let matches = |key: &hmac::Key| hmac::verify(key, body, &tag).is_ok();
        if matches(&self.current) || self.previous.as_ref().is_some_and(matches) {
            Ok(())
        } else {
            Err(SignatureError::Mismatch)
        }
    }
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "a-key-of-at-least-thirty-two-characters";
    const B: &str = "another-key-of-at-least-thirty-two-chars";

    #[test]
    fn signs_and_verifies() {
        let s = Signer::from_keys(Some(A), None).unwrap();
        let sig = s.sign(b"body");
        assert!(sig.starts_with("v1=") && sig.len() == 67);
        assert_eq!(s.verify(b"body", Some(&sig)), Ok(()));
        assert_eq!(s.verify(b"bodY", Some(&sig)), Err(SignatureError::Mismatch));
        assert_eq!(s.verify(b"body", None), Err(SignatureError::Unsigned));
        for bad in ["", "v1=", "v1=zz", "v2=00", "v1=é", &sig[..66]] {
            assert_eq!(
                s.verify(b"body", Some(bad)),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn rotation_accepts_the_previous_key_only_as_previous() {
        let old = Signer::from_keys(Some(A), None).unwrap();
        let rotated = Signer::from_keys(Some(B), Some(A)).unwrap();
        let new = Signer::from_keys(Some(B), None).unwrap();
        let by_old = old.sign(b"m");
        assert_eq!(rotated.verify(b"m", Some(&by_old)), Ok(()));
        assert_eq!(
            new.verify(b"m", Some(&by_old)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            old.verify(b"m", Some(&rotated.sign(b"m"))),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn keys_are_required_and_long_enough() {
        assert!(matches!(
            Signer::from_keys(None, None),
            Err(SigningError::Missing { .. })
        ));
        assert!(matches!(
            Signer::from_keys(Some("short"), None),
            Err(SigningError::TooShort { .. })
        ));
        assert!(matches!(
            Signer::from_keys(Some(A), Some("short")),
            Err(SigningError::TooShort { .. })
        ));
        let k = Signer::generate_key();
        assert_eq!(k.len(), 64);
        assert_ne!(k, Signer::generate_key());
    }
}
