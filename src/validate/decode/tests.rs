//! Real files, made here with the image crate's (and its codec crates') own encoders, decode
//! `Full`; the same files with their compressed data broken (never their headers) fail as
//! corrupt, naming the frame, page or image when there are several.

use std::io::Cursor;

use image::codecs::bmp::BmpEncoder;
use image::codecs::gif::GifEncoder;
use image::codecs::ico::{IcoEncoder, IcoFrame};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::{Delay, ExtendedColorType, Frame, ImageEncoder, RgbaImage};

use super::*;
use crate::validate::Problem;

const LIMITS: Limits = Limits {
    max_pixels: 100_000_000,
    max_frames: 1000,
};

/// RGB pixels with gradients and some noise, so that every coder has real work.
fn rgb(width: u32, height: u32, seed: u32) -> Vec<u8> {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    let mut out = Vec::with_capacity((width * height * 3) as usize);
    for y in 0..height {
        for x in 0..width {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let noise = (state & 0x1f) as u8;
            out.push((x * 255 / width) as u8 ^ noise);
            out.push((y * 255 / height) as u8);
            out.push(((x + y + seed) * 7) as u8 ^ (noise >> 1));
        }
    }
    out
}

fn rgba(width: u32, height: u32, seed: u32) -> Vec<u8> {
    rgb(width, height, seed)
        .chunks(3)
        .flat_map(|p| [p[0], p[1], p[2], 0xff])
        .collect()
}

fn full(mime: &str, bytes: &[u8]) {
    assert_eq!(
        decode_bytes(mime, bytes, LIMITS),
        Ok(Decoded::Full),
        "{mime}"
    );
}

/// Decodes a body that must fail as corrupt, and gives the message.
fn corrupt(mime: &str, bytes: &[u8]) -> String {
    let err = decode_bytes(mime, bytes, LIMITS).expect_err("corrupt data decoded");
    assert_eq!(err.problem, Problem::Corrupt, "{err}");
    err.message
}

fn unsupported(mime: &str, bytes: &[u8]) -> String {
    match decode_bytes(mime, bytes, LIMITS) {
        Ok(Decoded::Unsupported(reason)) => reason,
        other => panic!("{mime}: {other:?}"),
    }
}

// ---- PNG ----

fn png(width: u32, height: u32, seed: u32) -> Vec<u8> {
    let mut out = Vec::new();
    PngEncoder::new(&mut out)
        .write_image(
            &rgb(width, height, seed),
            width,
            height,
            ExtendedColorType::Rgb8,
        )
        .unwrap();
    out
}

/// (type, offset of the data, length) of each chunk.
fn png_chunks(png: &[u8]) -> Vec<([u8; 4], usize, usize)> {
    let mut at = 8;
    let mut out = Vec::new();
    while at + 12 <= png.len() {
        let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
        out.push((png[at + 4..at + 8].try_into().unwrap(), at + 8, len));
        at += 12 + len;
    }
    out
}

/// Flips bits in the middle of the data of the `nth` chunk of `kind` (past `skip` bytes) and
/// puts the CRC right, so that only the compressed stream is broken.
fn break_png_chunk(png: &mut [u8], kind: &[u8; 4], nth: usize, skip: usize) {
    let (_, data, len) = png_chunks(png)
        .into_iter()
        .filter(|(k, _, _)| k == kind)
        .nth(nth)
        .expect("no such chunk");
    let at = data + skip + (len - skip) / 2;
    png[at] ^= 0x55;
    png[at + 1] ^= 0xaa;
    let crc = crc32fast::hash(&png[data - 4..data + len]);
    png[data + len..data + len + 4].copy_from_slice(&crc.to_be_bytes());
}

#[test]
fn png_decodes_full() {
    full("image/png", &png(64, 48, 1));
}

#[test]
fn png_with_broken_zlib_data_is_corrupt() {
    let mut body = png(64, 48, 1);
    break_png_chunk(&mut body, b"IDAT", 0, 0);
    let message = corrupt("image/png", &body);
    assert!(
        message.starts_with("the PNG's pixel data is corrupt: "),
        "{message}"
    );
}

#[test]
fn png_with_a_flip_the_inflater_accepts_fails_on_the_adler32() {
    // A PNG whose only IDAT is a stored (uncompressed) deflate block: any byte of it inflates,
    // so only the Adler-32 can notice a flipped one.
    let stored = png_with_stored_idat(8, 8, &rgb(8, 8, 3));
    full("image/png", &stored);
    let mut broken = stored.clone();
    let (_, data, len) = png_chunks(&broken)
        .into_iter()
        .find(|(k, _, _)| k == b"IDAT")
        .unwrap();
    // The last pixel byte, just before the Adler-32.
    broken[data + len - 5] ^= 0x01;
    let crc = crc32fast::hash(&broken[data - 4..data + len]);
    broken[data + len..data + len + 4].copy_from_slice(&crc.to_be_bytes());
    let message = corrupt("image/png", &broken);
    assert!(message.contains("WrongChecksum"), "{message}");
}

