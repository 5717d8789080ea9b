use super::super::{Image, Invalid, Limits, Problem, testing};

const LIMITS: Limits = Limits {
    max_pixels: 100_000_000,
    max_frames: 1000,
};

fn run_with(body: &[u8], piece: usize, limits: Limits) -> Result<Image, Invalid> {
    testing::in_pieces("image/vnd.microsoft.icon", body, piece, limits)
}

fn run(body: &[u8]) -> Result<Image, Invalid> {
    run_with(body, body.len(), LIMITS)
}

/// Asserts a corrupt-file error whose message contains `words`.
fn corrupt(body: &[u8], words: &str) {
    testing::assert_refused(run(body), Problem::Corrupt, words);
}

/// An icon's DIB: a V3 header with doubled height, palette, XOR pixels, AND mask.
fn dib(w: u32, h: u32, bpp: u16) -> Vec<u8> {
    let mut out = 40u32.to_le_bytes().to_vec();
    out.extend(w.to_le_bytes());
    out.extend((2 * h).to_le_bytes());
    out.extend(1u16.to_le_bytes());
    out.extend(bpp.to_le_bytes());
    out.resize(40, 0);
    if bpp <= 8 {
        out.extend(vec![0x40; 4 << bpp]);
    }
    let row = (w as usize * bpp as usize).div_ceil(32) * 4;
    out.extend(vec![0x33; row * h as usize]);
    out.extend(vec![0; (w as usize).div_ceil(32) * 4 * h as usize]);
    out
}

/// An icon file of `kind` (1 icon, 2 cursor) with its images in directory order, back to back.
fn icon(kind: u16, images: &[Vec<u8>]) -> Vec<u8> {
    let mut out = vec![0, 0];
    out.extend(kind.to_le_bytes());
    out.extend((images.len() as u16).to_le_bytes());
    let mut offset = 6 + 16 * images.len();
    for data in images {
        // The directory's own size and depth: deliberately not the real ones.
        out.extend([16, 16, 0, 0, 1, 0, 32, 0]);
        out.extend((data.len() as u32).to_le_bytes());
        out.extend((offset as u32).to_le_bytes());
        offset += data.len();
    }
    for data in images {
        out.extend(data);
    }
    out
}

/// Sets entry `i`'s size and offset in the directory.
fn place(body: &mut [u8], i: usize, size: u32, offset: u32) {
    let at = 6 + 16 * i + 8;
    body[at..at + 4].copy_from_slice(&size.to_le_bytes());
    body[at + 4..at + 8].copy_from_slice(&offset.to_le_bytes());
}

fn image(width: u32, height: u32, frames: u32) -> Image {
    Image {
        width,
        height,
        frames,
    }
}

fn bmp_icon() -> Vec<u8> {
    icon(1, &[dib(16, 16, 8), dib(32, 32, 32), dib(24, 24, 4)])
}

#[test]
fn bmp_entries_give_the_largest_image_and_the_count() {
    assert_eq!(run(&bmp_icon()).unwrap(), image(32, 32, 3));
    let cursor = icon(2, &[dib(8, 8, 1)]);
    assert_eq!(run(&cursor).unwrap(), image(8, 8, 1));
    let err = run(&cursor[..cursor.len() - 1]).unwrap_err();
    assert!(
        err.to_string().starts_with("truncated: the CUR ends"),
        "{err}"
    );
}

#[test]
fn every_split_gives_the_same_answer_and_every_prefix_is_truncated() {
    let body = bmp_icon();
    for piece in 1..=body.len() {
        assert_eq!(run_with(&body, piece, LIMITS).unwrap(), image(32, 32, 3));
    }
    for cut in 0..body.len() {
        let err = run_with(&body[..cut], 11, LIMITS).unwrap_err();
        assert_eq!(err.problem, Problem::Truncated, "cut at {cut}: {err}");
    }
}

#[test]
fn truncation_says_where() {
    let body = icon(1, &[dib(16, 16, 8)]);
    assert_eq!(
        run(&body[..100]).unwrap_err().to_string(),
        "truncated: the ICO ends inside image 1 (1,384 bytes at byte 22) at byte 100 of 1,406"
    );
    assert_eq!(
        run(&body[..10]).unwrap_err().to_string(),
        "truncated: the ICO ends in its directory of 1 images at byte 10 of 22"
    );
}

#[test]
fn the_directory_is_checked() {
    let mut body = bmp_icon();
    body[0] = 1;
    corrupt(&body, "not an ICO or CUR");
    let mut body = bmp_icon();
    body[2] = 3;
    corrupt(&body, "not an ICO or CUR");
    corrupt(&[0, 0, 1, 0, 0, 0], "the ICO has no image");
    let mut body = bmp_icon();
    place(&mut body, 1, 100, 40);
    corrupt(
        &body,
        "image 2 at byte 40 starts inside the directory, which ends at byte 54",
    );
    let mut body = bmp_icon();
    place(&mut body, 2, 7, 5000);
    corrupt(&body, "image 3 of the directory is only 7 bytes");
    // Image 1 grown by a byte overlaps image 2.
    let mut body = bmp_icon();
    let first = dib(16, 16, 8).len() as u32;
    place(&mut body, 0, first + 1, 54);
    corrupt(&body, "image 1 (bytes 54 to");
    let two = Limits {
        max_pixels: 1 << 20,
        max_frames: 2,
    };
    let err = run_with(&bmp_icon(), 4, two).unwrap_err();
    assert_eq!(err.problem, Problem::TooLarge);
    assert!(err.message.contains("more than 2 images"), "{err}");
}

