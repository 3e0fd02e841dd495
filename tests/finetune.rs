//! Fine-tuning (§4): each method's learner changes only what it trains,
//! snapshots restore exactly, learning happens at the default rates, every
//! gain option acts, and a bad configuration is refused by the library.
//! The `dataset` protocol: E_max epochs without patience, sizes independent
//! of each other, and the reported accuracy that of the kept state.

mod common;

use std::sync::OnceLock;

use comod::data::{CANVAS_PIXELS, Digits, Task};
use comod::net::Depth;
use comod::net::{Arch, Model, Modulation};
use comod::train::learner::{Learner, learner};
use comod::train::network::Batch;
use comod::train::options::{DatasetOptions, Protocol};
use comod::train::protocol::online;
use comod::train::study::{digit_task_data, training_composites};
use comod::train::{Examples, FinetuneConfig, Frozen, Method, ReadoutKind, TaskData};
use comod::train::{PretrainOptions, pretrain};

fn digits() -> &'static Digits {
    common::shipped_digits()
}

/// A task's test set and a run's training examples (drawn with `seed`),
/// labelled as `config`'s readout reads them.
fn task_examples(
    task: Task,
    config: &FinetuneConfig,
    seed: u64,
) -> (TaskData<Model<f32>>, Examples) {
    let data = digit_task_data(frozen(), digits(), task, config, 0);
    let train = training_composites(digits(), task, config, seed);
    let labels = config.readout.labels(&train).to_vec();
    let training = Examples {
        inputs: train.images,
        labels,
    };
    (data, training)
}

/// A fixed pretrained test network (40 epochs, held-out accuracy ≈ 0.8).
fn frozen() -> &'static Frozen<Model<f32>> {
    static FROZEN: OnceLock<Frozen<Model<f32>>> = OnceLock::new();
    FROZEN.get_or_init(|| {
        let options = PretrainOptions {
            max_epochs: 40,
            ..PretrainOptions::DEFAULT
        };
        let arch = Arch::preset("paper3", 1).unwrap();
        let (model, _) = pretrain(&arch, digits(), &options, |_| {}).unwrap();
        Frozen::new(model)
    })
}

#[test]
fn forward_from_cached_activity_equals_the_full_forward() {
    for (name, layer) in [("paper3", 1), ("deep4", 2), ("local2", 1)] {
        let arch = Arch::preset(name, layer).unwrap();
        let model = Model::<f32>::init(&arch, 3);
        let mut modulation = Modulation::off(&arch);
        modulation
            .coupling
            .iter_mut()
            .enumerate()
            .for_each(|(i, c)| *c = 0.5 + (i % 5) as f32 * 0.1);
        modulation
            .gain
            .iter_mut()
            .enumerate()
            .for_each(|(i, g)| *g = 0.5 + (i % 3) as f32 * 0.5);
        let canvases: Vec<f32> = (0..7 * CANVAS_PIXELS)
            .map(|i| (i % 13) as f32 / 13.0)
            .collect();
        let mut ws = model.workspace(7);
        model.forward(&mut ws, &modulation, &canvases, 1.1);
        let full = model.logits(&ws).to_vec();
        for l in [arch.modulated_layer, arch.gated_layer()] {
            let activity = model
                .activity_at(&mut ws, &modulation, &canvases, l, 1.1)
                .to_vec();
            model.forward_from(&mut ws, &modulation, l, &activity, 1.1);
            assert_eq!(model.logits(&ws), &full[..], "{name}: from layer {l}");
        }
    }
}

