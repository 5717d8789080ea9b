//! Proving that a body is a whole image while its bytes stream past: one parser per format walks
//! the container (chunks, markers, blocks, boxes, directories) to its end, checks every frame
//! against the pixel and frame limits, and reports the size a browser displays.
//!
//! Architecture invariant: a parser holds bounded state. It sees each byte once, in the pass that
//! also hashes and writes the body, and asks the [`Validator`] for what it needs next as a
//! [`Step`]: a few bytes in one slice, bytes to let pass (for CRCs), or a scan. Only TIFF reads
//! back, at the end, the directories it points at (a few KiB, never the pixel data), because its
//! directories may sit anywhere in the file.

use std::fmt;
use std::io;

pub mod bmp;
pub mod decode;
mod driver;
pub mod gif;
pub mod ico;
pub mod isobmff;
pub mod jpeg;
pub mod jxl;
pub mod png;
#[cfg(test)]
pub(crate) mod testing;
pub mod tiff;
pub mod webp;

/// The most bytes one [`Step::Need`] may ask for: a parser that wants a larger piece in memory
/// (an oversized metadata box) must refuse the file instead.
pub const MAX_NEED: usize = 4 << 20;

pub use crate::job::Level;
pub use driver::Validator;
#[cfg_attr(
    product_only,
    expect(unused_imports, reason = "tests, fuzzing and the benchmark harness use it")
)]
pub use driver::validate_bytes;

/// What a parser may accept: `[fetch] max_pixels` and `[fetch] max_frames`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Pixels (width x height) of any single frame, page or embedded image.
    pub max_pixels: u64,
    /// Frames of an animation, pages of a multi-page file, images in an icon.
    pub max_frames: u32,
}

impl Limits {
    /// Checks one frame's size. `index` counts from 1 and names the frame in the error when the
    /// file has several (`what` is "frame", "page", "image"...).
    pub fn check_frame(
        &self,
        what: &str,
        index: u32,
        width: u64,
        height: u64,
    ) -> Result<(), Invalid> {
        if width == 0 || height == 0 {
            return Err(Invalid::corrupt(format!(
                "{what} {index} is {width}x{height}"
            )));
        }
        if width.saturating_mul(height) > self.max_pixels {
            return Err(Invalid::too_large(format!(
                "{what} {index} is {width}x{height}, over max_pixels ({})",
                self.max_pixels
            )));
        }
        Ok(())
    }

    /// Checks that a count of frames (pages, images) is within `max_frames`.
    pub fn check_count(&self, what: &str, count: u64) -> Result<(), Invalid> {
        if count > u64::from(self.max_frames) {
            return Err(Invalid::too_large(format!(
                "more than {} {what}s, over max_frames",
                self.max_frames
            )));
        }
        Ok(())
    }
}

/// What a whole image proved to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Image {
    /// The displayed size: after EXIF orientation 5-8, `irot`; for an icon, its largest image.
    pub width: u32,
    pub height: u32,
    /// Frames, pages or embedded images (1 for a still image).
    pub frames: u32,
}

impl Image {
    /// An image of `width` x `height`, refusing sizes that do not fit the `u32` columns.
    pub fn new(width: u64, height: u64, frames: u32) -> Result<Image, Invalid> {
        match (u32::try_from(width), u32::try_from(height)) {
            (Ok(w), Ok(h)) if w > 0 && h > 0 => Ok(Image {
                width: w,
                height: h,
                frames,
            }),
            _ => Err(Invalid::corrupt(format!("the image is {width}x{height}"))),
        }
    }
}

/// Why a body is not a whole, acceptable image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// The container ends before its own structure does.
    Truncated,
    /// The structure is broken or illegal.
    Corrupt,
    /// A frame, page or count is over a limit (a decompression bomb, or just too big).
    TooLarge,
}

/// A refusal: the kind of problem and words for the job's `error` column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub problem: Problem,
    pub message: String,
}

