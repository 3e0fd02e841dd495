//! Fuzz target: the celeba_lists parser on arbitrary bytes (see `../bodies.rs`).

#![no_main]

#[path = "../bodies.rs"]
#[allow(dead_code)]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| bodies::celeba_lists(data));
