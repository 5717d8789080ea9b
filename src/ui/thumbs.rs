//! Thumbnails for the gallery: made on demand from a stored blob, decoded by image's memory-safe
//! decoders under the validation limits (`max_pixels`), shrunk with image's own resize, and
//! cached under `blob_dir/.thumbs/ab/<sha256>.jpg` (or `.png` for images with alpha), bounded
//! in size (oldest first out).
//!
//! Architecture invariant: no path comes from a request. A thumbnail is asked for by a
//! [`BlobRow`] the database returned for a sha256; its cache name is that recorded sha256 (64
//! hex digits, checked), and its source `blob_dir/<blob_path>` as jobd recorded it (relative, no
//! `..`, checked). The same blob is never made twice at once: later askers wait for the first.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use crate::lock;
use crate::store::BlobRow;

mod make;

use make::format_of;
pub use make::{placeholder, thumbnail};

/// The longest side of a thumbnail, in pixels.
pub const SIDE: u32 = 320;
const FOLDER: &str = ".thumbs";

/// A thumbnail's bytes and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumb {
    pub bytes: Vec<u8>,
    pub content_type: &'static str,
    /// A placeholder: the image could not be decoded here (its type has no decoder, or it
    /// failed); the page shows its type.
    pub placeholder: bool,
}

/// Set, and its waiters woken, when a thumbnail being made is ready (or failed).
type Done = Arc<(Mutex<bool>, Condvar)>;

pub struct Thumbs {
    blob_dir: PathBuf,
    dir: PathBuf,
    max_pixels: u64,
    cap_bytes: u64,
    /// Bytes in the cache, as this process counts them (read from disk at start).
    size: AtomicU64,
    /// The blobs being made now, each with the waiters' condvar.
    making: Mutex<HashMap<String, Done>>,
    /// Decodes at once: one per core, as the daemon's decode slots.
    slots: Mutex<usize>,
    slot_free: Condvar,
    /// Evictions one at a time.
    evicting: Mutex<()>,
    /// Blobs that could not be made into a thumbnail, so that a broken file is not decoded again
    /// at every look at the gallery: a blob is named by its content and never changes. Forgotten
    /// when it holds [`FAILED_KEPT`], and at a restart.
    failed: Mutex<HashSet<String>>,
}

/// The most failures remembered.
const FAILED_KEPT: usize = 10_000;

/// A sha256 as jobd records it: 64 lowercase hex digits.
pub fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `blob_dir/<blob_path>` if the recorded path is a plain relative one.
pub fn blob_file(blob_dir: &Path, blob_path: &str) -> Option<PathBuf> {
    let rel = Path::new(blob_path);
    rel.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| blob_dir.join(rel))
}

impl Thumbs {
    pub fn new(blob_dir: &Path, max_pixels: u64, cap_bytes: u64) -> Thumbs {
        let dir = blob_dir.join(FOLDER);
        let size = files(&dir).iter().map(|(_, len, _)| len).sum();
        Thumbs {
            blob_dir: blob_dir.to_path_buf(),
            dir,
            max_pixels,
            cap_bytes,
            size: AtomicU64::new(size),
            making: Mutex::new(HashMap::new()),
            slots: Mutex::new(std::thread::available_parallelism().map_or(1, usize::from)),
            slot_free: Condvar::new(),
            evicting: Mutex::new(()),
            failed: Mutex::new(HashSet::new()),
        }
    }

    fn cached(&self, sha256: &str) -> Option<Thumb> {
        let sub = self.dir.join(&sha256[..2]);
        for (ext, content_type) in [("jpg", "image/jpeg"), ("png", "image/png")] {
            if let Ok(bytes) = fs::read(sub.join(format!("{sha256}.{ext}"))) {
                return Some(Thumb {
                    bytes,
                    content_type,
                    placeholder: false,
                });
            }
        }
        None
    }

