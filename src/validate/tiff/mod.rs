//! TIFF and BigTIFF: proves that the header is sound, that the chain of directories (one per
//! page) ends without a loop, and that every page has a size within the limits and strips or
//! tiles enough to cover it, each of which (offset + byte count) lies inside the file, as do the
//! directories and every out-of-line tag value. It does not decompress strips or tiles, nor check
//! that their byte counts fit the compression, nor follow SubIFDs or the EXIF directory.
//!
//! Directories may sit anywhere (libtiff writes them after the pixel data), so the stream pass
//! only takes the header; [`Parser::finish`] walks the directories by reading them back, a few
//! KiB at a time, never the pixel data.

mod ifd;
#[cfg(test)]
mod tests;

use std::collections::HashSet;

use super::{Image, Invalid, Limits, Parser, ReadAt, Step, group};
use ifd::{CHUNK, Dir, Entry, Header, Layout, read_dir, type_size};

pub(crate) use ifd::orientation;

const IMAGE_WIDTH: u16 = 256;
const IMAGE_LENGTH: u16 = 257;
const STRIP_OFFSETS: u16 = 273;
const ORIENTATION: u16 = 274;
const SAMPLES_PER_PIXEL: u16 = 277;
const ROWS_PER_STRIP: u16 = 278;
const STRIP_BYTE_COUNTS: u16 = 279;
const PLANAR_CONFIGURATION: u16 = 284;
const TILE_WIDTH: u16 = 322;
const TILE_LENGTH: u16 = 323;
const TILE_OFFSETS: u16 = 324;
const TILE_BYTE_COUNTS: u16 = 325;

pub struct Tiff {
    limits: Limits,
    /// Set once the header is read: byte order, BigTIFF, and the first directory's offset.
    header: Option<(Layout, u64)>,
    /// A BigTIFF whose first-directory offset is still to come.
    big: Option<Layout>,
}

impl Tiff {
    pub fn new(limits: Limits) -> Tiff {
        Tiff {
            limits,
            header: None,
            big: None,
        }
    }
}

impl Parser for Tiff {
    fn name(&self) -> &'static str {
        "TIFF"
    }

    fn start(&mut self) -> Step {
        Step::Need(8)
    }

    fn need(&mut self, bytes: &[u8], _at: u64) -> Result<Step, Invalid> {
        if let Some(layout) = self.big.take() {
            self.header = Some((layout, layout.u64(bytes, 0)));
            return Ok(Step::Done);
        }
        match Header::parse(bytes).map_err(Invalid::corrupt)? {
            Header::Classic(layout, first) => {
                self.header = Some((layout, first));
                Ok(Step::Done)
            }
            Header::Big(layout) => {
                self.big = Some(layout);
                Ok(Step::Need(8))
            }
        }
    }

    fn finish(&mut self, len: u64, file: &mut dyn ReadAt) -> Result<Image, Invalid> {
        let Some((layout, first)) = self.header else {
            return Err(Invalid::corrupt(
                "internal error: a TIFF without its header",
            ));
        };
        let mut seen = HashSet::new();
        // The bytes read back. Directories of different pages, and their strip tables, do not
        // overlap in a real file, so they add up to less than its size (inline values are read
        // again from the directory: twice at most). Crafted pages that share one huge strip
        // table would make the walk quadratic; this keeps it linear.
        let mut budget = len.saturating_mul(4).saturating_add(1 << 16);
        let mut pages = 0u32;
        let mut shown = None;
        let mut at = first;
        while at != 0 {
            if !seen.insert(at) {
                return Err(Invalid::corrupt(format!(
                    "the {} loops: the directory after page {pages} (byte {}) is one it has read already",
                    layout.name(),
                    group(at)
                )));
            }
            pages = pages.saturating_add(1);
            self.limits.check_count("page", u64::from(pages))?;
            let what = format!("page {pages}");
            let dir = read_dir(file, layout, at, len, &what)?;
            spend(&mut budget, dir.size, layout)?;
            let page = Page {
                file: &mut *file,
                layout,
                len,
                dir: &dir,
                index: pages,
                budget: &mut budget,
            };
            let size = page.check(&self.limits)?;
            shown.get_or_insert(size);
            at = dir.next;
        }
        match shown {
            Some((w, h)) => Image::new(w, h, pages),
            None => Err(Invalid::corrupt(format!(
                "the {} has no pages (its first directory offset is 0)",
                layout.name()
            ))),
        }
    }

    fn inside(&self) -> String {
        "inside its header".into()
    }
}

