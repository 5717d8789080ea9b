//! BMP: proves that the headers are ones decoders know (OS/2 1.x and 2.x, Windows V3 to V5), that
//! the colour table fits before the pixel data, and that the pixel data is all there: the exact
//! size of uncompressed rows, an RLE8/RLE4 command stream walked to its end-of-bitmap marker, or
//! an embedded PNG/JPEG validated by its own parser. Also parses an icon's DIB (no file header,
//! doubled height, AND mask). It does not look at pixel values, palette indices or RLE runs that
//! overflow a row, and ignores the file size field, which writers often get wrong.

use super::{Image, Invalid, Limits, Parser, ReadAt, Step, Validator, group, le16, le32};

mod embedded;
mod rle;
#[cfg(test)]
mod tests;

pub(crate) use embedded::Embedded;
use rle::{Rle, Walked};

const RGB: u32 = 0;
const RLE8: u32 = 1;
const RLE4: u32 = 2;
const BITFIELDS: u32 = 3;
const JPEG: u32 = 4;
const PNG: u32 = 5;
const ALPHABITFIELDS: u32 = 6;

/// The BMP parser (a whole file) or an icon's DIB. See the module doc for what it proves.
pub struct Bmp {
    limits: Limits,
    /// An icon's DIB: no file header, height doubled for the AND mask that follows the pixels.
    icon: bool,
    at: At,
    /// The file header's pixel data offset (0: right after the colour table).
    pixel_offset: u32,
    dib_size: u32,
    width: u64,
    /// The image's height (for an icon, half the DIB's).
    height: u64,
    bpp: u16,
    compression: u32,
    /// Offset where the pixel data starts.
    data_at: u64,
    /// Bytes of pixel data: uncompressed rows, or the embedded image.
    data_len: u64,
    /// An icon's AND mask: one bit a pixel, rows padded to whole bytes at least.
    mask_len: u64,
    rle: Rle,
    embedded: Option<Embedded>,
    /// The embedded PNG/JPEG's own size, once validated.
    real: Option<(u64, u64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    FileHeader,
    DibSize,
    Dib,
    /// Masks, colour table and any gap before the pixel data.
    Table,
    Pixels,
    AndMask,
    Rle,
    Embedded,
    Done,
}

impl Bmp {
    pub fn new(limits: Limits) -> Bmp {
        Bmp {
            limits,
            icon: false,
            at: At::FileHeader,
            pixel_offset: 0,
            dib_size: 0,
            width: 0,
            height: 0,
            bpp: 0,
            compression: RGB,
            data_at: 0,
            data_len: 0,
            mask_len: 0,
            rle: Rle::Count,
            embedded: None,
            real: None,
        }
    }

    /// The DIB of an icon or cursor: it starts at the DIB header, its height counts the XOR
    /// image and the AND mask, and its pixels follow the colour table directly.
    pub(crate) fn dib_in_icon(limits: Limits) -> Bmp {
        Bmp {
            icon: true,
            at: At::DibSize,
            ..Bmp::new(limits)
        }
    }

    /// The DIB header size: the header versions decoders know.
    fn dib_size(&mut self, size: u32, at: u64) -> Result<Step, Invalid> {
        if !matches!(size, 12 | 16 | 40 | 52 | 56 | 64 | 108 | 124) {
            return Err(Invalid::corrupt(format!(
                "the DIB header at byte {} is {} bytes, not a BMP header size decoders know",
                group(at),
                group(u64::from(size))
            )));
        }
        self.dib_size = size;
        self.at = At::Dib;
        Ok(Step::Need(size as usize - 4))
    }

