use super::super::{Image, Invalid, Limits, Problem, Validator, testing};
use super::Png;
use jobd_testkit::images;

mod apng;

const LIMITS: Limits = Limits {
    max_pixels: 100_000_000,
    max_frames: 100,
};

fn run_with(bytes: &[u8], piece: usize, limits: Limits) -> Result<Image, Invalid> {
    testing::in_pieces("image/png", bytes, piece, limits)
}

fn check(bytes: &[u8]) -> Result<Image, Invalid> {
    run_with(bytes, bytes.len(), LIMITS)
}

fn error(bytes: &[u8]) -> Invalid {
    match check(bytes) {
        Ok(image) => panic!("accepted as {image:?}"),
        Err(e) => e,
    }
}

/// Asserts a corrupt-file error whose message contains `words`.
fn corrupt(bytes: &[u8], words: &str) {
    testing::assert_refused(check(bytes), Problem::Corrupt, words);
}

fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend(kind);
    out.extend(data);
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    out.extend(crc.finalize().to_be_bytes());
    out
}

fn file(chunks: &[Vec<u8>]) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunks.iter().for_each(|c| out.extend(c));
    out
}

fn ihdr_data(w: u32, h: u32, depth: u8, colour: u8, interlace: u8) -> Vec<u8> {
    let mut d = w.to_be_bytes().to_vec();
    d.extend(h.to_be_bytes());
    d.extend([depth, colour, 0, 0, interlace]);
    d
}

fn ihdr(w: u32, h: u32, depth: u8, colour: u8) -> Vec<u8> {
    chunk(b"IHDR", &ihdr_data(w, h, depth, colour, 0))
}

/// Any bytes: the structure does not look inside the zlib stream.
fn idat() -> Vec<u8> {
    chunk(b"IDAT", b"\x78\x01zlib data")
}

fn iend() -> Vec<u8> {
    chunk(b"IEND", b"")
}

fn actl(frames: u32) -> Vec<u8> {
    let mut d = frames.to_be_bytes().to_vec();
    d.extend(0u32.to_be_bytes());
    chunk(b"acTL", &d)
}

fn fctl(seq: u32, w: u32, h: u32, x: u32, y: u32) -> Vec<u8> {
    fctl_ops(seq, w, h, x, y, 0, 0)
}

fn fctl_ops(seq: u32, w: u32, h: u32, x: u32, y: u32, dispose: u8, blend: u8) -> Vec<u8> {
    let mut d = Vec::new();
    for v in [seq, w, h, x, y] {
        d.extend(v.to_be_bytes());
    }
    d.extend([0, 1, 0, 10, dispose, blend]);
    chunk(b"fcTL", &d)
}

fn fdat(seq: u32) -> Vec<u8> {
    let mut d = seq.to_be_bytes().to_vec();
    d.extend(b"frame data");
    chunk(b"fdAT", &d)
}

/// A 3-frame APNG whose default image is the first frame.
fn apng() -> Vec<u8> {
    file(&[
        ihdr(10, 8, 8, 6),
        actl(3),
        fctl(0, 10, 8, 0, 0),
        idat(),
        idat(),
        fctl(1, 4, 4, 6, 4),
        fdat(2),
        fdat(3),
        fctl(4, 1, 1, 9, 7),
        fdat(5),
        iend(),
    ])
}

fn plain() -> Vec<u8> {
    file(&[ihdr(3, 2, 8, 2), chunk(b"tEXt", b"a\0b"), idat(), iend()])
}

#[test]
fn generated_pngs_pass() {
    for (w, h) in [(1, 1), (37, 5), (300, 200)] {
        let image = check(&images::png(w, h, 7)).unwrap();
        assert_eq!(image, Image::new(w.into(), h.into(), 1).unwrap());
    }
}

#[test]
fn any_split_of_the_body_gives_the_same_answer() {
    for body in [plain(), apng(), images::png(20, 20, 1)] {
        let whole = check(&body).unwrap();
        for piece in 1..=body.len() {
            assert_eq!(
                run_with(&body, piece, LIMITS),
                Ok(whole),
                "pieces of {piece}"
            );
        }
    }
    assert_eq!(check(&apng()).unwrap(), Image::new(10, 8, 3).unwrap());
}

#[test]
fn every_strict_prefix_is_truncated() {
    for body in [plain(), apng(), images::png(5, 5, 2)] {
        for cut in 0..body.len() {
            for piece in [1, 7, body.len()] {
                let e = run_with(&body[..cut], piece, LIMITS).unwrap_err();
                assert_eq!(e.problem, Problem::Truncated, "cut at {cut}: {e}");
            }
        }
    }
}

