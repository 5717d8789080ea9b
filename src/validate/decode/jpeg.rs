//! JPEG through `zune-jpeg` (image's JPEG decoder) in strict mode: a Huffman code that decodes
//! to nothing, a marker out of place in the entropy-coded data, or data that ends (at the end of
//! the file) before the last block fail, where the lenient mode image uses paints the rest grey. The file is decoded in memory, to
//! samples in its own colour space (no conversion to RGB).
//!
//! Not caught: a scan cut short and followed by a marker. zune-jpeg, like libjpeg-turbo (which
//! only warns "premature end of data segment"), reads zero bits past it, and zero bits decode.

use std::ops::Range;

use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;
use zune_jpeg::errors::DecodeErrors;

use super::{Cx, Decoded, Invalid, Source};
use crate::validate::be16;

pub(super) fn decode(input: &mut dyn Source, cx: &Cx) -> Result<Decoded, Invalid> {
    let mut jpeg = Vec::new();
    input
        .read_to_end(&mut jpeg)
        .map_err(|e| Invalid::corrupt(format!("jobd could not read the JPEG back: {e}")))?;
    if let Some(process) = headers(&mut jpeg) {
        return Ok(cx.unsupported(format_args!("zune-jpeg does not decode {process}")));
    }
    let side = usize::try_from(cx.max_side()).unwrap_or(usize::MAX);
    let options = DecoderOptions::default()
        .set_strict_mode(true)
        .set_max_width(side)
        .set_max_height(side);
    let mut decoder = JpegDecoder::new_with_options(ZCursor::new(&jpeg[..]), options);
    if let Err(e) = decoder.decode_headers() {
        return error(cx, e);
    }
    let (width, height) = decoder.dimensions().unwrap_or((0, 0));
    cx.frame("frame", 1, width as u64, height as u64)?;
    // Samples in the file's own colour space where zune-jpeg copies them out as they are:
    // converting them to RGB proves nothing.
    if let Some(
        space @ (ColorSpace::YCbCr
        | ColorSpace::RGB
        | ColorSpace::Luma
        | ColorSpace::CMYK
        | ColorSpace::YCCK),
    ) = decoder.input_colorspace()
    {
        decoder.set_options(decoder.options().jpeg_set_out_colorspace(space));
    }
    let Some(len) = decoder.output_buffer_size() else {
        return Err(cx.too_large(None, "its pixels do not fit in memory"));
    };
    let mut buf = cx.buffer(None, len as u64)?;
    match decoder.decode_into(&mut buf) {
        Ok(()) => Ok(Decoded::Full),
        Err(e) => error(cx, e),
    }
}

fn error(cx: &Cx, e: DecodeErrors) -> Result<Decoded, Invalid> {
    match e {
        DecodeErrors::Unsupported(what) => Ok(cx.unsupported(format_args!("{what:?}"))),
        DecodeErrors::LargeDimensions(_) => Err(cx.too_large(None, e)),
        // zune-jpeg's guard against progressive scan bombs (100 scans) has no variant of its own.
        DecodeErrors::Format(ref words) if words.starts_with("Too many scans") => {
            Err(cx.too_large(None, e))
        }
        // Its Display of these is their Debug, in quotes.
        DecodeErrors::Format(words) => Err(cx.corrupt(None, words)),
        DecodeErrors::FormatStatic(words) => Err(cx.corrupt(None, words)),
        other => Err(cx.corrupt(None, other)),
    }
}

/// Walks the segments before the first scan. Gives the coding process of the frame header
/// (SOFn) if zune-jpeg cannot decode it: it decodes 8-bit Huffman-coded baseline, extended and
/// progressive JPEG only. Cuts out stray bytes between segments, which libjpeg-turbo skips with a
/// warning (and the streaming validator may tolerate) but zune-jpeg's strict mode refuses: they
/// are no pixel data. Where the markers cannot be walked, the decoder has the last word.
fn headers(jpeg: &mut Vec<u8>) -> Option<&'static str> {
    let mut stray: Vec<Range<usize>> = Vec::new();
    let mut at = 2; // after SOI
    loop {
        // Fill bytes (0xFF runs) may pad a marker.
        while jpeg.get(at) == Some(&0xFF) && jpeg.get(at + 1) == Some(&0xFF) {
            at += 1;
        }
        let marker = match (jpeg.get(at), jpeg.get(at + 1)) {
            (Some(0xFF), Some(&marker)) if marker != 0 => marker,
            (Some(_), Some(_)) => {
                let Some(next) = next_marker(jpeg, at + 1) else {
                    break;
                };
                if stray.len() == MAX_STRAY {
                    break;
                }
                stray.push(at..next);
                at = next;
                continue;
            }
            _ => break,
        };
        match marker {
            0x01 | 0xD0..=0xD8 => at += 2,
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                let precision = *jpeg.get(at + 4)?;
                let lacking = match marker {
                    0xC0..=0xC2 if precision == 8 => None,
                    0xC0..=0xC2 if precision == 12 => Some("12-bit samples"),
                    0xC0..=0xC2 => Some("samples of neither 8 nor 12 bits"),
                    0xC3 => Some("lossless coding (SOF3)"),
                    0xC5..=0xC7 => Some("hierarchical coding"),
                    0xC9..=0xCB => Some("arithmetic coding"),
                    _ => Some("hierarchical arithmetic coding"),
                };
                if lacking.is_some() {
                    return lacking;
                }
                at += 2 + usize::from(be16(jpeg.get(at + 2..at + 4)?, 0));
            }
            // The first scan, or the end: the headers are over.
            0xD9 | 0xDA => break,
            _ => match jpeg.get(at + 2..at + 4) {
                Some(len) => at += 2 + usize::from(be16(len, 0)),
                None => break,
            },
        }
    }
    for range in stray.into_iter().rev() {
        jpeg.drain(range);
    }
    None
}

/// Runs of stray bytes cut out at most; a header with more is left to the decoder to refuse.
const MAX_STRAY: usize = 16;

/// The offset of the next marker (0xFF then neither 0x00 nor 0xFF) at or after `from`.
fn next_marker(jpeg: &[u8], mut from: usize) -> Option<usize> {
    loop {
        let at = from + memchr::memchr(0xFF, jpeg.get(from..)?)?;
        match jpeg.get(at + 1) {
            Some(0x00 | 0xFF) => from = at + 1,
            Some(_) => return Some(at),
            None => return None,
        }
    }
}
