//! PNG and APNG: proves the chunk structure is whole and legal (signature, every chunk's length,
//! type and CRC up to IEND; a legal IHDR first; PLTE where a palette needs it; consecutive IDATs;
//! APNG's acTL, fcTL sequence, frame rectangles inside the canvas and frame count), and checks every
//! frame against the limits. It does not inflate the image data: a zlib stream that is short or
//! corrupt inside CRC-correct IDATs passes here and is caught only by the full decode.

use super::{Image, Invalid, Limits, Parser, ReadAt, Step, be32, group};

mod apng;
#[cfg(test)]
mod tests;

use apng::Animation;

const SIGNATURE: &[u8; 8] = b"\x89PNG\r\n\x1a\n";
/// PNG's "4-byte unsigned integer" is limited to 2^31-1 (lengths, width, height).
const MAX_U31: u32 = 0x7FFF_FFFF;

/// Where the parser is in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// The 8-byte signature.
    Signature,
    /// A chunk's length and type (the body may end here; `finish` says IEND is missing).
    Header,
    /// A small chunk the parser reads (IHDR, acTL, fcTL): its data and CRC in one piece.
    Small,
    /// The sequence number at the start of an fdAT.
    FdatSequence,
    /// The data of a chunk that is only checksummed.
    Data,
    /// The CRC after the data of a skipped chunk.
    Crc,
    /// After IEND.
    Done,
}

/// The image data: none yet, inside the run of IDAT chunks, or after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Idat {
    None,
    Inside,
    After,
}

/// What IHDR says.
#[derive(Debug, Clone, Copy)]
struct Header {
    width: u32,
    height: u32,
    colour: u8,
}

pub struct Png {
    limits: Limits,
    at: At,
    /// The current chunk: its type and the offset of its length field.
    kind: [u8; 4],
    start: u64,
    /// Bytes of the current skipped chunk after the fdAT sequence number.
    len: u32,
    /// CRC of the current chunk's type and data so far.
    crc: crc32fast::Hasher,
    /// The chunk before the current one, for "after IDAT" in messages.
    previous: [u8; 4],
    ihdr: Option<Header>,
    plte: bool,
    idat: Idat,
    actl: Option<Animation>,
}

impl Png {
    pub fn new(limits: Limits) -> Png {
        Png {
            limits,
            at: At::Signature,
            kind: [0; 4],
            start: 0,
            len: 0,
            crc: crc32fast::Hasher::new(),
            previous: [0; 4],
            ihdr: None,
            plte: false,
            idat: Idat::None,
            actl: None,
        }
    }

    /// The current chunk's type for messages (a validated type is four ASCII letters).
    fn chunk_name(&self) -> String {
        self.kind.escape_ascii().to_string()
    }

    fn corrupt(&self, what: impl std::fmt::Display) -> Invalid {
        Invalid::corrupt(format!(
            "chunk {} at byte {} {what}",
            self.chunk_name(),
            group(self.start)
        ))
    }