#[test]
fn truncation_says_where() {
    let body = plain();
    // Signature 8, IHDR 25, tEXt 15: IDAT's length field is at byte 48, its data at 56..67.
    let e = check(&body[..60]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "truncated: the PNG ends inside IDAT at byte 60 of 67"
    );
    let e = check(&body[..69]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "truncated: the PNG ends in the CRC of IDAT at byte 69 of 71"
    );
    let e = check(&body[..71]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "truncated: the PNG ends at byte 71 after chunk IDAT, without IEND"
    );
    let e = check(&body[..74]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "truncated: the PNG ends inside a chunk header at byte 74 of 79"
    );
    let e = check(&body[..3]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "truncated: the PNG ends in its signature at byte 3 of 8"
    );
}

#[test]
fn bytes_after_iend_are_ignored() {
    let mut body = plain();
    body.extend(b"trailing garbage \x00\xFF");
    assert_eq!(check(&body), Ok(Image::new(3, 2, 1).unwrap()));
}

#[test]
fn a_crc_mismatch_names_the_chunk_and_its_offset() {
    let mut body = plain();
    body[60] ^= 1; // inside IDAT's data
    assert_eq!(
        error(&body).to_string(),
        "invalid image: the CRC of chunk IDAT at byte 48 does not match"
    );
    let mut body = plain();
    body[20] ^= 1; // IHDR's height
    corrupt(&body, "the CRC of chunk IHDR at byte 8 does not match");
    let mut body = plain();
    body[44] ^= 1; // tEXt, an ancillary chunk, is checked too
    corrupt(&body, "the CRC of chunk tEXt at byte 33 does not match");
    let mut body = apng();
    let at = body.len() - 12 - 4; // the CRC of the last fdAT
    body[at] ^= 0x80;
    corrupt(&body, "the CRC of chunk fdAT");
}

#[test]
fn the_signature_must_match() {
    let mut body = plain();
    body[1] = b'p';
    corrupt(&body, "the PNG signature is");
}

#[test]
fn ihdr_comes_first_once_with_13_bytes() {
    corrupt(
        &file(&[chunk(b"tEXt", b"a\0b"), ihdr(1, 1, 8, 2), idat(), iend()]),
        "chunk tEXt at byte 8 comes first, before IHDR",
    );
    corrupt(
        &file(&[ihdr(1, 1, 8, 2), ihdr(1, 1, 8, 2), idat(), iend()]),
        "chunk IHDR at byte 33 is a second IHDR",
    );
    let mut long = ihdr_data(1, 1, 8, 2, 0);
    long.push(0);
    corrupt(
        &file(&[chunk(b"IHDR", &long), idat(), iend()]),
        "has 14 bytes instead of 13",
    );
}

#[test]
fn ihdr_fields_must_be_legal() {
    for colour in 0..=7u8 {
        for depth in 0..=17u8 {
            let legal = match colour {
                0 => [1, 2, 4, 8, 16].contains(&depth),
                2 | 4 | 6 => [8, 16].contains(&depth),
                3 => [1, 2, 4, 8].contains(&depth),
                _ => false,
            };
            let mut chunks = vec![ihdr(2, 2, depth, colour)];
            if colour == 3 {
                chunks.push(chunk(b"PLTE", &[0; 6]));
            }
            chunks.extend([idat(), iend()]);
            let result = check(&file(&chunks));
            assert_eq!(
                result.is_ok(),
                legal,
                "colour {colour}, depth {depth}: {result:?}"
            );
        }
    }
    for (field, value) in [(10, 1), (11, 1), (12, 2)] {
        let mut d = ihdr_data(2, 2, 8, 2, 0);
        d[field] = value;
        corrupt(
            &file(&[chunk(b"IHDR", &d), idat(), iend()]),
            "(0, 0 and 0 or 1 are defined)",
        );
    }
    let interlaced = chunk(b"IHDR", &ihdr_data(2, 2, 16, 0, 1));
    assert!(check(&file(&[interlaced, idat(), iend()])).is_ok());
    corrupt(&file(&[ihdr(0, 5, 8, 2), idat(), iend()]), "frame 1 is 0x5");
    corrupt(&file(&[ihdr(5, 0, 8, 2), idat(), iend()]), "frame 1 is 5x0");
    corrupt(
        &file(&[ihdr(1, 1 << 31, 8, 2), idat(), iend()]),
        "over 2^31-1",
    );
}

