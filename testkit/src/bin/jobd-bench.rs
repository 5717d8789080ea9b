//! jobd-bench: micro-benchmarks of the queue itself, for scripts/bench.sh.
//!
//! `jobd-bench claims --db FILE|URL --queued N --claims M [--batch B]` fills a fresh database
//! (an SQLite file, or an empty PostgreSQL database by URL) with N
//! queued jobs (in transactions of 50,000), then times M claims of B jobs each, each followed by
//! recording the jobs as failed, on the store opened as a daemon opens it. Prints
//! `claims_per_s <rate>` on stdout.
//!
//! `jobd-bench validate --dir DIR [--rounds R]` reads every image in DIR into memory, then times,
//! on one thread, the structural validator and a plain SHA-256 over the same bytes in the same
//! 64 KiB pieces the download loop uses, R rounds each (default 5). Prints `validate_mb_s` and
//! `sha256_mb_s` (megabytes of 10^6 bytes per second, the best round of each).
//!
//! `jobd-bench decode --dir DIR` decodes every image in DIR as `validate = "decode"` does and
//! prints `decode_ms_per_mpx` (CPU time per megapixel, frames included) and `decoded_mpx`.
//!
//! `jobd-bench blobs --dir DIR --blob-dir DIR [--threads T]` is the bare writer, the floor for the
//! small-image scenario on this filesystem: it reads every image in DIR into memory, then stores
//! them all into a fresh blob_dir the way the daemon does, without HTTP or SQL. T threads (default
//! 16, the scenario's workers) each write a blob to a temporary file while hashing it and make its
//! folder; one committer thread makes whatever has arrived durable, up to 256 at a time, with
//! `BlobStore::advance` as the daemon's committer does (a sync per group, which makes the
//! previous group's names durable too). Prints `blobs_per_s`, timed from opening the store to the
//! last group's sync.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use jobd::blobs::{BlobStore, Sealed};

use jobd::job::{Outcome, Report};
use jobd::sniff;
use jobd::store::{self, ClaimOptions, Database, NewJob};
use jobd::validate::decode::{self, Decoded};
use jobd::validate::{Limits, Validator};
use sha2::{Digest, Sha256};

/// The daemon's default limits.
const LIMITS: Limits = Limits {
    max_pixels: 100_000_000,
    max_frames: 1_000,
};

/// The download loop's read size.
const PIECE: usize = 64 * 1024;

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "jobd-bench: {e}\nusage: jobd-bench claims --db FILE|URL --queued N --claims M [--batch B]\n       jobd-bench validate --dir DIR [--rounds R]\n       jobd-bench decode --dir DIR\n       jobd-bench blobs --dir DIR --blob-dir DIR [--threads T]"
            );
            ExitCode::from(2)
        }
    }
}

fn run(args: Vec<String>) -> Result<(), String> {
    let mut args = args.into_iter();
    match args.next().as_deref() {
        Some("claims") => claims(args),
        Some("validate") => validate(args),
        Some("decode") => decode(args),
        Some("blobs") => blobs(args),
        _ => Err("unknown command".into()),
    }
}

fn claims(mut args: impl Iterator<Item = String>) -> Result<(), String> {
    let (mut db, mut queued, mut claims, mut batch) = (None, 2_000usize, 1_000usize, 1usize);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let number = || value.parse::<usize>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--db" => db = Some(Database::parse(&value, Path::new(""))),
            "--queued" => queued = number()?,
            "--claims" => claims = number()?,
            "--batch" => batch = number()?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    let db = db.ok_or("--db is required")?;
    if claims * batch > queued {
        return Err("--claims x --batch must not exceed --queued".into());
    }
    let store = store::open_for_daemon(&db, 1).map_err(|e| e.to_string())?;
    let mut jobs = Vec::with_capacity(50_000);
    for i in 0..queued {
        jobs.push(NewJob {
            priority: (i % 3) as i64,
            ..NewJob::new(format!("https://example.org/{i}.jpg"))
        });
        if jobs.len() == 50_000 || i + 1 == queued {
            store.add(&jobs).map_err(|e| e.to_string())?;
            jobs.clear();
        }
    }
    let failed = Report::new(Outcome::Failed {
        error: "benchmark".into(),
    });
    let start = Instant::now();
    for _ in 0..claims {
        let claimed = store
            .claim("bench", batch, ClaimOptions::lease(60_000))
            .map_err(|e| e.to_string())?;
        let items: Vec<_> = claimed.iter().map(|job| (job, &failed)).collect();
        store.record(&items).map_err(|e| e.to_string())?;
    }
    let rate = (claims * batch) as f64 / start.elapsed().as_secs_f64();
    println!("claims_per_s {rate:.0}");
    Ok(())
}

