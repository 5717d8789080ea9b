//! The address guard: SSRF protection that decides which IP addresses the HTTP client may dial.
//!
//! Job URLs come from users, and a URL can name (or resolve to, or redirect to) the loopback
//! interface, the private network, or the cloud metadata service at 169.254.169.254. The guard
//! refuses every address that is not public unicast unless the operator lists it in
//! `[fetch] allow_ips` (or sets `allow_private`, which turns the guard off).
//!
//! The check sits in the ureq *resolver* ([`GuardedResolver`]) rather than in URL validation:
//! - the resolver sees every request ureq makes, including each redirect hop, and literal IPs
//!   (`http://127.0.0.1/`, `http://[::1]/`) as well as names;
//! - the connector dials exactly the addresses the resolver returns, so what we check is what is
//!   dialled. There is no second lookup for a DNS-rebinding server to answer differently.
//!
//! Architecture invariant: this module only *judges* addresses; it never opens a socket.
//!
//! Caveat for the HTTP client: with a proxy configured, ureq lets the proxy resolve the target and
//! never asks the resolver about it, so the guard is bypassed. The fetch agent must disable proxies.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

use crate::lock;

/// One CIDR block, kept as integers so matching is a shift and a compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Net {
    V4 { addr: u32, len: u8 },
    V6 { addr: u128, len: u8 },
}

impl Net {
    fn contains(self, ip: IpAddr) -> bool {
        // Families never cross: 127.0.0.1/32 does not match ::ffff:127.0.0.1 (see AllowList).
        match (self, ip) {
            (Net::V4 { addr, len }, IpAddr::V4(ip)) => in_v4(ip, addr, len),
            (Net::V6 { addr, len }, IpAddr::V6(ip)) => in_v6(ip, addr, len),
            _ => false,
        }
    }
}

/// True when `ip` lies in `net/len`.
fn in_v4(ip: Ipv4Addr, net: u32, len: u8) -> bool {
    // checked_shr: a /0 shifts by 32, which would overflow; /0 matches everything.
    (ip.to_bits() ^ net)
        .checked_shr(32 - u32::from(len))
        .unwrap_or(0)
        == 0
}

/// True when `ip` lies in `net/len`.
fn in_v6(ip: Ipv6Addr, net: u128, len: u8) -> bool {
    (ip.to_bits() ^ net)
        .checked_shr(128 - u32::from(len))
        .unwrap_or(0)
        == 0
}

/// A parsed CIDR list, e.g. from config `allow_ips = ["127.0.0.1/32", "::1/128"]`.
/// A bare address means /32 or /128.
///
/// Only the address as dialled is looked up: an IPv4 entry does not admit the IPv6 forms that
/// embed it (`::ffff:127.0.0.1`, `64:ff9b::7f00:1`, ...). List those forms too if you need them.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    nets: Vec<Net>,
}

impl AllowList {
    /// Parses config entries. Errors name the bad entry: `not a CIDR: "foo"`,
    /// `prefix 33 too long for IPv4 in "1.2.3.4/33"`.
    pub fn parse(entries: &[String]) -> Result<AllowList, String> {
        let nets = entries
            .iter()
            .map(|e| parse_cidr(e))
            .collect::<Result<_, _>>()?;
        Ok(AllowList { nets })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|net| net.contains(ip))
    }
}

