//! Full decoding (`validate = "decode"`): after the streaming validator has proved a body whole,
//! every pixel of every frame, page or embedded image the decoder can reach is decoded with
//! pure-Rust decoders, under limits on pixels and memory and with panics caught, so that corrupt
//! compressed data fails.
//!
//! Proves: the compressed data decodes without an error into as many pixels as the headers promise
//! (for PNG, with each zlib stream's Adler-32 checked). Does not prove: that lossy data (JPEG,
//! VP8) is what its encoder wrote, since flipped bits there often decode to wrong colours without
//! an error; nor anything for AVIF/HEIF, which have no memory-safe decoder, and for rare variants
//! the decoders lack (12-bit or arithmetic-coded JPEG, exotic TIFF compressions): those are
//! [`Decoded::Unsupported`], proved to their structure only.

use std::any::Any;
use std::fmt::Display;
use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Seek};
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;

use super::{Invalid, Limits, group};

mod bmp;
mod gif;
mod jpeg;
mod jxl;
mod png;
#[cfg(test)]
mod tests;
mod tiff;
mod webp;

/// How far a body was proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// Every pixel (of every frame the decoder can reach) decoded.
    Full,
    /// No memory-safe decoder for this format or this variant of it: unsupported is not corrupt;
    /// the reason says which.
    Unsupported(String),
}

/// Decodes the whole file at `path`, whose format sniff detected as `mime` and the structural
/// validator accepted. Corrupt data is [`Invalid::corrupt`], a frame or a decoder's memory over
/// the limits [`Invalid::too_large`].
pub fn decode_file(mime: &str, path: &Path, limits: Limits) -> Result<Decoded, Invalid> {
    let file = File::open(path).map_err(|e| {
        Invalid::corrupt(format!(
            "jobd could not read the body back to decode it: {e}"
        ))
    })?;
    // The streaming decoders (PNG, GIF, WebP, TIFF, BMP) read through this buffer and never hold
    // the whole file; JPEG, JPEG XL and ICO read it into memory (it is at most the size cap).
    decode(mime, &mut BufReader::with_capacity(64 << 10, file), limits)
}

/// [`decode_file`] on a body held in memory (tests, fuzzing, benchmarks).
#[cfg_attr(
    product_only,
    expect(dead_code, reason = "tests, fuzzing and the benchmark harness use it")
)]
pub fn decode_bytes(mime: &str, bytes: &[u8], limits: Limits) -> Result<Decoded, Invalid> {
    decode(mime, &mut Cursor::new(bytes), limits)
}

/// What the decoders read from: the file, or a slice in tests.
trait Source: BufRead + Seek {}
impl<T: BufRead + Seek> Source for T {}

/// One format's decoder.
type Decoder = fn(&mut dyn Source, &Cx) -> Result<Decoded, Invalid>;

fn decode(mime: &str, input: &mut dyn Source, limits: Limits) -> Result<Decoded, Invalid> {
    let (format, decoder): (&'static str, Decoder) = match mime {
        "image/png" => ("PNG", png::decode),
        "image/jpeg" => ("JPEG", jpeg::decode),
        "image/gif" => ("GIF", gif::decode),
        "image/webp" => ("WebP", webp::decode),
        "image/bmp" => ("BMP", bmp::decode),
        "image/tiff" => ("TIFF", tiff::decode),
        "image/vnd.microsoft.icon" => ("ICO", bmp::decode_ico),
        "image/jxl" => ("JPEG XL", jxl::decode),
        // The AV1 and HEVC decoders (dav1d, libde265) are C, and no Rust one is well kept.
        "image/avif" => {
            return Ok(Decoded::Unsupported(
                "no memory-safe AVIF decoder; validated to its structure".into(),
            ));
        }
        "image/heif" => {
            return Ok(Decoded::Unsupported(
                "no memory-safe HEIF decoder; validated to its structure".into(),
            ));
        }
        other => {
            return Ok(Decoded::Unsupported(format!(
                "jobd has no decoder for {other}"
            )));
        }
    };
    let cx = Cx::new(format, limits);
    guarded(format, || decoder(input, &cx))
}

