use super::super::{Image, Invalid, Limits, Problem, Validator, testing};
use super::Bmp;

const LIMITS: Limits = Limits {
    max_pixels: 100_000_000,
    max_frames: 1000,
};

fn run_parser(parser: Bmp, body: &[u8], piece: usize) -> Result<Image, Invalid> {
    let mut v = Validator::new(Box::new(parser));
    for chunk in body.chunks(piece.max(1)) {
        v.feed(chunk)?;
    }
    v.finish(&mut { body })
}

fn run(body: &[u8]) -> Result<Image, Invalid> {
    run_parser(Bmp::new(LIMITS), body, body.len())
}

fn corrupt(body: &[u8], words: &str) {
    testing::assert_refused(run(body), Problem::Corrupt, words);
}

fn image(width: u32, height: u32) -> Image {
    Image {
        width,
        height,
        frames: 1,
    }
}

/// A DIB header of `size` bytes (40 or more), Windows layout.
fn info(size: u32, w: i32, h: i32, bpp: u16, compression: u32, size_image: u32) -> Vec<u8> {
    let mut out = size.to_le_bytes().to_vec();
    out.extend(w.to_le_bytes());
    out.extend(h.to_le_bytes());
    out.extend(1u16.to_le_bytes());
    out.extend(bpp.to_le_bytes());
    out.extend(compression.to_le_bytes());
    out.extend(size_image.to_le_bytes());
    out.extend([0x13, 0x0B, 0, 0, 0x13, 0x0B, 0, 0]); // 72 dpi
    out.extend([0; 8]); // colours used, important
    out.resize(size as usize, 0);
    out
}

fn v3(w: i32, h: i32, bpp: u16) -> Vec<u8> {
    info(40, w, h, bpp, 0, 0)
}

/// A BMP file: file header, DIB header, table (masks and palette), pixels.
fn file(dib: &[u8], table: &[u8], pixels: &[u8]) -> Vec<u8> {
    let offset = 14 + dib.len() + table.len();
    let mut out = b"BM".to_vec();
    out.extend(((offset + pixels.len()) as u32).to_le_bytes());
    out.extend([0; 4]);
    out.extend((offset as u32).to_le_bytes());
    out.extend(dib);
    out.extend(table);
    out.extend(pixels);
    out
}

fn palette(n: usize, entry: usize) -> Vec<u8> {
    (0..n * entry).map(|i| i as u8).collect()
}

fn rgb24() -> Vec<u8> {
    // 3 pixels of 3 bytes: 9 bytes, padded to 12 a row.
    file(&v3(3, 2, 24), &[], &[7; 24])
}

fn rle8(stream: &[u8]) -> Vec<u8> {
    file(
        &info(40, 8, 4, 8, 1, stream.len() as u32),
        &palette(256, 4),
        stream,
    )
}

/// Runs, an end of line, a delta, an absolute run of 3 (padded) that holds 00 01, the end.
const RLE8_STREAM: &[u8] = &[
    4, 9, 4, 8, 0, 0, 0, 2, 1, 1, 0, 3, 0, 1, 5, 0, 2, 7, 0, 0, 0, 1,
];

fn good_files() -> Vec<Vec<u8>> {
    let mut bitfields = info(40, 2, 2, 32, 3, 16);
    bitfields.truncate(40);
    vec![
        rgb24(),
        file(&v3(9, 3, 1), &palette(2, 4), &[0xAA; 4 * 3]),
        file(&v3(9, 3, 4), &palette(16, 4), &[0x12; 8 * 3]),
        file(&v3(5, 2, 8), &palette(256, 4), &[1; 16]),
        file(&v3(3, 1, 16), &[], &[0; 8]),
        file(
            &bitfields,
            &[0, 0, 0xFF, 0, 0, 0xFF, 0, 0, 0xFF, 0, 0, 0],
            &[0; 16],
        ),
        file(&info(124, 2, -2, 32, 3, 0), &[], &[0; 16]),
        rle8(RLE8_STREAM),
    ]
}