/// An RGB PNG whose IDAT holds one stored deflate block, zlib-wrapped by hand.
fn png_with_stored_idat(width: u32, height: u32, pixels: &[u8]) -> Vec<u8> {
    let mut raw = Vec::new();
    for row in pixels.chunks((width * 3) as usize) {
        raw.push(0); // filter: none
        raw.extend_from_slice(row);
    }
    let mut zlib = vec![0x78, 0x01, 0x01];
    zlib.extend_from_slice(&(raw.len() as u16).to_le_bytes());
    zlib.extend_from_slice(&(!(raw.len() as u16)).to_le_bytes());
    zlib.extend_from_slice(&raw);
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in &raw {
        a = (a + u32::from(byte)) % 65521;
        b = (b + a) % 65521;
    }
    zlib.extend_from_slice(&((b << 16) | a).to_be_bytes());
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [
        (b"IHDR", &ihdr[..]),
        (b"IDAT", &zlib[..]),
        (b"IEND", &[][..]),
    ] {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32fast::hash(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    out
}

fn apng(frames: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = ::png::Encoder::new(&mut out, 32, 24);
    encoder.set_color(::png::ColorType::Rgb);
    encoder.set_animated(frames, 0).unwrap();
    let mut writer = encoder.write_header().unwrap();
    for n in 0..frames {
        writer.write_image_data(&rgb(32, 24, 10 + n)).unwrap();
    }
    writer.finish().unwrap();
    out
}

#[test]
fn every_apng_frame_is_decoded() {
    let body = apng(3);
    full("image/png", &body);
    let mut broken = body.clone();
    // fdAT: a 4-byte sequence number, then the frame's zlib stream. The second fdAT is frame 3.
    break_png_chunk(&mut broken, b"fdAT", 1, 4);
    let message = corrupt("image/png", &broken);
    assert!(message.contains("in frame 3: "), "{message}");
}

// ---- JPEG ----

fn jpeg(width: u32, height: u32, seed: u32) -> Vec<u8> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 90)
        .write_image(
            &rgb(width, height, seed),
            width,
            height,
            ExtendedColorType::Rgb8,
        )
        .unwrap();
    out
}

/// The offset of the first byte of entropy-coded data, and that of the EOI.
fn jpeg_scan(jpeg: &[u8]) -> (usize, usize) {
    let sos = jpeg.windows(2).position(|w| w == [0xff, 0xda]).unwrap();
    let len = usize::from(u16::from_be_bytes([jpeg[sos + 2], jpeg[sos + 3]]));
    let eoi = jpeg.len() - 2;
    assert_eq!(&jpeg[eoi..], &[0xff, 0xd9]);
    (sos + 2 + len, eoi)
}

#[test]
fn jpeg_decodes_full() {
    full("image/jpeg", &jpeg(64, 48, 1));
    let mut grey = Vec::new();
    JpegEncoder::new_with_quality(&mut grey, 80)
        .write_image(&rgb(40, 30, 2)[..1200], 40, 30, ExtendedColorType::L8)
        .unwrap();
    full("image/jpeg", &grey);
}

#[test]
fn jpeg_with_an_invalid_huffman_code_is_corrupt() {
    let mut body = jpeg(64, 48, 1);
    let (scan, eoi) = jpeg_scan(&body);
    // Sixteen 1-bits are no code of any table (the all-ones code is reserved); 0xFF is stuffed.
    let at = scan + (eoi - scan) / 3;
    for pair in body[at..at + 32].chunks_mut(2) {
        pair.copy_from_slice(&[0xff, 0x00]);
    }
    let message = corrupt("image/jpeg", &body);
    assert!(
        message.starts_with("the JPEG's pixel data is corrupt: "),
        "{message}"
    );
}

/// A known gap: zune-jpeg, like libjpeg-turbo (which only warns "Premature end of JPEG file"),
/// reads zero bits past a marker, so a scan cut short but followed by an EOI decodes; the rest of
/// the image comes out flat. Neither the container nor the decoder can tell.
#[test]
fn jpeg_whose_scan_is_cut_short_before_its_eoi_is_not_caught() {
    let body = jpeg(64, 48, 1);
    let (scan, eoi) = jpeg_scan(&body);
    let mut cut = body[..scan + (eoi - scan) / 2].to_vec();
    cut.extend_from_slice(&[0xff, 0xd9]);
    full("image/jpeg", &cut);
}

#[test]
fn jpeg_with_stray_bytes_between_segments_decodes_as_libjpeg_does() {
    // libjpeg-turbo warns "extraneous bytes before marker" and decodes; zune-jpeg's strict mode
    // would refuse them though they are no pixel data.
    let body = jpeg(32, 24, 1);
    let app0 = 4 + usize::from(u16::from_be_bytes([body[4], body[5]]));
    let mut stray = body[..app0].to_vec();
    stray.extend_from_slice(&[0x00, 0x11, 0x22, 0x33, 0x44, 0xff, 0x00, 0x55]);
    stray.extend_from_slice(&body[app0..]);
    full("image/jpeg", &stray);
}

