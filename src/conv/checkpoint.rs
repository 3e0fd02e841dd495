//! Checkpoints of a convolutional multi-task network (§7, §8): one
//! safetensors file, a weight and a bias tensor per stage that has them
//! and for the heads, with the format 2 architecture, the task names and
//! the pretraining's provenance in the metadata.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::conv::arch::{ConvArch, Stage};
use crate::conv::net::ConvNet;
use crate::error::Result;
use crate::io::tensors::{TensorData, TensorFile, write_tensors};
use crate::train::transfer::Transfer;

/// The `format` metadata of a convolutional checkpoint.
pub const CONV_CHECKPOINT_FORMAT: &str = "comod-conv-1";

/// How a checkpoint's network was pretrained (§8), kept in its metadata.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConvProvenance {
    /// Benchmark name.
    pub benchmark: String,
    /// Task names, in head order.
    pub tasks: Vec<String>,
    /// The pretraining seed.
    pub seed: u64,
    /// Epochs trained.
    pub epochs: usize,
    /// Mean held-out accuracy over the pretraining tasks' heads at the end.
    pub heldout_accuracy: f64,
    /// sha256 of the data.
    pub data_sha256: String,
    /// The transfer protocol it was pretrained for: which tasks it saw
    /// (checkpoints written before the protocols existed saw every task).
    #[serde(default = "joint")]
    pub transfer: Transfer,
    /// The stopping target over the pretraining tasks; `None`: to
    /// convergence (or the target was not recorded).
    #[serde(default)]
    pub target: Option<f64>,
    /// The epoch cap.
    #[serde(default)]
    pub max_epochs: usize,
}

fn joint() -> Transfer {
    Transfer::Joint
}

/// A loaded checkpoint.
#[derive(Clone, Debug)]
pub struct ConvCheckpoint {
    /// The network.
    pub net: ConvNet<f32>,
    /// Its pretraining.
    pub provenance: ConvProvenance,
}

/// The tensor names and shapes of `net`'s parameters, in parameter order,
/// with their ranges: `stage{s}.weight` (conv `[C_out, k, k, C_in]`, dense
/// `[out, in]`), `stage{s}.bias`, `heads.weight` `[2·tasks, N]`, `heads.bias`.
pub fn parameter_tensors<T: crate::net::Real>(
    net: &ConvNet<T>,
) -> Vec<(String, Vec<usize>, std::ops::Range<usize>)> {
    let arch = net.arch();
    let shapes = net.shapes();
    let mut out = Vec::new();
    for (s, stage) in arch.stages.iter().enumerate() {
        let Some(r) = net.stage_params(s) else {
            continue;
        };
        let weight_shape = match *stage {
            Stage::Conv { channels, kernel } => vec![channels, kernel, kernel, shapes[s].channels],
            Stage::Dense { size } => vec![size, shapes[s].len()],
            Stage::Maxpool {} => unreachable!("a max-pool has no parameters"),
        };
        out.push((
            format!("stage{}.weight", s + 1),
            weight_shape,
            r.weights.clone(),
        ));
        out.push((
            format!("stage{}.bias", s + 1),
            vec![r.bias.len()],
            r.bias.clone(),
        ));
    }
    let heads = net.head_params();
    out.push((
        "heads.weight".into(),
        vec![arch.logits(), arch.gated_size()],
        heads.weights.clone(),
    ));
    out.push(("heads.bias".into(), vec![arch.logits()], heads.bias.clone()));
    out
}

/// Writes `net` and its provenance to `path` (atomically).
pub fn save_conv_checkpoint(
    path: &Path,
    net: &ConvNet<f32>,
    provenance: &ConvProvenance,
) -> Result<()> {
    let tensors: Vec<_> = parameter_tensors(net)
        .into_iter()
        .map(|(name, shape, range)| (name, shape, TensorData::F32(net.params[range].to_vec())))
        .collect();
    let metadata = HashMap::from([
        ("format".to_string(), CONV_CHECKPOINT_FORMAT.to_string()),
        ("architecture".to_string(), net.arch().to_json()),
        (
            "pretraining".to_string(),
            serde_json::to_string(provenance).expect("serialises"),
        ),
    ]);
    write_tensors(path, &tensors, metadata)
}

/// Reads a checkpoint written by [`save_conv_checkpoint`], checking every
/// tensor's shape and finiteness against the architecture it carries.
pub fn load_conv_checkpoint(path: &Path) -> Result<ConvCheckpoint> {
    conv_checkpoint_from(&TensorFile::read(path)?)
}

/// [`load_conv_checkpoint`] on a file already read.
pub fn conv_checkpoint_from(file: &TensorFile) -> Result<ConvCheckpoint> {
    if file.metadata("format") != Some(CONV_CHECKPOINT_FORMAT) {
        return Err(file.error(format!(
            "is not a convolutional checkpoint (metadata format {:?}, expected {CONV_CHECKPOINT_FORMAT:?}); `comod multitask pretrain` writes one",
            file.metadata("format").unwrap_or("missing")
        )));
    }
    let arch_json = file
        .metadata("architecture")
        .ok_or_else(|| file.error("metadata `architecture` is missing"))?;
    let arch = ConvArch::from_json(arch_json)
        .map_err(|e| file.error(format!("metadata `architecture`: {e}")))?;
    let provenance: ConvProvenance =
        serde_json::from_str(file.metadata("pretraining").unwrap_or(""))
            .map_err(|e| file.error(format!("metadata `pretraining`: {e}")))?;
    if provenance.tasks.len() != arch.tasks {
        return Err(file.error(format!(
            "names {} tasks for {} heads",
            provenance.tasks.len(),
            arch.tasks
        )));
    }
    let mut net = ConvNet::<f32>::zeros(&arch);
    let mut expected = Vec::new();
    for (name, shape, range) in parameter_tensors(&net) {
        let values = file.f32(&name, &shape)?;
        net.params[range].copy_from_slice(&values);
        expected.push(name);
    }
    if let Some(extra) = file.names().into_iter().find(|n| !expected.contains(n)) {
        return Err(file.error(format!("unexpected tensor {extra} for this architecture")));
    }
    Ok(ConvCheckpoint { net, provenance })
}
