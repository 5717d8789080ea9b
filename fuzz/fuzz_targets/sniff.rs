//! Fuzzes the image sniffer with arbitrary bytes, as a hostile server would send them: no panic,
//! and every verdict in the documented shape.
#![no_main]

use jobd::sniff;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    match sniff::sniff(bytes) {
        Ok(format) => assert!(format.mime.starts_with("image/"), "{format:?}"),
        Err(e) => assert!(e.starts_with("not an image: "), "{e}"),
    }
});
