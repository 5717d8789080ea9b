//! Hand-built files: a minimal AVIF, each rule broken once, a bomb, a rotation, a grid, a
//! sequence; every prefix of a good file fails and every split gives the same answer.

use super::*;
use crate::validate::{Problem, testing, validate_bytes};

const LIMITS: Limits = Limits {
    max_pixels: 100_000_000,
    max_frames: 1000,
};

fn bx(typ: &[u8; 4], content: &[u8]) -> Vec<u8> {
    let mut b = ((content.len() + 8) as u32).to_be_bytes().to_vec();
    b.extend_from_slice(typ);
    b.extend_from_slice(content);
    b
}

fn full(typ: &[u8; 4], version: u8, flags: u32, content: &[u8]) -> Vec<u8> {
    let mut c = (u32::from(version) << 24 | flags).to_be_bytes().to_vec();
    c.extend_from_slice(content);
    bx(typ, &c)
}

fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

fn ftyp(major: &[u8; 4]) -> Vec<u8> {
    bx(
        b"ftyp",
        &cat(&[major.to_vec(), vec![0; 4], b"mif1miaf".to_vec()]),
    )
}

fn infe(id: u16, typ: &[u8; 4]) -> Vec<u8> {
    full(
        b"infe",
        2,
        0,
        &cat(&[id.to_be_bytes().to_vec(), vec![0, 0], typ.to_vec(), vec![0]]),
    )
}

fn ispe(w: u32, h: u32) -> Vec<u8> {
    full(
        b"ispe",
        0,
        0,
        &cat(&[w.to_be_bytes().to_vec(), h.to_be_bytes().to_vec()]),
    )
}

/// An `iloc` (version 1) locating each (item, method, offset, length).
fn iloc(items: &[(u16, u8, u32, u32)]) -> Vec<u8> {
    let mut c = vec![0x44, 0x00];
    c.extend_from_slice(&(items.len() as u16).to_be_bytes());
    for &(id, method, off, len) in items {
        c.extend_from_slice(&id.to_be_bytes());
        c.extend_from_slice(&u16::from(method).to_be_bytes());
        c.extend_from_slice(&[0, 0, 0, 1]);
        c.extend_from_slice(&off.to_be_bytes());
        c.extend_from_slice(&len.to_be_bytes());
    }
    full(b"iloc", 1, 0, &c)
}

/// An `ipma` associating each item with property indices.
fn ipma(items: &[(u16, &[u8])]) -> Vec<u8> {
    let mut c = (items.len() as u32).to_be_bytes().to_vec();
    for (id, props) in items {
        c.extend_from_slice(&id.to_be_bytes());
        c.push(props.len() as u8);
        c.extend(props.iter().map(|p| p | 0x80));
    }
    full(b"ipma", 0, 0, &c)
}

struct Avif {
    ftyp: Vec<u8>,
    hdlr: Vec<u8>,
    pitm: u16,
    items: Vec<Vec<u8>>,
    props: Vec<Vec<u8>>,
    assoc: Vec<(u16, Vec<u8>)>,
    iref: Vec<u8>,
    idat: Vec<u8>,
    /// (item, method, offset into mdat's content or idat, length)
    locs: Vec<(u16, u8, u32, u32)>,
    mdat: Vec<u8>,
}

impl Avif {
    fn new() -> Avif {
        Avif {
            ftyp: ftyp(b"avif"),
            hdlr: full(
                b"hdlr",
                0,
                0,
                &cat(&[vec![0; 4], b"pict".to_vec(), vec![0; 13]]),
            ),
            pitm: 1,
            items: vec![infe(1, b"av01")],
            props: vec![ispe(64, 48)],
            assoc: vec![(1, vec![1])],
            iref: Vec::new(),
            idat: Vec::new(),
            locs: vec![(1, 0, 0, 100)],
            mdat: vec![0x55; 100],
        }
    }

    fn meta(&self, mdat_at: u32) -> Vec<u8> {
        let mut iinf = (self.items.len() as u16).to_be_bytes().to_vec();
        iinf.extend(self.items.concat());
        let locs: Vec<_> = self
            .locs
            .iter()
            .map(|&(i, m, o, l)| (i, m, if m == 0 { o + mdat_at } else { o }, l))
            .collect();
        let assoc: Vec<(u16, &[u8])> = self.assoc.iter().map(|(i, p)| (*i, &p[..])).collect();
        let iprp = bx(
            b"iprp",
            &cat(&[bx(b"ipco", &self.props.concat()), ipma(&assoc)]),
        );
        let mut parts = vec![
            self.hdlr.clone(),
            full(b"pitm", 0, 0, &self.pitm.to_be_bytes()),
            iloc(&locs),
            full(b"iinf", 0, 0, &iinf),
            iprp,
            self.iref.clone(),
        ];
        if !self.idat.is_empty() {
            parts.push(bx(b"idat", &self.idat));
        }
        full(b"meta", 0, 0, &parts.concat())
    }

