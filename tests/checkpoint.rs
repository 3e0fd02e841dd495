//! Checkpoints (§7): bit-exact round trip and every rejection naming
//! its tensor.

use std::collections::HashMap;

use comod::io::checkpoint::{ARCH_KEY, model_tensors};
use comod::io::tensors::{TensorData, write_tensors};
use comod::io::{load_checkpoint, save_checkpoint};
use comod::net::arch::PRESETS;
use comod::net::{Arch, Model, Modulation};
use rand::{RngExt, SeedableRng};

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn round_trip_is_bit_exact_for_every_preset() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(4);
    for name in PRESETS {
        for modulated in [1, 2] {
            let arch = Arch::preset(name, modulated).unwrap();
            let mut model = Model::<f32>::init(&arch, 17);
            for p in &mut model.params {
                *p += rng.random_range(-1e-3..1e-3);
            }
            let mut modulation = Modulation::off(&arch);
            modulation
                .coupling
                .iter_mut()
                .for_each(|c| *c = rng.random_range(-2.0..2.0));
            modulation
                .gain
                .iter_mut()
                .for_each(|g| *g = rng.random_range(0.0..3.0));
            let path = dir.path().join(format!("{name}-{modulated}.safetensors"));
            save_checkpoint(&path, &model, &modulation, &[("note", "x".into())]).unwrap();
            let loaded = load_checkpoint(&path).unwrap();
            assert_eq!(loaded.model.arch(), &arch);
            assert_eq!(bits(&loaded.model.params), bits(&model.params));
            assert_eq!(
                bits(&loaded.modulation.coupling),
                bits(&modulation.coupling)
            );
            assert_eq!(bits(&loaded.modulation.gain), bits(&modulation.gain));
            assert_eq!(loaded.metadata.get("note").map(String::as_str), Some("x"));
        }
    }
}

#[test]
fn coupling_and_gain_are_optional() {
    let dir = tempfile::tempdir().unwrap();
    let arch = Arch::preset("paper3", 1).unwrap();
    let model = Model::<f32>::init(&arch, 1);
    let off = Modulation::off(&arch);
    let names: Vec<String> = model_tensors(&model, &off)
        .into_iter()
        .map(|t| t.0)
        .collect();
    assert_eq!(names.len(), 6, "{names:?}");
    let path = dir.path().join("plain.safetensors");
    save_checkpoint(&path, &model, &off, &[]).unwrap();
    let loaded = load_checkpoint(&path).unwrap().modulation;
    assert_eq!(loaded, off);
}

#[test]
fn encoder_tensor_is_dense_and_zero_outside_receptive_fields() {
    let arch = Arch::preset("paper3", 1).unwrap();
    let model = Model::<f32>::init(&arch, 2);
    let tensors = model_tensors(&model, &Modulation::off(&arch));
    let TensorData::F32(w) = &tensors[0].2 else {
        panic!("f32")
    };
    assert_eq!(tensors[0].1, vec![400, 784]);
    for (i, row) in w.chunks_exact(784).enumerate() {
        let q = i / 100;
        for (p, &v) in row.iter().enumerate() {
            let (r, c) = (p / 28, p % 28);
            let inside = (r / 14) * 2 + c / 14 == q;
            assert!(inside || v == 0.0, "neuron {i} pixel {p}");
            assert!(!inside || v != 0.0, "initialised inside the field");
        }
    }
}

/// Writes the tensors of a model after `edit`, and returns the load error.
fn rejection(
    edit: impl FnOnce(&mut Vec<(String, Vec<usize>, TensorData)>, &mut HashMap<String, String>),
) -> String {
    let dir = tempfile::tempdir().unwrap();
    let arch = Arch::preset("local2", 2).unwrap();
    let model = Model::<f32>::init(&arch, 3);
    let mut tensors = model_tensors(&model, &Modulation::off(&arch));
    let mut metadata = HashMap::from([(ARCH_KEY.to_string(), model.arch().to_json())]);
    edit(&mut tensors, &mut metadata);
    let path = dir.path().join("bad.safetensors");
    write_tensors(&path, &tensors, metadata).unwrap();
    let err = load_checkpoint(&path)
        .err()
        .expect("must be rejected")
        .to_string();
    assert!(err.contains("bad.safetensors"), "{err}");
    err
}

