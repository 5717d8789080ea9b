//! Just enough HTTP/1.1 for the dashboard, on a plain `TcpStream`: one request per connection,
//! read under a deadline and size limits, and one response with the security headers every
//! response carries.
//!
//! Why not tiny_http (which serves the metrics): it gives every connection a thread of its own
//! from a pool that grows without bound, so slow clients could pile up threads. Here a fixed
//! number of workers each reads one request under a deadline, and answers with
//! `Connection: close`, so nothing a client does holds a worker longer than that deadline.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The most bytes of a request line and headers.
pub const MAX_HEAD: usize = 16 * 1024;
/// The most bytes of a body: the dashboard's forms are small.
pub const MAX_BODY: usize = 64 * 1024;
/// The whole request must arrive within this.
pub const READ_DEADLINE: Duration = Duration::from_secs(10);
/// No single read may wait longer than this.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// The policy every response carries: only this origin's scripts, styles, images and fetches; no
/// inline script or style, no frames, forms only to this origin.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
    connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
}

/// A request as read: the method, the path and query apart, lowercased header names, the body.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The first header of this (lowercase) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The query's fields, decoded.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .into_owned()
            .collect()
    }

    /// A form body's fields, decoded.
    pub fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(&self.body)
            .into_owned()
            .collect()
    }

    /// A cookie's value.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == "cookie")
            .flat_map(|(_, v)| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    }
}

