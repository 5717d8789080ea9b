use super::*;
use crate::validate::{Problem, testing};

const LIMITS: Limits = Limits {
    max_pixels: 100_000_000,
    max_frames: 100,
};

const SHORT: u16 = 3;
const LONG: u16 = 4;
const LONG8: u16 = 16;

type Tag = (u16, u16, Vec<u64>);

/// Builds a TIFF: header, `data` (the "pixels", at offset 8 or 16), then each page's directory
/// followed by its out-of-line values (as libtiff lays them out), or with `dirs_first` the
/// directories before the data.
struct Builder {
    le: bool,
    big: bool,
    out: Vec<u8>,
}

impl Builder {
    fn new(le: bool, big: bool) -> Builder {
        let mut out = if le { b"II".to_vec() } else { b"MM".to_vec() };
        let mut b = Builder {
            le,
            big,
            out: Vec::new(),
        };
        std::mem::swap(&mut b.out, &mut out);
        b.out.extend(out);
        if big {
            b.u16(43);
            b.u16(8);
            b.u16(0);
            b.u64(0);
        } else {
            b.u16(42);
            b.u32(0);
        }
        b
    }
    fn u16(&mut self, v: u16) {
        self.out.extend(if self.le {
            v.to_le_bytes()
        } else {
            v.to_be_bytes()
        });
    }
    fn u32(&mut self, v: u32) {
        self.out.extend(if self.le {
            v.to_le_bytes()
        } else {
            v.to_be_bytes()
        });
    }
    fn u64(&mut self, v: u64) {
        self.out.extend(if self.le {
            v.to_le_bytes()
        } else {
            v.to_be_bytes()
        });
    }
    fn word(&mut self, v: u64) {
        if self.big {
            self.u64(v)
        } else {
            self.u32(v as u32)
        }
    }
    fn put(&mut self, typ: u16, v: u64) {
        match typ {
            1 | 2 | 6 | 7 => self.out.push(v as u8),
            3 => self.u16(v as u16),
            4 | 13 => self.u32(v as u32),
            _ => self.u64(v),
        }
    }
    fn patch_word(&mut self, at: usize, v: u64) {
        let bytes: Vec<u8> = match (self.big, self.le) {
            (true, true) => v.to_le_bytes().to_vec(),
            (true, false) => v.to_be_bytes().to_vec(),
            (false, true) => (v as u32).to_le_bytes().to_vec(),
            (false, false) => (v as u32).to_be_bytes().to_vec(),
        };
        self.out[at..at + bytes.len()].copy_from_slice(&bytes);
    }

    /// Writes one directory at the end and returns where its next-offset field is.
    fn dir(&mut self, tags: &[Tag]) -> usize {
        let word = if self.big { 8 } else { 4 };
        let dir_len = if self.big {
            8 + 20 * tags.len() + 8
        } else {
            2 + 12 * tags.len() + 4
        };
        let mut extra = self.out.len() + dir_len;
        let mut arrays = Vec::new();
        if self.big {
            self.u64(tags.len() as u64)
        } else {
            self.u16(tags.len() as u16)
        }
        for (tag, typ, values) in tags {
            self.u16(*tag);
            self.u16(*typ);
            self.word(values.len() as u64);
            let size = type_size(*typ).unwrap() as usize;
            if size * values.len() <= word {
                let start = self.out.len();
                for v in values {
                    self.put(*typ, *v);
                }
                self.out.resize(start + word, 0);
            } else {
                self.word(extra as u64);
                extra += size * values.len();
                arrays.push((*typ, values.clone()));
            }
        }
        let next = self.out.len();
        self.word(0);
        for (typ, values) in arrays {
            for v in values {
                self.put(typ, v);
            }
        }
        next
    }

    /// The file: `data` after the header, then the pages' directories chained in order.
    fn build(mut self, data: &[u8], pages: &[Vec<Tag>]) -> Vec<u8> {
        self.out.extend(data);
        let mut link = if self.big { 8 } else { 4 };
        for tags in pages {
            let at = self.out.len() as u64;
            self.patch_word(link, at);
            link = self.dir(tags);
        }
        self.out
    }
}

