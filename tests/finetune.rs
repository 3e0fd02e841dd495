//! Fine-tuning (SPEC §4): each method changes only what it trains, the
//! evaluation shortcuts agree with the full forward pass, and learning
//! happens at the default rates.

use std::path::Path;
use std::sync::OnceLock;

use comod::data::{CANVAS_PIXELS, Digits, Task};
use comod::kernel::KernelPlan;
use comod::net::{Arch, Model};
use comod::train::finetune::{FinetuneConfig, Method, TaskData, finetune};
use comod::train::{PretrainOptions, pretrain};

fn digits() -> &'static Digits {
    static DIGITS: OnceLock<Digits> = OnceLock::new();
    DIGITS
        .get_or_init(|| Digits::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("data")).unwrap())
}

/// A fixed pretrained test network (40 epochs, held-out accuracy ≈ 0.8).
fn pretrained() -> &'static Model<f32> {
    static MODEL: OnceLock<Model<f32>> = OnceLock::new();
    MODEL.get_or_init(|| {
        let options = PretrainOptions {
            max_epochs: 40,
            ..PretrainOptions::default()
        };
        pretrain(
            &Arch::preset("paper3", 1).unwrap(),
            digits(),
            &options,
            |_| {},
        )
        .0
    })
}

#[test]
fn forward_from_cached_activity_equals_the_full_forward() {
    for (name, layer) in [("paper3", 1), ("deep4", 2), ("local2", 1)] {
        let arch = Arch::preset(name, layer).unwrap();
        let mut model = Model::<f32>::init(&arch, 3);
        model
            .coupling
            .iter_mut()
            .enumerate()
            .for_each(|(i, c)| *c = 0.5 + (i % 5) as f32 * 0.1);
        model
            .gain
            .iter_mut()
            .enumerate()
            .for_each(|(i, g)| *g = 0.5 + (i % 3) as f32 * 0.5);
        let canvases: Vec<f32> = (0..7 * CANVAS_PIXELS)
            .map(|i| (i % 13) as f32 / 13.0)
            .collect();
        let mut ws = model.workspace(7);
        model.forward(&mut ws, &canvases, 1.1);
        let full = model.logits(&ws).to_vec();
        for l in [arch.modulated_layer, arch.gated_layer()] {
            let activity = model.activity_at(&mut ws, &canvases, l, 1.1).to_vec();
            model.forward_from(&mut ws, l, &activity, 1.1);
            assert_eq!(model.logits(&ws), &full[..], "{name}: from layer {l}");
        }
    }
}

#[test]
fn each_method_changes_only_what_it_trains() {
    let model = pretrained();
    let plan = KernelPlan::new(model);
    let config = FinetuneConfig {
        batches: 20,
        test_composites: 200,
        ..FinetuneConfig::default()
    };
    let task: Task = "1-7@0".parse().unwrap();
    let data = TaskData::new(model, digits(), task, &config, 0);
    let depth = model.arch().depth();
    let last_layer = model.layer(depth).weights.start;
    for method in Method::ALL {
        let (tuned, curve) = finetune(model, &plan, digits(), &data, method, &config, 5);
        assert_eq!(curve.len(), 21);
        let changed: Vec<usize> = (0..model.params.len())
            .filter(|&i| tuned.params[i].to_bits() != model.params[i].to_bits())
            .collect();
        match method {
            Method::Stochastic | Method::Deterministic => {
                assert!(
                    changed.is_empty(),
                    "{method:?} left the feedforward weights alone"
                );
                assert!(
                    tuned.coupling.iter().any(|&c| !(0.9..=1.1).contains(&c)),
                    "{method:?} trained c"
                );
            }
            Method::Retrain => {
                assert!(
                    tuned.coupling.iter().all(|&c| c == 0.0),
                    "retrain keeps c = 0"
                );
                assert!(
                    changed.iter().any(|&i| i < model.layer(2).weights.start),
                    "retrain trains the encoder"
                );
                assert!(changed.iter().any(|&i| i >= last_layer), "and the readout");
            }
            Method::RetrainLast => {
                assert!(tuned.coupling.iter().all(|&c| c == 0.0));
                assert!(
                    !changed.is_empty() && changed.iter().all(|&i| i >= last_layer),
                    "only the readout"
                );
            }
        }
        let gain_untouched = tuned.gain.iter().all(|&g| g == 1.0);
        assert_eq!(
            gain_untouched,
            method != Method::Stochastic,
            "{method:?}: only stochastic gates"
        );
    }
}

#[test]
fn learning_happens_for_every_method_at_the_default_rates() {
    let model = pretrained();
    let plan = KernelPlan::new(model);
    let config = FinetuneConfig::default();
    for method in Method::ALL {
        let (mut first, mut last) = (0.0, 0.0);
        for (i, task) in ["1-7@0", "3-8@2"].iter().enumerate() {
            let task: Task = task.parse().unwrap();
            let data = TaskData::new(model, digits(), task, &config, 0);
            for repeat in 0..2 {
                let (_, curve) = finetune(
                    model,
                    &plan,
                    digits(),
                    &data,
                    method,
                    &config,
                    (10 * i + repeat) as u64,
                );
                first += curve[0];
                last += curve[curve.len() - 1];
            }
        }
        assert!(
            last > first + 0.1,
            "{method:?}: mean final accuracy {} vs measurement 0 {}",
            last / 4.0,
            first / 4.0
        );
    }
}

#[test]
fn every_gain_option_runs_and_changes_the_gain() {
    use comod::kernel::GainRule;
    use comod::train::gain::{GainInput, GainNorm, GainOptions, GainSmoothing};
    let model = pretrained();
    let plan = KernelPlan::new(model);
    let task: Task = "3-8@2".parse().unwrap();
    let literal = GainOptions {
        norm: GainNorm::None,
        smoothing: GainSmoothing::None,
        ..GainOptions::default()
    };
    let blank = GainOptions {
        input: GainInput::Blank,
        ..GainOptions::default()
    };
    let correlation = GainOptions {
        rule: GainRule::Correlation,
        ..GainOptions::default()
    };
    let mut gains = Vec::new();
    for gain in [GainOptions::default(), literal, blank, correlation] {
        let config = FinetuneConfig {
            batches: 10,
            test_composites: 200,
            gain,
            ..FinetuneConfig::default()
        };
        let data = TaskData::new(model, digits(), task, &config, 0);
        let (tuned, curve) = finetune(
            model,
            &plan,
            digits(),
            &data,
            Method::Stochastic,
            &config,
            3,
        );
        assert!(curve.iter().all(|a| (0.0..=1.0).contains(a)), "{gain:?}");
        assert!(
            tuned.gain.iter().all(|g| g.is_finite()) && tuned.gain.iter().any(|&g| g != 1.0),
            "{gain:?}"
        );
        if gain.norm == GainNorm::Mean1 {
            let mean = tuned.gain.iter().map(|&g| g as f64).sum::<f64>() / tuned.gain.len() as f64;
            assert!(
                (mean - 1.0).abs() < 1e-5 && tuned.gain.iter().all(|&g| g >= 0.0),
                "{gain:?}: mean {mean}"
            );
        }
        gains.push(tuned.gain);
    }
    for i in 0..gains.len() {
        for j in i + 1..gains.len() {
            assert_ne!(
                gains[i], gains[j],
                "options {i} and {j} give different gains"
            );
        }
    }
    assert!(
        gains[1].iter().any(|&g| g < 0.0),
        "the literal Eq. 3 keeps negative covariances"
    );
}