    /// A chunk's length and type arrived: check them and decide how to read the chunk.
    fn header(&mut self, bytes: &[u8], at: u64) -> Result<Step, Invalid> {
        let len = be32(bytes, 0);
        self.previous = self.kind;
        self.kind.copy_from_slice(&bytes[4..8]);
        self.start = at;
        if !self.kind.iter().all(u8::is_ascii_alphabetic) {
            return Err(Invalid::corrupt(format!(
                "the chunk at byte {} has the type \"{}\", which is not four letters",
                group(at),
                self.chunk_name()
            )));
        }
        if len > MAX_U31 {
            return Err(self.corrupt(format_args!(
                "has the length {}, over 2^31-1",
                group(u64::from(len))
            )));
        }
        self.crc = crc32fast::Hasher::new();
        self.crc.update(&self.kind);
        self.len = len;

        let Some(ihdr) = self.ihdr else {
            return if &self.kind == b"IHDR" {
                self.small(13)
            } else {
                Err(self.corrupt("comes first, before IHDR"))
            };
        };
        if self.idat == Idat::Inside && &self.kind != b"IDAT" {
            self.idat = Idat::After;
        }
        match &self.kind {
            b"IHDR" => Err(self.corrupt("is a second IHDR")),
            b"PLTE" => {
                if self.plte {
                    return Err(self.corrupt("is a second PLTE"));
                }
                // libpng ignores a misplaced or misshapen PLTE in a true-colour or grey image,
                // but an indexed image needs 1 to 256 entries before its data.
                if ihdr.colour == 3 && (len == 0 || len > 768 || len % 3 != 0) {
                    return Err(self.corrupt(format_args!(
                        "has {} bytes, not 1 to 256 palette entries of 3",
                        group(u64::from(len))
                    )));
                }
                self.plte = true;
                self.skip(len)
            }
            b"IDAT" => {
                if ihdr.colour == 3 && !self.plte {
                    return Err(self.corrupt("comes before the PLTE the palette image needs"));
                }
                if self.idat == Idat::After {
                    return Err(self.corrupt(format_args!(
                        "comes after {}: the image data must be consecutive",
                        self.previous.escape_ascii()
                    )));
                }
                self.idat = Idat::Inside;
                self.skip(len)
            }
            b"IEND" => {
                if self.idat == Idat::None {
                    return Err(self.corrupt("comes before any IDAT"));
                }
                self.animation_complete()?;
                // libpng tolerates data in IEND (a benign error): check its CRC, ignore it.
                self.skip(len)
            }
            b"acTL" => {
                if self.actl.is_some() {
                    return Err(self.corrupt("is a second acTL"));
                }
                if self.idat != Idat::None {
                    return Err(self.corrupt("comes after the image data"));
                }
                self.small(8)
            }
            b"fcTL" => self.small(26),
            b"fdAT" => self.fdat(len),
            // Bit 5 of the first letter (lowercase) marks an ancillary chunk a decoder may skip;
            // libpng refuses critical chunks it does not know, so do we.
            _ if self.kind[0].is_ascii_uppercase() => {
                Err(self.corrupt("is an unknown critical chunk"))
            }
            _ => self.skip(len),
        }
    }

    /// Reads a small chunk's data and CRC in one piece, if it has the length `want`.
    fn small(&mut self, want: u32) -> Result<Step, Invalid> {
        if self.len != want {
            return Err(self.corrupt(format_args!(
                "has {} bytes instead of {want}",
                group(u64::from(self.len))
            )));
        }
        self.at = At::Small;
        Ok(Step::Need(want as usize + 4))
    }

    fn skip(&mut self, len: u32) -> Result<Step, Invalid> {
        self.at = At::Data;
        Ok(Step::Skip(u64::from(len)))
    }

    /// Compares the chunk's CRC with the one computed over its type and data.
    fn check_crc(&self, stored: u32) -> Result<(), Invalid> {
        if self.crc.clone().finalize() != stored {
            return Err(Invalid::corrupt(format!(
                "the CRC of chunk {} at byte {} does not match",
                self.chunk_name(),
                group(self.start)
            )));
        }
        Ok(())
    }

    /// The chunk is over: IEND ends the image, anything else is followed by a chunk header.
    fn next_chunk(&mut self) -> Step {
        if &self.kind == b"IEND" {
            self.at = At::Done;
            Step::Done
        } else {
            self.at = At::Header;
            Step::NeedOrEnd(8)
        }
    }

    /// The data of IHDR, acTL or fcTL (its CRC already checked).
    fn small_chunk(&mut self, data: &[u8]) -> Result<(), Invalid> {
        match &self.kind {
            b"IHDR" => self.ihdr(data),
            b"acTL" => self.actl(data),
            _ => self.fctl(data),
        }
    }