    /// The blob's thumbnail: from the cache, or made now (once, however many ask at once).
    pub fn get(&self, blob: &BlobRow) -> Thumb {
        if !is_sha256(&blob.sha256) || format_of(&blob.mime).is_none() {
            return placeholder();
        }
        if let Some(thumb) = self.cached(&blob.sha256) {
            return thumb;
        }
        if lock(&self.failed).contains(&blob.sha256) {
            return placeholder();
        }
        let (mine, slot) = {
            let mut making = lock(&self.making);
            match making.get(&blob.sha256) {
                Some(slot) => (false, slot.clone()),
                None => {
                    let slot = Arc::new((Mutex::new(false), Condvar::new()));
                    making.insert(blob.sha256.clone(), slot.clone());
                    (true, slot)
                }
            }
        };
        if !mine {
            let done = lock(&slot.0);
            drop(
                slot.1
                    .wait_while(done, |d| !*d)
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
            return self.cached(&blob.sha256).unwrap_or_else(placeholder);
        }
        // Another maker may have finished between the look above and taking the slot.
        let made = self.cached(&blob.sha256).unwrap_or_else(|| self.make(blob));
        *lock(&slot.0) = true;
        slot.1.notify_all();
        lock(&self.making).remove(&blob.sha256);
        made
    }

    fn make(&self, blob: &BlobRow) -> Thumb {
        let made = {
            let _slot = self.slot();
            blob_file(&self.blob_dir, &blob.blob_path)
                .ok_or_else(|| "its recorded path is not a plain relative path".to_string())
                .and_then(|path| thumbnail(&path, &blob.mime, self.max_pixels))
        };
        match made {
            Ok(thumb) => {
                self.store(&blob.sha256, &thumb);
                thumb
            }
            Err(why) => {
                log::warn!("no thumbnail for blob {}: {why}", blob.sha256);
                let mut failed = lock(&self.failed);
                if failed.len() >= FAILED_KEPT {
                    failed.clear();
                }
                failed.insert(blob.sha256.clone());
                placeholder()
            }
        }
    }

    /// Writes a thumbnail to the cache (a temporary name, then a rename, so a reader never sees
    /// half a file), then evicts the oldest while the cache is over its cap.
    fn store(&self, sha256: &str, thumb: &Thumb) {
        let ext = if thumb.content_type == "image/png" { "png" } else { "jpg" };
        let sub = self.dir.join(&sha256[..2]);
        let tmp = self.dir.join(format!(".{sha256}.{}.tmp", std::process::id()));
        let stored = fs::create_dir_all(&sub)
            .and_then(|()| fs::write(&tmp, &thumb.bytes))
            .and_then(|()| fs::rename(&tmp, sub.join(format!("{sha256}.{ext}"))));
        if let Err(e) = stored {
            let _ = fs::remove_file(&tmp);
            log::warn!("cannot cache the thumbnail of {sha256}: {e}");
            return;
        }
        let size = self.size.fetch_add(thumb.bytes.len() as u64, Ordering::Relaxed)
            + thumb.bytes.len() as u64;
        if size > self.cap_bytes {
            self.evict();
        }
    }

    /// Removes the oldest thumbnails until the cache holds at most 90 % of its cap.
    fn evict(&self) {
        let Ok(_one) = self.evicting.try_lock() else {
            return;
        };
        let mut all = files(&self.dir);
        all.sort_by_key(|(_, _, modified)| *modified);
        let mut size: u64 = all.iter().map(|(_, len, _)| len).sum();
        let goal = self.cap_bytes / 10 * 9;
        for (path, len, _) in all {
            if size <= goal {
                break;
            }
            if fs::remove_file(&path).is_ok() {
                size -= len;
            }
        }
        self.size.store(size, Ordering::Relaxed);
    }

    fn slot(&self) -> SlotGuard<'_> {
        let mut free = lock(&self.slots);
        while *free == 0 {
            free = self
                .slot_free
                .wait(free)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        *free -= 1;
        SlotGuard(self)
    }

    /// Bytes in the cache, as counted.
    #[cfg(test)]
    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Relaxed)
    }
}

struct SlotGuard<'a>(&'a Thumbs);

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        *lock(&self.0.slots) += 1;
        self.0.slot_free.notify_one();
    }
}

