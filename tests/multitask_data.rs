//! The loaders of §8 on small files written here in exactly the formats
//! of CIFAR-100 (binary version) and CelebA (attribute list, partition
//! list, aligned JPEGs), and the `mnist-attributes` labels against the
//! digits the composites show.

mod common;

use common::datasets::{NAMES, write_celeba, write_cifar};

use comod::data::benchmark::{Benchmark, BenchmarkData};
use comod::data::celeba::{CELEBA_SIDE, parse_celeba_attributes, parse_celeba_partition};
use comod::data::cifar::CIFAR_RECORD;
use comod::data::{CompositeKind, CompositeSet, NOISE_STD, Pool};

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

#[test]
fn mnist_attributes_labels_are_the_quadrant_digits_parity_and_size() {
    let digits = common::shipped_digits();
    let data = BenchmarkData::mnist_attributes(digits.clone());
    assert_eq!(
        data.tasks,
        [
            "even@0", "even@1", "even@2", "even@3", "ge5@0", "ge5@1", "ge5@2", "ge5@3"
        ]
    );
    let set = data.draw(Pool::Test, 200, 11);
    assert_eq!(set.images.len(), 200 * 784);
    // The labels are those of the digits the composites show.
    let shown = CompositeSet::generate(
        digits,
        CompositeKind::Filled,
        Pool::Test,
        200,
        11,
        NOISE_STD,
    );
    assert_eq!(shown.images, set.images);
    for (labels, sources) in set.labels.chunks_exact(8).zip(&shown.sources) {
        for q in 0..4 {
            let class = digits.label(sources[q]);
            assert_eq!(labels[q], u8::from(class.is_multiple_of(2)), "even@{q}");
            assert_eq!(labels[4 + q], u8::from(class >= 5), "ge5@{q}");
        }
    }
    let mut seen = [[0usize; 2]; 2];
    for labels in set.labels.chunks_exact(8) {
        for q in 0..4 {
            seen[labels[q] as usize][labels[4 + q] as usize] += 1;
        }
    }
    assert!(
        seen.iter().flatten().all(|&n| n > 50),
        "every (even, ≥5) pair occurs: {seen:?}"
    );
    // Fresh draws differ, the same seed repeats.
    assert_eq!(data.draw(Pool::Test, 200, 11), set);
    assert_ne!(data.draw(Pool::Test, 200, 12).labels, set.labels);
}
