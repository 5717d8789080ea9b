//! HTTP: one shared ureq Agent with the address guard as its resolver, timeouts, a pool sized
//! for the workers and the trusted roots of [`crate::roots`], and the mapping of every HTTP, TLS
//! or network failure to a retry kind.
//!
//! Architecture invariant: this module never touches the database or the blob store; it hands a
//! response with a body reader to the caller, or a [`Failure`].

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ureq::Agent;
use ureq::config::AutoHeaderValue;
use ureq::tls::TlsConfig;
use ureq::unversioned::transport::{Connector, DefaultConnector};
use url::Url;

use crate::config::FetchConfig;
use crate::guard::{AllowList, Guard, GuardedResolver, blocked_in};
use crate::job::{Failure, Reason};
use crate::retry::{parse_retry_after, status_is_transient, status_means_slow_down};
use crate::roots::{self, CaFileError};
use stale::{LAST_REQUEST, Sent, Tracking, closed_unanswered};

mod stale;

/// The HTTP client shared by all workers.
#[derive(Debug)]
pub struct Http {
    agent: Agent,
    max_redirects: u32,
    /// `timeout_secs`: the whole attempt's deadline, which a request sent again shares.
    timeout: Duration,
}

/// A 2xx response whose body is still to be read.
pub struct Response {
    pub status: u16,
    /// Content-Type as the server declared it; recorded, never trusted.
    pub declared_mime: Option<String>,
    pub content_length: Option<u64>,
    /// From sending the request to the response headers.
    pub ttfb: Duration,
    /// What the response says about fetching it again in ranges (`crate::download` splits).
    pub ranges: Ranges,
    pub body: ureq::BodyReader<'static>,
}

/// What a response says about ranges of its body: whether the server offers them, the
/// validators that pin the entity, the URL it came from after redirects, and for a `206` the
/// `Content-Range` it claims.
#[derive(Debug, Clone, Default)]
pub struct Ranges {
    /// `Accept-Ranges: bytes`.
    pub accepted: bool,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// The URL that answered, after any redirects.
    pub url: Option<Url>,
    /// `Content-Range` as sent, for a part.
    pub content_range: Option<String>,
}

impl Ranges {
    /// The validator to send in `If-Range`: a strong ETag, else Last-Modified. None if the
    /// response has neither, and then its ranges cannot be proved to be of the same entity.
    pub fn if_range(&self) -> Option<&str> {
        match &self.etag {
            Some(etag) if !etag.starts_with("W/") => Some(etag),
            _ => self.last_modified.as_deref(),
        }
    }
}

/// A failed request: the failure, and the status if the server answered.
#[derive(Debug)]
pub struct HttpFailure {
    pub failure: Failure,
    pub status: Option<u16>,
    pub declared_mime: Option<String>,
    pub ttfb: Option<Duration>,
}

impl Http {
    /// Builds the agent. `workers` sizes the keep-alive pool: ureq keeps only 3 idle connections
    /// per host by default, which would make 10 workers on one host reconnect all the time.
    pub fn new(config: &FetchConfig, workers: usize) -> Result<Http, ClientError> {
        let allow = AllowList::parse(&config.allow_ips).map_err(ClientError::AllowIps)?;
        let guard = Arc::new(Guard::new(allow, config.allow_private));
        let agent_config = Agent::config_builder()
            // A proxy would dial the target itself, out of the guard's sight: no proxy, and none
            // picked up from the environment (ureq reads HTTP_PROXY and friends by default).
            .proxy(None)
            .http_status_as_error(false)
            .max_redirects(config.max_redirects)
            .user_agent(config.user_agent.as_str())
            // Images gain nothing from compression, and the size cap must count the bytes kept.
            .accept_encoding(AutoHeaderValue::from("identity"))
            .accept("image/*")
            .timeout_global(Some(Duration::from_secs(config.timeout_secs)))
            .timeout_connect(Some(Duration::from_secs(config.connect_timeout_secs)))
            .max_idle_connections(workers.max(10) * 2)
            .max_idle_connections_per_host(workers.max(3))
            .max_idle_age(Duration::from_secs(30))
            .tls_config(
                TlsConfig::builder()
                    .root_certs(
                        roots::trusted(config.ca_file.as_deref()).map_err(ClientError::CaFile)?,
                    )
                    .build(),
            )
            .build();
        Ok(Http {
            agent: Agent::with_parts(
                agent_config,
                DefaultConnector::default().chain(Tracking),
                GuardedResolver::new(guard),
            ),
            max_redirects: config.max_redirects,
            timeout: Duration::from_secs(config.timeout_secs),
        })
    }