#[test]
fn jpeg_of_a_process_zune_jpeg_lacks_is_unsupported() {
    let body = jpeg(16, 16, 1);
    let sof = body.windows(2).position(|w| w == [0xff, 0xc0]).unwrap();
    let mut twelve = body.clone();
    twelve[1 + sof] = 0xc1;
    twelve[sof + 4] = 12;
    assert!(unsupported("image/jpeg", &twelve).contains("12-bit"));
    let mut arithmetic = body.clone();
    arithmetic[1 + sof] = 0xc9;
    assert!(unsupported("image/jpeg", &arithmetic).contains("arithmetic coding"));
}

// ---- GIF ----

fn gif(frames: u32) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = GifEncoder::new_with_speed(&mut out, 10);
        for n in 0..frames {
            let image = RgbaImage::from_raw(40, 30, rgba(40, 30, n)).unwrap();
            encoder
                .encode_frame(Frame::from_parts(
                    image,
                    0,
                    0,
                    Delay::from_numer_denom_ms(100, 1),
                ))
                .unwrap();
        }
    }
    out
}

/// The offset of each frame's LZW data (its minimum code size byte), walking the blocks.
fn gif_frames(gif: &[u8]) -> Vec<usize> {
    let table = |flags: u8| {
        if flags & 0x80 != 0 {
            3 << ((flags & 7) + 1)
        } else {
            0
        }
    };
    let mut at = 13 + table(gif[10]);
    let mut out = Vec::new();
    let skip_blocks = |mut at: usize| {
        while gif[at] != 0 {
            at += 1 + usize::from(gif[at]);
        }
        at + 1
    };
    loop {
        match gif[at] {
            0x21 => at = skip_blocks(at + 2),
            0x2c => {
                at += 10 + table(gif[at + 9]);
                out.push(at);
                at = skip_blocks(at + 1);
            }
            _ => return out,
        }
    }
}

#[test]
fn gif_animation_decodes_full() {
    full("image/gif", &gif(1));
    full("image/gif", &gif(3));
}

#[test]
fn gif_with_invalid_lzw_codes_is_corrupt_and_names_the_frame() {
    let body = gif(3);
    let frame = gif_frames(&body)[1];
    let mut broken = body.clone();
    // Past the code size and the first sub-block's length: all-ones codes, far beyond the
    // table's next free code.
    for byte in &mut broken[frame + 2..frame + 12] {
        *byte = 0xff;
    }
    let message = corrupt("image/gif", &broken);
    assert!(message.contains("in frame 2: "), "{message}");
}

#[test]
fn gif_whose_lzw_data_ends_early_is_corrupt() {
    let body = gif(2);
    let frame = gif_frames(&body)[1];
    // Keep 4 bytes of frame 2's first sub-block, then end its data: the blocks stay well formed.
    let mut cut = body[..frame + 1].to_vec();
    cut.push(4);
    cut.extend_from_slice(&body[frame + 2..frame + 6]);
    cut.extend_from_slice(&[0, 0x3b]);
    let message = corrupt("image/gif", &cut);
    assert!(message.contains("in frame 2: "), "{message}");
}

#[test]
fn limits_apply_to_every_frame() {
    let err = decode_bytes(
        "image/gif",
        &gif(3),
        Limits {
            max_pixels: LIMITS.max_pixels,
            max_frames: 2,
        },
    )
    .unwrap_err();
    assert_eq!(err.problem, Problem::TooLarge, "{err}");
    let err = decode_bytes(
        "image/png",
        &png(64, 48, 1),
        Limits {
            max_pixels: 1000,
            max_frames: 1,
        },
    )
    .unwrap_err();
    assert_eq!(err.problem, Problem::TooLarge, "{err}");
}

// ---- WebP ----

fn webp(width: u32, height: u32, seed: u32) -> Vec<u8> {
    let mut out = Vec::new();
    WebPEncoder::new_lossless(&mut out)
        .write_image(
            &rgba(width, height, seed),
            width,
            height,
            ExtendedColorType::Rgba8,
        )
        .unwrap();
    out
}

/// The VP8L chunk's payload in a simple lossless WebP.
fn vp8l(webp: &[u8]) -> &[u8] {
    assert_eq!(&webp[12..16], b"VP8L");
    let len = u32::from_le_bytes(webp[16..20].try_into().unwrap()) as usize;
    &webp[20..20 + len]
}

fn riff_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(kind);
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    if data.len() % 2 == 1 {
        out.push(0);
    }
}

fn riff(chunks: &[u8]) -> Vec<u8> {
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(chunks.len() as u32 + 4).to_le_bytes());
    out.extend_from_slice(b"WEBP");
    out.extend_from_slice(chunks);
    out
}

fn u24(n: u32) -> [u8; 3] {
    let b = n.to_le_bytes();
    [b[0], b[1], b[2]]
}

