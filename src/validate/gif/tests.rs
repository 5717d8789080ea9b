use super::super::{Image, Invalid, Limits, Problem, testing};
use jobd_testkit::images;

const LIMITS: Limits = Limits {
    max_pixels: 100_000_000,
    max_frames: 100,
};

fn run_with(bytes: &[u8], piece: usize, limits: Limits) -> Result<Image, Invalid> {
    testing::in_pieces("image/gif", bytes, piece, limits)
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

/// Header and logical screen descriptor, with a global colour table of 4 entries.
fn header(w: u16, h: u16) -> Vec<u8> {
    let mut out = b"GIF89a".to_vec();
    out.extend(w.to_le_bytes());
    out.extend(h.to_le_bytes());
    out.extend([0xF1, 0, 0]);
    out.extend([0u8; 12]);
    out
}

/// Data split into sub-blocks of at most 255 bytes, then the terminator.
fn sub_blocks(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for block in data.chunks(255) {
        out.push(block.len() as u8);
        out.extend(block);
    }
    out.push(0);
    out
}

fn extension(label: u8, data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x21, label];
    out.extend(sub_blocks(data));
    out
}

/// An image: descriptor, optional local table, code size, data sub-blocks.
fn image_with(x: u16, y: u16, w: u16, h: u16, flags: u8, code_size: u8, data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x2C];
    for v in [x, y, w, h] {
        out.extend(v.to_le_bytes());
    }
    out.push(flags);
    out.extend(vec![0x55; super::table_len(flags)]);
    out.push(code_size);
    out.extend(sub_blocks(data));
    out
}

fn image(x: u16, y: u16, w: u16, h: u16) -> Vec<u8> {
    image_with(x, y, w, h, 0, 2, b"\x44\x01")
}

