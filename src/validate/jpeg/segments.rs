//! The JPEG segments read whole and checked as libjpeg-turbo reads them: the frame header (SOF),
//! Huffman and quantisation tables (DHT, DQT) and scan headers (SOS).

use super::{Component, Frame, Jpeg, MAX_BLOCKS_IN_MCU, MAX_DIMENSION, State, Table};
use crate::validate::{Invalid, Step, be16};

impl Jpeg {
    pub(super) fn sof(&mut self, b: &[u8]) -> Result<(), Invalid> {
        if self.frame.is_some() {
            return Err(Invalid::corrupt(format!(
                "a second frame: {}, after the first SOF",
                self.segment()
            )));
        }
        let (Some(&precision), Some(&count)) = (b.first(), b.get(5)) else {
            return Err(Invalid::corrupt(format!(
                "{} is {} bytes long, too short for a frame header",
                self.segment(),
                b.len() + 2
            )));
        };
        let count = usize::from(count);
        if b.len() != 6 + 3 * count {
            return Err(Invalid::corrupt(format!(
                "{} has length {} for {count} components (which need {})",
                self.segment(),
                b.len() + 2,
                8 + 3 * count
            )));
        }
        if !(1..=4).contains(&count) {
            return Err(Invalid::corrupt(format!(
                "{} has {count} components, not 1 to 4",
                self.segment()
            )));
        }
        let lossless = self.marker == 0xC3;
        // libjpeg-turbo decodes 8- and 12-bit DCT frames and 2- to 16-bit lossless ones.
        let precision_ok = if lossless {
            (2..=16).contains(&precision)
        } else {
            precision == 8 || precision == 12
        };
        if !precision_ok {
            return Err(Invalid::corrupt(format!(
                "{} has {precision}-bit samples, which libjpeg-turbo does not decode",
                self.segment()
            )));
        }
        let height = be16(b, 1);
        let width = be16(b, 3);
        if height == 0 || width == 0 {
            // A height of 0 defers it to a DNL marker, which libjpeg does not support.
            return Err(Invalid::corrupt(format!(
                "{} gives a size of {width}x{height}",
                self.segment()
            )));
        }
        if height > MAX_DIMENSION || width > MAX_DIMENSION {
            return Err(Invalid::corrupt(format!(
                "{} gives a size of {width}x{height}, over libjpeg's maximum of 65500",
                self.segment()
            )));
        }
        self.limits
            .check_frame("frame", 1, u64::from(width), u64::from(height))?;
        let mut components = [Component::default(); 4];
        for (c, spec) in components.iter_mut().zip(b[6..].chunks_exact(3)) {
            let (h, v) = (spec[1] >> 4, spec[1] & 15);
            if !(1..=4).contains(&h) || !(1..=4).contains(&v) {
                return Err(Invalid::corrupt(format!(
                    "{} gives component {} sampling factors {h}x{v}, not 1 to 4",
                    self.segment(),
                    spec[0]
                )));
            }
            *c = Component {
                id: spec[0],
                h,
                v,
                quant: spec[2],
            };
        }
        let used = &components[..count];
        // libjpeg-turbo upsamples only by whole factors ("Fractional sampling not implemented").
        let max_h = used.iter().map(|c| c.h).max().unwrap_or(1);
        let max_v = used.iter().map(|c| c.v).max().unwrap_or(1);
        for &Component { id, h, v, .. } in used {
            if max_h % h != 0 || max_v % v != 0 {
                return Err(Invalid::corrupt(format!(
                    "{} gives component {id} sampling factors {h}x{v} that do not divide {max_h}x{max_v}, which libjpeg-turbo does not upsample",
                    self.segment(),
                )));
            }
        }
        self.frame = Some(Frame {
            precision,
            width,
            height,
            progressive: matches!(self.marker, 0xC2 | 0xCA),
            lossless,
            arithmetic: self.marker >= 0xC9,
            count,
            components,
        });
        Ok(())
    }

