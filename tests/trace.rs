//! `comod trace` inputs (§7): every malformed input is rejected with
//! one line naming the tensor or key, a non-zero exit and no output file;
//! arbitrary bytes never make the parser panic.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use comod::io::save_checkpoint;
use comod::io::tensors::{TensorData, TensorFile, write_tensors};
use comod::io::trace::parse_trace_inputs;
use comod::net::{Arch, Model, Modulation};
use proptest::prelude::*;

type Tensors = Vec<(String, Vec<usize>, TensorData)>;
type Metadata = HashMap<String, String>;
/// A change that breaks a valid input.
type Edit = Box<dyn FnOnce(&mut Tensors, &mut Metadata)>;

/// A valid input: K = 3 trials, T = 5 samples, pair readout, coupling.
fn valid() -> (Tensors, HashMap<String, String>) {
    let tensors = vec![
        (
            "stimuli".into(),
            vec![3, 784],
            TensorData::F32(vec![0.25; 3 * 784]),
        ),
        (
            "modulator".into(),
            vec![3, 5],
            TensorData::F32((0..15).map(|i| 1.0 + 0.01 * i as f32).collect()),
        ),
        ("labels".into(), vec![3], TensorData::I64(vec![0, 1, 1])),
        ("pair".into(), vec![2], TensorData::I64(vec![1, 7])),
        (
            "coupling".into(),
            vec![400],
            TensorData::F32(vec![1.0; 400]),
        ),
    ];
    let metadata = HashMap::from([
        ("m0".to_string(), "1".to_string()),
        ("gain_rule".to_string(), "covariance".to_string()),
    ]);
    (tensors, metadata)
}

fn set(tensors: &mut Tensors, name: &str, shape: Vec<usize>, data: TensorData) {
    tensors.retain(|t| t.0 != name);
    tensors.push((name.to_string(), shape, data));
}

/// Writes the inputs, parses them for paper3, returns the error message.
fn rejection(edit: impl FnOnce(&mut Tensors, &mut HashMap<String, String>)) -> String {
    let dir = tempfile::tempdir().unwrap();
    let (mut tensors, mut metadata) = valid();
    edit(&mut tensors, &mut metadata);
    let path = dir.path().join("in.safetensors");
    write_tensors(&path, &tensors, metadata).unwrap();
    let file = TensorFile::read(&path).unwrap();
    let arch = Arch::preset("paper3", 1).unwrap();
    let err = parse_trace_inputs(&file, &arch)
        .expect_err("must be rejected")
        .to_string();
    assert!(
        err.contains("in.safetensors") && !err.contains('\n'),
        "{err}"
    );
    err
}

#[test]
fn valid_inputs_parse() {
    let dir = tempfile::tempdir().unwrap();
    let (tensors, metadata) = valid();
    let path = dir.path().join("in.safetensors");
    write_tensors(&path, &tensors, metadata).unwrap();
    let inputs = parse_trace_inputs(
        &TensorFile::read(&path).unwrap(),
        &Arch::preset("paper3", 1).unwrap(),
    )
    .unwrap();
    assert_eq!(
        (
            inputs.labels.len(),
            inputs.modulator.len(),
            inputs.options.m0,
            inputs.options.lambda
        ),
        (3, 15, 1.0, 0.0)
    );
}

