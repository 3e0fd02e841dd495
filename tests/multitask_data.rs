//! The loaders of §8 on small files written here in exactly the formats
//! of CIFAR-100 (binary version) and CelebA (attribute list, partition
//! list, aligned JPEGs), the `mnist-attributes` and `fashion-attributes`
//! labels against the items the composites show, and the held-out splits.

mod common;

use common::datasets::{NAMES, write_celeba, write_cifar};

use comod::data::benchmark::{Benchmark, BenchmarkData};
use comod::data::celeba::{CELEBA_SIDE, parse_celeba_attributes, parse_celeba_partition};
use comod::data::cifar::CIFAR_RECORD;
use comod::data::{CompositeKind, CompositeSet, NOISE_STD, Pool};
use comod::train::Transfer;

#[test]
fn cifar100_loads_channel_last_with_coarse_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let train = [
        (3, 30, [255, 0, 10]),
        (19, 99, [0, 128, 255]),
        (3, 31, [1, 2, 3]),
    ];
    write_cifar(
        dir.path(),
        &train,
        &[(0, 0, [9, 9, 9]), (3, 1, [50, 60, 70])],
    );
    let data = BenchmarkData::load(Benchmark::Cifar100, dir.path(), None).unwrap();
    assert_eq!(data.task_count(), 20);
    // Held out under `held-out`: the last 5 coarse classes (§8).
    assert_eq!(data.held_out, (15..20).collect::<Vec<_>>());
    assert_eq!(
        (data.shape.channels, data.shape.height, data.shape.width),
        (3, 32, 32)
    );
    // A balanced draw of task coarse03 from the training split.
    let set = data.draw_task(3, Pool::Train, 4, 7).unwrap();
    for (i, labels) in set.labels.chunks_exact(20).enumerate() {
        assert_eq!(
            labels.iter().map(|&l| l as usize).sum::<usize>(),
            1,
            "one coarse class"
        );
        assert_eq!(
            labels[3],
            u8::from(i % 2 == 0),
            "positives and negatives in turn"
        );
        let pixel = &set.images[i * 3072..i * 3072 + 3];
        let expected = train
            .iter()
            .find(|(c, _, _)| labels[*c as usize] == 1)
            .unwrap();
        if labels[19] == 1 {
            assert_eq!(
                pixel,
                [0.0, 128.0 / 255.0, 1.0],
                "channel-last RGB in [0, 1]"
            );
        } else {
            assert_eq!(labels[expected.0 as usize], 1);
        }
        // Channel-last: pixel 1 follows pixel 0's three channels.
        assert_eq!(&set.images[i * 3072 + 3..i * 3072 + 6], pixel);
    }
    // --limit keeps the first records.
    let limited = BenchmarkData::load(Benchmark::Cifar100, dir.path(), Some(1)).unwrap();
    assert!(
        limited.draw_task(19, Pool::Train, 2, 1).is_err(),
        "coarse 19 is not among the first record"
    );
}

#[test]
fn cifar100_format_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write_cifar(dir.path(), &[(0, 0, [1, 1, 1])], &[(0, 0, [1, 1, 1])]);
    let mut bytes = std::fs::read(dir.path().join("train.bin")).unwrap();
    bytes.pop();
    std::fs::write(dir.path().join("train.bin"), &bytes).unwrap();
    let err = BenchmarkData::load(Benchmark::Cifar100, dir.path(), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("train.bin") && err.contains(&format!("{CIFAR_RECORD}-byte")),
        "{err}"
    );
    write_cifar(dir.path(), &[(20, 0, [1, 1, 1])], &[(0, 0, [1, 1, 1])]);
    let err = BenchmarkData::load(Benchmark::Cifar100, dir.path(), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("train.bin") && err.contains("coarse 20"),
        "{err}"
    );
    write_cifar(dir.path(), &[(0, 100, [1, 1, 1])], &[(0, 0, [1, 1, 1])]);
    let err = BenchmarkData::load(Benchmark::Cifar100, dir.path(), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("fine 100"), "{err}");
    write_cifar(dir.path(), &[(0, 0, [1, 1, 1])], &[(0, 0, [1, 1, 1])]);
    std::fs::remove_file(dir.path().join("test.bin")).unwrap();
    let err = BenchmarkData::load(Benchmark::Cifar100, dir.path(), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("test.bin"), "{err}");
}