#[test]
fn good_files_give_their_size() {
    let sizes = [
        (3, 2),
        (9, 3),
        (9, 3),
        (5, 2),
        (3, 1),
        (2, 2),
        (2, 2),
        (8, 4),
    ];
    for (body, (w, h)) in good_files().iter().zip(sizes) {
        assert_eq!(run(body).unwrap(), image(w, h));
    }
    // V4, 52, 56 and 64-byte headers.
    for size in [52, 56, 64, 108] {
        let body = file(&info(size, 3, 2, 24, 0, 0), &[], &[0; 24]);
        assert_eq!(run(&body).unwrap(), image(3, 2), "header of {size}");
    }
    // A 2-bit (Windows CE) image.
    let body = file(&v3(16, 1, 2), &palette(4, 4), &[0; 4]);
    assert_eq!(run(&body).unwrap(), image(16, 1));
}

#[test]
fn every_split_gives_the_same_answer_and_every_prefix_is_truncated() {
    for body in good_files() {
        let whole = run(&body).unwrap();
        for piece in 1..=body.len() {
            let got = run_parser(Bmp::new(LIMITS), &body, piece).unwrap();
            assert_eq!(got, whole, "pieces of {piece}");
        }
        for cut in 0..body.len() {
            let err = run_parser(Bmp::new(LIMITS), &body[..cut], 5).unwrap_err();
            assert_eq!(err.problem, Problem::Truncated, "cut at {cut}: {err}");
        }
    }
}

#[test]
fn truncation_says_where() {
    let body = rgb24();
    assert_eq!(
        run(&body[..60]).unwrap_err().to_string(),
        "truncated: the BMP ends inside its pixel data at byte 60 of 78"
    );
    assert_eq!(
        run(&body[..30]).unwrap_err().to_string(),
        "truncated: the BMP ends in its DIB header at byte 30 of 54"
    );
    let body = rle8(&RLE8_STREAM[..RLE8_STREAM.len() - 2]);
    let err = run(&body).unwrap_err();
    assert_eq!(err.problem, Problem::Truncated);
    assert!(
        err.message
            .contains("in its RLE8 pixel data, before the end-of-bitmap marker"),
        "{err}"
    );
}

#[test]
fn quirks_that_decoders_accept() {
    // A file size of 0 or a wrong one, and bytes after the pixels.
    let mut body = rgb24();
    body[2..6].copy_from_slice(&[0; 4]);
    body.extend([1, 2, 3]);
    assert_eq!(run(&body).unwrap(), image(3, 2));
    // A pixel offset of 0: the pixels follow the colour table.
    let mut body = file(&v3(5, 2, 8), &palette(256, 4), &[1; 16]);
    body[10..14].copy_from_slice(&[0; 4]);
    assert_eq!(run(&body).unwrap(), image(5, 2));
    // A gap between the table and the pixels.
    let mut body = file(&v3(3, 2, 24), &[0; 10], &[0; 24]);
    assert_eq!(run(&body).unwrap(), image(3, 2));
    body.truncate(body.len() - 1);
    assert_eq!(run(&body).unwrap_err().problem, Problem::Truncated);
    // A shorter palette that clr_used announces, and a clr_used larger than 2^bpp (clamped).
    let mut dib = v3(8, 1, 4);
    dib[32] = 3;
    assert_eq!(
        run(&file(&dib, &palette(3, 4), &[0; 4])).unwrap(),
        image(8, 1)
    );
    dib[32] = 200;
    assert_eq!(
        run(&file(&dib, &palette(16, 4), &[0; 4])).unwrap(),
        image(8, 1)
    );
}

#[test]
fn top_down_bitmaps_keep_their_height() {
    let body = file(&v3(3, -2, 24), &[], &[0; 24]);
    assert_eq!(run(&body).unwrap(), image(3, 2));
    let body = file(&info(40, 8, -4, 8, 1, 0), &palette(256, 4), RLE8_STREAM);
    corrupt(&body, "top-down (height -4) with RLE8 compression");
}

