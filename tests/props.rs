//! Property tests for the functions that judge untrusted input: URL validation, the address
//! classifier, `jobctl import`'s line reading (through the real binary), the image sniffer and
//! the image validators.
//!
//! A separate test binary from `tests/e2e`, so that `cargo test --test props` runs just these.
//! Each property says what must hold for *every* input; proptest shrinks a failure to a small
//! case. The fuzz targets in `fuzz/` (scripts/fuzz.sh) check the same properties for hours; an
//! input either of them finds is pinned here as a plain `#[test]` named after the bug.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::process::Command;

use jobd::guard::{AllowList, Guard, classify};
use jobd::joburl::{self, MAX_URL_LEN};
use jobd::sniff;
use jobd::validate::{Image, Limits, Problem, validate_bytes};
use jobd_testkit::images;
use proptest::prelude::*;
use url::Host;

/// Cases per property: cheap in-process properties run many, since they cost microseconds each.
/// Failures are not persisted to a regressions file: proptest prints the shrunk input, which is
/// then pinned as a plain `#[test]`.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies shared by several properties.

/// A DNS label the WHATWG parser keeps as it is: lowercase, starting with a letter, never an
/// `xn--` punycode label (those are decoded and may be refused).
fn label() -> impl Strategy<Value = String> {
    "[a-z]([a-z0-9-]{0,8}[a-z0-9])?".prop_filter("not punycode", |l| !l.starts_with("xn--"))
}

/// A host as written in a URL, and the host the parser must report for it.
fn host() -> impl Strategy<Value = (String, Host<String>)> {
    prop_oneof![
        (prop::collection::vec(label(), 1..4), "[a-z]{2,6}").prop_map(|(labels, tld)| {
            let name = format!("{}.{tld}", labels.join("."));
            (name.clone(), Host::Domain(name))
        }),
        any::<u32>().prop_map(|v| {
            let ip = Ipv4Addr::from_bits(v);
            (ip.to_string(), Host::Ipv4(ip))
        }),
        any::<u128>().prop_map(|v| {
            let ip = Ipv6Addr::from_bits(v);
            (format!("[{ip}]"), Host::Ipv6(ip))
        }),
    ]
}

/// One path segment that needs no escaping and is not a dot segment.
fn segment() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._~-]{0,10}".prop_filter("no dot segments", |s| s != "." && s != "..")
}

/// A valid `http(s)://host[:port]/path[?query]` with the parts the parser must report.
#[derive(Debug, Clone)]
struct ValidUrl {
    text: String,
    scheme: &'static str,
    host: Host<String>,
    port: u16,
    path: String,
}

fn valid_url() -> impl Strategy<Value = ValidUrl> {
    (
        prop::sample::select(vec!["http", "https"]),
        host(),
        prop::option::of(1u16..=65535),
        prop::collection::vec(segment(), 0..4),
        prop::option::of("[a-z0-9=&]{0,10}"),
    )
        .prop_map(|(scheme, (host_text, host), port, segments, query)| {
            let port_text = port.map_or(String::new(), |p| format!(":{p}"));
            let path = format!("/{}", segments.join("/"));
            let query = query.map_or(String::new(), |q| format!("?{q}"));
            ValidUrl {
                text: format!("{scheme}://{host_text}{port_text}{path}{query}"),
                scheme,
                host,
                port: port.unwrap_or(if scheme == "http" { 80 } else { 443 }),
                path,
            }
        })
}

/// Strings a URL parser finds interesting: URL punctuation, white space of every kind, control
/// characters, non-ASCII letters and emoji, often behind a scheme so the parser goes deep.
fn urlish() -> impl Strategy<Value = String> {
    let body = "[a-zA-Z0-9:/?#@!$&'()*+,;=%.~_\\[\\]\\\\ \t\r\n\u{0}\u{7f}\u{85}\u{a0}\u{200b}\u{3000}\u{fffd}é中😀-]{0,80}";
    prop_oneof![
        any::<String>(),
        body,
        (
            prop::sample::select(vec![
                "http://", "https://", "HTTP://", "ftp://", "http:", ""
            ]),
            body
        )
            .prop_map(|(scheme, rest)| format!("{scheme}{rest}")),
        // Around the length limit, and far beyond it.
        (MAX_URL_LEN - 40..MAX_URL_LEN + 40)
            .prop_map(|n| format!("http://example.com/{}", "a".repeat(n - 19))),
        (0usize..200_000).prop_map(|n| format!("https://{}", "é".repeat(n / 2))),
    ]
}