/// An animated WebP of lossless frames covering a 24x16 canvas.
fn animated_webp(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut chunks = Vec::new();
    let mut vp8x = vec![0x12, 0, 0, 0]; // animation and alpha
    vp8x.extend_from_slice(&u24(23));
    vp8x.extend_from_slice(&u24(15));
    riff_chunk(&mut chunks, b"VP8X", &vp8x);
    riff_chunk(&mut chunks, b"ANIM", &[0, 0, 0, 0, 0, 0]);
    for frame in frames {
        let mut anmf = Vec::new();
        anmf.extend_from_slice(&u24(0));
        anmf.extend_from_slice(&u24(0));
        anmf.extend_from_slice(&u24(23));
        anmf.extend_from_slice(&u24(15));
        anmf.extend_from_slice(&u24(100));
        anmf.push(0);
        riff_chunk(&mut anmf, b"VP8L", frame);
        riff_chunk(&mut chunks, b"ANMF", &anmf);
    }
    riff(&chunks)
}

#[test]
fn webp_lossless_decodes_full() {
    full("image/webp", &webp(48, 32, 1));
}

#[test]
fn webp_whose_lossless_data_ends_early_is_corrupt() {
    let body = webp(48, 32, 1);
    let data = vp8l(&body);
    let mut chunks = Vec::new();
    riff_chunk(&mut chunks, b"VP8L", &data[..data.len() / 2]);
    corrupt("image/webp", &riff(&chunks));
}

#[test]
fn webp_with_broken_lossless_data_is_corrupt() {
    let body = webp(48, 32, 1);
    let mut data = vp8l(&body).to_vec();
    // Past the 5-byte header, into the entropy codes.
    for byte in &mut data[8..40] {
        *byte = 0xff;
    }
    let mut chunks = Vec::new();
    riff_chunk(&mut chunks, b"VP8L", &data);
    corrupt("image/webp", &riff(&chunks));
}

#[test]
fn every_animated_webp_frame_is_decoded() {
    let frames: Vec<Vec<u8>> = (0..3).map(|n| vp8l(&webp(24, 16, n)).to_vec()).collect();
    full("image/webp", &animated_webp(&frames));
    let mut broken = frames.clone();
    let half = broken[1].len() / 2;
    broken[1].truncate(half);
    let message = corrupt("image/webp", &animated_webp(&broken));
    assert!(message.contains("in frame 2: "), "{message}");
}

// ---- BMP ----

#[test]
fn bmp_decodes_full() {
    let mut body = Vec::new();
    BmpEncoder::new(&mut body)
        .write_image(&rgb(30, 20, 1), 30, 20, ExtendedColorType::Rgb8)
        .unwrap();
    full("image/bmp", &body);
}

/// A 4x2 8-bit BMP compressed with RLE8 (`rle` is the pixel data).
fn bmp_rle8(rle: &[u8]) -> Vec<u8> {
    let palette: Vec<u8> = (0..4u8).flat_map(|i| [i * 60, i * 30, i * 10, 0]).collect();
    let offset = 14 + 40 + palette.len();
    let mut out = b"BM".to_vec();
    out.extend_from_slice(&((offset + rle.len()) as u32).to_le_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&(offset as u32).to_le_bytes());
    out.extend_from_slice(&40u32.to_le_bytes());
    out.extend_from_slice(&4i32.to_le_bytes());
    out.extend_from_slice(&2i32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&8u16.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes()); // BI_RLE8
    out.extend_from_slice(&(rle.len() as u32).to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&4u32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&palette);
    out.extend_from_slice(rle);
    out
}

#[test]
fn bmp_with_broken_rle_data_is_corrupt() {
    // Row 1: 4 pixels of colour 1; end of line; row 2: 4 of colour 2; end of bitmap.
    full("image/bmp", &bmp_rle8(&[4, 1, 0, 0, 4, 2, 0, 1]));
    // A delta that jumps far below the bitmap.
    corrupt("image/bmp", &bmp_rle8(&[4, 1, 0, 2, 0, 200, 4, 2, 0, 1]));
}

// ---- TIFF ----

fn tiff(pages: u32, compression: ::tiff::encoder::Compression) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    let mut encoder = ::tiff::encoder::TiffEncoder::new(&mut out)
        .unwrap()
        .with_compression(compression);
    for n in 0..pages {
        encoder
            .write_image::<::tiff::encoder::colortype::RGB8>(40, 30, &rgb(40, 30, n))
            .unwrap();
    }
    out.into_inner()
}

/// The first strip of each page: (offset, length).
fn tiff_strips(body: &[u8]) -> Vec<(usize, usize)> {
    let mut decoder = ::tiff::decoder::Decoder::new(Cursor::new(body)).unwrap();
    let mut out = Vec::new();
    loop {
        let offsets = decoder
            .get_tag_u64_vec(::tiff::tags::Tag::StripOffsets)
            .unwrap();
        let counts = decoder
            .get_tag_u64_vec(::tiff::tags::Tag::StripByteCounts)
            .unwrap();
        out.push((offsets[0] as usize, counts[0] as usize));
        if !decoder.more_images() {
            return out;
        }
        decoder.next_image().unwrap();
    }
}