    /// Sends a GET and waits for the headers. Anything but a 2xx is a failure.
    ///
    /// A request that went out on a pooled connection and failed before a single byte came back
    /// met a connection the server had already closed (servers close idle keep-alive
    /// connections whenever they like, and the close crosses our request on the wire). It is
    /// sent again once, within the same attempt and deadline, on new connections only, as curl
    /// and browsers do. A GET may be repeated: it changes nothing on the server.
    pub fn get(&self, url: &Url) -> Result<Response, HttpFailure> {
        self.send(url, None)
    }

    /// Sends a GET for the bytes `first..=last` of `url`, with `If-Range: validator`, and waits
    /// for the headers. The caller checks that the answer is the `206` and the `Content-Range`
    /// it asked for: a server may answer `200` with the whole body instead.
    pub fn get_range(
        &self,
        url: &Url,
        first: u64,
        last: u64,
        validator: &str,
    ) -> Result<Response, HttpFailure> {
        self.send(url, Some((format!("bytes={first}-{last}"), validator)))
    }

    fn send(&self, url: &Url, range: Option<(String, &str)>) -> Result<Response, HttpFailure> {
        let request = || {
            let request = self.agent.get(url.as_str());
            match &range {
                Some((bytes, validator)) => request
                    .header("Range", bytes.as_str())
                    .header("If-Range", *validator),
                None => request,
            }
        };
        let sent = Instant::now();
        LAST_REQUEST.set(Sent::default());
        let mut result = request().call();
        let stale = match &result {
            Err(e) => LAST_REQUEST.get().met_a_stale_connection() && closed_unanswered(e),
            Ok(_) => false,
        };
        let remaining = self.timeout.saturating_sub(sent.elapsed());
        if stale && !remaining.is_zero() {
            log::debug!(
                "{url}: a pooled connection was closed before it answered; sending again on a \
                 new connection"
            );
            LAST_REQUEST.set(Sent::default());
            result = request()
                .config()
                // Every pooled connection is too old for this request: each hop (redirects
                // included) dials anew.
                .max_idle_age(Duration::ZERO)
                .timeout_global(Some(remaining))
                .build()
                .call();
        }
        let response = result.map_err(|e| HttpFailure {
            failure: self.describe(&e),
            status: None,
            declared_mime: None,
            ttfb: None,
        })?;
        let ttfb = sent.elapsed();
        let status = response.status().as_u16();
        let declared_mime = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if !(200..300).contains(&status) {
            let reason = response.status().canonical_reason().unwrap_or("");
            let mut failure = if (300..400).contains(&status) {
                Failure::permanent(
                    Reason::Redirects,
                    format!("HTTP {status} {reason}: a redirect without a usable Location"),
                )
            } else if status_is_transient(status) {
                Failure::transient(Reason::Http(status), format!("HTTP {status} {reason}"))
            } else {
                Failure::permanent(Reason::Http(status), format!("HTTP {status} {reason}"))
            };
            if status_means_slow_down(status) {
                failure.retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
            }
            return Err(HttpFailure {
                failure,
                status: Some(status),
                declared_mime,
                ttfb: Some(ttfb),
            });
        }
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let ranges = Ranges {
            accepted: header("accept-ranges").is_some_and(|v| v.trim().eq_ignore_ascii_case("bytes")),
            etag: header("etag"),
            last_modified: header("last-modified"),
            url: Url::parse(&ureq::ResponseExt::get_uri(&response).to_string()).ok(),
            content_range: header("content-range"),
        };
        let body = response.into_body();
        Ok(Response {
            status,
            declared_mime,
            content_length: body.content_length(),
            ttfb,
            ranges,
            body: body.into_reader(),
        })
    }

