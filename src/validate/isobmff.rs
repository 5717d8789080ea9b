//! IsoBmff: placeholder until its structural validator lands.

use super::{Image, Invalid, Limits, Parser, ReadAt, Step};

pub struct IsoBmff {
    _limits: Limits,
}

impl IsoBmff {
    pub fn new(limits: Limits) -> IsoBmff {
        IsoBmff { _limits: limits }
    }
}

impl Parser for IsoBmff {
    fn name(&self) -> &'static str {
        "IsoBmff"
    }
    fn start(&mut self) -> Step {
        Step::Done
    }
    fn need(&mut self, _: &[u8], _: u64) -> Result<Step, Invalid> {
        Ok(Step::Done)
    }
    fn finish(&mut self, _: u64, _: &mut dyn ReadAt) -> Result<Image, Invalid> {
        Err(Invalid::corrupt("not yet validated"))
    }
    fn inside(&self) -> String {
        String::new()
    }
}
