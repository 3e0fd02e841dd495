//! Architecture descriptions (§2) and their JSON form (§7).

use serde::{Deserialize, Serialize};

use crate::data::CANVAS_PIXELS;
use crate::data::task::QUADRANTS;
use crate::error::{Error, Result};

/// Number of logits of the readout (one per digit class).
pub const LOGITS: usize = 10;
/// The `format` of an MLP's architecture JSON (§7).
pub const ARCH_FORMAT: u32 = 1;
/// The `format` of a convolutional network's architecture JSON (§7, §8).
pub const CONV_ARCH_FORMAT: u32 = 2;

/// Nonlinearity of the encoder (dense and local layers are always ReLU).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Nonlinearity {
    /// e^a: the paper's Eq. 1.
    Exp,
    /// max(a, 0): the paper's Fig. 3 variant.
    Relu,
}

/// How a layer connects to the one below (§2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerKind {
    /// Layer 1: each quarter of the neurons sees only its quadrant's 196 pixels.
    Encoder,
    /// All-to-all, ReLU.
    Dense,
    /// Block-diagonal over 4 quadrant groups, ReLU.
    Local,
    /// The last layer: all-to-all, linear, 10 logits.
    Readout,
}

/// One layer of an architecture, as in the §7 JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerSpec {
    /// Connectivity.
    pub kind: LayerKind,
    /// Number of neurons.
    pub size: usize,
    /// Only on the encoder: `exp` or `relu`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonlinearity: Option<Nonlinearity>,
}

/// A whole network description: the JSON of §7.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arch {
    /// Format version, 1.
    pub format: u32,
    /// Input size: the 784 canvas pixels.
    pub input: usize,
    /// Layers 1..=L.
    pub layers: Vec<LayerSpec>,
    /// The modulated layer ℓ, counted from 1 (§2).
    pub modulated_layer: usize,
    /// The constant β of the modulation exp(m·c − β).
    pub beta: f32,
}

/// Most neurons a layer may have: far above any network of the papers,
/// low enough that a mistyped size fails validation instead of allocation.
pub const MAX_LAYER_SIZE: usize = 1 << 20;
/// Most weights the dense form of all layers may hold (4 GiB of f32).
pub const MAX_DENSE_WEIGHTS: usize = 1 << 30;
/// Most layers a network may have.
pub const MAX_LAYERS: usize = 64;

/// Names of the built-in architectures, for `--arch`.
pub const PRESETS: [&str; 6] = [
    "paper3",
    "deep4",
    "local2",
    "relu-encoder",
    "relu-deep4",
    "relu-local2",
];
/// The paper's network (§2), the default architecture.
pub const DEFAULT_PRESET: &str = PRESETS[0];

fn layer(kind: LayerKind, size: usize) -> LayerSpec {
    LayerSpec {
        kind,
        size,
        nonlinearity: None,
    }
}

fn encoder(nonlinearity: Nonlinearity) -> LayerSpec {
    LayerSpec {
        nonlinearity: Some(nonlinearity),
        ..layer(LayerKind::Encoder, 400)
    }
}

impl Arch {
    /// A built-in architecture (§2 and its Fig. 3 variants):
    /// - `paper3`: encoder(exp) 400 → dense 200 (gated) → readout 10;
    /// - `deep4`: encoder(exp) 400 → dense 200 → dense 200 (gated) → readout;
    /// - `local2`: as `deep4` with layer 2 `local`, so that modulating layer 2
    ///   acts on a layer other than the gated one, as in `deep4`;
    /// - `relu-encoder`: `paper3` with a ReLU encoder;
    /// - `relu-deep4`, `relu-local2`: `deep4` and `local2` with a ReLU
    ///   encoder, the networks of the paper's Fig. 3 (layer 2 dense or
    ///   local, modulated at layer 1 or 2).
    pub fn preset(name: &str, modulated_layer: usize) -> Result<Arch> {
        use LayerKind::*;
        let layers = match name {
            "paper3" => vec![
                encoder(Nonlinearity::Exp),
                layer(Dense, 200),
                layer(Readout, LOGITS),
            ],
            "deep4" => vec![
                encoder(Nonlinearity::Exp),
                layer(Dense, 200),
                layer(Dense, 200),
                layer(Readout, LOGITS),
            ],
            "local2" => vec![
                encoder(Nonlinearity::Exp),
                layer(Local, 200),
                layer(Dense, 200),
                layer(Readout, LOGITS),
            ],
            "relu-encoder" => vec![
                encoder(Nonlinearity::Relu),
                layer(Dense, 200),
                layer(Readout, LOGITS),
            ],
            "relu-deep4" => vec![
                encoder(Nonlinearity::Relu),
                layer(Dense, 200),
                layer(Dense, 200),
                layer(Readout, LOGITS),
            ],
            "relu-local2" => vec![
                encoder(Nonlinearity::Relu),
                layer(Local, 200),
                layer(Dense, 200),
                layer(Readout, LOGITS),
            ],
            other => {
                return Err(Error::Arch(format!(
                    "unknown architecture {other:?}: use one of {} or a path to an architecture JSON file",
                    PRESETS.join(", ")
                )));
            }
        };
        let arch = Arch {
            format: ARCH_FORMAT,
            input: CANVAS_PIXELS,
            layers,
            modulated_layer,
            beta: 0.0,
        };
        arch.validate()?;
        Ok(arch)
    }

