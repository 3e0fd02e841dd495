//! The transfer protocols of §8: `held-out` pretraining never reads a
//! held-out task's labels; a held-out task's runs start from a fresh head
//! that is the same for every method of a repeat, and every method trains
//! it (the modulation methods beside c, `retrain` with the backbone).

mod common;

use common::datasets::{NAMES, write_celeba};
use comod::conv::{ConvArch, ConvNet};
use comod::data::benchmark::{Benchmark, BenchmarkData};
use comod::net::Depth;
use comod::train::joint::{MultitaskPretrainOptions, pretrain_multitask};
use comod::train::learner::learner;
use comod::train::{BenchmarkTasks, FinetuneConfig, Frozen, Method, Study, Transfer};

/// A small network for 40 CelebA attributes at 64×64.
const CELEBA_ARCH: &str = r#"{"format":2,"input":{"channels":3,"height":64,"width":64},"stages":[{"kind":"conv","channels":2,"kernel":3},{"kind":"maxpool"},{"kind":"dense","size":6}],"tasks":40,"modulated_stage":1,"beta":0.0}"#;

/// Writes a CelebA folder of 12 images whose held-out attributes (the
/// last 10 of the header) follow `held_out(row, attribute)`; the others
/// are the same in every folder.
fn celeba_with(dir: &std::path::Path, held_out: impl Fn(usize, usize) -> bool) {
    let images: Vec<(String, [u8; 3], bool, u8)> = (0..12)
        .map(|i| {
            let rgb = [(20 * i) as u8, (255 - 15 * i) as u8, (90 + 7 * i) as u8];
            (
                format!("{:06}.jpg", i + 1),
                rgb,
                i % 3 != 0,
                [0, 0, 2][i % 3],
            )
        })
        .collect();
    let named: Vec<(&str, [u8; 3], bool, u8)> = (images.iter())
        .map(|(f, rgb, set, split)| (f.as_str(), *rgb, *set, *split))
        .collect();
    write_celeba(dir, &named);
    // Rewrite the attribute list's held-out columns.
    let path = dir.join("list_attr_celeba.txt");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let first_held = NAMES.split_whitespace().count() - 10;
    for (row, line) in lines.iter_mut().skip(2).enumerate() {
        let mut fields: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        for a in first_held..40 {
            fields[1 + a] = if held_out(row, a) { "1" } else { "-1" }.into();
        }
        *line = fields.join(" ");
    }
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
}

/// Pretraining under `held-out` on two CelebA folders that differ only in
/// the held-out attributes gives the same network, bit for bit; under
/// `joint` (the control) the labels reach the network and it differs.
#[test]
fn held_out_pretraining_never_reads_a_held_out_label() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    celeba_with(a.path(), |row, attr| (row + attr) % 2 == 0);
    celeba_with(b.path(), |row, attr| (row * attr) % 3 == 1);
    let arch = ConvArch::from_json(CELEBA_ARCH).unwrap();
    let pretrain = |dir: &std::path::Path, transfer| {
        let data = BenchmarkData::load(Benchmark::Celeba, dir, None).unwrap();
        let options = MultitaskPretrainOptions {
            max_epochs: 2,
            examples: 24,
            batch: 6,
            heldout: 8,
            transfer,
            ..MultitaskPretrainOptions::DEFAULT
        };
        let (net, epochs) = pretrain_multitask(&data, &arch, &options, &mut |_| {}).unwrap();
        assert_eq!(epochs.len(), 2);
        net
    };
    let (held_a, held_b) = (
        pretrain(a.path(), Transfer::HeldOut),
        pretrain(b.path(), Transfer::HeldOut),
    );
    assert_eq!(
        held_a.params, held_b.params,
        "held-out labels reached the network"
    );
    let (joint_a, joint_b) = (
        pretrain(a.path(), Transfer::Joint),
        pretrain(b.path(), Transfer::Joint),
    );
    assert_ne!(
        joint_a.params, joint_b.params,
        "the control: joint reads them"
    );
    // The held-out heads are untrained: as the initialisation drew them.
    let init = ConvNet::<f32>::init(&arch, MultitaskPretrainOptions::DEFAULT.seed);
    for t in 30..40 {
        let (w, bias) = held_a.head_of(t);
        assert_eq!(held_a.params[w.clone()], init.params[w], "head {t}");
        assert_eq!(held_a.params[bias.clone()], init.params[bias], "head {t}");
    }
}

