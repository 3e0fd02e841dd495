//! Fuzz target for the `comod trace` input parser (§7): any bytes are
//! either rejected with an error or accepted, never a panic.
//!
//! Run (nightly toolchain and cargo-fuzz): `cargo fuzz run trace_inputs`.
//! `tests/trace.rs` runs a corrupted-input property test of the same
//! parser on the stable toolchain.

#![no_main]

use std::path::Path;

use comod::io::tensors::TensorFile;
use comod::io::trace::parse_trace_inputs;
use comod::net::Arch;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let arch = Arch::preset("paper3", 1).expect("a preset");
    if let Ok(file) = TensorFile::from_bytes(Path::new("fuzz-input"), data.to_vec()) {
        let _ = parse_trace_inputs(&file, &arch);
    }
});