    /// Words for the job's error column, and whether another try may help.
    fn describe(&self, error: &ureq::Error) -> Failure {
        use ureq::Error as E;
        if let Some(blocked) = blocked_in(error) {
            return Failure::permanent(Reason::Blocked, blocked.to_string());
        }
        match error {
            E::Timeout(which) => {
                Failure::transient(Reason::Timeout, format!("timed out ({which} deadline)"))
            }
            E::HostNotFound => {
                Failure::transient(Reason::Network, "host not found (DNS lookup failed)")
            }
            E::ConnectionFailed => Failure::transient(Reason::Network, "could not connect"),
            E::Io(e) => match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                // rustls reports a failed handshake as an io::Error wrapping its own error.
                Some(tls) => tls_failure(tls),
                None => io_failure("network error", e),
            },
            E::Rustls(e) => tls_failure(e),
            E::TooManyRedirects => Failure::permanent(
                Reason::Redirects,
                format!("too many redirects (more than {})", self.max_redirects),
            ),
            E::RedirectFailed => {
                Failure::permanent(Reason::Redirects, "a redirect could not be followed")
            }
            E::BadUri(why) => Failure::permanent(Reason::BadUrl, format!("unusable URL: {why}")),
            E::Tls(why) => Failure::permanent(Reason::Tls, format!("TLS error: {why}")),
            // A redirect that cannot be followed is the server's answer, and it will give the
            // same one next time.
            E::Protocol(ureq_proto::Error::NoLocationHeader) => {
                Failure::permanent(Reason::Redirects, "a redirect without a Location header")
            }
            E::Protocol(ureq_proto::Error::BadLocationHeader(location)) => Failure::permanent(
                Reason::Redirects,
                format!("a redirect to an unusable Location: {location:?}"),
            ),
            E::Protocol(e) => {
                Failure::transient(Reason::Network, format!("the server broke HTTP: {e}"))
            }
            other => Failure::transient(Reason::Network, other.to_string()),
        }
    }
}

/// The HTTP client could not be built from `[fetch]`. Each message names the key to fix.
///
/// As everywhere in jobd, `Display` is the whole line a user reads, causes included, and
/// `source()` hands the cause to code that wants it (it is not printed again).
#[derive(Debug)]
pub enum ClientError {
    /// `fetch.allow_ips` holds an entry that is not a CIDR; the guard's words name it.
    AllowIps(String),
    /// `fetch.ca_file` cannot be used.
    CaFile(CaFileError),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::AllowIps(why) => write!(f, "fetch.allow_ips: {why}"),
            ClientError::CaFile(e) => write!(f, "fetch.ca_file: {e}"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::AllowIps(_) => None,
            ClientError::CaFile(e) => Some(e),
        }
    }
}

/// A TLS failure. A certificate the server will keep presenting, or a handshake it will keep
/// refusing, fails the job now: retrying only spends attempts. Anything else (a garbled record,
/// say) may be the network's doing and gets another try.
fn tls_failure(e: &rustls::Error) -> Failure {
    use rustls::CertificateError as C;
    use rustls::Error as R;
    // Most of rustls's messages explain themselves; these two are bare names.
    let hint = match e {
        R::InvalidCertificate(C::UnknownIssuer) => {
            " (the certificate is not signed by a trusted CA; for a private CA, set fetch.ca_file)"
        }
        R::InvalidCertificate(C::NotValidForName) => " (the certificate is for another host)",
        _ => "",
    };
    let what = format!("TLS error: {e}{hint}");
    match e {
        R::InvalidCertificate(_)
        | R::NoCertificatesPresented
        | R::UnsupportedNameType
        | R::PeerIncompatible(_)
        | R::InvalidCertRevocationList(_) => Failure::permanent(Reason::Tls, what),
        _ => Failure::transient(Reason::Tls, what),
    }
}

