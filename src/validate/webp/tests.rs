use super::super::{Image, Invalid, Limits, Problem, testing};

const LIMITS: Limits = Limits {
    max_pixels: 100_000_000,
    max_frames: 1000,
};

fn run_with(body: &[u8], piece: usize, limits: Limits) -> Result<Image, Invalid> {
    testing::in_pieces("image/webp", body, piece, limits)
}

fn run(body: &[u8]) -> Result<Image, Invalid> {
    run_with(body, body.len(), LIMITS)
}

/// Asserts a corrupt-file error whose message contains `words`.
fn corrupt(body: &[u8], words: &str) {
    testing::assert_refused(run(body), Problem::Corrupt, words);
}

fn chunk(id: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = id.to_vec();
    out.extend((data.len() as u32).to_le_bytes());
    out.extend(data);
    if data.len() % 2 == 1 {
        out.push(0);
    }
    out
}

fn riff(chunks: &[Vec<u8>]) -> Vec<u8> {
    let body: Vec<u8> = chunks.concat();
    let mut out = b"RIFF".to_vec();
    out.extend((body.len() as u32 + 4).to_le_bytes());
    out.extend(b"WEBP");
    out.extend(body);
    out
}

/// A VP8 key frame of `len` bytes (at least 10) whose first partition fills the chunk.
fn vp8(w: u16, h: u16, len: usize) -> Vec<u8> {
    let partition = (len - 10) as u32;
    let tag = (partition << 5) | 1 << 4;
    let mut out = tag.to_le_bytes()[..3].to_vec();
    out.extend([0x9D, 0x01, 0x2A]);
    out.extend(w.to_le_bytes());
    out.extend(h.to_le_bytes());
    out.resize(len, 0x55);
    out
}

fn vp8l(w: u32, h: u32, len: usize) -> Vec<u8> {
    let bits = (w - 1) | (h - 1) << 14 | 1 << 28;
    let mut out = vec![0x2F];
    out.extend(bits.to_le_bytes());
    out.resize(len, 0x11);
    out
}

fn vp8x(flags: u8, w: u32, h: u32) -> Vec<u8> {
    let mut data = vec![flags, 0, 0, 0];
    data.extend(&(w - 1).to_le_bytes()[..3]);
    data.extend(&(h - 1).to_le_bytes()[..3]);
    chunk(b"VP8X", &data)
}

fn anim() -> Vec<u8> {
    chunk(b"ANIM", &[0xFF, 0xFF, 0xFF, 0xFF, 0, 0])
}

fn anmf(x: u32, y: u32, w: u32, h: u32, inner: &[Vec<u8>]) -> Vec<u8> {
    let mut data = Vec::new();
    data.extend(&(x / 2).to_le_bytes()[..3]);
    data.extend(&(y / 2).to_le_bytes()[..3]);
    data.extend(&(w - 1).to_le_bytes()[..3]);
    data.extend(&(h - 1).to_le_bytes()[..3]);
    data.extend(&100u32.to_le_bytes()[..3]);
    data.push(0);
    data.extend(inner.concat());
    chunk(b"ANMF", &data)
}

fn lossy() -> Vec<u8> {
    riff(&[chunk(b"VP8 ", &vp8(64, 48, 31))])
}

fn lossless() -> Vec<u8> {
    riff(&[chunk(b"VP8L", &vp8l(300, 200, 40))])
}

fn with_alpha() -> Vec<u8> {
    riff(&[
        vp8x(ALPHA | ICCP, 20, 10),
        chunk(b"ICCP", b"profile"),
        chunk(b"ALPH", &[1, 9, 9, 9]),
        chunk(b"VP8 ", &vp8(20, 10, 12)),
        chunk(b"EXIF", b"Exif\0\0"),
        chunk(b"XMP ", b"<x/>"),
        chunk(b"abcd", b"unknown"),
    ])
}

fn animated() -> Vec<u8> {
    riff(&[
        vp8x(ANIMATION | ALPHA, 100, 80),
        anim(),
        anmf(0, 0, 100, 80, &[chunk(b"VP8L", &vp8l(100, 80, 21))]),
        anmf(
            10,
            20,
            30,
            40,
            &[
                chunk(b"ALPH", &[1, 1, 2]),
                chunk(b"VP8 ", &vp8(30, 40, 15)),
                chunk(b"unkn", b"x"),
            ],
        ),
        chunk(b"EXIF", b"e"),
    ])
}

