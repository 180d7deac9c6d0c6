//! Certificates made at run time, once per test process: a CA, a server certificate for
//! 127.0.0.1 and localhost, a client certificate, an expired client certificate, and a
//! client certificate from a CA the simulator does not trust. Each test writes them into
//! its own directory ([`Pems::write`]), which goes with the test.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// A certificate and its key, PEM.
#[derive(Clone)]
pub struct Pem {
    pub cert: String,
    pub key: String,
}

pub struct Pems {
    pub ca: String,
    pub server: Pem,
    pub client: Pem,
    pub expired_client: Pem,
    /// Signed by a CA of its own, which the simulator does not admit.
    pub stranger_client: Pem,
}

/// The files of [`Pems`] in one directory.
pub struct Files {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub expired_cert: PathBuf,
    pub expired_key: PathBuf,
}

pub fn pems() -> &'static Pems {
    static PEMS: OnceLock<Pems> = OnceLock::new();
    PEMS.get_or_init(make)
}

fn ca(name: &str) -> (Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    (params.self_signed(&key).unwrap(), key)
}

fn leaf(
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
    issuer: &(Certificate, KeyPair),
    expired: bool,
) -> Pem {
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names.clone()).unwrap();
    params.distinguished_name.push(
        DnType::CommonName,
        names.first().cloned().unwrap_or_default(),
    );
    params.extended_key_usages = vec![usage];
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let cert = params.signed_by(&key, &issuer.0, &issuer.1).unwrap();
    Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

fn make() -> Pems {
    let authority = ca("billflow test CA");
    let stranger = ca("some other CA");
    let client = ExtendedKeyUsagePurpose::ClientAuth;
    Pems {
        ca: authority.0.pem(),
        server: leaf(
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
            &authority,
            false,
        ),
        client: leaf(&["billflow-worker"], client.clone(), &authority, false),
        expired_client: leaf(&["billflow-expired"], client.clone(), &authority, true),
        stranger_client: leaf(&["billflow-stranger"], client, &stranger, false),
    }
}

impl Pems {
    /// Writes the files into `dir`.
    pub fn write(&self, dir: &Path) -> Files {
        std::fs::create_dir_all(dir).unwrap();
        let file = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        Files {
            ca: file("ca.pem", &self.ca),
            server_cert: file("server.pem", &self.server.cert),
            server_key: file("server-key.pem", &self.server.key),
            client_cert: file("client.pem", &self.client.cert),
            client_key: file("client-key.pem", &self.client.key),
            expired_cert: file("expired.pem", &self.expired_client.cert),
            expired_key: file("expired-key.pem", &self.expired_client.key),
        }
    }

    /// The simulator's TLS configuration: this server certificate, clients of this CA.
    pub fn server_config(&self) -> std::sync::Arc<rustls::ServerConfig> {
        billflow::sim::tls::server_config(
            self.server.cert.as_bytes(),
            self.server.key.as_bytes(),
            self.ca.as_bytes(),
        )
        .unwrap()
    }
}
