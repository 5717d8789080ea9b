//! The reference corpus: the validators against files written by real encoders and judged by
//! reference decoders (`tests/corpus/make.py`: Pillow with libpng-compatible zlib, libjpeg-turbo,
//! libwebp, libtiff and libavif; pillow-heif; pillow-jxl-plugin).
//!
//! The manifest says what each file is, and for a valid file what the reference decoder showed:
//! its displayed size (after EXIF orientation or `irot`) and its frame count. The validators
//! must agree with the reference: every valid file validates with that size and count, every
//! cut of one at k/16 of its length fails, every bomb is too large, every broken file fails.
//! Each test collects all its failures and reports them together, so one run shows the whole
//! picture.
//!
//! Needs Python 3 with the packages of `tests/corpus/requirements.txt` (scripts/check.sh
//! installs them). The corpus is made once per test process, read into memory, and its
//! directory removed.

use std::fmt::Write as _;
use std::process::Command;
use std::sync::OnceLock;

use jobd::sniff;
use jobd::validate::{Image, Invalid, Limits, Problem, Validator, validate_bytes};
use serde::Deserialize;

/// The daemon's defaults: `[fetch] max_pixels` and `max_frames`.
const LIMITS: Limits = Limits {
    max_pixels: 100_000_000,
    max_frames: 1000,
};

const INSTALL: &str = "python3 -m pip install -r tests/corpus/requirements.txt \
                       (scripts/check.sh does it)";

#[derive(Debug, Deserialize)]
struct Manifest {
    files: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
struct Entry {
    name: String,
    mime: String,
    kind: Kind,
    note: String,
    width: Option<u32>,
    height: Option<u32>,
    frames: Option<u32>,
    /// For bombs and broken files: the problems the validator may answer with.
    #[serde(default)]
    problems: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Valid,
    Bomb,
    Corrupt,
}

struct Sample {
    entry: Entry,
    bytes: Vec<u8>,
}

impl Sample {
    fn label(&self) -> String {
        format!("{} ({})", self.entry.name, self.entry.note)
    }

    fn validate(&self) -> Result<Image, Invalid> {
        validate_bytes(&self.entry.mime, &self.bytes, LIMITS)
    }

    /// The image the reference decoder showed, for a valid file.
    fn expected(&self) -> Image {
        let e = &self.entry;
        match (e.width, e.height, e.frames) {
            (Some(width), Some(height), Some(frames)) => Image {
                width,
                height,
                frames,
            },
            _ => panic!(
                "manifest: {} is valid but lacks width, height or frames",
                e.name
            ),
        }
    }

    /// Whether the validator's problem is one the manifest allows for this file.
    fn allows(&self, problem: Problem) -> bool {
        let name = format!("{problem:?}");
        self.entry.problems.contains(&name)
    }
}

/// The corpus, made once per test process.
fn corpus() -> &'static [Sample] {
    static CORPUS: OnceLock<Vec<Sample>> = OnceLock::new();
    CORPUS.get_or_init(make)
}

