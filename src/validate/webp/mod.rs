//! WebP: proves that the RIFF container is whole (every chunk inside it, the body exactly as long
//! as the RIFF says), that its layout is one libwebp's demuxer accepts (simple lossy, simple
//! lossless, or extended with VP8X: one still image, or ANIM and ANMF frames that fit the
//! canvas), and reads each bitstream's header (VP8 key frame, VP8L signature) for its size. It
//! does not decode the VP8/VP8L bitstreams, so damage inside compressed data goes unseen.

use super::{Image, Invalid, Limits, Parser, ReadAt, Step, group, le32};

mod bitstream;
mod chunks;
#[cfg(test)]
mod tests;

/// VP8X flags (its first byte): the ones libwebp knows. Any other bit set makes libwebp's demuxer
/// (Chrome, Pillow) refuse the file, so it is refused here too.
const ICCP_FLAG: u8 = 0x20;
const ALPHA_FLAG: u8 = 0x10;
const EXIF_FLAG: u8 = 0x08;
const XMP_FLAG: u8 = 0x04;
const ANIMATION_FLAG: u8 = 0x02;
const KNOWN_FLAGS: u8 = ICCP_FLAG | ALPHA_FLAG | EXIF_FLAG | XMP_FLAG | ANIMATION_FLAG;

/// libwebp refuses a canvas or frame of 2^32 pixels or more (`MAX_IMAGE_AREA`).
const MAX_IMAGE_AREA: u64 = 1 << 32;
/// The largest RIFF size libwebp accepts (`MAX_CHUNK_PAYLOAD`).
const MAX_RIFF_SIZE: u32 = u32::MAX - 8 - 1;

/// The WebP parser. See the module doc for what it proves.
pub struct WebP {
    limits: Limits,
    /// What the pending step reads.
    at: At,
    /// Offset just past the RIFF chunk: 8 + its size.
    riff_end: u64,
    layout: Layout,
    /// The canvas (VP8X) or the image (simple layout), once known.
    width: u64,
    height: u64,
    /// The chunk being read, for messages and for the end of its data.
    chunk: Chunk,
    /// ANMF frames met so far.
    frames: u32,
    /// The ANMF frame being read, if any.
    frame: Option<Frame>,
    /// The image of the current group (the still image, or the current frame's).
    group: Group,
    /// Offset of the chunk header being asked for, for messages.
    header_at: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    Riff,
    ChunkHeader,
    Vp8x,
    Vp8,
    Vp8l,
    Alph,
    Anmf,
    /// The rest of a chunk's data (and its pad byte).
    Data,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// No chunk read yet.
    Unknown,
    /// One VP8 or VP8L chunk; what follows it is walked but ignored, as libwebp ignores it.
    Simple,
    /// VP8X without the animation flag: exactly one image (ALPH? VP8, or VP8L).
    Still,
    /// VP8X with the animation flag: ANIM, then ANMF frames.
    Animated { anim_seen: bool },
}

#[derive(Debug, Clone, Copy)]
struct Chunk {
    fourcc: [u8; 4],
    /// Offset of its header.
    at: u64,
    size: u32,
    /// Offset just past its data and pad byte.
    end: u64,
}

#[derive(Debug, Clone, Copy)]
struct Frame {
    index: u32,
    at: u64,
    /// Offset just past the ANMF's data and pad byte: its sub-chunks must end exactly there.
    end: u64,
    width: u64,
    height: u64,
}

/// An image: an optional ALPH chunk, then its VP8 or VP8L bitstream.
#[derive(Debug, Clone, Copy, Default)]
struct Group {
    /// An ALPH chunk waiting for its VP8 chunk: (offset, compression method, data size).
    alpha: Option<(u64, u8, u32)>,
    /// The bitstream was read.
    done: bool,
}

impl WebP {
    pub fn new(limits: Limits) -> WebP {
        WebP {
            limits,
            at: At::Riff,
            riff_end: 0,
            layout: Layout::Unknown,
            width: 0,
            height: 0,
            chunk: Chunk {
                fourcc: *b"RIFF",
                at: 0,
                size: 0,
                end: 0,
            },
            frames: 0,
            frame: None,
            group: Group::default(),
            header_at: 12,
        }
    }

    fn chunk_name(&self) -> String {
        fourcc(self.chunk.fourcc)
    }

    /// "the VP8 chunk at byte 30" or "the VP8 chunk of frame 2 at byte 90".
    fn chunk_desc(&self) -> String {
        match self.frame {
            Some(f) => format!(
                "the {} chunk of frame {} at byte {}",
                self.chunk_name(),
                f.index,
                group(self.chunk.at)
            ),
            None => format!(
                "the {} chunk at byte {}",
                self.chunk_name(),
                group(self.chunk.at)
            ),
        }
    }

