//! The first bytes of the bitstreams: a VP8 key frame header, a VP8L header, an ALPH header
//! byte. Only their sizes and the fields libwebp refuses are looked at.

use super::super::{group, le16, le32};

pub(super) fn le24(b: &[u8], at: usize) -> u32 {
    u32::from(le16(b, at)) | u32::from(b[at + 2]) << 16
}

/// The size of a VP8 key frame from the first 10 bytes of its chunk, as libwebp's `VP8GetInfo`
/// and `VP8GetHeaders` check them.
pub(super) fn vp8_size(b: &[u8], chunk_size: u32) -> Result<(u64, u64), String> {
    let tag = u32::from(le16(b, 0)) | u32::from(b[2]) << 16;
    if tag & 1 != 0 {
        return Err("not a key frame".into());
    }
    if (tag >> 1) & 7 > 3 {
        return Err(format!("unknown VP8 profile {}", (tag >> 1) & 7));
    }
    if (tag >> 4) & 1 == 0 {
        return Err("the frame is not marked to be shown".into());
    }
    let partition = tag >> 5;
    if u64::from(partition) > u64::from(chunk_size) - 10 {
        return Err(format!(
            "its first partition ({} bytes) does not fit the chunk",
            group(u64::from(partition))
        ));
    }
    if b[3..6] != [0x9D, 0x01, 0x2A] {
        return Err("no VP8 start code".into());
    }
    // The top two bits are an upscaling hint that decoders ignore.
    let width = u64::from(le16(b, 6) & 0x3FFF);
    let height = u64::from(le16(b, 8) & 0x3FFF);
    if width == 0 || height == 0 {
        return Err(format!("the frame is {width}x{height}"));
    }
    Ok((width, height))
}

/// The size of a VP8L image from the first 5 bytes of its chunk.
pub(super) fn vp8l_size(b: &[u8]) -> Result<(u64, u64), String> {
    if b[0] != 0x2F {
        return Err("no VP8L signature".into());
    }
    let bits = le32(b, 1);
    if bits >> 29 != 0 {
        return Err(format!("unknown VP8L version {}", bits >> 29));
    }
    Ok((
        1 + u64::from(bits & 0x3FFF),
        1 + u64::from((bits >> 14) & 0x3FFF),
    ))
}

/// The ALPH header byte, as libwebp's `ALPHInit` checks it: reserved bits, pre-processing,
/// filter, compression method (0 raw, 1 lossless). Returns the method.
pub(super) fn alph_header(h: u8) -> Result<u8, String> {
    let (method, pre, reserved) = (h & 3, (h >> 4) & 3, h >> 6);
    if method > 1 || pre > 1 || reserved != 0 {
        return Err(format!("has an invalid header byte 0x{h:02x}"));
    }
    Ok(method)
}
