//! GIF through the `gif` crate: every frame's LZW data, decoded to palette indices 64 KiB at a
//! time (no frame or canvas in memory), and required to yield every pixel of its frame.

use std::num::NonZeroU64;

use gif::{ColorOutput, DecodeOptions, DecodingError, MemoryLimit};

use super::{At, Cx, Decoded, Invalid, Source};

/// Pixels decoded at a time.
const PIECE: usize = 64 << 10;

pub(super) fn decode(input: &mut dyn Source, cx: &Cx) -> Result<Decoded, Invalid> {
    let mut options = DecodeOptions::new();
    options.set_color_output(ColorOutput::Indexed);
    if let Some(limit) = NonZeroU64::new(cx.budget) {
        options.set_memory_limit(MemoryLimit::Bytes(limit));
    }
    // Which blocks and extensions a GIF may hold is the structural validator's call (it follows
    // giflib, which skips unknown extensions); this pass is about pixels.
    options.allow_unknown_blocks(true);
    let mut decoder = options.read_info(input).map_err(|e| error(cx, None, e))?;
    let mut piece = vec![0u8; PIECE];
    let mut n: u32 = 0;
    loop {
        let at: At = Some(("frame", n.saturating_add(1)));
        let Some(frame) = decoder.next_frame_info().map_err(|e| error(cx, at, e))? else {
            break;
        };
        n = n.saturating_add(1);
        let (width, height) = (u64::from(frame.width), u64::from(frame.height));
        cx.count("frame", n.into())?;
        cx.frame("frame", n, width, height)?;
        let pixels = width * height;
        let mut done = 0u64;
        while done < pixels {
            let take = (pixels - done).min(PIECE as u64) as usize;
            let full = decoder
                .fill_buffer(&mut piece[..take])
                .map_err(|e| error(cx, at, e))?;
            if !full {
                return Err(cx.corrupt(
                    at,
                    format_args!(
                        "its LZW data ends before the last of its {} pixels",
                        super::group(pixels)
                    ),
                ));
            }
            done += take as u64;
        }
    }
    Ok(Decoded::Full)
}

fn error(cx: &Cx, at: At, e: DecodingError) -> Invalid {
    match e {
        DecodingError::OutOfMemory | DecodingError::MemoryLimit => {
            cx.too_large(at, "the GIF decoder's memory limit")
        }
        other => cx.corrupt(at, other),
    }
}