/// A page of `w` x `h` in strips of `rows` rows at `offsets` with `counts` bytes each.
fn strips(w: u64, h: u64, rows: u64, offsets: Vec<u64>, counts: Vec<u64>) -> Vec<Tag> {
    vec![
        (IMAGE_WIDTH, LONG, vec![w]),
        (IMAGE_LENGTH, SHORT, vec![h]),
        (STRIP_OFFSETS, LONG, offsets),
        (ROWS_PER_STRIP, LONG, vec![rows]),
        (STRIP_BYTE_COUNTS, LONG, counts),
    ]
}

fn run_with(body: &[u8], piece: usize, limits: Limits) -> Result<Image, Invalid> {
    testing::in_pieces("image/tiff", body, piece, limits)
}

fn run(body: &[u8]) -> Result<Image, Invalid> {
    run_with(body, usize::MAX, LIMITS)
}

#[track_caller]
fn assert_err(body: &[u8], problem: Problem, words: &str) {
    let e = run(body).unwrap_err();
    assert_eq!(e.problem, problem, "{e}");
    assert!(e.to_string().contains(words), "{e}");
}

/// A 4x6 grey page in three strips of 2 rows (8 bytes each), in every flavour.
fn three_strips(le: bool, big: bool) -> Vec<u8> {
    let base = if big { 16 } else { 8 };
    let page = strips(4, 6, 2, vec![base, base + 8, base + 16], vec![8, 8, 8]);
    Builder::new(le, big).build(&[7u8; 24], &[page])
}

#[test]
fn a_striped_page_passes_in_every_flavour() {
    for (le, big) in [(true, false), (false, false), (true, true), (false, true)] {
        let body = three_strips(le, big);
        assert_eq!(
            run(&body).unwrap(),
            Image {
                width: 4,
                height: 6,
                frames: 1
            },
            "le {le} big {big}"
        );
    }
}

#[test]
fn any_split_gives_the_same_answer() {
    for body in [three_strips(true, false), three_strips(false, true)] {
        let whole = run(&body);
        for piece in 1..=body.len() {
            assert_eq!(run_with(&body, piece, LIMITS), whole, "pieces of {piece}");
        }
    }
}

#[test]
fn every_strict_prefix_fails_as_truncated() {
    // Directories after the data (libtiff) and before it.
    let dirs_first = {
        let page = strips(4, 6, 6, vec![200], vec![24]);
        let mut body = Builder::new(true, false).build(&[], &[page]);
        body.resize(200, 0);
        body.extend([9u8; 24]);
        body
    };
    for body in [
        three_strips(true, false),
        three_strips(false, true),
        dirs_first,
    ] {
        assert!(run(&body).is_ok());
        for cut in 0..body.len() {
            let e = run(&body[..cut]).unwrap_err();
            assert_eq!(e.problem, Problem::Truncated, "cut at {cut}: {e}");
        }
    }
}

#[test]
fn truncation_says_what_runs_past_the_end() {
    let page = strips(4, 6, 2, vec![8, 16, 24], vec![8, 8, 8000]);
    let body = Builder::new(true, false).build(&[0; 24], &[page]);
    let e = run(&body).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "truncated: the TIFF ends at byte {}, before the end of strip 3 of page 1 (bytes 24 to 8,024)",
            body.len()
        )
    );
    let body = three_strips(true, false);
    let e = run(&body[..40]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "truncated: the TIFF ends at byte 40, before the end of the directory of page 1 (bytes 32 to 98)"
    );
}

#[test]
fn pages_are_counted_and_the_first_gives_the_size() {
    let p1 = strips(4, 6, 6, vec![8], vec![24]);
    let p2 = strips(2, 2, 2, vec![8], vec![4]);
    let mut p3 = strips(3, 3, 3, vec![8], vec![9]);
    p3.push((ORIENTATION, SHORT, vec![6])); // not the first page: no effect
    let body = Builder::new(false, false).build(&[1; 24], &[p1, p2, p3]);
    assert_eq!(
        run(&body).unwrap(),
        Image {
            width: 4,
            height: 6,
            frames: 3
        }
    );

    let few = Limits {
        max_pixels: 1000,
        max_frames: 2,
    };
    let e = run_with(&body, usize::MAX, few).unwrap_err();
    assert_eq!(e.problem, Problem::TooLarge);
    assert_eq!(
        e.to_string(),
        "too large: more than 2 pages, over max_frames"
    );
}

