//! APNG's chunks: acTL's frame count, each fcTL's sequence number and rectangle inside the
//! canvas, fdAT's sequence number, and at IEND, as many fcTL as acTL announced, each with data.

use super::{At, Idat, Png};
use crate::validate::{Invalid, Step, be32};

/// What acTL and the fcTL/fdAT chunks so far say.
#[derive(Debug, Clone, Copy)]
pub(super) struct Animation {
    /// acTL's num_frames.
    pub(super) frames: u32,
    /// fcTL chunks seen.
    controls: u32,
    /// The next sequence number fcTL and fdAT must carry (they share one sequence from 0).
    sequence: u64,
    /// The last fcTL came after the IDATs, so fdAT chunks carry its frame's data.
    fdat_frame: bool,
    /// That frame has no fdAT yet.
    awaiting_fdat: bool,
}

impl Png {
    /// acTL's data: the frame count, checked against max_frames before any frame arrives.
    pub(super) fn actl(&mut self, d: &[u8]) -> Result<(), Invalid> {
        let frames = be32(d, 0);
        if frames == 0 {
            return Err(self.corrupt("announces 0 frames"));
        }
        self.limits.check_count("frame", u64::from(frames))?;
        self.actl = Some(Animation {
            frames,
            controls: 0,
            sequence: 0,
            fdat_frame: false,
            awaiting_fdat: false,
        });
        Ok(())
    }

    /// One frame's control: its sequence number, and its rectangle inside the canvas.
    pub(super) fn fctl(&mut self, d: &[u8]) -> Result<(), Invalid> {
        let (Some(mut anim), Some(ihdr)) = (self.actl, self.ihdr) else {
            return Err(self.corrupt("comes without acTL"));
        };
        self.sequence(&mut anim, be32(d, 0))?;
        if anim.awaiting_fdat {
            return Err(self.corrupt(format_args!(
                "starts a frame, but frame {} has no fdAT",
                anim.controls
            )));
        }
        anim.controls += 1;
        let n = anim.controls;
        if n > anim.frames {
            return Err(self.corrupt(format_args!(
                "is one fcTL more than the {} frames acTL announces",
                anim.frames
            )));
        }
        let (w, h, x, y) = (be32(d, 4), be32(d, 8), be32(d, 12), be32(d, 16));
        let (dispose, blend) = (d[24], d[25]);
        if u64::from(x) + u64::from(w) > u64::from(ihdr.width)
            || u64::from(y) + u64::from(h) > u64::from(ihdr.height)
        {
            return Err(Invalid::corrupt(format!(
                "frame {n} ({w}x{h} at {x},{y}) lies outside the {}x{} canvas",
                ihdr.width, ihdr.height
            )));
        }
        // Inside a canvas within max_pixels, this only refuses an empty frame.
        self.limits
            .check_frame("frame", n, u64::from(w), u64::from(h))?;
        if dispose > 2 || blend > 1 {
            return Err(self.corrupt(format_args!(
                "has dispose_op {dispose} and blend_op {blend} (0-2 and 0-1 are defined)"
            )));
        }
        if self.idat == Idat::None {
            // The default image is the first frame: the whole canvas, once.
            if n != 1 {
                return Err(self.corrupt("is a second fcTL before the image data"));
            }
            if x != 0 || y != 0 || w != ihdr.width || h != ihdr.height {
                return Err(self.corrupt(format_args!(
                    "gives the default image {w}x{h} at {x},{y}, not the {}x{} of IHDR",
                    ihdr.width, ihdr.height
                )));
            }
        } else {
            anim.fdat_frame = true;
            anim.awaiting_fdat = true;
        }
        self.actl = Some(anim);
        Ok(())
    }

    /// fcTL and fdAT share one sequence: 0, 1, 2... in file order.
    fn sequence(&self, anim: &mut Animation, number: u32) -> Result<(), Invalid> {
        if u64::from(number) != anim.sequence {
            return Err(self.corrupt(format_args!(
                "has the sequence number {number} instead of {}",
                anim.sequence
            )));
        }
        anim.sequence += 1;
        Ok(())
    }

    /// An fdAT's header: it must carry the data of a frame an fcTL after the IDATs started.
    pub(super) fn fdat(&mut self, len: u32) -> Result<Step, Invalid> {
        let Some(anim) = self.actl else {
            return Err(self.corrupt("comes without acTL"));
        };
        if !anim.fdat_frame {
            return Err(self.corrupt("comes before the fcTL of its frame"));
        }
        if len < 4 {
            return Err(self.corrupt("is shorter than its sequence number"));
        }
        self.len = len - 4;
        self.at = At::FdatSequence;
        Ok(Step::Need(4))
    }

    pub(super) fn fdat_sequence(&mut self, number: u32) -> Result<(), Invalid> {
        if let Some(mut anim) = self.actl {
            self.sequence(&mut anim, number)?;
            anim.awaiting_fdat = false;
            self.actl = Some(anim);
        }
        Ok(())
    }

    /// At IEND: every announced frame came, with its data.
    pub(super) fn animation_complete(&self) -> Result<(), Invalid> {
        let Some(anim) = self.actl else {
            return Ok(());
        };
        if anim.awaiting_fdat {
            return Err(self.corrupt(format_args!(
                "ends the file, but frame {} has no fdAT",
                anim.controls
            )));
        }
        if anim.controls != anim.frames {
            return Err(Invalid::corrupt(format!(
                "acTL announces {} frames, but the file has {} fcTL",
                anim.frames, anim.controls
            )));
        }
        Ok(())
    }
}