fn parse_cidr(entry: &str) -> Result<Net, String> {
    let not_cidr = || format!("not a CIDR: {entry:?}");
    let (addr, prefix) = match entry.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (entry, None),
    };
    let ip: IpAddr = addr.parse().map_err(|_| not_cidr())?;
    let max: u8 = if ip.is_ipv4() { 32 } else { 128 };
    let len = match prefix {
        None => max,
        // Digits only: u8's parser would also take "+8", and a prefix is never written that way.
        Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
            p.parse::<u8>().map_err(|_| not_cidr())?
        }
        Some(_) => return Err(not_cidr()),
    };
    if len > max {
        let family = if ip.is_ipv4() { "IPv4" } else { "IPv6" };
        return Err(format!("prefix {len} too long for {family} in {entry:?}"));
    }
    let net = match ip {
        IpAddr::V4(ip) => Net::V4 {
            addr: ip.to_bits(),
            len,
        },
        IpAddr::V6(ip) => Net::V6 {
            addr: ip.to_bits(),
            len,
        },
    };
    // "10.0.0.1/8" is ambiguous (did they mean 10.0.0.1/32 or 10.0.0.0/8?). In an allow list,
    // guessing wide is the dangerous direction, so ask instead.
    let network = match net {
        Net::V4 { addr, len } => IpAddr::V4(Ipv4Addr::from_bits(mask_u32(addr, len))),
        Net::V6 { addr, len } => IpAddr::V6(Ipv6Addr::from_bits(mask_u128(addr, len))),
    };
    if network != ip {
        return Err(format!(
            "host bits set in {entry:?} (write {network}/{len} for the network, \
             or {ip} for the single address)"
        ));
    }
    Ok(net)
}