/// IPv4 ranges every address of which must be blocked, as (network, prefix length).
const MUST_BLOCK_V4: &[(u32, u8)] = &[
    (0x7f00_0000, 8),  // 127.0.0.0/8
    (0x0a00_0000, 8),  // 10.0.0.0/8
    (0xc0a8_0000, 16), // 192.168.0.0/16
    (0xa9fe_0000, 16), // 169.254.0.0/16
    (0x6440_0000, 10), // 100.64.0.0/10
];

/// More special-purpose IPv4 ranges, so that "blocked" inputs are common in the embedding tests.
const OTHER_SPECIAL_V4: &[(u32, u8)] = &[
    (0x0000_0000, 8),  // this network
    (0xac10_0000, 12), // 172.16.0.0/12
    (0xc000_0000, 24), // 192.0.0.0/24
    (0xc000_0200, 24), // TEST-NET-1
    (0xc612_0000, 15), // benchmarking
    (0xe000_0000, 4),  // multicast
    (0xf000_0000, 4),  // reserved and broadcast
];

/// A random address inside one of `ranges`.
fn v4_in(ranges: &'static [(u32, u8)]) -> impl Strategy<Value = Ipv4Addr> {
    (prop::sample::select(ranges), any::<u32>()).prop_map(|((net, len), host)| {
        let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
        Ipv4Addr::from_bits(net | (host & !mask))
    })
}

/// Any IPv4 address, with special-purpose ones over-represented.
fn any_v4() -> impl Strategy<Value = Ipv4Addr> {
    prop_oneof![
        any::<u32>().prop_map(Ipv4Addr::from_bits),
        v4_in(MUST_BLOCK_V4),
        v4_in(OTHER_SPECIAL_V4),
    ]
}

/// Any IPv6 address, with the prefixes the classifier names over-represented.
fn any_v6() -> impl Strategy<Value = Ipv6Addr> {
    let prefixes: Vec<(u128, u8)> = vec![
        (0, 96),                      // IPv4-compatible and ::, ::1
        (0xffff_0000_0000, 96),       // IPv4-mapped
        (0x0064_ff9b << 96, 96),      // NAT64
        (0x0064_ff9b_0001 << 80, 48), // local-use NAT64
        (0x0100 << 112, 64),          // discard
        (0x2001 << 112, 32),          // Teredo
        (0x2001 << 112, 23),          // IETF assignments
        (0x2001_0db8 << 96, 32),      // documentation
        (0x2002 << 112, 16),          // 6to4
        (0xfe80 << 112, 10),          // link-local
        (0xfc00 << 112, 7),           // unique-local
        (0xff00 << 112, 8),           // multicast
        (0x2000 << 112, 3),           // global unicast
    ];
    prop_oneof![
        any::<u128>().prop_map(Ipv6Addr::from_bits),
        (prop::sample::select(prefixes), any::<u128>()).prop_map(|((net, len), host)| {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            Ipv6Addr::from_bits(net | (host & !mask))
        }),
    ]
}

fn any_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![any_v4().prop_map(IpAddr::V4), any_v6().prop_map(IpAddr::V6)]
}

fn mapped(v: Ipv4Addr) -> IpAddr {
    IpAddr::V6(v.to_ipv6_mapped())
}

fn nat64(v: Ipv4Addr) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from_bits(
        (0x0064_ff9b << 96) | u128::from(v.to_bits()),
    ))
}

/// 6to4 `2002:vvvv:vvvv::` with `rest` in the low 80 bits (subnet and interface id).
fn sixtofour(v: Ipv4Addr, rest: u128) -> IpAddr {
    let low80 = rest & ((1u128 << 80) - 1);
    IpAddr::V6(Ipv6Addr::from_bits(
        (0x2002 << 112) | (u128::from(v.to_bits()) << 80) | low80,
    ))
}