#[test]
fn entries_may_be_unsorted_repeated_or_spaced() {
    // The directory lists the images in reverse order.
    let (a, b) = (dib(16, 16, 8), dib(40, 30, 24));
    let mut body = icon(1, &[a.clone(), b.clone()]);
    place(&mut body, 0, b.len() as u32, 38 + a.len() as u32);
    place(&mut body, 1, a.len() as u32, 38);
    body.truncate(38);
    body.extend(&a);
    body.extend(&b);
    assert_eq!(run(&body).unwrap(), image(40, 30, 2));
    // A third entry repeats the first one's bytes.
    let mut body = icon(1, &[a.clone(), b.clone(), a.clone()]);
    let first = 6 + 16 * 3;
    place(&mut body, 2, a.len() as u32, first);
    body.truncate(body.len() - a.len());
    assert_eq!(run(&body).unwrap(), image(40, 30, 3));
    // Padding between the images.
    let mut body = icon(1, &[a.clone(), b.clone()]);
    place(&mut body, 1, b.len() as u32, 38 + a.len() as u32 + 5);
    body.splice(38 + a.len()..38 + a.len(), [0; 5]);
    assert_eq!(run(&body).unwrap(), image(40, 30, 2));
    // Trailing bytes after the last image are ignored.
    body.extend([1, 2, 3]);
    assert_eq!(run(&body).unwrap(), image(40, 30, 2));
}

#[test]
fn a_broken_embedded_image_names_its_entry() {
    let mut bad = dib(16, 16, 8);
    bad[12] = 3; // three planes
    corrupt(
        &icon(1, &[dib(8, 8, 8), bad]),
        "image 2 (a BMP of 1,384 bytes at byte 1,198): the BMP has 3 planes, not 1",
    );
    // The directory cuts the last DIB short: the icon is whole, its image is not.
    let mut body = icon(1, &[dib(16, 16, 8)]);
    let len = body.len() as u32 - 22;
    place(&mut body, 0, len - 40, 22);
    body.truncate(body.len() - 40);
    corrupt(
        &body,
        "image 1 (a BMP of 1,344 bytes at byte 22) is cut short: \
         the BMP ends inside its AND mask at byte 1,344 of 1,352",
    );
}

#[test]
fn an_embedded_image_bomb_is_too_large_whatever_the_directory_says() {
    // The directory says 16x16; the DIB says 100000x100000.
    let mut header = dib(1, 1, 24)[..40].to_vec();
    header[4..8].copy_from_slice(&100_000u32.to_le_bytes());
    header[8..12].copy_from_slice(&200_000u32.to_le_bytes());
    let body = icon(1, &[dib(8, 8, 8), header]);
    let err = run(&body).unwrap_err();
    assert_eq!(err.problem, Problem::TooLarge, "{err}");
    assert!(err.message.contains("100000x100000"), "{err}");
}

// The tests below need the PNG validator, which another helper writes.

#[test]
fn png_entries_are_validated() {
    let png = jobd_testkit::images::png(48, 40, 3);
    let body = icon(1, &[dib(16, 16, 8), png.clone()]);
    assert_eq!(run(&body).unwrap(), image(48, 40, 2));
    for piece in [1, 13, 333] {
        assert_eq!(run_with(&body, piece, LIMITS).unwrap(), image(48, 40, 2));
    }
    for cut in 0..body.len() {
        let err = run_with(&body[..cut], 64, LIMITS).unwrap_err();
        assert_eq!(err.problem, Problem::Truncated, "cut at {cut}: {err}");
    }
    // The directory cuts the PNG short.
    let mut short = icon(1, std::slice::from_ref(&png));
    place(&mut short, 0, png.len() as u32 - 12, 22);
    short.truncate(short.len() - 12);
    corrupt(&short, "image 1 (a PNG of");
}

#[test]
fn a_png_bomb_is_too_large_whatever_the_directory_says() {
    // A PNG signature and an IHDR of 100000x100000: the PNG validator refuses it at IHDR.
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    png.extend(100_000u32.to_be_bytes());
    png.extend(100_000u32.to_be_bytes());
    png.extend([8, 2, 0, 0, 0]);
    let crc = crc32fast::hash(&png[12..]);
    png.extend(crc.to_be_bytes());
    png.extend([0; 64]);
    let body = icon(1, &[png]);
    let err = run(&body).unwrap_err();
    assert_eq!(err.problem, Problem::TooLarge, "{err}");
    assert!(err.message.contains("100000x100000"), "{err}");
}
