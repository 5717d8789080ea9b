//! Full decoding: placeholder.
