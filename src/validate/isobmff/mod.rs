//! AVIF and HEIF (ISO-BMFF, ISO/IEC 14496-12 and 23008-12 / MIAF). Proves: the top-level boxes
//! tile the body exactly (the body ends only between boxes, or in a last box of size 0 "to the
//! end"); `ftyp` comes first with an AVIF/HEIF brand; the `meta` box (held in memory, at most
//! 1 MiB) has a `pict` handler and a primary image item with a size (`ispe`); every image item's
//! size is within `max_pixels` and their number within `max_frames`; every item's data (`iloc`,
//! in the file or in `idat`) lies inside the file; derived images (grids, overlays) have their
//! input images, and a grid as many tiles as its descriptor says. For image sequences, the
//! `moov` box (at most 4 MiB) gives each visual track's size and sample count, and every chunk of
//! samples must lie inside the file. Does not prove: that the coded data (AV1, HEVC) decodes or
//! matches `ispe` (the size reported is `ispe` cropped by `clap`, then `irot`); the sequence's
//! edit lists, timing and sample descriptions beyond their size; fragmented movies (`moof`).

mod boxes;
mod meta;
mod moov;
#[cfg(test)]
mod tests;

use super::{Image, Invalid, Limits, Parser, ReadAt, Step, be32, be64, group};
use boxes::fourcc;
use meta::Meta;

/// The largest `meta` box held in memory: real ones are a few KiB (a grid of 1,000 tiles is
/// about 40 KiB).
const META_CAP: u64 = 1 << 20;
/// The largest `moov` box held in memory (the driver's limit): about 500,000 frames.
const MOOV_CAP: u64 = super::MAX_NEED as u64;

/// The brands that say the file holds HEIF images or sequences (AVIF's among them).
const BRANDS: &[&[u8; 4]] = &[
    b"avif", b"avis", b"mif1", b"msf1", b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum At {
    /// Before a box header (8 bytes).
    Header,
    /// Before the 64-bit size of the box that starts at `start`.
    Large { typ: [u8; 4], start: u64 },
    /// In a box's content, held (`ftyp`, `meta`, `moov`) or skipped.
    Body { typ: [u8; 4], start: u64 },
}

pub struct IsoBmff {
    limits: Limits,
    at: At,
    boxes: u64,
    avif: bool,
    meta: Option<Meta>,
    tracks: Option<Vec<moov::Track>>,
}

impl IsoBmff {
    pub fn new(limits: Limits) -> IsoBmff {
        IsoBmff {
            limits,
            at: At::Header,
            boxes: 0,
            avif: false,
            meta: None,
            tracks: None,
        }
    }

    /// A box of `size` bytes (header `hdr`) starting at `start` announced itself.
    fn open(&mut self, typ: [u8; 4], size: u64, hdr: u64, start: u64) -> Result<Step, Invalid> {
        self.boxes += 1;
        if self.boxes == 1 && &typ != b"ftyp" {
            return Err(Invalid::corrupt(format!(
                "the first box is {}, not ftyp",
                fourcc(typ)
            )));
        }
        let held = matches!(&typ, b"ftyp" | b"meta" | b"moov");
        if size == 0 {
            // The last box runs to the end of the body, whatever its length.
            if held {
                return Err(Invalid::corrupt(format!(
                    "the {} box at byte {} has size 0 (to the end of the file), which jobd \
                     does not read",
                    fourcc(typ),
                    group(start)
                )));
            }
            self.at = At::Body { typ, start };
            return Ok(Step::Done);
        }
        if size < hdr {
            return Err(Invalid::corrupt(format!(
                "the {} box at byte {} has a size of {size}, less than its header",
                fourcc(typ),
                group(start)
            )));
        }
        let content = size - hdr;
        self.at = At::Body { typ, start };
        let cap = match &typ {
            b"ftyp" => 4096,
            b"meta" => META_CAP,
            b"moov" => MOOV_CAP,
            _ => return Ok(Step::Skip(content)),
        };
        if content > cap {
            return Err(Invalid::too_large(format!(
                "the {} box at byte {} is {} bytes, more than jobd reads ({})",
                fourcc(typ),
                group(start),
                group(size),
                group(cap)
            )));
        }
        Ok(Step::Need(content as usize))
    }

    fn held(&mut self, typ: [u8; 4], b: &[u8]) -> Result<(), Invalid> {
        match &typ {
            b"ftyp" => {
                if b.len() < 8 {
                    return Err(Invalid::corrupt("the ftyp box is cut short"));
                }
                let major = [b[0], b[1], b[2], b[3]];
                let compatible = b.get(8..).unwrap_or(&[]).chunks_exact(4);
                let ok = std::iter::once(&major[..])
                    .chain(compatible)
                    .any(|brand| BRANDS.iter().any(|x| &x[..] == brand));
                if !ok {
                    return Err(Invalid::corrupt(format!(
                        "the ftyp box's brands (major {}) name no AVIF or HEIF brand",
                        fourcc(major)
                    )));
                }
                self.avif = &major == b"avif" || &major == b"avis";
            }
            b"meta" => {
                if self.meta.is_some() {
                    return Err(Invalid::corrupt("the file has two meta boxes"));
                }
                self.meta = Some(Meta::parse(b)?);
            }
            _ => {
                if self.tracks.is_some() {
                    return Err(Invalid::corrupt("the file has two moov boxes"));
                }
                self.tracks = Some(moov::parse(b)?);
            }
        }
        Ok(())
    }
}

impl Parser for IsoBmff {
    fn name(&self) -> &'static str {
        if self.avif { "AVIF" } else { "HEIF" }
    }

    fn start(&mut self) -> Step {
        // An empty body is not an image: the first header is required.
        Step::Need(8)
    }

    fn need(&mut self, bytes: &[u8], at: u64) -> Result<Step, Invalid> {
        match self.at {
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
            At::Body { typ, .. } => {
                self.held(typ, bytes)?;
                self.at = At::Header;
                Ok(Step::NeedOrEnd(8))
            }
        }
    }

    fn skipped(&mut self, _: u64) -> Result<Step, Invalid> {
        self.at = At::Header;
        Ok(Step::NeedOrEnd(8))
    }

    fn finish(&mut self, len: u64, file: &mut dyn ReadAt) -> Result<Image, Invalid> {
        let tracks = self.tracks.as_deref().unwrap_or(&[]);
        moov::check(tracks, len, &self.limits)?;
        if let Some(meta) = &self.meta {
            let (w, h) = meta.check(len, &self.limits, file)?;
            // A sequence shows its frames; a still image its image.
            let frames = match tracks.iter().find(|t| t.visual() && &t.handler != b"auxv") {
                Some(t) => t.samples,
                None => 1,
            };
            return Image::new(w, h, u32::try_from(frames.max(1)).unwrap_or(u32::MAX));
        }
        match tracks.iter().find(|t| t.visual() && &t.handler != b"auxv") {
            Some(t) if t.samples > 0 => {
                let (w, h) = t.size();
                Image::new(w, h, u32::try_from(t.samples).unwrap_or(u32::MAX))
            }
            Some(_) => Err(Invalid::corrupt("the image sequence has no frames")),
            None => Err(Invalid::corrupt(
                "the file has no meta box (no image) and no image sequence",
            )),
        }
    }

    fn inside(&self) -> String {
        match self.at {
            At::Header => "in a box header".into(),
            At::Large { typ, start } => format!(
                "in the size of the {} box at byte {}",
                fourcc(typ),
                group(start)
            ),
            At::Body { typ, start } => {
                format!("inside the {} box at byte {}", fourcc(typ), group(start))
            }
        }
    }
}
