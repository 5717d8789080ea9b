//! Tests of the image generators: headers read back by `imagesize` and `infer`, checksums
//! verified independently, seed sets sized like real photos.

use super::*;

fn size_of(bytes: &[u8]) -> (usize, usize) {
    let size = imagesize::blob_size(bytes).expect("imagesize reads the header");
    (size.width, size.height)
}

fn mime_of(bytes: &[u8]) -> &'static str {
    infer::get(bytes).map_or("unknown", |kind| kind.mime_type())
}

#[test]
fn checksums_match_published_check_values() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
}

#[test]
fn png_is_a_complete_file_with_correct_checksums() {
    let bytes = png(33, 7, 1);
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
    assert_eq!(size_of(&bytes), (33, 7));
    assert_eq!(mime_of(&bytes), "image/png");
    assert_ne!(bytes, png(33, 7, 2));

    // Walk the chunks, checking every CRC, and inflate the stored blocks of IDAT.
    let (mut pos, mut kinds, mut idat) = (8, Vec::new(), Vec::new());
    while pos < bytes.len() {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let body = &bytes[pos + 4..pos + 8 + len];
        let crc = u32::from_be_bytes(bytes[pos + 8 + len..pos + 12 + len].try_into().unwrap());
        assert_eq!(crc32(body), crc, "CRC of {:?}", &body[..4]);
        kinds.push(String::from_utf8_lossy(&body[..4]).into_owned());
        if &body[..4] == b"IDAT" {
            idat.extend_from_slice(&body[4..]);
        }
        pos += 12 + len;
    }
    assert_eq!(kinds, ["IHDR", "IDAT", "IEND"]);
    let (mut raw, mut at) = (Vec::new(), 2);
    loop {
        let len = u16::from_le_bytes([idat[at + 1], idat[at + 2]]) as usize;
        assert_eq!(
            u16::from_le_bytes([idat[at + 3], idat[at + 4]]),
            !(len as u16)
        );
        raw.extend_from_slice(&idat[at + 5..at + 5 + len]);
        let last = idat[at] & 1 == 1;
        at += 5 + len;
        if last {
            break;
        }
    }
    assert_eq!(raw.len(), (33 * 3 + 1) * 7);
    assert_eq!(idat[at..], adler32(&raw).to_be_bytes());
}

#[test]
fn large_png_spans_several_stored_blocks() {
    let bytes = png(400, 300, 9);
    assert_eq!(size_of(&bytes), (400, 300));
    assert!(bytes.len() > 400 * 300 * 3 && bytes.len() < 400 * 300 * 3 + 2000);
}

#[test]
fn jpeg_has_header_dimensions_and_exact_length() {
    let bytes = jpeg(4032, 3024, 50_000, 1);
    assert!(bytes.starts_with(&[0xFF, 0xD8, 0xFF, 0xE0]));
    assert!(bytes.ends_with(&[0xFF, 0xD9]));
    assert_eq!(bytes.len(), 50_000);
    assert_eq!(size_of(&bytes), (4032, 3024));
    assert_eq!(mime_of(&bytes), "image/jpeg");
    let sos = bytes.windows(2).position(|m| m == [0xFF, 0xDA]).unwrap();
    assert!(
        !bytes[sos + 14..bytes.len() - 2].contains(&0xFF),
        "filler must not hold markers"
    );
    assert_ne!(bytes, jpeg(4032, 3024, 50_000, 2));
    // A target shorter than the header still gives a parseable file.
    assert_eq!(size_of(&jpeg(10, 20, 0, 1)), (10, 20));
}

#[test]
fn webp_has_vp8_dimensions_and_exact_riff_sizes() {
    for target in [30_001, 30_000, 0] {
        let bytes = webp(1600, 900, target, 1);
        assert_eq!(&bytes[..4], b"RIFF");
        assert_eq!(&bytes[8..16], b"WEBPVP8 ");
        assert_eq!(&bytes[23..26], [0x9D, 0x01, 0x2A]);
        let riff = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
        let chunk = u32::from_le_bytes(bytes[16..20].try_into().unwrap()) as usize;
        assert_eq!(riff, bytes.len() - 8);
        assert_eq!(chunk + chunk % 2, bytes.len() - 20);
        assert_eq!(size_of(&bytes), (1600, 900));
        assert_eq!(mime_of(&bytes), "image/webp");
    }
    assert_ne!(webp(16, 16, 1000, 1), webp(16, 16, 1000, 2));
}

#[test]
fn gif_is_small_and_well_formed() {
    let bytes = gif(17, 5, 1);
    assert!(bytes.starts_with(b"GIF89a"));
    assert_eq!(bytes.last(), Some(&0x3B));
    assert_eq!(size_of(&bytes), (17, 5));
    assert_eq!(mime_of(&bytes), "image/gif");
    assert!(bytes.len() < 200);
    assert_ne!(bytes, gif(17, 5, 2));
}

#[test]
fn seed_set_is_deterministic_varied_and_photo_sized() {
    let set = seed_set(40);
    assert_eq!(set[..3], seed_set(3));
    let total: usize = set.iter().map(|i| i.bytes.len()).sum();
    assert!(
        (60 << 20..=100 << 20).contains(&total),
        "total {total} bytes"
    );
    let typical = set
        .iter()
        .filter(|i| (200 << 10..=2 << 20).contains(&i.bytes.len()));
    assert!(typical.count() >= 20, "most images are 200 KB to 2 MB");
    for image in &set {
        let len = image.bytes.len();
        assert!(
            (95 << 10..=8 << 20).contains(&len),
            "{} is {len} bytes",
            image.name
        );
        assert_eq!(mime_of(&image.bytes), image.mime, "{}", image.name);
        assert_eq!(content_type_for(&image.name), Some(image.mime));
        let (w, h) = size_of(&image.bytes);
        assert!(w >= 100 && h >= 100, "{} is {w}x{h}", image.name);
    }
    assert!(set[6].name.starts_with("img-007."), "{}", set[6].name);
    for mime in ["image/jpeg", "image/png", "image/webp"] {
        assert!(set.iter().any(|i| i.mime == mime), "no {mime} in the set");
    }
}