#[test]
fn orientation_5_to_8_swaps_the_first_page() {
    for (o, size) in [
        (1, (4, 6)),
        (4, (4, 6)),
        (5, (6, 4)),
        (8, (6, 4)),
        (9, (4, 6)),
    ] {
        let mut page = strips(4, 6, 6, vec![8], vec![24]);
        page.push((ORIENTATION, SHORT, vec![o]));
        let body = Builder::new(true, false).build(&[0; 24], &[page]);
        let img = run(&body).unwrap();
        assert_eq!((img.width, img.height), size, "orientation {o}");
    }
}

#[test]
fn tiles_and_planes_are_counted() {
    // 40x20 in 16x16 tiles: 3x2 tiles.
    let tiles = |n: usize, planar: Option<(u64, u64)>| {
        let mut t = vec![
            (IMAGE_WIDTH, SHORT, vec![40]),
            (IMAGE_LENGTH, SHORT, vec![20]),
            (TILE_WIDTH, SHORT, vec![16]),
            (TILE_LENGTH, LONG, vec![16]),
            (TILE_OFFSETS, LONG8, vec![8; n]),
            (TILE_BYTE_COUNTS, SHORT, vec![4; n]),
        ];
        if let Some((spp, pc)) = planar {
            t.push((SAMPLES_PER_PIXEL, SHORT, vec![spp]));
            t.push((PLANAR_CONFIGURATION, SHORT, vec![pc]));
        }
        Builder::new(true, true).build(&[0; 8], &[t])
    };
    assert_eq!(run(&tiles(6, None)).unwrap().width, 40);
    assert_err(
        &tiles(5, None),
        Problem::Corrupt,
        "needs 6 tiles, but TileOffsets lists 5",
    );
    assert!(run(&tiles(6, Some((3, 1)))).is_ok());
    assert_err(&tiles(6, Some((3, 2))), Problem::Corrupt, "needs 18 tiles");
    assert!(run(&tiles(18, Some((3, 2)))).is_ok());
    assert_err(
        &tiles(18, Some((3, 3))),
        Problem::Corrupt,
        "PlanarConfiguration 3",
    );
    assert_err(
        &tiles(18, Some((0, 2))),
        Problem::Corrupt,
        "SamplesPerPixel 0",
    );

    // Strips: RowsPerStrip by default covers the whole page.
    let page = vec![
        (IMAGE_WIDTH, SHORT, vec![4]),
        (IMAGE_LENGTH, SHORT, vec![6]),
        (STRIP_OFFSETS, SHORT, vec![8]),
        (STRIP_BYTE_COUNTS, SHORT, vec![24]),
    ];
    assert!(run(&Builder::new(true, false).build(&[0; 24], &[page])).is_ok());
}

#[test]
fn a_long_strip_table_is_read_in_chunks() {
    // 3,000 strips of one row: more than one chunk of offsets.
    let n = 3000u64;
    let offsets: Vec<u64> = (0..n).map(|i| 8 + i).collect();
    let page = strips(1, n, 1, offsets, vec![1; n as usize]);
    let body = Builder::new(true, false).build(&vec![0; n as usize], std::slice::from_ref(&page));
    assert_eq!(run(&body).unwrap().height, 3000);
    let mut late = page;
    late[2].2[2500] = 1 << 30;
    let body = Builder::new(true, false).build(&vec![0; n as usize], &[late]);
    assert_err(
        &body,
        Problem::Truncated,
        "before the end of strip 2,501 of page 1",
    );
}