    /// The DIB header after its size field (`b[k - 4]` is the header's byte `k`), which ends at
    /// `end`.
    fn dib(&mut self, b: &[u8], end: u64) -> Result<Step, Invalid> {
        let os2v1 = self.dib_size == 12;
        let os2v2 = matches!(self.dib_size, 16 | 64);
        let (width, height, planes, bpp) = if os2v1 {
            (
                i64::from(le16(b, 0)),
                i64::from(le16(b, 2)),
                le16(b, 4),
                le16(b, 6),
            )
        } else {
            (
                i64::from(le32(b, 0) as i32),
                i64::from(le32(b, 4) as i32),
                le16(b, 8),
                le16(b, 10),
            )
        };
        let (compression, size_image, clr_used) = if self.dib_size >= 40 {
            (le32(b, 12), le32(b, 16), le32(b, 28))
        } else {
            (RGB, 0, 0)
        };
        self.bpp = bpp;
        self.compression = compression;
        if planes != 1 {
            return Err(Invalid::corrupt(format!(
                "the BMP has {planes} planes, not 1"
            )));
        }
        match compression {
            RGB | RLE8 | RLE4 | BITFIELDS | JPEG | PNG | ALPHABITFIELDS => {}
            _ => {
                return Err(Invalid::corrupt(format!(
                    "the BMP's compression {compression} is not one decoders know"
                )));
            }
        }
        if os2v2 && matches!(compression, BITFIELDS | JPEG) {
            let what = if compression == BITFIELDS {
                "Huffman 1D"
            } else {
                "RLE24"
            };
            return Err(Invalid::corrupt(format!(
                "the BMP uses OS/2 {what} compression, which jobd does not support"
            )));
        }
        let bpp_ok = match compression {
            RGB => matches!(bpp, 1 | 2 | 4 | 8 | 16 | 24 | 32),
            RLE8 => bpp == 8,
            RLE4 => bpp == 4,
            BITFIELDS => matches!(bpp, 16 | 24 | 32),
            ALPHABITFIELDS => matches!(bpp, 16 | 32),
            // JPEG and PNG carry their own depth; the field should be 0.
            _ => matches!(bpp, 0 | 1 | 2 | 4 | 8 | 16 | 24 | 32),
        };
        if !bpp_ok {
            return Err(Invalid::corrupt(format!(
                "the BMP has {bpp} bits a pixel with {}",
                compression_name(compression)
            )));
        }
        if self.icon && !matches!(compression, RGB | BITFIELDS | ALPHABITFIELDS) {
            return Err(Invalid::corrupt(format!(
                "an icon's bitmap uses {}",
                compression_name(compression)
            )));
        }
        if width <= 0 || height == 0 {
            return Err(Invalid::corrupt(format!("the BMP is {width}x{height}")));
        }
        // A negative height is a top-down bitmap of |height| rows.
        let top_down = height < 0;
        if top_down && matches!(compression, RLE8 | RLE4) {
            return Err(Invalid::corrupt(format!(
                "the BMP is top-down (height {height}) with {}, which is illegal",
                compression_name(compression)
            )));
        }
        self.width = width.unsigned_abs();
        self.height = height.unsigned_abs();
        if self.icon {
            self.height /= 2;
        }
        self.limits
            .check_frame("image", 1, self.width, self.height)?;

        // Colour masks follow a V3 header; later headers hold them.
        let masks: u64 = match (self.dib_size, compression) {
            (40, BITFIELDS) => 12,
            (40, ALPHABITFIELDS) => 16,
            _ => 0,
        };
        // A paletted image has 2^bpp entries unless clr_used says fewer (decoders clamp larger
        // values); above 8 bits a table is optional and only the data offset accounts for it.
        let entry: u64 = if os2v1 { 3 } else { 4 };
        let paletted = bpp <= 8 && bpp > 0;
        let max_colors = 1u64 << bpp.min(8);
        let colors = if paletted {
            match u64::from(clr_used) {
                0 => max_colors,
                n => n.min(max_colors),
            }
        } else {
            0
        };
        let table_end = end + masks + colors * entry;
        self.data_at = if self.icon {
            // An icon's DIB has no offset: an optional table above 8 bits still sits here.
            let optional = if paletted {
                0
            } else {
                u64::from(clr_used) * entry
            };
            table_end + optional
        } else if self.pixel_offset == 0 {
            table_end
        } else if u64::from(self.pixel_offset) < end + masks {
            return Err(Invalid::corrupt(format!(
                "the pixel data offset {} points inside the BMP's headers, which end at byte {}",
                group(u64::from(self.pixel_offset)),
                group(end + masks)
            )));
        } else {
            // A colour table that runs into the pixel data is cut short where the pixels start,
            // as Chromium's and Pillow's readers do: writers often leave clr_used at 0 (all
            // 2^bpp colours) and store only the colours they use.
            u64::from(self.pixel_offset)
        };

        self.data_len = match compression {
            JPEG | PNG => {
                if size_image == 0 {
                    return Err(Invalid::corrupt(format!(
                        "the BMP's {} has no size",
                        compression_name(compression)
                    )));
                }
                u64::from(size_image)
            }
            RLE8 | RLE4 => 0,
            _ => {
                // Rows are padded to 32 bits. check_frame bounded the pixels, but not the bits.
                let row = self
                    .width
                    .checked_mul(u64::from(bpp))
                    .and_then(|bits| bits.checked_add(31))
                    .map(|bits| bits / 32 * 4);
                row.and_then(|row| row.checked_mul(self.height))
                    .ok_or_else(|| {
                        Invalid::corrupt(format!(
                            "the BMP's {}x{} pixels at {bpp} bits overflow",
                            self.width, self.height
                        ))
                    })?
            }
        };
        if self.icon {
            // The AND mask's rows should be padded to 32 bits, but Pillow writes them padded to
            // bytes only (and decoders read what they need from the entry's end): require the
            // smaller size, the bytes that hold one bit a pixel.
            self.mask_len = self.width.div_ceil(8) * self.height;
        }
        self.at = At::Table;
        Ok(Step::Skip(self.data_at - end))
    }

