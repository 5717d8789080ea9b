//! Fuzzes the BMP validator (image/bmp): no panic, and one verdict however the body is split.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| jobd_fuzz::check("image/bmp", bytes));