fn mask_u32(addr: u32, len: u8) -> u32 {
    addr & u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

fn mask_u128(addr: u128, len: u8) -> u128 {
    addr & u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

/// Why an address is not public, or `None` when it is a public unicast address.
///
/// Reasons are short lowercase words ("loopback", "private", "link-local", ...). For IPv6 forms
/// that carry an IPv4 address the reason names the form and the embedded address's reason, e.g.
/// "IPv4-mapped loopback" or "NAT64 private". An owned `String` because of that composition.
pub fn classify(ip: IpAddr) -> Option<String> {
    match ip {
        IpAddr::V4(ip) => classify_v4(ip).map(str::to_owned),
        IpAddr::V6(ip) => classify_v6(ip),
    }
}

/// IPv4 special-purpose ranges (IANA's special-purpose address registry, RFC 6890 and updates).
/// The first match wins, which matters where ranges nest (0.0.0.0 in 0/8, 255.255.255.255 in 240/4).
fn classify_v4(ip: Ipv4Addr) -> Option<&'static str> {
    const RANGES: &[(u32, u8, &str)] = &[
        (0x0000_0000, 32, "unspecified"),        // 0.0.0.0
        (0x0000_0000, 8, "this network"),        // 0.0.0.0/8: Linux dials 0.x as local
        (0x0a00_0000, 8, "private"),             // 10.0.0.0/8
        (0x6440_0000, 10, "shared (CGNAT)"),     // 100.64.0.0/10
        (0x7f00_0000, 8, "loopback"),            // 127.0.0.0/8
        (0xa9fe_0000, 16, "link-local"),         // 169.254.0.0/16, incl. the metadata service
        (0xac10_0000, 12, "private"),            // 172.16.0.0/12
        (0xc000_0000, 24, "reserved"),           // 192.0.0.0/24: IETF protocol assignments
        (0xc000_0200, 24, "documentation"),      // 192.0.2.0/24: TEST-NET-1
        (0xc058_6300, 24, "6to4 relay anycast"), // 192.88.99.0/24 (deprecated)
        (0xc0a8_0000, 16, "private"),            // 192.168.0.0/16
        (0xc612_0000, 15, "benchmarking"),       // 198.18.0.0/15
        (0xc633_6400, 24, "documentation"),      // 198.51.100.0/24: TEST-NET-2
        (0xcb00_7100, 24, "documentation"),      // 203.0.113.0/24: TEST-NET-3
        (0xe000_0000, 4, "multicast"),           // 224.0.0.0/4
        (0xffff_ffff, 32, "broadcast"),          // 255.255.255.255
        (0xf000_0000, 4, "reserved"),            // 240.0.0.0/4
    ];
    RANGES
        .iter()
        .find(|&&(net, len, _)| in_v4(ip, net, len))
        .map(|&(_, _, reason)| reason)
}

/// IPv6: the special ranges, then the forms that embed an IPv4 address, then a default-deny for
/// everything outside 2000::/3 (the only block IANA allocates for global unicast). Denying by
/// default means a range we forgot to name is blocked, not allowed.
fn classify_v6(ip: Ipv6Addr) -> Option<String> {
    let bits = ip.to_bits();
    let low_v4 = Ipv4Addr::from_bits(bits as u32); // the last 32 bits
    let named = |net: u128, len: u8| in_v6(ip, net, len);

    if bits == 0 {
        return Some("unspecified".into());
    }
    if bits == 1 {
        return Some("loopback".into());
    }
    // ::ffff:a.b.c.d dials a.b.c.d on a dual-stack socket: judge it exactly as that address.
    if named(0xffff_0000_0000, 96) {
        return classify_v4(low_v4).map(|r| format!("IPv4-mapped {r}"));
    }
    // ::a.b.c.d, IPv4-compatible: deprecated since 2006 (RFC 4291), nothing legitimate uses it.
    if named(0, 96) {
        return Some("IPv4-compatible (deprecated)".into());
    }
    // 64:ff9b::/96, the well-known NAT64 prefix: the translator dials the last 32 bits.
    // RFC 6052 allows only the /96 layout with this prefix, so the public ones are fine.
    if named(0x0064_ff9b << 96, 96) {
        return classify_v4(low_v4).map(|r| format!("NAT64 {r}"));
    }
    // 64:ff9b:1::/48, local-use NAT64 (RFC 8215): not globally reachable, and the operator picks
    // where the IPv4 sits, so the last 32 bits may not be what is dialled. Blocked outright; a
    // network that uses it can list the prefix in allow_ips.
    if named(0x0064_ff9b_0001 << 80, 48) {
        let embedded = classify_v4(low_v4).map_or(String::new(), |r| format!(" {r}"));
        return Some(format!("local-use NAT64{embedded}"));
    }
    if named(0x0100 << 112, 64) {
        return Some("discard".into()); // 100::/64 (RFC 6666)
    }
    // 2001::/32 Teredo. The client IPv4 is the last 32 bits XORed with 0xffffffff. Teredo is a
    // dead NAT-traversal tunnel no image host uses, and it reaches hosts through relays and servers
    // we cannot see, so it is blocked outright; the embedded client is named when it is special.
    if named(0x2001 << 112, 32) {
        let client = Ipv4Addr::from_bits(!(bits as u32));
        let embedded = classify_v4(client).map_or(String::new(), |r| format!(" {r}"));
        return Some(format!("Teredo{embedded}"));
    }
    if named(0x2001_0002 << 96, 48) {
        return Some("benchmarking".into()); // 2001:2::/48
    }
    if named(0x2001_0db8 << 96, 32) || named(0x3fff << 112, 20) {
        return Some("documentation".into()); // 2001:db8::/32 and 3fff::/20 (RFC 9637)
    }
    // The rest of 2001::/23: IETF protocol assignments (ORCHID, AMT, AS112, ...), not web hosts.
    if named(0x2001 << 112, 23) {
        return Some("reserved".into());
    }
    // 2002::/16 6to4: a relay decapsulates and dials the IPv4 in bits 16..48.
    if named(0x2002 << 112, 16) {
        let v4 = Ipv4Addr::from_bits((bits >> 80) as u32);
        return classify_v4(v4).map(|r| format!("6to4 {r}"));
    }
    if named(0xfe80 << 112, 10) {
        return Some("link-local".into());
    }
    if named(0xfec0 << 112, 10) {
        return Some("site-local".into()); // deprecated, still routed internally on old networks
    }
    if named(0xfc00 << 112, 7) {
        return Some("unique-local".into());
    }
    if named(0xff00 << 112, 8) {
        return Some("multicast".into());
    }
    if !named(0x2000 << 112, 3) {
        return Some("reserved".into());
    }
    None
}

/// The verdict on one address: public, allow-listed, or everything allowed.
#[derive(Debug, Clone)]
pub struct Guard {
    allow: AllowList,
    allow_private: bool,
}

impl Guard {
    /// `allow_private` turns the guard off entirely (trusted networks, local testing).
    pub fn new(allow: AllowList, allow_private: bool) -> Guard {
        Guard {
            allow,
            allow_private,
        }
    }

    /// Ok if the address is public, or listed in the allow list, or allow_private is set.
    pub fn check(&self, ip: IpAddr) -> Result<(), BlockedAddress> {
        if self.allow_private || self.allow.contains(ip) {
            return Ok(());
        }
        match classify(ip) {
            None => Ok(()),
            Some(reason) => Err(BlockedAddress { ip, reason }),
        }
    }

    /// Checks every address; the first blocked one refuses them all.
    fn check_all(&self, addrs: &[SocketAddr]) -> Result<(), BlockedAddress> {
        addrs.iter().try_for_each(|addr| self.check(addr.ip()))
    }
}

/// An address the guard refused, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockedAddress {
    pub ip: IpAddr,
    pub reason: String,
}