/// A tag for messages: its number, and its name when jobd reads it.
fn tag_name(tag: u16) -> String {
    let name = match tag {
        IMAGE_WIDTH => "ImageWidth",
        IMAGE_LENGTH => "ImageLength",
        STRIP_OFFSETS => "StripOffsets",
        ORIENTATION => "Orientation",
        SAMPLES_PER_PIXEL => "SamplesPerPixel",
        ROWS_PER_STRIP => "RowsPerStrip",
        STRIP_BYTE_COUNTS => "StripByteCounts",
        PLANAR_CONFIGURATION => "PlanarConfiguration",
        TILE_WIDTH => "TileWidth",
        TILE_LENGTH => "TileLength",
        TILE_OFFSETS => "TileOffsets",
        TILE_BYTE_COUNTS => "TileByteCounts",
        _ => return tag.to_string(),
    };
    format!("{tag} ({name})")
}

/// Counts bytes read back against the budget of [`Tiff::finish`].
fn spend(budget: &mut u64, bytes: u64, layout: Layout) -> Result<(), Invalid> {
    *budget = budget.checked_sub(bytes).ok_or_else(|| {
        Invalid::corrupt(format!(
            "the {}'s directories and strip tables add up to more than 4 times its size: they overlap",
            layout.name()
        ))
    })?;
    Ok(())
}

/// One page's directory, with what is needed to read its values back.
struct Page<'a> {
    file: &'a mut dyn ReadAt,
    layout: Layout,
    len: u64,
    dir: &'a Dir,
    index: u32,
    budget: &'a mut u64,
}

