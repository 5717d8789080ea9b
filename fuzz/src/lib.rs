//! What every validator fuzz target checks: no panic on any bytes, every verdict in the
//! documented shape, and the same verdict whether the body arrives in one piece or in many
//! (the download loop feeds whatever each read returns).

use jobd::validate::{Limits, Problem, Validator, validate_bytes};

/// The daemon's defaults: a bomb is refused before any large allocation could happen.
const LIMITS: Limits = Limits {
    max_pixels: 100_000_000,
    max_frames: 1_000,
};

/// Validates `bytes` as `mime` whole, then again in pieces whose sizes come from the bytes.
pub fn check(mime: &str, bytes: &[u8]) {
    let whole = validate_bytes(mime, bytes, LIMITS);
    match &whole {
        Ok(image) => assert!(image.width > 0 && image.height > 0 && image.frames > 0),
        Err(e) => {
            let text = e.to_string();
            let prefix = match e.problem {
                Problem::Truncated => "truncated: ",
                Problem::Corrupt => "invalid image: ",
                Problem::TooLarge => "too large: ",
            };
            assert!(text.starts_with(prefix), "{text}");
        }
    }
    let step = 1 + usize::from(bytes.first().copied().unwrap_or(0) % 61);
    let mut v = Validator::for_mime(mime, LIMITS);
    let mut pieces = Ok(());
    for piece in bytes.chunks(step) {
        pieces = v.feed(piece);
        if pieces.is_err() {
            break;
        }
    }
    let split = pieces.and_then(|()| v.finish(&mut { bytes }));
    assert_eq!(
        whole.as_ref().map_err(|e| e.problem),
        split.as_ref().map_err(|e| e.problem),
        "one piece and pieces of {step} disagree"
    );
}
