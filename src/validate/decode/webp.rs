//! WebP through `image-webp`: the still image, or every frame of an animation composited on
//! its canvas (the decoder's only way through them), into one reused canvas-sized buffer.

use std::io::ErrorKind;

use image_webp::{DecodingError, UpsamplingMethod, WebPDecodeOptions, WebPDecoder};

use super::{At, Cx, Decoded, Invalid, Source};

pub(super) fn decode(input: &mut dyn Source, cx: &Cx) -> Result<Decoded, Invalid> {
    let mut options = WebPDecodeOptions::default();
    // Upsampling lossy chroma is colour work, not proof: the cheap kind will do.
    options.lossy_upsampling = UpsamplingMethod::Simple;
    let mut decoder = match WebPDecoder::new_with_options(input, options) {
        Ok(decoder) => decoder,
        Err(e) => return error(cx, None, e),
    };
    decoder.set_memory_limit(cx.budget_usize());
    let (width, height) = decoder.dimensions();
    cx.frame("frame", 1, width.into(), height.into())?;
    let Some(len) = decoder.output_buffer_size() else {
        return Err(cx.too_large(None, "its canvas does not fit in memory"));
    };
    let mut canvas = cx.buffer(None, len as u64)?;
    if decoder.is_animated() {
        let frames = decoder.num_frames();
        cx.count("frame", frames.into())?;
        for n in 1..=frames {
            // read_frame checks each frame against the canvas, so max_pixels holds for it.
            if let Err(e) = decoder.read_frame(&mut canvas) {
                return error(cx, Some(("frame", n)), e);
            }
        }
    } else if let Err(e) = decoder.read_image(&mut canvas) {
        return error(cx, None, e);
    }
    Ok(Decoded::Full)
}

fn error(cx: &Cx, at: At, e: DecodingError) -> Result<Decoded, Invalid> {
    match e {
        DecodingError::UnsupportedFeature(what) => Ok(cx.unsupported(what)),
        DecodingError::MemoryLimitExceeded | DecodingError::ImageTooLarge => {
            Err(cx.too_large(at, e))
        }
        DecodingError::IoError(io) if io.kind() == ErrorKind::UnexpectedEof => {
            Err(cx.corrupt(at, "its compressed data ends before its last pixel"))
        }
        other => Err(cx.corrupt(at, other)),
    }
}
