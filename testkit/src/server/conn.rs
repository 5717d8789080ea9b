//! One client connection of the test server: parses requests, applies faults and WAN
//! emulation, and writes responses, keeping the connection alive when HTTP allows it. The same
//! code serves plain TCP and TLS, through [`Stream`].

use std::io::{self, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::reply::{Ranges, reason};
use super::tls::Stream;
use super::{Fault, Reply, Shared, TICK, Wan, lock};

/// Idle keep-alive connections are closed after this long, as real servers do.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Larger request heads are refused (431), so garbage cannot grow memory without bound.
const MAX_HEAD: usize = 64 * 1024;
/// Bodies go out in chunks of this size, which also sets the granularity of the rate cap.
const CHUNK: usize = 32 * 1024;
/// The Content-Length announced by `Fault::Endless { content_length: true }`: 1 TiB.
const ENDLESS_LEN: u64 = 1 << 40;

#[derive(Default)]
struct Request {
    method: String,
    target: String,
    http10: bool,
    keep_alive: bool,
    /// The `Range` and `If-Range` headers, if sent.
    range: Option<String>,
    if_range: Option<String>,
}

enum Incoming {
    Request(Request),
    /// The client closed, idled out, or the server is stopping: nothing to answer.
    Gone,
    /// Unparseable or oversized: answer with this status and close.
    Refuse(u16),
}

/// Serves connection number `id` (counted from 1 in accept order).
pub(super) fn serve_connection(tcp: TcpStream, id: usize, shared: &Shared) {
    // Without NODELAY a small keep-alive response can wait ~40 ms for a delayed ACK.
    let setup = tcp
        .set_nodelay(true)
        .and_then(|()| tcp.set_read_timeout(Some(TICK)))
        .and_then(|()| tcp.set_write_timeout(Some(TICK)))
        .and_then(|()| Stream::new(tcp, shared.tls.as_ref()));
    let mut stream = match setup {
        Ok(stream) => stream,
        Err(e) => {
            log::debug!("test server: cannot configure a connection: {e}");
            return;
        }
    };
    let mut buf = Vec::new();
    loop {
        let outcome = match read_request(&mut stream, &mut buf, shared) {
            Incoming::Request(req) => respond(&mut stream, &req, id, shared),
            Incoming::Gone => return,
            Incoming::Refuse(status) => {
                let req = Request::default(); // not keep-alive: the stream is out of sync
                send(
                    &mut stream,
                    &req,
                    &Reply::status(status),
                    Wan::default(),
                    shared,
                )
            }
        };
        match outcome {
            Ok(true) => {}
            Ok(false) => return stream.close(),
            Err(e) => {
                log::debug!("test server: connection ended: {e}");
                return;
            }
        }
    }
}

fn read_request(stream: &mut Stream, buf: &mut Vec<u8>, shared: &Shared) -> Incoming {
    let idle_since = Instant::now();
    loop {
        // Stray CRLFs between requests are allowed (RFC 9112 §2.2).
        let junk = buf
            .iter()
            .take_while(|b| matches!(b, b'\r' | b'\n'))
            .count();
        buf.drain(..junk);
        if let Some((head_len, total)) = find_head_end(buf) {
            if head_len > MAX_HEAD {
                return Incoming::Refuse(431);
            }
            let head: Vec<u8> = buf.drain(..total).collect();
            let Some((req, body_len)) = parse_head(&head[..head_len]) else {
                return Incoming::Refuse(400);
            };
            // Skip any request body so the next request is read from where it starts.
            let mut left = body_len;
            while left > 0 {
                let take = left.min(buf.len() as u64) as usize;
                buf.drain(..take);
                left -= take as u64;
                if left > 0 && !read_more(stream, buf, shared) {
                    return Incoming::Gone;
                }
            }
            return Incoming::Request(req);
        }
        if buf.len() > MAX_HEAD {
            return Incoming::Refuse(431);
        }
        if idle_since.elapsed() > IDLE_TIMEOUT || !read_more(stream, buf, shared) {
            return Incoming::Gone;
        }
    }
}

/// Waits up to one tick for more bytes; false once the client has closed or the server stops.
fn read_more(stream: &mut Stream, buf: &mut Vec<u8>, shared: &Shared) -> bool {
    let mut chunk = [0u8; 8192];
    match stream.read(&mut chunk) {
        Ok(0) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
        Err(e) if is_retryable(&e) => !shared.stopping(),
        Err(_) => false,
    }
}

fn is_retryable(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}

/// Where the head ends: (length without the blank line, length with it). Bare LF is tolerated.
fn find_head_end(buf: &[u8]) -> Option<(usize, usize)> {
    let crlf = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4));
    let lf = buf
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|i| (i, i + 2));
    [crlf, lf].into_iter().flatten().min()
}

