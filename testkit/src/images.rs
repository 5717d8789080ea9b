//! Deterministic generators of images with valid headers, for tests and benchmarks.
//!
//! PNG and GIF output are complete, decodable files. JPEG and WebP output carry real headers
//! (so header parsers such as `imagesize` and sniffers such as `infer` accept them) followed by
//! random filler that no decoder would accept: the daemon only ever looks at headers, and this
//! keeps multi-megabyte fixtures cheap to make. Every generator is a pure function of its
//! arguments, so the same seed always gives the same bytes.

use std::io;
use std::path::Path;

/// One image of the benchmark seed set (see [`seed_set`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedImage {
    /// File name such as `img-007.jpg`; unique within a set.
    pub name: String,
    pub bytes: Vec<u8>,
    /// `image/jpeg`, `image/png` or `image/webp`, matching the bytes.
    pub mime: &'static str,
}

/// A complete PNG: 8-bit RGB, random pixels, IDAT made of zlib *stored* blocks so the file is
/// about `width * height * 3` bytes long and needs no compressor.
pub fn png(width: u32, height: u32, seed: u64) -> Vec<u8> {
    let row = width as usize * 3 + 1;
    let mut raw = vec![0u8; row * height as usize];
    let mut rng = Rng(seed);
    for line in raw.chunks_exact_mut(row) {
        // line[0] stays 0: filter type "None", so the pixels are stored as-is.
        rng.fill(&mut line[1..]);
    }

    let mut zlib = Vec::with_capacity(raw.len() + raw.len() / 65535 * 5 + 16);
    zlib.extend([0x78, 0x01]); // deflate, 32 KiB window, no preset dictionary
    let blocks: Vec<&[u8]> = if raw.is_empty() {
        vec![&[]]
    } else {
        raw.chunks(65535).collect()
    };
    for (i, block) in blocks.iter().enumerate() {
        let len = block.len() as u16;
        zlib.push(u8::from(i + 1 == blocks.len())); // BFINAL on the last block, BTYPE 00 (stored)
        zlib.extend(len.to_le_bytes());
        zlib.extend((!len).to_le_bytes());
        zlib.extend_from_slice(block);
    }
    zlib.extend(adler32(&raw).to_be_bytes());

    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    // Bit depth 8, colour type RGB, deflate, adaptive filtering, no interlace.
    ihdr.extend([8, 2, 0, 0, 0]);

    let mut out = Vec::with_capacity(zlib.len() + 64);
    out.extend(b"\x89PNG\r\n\x1a\n");
    png_chunk(&mut out, b"IHDR", &ihdr);
    png_chunk(&mut out, b"IDAT", &zlib);
    png_chunk(&mut out, b"IEND", &[]);
    out
}