fn gif(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

/// An animation of 3 frames with the extensions encoders write.
fn animation() -> Vec<u8> {
    let mut netscape = b"NETSCAPE2.0".to_vec();
    netscape.extend([1, 0, 0]);
    gif(&[
        header(10, 8),
        extension(0xFF, &netscape),
        extension(0xF9, &[4, 10, 0, 0]),
        image(0, 0, 10, 8),
        extension(0xFE, &[b'c'; 600]),
        extension(0xF9, &[4, 10, 0, 0]),
        image_with(2, 3, 8, 5, 0x87, 8, &[0x11; 700]),
        image(9, 7, 1, 1),
        vec![0x3B],
    ])
}

#[test]
fn generated_gifs_pass() {
    for (w, h) in [(1, 1), (37, 5), (300, 200)] {
        let image = check(&images::gif(w, h, 7)).unwrap();
        assert_eq!(image, Image::new(w.into(), h.into(), 1).unwrap());
    }
}

#[test]
fn an_animation_counts_its_frames() {
    assert_eq!(check(&animation()), Ok(Image::new(10, 8, 3).unwrap()));
    let mut gif87 = images::gif(4, 4, 1);
    gif87[4] = b'7';
    assert!(check(&gif87).is_ok());
}

#[test]
fn any_split_of_the_body_gives_the_same_answer() {
    for body in [animation(), images::gif(30, 30, 1)] {
        let whole = check(&body).unwrap();
        for piece in 1..=body.len() {
            assert_eq!(
                run_with(&body, piece, LIMITS),
                Ok(whole),
                "pieces of {piece}"
            );
        }
    }
}

#[test]
fn every_strict_prefix_is_truncated() {
    for body in [animation(), images::gif(20, 20, 2)] {
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
    let body = gif(&[header(10, 8), image(0, 0, 10, 8), vec![0x3B]]);
    let e = check(&body[..5]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "truncated: the GIF ends in its header at byte 5 of 13"
    );
    let e = check(&body[..20]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "truncated: the GIF ends in its global colour table at byte 20 of 25"
    );
    let e = check(&body[..30]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "truncated: the GIF ends in the descriptor of frame 1 at byte 30 of 35"
    );
    let e = check(&body[..37]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "truncated: the GIF ends inside the frame 1 data at byte 37"
    );
    let e = check(&body[..body.len() - 1]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "truncated: the GIF ends at byte 40 without its trailer (after 1 frame)"
    );
    let ext = gif(&[header(10, 8), extension(0xFE, b"hello")]);
    let e = check(&ext[..28]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "truncated: the GIF ends inside a comment extension at byte 28"
    );
}

#[test]
fn bytes_after_the_trailer_are_ignored() {
    let mut body = animation();
    body.extend(b"\x00junk\x21");
    assert_eq!(check(&body), Ok(Image::new(10, 8, 3).unwrap()));
}

#[test]
fn the_signature_must_be_gif87a_or_gif89a() {
    let mut body = images::gif(2, 2, 1);
    body[4] = b'8';
    corrupt(
        &body,
        "the GIF signature is \"GIF88a\", not GIF87a or GIF89a",
    );
}

#[test]
fn the_logical_screen_must_be_sane() {
    corrupt(
        &gif(&[header(0, 8), image(0, 0, 1, 1), vec![0x3B]]),
        "the logical screen is 0x8",
    );
    let e = error(&gif(&[header(60000, 60000)]));
    assert_eq!(e.problem, Problem::TooLarge);
    assert_eq!(
        e.to_string(),
        "too large: the logical screen is 60000x60000, over max_pixels (100000000)"
    );
}

#[test]
fn a_frame_must_lie_inside_the_logical_screen() {
    // The bomb: a 1x1 screen around a 60000x60000 first frame.
    let e = error(&gif(&[header(1, 1), image(0, 0, 60000, 60000), vec![0x3B]]));
    assert_eq!(e.problem, Problem::TooLarge, "{e}");
    assert_eq!(
        e.message,
        "frame 1 is 60000x60000, over max_pixels (100000000)"
    );
    // A first frame that overhangs a small screen grows it, as browsers do; a later one may not.
    let grown = gif(&[header(10, 8), image(4, 2, 10, 8), vec![0x3B]]);
    assert_eq!(
        check(&grown).unwrap(),
        Image {
            width: 14,
            height: 10,
            frames: 1
        }
    );
    corrupt(
        &gif(&[
            header(10, 8),
            image(4, 2, 10, 8),
            image(0, 0, 15, 1),
            vec![0x3B],
        ]),
        "frame 2 (15x1 at 0,0) lies outside the 14x10 logical screen",
    );
    let e = error(&gif(&[
        header(1, 1),
        image(9000, 9000, 9000, 9000),
        vec![0x3B],
    ]));
    assert_eq!(e.problem, Problem::TooLarge, "{e}");
    assert!(
        e.message
            .contains("grows the 1x1 logical screen to 18000x18000"),
        "{e}"
    );
    for (x, y, w, h) in [
        (1, 0, 10, 8),
        (0, 1, 10, 8),
        (10, 0, 1, 1),
        (60000, 0, 1, 1),
    ] {
        corrupt(
            &gif(&[
                header(10, 8),
                image(0, 0, 10, 8),
                image(x, y, w, h),
                vec![0x3B],
            ]),
            "frame 2",
        );
    }
    corrupt(
        &gif(&[header(10, 8), image(0, 0, 0, 8), vec![0x3B]]),
        "frame 1 is 0x8",
    );
}

#[test]
fn a_frame_over_max_pixels_is_a_bomb() {
    let limits = Limits {
        max_pixels: 50,
        max_frames: 100,
    };
    let body = gif(&[header(10, 5), image(0, 0, 10, 5), vec![0x3B]]);
    assert!(run_with(&body, 100, limits).is_ok());
    let body = gif(&[header(10, 6), image(0, 0, 10, 6), vec![0x3B]]);
    let e = run_with(&body, 100, limits).unwrap_err();
    assert_eq!(e.problem, Problem::TooLarge);
}

#[test]
fn frames_are_counted_against_max_frames() {
    let mut parts = vec![header(2, 2)];
    parts.extend((0..101).map(|_| image(0, 0, 2, 2)));
    parts.push(vec![0x3B]);
    let body = gif(&parts);
    let e = error(&body);
    assert_eq!(e.problem, Problem::TooLarge);
    assert_eq!(
        e.to_string(),
        "too large: more than 100 frames, over max_frames"
    );
    parts.remove(1);
    assert_eq!(check(&gif(&parts)), Ok(Image::new(2, 2, 100).unwrap()));
}

#[test]
fn a_gif_needs_an_image() {
    corrupt(
        &gif(&[header(2, 2), extension(0xFE, b"only a comment"), vec![0x3B]]),
        "the GIF ends (its trailer is at byte 43) without an image",
    );
}

#[test]
fn an_unknown_block_is_refused() {
    corrupt(
        &gif(&[header(2, 2), image(0, 0, 2, 2), vec![0x00, 0x3B]]),
        "byte 40 is 0x00, not a block (0x21 extension, 0x2C image, 0x3B trailer)",
    );
}

#[test]
fn lzw_code_sizes_that_decoders_accept() {
    for size in 0..=255u8 {
        let body = gif(&[
            header(2, 2),
            image_with(0, 0, 2, 2, 0, size, b"\x01"),
            vec![0x3B],
        ]);
        let result = check(&body);
        assert_eq!(
            result.is_ok(),
            (1..=11).contains(&size),
            "{size}: {result:?}"
        );
    }
    corrupt(
        &gif(&[
            header(2, 2),
            image_with(0, 0, 2, 2, 0x81, 12, b"\x01"),
            vec![0x3B],
        ]),
        "frame 1 has the LZW minimum code size 12 (at byte 47)",
    );
}

#[test]
fn a_frame_without_data_is_refused() {
    corrupt(
        &gif(&[header(2, 2), image_with(0, 0, 2, 2, 0, 2, b""), vec![0x3B]]),
        "frame 1 (at byte 25) has no image data",
    );
}

#[test]
fn extensions_of_any_label_pass() {
    let body = gif(&[
        header(2, 2),
        extension(0x01, &[0; 12]),
        extension(0x99, b""),
        image(0, 0, 2, 2),
        extension(0xFE, &[7; 1000]),
        vec![0x3B],
    ]);
    assert_eq!(check(&body), Ok(Image::new(2, 2, 1).unwrap()));
}

#[test]
fn garbage_never_panics() {
    let body = animation();
    for i in 0..body.len() {
        for flip in [0x01, 0x80, 0xFF] {
            let mut b = body.clone();
            b[i] ^= flip;
            let _ = check(&b);
            let _ = run_with(&b, 3, LIMITS);
        }
    }
}