    fn build(&self) -> Vec<u8> {
        let head = self.ftyp.len() + self.meta(0).len() + 8;
        cat(&[
            self.ftyp.clone(),
            self.meta(head as u32),
            bx(b"mdat", &self.mdat),
        ])
    }
}

fn run(b: &[u8]) -> Result<Image, Invalid> {
    validate_bytes("image/avif", b, LIMITS)
}

fn err(b: &[u8]) -> Invalid {
    run(b).unwrap_err()
}

fn in_pieces(b: &[u8], piece: usize) -> Result<Image, Invalid> {
    testing::in_pieces("image/avif", b, piece, LIMITS)
}

#[test]
fn a_minimal_avif_passes_with_its_size() {
    let b = Avif::new().build();
    assert_eq!(
        run(&b).unwrap(),
        Image {
            width: 64,
            height: 48,
            frames: 1
        }
    );
}

#[test]
fn every_strict_prefix_fails_and_every_split_agrees() {
    let b = Avif::new().build();
    for cut in 0..b.len() {
        assert!(run(&b[..cut]).is_err(), "prefix of {cut} bytes passed");
    }
    let whole = run(&b);
    for piece in 1..=b.len() {
        assert_eq!(in_pieces(&b, piece), whole, "pieces of {piece}");
    }
    let e = err(&b[..b.len() - 10]);
    assert_eq!(e.problem, Problem::Truncated);
    assert!(e.message.contains("inside the mdat box at byte"), "{e}");
}

#[test]
fn irot_swaps_the_size_and_imir_does_not() {
    let mut a = Avif::new();
    a.props.push(bx(b"irot", &[1]));
    a.props.push(bx(b"imir", &[0]));
    a.assoc = vec![(1, vec![1, 2, 3])];
    let i = run(&a.build()).unwrap();
    assert_eq!((i.width, i.height), (48, 64));
}

#[test]
fn clap_crops_the_size() {
    let mut a = Avif::new();
    let mut c = Vec::new();
    for v in [60u32, 1, 40, 1, 0, 1, 0, 1] {
        c.extend_from_slice(&v.to_be_bytes());
    }
    a.props.push(bx(b"clap", &c));
    a.assoc = vec![(1, vec![1, 2])];
    let i = run(&a.build()).unwrap();
    assert_eq!((i.width, i.height), (60, 40));
}

#[test]
fn an_ispe_bomb_is_too_large() {
    let mut a = Avif::new();
    a.props = vec![ispe(100_000, 100_000)];
    let e = err(&a.build());
    assert_eq!(e.problem, Problem::TooLarge);
    assert!(e.message.contains("image 1 is 100000x100000"), "{e}");
}

#[test]
fn too_many_images_is_too_large() {
    let mut a = Avif::new();
    let limits = Limits {
        max_pixels: 1 << 30,
        max_frames: 2,
    };
    for id in 2..=3 {
        a.items.push(infe(id, b"av01"));
        a.assoc.push((id, vec![1]));
        a.locs.push((id, 0, 0, 10));
    }
    let e = validate_bytes("image/heif", &a.build(), limits).unwrap_err();
    assert_eq!(e.problem, Problem::TooLarge, "{e}");
}