#[test]
fn each_method_changes_only_what_it_trains() {
    let frozen = frozen();
    let model = &frozen.net;
    // λ = 0: whatever changes, changes through the task's loss alone.
    let config = FinetuneConfig {
        batches: 20,
        test_composites: 200,
        lambda: 0.0,
        ..FinetuneConfig::DEFAULT
    };
    let task: Task = "1-7@0".parse().unwrap();
    let data = digit_task_data(frozen, digits(), task, &config, 0);
    let train = training_composites(digits(), task, &config, 11);
    let labels = config.readout.labels(&train);
    let depth = model.arch().depth();
    let last_layer = model.layer(depth).weights.start;
    for method in Method::ALL {
        let mut learner = learner(method, frozen, &config, config.readout.of(task), 5);
        let initial = learner.modulation().clone();
        let training = Examples {
            inputs: train.images.clone(),
            labels: labels.to_vec(),
        };
        let (curve, failure) = online(learner.as_mut(), &training, config.batch_size, &data.test);
        assert_eq!(failure, None);
        assert_eq!(curve.accuracy.len(), 21);
        assert_eq!(curve.examples, (0..=20).map(|n| 2 * n).collect::<Vec<_>>());
        let tuned = learner.network();
        let changed: Vec<usize> = (0..model.params.len())
            .filter(|&i| tuned.params[i].to_bits() != model.params[i].to_bits())
            .collect();
        let coupling = &learner.modulation().coupling;
        match method.trains() {
            Depth::Coupling => {
                assert!(changed.is_empty(), "{method:?} left the weights alone");
                assert!(
                    initial.coupling.iter().all(|c| (0.9..1.1).contains(c)),
                    "c starts in U[0.9, 1.1]"
                );
                let moved = coupling
                    .iter()
                    .zip(&initial.coupling)
                    .filter(|(c, c0)| c != c0)
                    .count();
                assert!(
                    moved > coupling.len() / 2,
                    "{method:?} trained c by the loss: {moved} of {} moved",
                    coupling.len()
                );
            }
            Depth::All => {
                assert!(coupling.iter().all(|&c| c == 0.0), "retrain keeps c = 0");
                assert!(
                    changed.iter().any(|&i| i < model.layer(2).weights.start),
                    "retrain trains the encoder"
                );
                assert!(changed.iter().any(|&i| i >= last_layer), "and the readout");
            }
            Depth::Readout => {
                assert!(coupling.iter().all(|&c| c == 0.0));
                assert!(
                    !changed.is_empty() && changed.iter().all(|&i| i >= last_layer),
                    "only the readout"
                );
            }
            Depth::CouplingAndReadout => unreachable!("no method trains to this depth alone"),
        }
        let gain = &learner.modulation().gain;
        assert_eq!(
            gain.iter().all(|&g| g == 1.0),
            !method.gates(),
            "{method:?}: only stochastic gates"
        );
    }
}

#[test]
fn restoring_a_snapshot_restores_the_evaluation_exactly() {
    let frozen = frozen();
    let config = FinetuneConfig {
        batches: 12,
        test_composites: 200,
        ..FinetuneConfig::DEFAULT
    };
    let task: Task = "3-8@2".parse().unwrap();
    let (data, training) = task_examples(task, &config, 4);
    for method in Method::ALL {
        let mut learner = learner(method, frozen, &config, config.readout.of(task), 9);
        learner.begin(training.batch(0, 2, None)).unwrap();
        for k in 0..4 {
            learner.step(training.batch(k, 2, None)).unwrap();
        }
        let kept = learner.snapshot();
        let evaluate = |learner: &mut Box<dyn Learner<Model<f32>> + '_>| {
            (
                learner.accuracy(&data.test).unwrap(),
                learner.loss(&data.test).unwrap(),
            )
        };
        let at_snapshot = evaluate(&mut learner);
        let modulation = learner.modulation().clone();
        for k in 4..12 {
            learner.step(training.batch(k, 2, None)).unwrap();
        }
        assert_ne!(
            evaluate(&mut learner).1,
            at_snapshot.1,
            "{method:?} kept learning"
        );
        learner.restore(&kept);
        assert_eq!(evaluate(&mut learner), at_snapshot, "{method:?}");
        assert_eq!(learner.modulation(), &modulation, "{method:?}");
        assert_eq!(learner.snapshot(), kept, "{method:?}");
    }
}

