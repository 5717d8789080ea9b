//! The roots that https servers' certificates must chain to: Mozilla's, plus `fetch.ca_file`.
//!
//! Its own module, below both `config` (which checks `fetch.ca_file` as it loads) and `fetch`
//! (which builds the client with the roots).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use ureq::tls::{Certificate, PemItem, RootCerts};

/// The roots that server certificates must chain to. Without `ca_file`, ureq's default: Mozilla's
/// roots from webpki-roots. With it, the same Mozilla set plus the file's certificates: ureq can
/// only *replace* the root set, and webpki-roots holds bare trust anchors that cannot be handed
/// back to it, so the set comes as certificates from webpki-root-certs, the same list's twin.
pub fn trusted(ca_file: Option<&Path>) -> Result<RootCerts, CaFileError> {
    let Some(path) = ca_file else {
        return Ok(RootCerts::WebPki);
    };
    let mut roots: Vec<Certificate<'static>> = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|der| Certificate::from_der(der.as_ref()))
        .collect();
    roots.extend(load_ca_file(path)?);
    Ok(RootCerts::from(roots))
}

/// Reads a PEM bundle of CA certificates (`fetch.ca_file`). It must hold at least one, and each
/// must be a certificate rustls accepts as a root: ureq would silently skip a bad one, and a CA
/// that is quietly missing shows up much later as "unknown issuer" on every job.
pub fn load_ca_file(path: &Path) -> Result<Vec<Certificate<'static>>, CaFileError> {
    let pem = std::fs::read(path).map_err(|source| CaFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        let item = item.map_err(|source| CaFileError::NotPem {
            path: path.to_path_buf(),
            source,
        })?;
        // A key next to the certificates is not ours to use; it is not an error either.
        if let PemItem::Certificate(cert) = item {
            let der = rustls::pki_types::CertificateDer::from(cert.der());
            rustls::RootCertStore::empty().add(der).map_err(|source| {
                CaFileError::BadCertificate {
                    path: path.to_path_buf(),
                    number: certs.len() + 1,
                    source,
                }
            })?;
            certs.push(cert);
        }
    }
    if certs.is_empty() {
        return Err(CaFileError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// A `fetch.ca_file` that cannot be used, with the file's path.
#[derive(Debug)]
pub enum CaFileError {
    Read {
        path: PathBuf,
        source: io::Error,
    },
    NotPem {
        path: PathBuf,
        source: ureq::Error,
    },
    /// Certificate `number` (from 1, in file order) is not one rustls accepts as a root.
    BadCertificate {
        path: PathBuf,
        number: usize,
        source: rustls::Error,
    },
    NoCertificate {
        path: PathBuf,
    },
}

impl fmt::Display for CaFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let not_usable = |path: &Path| format!("{} is not a usable PEM CA bundle", path.display());
        match self {
            CaFileError::Read { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            CaFileError::NotPem { path, source } => write!(f, "{}: {source}", not_usable(path)),
            CaFileError::BadCertificate {
                path,
                number,
                source,
            } => {
                // rustls words this for a peer's certificate: keep only the reason.
                let why = match source {
                    rustls::Error::InvalidCertificate(why) => why.to_string(),
                    other => other.to_string(),
                };
                write!(
                    f,
                    "{}: certificate {number} cannot be used ({why})",
                    not_usable(path)
                )
            }
            CaFileError::NoCertificate { path } => write!(
                f,
                "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for CaFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CaFileError::Read { source, .. } => Some(source),
            CaFileError::NotPem { source, .. } => Some(source),
            CaFileError::BadCertificate { source, .. } => Some(source),
            CaFileError::NoCertificate { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_file_adds_to_the_mozilla_roots_instead_of_replacing_them() {
        assert!(matches!(trusted(None), Ok(RootCerts::WebPki)));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bundle.pem");
        let pem = |name: &str| {
            let made = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
            made.cert.pem()
        };
        std::fs::write(&path, pem("one.test") + &pem("two.test")).unwrap();
        let Ok(RootCerts::Specific(roots)) = trusted(Some(&path)) else {
            panic!("a ca_file gives a specific root set");
        };
        let mozilla = webpki_root_certs::TLS_SERVER_ROOT_CERTS;
        assert_eq!(roots.len(), mozilla.len() + 2);
        // ureq skips roots that rustls cannot parse; none of Mozilla's may be lost that way.
        let mut store = rustls::RootCertStore::empty();
        let (added, ignored) = store.add_parsable_certificates(mozilla.iter().cloned());
        assert_eq!((added, ignored), (mozilla.len(), 0));
    }
}