#[test]
fn os2_headers() {
    // OS/2 1.x: 16-bit sizes, 3-byte palette entries.
    let mut dib = 12u32.to_le_bytes().to_vec();
    dib.extend(20u16.to_le_bytes());
    dib.extend(3u16.to_le_bytes());
    dib.extend(1u16.to_le_bytes());
    dib.extend(8u16.to_le_bytes());
    let body = file(&dib, &palette(256, 3), &[0; 20 * 3]);
    assert_eq!(run(&body).unwrap(), image(20, 3));
    // A colour table cut short by the pixel data is read as far as it goes, as browsers do.
    let mut short = file(&dib, &palette(255, 3), &[0; 20 * 3]);
    assert_eq!(run(&short).unwrap(), image(20, 3));
    // But pixels cannot start inside the headers.
    short[10..14].copy_from_slice(&24u32.to_le_bytes());
    corrupt(&short, "points inside the BMP's headers");
    // OS/2 2.x, 16-byte header.
    let mut dib = info(40, 4, 4, 24, 0, 0);
    dib.truncate(16);
    dib[0] = 16;
    let body = file(&dib, &[], &[0; 48]);
    assert_eq!(run(&body).unwrap(), image(4, 4));
    // OS/2 2.x Huffman 1D and RLE24 are refused.
    corrupt(
        &file(&info(64, 4, 4, 1, 3, 8), &palette(2, 4), &[0; 8]),
        "OS/2 Huffman 1D",
    );
    corrupt(&file(&info(64, 4, 4, 24, 4, 8), &[], &[0; 8]), "OS/2 RLE24");
}

#[test]
fn headers_are_checked() {
    let mut bad = rgb24();
    bad[0] = b'X';
    corrupt(&bad, "no BM signature");
    let mut odd = rgb24();
    odd[14] = 20;
    corrupt(&odd, "is 20 bytes, not a BMP header size");
    let mut planes = v3(3, 2, 24);
    planes[12] = 2;
    corrupt(&file(&planes, &[], &[0; 24]), "2 planes");
    corrupt(
        &file(&v3(3, 2, 3), &[], &[0; 24]),
        "3 bits a pixel with no compression",
    );
    corrupt(
        &file(&info(40, 3, 2, 24, 9, 0), &[], &[0; 24]),
        "compression 9 is not one",
    );
    corrupt(
        &file(&info(40, 8, 2, 4, 1, 0), &palette(16, 4), &[0, 1]),
        "4 bits a pixel with RLE8",
    );
    corrupt(
        &file(&info(40, 8, 2, 8, 3, 0), &palette(256, 4), &[0; 16]),
        "8 bits a pixel with BITFIELDS",
    );
    corrupt(&file(&v3(0, 2, 24), &[], &[0; 24]), "the BMP is 0x2");
    corrupt(&file(&v3(-3, 2, 24), &[], &[0; 24]), "the BMP is -3x2");
    corrupt(&file(&v3(3, 0, 24), &[], &[0; 24]), "the BMP is 3x0");
    // The pixel offset may cut the palette short (see os2_headers), not the header.
    let mut body = file(&v3(5, 2, 8), &palette(256, 4), &[1; 16]);
    body[10..14].copy_from_slice(&50u32.to_le_bytes());
    corrupt(&body, "which end at byte 54");
    corrupt(
        &file(&info(40, 8, 2, 0, 5, 0), &[], &[]),
        "the BMP's PNG compression has no size",
    );
}

#[test]
fn a_pixel_bomb_is_refused_before_its_data() {
    let body = file(&v3(100_000, 100_000, 24), &[], &[]);
    let err = run(&body).unwrap_err();
    assert_eq!(err.problem, Problem::TooLarge);
    assert_eq!(
        err.to_string(),
        "too large: image 1 is 100000x100000, over max_pixels (100000000)"
    );
    let body = file(&v3(i32::MAX, i32::MIN, 32), &[], &[]);
    assert_eq!(run(&body).unwrap_err().problem, Problem::TooLarge);
    let huge = Limits {
        max_pixels: u64::MAX,
        max_frames: 1,
    };
    let err = run_parser(Bmp::new(huge), &body, 9).unwrap_err();
    assert_eq!(err.problem, Problem::Truncated, "{err}");
}