/// Parses a request head; also returns the length of the body to skip. None means 400.
fn parse_head(head: &[u8]) -> Option<(Request, u64)> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let mut parts = lines.next()?.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    if parts.next().is_some() || !token(method) || target.is_empty() {
        return None;
    }
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => return None,
    };
    let (mut keep_alive, mut body_len) = (!http10, 0);
    let (mut range, mut if_range) = (None, None);
    for line in lines {
        let (name, value) = line.split_once(':')?;
        if !token(name) {
            return None;
        }
        let value = value.trim();
        if name.eq_ignore_ascii_case("connection") {
            for option in value.split(',').map(str::trim) {
                if option.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if option.eq_ignore_ascii_case("keep-alive") && http10 {
                    keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            body_len = value.parse().ok()?;
        } else if name.eq_ignore_ascii_case("range") {
            range = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("if-range") {
            if_range = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            keep_alive = false; // a chunked request body is not skipped, so nothing can follow it
        }
    }
    // Absolute-form targets (as sent to proxies) route by their path.
    let target = match target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => target,
    };
    Some((
        Request {
            method: method.to_string(),
            target: target.to_string(),
            http10,
            keep_alive,
            range,
            if_range,
        },
        body_len,
    ))
}

/// Answers one request; Ok(true) means the connection may carry another.
fn respond(stream: &mut Stream, req: &Request, id: usize, shared: &Shared) -> io::Result<bool> {
    if shared.is_stats(&req.target) {
        let json = shared.recorder.snapshot().to_json().into_bytes();
        let reply = Reply::image(json, "application/json");
        return send(stream, req, &reply, Wan::default(), shared);
    }
    // In flight until this function returns: the response written, or the connection lost.
    let in_flight = shared.recorder.begin();
    let mut reply = shared.take_reply(&req.target);
    if let Some(range) = &req.range {
        shared.saw_range(id, range);
        reply = ranged(reply, range, req.if_range.as_deref());
    }
    in_flight.answered(reply.status);
    let wan = *lock(&shared.wan);
    send(stream, req, &reply, wan, shared)
}

fn send(
    stream: &mut Stream,
    req: &Request,
    reply: &Reply,
    wan: Wan,
    shared: &Shared,
) -> io::Result<bool> {
    let extra = match reply.fault {
        Fault::Delay(d) => d,
        _ => Duration::ZERO,
    };
    if !pause(wan.ttfb + extra, shared) {
        return Ok(false);
    }
    let body = Arc::clone(&reply.body);
    let (announced, mut close) = match reply.fault {
        Fault::Reset => return Ok(false),
        Fault::Truncate(_) => (Some(body.len() as u64), true),
        Fault::Endless {
            content_length: true,
        } => (Some(ENDLESS_LEN), true),
        Fault::Endless {
            content_length: false,
        }
        | Fault::CloseDelimited => (None, true),
        _ => (Some(body.len() as u64), !req.keep_alive),
    };
    close |= reply
        .get_header("connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("close"));
    let no_body = matches!(reply.status, 100..=199 | 204 | 304);

    let mut head = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let (Some(len), None, false) = (announced, reply.get_header("content-length"), no_body) {
        head.push_str(&format!("Content-Length: {len}\r\n"));
    }
    if reply.get_header("connection").is_none() {
        match (close, req.http10) {
            (true, _) => head.push_str("Connection: close\r\n"),
            (false, true) => head.push_str("Connection: keep-alive\r\n"),
            (false, false) => {}
        }
    }
    head.push_str("\r\n");
    write_all(stream, head.as_bytes(), shared)?;
    if req.method == "HEAD" || no_body {
        return Ok(!close);
    }

    let mut pacer = Pacer {
        start: Instant::now(),
        sent: 0,
        rate: wan.bytes_per_sec.filter(|r| *r > 0),
    };
    match reply.fault {
        Fault::Truncate(n) => pacer.send(stream, &body[..n.min(body.len())], shared)?,
        Fault::Trickle(interval) => {
            for (i, byte) in body.iter().enumerate() {
                if i > 0 && !pause(interval, shared) {
                    return Ok(false);
                }
                write_all(stream, &[*byte], shared)?;
            }
        }
        Fault::Endless { .. } => {
            pacer.send(stream, &body, shared)?;
            let filler = [0u8; CHUNK];
            loop {
                pacer.send(stream, &filler, shared)?; // ends with an error once the client leaves
            }
        }
        _ => pacer.send(stream, &body, shared)?,
    }
    Ok(!close)
}

/// The answer to a request with `Range: range` (and `If-Range: if_range`), as the reply's
/// [`Ranges`] mode says.
fn ranged(reply: Reply, range: &str, if_range: Option<&str>) -> Reply {
    let len = reply.body.len() as u64;
    let validators = [reply.get_header("etag"), reply.get_header("last-modified")];
    match reply.ranges {
        Ranges::Off | Ranges::Ignore => return reply,
        _ if reply.status != 200 || !matches!(reply.fault, Fault::None) => return reply,
        Ranges::NoIfRange => {}
        _ if if_range.is_some_and(|v| !validators.contains(&Some(v))) => return reply,
        _ => {}
    }
    let Some((first, last)) = parse_range(range, len) else {
        return reply; // not one byte range: ignored, as RFC 9110 allows
    };
    if first > last {
        let mut refused = Reply::status(416).header("Content-Range", &format!("bytes */{len}"));
        refused.ranges = Ranges::Off;
        return refused;
    }
    let (first, last) = match reply.ranges {
        Ranges::WrongContentRange => ((first + 1).min(len - 1), (last + 1).min(len - 1)),
        _ => (first, last),
    };
    let body: Arc<[u8]> = reply.body[first as usize..=last as usize].into();
    let mut part = Reply {
        status: 206,
        body,
        ..reply.clone()
    }
    .header("Content-Range", &format!("bytes {first}-{last}/{len}"));
    if let Ranges::TruncateParts(n) = reply.ranges {
        part.fault = Fault::Truncate(n);
    }
    part
}

/// One byte range of a body of `len` bytes, `(first, last)` inclusive, or `first > last` if it
/// cannot be satisfied; None for anything else (a list, another unit, garbage).
fn parse_range(range: &str, len: u64) -> Option<(u64, u64)> {
    let spec = range.trim().strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        return Some(if n == 0 || len == 0 {
            (1, 0)
        } else {
            (len.saturating_sub(n), len - 1)
        });
    }
    let first: u64 = a.parse().ok()?;
    let last = if b.is_empty() {
        len.saturating_sub(1)
    } else {
        let last: u64 = b.parse().ok()?;
        if last < first {
            return None; // invalid: ignored
        }
        last.min(len.saturating_sub(1))
    };
    Some(if first >= len { (1, 0) } else { (first, last) })
}

/// Keeps a body to a byte rate by sleeping after each chunk until the schedule catches up.
struct Pacer {
    start: Instant,
    sent: u64,
    rate: Option<u64>,
}

impl Pacer {
    fn send(&mut self, stream: &mut Stream, data: &[u8], shared: &Shared) -> io::Result<()> {
        for chunk in data.chunks(CHUNK) {
            write_all(stream, chunk, shared)?;
            self.sent += chunk.len() as u64;
            if let Some(rate) = self.rate {
                let due = Duration::from_secs_f64(self.sent as f64 / rate as f64);
                if !pause(due.saturating_sub(self.start.elapsed()), shared) {
                    return Err(stopping());
                }
            }
        }
        Ok(())
    }
}

/// Like `Write::write_all`, but gives up when the server stops, even if the client has stopped
/// reading (the socket's write timeout makes each attempt return within a tick).
fn write_all(stream: &mut Stream, mut data: &[u8], shared: &Shared) -> io::Result<()> {
    while !data.is_empty() {
        if shared.stopping() {
            return Err(stopping());
        }
        match stream.write(data) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if is_retryable(&e) => {}
            Err(e) => return Err(e),
        }
    }
    // TLS keeps records in user space until flushed; plain TCP has nothing to flush.
    while let Err(e) = stream.flush() {
        if !is_retryable(&e) {
            return Err(e);
        }
        if shared.stopping() {
            return Err(stopping());
        }
    }
    Ok(())
}

fn stopping() -> io::Error {
    io::Error::other("test server is shutting down")
}

/// Sleeps for `duration` in ticks; false if the server began stopping meanwhile.
fn pause(duration: Duration, shared: &Shared) -> bool {
    let end = Instant::now() + duration;
    loop {
        if shared.stopping() {
            return false;
        }
        let now = Instant::now();
        if now >= end {
            return true;
        }
        thread::sleep((end - now).min(TICK));
    }
}
