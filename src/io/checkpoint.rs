//! Checkpoints (§7): safetensors with `layers.{l}.weight` [out, in]
//! (dense, exactly zero outside receptive fields), `layers.{l}.bias`,
//! optional `modulation.coupling` and `gain`, the architecture JSON in the
//! metadata key `comod`, and for pretrained networks their provenance.

use std::collections::HashMap;
use std::path::Path;

use crate::error::Result;
use crate::io::atomic::write_atomic;
use crate::io::tensors::{TensorData, TensorFile, encode_tensors};
use crate::net::{Arch, LayerKind, Model, Modulation};
use crate::train::pretrain::Provenance;

/// Metadata key holding the architecture JSON (§7).
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

/// A loaded checkpoint: the network, its modulation and the file's other
/// metadata.
pub struct Checkpoint {
    /// The network.
    pub model: Model<f32>,
    /// Coupling and gain: the file's, or off (c = 0, g = 1) where absent.
    pub modulation: Modulation<f32>,
    /// Metadata other than the architecture (e.g. how it was pretrained).
    pub metadata: HashMap<String, String>,
}

impl Checkpoint {
    /// How the network was pretrained, when the file says so and the
    /// record parses.
    pub fn provenance(&self) -> Option<Provenance> {
        let text = self.metadata.get(Provenance::KEY)?;
        serde_json::from_str(text).ok()
    }
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
/// gain of `modulation` when they differ from "off" (c = 0, g = 1) bit for bit.
pub fn model_tensors(
    model: &Model<f32>,
    modulation: &Modulation<f32>,
) -> Vec<(String, Vec<usize>, TensorData)> {
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
    if modulation.coupling.iter().any(|c| c.to_bits() != 0) {
        tensors.push((
            COUPLING.into(),
            vec![modulation.coupling.len()],
            TensorData::F32(modulation.coupling.clone()),
        ));
    }
    if modulation
        .gain
        .iter()
        .any(|g| g.to_bits() != 1f32.to_bits())
    {
        tensors.push((
            GAIN.into(),
            vec![modulation.gain.len()],
            TensorData::F32(modulation.gain.clone()),
        ));
    }
    tensors
}

/// Writes `model` with `modulation` to `path` atomically, with `extra`
/// metadata beside the architecture.
pub fn save_checkpoint(
    path: &Path,
    model: &Model<f32>,
    modulation: &Modulation<f32>,
    extra: &[(&str, String)],
) -> Result<()> {
    write_atomic(path, &checkpoint_bytes(path, model, modulation, extra)?)
}

/// The bytes [`save_checkpoint`] writes, for callers that keep a
/// checkpoint in memory (the Python package); `path` names it in errors.
pub fn checkpoint_bytes(
    path: &Path,
    model: &Model<f32>,
    modulation: &Modulation<f32>,
    extra: &[(&str, String)],
) -> Result<Vec<u8>> {
    let mut metadata: HashMap<String, String> = extra
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    metadata.insert(ARCH_KEY.into(), model.arch().to_json());
    encode_tensors(path, &model_tensors(model, modulation), metadata)
}

/// Writes a freshly pretrained `model` (modulation off) to `path`
/// atomically, with its `provenance`.
pub fn save_pretrained(path: &Path, model: &Model<f32>, provenance: &Provenance) -> Result<()> {
    let record = serde_json::to_string(provenance).expect("a provenance always serialises");
    let off = Modulation::off(model.arch());
    save_checkpoint(path, model, &off, &[(Provenance::KEY, record)])
}

/// Reads a checkpoint, rejecting (naming the tensor) any missing or
/// unexpected tensor, wrong dtype or shape, non-finite value, or weight
/// outside an encoder receptive field or a local block.
pub fn load_checkpoint(path: &Path) -> Result<Checkpoint> {
    checkpoint_from(&TensorFile::read(path)?)
}

/// The checkpoint held by a parsed safetensors `file` (see [`load_checkpoint`]).
pub fn checkpoint_from(file: &TensorFile) -> Result<Checkpoint> {
    let json = file.metadata(ARCH_KEY).ok_or_else(|| {
        file.error(format!(
            "metadata key {ARCH_KEY:?} (the architecture JSON) is missing"
        ))
    })?;
    let arch =
        Arch::from_json(json).map_err(|e| file.error(format!("metadata key {ARCH_KEY:?}: {e}")))?;
    let mut model = Model::<f32>::zeros(&arch);
    let mut modulation = Modulation::off(&arch);
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
        modulation.coupling = file.f32(COUPLING, &[modulation.coupling.len()])?;
    }
    if file.contains(GAIN) {
        modulation.gain = file.f32(GAIN, &[modulation.gain.len()])?;
    }
    expected.extend([COUPLING.to_string(), GAIN.to_string()]);
    if let Some(extra) = file.names().into_iter().find(|n| !expected.contains(n)) {
        return Err(file.error(format!("unexpected tensor {extra} for this architecture")));
    }
    let mut metadata = file.all_metadata().clone();
    metadata.remove(ARCH_KEY);
    Ok(Checkpoint {
        model,
        modulation,
        metadata,
    })
}