    fn ihdr(&mut self, d: &[u8]) -> Result<(), Invalid> {
        let (width, height) = (be32(d, 0), be32(d, 4));
        let (depth, colour, compression, filter, interlace) = (d[8], d[9], d[10], d[11], d[12]);
        if width > MAX_U31 || height > MAX_U31 {
            return Err(Invalid::corrupt(format!(
                "IHDR gives the size {width}x{height}, over 2^31-1"
            )));
        }
        let depths: &[u8] = match colour {
            0 => &[1, 2, 4, 8, 16],
            3 => &[1, 2, 4, 8],
            2 | 4 | 6 => &[8, 16],
            _ => return Err(Invalid::corrupt(format!("IHDR has colour type {colour}"))),
        };
        if !depths.contains(&depth) {
            return Err(Invalid::corrupt(format!(
                "IHDR has bit depth {depth}, not allowed for colour type {colour}"
            )));
        }
        if compression != 0 || filter != 0 || interlace > 1 {
            return Err(Invalid::corrupt(format!(
                "IHDR has compression method {compression}, filter method {filter}, \
                 interlace method {interlace} (0, 0 and 0 or 1 are defined)"
            )));
        }
        self.limits
            .check_frame("frame", 1, u64::from(width), u64::from(height))?;
        self.ihdr = Some(Header {
            width,
            height,
            colour,
        });
        Ok(())
    }
}

impl Parser for Png {
    fn name(&self) -> &'static str {
        "PNG"
    }

    fn start(&mut self) -> Step {
        Step::Need(8)
    }

    fn need(&mut self, bytes: &[u8], at: u64) -> Result<Step, Invalid> {
        match self.at {
            At::Signature => {
                if bytes != SIGNATURE {
                    return Err(Invalid::corrupt(format!(
                        "the PNG signature is \"{}\"",
                        bytes.escape_ascii()
                    )));
                }
                self.at = At::Header;
                Ok(Step::Need(8))
            }
            At::Header => self.header(bytes, at),
            At::Small => {
                let (data, stored) = bytes.split_at(bytes.len() - 4);
                self.crc.update(data);
                self.check_crc(be32(stored, 0))?;
                self.small_chunk(data)?;
                Ok(self.next_chunk())
            }
            At::FdatSequence => {
                self.crc.update(bytes);
                self.fdat_sequence(be32(bytes, 0))?;
                self.at = At::Data;
                Ok(Step::Skip(u64::from(self.len)))
            }
            At::Crc => {
                self.check_crc(be32(bytes, 0))?;
                Ok(self.next_chunk())
            }
            At::Data | At::Done => Err(Invalid::corrupt(
                "internal error: the PNG parser asked for no bytes here",
            )),
        }
    }

    fn pass(&mut self, bytes: &[u8]) -> Result<(), Invalid> {
        self.crc.update(bytes);
        Ok(())
    }

    fn skipped(&mut self, _at: u64) -> Result<Step, Invalid> {
        self.at = At::Crc;
        Ok(Step::Need(4))
    }

    fn finish(&mut self, len: u64, _file: &mut dyn ReadAt) -> Result<Image, Invalid> {
        match (self.at, self.ihdr) {
            (At::Done, Some(ihdr)) => Image::new(
                u64::from(ihdr.width),
                u64::from(ihdr.height),
                self.actl.map_or(1, |anim| anim.frames),
            ),
            (At::Header, Some(_)) => Err(Invalid::truncated(format!(
                "truncated: the PNG ends at byte {} after chunk {}, without IEND",
                group(len),
                self.chunk_name()
            ))),
            _ => Err(Invalid::truncated(format!(
                "truncated: the PNG ends at byte {} after its signature",
                group(len)
            ))),
        }
    }

    fn inside(&self) -> String {
        match self.at {
            At::Signature => "in its signature".into(),
            At::Header => "inside a chunk header".into(),
            At::Small | At::FdatSequence | At::Data => format!("inside {}", self.chunk_name()),
            At::Crc => format!("in the CRC of {}", self.chunk_name()),
            At::Done => "after IEND".into(),
        }
    }
}
