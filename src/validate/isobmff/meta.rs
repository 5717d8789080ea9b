//! The `meta` box of a HEIF/AVIF still image, parsed in memory: the handler, the primary item,
//! the items and their types, where their data lies (`iloc`), their properties (`ipco`/`ipma`)
//! and references (`iref`). [`Meta::check`] proves, once the file's length is known, that the
//! primary image and every item's data are there, and bounds every image's size.

use std::collections::HashSet;

use super::super::{Invalid, Limits, ReadAt, group};
use super::boxes::{Rd, children, fourcc};

/// Item types that are images (coded, or derived from other images).
const IMAGE_TYPES: &[[u8; 4]] = &[
    *b"av01", *b"hvc1", *b"hev1", *b"avc1", *b"jpeg", *b"j2k1", *b"vvc1", *b"unci", *b"grid",
    *b"iovl", *b"iden", *b"tmap",
];

/// Derived images: their inputs are their `dimg` references.
const DERIVED: &[[u8; 4]] = &[*b"grid", *b"iovl", *b"iden", *b"tmap"];

pub struct Item {
    pub id: u32,
    pub typ: [u8; 4],
}

/// Where one item's data lies, reduced to what the checks need.
pub struct Loc {
    pub id: u32,
    pub method: u8,
    /// The furthest byte its extents reach (a 0 length reaches `base + offset` at least).
    pub end: u64,
    /// Where its first extent starts (for the grid descriptor), and whether it has one.
    pub first: Option<u64>,
    /// Whether an extent runs to the end of the file or idat (length 0).
    pub to_end: bool,
}

#[derive(Clone, Copy)]
pub enum Prop {
    Ispe(u32, u32),
    Irot(u8),
    /// The clean aperture's width and height, rounded to whole pixels (0: no valid size).
    Clap(u64, u64),
    Other,
}

#[derive(Default)]
pub struct Meta {
    pub handler: Option<[u8; 4]>,
    pub primary: Option<u32>,
    pub items: Vec<Item>,
    pub locs: Vec<Loc>,
    pub props: Vec<Prop>,
    /// (item, 1-based property index) pairs from `ipma`.
    pub assoc: Vec<(u32, u16)>,
    /// (type, from, to) from `iref`.
    pub refs: Vec<([u8; 4], u32, u32)>,
    /// (image, its auxiliary image) from `auxl` references, sorted.
    pub auxl: Vec<(u32, u32)>,
    /// The content of `idat` (bounded by the `meta` cap), for method 1 and grid descriptors.
    pub idat: Option<Vec<u8>>,
}

impl Meta {
    /// Parses the content of a `meta` box (after its 8-byte header).
    pub fn parse(b: &[u8]) -> Result<Meta, Invalid> {
        let mut r = Rd::new(b, *b"meta");
        let (version, _) = r.full()?;
        if version != 0 {
            return Err(Invalid::corrupt(format!(
                "the meta box has version {version}, not 0"
            )));
        }
        let mut m = Meta::default();
        let mut seen: Vec<[u8; 4]> = Vec::new();
        for c in children(r.rest(), *b"meta") {
            let c = c?;
            let once = [
                *b"hdlr", *b"pitm", *b"iloc", *b"iinf", *b"iprp", *b"iref", *b"idat",
            ];
            if once.contains(&c.typ) {
                if seen.contains(&c.typ) {
                    return Err(Invalid::corrupt(format!(
                        "the meta box has two {} boxes",
                        fourcc(c.typ)
                    )));
                }
                seen.push(c.typ);
            }
            match &c.typ {
                b"hdlr" => {
                    let mut r = Rd::new(c.body, c.typ);
                    r.full()?;
                    r.u32()?;
                    m.handler = Some(r.fourcc()?);
                }
                b"pitm" => {
                    let mut r = Rd::new(c.body, c.typ);
                    let (v, _) = r.full()?;
                    m.primary = Some(r.id(v != 0)?);
                }
                b"iinf" => m.parse_iinf(c.body)?,
                b"iloc" => m.parse_iloc(c.body)?,
                b"iprp" => m.parse_iprp(c.body)?,
                b"iref" => m.parse_iref(c.body)?,
                b"idat" => m.idat = Some(c.body.to_vec()),
                _ => {}
            }
        }
        // Sorted by item, for lookups in logarithmic time (a meta box may hold 100,000 items).
        m.items.sort_by_key(|i| i.id);
        if let Some(w) = m.items.windows(2).find(|w| w[0].id == w[1].id) {
            return Err(Invalid::corrupt(format!(
                "two items have the ID {}",
                w[0].id
            )));
        }
        m.locs.sort_by_key(|l| l.id);
        if let Some(w) = m.locs.windows(2).find(|w| w[0].id == w[1].id) {
            return Err(Invalid::corrupt(format!(
                "the iloc box locates item {} twice",
                w[0].id
            )));
        }
        m.assoc.sort_by_key(|a| a.0);
        m.refs.sort_by_key(|r| (r.0, r.1));
        m.auxl = m
            .refs
            .iter()
            .filter(|r| &r.0 == b"auxl")
            .map(|r| (r.2, r.1))
            .collect();
        m.auxl.sort_unstable();
        // Method 1 extents lie in idat, which is known only once the whole meta is read.
        for l in m.locs.iter().filter(|l| l.method == 1) {
            let Some(idat) = &m.idat else {
                return Err(Invalid::corrupt(format!(
                    "item {} has its data in an idat box, but the meta box has none",
                    l.id
                )));
            };
            if l.end > idat.len() as u64 {
                return Err(Invalid::corrupt(format!(
                    "item {}'s data reaches byte {} of the idat box, which holds {}",
                    l.id,
                    group(l.end),
                    group(idat.len() as u64)
                )));
            }
        }
        Ok(m)
    }

