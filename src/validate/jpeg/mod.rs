//! JPEG: proves that the stream runs from SOI through its marker segments and entropy-coded scans
//! to EOI, with one frame (SOF) of a process libjpeg-turbo decodes (baseline, extended,
//! progressive, lossless; Huffman or arithmetic) and a size within the limits, table and scan
//! headers that libjpeg-turbo would accept (DQT, DHT, DAC, DRI, SOS: lengths, indexes, Huffman
//! code lengths, the tables each scan uses, progression parameters), and data in at least one
//! scan. It does not decode the entropy-coded data, so a scan whose bits are wrong (a picture
//! that turns grey halfway) passes; nor does it check restart marker order or the progression
//! across scans, which libjpeg only warns about.
//!
//! Quirks that libjpeg-turbo tolerates, and so does this: 0xFF fill bytes before any marker, stray
//! bytes between segments ("extraneous bytes before marker"), short APPn segments (skipped by
//! their length), and anything after EOI (an MPF second image, padding).

mod segments;
#[cfg(test)]
mod tests;

use memchr::memchr;

use super::{Image, Invalid, Limits, Parser, ReadAt, Scanned, Step, be16, group};

/// libjpeg's JPEG_MAX_DIMENSION: it refuses a wider or taller image.
const MAX_DIMENSION: u16 = 65500;

/// libjpeg's D_MAX_BLOCKS_IN_MCU: the blocks of one MCU in a scan of several components.
const MAX_BLOCKS_IN_MCU: u32 = 10;

pub struct Jpeg {
    limits: Limits,
    state: State,
    /// The marker being read (its code), and the offset of its 0xFF.
    marker: u8,
    marker_at: u64,
    /// The last byte of the previous piece was a 0xFF whose code has not arrived yet.
    ff: bool,
    /// The scan we are in (after an SOS, until the next marker), else between segments.
    in_scan: bool,
    /// Bytes went by since the last SOS that were not a marker: the scan has data.
    data: bool,
    /// Some scan had data.
    entropy: bool,
    scans: u32,
    /// The first scan of a sequential frame covered every component: no other scan may follow.
    single_scan: bool,
    frame: Option<Frame>,
    /// DQT tables 0-3 defined (bit per table).
    quant: u8,
    /// Huffman tables: DC 0-3, then AC 0-3.
    huffman: [Table; 8],
    /// The first EXIF APP1 was seen (later ones are skipped, as browsers skip them).
    exif_seen: bool,
    orientation: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The first two bytes.
    Soi,
    /// Between markers or in a scan: looking for the next marker.
    Markers,
    /// The two bytes of a segment's length.
    Length,
    /// A segment read in one piece.
    Segment,
    /// A segment let pass.
    Skip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    Undefined,
    /// With its largest symbol: a DC table's must be a bit count (0-15; 16 in lossless).
    Defined {
        max_symbol: u8,
    },
    /// Its code lengths overflow: libjpeg refuses it when a scan uses it.
    Bogus,
}

#[derive(Debug, Clone, Copy)]
struct Frame {
    precision: u8,
    width: u16,
    height: u16,
    progressive: bool,
    lossless: bool,
    arithmetic: bool,
    count: usize,
    components: [Component; 4],
}

#[derive(Debug, Clone, Copy, Default)]
struct Component {
    id: u8,
    h: u8,
    v: u8,
    quant: u8,
}

impl Jpeg {
    pub fn new(limits: Limits) -> Jpeg {
        Jpeg {
            limits,
            state: State::Soi,
            marker: 0,
            marker_at: 0,
            ff: false,
            in_scan: false,
            data: false,
            entropy: false,
            scans: 0,
            single_scan: false,
            frame: None,
            quant: 0,
            huffman: [Table::Undefined; 8],
            exif_seen: false,
            orientation: None,
        }
    }

    /// "the DQT segment at byte 20", for messages.
    fn segment(&self) -> String {
        format!(
            "the {} segment at byte {}",
            marker_name(self.marker),
            group(self.marker_at)
        )
    }