    /// The architecture `--arch` names: a preset, or a path to a §7 JSON
    /// file; `modulated_layer` (when given) replaces the modulated layer
    /// (default 1 for a preset, the file's value for a file).
    pub fn resolve(name: &str, modulated_layer: Option<usize>) -> Result<Arch> {
        let path = std::path::Path::new(name);
        if PRESETS.contains(&name) || (!path.exists() && !name.ends_with(".json")) {
            return Arch::preset(name, modulated_layer.unwrap_or(1));
        }
        let bytes = crate::io::read::read_bounded(path, crate::io::read::MAX_ARCH_JSON_BYTES)
            .map_err(|e| Error::Arch(format!("--arch {e}")))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::Arch(format!("--arch {name}: not UTF-8 text")))?;
        let mut arch =
            Arch::from_json(&text).map_err(|e| Error::Arch(format!("--arch {name}: {e}")))?;
        if let Some(l) = modulated_layer {
            arch.modulated_layer = l;
            arch.validate()
                .map_err(|e| Error::Arch(format!("--modulated-layer {l}: {e}")))?;
        }
        Ok(arch)
    }

    /// Parses and validates the §7 JSON.
    pub fn from_json(text: &str) -> Result<Arch> {
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(text)
            && value.get("format").and_then(serde_json::Value::as_u64)
                == Some(u64::from(CONV_ARCH_FORMAT))
        {
            return Err(Error::Arch(
                "a convolutional architecture (format 2, §8): use it with `comod multitask pretrain --arch`"
                    .into(),
            ));
        }
        let arch: Arch =
            serde_json::from_str(text).map_err(|e| Error::Arch(format!("invalid JSON: {e}")))?;
        arch.validate()?;
        Ok(arch)
    }

    /// The §7 JSON, one line.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an architecture always serialises")
    }

    /// Checks the rules of §2.
    pub fn validate(&self) -> Result<()> {
        let fail = |m: String| Err(Error::Arch(m));
        if self.format != ARCH_FORMAT {
            return fail(format!(
                "format {} is not supported (expected 1)",
                self.format
            ));
        }
        if self.input != CANVAS_PIXELS {
            return fail(format!(
                "input is {}, expected {CANVAS_PIXELS} (the 28×28 canvas)",
                self.input
            ));
        }
        let n = self.layers.len();
        if n < 3 {
            return fail(format!(
                "{n} layers: need an encoder, at least one hidden layer and a readout"
            ));
        }
        if n > MAX_LAYERS {
            return fail(format!("{n} layers: at most {MAX_LAYERS} are supported"));
        }
        if let Some((i, spec)) = self
            .layers
            .iter()
            .enumerate()
            .find(|(_, s)| s.size > MAX_LAYER_SIZE)
        {
            return fail(format!(
                "layer {} has size {}, more than the {MAX_LAYER_SIZE} supported",
                i + 1,
                spec.size
            ));
        }
        let dense_weights: usize = self
            .layers
            .iter()
            .scan(self.input, |inputs, spec| {
                let weights = *inputs * spec.size;
                *inputs = spec.size;
                Some(weights)
            })
            .sum();
        if dense_weights > MAX_DENSE_WEIGHTS {
            return fail(format!(
                "{dense_weights} weights in dense form, more than the {MAX_DENSE_WEIGHTS} supported"
            ));
        }
        for (i, spec) in self.layers.iter().enumerate() {
            let l = i + 1;
            let expected = match l {
                1 => "encoder",
                _ if l == n => "readout",
                _ => "dense or local",
            };
            let ok = match spec.kind {
                LayerKind::Encoder => l == 1,
                LayerKind::Readout => l == n,
                LayerKind::Dense | LayerKind::Local => l != 1 && l != n,
            };
            if !ok {
                return fail(format!("layer {l} is {:?}, expected {expected}", spec.kind));
            }
            if spec.size == 0 {
                return fail(format!("layer {l} has size 0"));
            }
            if (spec.kind == LayerKind::Encoder) != spec.nonlinearity.is_some() {
                return fail(format!(
                    "layer {l}: `nonlinearity` (exp or relu) is required on the encoder and allowed nowhere else"
                ));
            }
            let grouped = matches!(spec.kind, LayerKind::Encoder | LayerKind::Local);
            if grouped && spec.size % QUADRANTS != 0 {
                return fail(format!(
                    "layer {l} ({:?}) has size {}, not a multiple of 4",
                    spec.kind, spec.size
                ));
            }
            if spec.kind == LayerKind::Local && !self.layers[i - 1].size.is_multiple_of(QUADRANTS) {
                return fail(format!(
                    "layer {l} is local but layer {} has a size not a multiple of 4",
                    l - 1
                ));
            }
        }
        if self.layers[n - 1].size != LOGITS {
            return fail(format!(
                "the readout has size {}, expected {LOGITS}",
                self.layers[n - 1].size
            ));
        }
        if self.modulated_layer == 0 || self.modulated_layer >= n {
            return fail(format!(
                "modulated_layer {} is not a hidden layer (1..={})",
                self.modulated_layer,
                n - 1
            ));
        }
        if !self.beta.is_finite() {
            return fail("beta is not finite".to_string());
        }
        Ok(())
    }

    /// The neurons of layer `l` that see only quadrant `q`: a quarter of
    /// the layer when it and every layer below it are quadrant-local
    /// (encoder, local); `None` for a layer that mixes quadrants.
    pub fn quadrant_neurons(&self, l: usize, q: usize) -> Option<std::ops::Range<usize>> {
        let local = self.layers[..l]
            .iter()
            .all(|layer| matches!(layer.kind, LayerKind::Encoder | LayerKind::Local));
        let quarter = self.size(l) / 4;
        local.then(|| q * quarter..(q + 1) * quarter)
    }

    /// Whether pretraining (§4: the modulation off, c = 0 and g = 1) trains
    /// the same network, bit for bit, for `self` and `other`: the same input
    /// and layers, and either the same modulated layer and β, or β = 0 in
    /// both, where the modulated layer's factor exp(m·0 − β) is exactly 1
    /// wherever it sits. The report pretrains such a network once (Fig. 3's
    /// variants modulated at layer 1 and at layer 2).
    pub fn pretrains_as(&self, other: &Arch) -> bool {
        let same_factor = (self.modulated_layer == other.modulated_layer
            && self.beta.to_bits() == other.beta.to_bits())
            || (self.beta == 0.0 && other.beta == 0.0);
        self.format == other.format
            && self.input == other.input
            && self.layers == other.layers
            && same_factor
    }

    /// Number of weight layers L.
    pub fn depth(&self) -> usize {
        self.layers.len()
    }

    /// The gated layer L−1 (§2), counted from 1.
    pub fn gated_layer(&self) -> usize {
        self.layers.len() - 1
    }

    /// Size of layer `l` (counted from 1; 0 is the input).
    pub fn size(&self, l: usize) -> usize {
        if l == 0 {
            self.input
        } else {
            self.layers[l - 1].size
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_json_round_trips() {
        let text = r#"{"format":1,"input":784,"layers":[{"kind":"encoder","size":400,"nonlinearity":"exp"},{"kind":"dense","size":200},{"kind":"readout","size":10}],"modulated_layer":1,"beta":0.0}"#;
        let arch = Arch::from_json(text).unwrap();
        assert_eq!(arch, Arch::preset("paper3", 1).unwrap());
        assert_eq!(arch.to_json(), text);
    }

    #[test]
    fn presets_are_valid_and_unknown_names_rejected() {
        for name in PRESETS {
            for l in [1, 2] {
                Arch::preset(name, l).unwrap();
            }
        }
        let err = Arch::preset("paper5", 1).unwrap_err().to_string();
        assert!(err.contains("paper5") && err.contains("paper3"), "{err}");
        assert!(Arch::preset("paper3", 3).is_err());
    }

    #[test]
    fn rejects_broken_descriptions() {
        let mut arch = Arch::preset("paper3", 1).unwrap();
        arch.layers[1].kind = LayerKind::Encoder;
        assert!(arch.validate().is_err());
        let mut arch = Arch::preset("paper3", 1).unwrap();
        arch.layers[0].size = 402;
        assert!(arch.validate().is_err());
        let mut arch = Arch::preset("paper3", 1).unwrap();
        arch.layers[2].size = 2;
        assert!(arch.validate().is_err());
        assert!(Arch::from_json(r#"{"format":1}"#).is_err());
    }
}
