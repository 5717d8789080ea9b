//! The JPEG XL codestream's frames, walked by jxl-oxide's own parser: the image header, the ICC
//! profile (entropy coded), every frame header and its table of contents. jxl-oxide loads a
//! frame's groups as their bytes arrive and says when the frame marked last is complete, which is
//! the only way to tell where a codestream ends: it has no end marker. No pixel is decoded here.
//!
//! jxl-oxide keeps the codestream's bytes (it would render from them), so a JPEG XL body is held
//! in memory while it is checked, up to `max_bytes`; its allocation tracker bounds the rest.

use std::panic::{AssertUnwindSafe, catch_unwind};

use jxl_oxide::{AllocTracker, InitializeResult, JxlImage, JxlThreadPool, UninitializedJxlImage};

use super::super::{Invalid, Limits};

/// What jxl-oxide may allocate beyond the bytes it is fed: headers, TOCs, ICC profiles.
const ALLOC_LIMIT: usize = 64 << 20;

enum State {
    /// Before the image header has been parsed.
    Header(UninitializedJxlImage),
    /// Frames loading.
    Frames(Box<JxlImage>),
    /// The last frame is whole; later bytes are not the codestream's.
    Whole,
    /// jxl-oxide failed (the error was reported) or panicked.
    Broken,
}

/// Feeds every byte of the body (container or bare codestream) to jxl-oxide.
pub(super) struct Frames {
    state: State,
    limits: Limits,
    /// Bytes jxl-oxide left unconsumed (a box header cut between two reads), fed again first.
    carry: Vec<u8>,
    /// Frames checked against the limits so far.
    checked: usize,
    frames: u32,
}

impl Frames {
    pub(super) fn new(limits: Limits) -> Frames {
        let uninit = JxlImage::builder()
            .pool(JxlThreadPool::none())
            .alloc_tracker(AllocTracker::with_limit(ALLOC_LIMIT))
            .build_uninit();
        Frames {
            state: State::Header(uninit),
            limits,
            carry: Vec::new(),
            checked: 0,
            frames: 0,
        }
    }

    /// The next bytes of the body.
    pub(super) fn feed(&mut self, bytes: &[u8]) -> Result<(), Invalid> {
        if bytes.is_empty() || matches!(self.state, State::Whole | State::Broken) {
            return Ok(());
        }
        let state = std::mem::replace(&mut self.state, State::Broken);
        let mut carry = std::mem::take(&mut self.carry);
        let input = if carry.is_empty() {
            bytes
        } else {
            carry.extend_from_slice(bytes);
            &carry[..]
        };
        // jxl-oxide is safe Rust, but a panic on hostile bytes must not take a worker with it.
        let fed = catch_unwind(AssertUnwindSafe(|| feed(state, input)));
        self.state = match fed {
            Ok(Ok((state, used))) => {
                self.carry = input[used.min(input.len())..].to_vec();
                state
            }
            Ok(Err(words)) => {
                return Err(Invalid::corrupt(format!(
                    "the JPEG XL codestream is corrupt: {words}"
                )));
            }
            Err(_) => {
                return Err(Invalid::corrupt(
                    "the JPEG XL codestream made its parser fail (a panic in jxl-oxide)",
                ));
            }
        };
        self.check()
    }

    /// Every frame loaded so far against the limits, as soon as its header is known.
    fn check(&mut self) -> Result<(), Invalid> {
        let State::Frames(image) = &self.state else {
            return Ok(());
        };
        if self.checked == 0 {
            let (w, h) = (image.width(), image.height());
            self.limits.check_frame("image", 1, w.into(), h.into())?;
        }
        while let Some(frame) = image.frame(self.checked) {
            self.checked += 1;
            let n = u32::try_from(self.checked).unwrap_or(u32::MAX);
            let header = frame.header();
            self.limits
                .check_frame("frame", n, header.width.into(), header.height.into())?;
            self.limits.check_count("frame", self.checked as u64)?;
        }
        self.frames = u32::try_from(image.num_loaded_keyframes()).unwrap_or(u32::MAX);
        if image.is_loading_done() {
            self.state = State::Whole;
        }
        Ok(())
    }

    /// Whether the frame marked last has arrived whole.
    pub(super) fn whole(&self) -> bool {
        matches!(self.state, State::Whole)
    }

    /// Displayed frames (keyframes) loaded.
    pub(super) fn count(&self) -> u32 {
        self.frames.max(1)
    }

    /// Where the codestream stopped, for a truncation message.
    pub(super) fn progress(&self) -> String {
        match &self.state {
            State::Header(_) => "in its image header".into(),
            State::Frames(image) => format!(
                "inside frame {} (after {} whole frames)",
                image.num_loaded_frames() + 1,
                image.num_loaded_frames()
            ),
            State::Whole | State::Broken => "after its last frame".into(),
        }
    }
}

/// One feed, and how many of the bytes jxl-oxide consumed. Its errors come boxed, so only their
/// words are kept.
fn feed(state: State, bytes: &[u8]) -> Result<(State, usize), String> {
    let words = |e: Box<dyn std::error::Error + Send + Sync>| e.to_string();
    match state {
        State::Header(mut uninit) => {
            let used = uninit.feed_bytes(bytes).map_err(words)?;
            match uninit.try_init().map_err(words)? {
                InitializeResult::NeedMoreData(uninit) => Ok((State::Header(uninit), used)),
                InitializeResult::Initialized(mut image) => {
                    // The header's bytes are in; whatever the container parser left is fed now.
                    let rest = &bytes[used.min(bytes.len())..];
                    let more = image.feed_bytes(rest).map_err(words)?;
                    Ok((State::Frames(Box::new(image)), used + more))
                }
            }
        }
        State::Frames(mut image) => {
            let used = image.feed_bytes(bytes).map_err(words)?;
            Ok((State::Frames(image), used))
        }
        other => Ok((other, bytes.len())),
    }
}