    /// A marker code arrived (its 0xFF at `at`): what to read next.
    fn on_marker(&mut self, code: u8, at: u64) -> Result<Step, Invalid> {
        self.marker = code;
        self.marker_at = at;
        if self.in_scan {
            self.in_scan = false;
            self.entropy |= self.data;
        }
        let refuse = |why: &str| {
            Err(Invalid::corrupt(format!(
                "the JPEG has a {} marker at byte {}: {why}",
                marker_name(code),
                group(at)
            )))
        };
        match code {
            0xD8 => Err(Invalid::corrupt(format!(
                "a second SOI marker at byte {}",
                group(at)
            ))),
            0xD9 => {
                if self.frame.is_none() {
                    return Err(Invalid::corrupt(format!(
                        "the JPEG has no frame: EOI at byte {} before any SOF marker",
                        group(at)
                    )));
                }
                if !self.entropy {
                    return Err(Invalid::corrupt(format!(
                        "the JPEG has no image data: EOI at byte {} before any scan data",
                        group(at)
                    )));
                }
                Ok(Step::Done)
            }
            // Segments with a length: SOFs of the processes libjpeg-turbo decodes, DHT, DAC,
            // SOS, DQT, DNL, DRI, APPn, COM.
            0xC0..=0xC4 | 0xC9 | 0xCA | 0xCC | 0xDA..=0xDD | 0xE0..=0xEF | 0xFE => {
                self.state = State::Length;
                Ok(Step::Need(2))
            }
            0xC5..=0xC7 | 0xCD..=0xCF => refuse(
                "a hierarchical (differential) frame, which libjpeg-turbo and browsers do not decode",
            ),
            0xCB => {
                refuse("a lossless arithmetic-coded frame, which libjpeg-turbo does not decode")
            }
            0xF7 => refuse(
                "a JPEG-LS frame, another format, which libjpeg-turbo and browsers do not decode",
            ),
            _ => refuse("libjpeg-turbo refuses it"),
        }
    }

    /// The segment's length arrived.
    fn on_length(&mut self, len: u16) -> Result<Step, Invalid> {
        if len < 2 {
            return Err(Invalid::corrupt(format!(
                "{} has length {len}, less than the 2 bytes of the length itself",
                self.segment()
            )));
        }
        let body = usize::from(len - 2);
        let read = match self.marker {
            0xC0..=0xC4 | 0xC9 | 0xCA | 0xCC | 0xDA | 0xDB | 0xDD => true,
            // The first EXIF APP1 is read for its orientation; at most 64 KiB.
            0xE1 => !self.exif_seen,
            _ => false,
        };
        if read {
            self.state = State::Segment;
            Ok(Step::Need(body))
        } else {
            self.state = State::Skip;
            Ok(Step::Skip(body as u64))
        }
    }

    /// A segment read whole: check it.
    fn on_segment(&mut self, body: &[u8]) -> Result<Step, Invalid> {
        match self.marker {
            0xC4 => self.dht(body)?,
            0xDB => self.dqt(body)?,
            0xCC => self.dac(body)?,
            0xDD if body.len() != 2 => {
                return Err(Invalid::corrupt(format!(
                    "{} has length {}, not 4",
                    self.segment(),
                    body.len() + 2
                )));
            }
            0xDA => return self.sos(body),
            0xE1 => {
                if let Some(tiff) = body.strip_prefix(b"Exif\0\0") {
                    self.exif_seen = true;
                    self.orientation = crate::validate::tiff::orientation(tiff);
                }
            }
            0xC0..=0xC3 | 0xC9 | 0xCA => self.sof(body)?,
            _ => {}
        }
        self.state = State::Markers;
        Ok(Step::Scan)
    }
}

