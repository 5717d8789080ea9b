//! Who may talk to the dashboard, and how a request proves it: the `Host` check (against DNS
//! rebinding), the login token, session cookies and the CSRF token bound to them, and the
//! cross-origin check of every POST.
//!
//! Sessions are stateless: a cookie is a random nonce, whether it logged in, and an HMAC of both
//! under a key drawn at start-up; the CSRF token is another HMAC of the nonce. Every comparison of
//! a secret is constant-time (`hmac`'s `verify_slice`, or a comparison of HMACs).

use std::net::SocketAddr;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::http::Request;

type HmacSha256 = Hmac<Sha256>;

pub const SESSION_COOKIE: &str = "jobd_session";

/// What a request is allowed, once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The nonce of its cookie (new when the request had none valid).
    pub nonce: String,
    /// Logged in with the token, or no token is needed.
    pub authorised: bool,
    /// A Set-Cookie to send: the request had no valid cookie.
    pub set_cookie: Option<String>,
    /// It came with `Authorization: Bearer <token>` (a script: no cookie, no CSRF token).
    pub bearer: bool,
}

pub struct Guard {
    key: [u8; 32],
    token: Option<String>,
    /// The `Host` values accepted, lowercased.
    hosts: Vec<String>,
}

impl Guard {
    /// `allowed` are extra host names (with or without a port); on loopback, `localhost` and
    /// both loopback addresses at the port are accepted too.
    pub fn new(listen: SocketAddr, token: Option<String>, allowed: &[String]) -> Guard {
        let port = listen.port();
        let mut hosts = vec![match listen {
            SocketAddr::V4(a) => format!("{}:{port}", a.ip()),
            SocketAddr::V6(a) => format!("[{}]:{port}", a.ip()),
        }];
        if listen.ip().is_loopback() {
            hosts.extend([
                format!("localhost:{port}"),
                format!("127.0.0.1:{port}"),
                format!("[::1]:{port}"),
            ]);
        }
        for name in allowed {
            let name = name.to_ascii_lowercase();
            if name.contains(':') && !name.ends_with(']') {
                hosts.push(name);
            } else {
                hosts.push(format!("{name}:{port}"));
                hosts.push(name);
            }
        }
        Guard {
            key: random_key(),
            token: token.map(|t| t.trim().to_string()),
            hosts,
        }
    }

    pub fn needs_login(&self) -> bool {
        self.token.is_some()
    }

    /// Whether the `Host` header names this server.
    pub fn host_allowed(&self, request: &Request) -> bool {
        request
            .header("host")
            .is_some_and(|h| self.hosts.iter().any(|ok| ok.eq_ignore_ascii_case(h)))
    }

    /// A POST from a page of another origin: its `Origin` says so, or, where the browser sends
    /// `Origin: null` (as Chromium does for a form under `Referrer-Policy: no-referrer`, and any
    /// browser for a sandboxed frame), `Sec-Fetch-Site` does; a null origin without it is refused.
    /// A request with neither header is no browser's cross-site form; the CSRF token still has to
    /// match.
    pub fn cross_origin(&self, request: &Request) -> bool {
        let site = request.header("sec-fetch-site");
        if let Some(site) = site {
            if site != "same-origin" && site != "none" {
                return true;
            }
        }
        match request.header("origin") {
            None => false,
            Some("null") => site.is_none(),
            Some(origin) => {
                let host = request.header("host").unwrap_or_default();
                !origin.eq_ignore_ascii_case(&format!("http://{host}"))
                    && !origin.eq_ignore_ascii_case(&format!("https://{host}"))
            }
        }
    }