    /// Huffman tables, parsed as libjpeg's get_dht does.
    pub(super) fn dht(&mut self, mut b: &[u8]) -> Result<(), Invalid> {
        while b.len() > 16 {
            let index = b[0];
            let counts = &b[1..17];
            let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
            if total > 256 || total > b.len() - 17 {
                return Err(Invalid::corrupt(format!(
                    "{} has a table of {total} codes, more than {}",
                    self.segment(),
                    (b.len() - 17).min(256)
                )));
            }
            let slot = match index {
                0..=3 => usize::from(index),
                0x10..=0x13 => usize::from(index - 0x10) + 4,
                _ => {
                    return Err(Invalid::corrupt(format!(
                        "{} defines table 0x{index:02X}, not 0-3 or 0x10-0x13",
                        self.segment()
                    )));
                }
            };
            self.huffman[slot] = if codes_fit(counts) {
                let symbols = &b[17..17 + total];
                Table::Defined {
                    max_symbol: symbols.iter().copied().max().unwrap_or(0),
                }
            } else {
                Table::Bogus
            };
            b = &b[17 + total..];
        }
        if !b.is_empty() {
            return Err(Invalid::corrupt(format!(
                "{} has {} bytes left over after its tables",
                self.segment(),
                b.len()
            )));
        }
        Ok(())
    }

    /// Quantisation tables, parsed as libjpeg-turbo's get_dqt does: each of 64 values (8- or
    /// 16-bit), filling the segment exactly.
    pub(super) fn dqt(&mut self, mut b: &[u8]) -> Result<(), Invalid> {
        while let Some((&pq_tq, rest)) = b.split_first() {
            let table = pq_tq & 15;
            if table > 3 {
                return Err(Invalid::corrupt(format!(
                    "{} defines table {table}, not 0 to 3",
                    self.segment()
                )));
            }
            self.quant |= 1 << table;
            let size = if pq_tq >> 4 != 0 { 2 } else { 1 };
            let Some(next) = rest.get(64 * size..) else {
                return Err(Invalid::corrupt(format!(
                    "{} ends inside table {table} ({} bytes of {})",
                    self.segment(),
                    rest.len(),
                    64 * size
                )));
            };
            b = next;
        }
        Ok(())
    }

    /// Arithmetic conditioning tables, as libjpeg's get_dac reads them.
    pub(super) fn dac(&mut self, b: &[u8]) -> Result<(), Invalid> {
        if b.len() % 2 != 0 {
            return Err(Invalid::corrupt(format!(
                "{} has an odd length",
                self.segment()
            )));
        }
        for pair in b.chunks_exact(2) {
            let (index, value) = (pair[0], pair[1]);
            let bad = index >= 32 || (index < 16 && value & 15 > value >> 4);
            if bad {
                return Err(Invalid::corrupt(format!(
                    "{} sets table {index} to {value}, which libjpeg refuses",
                    self.segment()
                )));
            }
        }
        Ok(())
    }