const ALPHA: u8 = super::ALPHA_FLAG;
const ICCP: u8 = super::ICCP_FLAG;
const ANIMATION: u8 = super::ANIMATION_FLAG;

fn image(width: u32, height: u32, frames: u32) -> Image {
    Image {
        width,
        height,
        frames,
    }
}

#[test]
fn good_files_give_their_size_and_frames() {
    assert_eq!(run(&lossy()).unwrap(), image(64, 48, 1));
    assert_eq!(run(&lossless()).unwrap(), image(300, 200, 1));
    assert_eq!(run(&with_alpha()).unwrap(), image(20, 10, 1));
    assert_eq!(run(&animated()).unwrap(), image(100, 80, 2));
    let still_lossless = riff(&[vp8x(ALPHA, 7, 9), chunk(b"VP8L", &vp8l(7, 9, 8))]);
    assert_eq!(run(&still_lossless).unwrap(), image(7, 9, 1));
    let kit = jobd_testkit::images::webp(640, 480, 5000, 7);
    assert_eq!(run(&kit).unwrap(), image(640, 480, 1));
}

#[test]
fn every_split_gives_the_same_answer_and_every_prefix_is_truncated() {
    for body in [lossy(), lossless(), with_alpha(), animated()] {
        let whole = run(&body).unwrap();
        for piece in 1..=body.len() {
            assert_eq!(
                run_with(&body, piece, LIMITS).unwrap(),
                whole,
                "pieces of {piece}"
            );
        }
        for cut in 0..body.len() {
            let err = run_with(&body[..cut], 7, LIMITS).unwrap_err();
            assert_eq!(err.problem, Problem::Truncated, "cut at {cut}: {err}");
        }
    }
}

#[test]
fn truncation_says_where() {
    let body = lossy();
    let err = run(&body[..30]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "truncated: the WebP ends inside the VP8 chunk at byte 12 at byte 30 of 52"
    );
    let body = animated();
    let err = run(&body[..78]).unwrap_err();
    assert!(
        err.message
            .contains("inside the VP8L chunk of frame 1 at byte 68"),
        "{err}"
    );
}

#[test]
fn the_body_must_end_with_the_riff() {
    let mut body = lossy();
    body.push(0);
    corrupt(&body, "ends at byte 52, but the body goes on");
    // A RIFF size too small for its chunk: the chunk runs past it.
    let mut body = lossy();
    body[4] -= 2;
    corrupt(&body, "runs past the end of the RIFF at byte 50");
    // Two stray bytes after the last chunk, inside the RIFF.
    let mut body = lossy();
    body.extend([0, 0]);
    body[4] += 2;
    corrupt(&body, "2 bytes at byte 52 that are not a chunk");
}

#[test]
fn headers_are_checked() {
    corrupt(b"RIFF\x04\0\0\0WEBPVP8 ", "RIFF size 4");
    corrupt(b"RIFX\x0c\0\0\0WEBPVP8 \0\0\0\0", "not a RIFF WEBP");
    corrupt(&riff(&[chunk(b"ALPH", &[0, 0])]), "first chunk is ALPH");
    corrupt(
        &riff(&[chunk(b"VP8 ", &[0; 9])]),
        "too short for its header",
    );
    corrupt(
        &riff(&[chunk(b"VP8L", &[0x2F; 4])]),
        "too short for its header",
    );
}

#[test]
fn vp8_headers_are_checked() {
    let mut not_key = vp8(8, 8, 20);
    not_key[0] |= 1;
    corrupt(&riff(&[chunk(b"VP8 ", &not_key)]), "not a key frame");
    let mut no_code = vp8(8, 8, 20);
    no_code[4] = 0;
    corrupt(&riff(&[chunk(b"VP8 ", &no_code)]), "start code");
    let mut partition = vp8(8, 8, 20);
    partition[0] += 1 << 5; // one byte more than the chunk holds
    corrupt(
        &riff(&[chunk(b"VP8 ", &partition)]),
        "first partition (11 bytes)",
    );
    let mut hidden = vp8(8, 8, 20);
    hidden[0] &= !0x10;
    corrupt(&riff(&[chunk(b"VP8 ", &hidden)]), "not marked to be shown");
    corrupt(&riff(&[chunk(b"VP8 ", &vp8(0, 8, 20))]), "the frame is 0x8");
    // The scale bits are ignored.
    let scaled = vp8(8 | 0xC000, 9 | 0x4000, 20);
    assert_eq!(
        run(&riff(&[chunk(b"VP8 ", &scaled)])).unwrap(),
        image(8, 9, 1)
    );
}

