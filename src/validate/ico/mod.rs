//! ICO and CUR: proves that the directory is sane (entries inside the file, after the directory,
//! not overlapping) and that every embedded image is whole: each entry's bytes go to a nested
//! validator, the PNG one or the icon-DIB one ([`super::bmp::Bmp::dib_in_icon`]), and each
//! image's real size is checked against `max_pixels`. The directory's own sizes, colour counts
//! and hotspots are not trusted or checked: decoders use the embedded image's header.

use super::bmp::{Bmp, Embedded};
use super::{Image, Invalid, Limits, Parser, ReadAt, Step, Validator, group, le16, le32};

#[cfg(test)]
mod tests;

const PNG_SIGNATURE: &[u8; 8] = b"\x89PNG\r\n\x1a\n";

/// The ICO/CUR parser. See the module doc for what it proves.
pub struct Ico {
    limits: Limits,
    cursor: bool,
    at: At,
    /// Images in the directory.
    count: u16,
    /// The directory, sorted by offset, without duplicate entries.
    entries: Vec<Entry>,
    /// The entry being read (index into `entries`).
    next: usize,
    embedded: Option<Embedded>,
    /// The largest embedded image so far (by pixels).
    largest: Option<(u64, u64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    Header,
    Directory,
    /// Bytes before an entry's image.
    Gap,
    /// The first 8 bytes of an image, which tell a PNG from a DIB.
    Signature,
    Image,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    /// Its place in the directory, from 1.
    index: u32,
    offset: u64,
    size: u64,
}

impl Ico {
    pub fn new(limits: Limits) -> Ico {
        Ico {
            limits,
            cursor: false,
            at: At::Header,
            count: 0,
            entries: Vec::new(),
            next: 0,
            embedded: None,
            largest: None,
        }
    }

    fn directory(&mut self, b: &[u8]) -> Result<Step, Invalid> {
        let dir_end = 6 + 16 * u64::from(self.count);
        let mut entries = Vec::with_capacity(usize::from(self.count));
        for (i, e) in b.chunks_exact(16).enumerate() {
            let entry = Entry {
                index: i as u32 + 1,
                size: u64::from(le32(e, 8)),
                offset: u64::from(le32(e, 12)),
            };
            // Too short for a PNG signature or a DIB header.
            if entry.size < 8 {
                return Err(Invalid::corrupt(format!(
                    "image {} of the directory is only {} bytes",
                    entry.index, entry.size
                )));
            }
            if entry.offset < dir_end {
                return Err(Invalid::corrupt(format!(
                    "image {} at byte {} starts inside the directory, which ends at byte {}",
                    entry.index,
                    group(entry.offset),
                    group(dir_end)
                )));
            }
            entries.push(entry);
        }
        entries.sort_by_key(|e| (e.offset, e.size, e.index));
        // Entries that share the same bytes (some writers list one image twice) are read once.
        entries.dedup_by(|e, kept| e.offset == kept.offset && e.size == kept.size);
        for pair in entries.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            if a.offset + a.size > b.offset {
                return Err(Invalid::corrupt(format!(
                    "image {} (bytes {} to {}) overlaps image {} at byte {}",
                    a.index,
                    group(a.offset),
                    group(a.offset + a.size),
                    b.index,
                    group(b.offset)
                )));
            }
        }
        self.entries = entries;
        self.next = 0;
        self.next_entry(dir_end)
    }

    /// At `at`, after the directory or an image: skip to the next image, or end.
    fn next_entry(&mut self, at: u64) -> Result<Step, Invalid> {
        match self.entries.get(self.next) {
            Some(e) => {
                self.at = At::Gap;
                Ok(Step::Skip(e.offset - at))
            }
            None => {
                self.at = At::Done;
                Ok(Step::Done)
            }
        }
    }

    fn entry(&self) -> Entry {
        self.entries.get(self.next).copied().unwrap_or(Entry {
            index: 0,
            offset: 0,
            size: 0,
        })
    }
}

impl Parser for Ico {
    fn name(&self) -> &'static str {
        if self.cursor { "CUR" } else { "ICO" }
    }

    fn start(&mut self) -> Step {
        Step::Need(6)
    }

    fn need(&mut self, b: &[u8], _at: u64) -> Result<Step, Invalid> {
        match self.at {
            At::Header => {
                let (reserved, kind, count) = (le16(b, 0), le16(b, 2), le16(b, 4));
                if reserved != 0 || !matches!(kind, 1 | 2) {
                    return Err(Invalid::corrupt("not an ICO or CUR file"));
                }
                self.cursor = kind == 2;
                if count == 0 {
                    return Err(Invalid::corrupt(format!(
                        "the {} has no image",
                        self.name()
                    )));
                }
                self.limits.check_count("image", u64::from(count))?;
                self.count = count;
                self.at = At::Directory;
                Ok(Step::Need(16 * usize::from(count)))
            }
            At::Directory => self.directory(b),
            At::Signature => {
                let e = self.entry();
                let (kind, validator) = if b == PNG_SIGNATURE {
                    ("PNG", Validator::for_mime("image/png", self.limits))
                } else {
                    (
                        "BMP",
                        Validator::new(Box::new(Bmp::dib_in_icon(self.limits))),
                    )
                };
                let label = format!(
                    "image {} (a {kind} of {} bytes at byte {})",
                    e.index,
                    group(e.size),
                    group(e.offset)
                );
                let mut embedded = Embedded::new(validator, label);
                embedded.feed(b)?;
                self.embedded = Some(embedded);
                self.at = At::Image;
                Ok(Step::Skip(e.size - 8))
            }
            _ => Err(Invalid::corrupt("internal error: an ICO need out of place")),
        }
    }

    fn pass(&mut self, bytes: &[u8]) -> Result<(), Invalid> {
        match &mut self.embedded {
            Some(e) => e.feed(bytes),
            None => Ok(()),
        }
    }

    fn skipped(&mut self, at: u64) -> Result<Step, Invalid> {
        match self.at {
            At::Gap => {
                self.at = At::Signature;
                Ok(Step::Need(8))
            }
            At::Image => {
                let e = self.entry();
                let image = match self.embedded.take() {
                    Some(embedded) => embedded.finish()?,
                    None => return Err(Invalid::corrupt("internal error: no embedded image")),
                };
                let (w, h) = (u64::from(image.width), u64::from(image.height));
                // The directory's size may say 16x16: the embedded header is what decoders use.
                self.limits.check_frame("image", e.index, w, h)?;
                if self.largest.is_none_or(|(lw, lh)| w * h > lw * lh) {
                    self.largest = Some((w, h));
                }
                self.next += 1;
                self.next_entry(at)
            }
            _ => Err(Invalid::corrupt("internal error: an ICO skip out of place")),
        }
    }

    fn finish(&mut self, _len: u64, _file: &mut dyn ReadAt) -> Result<Image, Invalid> {
        let (w, h) = self.largest.unwrap_or((0, 0));
        Image::new(w, h, u32::from(self.count))
    }

    fn inside(&self) -> String {
        let e = self.entry();
        match self.at {
            At::Header => "in its header".into(),
            At::Directory => format!("in its directory of {} images", self.count),
            At::Gap => format!(
                "before image {}, which starts at byte {}",
                e.index,
                group(e.offset)
            ),
            At::Signature | At::Image => format!(
                "inside image {} ({} bytes at byte {})",
                e.index,
                group(e.size),
                group(e.offset)
            ),
            At::Done => "after its last image".into(),
        }
    }
}
