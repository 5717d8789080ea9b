//! The first judgement of a body: its format from its magic bytes (infer), from an explicit list
//! of accepted formats. Headers from the server are never trusted. Whether the body is a whole
//! image of that format is `validate`'s proof.

/// An accepted raster format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Format {
    pub mime: &'static str,
    /// The blob's file extension.
    pub ext: &'static str,
}

/// The formats jobd stores, by the MIME type infer reports. An explicit list, because
/// `infer::is_image` also says yes to PSD, DWG, CR2, DjVu and others that are not pictures
/// anyone downloads from a URL list. SVG is absent on purpose: it can carry script.
const ACCEPTED: &[Format] = &[
    Format {
        mime: "image/jpeg",
        ext: "jpg",
    },
    Format {
        mime: "image/png",
        ext: "png",
    },
    Format {
        mime: "image/gif",
        ext: "gif",
    },
    Format {
        mime: "image/webp",
        ext: "webp",
    },
    Format {
        mime: "image/bmp",
        ext: "bmp",
    },
    TIFF,
    Format {
        mime: "image/avif",
        ext: "avif",
    },
    Format {
        mime: "image/heif",
        ext: "heif",
    },
    Format {
        mime: "image/vnd.microsoft.icon",
        ext: "ico",
    },
    Format {
        mime: "image/jxl",
        ext: "jxl",
    },
];

const TIFF: Format = Format {
    mime: "image/tiff",
    ext: "tif",
};

/// Bytes needed before the format can be judged; every accepted signature fits in fewer.
pub const SNIFF_LEN: usize = 64;

/// Judges the first bytes of a body (at least [`SNIFF_LEN`] of them, or the whole body).
/// The error says what the bytes look like instead.
pub fn sniff(head: &[u8]) -> Result<Format, String> {
    // infer knows classic TIFF only; BigTIFF (version 43, 64-bit offsets) is the same format.
    if head.starts_with(b"II+\0") || head.starts_with(b"MM\0+") {
        return Ok(TIFF);
    }
    match infer::get(head) {
        Some(kind) => ACCEPTED
            .iter()
            .find(|f| f.mime == kind.mime_type())
            .copied()
            .ok_or_else(|| format!("not an image: the body is {}", kind.mime_type())),
        None if head.is_empty() => Err("not an image: the body is empty".into()),
        None => Err(format!("not an image: {}", describe_unknown(head))),
    }
}

/// A few words on bytes that match no known signature, for the error message.
fn describe_unknown(head: &[u8]) -> String {
    let text = head.iter().skip_while(|b| b.is_ascii_whitespace());
    let start: Vec<u8> = text.take(15).map(u8::to_ascii_lowercase).collect();
    if start.starts_with(b"<svg") || start.starts_with(b"<?xml") {
        "the body is XML or SVG (SVG is not accepted)".into()
    } else if start.starts_with(b"<") {
        "the body is HTML (an error page?)".into()
    } else if head
        .iter()
        .all(|b| b.is_ascii() && (!b.is_ascii_control() || b.is_ascii_whitespace()))
    {
        "the body is plain text".into()
    } else {
        "the bytes match no known image format".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jobd_testkit::images;

    #[test]
    fn accepts_the_generated_formats() {
        for (bytes, mime) in [
            (images::png(31, 17, 1), "image/png"),
            (images::jpeg(640, 480, 20_000, 2), "image/jpeg"),
            (images::webp(300, 200, 5_000, 3), "image/webp"),
            (images::gif(8, 9, 4), "image/gif"),
        ] {
            assert_eq!(sniff(&bytes).unwrap().mime, mime);
        }
    }

    #[test]
    fn html_pdf_zip_svg_and_text_are_not_images() {
        for (body, words) in [
            (&b"<!DOCTYPE html><html>404</html>"[..], "html"),
            (b"  <p>no doctype</p>", "html"),
            (b"  <svg xmlns='http://www.w3.org/2000/svg'/>", "svg"),
            (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "application/pdf"),
            (b"PK\x03\x04\x14\x00\x00\x00\x08\x00", "application/zip"),
            (b"just some words", "plain text"),
            (b"\x00\x01\x02\x03\x04", "no known image format"),
            (b"", "empty"),
        ] {
            let err = sniff(body).unwrap_err();
            assert!(err.to_lowercase().contains(words), "{body:?} gave {err}");
        }
    }

    #[test]
    fn bigtiff_is_tiff_although_infer_does_not_know_it() {
        assert!(infer::get(b"II+\0\x08\0\0\0").is_none());
        assert_eq!(sniff(b"II+\0\x08\0\0\0").unwrap().mime, "image/tiff");
        assert_eq!(sniff(b"MM\0+\0\x08\0\0").unwrap().mime, "image/tiff");
    }

    #[test]
    fn psd_is_refused_although_infer_calls_it_an_image() {
        let psd = b"8BPS\x00\x01\x00\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x10\x00\x00\x00\x10";
        assert!(infer::is_image(psd));
        assert!(sniff(psd).unwrap_err().contains("photoshop"));
    }
}