fn blobs(mut args: impl Iterator<Item = String>) -> Result<(), String> {
    let (mut dir, mut blob_dir, mut threads) = (None, None, 16usize);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--dir" => dir = Some(value),
            "--blob-dir" => blob_dir = Some(value),
            "--threads" => threads = value.parse().map_err(|e| format!("{flag}: {e}"))?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    let blob_dir = blob_dir.ok_or("--blob-dir is required")?;
    let mut files = Vec::new();
    for (_, bytes) in read_images(&dir.ok_or("--dir is required")?)? {
        let ext = sniff::sniff(&bytes)?.ext;
        files.push((ext, bytes));
    }
    let start = Instant::now();
    let store = BlobStore::open(Path::new(&blob_dir)).map_err(|e| format!("{blob_dir}: {e}"))?;
    let (store, next) = (&store, AtomicUsize::new(0));
    let (to_committer, arrived) = mpsc::channel::<Sealed>();
    let stored = std::thread::scope(|scope| {
        let committer = scope.spawn(move || -> Result<usize, String> {
            let (mut stored, mut named) = (0, Vec::new());
            loop {
                // As the daemon's committer: while a group waits for its names' sync, the next
                // round takes what has arrived without waiting.
                let mut group: Vec<Sealed> = Vec::new();
                if named.is_empty() {
                    match arrived.recv() {
                        Ok(first) => group.push(first),
                        Err(_) => return Ok(stored),
                    }
                }
                group.extend(arrived.try_iter().take(GROUP - group.len()));
                let durable;
                (durable, named) = store.advance(named, group);
                for result in durable {
                    result.map_err(|e| format!("making a group durable: {e}"))?;
                    stored += 1;
                }
            }
        });
        for _ in 0..threads.max(1) {
            let (files, next, to_committer) = (&files, &next, to_committer.clone());
            scope.spawn(move || -> Result<(), String> {
                while let Some((ext, bytes)) = files.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let mut writer = store.create().map_err(|e| e.to_string())?;
                    writer.write_all(bytes).map_err(|e| e.to_string())?;
                    let mut sealed = writer.seal(ext);
                    store.prepare(&mut sealed).map_err(|e| e.to_string())?;
                    // The committer ends only once every sender is gone.
                    let _ = to_committer.send(sealed);
                }
                Ok(())
            });
        }
        drop(to_committer);
        committer
            .join()
            .map_err(|_| "the committer panicked".to_string())?
    })?;
    if stored != files.len() {
        return Err(format!("stored {stored} of {} blobs", files.len()));
    }
    println!(
        "blobs_per_s {:.0}",
        stored as f64 / start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The daemon's largest group.
const GROUP: usize = 256;

/// A file's bytes and the MIME type sniff gives them.
type Typed = (String, Vec<u8>);

/// Every file of `--dir` with the type sniff gives it, and `--rounds` (default 5).
fn images(mut args: impl Iterator<Item = String>) -> Result<(Vec<Typed>, usize), String> {
    let (mut dir, mut rounds) = (None, 5usize);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--dir" => dir = Some(value),
            "--rounds" => rounds = value.parse().map_err(|e| format!("{flag}: {e}"))?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok((
        read_images(&dir.ok_or("--dir is required")?)?,
        rounds.max(1),
    ))
}

/// Every file of `dir`, which must all be images, with the type sniff gives them.
fn read_images(dir: &str) -> Result<Vec<Typed>, String> {
    let mut files = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{dir}: {e}"))?;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let format = sniff::sniff(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        files.push((format.mime.to_string(), bytes));
    }
    if files.is_empty() {
        return Err(format!("{dir} holds no images"));
    }
    Ok(files)
}

fn validate(args: impl Iterator<Item = String>) -> Result<(), String> {
    let (files, rounds) = images(args)?;
    let total: usize = files.iter().map(|(_, b)| b.len()).sum();
    let best = |run: &dyn Fn() -> Result<(), String>| -> Result<f64, String> {
        let mut best = f64::MAX;
        for _ in 0..rounds {
            let start = Instant::now();
            run()?;
            best = best.min(start.elapsed().as_secs_f64());
        }
        Ok(total as f64 / best / 1e6)
    };
    let validate = best(&|| {
        for (mime, bytes) in &files {
            let mut v = Validator::for_mime(mime, LIMITS);
            for piece in bytes.chunks(PIECE) {
                v.feed(piece).map_err(|e| e.to_string())?;
            }
            std::hint::black_box(v.finish(&mut bytes.as_slice()).map_err(|e| e.to_string())?);
        }
        Ok(())
    })?;
    let sha256 = best(&|| {
        for (_, bytes) in &files {
            let mut hasher = Sha256::new();
            for piece in bytes.chunks(PIECE) {
                hasher.update(piece);
            }
            std::hint::black_box(hasher.finalize());
        }
        Ok(())
    })?;
    println!("validate_mb_s {validate:.0}");
    println!("sha256_mb_s {sha256:.0}");
    Ok(())
}

fn decode(args: impl Iterator<Item = String>) -> Result<(), String> {
    let (files, _) = images(args)?;
    let dir = tempfile_dir()?;
    let (mut cpu, mut mpx) = (0.0, 0.0);
    for (i, (mime, bytes)) in files.iter().enumerate() {
        let image =
            jobd::validate::validate_bytes(mime, bytes, LIMITS).map_err(|e| e.to_string())?;
        let path = dir.join(format!("{i}"));
        std::fs::write(&path, bytes).map_err(|e| e.to_string())?;
        let before = cpu_seconds();
        let decoded = decode::decode_file(mime, &path, LIMITS).map_err(|e| e.to_string())?;
        cpu += cpu_seconds() - before;
        match decoded {
            Decoded::Full => {
                mpx +=
                    f64::from(image.width) * f64::from(image.height) * f64::from(image.frames) / 1e6
            }
            Decoded::Unsupported(why) => eprintln!("jobd-bench: not decoded: {why}"),
        }
        let _ = std::fs::remove_file(&path);
    }
    let _ = std::fs::remove_dir(&dir);
    println!(
        "decode_ms_per_mpx {:.2}",
        cpu * 1000.0 / mpx.max(f64::MIN_POSITIVE)
    );
    println!("decoded_mpx {mpx:.1}");
    Ok(())
}

/// A fresh folder for the files `decode_file` reads.
fn tempfile_dir() -> Result<std::path::PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("jobd-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

/// This process's CPU time (user and system) so far.
fn cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole rusage into the pointer it is given, which is valid.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}
