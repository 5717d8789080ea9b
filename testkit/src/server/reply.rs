//! Canned replies of the test server, and the faults that can be injected into them.

use std::sync::Arc;
use std::time::Duration;

/// A canned response. `Content-Length` is added when sending, from `body`, unless set with
/// [`Reply::header`] (which lets a test lie about it).
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Arc<[u8]>,
    pub fault: Fault,
    /// How a request with a `Range` header is answered ([`Reply::ranged`]).
    pub ranges: Ranges,
}

/// How a reply answers `Range` requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Ranges {
    /// The whole body, always, and no `Accept-Ranges` (as before ranges were served).
    #[default]
    Off,
    /// As RFC 9110 says: one range `bytes=a-b`, `a-` or `-n` gets a `206` with its
    /// `Content-Range`, an unsatisfiable one a `416`; an `If-Range` that names neither the
    /// ETag nor the Last-Modified gets the whole body, as does a list of ranges.
    Honour,
    /// Offers ranges (`Accept-Ranges: bytes`) but answers every request with the whole body.
    Ignore,
    /// A `206` of another range than the one asked for: the bytes one further on, with the
    /// Content-Range that says so.
    WrongContentRange,
    /// As `Honour`, but `If-Range` is not looked at: a range of whatever the body is now.
    NoIfRange,
    /// A `206` with the right headers, cut after this many body bytes, then closed.
    TruncateParts(usize),
}

/// Misbehaviour to inject into a reply.
#[derive(Clone, Debug, Default)]
pub enum Fault {
    #[default]
    None,
    /// Extra wait before the status line.
    Delay(Duration),
    /// Read the request, then close without responding. The client sees an orderly close
    /// (FIN), not an RST: forcing an RST needs `SO_LINGER`, which stable std cannot set.
    Reset,
    /// Announce the full Content-Length but send only the first N body bytes, then close.
    Truncate(usize),
    /// Send the body without a Content-Length, then close: the client cannot tell a body cut
    /// short from a whole one (HTTP/1.0 style).
    CloseDelimited,
    /// Send the body one byte per interval.
    Trickle(Duration),
    /// Send the body, then zero bytes until the client goes away; announced with a 1 TiB
    /// Content-Length, or with none (close-delimited).
    Endless { content_length: bool },
    /// The n-th request for the route gets the n-th reply; the last one repeats.
    Sequence(Vec<Reply>),
    /// Like `Sequence`, but counted per request target, query string included: `/a.png?n=1`
    /// and `/a.png?n=2` each start with the first reply. The server remembers every target
    /// such a route has seen.
    SequencePerUrl(Vec<Reply>),
}

impl Reply {
    /// 200 with the given Content-Type.
    pub fn image(bytes: impl Into<Arc<[u8]>>, content_type: &str) -> Reply {
        Reply {
            status: 200,
            headers: Vec::new(),
            body: bytes.into(),
            fault: Fault::None,
            ranges: Ranges::Off,
        }
        .header("Content-Type", content_type)
    }

    /// The same reply, answering `Range` requests as `ranges` says, with `Accept-Ranges: bytes`,
    /// an ETag made from the body (so another body has another ETag) and a fixed Last-Modified.
    pub fn ranged(mut self, ranges: Ranges) -> Reply {
        // FNV-1a: a stable tag for the bytes.
        let tag = self.body.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        });
        self.ranges = ranges;
        self.header("Accept-Ranges", "bytes")
            .header("ETag", &format!("\"{tag:016x}\""))
            .header("Last-Modified", "Mon, 30 Nov 2026 12:00:00 GMT")
    }

    /// The status with a small HTML body naming it.
    pub fn status(code: u16) -> Reply {
        Reply::html(
            code,
            &format!(
                "<html><body><h1>{code} {}</h1></body></html>\n",
                reason(code)
            ),
        )
    }

    /// The status with `body` as text/html.
    pub fn html(status: u16, body: &str) -> Reply {
        Reply {
            status,
            ..Reply::image(body.as_bytes(), "text/html; charset=utf-8")
        }
    }

    /// A redirect (301, 302, 303, 307 or 308) to `location`, absolute or relative.
    pub fn redirect(status: u16, location: &str) -> Reply {
        Reply::html(
            status,
            &format!("<html><body><a href=\"{location}\">moved</a></body></html>\n"),
        )
        .header("Location", location)
    }

    /// A reply whose n-th use is `replies[n]`, the last repeating (`Fault::Sequence` shorthand).
    pub fn sequence(replies: Vec<Reply>) -> Reply {
        Reply::status(500).fault(Fault::Sequence(replies))
    }

    /// A reply whose n-th use for each request target is `replies[n]`, the last repeating
    /// (`Fault::SequencePerUrl` shorthand).
    pub fn sequence_per_url(replies: Vec<Reply>) -> Reply {
        Reply::status(500).fault(Fault::SequencePerUrl(replies))
    }

    /// Sets a header, replacing any of the same name (case-insensitive).
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Replaces the reply's fault.
    pub fn fault(mut self, fault: Fault) -> Reply {
        self.fault = fault;
        self
    }

    pub(super) fn get_header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub(super) fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        206 => "Partial Content",
        416 => "Range Not Satisfiable",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        410 => "Gone",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}
