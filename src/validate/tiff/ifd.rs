//! Reading TIFF directories (IFDs) and their values through [`ReadAt`], a piece at a time: the
//! page walk of a TIFF file and the EXIF block of a JPEG (a TIFF structure in memory) share it.
//!
//! Every read is bounded: a directory is at most [`MAX_ENTRIES`] entries, and value arrays are
//! read in slices of [`CHUNK`] values, so a strip table of a million entries never sits in memory.

use std::io;

use crate::validate::{Invalid, ReadAt, be16, be32, be64, group, le16, le32, le64};

/// Entries per directory that jobd reads: libtiff refuses more ("Sanity check on directory count
/// failed"), so no file that libtiff opens has more.
pub(crate) const MAX_ENTRIES: u64 = 4096;

/// Values read back at a time from an out-of-line array (at most 8 KiB of LONG8).
pub(crate) const CHUNK: u64 = 1024;

/// Byte order and flavour of a TIFF, from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    pub le: bool,
    pub big: bool,
}

/// What the first 8 bytes of a TIFF say.
pub(crate) enum Header {
    /// Classic TIFF (version 42): the first directory's offset is in bytes 4..8.
    Classic(Layout, u64),
    /// BigTIFF (version 43): the first directory's offset is the 8 bytes that follow.
    Big(Layout),
}

impl Header {
    /// Parses the 8-byte start of a TIFF, or says why it is not one.
    pub(crate) fn parse(h: &[u8]) -> Result<Header, String> {
        let le = match h.get(..2) {
            Some(b"II") => true,
            Some(b"MM") => false,
            _ => return Err("the TIFF does not start with II or MM".into()),
        };
        if h.len() < 8 {
            return Err("the TIFF header is short".into());
        }
        let layout = Layout { le, big: false };
        match layout.u16(h, 2) {
            42 => Ok(Header::Classic(layout, u64::from(layout.u32(h, 4)))),
            43 => {
                // libtiff: "Unsupported BigTIFF offset size" / "Invalid BigTIFF header".
                let (size, zero) = (layout.u16(h, 4), layout.u16(h, 6));
                if size != 8 || zero != 0 {
                    return Err(format!(
                        "the BigTIFF header gives offsets of {size} bytes (and {zero}), not 8 (and 0)"
                    ));
                }
                Ok(Header::Big(Layout { le, big: true }))
            }
            v => Err(format!("the TIFF version is {v}, not 42 or 43 (BigTIFF)")),
        }
    }
}

impl Layout {
    /// "TIFF" or "BigTIFF", for messages.
    pub(crate) fn name(self) -> &'static str {
        if self.big { "BigTIFF" } else { "TIFF" }
    }
    // Callers index slices they sized themselves from the layout.
    pub(crate) fn u16(self, b: &[u8], at: usize) -> u16 {
        if self.le { le16(b, at) } else { be16(b, at) }
    }
    pub(crate) fn u32(self, b: &[u8], at: usize) -> u32 {
        if self.le { le32(b, at) } else { be32(b, at) }
    }
    pub(crate) fn u64(self, b: &[u8], at: usize) -> u64 {
        if self.le { le64(b, at) } else { be64(b, at) }
    }
    /// An offset or count field: 4 bytes, 8 in BigTIFF.
    pub(crate) fn word(self) -> u64 {
        if self.big { 8 } else { 4 }
    }
    fn read_word(self, b: &[u8], at: usize) -> u64 {
        if self.big {
            self.u64(b, at)
        } else {
            u64::from(self.u32(b, at))
        }
    }
    /// The entry count at the start of a directory: 2 bytes, 8 in BigTIFF.
    fn count_len(self) -> u64 {
        if self.big { 8 } else { 2 }
    }
    /// One directory entry: 12 bytes, 20 in BigTIFF.
    fn entry_len(self) -> u64 {
        if self.big { 20 } else { 12 }
    }
}

/// One directory entry: a tag, its value type and count, and where its values are.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    pub tag: u16,
    pub typ: u16,
    pub count: u64,
    /// Offset in the file of the entry's value field (where inline values sit).
    field_at: u64,
    /// The value field read as an offset (meaningful when the values do not fit in it).
    pointer: u64,
}