    /// At the pixel data.
    fn pixels(&mut self) -> Step {
        match self.compression {
            RLE8 | RLE4 => {
                self.at = At::Rle;
                Step::Scan
            }
            JPEG | PNG => {
                let (kind, mime) = if self.compression == JPEG {
                    ("JPEG", "image/jpeg")
                } else {
                    ("PNG", "image/png")
                };
                let label = format!(
                    "the {kind} of {} bytes embedded at byte {}",
                    group(self.data_len),
                    group(self.data_at)
                );
                self.embedded = Some(Embedded::new(Validator::for_mime(mime, self.limits), label));
                self.at = At::Embedded;
                Step::Skip(self.data_len)
            }
            _ => {
                self.at = At::Pixels;
                Step::Skip(self.data_len)
            }
        }
    }
}

fn compression_name(compression: u32) -> String {
    match compression {
        RGB => "no compression".into(),
        RLE8 => "RLE8 compression".into(),
        RLE4 => "RLE4 compression".into(),
        BITFIELDS => "BITFIELDS".into(),
        JPEG => "JPEG compression".into(),
        PNG => "PNG compression".into(),
        ALPHABITFIELDS => "ALPHABITFIELDS".into(),
        n => format!("compression {n}"),
    }
}

impl Parser for Bmp {
    fn name(&self) -> &'static str {
        "BMP"
    }

    fn start(&mut self) -> Step {
        match self.at {
            At::DibSize => Step::Need(4),
            _ => Step::Need(18),
        }
    }

    fn need(&mut self, b: &[u8], at: u64) -> Result<Step, Invalid> {
        match self.at {
            At::FileHeader => {
                if &b[0..2] != b"BM" {
                    return Err(Invalid::corrupt("not a BMP file (no BM signature)"));
                }
                // The file size at byte 2 is not checked: writers put 0 or wrong values there.
                self.pixel_offset = le32(b, 10);
                self.dib_size(le32(b, 14), 14)
            }
            At::DibSize => self.dib_size(le32(b, 0), at),
            At::Dib => self.dib(b, at + b.len() as u64),
            _ => Err(Invalid::corrupt("internal error: a BMP need out of place")),
        }
    }

    fn pass(&mut self, bytes: &[u8]) -> Result<(), Invalid> {
        match &mut self.embedded {
            Some(e) => e.feed(bytes),
            None => Ok(()),
        }
    }

    fn skipped(&mut self, _at: u64) -> Result<Step, Invalid> {
        match self.at {
            At::Table => Ok(self.pixels()),
            // A 32-bit icon's alpha channel makes its AND mask unused: decoders (Pillow,
            // browsers) do not read it, and some writers leave it out.
            At::Pixels if self.icon && self.bpp < 32 => {
                self.at = At::AndMask;
                Ok(Step::Skip(self.mask_len))
            }
            At::Pixels | At::AndMask => {
                self.at = At::Done;
                Ok(Step::Done)
            }
            At::Embedded => {
                let image = match self.embedded.take() {
                    Some(e) => e.finish()?,
                    None => return Err(Invalid::corrupt("internal error: no embedded image")),
                };
                let (w, h) = (u64::from(image.width), u64::from(image.height));
                self.limits.check_frame("image", 1, w, h)?;
                self.real = Some((w, h));
                self.at = At::Done;
                Ok(Step::Done)
            }
            _ => Err(Invalid::corrupt("internal error: a BMP skip out of place")),
        }
    }

    fn scan(&mut self, bytes: &[u8], _at: u64) -> Result<super::Scanned, Invalid> {
        match self.rle.walk(bytes, self.compression == RLE4) {
            Walked::More => Ok(super::Scanned::All),
            Walked::End(used) => {
                self.at = At::Done;
                Ok(super::Scanned::Stop {
                    used,
                    next: Step::Done,
                })
            }
        }
    }

    fn finish(&mut self, _len: u64, _file: &mut dyn ReadAt) -> Result<Image, Invalid> {
        let (w, h) = self.real.unwrap_or((self.width, self.height));
        Image::new(w, h, 1)
    }

    fn inside(&self) -> String {
        match self.at {
            At::FileHeader => "in its file header".into(),
            At::DibSize | At::Dib => "in its DIB header".into(),
            At::Table => format!(
                "before its pixel data, which starts at byte {}",
                group(self.data_at)
            ),
            At::Pixels => "inside its pixel data".into(),
            At::AndMask => "inside its AND mask".into(),
            At::Rle => format!(
                "in its {} pixel data, before the end-of-bitmap marker",
                if self.compression == RLE4 {
                    "RLE4"
                } else {
                    "RLE8"
                }
            ),
            At::Embedded => format!(
                "inside its embedded {}",
                if self.compression == JPEG {
                    "JPEG"
                } else {
                    "PNG"
                }
            ),
            At::Done => "after its pixel data".into(),
        }
    }
}