    /// The request's session: its cookie's if the MAC holds, else a new one to set.
    pub fn session(&self, request: &Request) -> Session {
        let bearer = self.token.as_deref().is_some_and(|token| {
            request
                .header("authorization")
                .and_then(|a| a.strip_prefix("Bearer "))
                .is_some_and(|given| self.same_secret(given.trim(), token))
        });
        if let Some((nonce, logged_in)) = request
            .cookie(SESSION_COOKIE)
            .and_then(|c| self.open_cookie(c))
        {
            return Session {
                nonce,
                authorised: logged_in || self.token.is_none() || bearer,
                set_cookie: None,
                bearer,
            };
        }
        let nonce = hex(&random_key()[..16]);
        Session {
            set_cookie: Some(self.cookie(&nonce, false)),
            nonce,
            authorised: self.token.is_none() || bearer,
            bearer,
        }
    }

    /// Checks a login form's token; on success, the Set-Cookie of a new, logged-in session.
    pub fn login(&self, given: &str) -> Option<String> {
        let token = self.token.as_deref()?;
        self.same_secret(given.trim(), token)
            .then(|| self.cookie(&hex(&random_key()[..16]), true))
    }

    /// The CSRF token of a session.
    pub fn csrf(&self, nonce: &str) -> String {
        hex(&self.mac(&["csrf", nonce]))
    }

    /// Whether a form's CSRF token is its session's, in constant time.
    pub fn csrf_ok(&self, nonce: &str, given: &str) -> bool {
        let Some(given) = unhex(given) else {
            return false;
        };
        self.mac_of(&["csrf", nonce]).verify_slice(&given).is_ok()
    }

    fn cookie(&self, nonce: &str, logged_in: bool) -> String {
        let flag = if logged_in { "1" } else { "0" };
        let mac = hex(&self.mac(&["session", nonce, flag]));
        format!("{SESSION_COOKIE}={nonce}.{flag}.{mac}; Path=/; HttpOnly; SameSite=Strict")
    }

    /// A cookie's nonce and login flag, if its MAC holds.
    fn open_cookie(&self, value: &str) -> Option<(String, bool)> {
        let mut parts = value.split('.');
        let (nonce, flag, mac) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || !(flag == "0" || flag == "1") || nonce.len() != 32 {
            return None;
        }
        self.mac_of(&["session", nonce, flag])
            .verify_slice(&unhex(mac)?)
            .ok()?;
        Some((nonce.to_string(), flag == "1"))
    }

    /// Two secrets compared through their HMACs, so that the time taken says nothing of either.
    fn same_secret(&self, given: &str, secret: &str) -> bool {
        let expected = self.mac(&["token", secret]);
        self.mac_of(&["token", given]).verify_slice(&expected).is_ok()
    }

    fn mac_of(&self, parts: &[&str]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        mac
    }

    fn mac(&self, parts: &[&str]) -> Vec<u8> {
        self.mac_of(parts).finalize().into_bytes().to_vec()
    }
}

/// 32 random bytes from the kernel. Without them the dashboard must not run: its sessions
/// would be guessable.
fn random_key() -> [u8; 32] {
    use std::io::Read;
    let mut key = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut key))
        .expect("reading /dev/urandom");
    key
}

