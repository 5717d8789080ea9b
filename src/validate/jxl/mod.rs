//! JPEG XL (ISO/IEC 18181-1 and -2). Proves, for the container: the `JXL ` signature box, then
//! `ftyp` with the brand `jxl `, then boxes that tile the body exactly (it ends only between
//! boxes, or in a last box of size 0 "to the end"); the codestream is there and whole as boxes
//! go (one `jxlc`, or `jxlp` parts numbered 0, 1, 2... up to the one marked last, never both);
//! and, for both forms, the codestream's signature (FF 0A) and its SizeHeader, whose size (after
//! the orientation of ImageMetadata: 5-8 swap) must be within `max_pixels`. A codestream has no
//! end marker, so its frames are walked by jxl-oxide's parser (`frames.rs`): every frame header
//! and table of contents, every frame within the limits, and the frame marked last whole. It
//! does not decode the frames' entropy-coded groups; that is the `decode` mode's job.

mod frames;
#[cfg(test)]
pub(crate) mod samples;
#[cfg(test)]
mod tests;

use frames::Frames;

use super::{Image, Invalid, Limits, Parser, ReadAt, Step, be32, be64, group};

/// The 12-byte signature box that opens the container.
const SIGNATURE: [u8; 12] = [
    0, 0, 0, 0x0c, b'J', b'X', b'L', b' ', 0x0d, 0x0a, 0x87, 0x0a,
];

/// Codestream bytes kept to read the headers: the SizeHeader and orientation fit in 12.
const HEAD: usize = 16;

#[derive(Clone, Copy, PartialEq, Eq)]
enum At {
    /// Before the first bytes: the codestream's FF 0A or the container's signature.
    Start,
    /// The rest of the container's signature box.
    Signature,
    /// Before a box header.
    Header,
    /// Before the 64-bit size of the box that starts at `start`.
    Large { typ: [u8; 4], start: u64 },
    /// The content of `ftyp`.
    Ftyp { start: u64 },
    /// The 4-byte index of a `jxlp` box, whose content runs `left` bytes after it.
    PartIndex { start: u64, left: u64 },
    /// Inside a box's content.
    Body { typ: [u8; 4], start: u64 },
    /// A bare codestream, after its signature: nothing more is read.
    Bare,
}

pub struct Jxl {
    limits: Limits,
    at: At,
    boxes: u64,
    /// `jxlc` seen, or `jxlp` parts seen (the next index expected) and whether the last one was.
    jxlc: bool,
    parts: u32,
    last_part: bool,
    /// The first codestream bytes, gathered across boxes.
    head: Vec<u8>,
    /// Whether the codestream boxes being skipped feed `head`.
    codestream: bool,
    /// Where the last codestream box's content starts when it runs to the end (size 0).
    tail: Option<u64>,
    /// Whether the codestream's size has been checked (as soon as its first bytes arrived).
    sized: bool,
    /// Every byte of the body, for jxl-oxide's walk of the frames.
    frames: Frames,
    /// jxl-oxide's complaint before the size was checked: a size bomb must be called one, so
    /// the complaint waits for the size.
    deferred: Option<Invalid>,
}

impl Jxl {
    pub fn new(limits: Limits) -> Jxl {
        Jxl {
            limits,
            at: At::Start,
            boxes: 0,
            jxlc: false,
            parts: 0,
            last_part: false,
            head: Vec::new(),
            codestream: false,
            tail: None,
            sized: false,
            frames: Frames::new(limits),
            deferred: None,
        }
    }

