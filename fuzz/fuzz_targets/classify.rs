//! Fuzzes the address classifier and the guard: 16 bytes make an IPv6 address, the next 4 an
//! IPv4 address, and one more a prefix length for an allow-list entry built from them.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use jobd::guard::{AllowList, Guard, classify};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut bytes = [0u8; 21];
    let n = data.len().min(bytes.len());
    bytes[..n].copy_from_slice(&data[..n]);
    let v6 = Ipv6Addr::from(<[u8; 16]>::try_from(&bytes[..16]).unwrap());
    let v4 = Ipv4Addr::from(<[u8; 4]>::try_from(&bytes[16..20]).unwrap());
    let len_byte = bytes[20];

    let open = Guard::new(AllowList::default(), true);
    let closed = Guard::new(AllowList::default(), false);
    for ip in [IpAddr::V6(v6), IpAddr::V4(v4)] {
        let reason = classify(ip);
        assert!(reason.as_ref().is_none_or(|r| !r.is_empty()));
        assert_eq!(open.check(ip), Ok(()));
        assert_eq!(closed.check(ip).is_ok(), reason.is_none(), "{ip}");
    }

    // The IPv6 forms that dial v4 are blocked exactly when v4 is.
    let blocked = classify(IpAddr::V4(v4)).is_some();
    let v4_bits = u128::from(v4.to_bits());
    let low80 = v6.to_bits() & ((1u128 << 80) - 1);
    for form in [
        (0xffff << 32) | v4_bits,                  // ::ffff:v4
        (0x0064_ff9b << 96) | v4_bits,             // 64:ff9b::v4
        (0x2002 << 112) | (v4_bits << 80) | low80, // 2002:v4::/48
    ] {
        let ip = IpAddr::V6(Ipv6Addr::from_bits(form));
        assert_eq!(classify(ip).is_some(), blocked, "{ip} embeds {v4}");
    }

    // An allow-list entry admits exactly the addresses under its prefix.
    let (ip, max) = if len_byte & 0x80 == 0 {
        (IpAddr::V4(v4), 32)
    } else {
        (IpAddr::V6(v6), 128)
    };
    let len = u32::from(len_byte & 0x7f).min(max);
    let net = match ip {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from_bits(
            a.to_bits() & u32::MAX.checked_shl(32 - len).unwrap_or(0),
        )),
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from_bits(
            a.to_bits() & u128::MAX.checked_shl(128 - len).unwrap_or(0),
        )),
    };
    let allow = AllowList::parse(&[format!("{net}/{len}")]).expect("a well-formed CIDR");
    assert!(
        allow.contains(net) && allow.contains(ip),
        "{ip} in {net}/{len}"
    );
    let guard = Guard::new(allow, false);
    assert_eq!(guard.check(ip), Ok(()));
    let other = match ip {
        IpAddr::V4(_) => IpAddr::V6(v6),
        IpAddr::V6(_) => IpAddr::V4(v4),
    };
    // Families never cross, except through /0 of the other family (which this entry is not).
    assert_eq!(
        guard.check(other).is_ok(),
        classify(other).is_none(),
        "{other}"
    );
});