/// A baseline JPEG header (SOI, APP0 JFIF, DQT, SOF0 with three components, DHT, SOS) followed by
/// random entropy-coded-looking filler up to `target_len` bytes in total, then EOI.
///
/// The filler never contains 0xFF, so no parser mistakes it for a marker.
///
/// # Panics
/// If a dimension does not fit the 16 bits JPEG has for it.
pub fn jpeg(width: u32, height: u32, target_len: usize, seed: u64) -> Vec<u8> {
    let (w, h) = match (u16::try_from(width), u16::try_from(height)) {
        (Ok(w), Ok(h)) => (w.to_be_bytes(), h.to_be_bytes()),
        _ => panic!("JPEG dimensions are at most 65535, got {width}x{height}"),
    };
    let mut rng = Rng(seed);
    let mut out = Vec::with_capacity(target_len.max(256));
    out.extend([0xFF, 0xD8]);
    // JFIF 1.01, 72 dpi, no thumbnail.
    jpeg_segment(
        &mut out,
        0xE0,
        b"JFIF\0\x01\x01\x01\x00\x48\x00\x48\x00\x00",
    );
    // One 8-bit quantisation table; seeded so that different seeds differ from the first bytes.
    let mut dqt = [0u8; 65];
    rng.fill(&mut dqt[1..]);
    dqt[1..].iter_mut().for_each(|q| *q = 1 + *q % 99); // 0 is not a valid quantiser
    jpeg_segment(&mut out, 0xDB, &dqt);
    // Baseline frame, 8-bit samples, Y at 2x2 and Cb/Cr at 1x1 (4:2:0, as cameras write).
    let sof = [
        8, h[0], h[1], w[0], w[1], 3, 1, 0x22, 0, 2, 0x11, 0, 3, 0x11, 0,
    ];
    jpeg_segment(&mut out, 0xC0, &sof);
    // DC table 0 (the standard luminance table of Annex K) and a minimal AC table 0.
    let mut dht = vec![0x00, 0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
    dht.extend(0..12u8);
    dht.extend([
        0x10, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x01,
    ]);
    jpeg_segment(&mut out, 0xC4, &dht);
    jpeg_segment(&mut out, 0xDA, &[3, 1, 0x00, 2, 0x00, 3, 0x00, 0, 63, 0]);

    let start = out.len();
    out.resize(start.max(target_len.saturating_sub(2)), 0);
    rng.fill(&mut out[start..]);
    out[start..]
        .iter_mut()
        .filter(|b| **b == 0xFF)
        .for_each(|b| *b = 0x7F);
    out.extend([0xFF, 0xD9]);
    out
}

/// A lossy WebP: RIFF/WEBP with one `VP8 ` chunk whose key-frame header carries the dimensions,
/// padded with random filler to about `target_len` bytes. RIFF and chunk sizes are exact.
///
/// # Panics
/// If a dimension does not fit the 14 bits VP8 has for it.
pub fn webp(width: u32, height: u32, target_len: usize, seed: u64) -> Vec<u8> {
    assert!(
        width <= 0x3FFF && height <= 0x3FFF,
        "VP8 dimensions are at most 16383, got {width}x{height}"
    );
    // Payload: 3-byte frame tag, 3-byte start code, 2+2 bytes of dimensions, then filler.
    let payload_len = target_len.saturating_sub(20).max(10);
    let mut out = Vec::with_capacity(payload_len + 21);
    out.extend(b"RIFF\0\0\0\0WEBPVP8 ");
    out.extend((payload_len as u32).to_le_bytes());
    // Frame tag: key frame (bit 0 clear), version 0, show_frame, first partition size (19 bits).
    let first_partition = (payload_len - 10).min(0x7_FFFF) as u32;
    out.extend(&((first_partition << 5) | 1 << 4).to_le_bytes()[..3]);
    out.extend([0x9D, 0x01, 0x2A]);
    out.extend((width as u16).to_le_bytes()); // top two bits: horizontal scale 0
    out.extend((height as u16).to_le_bytes());
    let start = out.len();
    out.resize(start + payload_len - 10, 0);
    Rng(seed).fill(&mut out[start..]);
    if payload_len % 2 == 1 {
        out.push(0); // RIFF chunks are padded to even length; the pad is not in the chunk size
    }
    let riff_len = (out.len() - 8) as u32;
    out[4..8].copy_from_slice(&riff_len.to_le_bytes());
    out
}

/// A complete GIF89a with a four-colour palette and random pixels.
///
/// # Panics
/// If a dimension does not fit the 16 bits GIF has for it.
pub fn gif(width: u32, height: u32, seed: u64) -> Vec<u8> {
    let (w, h) = match (u16::try_from(width), u16::try_from(height)) {
        (Ok(w), Ok(h)) => (w.to_le_bytes(), h.to_le_bytes()),
        _ => panic!("GIF dimensions are at most 65535, got {width}x{height}"),
    };
    let mut rng = Rng(seed);
    let mut out = Vec::new();
    out.extend(b"GIF89a");
    out.extend(w.iter().chain(&h));
    out.extend([0xF1, 0, 0]); // global colour table of 4 entries, 8-bit colour resolution
    let mut palette = [0u8; 12];
    rng.fill(&mut palette);
    out.extend(palette);
    out.extend([0x2C, 0, 0, 0, 0]); // image descriptor at (0, 0)
    out.extend(w.iter().chain(&h));
    out.extend([0, 2]); // no local palette; LZW minimum code size 2

    // A clear code (4) before every pair of pixels keeps the LZW dictionary from growing past
    // 3-bit codes, so the stream is valid without writing a real compressor.
    let mut bits = BitWriter::default();
    let mut pixels = (0..width as u64 * height as u64).map(|_| rng.next_u64() as u8 & 3);
    while let Some(first) = pixels.next() {
        bits.put(4);
        bits.put(first);
        if let Some(second) = pixels.next() {
            bits.put(second);
        }
    }
    bits.put(5); // end of information
    for block in bits.finish().chunks(255) {
        out.push(block.len() as u8);
        out.extend_from_slice(block);
    }
    out.extend([0, 0x3B]); // block terminator, trailer
    out
}

/// `n` images of varied, photo-like sizes (about 100 KB to 8 MB, mostly 200 KB to 2 MB), mixing
/// JPEG, PNG and WebP, named `img-001.jpg` onwards. The same `n` always gives the same set, and
/// `seed_set(n)` is a prefix of `seed_set(n + 1)`.
pub fn seed_set(n: usize) -> Vec<SeedImage> {
    (0..n).map(seed_image).collect()
}

/// Writes `seed_set(n)` into `dir` (created if missing), one file per image, generating them one
/// at a time so the whole set never sits in memory.
pub fn write_seed_set(dir: &Path, n: usize) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for image in (0..n).map(seed_image) {
        std::fs::write(dir.join(&image.name), &image.bytes)?;
    }
    Ok(())
}