#[test]
fn the_structure_rules_are_enforced() {
    let good = Avif::new();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "no ftyp",
            cat(&[good.meta(0), bx(b"mdat", &[0; 4])]),
            "the first box is meta",
        ),
        (
            "brand",
            {
                let mut a = Avif::new();
                a.ftyp = bx(b"ftyp", b"isom\0\0\0\0mp41");
                a.build()
            },
            "no AVIF or HEIF brand",
        ),
        (
            "handler",
            {
                let mut a = Avif::new();
                a.hdlr = full(
                    b"hdlr",
                    0,
                    0,
                    &cat(&[vec![0; 4], b"vide".to_vec(), vec![0; 13]]),
                );
                a.build()
            },
            "handler is vide",
        ),
        (
            "no primary",
            {
                let mut a = Avif::new();
                a.pitm = 7;
                a.build()
            },
            "primary item 7",
        ),
        (
            "no ispe",
            {
                let mut a = Avif::new();
                a.assoc.clear();
                a.build()
            },
            "no ispe",
        ),
        (
            "no data",
            {
                let mut a = Avif::new();
                a.locs.clear();
                a.build()
            },
            "no data",
        ),
        (
            "bad property",
            {
                let mut a = Avif::new();
                a.assoc = vec![(1, vec![1, 9])];
                a.build()
            },
            "property 9",
        ),
        (
            "primary not an image",
            {
                let mut a = Avif::new();
                a.items = vec![infe(1, b"Exif")];
                a.build()
            },
            "type Exif",
        ),
        (
            "idat missing",
            {
                let mut a = Avif::new();
                a.locs = vec![(1, 1, 0, 4)];
                a.build()
            },
            "the meta box has none",
        ),
        (
            "past idat",
            {
                let mut a = Avif::new();
                a.locs = vec![(1, 1, 2, 4)];
                a.idat = vec![1; 4];
                a.build()
            },
            "reaches byte 6 of the idat box",
        ),
        (
            "two metas",
            {
                let a = Avif::new().build();
                cat(&[a.clone(), Avif::new().meta(0)])
            },
            "two meta boxes",
        ),
        (
            "short box",
            cat(&[good.build(), vec![0, 0, 0, 4, b'f', b'r', b'e', b'e']]),
            "less than its header",
        ),
        (
            "child overruns",
            {
                let mut b = good.build();
                // The hdlr box inside meta claims more than meta holds.
                let at = b.windows(4).position(|w| w == b"hdlr").unwrap() - 4;
                b[at..at + 4].copy_from_slice(&5000u32.to_be_bytes());
                b
            },
            "runs past its end",
        ),
    ];
    for (what, b, want) in cases {
        let e = err(&b);
        assert!(e.message.contains(want), "{what}: {e}");
    }
}

#[test]
fn data_past_the_end_is_truncated() {
    let mut a = Avif::new();
    a.locs = vec![(1, 0, 50, 100)];
    let e = err(&a.build());
    assert_eq!(e.problem, Problem::Truncated, "{e}");
    assert!(e.message.contains("item 1's data reaches byte"), "{e}");
}

#[test]
fn trailing_bytes_that_are_not_a_box_are_truncated() {
    let b = cat(&[Avif::new().build(), vec![0, 0, 1]]);
    let e = err(&b);
    assert_eq!(e.problem, Problem::Truncated);
    assert!(e.message.contains("in a box header"), "{e}");
}

#[test]
fn a_last_box_of_size_0_and_a_largesize_box_pass() {
    let a = Avif::new();
    let mut b = a.build();
    let at = b.len() - 108;
    b[at..at + 4].copy_from_slice(&0u32.to_be_bytes());
    assert!(run(&b).is_ok());
    // The same mdat with a 64-bit size: 8 bytes more, so the data moves.
    let mut a = Avif::new();
    a.locs = vec![(1, 0, 8, 100)];
    let mut b = cat(&[
        a.ftyp.clone(),
        a.meta((a.ftyp.len() + a.meta(0).len() + 8) as u32),
    ]);
    b.extend_from_slice(&1u32.to_be_bytes());
    b.extend_from_slice(b"mdat");
    b.extend_from_slice(&116u64.to_be_bytes());
    b.extend_from_slice(&[7; 100]);
    assert!(run(&b).is_ok(), "{:?}", run(&b));
}

#[test]
fn an_oversized_meta_is_refused_before_it_arrives() {
    let mut b = ftyp(b"avif");
    b.extend_from_slice(&(8u32 << 20).to_be_bytes());
    b.extend_from_slice(b"meta");
    let mut v = crate::validate::Validator::for_mime("image/avif", LIMITS);
    let e = v.feed(&b).unwrap_err();
    assert_eq!(e.problem, Problem::TooLarge);
    assert!(e.message.contains("more than jobd reads"), "{e}");
}

fn grid(tiles: u16, rows: u8, cols: u8) -> Avif {
    let mut a = Avif::new();
    a.items = vec![infe(1, b"grid")];
    a.props = vec![ispe(128, 48), ispe(64, 48)];
    a.assoc = vec![(1, vec![1])];
    a.idat = vec![0, 0, rows - 1, cols - 1, 0, 128, 0, 48];
    a.locs = vec![(1, 1, 0, 8)];
    let mut refs = vec![0, 1];
    refs.extend_from_slice(&tiles.to_be_bytes());
    for t in 0..tiles {
        let id = 2 + t;
        a.items.push(infe(id, b"av01"));
        a.assoc.push((id, vec![2]));
        a.locs.push((id, 0, u32::from(t) * 50, 50));
        refs.extend_from_slice(&id.to_be_bytes());
    }
    a.iref = full(b"iref", 0, 0, &bx(b"dimg", &refs));
    a
}

