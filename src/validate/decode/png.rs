//! PNG and APNG through the `png` crate: every frame, row by row (one row in memory), with each
//! zlib stream's Adler-32 checked (the crate skips it by default; libpng checks it).

use std::io::ErrorKind;

use png::{DecodeOptions, Decoder, DecodingError, Limits, Transformations};

use super::{At, Cx, Decoded, Invalid, Source};

pub(super) fn decode(input: &mut dyn Source, cx: &Cx) -> Result<Decoded, Invalid> {
    decode_png(input, cx, None)?;
    Ok(Decoded::Full)
}

/// Decodes a PNG, or the PNG embedded as image `image` of an icon.
pub(super) fn decode_png(
    input: &mut dyn Source,
    cx: &Cx,
    image: Option<u32>,
) -> Result<(), Invalid> {
    let outer: At = image.map(|n| ("image", n));
    let mut options = DecodeOptions::default();
    options.set_ignore_adler32(false);
    // The streaming validator has checked every chunk's CRC already.
    options.set_ignore_crc(true);
    // Text and ICC profiles are metadata, not pixels: the structural validator saw their chunks.
    options.set_ignore_text_chunk(true);
    options.set_ignore_iccp_chunk(true);
    let mut decoder = Decoder::new_with_options(input, options);
    decoder.set_limits(Limits {
        bytes: cx.budget_usize(),
    });
    // Raw samples: no palette expansion or 16-to-8 stripping, work that proves nothing.
    decoder.set_transformations(Transformations::IDENTITY);
    let mut reader = decoder.read_info().map_err(|e| error(cx, outer, e))?;
    let info = reader.info();
    let (width, height) = info.size();
    let frames = match &info.animation_control {
        None => 1,
        // An IDAT without an fcTL before it is a default image outside the animation: a frame
        // more to decode.
        Some(animation) => {
            u64::from(animation.num_frames) + u64::from(info.frame_control.is_none())
        }
    };
    match image {
        Some(n) => cx.frame("image", n, width.into(), height.into())?,
        None => cx.frame("frame", 1, width.into(), height.into())?,
    }
    cx.count("frame", frames)?;
    for n in 1..=frames {
        // Frames are numbered in messages only when there are several.
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        let at = outer.or((frames > 1).then_some(("frame", n)));
        if n > 1 {
            let control = reader.next_frame_info().map_err(|e| error(cx, at, e))?;
            cx.frame("frame", n, control.width.into(), control.height.into())?;
        }
        while reader.next_row().map_err(|e| error(cx, at, e))?.is_some() {}
    }
    Ok(())
}

fn error(cx: &Cx, at: At, e: DecodingError) -> Invalid {
    match e {
        DecodingError::LimitsExceeded => cx.too_large(at, "the PNG decoder's memory limit"),
        DecodingError::IoError(e) if e.kind() == ErrorKind::UnexpectedEof => {
            cx.corrupt(at, "the image data ends before the last row")
        }
        other => cx.corrupt(at, other),
    }
}
