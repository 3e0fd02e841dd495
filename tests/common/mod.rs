//! Helpers shared by the integration tests: running the `comod` binary and
//! drawing random architectures. Each test file uses a part of them.
#![allow(dead_code)]

use std::process::{Command, Output};

use comod::data::CANVAS_PIXELS;
use comod::kernel::Body;
use comod::net::{Arch, LayerKind, LayerSpec, Nonlinearity};
use proptest::prelude::*;

/// Runs `comod args` from the crate folder with `RAYON_NUM_THREADS = threads`.
pub fn comod(args: &[&str], threads: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_comod"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RAYON_NUM_THREADS", threads)
        .output()
        .expect("comod runs")
}

/// The lines of a results file with each record's wall time removed (the
/// one field that differs between identical runs).
pub fn without_wall_time(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
            v.as_object_mut().unwrap().remove("wall_s");
            v.to_string()
        })
        .collect()
}

/// Random valid architectures (§2): an encoder of 4·(1..=max_quarter)
/// neurons (exp or ReLU), 1..=max_hidden dense or local hidden layers of up
/// to 4·max_quarter neurons (dense sizes 3q + 1, so not multiples of 4 or 8),
/// the readout, any modulated layer and β in [−0.5, 0.5].
pub fn arch_strategy(max_quarter: usize, max_hidden: usize) -> impl Strategy<Value = Arch> {
    (
        1..=max_quarter,
        prop::bool::ANY,
        prop::collection::vec((prop::bool::ANY, 1..=max_quarter), 1..=max_hidden),
        0usize..4,
        -0.5f32..0.5,
    )
        .prop_map(|(quarter, exp, hidden, modulated, beta)| {
            let mut layers = vec![LayerSpec {
                kind: LayerKind::Encoder,
                size: 4 * quarter,
                nonlinearity: Some(if exp {
                    Nonlinearity::Exp
                } else {
                    Nonlinearity::Relu
                }),
            }];
            for (local, q) in hidden {
                let local = local && layers.last().unwrap().size % 4 == 0;
                layers.push(LayerSpec {
                    kind: if local {
                        LayerKind::Local
                    } else {
                        LayerKind::Dense
                    },
                    size: if local { 4 * q } else { 3 * q + 1 },
                    nonlinearity: None,
                });
            }
            layers.push(LayerSpec {
                kind: LayerKind::Readout,
                size: 10,
                nonlinearity: None,
            });
            let modulated_layer = 1 + modulated % (layers.len() - 1);
            let arch = Arch {
                format: 1,
                input: CANVAS_PIXELS,
                layers,
                modulated_layer,
                beta,
            };
            arch.validate()
                .expect("the strategy builds valid architectures");
            arch
        })
}

/// Every kernel body this CPU runs: scalar always, AVX2+FMA where present.
pub fn bodies() -> Vec<Body> {
    let mut bodies = vec![Body::Scalar];
    if Body::detect() == Body::Avx2Fma {
        bodies.push(Body::Avx2Fma);
    } else {
        eprintln!("this CPU has no AVX2+FMA: only the scalar body is tested");
    }
    bodies
}