    fn parse_iinf(&mut self, b: &[u8]) -> Result<(), Invalid> {
        let mut r = Rd::new(b, *b"iinf");
        let (v, _) = r.full()?;
        let count = r.id(v != 0)?;
        for c in children(r.rest(), *b"iinf") {
            let c = c?;
            if &c.typ != b"infe" {
                continue;
            }
            let mut r = Rd::new(c.body, c.typ);
            let (v, _) = r.full()?;
            let (id, typ) = if v >= 2 {
                let id = r.id(v >= 3)?;
                r.u16()?;
                (id, r.fourcc()?)
            } else {
                // Versions 0 and 1 have no item type: not an image item.
                (u32::from(r.u16()?), *b"\0\0\0\0")
            };
            self.items.push(Item { id, typ });
        }
        if (self.items.len() as u64) < u64::from(count) {
            return Err(Invalid::corrupt(format!(
                "the iinf box announces {count} items but holds {}",
                self.items.len()
            )));
        }
        Ok(())
    }

    fn parse_iloc(&mut self, b: &[u8]) -> Result<(), Invalid> {
        let mut r = Rd::new(b, *b"iloc");
        let (v, _) = r.full()?;
        if v > 2 {
            return Err(Invalid::corrupt(format!("the iloc box has version {v}")));
        }
        let sizes = r.u8()?;
        let (off_size, len_size) = (sizes >> 4, sizes & 15);
        let sizes = r.u8()?;
        let base_size = sizes >> 4;
        let index_size = if v >= 1 { sizes & 15 } else { 0 };
        for (name, s) in [
            ("offset", off_size),
            ("length", len_size),
            ("base offset", base_size),
            ("index", index_size),
        ] {
            if ![0, 4, 8].contains(&s) {
                return Err(Invalid::corrupt(format!(
                    "the iloc box has a {name} size of {s} bytes (not 0, 4 or 8)"
                )));
            }
        }
        let count = if v < 2 { u32::from(r.u16()?) } else { r.u32()? };
        let extent_bytes = usize::from(off_size) + usize::from(len_size) + usize::from(index_size);
        for _ in 0..count {
            let id = r.id(v == 2)?;
            let method = if v >= 1 { (r.u16()? & 15) as u8 } else { 0 };
            if method > 2 {
                return Err(Invalid::corrupt(format!(
                    "item {id} has construction method {method} (not 0, 1 or 2)"
                )));
            }
            let dref = r.u16()?;
            if dref != 0 {
                return Err(Invalid::corrupt(format!(
                    "item {id}'s data is in another file (data reference {dref})"
                )));
            }
            let base = r.sized(base_size)?;
            let extents = r.u16()?;
            // Extents of no bytes at all are all alike: look at one (linear time).
            let extents = if extent_bytes == 0 {
                extents.min(1)
            } else {
                extents
            };
            let mut loc = Loc {
                id,
                method,
                end: 0,
                first: None,
                to_end: false,
            };
            for _ in 0..extents {
                r.sized(index_size)?;
                let off = r.sized(off_size)?;
                let len = r.sized(len_size)?;
                let start = base.checked_add(off).ok_or_else(|| overflow(id))?;
                let end = start.checked_add(len).ok_or_else(|| overflow(id))?;
                loc.first.get_or_insert(start);
                loc.to_end |= len == 0;
                loc.end = loc.end.max(end);
            }
            self.locs.push(loc);
        }
        Ok(())
    }