    fn open(&mut self, typ: [u8; 4], size: u64, hdr: u64, start: u64) -> Result<Step, Invalid> {
        self.boxes += 1;
        let name = fourcc(typ);
        if self.boxes == 1 && &typ != b"ftyp" {
            return Err(Invalid::corrupt(format!(
                "the box after the signature is {name}, not ftyp"
            )));
        }
        let is_code = &typ == b"jxlc" || &typ == b"jxlp";
        match &typ {
            b"JXL " => return Err(Invalid::corrupt("a second JXL signature box")),
            b"ftyp" if self.boxes > 1 => return Err(Invalid::corrupt("a second ftyp box")),
            b"jxlc" if self.jxlc || self.parts > 0 => {
                return Err(Invalid::corrupt(
                    "a jxlc box after another codestream box (jxlc or jxlp)",
                ));
            }
            b"jxlp" if self.jxlc || self.last_part => {
                return Err(Invalid::corrupt(format!(
                    "a jxlp box at byte {} after the codestream's end",
                    group(start)
                )));
            }
            _ => {}
        }
        self.codestream = is_code;
        if size == 0 {
            // The last box runs to the end of the body.
            if &typ == b"ftyp" {
                return Err(Invalid::corrupt("the ftyp box has size 0"));
            }
            if &typ == b"jxlc" {
                self.jxlc = true;
            }
            if &typ == b"jxlp" {
                // Its index must still be read; the part runs to the end, so it is the last.
                self.at = At::PartIndex {
                    start,
                    left: u64::MAX,
                };
                return Ok(Step::Need(4));
            }
            self.at = At::Body { typ, start };
            if is_code {
                self.tail = Some(start + hdr);
            }
            return Ok(Step::Rest);
        }
        if size < hdr {
            return Err(Invalid::corrupt(format!(
                "the {name} box at byte {} has a size of {size}, less than its header",
                group(start)
            )));
        }
        let content = size - hdr;
        match &typ {
            b"ftyp" => {
                if !(8..=4096).contains(&content) {
                    return Err(Invalid::corrupt(format!(
                        "the ftyp box is {} bytes",
                        group(size)
                    )));
                }
                self.at = At::Ftyp { start };
                Ok(Step::Need(content as usize))
            }
            b"jxlp" => {
                if content < 4 {
                    return Err(Invalid::corrupt(format!(
                        "the jxlp box at byte {} is too short for its index",
                        group(start)
                    )));
                }
                self.at = At::PartIndex {
                    start,
                    left: content - 4,
                };
                Ok(Step::Need(4))
            }
            _ => {
                if &typ == b"jxlc" {
                    self.jxlc = true;
                }
                self.at = At::Body { typ, start };
                Ok(Step::Skip(content))
            }
        }
    }

    /// Reads the codestream's signature, size and orientation from its first bytes.
    fn image(&self, head: &[u8]) -> Result<Image, Invalid> {
        if head.len() < 2 || head[..2] != [0xff, 0x0a] {
            return Err(Invalid::corrupt(
                "the JPEG XL codestream does not start with FF 0A",
            ));
        }
        let mut r = Bits::new(&head[2..]);
        let short = || {
            Invalid::truncated(format!(
                "truncated: the JPEG XL codestream ends in its headers (after {} bytes)",
                head.len()
            ))
        };
        let (w, h, orientation) = headers(&mut r).ok_or_else(short)?;
        self.limits.check_frame("image", 1, w, h)?;
        let (w, h) = if orientation >= 5 { (h, w) } else { (w, h) };
        Image::new(w, h, 1)
    }
}

/// SizeHeader and the start of ImageMetadata (18181-1 A.3 and A.6): width, height, orientation.
fn headers(r: &mut Bits) -> Option<(u64, u64, u32)> {
    let size = |r: &mut Bits| -> Option<u64> {
        let bits = [9, 13, 18, 30][r.u(2)? as usize];
        Some(1 + r.u(bits)?)
    };
    let div8 = r.u(1)? == 1;
    let height = if div8 { 8 * (1 + r.u(5)?) } else { size(r)? };
    let ratio = r.u(3)?;
    let width = match ratio {
        0 if div8 => 8 * (1 + r.u(5)?),
        0 => size(r)?,
        1 => height,
        2 => height * 12 / 10,
        3 => height * 4 / 3,
        4 => height * 3 / 2,
        5 => height * 16 / 9,
        6 => height * 5 / 4,
        _ => height * 2,
    };
    let all_default = r.u(1)? == 1;
    let orientation = if !all_default && r.u(1)? == 1 {
        1 + r.u(3)? as u32
    } else {
        1
    };
    Some((width, height, orientation))
}