    /// At a chunk boundary `at`: closes the frame that ends here, ends the RIFF, or asks for the
    /// next chunk header.
    fn boundary(&mut self, at: u64) -> Result<Step, Invalid> {
        if let Some(f) = self.frame {
            if at == f.end {
                self.end_group(&format!(
                    "frame {} (the ANMF chunk at byte {})",
                    f.index,
                    group(f.at)
                ))?;
                self.frame = None;
            } else if f.end - at < 8 {
                return Err(Invalid::corrupt(format!(
                    "frame {} (the ANMF chunk at byte {}) ends with {} bytes that are not a chunk",
                    f.index,
                    group(f.at),
                    f.end - at
                )));
            } else {
                self.at = At::ChunkHeader;
                self.header_at = at;
                return Ok(Step::Need(8));
            }
        }
        if at == self.riff_end {
            self.end_riff()?;
            return Ok(Step::End);
        }
        if self.riff_end - at < 8 {
            return Err(Invalid::corrupt(format!(
                "the RIFF ends with {} bytes at byte {} that are not a chunk",
                self.riff_end - at,
                group(at)
            )));
        }
        self.at = At::ChunkHeader;
        self.header_at = at;
        Ok(Step::Need(8))
    }

    /// The end of an image group (the still image's chunks, or a frame): its bitstream must
    /// have come, and an ALPH chunk must not be left without its VP8 chunk.
    fn end_group(&mut self, what: &str) -> Result<(), Invalid> {
        if let Some((at, _, _)) = self.group.alpha {
            return Err(Invalid::corrupt(format!(
                "the ALPH chunk at byte {} of {what} is not followed by a VP8 chunk",
                group(at)
            )));
        }
        if !self.group.done {
            return Err(Invalid::corrupt(format!(
                "{what} has no VP8 or VP8L bitstream"
            )));
        }
        self.group = Group::default();
        Ok(())
    }

    /// The last checks at the end of the RIFF.
    fn end_riff(&mut self) -> Result<(), Invalid> {
        match self.layout {
            Layout::Unknown | Layout::Simple => Ok(()),
            Layout::Still => self.end_group("the image"),
            Layout::Animated { .. } => {
                if self.frames == 0 {
                    Err(Invalid::corrupt(
                        "the WebP has the animation flag but no ANMF frame",
                    ))
                } else {
                    Ok(())
                }
            }
        }
    }
}

impl Parser for WebP {
    fn name(&self) -> &'static str {
        "WebP"
    }

    fn start(&mut self) -> Step {
        Step::Need(12)
    }

    fn need(&mut self, b: &[u8], at: u64) -> Result<Step, Invalid> {
        match self.at {
            At::Riff => {
                if &b[0..4] != b"RIFF" || &b[8..12] != b"WEBP" {
                    return Err(Invalid::corrupt("not a RIFF WEBP file"));
                }
                let size = le32(b, 4);
                if !(12..=MAX_RIFF_SIZE).contains(&size) {
                    return Err(Invalid::corrupt(format!(
                        "the RIFF size {} is not one libwebp accepts",
                        group(u64::from(size))
                    )));
                }
                self.riff_end = 8 + u64::from(size);
                self.boundary(12)
            }
            At::ChunkHeader => self.chunk_header(b, at),
            At::Vp8x => self.vp8x(b),
            At::Vp8 | At::Vp8l => self.bitstream(b),
            At::Alph => {
                let method = bitstream::alph_header(b[0])
                    .map_err(|why| Invalid::corrupt(format!("{} {why}", self.chunk_desc())))?;
                self.group.alpha = Some((self.chunk.at, method, self.chunk.size));
                self.skip_data(1)
            }
            At::Anmf => self.anmf(b, at),
            At::Data => Err(Invalid::corrupt("internal error: WebP need at Data")),
        }
    }

    fn skipped(&mut self, at: u64) -> Result<Step, Invalid> {
        self.boundary(at)
    }

    fn finish(&mut self, _len: u64, _file: &mut dyn ReadAt) -> Result<Image, Invalid> {
        let frames = match self.layout {
            Layout::Animated { .. } => self.frames,
            _ => 1,
        };
        Image::new(self.width, self.height, frames)
    }

    fn inside(&self) -> String {
        match self.at {
            At::Riff => "in its RIFF header".into(),
            At::ChunkHeader => match self.frame {
                Some(f) => format!(
                    "in a chunk header of frame {} at byte {}",
                    f.index,
                    group(self.header_at)
                ),
                None => format!("in a chunk header at byte {}", group(self.header_at)),
            },
            At::Anmf => format!(
                "in the header of frame {} (the ANMF chunk at byte {})",
                self.frames + 1,
                group(self.chunk.at)
            ),
            At::Vp8x | At::Vp8 | At::Vp8l | At::Alph | At::Data => {
                format!("inside {}", self.chunk_desc())
            }
        }
    }
}

/// A FourCC for messages: "VP8 " without its space, unprintable bytes escaped.
fn fourcc(id: [u8; 4]) -> String {
    let s: String = id
        .iter()
        .flat_map(|b| std::ascii::escape_default(*b))
        .map(char::from)
        .collect();
    s.trim_end().to_string()
}
