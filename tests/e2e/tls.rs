//! https end to end: certificates are verified by default, `fetch.ca_file` adds a private CA,
//! and a certificate failure fails the job at once with words that say what is wrong.
//!
//! Each test makes its own throwaway CA with rcgen and serves over TLS on 127.0.0.1.

use jobd_testkit::images;
use jobd_testkit::server::{Reply, TestServer};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::support::{Env, sha256_hex};

/// A private CA that signs server certificates.
struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "jobd test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        Pki {
            ca: CertifiedIssuer::self_signed(params, key).expect("CA certificate"),
        }
    }

    fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// An https server whose certificate, signed by this CA, names `names` (an IP address becomes
    /// an IP subjectAltName), serving one PNG at `/img.png`. Returns the server and the PNG.
    fn server_for(&self, names: &[&str]) -> (TestServer, Vec<u8>) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("leaf params");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &*self.ca).expect("leaf certificate");
        let server = TestServer::start_tls(&cert.pem(), &key.serialize_pem());
        let png = images::png(20, 20, 7);
        server.route("/img.png", Reply::image(png.clone(), "image/png"));
        (server, png)
    }
}

/// Env::new's settings, plus a `[fetch] ca_file` when given (relative, as users write it).
fn env_with_ca(ca_pem: Option<&str>) -> Env {
    let ca_line = if ca_pem.is_some() {
        "ca_file = \"private-ca.pem\"\n"
    } else {
        ""
    };
    let env = Env::with_config(&format!(
        "workers = 2\ngrace_secs = 2\nlease_secs = 60\n\
         [fetch]\ntimeout_secs = 20\nallow_ips = [\"127.0.0.1/32\"]\n{ca_line}\
         [retry]\nmax_attempts = 3\nbase_delay_ms = 50\nmax_delay_ms = 200\n"
    ));
    if let Some(pem) = ca_pem {
        std::fs::write(env.path("private-ca.pem"), pem).expect("write the CA file");
    }
    env
}

#[test]
fn https_from_a_private_ca_is_fetched_with_ca_file() {
    let pki = Pki::new();
    let (server, png) = pki.server_for(&["127.0.0.1", "localhost"]);
    let env = env_with_ca(Some(&pki.ca_pem()));
    let url = server.url("/img.png");
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let ids = env.add(&[url]);
    env.drain(&[]);
    let job = env.job(ids[0]);
    assert_eq!((job.state.as_str(), job.attempts), ("done", 1), "{job:?}");
    assert_eq!(job.sha256.as_deref(), Some(sha256_hex(&png).as_str()));
    assert_eq!(env.blob(job.blob_path.as_deref().expect("blob path")), png);
}

#[test]
fn without_ca_file_an_unknown_issuer_fails_at_once() {
    let pki = Pki::new();
    let (server, _) = pki.server_for(&["127.0.0.1", "localhost"]);
    let env = env_with_ca(None);
    let ids = env.add(&[server.url("/img.png")]);
    env.drain(&[]);
    let job = env.job(ids[0]);
    // One attempt of three: the certificate will not change, so retrying would only wait.
    assert_eq!((job.state.as_str(), job.attempts), ("failed", 1), "{job:?}");
    assert!(
        job.error()
            .contains("TLS error: invalid peer certificate: UnknownIssuer"),
        "{job:?}"
    );
    assert!(job.error().contains("fetch.ca_file"), "{job:?}");
    assert_eq!(
        server.hits("/img.png"),
        0,
        "no request went past the handshake"
    );
}

#[test]
fn a_certificate_for_another_name_fails_even_with_ca_file() {
    let pki = Pki::new();
    let (server, _) = pki.server_for(&["localhost"]);
    let env = env_with_ca(Some(&pki.ca_pem()));
    let ids = env.add(&[server.url("/img.png")]);
    env.drain(&[]);
    let job = env.job(ids[0]);
    assert_eq!((job.state.as_str(), job.attempts), ("failed", 1), "{job:?}");
    assert!(
        job.error()
            .contains("certificate not valid for name \"127.0.0.1\""),
        "{job:?}"
    );
    assert_eq!(
        server.hits("/img.png"),
        0,
        "no request went past the handshake"
    );
}