#[test]
fn vp8l_headers_are_checked() {
    let mut sig = vp8l(8, 8, 10);
    sig[0] = 0x2E;
    corrupt(&riff(&[chunk(b"VP8L", &sig)]), "no VP8L signature");
    let mut version = vp8l(8, 8, 10);
    version[4] |= 0x20;
    corrupt(&riff(&[chunk(b"VP8L", &version)]), "unknown VP8L version 1");
}

#[test]
fn a_simple_file_may_carry_trailing_chunks() {
    let body = riff(&[
        chunk(b"VP8L", &vp8l(5, 5, 9)),
        chunk(b"EXIF", b"abc"),
        chunk(b"VP8 ", &[0; 3]),
    ]);
    assert_eq!(run(&body).unwrap(), image(5, 5, 1));
}

#[test]
fn vp8x_is_checked() {
    let mut long = chunk(b"VP8X", &[0; 12]);
    long.extend(chunk(b"VP8L", &vp8l(1, 1, 5)));
    corrupt(&riff(&[long]), "the VP8X chunk is 12 bytes, not 10");
    corrupt(
        &riff(&[vp8x(0x80, 1, 1), chunk(b"VP8L", &vp8l(1, 1, 5))]),
        "unknown flags 0x80",
    );
    corrupt(
        &riff(&[vp8x(0, 1, 1), vp8x(0, 1, 1), chunk(b"VP8L", &vp8l(1, 1, 5))]),
        "a second VP8X",
    );
}

#[test]
fn a_canvas_bomb_is_too_large() {
    let body = riff(&[vp8x(0, 1 << 24, 1 << 24), chunk(b"VP8L", &vp8l(1, 1, 5))]);
    let err = run(&body).unwrap_err();
    assert_eq!(err.problem, Problem::TooLarge, "{err}");
    assert!(
        err.message.contains("the canvas is 16777216x16777216"),
        "{err}"
    );
    // Even with no pixel limit, libwebp's own limit holds.
    let huge = Limits {
        max_pixels: u64::MAX,
        max_frames: 10,
    };
    let err = run_with(&body, body.len(), huge).unwrap_err();
    assert!(err.message.contains("2^32 pixels"), "{err}");
    let tall = riff(&[chunk(b"VP8L", &vp8l(16384, 16384, 5))]);
    let small = Limits {
        max_pixels: 1000,
        max_frames: 10,
    };
    let err = run_with(&tall, tall.len(), small).unwrap_err();
    assert_eq!(err.problem, Problem::TooLarge, "{err}");
}

#[test]
fn a_still_vp8x_holds_exactly_one_image_of_the_canvas_size() {
    corrupt(
        &riff(&[vp8x(0, 8, 8), chunk(b"VP8L", &vp8l(8, 9, 6))]),
        "the canvas is 8x8 but the image is 8x9",
    );
    corrupt(
        &riff(&[vp8x(0, 8, 8), chunk(b"EXIF", b"x")]),
        "the image has no VP8 or VP8L bitstream",
    );
    corrupt(
        &riff(&[
            vp8x(0, 8, 8),
            chunk(b"VP8L", &vp8l(8, 8, 6)),
            chunk(b"VP8L", &vp8l(8, 8, 6)),
        ]),
        "a second image at byte 44",
    );
    corrupt(
        &riff(&[
            vp8x(ALPHA, 8, 8),
            chunk(b"ALPH", &[1, 0]),
            chunk(b"VP8L", &vp8l(8, 8, 6)),
        ]),
        "followed by the VP8L chunk at byte 40, not by a VP8 chunk",
    );
    corrupt(
        &riff(&[vp8x(ALPHA, 8, 8), chunk(b"ALPH", &[1, 0])]),
        "is not followed by a VP8 chunk",
    );
    corrupt(
        &riff(&[
            vp8x(ALPHA, 8, 8),
            chunk(b"ALPH", &[0x41, 0]),
            chunk(b"VP8 ", &vp8(8, 8, 10)),
        ]),
        "invalid header byte 0x41",
    );
    // Raw alpha needs a byte a pixel.
    corrupt(
        &riff(&[
            vp8x(ALPHA, 8, 8),
            chunk(b"ALPH", &[0; 64]),
            chunk(b"VP8 ", &vp8(8, 8, 10)),
        ]),
        "63 bytes of raw alpha",
    );
    let mut raw = vec![0; 65];
    raw[0] = 0;
    let ok = riff(&[
        vp8x(ALPHA, 8, 8),
        chunk(b"ALPH", &raw),
        chunk(b"VP8 ", &vp8(8, 8, 10)),
    ]);
    assert_eq!(run(&ok).unwrap(), image(8, 8, 1));
    corrupt(
        &riff(&[
            vp8x(0, 8, 8),
            anim(),
            anmf(0, 0, 8, 8, &[chunk(b"VP8L", &vp8l(8, 8, 6))]),
        ]),
        "without the animation flag",
    );
}