#[test]
fn tiff_pages_decode_full() {
    use ::tiff::encoder::{Compression, DeflateLevel};
    full("image/tiff", &tiff(1, Compression::Uncompressed));
    full("image/tiff", &tiff(3, Compression::Lzw));
    full(
        "image/tiff",
        &tiff(2, Compression::Deflate(DeflateLevel::Fast)),
    );
    full("image/tiff", &tiff(2, Compression::Packbits));
}

#[test]
fn every_tiff_page_is_decoded() {
    use ::tiff::encoder::{Compression, DeflateLevel};
    for compression in [Compression::Lzw, Compression::Deflate(DeflateLevel::Fast)] {
        let body = tiff(3, compression);
        let (offset, len) = tiff_strips(&body)[2];
        let mut broken = body.clone();
        for byte in &mut broken[offset + 2..offset + len.min(40)] {
            *byte = 0xff;
        }
        let message = corrupt("image/tiff", &broken);
        assert!(message.contains("in page 3: "), "{message}");
    }
}

// ---- ICO ----

/// A 32-bit BMP image as an icon holds it: header with twice the height, BGRA rows bottom-up,
/// then the AND mask.
fn ico_bmp(size: u32) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&40u32.to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&(size * 2).to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&32u16.to_le_bytes());
    out.extend_from_slice(&[0; 24]);
    out.extend_from_slice(&rgba(size, size, 5));
    let mask_row = size.div_ceil(32) * 4;
    out.extend(std::iter::repeat_n(0, (mask_row * size) as usize));
    out
}

fn ico(images: &[(u32, Vec<u8>)]) -> Vec<u8> {
    let mut out = vec![0, 0, 1, 0];
    out.extend_from_slice(&(images.len() as u16).to_le_bytes());
    let mut offset = 6 + 16 * images.len();
    for (size, data) in images {
        out.extend_from_slice(&[*size as u8, *size as u8, 0, 0, 1, 0, 32, 0]);
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(offset as u32).to_le_bytes());
        offset += data.len();
    }
    for (_, data) in images {
        out.extend_from_slice(data);
    }
    out
}

fn ico_png(size: u32, seed: u32) -> Vec<u8> {
    let mut out = Vec::new();
    PngEncoder::new(&mut out)
        .write_image(
            &rgba(size, size, seed),
            size,
            size,
            ExtendedColorType::Rgba8,
        )
        .unwrap();
    out
}

#[test]
fn ico_images_decode_full() {
    let mut body = Vec::new();
    let frames = [
        IcoFrame::as_png(&rgba(16, 16, 1), 16, 16, ExtendedColorType::Rgba8).unwrap(),
        IcoFrame::as_png(&rgba(32, 32, 2), 32, 32, ExtendedColorType::Rgba8).unwrap(),
    ];
    IcoEncoder::new(&mut body).encode_images(&frames).unwrap();
    full("image/vnd.microsoft.icon", &body);
    full(
        "image/vnd.microsoft.icon",
        &ico(&[(16, ico_bmp(16)), (32, ico_png(32, 3)), (8, ico_bmp(8))]),
    );
}

#[test]
fn every_ico_image_is_decoded() {
    let mut second = ico_png(32, 3);
    break_png_chunk(&mut second, b"IDAT", 0, 0);
    let body = ico(&[(16, ico_bmp(16)), (32, second), (16, ico_png(16, 4))]);
    let message = corrupt("image/vnd.microsoft.icon", &body);
    assert!(message.contains("in image 2: "), "{message}");
}

// ---- JPEG XL (made with cjxl: no Rust encoder) ----

#[test]
fn jxl_decodes_full() {
    full("image/jxl", STILL_JXL);
    full("image/jxl", LOSSY_JXL);
    full("image/jxl", ANIM_JXL);
}

#[test]
fn jxl_with_broken_entropy_coded_data_is_corrupt() {
    for body in [STILL_JXL, LOSSY_JXL, ANIM_JXL] {
        let mut broken = body.to_vec();
        let at = broken.len() / 2;
        for byte in &mut broken[at..at + 8] {
            *byte ^= 0xff;
        }
        corrupt("image/jxl", &broken);
    }
}

// ---- the rest ----

#[test]
fn avif_and_heif_are_unsupported_not_corrupt() {
    assert!(unsupported("image/avif", b"anything").contains("AVIF"));
    assert!(unsupported("image/heif", b"anything").contains("HEIF"));
}