#[test]
fn rejects_each_malformed_input_naming_it() {
    let cases: Vec<(Edit, &str)> = vec![
        (
            Box::new(|t, _| t.retain(|t| t.0 != "labels")),
            "missing tensor labels",
        ),
        (
            Box::new(|t, _| t.retain(|t| t.0 != "stimuli")),
            "missing tensor stimuli",
        ),
        (
            Box::new(|t, _| {
                set(
                    t,
                    "stimuli",
                    vec![3, 783],
                    TensorData::F32(vec![0.0; 3 * 783]),
                )
            }),
            "tensor stimuli has shape [3, 783]",
        ),
        (
            Box::new(|t, _| {
                set(
                    t,
                    "stimuli",
                    vec![3, 784],
                    TensorData::I64(vec![0; 3 * 784]),
                )
            }),
            "tensor stimuli has dtype I64, expected F32",
        ),
        (
            Box::new(|t, _| set(t, "labels", vec![3], TensorData::F32(vec![0.0; 3]))),
            "tensor labels has dtype F32, expected I64",
        ),
        (
            Box::new(|t, _| set(t, "labels", vec![3], TensorData::I64(vec![0, 2, 1]))),
            "tensor labels: label 2 at index 1 is not 0 or 1",
        ),
        (
            Box::new(|t, _| {
                t.retain(|t| t.0 != "pair");
                set(t, "labels", vec![3], TensorData::I64(vec![0, 10, 1]))
            }),
            "tensor labels: label 10 at index 1 is not a class 0..9",
        ),
        (
            Box::new(|t, _| set(t, "labels", vec![3], TensorData::I64(vec![0, -1, 1]))),
            "label -1 at index 1",
        ),
        (
            Box::new(|t, _| set(t, "pair", vec![2], TensorData::I64(vec![3, 3]))),
            "tensor pair is [3, 3]",
        ),
        (
            Box::new(|t, _| set(t, "modulator", vec![4, 5], TensorData::F32(vec![1.0; 20]))),
            "tensor modulator has K = 4 rows but stimuli has K = 3",
        ),
        (
            Box::new(|t, _| set(t, "modulator", vec![3, 0], TensorData::F32(vec![]))),
            "tensor modulator has T = 0 samples per trial",
        ),
        (
            Box::new(|t, _| {
                let mut m = vec![1.0f32; 15];
                m[7] = f32::NAN;
                set(t, "modulator", vec![3, 5], TensorData::F32(m))
            }),
            "tensor modulator has a non-finite value NaN at index 7",
        ),
        (
            Box::new(|t, _| {
                let mut s = vec![0.0f32; 3 * 784];
                s[9] = f32::INFINITY;
                set(t, "stimuli", vec![3, 784], TensorData::F32(s))
            }),
            "tensor stimuli has a non-finite value inf at index 9",
        ),
        (
            Box::new(|t, _| set(t, "coupling", vec![200], TensorData::F32(vec![1.0; 200]))),
            "tensor coupling has shape [200], expected [400]",
        ),
        (
            Box::new(|t, _| set(t, "gain", vec![400], TensorData::F32(vec![1.0; 400]))),
            "tensor gain has shape [400], expected [200]",
        ),
        (
            Box::new(|t, _| set(t, "extra", vec![1], TensorData::F32(vec![1.0]))),
            "unexpected tensor extra",
        ),
        (
            Box::new(|_, m| drop(m.insert("gain_rule".into(), "spearman".into()))),
            "metadata key gain_rule: unknown value \"spearman\" (expected covariance or correlation)",
        ),
        (
            Box::new(|_, m| drop(m.insert("gain-rule".into(), "correlation".into()))),
            "unknown metadata key gain-rule (known: m0, lambda, gain_rule, modulation_compensation, modulator_var, coupling_param)",
        ),
        (
            Box::new(|_, m| {
                m.insert("task".into(), "0".into());
                drop(m.insert("lr".into(), "0.1".into()))
            }),
            "unknown metadata keys lr, task",
        ),
        (
            Box::new(|_, m| drop(m.insert("modulation_compensation".into(), "yes".into()))),
            "metadata key modulation_compensation: unknown value \"yes\" (expected none or variance)",
        ),
        (
            Box::new(|_, m| drop(m.insert("modulator_var".into(), "-0.5".into()))),
            "metadata key modulator_var: -0.5 is negative",
        ),
        (
            Box::new(|_, m| drop(m.insert("coupling_param".into(), "cube".into()))),
            "metadata key coupling_param: unknown value \"cube\" (expected linear or square)",
        ),
        (
            Box::new(|_, m| drop(m.insert("m0".into(), "one".into()))),
            "metadata key m0: \"one\" is not a finite number",
        ),
        (
            Box::new(|_, m| drop(m.insert("lambda".into(), "NaN".into()))),
            "metadata key lambda",
        ),
        (
            Box::new(|_, m| drop(m.insert("lambda".into(), "-0.1".into()))),
            "metadata key lambda: -0.1 is negative",
        ),
    ];
    for (edit, needle) in cases {
        let err = rejection(edit);
        assert!(err.contains(needle), "{needle:?} not in {err}");
    }
}

#[test]
fn command_fails_in_one_line_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("ck.safetensors");
    let arch = Arch::preset("paper3", 1).unwrap();
    save_checkpoint(
        &checkpoint,
        &Model::<f32>::init(&arch, 1),
        &Modulation::off(&arch),
        &[],
    )
    .unwrap();
    let (mut tensors, metadata) = valid();
    set(
        &mut tensors,
        "modulator",
        vec![3, 0],
        TensorData::F32(vec![]),
    );
    let inputs = dir.path().join("in.safetensors");
    write_tensors(&inputs, &tensors, metadata).unwrap();
    let out = dir.path().join("out.safetensors");
    let run = |inputs: &Path| {
        Command::new(env!("CARGO_BIN_EXE_comod"))
            .args([
                "trace",
                "--checkpoint",
                checkpoint.to_str().unwrap(),
                "--inputs",
                inputs.to_str().unwrap(),
            ])
            .args(["--out", out.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let output = run(&inputs);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("T = 0"), "{stderr}");
    assert!(!out.exists(), "no output file");
    let (tensors, metadata) = valid();
    write_tensors(&inputs, &tensors, metadata).unwrap();
    let output = run(&inputs);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let written = TensorFile::read(&out).unwrap();
    assert_eq!(written.shape("trial_gain").unwrap(), vec![3, 200]);
    assert_eq!(
        written.shape("grad.layers.1.weight").unwrap(),
        vec![400, 784]
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The stable-toolchain stand-in for the `fuzz/` target: corrupted input
    /// files are rejected or accepted, never a panic.
    #[test]
    fn corrupted_inputs_never_panic(flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), cut in any::<prop::sample::Index>(), truncate in prop::bool::ANY) {
        let dir = tempfile::tempdir().unwrap();
        let (tensors, metadata) = valid();
        let path = dir.path().join("in.safetensors");
        write_tensors(&path, &tensors, metadata).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        // Corrupt mostly the header, where the parser's decisions are.
        let header = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        for (at, value) in flips {
            let i = at.index(header.min(bytes.len()));
            bytes[i] ^= value;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        let arch = Arch::preset("paper3", 1).unwrap();
        if let Ok(file) = TensorFile::from_bytes(&path, bytes) {
            let _ = parse_trace_inputs(&file, &arch);
        }
    }
}