/// Runs a decoder, turning a panic into a corrupt-data error: a decoder bug that some input
/// reaches must fail that job, never the worker. (The panic hook still logs the panic.)
pub(crate) fn guarded<T>(
    format: &str,
    decode: impl FnOnce() -> Result<T, Invalid>,
) -> Result<T, Invalid> {
    // AssertUnwindSafe: nothing the closure touches outlives it except the input reader, which is
    // dropped unread after an error.
    match panic::catch_unwind(AssertUnwindSafe(decode)) {
        Ok(result) => result,
        Err(payload) => Err(Invalid::corrupt(format!(
            "the {format}'s pixel data is corrupt: the decoder panicked: {}",
            panic_words(&*payload)
        ))),
    }
}

fn panic_words(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "no message"
    }
}

/// The bytes of memory one decode may use: a frame of `max_pixels` at 8 bytes a pixel (RGBA at
/// 16 bits a sample, the widest output asked of a decoder), plus 64 MiB for tables, rows and
/// the compressed input. Scaled by the pixel limit so that an image within `max_pixels` is never
/// refused for memory unless its decoder needs far more than its pixels.
fn budget(limits: Limits) -> u64 {
    limits.max_pixels.saturating_mul(8).saturating_add(64 << 20)
}

/// Where in a file a problem is: ("frame", 3). `None` for a still image.
type At = Option<(&'static str, u32)>;

/// One decode: the format's name for messages, the limits, the memory budget.
struct Cx {
    format: &'static str,
    limits: Limits,
    budget: u64,
}

impl Cx {
    fn new(format: &'static str, limits: Limits) -> Cx {
        Cx {
            format,
            limits,
            budget: budget(limits),
        }
    }

    /// The budget as a `usize` for decoders' limits.
    fn budget_usize(&self) -> usize {
        usize::try_from(self.budget).unwrap_or(usize::MAX)
    }

    /// The widest or tallest frame `max_pixels` allows (a 1-pixel-high strip), as a `u32`.
    fn max_side(&self) -> u32 {
        u32::try_from(self.limits.max_pixels).unwrap_or(u32::MAX)
    }

    fn corrupt(&self, at: At, words: impl Display) -> Invalid {
        let words = words.to_string();
        let words = words.trim();
        match at {
            None => Invalid::corrupt(format!(
                "the {}'s pixel data is corrupt: {words}",
                self.format
            )),
            Some((what, n)) => Invalid::corrupt(format!(
                "the {}'s pixel data is corrupt in {what} {n}: {words}",
                self.format
            )),
        }
    }

    fn too_large(&self, at: At, words: impl Display) -> Invalid {
        let place = match at {
            None => String::new(),
            Some((what, n)) => format!(" ({what} {n})"),
        };
        Invalid::too_large(format!(
            "decoding the {}{place} needs more than the {} bytes of memory jobd allows for \
             max_pixels ({}): {}",
            self.format,
            group(self.budget),
            self.limits.max_pixels,
            words.to_string().trim()
        ))
    }

    fn unsupported(&self, words: impl Display) -> Decoded {
        Decoded::Unsupported(format!(
            "no memory-safe decoder for this kind of {} ({}); validated to its structure",
            self.format,
            words.to_string().trim()
        ))
    }

    /// Checks one frame, page or image against `max_pixels`, before decoding it.
    fn frame(&self, what: &str, index: u32, width: u64, height: u64) -> Result<(), Invalid> {
        self.limits.check_frame(what, index, width, height)
    }

    /// Checks a count of frames, pages or images against `max_frames`.
    fn count(&self, what: &str, count: u64) -> Result<(), Invalid> {
        self.limits.check_count(what, count)
    }

    /// A zeroed buffer of `len` bytes for decoded pixels, within the budget. (`vec!` asks the
    /// allocator for zeroed pages, which a large buffer gets from the kernel untouched: the
    /// decoder's writes are the first.)
    fn buffer(&self, at: At, len: u64) -> Result<Vec<u8>, Invalid> {
        match usize::try_from(len) {
            Ok(len) if (len as u64) <= self.budget => Ok(vec![0; len]),
            _ => Err(self.too_large(at, format_args!("its pixels take {} bytes", group(len)))),
        }
    }

    /// Grows `buf` to at least `len` bytes (a strip or tile larger than the ones before it).
    fn grow(&self, at: At, buf: &mut Vec<u8>, len: u64) -> Result<(), Invalid> {
        if (buf.len() as u64) < len {
            *buf = Vec::new();
            *buf = self.buffer(at, len)?;
        }
        Ok(())
    }
}