#[test]
fn a_panic_in_a_decoder_is_corrupt_data_not_a_crash() {
    let err = guarded::<()>("PNG", || panic!("index out of bounds")).unwrap_err();
    assert_eq!(err.problem, Problem::Corrupt);
    assert_eq!(
        err.message,
        "the PNG's pixel data is corrupt: the decoder panicked: index out of bounds"
    );
    let n = 7;
    let err = guarded::<()>("GIF", || panic!("frame {n}")).unwrap_err();
    assert!(
        err.message.ends_with("panicked: frame 7"),
        "{}",
        err.message
    );
    assert_eq!(guarded("GIF", || Ok(3)), Ok(3));
}

#[test]
fn decode_file_reads_the_body_back() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut file, &apng(2)).unwrap();
    assert_eq!(
        decode_file("image/png", file.path(), LIMITS),
        Ok(Decoded::Full)
    );
}
// Made with cjxl (libjxl 0.7): a 16x16 lossless still (-d 0), a 32x32 lossy one (VarDCT, -d 1),
// and a 16x16 lossless animation of 3 frames.
const STILL_JXL: &[u8] = &[
    0xff, 0x0a, 0x43, 0x40, 0x40, 0x71, 0x21, 0x08, 0x02, 0x01, 0x00, 0x2c, 0x02, 0x4b, 0x28, 0xb1,
    0x71, 0x31, 0xb7, 0x25, 0x31, 0xeb, 0xe1, 0x22, 0xf1, 0x90, 0x12, 0x12, 0x12, 0x4a, 0x3a, 0x44,
    0x8c, 0x22, 0xa0, 0x8c, 0x11, 0x31, 0x8c, 0x8e, 0x5d, 0x22, 0x40, 0x38, 0xe0, 0xf2, 0x36, 0x02,
    0x00, 0x01, 0x84, 0x00, 0x02, 0x00, 0x89, 0xbb, 0xd0, 0xbd, 0x00, 0x00, 0x00, 0x00, 0x40, 0x35,
    0x3f, 0x00, 0x00, 0x00, 0x40, 0xd6, 0xb5, 0xdb, 0xe4, 0x8d, 0xe4, 0x8f, 0x13, 0x29, 0x11, 0xe0,
    0x8f, 0xc1, 0x0f, 0x24, 0x8a, 0x06, 0x00, 0x45, 0x1b, 0x00, 0xa0, 0x6a, 0x08, 0xa0, 0xc1, 0x77,
    0x82, 0x3f, 0x05, 0x08, 0x78, 0xfb, 0xff, 0x01, 0x3f, 0x70, 0x51, 0x83, 0x8f, 0xc8, 0xd1, 0xe0,
    0x9b, 0x91, 0x00, 0xf8, 0x49, 0x88, 0x81, 0xa1, 0x3d, 0x7f, 0xd0, 0xf5, 0x0b, 0x3f, 0x22, 0xed,
    0xc0, 0x37, 0x0c, 0x2d, 0x93, 0x05, 0xf0, 0xcb, 0x43, 0x33, 0x09, 0xe6, 0xcb, 0xc4, 0xc8, 0x30,
    0x30, 0x52, 0x85, 0x19, 0x30, 0xd7, 0x6a, 0x6a,
];
const LOSSY_JXL: &[u8] = &[
    0xff, 0x0a, 0x47, 0x40, 0x42, 0x71, 0x21, 0x00, 0x12, 0x88, 0x02, 0x00, 0x94, 0x08, 0x4d, 0x94,
    0x1c, 0x00, 0x00, 0x15, 0x2a, 0xa3, 0x8c, 0x1b, 0xbc, 0x9c, 0xeb, 0xf9, 0xf2, 0x43, 0x87, 0xc5,
    0xb4, 0x8d, 0xeb, 0x0c, 0x6d, 0xb5, 0x6d, 0x61, 0x49, 0xa2, 0xc8, 0x38, 0x36, 0x49, 0x27, 0x70,
    0x98, 0x49, 0x90, 0x48, 0xb2, 0x00, 0x32, 0x6f, 0x05, 0x02, 0xdc, 0x9f, 0x87, 0x03, 0x06, 0x43,
    0x55, 0xe4, 0x7c, 0xdf, 0x99, 0xdf, 0x3d, 0xf4, 0xfa, 0x0f, 0xdc, 0x90, 0xae, 0xf8, 0x03, 0x43,
    0xb1, 0x95, 0xc3, 0x33, 0x72, 0xed, 0x89, 0x59, 0x8c, 0x2a, 0x16, 0x52, 0x52, 0x1d, 0xe6, 0x9b,
    0xb3, 0x41, 0xc2, 0x53, 0xdb, 0x22, 0x50, 0xc5, 0x26, 0x35, 0x75, 0x47, 0xc6, 0xcc, 0xf1, 0x0f,
    0x9a, 0x02, 0x00, 0x54, 0x48, 0x41, 0x93, 0x01, 0x18, 0xb5, 0x4a, 0xdd, 0xdd, 0x25, 0x33, 0x06,
    0xab, 0x99, 0x14, 0xf1, 0x14, 0x0d, 0x00, 0x80, 0x8c, 0x73, 0x40, 0x6e, 0x07, 0x79, 0x53, 0xc3,
    0xc0, 0x03, 0xd0, 0x9f, 0xc0, 0x61, 0x1a, 0x64, 0x27, 0x27, 0x9c, 0xfc, 0x67, 0xec, 0xeb, 0x33,
    0x9b, 0xf1, 0x65, 0x6b, 0xa8, 0x22, 0x1e, 0x7a, 0x79, 0x7b, 0x25, 0x3f, 0xad, 0xd1, 0xf7, 0xc4,
    0xef, 0x40, 0xb9, 0x4e, 0xf8, 0xd0, 0xc3, 0xc4, 0x3f, 0xca, 0xcb, 0x4f, 0xd6, 0x72, 0xad, 0xed,
    0xb8, 0x08, 0x41, 0x9a, 0x10, 0xca, 0xa2, 0xb0, 0x17, 0x1e, 0xb4, 0x3b, 0x5d, 0x52, 0x3c, 0x35,
    0xe6, 0x3c, 0xc2, 0x26, 0x7c, 0x50, 0x83, 0xc7, 0x23, 0xd6, 0xe1, 0xa1, 0x9b, 0x06, 0x12, 0x12,
    0x9f, 0x69, 0x3b, 0x7e, 0xf7, 0x95, 0x9f, 0x9d, 0x95, 0xd6, 0x5f, 0xd1, 0x76, 0x21, 0x1f, 0x5e,
    0xd9, 0xe4, 0x27, 0x4a, 0x42, 0x1a, 0x77, 0x54, 0x1a, 0x2a, 0xb6, 0x9c, 0xb3, 0xd0, 0x81, 0x27,
    0x07, 0x0e, 0x98, 0xbe, 0x2a, 0x61, 0x95, 0x12, 0xea, 0x04, 0x83, 0x1a, 0x8f, 0x01, 0x16, 0x12,
    0xcd, 0x8e, 0xe3, 0xdf, 0x53, 0xb5, 0x92, 0x69, 0xc8, 0xcc, 0xb7, 0x41, 0xbb, 0x1b, 0x7c, 0xec,
    0xe6, 0xd9, 0x6f, 0x35, 0x95, 0xf5, 0x6e, 0xe6, 0xe4, 0xbc, 0xeb, 0x27, 0x11, 0x73, 0x24, 0x74,
    0xdd, 0xbf, 0xcf, 0xa4, 0x28, 0x41, 0x54, 0x68, 0x30, 0x71, 0x57, 0x07, 0x4b, 0x76, 0xc5, 0xed,
    0x7d, 0xab, 0xec, 0xb4, 0x19, 0x0d, 0xa6, 0x11, 0xc1, 0xe8, 0x39, 0xe3, 0x91, 0x1b, 0x91, 0x79,
    0x5b, 0xd9, 0x46, 0xae, 0xe9, 0x48, 0x2a, 0x68, 0x50, 0x68, 0x4c, 0xe9, 0x1c, 0x77, 0x28, 0xac,
    0xa8, 0xd4, 0x9b, 0xe5, 0x1d, 0xc1, 0x94, 0x08, 0x10, 0x06, 0x3e, 0x0a, 0x81, 0xf3, 0xdb, 0xee,
    0x87, 0x7b, 0x82, 0xcd, 0x80, 0x6f, 0x58, 0xf0, 0x53, 0xf4, 0x07, 0xc4, 0x4c, 0x7f, 0x54, 0x2a,
    0x97, 0x05, 0x3d, 0xee, 0xe8, 0x3d, 0xd5, 0x25, 0x82, 0xcb, 0xad, 0xa5, 0xda, 0x47, 0x1c, 0x90,
    0x26, 0xc7, 0x37, 0x7a, 0x7e, 0xaa, 0xfc, 0x98, 0x31, 0xdd, 0x71, 0xd4, 0x79, 0x60, 0x5c, 0x26,
    0xdd, 0x6d, 0xd5, 0x32, 0x88, 0x3f, 0x6d, 0x54, 0xe7, 0x16, 0x00, 0x7d, 0x74, 0x17, 0xfa, 0x39,
    0x5f, 0xb5, 0xf1, 0x36, 0x1a, 0xac, 0xda, 0x6c, 0x03, 0x60, 0xd2, 0xce, 0x33, 0x78, 0x7f, 0xe9,
    0xdf, 0xa7, 0x5d, 0x8d, 0xf6, 0x2d, 0xed, 0x16, 0xd6, 0xb5, 0x9e, 0xfe, 0x14, 0xcb, 0xa8, 0x7c,
    0xb5, 0xd3, 0x41, 0xdd, 0xd8, 0xa9, 0x8c, 0x06, 0xbb, 0xb6, 0xf6, 0xa8, 0x22, 0xf2, 0xa1, 0x56,
    0x4a, 0x12, 0x2c, 0x7d, 0xbf, 0xb8, 0x30, 0xce, 0x01, 0xb4, 0x47, 0xcf, 0xc8, 0x91, 0x1f, 0x5b,
    0xeb, 0x6c, 0xf3, 0xf3, 0xf6, 0xa1, 0x38, 0x04, 0xea, 0xcd, 0x8e, 0x35, 0x9d, 0x36, 0x01, 0xec,
    0x25, 0x97, 0xc6, 0xf4, 0x52, 0x5e, 0x2b, 0x0d, 0x07, 0x37, 0x1d, 0x8d, 0xf7, 0xed, 0xe0, 0x9c,
    0xb3, 0xa2, 0x74, 0x0b, 0xe5, 0xd0, 0x9a, 0x5c, 0x0e, 0xcc, 0x3c, 0x62, 0x5b, 0x17, 0xec, 0xaf,
    0xf8, 0x21, 0xa9, 0x07, 0x2b, 0x2e, 0xb8, 0xd2, 0x03, 0x89, 0x7f, 0x0c, 0x42, 0xd9, 0xb0, 0xd4,
    0xc1, 0x14, 0x01,
];
const ANIM_JXL: &[u8] = &[
    0xff, 0x0a, 0x43, 0x04, 0x03, 0x08, 0x28, 0x2e, 0x09, 0x08, 0x02, 0x92, 0x09, 0x00, 0x00, 0x0c,
    0x01, 0x4b, 0x18, 0x9b, 0xed, 0x4e, 0x41, 0xc2, 0x84, 0x88, 0x11, 0xca, 0x2e, 0x11, 0x20, 0x36,
    0x02, 0x00, 0x01, 0x84, 0x00, 0x02, 0x00, 0xed, 0xb1, 0x00, 0x04, 0x00, 0x24, 0xd3, 0x02, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0x98, 0x94, 0x6c, 0xd0, 0x48, 0x01, 0x23, 0xfe, 0xd8, 0x8e,
    0x6b, 0xf0, 0xf9, 0xdb, 0xf6, 0x6e, 0xc4, 0x0f, 0x49, 0x23, 0x41, 0x08, 0x51, 0x08, 0x56, 0xc8,
    0x4f, 0x08, 0xa8, 0x12, 0x08, 0x02, 0x92, 0x09, 0x00, 0x00, 0x80, 0x01, 0x4b, 0x28, 0x35, 0xc6,
    0x3e, 0xac, 0x87, 0x54, 0x50, 0x50, 0x50, 0x12, 0x8c, 0x00, 0xd2, 0x42, 0x85, 0x31, 0x06, 0x8f,
    0x8c, 0x31, 0xa4, 0xc2, 0x90, 0x51, 0x66, 0xcc, 0x8c, 0x99, 0x31, 0x37, 0x02, 0x00, 0x01, 0x84,
    0x00, 0x02, 0x00, 0x89, 0xd7, 0xb2, 0x4c, 0x00, 0xff, 0xfc, 0x00, 0x00, 0x0e, 0xfd, 0x01, 0x00,
    0xfe, 0xff, 0x01, 0xa0, 0xdf, 0x1f, 0x00, 0x00, 0x8c, 0x1f, 0x80, 0xd5, 0xc5, 0x55, 0x57, 0xe7,
    0x33, 0x41, 0x06, 0x22, 0x87, 0x8c, 0xb9, 0x11, 0xeb, 0x44, 0x08, 0x95, 0x46, 0x75, 0x29, 0x10,
    0xd3, 0x33, 0xb5, 0x38, 0x68, 0x9e, 0x51, 0x47, 0x48, 0x47, 0x64, 0x63, 0x08, 0x02, 0x92, 0x05,
    0x00, 0x84, 0x01, 0x4b, 0x28, 0x35, 0xc6, 0x3e, 0xac, 0x87, 0x49, 0x41, 0x41, 0x41, 0x49, 0x30,
    0x02, 0x48, 0x0b, 0x15, 0xc6, 0x18, 0x3c, 0x32, 0xc6, 0x90, 0x0a, 0x43, 0x46, 0x7d, 0x97, 0x31,
    0xe3, 0xc5, 0x98, 0x1b, 0x01, 0x80, 0x00, 0x42, 0x00, 0x01, 0x80, 0xc4, 0x37, 0x9f, 0xc1, 0x12,
    0x00, 0xfb, 0xfd, 0x00, 0x00, 0xd7, 0xfe, 0x00, 0xe0, 0xbb, 0x1f, 0x00, 0x00, 0x9a, 0x1f, 0x00,
    0xe0, 0xe6, 0x38, 0x15, 0xe2, 0xeb, 0xb8, 0xdb, 0x00, 0xd5, 0x5b, 0x25, 0x63, 0xe1, 0xc5, 0xe9,
    0x0b, 0x49, 0x6c, 0x95, 0x4d, 0xa5, 0x13, 0xaa, 0xcb, 0xeb, 0xca, 0x2f, 0x74, 0x29, 0xb4, 0xe5,
    0x1c, 0x53, 0xdc, 0x04,
];