#[test]
fn structural_errors_are_refused() {
    let b = |pages: &[Vec<Tag>]| Builder::new(true, false).build(&[0; 24], pages);
    let mut page = strips(4, 6, 6, vec![8], vec![24]);
    page.remove(0);
    assert_err(
        &b(&[page]),
        Problem::Corrupt,
        "page 1 of the TIFF has no ImageWidth",
    );
    let mut page = strips(4, 6, 6, vec![8], vec![24]);
    page.remove(2);
    assert_err(&b(&[page]), Problem::Corrupt, "has no StripOffsets");
    let mut page = strips(4, 6, 6, vec![8], vec![24]);
    page.remove(4);
    assert_err(&b(&[page]), Problem::Corrupt, "has no StripByteCounts");
    let page = strips(4, 6, 2, vec![8, 16], vec![8, 8]);
    assert_err(
        &b(&[page]),
        Problem::Corrupt,
        "needs 3 strips, but StripOffsets lists 2",
    );
    let page = strips(4, 6, 6, vec![8, 16], vec![8]);
    assert_err(
        &b(&[page]),
        Problem::Corrupt,
        "lists 2 StripOffsets but 1 StripByteCounts",
    );
    let page = strips(4, 6, 0, vec![8], vec![24]);
    assert_err(&b(&[page]), Problem::Corrupt, "RowsPerStrip 0");
    let page = strips(0, 6, 6, vec![8], vec![24]);
    assert_err(&b(&[page]), Problem::Corrupt, "page 1 is 0x6");
    let mut page = strips(4, 6, 6, vec![8], vec![24]);
    page[0] = (IMAGE_WIDTH, 11, vec![4]); // FLOAT
    assert_err(
        &b(&[page]),
        Problem::Corrupt,
        "a bad ImageWidth: it has type 11",
    );
    let mut page = strips(4, 6, 6, vec![8], vec![24]);
    page[0] = (IMAGE_WIDTH, SHORT, vec![4, 4]);
    assert_err(
        &b(&[page]),
        Problem::Corrupt,
        "a bad ImageWidth: it has 2 values",
    );
    let mut page = strips(4, 6, 6, vec![8], vec![24]);
    page[2].1 = 5; // RATIONAL offsets
    assert_err(&b(&[page]), Problem::Corrupt, "StripOffsets of type 5");

    // A count larger than the file: corruption, not truncation.
    let mut page = strips(4, 6, 6, vec![8], vec![24]);
    page.push((270, 2, vec![b'x' as u64; 40]));
    let mut body = b(&[page]);
    let at = body.len() - 40 - 4 - 12 + 4; // the ImageDescription entry's count
    body[at..at + 4].copy_from_slice(&1_000_000u32.to_le_bytes());
    assert_err(
        &body,
        Problem::Corrupt,
        "tag 270 with 1,000,000 values, more than the whole file holds",
    );

    // An out-of-line value past the end of the file.
    let mut page = strips(4, 6, 6, vec![8], vec![24]);
    page.push((270, 2, vec![b'x' as u64; 40])); // ImageDescription
    let full = b(&[page]);
    assert_err(
        &full[..full.len() - 1],
        Problem::Truncated,
        "before the end of the values of tag 270 of page 1",
    );
}

#[test]
fn headers_and_chains_that_are_wrong_are_refused() {
    assert_err(
        b"IX*\0\x08\0\0\0",
        Problem::Corrupt,
        "does not start with II or MM",
    );
    assert_err(b"II)\0\x08\0\0\0", Problem::Corrupt, "version is 41");
    assert_err(
        b"II+\0\x04\0\0\0\x10\0\0\0\0\0\0\0",
        Problem::Corrupt,
        "offsets of 4 bytes",
    );
    assert_err(b"II*\0\0\0\0\0", Problem::Corrupt, "the TIFF has no pages");
    assert_err(
        b"II+\0\x08\0\0\0\0\0\0\0\0\0\0\0",
        Problem::Corrupt,
        "the BigTIFF has no pages",
    );
    assert_err(
        b"II*\0\x09\0\0\0",
        Problem::Truncated,
        "before the end of the directory of page 1 (bytes 9 to 11)",
    );

    // A chain that loops back to the first page.
    let mut body = three_strips(true, false);
    let next = 32 + 2 + 5 * 12;
    assert_eq!(body[next..next + 4], [0; 4]);
    body[next..next + 4].copy_from_slice(&32u32.to_le_bytes());
    assert_err(
        &body,
        Problem::Corrupt,
        "the TIFF loops: the directory after page 1 (byte 32)",
    );

    // More entries than libtiff reads.
    let mut body = b"II*\0\x08\0\0\0".to_vec();
    body.extend(5000u16.to_le_bytes());
    body.resize(8 + 2 + 5000 * 12 + 4, 0);
    assert_err(
        &body,
        Problem::Corrupt,
        "5,000 entries, more than the 4,096 libtiff reads",
    );
}