/// The size of one value of a TIFF type, or `None` for a type TIFF 6 and BigTIFF do not define
/// (libtiff ignores such entries).
pub(crate) fn type_size(typ: u16) -> Option<u64> {
    match typ {
        1 | 2 | 6 | 7 => Some(1),   // BYTE, ASCII, SBYTE, UNDEFINED
        3 | 8 => Some(2),           // SHORT, SSHORT
        4 | 9 | 11 | 13 => Some(4), // LONG, SLONG, FLOAT, IFD
        5 | 10 | 12 => Some(8),     // RATIONAL, SRATIONAL, DOUBLE
        16..=18 => Some(8),         // LONG8, SLONG8, IFD8
        _ => None,
    }
}

impl Entry {
    /// The bytes of its values: `Ok(None)` for an unknown type, `Err` if the count overflows.
    pub(crate) fn data_len(&self) -> Result<Option<u64>, ()> {
        match type_size(self.typ) {
            None => Ok(None),
            Some(size) => self.count.checked_mul(size).map(Some).ok_or(()),
        }
    }

    /// Where its values start: in the entry itself when they fit, else where it points.
    pub(crate) fn data_at(&self, layout: Layout) -> u64 {
        match self.data_len() {
            Ok(Some(n)) if n <= layout.word() => self.field_at,
            _ => self.pointer,
        }
    }

    /// Whether its values are elsewhere in the file (not in the entry).
    pub(crate) fn out_of_line(&self, layout: Layout) -> bool {
        !matches!(self.data_len(), Ok(Some(n)) if n <= layout.word())
    }

    /// The size of one value if the type is an unsigned integer (the types libtiff reads sizes,
    /// offsets and counts from): BYTE, SHORT, LONG, IFD, LONG8, IFD8.
    fn uint_size(&self) -> Option<u64> {
        match self.typ {
            1 => Some(1),
            3 => Some(2),
            4 | 13 => Some(4),
            16 | 18 => Some(8),
            _ => None,
        }
    }

    /// Reads values `start..start + n` (unsigned integers) into `out`. The caller has checked
    /// that the values lie inside the file and that the type is an unsigned integer.
    pub(crate) fn read_uints(
        &self,
        file: &mut dyn ReadAt,
        layout: Layout,
        start: u64,
        n: u64,
        out: &mut Vec<u64>,
    ) -> io::Result<()> {
        out.clear();
        let size = self.uint_size().ok_or(io::ErrorKind::InvalidData)?;
        let bytes =
            usize::try_from(n.saturating_mul(size)).map_err(|_| io::ErrorKind::InvalidData)?;
        let at = start
            .checked_mul(size)
            .and_then(|o| o.checked_add(self.data_at(layout)))
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        let mut buf = vec![0u8; bytes];
        file.read_exact_at(&mut buf, at)?;
        out.extend(buf.chunks_exact(size as usize).map(|v| match size {
            1 => u64::from(v[0]),
            2 => u64::from(layout.u16(v, 0)),
            4 => u64::from(layout.u32(v, 0)),
            _ => layout.u64(v, 0),
        }));
        Ok(())
    }

    /// A single unsigned integer value (ImageWidth, RowsPerStrip, Orientation...), or why not.
    pub(crate) fn uint(&self, file: &mut dyn ReadAt, layout: Layout) -> Result<u64, String> {
        if self.uint_size().is_none() {
            return Err(format!("has type {}, not an unsigned integer", self.typ));
        }
        if self.count != 1 {
            return Err(format!("has {} values, not 1", self.count));
        }
        let mut v = Vec::with_capacity(1);
        match self.read_uints(file, layout, 0, 1, &mut v) {
            Ok(()) => v.first().copied().ok_or_else(|| "cannot be read".into()),
            Err(e) => Err(format!("cannot be read ({e})")),
        }
    }
}

/// One directory: its entries and the offset of the next directory (0 at the end of the chain).
pub(crate) struct Dir {
    pub entries: Vec<Entry>,
    pub next: u64,
    /// Its size in bytes, count and next offset included.
    pub size: u64,
}