/// The cache's files: path, length, last change.
fn files(dir: &Path) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    for sub in fs::read_dir(dir).into_iter().flatten().flatten() {
        for entry in fs::read_dir(sub.path()).into_iter().flatten().flatten() {
            if let Some(meta) = entry.metadata().ok().filter(|m| m.is_file()) {
                let modified = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
                out.push((entry.path(), meta.len(), modified));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{DynamicImage, ImageFormat};
    use std::io::Cursor;
    use std::sync::atomic::AtomicUsize;

    fn blob(dir: &Path, name: &str, mime: &str, bytes: &[u8]) -> BlobRow {
        let sha = crate::blobs::hex(&<sha2::Sha256 as sha2::Digest>::digest(bytes));
        fs::write(dir.join(name), bytes).unwrap();
        BlobRow {
            sha256: sha,
            blob_path: name.into(),
            mime: mime.into(),
            bytes: bytes.len() as i64,
        }
    }

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut out = Vec::new();
        DynamicImage::ImageRgb8(img)
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn a_thumbnail_fits_the_side_keeps_its_shape_and_is_cached() {
        let dir = tempfile::tempdir().unwrap();
        let thumbs = Thumbs::new(dir.path(), 100_000_000, 1 << 30);
        let b = blob(dir.path(), "a.png", "image/png", &png(1000, 500));
        let t = thumbs.get(&b);
        assert!(!t.placeholder);
        assert_eq!(t.content_type, "image/jpeg");
        let img = image::load_from_memory(&t.bytes).unwrap();
        assert_eq!((img.width(), img.height()), (320, 160));
        let cached = dir.path().join(".thumbs").join(&b.sha256[..2]).join(format!("{}.jpg", b.sha256));
        assert_eq!(fs::read(&cached).unwrap(), t.bytes);
        // Served from the cache even with the blob gone.
        fs::remove_file(dir.path().join("a.png")).unwrap();
        assert_eq!(thumbs.get(&b), t);
    }

    /// A JPEG takes the scaled path: decoded at 1/8 of 2400x1800, then fitted, colours kept.
    #[test]
    fn a_large_jpeg_is_decoded_scaled_and_keeps_its_colours() {
        let dir = tempfile::tempdir().unwrap();
        let thumbs = Thumbs::new(dir.path(), 100_000_000, 1 << 30);
        for (gray, name) in [(false, "rgb.jpg"), (true, "gray.jpg")] {
            let img = if gray {
                DynamicImage::ImageLuma8(image::GrayImage::from_pixel(2400, 1800, image::Luma([90])))
            } else {
                DynamicImage::ImageRgb8(image::RgbImage::from_pixel(2400, 1800, image::Rgb([200, 40, 40])))
            };
            let mut bytes = Vec::new();
            img.write_to(&mut Cursor::new(&mut bytes), ImageFormat::Jpeg).unwrap();
            let t = thumbs.get(&blob(dir.path(), name, "image/jpeg", &bytes));
            assert!(!t.placeholder, "{name}");
            let small = image::load_from_memory(&t.bytes).unwrap().to_rgb8();
            assert_eq!(small.dimensions(), (320, 240), "{name}");
            let p = small.get_pixel(160, 120).0;
            let want = if gray { [90, 90, 90] } else { [200, 40, 40] };
            for (got, want) in p.iter().zip(want) {
                assert!(got.abs_diff(want) < 12, "{name}: {p:?} against {want:?}");
            }
        }
        // Over the pixel limit, by its header alone.
        let strict = Thumbs::new(dir.path(), 1_000_000, 1 << 30);
        let mut bytes = Vec::new();
        DynamicImage::ImageRgb8(image::RgbImage::new(1200, 1000))
            .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Jpeg)
            .unwrap();
        assert!(strict.get(&blob(dir.path(), "big.jpg", "image/jpeg", &bytes)).placeholder);
    }

    #[test]
    fn over_the_pixel_limit_undecodable_or_a_strange_path_gives_a_placeholder() {
        let dir = tempfile::tempdir().unwrap();
        let thumbs = Thumbs::new(dir.path(), 10_000, 1 << 30);
        let big = blob(dir.path(), "big.png", "image/png", &png(200, 100));
        assert!(thumbs.get(&big).placeholder, "20,000 pixels over a limit of 10,000");
        let avif = blob(dir.path(), "x.avif", "image/avif", b"not decodable here");
        assert!(thumbs.get(&avif).placeholder);
        let broken = blob(dir.path(), "broken.png", "image/png", &png(50, 50)[..200]);
        assert!(thumbs.get(&broken).placeholder);
        // Remembered: mended on disk, it still gets the placeholder without a second decode.
        fs::write(dir.path().join("broken.png"), png(50, 50)).unwrap();
        assert!(thumbs.get(&broken).placeholder);
        let mut escape = blob(dir.path(), "ok.png", "image/png", &png(10, 10));
        escape.blob_path = "../ok.png".into();
        assert!(thumbs.get(&escape).placeholder);
        assert!(blob_file(dir.path(), "/etc/passwd").is_none());
        assert_eq!(thumbs.size(), 0, "nothing cached for failures");
        assert!(!is_sha256("../../etc/passwd"));
        assert!(!is_sha256(&"A".repeat(64)));
    }

    #[test]
    fn the_cache_stays_under_its_cap() {
        let dir = tempfile::tempdir().unwrap();
        let thumbs = Thumbs::new(dir.path(), 100_000_000, 3_000);
        for i in 0..12u32 {
            let b = blob(dir.path(), &format!("{i}.png"), "image/png", &png(400 + i, 300));
            assert!(!thumbs.get(&b).placeholder);
            assert!(thumbs.size() <= 3_000 + 3_000, "{}", thumbs.size());
        }
        let on_disk: u64 = files(&dir.path().join(".thumbs")).iter().map(|f| f.1).sum();
        assert!(on_disk <= 3_000, "{on_disk} bytes on disk");
        assert_eq!(on_disk, thumbs.size());
    }

    /// Eight threads ask for one blob's thumbnail at once: it is decoded once.
    #[test]
    fn one_blob_is_never_made_twice_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let thumbs = Arc::new(Thumbs::new(dir.path(), 100_000_000, 1 << 30));
        let b = blob(dir.path(), "a.png", "image/png", &png(2000, 1500));
        let started = Arc::new(AtomicUsize::new(0));
        let made: Vec<Thumb> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let (thumbs, b, started) = (&thumbs, &b, &started);
                    s.spawn(move || {
                        started.fetch_add(1, Ordering::SeqCst);
                        thumbs.get(b)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(made.iter().all(|t| *t == made[0] && !t.placeholder));
        // Made once: one file, and the cache counted its bytes once.
        assert_eq!(files(&dir.path().join(".thumbs")).len(), 1);
        assert_eq!(thumbs.size(), made[0].bytes.len() as u64);
    }
}
