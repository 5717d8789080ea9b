//! The chunks of a WebP: the header of each, and the ones that carry structure (VP8X, ANMF,
//! ALPH, VP8, VP8L).

use super::super::{Invalid, Step, group, le32};
use super::bitstream::{le24, vp8_size, vp8l_size};
use super::{ANIMATION_FLAG, At, Chunk, Frame, Group, KNOWN_FLAGS, Layout, MAX_IMAGE_AREA, WebP};

impl WebP {
    /// A chunk header: where it ends, and what to do with it.
    pub(super) fn chunk_header(&mut self, b: &[u8], at: u64) -> Result<Step, Invalid> {
        let size = le32(b, 4);
        let padded = u64::from(size) + u64::from(size & 1);
        let end = at + 8 + padded;
        self.chunk = Chunk {
            fourcc: [b[0], b[1], b[2], b[3]],
            at,
            size,
            end,
        };
        let (limit, container) = match self.frame {
            Some(f) => (
                f.end,
                format!("frame {} (the ANMF chunk at byte {})", f.index, group(f.at)),
            ),
            None => (self.riff_end, "the RIFF".to_string()),
        };
        if end > limit {
            return Err(Invalid::corrupt(format!(
                "{} ({} bytes) runs past the end of {container} at byte {}",
                self.chunk_desc(),
                group(u64::from(size)),
                group(limit)
            )));
        }
        let id = &self.chunk.fourcc;
        if self.layout == Layout::Unknown {
            return match id {
                b"VP8 " | b"VP8L" => {
                    self.layout = Layout::Simple;
                    self.bitstream_chunk()
                }
                b"VP8X" => {
                    if size != 10 {
                        return Err(Invalid::corrupt(format!(
                            "the VP8X chunk is {size} bytes, not 10"
                        )));
                    }
                    self.at = At::Vp8x;
                    Ok(Step::Need(10))
                }
                _ => Err(Invalid::corrupt(format!(
                    "the first chunk is {}, not VP8, VP8L or VP8X",
                    self.chunk_name()
                ))),
            };
        }
        if self.layout == Layout::Simple {
            // libwebp decodes the one bitstream and looks no further.
            return self.skip_data(0);
        }
        // An ALPH chunk's bitstream must follow it at once (libwebp's demuxer pairs them so).
        if let Some((alpha_at, _, _)) = self.group.alpha {
            if id != b"VP8 " {
                return Err(Invalid::corrupt(format!(
                    "the ALPH chunk at byte {} is followed by {}, not by a VP8 chunk",
                    group(alpha_at),
                    self.chunk_desc()
                )));
            }
        }
        let in_frame = self.frame.is_some();
        match id {
            b"VP8X" => Err(Invalid::corrupt(format!(
                "a second VP8X chunk at byte {}",
                group(at)
            ))),
            b"ALPH" | b"VP8 " | b"VP8L" => {
                if let Layout::Animated { .. } = self.layout {
                    if !in_frame {
                        return Err(Invalid::corrupt(format!(
                            "{} is outside any ANMF frame of an animated WebP",
                            self.chunk_desc()
                        )));
                    }
                }
                if self.group.done {
                    return Err(Invalid::corrupt(match self.frame {
                        Some(f) => format!(
                            "frame {} has a second image at byte {} ({})",
                            f.index,
                            group(at),
                            self.chunk_name()
                        ),
                        None => format!(
                            "a second image at byte {} ({}) in a still WebP",
                            group(at),
                            self.chunk_name()
                        ),
                    }));
                }
                if id == b"ALPH" {
                    if size < 2 {
                        return Err(Invalid::corrupt(format!(
                            "{} is {size} bytes, too short for alpha data",
                            self.chunk_desc()
                        )));
                    }
                    self.at = At::Alph;
                    Ok(Step::Need(1))
                } else {
                    self.bitstream_chunk()
                }
            }
            b"ANIM" => {
                if size < 6 {
                    return Err(Invalid::corrupt(format!(
                        "the ANIM chunk at byte {} is {size} bytes, not 6",
                        group(at)
                    )));
                }
                if in_frame {
                    return Err(Invalid::corrupt(format!(
                        "an ANIM chunk at byte {} inside an ANMF frame",
                        group(at)
                    )));
                }
                // libwebp's demuxer reads the first ANIM and skips any other.
                if let Layout::Animated { anim_seen } = &mut self.layout {
                    *anim_seen = true;
                }
                self.skip_data(0)
            }
            b"ANMF" => match self.layout {
                Layout::Animated { anim_seen } if !in_frame => {
                    if !anim_seen {
                        return Err(Invalid::corrupt(format!(
                            "the ANMF chunk at byte {} comes before the ANIM chunk",
                            group(at)
                        )));
                    }
                    if size < 16 {
                        return Err(Invalid::corrupt(format!(
                            "the ANMF chunk at byte {} is {size} bytes, too short for a frame",
                            group(at)
                        )));
                    }
                    self.at = At::Anmf;
                    Ok(Step::Need(16))
                }
                Layout::Animated { .. } => Err(Invalid::corrupt(format!(
                    "an ANMF chunk at byte {} inside another ANMF frame",
                    group(at)
                ))),
                _ => Err(Invalid::corrupt(format!(
                    "an ANMF frame at byte {} in a WebP without the animation flag",
                    group(at)
                ))),
            },
            _ => {
                if let Some(f) = self.frame {
                    if !self.group.done {
                        return Err(Invalid::corrupt(format!(
                            "frame {} starts with a {} chunk, not ALPH, VP8 or VP8L",
                            f.index,
                            self.chunk_name()
                        )));
                    }
                }
                // ICCP, EXIF, XMP and unknown chunks: their content does not make the image.
                self.skip_data(0)
            }
        }
    }