impl Dir {
    /// The first entry with this tag (libtiff also keeps the first of duplicates).
    pub(crate) fn get(&self, tag: u16) -> Option<&Entry> {
        self.entries.iter().find(|e| e.tag == tag)
    }
}

/// Reads the directory at `at` of a file of `len` bytes. `what` names it for messages ("page 2").
/// A directory that runs past the end is truncation; more than [`MAX_ENTRIES`] entries is
/// corruption.
pub(crate) fn read_dir(
    file: &mut dyn ReadAt,
    layout: Layout,
    at: u64,
    len: u64,
    what: &str,
) -> Result<Dir, Invalid> {
    let name = layout.name();
    let past = |end: u64| {
        Invalid::truncated(format!(
            "truncated: the {name} ends at byte {}, before the end of the directory of {what} (bytes {} to {})",
            group(len),
            group(at),
            group(end)
        ))
    };
    let count_end = at.saturating_add(layout.count_len());
    if count_end > len {
        return Err(past(count_end));
    }
    let mut head = [0u8; 8];
    let head = &mut head[..layout.count_len() as usize];
    read(file, head, at, name)?;
    let count = if layout.big {
        layout.u64(head, 0)
    } else {
        u64::from(layout.u16(head, 0))
    };
    if count > MAX_ENTRIES {
        return Err(Invalid::corrupt(format!(
            "the directory of {what} at byte {} has {} entries, more than the {} libtiff reads",
            group(at),
            group(count),
            group(MAX_ENTRIES)
        )));
    }
    // count <= 4096, so this is at most 81,928 bytes.
    let body = count * layout.entry_len() + layout.word();
    let end = count_end.saturating_add(body);
    if end > len {
        return Err(past(end));
    }
    let mut buf = vec![0u8; body as usize];
    read(file, &mut buf, count_end, name)?;
    let el = layout.entry_len() as usize;
    let entries = buf
        .chunks_exact(el)
        .take(count as usize)
        .enumerate()
        .map(|(i, e)| {
            let (count, field) = if layout.big {
                (layout.u64(e, 4), 12)
            } else {
                (u64::from(layout.u32(e, 4)), 8)
            };
            Entry {
                tag: layout.u16(e, 0),
                typ: layout.u16(e, 2),
                count,
                field_at: count_end + (i * el + field) as u64,
                pointer: layout.read_word(e, field),
            }
        })
        .collect();
    let next = layout.read_word(&buf, count as usize * el);
    Ok(Dir {
        entries,
        next,
        size: layout.count_len() + body,
    })
}

/// Reads back from the body; a failure here is the machine's, not the image's, but it still
/// leaves the image unproven.
pub(crate) fn read(
    file: &mut dyn ReadAt,
    buf: &mut [u8],
    at: u64,
    name: &str,
) -> Result<(), Invalid> {
    file.read_exact_at(buf, at).map_err(|e| {
        Invalid::corrupt(format!(
            "cannot read back the {name} at byte {}: {e}",
            group(at)
        ))
    })
}

/// The EXIF orientation (tag 0x0112 of IFD0, a SHORT from 1 to 8) of a TIFF structure in memory,
/// such as a JPEG's EXIF block. `None` when it is absent or anything about it is malformed:
/// browsers then show the image as stored, and so does jobd's size.
pub(crate) fn orientation(tiff: &[u8]) -> Option<u16> {
    let mut file = tiff;
    let len = tiff.len() as u64;
    let (layout, first) = match Header::parse(tiff).ok()? {
        Header::Classic(layout, first) => (layout, first),
        Header::Big(layout) => (layout, layout.u64(tiff.get(8..16)?, 0)),
    };
    let dir = read_dir(&mut file, layout, first, len, "IFD0").ok()?;
    let entry = dir.get(0x0112)?;
    if entry.typ != 3 {
        return None;
    }
    let value = entry.uint(&mut file, layout).ok()?;
    (1..=8).contains(&value).then_some(value as u16)
}
