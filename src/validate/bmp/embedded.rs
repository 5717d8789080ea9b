//! An image inside another (an icon's PNG or DIB, a BMP's JPEG or PNG), validated by its own
//! parser as its bytes pass by, with messages that say where it sits.

use super::super::{Image, Invalid, Problem, Validator};

/// A nested [`Validator`] fed a known number of bytes of the outer body.
pub(crate) struct Embedded {
    validator: Validator,
    /// Names the image in messages: "image 2 (a PNG of 1,234 bytes at byte 70)".
    label: String,
}

impl Embedded {
    pub(crate) fn new(validator: Validator, label: String) -> Embedded {
        Embedded { validator, label }
    }

    /// The next bytes of the embedded image.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Result<(), Invalid> {
        self.validator.feed(bytes).map_err(|e| wrap(&self.label, e))
    }

    /// All its bytes were fed: is it whole?
    pub(crate) fn finish(self) -> Result<Image, Invalid> {
        // Only TIFF reads back, and no TIFF is ever embedded here.
        let mut nothing: &[u8] = &[];
        let label = self.label;
        self.validator
            .finish(&mut nothing)
            .map_err(|e| wrap(&label, e))
    }
}

/// An embedded image cut short inside a whole container is a broken container, not a truncated
/// download: the outer structure said where it ends.
fn wrap(label: &str, e: Invalid) -> Invalid {
    match e.problem {
        Problem::Truncated => {
            let what = e.message.strip_prefix("truncated: ").unwrap_or(&e.message);
            Invalid::corrupt(format!("{label} is cut short: {what}"))
        }
        problem => Invalid {
            problem,
            message: format!("{label}: {}", e.message),
        },
    }
}
