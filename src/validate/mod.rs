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

/// How far a body is proved to be an image: `[fetch] validate`, and what each stored job records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// The container walked to its end, every frame within the limits (the default).
    #[default]
    Structure,
    /// The structure, and every pixel decoded by a memory-safe decoder.
    Decode,
}

impl Level {
    /// The name in the config and in the `validation` column.
    pub fn name(self) -> &'static str {
        match self {
            Level::Structure => "structure",
            Level::Decode => "decode",
        }
    }
}

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

/// Drives one format's [`Parser`] over a body fed in pieces of any size.
pub struct Validator {
    parser: Box<dyn Parser>,
    step: Step,
    /// Offset of the next byte to arrive.
    pos: u64,
    /// The bytes of a [`Step::Need`] that straddles pieces.
    buf: Vec<u8>,
    /// The first error; once set, the rest of the body is not looked at.
    failed: Option<Invalid>,
}

impl Validator {
    /// The validator for a format that [`crate::sniff`] accepted, by its MIME type.
    pub fn for_mime(mime: &str, limits: Limits) -> Validator {
        let parser: Box<dyn Parser> = match mime {
            "image/png" => Box::new(png::Png::new(limits)),
            "image/jpeg" => Box::new(jpeg::Jpeg::new(limits)),
            "image/gif" => Box::new(gif::Gif::new(limits)),
            "image/webp" => Box::new(webp::WebP::new(limits)),
            "image/bmp" => Box::new(bmp::Bmp::new(limits)),
            "image/tiff" => Box::new(tiff::Tiff::new(limits)),
            "image/vnd.microsoft.icon" => Box::new(ico::Ico::new(limits)),
            "image/avif" | "image/heif" => Box::new(isobmff::IsoBmff::new(limits)),
            "image/jxl" => Box::new(jxl::Jxl::new(limits)),
            other => Box::new(Unknown(other.to_string())),
        };
        Validator::new(parser)
    }

    /// A validator around any parser (nested images: an icon's PNG).
    pub fn new(mut parser: Box<dyn Parser>) -> Validator {
        let step = parser.start();
        let mut v = Validator {
            parser,
            step,
            pos: 0,
            buf: Vec::new(),
            failed: None,
        };
        if let Err(e) = v.settle() {
            v.failed = Some(e);
        }
        v
    }