/// The Content-Type for a file name, judged by its extension, if it is an image we generate.
pub fn content_type_for(name: &str) -> Option<&'static str> {
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    match ext.as_str() {
        "jpg" | "jpeg" => Some("image/jpeg"),
        "png" => Some("image/png"),
        "webp" => Some("image/webp"),
        "gif" => Some("image/gif"),
        _ => None,
    }
}

fn seed_image(i: usize) -> SeedImage {
    // A golden-ratio sequence spreads any number of images over the whole size distribution
    // evenly, instead of relying on a lucky random draw for small sets.
    let q = ((i as f64 + 0.5) * 0.618_033_988_749_895).fract();
    let target = photo_size(q);
    let seed = 0x5EED_0000 + i as u64;
    let portrait = i % 4 == 3;
    let (name_ext, mime, bytes) = match i % 5 {
        1 => {
            // Stored PNG costs 3 bytes per pixel.
            let (w, h) = dimensions(target as f64 / 3.0, portrait);
            ("png", "image/png", png(w, h, seed))
        }
        3 => {
            // Lossy WebP photos run at roughly 1 bit per pixel.
            let (w, h) = dimensions(target as f64 * 8.0, portrait);
            ("webp", "image/webp", webp(w, h, target, seed))
        }
        _ => {
            // Camera JPEGs run at roughly 2 bits per pixel.
            let (w, h) = dimensions(target as f64 * 4.0, portrait);
            ("jpg", "image/jpeg", jpeg(w, h, target, seed))
        }
    };
    SeedImage {
        name: format!("img-{:03}.{name_ext}", i + 1),
        bytes,
        mime,
    }
}

/// Maps a quantile to a file size: 5% small (100–200 KB), 70% typical (200 KB–2 MB), 25% large
/// (2–8 MB), log-uniform within each band as photo sizes roughly are.
fn photo_size(q: f64) -> usize {
    const KB: f64 = 1024.0;
    const MB: f64 = 1024.0 * KB;
    let bands = [
        (0.0, 0.05, 100.0 * KB, 200.0 * KB),
        (0.05, 0.75, 200.0 * KB, 2.0 * MB),
        (0.75, 1.0, 2.0 * MB, 8.0 * MB),
    ];
    let (from, to, lo, hi) = bands.into_iter().find(|b| q < b.1).unwrap_or(bands[2]);
    (lo * (hi / lo).powf((q - from) / (to - from))) as usize
}

/// A 4:3 (or 3:4) width and height with about `pixels` pixels.
fn dimensions(pixels: f64, portrait: bool) -> (u32, u32) {
    let long = (pixels * 4.0 / 3.0).sqrt().round().max(1.0);
    let short = (pixels / long).round().max(1.0);
    if portrait {
        (short as u32, long as u32)
    } else {
        (long as u32, short as u32)
    }
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend((data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]); // covers the chunk type and data, not the length
    out.extend(crc.to_be_bytes());
}

fn jpeg_segment(out: &mut Vec<u8>, marker: u8, data: &[u8]) {
    out.extend([0xFF, marker]);
    out.extend((data.len() as u16 + 2).to_be_bytes()); // the length counts itself
    out.extend_from_slice(data);
}

/// SplitMix64: tiny and fast; plenty for filler, never for anything secret.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn fill(&mut self, out: &mut [u8]) {
        let mut words = out.chunks_exact_mut(8);
        for word in &mut words {
            word.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = words.into_remainder();
        let last = self.next_u64().to_le_bytes();
        rest.copy_from_slice(&last[..rest.len()]);
    }
}

/// Packs 3-bit GIF LZW codes least significant bit first.
#[derive(Default)]
struct BitWriter {
    bytes: Vec<u8>,
    acc: u32,
    len: u32,
}

impl BitWriter {
    fn put(&mut self, code: u8) {
        self.acc |= u32::from(code) << self.len;
        self.len += 3;
        while self.len >= 8 {
            self.bytes.push(self.acc as u8);
            self.acc >>= 8;
            self.len -= 8;
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.len > 0 {
            self.bytes.push(self.acc as u8);
        }
        self.bytes
    }
}

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32 as PNG (and zip, and Ethernet) define it.
fn crc32(data: &[u8]) -> u32 {
    !data.iter().fold(!0u32, |c, &b| {
        CRC_TABLE[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8)
    })
}

/// Adler-32 as zlib defines it; the modulo is deferred over 5552-byte runs, the longest that
/// cannot overflow a u32.
fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for run in data.chunks(5552) {
        for &byte in run {
            a += u32::from(byte);
            b += a;
        }
        a %= 65521;
        b %= 65521;
    }
    (b << 16) | a
}

#[cfg(test)]
mod tests;