// ---------------------------------------------------------------------------------------------
// 1. URL validation.

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn joburl_never_panics_and_accepts_only_fetchable_urls(raw in urlish()) {
        match joburl::parse(&raw) {
            Ok(url) => {
                prop_assert!(matches!(url.scheme(), "http" | "https"), "{url}");
                prop_assert!(url.host().is_some(), "{url}");
                prop_assert!(raw.len() <= MAX_URL_LEN);
                let bad = |c: char| c.is_control() || c.is_whitespace();
                prop_assert!(!raw.contains(bad), "{raw:?}");
                prop_assert!(!url.as_str().contains(bad), "{url}");
            }
            Err(e) => {
                prop_assert!(!e.is_empty());
                prop_assert!(!e.contains(|c: char| c.is_control()), "{e:?}");
            }
        }
    }

    #[test]
    fn joburl_accepts_generated_http_urls(u in valid_url()) {
        let url = joburl::parse(&u.text).map_err(|e| TestCaseError::fail(format!("{u:?}: {e}")))?;
        prop_assert_eq!(url.scheme(), u.scheme);
        prop_assert_eq!(url.host().map(|h| h.to_owned()), Some(u.host));
        prop_assert_eq!(url.port_or_known_default(), Some(u.port));
        prop_assert_eq!(url.path(), u.path);
    }

    #[test]
    fn joburl_length_limit_is_exact(n in MAX_URL_LEN - 100..MAX_URL_LEN + 100) {
        let raw = format!("https://example.com/{}", "x".repeat(n - 20));
        prop_assert_eq!(raw.len(), n);
        prop_assert_eq!(joburl::parse(&raw).is_ok(), n <= MAX_URL_LEN);
    }
}

// ---------------------------------------------------------------------------------------------
// 2. The address classifier and the guard.

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn classify_and_check_never_panic(ip in any_ip(), entries in prop::collection::vec(cidr(), 0..4)) {
        if let Some(reason) = classify(ip) {
            prop_assert!(!reason.is_empty());
        }
        let allow = AllowList::parse(&entries).map_err(TestCaseError::fail)?;
        let listed = allow.contains(ip);
        for allow_private in [false, true] {
            let verdict = Guard::new(allow.clone(), allow_private).check(ip);
            let expect_ok = allow_private || listed || classify(ip).is_none();
            prop_assert_eq!(verdict.is_ok(), expect_ok, "{} {:?}", ip, verdict);
        }
    }

    #[test]
    fn embedded_ipv4_forms_are_blocked_when_the_ipv4_is(v in any_v4(), rest in any::<u128>()) {
        let blocked = classify(IpAddr::V4(v)).is_some();
        // Mapped and NAT64 dial exactly v: the verdict must be the same both ways.
        prop_assert_eq!(classify(mapped(v)).is_some(), blocked, "::ffff:{}", v);
        prop_assert_eq!(classify(nat64(v)).is_some(), blocked, "64:ff9b::{}", v);
        // 6to4 dials v through a relay, whatever the low 80 bits.
        prop_assert_eq!(classify(sixtofour(v, 0)).is_some(), blocked, "6to4 {}", v);
        prop_assert_eq!(classify(sixtofour(v, rest)).is_some(), blocked, "6to4 {} {:x}", v, rest);
    }

    #[test]
    fn private_loopback_link_local_and_cgnat_are_always_blocked(v in v4_in(MUST_BLOCK_V4)) {
        prop_assert!(classify(IpAddr::V4(v)).is_some(), "{}", v);
        let guard = Guard::new(AllowList::default(), false);
        prop_assert!(guard.check(IpAddr::V4(v)).is_err(), "{}", v);
        prop_assert!(guard.check(mapped(v)).is_err(), "::ffff:{}", v);
    }

    #[test]
    fn ipv6_outside_global_unicast_is_blocked_unless_it_embeds_public_ipv4(v in any_v6()) {
        let bits = v.to_bits();
        let global_unicast = bits >> 125 == 0b001;
        let embeds_v4 = bits >> 32 == 0xffff || bits >> 32 == 0x0064_ff9b << 64;
        if !global_unicast && !embeds_v4 {
            prop_assert!(classify(IpAddr::V6(v)).is_some(), "{}", v);
        }
    }

    #[test]
    fn allow_private_allows_everything(ip in any_ip()) {
        prop_assert_eq!(Guard::new(AllowList::default(), true).check(ip), Ok(()));
    }

    #[test]
    fn a_slash_32_allows_exactly_its_address(
        v in any_v4(),
        others in prop::collection::vec(any_ip(), 1..16),
    ) {
        let allow = AllowList::parse(&[format!("{v}/32")]).map_err(TestCaseError::fail)?;
        let guard = Guard::new(allow, false);
        prop_assert_eq!(guard.check(IpAddr::V4(v)), Ok(()));
        // Every other address, the IPv6 forms embedding v included, is judged as if unlisted.
        let embedded = [mapped(v), nat64(v), sixtofour(v, 0)];
        for other in others.into_iter().chain(embedded) {
            if other == IpAddr::V4(v) {
                continue;
            }
            prop_assert_eq!(guard.check(other).is_ok(), classify(other).is_none(), "{}", other);
        }
    }

    #[test]
    fn a_cidr_contains_exactly_the_addresses_under_its_prefix(
        (entry, net, len) in cidr_parts(),
        probe in any_ip(),
    ) {
        let allow = AllowList::parse(std::slice::from_ref(&entry)).map_err(TestCaseError::fail)?;
        prop_assert!(allow.contains(net), "{} in {}", net, entry);
        let inside = match (net, probe) {
            (IpAddr::V4(n), IpAddr::V4(p)) => {
                (n.to_bits() ^ p.to_bits()).checked_shr(32 - u32::from(len)).unwrap_or(0) == 0
            }
            (IpAddr::V6(n), IpAddr::V6(p)) => {
                (n.to_bits() ^ p.to_bits()).checked_shr(128 - u32::from(len)).unwrap_or(0) == 0
            }
            _ => false,
        };
        prop_assert_eq!(allow.contains(probe), inside, "{} in {}", probe, entry);
    }
}