#[test]
fn a_bomb_is_too_large() {
    let page = strips(60_000, 60_000, 60_000, vec![8], vec![1]);
    let body = Builder::new(true, false).build(&[0], &[page]);
    let e = run(&body).unwrap_err();
    assert_eq!(e.problem, Problem::TooLarge);
    assert_eq!(
        e.to_string(),
        "too large: page 1 is 60000x60000, over max_pixels (100000000)"
    );
}

#[test]
fn exif_orientation_is_read_from_a_tiff_in_memory() {
    let tiff = |tags: &[Tag]| Builder::new(true, false).build(&[], &[tags.to_vec()]);
    assert_eq!(orientation(&tiff(&[(274, SHORT, vec![6])])), Some(6));
    assert_eq!(
        orientation(&tiff(&[(1, SHORT, vec![1]), (274, SHORT, vec![8])])),
        Some(8)
    );
    let be = Builder::new(false, false).build(&[], &[vec![(274, SHORT, vec![3])]]);
    assert_eq!(orientation(&be), Some(3));
    assert_eq!(orientation(&tiff(&[(274, LONG, vec![6])])), None);
    assert_eq!(orientation(&tiff(&[(274, SHORT, vec![0])])), None);
    assert_eq!(orientation(&tiff(&[(274, SHORT, vec![6, 6])])), None);
    assert_eq!(orientation(&tiff(&[(275, SHORT, vec![6])])), None);
    assert_eq!(orientation(b"II*\0\x08\0\0\0\x01"), None);
    assert_eq!(orientation(b"MM"), None);
    assert_eq!(orientation(b""), None);
}

#[test]
fn pages_sharing_one_huge_strip_table_are_refused_not_walked_forever() {
    // 100 directories pointing at the same 3,000-entry strip table: linear time needs a budget.
    let n = 3000u32;
    let mut body = b"II*\0\0\0\0\0".to_vec();
    let offsets_at = body.len() as u32;
    body.extend((0..n).flat_map(|_| 8u32.to_le_bytes()));
    let counts_at = body.len() as u32;
    body.extend((0..n).flat_map(|_| 0u32.to_le_bytes()));
    let mut link = 4;
    for _ in 0..100 {
        let at = body.len() as u32;
        body[link..link + 4].copy_from_slice(&at.to_le_bytes());
        body.extend(5u16.to_le_bytes());
        for (tag, typ, count, value) in [
            (IMAGE_WIDTH, LONG, 1, 1),
            (IMAGE_LENGTH, LONG, 1, n),
            (STRIP_OFFSETS, LONG, n, offsets_at),
            (ROWS_PER_STRIP, LONG, 1, 1),
            (STRIP_BYTE_COUNTS, LONG, n, counts_at),
        ] {
            body.extend(tag.to_le_bytes());
            body.extend(typ.to_le_bytes());
            body.extend(count.to_le_bytes());
            body.extend(value.to_le_bytes());
        }
        link = body.len();
        body.extend(0u32.to_le_bytes());
    }
    assert_err(
        &body,
        Problem::Corrupt,
        "more than 4 times its size: they overlap",
    );
}

#[test]
fn mutated_files_never_panic() {
    let multi = Builder::new(false, false).build(
        &[1; 24],
        &[
            strips(4, 6, 2, vec![8, 16, 24], vec![8, 8, 8]),
            strips(2, 2, 2, vec![8], vec![4]),
        ],
    );
    for base in [three_strips(true, false), three_strips(false, true), multi] {
        testing::survives_mutations("image/tiff", &base, 3000, LIMITS);
    }
}
