//! Replays every fuzz target's inputs on the stable toolchain (§6, §7):
//! the seeds, the corpus the fuzzer grew and every input that once crashed
//! a parser (`fuzz/regressions/`), through the same bodies the targets run
//! (`fuzz/bodies.rs`). A panic here is a parser bug.

#[path = "../fuzz/bodies.rs"]
mod bodies;

use std::path::Path;

#[test]
fn every_fuzz_input_replays_without_a_panic() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for (target, body) in bodies::TARGETS {
        let mut replayed = 0;
        for folder in ["seeds", "corpus", "regressions"] {
            let Ok(entries) = std::fs::read_dir(fuzz.join(folder).join(target)) else {
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                let outcome = std::panic::catch_unwind(|| body(&data));
                assert!(outcome.is_ok(), "{target}: {} panics", path.display());
                replayed += 1;
            }
        }
        assert!(
            replayed > 0,
            "{target}: no seeds (run python3 fuzz/make_seeds.py)"
        );
        eprintln!("{target}: {replayed} inputs replayed");
    }
}
