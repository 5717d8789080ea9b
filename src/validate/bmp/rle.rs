//! The RLE8/RLE4 command stream of a BMP, walked to its end-of-bitmap marker.

/// Where the walk is between two bytes of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rle {
    /// Before a command's first byte: a run count, or 0 for an escape.
    Count,
    /// Before an encoded run's pixel value.
    Value,
    /// After a 0: end of line, end of bitmap, delta, or an absolute run's length.
    Escape,
    /// Inside a delta's two bytes (dx, dy): this many are left.
    Delta(u8),
    /// Inside an absolute run: this many bytes are left, its padding to 16 bits included.
    Absolute(u32),
}

/// What a scan of some bytes found.
pub(super) enum Walked {
    /// All bytes belong to the stream; it goes on.
    More,
    /// The end-of-bitmap marker ends at this index of the bytes.
    End(usize),
}

impl Rle {
    /// Walks `bytes`; `rle4` packs two pixels a byte (absolute runs are half as long).
    pub(super) fn walk(&mut self, bytes: &[u8], rle4: bool) -> Walked {
        let mut i = 0;
        while let Some(&b) = bytes.get(i) {
            match *self {
                Rle::Count => {
                    // The common case, a whole (count, value) pair, in one step.
                    if b != 0 && i + 1 < bytes.len() {
                        i += 2;
                        continue;
                    }
                    *self = if b == 0 { Rle::Escape } else { Rle::Value };
                    i += 1;
                }
                Rle::Value => {
                    *self = Rle::Count;
                    i += 1;
                }
                Rle::Escape => {
                    i += 1;
                    match b {
                        0 => *self = Rle::Count,
                        1 => {
                            *self = Rle::Count;
                            return Walked::End(i);
                        }
                        2 => *self = Rle::Delta(2),
                        n => {
                            let n = u32::from(n);
                            let data = if rle4 { n.div_ceil(2) } else { n };
                            *self = Rle::Absolute(data + (data & 1));
                        }
                    }
                }
                Rle::Delta(left) => {
                    i += 1;
                    *self = if left > 1 {
                        Rle::Delta(left - 1)
                    } else {
                        Rle::Count
                    };
                }
                Rle::Absolute(left) => {
                    let rest = bytes.len() - i;
                    if rest >= left as usize {
                        i += left as usize;
                        *self = Rle::Count;
                    } else {
                        *self = Rle::Absolute(left - rest as u32);
                        i = bytes.len();
                    }
                }
            }
        }
        Walked::More
    }
}
