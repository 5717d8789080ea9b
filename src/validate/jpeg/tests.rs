use super::*;
use crate::validate::{Problem, testing};
use jobd_testkit::images;

const LIMITS: Limits = Limits {
    max_pixels: 100_000_000,
    max_frames: 100,
};

fn run_with(body: &[u8], piece: usize, limits: Limits) -> Result<Image, Invalid> {
    testing::in_pieces("image/jpeg", body, piece, limits)
}

fn run(body: &[u8]) -> Result<Image, Invalid> {
    run_with(body, usize::MAX, LIMITS)
}

fn err(body: &[u8]) -> Invalid {
    run(body).unwrap_err()
}

fn seg(out: &mut Vec<u8>, marker: u8, body: &[u8]) {
    out.extend([0xFF, marker]);
    out.extend(((body.len() + 2) as u16).to_be_bytes());
    out.extend(body);
}

fn sof_body(w: u16, h: u16) -> Vec<u8> {
    let mut b = vec![8];
    b.extend(h.to_be_bytes());
    b.extend(w.to_be_bytes());
    b.extend([3, 1, 0x22, 0, 2, 0x11, 0, 3, 0x11, 0]);
    b
}

/// A valid DHT body: DC table 0 and AC table 0 with a few codes each.
fn dht_body() -> Vec<u8> {
    let mut b = vec![0x00, 0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
    b.extend(0..12u8);
    b.extend([
        0x10, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x01,
    ]);
    b
}

const SOS3: [u8; 10] = [3, 1, 0x00, 2, 0x00, 3, 0x00, 0, 63, 0];

/// The segments before the first scan; `app` goes right after SOI.
fn head(w: u16, h: u16, app: &[(u8, &[u8])]) -> Vec<u8> {
    let mut out = vec![0xFF, 0xD8];
    seg(
        &mut out,
        0xE0,
        b"JFIF\0\x01\x01\x00\x00\x01\x00\x01\x00\x00",
    );
    for (m, body) in app {
        seg(&mut out, *m, body);
    }
    let mut dqt = vec![0u8];
    dqt.extend([1u8; 64]);
    seg(&mut out, 0xDB, &dqt);
    seg(&mut out, 0xC0, &sof_body(w, h));
    seg(&mut out, 0xC4, &dht_body());
    out
}

/// A whole baseline JPEG whose scan data has stuffed bytes and restart markers.
fn good(w: u16, h: u16) -> Vec<u8> {
    let mut out = head(w, h, &[]);
    seg(&mut out, 0xDA, &SOS3);
    out.extend([0x12, 0x34, 0xFF, 0x00, 0x56, 0xFF, 0xD0, 0x78, 0xFF, 0x00]);
    out.extend([0xFF, 0xD9]);
    out
}

fn with_exif(tiff: &[u8]) -> Vec<u8> {
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend(tiff);
    let mut out = head(640, 480, &[(0xE1, &app1)]);
    seg(&mut out, 0xDA, &SOS3);
    out.extend([1, 2, 3, 0xFF, 0xD9]);
    out
}

/// A little-endian TIFF header and IFD0 holding one Orientation entry.
fn exif_tiff(typ: u16, count: u32, value: u16) -> Vec<u8> {
    let mut t = b"II*\0\x08\0\0\0".to_vec();
    t.extend(1u16.to_le_bytes());
    t.extend(0x0112u16.to_le_bytes());
    t.extend(typ.to_le_bytes());
    t.extend(count.to_le_bytes());
    t.extend(u32::from(value).to_le_bytes());
    t.extend(0u32.to_le_bytes());
    t
}

#[track_caller]
fn assert_corrupt(body: &[u8], words: &str) {
    let e = err(body);
    assert_eq!(e.problem, Problem::Corrupt, "{e}");
    assert!(e.to_string().contains(words), "{e}");
}

#[test]
fn a_whole_jpeg_passes_with_its_size() {
    assert_eq!(
        run(&good(640, 480)).unwrap(),
        Image {
            width: 640,
            height: 480,
            frames: 1
        }
    );
}

#[test]
fn the_testkit_generator_passes() {
    for (w, h, len, seed) in [
        (1, 1, 200, 1),
        (640, 480, 5_000, 2),
        (4000, 3000, 300_000, 3),
    ] {
        let body = images::jpeg(w, h, len, seed);
        assert_eq!(
            run(&body).unwrap(),
            Image {
                width: w,
                height: h,
                frames: 1
            }
        );
    }
}

#[test]
fn any_split_gives_the_same_answer() {
    for body in [
        good(64, 48),
        images::jpeg(32, 32, 400, 7),
        with_exif(&exif_tiff(3, 1, 6)),
    ] {
        let whole = run(&body);
        assert!(whole.is_ok());
        for piece in 1..=body.len() {
            assert_eq!(run_with(&body, piece, LIMITS), whole, "pieces of {piece}");
        }
    }
}

#[test]
fn every_strict_prefix_fails_as_truncated() {
    for body in [
        good(64, 48),
        images::jpeg(32, 32, 300, 9),
        with_exif(&exif_tiff(3, 1, 6)),
    ] {
        for cut in 0..body.len() {
            let e = run(&body[..cut]).unwrap_err();
            assert_eq!(e.problem, Problem::Truncated, "cut at {cut}: {e}");
        }
    }
}

#[test]
fn truncation_says_where() {
    let body = good(64, 48);
    let e = err(&body[..body.len() - 4]);
    assert!(
        e.to_string()
            .starts_with("truncated: the JPEG ends in the data of scan 1 at byte"),
        "{e}"
    );
    let e = err(&body[..30]);
    assert!(
        e.to_string()
            .contains("inside its DQT segment at byte 30 of"),
        "{e}"
    );
    assert_eq!(
        err(&body[..1]).to_string(),
        "truncated: the JPEG ends inside its SOI marker at byte 1 of 2"
    );
}

#[test]
fn bytes_after_eoi_are_ignored() {
    let mut body = good(64, 48);
    body.extend(b"\xFF\xD8 a second image, garbage, anything");
    assert_eq!(run(&body).unwrap().width, 64);
}

#[test]
fn fill_bytes_and_extraneous_bytes_between_markers_pass() {
    let mut body = vec![0xFF, 0xD8, 0xFF, 0xFF, 0xFF];
    let rest = good(64, 48);
    body.extend(&rest[3..]); // fill bytes before the APP0 marker code
    assert!(run(&body).is_ok());

    let mut body = head(64, 48, &[]);
    body.extend(b"\x00\x01junk\xFF\x00"); // libjpeg: "extraneous bytes before marker 0xda"
    seg(&mut body, 0xDA, &SOS3);
    body.extend([5, 6, 0xFF, 0xFF, 0xFF, 0xD9]); // fill before EOI inside the scan
    assert!(run(&body).is_ok());
}

#[test]
fn a_short_app_segment_is_skipped_by_its_length() {
    let mut body = vec![0xFF, 0xD8];
    seg(&mut body, 0xE0, b"JFIF\0");
    seg(&mut body, 0xEE, b"");
    body.extend(&good(64, 48)[2..]);
    assert!(run(&body).is_ok());
}

#[test]
fn a_progressive_jpeg_with_tables_between_scans_passes() {
    let mut body = vec![0xFF, 0xD8];
    let mut dqt = vec![0u8];
    dqt.extend([1u8; 64]);
    seg(&mut body, 0xDB, &dqt);
    let mut sof = sof_body(100, 50);
    sof[0] = 8;
    seg(&mut body, 0xC2, &sof);
    seg(&mut body, 0xC4, &dht_body());
    seg(&mut body, 0xDA, &[3, 1, 0, 2, 0, 3, 0, 0, 0, 0x01]); // DC first
    body.extend([1, 2, 3]);
    seg(&mut body, 0xC4, &dht_body());
    seg(&mut body, 0xDA, &[1, 1, 0, 1, 63, 0x01]); // AC first, Y
    body.extend([4, 0xFF, 0x00]);
    seg(&mut body, 0xDA, &[1, 1, 0, 1, 63, 0x10]); // AC refinement
    body.extend([7]);
    body.extend([0xFF, 0xD9]);
    assert_eq!(run(&body).unwrap().width, 100);

    // Ss > 0 with several components is "invalid progressive parameters" in libjpeg.
    let cut = body.len() - 2;
    let mut bad = body[..cut].to_vec();
    seg(&mut bad, 0xDA, &[2, 1, 0, 2, 0, 1, 63, 0]);
    bad.extend([1, 0xFF, 0xD9]);
    assert_corrupt(&bad, "invalid progressive parameters");
}

#[test]
fn exif_orientation_5_to_8_swaps_the_size() {
    for (o, size) in [
        (1, (640, 480)),
        (3, (640, 480)),
        (5, (480, 640)),
        (6, (480, 640)),
        (8, (480, 640)),
    ] {
        let img = run(&with_exif(&exif_tiff(3, 1, o))).unwrap();
        assert_eq!((img.width, img.height), size, "orientation {o}");
    }
    // Big-endian EXIF.
    let mut t = b"MM\0*\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x06\0\0\0\0\0\0".to_vec();
    assert_eq!(run(&with_exif(&t)).unwrap().width, 480);
    // Only the first EXIF block counts.
    t = exif_tiff(3, 1, 1);
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend(&exif_tiff(3, 1, 6));
    let mut first = b"Exif\0\0".to_vec();
    first.extend(&t);
    let mut body = head(
        640,
        480,
        &[
            (0xE1, b"http://ns.adobe.com/xap/1.0/\0<x/>"),
            (0xE1, &first),
            (0xE1, &app1),
        ],
    );
    seg(&mut body, 0xDA, &SOS3);
    body.extend([1, 0xFF, 0xD9]);
    assert_eq!(run(&body).unwrap().width, 640);
}

#[test]
fn a_malformed_exif_is_ignored() {
    let bad: [Vec<u8>; 6] = [
        exif_tiff(4, 1, 6),          // LONG, not SHORT
        exif_tiff(3, 2, 6),          // two values
        exif_tiff(3, 1, 9),          // not 1 to 8
        b"II*\0\xFF\0\0\0".to_vec(), // IFD0 past the end
        b"XX".to_vec(),
        exif_tiff(3, 1, 6)[..20].to_vec(), // cut inside IFD0
    ];
    for tiff in bad {
        assert_eq!(run(&with_exif(&tiff)).unwrap().width, 640);
    }
}

#[test]
fn structural_errors_are_refused() {
    assert_corrupt(b"\xFF\xD9\xFF\xD8", "does not start with an SOI marker");
    let mut b = good(64, 48);
    b[5] = 1; // APP0 length 1
    assert_corrupt(&b, "has length 1, less than the 2 bytes");
    assert_corrupt(&good(0, 48), "gives a size of 0x48");
    assert_corrupt(&good(64, 0), "gives a size of 64x0");
    assert_corrupt(&good(65535, 48), "over libjpeg's maximum");

    let mut b = vec![0xFF, 0xD8];
    seg(&mut b, 0xC0, &[8, 0, 1, 0, 1, 3, 1, 0x11, 0]); // 3 components, 1 described
    assert_corrupt(&b, "has length 11 for 3 components");
    let mut b = vec![0xFF, 0xD8];
    seg(&mut b, 0xC0, &[8, 0, 1, 0, 1, 0]);
    assert_corrupt(&b, "0 components");
    let mut b = vec![0xFF, 0xD8];
    seg(&mut b, 0xC0, &[8, 0, 1]);
    assert_corrupt(&b, "too short for a frame header");
    let mut b = vec![0xFF, 0xD8];
    seg(&mut b, 0xC0, &[7, 0, 1, 0, 1, 1, 1, 0x11, 0]);
    assert_corrupt(&b, "7-bit samples");
    let mut b = vec![0xFF, 0xD8];
    seg(&mut b, 0xC0, &[8, 0, 1, 0, 1, 1, 1, 0x51, 0]);
    assert_corrupt(&b, "sampling factors 5x1");

    let mut b = head(64, 48, &[]);
    seg(&mut b, 0xC0, &sof_body(64, 48));
    assert_corrupt(&b, "a second frame");

    let mut b = vec![0xFF, 0xD8];
    seg(&mut b, 0xDA, &SOS3);
    assert_corrupt(&b, "comes before any SOF marker");

    let mut b = head(64, 48, &[]);
    seg(&mut b, 0xDA, &[5, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 0, 63, 0]);
    assert_corrupt(&b, "for 5 components");
    let mut b = head(64, 48, &[]);
    seg(&mut b, 0xDA, &[1, 9, 0, 0, 63, 0]);
    assert_corrupt(&b, "names component 9");
    let mut b = head(64, 48, &[]);
    seg(&mut b, 0xDA, &[2, 1, 0, 1, 0, 0, 63, 0]);
    assert_corrupt(
        &b,
        "names component 1, which the frame does not have (or not in this order, or twice)",
    );
    let mut b = head(64, 48, &[]);
    seg(&mut b, 0xDA, &[2, 2, 0, 1, 0, 0, 63, 0]);
    assert_corrupt(&b, "names component 1");
    let mut b = head(64, 48, &[]);
    seg(&mut b, 0xDA, &[2, 2, 0, 2, 0, 0, 63, 0]);
    assert_corrupt(&b, "names component 2");

    let mut b = head(64, 48, &[]);
    b.extend([0xFF, 0xD9]);
    assert_corrupt(&b, "no image data");
    assert_corrupt(b"\xFF\xD8\xFF\xD9", "no frame");
    let mut b = head(64, 48, &[]);
    seg(&mut b, 0xDA, &SOS3);
    b.extend([0xFF, 0xD9]);
    assert_corrupt(&b, "no image data");

    let mut b = good(64, 48);
    b.splice(2..2, [0xFF, 0xD8]);
    assert_corrupt(&b, "a second SOI marker at byte 2");
    let mut b = vec![0xFF, 0xD8];
    seg(&mut b, 0xDD, &[0, 1, 2]);
    assert_corrupt(&b, "has length 5, not 4");
}

#[test]
fn markers_libjpeg_turbo_refuses_are_refused() {
    for (m, words) in [
        (0xF7, "SOF55 (JPEG-LS) marker at byte 2: a JPEG-LS frame"),
        (0xC5, "SOF5 marker at byte 2: a hierarchical"),
        (0xCF, "SOF15 marker at byte 2: a hierarchical"),
        (0xC8, "JPG marker at byte 2: libjpeg-turbo refuses it"),
        (
            0xCB,
            "SOF11 marker at byte 2: a lossless arithmetic-coded frame",
        ),
        (0xDE, "DHP marker"),
        (0x02, "0x02 marker"),
        (0xF0, "0xF0 marker"),
    ] {
        let mut b = vec![0xFF, 0xD8];
        seg(&mut b, m, &[8, 0, 1, 0, 1, 1, 1, 0x11, 0]);
        assert_corrupt(&b, words);
    }
}

#[test]
fn tables_libjpeg_refuses_are_refused() {
    // A scan whose component uses quantisation table 1, which no DQT defined.
    let mut b = head(64, 48, &[]);
    let sof = {
        let mut s = sof_body(64, 48);
        s[8] = 1;
        s
    };
    let at = b.len() - dht_body().len() - 4 - sof.len() - 4;
    b.truncate(at);
    seg(&mut b, 0xC0, &sof);
    seg(&mut b, 0xDA, &SOS3);
    assert_corrupt(&b, "quantisation table 1 no DQT defined");

    let mut b = head(64, 48, &[]);
    seg(&mut b, 0xDB, &[0x05, 1, 2]);
    assert_corrupt(&b, "defines table 5");

    // DHT: bad table class, too many codes, left-over bytes, code lengths that overflow.
    let mut b = head(64, 48, &[]);
    let mut d = dht_body();
    d[0] = 0x24;
    seg(&mut b, 0xC4, &d);
    assert_corrupt(&b, "defines table 0x24");
    let mut b = head(64, 48, &[]);
    seg(
        &mut b,
        0xC4,
        &[0, 0, 200, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
    );
    assert_corrupt(&b, "table of 200 codes");
    let mut b = head(64, 48, &[]);
    let mut d = dht_body();
    d.push(0);
    seg(&mut b, 0xC4, &d);
    assert_corrupt(&b, "1 bytes left over");
    // Three codes of one bit: a table libjpeg calls bogus, refused only when a scan uses it.
    let mut bogus = vec![
        0x01, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3,
    ];
    let mut b = head(64, 48, &[]);
    seg(&mut b, 0xC4, &bogus);
    seg(&mut b, 0xDA, &SOS3);
    b.extend([1, 0xFF, 0xD9]);
    assert!(run(&b).is_ok());
    let mut b = head(64, 48, &[]);
    bogus[0] = 0x00;
    seg(&mut b, 0xC4, &bogus);
    seg(&mut b, 0xDA, &SOS3);
    assert_corrupt(&b, "DC Huffman table 0");
    // A DC table whose symbols are not bit counts.
    let mut b = head(64, 48, &[]);
    let mut d = dht_body();
    d[17] = 16;
    seg(&mut b, 0xC4, &d);
    seg(&mut b, 0xDA, &SOS3);
    assert_corrupt(&b, "DC Huffman table 0");
    // Progressive frames get no standard tables.
    let mut b = head(64, 48, &[]);
    let sof = b.len() - dht_body().len() - 4 - sof_body(64, 48).len() - 3;
    b[sof] = 0xC2;
    b.truncate(b.len() - dht_body().len() - 4);
    seg(&mut b, 0xDA, &[3, 1, 0, 2, 0, 3, 0, 0, 0, 0]);
    assert_corrupt(&b, "DC Huffman table 0");
    // Tables 2 and 3 have no standard default.
    let mut b = head(64, 48, &[]);
    seg(&mut b, 0xDA, &[1, 1, 0x22, 0, 63, 0]);
    assert_corrupt(&b, "DC Huffman table 2");
    // More than 10 blocks per MCU.
    let mut b = head(64, 48, &[]);
    let mut s = sof_body(64, 48);
    s[10] = 0x44;
    let at = b.len() - dht_body().len() - 4 - s.len() - 4;
    b.truncate(at);
    seg(&mut b, 0xC0, &s);
    seg(&mut b, 0xDA, &SOS3);
    assert_corrupt(&b, "blocks per MCU");
}

#[test]
fn what_libjpeg_turbo_refuses_when_decoding_is_refused() {
    // A quantisation table cut short ("Bogus marker length"); 16-bit tables are fine.
    let mut b = head(64, 48, &[]);
    seg(&mut b, 0xDB, &[0x11, 1, 2, 3]);
    assert_corrupt(&b, "ends inside table 1 (3 bytes of 128)");
    let mut b = head(64, 48, &[]);
    seg(&mut b, 0xDB, &[0x01, 1, 2, 3]);
    assert_corrupt(&b, "ends inside table 1 (3 bytes of 64)");
    let mut b = head(64, 48, &[]);
    let mut dqt = vec![0x11];
    dqt.extend([0u8, 1].repeat(64));
    dqt.push(0x02);
    dqt.extend([1u8; 64]);
    seg(&mut b, 0xDB, &dqt);
    seg(&mut b, 0xDA, &SOS3);
    b.extend([1, 0xFF, 0xD9]);
    assert!(run(&b).is_ok());

    // Arithmetic conditioning: DC L > U, an index past 31, an odd length.
    for (dac, words) in [
        (&[0x00, 0x12][..], "sets table 0 to 18"),
        (&[0x20, 0x05][..], "sets table 32"),
        (&[0x10][..], "odd length"),
    ] {
        let mut b = head(64, 48, &[]);
        seg(&mut b, 0xCC, dac);
        assert_corrupt(&b, words);
    }
    let mut b = head(64, 48, &[]);
    seg(&mut b, 0xCC, &[0x00, 0x10, 0x10, 0x05]);
    seg(&mut b, 0xDA, &SOS3);
    b.extend([1, 0xFF, 0xD9]);
    assert!(run(&b).is_ok());

    // Sampling factors 3 and 2 against a maximum of 4: "Fractional sampling not implemented".
    let mut s = sof_body(64, 48);
    s[7] = 0x42;
    s[10] = 0x32;
    let mut b = vec![0xFF, 0xD8];
    seg(&mut b, 0xC0, &s);
    assert_corrupt(&b, "sampling factors 3x2 that do not divide 4x2");

    // A second scan after one that covered every component: "Didn't expect more than one scan".
    let mut b = good(64, 48);
    b.truncate(b.len() - 2);
    seg(&mut b, 0xDA, &SOS3);
    b.extend([1, 0xFF, 0xD9]);
    assert_corrupt(&b, "starts a second scan");
    // Non-interleaved: one scan per component.
    let mut b = head(64, 48, &[]);
    for id in 1..=3 {
        seg(&mut b, 0xDA, &[1, id, 0, 0, 63, 0]);
        b.extend([id, 0xFF, 0x00]);
    }
    b.extend([0xFF, 0xD9]);
    assert!(run(&b).is_ok());
}

#[test]
fn a_lossless_frame_passes_with_its_own_rules() {
    let lossless = |precision: u8, ss: u8, al: u8| {
        let mut b = vec![0xFF, 0xD8];
        seg(&mut b, 0xC3, &[precision, 0, 16, 0, 16, 1, 1, 0x11, 9]);
        seg(&mut b, 0xC4, &dht_body());
        seg(&mut b, 0xDA, &[1, 1, 0x00, ss, 0, al]);
        b.extend([1, 2, 0xFF, 0xD9]);
        b
    };
    // No DQT needed (quantisation table 9 is never used), 16-bit samples allowed.
    assert!(run(&lossless(16, 1, 0)).is_ok());
    assert!(run(&lossless(2, 7, 1)).is_ok());
    assert_corrupt(&lossless(17, 1, 0), "17-bit samples");
    assert_corrupt(&lossless(8, 0, 0), "invalid lossless parameters Ss=0");
    assert_corrupt(
        &lossless(8, 1, 8),
        "invalid lossless parameters Ss=1 Se=0 Ah=0 Al=8",
    );
    // Lossless frames get no standard Huffman tables.
    let mut b = lossless(8, 1, 0);
    b.drain(15..15 + 4 + dht_body().len());
    assert_corrupt(&b, "DC Huffman table 0");
}

#[test]
fn a_bomb_is_too_large() {
    let limits = Limits {
        max_pixels: 1_000_000,
        max_frames: 1,
    };
    let e = run_with(&good(20000, 20000), usize::MAX, limits).unwrap_err();
    assert_eq!(e.problem, Problem::TooLarge);
    assert_eq!(
        e.to_string(),
        "too large: frame 1 is 20000x20000, over max_pixels (1000000)"
    );
}

#[test]
fn scan_data_is_found_at_speed() {
    // Not a benchmark: a guard that the scan is not per-byte slow in debug builds either.
    let body = images::jpeg(4000, 3000, 8 << 20, 11);
    let t = std::time::Instant::now();
    assert!(run_with(&body, 64 << 10, LIMITS).is_ok());
    assert!(t.elapsed().as_secs() < 5);
}

#[test]
fn mutated_files_never_panic() {
    let bases = [
        good(64, 48),
        with_exif(&exif_tiff(3, 1, 6)),
        images::jpeg(16, 16, 300, 5),
    ];
    for base in bases {
        testing::survives_mutations("image/jpeg", &base, 3000, LIMITS);
    }
}

#[test]
fn junk_behind_the_jpeg_magic_ends_before_its_frame_header() {
    // An error page or random bytes that happen to start FF D8 FF: stray bytes, then nothing.
    let body = b"\xff\xd8\xff\x00\x00junk junk junk junk junk junk junk junk";
    testing::assert_refused(
        run(body),
        Problem::Truncated,
        "the JPEG ends before its frame header (SOF) at byte 44",
    );
}