    /// Offset of the next byte to arrive: the bytes fed so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Feeds the next piece of the body. An error is final: the body cannot become an image, so
    /// the download can stop.
    pub fn feed(&mut self, data: &[u8]) -> Result<(), Invalid> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.feed_inner(data) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.failed = Some(e.clone());
                Err(e)
            }
        }
    }

    /// The body has ended: is it a whole image? `file` reads the whole body back.
    pub fn finish(mut self, file: &mut dyn ReadAt) -> Result<Image, Invalid> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        let pos = self.pos;
        let name = self.parser.name();
        let ends =
            |what: String| format!("truncated: the {name} ends {what} at byte {}", group(pos));
        match self.step {
            Step::Done | Step::End | Step::Rest => self.parser.finish(pos, file),
            Step::NeedOrEnd(_) if self.buf.is_empty() => self.parser.finish(pos, file),
            Step::Need(n) | Step::NeedOrEnd(n) => {
                let to = pos.saturating_add((n - self.buf.len()) as u64);
                Err(Invalid::truncated(format!(
                    "{} of {}",
                    ends(self.parser.inside()),
                    group(to)
                )))
            }
            // A size field may claim anything up to 2^64 - 1.
            Step::Skip(n) => Err(Invalid::truncated(format!(
                "{} of {}",
                ends(self.parser.inside()),
                group(pos.saturating_add(n))
            ))),
            Step::Scan => Err(Invalid::truncated(ends(self.parser.inside()))),
        }
    }

    fn feed_inner(&mut self, mut data: &[u8]) -> Result<(), Invalid> {
        while !data.is_empty() {
            match self.step {
                Step::Need(n) | Step::NeedOrEnd(n) => {
                    if self.buf.is_empty() && data.len() >= n {
                        let (piece, rest) = data.split_at(n);
                        let at = self.pos;
                        self.pos += n as u64;
                        data = rest;
                        self.step = self.parser.need(piece, at)?;
                    } else {
                        let take = (n - self.buf.len()).min(data.len());
                        self.buf.extend_from_slice(&data[..take]);
                        self.pos += take as u64;
                        data = &data[take..];
                        if self.buf.len() == n {
                            let piece = std::mem::take(&mut self.buf);
                            self.step = self.parser.need(&piece, self.pos - n as u64)?;
                            self.buf = piece;
                            self.buf.clear();
                        }
                    }
                }
                Step::Skip(n) => {
                    let take = n.min(data.len() as u64) as usize;
                    self.parser.pass(&data[..take])?;
                    self.pos += take as u64;
                    data = &data[take..];
                    self.step = if take as u64 == n {
                        self.parser.skipped(self.pos)?
                    } else {
                        Step::Skip(n - take as u64)
                    };
                }
                Step::Scan => match self.parser.scan(data, self.pos)? {
                    Scanned::All => {
                        self.pos += data.len() as u64;
                        data = &[];
                    }
                    Scanned::Stop { used, next } => {
                        let used = used.min(data.len());
                        self.pos += used as u64;
                        data = &data[used..];
                        self.step = next;
                    }
                },
                Step::Rest => {
                    self.parser.pass(data)?;
                    self.pos += data.len() as u64;
                    data = &[];
                }
                Step::Done => {
                    self.pos += data.len() as u64;
                    data = &[];
                }
                Step::End => {
                    return Err(Invalid::corrupt(format!(
                        "the {} ends at byte {}, but the body goes on",
                        self.parser.name(),
                        group(self.pos)
                    )));
                }
            }
            self.settle()?;
        }
        Ok(())
    }

    /// Runs the steps that need no byte: a `Need(0)` or `Skip(0)`, and refuses oversized needs.
    fn settle(&mut self) -> Result<(), Invalid> {
        loop {
            match self.step {
                Step::Need(n) | Step::NeedOrEnd(n) if n > MAX_NEED => {
                    return Err(Invalid::corrupt(format!(
                        "a piece of {} bytes of the {} at byte {} is more than jobd holds in memory",
                        group(n as u64),
                        self.parser.name(),
                        group(self.pos)
                    )));
                }
                Step::Need(0) => self.step = self.parser.need(&[], self.pos)?,
                Step::Skip(0) => self.step = self.parser.skipped(self.pos)?,
                _ => return Ok(()),
            }
        }
    }
}

/// Validates a whole body held in memory (tests, fuzzing, nested images), fed in one piece.
pub fn validate_bytes(mime: &str, bytes: &[u8], limits: Limits) -> Result<Image, Invalid> {
    let mut v = Validator::for_mime(mime, limits);
    v.feed(bytes)?;
    v.finish(&mut { bytes })
}

/// A format without a parser: refused, so that a format added to sniff's list without one is
/// never stored unproven.
struct Unknown(String);

