//! WS-Security UsernameToken with a password digest, as Emersion's public clients send it.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use sha1::{Digest, Sha1};

use crate::secret::Secret;
use crate::xml::XmlWriter;

const WSSE_NS: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
const WSU_NS: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
const PASSWORD_DIGEST: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest";
const BASE64_BINARY: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary";

/// base64(SHA-1(nonce + created + password)).
pub fn password_digest(nonce: &[u8], created: &str, password: &str) -> String {
    let mut hasher = Sha1::new();
    hasher.update(nonce);
    hasher.update(created.as_bytes());
    hasher.update(password.as_bytes());
    BASE64.encode(hasher.finalize())
}

/// Writes `<wsse:Security>` with a fresh nonce and timestamp.
pub fn write_security(w: &mut XmlWriter, username: &str, password: &Secret) {
    let nonce = uuid::Uuid::new_v4().into_bytes();
    let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    write_security_with(w, username, password, &nonce, &created);
}

fn write_security_with(
    w: &mut XmlWriter,
    username: &str,
    password: &Secret,
    nonce: &[u8],
    created: &str,
) {
    let digest = password_digest(nonce, created, password.expose());
    w.start_with(
        "wsse:Security",
        &[("xmlns:wsse", WSSE_NS), ("xmlns:wsu", WSU_NS)],
    )
    .start("wsse:UsernameToken")
    .leaf("wsse:Username", username)
    .start_with("wsse:Password", &[("Type", PASSWORD_DIGEST)]);
    w.text(&digest)
        .end("wsse:Password")
        .start_with("wsse:Nonce", &[("EncodingType", BASE64_BINARY)]);
    w.text(&BASE64.encode(nonce))
        .end("wsse:Nonce")
        .leaf("wsu:Created", created)
        .end("wsse:UsernameToken")
        .end("wsse:Security");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::Element;

    #[test]
    fn digest_matches_the_username_token_profile() {
        // Worked example of the OASIS UsernameToken profile 1.0 (nonce, created, password).
        let nonce = BASE64.decode("LKqI6G/AikKCQrN0zqZFlg==").unwrap();
        assert_eq!(
            password_digest(&nonce, "2010-09-16T07:50:45Z", "userpassword"),
            "tuOSpGlFlIXsozq4HFNeeGeFLEI="
        );
    }

    #[test]
    fn header_carries_username_digest_nonce_and_created() {
        let mut w = XmlWriter::new();
        write_security_with(
            &mut w,
            "billflow",
            &Secret::new("pw"),
            b"0123456789abcdef",
            "2026-11-22T10:00:00Z",
        );
        let xml = w.finish();
        assert!(!xml.contains(">pw<"), "the password itself is never sent");
        let sec = Element::parse(&xml).unwrap();
        let token = sec.child("UsernameToken").unwrap();
        assert_eq!(token.text_at(&["Username"]).unwrap(), "billflow");
        let nonce = BASE64.decode(token.text_at(&["Nonce"]).unwrap()).unwrap();
        assert_eq!(
            token.text_at(&["Password"]).unwrap(),
            password_digest(&nonce, "2026-11-22T10:00:00Z", "pw")
        );
    }
}
