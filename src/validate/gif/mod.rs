//! GIF: proves the block structure is whole and legal (GIF87a/GIF89a header, logical screen,
//! colour tables, every extension and image's sub-blocks up to their terminators, the trailer),
//! that every frame lies inside the logical screen (grown to fit the first frame, as browsers
//! grow it), and checks the screen, each frame and the frame
//! count against the limits. It does not decode the LZW data: a frame whose codes are short or
//! corrupt inside well-formed sub-blocks passes here and is caught only by the full decode.

use super::{Image, Invalid, Limits, Parser, ReadAt, Scanned, Step, group, le16};

#[cfg(test)]
mod tests;

/// The LZW minimum code sizes decoders accept: giflib and Chromium refuse 12 and more (the code
/// size would pass the 12-bit dictionary); 0 is refused as no encoder writes it. The spec's own
/// range is 2..=8, but 1 (two-colour images) and 9-11 decode in every reference decoder.
const CODE_SIZES: std::ops::RangeInclusive<u8> = 1..=11;

/// Where the parser is in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// The 6-byte signature and the 7-byte logical screen descriptor.
    Header,
    /// The global colour table.
    GlobalTable,
    /// A block introducer (the body may end here; `finish` says the trailer is missing).
    Introducer,
    /// An extension's label.
    Label,
    /// An image descriptor.
    Descriptor,
    /// A local colour table (if any) and the LZW minimum code size.
    Table,
    /// An extension's or image's sub-blocks.
    SubBlocks,
    /// After the trailer.
    Done,
}

pub struct Gif {
    limits: Limits,
    at: At,
    width: u16,
    height: u16,
    /// Frames (image descriptors) so far.
    frames: u32,
    /// Offset of the current block's introducer.
    block: u64,
    /// The current extension's label, or `None` in an image's data.
    label: Option<u8>,
    /// Bytes of the current sub-block still to pass; the next byte after them is a length.
    left: usize,
    /// The current image has a non-empty data sub-block.
    data: bool,
}

impl Gif {
    pub fn new(limits: Limits) -> Gif {
        Gif {
            limits,
            at: At::Header,
            width: 0,
            height: 0,
            frames: 0,
            block: 0,
            label: None,
            left: 0,
            data: false,
        }
    }

    fn header(&mut self, b: &[u8]) -> Result<Step, Invalid> {
        if &b[..6] != b"GIF87a" && &b[..6] != b"GIF89a" {
            return Err(Invalid::corrupt(format!(
                "the GIF signature is \"{}\", not GIF87a or GIF89a",
                b[..6].escape_ascii()
            )));
        }
        let (w, h, flags) = (le16(b, 6), le16(b, 8), b[10]);
        let pixels = u64::from(w) * u64::from(h);
        if pixels == 0 {
            return Err(Invalid::corrupt(format!("the logical screen is {w}x{h}")));
        }
        if pixels > self.limits.max_pixels {
            return Err(Invalid::too_large(format!(
                "the logical screen is {w}x{h}, over max_pixels ({})",
                self.limits.max_pixels
            )));
        }
        (self.width, self.height) = (w, h);
        self.at = At::GlobalTable;
        Ok(Step::Skip(table_len(flags) as u64))
    }

    /// A block introducer at `at`: an extension, an image, or the trailer.
    fn introducer(&mut self, byte: u8, at: u64) -> Result<Step, Invalid> {
        self.block = at;
        match byte {
            0x21 => {
                self.at = At::Label;
                Ok(Step::Need(1))
            }
            0x2C => {
                self.frames = self.frames.saturating_add(1);
                self.limits.check_count("frame", u64::from(self.frames))?;
                self.at = At::Descriptor;
                Ok(Step::Need(9))
            }
            0x3B if self.frames == 0 => Err(Invalid::corrupt(format!(
                "the GIF ends (its trailer is at byte {}) without an image",
                group(at)
            ))),
            0x3B => {
                self.at = At::Done;
                Ok(Step::Done)
            }
            // giflib refuses any other byte; browsers stop there and show what came before, but
            // then what follows is not part of the image and the file is not whole.
            _ => Err(Invalid::corrupt(format!(
                "byte {} is 0x{byte:02X}, not a block (0x21 extension, 0x2C image, 0x3B trailer)",
                group(at)
            ))),
        }
    }

