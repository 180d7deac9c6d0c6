//! Emersion's client certificate, checked when the worker starts: readable PEM files, a
//! certificate valid now, a private key that belongs to it, an extra root that parses. An
//! error names the variable and the file, never the key's content.

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::billing::http::ClientTls;
use crate::secret::Secret;

/// What is wrong with one of the certificate files.
#[derive(Debug, thiserror::Error)]
#[error("{variable} ({}): {problem}", .path.display())]
pub struct CertificateError {
    pub variable: &'static str,
    pub path: PathBuf,
    pub problem: String,
}

pub const CERT_VARIABLE: &str = "EMERSION_CLIENT_CERT";
pub const KEY_VARIABLE: &str = "EMERSION_CLIENT_KEY";
pub const CA_VARIABLE: &str = "EMERSION_CA_CERT";

/// Reads and checks the client certificate every Emersion call presents, at `now` (Unix
/// seconds).
pub fn load(
    cert: &Path,
    key: &Path,
    ca: Option<&Path>,
    now: i64,
) -> Result<ClientTls, CertificateError> {
    let chain_pem = read(CERT_VARIABLE, cert)?;
    let chain = certificates(CERT_VARIABLE, cert, &chain_pem)?;
    let fail = |variable, path: &Path, problem: String| CertificateError {
        variable,
        path: path.to_path_buf(),
        problem,
    };
    let (not_before, not_after, public_key) = {
        let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).map_err(|e| {
            fail(
                CERT_VARIABLE,
                cert,
                format!("not a readable X.509 certificate: {e}"),
            )
        })?;
        // rustls (webpki) takes only X.509 v3 end-entity certificates; an older one would
        // fail later, as a bare "builder error".
        if leaf.version() != x509_parser::x509::X509Version::V3 {
            return Err(fail(
                CERT_VARIABLE,
                cert,
                format!(
                    "an X.509 v{} certificate: TLS client certificates must be v3",
                    leaf.version().0 + 1
                ),
            ));
        }
        let validity = leaf.validity();
        (
            validity.not_before.timestamp(),
            validity.not_after.timestamp(),
            leaf.public_key().raw.to_vec(),
        )
    };
    if now < not_before {
        return Err(fail(
            CERT_VARIABLE,
            cert,
            format!(
                "the certificate is not valid yet (from {})",
                utc(not_before)
            ),
        ));
    }
    if now > not_after {
        return Err(fail(
            CERT_VARIABLE,
            cert,
            format!("the certificate expired on {}", utc(not_after)),
        ));
    }
    let key_pem = Secret::new(read(KEY_VARIABLE, key)?);
    // The parser's errors never quote the key.
    let private = PrivateKeyDer::from_pem_slice(key_pem.expose().as_bytes()).map_err(|_| {
        fail(
            KEY_VARIABLE,
            key,
            "no PEM private key (PKCS#8, PKCS#1 or SEC1) in the file".into(),
        )
    })?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&private).map_err(|_| {
        fail(
            KEY_VARIABLE,
            key,
            "the private key is of an unsupported type or damaged".into(),
        )
    })?;
    if signing
        .public_key()
        .is_some_and(|spki| spki.as_ref() != public_key.as_slice())
    {
        return Err(fail(
            KEY_VARIABLE,
            key,
            format!(
                "the private key does not belong to the certificate in {}",
                cert.display()
            ),
        ));
    }
    let extra_root_pem = match ca {
        Some(ca) => {
            let text = read(CA_VARIABLE, ca)?;
            certificates(CA_VARIABLE, ca, &text)?;
            Some(text)
        }
        None => None,
    };
    Ok(ClientTls {
        // One PEM buffer, as `reqwest::Identity` takes it.
        identity_pem: Secret::new(format!("{chain_pem}\n{}", key_pem.expose())),
        extra_root_pem,
    })
}

fn read(variable: &'static str, path: &Path) -> Result<String, CertificateError> {
    std::fs::read_to_string(path).map_err(|e| CertificateError {
        variable,
        path: path.to_path_buf(),
        problem: format!("cannot read the file: {e}"),
    })
}

/// Every certificate of a PEM text; none is an error.
fn certificates(
    variable: &'static str,
    path: &Path,
    pem: &str,
) -> Result<Vec<CertificateDer<'static>>, CertificateError> {
    let fail = |problem: &str| CertificateError {
        variable,
        path: path.to_path_buf(),
        problem: problem.to_string(),
    };
    let found = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| fail("malformed PEM"))?;
    if found.is_empty() {
        return Err(fail("no PEM certificate (BEGIN CERTIFICATE) in the file"));
    }
    Ok(found)
}

fn utc(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| seconds.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_names_the_variable_and_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("nope.pem");
        let err = load(&cert, &cert, None, 0).unwrap_err();
        assert_eq!(err.variable, CERT_VARIABLE);
        let text = err.to_string();
        assert!(text.starts_with("EMERSION_CLIENT_CERT ("), "{text}");
        assert!(text.contains("nope.pem"), "{text}");
        assert!(text.contains("cannot read the file"), "{text}");
    }

    #[test]
    fn an_old_x509_version_is_refused_before_the_key_is_read() {
        // A public certificate only (openssl x509 -req without extensions makes v1).
        let cert = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/tls/v1-client-certificate.pem"
        ));
        let err = load(cert, Path::new("/nonexistent.key"), None, 0).unwrap_err();
        assert_eq!(err.variable, CERT_VARIABLE);
        assert!(
            err.to_string().contains("an X.509 v1 certificate"),
            "{}",
            err.to_string()
        );
    }

    #[test]
    fn a_file_without_a_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        std::fs::write(&cert, "hello").unwrap();
        let err = load(&cert, &cert, None, 0).unwrap_err();
        assert!(
            err.to_string().contains("no PEM certificate"),
            "{}",
            err.to_string()
        );
    }
}