/// A well-formed CIDR (host bits clear), its network address and prefix length.
fn cidr_parts() -> impl Strategy<Value = (String, IpAddr, u8)> {
    prop_oneof![
        (any_v4(), 0u8..=32).prop_map(|(ip, len)| {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            let net = IpAddr::V4(Ipv4Addr::from_bits(ip.to_bits() & mask));
            (format!("{net}/{len}"), net, len)
        }),
        (any_v6(), 0u8..=128).prop_map(|(ip, len)| {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            let net = IpAddr::V6(Ipv6Addr::from_bits(ip.to_bits() & mask));
            (format!("{net}/{len}"), net, len)
        }),
    ]
}

fn cidr() -> impl Strategy<Value = String> {
    cidr_parts().prop_map(|(entry, _, _)| entry)
}

// ---------------------------------------------------------------------------------------------
// 3. `jobctl import`, through the real binary.

/// One line of an import file, without its line ending.
fn import_line() -> impl Strategy<Value = Vec<u8>> {
    let pad = || "[ \t]{0,2}";
    prop_oneof![
        4 => (pad(), valid_url(), pad()).prop_map(|(a, u, b)| format!("{a}{}{b}", u.text).into_bytes()),
        2 => urlish()
            .prop_map(|s| s.replace('\n', " "))
            .prop_filter("not a CSV or TSV header", |s| !names_url_column(s))
            .prop_map(String::into_bytes),
        1 => "[ \t]{0,3}".prop_map(String::into_bytes),
        1 => (pad(), ".{0,30}").prop_map(|(a, c)| format!("{a}# {c}").replace('\n', " ").into_bytes()),
        // Around the 8192-byte limit, and far past it.
        1 => (8150usize..8200).prop_map(|n| format!("http://example.com/{}", "a".repeat(n)).into_bytes()),
        1 => (9000usize..100_000).prop_map(|n| format!("http://example.com/{}", "a".repeat(n)).into_bytes()),
        // Not UTF-8.
        1 => (".{0,10}", prop::sample::select(vec![0xffu8, 0xc3, 0x80, 0xfe])).prop_map(|(s, b)| {
            let mut line = format!("http://example.com/{}", s.replace('\n', "")).into_bytes();
            line.push(b);
            line
        }),
    ]
}

/// True for a line that import's format detection would take for a CSV or TSV header (a field
/// named "url"). These properties are about plain lines, so the generators avoid such lines.
fn names_url_column(line: &str) -> bool {
    line.split([',', '\t'])
        .any(|field| field.trim().trim_matches('"').eq_ignore_ascii_case("url"))
}

/// The counts in import's summary line, `added N, [skipped S, ]rejected M`: (N, S, M).
fn summary_counts(stdout: &str) -> Option<(u64, u64, u64)> {
    let count = |word: &str| -> Option<u64> {
        let at = stdout.find(word)? + word.len();
        let digits: String = stdout[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    let skipped = if stdout.contains("skipped ") {
        count("skipped ")?
    } else {
        0
    };
    Some((count("added ")?, skipped, count("rejected ")?))
}

/// A whole import file: lines ending in LF or CRLF, the last one maybe unterminated.
fn import_file() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec((import_line(), any::<bool>()), 0..40),
        any::<bool>(),
    )
        .prop_map(|(lines, last_terminated)| {
            let mut file = Vec::new();
            let n = lines.len();
            for (i, (line, crlf)) in lines.into_iter().enumerate() {
                file.extend(line);
                if i + 1 < n || last_terminated {
                    file.extend(if crlf { &b"\r\n"[..] } else { b"\n" });
                }
            }
            file
        })
}