    /// An image descriptor: the frame's rectangle, which must lie inside the logical screen.
    fn descriptor(&mut self, b: &[u8]) -> Result<Step, Invalid> {
        let n = self.frames;
        let (x, y, w, h, flags) = (le16(b, 0), le16(b, 2), le16(b, 4), le16(b, 6), b[8]);
        // Every frame within max_pixels, whatever the screen says: a 1x1 screen announcing a
        // 60000x60000 frame is how a GIF bomb hides from header checks.
        self.limits
            .check_frame("frame", n, u64::from(w), u64::from(h))?;
        let (right, bottom) = (u32::from(x) + u32::from(w), u32::from(y) + u32::from(h));
        if right > u32::from(self.width) || bottom > u32::from(self.height) {
            if n != 1 {
                return Err(Invalid::corrupt(format!(
                    "frame {n} ({w}x{h} at {x},{y}) lies outside the {}x{} logical screen",
                    self.width, self.height
                )));
            }
            // Old encoders wrote a screen smaller than the first frame, and browsers and Pillow
            // grow the screen to fit it: so does the displayed size. Later frames must fit.
            let (gw, gh) = (right.max(self.width.into()), bottom.max(self.height.into()));
            if u64::from(gw) * u64::from(gh) > self.limits.max_pixels {
                return Err(Invalid::too_large(format!(
                    "frame 1 ({w}x{h} at {x},{y}) grows the {}x{} logical screen to {gw}x{gh}, over max_pixels ({})",
                    self.width, self.height, self.limits.max_pixels
                )));
            }
            match (u16::try_from(gw), u16::try_from(gh)) {
                (Ok(gw), Ok(gh)) => (self.width, self.height) = (gw, gh),
                _ => {
                    return Err(Invalid::corrupt(format!(
                        "frame 1 ({w}x{h} at {x},{y}) reaches past the 65535x65535 a GIF can address"
                    )));
                }
            }
        }
        self.at = At::Table;
        Ok(Step::Need(table_len(flags) + 1))
    }

    /// The sub-blocks ended at their terminator; the next block's introducer follows.
    fn terminated(&mut self) -> Result<Step, Invalid> {
        if self.label.is_none() && !self.data {
            return Err(Invalid::corrupt(format!(
                "frame {} (at byte {}) has no image data",
                self.frames,
                group(self.block)
            )));
        }
        self.at = At::Introducer;
        Ok(Step::NeedOrEnd(1))
    }

    /// Names the current extension for messages.
    fn extension(&self) -> String {
        match self.label {
            Some(0xF9) => "a graphic control extension".into(),
            Some(0xFE) => "a comment extension".into(),
            Some(0xFF) => "an application extension".into(),
            Some(0x01) => "a plain text extension".into(),
            Some(label) => format!("an extension 0x{label:02X}"),
            None => "an extension".into(),
        }
    }
}

/// Bytes of a colour table whose flag and size are in the low bits of `flags`.
fn table_len(flags: u8) -> usize {
    if flags & 0x80 != 0 {
        3 << ((flags & 7) + 1)
    } else {
        0
    }
}

impl Parser for Gif {
    fn name(&self) -> &'static str {
        "GIF"
    }

    fn start(&mut self) -> Step {
        Step::Need(13)
    }

    fn need(&mut self, bytes: &[u8], at: u64) -> Result<Step, Invalid> {
        match self.at {
            At::Header => self.header(bytes),
            At::Introducer => self.introducer(bytes[0], at),
            At::Label => {
                self.label = Some(bytes[0]);
                self.left = 0;
                self.at = At::SubBlocks;
                Ok(Step::Scan)
            }
            At::Descriptor => self.descriptor(bytes),
            At::Table => {
                let size = bytes[bytes.len() - 1];
                if !CODE_SIZES.contains(&size) {
                    return Err(Invalid::corrupt(format!(
                        "frame {} has the LZW minimum code size {size} (at byte {})",
                        self.frames,
                        group(at + bytes.len() as u64 - 1)
                    )));
                }
                self.label = None;
                self.left = 0;
                self.data = false;
                self.at = At::SubBlocks;
                Ok(Step::Scan)
            }
            At::GlobalTable | At::SubBlocks | At::Done => Err(Invalid::corrupt(
                "internal error: the GIF parser asked for no bytes here",
            )),
        }
    }

    fn skipped(&mut self, _at: u64) -> Result<Step, Invalid> {
        self.at = At::Introducer;
        Ok(Step::NeedOrEnd(1))
    }

    /// Hops from one sub-block's length byte to the next inside the slice: one step per up to
    /// 256 bytes, whatever the pieces the body arrives in.
    fn scan(&mut self, bytes: &[u8], _at: u64) -> Result<Scanned, Invalid> {
        let mut i = self.left;
        loop {
            let Some(&len) = bytes.get(i) else {
                self.left = i - bytes.len();
                return Ok(Scanned::All);
            };
            i += 1;
            if len == 0 {
                self.left = 0;
                let next = self.terminated()?;
                return Ok(Scanned::Stop { used: i, next });
            }
            self.data = true;
            i += usize::from(len);
        }
    }

    fn finish(&mut self, len: u64, _file: &mut dyn ReadAt) -> Result<Image, Invalid> {
        match self.at {
            At::Done => Image::new(u64::from(self.width), u64::from(self.height), self.frames),
            _ => Err(Invalid::truncated(format!(
                "truncated: the GIF ends at byte {} without its trailer (after {} frame{})",
                group(len),
                self.frames,
                if self.frames == 1 { "" } else { "s" }
            ))),
        }
    }

    fn inside(&self) -> String {
        match self.at {
            At::Header => "in its header".into(),
            At::GlobalTable => "in its global colour table".into(),
            At::Introducer => "before its trailer".into(),
            At::Label => "in an extension's label".into(),
            At::Descriptor => format!("in the descriptor of frame {}", self.frames),
            At::Table => format!("in the colour table of frame {}", self.frames),
            At::SubBlocks if self.label.is_some() => format!("inside {}", self.extension()),
            At::SubBlocks => format!("inside the frame {} data", self.frames),
            At::Done => "after its trailer".into(),
        }
    }
}