#[test]
fn a_frame_over_max_pixels_is_a_bomb() {
    let e = error(&file(&[ihdr(60000, 60000, 8, 2), idat(), iend()]));
    assert_eq!(e.problem, Problem::TooLarge);
    assert_eq!(
        e.to_string(),
        "too large: frame 1 is 60000x60000, over max_pixels (100000000)"
    );
    // Refused at IHDR, before any image data arrives.
    let mut v = Validator::new(Box::new(Png::new(LIMITS)));
    let body = file(&[ihdr(60000, 60000, 8, 2)]);
    assert!(v.feed(&body).is_err());
}

#[test]
fn a_palette_image_needs_a_palette_first() {
    let ok = file(&[ihdr(2, 2, 4, 3), chunk(b"PLTE", &[0; 48]), idat(), iend()]);
    assert!(check(&ok).is_ok());
    corrupt(
        &file(&[ihdr(2, 2, 4, 3), idat(), iend()]),
        "comes before the PLTE the palette image needs",
    );
    corrupt(
        &file(&[ihdr(2, 2, 4, 3), idat(), chunk(b"PLTE", &[0; 3]), iend()]),
        "comes before the PLTE",
    );
    for len in [0, 10, 771] {
        let bad = file(&[
            ihdr(2, 2, 8, 3),
            chunk(b"PLTE", &vec![0; len]),
            idat(),
            iend(),
        ]);
        corrupt(&bad, "palette entries of 3");
    }
    corrupt(
        &file(&[
            ihdr(2, 2, 8, 3),
            chunk(b"PLTE", &[0; 3]),
            chunk(b"PLTE", &[0; 3]),
            idat(),
            iend(),
        ]),
        "is a second PLTE",
    );
}

#[test]
fn a_suggested_palette_is_tolerated_where_libpng_tolerates_it() {
    // True colour with a suggested palette, even after IDAT (a benign error in libpng), and a
    // palette in a grey image, which libpng ignores.
    for body in [
        file(&[ihdr(2, 2, 8, 2), chunk(b"PLTE", &[0; 9]), idat(), iend()]),
        file(&[ihdr(2, 2, 8, 6), idat(), chunk(b"PLTE", &[0; 3]), iend()]),
        file(&[ihdr(2, 2, 8, 0), chunk(b"PLTE", &[0; 4]), idat(), iend()]),
    ] {
        assert!(check(&body).is_ok(), "{:?}", check(&body));
    }
}

#[test]
fn chunk_types_and_lengths_must_be_legal() {
    corrupt(
        &file(&[ihdr(1, 1, 8, 2), chunk(b"ZZZZ", b""), idat(), iend()]),
        "chunk ZZZZ at byte 33 is an unknown critical chunk",
    );
    corrupt(
        &file(&[ihdr(1, 1, 8, 2), chunk(b"CgBI", b"1234"), idat(), iend()]),
        "unknown critical chunk",
    );
    let unknown = file(&[ihdr(1, 1, 8, 2), chunk(b"zzZz", b"x"), idat(), iend()]);
    assert!(check(&unknown).is_ok());
    corrupt(
        &file(&[ihdr(1, 1, 8, 2), chunk(b"ab1d", b""), idat(), iend()]),
        "the chunk at byte 33 has the type \"ab1d\", which is not four letters",
    );
    let mut huge = file(&[ihdr(1, 1, 8, 2)]);
    huge.extend(0x8000_0000u32.to_be_bytes());
    huge.extend(b"IDAT");
    corrupt(&huge, "has the length 2,147,483,648, over 2^31-1");
}

#[test]
fn image_data_is_required_and_consecutive() {
    corrupt(
        &file(&[ihdr(1, 1, 8, 2), iend()]),
        "chunk IEND at byte 33 comes before any IDAT",
    );
    corrupt(
        &file(&[
            ihdr(1, 1, 8, 2),
            idat(),
            chunk(b"tEXt", b"a\0b"),
            idat(),
            iend(),
        ]),
        "comes after tEXt: the image data must be consecutive",
    );
    let many = file(&[
        ihdr(1, 1, 8, 2),
        idat(),
        chunk(b"IDAT", b""),
        idat(),
        chunk(b"tEXt", b"a\0b"),
        iend(),
    ]);
    assert!(check(&many).is_ok());
}

#[test]
fn iend_with_data_is_tolerated_as_libpng_does() {
    let body = file(&[ihdr(1, 1, 8, 2), idat(), chunk(b"IEND", b"xx")]);
    assert!(check(&body).is_ok());
}

#[test]
fn garbage_never_panics() {
    // A cheap stand-in for the fuzzers: mutate every byte of a valid APNG in a few ways.
    let body = apng();
    for i in 0..body.len() {
        for flip in [0x01, 0x80, 0xFF] {
            let mut b = body.clone();
            b[i] ^= flip;
            let _ = check(&b);
            let _ = run_with(&b, 3, LIMITS);
        }
    }
}