impl Page<'_> {
    /// Checks the page; returns its displayed size (after orientation, for the first page).
    fn check(mut self, limits: &Limits) -> Result<(u64, u64), Invalid> {
        self.values_inside()?;
        let width = self.required(IMAGE_WIDTH, "ImageWidth")?;
        let height = self.required(IMAGE_LENGTH, "ImageLength")?;
        limits.check_frame("page", self.index, width, height)?;

        let samples = self.optional(SAMPLES_PER_PIXEL, "SamplesPerPixel", 1)?;
        if samples == 0 {
            return Err(self.bad("has SamplesPerPixel 0"));
        }
        let planes = match self.optional(PLANAR_CONFIGURATION, "PlanarConfiguration", 1)? {
            1 => 1,
            2 => samples,
            v => return Err(self.bad(&format!("has PlanarConfiguration {v}, not 1 or 2"))),
        };

        // libtiff treats TileOffsets and StripOffsets (and the byte counts) as one field, and
        // a page as tiled when it has TileWidth or TileLength.
        let tiled = self.dir.get(TILE_WIDTH).is_some() || self.dir.get(TILE_LENGTH).is_some();
        let (unit, per_plane, offsets_tag, counts_tag) = if tiled {
            let tw = self.required(TILE_WIDTH, "TileWidth")?;
            let th = self.required(TILE_LENGTH, "TileLength")?;
            if tw == 0 || th == 0 {
                return Err(self.bad(&format!("has tiles of {tw}x{th}")));
            }
            let tiles = width.div_ceil(tw).saturating_mul(height.div_ceil(th));
            (
                "tile",
                tiles,
                ("TileOffsets", TILE_OFFSETS, STRIP_OFFSETS),
                ("TileByteCounts", TILE_BYTE_COUNTS, STRIP_BYTE_COUNTS),
            )
        } else {
            let rows = self.optional(ROWS_PER_STRIP, "RowsPerStrip", u64::from(u32::MAX))?;
            if rows == 0 {
                return Err(self.bad("has RowsPerStrip 0"));
            }
            (
                "strip",
                height.div_ceil(rows),
                ("StripOffsets", STRIP_OFFSETS, TILE_OFFSETS),
                ("StripByteCounts", STRIP_BYTE_COUNTS, TILE_BYTE_COUNTS),
            )
        };
        let needed = per_plane.saturating_mul(planes);
        let offsets = self.array(offsets_tag)?;
        let counts = self.array(counts_tag)?;
        if offsets.count < needed {
            return Err(self.bad(&format!(
                "needs {} {unit}s, but {} lists {}",
                group(needed),
                offsets_tag.0,
                group(offsets.count)
            )));
        }
        if counts.count != offsets.count {
            return Err(self.bad(&format!(
                "lists {} {} but {} {}",
                group(offsets.count),
                offsets_tag.0,
                group(counts.count),
                counts_tag.0
            )));
        }
        self.data_inside(unit, &offsets, &counts)?;

        let turned = self.index == 1
            && matches!(
                self.dir
                    .get(ORIENTATION)
                    .map(|e| e.uint(self.file, self.layout)),
                Some(Ok(5..=8))
            );
        Ok(if turned {
            (height, width)
        } else {
            (width, height)
        })
    }

    fn bad(&self, what: &str) -> Invalid {
        Invalid::corrupt(format!(
            "page {} of the {} {what}",
            self.index,
            self.layout.name()
        ))
    }

    /// A tag's single unsigned value; `None` if the tag is absent.
    fn value(&mut self, tag: u16, name: &str) -> Result<Option<u64>, Invalid> {
        let Some(entry) = self.dir.get(tag) else {
            return Ok(None);
        };
        match entry.uint(self.file, self.layout) {
            Ok(v) => Ok(Some(v)),
            Err(why) => Err(self.bad(&format!("has a bad {name}: it {why}"))),
        }
    }

    fn required(&mut self, tag: u16, name: &str) -> Result<u64, Invalid> {
        self.value(tag, name)?
            .ok_or_else(|| self.bad(&format!("has no {name}")))
    }

    fn optional(&mut self, tag: u16, name: &str, default: u64) -> Result<u64, Invalid> {
        Ok(self.value(tag, name)?.unwrap_or(default))
    }

    /// The offsets or byte counts entry: its own tag, else the strip/tile twin libtiff also
    /// reads. Its type must be an unsigned integer.
    fn array(&self, (name, tag, twin): (&str, u16, u16)) -> Result<Entry, Invalid> {
        let entry = self
            .dir
            .get(tag)
            .or_else(|| self.dir.get(twin))
            .copied()
            .ok_or_else(|| self.bad(&format!("has no {name}")))?;
        match entry.typ {
            1 | 3 | 4 | 13 | 16 | 18 => Ok(entry),
            t => Err(self.bad(&format!("has {name} of type {t}, not an unsigned integer"))),
        }
    }

    /// Every out-of-line value array of the directory lies inside the file: the directory and
    /// its arrays are written together, so one that runs past the end is a cut file.
    fn values_inside(&self) -> Result<(), Invalid> {
        for e in &self.dir.entries {
            let n = match e.data_len() {
                Ok(Some(n)) if n <= self.len => n,
                Ok(None) => continue, // a type libtiff does not know: it ignores the tag
                // Not a cut file but a broken count (a file cut short still held the values).
                _ => {
                    return Err(self.bad(&format!(
                        "has tag {} with {} values, more than the whole file holds",
                        tag_name(e.tag),
                        group(e.count)
                    )));
                }
            };
            if !e.out_of_line(self.layout) {
                continue;
            }
            let from = e.data_at(self.layout);
            let to = from.saturating_add(n);
            if to > self.len {
                return Err(Invalid::truncated(format!(
                    "truncated: the {} ends at byte {}, before the end of the values of tag {} of page {} (bytes {} to {})",
                    self.layout.name(),
                    group(self.len),
                    tag_name(e.tag),
                    self.index,
                    group(from),
                    group(to)
                )));
            }
        }
        Ok(())
    }

    /// Every strip or tile lies inside the file, read back [`CHUNK`] offsets and counts at a time.
    fn data_inside(&mut self, unit: &str, offsets: &Entry, counts: &Entry) -> Result<(), Invalid> {
        let (mut offs, mut lens) = (Vec::new(), Vec::new());
        let pair = [offsets, counts]
            .iter()
            .map(|e| type_size(e.typ).unwrap_or(8))
            .sum::<u64>();
        let mut start = 0;
        while start < offsets.count {
            let n = CHUNK.min(offsets.count - start);
            spend(self.budget, n.saturating_mul(pair), self.layout)?;
            for (entry, out) in [(offsets, &mut offs), (counts, &mut lens)] {
                entry
                    .read_uints(self.file, self.layout, start, n, out)
                    .map_err(|e| {
                        Invalid::corrupt(format!(
                            "cannot read back the {} {}s of page {}: {e}",
                            self.layout.name(),
                            unit,
                            self.index
                        ))
                    })?;
            }
            for (i, (&off, &len)) in offs.iter().zip(&lens).enumerate() {
                let end = off.saturating_add(len);
                if end > self.len {
                    return Err(Invalid::truncated(format!(
                        "truncated: the {} ends at byte {}, before the end of {unit} {} of page {} (bytes {} to {})",
                        self.layout.name(),
                        group(self.len),
                        group(start + i as u64 + 1),
                        self.index,
                        group(off),
                        group(end)
                    )));
                }
            }
            start += n;
        }
        Ok(())
    }
}