    /// A scan header: then the scan's entropy-coded data.
    pub(super) fn sos(&mut self, b: &[u8]) -> Result<Step, Invalid> {
        let Some(frame) = self.frame else {
            return Err(Invalid::corrupt(format!(
                "{} comes before any SOF marker",
                self.segment()
            )));
        };
        let count = usize::from(b.first().copied().unwrap_or(0));
        if !(1..=4).contains(&count) || b.len() != 4 + 2 * count {
            return Err(Invalid::corrupt(format!(
                "{} has length {} for {count} components (1 to 4, which need 6 + 2 per component)",
                self.segment(),
                b.len() + 2
            )));
        }
        let (ss, se, ah, al) = (
            b[1 + 2 * count],
            b[2 + 2 * count],
            b[3 + 2 * count] >> 4,
            b[3 + 2 * count] & 15,
        );
        if frame.progressive {
            // libjpeg's "Invalid progressive parameters", which is fatal.
            let bad = if ss == 0 {
                se != 0
            } else {
                se < ss || se > 63 || count != 1
            } || (ah != 0 && al != ah - 1)
                || al > 13;
            if bad {
                return Err(Invalid::corrupt(format!(
                    "{} has invalid progressive parameters Ss={ss} Se={se} Ah={ah} Al={al}",
                    self.segment()
                )));
            }
        }
        if frame.lossless {
            // A predictor (Ss) from 1 to 7 and a point transform (Al) within the precision.
            let bad = !(1..=7).contains(&ss) || se != 0 || ah != 0 || al >= frame.precision;
            if bad {
                return Err(Invalid::corrupt(format!(
                    "{} has invalid lossless parameters Ss={ss} Se={se} Ah={ah} Al={al}",
                    self.segment()
                )));
            }
        }
        let mut used = [false; 4];
        let mut blocks = 0u32;
        for (i, spec) in b[1..1 + 2 * count].chunks_exact(2).enumerate() {
            let (id, dc, ac) = (spec[0], spec[1] >> 4, spec[1] & 15);
            // As libjpeg-turbo's get_sos: the i-th component of a scan is the first frame
            // component from the i-th on with that id (so scans list them in frame order), and
            // none twice.
            let found = frame.components[..frame.count]
                .iter()
                .zip(used.iter_mut())
                .skip(i)
                .find(|(c, _)| c.id == id)
                .filter(|(_, u)| !**u);
            let Some((c, u)) = found else {
                return Err(Invalid::corrupt(format!(
                    "{} names component {id}, which the frame does not have (or not in this order, or twice)",
                    self.segment()
                )));
            };
            *u = true;
            blocks += u32::from(c.h) * u32::from(c.v);
            if !frame.lossless && (c.quant > 3 || self.quant & (1 << c.quant) == 0) {
                return Err(Invalid::corrupt(format!(
                    "{} uses component {id}, whose quantisation table {} no DQT defined",
                    self.segment(),
                    c.quant
                )));
            }
            if !frame.arithmetic {
                let wants_dc = if frame.progressive {
                    ss == 0 && ah == 0
                } else {
                    true
                };
                let wants_ac = if frame.progressive {
                    ss != 0
                } else {
                    !frame.lossless
                };
                for (wanted, class, table, slot) in
                    [(wants_dc, "DC", dc, 0), (wants_ac, "AC", ac, 4)]
                {
                    if wanted && !self.huffman_ok(table, slot, frame) {
                        return Err(Invalid::corrupt(format!(
                            "{} uses {class} Huffman table {table}, which is not defined or not valid",
                            self.segment()
                        )));
                    }
                }
            }
        }
        if count > 1 && blocks > MAX_BLOCKS_IN_MCU {
            return Err(Invalid::corrupt(format!(
                "{} has {blocks} blocks per MCU, more than libjpeg's {MAX_BLOCKS_IN_MCU}",
                self.segment()
            )));
        }
        if self.single_scan {
            // libjpeg: "Didn't expect more than one scan".
            return Err(Invalid::corrupt(format!(
                "{} starts a second scan, but the first covered every component of a sequential frame",
                self.segment()
            )));
        }
        self.single_scan = !frame.progressive && count == frame.count;
        self.scans += 1;
        self.in_scan = true;
        self.data = false;
        self.state = State::Markers;
        Ok(Step::Scan)
    }

    /// A Huffman table a scan uses: defined and sound (as libjpeg's jpeg_make_d_derived_tbl
    /// checks it). For sequential frames, libjpeg-turbo supplies the standard tables 0 and 1
    /// when a file has none (motion JPEG frames leave them out).
    fn huffman_ok(&self, table: u8, slot: usize, frame: Frame) -> bool {
        if table > 3 {
            return false;
        }
        match self.huffman.get(slot + usize::from(table)) {
            Some(Table::Defined { max_symbol }) => {
                slot != 0 || *max_symbol <= if frame.lossless { 16 } else { 15 }
            }
            Some(Table::Undefined) => table <= 1 && !frame.progressive && !frame.lossless,
            _ => false,
        }
    }
}

/// Whether Huffman code lengths leave room for every code, with no code of all ones (libjpeg's
/// jpeg_make_d_derived_tbl).
fn codes_fit(counts: &[u8]) -> bool {
    let last = counts.iter().rposition(|&c| c != 0).map_or(0, |i| i + 1);
    let mut code = 0u32;
    for (bits, &n) in counts.iter().enumerate().take(last) {
        code += u32::from(n);
        if code >= 1 << (bits + 1) {
            return false;
        }
        code <<= 1;
    }
    true
}
