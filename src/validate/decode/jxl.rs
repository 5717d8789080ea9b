//! JPEG XL through `jxl-oxide`, single-threaded and under its allocation tracker: every
//! keyframe rendered (which decodes the frames it is blended from or refers to), one at a time.
//! Frames saved only for reference and never used are not reached.

use std::error::Error;

use jxl_oxide::{AllocTracker, JxlImage, JxlThreadPool};

use super::{At, Cx, Decoded, Invalid, Source};

pub(super) fn decode(input: &mut dyn Source, cx: &Cx) -> Result<Decoded, Invalid> {
    let cx = &Cx {
        budget: budget(cx),
        ..*cx
    };
    let tracker = AllocTracker::with_limit(cx.budget_usize());
    let image = match JxlImage::builder()
        .pool(JxlThreadPool::none())
        .alloc_tracker(tracker)
        .read(input)
    {
        Ok(image) => image,
        Err(e) => return error(cx, None, &*e),
    };
    if !image.is_loading_done() {
        return Err(cx.corrupt(None, "its codestream ends before its last frame"));
    }
    cx.frame("frame", 1, image.width().into(), image.height().into())?;
    let keyframes = image.num_loaded_keyframes();
    cx.count("frame", keyframes as u64)?;
    // Every frame, displayed or not, against max_pixels before any is decoded.
    for index in 0..image.num_loaded_frames() {
        if let Some(frame) = image.frame(index) {
            let header = frame.header();
            let n = u32::try_from(index + 1).unwrap_or(u32::MAX);
            cx.frame("frame", n, header.width.into(), header.height.into())?;
        }
    }
    for index in 0..keyframes {
        let at: At = (keyframes > 1).then(|| ("frame", u32::try_from(index + 1).unwrap_or(0)));
        if let Err(e) = image.render_frame(index) {
            return error(cx, at, &*e);
        }
    }
    Ok(Decoded::Full)
}

/// jxl-oxide keeps a frame's channels as 32-bit floats and integers, and the frames others refer
/// to: far more memory a pixel than the other decoders (its tracker counted 21 to 24 bytes a
/// pixel for a lossy RGB image, 25 to 28 with alpha).
fn budget(cx: &Cx) -> u64 {
    cx.limits
        .max_pixels
        .saturating_mul(JXL_BYTES_PER_PIXEL)
        .saturating_add(64 << 20)
}

/// Room for extra channels (CMYK's black, alpha) over the measured need.
const JXL_BYTES_PER_PIXEL: u64 = 40;

/// jxl-oxide's errors come boxed, as enums of its inner crates that it does not re-export, so
/// they are told apart by their words: its allocation tracker says "failed to allocate" (or
/// "out of memory"); what it lacks is "not supported" (including its profile's limits), or a
/// colour conversion without a colour-management engine.
fn error(cx: &Cx, at: At, e: &(dyn Error + 'static)) -> Result<Decoded, Invalid> {
    let words = e.to_string();
    if words.contains("failed to allocate") || words.contains("out of memory") {
        return Err(cx.too_large(at, words));
    }
    if words.contains("not supported")
        || words.contains("unsupported")
        || words.contains("color management system")
    {
        return Ok(cx.unsupported(words));
    }
    Err(cx.corrupt(at, words))
}