/// Why a request could not be read; each has the status it is answered with.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The client went away or sent nothing in time: no answer.
    Gone,
    Bad(&'static str),
    TooLarge(&'static str),
    Method,
}

impl Refused {
    pub fn response(&self) -> Option<Response> {
        let (status, why) = match self {
            Refused::Gone => return None,
            Refused::Bad(why) => (400, *why),
            Refused::TooLarge(why) => (413, *why),
            Refused::Method => (405, "only GET, HEAD and POST"),
        };
        Some(Response::text(status, why))
    }
}

/// Reads one request from `stream`, within [`READ_DEADLINE`] and the size limits.
pub fn read_request(stream: &mut TcpStream) -> Result<Request, Refused> {
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let deadline = Instant::now() + READ_DEADLINE;
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            break end;
        }
        if buf.len() > MAX_HEAD {
            return Err(Refused::TooLarge("request head over 16 KiB"));
        }
        if Instant::now() > deadline {
            return Err(Refused::Gone);
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return Err(Refused::Gone),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    if head_end > MAX_HEAD {
        return Err(Refused::TooLarge("request head over 16 KiB"));
    }
    let mut request = parse_head(&buf[..head_end])?;
    let mut body = buf.split_off(head_end + 4);
    if request.header("transfer-encoding").is_some() {
        return Err(Refused::Bad("chunked bodies are not accepted; send Content-Length"));
    }
    let length = match request.header("content-length") {
        None => 0,
        Some(v) => v
            .trim()
            .parse::<usize>()
            .map_err(|_| Refused::Bad("bad Content-Length"))?,
    };
    if length > MAX_BODY {
        return Err(Refused::TooLarge("request body over 64 KiB"));
    }
    while body.len() < length {
        if Instant::now() > deadline {
            return Err(Refused::Gone);
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return Err(Refused::Gone),
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    body.truncate(length);
    request.body = body;
    Ok(request)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Parses a request line and headers (without the blank line).
pub fn parse_head(head: &[u8]) -> Result<Request, Refused> {
    let head = std::str::from_utf8(head).map_err(|_| Refused::Bad("request head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let line = lines.next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refused::Bad("bad request line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(Refused::Bad("only HTTP/1.x"));
    }
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        _ => return Err(Refused::Method),
    };
    if !target.starts_with('/') {
        return Err(Refused::Bad("the target must be a path"));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers = Vec::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(Refused::Bad("bad header line"));
        };
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(Refused::Bad("bad header name"));
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
        if headers.len() > 100 {
            return Err(Refused::TooLarge("more than 100 headers"));
        }
    }
    Ok(Request {
        method,
        path: path.to_string(),
        query: query.to_string(),
        headers,
        body: Vec::new(),
    })
}

/// A response body: bytes, or a file streamed from disk.
pub enum Body {
    Bytes(Vec<u8>),
    File(File, u64),
}

pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: Vec<u8>) -> Response {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body: Body::Bytes(body),
        }
    }

    pub fn html(body: String) -> Response {
        Response::new(200, "text/html; charset=utf-8", body.into_bytes())
    }

    pub fn text(status: u16, body: &str) -> Response {
        Response::new(status, "text/plain; charset=utf-8", format!("{body}\n").into_bytes())
    }

    /// A 303 to `location` (a path of this site), as every form's answer.
    pub fn see_other(location: &str) -> Response {
        Response::text(303, "see other").with("Location", location.to_string())
    }

    pub fn with(mut self, name: &'static str, value: String) -> Response {
        self.headers.push((name, value));
        self
    }

    fn reason(&self) -> &'static str {
        match self.status {
            200 => "OK",
            303 => "See Other",
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            413 => "Content Too Large",
            415 => "Unsupported Media Type",
            421 => "Misdirected Request",
            500 => "Internal Server Error",
            503 => "Service Unavailable",
            _ => "",
        }
    }

    /// Writes the response, with the headers every response carries, and closes.
    pub fn write(self, stream: &mut TcpStream, head_only: bool) -> io::Result<()> {
        let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
        let length = match &self.body {
            Body::Bytes(b) => b.len() as u64,
            Body::File(_, n) => *n,
        };
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {length}\r\n\
             Connection: close\r\nContent-Security-Policy: {CSP}\r\n\
             X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n\
             X-Frame-Options: DENY\r\nCross-Origin-Resource-Policy: same-origin\r\n",
            self.status,
            self.reason(),
            self.content_type
        );
        if !self.headers.iter().any(|(n, _)| *n == "Cache-Control") {
            head.push_str("Cache-Control: no-store\r\n");
        }
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        if !head_only {
            match self.body {
                Body::Bytes(b) => stream.write_all(&b)?,
                Body::File(f, n) => {
                    io::copy(&mut f.take(n), stream)?;
                }
            }
        }
        stream.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_head_parses_into_its_parts() {
        let r = parse_head(
            b"GET /jobs?state=failed&host=a.org HTTP/1.1\r\nHost: 127.0.0.1:8787\r\n\
              Cookie: a=1; jobd_session=xyz\r\nCookie: b=2",
        )
        .unwrap();
        assert_eq!(r.method, Method::Get);
        assert_eq!((r.path.as_str(), r.query.as_str()), ("/jobs", "state=failed&host=a.org"));
        assert_eq!(r.header("host"), Some("127.0.0.1:8787"));
        assert_eq!(r.cookie("jobd_session"), Some("xyz"));
        assert_eq!(r.cookie("b"), Some("2"));
        assert_eq!(r.query_pairs()[1], ("host".into(), "a.org".into()));
    }

    #[test]
    fn malformed_heads_are_refused() {
        for (head, want) in [
            (&b"DELETE / HTTP/1.1"[..], Refused::Method),
            (b"GET / HTTP/2", Refused::Bad("only HTTP/1.x")),
            (b"GET http://evil/ HTTP/1.1", Refused::Bad("the target must be a path")),
            (b"GET /  HTTP/1.1", Refused::Bad("bad request line")),
            (b"GET / HTTP/1.1\r\nno colon", Refused::Bad("bad header line")),
        ] {
            assert_eq!(parse_head(head).unwrap_err(), want, "{head:?}");
        }
    }

    /// Reads from a real socket: a body over the limit is refused before it is read, and a
    /// client that sends half a head and stalls frees the worker at the deadline.
    #[test]
    fn the_reader_bounds_size_and_time() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"POST /x HTTP/1.1\r\nContent-Length: 999999\r\n\r\n").unwrap();
            let mut s2 = TcpStream::connect(addr).unwrap();
            s2.write_all(b"POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nab").unwrap();
            s2.shutdown(std::net::Shutdown::Write).unwrap();
            let mut s3 = TcpStream::connect(addr).unwrap();
            s3.write_all(b"POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcdef").unwrap();
            (s, s2, s3)
        });
        let (mut a, _) = listener.accept().unwrap();
        assert_eq!(
            read_request(&mut a).unwrap_err(),
            Refused::TooLarge("request body over 64 KiB")
        );
        let (mut b, _) = listener.accept().unwrap();
        assert_eq!(read_request(&mut b).unwrap_err(), Refused::Gone);
        let (mut c, _) = listener.accept().unwrap();
        assert_eq!(read_request(&mut c).unwrap().body, b"abc");
        drop(client.join().unwrap());
    }
}
