//! Fuzzes `joburl::parse` with arbitrary UTF-8: it must never panic, and what it accepts must be
//! a fetchable http(s) URL as its documentation promises.
#![no_main]

use jobd::joburl::{self, MAX_URL_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|raw: &str| {
    match joburl::parse(raw) {
        Ok(url) => {
            assert!(matches!(url.scheme(), "http" | "https"), "{url}");
            assert!(url.host().is_some(), "{url}");
            assert!(raw.len() <= MAX_URL_LEN);
            let bad = |c: char| c.is_control() || c.is_whitespace();
            assert!(!raw.contains(bad), "{raw:?}");
            assert!(!url.as_str().contains(bad), "{url}");
        }
        Err(e) => {
            assert!(!e.is_empty());
            // The error goes into one line of the job's `error` column and of jobctl's output.
            assert!(!e.contains(|c: char| c.is_control()), "{e:?}");
        }
    }
});