impl fmt::Display for BlockedAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "address {} is not allowed ({}); list it in [fetch] allow_ips to permit it",
            self.ip, self.reason
        )
    }
}

impl std::error::Error for BlockedAddress {}

/// A ureq resolver that resolves like ureq's [`DefaultResolver`] and then refuses the whole lookup
/// if ANY resolved address is blocked.
///
/// All-or-nothing because ureq tries the addresses in turn: a name resolving to one public and one
/// private address would otherwise reach the private one whenever the public one fails to answer.
///
/// ureq resolves before every request, pooled connection or not, and its resolver starts a thread
/// per lookup when a deadline is set. So literal addresses skip the lookup, and names are
/// remembered for [`DNS_CACHE_TTL`]. The guard checks the addresses on every call, cached or not.
#[derive(Debug)]
pub struct GuardedResolver {
    guard: Arc<Guard>,
    inner: DefaultResolver,
    cache: Mutex<HashMap<String, (ResolvedSocketAddrs, Instant)>>,
}

/// How long a name's addresses are reused. Short, so that a host that moves is followed soon.
pub const DNS_CACHE_TTL: Duration = Duration::from_secs(30);
/// Names remembered at most; the cache is emptied when it grows past this.
const DNS_CACHE_MAX: usize = 10_000;

impl GuardedResolver {
    pub fn new(guard: Arc<Guard>) -> Self {
        GuardedResolver {
            guard,
            inner: DefaultResolver::default(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The addresses of `uri`'s host: the literal itself, a fresh cached lookup, or a new one.
    fn lookup(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let host = uri.host().unwrap_or("");
        let port = uri
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            });
        if let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            let mut addrs = self.inner.empty();
            addrs.push(SocketAddr::new(ip, port));
            return Ok(addrs);
        }
        let key = format!("{host}:{port}");
        let now = Instant::now();
        if let Some((addrs, at)) = lock(&self.cache).get(&key) {
            if now.duration_since(*at) < DNS_CACHE_TTL {
                return Ok(addrs.clone());
            }
        }
        let addrs = self.inner.resolve(uri, config, timeout)?;
        let mut cache = lock(&self.cache);
        if cache.len() >= DNS_CACHE_MAX {
            cache.clear();
        }
        cache.insert(key, (addrs.clone(), now));
        Ok(addrs)
    }
}

impl Resolver for GuardedResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let addrs = self.lookup(uri, config, timeout)?;
        // `addrs` derefs to exactly the addresses the connector will try, after ureq's
        // IP-family filter and its 16-address cap.
        self.guard.check_all(&addrs).map_err(|blocked| {
            ureq::Error::Io(io::Error::new(io::ErrorKind::PermissionDenied, blocked))
        })?;
        Ok(addrs)
    }
}

