//! BMP and ICO through the `image` crate. An icon's PNG images go to the PNG decoder; its BMP
//! images each through image's ICO decoder (which applies the AND mask), handed an icon of that
//! one image, since on a whole icon it decodes only the largest.

use std::error::Error;
use std::io::{Cursor, ErrorKind};

use image::codecs::bmp::BmpDecoder;
use image::codecs::ico::IcoDecoder;
use image::{ImageDecoder, ImageError};

use super::{At, Cx, Decoded, Invalid, Source, png};
use crate::validate::{le16, le32};

pub(super) fn decode(input: &mut dyn Source, cx: &Cx) -> Result<Decoded, Invalid> {
    match BmpDecoder::new(input) {
        Ok(decoder) => read(cx, None, decoder),
        Err(e) => error(cx, None, e),
    }
}

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

pub(super) fn decode_ico(input: &mut dyn Source, cx: &Cx) -> Result<Decoded, Invalid> {
    let mut icon = Vec::new();
    input
        .read_to_end(&mut icon)
        .map_err(|e| Invalid::corrupt(format!("jobd could not read the ICO back: {e}")))?;
    let header = icon
        .get(..6)
        .ok_or_else(|| cx.corrupt(None, "its directory is cut short"))?;
    let count = le16(header, 4);
    cx.count("image", count.into())?;
    for i in 0..usize::from(count) {
        let n = i as u32 + 1;
        let at: At = Some(("image", n));
        let entry = icon
            .get(6 + 16 * i..6 + 16 * (i + 1))
            .ok_or_else(|| cx.corrupt(at, "its directory entry is cut short"))?;
        let (size, offset) = (le32(entry, 8) as usize, le32(entry, 12) as usize);
        let data = offset
            .checked_add(size)
            .and_then(|end| icon.get(offset..end))
            .ok_or_else(|| cx.corrupt(at, "its data lies outside the file"))?;
        if data.starts_with(PNG_SIGNATURE) {
            png::decode_png(&mut Cursor::new(data), cx, Some(n))?;
            continue;
        }
        let mut alone = Vec::new();
        alone
            .try_reserve_exact(22 + data.len())
            .map_err(|_| cx.too_large(at, "a copy of its data"))?;
        alone.extend_from_slice(&[0, 0, 1, 0, 1, 0]);
        alone.extend_from_slice(&entry[..12]);
        alone.extend_from_slice(&22u32.to_le_bytes());
        alone.extend_from_slice(data);
        let decoded = match IcoDecoder::new(Cursor::new(&alone[..])) {
            Ok(decoder) => read(cx, at, decoder)?,
            Err(e) => error(cx, at, e)?,
        };
        if decoded != Decoded::Full {
            return Ok(decoded);
        }
    }
    Ok(Decoded::Full)
}

/// Decodes one image into a buffer of its size, under image's limits.
fn read(cx: &Cx, at: At, mut decoder: impl ImageDecoder) -> Result<Decoded, Invalid> {
    let (width, height) = decoder.dimensions();
    let (what, n) = at.unwrap_or(("frame", 1));
    cx.frame(what, n, width.into(), height.into())?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(cx.max_side());
    limits.max_image_height = Some(cx.max_side());
    limits.max_alloc = Some(cx.budget);
    if let Err(e) = decoder.set_limits(limits) {
        return error(cx, at, e);
    }
    let mut buf = cx.buffer(at, decoder.total_bytes())?;
    match decoder.read_image(&mut buf) {
        Ok(()) => Ok(Decoded::Full),
        Err(e) => error(cx, at, e),
    }
}

fn error(cx: &Cx, at: At, e: ImageError) -> Result<Decoded, Invalid> {
    match e {
        ImageError::Unsupported(what) => Ok(cx.unsupported(what)),
        ImageError::Limits(what) => Err(cx.too_large(at, what)),
        // image's own words are "Format error decoding BMP: <the decoder's>": keep the latter.
        ImageError::Decoding(e) => Err(match e.source() {
            Some(words) => cx.corrupt(at, words),
            None => cx.corrupt(at, e),
        }),
        ImageError::IoError(io) if io.kind() == ErrorKind::UnexpectedEof => {
            Err(cx.corrupt(at, "its pixel data ends before its last row"))
        }
        other => Err(cx.corrupt(at, other)),
    }
}
