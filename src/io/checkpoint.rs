//! Checkpoints (SPEC §7): safetensors with `layers.{l}.weight` [out, in]
//! (dense, exactly zero outside receptive fields), `layers.{l}.bias`,
//! optional `modulation.coupling` and `gain`, and the architecture JSON in
//! the metadata key `comod`.

use std::collections::HashMap;
use std::path::Path;

use crate::error::Result;
use crate::io::tensors::{TensorData, TensorFile, write_tensors};
use crate::net::{Arch, LayerKind, Model};

/// Metadata key holding the architecture JSON (SPEC §7).
pub const ARCH_KEY: &str = "comod";
/// Tensor name of the coupling.
pub const COUPLING: &str = "modulation.coupling";
/// Tensor name of the gain.
pub const GAIN: &str = "gain";

/// Name of layer `l`'s weight tensor.
pub fn weight_name(l: usize) -> String {
    format!("layers.{l}.weight")
}

/// Name of layer `l`'s bias tensor.
pub fn bias_name(l: usize) -> String {
    format!("layers.{l}.bias")
}

/// A loaded checkpoint: the network and the file's other metadata.
pub struct Checkpoint {
    /// The network, with coupling and gain if the file has them.
    pub model: Model<f32>,
    /// Metadata other than the architecture (e.g. how it was pretrained).
    pub metadata: HashMap<String, String>,
}

/// The dense `[out, in]` form of a stored (block) weight vector of layer `l`.
pub fn dense_weights(model: &Model<f32>, l: usize, stored: &[f32]) -> Vec<f32> {
    let layer = model.layer(l);
    let mut dense = vec![0.0f32; layer.shape.outputs * layer.shape.inputs];
    for (k, &w) in stored.iter().enumerate() {
        dense[layer.dense_index(k)] = w;
    }
    dense
}

/// The §7 tensors of a model: dense weights, biases, and the coupling and
/// gain when they differ from "off" (c = 0, g = 1) bit for bit.
pub fn model_tensors(model: &Model<f32>) -> Vec<(String, Vec<usize>, TensorData)> {
    let arch = model.arch();
    let mut tensors = Vec::new();
    for l in 1..=arch.depth() {
        let shape = model.layer(l).shape;
        tensors.push((
            weight_name(l),
            vec![shape.outputs, shape.inputs],
            TensorData::F32(dense_weights(model, l, model.weights(l))),
        ));
        tensors.push((
            bias_name(l),
            vec![shape.outputs],
            TensorData::F32(model.bias(l).to_vec()),
        ));
    }
    if model.coupling.iter().any(|c| c.to_bits() != 0) {
        tensors.push((
            COUPLING.into(),
            vec![model.coupling.len()],
            TensorData::F32(model.coupling.clone()),
        ));
    }
    if model.gain.iter().any(|g| g.to_bits() != 1f32.to_bits()) {
        tensors.push((
            GAIN.into(),
            vec![model.gain.len()],
            TensorData::F32(model.gain.clone()),
        ));
    }
    tensors
}

/// Writes `model` to `path` atomically, with `extra` metadata beside the
/// architecture.
pub fn save_checkpoint(path: &Path, model: &Model<f32>, extra: &[(&str, String)]) -> Result<()> {
    let mut metadata: HashMap<String, String> = extra
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    metadata.insert(ARCH_KEY.into(), model.arch().to_json());
    write_tensors(path, &model_tensors(model), metadata)
}

/// Reads a checkpoint, rejecting (naming the tensor) any missing or
/// unexpected tensor, wrong dtype or shape, non-finite value, or weight
/// outside an encoder receptive field or a local block.
pub fn load_checkpoint(path: &Path) -> Result<Checkpoint> {
    let file = TensorFile::read(path)?;
    let json = file.metadata(ARCH_KEY).ok_or_else(|| {
        file.error(format!(
            "metadata key {ARCH_KEY:?} (the architecture JSON) is missing"
        ))
    })?;
    let arch =
        Arch::from_json(json).map_err(|e| file.error(format!("metadata key {ARCH_KEY:?}: {e}")))?;
    let mut model = Model::<f32>::zeros(&arch);
    let mut expected = Vec::new();
    for l in 1..=arch.depth() {
        let layer = model.layer(l).clone();
        let (name, shape) = (weight_name(l), layer.shape);
        let dense = file.f32(&name, &[shape.outputs, shape.inputs])?;
        let mut inside = vec![false; dense.len()];
        for k in 0..layer.weights.len() {
            let d = layer.dense_index(k);
            inside[d] = true;
            model.params[layer.weights.start + k] = dense[d];
        }
        if let Some(i) = (0..dense.len()).find(|&i| !inside[i] && dense[i] != 0.0) {
            let (row, col) = (i / shape.inputs, i % shape.inputs);
            let what = match layer.kind {
                LayerKind::Encoder => "outside its receptive field",
                _ => "outside its block",
            };
            return Err(file.error(format!(
                "tensor {name}: weight [{row}, {col}] = {} is non-zero {what} ({:?} layer)",
                dense[i], layer.kind
            )));
        }
        let bias = file.f32(&bias_name(l), &[shape.outputs])?;
        model.params[layer.bias.clone()].copy_from_slice(&bias);
        expected.extend([name, bias_name(l)]);
    }
    if file.contains(COUPLING) {
        model.coupling = file.f32(COUPLING, &[model.coupling.len()])?;
    }
    if file.contains(GAIN) {
        model.gain = file.f32(GAIN, &[model.gain.len()])?;
    }
    expected.extend([COUPLING.to_string(), GAIN.to_string()]);
    if let Some(extra) = file.names().into_iter().find(|n| !expected.contains(n)) {
        return Err(file.error(format!("unexpected tensor {extra} for this architecture")));
    }
    let mut metadata = file.all_metadata().clone();
    metadata.remove(ARCH_KEY);
    Ok(Checkpoint { model, metadata })
}