#[test]
fn celeba_loads_resized_images_with_attributes_and_partitions() {
    let dir = tempfile::tempdir().unwrap();
    write_celeba(
        dir.path(),
        &[
            ("000001.jpg", [200, 40, 40], true, 0),
            ("000002.jpg", [30, 160, 90], false, 0),
            ("000003.jpg", [100, 100, 100], true, 1),
            ("000004.jpg", [10, 20, 230], true, 2),
            ("000005.jpg", [240, 240, 20], false, 2),
        ],
    );
    let data = BenchmarkData::load(Benchmark::Celeba, dir.path(), None).unwrap();
    assert_eq!(data.task_count(), 40);
    assert_eq!(data.tasks[20], "Male");
    // Held out under `held-out`: the last 10 attributes of the header (§8).
    let held: Vec<&str> = data
        .held_out
        .iter()
        .map(|&t| data.tasks[t].as_str())
        .collect();
    assert_eq!(held, NAMES.split_whitespace().skip(30).collect::<Vec<_>>());
    assert_eq!(
        (data.shape.channels, data.shape.height, data.shape.width),
        (3, CELEBA_SIDE, CELEBA_SIDE)
    );
    let pixels = CELEBA_SIDE * CELEBA_SIDE * 3;
    // The test split holds partition 2 only: the blue positive and the yellow negative.
    let test = data.draw_task(20, Pool::Test, 2, 3).unwrap();
    for (i, (labels, expected)) in test
        .labels
        .chunks_exact(40)
        .zip([[10, 20, 230], [240, 240, 20]])
        .enumerate()
    {
        assert_eq!(labels[20], u8::from(i == 0));
        assert_eq!(labels[0], labels[20]);
        let centre = &test.images[i * pixels + (32 * CELEBA_SIDE + 32) * 3..][..3];
        for (got, want) in centre.iter().zip(expected) {
            assert!(
                (got * 255.0 - want as f32).abs() <= 8.0,
                "JPEG colour {got} vs {want}"
            );
        }
    }
    let train = data.draw_task(0, Pool::Train, 2, 3).unwrap();
    assert_eq!(train.labels[0], 1);
    assert_eq!(train.labels[40], 0);
}

#[test]
fn celeba_format_errors_name_the_file_and_line() {
    let images = [
        ("000001.jpg", [1, 2, 3], true, 0),
        ("000002.jpg", [1, 2, 3], false, 2),
    ];
    let dir = tempfile::tempdir().unwrap();
    write_celeba(dir.path(), &images);
    let attr = dir.path().join("list_attr_celeba.txt");
    let text = std::fs::read_to_string(&attr).unwrap();
    std::fs::write(&attr, text.replacen(" -1", " 0", 1)).unwrap();
    let err = BenchmarkData::load(Benchmark::Celeba, dir.path(), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("list_attr_celeba.txt") && err.contains("line 3") && err.contains("\"0\""),
        "{err}"
    );
    write_celeba(dir.path(), &images);
    std::fs::write(
        dir.path().join("list_eval_partition.txt"),
        "000001.jpg 0\n000002.jpg 3\n",
    )
    .unwrap();
    let err = BenchmarkData::load(Benchmark::Celeba, dir.path(), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("list_eval_partition.txt") && err.contains("line 2"),
        "{err}"
    );
    write_celeba(dir.path(), &images);
    std::fs::write(
        dir.path().join("img_align_celeba").join("000002.jpg"),
        b"not a jpeg",
    )
    .unwrap();
    let err = BenchmarkData::load(Benchmark::Celeba, dir.path(), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("000002.jpg") && err.contains("JPEG"), "{err}");
    write_celeba(dir.path(), &images);
    std::fs::remove_file(dir.path().join("img_align_celeba").join("000001.jpg")).unwrap();
    let err = BenchmarkData::load(Benchmark::Celeba, dir.path(), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("000001.jpg"), "{err}");
}

#[test]
fn celeba_list_parsers_check_counts_and_values() {
    let line = |file: &str| format!("{file} {}", vec!["1"; 40].join(" "));
    let ok = format!("2\n{NAMES}\n{}\n{}\n", line("a.jpg"), line("b.jpg"));
    let (names, rows) = parse_celeba_attributes(&ok).unwrap();
    assert_eq!((names.len(), rows.len()), (40, 2));
    assert!(rows.iter().all(|(_, v)| v.iter().all(|&x| x == 1)));
    assert!(
        parse_celeba_attributes(&ok.replacen("2\n", "3\n", 1))
            .unwrap_err()
            .contains("announces 3")
    );
    assert!(
        parse_celeba_attributes(&format!("1\n{NAMES} Extra\n{}\n", line("a.jpg")))
            .unwrap_err()
            .contains("41 attribute names")
    );
    assert!(
        parse_celeba_attributes(&format!("1\n{NAMES}\na.jpg 1 -1\n"))
            .unwrap_err()
            .contains("2 values")
    );
    assert!(parse_celeba_attributes("").is_err());
    assert_eq!(
        parse_celeba_partition("a.jpg 0\nb.jpg 2\n").unwrap(),
        vec![("a.jpg".into(), 0), ("b.jpg".into(), 2)]
    );
    assert!(
        parse_celeba_partition("a.jpg\n")
            .unwrap_err()
            .contains("line 1")
    );
}