fn hex(bytes: &[u8]) -> String {
    crate::blobs::hex(bytes)
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || text.len() > 128 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::http::parse_head;

    fn request(head: &str) -> Request {
        parse_head(head.replace('\n', "\r\n").as_bytes()).unwrap()
    }

    fn guard(token: Option<&str>) -> Guard {
        Guard::new(
            "127.0.0.1:8787".parse().unwrap(),
            token.map(String::from),
            &["jobs.example.org".into()],
        )
    }

    #[test]
    fn only_our_own_host_names_are_answered() {
        let g = guard(None);
        for host in ["127.0.0.1:8787", "localhost:8787", "[::1]:8787", "JOBS.example.org", "jobs.example.org:8787"] {
            assert!(g.host_allowed(&request(&format!("GET / HTTP/1.1\nHost: {host}"))), "{host}");
        }
        for host in ["evil.example:8787", "127.0.0.1:9999", "localhost", "attacker.com"] {
            assert!(!g.host_allowed(&request(&format!("GET / HTTP/1.1\nHost: {host}"))), "{host}");
        }
        assert!(!g.host_allowed(&request("GET / HTTP/1.1")), "no Host header");
    }

    #[test]
    fn cross_origin_posts_are_told_apart() {
        let g = guard(None);
        let post = |extra: &str| request(&format!("POST /x HTTP/1.1\nHost: 127.0.0.1:8787{extra}"));
        assert!(!g.cross_origin(&post("\nOrigin: http://127.0.0.1:8787")));
        assert!(g.cross_origin(&post("\nOrigin: http://evil.example")));
        assert!(g.cross_origin(&post("\nOrigin: null")));
        assert!(!g.cross_origin(&post("\nOrigin: null\nSec-Fetch-Site: same-origin")));
        assert!(g.cross_origin(&post("\nOrigin: null\nSec-Fetch-Site: cross-site")));
        assert!(g.cross_origin(&post("\nOrigin: http://127.0.0.1:8787\nSec-Fetch-Site: same-site")));
        assert!(g.cross_origin(&post("\nSec-Fetch-Site: cross-site")));
        assert!(!g.cross_origin(&post("\nSec-Fetch-Site: same-origin")));
        assert!(!g.cross_origin(&post("")));
    }

    #[test]
    fn a_session_cookie_and_its_csrf_token_hold_only_together() {
        let g = guard(None);
        let fresh = g.session(&request("GET / HTTP/1.1"));
        assert!(fresh.authorised, "no token configured");
        let cookie = fresh.set_cookie.clone().unwrap();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        let value = cookie.split(';').next().unwrap();
        let again = g.session(&request(&format!("GET / HTTP/1.1\nCookie: {value}")));
        assert_eq!((again.nonce.as_str(), again.set_cookie), (fresh.nonce.as_str(), None));
        let csrf = g.csrf(&fresh.nonce);
        assert!(g.csrf_ok(&fresh.nonce, &csrf));
        assert!(!g.csrf_ok(&fresh.nonce, &csrf[..62]));
        assert!(!g.csrf_ok(&fresh.nonce, ""));
        let other = g.session(&request("GET / HTTP/1.1"));
        assert!(!g.csrf_ok(&other.nonce, &csrf), "another session's token");
        // A forged cookie (a nonce with another's MAC, or another server's key) is a new session.
        let forged = format!("{}={}.0.{}", SESSION_COOKIE, other.nonce, value.rsplit('.').next().unwrap());
        assert!(g.session(&request(&format!("GET / HTTP/1.1\nCookie: {forged}"))).set_cookie.is_some());
        let g2 = guard(None);
        assert!(g2.session(&request(&format!("GET / HTTP/1.1\nCookie: {value}"))).set_cookie.is_some());
    }

    #[test]
    fn with_a_token_only_a_login_or_the_bearer_header_authorises() {
        let g = guard(Some("0123456789abcdef-secret"));
        assert!(!g.session(&request("GET / HTTP/1.1")).authorised);
        let logged_out = g.session(&request("GET / HTTP/1.1")).set_cookie.unwrap();
        let value = logged_out.split(';').next().unwrap();
        assert!(!g.session(&request(&format!("GET / HTTP/1.1\nCookie: {value}"))).authorised);
        assert!(g.login("wrong").is_none());
        assert!(g.login("0123456789abcdef-secre").is_none());
        let cookie = g.login("0123456789abcdef-secret").unwrap();
        let value = cookie.split(';').next().unwrap();
        assert!(g.session(&request(&format!("GET / HTTP/1.1\nCookie: {value}"))).authorised);
        // The login flag cannot be flipped by hand.
        let tampered = value.replace(".1.", ".0.");
        assert!(!g.session(&request(&format!("GET / HTTP/1.1\nCookie: {tampered}"))).authorised);
        let bearer = g.session(&request("GET / HTTP/1.1\nAuthorization: Bearer 0123456789abcdef-secret"));
        assert!(bearer.authorised && bearer.bearer);
        let wrong = g.session(&request("GET / HTTP/1.1\nAuthorization: Bearer nope"));
        assert!(!wrong.authorised && !wrong.bearer);
    }
}
