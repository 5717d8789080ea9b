//! The driver: feeds one format's [`Parser`] a body in pieces of any size, buffers the pieces a
//! `Step::Need` spans, and words the truncation message from where the parser says it is.

use super::{Image, Invalid, Limits, MAX_NEED, Parser, ReadAt, Scanned, Step, group};
use super::{bmp, gif, ico, isobmff, jpeg, jxl, png, tiff, webp};

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

/// Validates a whole body held in memory, fed in one piece (tests, fuzzing, benchmarks).
#[cfg_attr(
    product_only,
    expect(dead_code, reason = "tests, fuzzing and the benchmark harness use it")
)]
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::Problem;

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