impl Parser for Unknown {
    fn name(&self) -> &'static str {
        "image"
    }
    fn start(&mut self) -> Step {
        Step::Need(0)
    }
    fn need(&mut self, _: &[u8], _: u64) -> Result<Step, Invalid> {
        Err(Invalid::corrupt(format!(
            "jobd has no validator for {}",
            self.0
        )))
    }
    fn finish(&mut self, _: u64, _: &mut dyn ReadAt) -> Result<Image, Invalid> {
        Err(Invalid::corrupt(format!(
            "jobd has no validator for {}",
            self.0
        )))
    }
    fn inside(&self) -> String {
        String::new()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy format: "AB", then length-prefixed pieces (one byte of length), then 0 to end.
    struct Toy {
        pieces: u32,
        at_len: bool,
    }

    impl Parser for Toy {
        fn name(&self) -> &'static str {
            "toy"
        }
        fn start(&mut self) -> Step {
            Step::Need(2)
        }
        fn need(&mut self, bytes: &[u8], at: u64) -> Result<Step, Invalid> {
            if at == 0 {
                return if bytes == b"AB" {
                    Ok(Step::Need(1))
                } else {
                    Err(Invalid::corrupt("no AB"))
                };
            }
            self.at_len = false;
            match bytes[0] {
                0 => Ok(Step::End),
                n => {
                    self.pieces += 1;
                    Ok(Step::Skip(u64::from(n)))
                }
            }
        }
        fn skipped(&mut self, _: u64) -> Result<Step, Invalid> {
            self.at_len = true;
            Ok(Step::Need(1))
        }
        fn finish(&mut self, _: u64, _: &mut dyn ReadAt) -> Result<Image, Invalid> {
            Image::new(1, 1, self.pieces)
        }
        fn inside(&self) -> String {
            if self.at_len {
                "before a piece's length".into()
            } else {
                "inside a piece".into()
            }
        }
    }

    fn run(body: &[u8], piece: usize) -> Result<Image, Invalid> {
        let mut v = Validator::new(Box::new(Toy {
            pieces: 0,
            at_len: false,
        }));
        for chunk in body.chunks(piece.max(1)) {
            v.feed(chunk)?;
        }
        v.finish(&mut { body })
    }

    #[test]
    fn any_split_of_the_body_gives_the_same_answer() {
        let body = b"AB\x03xyz\x01q\x00";
        for piece in 1..=body.len() {
            assert_eq!(run(body, piece).unwrap().frames, 2, "pieces of {piece}");
        }
    }

    #[test]
    fn every_strict_prefix_is_truncated_with_the_place_it_ends() {
        let body = b"AB\x03xyz\x01q\x00";
        for cut in 0..body.len() {
            let err = run(&body[..cut], 3).unwrap_err();
            assert_eq!(err.problem, Problem::Truncated, "cut at {cut}: {err}");
        }
        let err = run(&body[..4], 4).unwrap_err();
        assert_eq!(
            err.to_string(),
            "truncated: the toy ends inside a piece at byte 4 of 6"
        );
    }

    #[test]
    fn a_skip_of_2_to_the_64_cut_short_is_truncated_not_an_overflow() {
        // Found by fuzz/validate_isobmff: a box claiming 2^64 - 1 bytes, then the end.
        let err = run(b"AB\x05xy", 5).unwrap_err();
        assert_eq!(err.problem, Problem::Truncated);
        let mut v = Validator::new(Box::new(Toy {
            pieces: 0,
            at_len: false,
        }));
        v.feed(b"AB").unwrap();
        v.step = Step::Skip(u64::MAX);
        v.feed(b"xyz").unwrap();
        let err = v.finish(&mut &b""[..]).unwrap_err();
        assert_eq!(err.problem, Problem::Truncated);
        assert!(
            err.message.ends_with("of 18,446,744,073,709,551,615"),
            "{err}"
        );
    }

    #[test]
    fn a_byte_after_the_end_is_refused() {
        let err = run(b"AB\x00!", 2).unwrap_err();
        assert_eq!(err.problem, Problem::Corrupt);
        assert!(err.to_string().contains("ends at byte 3"), "{err}");
    }

    #[test]
    fn limits_name_the_frame_and_the_key() {
        let limits = Limits {
            max_pixels: 100,
            max_frames: 2,
        };
        let err = limits.check_frame("frame", 2, 60000, 60000).unwrap_err();
        assert_eq!(
            err.to_string(),
            "too large: frame 2 is 60000x60000, over max_pixels (100)"
        );
        assert!(limits.check_count("frame", 3).is_err());
        assert!(limits.check_count("frame", 2).is_ok());
    }

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1024), "1,024");
        assert_eq!(group(100_000_000), "100,000,000");
    }
}