#[test]
fn rle_streams_are_walked_to_their_end() {
    // Trailing bytes after the end-of-bitmap marker are ignored.
    let mut stream = RLE8_STREAM.to_vec();
    stream.extend([9, 9, 9]);
    assert_eq!(run(&rle8(&stream)).unwrap(), image(8, 4));
    // 00 01 inside an absolute run is pixel data, not the end.
    let stream = [0, 4, 0, 1, 0, 1];
    assert_eq!(run(&rle8(&stream)).unwrap_err().problem, Problem::Truncated);
    let stream = [0, 4, 0, 1, 0, 1, 0, 1];
    assert_eq!(run(&rle8(&stream)).unwrap(), image(8, 4));
    // RLE4: an absolute run of 5 pixels is 3 bytes, padded to 4.
    let stream = [0, 5, 0x01, 0x01, 0x01, 0, 0, 1];
    let rle4 = |s: &[u8]| file(&info(40, 8, 4, 4, 2, 0), &palette(16, 4), s);
    assert_eq!(run(&rle4(&stream)).unwrap(), image(8, 4));
    let stream = [0, 5, 0x01, 0x01, 0x01, 0, 1];
    assert_eq!(run(&rle4(&stream)).unwrap_err().problem, Problem::Truncated);
    // A delta's bytes are not commands.
    let stream = [0, 2, 0, 1, 0, 1];
    assert_eq!(run(&rle8(&stream)).unwrap(), image(8, 4));
    let stream = [0, 2, 0, 1];
    assert_eq!(run(&rle8(&stream)).unwrap_err().problem, Problem::Truncated);
}

#[test]
fn an_embedded_png_is_validated() {
    // Needs the PNG validator (another helper's) to pass.
    let png = jobd_testkit::images::png(5, 4, 1);
    let body = file(&info(40, 5, 4, 0, 5, png.len() as u32), &[], &png);
    assert_eq!(run(&body).unwrap(), image(5, 4));
    let cut = file(
        &info(40, 5, 4, 0, 5, png.len() as u32 - 1),
        &[],
        &png[..png.len() - 1],
    );
    corrupt(&cut, "the PNG of");
}

/// An icon's DIB: header, palette, XOR pixels, AND mask.
fn dib(w: i32, h: i32, bpp: u16, with_mask: bool) -> Vec<u8> {
    let mut out = v3(w, 2 * h, bpp);
    if bpp <= 8 {
        out.extend(palette(1 << bpp, 4));
    }
    let row = (w as usize * bpp as usize).div_ceil(32) * 4;
    out.extend(vec![0x33; row * h as usize]);
    if with_mask {
        out.extend(vec![0; (w as usize).div_ceil(32) * 4 * h as usize]);
    }
    out
}

#[test]
fn icon_dibs() {
    let icon = |body: &[u8], piece| run_parser(Bmp::dib_in_icon(LIMITS), body, piece);
    for (body, size) in [
        (dib(16, 16, 8, true), (16, 16)),
        (dib(48, 48, 32, true), (48, 48)),
        (dib(33, 7, 4, true), (33, 7)),
        // A 32-bit icon may leave its unused AND mask out.
        (dib(20, 10, 32, false), (20, 10)),
    ] {
        for piece in [1, 7, body.len()] {
            assert_eq!(icon(&body, piece).unwrap(), image(size.0, size.1));
        }
    }
    // The AND mask's rows are padded to 32 bits (4 bytes for 16 pixels); whole bytes (2) are
    // enough, as Pillow writes them.
    let body = dib(16, 16, 8, true);
    let least = body.len() - 2 * 16;
    assert_eq!(icon(&body[..least], 5).unwrap(), image(16, 16));
    for cut in 0..least {
        let err = icon(&body[..cut], 3).unwrap_err();
        assert_eq!(err.problem, Problem::Truncated, "cut at {cut}: {err}");
    }
    assert_eq!(
        icon(&body[..least - 1], 3).unwrap_err().to_string(),
        "truncated: the BMP ends inside its AND mask at byte 1,351 of 1,352"
    );
    let mut rle = dib(16, 16, 8, true);
    rle[16] = 1;
    let err = icon(&rle, 99).unwrap_err();
    assert!(err.message.contains("an icon's bitmap uses RLE8"), "{err}");
}
