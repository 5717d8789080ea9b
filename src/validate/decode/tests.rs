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
use crate::validate::jxl::samples::{ANIM_JXL, LOSSY_JXL, STILL_JXL};

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
