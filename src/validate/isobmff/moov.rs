//! The `moov` box of an image sequence (AVIF `avis`, HEIF `msf1`), parsed in memory enough to
//! bound it: each track's size (`tkhd`, and the coded size of its sample entry), its sample
//! count, and the end of its furthest chunk (`stsc` x `stsz` x `stco`/`co64`), which must lie
//! inside the file.

use super::super::{Invalid, Limits, group};
use super::boxes::{Rd, children, fourcc};

pub struct Track {
    pub handler: [u8; 4],
    /// `tkhd` width and height, integer part of 16.16.
    pub tkhd: (u32, u32),
    /// The first sample entry's coded width and height, for visual tracks.
    pub coded: Option<(u16, u16)>,
    pub samples: u64,
    /// The furthest byte that a chunk's samples reach.
    pub end: u64,
}

impl Track {
    pub fn visual(&self) -> bool {
        [*b"pict", *b"vide", *b"auxv"].contains(&self.handler)
    }
    /// The size to display: the track header's, or the coded size when that is 0.
    pub fn size(&self) -> (u64, u64) {
        match (self.tkhd, self.coded) {
            ((0, _) | (_, 0), Some((w, h))) => (u64::from(w), u64::from(h)),
            ((w, h), _) => (u64::from(w), u64::from(h)),
        }
    }
}

/// Parses the content of a `moov` box into its tracks.
pub fn parse(b: &[u8]) -> Result<Vec<Track>, Invalid> {
    let mut tracks = Vec::new();
    for c in children(b, *b"moov") {
        let c = c?;
        if &c.typ == b"trak" {
            tracks.push(track(c.body, tracks.len() + 1)?);
        }
    }
    Ok(tracks)
}

/// The boxes of one track that the checks need, found where they belong.
#[derive(Default)]
struct Parts<'a> {
    tkhd: Option<&'a [u8]>,
    hdlr: Option<&'a [u8]>,
    stsd: Option<&'a [u8]>,
    stsz: Option<(&'a [u8], bool)>,
    stsc: Option<&'a [u8]>,
    stco: Option<(&'a [u8], bool)>,
}

fn find<'a>(b: &'a [u8], parent: [u8; 4], p: &mut Parts<'a>) -> Result<(), Invalid> {
    for c in children(b, parent) {
        let c = c?;
        match &c.typ {
            b"mdia" | b"minf" | b"stbl" => find(c.body, c.typ, p)?,
            b"tkhd" => p.tkhd = Some(c.body),
            b"hdlr" if &parent == b"mdia" => p.hdlr = Some(c.body),
            b"stsd" => p.stsd = Some(c.body),
            b"stsz" => p.stsz = Some((c.body, false)),
            b"stz2" => p.stsz = Some((c.body, true)),
            b"stsc" => p.stsc = Some(c.body),
            b"stco" => p.stco = Some((c.body, false)),
            b"co64" => p.stco = Some((c.body, true)),
            _ => {}
        }
    }
    Ok(())
}

fn missing(n: usize, what: &str) -> Invalid {
    Invalid::corrupt(format!("track {n} has no {what} box"))
}

fn track(b: &[u8], n: usize) -> Result<Track, Invalid> {
    let mut p = Parts::default();
    find(b, *b"trak", &mut p)?;

    let mut r = Rd::new(p.tkhd.ok_or_else(|| missing(n, "tkhd"))?, *b"tkhd");
    let (v, _) = r.full()?;
    r.take(if v == 1 { 84 } else { 72 })?;
    let tkhd = (r.u32()? >> 16, r.u32()? >> 16);

    let mut r = Rd::new(p.hdlr.ok_or_else(|| missing(n, "hdlr"))?, *b"hdlr");
    r.full()?;
    r.u32()?;
    let handler = r.fourcc()?;

    let mut coded = None;
    if [*b"pict", *b"vide", *b"auxv"].contains(&handler) {
        let mut r = Rd::new(p.stsd.ok_or_else(|| missing(n, "stsd"))?, *b"stsd");
        r.full()?;
        r.u32()?;
        let entry = children(r.rest(), *b"stsd")
            .next()
            .ok_or_else(|| Invalid::corrupt(format!("track {n} has no sample entry")))??;
        let mut r = Rd::new(entry.body, entry.typ);
        r.take(24)?;
        coded = Some((r.u16()?, r.u16()?));
    }

    let (stsz, compact) = p.stsz.ok_or_else(|| missing(n, "stsz"))?;
    let sizes = Sizes::parse(stsz, compact)?;
    let (stco, wide) = p.stco.ok_or_else(|| missing(n, "stco"))?;
    let mut r = Rd::new(stco, if wide { *b"co64" } else { *b"stco" });
    r.full()?;
    let chunks = r.u32()?;
    let width = if wide { 8 } else { 4 };
    let offsets = r.take((chunks as usize).saturating_mul(width))?;
    let offset = |i: u32| -> u64 {
        let at = i as usize * width;
        let o = offsets.get(at..at + width).unwrap_or(&[]);
        o.iter().fold(0u64, |a, b| (a << 8) | u64::from(*b))
    };

    let mut r = Rd::new(p.stsc.ok_or_else(|| missing(n, "stsc"))?, *b"stsc");
    r.full()?;
    let entries = r.u32()?;
    let table = r.take((entries as usize).saturating_mul(12))?;
    let entry = |i: u32| -> (u32, u32) {
        let at = i as usize * 12;
        let e = table.get(at..at + 8).unwrap_or(&[0; 8]);
        (
            u32::from_be_bytes([e[0], e[1], e[2], e[3]]),
            u32::from_be_bytes([e[4], e[5], e[6], e[7]]),
        )
    };

    // Walk the chunks in order, each with its samples: linear in chunks + samples.
    let mut sample = 0u64;
    let mut end = 0u64;
    for i in 0..entries {
        let (first, per_chunk) = entry(i);
        let last = if i + 1 < entries {
            let next = entry(i + 1).0;
            if next <= first {
                return Err(Invalid::corrupt(format!(
                    "track {n}'s stsc box has chunk runs out of order"
                )));
            }
            next - 1
        } else {
            chunks
        };
        if first == 0 || first > chunks {
            return Err(Invalid::corrupt(format!(
                "track {n}'s stsc box names chunk {first}, but there are {chunks}"
            )));
        }
        for chunk in first..=last.min(chunks) {
            let mut size = 0u64;
            match sizes {
                Sizes::Fixed(s, _) => {
                    size = u64::from(per_chunk).saturating_mul(u64::from(s));
                    sample += u64::from(per_chunk);
                }
                _ => {
                    for _ in 0..per_chunk {
                        if sample >= sizes.count() {
                            break;
                        }
                        size += sizes.get(sample);
                        sample += 1;
                    }
                }
            }
            if sample > sizes.count() {
                return Err(Invalid::corrupt(format!(
                    "track {n}'s chunks hold more samples than its {} samples",
                    sizes.count()
                )));
            }
            if size > 0 {
                end = end.max(offset(chunk - 1).saturating_add(size));
            }
            if sample >= sizes.count() {
                break;
            }
        }
    }
    Ok(Track {
        handler,
        tkhd,
        coded,
        samples: sizes.count(),
        end,
    })
}