/// Finds a [`BlockedAddress`] inside a ureq error, as [`GuardedResolver`] returns it:
/// `ureq::Error::Io(io::Error::new(io::ErrorKind::PermissionDenied, blocked))`.
pub fn blocked_in(err: &ureq::Error) -> Option<&BlockedAddress> {
    match err {
        ureq::Error::Io(io) => io.get_ref()?.downcast_ref::<BlockedAddress>(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn reason(s: &str) -> Option<String> {
        classify(ip(s))
    }

    /// Asserts each address classifies with the given reason (None = public).
    fn assert_reasons(cases: &[(&str, Option<&str>)]) {
        for &(addr, want) in cases {
            assert_eq!(reason(addr).as_deref(), want, "classify({addr})");
        }
    }

    fn allow(entries: &[&str]) -> AllowList {
        let entries: Vec<String> = entries.iter().map(|e| e.to_string()).collect();
        AllowList::parse(&entries).expect("valid allow list")
    }

    fn parse_err(entry: &str) -> String {
        AllowList::parse(&[entry.to_string()]).expect_err(entry)
    }

    #[test]
    fn ipv4_special_ranges_and_their_boundaries() {
        assert_reasons(&[
            ("0.0.0.0", Some("unspecified")),
            ("0.1.2.3", Some("this network")),
            ("0.255.255.255", Some("this network")),
            ("1.0.0.0", None),
            ("9.255.255.255", None),
            ("10.0.0.0", Some("private")),
            ("10.255.255.255", Some("private")),
            ("11.0.0.0", None),
            ("100.63.255.255", None),
            ("100.64.0.0", Some("shared (CGNAT)")),
            ("100.127.255.255", Some("shared (CGNAT)")),
            ("100.128.0.0", None),
            ("126.255.255.255", None),
            ("127.0.0.1", Some("loopback")),
            ("127.0.0.2", Some("loopback")),
            ("127.255.255.255", Some("loopback")),
            ("128.0.0.0", None),
            ("169.253.255.255", None),
            ("169.254.0.0", Some("link-local")),
            ("169.254.169.254", Some("link-local")),
            ("169.254.255.255", Some("link-local")),
            ("169.255.0.0", None),
            ("172.15.255.255", None),
            ("172.16.0.0", Some("private")),
            ("172.31.255.255", Some("private")),
            ("172.32.0.0", None),
            ("191.255.255.255", None),
            ("192.0.0.0", Some("reserved")),
            ("192.0.0.255", Some("reserved")),
            ("192.0.1.0", None),
            ("192.0.2.0", Some("documentation")),
            ("192.0.2.255", Some("documentation")),
            ("192.0.3.0", None),
            ("192.88.98.255", None),
            ("192.88.99.1", Some("6to4 relay anycast")),
            ("192.88.100.0", None),
            ("192.167.255.255", None),
            ("192.168.0.0", Some("private")),
            ("192.168.255.255", Some("private")),
            ("192.169.0.0", None),
            ("198.17.255.255", None),
            ("198.18.0.0", Some("benchmarking")),
            ("198.19.255.255", Some("benchmarking")),
            ("198.20.0.0", None),
            ("198.51.99.255", None),
            ("198.51.100.7", Some("documentation")),
            ("198.51.101.0", None),
            ("203.0.112.255", None),
            ("203.0.113.7", Some("documentation")),
            ("203.0.114.0", None),
            ("223.255.255.255", None),
            ("224.0.0.0", Some("multicast")),
            ("239.255.255.255", Some("multicast")),
            ("240.0.0.0", Some("reserved")),
            ("255.255.255.254", Some("reserved")),
            ("255.255.255.255", Some("broadcast")),
            ("8.8.8.8", None),
            ("93.184.216.34", None),
        ]);
    }

    #[test]
    fn ipv6_special_ranges_and_their_boundaries() {
        assert_reasons(&[
            ("::", Some("unspecified")),
            ("::1", Some("loopback")),
            ("fe80::", Some("link-local")),
            ("fe80::1", Some("link-local")),
            ("febf:ffff::1", Some("link-local")),
            ("fec0::1", Some("site-local")),
            ("feff:ffff::1", Some("site-local")),
            ("fc00::1", Some("unique-local")),
            ("fd12:3456::1", Some("unique-local")),
            ("fdff:ffff::1", Some("unique-local")),
            ("fbff:ffff::1", Some("reserved")),
            ("ff00::", Some("multicast")),
            ("ff02::1", Some("multicast")),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some("multicast")),
            ("2001:db8::1", Some("documentation")),
            ("2001:db8:ffff:ffff::1", Some("documentation")),
            ("2001:db9::1", None),
            ("2001:db7:ffff::1", None),
            ("3fff::1", Some("documentation")),
            ("3fff:0fff::1", Some("documentation")),
            ("3fff:1000::1", None),
            ("100::", Some("discard")),
            ("100::ffff:ffff:ffff:ffff", Some("discard")),
            ("100:0:0:1::", Some("reserved")),
            ("2001:2::1", Some("benchmarking")),
            ("2001:2:0:ffff::1", Some("benchmarking")),
            ("2001:3::1", Some("reserved")),
            ("2001:1ff::1", Some("reserved")),
            ("2001:200::1", None),
            ("1fff:ffff::1", Some("reserved")),
            ("4000::1", Some("reserved")),
            ("5f00::1", Some("reserved")),
            ("2000::1", None),
            ("2606:4700:4700::1111", None),
            ("2a00:1450:4001:82a::200e", None),
            ("3ffe:ffff::1", None),
        ]);
    }

    #[test]
    fn ipv4_mapped_is_judged_as_its_ipv4() {
        assert_reasons(&[
            ("::ffff:127.0.0.2", Some("IPv4-mapped loopback")),
            ("::ffff:7f00:1", Some("IPv4-mapped loopback")),
            ("::ffff:10.1.2.3", Some("IPv4-mapped private")),
            ("::ffff:169.254.169.254", Some("IPv4-mapped link-local")),
            ("::ffff:0.0.0.0", Some("IPv4-mapped unspecified")),
            ("::ffff:255.255.255.255", Some("IPv4-mapped broadcast")),
            ("::ffff:8.8.8.8", None),
        ]);
    }

    #[test]
    fn ipv4_compatible_is_blocked_whatever_it_embeds() {
        assert_reasons(&[
            ("::127.0.0.2", Some("IPv4-compatible (deprecated)")),
            ("::8.8.8.8", Some("IPv4-compatible (deprecated)")),
            ("::2", Some("IPv4-compatible (deprecated)")),
            ("::1:0:0:0", Some("reserved")),
        ]);
    }

    #[test]
    fn nat64_well_known_prefix_is_judged_by_its_last_32_bits() {
        assert_reasons(&[
            ("64:ff9b::7f00:2", Some("NAT64 loopback")),
            ("64:ff9b::127.0.0.2", Some("NAT64 loopback")),
            ("64:ff9b::a9fe:a9fe", Some("NAT64 link-local")),
            ("64:ff9b::192.168.1.1", Some("NAT64 private")),
            ("64:ff9b::8.8.8.8", None),
            // Just outside the /96: not NAT64, and outside 2000::/3.
            ("64:ff9b::1:0:808:808", Some("reserved")),
        ]);
    }

    #[test]
    fn local_use_nat64_is_blocked_outright() {
        assert_reasons(&[
            ("64:ff9b:1::7f00:2", Some("local-use NAT64 loopback")),
            ("64:ff9b:1::8.8.8.8", Some("local-use NAT64")),
            ("64:ff9b:1:ffff::8.8.8.8", Some("local-use NAT64")),
            ("64:ff9b:2::8.8.8.8", Some("reserved")),
        ]);
    }

    #[test]
    fn sixtofour_is_judged_by_bits_16_to_48() {
        assert_reasons(&[
            ("2002:7f00:0002::", Some("6to4 loopback")),
            ("2002:7f00:2::1", Some("6to4 loopback")),
            ("2002:a00:1::", Some("6to4 private")),
            ("2002:a9fe:a9fe::1", Some("6to4 link-local")),
            // The last 32 bits are not the embedded address.
            ("2002:808:808::7f00:1", None),
            ("2002:808:808::", None),
        ]);
    }

    #[test]
    fn teredo_is_blocked_and_names_a_special_client() {
        // The client address is stored inverted: !127.0.0.2 = 0x80ff_fffd.
        assert_reasons(&[
            (
                "2001:0:4136:e378:8000:63bf:80ff:fffd",
                Some("Teredo loopback"),
            ),
            (
                "2001:0:4136:e378:8000:63bf:f5ff:fffe",
                Some("Teredo private"),
            ),
            // Client 8.8.8.8, inverted f7f7:f7f7: still Teredo, still blocked.
            ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", Some("Teredo")),
            // Not inverted 127.0.0.2 reads as the public 128.255.255.253.
            ("2001:0:4136:e378:8000:63bf:7f00:2", Some("Teredo")),
            ("2001:1::1", Some("reserved")),
        ]);
    }

    #[test]
    fn allow_list_parses_addresses_and_networks() {
        let list = allow(&[
            "127.0.0.1/32",
            "10.0.0.0/8",
            "::1",
            "fd00::/8",
            "192.168.1.5",
        ]);
        assert!(list.contains(ip("127.0.0.1")));
        assert!(!list.contains(ip("127.0.0.2")));
        assert!(list.contains(ip("10.255.0.1")));
        assert!(!list.contains(ip("11.0.0.0")));
        assert!(list.contains(ip("::1")));
        assert!(!list.contains(ip("::2")));
        assert!(list.contains(ip("fdab::1")));
        assert!(!list.contains(ip("fc00::1")));
        assert!(list.contains(ip("192.168.1.5")));
        assert!(!list.contains(ip("192.168.1.6")));
        assert!(!AllowList::default().contains(ip("127.0.0.1")));
    }

    #[test]
    fn allow_list_zero_prefix_matches_its_whole_family_only() {
        let v4 = allow(&["0.0.0.0/0"]);
        assert!(v4.contains(ip("127.0.0.1")));
        assert!(v4.contains(ip("255.255.255.255")));
        assert!(!v4.contains(ip("::1")));
        let v6 = allow(&["::/0"]);
        assert!(v6.contains(ip("::1")));
        assert!(!v6.contains(ip("127.0.0.1")));
    }

    #[test]
    fn allow_list_does_not_cross_into_embedded_forms() {
        let list = allow(&["127.0.0.1/32"]);
        for embedded in [
            "::ffff:127.0.0.1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
            "::127.0.0.1",
        ] {
            assert!(!list.contains(ip(embedded)), "{embedded}");
        }
    }

    #[test]
    fn allow_list_errors_name_the_bad_entry() {
        assert_eq!(parse_err("foo"), r#"not a CIDR: "foo""#);
        assert_eq!(
            parse_err("1.2.3.4/33"),
            r#"prefix 33 too long for IPv4 in "1.2.3.4/33""#
        );
        assert_eq!(
            parse_err("::1/129"),
            r#"prefix 129 too long for IPv6 in "::1/129""#
        );
        for bad in [
            "",
            "/8",
            "1.2.3.4/",
            "1.2.3.4/x",
            "1.2.3.4/+8",
            "1.2.3.4/-1",
            "1.2.3.4/8/8",
            "1.2.3.4/0008",
            "1.2.3.4/256",
            " 1.2.3.4",
            "1.2.3",
            "010.0.0.1",
            "[::1]",
            "::1%eth0",
            "localhost",
        ] {
            assert_eq!(parse_err(bad), format!("not a CIDR: {bad:?}"), "{bad:?}");
        }
        assert_eq!(
            parse_err("10.0.0.1/8"),
            r#"host bits set in "10.0.0.1/8" (write 10.0.0.0/8 for the network, or 10.0.0.1 for the single address)"#
        );
        assert!(
            parse_err("fd00::1/8").starts_with(r#"host bits set in "fd00::1/8" (write fd00::/8"#)
        );
        // The first bad entry is the one reported.
        let entries = [
            "127.0.0.1/32".to_string(),
            "nope".to_string(),
            "x".to_string(),
        ];
        assert_eq!(
            AllowList::parse(&entries).unwrap_err(),
            r#"not a CIDR: "nope""#
        );
    }

    #[test]
    fn guard_blocks_only_what_is_neither_public_nor_listed() {
        let guard = Guard::new(allow(&["127.0.0.1/32"]), false);
        assert_eq!(guard.check(ip("127.0.0.1")), Ok(()));
        assert_eq!(guard.check(ip("8.8.8.8")), Ok(()));
        assert_eq!(guard.check(ip("2606:4700:4700::1111")), Ok(()));
        assert_eq!(
            guard.check(ip("127.0.0.2")),
            Err(BlockedAddress {
                ip: ip("127.0.0.2"),
                reason: "loopback".into()
            })
        );
        let mapped = guard.check(ip("::ffff:127.0.0.1")).unwrap_err();
        assert_eq!(mapped.reason, "IPv4-mapped loopback");
        assert!(guard.check(ip("169.254.169.254")).is_err());
    }

    #[test]
    fn allow_private_allows_everything() {
        let guard = Guard::new(AllowList::default(), true);
        for addr in [
            "127.0.0.2",
            "10.0.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::ffff:127.0.0.1",
            "fe80::1",
            "ff02::1",
            "2001::1",
            "8.8.8.8",
        ] {
            assert_eq!(guard.check(ip(addr)), Ok(()), "{addr}");
        }
    }

    #[test]
    fn one_blocked_address_refuses_the_whole_lookup() {
        let guard = Guard::new(AllowList::default(), false);
        let addrs: Vec<SocketAddr> = ["8.8.8.8:80", "10.0.0.1:80", "1.1.1.1:80"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let blocked = guard.check_all(&addrs).unwrap_err();
        assert_eq!(blocked.ip, ip("10.0.0.1"));
        assert_eq!(guard.check_all(&addrs[..1]), Ok(()));
    }

    #[test]
    fn blocked_address_reads_as_an_instruction() {
        let blocked = BlockedAddress {
            ip: ip("127.0.0.2"),
            reason: "loopback".into(),
        };
        assert_eq!(
            blocked.to_string(),
            "address 127.0.0.2 is not allowed (loopback); list it in [fetch] allow_ips to permit it"
        );
    }

    /// Resolves a URI through a guard that allows only 127.0.0.1. Every URI here is a literal IP,
    /// which DefaultResolver parses without any network I/O.
    fn resolve(uri: &str) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let guard = Guard::new(allow(&["127.0.0.1/32"]), false);
        let resolver = GuardedResolver::new(Arc::new(guard));
        let uri: Uri = uri.parse().expect("test uri");
        resolver.resolve(&uri, &Config::default(), NextTimeout::default())
    }

    #[test]
    fn resolver_refuses_a_blocked_literal_and_says_why() {
        let err = resolve("http://127.0.0.2:9/").unwrap_err();
        let blocked = blocked_in(&err).expect("a BlockedAddress inside the error");
        assert_eq!(blocked.ip, ip("127.0.0.2"));
        assert_eq!(blocked.reason, "loopback");
        assert!(matches!(&err, ureq::Error::Io(e) if e.kind() == io::ErrorKind::PermissionDenied));

        let err = resolve("http://[::ffff:127.0.0.2]:9/").unwrap_err();
        assert_eq!(blocked_in(&err).unwrap().reason, "IPv4-mapped loopback");
    }

    #[test]
    fn resolver_passes_an_allowed_literal_through() {
        let addrs = resolve("http://127.0.0.1:9/").expect("127.0.0.1 is allow-listed");
        assert_eq!(&addrs[..], &["127.0.0.1:9".parse::<SocketAddr>().unwrap()]);
    }

    #[test]
    fn literals_skip_the_lookup_and_names_are_cached() {
        let resolver = GuardedResolver::new(Arc::new(Guard::new(AllowList::default(), true)));
        let resolve = |uri: &str| {
            let uri: Uri = uri.parse().unwrap();
            resolver.resolve(&uri, &Config::default(), NextTimeout::default())
        };
        let v6 = resolve("https://[::1]/x").unwrap();
        assert_eq!(&v6[..], &["[::1]:443".parse::<SocketAddr>().unwrap()]);
        assert!(lock(&resolver.cache).is_empty(), "a literal was looked up");
        let first = resolve("http://localhost:8080/").unwrap();
        let again = resolve("http://localhost:8080/").unwrap();
        assert_eq!(&first[..], &again[..]);
        assert_eq!(lock(&resolver.cache).len(), 1);
    }

    #[test]
    fn blocked_in_ignores_other_errors() {
        assert!(blocked_in(&ureq::Error::HostNotFound).is_none());
        let io = ureq::Error::Io(io::Error::new(io::ErrorKind::PermissionDenied, "nope"));
        assert!(blocked_in(&io).is_none());
        let bare = ureq::Error::Io(io::Error::from(io::ErrorKind::PermissionDenied));
        assert!(blocked_in(&bare).is_none());
    }
}