fn make() -> Vec<Sample> {
    let root = env!("CARGO_MANIFEST_DIR");
    let dir = tempfile::Builder::new()
        .prefix("corpus-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("a temp dir for the corpus");
    let script = format!("{root}/tests/corpus/make.py");
    let out = match Command::new("python3")
        .arg(&script)
        .arg(dir.path())
        .current_dir(root)
        .output()
    {
        Ok(out) => out,
        Err(e) => panic!(
            "the corpus test runs python3, which could not be started ({e}); install Python 3 \
             and its packages: {INSTALL}"
        ),
    };
    assert!(
        out.status.success(),
        "tests/corpus/make.py failed ({}):\n{}\nThe corpus needs Python 3 with Pillow, \
         pillow-heif and pillow-jxl-plugin: {INSTALL}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest = std::fs::read(dir.path().join("manifest.json")).expect("read manifest.json");
    let manifest: Manifest = serde_json::from_slice(&manifest).expect("parse manifest.json");
    assert!(!manifest.files.is_empty(), "the manifest lists no file");
    manifest
        .files
        .into_iter()
        .map(|entry| {
            let bytes = std::fs::read(dir.path().join(&entry.name))
                .unwrap_or_else(|e| panic!("read {}: {e}", entry.name));
            Sample { entry, bytes }
        })
        .collect()
}

fn of_kind(kind: Kind) -> impl Iterator<Item = &'static Sample> {
    corpus().iter().filter(move |s| s.entry.kind == kind)
}

fn show(result: &Result<Image, Invalid>) -> String {
    match result {
        Ok(i) => format!("Ok {}x{}, {} frames", i.width, i.height, i.frames),
        Err(e) => format!("{:?}: {e}", e.problem),
    }
}

/// Fails with every failure listed, after a line that says how many of how many.
fn report(what: &str, checked: usize, failures: &[String]) {
    if failures.is_empty() {
        return;
    }
    let mut text = format!("{} of {checked} {what}:\n", failures.len());
    for f in failures {
        let _ = writeln!(text, "  - {f}");
    }
    panic!("{text}");
}

#[test]
fn the_sniffer_names_every_file_as_the_manifest_does() {
    let mut failures = Vec::new();
    for s in corpus() {
        let got = sniff::sniff(&s.bytes).map(|f| f.mime);
        if got.as_deref() != Ok(s.entry.mime.as_str()) {
            failures.push(format!(
                "{}: expected {}, sniffed {got:?}",
                s.label(),
                s.entry.mime
            ));
        }
    }
    report(
        "files are not sniffed as the manifest says",
        corpus().len(),
        &failures,
    );
}

#[test]
fn valid_files_validate_with_the_reference_size_and_frames() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for s in of_kind(Kind::Valid) {
        checked += 1;
        let want = s.expected();
        let got = s.validate();
        if got.as_ref() != Ok(&want) {
            failures.push(format!(
                "{}: expected Ok {}x{}, {} frames; got {}",
                s.label(),
                want.width,
                want.height,
                want.frames,
                show(&got)
            ));
        }
    }
    report("valid files fail", checked, &failures);
}

#[test]
fn every_cut_of_a_valid_file_fails() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for s in of_kind(Kind::Valid) {
        checked += 1;
        let len = s.bytes.len();
        // One line per file: which cuts did not fail, and what the first of them got.
        let mut wrong = Vec::new();
        let mut first = None;
        for k in 1..16 {
            let cut = len * k / 16;
            let got = validate_bytes(&s.entry.mime, &s.bytes[..cut], LIMITS);
            let fine = matches!(&got, Err(e) if matches!(e.problem, Problem::Truncated | Problem::Corrupt));
            if !fine {
                wrong.push(k.to_string());
                first.get_or_insert_with(|| format!("cut at {cut} of {len} bytes: {}", show(&got)));
            }
        }
        if let Some(first) = first {
            failures.push(format!(
                "{}: cuts at k/16 for k = {} do not fail as Truncated or Corrupt; the first, {first}",
                s.label(),
                wrong.join(", ")
            ));
        }
    }
    report("valid files have cuts that do not fail", checked, &failures);
}

#[test]
fn bombs_are_too_large() {
    check_refusals(Kind::Bomb, "bombs are not refused as too large");
}

#[test]
fn corrupt_files_fail() {
    check_refusals(Kind::Corrupt, "broken files are not refused");
}

fn check_refusals(kind: Kind, what: &str) {
    let mut failures = Vec::new();
    let mut checked = 0;
    for s in of_kind(kind) {
        checked += 1;
        let got = s.validate();
        if !matches!(&got, Err(e) if s.allows(e.problem)) {
            failures.push(format!(
                "{}: expected {}, got {}",
                s.label(),
                s.entry.problems.join(" or "),
                show(&got)
            ));
        }
    }
    report(what, checked, &failures);
}

/// The streaming driver must not depend on how the body is cut into pieces: every file, fed in
/// pieces of a few sizes, gets the answer it gets in one piece (the same error message too).
#[test]
fn every_file_gets_the_same_answer_in_pieces_of_any_size() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for s in corpus() {
        let whole = s.validate();
        for piece in [1, 2, 3, 7, 64, 4093] {
            checked += 1;
            let mut v = Validator::for_mime(&s.entry.mime, LIMITS);
            for chunk in s.bytes.chunks(piece) {
                if v.feed(chunk).is_err() {
                    break;
                }
            }
            let got = v.finish(&mut { &s.bytes[..] });
            if got != whole {
                failures.push(format!(
                    "{} in pieces of {piece}: got {}, in one piece {}",
                    s.label(),
                    show(&got),
                    show(&whole)
                ));
            }
        }
    }
    report("feeds in pieces differ from one piece", checked, &failures);
}