#[test]
fn animations_are_checked() {
    let frame = |x, y, w, h| anmf(x, y, w, h, &[chunk(b"VP8L", &vp8l(w, h, 6))]);
    corrupt(
        &riff(&[vp8x(ANIMATION, 8, 8), anim()]),
        "animation flag but no ANMF frame",
    );
    corrupt(
        &riff(&[vp8x(ANIMATION, 8, 8), frame(0, 0, 8, 8), anim()]),
        "comes before the ANIM chunk",
    );
    corrupt(
        &riff(&[vp8x(ANIMATION, 8, 8), anim(), frame(2, 0, 8, 8)]),
        "frame 1 (8x8 at 2,0) does not fit the 8x8 canvas",
    );
    corrupt(
        &riff(&[
            vp8x(ANIMATION, 8, 8),
            anim(),
            anmf(0, 0, 4, 4, &[chunk(b"VP8L", &vp8l(4, 5, 6))]),
        ]),
        "frame 1 is 4x4 but its bitstream is 4x5",
    );
    corrupt(
        &riff(&[
            vp8x(ANIMATION, 8, 8),
            anim(),
            chunk(b"VP8L", &vp8l(8, 8, 6)),
        ]),
        "outside any ANMF frame",
    );
    corrupt(
        &riff(&[vp8x(ANIMATION, 8, 8), anim(), anmf(0, 0, 8, 8, &[])]),
        "frame 1 (the ANMF chunk at byte 44) has no VP8 or VP8L bitstream",
    );
    corrupt(
        &riff(&[
            vp8x(ANIMATION, 8, 8),
            anim(),
            anmf(
                0,
                0,
                8,
                8,
                &[chunk(b"EXIF", b"ab"), chunk(b"VP8L", &vp8l(8, 8, 6))],
            ),
        ]),
        "frame 1 starts with a EXIF chunk",
    );
    corrupt(
        &riff(&[
            vp8x(ANIMATION, 8, 8),
            anim(),
            anmf(0, 0, 8, 8, &[chunk(b"VP8L", &vp8l(8, 8, 6)), vec![0; 4]]),
        ]),
        "ends with 4 bytes that are not a chunk",
    );
    // A sub-chunk longer than its ANMF.
    let mut long = frame(0, 0, 8, 8);
    long[4] -= 2;
    long.truncate(long.len() - 2);
    corrupt(
        &riff(&[vp8x(ANIMATION, 8, 8), anim(), long]),
        "runs past the end of frame 1",
    );
    corrupt(
        &riff(&[vp8x(ANIMATION, 8, 8), chunk(b"ANIM", &[0; 4])]),
        "is 4 bytes, not 6",
    );
}

#[test]
fn frame_limits_hold() {
    let frame = |w, h| anmf(0, 0, w, h, &[chunk(b"VP8L", &vp8l(w, h, 6))]);
    let body = riff(&[
        vp8x(ANIMATION, 8, 8),
        anim(),
        frame(8, 8),
        frame(8, 8),
        frame(8, 8),
    ]);
    let two = Limits {
        max_pixels: 1000,
        max_frames: 2,
    };
    let err = run_with(&body, 5, two).unwrap_err();
    assert_eq!(err.problem, Problem::TooLarge);
    assert!(err.message.contains("more than 2 frames"), "{err}");
    // A frame can be no larger than its canvas, so the canvas is the one checked first.
    let small = Limits {
        max_pixels: 62,
        max_frames: 10,
    };
    let body = riff(&[vp8x(ANIMATION, 7, 9), anim(), frame(7, 9)]);
    assert_eq!(
        run_with(&body, 3, small).unwrap_err().to_string(),
        "too large: the canvas is 7x9, over max_pixels (62)"
    );
}