/// A small network for the 16 `mnist-attributes` tasks.
const MNIST_ARCH: &str = r#"{"format":2,"input":{"channels":1,"height":28,"width":28},"stages":[{"kind":"conv","channels":3,"kernel":3},{"kind":"maxpool"},{"kind":"dense","size":8}],"tasks":16,"modulated_stage":1,"beta":0.0}"#;

/// A held-out task's start is one fresh head per (task, repeat), the same
/// for every method; every method trains it, and the modulation methods
/// train nothing else of the network besides c.
#[test]
fn every_method_starts_from_the_same_fresh_head_and_trains_it() {
    let data = BenchmarkData::mnist_attributes(common::shipped_digits().clone());
    let arch = ConvArch::from_json(MNIST_ARCH).unwrap();
    let options = MultitaskPretrainOptions {
        max_epochs: 1,
        examples: 200,
        heldout: 100,
        ..MultitaskPretrainOptions::DEFAULT
    };
    let (net, _) = pretrain_multitask(&data, &arch, &options, &mut |_| {}).unwrap();
    let frozen = Frozen::new(net.clone());
    let study = BenchmarkTasks {
        frozen: &frozen,
        data: &data,
    };
    let (task, seed) = (data.task_index("prime@1").unwrap(), 5);
    let start = study.fresh_head(task, 0, seed);
    assert_eq!(
        start.params,
        study.fresh_head(task, 0, seed).params,
        "fixed by the seed"
    );
    let (head_w, head_b) = start.head_of(task);
    let other = study.fresh_head(task, 1, seed);
    assert_ne!(
        other.params[head_w.clone()],
        start.params[head_w.clone()],
        "a repeat draws its own"
    );
    assert_ne!(
        start.params[head_w.clone()],
        net.params[head_w.clone()],
        "fresh, not pretrained"
    );
    assert!(start.params[head_b.clone()].iter().all(|&b| b == 0.0));
    let outside = |p: &[f32]| -> Vec<f32> {
        (p.iter().enumerate())
            .filter(|(i, _)| !head_w.contains(i) && !head_b.contains(i))
            .map(|(_, &v)| v)
            .collect()
    };
    assert_eq!(
        outside(&start.params),
        outside(&net.params),
        "only the head is new"
    );

    let config = FinetuneConfig {
        fresh_readout: true,
        batches: 6,
        samples: 16,
        test_composites: 100,
        ..FinetuneConfig::DEFAULT
    };
    let task_data = study.task_data(task, &config, seed).unwrap();
    let train = study.training(task, 0, seed, &config, seed).unwrap();
    let fresh = Frozen::new(start.clone());
    let mut first = Vec::new();
    for method in Method::ALL {
        let mut l = learner(method, &fresh, &config, task, 17);
        l.begin(train.batch(0, 2, None)).unwrap();
        first.push(l.accuracy(&task_data.test).unwrap());
        for k in 0..config.batches {
            l.step(train.batch(k, 2, None)).unwrap();
        }
        let trained = &l.network().params;
        assert_ne!(
            trained[head_w.clone()],
            start.params[head_w.clone()],
            "{method:?} trains the head"
        );
        let backbone_moved = outside(trained) != outside(&start.params);
        assert_eq!(
            backbone_moved,
            method == Method::Retrain,
            "{method:?}: only retrain trains the backbone"
        );
        let coupling = &l.modulation().coupling;
        let modulates = method.trains() == Depth::Coupling;
        assert_eq!(
            coupling.iter().any(|&c| c != 0.0),
            modulates,
            "{method:?}: c"
        );
    }
    // With the modulation off, the two retraining methods start alike.
    assert_eq!(
        first[2], first[3],
        "retrain and retrain-last start from the same head"
    );
    // Without a fresh readout the modulation methods leave the head alone.
    let plain = FinetuneConfig {
        fresh_readout: false,
        ..config
    };
    let mut l = learner(Method::Deterministic, &fresh, &plain, task, 17);
    l.begin(train.batch(0, 2, None)).unwrap();
    for k in 0..plain.batches {
        l.step(train.batch(k, 2, None)).unwrap();
    }
    assert_eq!(l.network().params, start.params);
    // The run a sweep makes starts from that head for every method: the
    // first measurement of retrain and retrain-last agree.
    let runs: Vec<_> = [Method::Retrain, Method::RetrainLast]
        .into_iter()
        .map(|m| {
            study
                .run(task, &task_data, (m, 0, 17), &config, seed)
                .unwrap()
        })
        .collect();
    assert_eq!(runs[0].curve.accuracy[0], runs[1].curve.accuracy[0]);
}
