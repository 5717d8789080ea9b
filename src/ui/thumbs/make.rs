//! Making one thumbnail: decoding a blob with memory-safe decoders under `max_pixels` (a JPEG
//! at a reduced scale), shrinking it to fit [`SIDE`] with image's own resize, and encoding it;
//! and the placeholder for what cannot be decoded.

use std::fs;
use std::io::{BufReader, Cursor};
use std::path::Path;

use image::{DynamicImage, ImageFormat, ImageReader};

use super::{SIDE, Thumb};

/// Whether image's decoders read this type; the others get a placeholder.
pub(super) fn format_of(mime: &str) -> Option<ImageFormat> {
    Some(match mime {
        "image/png" | "image/apng" => ImageFormat::Png,
        "image/jpeg" => ImageFormat::Jpeg,
        "image/gif" => ImageFormat::Gif,
        "image/webp" => ImageFormat::WebP,
        "image/bmp" => ImageFormat::Bmp,
        "image/tiff" => ImageFormat::Tiff,
        "image/x-icon" | "image/vnd.microsoft.icon" => ImageFormat::Ico,
        _ => return None,
    })
}

/// Decodes the image at `path` under `max_pixels` and shrinks it to fit [`SIDE`]: JPEG, or
/// PNG when it has alpha.
pub fn thumbnail(path: &Path, mime: &str, max_pixels: u64) -> Result<Thumb, String> {
    let format = format_of(mime).ok_or_else(|| format!("no decoder for {mime}"))?;
    let open = || -> Result<BufReader<fs::File>, String> {
        let file =
            fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Ok(BufReader::with_capacity(64 << 10, file))
    };
    let decode = || -> Result<DynamicImage, String> {
        if format == ImageFormat::Jpeg {
            return jpeg_scaled(open()?, max_pixels);
        }
        let (width, height) = ImageReader::with_format(open()?, format)
            .into_dimensions()
            .map_err(|e| format!("cannot read its size: {e}"))?;
        check_pixels(width.into(), height.into(), max_pixels)?;
        let mut reader = ImageReader::with_format(open()?, format);
        let mut limits = image::Limits::default();
        limits.max_image_width = Some(width);
        limits.max_image_height = Some(height);
        limits.max_alloc = Some(alloc_limit(max_pixels));
        reader.limits(limits);
        reader.decode().map_err(|e| format!("cannot decode it: {e}"))
    };
    let image = std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode))
        .map_err(|_| "the decoder panicked".to_string())??;
    encode(&shrink(&image))
}

fn check_pixels(width: u64, height: u64, max_pixels: u64) -> Result<(), String> {
    if width * height > max_pixels {
        return Err(format!("{width}x{height} is over max_pixels ({max_pixels})"));
    }
    Ok(())
}

/// The most memory a decoder may take: RGBA at 16 bits a channel, the largest buffer one makes,
/// with room for its own tables.
fn alloc_limit(max_pixels: u64) -> u64 {
    max_pixels.saturating_mul(8).saturating_add(64 << 20)
}

/// A JPEG decoded at the smallest of 1/8, 1/4, 1/2 and 1 of its size that still covers
/// [`SIDE`]: the reduced inverse DCT skips most of the work (and memory) a thumbnail would throw
/// away.
fn jpeg_scaled(input: BufReader<fs::File>, max_pixels: u64) -> Result<DynamicImage, String> {
    use jpeg_decoder::PixelFormat;
    let mut decoder = jpeg_decoder::Decoder::new(input);
    decoder
        .read_info()
        .map_err(|e| format!("cannot read its header: {e}"))?;
    let info = decoder.info().ok_or("no JPEG header")?;
    check_pixels(info.width.into(), info.height.into(), max_pixels)?;
    decoder.set_max_decoding_buffer_size(usize::try_from(alloc_limit(max_pixels)).unwrap_or(usize::MAX));
    let side = u16::try_from(SIDE).unwrap_or(u16::MAX);
    let (w, h) = decoder
        .scale(side, side)
        .map_err(|e| format!("cannot scale it: {e}"))?;
    let pixels = decoder
        .decode()
        .map_err(|e| format!("cannot decode it: {e}"))?;
    let (w, h) = (u32::from(w), u32::from(h));
    let bad = || "the decoder gave fewer pixels than its size".to_string();
    Ok(match info.pixel_format {
        PixelFormat::RGB24 => DynamicImage::ImageRgb8(image::RgbImage::from_raw(w, h, pixels).ok_or_else(bad)?),
        PixelFormat::L8 => DynamicImage::ImageLuma8(image::GrayImage::from_raw(w, h, pixels).ok_or_else(bad)?),
        PixelFormat::L16 => {
            let wide: Vec<u16> = pixels
                .chunks_exact(2)
                .map(|p| u16::from_be_bytes([p[0], p[1]]))
                .collect();
            DynamicImage::ImageLuma16(
                image::ImageBuffer::from_raw(w, h, wide).ok_or_else(bad)?,
            )
        }
        PixelFormat::CMYK32 => {
            // As image 0.24 turned jpeg-decoder's CMYK into RGB.
            let rgb: Vec<u8> = pixels
                .chunks_exact(4)
                .flat_map(|p| {
                    let k = 255 - u16::from(p[3]);
                    [p[0], p[1], p[2]].map(|c| ((255 - u16::from(c)) * k / 255) as u8)
                })
                .collect();
            DynamicImage::ImageRgb8(image::RgbImage::from_raw(w, h, rgb).ok_or_else(bad)?)
        }
    })
}

/// The image shrunk to fit [`SIDE`] (never enlarged).
fn shrink(image: &DynamicImage) -> DynamicImage {
    let (w, h) = (image.width(), image.height());
    if w <= SIDE && h <= SIDE {
        return image.clone();
    }
    let scale = f64::from(SIDE) / f64::from(w.max(h));
    let (tw, th) = (
        ((f64::from(w) * scale).round() as u32).max(1),
        ((f64::from(h) * scale).round() as u32).max(1),
    );
    image.thumbnail_exact(tw, th)
}

fn encode(image: &DynamicImage) -> Result<Thumb, String> {
    let mut bytes = Vec::new();
    let content_type = if image.color().has_alpha() {
        image
            .to_rgba8()
            .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
            .map_err(|e| format!("cannot encode the thumbnail: {e}"))?;
        "image/png"
    } else {
        let rgb = image.to_rgb8();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 80)
            .encode_image(&rgb)
            .map_err(|e| format!("cannot encode the thumbnail: {e}"))?;
        "image/jpeg"
    };
    Ok(Thumb {
        bytes,
        content_type,
        placeholder: false,
    })
}

/// A plain grey tile, for an image without a thumbnail; the page writes its type under it.
pub fn placeholder() -> Thumb {
    static TILE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let bytes = TILE
        .get_or_init(|| {
            let tile = image::RgbImage::from_pixel(SIDE, SIDE * 3 / 4, image::Rgb([214, 218, 224]));
            let mut out = Vec::new();
            DynamicImage::ImageRgb8(tile)
                .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
                .map(|()| out)
                .unwrap_or_default()
        })
        .clone();
    Thumb {
        bytes,
        content_type: "image/png",
        placeholder: true,
    }
}