/// What import must do with a file: the URLs it adds, in order, and the numbers of the lines it
/// rejects. A line is the bytes before its `\n`. Lines longer than MAX_URL_LEN + 256 are
/// rejected unread; in shorter ones the URL check applies its own limit, after trimming.
fn expected_import(file: &[u8]) -> (Vec<String>, Vec<usize>) {
    let mut pieces: Vec<&[u8]> = file.split(|&b| b == b'\n').collect();
    if pieces.last().is_some_and(|p| p.is_empty()) {
        pieces.pop(); // after the final line ending there is no line
    }
    let (mut added, mut rejected) = (Vec::new(), Vec::new());
    for (i, raw) in pieces.into_iter().enumerate() {
        let number = i + 1;
        if raw.len() > MAX_URL_LEN + 256 {
            rejected.push(number);
            continue;
        }
        let Ok(text) = std::str::from_utf8(raw) else {
            rejected.push(number);
            continue;
        };
        let text = text.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        match joburl::parse(text) {
            Ok(_) => added.push(text.to_string()),
            Err(_) => rejected.push(number),
        }
    }
    (added, rejected)
}

/// Runs `jobctl import` on `file` in a fresh directory; returns (exit code, stdout, stderr, urls
/// in the database in id order).
fn run_import(file: &[u8]) -> (Option<i32>, String, String, Vec<String>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("daemon.toml");
    std::fs::write(&config, "database = \"jobd.db\"\n").expect("write config");
    let input = dir.path().join("urls.txt");
    std::fs::write(&input, file).expect("write import file");
    let out = Command::new(env!("CARGO_BIN_EXE_jobctl"))
        .arg("--config")
        .arg(&config)
        .arg("import")
        .arg(&input)
        .output()
        .expect("run jobctl");
    let urls = jobs_in(&dir.path().join("jobd.db"));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        urls,
    )
}

fn jobs_in(db: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).expect("open the database");
    let mut stmt = conn
        .prepare("SELECT url FROM jobs ORDER BY id")
        .expect("query jobs");
    stmt.query_map([], |r| r.get(0))
        .expect("read jobs")
        .collect::<Result<_, _>>()
        .expect("read jobs")
}