/// A marker's name for messages.
fn marker_name(code: u8) -> String {
    match code {
        0xC4 => "DHT".into(),
        0xC8 => "JPG".into(),
        0xCC => "DAC".into(),
        0xC0..=0xCF => format!("SOF{}", code - 0xC0),
        0xD0..=0xD7 => format!("RST{}", code - 0xD0),
        0xD8 => "SOI".into(),
        0xD9 => "EOI".into(),
        0xDA => "SOS".into(),
        0xDB => "DQT".into(),
        0xDC => "DNL".into(),
        0xDD => "DRI".into(),
        0xDE => "DHP".into(),
        0xDF => "EXP".into(),
        0xE0..=0xEF => format!("APP{}", code - 0xE0),
        0xF7 => "SOF55 (JPEG-LS)".into(),
        0xFE => "COM".into(),
        _ => format!("0x{code:02X}"),
    }
}

impl Parser for Jpeg {
    fn name(&self) -> &'static str {
        "JPEG"
    }

    fn start(&mut self) -> Step {
        Step::Need(2)
    }

    fn need(&mut self, bytes: &[u8], _at: u64) -> Result<Step, Invalid> {
        match self.state {
            State::Soi => {
                if bytes != [0xFF, 0xD8] {
                    return Err(Invalid::corrupt(
                        "the JPEG does not start with an SOI marker",
                    ));
                }
                self.state = State::Markers;
                Ok(Step::Scan)
            }
            State::Length => self.on_length(be16(bytes, 0)),
            State::Segment => self.on_segment(bytes),
            State::Markers | State::Skip => Err(Invalid::corrupt(
                "internal error: the JPEG parser asked for bytes it did not expect",
            )),
        }
    }

    fn skipped(&mut self, _at: u64) -> Result<Step, Invalid> {
        self.state = State::Markers;
        Ok(Step::Scan)
    }

    /// Finds the next marker: 0xFF then a code that is not 0x00 (a stuffed 0xFF in scan data,
    /// discarded between segments), 0xFF (fill), RST0-7 or TEM (no segment; inside a scan,
    /// restart markers belong to its data). Between segments, other bytes are the extraneous
    /// bytes libjpeg skips with a warning; in a scan, they are its data.
    fn scan(&mut self, bytes: &[u8], at: u64) -> Result<Scanned, Invalid> {
        let mut i = 0;
        loop {
            if self.ff {
                let Some(&code) = bytes.get(i) else {
                    return Ok(Scanned::All);
                };
                i += 1;
                match code {
                    0xFF => continue,
                    0x00 | 0x01 | 0xD0..=0xD7 => {
                        self.ff = false;
                        self.data = true;
                    }
                    _ => {
                        self.ff = false;
                        let next = self.on_marker(code, (at + i as u64).saturating_sub(2))?;
                        return Ok(Scanned::Stop { used: i, next });
                    }
                }
            }
            let rest = bytes.get(i..).unwrap_or_default();
            match memchr(0xFF, rest) {
                None => {
                    self.data |= !rest.is_empty();
                    return Ok(Scanned::All);
                }
                Some(k) => {
                    self.data |= k > 0;
                    i += k + 1;
                    self.ff = true;
                }
            }
        }
    }

    fn finish(&mut self, _len: u64, _file: &mut dyn ReadAt) -> Result<Image, Invalid> {
        let Some(frame) = self.frame else {
            return Err(Invalid::corrupt("internal error: a JPEG without a frame"));
        };
        let (w, h) = (u64::from(frame.width), u64::from(frame.height));
        if matches!(self.orientation, Some(5..=8)) {
            Image::new(h, w, 1)
        } else {
            Image::new(w, h, 1)
        }
    }

    fn inside(&self) -> String {
        let name = marker_name(self.marker);
        match self.state {
            State::Soi => "inside its SOI marker".into(),
            State::Length => format!("inside the length of its {name} segment"),
            State::Segment | State::Skip => format!("inside its {name} segment"),
            State::Markers if self.in_scan => format!("in the data of scan {}", self.scans),
            State::Markers if self.frame.is_none() => "before its frame header (SOF)".into(),
            State::Markers if self.ff => "inside a marker, before its EOI".into(),
            State::Markers => "before its EOI marker".into(),
        }
    }
}