/// The labels of a composite benchmark are its attributes of the items
/// the composites show (§8), attribute-major; every (attribute, quadrant)
/// takes both values.
fn check_composite_labels(
    data: &BenchmarkData,
    items: &comod::data::Digits,
    attributes: &[(&str, &[u8])],
) {
    let tasks = data.task_count();
    assert_eq!(tasks, 4 * attributes.len());
    let want: Vec<String> = (attributes.iter())
        .flat_map(|(name, _)| (0..4).map(move |q| format!("{name}@{q}")))
        .collect();
    assert_eq!(data.tasks, want);
    let set = data.draw(Pool::Test, 400, 11);
    assert_eq!(set.images.len(), 400 * 784);
    let shown =
        CompositeSet::generate(items, CompositeKind::Filled, Pool::Test, 400, 11, NOISE_STD);
    assert_eq!(shown.images, set.images);
    let mut positives = vec![0usize; tasks];
    for (labels, sources) in set.labels.chunks_exact(tasks).zip(&shown.sources) {
        for (a, (name, classes)) in attributes.iter().enumerate() {
            for (q, &source) in sources.iter().enumerate() {
                let class = items.label(source);
                let t = a * 4 + q;
                assert_eq!(
                    labels[t],
                    u8::from(classes.contains(&class)),
                    "{name}@{q}, class {class}"
                );
                positives[t] += usize::from(labels[t]);
            }
        }
    }
    assert!(
        positives.iter().all(|&n| n > 10 && n < 390),
        "every task takes both labels: {positives:?}"
    );
    // Fresh draws differ, the same seed repeats.
    assert_eq!(data.draw(Pool::Test, 400, 11), set);
    assert_ne!(data.draw(Pool::Test, 400, 12).labels, set.labels);
}

#[test]
fn mnist_attributes_labels_are_the_quadrant_digits_attributes() {
    let digits = common::shipped_digits();
    let data = BenchmarkData::mnist_attributes(digits.clone());
    let attributes: [(&str, &[u8]); 4] = [
        ("even", &[0, 2, 4, 6, 8]),
        ("ge5", &[5, 6, 7, 8, 9]),
        ("prime", &[2, 3, 5, 7]),
        ("loop", &[0, 6, 8, 9]),
    ];
    check_composite_labels(&data, digits, &attributes);
}

#[test]
fn fashion_attributes_labels_are_the_quadrant_items_attributes() {
    let items = comod::data::Digits::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/fashion"),
    )
    .unwrap();
    let data = BenchmarkData::fashion_attributes(items.clone());
    // 0 T-shirt, 1 trouser, 2 pullover, 3 dress, 4 coat, 5 sandal, 6 shirt,
    // 7 sneaker, 8 bag, 9 ankle boot.
    let attributes: [(&str, &[u8]); 5] = [
        ("footwear", &[5, 7, 9]),
        ("top", &[0, 2, 4, 6]),
        ("bag", &[8]),
        ("trouser-dress", &[1, 3]),
        ("long-sleeve", &[2, 4, 6]),
    ];
    check_composite_labels(&data, &items, &attributes);
}

/// The held-out splits of §8 are fixed, documented and disjoint from the
/// pretraining tasks, and together they cover every task.
#[test]
fn held_out_splits_are_fixed_and_disjoint() {
    let digits = common::shipped_digits();
    let items = comod::data::Digits::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/fashion"),
    )
    .unwrap();
    let names = |data: &BenchmarkData, tasks: &[usize]| -> Vec<String> {
        tasks.iter().map(|&t| data.tasks[t].clone()).collect()
    };
    let quadrants = |attrs: &[&str]| -> Vec<String> {
        attrs
            .iter()
            .flat_map(|a| (0..4).map(move |q| format!("{a}@{q}")))
            .collect()
    };
    for (data, held) in [
        (
            BenchmarkData::mnist_attributes(digits.clone()),
            quadrants(&["prime", "loop"]),
        ),
        (
            BenchmarkData::fashion_attributes(items),
            quadrants(&["bag", "long-sleeve"]),
        ),
    ] {
        assert_eq!(
            names(&data, &data.held_out),
            held,
            "{}",
            data.benchmark.name()
        );
        let pretraining = data.pretraining_tasks();
        assert!(
            pretraining.iter().all(|t| !data.held_out.contains(t)),
            "disjoint"
        );
        assert_eq!(
            pretraining.len() + data.held_out.len(),
            data.task_count(),
            "cover"
        );
        // `held-out` fine-tunes exactly the held-out tasks; `joint` every task.
        assert_eq!(Transfer::HeldOut.pretraining_tasks(&data), pretraining);
        assert_eq!(Transfer::HeldOut.finetuned_tasks(&data), data.held_out);
        assert_eq!(
            Transfer::Joint.pretraining_tasks(&data),
            (0..data.task_count()).collect::<Vec<_>>()
        );
    }
}
