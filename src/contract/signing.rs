//! The stage-message keys: HMAC-SHA256 signatures, and the sealing of the secrets a
//! command carries. Only a worker (or `billflow dlq`, run by a person holding the key)
//! writes a stage; a stage message without a valid signature is refused, so nobody with
//! mere broker access can skip a check or forge an earlier output. Passwords a later stage
//! needs travel sealed (AES-256-GCM), so queues and dead letters never hold them in clear.
//!
//! The signature covers the body byte for byte: the command, the stage, the attempt,
//! every earlier output and the sealed secrets. Two keys are accepted while keys rotate:
//! the current one (which signs and seals) and the previous one.

use std::sync::Arc;

use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};
use ring::{aead, digest, hmac};

use super::envelope::Header;

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
    #[error("cannot derive the sealing key from the signing key")]
    SealKey,
}

/// Why a stage message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the sealed secrets of the stage message cannot be opened with this worker's keys")]
    Sealed,
    #[error(
        "stage message is not signed (no {} header): only billflow writes stages",
        Header::SIGNATURE.name
    )]
    Unsigned,
    #[error("stage message signature is malformed")]
    Malformed,
    #[error("stage message signature does not match: altered, or signed with another key")]
    Mismatch,
}

/// Signs and seals with the current key; verifies and opens with the current or the
/// previous one.
#[derive(Clone)]
pub struct Signer {
    current: hmac::Key,
    previous: Option<hmac::Key>,
    seal: Arc<aead::LessSafeKey>,
    seal_previous: Option<Arc<aead::LessSafeKey>>,
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
            seal: seal_key(current)?,
            seal_previous: previous.map(seal_key).transpose()?,
        })
    }

    /// `plaintext` encrypted and authenticated with the current key: base64 of a random
    /// nonce followed by the ciphertext and its tag.
    pub fn seal(&self, plaintext: &[u8]) -> String {
        let mut nonce = [0u8; aead::NONCE_LEN];
        // The system RNG does not fail on Linux.
        let _ = SystemRandom::new().fill(&mut nonce);
        let mut sealed = plaintext.to_vec();
        // Sealing fails only for inputs of gigabytes, far above any message.
        let _ = self.seal.seal_in_place_append_tag(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::empty(),
            &mut sealed,
        );
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        base64::engine::general_purpose::STANDARD.encode(out)
    }

    /// What `seal` sealed, with the current or the previous key.
    pub fn unseal(&self, sealed: &str) -> Result<Vec<u8>, SignatureError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .map_err(|_| SignatureError::Sealed)?;
        if bytes.len() < aead::NONCE_LEN {
            return Err(SignatureError::Sealed);
        }
        let (nonce, ciphertext) = bytes.split_at(aead::NONCE_LEN);
        let open = |key: &Arc<aead::LessSafeKey>| -> Option<Vec<u8>> {
            let nonce = aead::Nonce::try_assume_unique_for_key(nonce).ok()?;
            let mut buffer = ciphertext.to_vec();
            let plain = key
                .open_in_place(nonce, aead::Aad::empty(), &mut buffer)
                .ok()?;
            Some(plain.to_vec())
        };
        open(&self.seal)
            .or_else(|| self.seal_previous.as_ref().and_then(open))
            .ok_or(SignatureError::Sealed)
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

/// The sealing key: derived from the signing key, so one secret configures both.
fn seal_key(signing_key: &str) -> Result<Arc<aead::LessSafeKey>, SigningError> {
    let mut context = digest::Context::new(&digest::SHA256);
    context.update(b"billflow stage-message sealing key\0");
    context.update(signing_key.as_bytes());
    let key = aead::UnboundKey::new(&aead::AES_256_GCM, context.finish().as_ref())
        .map_err(|_| SigningError::SealKey)?;
    Ok(Arc::new(aead::LessSafeKey::new(key)))
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
    fn sealed_secrets_open_only_with_the_keys() {
        let old = Signer::from_keys(Some(A), None).unwrap();
        let rotated = Signer::from_keys(Some(B), Some(A)).unwrap();
        let other = Signer::from_keys(Some(B), None).unwrap();
        let sealed = old.seal(b"hunter2");
        assert!(!sealed.contains("hunter2"));
        assert_ne!(sealed, old.seal(b"hunter2"), "a fresh nonce each time");
        assert_eq!(old.unseal(&sealed).unwrap(), b"hunter2");
        assert_eq!(rotated.unseal(&sealed).unwrap(), b"hunter2");
        assert_eq!(other.unseal(&sealed), Err(SignatureError::Sealed));
        for bad in ["", "!!", "AAAA", &sealed[..sealed.len() - 4]] {
            assert_eq!(old.unseal(bad), Err(SignatureError::Sealed), "{bad}");
        }
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