/// Sample sizes: one for all, or a table of 4, 8, 16 or 32-bit entries.
#[derive(Clone, Copy)]
enum Sizes<'a> {
    Fixed(u32, u32),
    Table(&'a [u8], u8, u32),
}

impl<'a> Sizes<'a> {
    fn parse(b: &'a [u8], compact: bool) -> Result<Sizes<'a>, Invalid> {
        let mut r = Rd::new(b, if compact { *b"stz2" } else { *b"stsz" });
        r.full()?;
        let (bits, count) = if compact {
            let bits = (r.u32()? & 0xff) as u8;
            if ![4, 8, 16].contains(&bits) {
                return Err(Invalid::corrupt(format!(
                    "the stz2 box has {bits}-bit sample sizes"
                )));
            }
            (bits, r.u32()?)
        } else {
            let fixed = r.u32()?;
            let count = r.u32()?;
            if fixed != 0 {
                return Ok(Sizes::Fixed(fixed, count));
            }
            (32, count)
        };
        let bytes = (u64::from(count) * u64::from(bits)).div_ceil(8);
        let table = r.take(usize::try_from(bytes).unwrap_or(usize::MAX))?;
        Ok(Sizes::Table(table, bits, count))
    }

    fn count(&self) -> u64 {
        match self {
            Sizes::Fixed(_, n) | Sizes::Table(_, _, n) => u64::from(*n),
        }
    }

    /// The size of sample `i` (< count: the table was checked to hold them all).
    fn get(&self, i: u64) -> u64 {
        match *self {
            Sizes::Fixed(s, _) => u64::from(s),
            Sizes::Table(t, bits, _) => {
                let i = i as usize;
                let byte = |at: usize| u64::from(t.get(at).copied().unwrap_or(0));
                match bits {
                    4 => {
                        let b = byte(i / 2);
                        if i % 2 == 0 { b >> 4 } else { b & 15 }
                    }
                    8 => byte(i),
                    16 => (byte(2 * i) << 8) | byte(2 * i + 1),
                    _ => (0..4).fold(0, |a, k| (a << 8) | byte(4 * i + k)),
                }
            }
        }
    }
}

/// The checks once the file is `len` bytes: every visual track's size and sample count
/// bounded, and every track's samples inside the file.
pub fn check(tracks: &[Track], len: u64, limits: &Limits) -> Result<(), Invalid> {
    for (i, t) in tracks.iter().enumerate() {
        let n = i as u32 + 1;
        if t.visual() {
            if let Some((w, h)) = t.coded {
                limits.check_frame("track", n, u64::from(w), u64::from(h))?;
            }
            if t.tkhd.0 != 0 || t.tkhd.1 != 0 {
                limits.check_frame("track", n, u64::from(t.tkhd.0), u64::from(t.tkhd.1))?;
            }
            limits.check_count("frame", t.samples)?;
        }
        if t.end > len {
            return Err(Invalid::truncated(format!(
                "truncated: track {n}'s ({}) samples reach byte {}, past the end of the file at \
                 byte {}",
                fourcc(t.handler),
                group(t.end),
                group(len)
            )));
        }
    }
    Ok(())
}