proptest! {
    // Each case starts the real binary: a few cases, each a file of up to 40 varied lines.
    #![proptest_config(config(16))]

    #[test]
    fn import_adds_valid_lines_and_counts_the_rest(file in import_file()) {
        let (added, rejected) = expected_import(&file);
        let (code, stdout, stderr, urls) = run_import(&file);
        let context = format!("stdout: {stdout}\nstderr: {stderr}");
        prop_assert_eq!(code, Some(if rejected.is_empty() { 0 } else { 2 }), "{}", context);
        prop_assert_eq!(stdout.lines().count(), 1, "{}", context);
        let counts = (added.len() as u64, 0, rejected.len() as u64);
        prop_assert_eq!(summary_counts(&stdout), Some(counts), "{}", context);
        prop_assert_eq!(&urls, &added, "{}", context);
        // The first 20 rejects are listed with their line numbers, the rest only counted.
        let listed: Vec<usize> = stderr
            .lines()
            .filter_map(|l| l.strip_prefix("line ")?.split_once(':')?.0.parse().ok())
            .collect();
        let want: Vec<usize> = rejected.iter().copied().take(20).collect();
        prop_assert_eq!(listed, want, "{}", context);
        if rejected.len() > 20 {
            let more = format!("... and {} more rejected lines", rejected.len() - 20);
            prop_assert!(stderr.contains(&more), "{}", context);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 4. The image sniffer.

/// Magic numbers of the accepted formats, so that the dimension parsers see arbitrary headers.
const SIGNATURES: &[&[u8]] = &[
    b"\x89PNG\r\n\x1a\n",
    b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR",
    b"\xff\xd8\xff",
    b"\xff\xd8\xff\xe0\0\x10JFIF\0",
    b"GIF87a",
    b"GIF89a",
    b"RIFF\0\0\0\0WEBPVP8 ",
    b"RIFF\0\0\0\0WEBPVP8L",
    b"RIFF\0\0\0\0WEBPVP8X",
    b"BM",
    b"II*\0",
    b"MM\0*",
    b"\0\0\x01\0",
    b"\0\0\0\x1cftypavif",
    b"\0\0\0\x18ftypheic",
    b"\xff\x0a",
    b"\0\0\0\x0cJXL \x0d\x0a\x87\x0a",
];

fn check_sniff_total(bytes: &[u8]) -> Result<(), TestCaseError> {
    let format = match sniff::sniff(bytes) {
        Ok(format) => format,
        Err(e) => {
            prop_assert!(e.starts_with("not an image: "), "{e}");
            return Ok(());
        }
    };
    prop_assert!(format.mime.starts_with("image/"), "{:?}", format);
    // Whatever sniff accepts, its validator judges without panicking, in the documented words.
    match validate_bytes(format.mime, bytes, ROOMY) {
        Ok(image) => prop_assert!(image.width > 0 && image.height > 0),
        Err(e) => {
            let text = e.to_string();
            prop_assert!(
                ["truncated: ", "invalid image: ", "too large: "]
                    .iter()
                    .any(|p| text.starts_with(p)),
                "{text}"
            );
        }
    }
    Ok(())
}

/// A generated image, its MIME type and its dimensions. JPEG and WebP carry at least
/// `jpeg_min` and `webp_min` bytes: 0 allows a JPEG with no scan data or a WebP whose VP8
/// partition is cut off (headers that parse, files that are not whole).
fn generated_image(
    jpeg_min: usize,
    webp_min: usize,
) -> impl Strategy<Value = (Vec<u8>, &'static str, (u32, u32))> {
    let small = || 1u32..=40;
    prop_oneof![
        (small(), small(), any::<u64>()).prop_map(|(w, h, s)| (
            images::png(w, h, s),
            "image/png",
            (w, h)
        )),
        // libjpeg's (and the validator's) largest side is 65500, not the field's 65535.
        (
            1u32..=65500,
            1u32..=65500,
            jpeg_min..jpeg_min + 4096,
            any::<u64>()
        )
            .prop_map(|(w, h, len, s)| (images::jpeg(w, h, len, s), "image/jpeg", (w, h))),
        (
            1u32..=16383,
            1u32..=16383,
            webp_min..webp_min + 4096,
            any::<u64>()
        )
            .prop_map(|(w, h, len, s)| (images::webp(w, h, len, s), "image/webp", (w, h))),
        (small(), small(), any::<u64>()).prop_map(|(w, h, s)| (
            images::gif(w, h, s),
            "image/gif",
            (w, h)
        )),
    ]
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn sniff_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_sniff_total(&bytes)?;
    }

    #[test]
    fn sniff_never_panics_behind_an_image_signature(
        signature in prop::sample::select(SIGNATURES),
        rest in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut bytes = signature.to_vec();
        bytes.extend(rest);
        check_sniff_total(&bytes)?;
    }

    #[test]
    fn sniff_never_panics_on_damaged_images(
        (image, _, _) in generated_image(0, 0),
        damage in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = image;
        for (at, byte) in damage {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        check_sniff_total(&bytes)?;
    }

    #[test]
    fn generated_images_are_sniffed_as_their_format((image, mime, _) in generated_image(0, 0)) {
        prop_assert_eq!(sniff::sniff(&image).map(|f| f.mime), Ok(mime));
    }
}

// ---------------------------------------------------------------------------------------------
// 5. The image validators.

/// Limits that admit every size the generators make (JPEG up to 65500x65500): the property is
/// about whole files and their prefixes, not about bombs.
const ROOMY: Limits = Limits {
    max_pixels: 1 << 32,
    max_frames: 1000,
};

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn a_valid_file_validates_and_no_strict_prefix_of_it_does(
        (image, mime, (width, height)) in generated_image(512, 64),
        at in any::<prop::sample::Index>(),
        near_end in any::<bool>(),
    ) {
        let whole = validate_bytes(mime, &image, ROOMY);
        prop_assert_eq!(whole, Ok(Image { width, height, frames: 1 }), "{}", mime);
        // Anywhere, or within the last 16 bytes, where the end markers are.
        let len = image.len();
        let cut = if near_end { len - 1 - at.index(len.min(16)) } else { at.index(len) };
        let got = validate_bytes(mime, &image[..cut], ROOMY);
        prop_assert!(
            matches!(&got, Err(e) if matches!(e.problem, Problem::Truncated | Problem::Corrupt)),
            "{} of {} bytes cut at {}: {:?}", mime, len, cut, got
        );
    }
}
