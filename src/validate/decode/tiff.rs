//! TIFF through the `tiff` crate: every page of the directory chain, one strip or tile at a time
//! into a reused buffer. Sub-IFDs (EXIF thumbnails, reduced-resolution images) are not reached.

use std::io::ErrorKind;

use tiff::TiffError;
use tiff::decoder::{ChunkType, Decoder, Limits};

use super::{At, Cx, Decoded, Invalid, Source};

pub(super) fn decode(input: &mut dyn Source, cx: &Cx) -> Result<Decoded, Invalid> {
    match pages(input, cx) {
        Ok(()) => Ok(Decoded::Full),
        Err(Failed::Invalid(e)) => Err(e),
        Err(Failed::Tiff(at, e)) => error(cx, at, e),
    }
}

enum Failed {
    Invalid(Invalid),
    Tiff(At, TiffError),
}

impl From<Invalid> for Failed {
    fn from(e: Invalid) -> Failed {
        Failed::Invalid(e)
    }
}

fn pages(input: &mut dyn Source, cx: &Cx) -> Result<(), Failed> {
    let mut limits = Limits::default();
    limits.decoding_buffer_size = cx.budget_usize();
    limits.intermediate_buffer_size = cx.budget_usize();
    // Strip and tile offset arrays of very large images exceed the default 1 MiB.
    limits.ifd_value_size = 16 << 20;
    let first: At = Some(("page", 1));
    let mut decoder = Decoder::new(input)
        .map_err(|e| Failed::Tiff(first, e))?
        .with_limits(limits);
    let mut buf = Vec::new();
    let mut page: u32 = 1;
    loop {
        let at: At = Some(("page", page));
        let tiff = |e| Failed::Tiff(at, e);
        cx.count("page", page.into())?;
        let (width, height) = decoder.dimensions().map_err(tiff)?;
        cx.frame("page", page, width.into(), height.into())?;
        let chunks = match decoder.get_chunk_type() {
            ChunkType::Strip => decoder.strip_count(),
            ChunkType::Tile => decoder.tile_count(),
        }
        .map_err(tiff)?;
        for chunk in 0..chunks {
            let len = decoder.image_chunk_buffer_layout(chunk).map_err(tiff)?.len;
            cx.grow(at, &mut buf, len as u64)?;
            decoder
                .read_chunk_bytes(chunk, &mut buf[..len])
                .map_err(tiff)?;
        }
        if !decoder.more_images() {
            return Ok(());
        }
        page = page.saturating_add(1);
        decoder
            .next_image()
            .map_err(|e| Failed::Tiff(Some(("page", page)), e))?;
    }
}

fn error(cx: &Cx, at: At, e: TiffError) -> Result<Decoded, Invalid> {
    match e {
        TiffError::UnsupportedError(what) => Ok(cx.unsupported(what)),
        TiffError::LimitsExceeded => Err(cx.too_large(at, "the TIFF decoder's memory limit")),
        TiffError::IoError(io) if io.kind() == ErrorKind::UnexpectedEof => {
            Err(cx.corrupt(at, "a strip or tile ends before its last pixel"))
        }
        other => Err(cx.corrupt(at, other)),
    }
}
