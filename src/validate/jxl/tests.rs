//! Real codestreams (cjxl's) bare and in hand-built containers: each rule broken once, a bomb,
//! orientation, parts split to single bytes; every prefix fails and every split agrees.

use super::samples::{ANIM_JXL, LOSSY_JXL, STILL_JXL};
use super::*;
use crate::validate::{Problem, testing, validate_bytes};

const LIMITS: Limits = Limits {
    max_pixels: 100_000_000,
    max_frames: 1000,
};

/// Packs (value, bits) fields least significant bit first, as JPEG XL does.
fn bits(fields: &[(u64, u32)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut n = 0usize;
    for &(v, len) in fields {
        for i in 0..len {
            if n % 8 == 0 {
                out.push(0);
            }
            let last = out.len() - 1;
            out[last] |= (((v >> i) & 1) as u8) << (n % 8);
            n += 1;
        }
    }
    out
}

/// A codestream head: FF 0A, a SizeHeader of `w` x `h` (selector 2: 1 + u(18)), then
/// ImageMetadata with `orientation`, then some bytes standing for the rest.
fn codestream(w: u64, h: u64, orientation: u64) -> Vec<u8> {
    let mut f = vec![(0, 1), (2, 2), (h - 1, 18), (0, 3), (2, 2), (w - 1, 18)];
    if orientation == 1 {
        f.push((1, 1));
    } else {
        f.extend([(0, 1), (1, 1), (orientation - 1, 3)]);
    }
    let mut b = vec![0xff, 0x0a];
    b.extend(bits(&f));
    b.extend_from_slice(&[0x5a; 20]);
    b
}

fn bx(typ: &[u8; 4], content: &[u8]) -> Vec<u8> {
    let mut b = ((content.len() + 8) as u32).to_be_bytes().to_vec();
    b.extend_from_slice(typ);
    b.extend_from_slice(content);
    b
}

fn container(boxes: &[Vec<u8>]) -> Vec<u8> {
    let mut b = SIGNATURE.to_vec();
    b.extend(bx(b"ftyp", b"jxl \0\0\0\0jxl "));
    b.extend(boxes.concat());
    b
}

fn part(index: u32, last: bool, data: &[u8]) -> Vec<u8> {
    let i = index | if last { 0x8000_0000 } else { 0 };
    bx(b"jxlp", &[&i.to_be_bytes()[..], data].concat())
}

fn run(b: &[u8]) -> Result<Image, Invalid> {
    validate_bytes("image/jxl", b, LIMITS)
}

fn in_pieces(b: &[u8], piece: usize) -> Result<Image, Invalid> {
    testing::in_pieces("image/jxl", b, piece, LIMITS)
}

#[test]
fn a_bare_codestream_gives_its_size_and_frames() {
    let image = |w, h, frames| Image {
        width: w,
        height: h,
        frames,
    };
    assert_eq!(run(STILL_JXL), Ok(image(16, 16, 1)));
    assert_eq!(run(LOSSY_JXL), Ok(image(32, 32, 1)));
    assert_eq!(run(ANIM_JXL), Ok(image(16, 16, 3)));
}

#[test]
fn every_strict_prefix_of_a_bare_codestream_fails_and_every_split_agrees() {
    for b in [STILL_JXL, LOSSY_JXL, ANIM_JXL] {
        for cut in 0..b.len() {
            let e = run(&b[..cut]).unwrap_err();
            assert!(
                matches!(e.problem, Problem::Truncated | Problem::Corrupt),
                "cut {cut}: {e}"
            );
        }
        for piece in [1, 2, 3, 7, 64] {
            assert_eq!(in_pieces(b, piece), run(b), "pieces of {piece}");
        }
    }
    let e = run(&ANIM_JXL[..ANIM_JXL.len() - 1]).unwrap_err();
    assert!(e.message.contains("ends inside frame 3"), "{e}");
}

#[test]
fn the_size_and_orientation_come_from_the_headers() {
    let size = |b: &[u8]| {
        let i = Jxl::new(LIMITS).image(b).unwrap();
        (i.width, i.height)
    };
    assert_eq!(size(&codestream(300, 200, 1)), (300, 200));
    assert_eq!(size(&codestream(300, 200, 6)), (200, 300));
    assert_eq!(size(&codestream(300, 200, 3)), (300, 200));
    // div8 and a ratio: 8 * 4 high, 4:3.
    let mut b = vec![0xff, 0x0a];
    b.extend(bits(&[(1, 1), (3, 5), (3, 3), (1, 1)]));
    assert_eq!(size(&b), (42, 32));
    for cut in 0..8 {
        let e = run(&codestream(300, 200, 6)[..cut]).unwrap_err();
        assert_eq!(e.problem, Problem::Truncated, "cut {cut}: {e}");
    }
}

#[test]
fn a_size_bomb_is_too_large() {
    let e = run(&codestream(100_000, 100_000, 1)).unwrap_err();
    assert_eq!(e.problem, Problem::TooLarge);
    assert!(e.message.contains("image 1 is 100000x100000"), "{e}");
    let e = run(&container(&[bx(b"jxlc", &codestream(100_000, 100_000, 1))])).unwrap_err();
    assert_eq!(e.problem, Problem::TooLarge);
}

#[test]
fn a_container_passes_and_every_prefix_fails() {
    let cs: &[u8] = STILL_JXL;
    let files = [
        // (A metadata box after the codestream could be cut off whole: not here.)
        container(&[bx(b"jxll", &[5]), bx(b"Exif", &[0; 10]), bx(b"jxlc", cs)]),
        container(&[
            part(0, false, &cs[..3]),
            bx(b"Exif", &[1; 6]),
            part(1, true, &cs[3..]),
        ]),
        container(
            &cs.iter()
                .enumerate()
                .map(|(i, b)| part(i as u32, i + 1 == cs.len(), &[*b]))
                .collect::<Vec<_>>(),
        ),
    ];
    for b in &files {
        assert_eq!(
            run(b).unwrap(),
            Image {
                width: 16,
                height: 16,
                frames: 1
            }
        );
        for cut in 0..b.len() {
            assert!(run(&b[..cut]).is_err(), "prefix of {cut} bytes passed");
        }
        for piece in 1..=b.len() {
            assert_eq!(in_pieces(b, piece), run(b), "pieces of {piece}");
        }
    }
}

#[test]
fn a_last_box_of_size_0_runs_to_the_end() {
    let cs: &[u8] = STILL_JXL;
    let mut b = container(&[bx(b"jxlc", cs)]);
    let at = SIGNATURE.len() + 20;
    b[at..at + 4].copy_from_slice(&[0; 4]);
    assert_eq!(run(&b).unwrap().width, 16);
    let mut b = container(&[part(0, false, &cs[..5]), part(1, true, &cs[5..])]);
    let at = b.len() - (cs.len() - 5) - 12;
    b[at..at + 4].copy_from_slice(&[0; 4]);
    assert_eq!(run(&b).unwrap().width, 16);
}

#[test]
fn the_container_rules_are_enforced() {
    let cs: &[u8] = STILL_JXL;
    let cases: Vec<(&str, Vec<u8>, Problem, &str)> = vec![
        (
            "no codestream",
            container(&[bx(b"Exif", &[0; 4])]),
            Problem::Corrupt,
            "no codestream",
        ),
        (
            "no last part",
            container(&[part(0, false, cs)]),
            Problem::Truncated,
            "none marked as the last",
        ),
        (
            "parts out of order",
            container(&[part(0, false, &cs[..4]), part(2, true, &cs[4..])]),
            Problem::Corrupt,
            "part 2, but part 1",
        ),
        (
            "part after the last",
            container(&[part(0, true, cs), part(1, true, &[])]),
            Problem::Corrupt,
            "after the codestream's end",
        ),
        (
            "jxlc and jxlp",
            container(&[bx(b"jxlc", cs), part(0, true, &[])]),
            Problem::Corrupt,
            "after the codestream's end",
        ),
        (
            "two jxlc",
            container(&[bx(b"jxlc", cs), bx(b"jxlc", cs)]),
            Problem::Corrupt,
            "after another codestream box",
        ),
        (
            "bad codestream",
            container(&[bx(
                b"jxlc",
                &[0xff, 0xd8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            )]),
            Problem::Corrupt,
            "FF 0A",
        ),
        (
            "brand",
            [
                &SIGNATURE[..],
                &bx(b"ftyp", b"avif\0\0\0\0"),
                &bx(b"jxlc", cs),
            ]
            .concat(),
            Problem::Corrupt,
            "not \"jxl \"",
        ),
        (
            "no ftyp",
            [&SIGNATURE[..], &bx(b"jxlc", cs)].concat(),
            Problem::Corrupt,
            "not ftyp",
        ),
        (
            "signature",
            [&[0, 0, 0, 0x0c, b'J', b'X', b'L', b' ', 0, 0, 0, 0][..], cs].concat(),
            Problem::Corrupt,
            "signature box is wrong",
        ),
        (
            "short box",
            container(&[bx(b"jxlc", cs), vec![0, 0, 0, 3, b'f', b'r', b'e', b'e']]),
            Problem::Corrupt,
            "less than its header",
        ),
        (
            "trailing bytes",
            [container(&[bx(b"jxlc", cs)]), vec![1, 2, 3]].concat(),
            Problem::Truncated,
            "in a box header",
        ),
        ("not jxl", b"GIF89a".to_vec(), Problem::Corrupt, "neither"),
    ];
    for (what, b, problem, want) in cases {
        let e = run(&b).unwrap_err();
        assert_eq!(e.problem, problem, "{what}: {e}");
        assert!(e.message.contains(want), "{what}: {e}");
    }
}

#[test]
fn mutations_never_panic() {
    let cs = codestream(64, 48, 1);
    let files = [
        container(&[part(0, false, &cs[..3]), part(1, true, &cs[3..])]),
        cs.clone(),
    ];
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for f in &files {
        for _ in 0..3000 {
            let mut b = f.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % b.len();
                b[at] = next() as u8;
            }
            let _ = run(&b);
            let _ = in_pieces(&b, 5);
        }
    }
}