#[test]
fn a_grid_needs_its_tiles() {
    assert_eq!(run(&grid(2, 1, 2).build()).unwrap().width, 128);
    let e = err(&grid(2, 2, 2).build());
    assert!(e.message.contains("2x2 tiles but has 2"), "{e}");
    let mut a = grid(2, 1, 2);
    a.items.pop();
    let e = err(&a.build());
    assert!(
        e.message
            .contains("item 3 is referenced but not in the iinf"),
        "{e}"
    );
    let mut a = grid(2, 1, 2);
    a.iref.clear();
    let e = err(&a.build());
    assert!(e.message.contains("no input images"), "{e}");
}

/// An image sequence: ftyp avis, a moov with one picture track of `samples` samples of 10
/// bytes in one chunk at `chunk_at`, and an mdat.
fn sequence(samples: u32, chunk_at: u32) -> Vec<u8> {
    let mut tkhd = vec![0u8; 72];
    tkhd.extend_from_slice(&(64u32 << 16).to_be_bytes());
    tkhd.extend_from_slice(&(48u32 << 16).to_be_bytes());
    let hdlr = full(
        b"hdlr",
        0,
        0,
        &cat(&[vec![0; 4], b"pict".to_vec(), vec![0; 13]]),
    );
    let mut entry = vec![0u8; 24];
    entry.extend_from_slice(&64u16.to_be_bytes());
    entry.extend_from_slice(&48u16.to_be_bytes());
    entry.extend_from_slice(&[0; 50]);
    let stsd = full(
        b"stsd",
        0,
        0,
        &cat(&[1u32.to_be_bytes().to_vec(), bx(b"av01", &entry)]),
    );
    let stsz = full(
        b"stsz",
        0,
        0,
        &cat(&[10u32.to_be_bytes().to_vec(), samples.to_be_bytes().to_vec()]),
    );
    let stsc = full(
        b"stsc",
        0,
        0,
        &[0, 0, 0, 1, 0, 0, 0, 1]
            .iter()
            .copied()
            .chain(samples.to_be_bytes())
            .chain([0, 0, 0, 1])
            .collect::<Vec<_>>(),
    );
    let stco = full(
        b"stco",
        0,
        0,
        &cat(&[1u32.to_be_bytes().to_vec(), chunk_at.to_be_bytes().to_vec()]),
    );
    let stbl = bx(b"stbl", &cat(&[stsd, stsz, stsc, stco]));
    let mdia = bx(b"mdia", &cat(&[hdlr, bx(b"minf", &stbl)]));
    let trak = bx(b"trak", &cat(&[full(b"tkhd", 0, 0, &tkhd), mdia]));
    let moov = bx(b"moov", &trak);
    cat(&[
        ftyp(b"avis"),
        moov,
        bx(b"mdat", &vec![1; samples as usize * 10]),
    ])
}

#[test]
fn a_sequence_is_bounded_by_its_track() {
    let probe = sequence(5, 0);
    let mdat_at = (probe.len() - 50) as u32;
    let b = sequence(5, mdat_at);
    assert_eq!(
        run(&b).unwrap(),
        Image {
            width: 64,
            height: 48,
            frames: 5
        }
    );
    for cut in 0..b.len() {
        assert!(run(&b[..cut]).is_err(), "prefix of {cut} bytes passed");
    }
    let e = err(&sequence(5, mdat_at + 1));
    assert_eq!(e.problem, Problem::Truncated);
    assert!(e.message.contains("track 1's (pict) samples reach"), "{e}");
    let many = sequence(1001, 0);
    let at = (many.len() - 10010) as u32;
    let e = err(&sequence(1001, at));
    assert_eq!(e.problem, Problem::TooLarge, "{e}");
}

#[test]
fn mutations_never_panic() {
    let files = [Avif::new().build(), grid(2, 1, 2).build(), sequence(3, 100)];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for f in &files {
        for _ in 0..3000 {
            let mut b = f.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % b.len();
                b[at] = match next() % 3 {
                    0 => next() as u8,
                    1 => 0,
                    _ => 0xff,
                };
            }
            let _ = run(&b);
            let _ = in_pieces(&b, 7);
        }
    }
}