    fn parse_iprp(&mut self, b: &[u8]) -> Result<(), Invalid> {
        for c in children(b, *b"iprp") {
            let c = c?;
            match &c.typ {
                b"ipco" => {
                    if !self.props.is_empty() {
                        return Err(Invalid::corrupt("the iprp box has two ipco boxes"));
                    }
                    for p in children(c.body, c.typ) {
                        let p = p?;
                        let mut r = Rd::new(p.body, p.typ);
                        self.props.push(match &p.typ {
                            b"ispe" => {
                                r.full()?;
                                Prop::Ispe(r.u32()?, r.u32()?)
                            }
                            b"irot" => Prop::Irot(r.u8()? & 3),
                            b"clap" => {
                                let (wn, wd) = (r.u32()?, r.u32()?);
                                let (hn, hd) = (r.u32()?, r.u32()?);
                                Prop::Clap(fraction(wn, wd), fraction(hn, hd))
                            }
                            _ => Prop::Other,
                        });
                    }
                }
                b"ipma" => {
                    let mut r = Rd::new(c.body, c.typ);
                    let (v, flags) = r.full()?;
                    let entries = r.u32()?;
                    for _ in 0..entries {
                        let id = r.id(v >= 1)?;
                        let n = r.u8()?;
                        for _ in 0..n {
                            let index = if flags & 1 != 0 {
                                r.u16()? & 0x7fff
                            } else {
                                u16::from(r.u8()? & 0x7f)
                            };
                            if index != 0 {
                                self.assoc.push((id, index));
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn parse_iref(&mut self, b: &[u8]) -> Result<(), Invalid> {
        let mut r = Rd::new(b, *b"iref");
        let (v, _) = r.full()?;
        for c in children(r.rest(), *b"iref") {
            let c = c?;
            let mut r = Rd::new(c.body, c.typ);
            let from = r.id(v != 0)?;
            let n = r.u16()?;
            for _ in 0..n {
                let to = r.id(v != 0)?;
                self.refs.push((c.typ, from, to));
            }
        }
        Ok(())
    }

    fn item(&self, id: u32) -> Option<&Item> {
        let i = self.items.partition_point(|i| i.id < id);
        self.items.get(i).filter(|i| i.id == id)
    }

    fn loc(&self, id: u32) -> Option<&Loc> {
        let i = self.locs.partition_point(|l| l.id < id);
        self.locs.get(i).filter(|l| l.id == id)
    }

    /// The references of type `typ` from `id`, in file order.
    fn refs_from(&self, typ: [u8; 4], id: u32) -> &[([u8; 4], u32, u32)] {
        let a = self.refs.partition_point(|r| (r.0, r.1) < (typ, id));
        let b = self.refs.partition_point(|r| (r.0, r.1) <= (typ, id));
        self.refs.get(a..b).unwrap_or(&[])
    }

    /// The item's properties, refusing an association to a property that does not exist.
    fn props_of(&self, id: u32) -> Result<Vec<Prop>, Invalid> {
        let mut out = Vec::new();
        let a = self.assoc.partition_point(|a| a.0 < id);
        let b = self.assoc.partition_point(|a| a.0 <= id);
        for &(item, index) in self.assoc.get(a..b).unwrap_or(&[]) {
            match self.props.get(usize::from(index) - 1) {
                Some(p) => out.push(*p),
                None => {
                    return Err(Invalid::corrupt(format!(
                        "item {item} is associated with property {index}, but the ipco box \
                         holds {}",
                        self.props.len()
                    )));
                }
            }
        }
        Ok(out)
    }

    fn ispe(&self, id: u32) -> Result<Option<(u32, u32)>, Invalid> {
        Ok(self.props_of(id)?.iter().find_map(|p| match p {
            Prop::Ispe(w, h) => Some((*w, *h)),
            _ => None,
        }))
    }

    /// The final checks, once the file is `len` bytes: the displayed size of the primary image
    /// (after `irot`).
    pub fn check(
        &self,
        len: u64,
        limits: &Limits,
        file: &mut dyn ReadAt,
    ) -> Result<(u64, u64), Invalid> {
        match self.handler {
            Some(h) if &h == b"pict" => {}
            Some(h) => {
                return Err(Invalid::corrupt(format!(
                    "the meta box's handler is {}, not pict",
                    fourcc(h)
                )));
            }
            None => return Err(Invalid::corrupt("the meta box has no hdlr box")),
        }
        let primary = self
            .primary
            .ok_or_else(|| Invalid::corrupt("the meta box has no primary item (pitm)"))?;
        let item = self.item(primary).ok_or_else(|| {
            Invalid::corrupt(format!("the primary item {primary} is not in the iinf box"))
        })?;
        if !IMAGE_TYPES.contains(&item.typ) {
            return Err(Invalid::corrupt(format!(
                "the primary item {primary} is of type {}, not an image",
                fourcc(item.typ)
            )));
        }
        // Every image item: its size bounded, and counted.
        let mut images = 0u64;
        for i in self.items.iter().filter(|i| IMAGE_TYPES.contains(&i.typ)) {
            images += 1;
            limits.check_count("image", images)?;
            if let Some((w, h)) = self.ispe(i.id)? {
                limits.check_frame("image", i.id, u64::from(w), u64::from(h))?;
            }
        }
        // Every item's data lies inside the file.
        for l in self.locs.iter().filter(|l| l.method == 0) {
            let first = l.first.unwrap_or(0);
            if l.end > len || first > len {
                return Err(Invalid::truncated(format!(
                    "truncated: item {}'s data reaches byte {}, past the end of the file at \
                     byte {}",
                    l.id,
                    group(l.end.max(first)),
                    group(len)
                )));
            }
        }
        // The primary image and the images it is made of have data and a size.
        self.check_image(primary, len, file, 0, &mut HashSet::new())?;
        // Displayed: the clean aperture (as libheif and browsers crop), then the rotation.
        let (w, h) = self.ispe(primary)?.unwrap_or((0, 0));
        let (mut w, mut h) = (u64::from(w), u64::from(h));
        let props = self.props_of(primary)?;
        for p in &props {
            match *p {
                Prop::Clap(cw, ch) if (1..=w).contains(&cw) && (1..=h).contains(&ch) => {
                    (w, h) = (cw, ch);
                }
                Prop::Irot(1 | 3) => (w, h) = (h, w),
                _ => {}
            }
        }
        Ok((w, h))
    }

    /// Checks one image that is displayed (the primary, or an input of a derived image, or its
    /// alpha plane): it has an ispe, data if it is coded, and existing inputs if it is derived.
    fn check_image(
        &self,
        id: u32,
        len: u64,
        file: &mut dyn ReadAt,
        depth: u32,
        seen: &mut HashSet<u32>,
    ) -> Result<(), Invalid> {
        // Each image is checked once, so that the work stays linear whatever the references.
        if !seen.insert(id) {
            return Ok(());
        }
        let item = self.item(id).ok_or_else(|| {
            Invalid::corrupt(format!("item {id} is referenced but not in the iinf box"))
        })?;
        if !IMAGE_TYPES.contains(&item.typ) {
            return Err(Invalid::corrupt(format!(
                "item {id} is of type {}, not an image",
                fourcc(item.typ)
            )));
        }
        if depth > 8 {
            return Err(Invalid::corrupt(format!(
                "item {id} is derived from derived images too deeply"
            )));
        }
        let (w, h) = self.ispe(id)?.ok_or_else(|| {
            Invalid::corrupt(format!(
                "image item {id} ({}) has no ispe property (its size)",
                fourcc(item.typ)
            ))
        })?;
        let has_data = &item.typ != b"iden";
        let loc = self.loc(id);
        if has_data && loc.and_then(|l| l.first).is_none() {
            return Err(Invalid::corrupt(format!(
                "image item {id} ({}) has no data (no iloc extent)",
                fourcc(item.typ)
            )));
        }
        // Its alpha plane, if any, must be whole too.
        let a = self.auxl.partition_point(|r| r.0 < id);
        let b = self.auxl.partition_point(|r| r.0 <= id);
        for &(_, alpha) in self.auxl.get(a..b).unwrap_or(&[]) {
            if self.item(alpha).is_some() {
                self.check_image(alpha, len, file, depth + 1, seen)?;
            }
        }
        if !DERIVED.contains(&item.typ) {
            return Ok(());
        }
        let inputs: Vec<u32> = self.refs_from(*b"dimg", id).iter().map(|r| r.2).collect();
        if inputs.is_empty() {
            return Err(Invalid::corrupt(format!(
                "the {} image item {id} has no input images (dimg)",
                fourcc(item.typ)
            )));
        }
        for &input in &inputs {
            if input == id {
                return Err(Invalid::corrupt(format!(
                    "item {id} is derived from itself"
                )));
            }
            self.check_image(input, len, file, depth + 1, seen)?;
        }
        if &item.typ == b"grid" {
            let grid = self.read_descriptor(id, len, file)?;
            let (rows, cols, gw, gh) = grid;
            if u64::from(rows) * u64::from(cols) != inputs.len() as u64 {
                return Err(Invalid::corrupt(format!(
                    "the grid item {id} is {rows}x{cols} tiles but has {} input images",
                    inputs.len()
                )));
            }
            if (gw, gh) != (w, h) {
                return Err(Invalid::corrupt(format!(
                    "the grid item {id} says {gw}x{gh} but its ispe says {w}x{h}"
                )));
            }
        }
        Ok(())
    }

    /// A grid's descriptor: rows, columns, output width and height (ISO/IEC 23008-12 6.6.2.3).
    fn read_descriptor(
        &self,
        id: u32,
        len: u64,
        file: &mut dyn ReadAt,
    ) -> Result<(u32, u32, u32, u32), Invalid> {
        let mut buf = [0u8; 12];
        let bad = || Invalid::corrupt(format!("the grid item {id}'s descriptor is cut short"));
        let loc = self.loc(id).ok_or_else(bad)?;
        let start = loc.first.ok_or_else(bad)?;
        // Its size depends on its flags: read what is there, up to 12 bytes.
        let avail = if loc.method == 1 {
            let idat = self.idat.as_deref().unwrap_or(&[]);
            let s = usize::try_from(start).unwrap_or(usize::MAX);
            let src = idat.get(s..).ok_or_else(bad)?;
            let n = src.len().min(12);
            buf[..n].copy_from_slice(&src[..n]);
            n
        } else if loc.method == 0 {
            let n = len.saturating_sub(start).min(12) as usize;
            file.read_exact_at(&mut buf[..n], start).map_err(|e| {
                Invalid::corrupt(format!("cannot read the grid item {id}'s descriptor: {e}"))
            })?;
            n
        } else {
            // Method 2 (data from another item) is rare: its descriptor is not checked.
            return Err(Invalid::corrupt(format!(
                "the grid item {id} takes its descriptor from another item, which jobd does \
                 not support"
            )));
        };
        let mut r = Rd::new(&buf[..avail], *b"grid");
        let version = r.u8().map_err(|_| bad())?;
        if version != 0 {
            return Err(Invalid::corrupt(format!(
                "the grid item {id}'s descriptor has version {version}"
            )));
        }
        let flags = r.u8().map_err(|_| bad())?;
        let rows = u32::from(r.u8().map_err(|_| bad())?) + 1;
        let cols = u32::from(r.u8().map_err(|_| bad())?) + 1;
        let (w, h) = if flags & 1 != 0 {
            (r.u32().map_err(|_| bad())?, r.u32().map_err(|_| bad())?)
        } else {
            (
                u32::from(r.u16().map_err(|_| bad())?),
                u32::from(r.u16().map_err(|_| bad())?),
            )
        };
        Ok((rows, cols, w, h))
    }
}

/// `n / d` rounded to the nearest whole number; 0 for a zero denominator.
fn fraction(n: u32, d: u32) -> u64 {
    if d == 0 {
        return 0;
    }
    (2 * u64::from(n) + u64::from(d)) / (2 * u64::from(d))
}

fn overflow(id: u32) -> Invalid {
    Invalid::corrupt(format!("item {id}'s data offset overflows"))
}