#[test]
fn learning_happens_for_every_method_at_the_default_rates() {
    let frozen = frozen();
    let config = FinetuneConfig::DEFAULT;
    for method in Method::ALL {
        let (mut first, mut last) = (0.0, 0.0);
        for (i, task) in ["1-7@0", "3-8@2"].iter().enumerate() {
            let task: Task = task.parse().unwrap();
            let data = digit_task_data(frozen, digits(), task, &config, 0);
            for repeat in 0..2 {
                let seed = (10 * i + repeat) as u64;
                let outcome =
                    common::digit_run(frozen, task, &data, method, &config, seed).unwrap();
                let curve = outcome.curve.accuracy;
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
    use comod::net::GainRule;
    use comod::train::options::GainInput;
    use comod::train::options::GainNorm;
    use comod::train::options::GainOptions;
    use comod::train::options::GainSmoothing;
    let frozen = frozen();
    let task: Task = "3-8@2".parse().unwrap();
    let literal = GainOptions {
        norm: GainNorm::None,
        smoothing: GainSmoothing::None,
        ..GainOptions::DEFAULT
    };
    let blank = GainOptions {
        input: GainInput::Blank,
        ..GainOptions::DEFAULT
    };
    let correlation = GainOptions {
        rule: GainRule::Correlation,
        ..GainOptions::DEFAULT
    };
    let mut gains = Vec::new();
    for gain in [GainOptions::DEFAULT, literal, blank, correlation] {
        let config = FinetuneConfig {
            batches: 10,
            test_composites: 200,
            gain,
            ..FinetuneConfig::DEFAULT
        };
        let data = digit_task_data(frozen, digits(), task, &config, 0);
        let outcome =
            common::digit_run(frozen, task, &data, Method::Stochastic, &config, 3).unwrap();
        let tuned = outcome.modulation.gain;
        assert!(
            outcome
                .curve
                .accuracy
                .iter()
                .all(|a| (0.0..=1.0).contains(a)),
            "{gain:?}"
        );
        assert!(
            tuned.iter().all(|g| g.is_finite()) && tuned.iter().any(|&g| g != 1.0),
            "{gain:?}"
        );
        if gain.norm == GainNorm::Mean1 {
            let mean = tuned.iter().map(|&g| g as f64).sum::<f64>() / tuned.len() as f64;
            assert!(
                (mean - 1.0).abs() < 1e-5 && tuned.iter().all(|&g| g >= 0.0),
                "{gain:?}: mean {mean}"
            );
        }
        gains.push(tuned);
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

#[test]
fn a_library_call_with_a_bad_configuration_is_one_clear_error() {
    let frozen = frozen();
    let config = FinetuneConfig {
        test_composites: 50,
        ..FinetuneConfig::DEFAULT
    };
    let task: Task = "1-7@0".parse().unwrap();
    let data = digit_task_data(frozen, digits(), task, &config, 0);
    let bad = FinetuneConfig {
        samples: 0,
        ..config
    };
    let err = common::digit_run(frozen, task, &data, Method::Stochastic, &bad, 1)
        .unwrap_err()
        .to_string();
    assert_eq!(err, "--samples 0: must be at least 1");
}

#[test]
fn the_validation_loss_is_the_mean_cross_entropy_of_the_network_as_trained() {
    let frozen = frozen();
    let task: Task = "2-5@3".parse().unwrap();
    let config = FinetuneConfig {
        test_composites: 100,
        readout: ReadoutKind::Pair,
        ..FinetuneConfig::DEFAULT
    };
    let (data, training) = task_examples(task, &config, 6);
    let images = data.test.inputs();
    for method in Method::ALL {
        let mut learner = learner(method, frozen, &config, config.readout.of(task), 2);
        learner.begin(training.batch(0, 2, None)).unwrap();
        for k in 0..5 {
            learner.step(training.batch(k, 2, None)).unwrap();
        }
        // The same loss from a plain forward pass of the network the
        // learner computes, with its coupling and gain.
        let model = learner.network().clone();
        let mut ws = model.workspace(images.len() / CANVAS_PIXELS);
        model.forward(&mut ws, learner.modulation(), images, config.modulator_mean);
        let expected = model.loss(&mut ws, data.test.labels(), config.readout.of(task)) as f64;
        let loss = learner.loss(&data.test).unwrap();
        assert!(
            (loss - expected).abs() <= 1e-5 * expected,
            "{method:?}: {loss} vs {expected}"
        );
        // λ plays no part in it.
        let unpenalised = FinetuneConfig {
            lambda: 0.0,
            ..config
        };
        let mut fresh = learner_for(method, &unpenalised, task);
        let mut penalised = learner_for(method, &config, task);
        assert_eq!(
            fresh.loss(&data.test),
            penalised.loss(&data.test),
            "{method:?}"
        );
    }
}

fn learner_for<'a>(
    method: Method,
    config: &FinetuneConfig,
    task: Task,
) -> Box<dyn Learner<Model<f32>> + 'a> {
    learner(method, frozen(), config, config.readout.of(task), 2)
}

/// A small `dataset` protocol: sizes 4, 8, 12, at most `max_epochs`.
fn dataset_config(sizes: usize, max_epochs: usize, patience: Option<usize>) -> FinetuneConfig {
    FinetuneConfig {
        protocol: Protocol::Dataset(DatasetOptions {
            size_step: 4,
            sizes,
            max_epochs,
            patience,
        }),
        test_composites: 100,
        samples: 40,
        ..FinetuneConfig::DEFAULT
    }
}

#[test]
fn without_patience_every_size_trains_exactly_max_epochs() {
    let config = dataset_config(3, 9, None);
    let task: Task = "1-7@0".parse().unwrap();
    let data = digit_task_data(frozen(), digits(), task, &config, 0);
    for method in Method::ALL {
        let outcome = common::digit_run(frozen(), task, &data, method, &config, 5).unwrap();
        let epochs = outcome.epochs.expect("dataset runs report epochs");
        assert_eq!(epochs.trained, [9, 9, 9], "{method:?}");
        assert!(epochs.kept.iter().all(|&k| k <= 9), "{method:?}");
        assert_eq!(outcome.curve.examples, [4, 8, 12]);
    }
}

#[test]
fn a_size_does_not_depend_on_the_sizes_after_it() {
    let task: Task = "3-8@2".parse().unwrap();
    let one = dataset_config(1, 30, Some(4));
    let three = dataset_config(3, 30, Some(4));
    let data = digit_task_data(frozen(), digits(), task, &one, 0);
    for method in Method::ALL {
        let alone = common::digit_run(frozen(), task, &data, method, &one, 8).unwrap();
        let first = common::digit_run(frozen(), task, &data, method, &three, 8).unwrap();
        let (alone_epochs, first_epochs) = (alone.epochs.unwrap(), first.epochs.unwrap());
        assert_eq!(
            alone.curve.accuracy[0], first.curve.accuracy[0],
            "{method:?}"
        );
        assert_eq!(
            alone_epochs.trained[0], first_epochs.trained[0],
            "{method:?}"
        );
        assert_eq!(alone_epochs.kept[0], first_epochs.kept[0], "{method:?}");
        // Training happened: some size kept a trained state.
        assert!(
            first_epochs.kept.iter().any(|&k| k > 0),
            "{method:?}: {first_epochs:?}"
        );
    }
}

#[test]
fn the_reported_accuracy_is_that_of_the_state_after_the_kept_epoch() {
    // High rates, so that the validation loss turns up and an earlier
    // state is kept.
    let rates = |max_epochs| FinetuneConfig {
        lr: comod::train::method::LearningRates {
            stochastic: 0.1,
            deterministic: 0.1,
            retrain: 1e-2,
            retrain_last: 0.1,
        },
        ..dataset_config(2, max_epochs, None)
    };
    let task: Task = "4-9@1".parse().unwrap();
    let data = digit_task_data(frozen(), digits(), task, &rates(1), 0);
    let mut earlier_kept = 0;
    for method in Method::ALL {
        let long = common::digit_run(frozen(), task, &data, method, &rates(40), 3).unwrap();
        let kept = long.epochs.unwrap().kept;
        for (size, &epoch) in kept.iter().enumerate() {
            if epoch == 0 || epoch == 40 {
                continue;
            }
            earlier_kept += 1;
            // Trained for exactly the kept epochs, the last state is the
            // kept one: the same accuracy, the same kept epoch.
            let short = common::digit_run(frozen(), task, &data, method, &rates(epoch), 3).unwrap();
            assert_eq!(short.epochs.unwrap().kept[size], epoch, "{method:?}");
            assert_eq!(
                short.curve.accuracy[size], long.curve.accuracy[size],
                "{method:?} size {size}"
            );
        }
    }
    assert!(
        earlier_kept >= 2,
        "early stopping chose an earlier state {earlier_kept} times"
    );
}

/// An `online` run counts the frozen layers' pass over its sequence once
/// and its steps from their activity: what each multiplies, written out.
#[test]
fn an_online_run_counts_its_sequence_pass_once_and_steps_from_it() {
    let frozen = frozen();
    let model = &frozen.net;
    let config = FinetuneConfig {
        batches: 5,
        test_composites: 100,
        ..FinetuneConfig::DEFAULT
    };
    let task: Task = "2-5@1".parse().unwrap();
    let (data, training) = task_examples(task, &config, 3);
    let [e, d, r] = [1, 2, 3].map(|l| model.layer(l).shape.macs() as f64);
    let (n, steps, measurements) = (training.len() as f64, 5.0, 6.0 * 100.0);
    assert_eq!(n, 10.0);
    // 2 × (the sequence pass + steps of two examples + measurements).
    for (method, sequence, step, measurement) in [
        (Method::Deterministic, e, 2.0 * d + 2.0 * r, d + r),
        (Method::RetrainLast, e + d, 2.0 * r, r),
        (Method::Retrain, 0.0, 2.0 * e + 3.0 * d + 3.0 * r, e + d + r),
    ] {
        let mut learner = learner(method, frozen, &config, config.readout.of(task), 2);
        let (_, failure) = online(learner.as_mut(), &training, 2, &data.test);
        assert_eq!(failure, None);
        let want = 2.0 * (n * sequence + steps * 2.0 * step + measurements * measurement);
        assert_eq!(learner.flops(), want, "{method:?}");
    }
}

#[test]
fn steps_from_cached_activity_train_exactly_as_steps_from_canvases() {
    let frozen = frozen();
    let config = FinetuneConfig {
        test_composites: 100,
        ..FinetuneConfig::DEFAULT
    };
    let task: Task = "0-6@3".parse().unwrap();
    let (data, training) = task_examples(task, &config, 7);
    for method in Method::ALL {
        let mut plain = learner(method, frozen, &config, config.readout.of(task), 4);
        let mut cached = learner(method, frozen, &config, config.readout.of(task), 4);
        // The whole sequence's activity in one pass (chunks of many rows),
        // the plain steps' frozen layers two rows at a time.
        let activity = cached.sequence_activity(&training.inputs);
        assert_eq!(activity.is_none(), method == Method::Retrain, "{method:?}");
        for k in 0..8 {
            let batch = training.batch(k, 2, None);
            let with_activity = training.batch(k, 2, activity.as_deref());
            if k == 0 {
                plain.begin(batch).unwrap();
                cached.begin(with_activity).unwrap();
            }
            plain.step(batch).unwrap();
            cached.step(with_activity).unwrap();
        }
        assert_eq!(plain.snapshot(), cached.snapshot(), "{method:?}");
        assert_eq!(plain.accuracy(&data.test), cached.accuracy(&data.test));
    }
}

#[test]
fn variance_compensation_scales_each_neurons_activity_by_its_expected_factor() {
    use comod::train::gain::GainEstimator;
    use comod::train::options::Compensation;
    use comod::train::options::GainNorm;
    use comod::train::options::GainOptions;
    use comod::train::options::GainSmoothing;
    let frozen = frozen();
    let model = &frozen.net;
    let raw = GainOptions {
        norm: GainNorm::None,
        smoothing: GainSmoothing::None,
        ..GainOptions::DEFAULT
    };
    let plain = FinetuneConfig {
        gain: raw,
        modulator_variance: 0.3,
        gain_modulator_mean: Some(0.0),
        ..FinetuneConfig::DEFAULT
    };
    let compensated = FinetuneConfig {
        compensation: Compensation::Variance,
        ..plain
    };
    let set = training_composites(digits(), "3-8@2".parse().unwrap(), &plain, 5);
    let images = &set.images[..2 * CANVAS_PIXELS];
    let labels = &set.labels[..2];
    let mut modulation = Modulation::off(model.arch());
    modulation
        .coupling
        .iter_mut()
        .enumerate()
        .for_each(|(i, c)| *c = (i % 7) as f32 * 0.4 - 1.0);
    let activity = model
        .unmodulated_activity(&mut model.workspace(2), images)
        .to_vec();
    // By hand: F(a_ℓ) ⊙ exp(−σ²c²/2), then the uncompensated kernel.
    let n = modulation.coupling.len();
    let scaled: Vec<f32> = activity
        .iter()
        .enumerate()
        .map(|(k, &u)| {
            let c = modulation.coupling[k % n];
            u * (-0.5 * 0.3 * c * c).exp()
        })
        .collect();
    let mut gain_of = |config: &FinetuneConfig, activity: Option<&[f32]>| {
        let mut estimator = GainEstimator::new(frozen, config, 11);
        let batch = Batch {
            inputs: images,
            labels,
            activity,
        };
        estimator.estimate(frozen, &mut modulation, batch);
        modulation.gain.clone()
    };
    let by_hand = gain_of(&plain, Some(&scaled));
    assert_eq!(gain_of(&compensated, None), by_hand, "from canvases");
    assert_eq!(
        gain_of(&compensated, Some(&activity)),
        by_hand,
        "from activity"
    );
    assert_ne!(
        gain_of(&plain, Some(&activity)),
        by_hand,
        "compensation acts"
    );
    let shifted = FinetuneConfig {
        gain_modulator_mean: Some(1.0),
        ..plain
    };
    assert_ne!(
        gain_of(&shifted, Some(&scaled)),
        by_hand,
        "the gain samples' mean acts"
    );
}

#[test]
fn a_square_coupling_stays_non_negative_and_steps_on_its_root() {
    use comod::net::{Depth, Readout};
    use comod::train::options::CouplingParam;
    let frozen = frozen();
    let model = &frozen.net;
    let task: Task = "4-9@1".parse().unwrap();
    let config = FinetuneConfig {
        lambda: 0.0,
        coupling_param: CouplingParam::Square,
        ..FinetuneConfig::DEFAULT
    };
    let set = training_composites(digits(), task, &config, 3);
    let (images, labels) = (&set.images[..2 * CANVAS_PIXELS], &set.targets[..2]);
    let mut learner = learner(Method::Deterministic, frozen, &config, Readout::All, 2);
    let before = learner.modulation().coupling.clone();
    assert!(before.iter().all(|c| (0.9..1.1).contains(c)));
    // dL/dc at the starting coupling, from the network itself.
    let mut ws = model.workspace(2);
    let mut grads = model.zero_grads();
    model.forward(&mut ws, learner.modulation(), images, config.modulator_mean);
    model.loss(&mut ws, labels, Readout::All);
    model.backward(&mut ws, Depth::Coupling, &mut grads);
    learner
        .step(Batch {
            inputs: images,
            labels,
            activity: None,
        })
        .unwrap();
    let after = &learner.modulation().coupling;
    let lr = config.lr.deterministic;
    let mut moved = 0;
    for ((&c0, &c1), &dc) in before.iter().zip(after).zip(&grads.coupling) {
        assert!(c1 >= 0.0);
        if dc.abs() > 1e-6 {
            // Adam's first step moves w = √c by lr against the sign of
            // dL/dw = 2w·dL/dc.
            let step = c1.sqrt() - c0.sqrt();
            assert!(
                (step + lr * dc.signum()).abs() < 1e-3 * lr + 1e-6,
                "{c0} → {c1}, dL/dc {dc}"
            );
            moved += 1;
        }
    }
    assert!(moved > 10, "{moved} couplings moved");
}