/// A reader of bits, least significant first, as JPEG XL packs them.
struct Bits<'a> {
    b: &'a [u8],
    bit: usize,
}

impl<'a> Bits<'a> {
    fn new(b: &'a [u8]) -> Bits<'a> {
        Bits { b, bit: 0 }
    }

    /// `n` (at most 32) bits, or None past the end.
    fn u(&mut self, n: u32) -> Option<u64> {
        let mut v = 0u64;
        for i in 0..n {
            let byte = *self.b.get(self.bit / 8)?;
            v |= u64::from((byte >> (self.bit % 8)) & 1) << i;
            self.bit += 1;
        }
        Some(v)
    }
}

fn fourcc(t: [u8; 4]) -> String {
    t.iter()
        .flat_map(|b| b.escape_ascii())
        .map(char::from)
        .collect()
}

impl Parser for Jxl {
    fn name(&self) -> &'static str {
        "JPEG XL"
    }

    fn start(&mut self) -> Step {
        Step::Need(2)
    }

    fn need(&mut self, bytes: &[u8], at: u64) -> Result<Step, Invalid> {
        // The container's own rules first (their words are clearer), then jxl-oxide's walk.
        let step = self.box_step(bytes, at)?;
        self.walk(bytes)?;
        Ok(step)
    }

    fn pass(&mut self, bytes: &[u8]) -> Result<(), Invalid> {
        if self.codestream && self.head.len() < HEAD {
            let n = (HEAD - self.head.len()).min(bytes.len());
            self.head.extend_from_slice(&bytes[..n]);
        }
        if !self.sized && self.head.len() >= HEAD {
            // A size bomb fails on its first bytes, whatever jxl-oxide made of them.
            self.image(&self.head.clone())?;
            self.sized = true;
            if let Some(e) = self.deferred.take() {
                return Err(e);
            }
        }
        self.walk(bytes)
    }

    fn skipped(&mut self, _: u64) -> Result<Step, Invalid> {
        self.at = At::Header;
        Ok(Step::NeedOrEnd(8))
    }

    fn finish(&mut self, len: u64, file: &mut dyn ReadAt) -> Result<Image, Invalid> {
        let image = self.container(len, file)?;
        if let Some(e) = self.deferred.take() {
            return Err(e);
        }
        if !self.frames.whole() {
            return Err(Invalid::truncated(format!(
                "truncated: the JPEG XL codestream ends {} at byte {}",
                self.frames.progress(),
                group(len)
            )));
        }
        Image::new(image.width.into(), image.height.into(), self.frames.count())
    }

    fn inside(&self) -> String {
        match self.at {
            At::Start | At::Signature => "in its signature".into(),
            At::Header => "in a box header".into(),
            At::Large { typ, start } => format!(
                "in the size of the {} box at byte {}",
                fourcc(typ),
                group(start)
            ),
            At::Ftyp { start } => format!("inside the ftyp box at byte {}", group(start)),
            At::PartIndex { start, .. } => {
                format!("in the index of the jxlp box at byte {}", group(start))
            }
            At::Body { typ, start } => {
                format!("inside the {} box at byte {}", fourcc(typ), group(start))
            }
            At::Bare => "in its codestream".into(),
        }
    }
}