/// Classifies an I/O error from the network: all of these are worth another try.
pub fn io_failure(context: &str, e: &io::Error) -> Failure {
    use io::ErrorKind as K;
    let what = match e.kind() {
        K::ConnectionRefused => "connection refused".to_string(),
        K::ConnectionReset => "connection reset by the server".to_string(),
        K::ConnectionAborted => "connection aborted".to_string(),
        K::UnexpectedEof => "the connection closed early".to_string(),
        K::TimedOut | K::WouldBlock => "timed out".to_string(),
        _ => e.to_string(),
    };
    // ureq wraps its own errors (timeouts among them) in io::Error while a body is read.
    if let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<ureq::Error>()) {
        if let ureq::Error::Timeout(which) = inner {
            return Failure::transient(Reason::Timeout, format!("timed out ({which} deadline)"));
        }
        return Failure::transient(Reason::Network, format!("{context}: {inner}"));
    }
    Failure::transient(Reason::Network, format!("{context}: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Kind;
    use jobd_testkit::{Fault, Reply, TestServer, images};
    use std::io::Read;

    /// The defaults, with the test server's address allowed.
    fn local() -> FetchConfig {
        FetchConfig {
            timeout_secs: 20,
            allow_ips: vec!["127.0.0.1/32".into()],
            ..FetchConfig::default()
        }
    }

    fn get(http: &Http, server: &TestServer, path: &str) -> Result<Response, HttpFailure> {
        http.get(&Url::parse(&server.url(path)).unwrap())
    }

    /// Regression: a 302 whose Location was missing or not ASCII failed as "the server broke
    /// HTTP", which is retried, until the attempts ran out.
    #[test]
    fn a_redirect_without_a_usable_location_fails_at_once() {
        let server = TestServer::start();
        server.route("/none", Reply::status(302));
        server.route(
            "/not-ascii",
            Reply::status(301).header("Location", "/caf\u{e9}.png"),
        );
        let http = Http::new(&local(), 1).unwrap();
        for path in ["/none", "/not-ascii"] {
            let Err(failed) = get(&http, &server, path) else {
                panic!("{path}: a redirect without a usable Location was followed");
            };
            assert_eq!(
                (failed.failure.kind, failed.failure.reason),
                (Kind::Permanent, Reason::Redirects),
                "{path}: {failed:?}"
            );
            assert!(failed.failure.error.contains("Location"), "{failed:?}");
            assert_eq!(server.hits(path), 1);
        }
    }

    /// Regression: after a 302 on a keep-alive connection, the redirect went out on that pooled
    /// connection, which the server closed without answering: the attempt failed with
    /// "connection reset" and cost the job an attempt. curl and browsers send such a request
    /// again on a new connection.
    #[test]
    fn a_request_on_a_pooled_connection_closed_before_any_answer_is_sent_again() {
        let server = TestServer::start();
        let body = images::png(4, 4, 1);
        server.route("/moved", Reply::redirect(302, "/image.png"));
        server.route(
            "/image.png",
            Reply::sequence(vec![
                Reply::image(body.clone(), "image/png").fault(Fault::Reset),
                Reply::image(body.clone(), "image/png"),
            ]),
        );
        let http = Http::new(&local(), 1).unwrap();
        let mut response = match get(&http, &server, "/moved") {
            Ok(response) => response,
            Err(failed) => panic!("not sent again: {failed:?}"),
        };
        assert_eq!(response.status, 200);
        let mut got = Vec::new();
        response.body.read_to_end(&mut got).unwrap();
        assert_eq!(got, body);
        assert_eq!(server.hits("/image.png"), 2);
        assert!(server.connections() >= 2, "not on a new connection");
    }

    /// A new connection that the server closes without answering is the server's doing: the
    /// request is not sent again within the attempt (the retry policy decides).
    #[test]
    fn a_new_connection_closed_before_any_answer_is_not_sent_again() {
        let server = TestServer::start();
        server.route(
            "/closes",
            Reply::image(images::png(4, 4, 1), "image/png").fault(Fault::Reset),
        );
        let http = Http::new(&local(), 1).unwrap();
        let Err(failed) = get(&http, &server, "/closes") else {
            panic!("a server that never answers answered");
        };
        assert_eq!(failed.failure.kind, Kind::Transient, "{failed:?}");
        assert_eq!(server.hits("/closes"), 1);
    }
}