impl Invalid {
    pub fn corrupt(message: impl Into<String>) -> Invalid {
        Invalid {
            problem: Problem::Corrupt,
            message: message.into(),
        }
    }
    pub fn too_large(message: impl Into<String>) -> Invalid {
        Invalid {
            problem: Problem::TooLarge,
            message: message.into(),
        }
    }
    pub fn truncated(message: impl Into<String>) -> Invalid {
        Invalid {
            problem: Problem::Truncated,
            message: message.into(),
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problem {
            Problem::Truncated => f.write_str(&self.message),
            Problem::Corrupt => write!(f, "invalid image: {}", self.message),
            Problem::TooLarge => write!(f, "too large: {}", self.message),
        }
    }
}

impl std::error::Error for Invalid {}

/// What a parser wants next from the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Exactly this many bytes, handed to [`Parser::need`] in one slice (at most [`MAX_NEED`]).
    Need(usize),
    /// The same, except that the body may also end right here (at a box or chunk boundary):
    /// then [`Parser::finish`] decides.
    NeedOrEnd(usize),
    /// Let this many bytes pass: they go to [`Parser::pass`] in pieces, then
    /// [`Parser::skipped`] says what comes next.
    Skip(u64),
    /// Hand every byte to [`Parser::scan`] until it says where the scan stopped.
    Scan,
    /// Every remaining byte goes to [`Parser::pass`], and the body may end anywhere: then
    /// [`Parser::finish`] decides whether what came is whole (a format whose end only its own
    /// decoder can tell: a bare JPEG XL codestream).
    Rest,
    /// The image is whole. Bytes after it are ignored, as decoders ignore them.
    Done,
    /// The image is whole and must be the whole body: a byte more is an error.
    End,
}

/// Where a scan stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scanned {
    /// Every byte handed over belongs to the scan; keep scanning.
    All,
    /// The scan used `used` bytes of the slice; the rest goes to `next`.
    Stop { used: usize, next: Step },
}

/// One format's streaming parser, driven by a [`Validator`].
pub trait Parser: Send {
    /// The format's name for messages: "PNG", "JPEG".
    fn name(&self) -> &'static str;
    /// The first step, before any byte arrived.
    fn start(&mut self) -> Step;
    /// The bytes a [`Step::Need`] or [`Step::NeedOrEnd`] asked for, which start at offset `at`.
    fn need(&mut self, bytes: &[u8], at: u64) -> Result<Step, Invalid>;
    /// A piece of the bytes of a [`Step::Skip`].
    fn pass(&mut self, _bytes: &[u8]) -> Result<(), Invalid> {
        Ok(())
    }
    /// The [`Step::Skip`] is over; `at` is the offset of the next byte.
    fn skipped(&mut self, _at: u64) -> Result<Step, Invalid> {
        Err(Invalid::corrupt(
            "internal error: a skip the parser did not expect",
        ))
    }
    /// The next bytes of a [`Step::Scan`], which start at offset `at`.
    fn scan(&mut self, _bytes: &[u8], _at: u64) -> Result<Scanned, Invalid> {
        Err(Invalid::corrupt(
            "internal error: a scan the parser did not expect",
        ))
    }
    /// The body ended after `len` bytes, at a step that allows it ([`Step::Done`],
    /// [`Step::End`], [`Step::NeedOrEnd`] between pieces). Last checks, and the result. `file`
    /// reads back from the whole body (TIFF's directories).
    fn finish(&mut self, len: u64, file: &mut dyn ReadAt) -> Result<Image, Invalid>;
    /// Where the parser is, for a truncation message: "inside IDAT", "in its scan data".
    fn inside(&self) -> String;
}

/// Reads bytes at an offset of the whole body: the temporary file, or a slice in tests.
pub trait ReadAt {
    /// Fills `buf` from `offset`, or fails (an `UnexpectedEof` past the end).
    fn read_exact_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()>;
}

impl ReadAt for std::fs::File {
    fn read_exact_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
    }
}

impl ReadAt for &[u8] {
    fn read_exact_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        match start
            .checked_add(buf.len())
            .and_then(|end| self.get(start..end))
        {
            Some(src) => {
                buf.copy_from_slice(src);
                Ok(())
            }
            None => Err(io::ErrorKind::UnexpectedEof.into()),
        }
    }
}

/// A byte count with thousands separators, as messages show them: 1,048,576.
pub fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Big- and little-endian readers for fixed offsets in a slice the parser asked for (its length is
/// known, so an index out of range is a parser bug that the fuzzers would find).
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
pub(crate) fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}
pub(crate) fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
pub(crate) fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
pub(crate) fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}