impl Jxl {
    /// The container's last checks and the size from the codestream's headers.
    fn container(&mut self, len: u64, file: &mut dyn ReadAt) -> Result<Image, Invalid> {
        if self.at == At::Bare {
            let mut head = [0u8; HEAD];
            let n = len.min(HEAD as u64) as usize;
            file.read_exact_at(&mut head[..n], 0)
                .map_err(|e| Invalid::corrupt(format!("cannot read the codestream back: {e}")))?;
            return self.image(&head[..n]);
        }
        if !self.jxlc && self.parts == 0 {
            return Err(Invalid::corrupt(
                "the JPEG XL container holds no codestream (no jxlc or jxlp box)",
            ));
        }
        if self.parts > 0 && !self.last_part {
            return Err(Invalid::truncated(format!(
                "truncated: the JPEG XL container ends after codestream part {} at byte {}, \
                 none marked as the last",
                self.parts - 1,
                group(len)
            )));
        }
        let mut head = self.head.clone();
        if let Some(from) = self.tail {
            // The last codestream box runs to the end: its first bytes are read back.
            let n = (HEAD - head.len().min(HEAD)) as u64;
            let n = n.min(len.saturating_sub(from)) as usize;
            let mut buf = [0u8; HEAD];
            file.read_exact_at(&mut buf[..n], from)
                .map_err(|e| Invalid::corrupt(format!("cannot read the codestream back: {e}")))?;
            head.extend_from_slice(&buf[..n]);
        }
        self.image(&head)
    }

    /// The container's step for the bytes a `Need` asked for.
    fn box_step(&mut self, bytes: &[u8], at: u64) -> Result<Step, Invalid> {
        match self.at {
            At::Start => {
                if bytes == [0xff, 0x0a] {
                    self.at = At::Bare;
                    self.codestream = true;
                    self.head.extend_from_slice(bytes);
                    Ok(Step::Rest)
                } else if bytes == &SIGNATURE[..2] {
                    self.at = At::Signature;
                    Ok(Step::Need(10))
                } else {
                    Err(Invalid::corrupt(
                        "neither a JPEG XL codestream (FF 0A) nor its container",
                    ))
                }
            }
            At::Signature => {
                if bytes != &SIGNATURE[2..] as &[u8] {
                    return Err(Invalid::corrupt(
                        "the JPEG XL container's signature box is wrong",
                    ));
                }
                self.at = At::Header;
                Ok(Step::Need(8))
            }
            At::Header => {
                let typ = [bytes[4], bytes[5], bytes[6], bytes[7]];
                match be32(bytes, 0) {
                    1 => {
                        self.at = At::Large { typ, start: at };
                        Ok(Step::Need(8))
                    }
                    size => self.open(typ, u64::from(size), 8, at),
                }
            }
            At::Large { typ, start } => self.open(typ, be64(bytes, 0), 16, start),
            At::Ftyp { .. } => {
                if &bytes[..4] != b"jxl " {
                    return Err(Invalid::corrupt(format!(
                        "the ftyp box's brand is {}, not \"jxl \"",
                        fourcc([bytes[0], bytes[1], bytes[2], bytes[3]])
                    )));
                }
                self.at = At::Header;
                Ok(Step::NeedOrEnd(8))
            }
            At::PartIndex { start, left } => {
                let index = be32(bytes, 0);
                if index & 0x7fff_ffff != self.parts {
                    return Err(Invalid::corrupt(format!(
                        "the jxlp box at byte {} is part {}, but part {} was expected",
                        group(start),
                        index & 0x7fff_ffff,
                        self.parts
                    )));
                }
                self.parts = self.parts.saturating_add(1);
                self.last_part = index & 0x8000_0000 != 0;
                self.at = At::Body {
                    typ: *b"jxlp",
                    start,
                };
                if left == u64::MAX {
                    // A part of size 0 runs to the end: it must be the last.
                    if !self.last_part {
                        return Err(Invalid::corrupt(format!(
                            "the jxlp box at byte {} runs to the end of the file but is not \
                             marked as the last part",
                            group(start)
                        )));
                    }
                    self.tail = Some(at + 4);
                    return Ok(Step::Rest);
                }
                Ok(Step::Skip(left))
            }
            At::Body { .. } | At::Bare => Ok(Step::Rest),
        }
    }

    /// Feeds jxl-oxide, holding its complaint back until the size has been checked.
    fn walk(&mut self, bytes: &[u8]) -> Result<(), Invalid> {
        match self.frames.feed(bytes) {
            Err(e) if !self.sized => {
                self.deferred.get_or_insert(e);
                Ok(())
            }
            other => other,
        }
    }
}