    /// A VP8 or VP8L chunk: ask for the header of its bitstream.
    pub(super) fn bitstream_chunk(&mut self) -> Result<Step, Invalid> {
        let (at, need) = if &self.chunk.fourcc == b"VP8L" {
            (At::Vp8l, 5)
        } else {
            (At::Vp8, 10)
        };
        if self.chunk.size < need {
            return Err(Invalid::corrupt(format!(
                "{} is {} bytes, too short for its header",
                self.chunk_desc(),
                self.chunk.size
            )));
        }
        self.at = at;
        Ok(Step::Need(need as usize))
    }

    /// Lets the rest of the current chunk pass; `read` bytes of its data were read already.
    pub(super) fn skip_data(&mut self, read: u64) -> Result<Step, Invalid> {
        self.at = At::Data;
        let from = self.chunk.at + 8 + read;
        Ok(Step::Skip(self.chunk.end - from))
    }

    /// The VP8X chunk: flags and canvas.
    pub(super) fn vp8x(&mut self, b: &[u8]) -> Result<Step, Invalid> {
        let flags = b[0];
        if flags & !KNOWN_FLAGS != 0 {
            return Err(Invalid::corrupt(format!(
                "the VP8X chunk has unknown flags 0x{:02x}",
                flags & !KNOWN_FLAGS
            )));
        }
        let width = 1 + u64::from(le24(b, 4));
        let height = 1 + u64::from(le24(b, 7));
        if width.saturating_mul(height) > self.limits.max_pixels {
            return Err(Invalid::too_large(format!(
                "the canvas is {width}x{height}, over max_pixels ({})",
                self.limits.max_pixels
            )));
        }
        if width * height >= MAX_IMAGE_AREA {
            return Err(Invalid::corrupt(format!(
                "the canvas is {width}x{height}, 2^32 pixels or more, which libwebp refuses"
            )));
        }
        self.width = width;
        self.height = height;
        self.layout = if flags & ANIMATION_FLAG != 0 {
            Layout::Animated { anim_seen: false }
        } else {
            Layout::Still
        };
        self.skip_data(10)
    }

    /// An ANMF frame header: position, size, and that it fits the canvas.
    pub(super) fn anmf(&mut self, b: &[u8], at: u64) -> Result<Step, Invalid> {
        self.frames = self.frames.saturating_add(1);
        self.limits.check_count("frame", u64::from(self.frames))?;
        let index = self.frames;
        let x = 2 * u64::from(le24(b, 0));
        let y = 2 * u64::from(le24(b, 3));
        let width = 1 + u64::from(le24(b, 6));
        let height = 1 + u64::from(le24(b, 9));
        self.limits.check_frame("frame", index, width, height)?;
        if x + width > self.width || y + height > self.height {
            return Err(Invalid::corrupt(format!(
                "frame {index} ({width}x{height} at {x},{y}) does not fit the {}x{} canvas",
                self.width, self.height
            )));
        }
        self.frame = Some(Frame {
            index,
            at: self.chunk.at,
            end: self.chunk.end,
            width,
            height,
        });
        self.group = Group::default();
        self.boundary(at + 16)
    }

    /// The first bytes of a VP8 or VP8L bitstream: its size, checked against its place.
    pub(super) fn bitstream(&mut self, b: &[u8]) -> Result<Step, Invalid> {
        let lossless = self.at == At::Vp8l;
        let (width, height) = if lossless {
            vp8l_size(b).map_err(|why| Invalid::corrupt(format!("{}: {why}", self.chunk_desc())))?
        } else {
            vp8_size(b, self.chunk.size)
                .map_err(|why| Invalid::corrupt(format!("{}: {why}", self.chunk_desc())))?
        };
        if let Some((alpha_at, method, size)) = self.group.alpha.take() {
            // Uncompressed alpha is one byte a pixel after the header byte; libwebp refuses less.
            if method == 0 && u64::from(size) - 1 < width * height {
                return Err(Invalid::corrupt(format!(
                    "the ALPH chunk at byte {} holds {} bytes of raw alpha, the {width}x{height} image needs {}",
                    group(alpha_at),
                    group(u64::from(size) - 1),
                    group(width * height)
                )));
            }
        }
        self.group.done = true;
        let read = if lossless { 5 } else { 10 };
        match (self.layout, self.frame) {
            (_, Some(f)) => {
                // libwebp places the frame by its bitstream's size and ignores the ANMF's; every
                // muxer writes the two equal, so a difference is damage (and would let a frame
                // claim to fit the canvas while its bitstream does not).
                if (width, height) != (f.width, f.height) {
                    return Err(Invalid::corrupt(format!(
                        "frame {} is {}x{} but its bitstream is {width}x{height}",
                        f.index, f.width, f.height
                    )));
                }
            }
            (Layout::Simple, None) => {
                self.limits.check_frame("image", 1, width, height)?;
                self.width = width;
                self.height = height;
            }
            _ => {
                if (width, height) != (self.width, self.height) {
                    return Err(Invalid::corrupt(format!(
                        "the canvas is {}x{} but the image is {width}x{height}",
                        self.width, self.height
                    )));
                }
            }
        }
        self.skip_data(read)
    }
}