fn f32_mut<'a>(
    tensors: &'a mut [(String, Vec<usize>, TensorData)],
    name: &str,
) -> &'a mut Vec<f32> {
    match &mut tensors.iter_mut().find(|t| t.0 == name).unwrap().2 {
        TensorData::F32(v) => v,
        TensorData::I64(_) => panic!("f32 expected"),
    }
}

#[test]
fn rejects_missing_tensor() {
    let err = rejection(|t, _| t.retain(|t| t.0 != "layers.2.bias"));
    assert!(err.contains("missing tensor layers.2.bias"), "{err}");
}

#[test]
fn rejects_wrong_shape() {
    let err = rejection(|t, _| {
        let bias = t.iter_mut().find(|t| t.0 == "layers.3.bias").unwrap();
        bias.1 = vec![20, 10];
    });
    assert!(
        err.contains("layers.3.bias has shape [20, 10], expected [200]"),
        "{err}"
    );
}

#[test]
fn rejects_wrong_dtype() {
    let err = rejection(|t, _| {
        let bias = t.iter_mut().find(|t| t.0 == "layers.4.bias").unwrap();
        bias.2 = TensorData::I64(vec![0; 10]);
    });
    assert!(
        err.contains("layers.4.bias has dtype I64, expected F32"),
        "{err}"
    );
}

#[test]
fn rejects_non_finite_values() {
    let err = rejection(|t, _| f32_mut(t, "layers.3.weight")[17] = f32::NAN);
    assert!(
        err.contains("layers.3.weight has a non-finite value NaN at index 17"),
        "{err}"
    );
    let err = rejection(|t, _| f32_mut(t, "layers.1.bias")[0] = f32::INFINITY);
    assert!(
        err.contains("layers.1.bias has a non-finite value inf"),
        "{err}"
    );
}

#[test]
fn rejects_weights_outside_receptive_fields_and_blocks() {
    // Neuron 0 is in quadrant 0; pixel 20 (row 0, column 20) is in quadrant 1.
    let err = rejection(|t, _| f32_mut(t, "layers.1.weight")[20] = 0.5);
    assert!(
        err.contains("layers.1.weight: weight [0, 20]") && err.contains("receptive field"),
        "{err}"
    );
    // Local layer 2: neuron 0 is in group 0; input 399 is in group 3.
    let err = rejection(|t, _| f32_mut(t, "layers.2.weight")[399] = -0.5);
    assert!(
        err.contains("layers.2.weight: weight [0, 399]") && err.contains("outside its block"),
        "{err}"
    );
}

#[test]
fn rejects_missing_or_broken_architecture_and_extra_tensors() {
    let err = rejection(|_, m| {
        m.remove(ARCH_KEY);
    });
    assert!(err.contains("metadata key \"comod\""), "{err}");
    let err = rejection(|_, m| {
        m.insert(ARCH_KEY.into(), "{\"format\":1}".into());
    });
    assert!(err.contains("metadata key \"comod\""), "{err}");
    let err = rejection(|t, _| {
        t.push((
            "layers.9.weight".into(),
            vec![1],
            TensorData::F32(vec![0.0]),
        ))
    });
    assert!(err.contains("unexpected tensor layers.9.weight"), "{err}");
    let err = rejection(|t, _| t.push(("gain".into(), vec![3], TensorData::F32(vec![1.0; 3]))));
    assert!(err.contains("gain has shape [3], expected [200]"), "{err}");
}

#[test]
fn failed_write_leaves_no_file() {
    let arch = Arch::preset("paper3", 1).unwrap();
    let model = Model::<f32>::init(&arch, 1);
    let off = Modulation::off(&arch);
    let dir = tempfile::tempdir().unwrap();
    // A folder that cannot be made (a file stands in its place) is named.
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"x").unwrap();
    let err = save_checkpoint(&blocker.join("out.safetensors"), &model, &off, &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains(blocker.to_str().unwrap()), "{err}");
    std::fs::remove_file(&blocker).unwrap();
    let target = dir.path().join("sub");
    std::fs::create_dir(&target).unwrap();
    assert!(
        save_checkpoint(&target, &model, &off, &[]).is_err(),
        "a directory is not overwritten"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("sub")]);
}
