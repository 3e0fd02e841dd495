//! The bad-input survey of the multi-task, data-set, report and tune
//! commands (§6, §8): malformed and hostile files, flags and folders. Each
//! case asserts the exit code, one line on stderr naming the culprit, that
//! it ends (an input that hangs fails the case), and that the case's
//! folder is byte for byte as it was.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::datasets::{NAMES, write_celeba, write_cifar};
use common::survey::{Case, QUICK, edit_first_record, mkfifo, nothing, run_ok, run_survey};
use comod::conv::checkpoint::{load_conv_checkpoint, save_conv_checkpoint};
use comod::conv::{ConvArch, ConvNet};
use comod::io::tensors::{TensorData, TensorFile, write_tensors};

/// A convolutional network for `mnist-attributes` small enough that
/// pretraining and sweeps take a moment.
const CONV_ARCH: &str = r#"{"format":2,"input":{"channels":1,"height":28,"width":28},"stages":[{"kind":"conv","channels":2,"kernel":3},{"kind":"maxpool"},{"kind":"dense","size":4}],"tasks":16,"modulated_stage":1,"beta":0.0}"#;

/// An MLP small enough for a quick grid.
const MLP_ARCH: &str = r#"{"format":1,"input":784,"layers":[{"kind":"encoder","size":4,"nonlinearity":"exp"},{"kind":"dense","size":3},{"kind":"readout","size":10}],"modulated_layer":1,"beta":0.0}"#;

/// The fixtures every case starts from.
const FIXTURES: [&str; 7] = [
    "conv.json",
    "ck.safetensors",
    "mt.jsonl",
    "mlp.safetensors",
    "mlp.jsonl",
    "cifar",
    "celeba",
];

/// Valid files made once: the conv architecture and checkpoint, a
/// multi-task results file, an MLP checkpoint and results file, a small
/// CIFAR-100 folder and a small CelebA folder.
fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = common::shared_folder("comod-bad-multitask-").to_path_buf();
        let path = |name: &str| dir.join(name).to_str().unwrap().to_string();
        std::fs::write(dir.join("conv.json"), CONV_ARCH).unwrap();
        std::fs::write(dir.join("mlp.json"), MLP_ARCH).unwrap();
        let (ck, arch) = (path("ck.safetensors"), path("conv.json"));
        run_ok(&[
            "multitask",
            "pretrain",
            "--arch",
            &arch,
            "--transfer",
            "joint",
            "--epochs",
            "1",
            "--examples",
            "100",
            "--heldout",
            "100",
            "--out",
            &ck,
        ]);
        let mt = path("mt.jsonl");
        let mut sweep = vec![
            "multitask",
            "sweep",
            "--checkpoint",
            &ck,
            "--tasks",
            "even@0",
            "--methods",
            "stochastic,retrain-last",
            "--out",
            &mt,
        ];
        sweep.extend(QUICK);
        run_ok(&sweep);
        let (mlp, mlp_arch) = (path("mlp.safetensors"), path("mlp.json"));
        run_ok(&[
            "pretrain", "--arch", &mlp_arch, "--epochs", "1", "--out", &mlp,
        ]);
        let mlp_results = path("mlp.jsonl");
        let mut sweep = vec![
            "sweep",
            "--checkpoint",
            &mlp,
            "--tasks",
            "1-7@0",
            "--methods",
            "retrain-last",
            "--repeats",
            "1",
            "--out",
            &mlp_results,
        ];
        sweep.extend(QUICK);
        run_ok(&sweep);
        std::fs::create_dir_all(dir.join("cifar")).unwrap();
        let records: Vec<(u8, u8, [u8; 3])> = (0..20)
            .map(|i| (i % 20, i, [i * 10, 0, 255 - i * 10]))
            .collect();
        write_cifar(&dir.join("cifar"), &records, &records);
        let images: Vec<(String, [u8; 3], bool, u8)> = (0..6)
            .map(|i| {
                (
                    format!("{i:06}.jpg"),
                    [40 * i as u8, 90, 200],
                    i % 2 == 0,
                    if i < 4 { 0 } else { 2 },
                )
            })
            .collect();
        let images: Vec<(&str, [u8; 3], bool, u8)> = images
            .iter()
            .map(|(f, c, s, p)| (f.as_str(), *c, *s, *p))
            .collect();
        write_celeba(&dir.join("celeba"), &images);
        dir
    })
}

/// Writes `a.json`: the conv architecture with `from` replaced by `to`.
fn arch_with(dir: &Path, from: &str, to: &str) {
    assert!(CONV_ARCH.contains(from));
    std::fs::write(dir.join("a.json"), CONV_ARCH.replace(from, to)).unwrap();
}

/// Replaces `from` by `to` in the text file `name` of `dir`.
fn edit_text(dir: &Path, name: &str, from: &str, to: &str) {
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{from:?} not in {name}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

/// A named tensor with its shape, as `write_tensors` takes it.
type Tensor = (String, Vec<usize>, TensorData);

/// Rewrites `ck.safetensors` into `bad.safetensors` with `edit` applied
/// to its tensors and metadata.
fn rewrite_checkpoint(dir: &Path, edit: fn(&mut Vec<Tensor>, &mut HashMap<String, String>)) {
    let file = TensorFile::read(&dir.join("ck.safetensors")).unwrap();
    let mut tensors: Vec<Tensor> = file
        .names()
        .into_iter()
        .map(|name| {
            let shape = file.shape(&name).unwrap();
            let values = file.f32(&name, &shape).unwrap();
            (name, shape, TensorData::F32(values))
        })
        .collect();
    let mut metadata = file.all_metadata().clone();
    edit(&mut tensors, &mut metadata);
    write_tensors(&dir.join("bad.safetensors"), &tensors, metadata).unwrap();
}

/// Rewrites the first line of `mt.jsonl` with `edit` of its JSON.
fn edit_record(dir: &Path, edit: fn(&mut serde_json::Value)) {
    edit_first_record(&dir.join("mt.jsonl"), edit);
}

const CASES: &[Case] = &[
    // The architecture study's and the protocol's flags (§8).
    Case {
        name: "multitask pretrain --modulated-conv beyond the conv stages",
        setup: nothing,
        args: &[
            "multitask",
            "pretrain",
            "--modulated-conv",
            "3",
            "--out",
            "@x.safetensors",
        ],
        code: 1,
        needles: &["--modulated-conv", "3", "2 conv stages"],
    },
    Case {
        name: "multitask pretrain --width 0",
        setup: nothing,
        args: &[
            "multitask",
            "pretrain",
            "--width",
            "0",
            "--out",
            "@x.safetensors",
        ],
        code: 1,
        needles: &["--width", "positive"],
    },
    Case {
        name: "multitask pretrain --target above 1",
        setup: nothing,
        args: &[
            "multitask",
            "pretrain",
            "--target",
            "1.5",
            "--out",
            "@x.safetensors",
        ],
        code: 1,
        needles: &["--target", "1.5", "[0, 1]"],
    },
    Case {
        name: "multitask pretrain --transfer unknown",
        setup: nothing,
        args: &[
            "multitask",
            "pretrain",
            "--transfer",
            "both",
            "--out",
            "@x.safetensors",
        ],
        code: 2,
        needles: &["--transfer", "both"],
    },
    // multitask pretrain: its outputs never replace an input.
    Case {
        name: "multitask pretrain --out = CIFAR's train.bin",
        setup: nothing,
        args: &[
            "multitask",
            "pretrain",
            "--benchmark",
            "cifar100",
            "--data",
            "@cifar",
            "--out",
            "@cifar/train.bin",
        ],
        code: 1,
        needles: &["train.bin", "same file as --data"],
    },
    Case {
        name: "multitask pretrain --out = --arch",
        setup: nothing,
        args: &[
            "multitask",
            "pretrain",
            "--arch",
            "@conv.json",
            "--out",
            "@conv.json",
        ],
        code: 1,
        needles: &["conv.json", "same file as --arch"],
    },
    Case {
        name: "multitask pretrain --out = a shipped digits file",
        setup: |d| {
            common::survey::copy_dir(
                &Path::new(env!("CARGO_MANIFEST_DIR")).join("data"),
                &d.join("digits"),
            )
        },
        args: &[
            "multitask",
            "pretrain",
            "--data",
            "@digits",
            "--out",
            "@digits/mnist10k-images-idx3-ubyte.gz",
        ],
        code: 1,
        needles: &["same file as --data"],
    },
    Case {
        name: "multitask pretrain into a FIFO",
        setup: |d| mkfifo(&d.join("fifo")),
        args: &[
            "multitask",
            "pretrain",
            "--arch",
            "@conv.json",
            "--out",
            "@fifo",
        ],
        code: 1,
        needles: &["fifo", "not a regular file"],
    },
    Case {
        name: "multitask pretrain --examples 0",
        setup: nothing,
        args: &[
            "multitask",
            "pretrain",
            "--examples",
            "0",
            "--out",
            "@x.safetensors",
        ],
        code: 1,
        needles: &["--examples 0"],
    },
    Case {
        name: "multitask pretrain --examples 10^12",
        setup: nothing,
        args: &[
            "multitask",
            "pretrain",
            "--examples",
            "1000000000000",
            "--out",
            "@x.safetensors",
        ],
        code: 1,
        needles: &["--examples 1000000000000", "held in memory"],
    },
    Case {
        name: "multitask pretrain --heldout 10^12",
        setup: nothing,
        args: &[
            "multitask",
            "pretrain",
            "--heldout",
            "1000000000000",
            "--out",
            "@x.safetensors",
        ],
        code: 1,
        needles: &["--heldout 1000000000000"],
    },
    Case {
        name: "multitask pretrain --batch-size above --examples",
        setup: nothing,
        args: &[
            "multitask",
            "pretrain",
            "--examples",
            "10",
            "--batch-size",
            "11",
            "--out",
            "@x.safetensors",
        ],
        code: 1,
        needles: &["--batch-size 11"],
    },
    Case {
        name: "multitask pretrain --lr -1",
        setup: nothing,
        args: &[
            "multitask",
            "pretrain",
            "--lr=-1",
            "--out",
            "@x.safetensors",
        ],
        code: 1,
        needles: &["--lr -1"],
    },
    Case {
        name: "multitask pretrain --target 2",
        setup: nothing,
        args: &[
            "multitask",
            "pretrain",
            "--target",
            "2",
            "--out",
            "@x.safetensors",
        ],
        code: 1,
        needles: &["--target 2"],
    },
    Case {
        name: "multitask pretrain --benchmark of another name",
        setup: nothing,
        args: &[
            "multitask",
            "pretrain",
            "--benchmark",
            "imagenet",
            "--out",
            "@x.safetensors",
        ],
        code: 2,
        needles: &["imagenet"],
    },
    Case {
        name: "multitask pretrain --benchmark cifar100 without --data",
        setup: nothing,
        args: &[
            "multitask",
            "pretrain",
            "--benchmark",
            "cifar100",
            "--out",
            "@x.safetensors",
        ],
        code: 1,
        needles: &["--data", "cifar100"],
    },
    // Architectures: fields, sizes and shapes.
    Case {
        name: "a max-pool stage with a kernel",
        setup: |d| {
            arch_with(
                d,
                r#"{"kind":"maxpool"}"#,
                r#"{"kind":"maxpool","kernel":3}"#,
            )
        },
        args: &[
            "multitask",
            "pretrain",
            "--arch",
            "@a.json",
            "--out",
            "@x.safetensors",
        ],
        code: 1,
        needles: &["a.json", "unknown field `kernel`"],
    },
    Case {
        name: "an input of 2^32 × 2^32 pixels (its size overflows)",
        setup: |d| {
            arch_with(
                d,
                r#""height":28,"width":28"#,
                r#""height":4294967296,"width":4294967296"#,
            )
        },
        args: &[
            "multitask",
            "pretrain",
            "--arch",
            "@a.json",
            "--out",
            "@x.safetensors",
        ],
        code: 1,
        needles: &["a.json", "input"],
    },
    Case {
        name: "29 conv stages of 2048 channels, each within the per-stage bounds",
        setup: |d| {
            let stage = r#"{"kind":"conv","channels":2048,"kernel":1},"#.repeat(28);
            arch_with(
                d,
                r#"{"kind":"conv","channels":2,"kernel":3},"#,
                &format!(r#"{{"kind":"conv","channels":2,"kernel":3}},{stage}"#),
            );
        },
        args: &[
            "multitask",
            "pretrain",
            "--arch",
            "@a.json",
            "--out",
            "@x.safetensors",
        ],
        code: 1,
        needles: &["a.json", "too large"],
    },
    Case {
        name: "an MNIST architecture for CIFAR-100",
        setup: nothing,
        args: &[
            "multitask",
            "pretrain",
            "--benchmark",
            "cifar100",
            "--data",
            "@cifar",
            "--arch",
            "@conv.json",
            "--out",
            "@x.safetensors",
        ],
        code: 1,
        needles: &["--arch", "conv.json", "1×28×28 images", "3×32×32"],
    },
    // Data sets: CIFAR-100 and CelebA files.
    Case {
        name: "CIFAR's train.bin is a FIFO",
        setup: |d| {
            std::fs::remove_file(d.join("cifar/train.bin")).unwrap();
            mkfifo(&d.join("cifar/train.bin"));
        },
        args: &[
            "multitask",
            "pretrain",
            "--benchmark",
            "cifar100",
            "--data",
            "@cifar",
            "--out",
            "@x.safetensors",
        ],
        code: 1,
        needles: &["train.bin", "FIFO"],
    },
    Case {
        name: "CIFAR's test.bin cut in a record",
        setup: |d| {
            let path = d.join("cifar/test.bin");
            let bytes = std::fs::read(&path).unwrap();
            std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
        },
        args: &[
            "multitask",
            "pretrain",
            "--benchmark",
            "cifar100",
            "--data",
            "@cifar",
            "--out",
            "@x.safetensors",
        ],
        code: 1,
        needles: &["test.bin"],
    },
    Case {
        name: "a CelebA attribute name with a comma",
        setup: |d| edit_text(d, "celeba/list_attr_celeba.txt", "Smiling", "Smil,ing"),
        args: &[
            "multitask",
            "pretrain",
            "--benchmark",
            "celeba",
            "--data",
            "@celeba",
            "--out",
            "@x.safetensors",
        ],
        code: 1,
        needles: &["list_attr_celeba.txt", "Smil,ing"],
    },
    Case {
        name: "a CelebA attribute name twice",
        setup: |d| edit_text(d, "celeba/list_attr_celeba.txt", "Young", "Smiling"),
        args: &[
            "multitask",
            "pretrain",
            "--benchmark",
            "celeba",
            "--data",
            "@celeba",
            "--out",
            "@x.safetensors",
        ],
        code: 1,
        needles: &["list_attr_celeba.txt", "appears twice"],
    },
    Case {
        name: "a CelebA image outside --data",
        setup: |d| {
            edit_text(
                d,
                "celeba/list_attr_celeba.txt",
                "000000.jpg",
                "../../outside.jpg",
            );
            edit_text(
                d,
                "celeba/list_eval_partition.txt",
                "000000.jpg",
                "../../outside.jpg",
            );
        },
        args: &[
            "multitask",
            "pretrain",
            "--benchmark",
            "celeba",
            "--data",
            "@celeba",
            "--out",
            "@x.safetensors",
        ],
        code: 1,
        needles: &[
            "../../outside.jpg",
            "not the name of a file in the image folder",
        ],
    },
    Case {
        name: "a CelebA image that is a FIFO",
        setup: |d| {
            let image = d.join("celeba/img_align_celeba/000001.jpg");
            std::fs::remove_file(&image).unwrap();
            mkfifo(&image);
        },
        args: &[
            "multitask",
            "pretrain",
            "--benchmark",
            "celeba",
            "--data",
            "@celeba",
            "--out",
            "@x.safetensors",
        ],
        code: 1,
        needles: &["000001.jpg", "FIFO"],
    },
    Case {
        name: "a CelebA image that is not a JPEG",
        setup: |d| std::fs::write(d.join("celeba/img_align_celeba/000002.jpg"), b"GIF89a").unwrap(),
        args: &[
            "multitask",
            "pretrain",
            "--benchmark",
            "celeba",
            "--data",
            "@celeba",
            "--out",
            "@x.safetensors",
        ],
        code: 1,
        needles: &["000002.jpg", "JPEG"],
    },
    Case {
        name: "a CelebA partition of another image",
        setup: |d| {
            edit_text(
                d,
                "celeba/list_eval_partition.txt",
                "000003.jpg",
                "000009.jpg",
            )
        },
        args: &[
            "multitask",
            "pretrain",
            "--benchmark",
            "celeba",
            "--data",
            "@celeba",
            "--out",
            "@x.safetensors",
        ],
        code: 1,
        needles: &["list_eval_partition.txt", "000009.jpg"],
    },
    // multitask sweep: checkpoints.
    Case {
        name: "multitask sweep of a missing checkpoint",
        setup: nothing,
        args: &[
            "multitask",
            "sweep",
            "--checkpoint",
            "@no-such.safetensors",
            "--out",
            "@r.jsonl",
        ],
        code: 1,
        needles: &["no-such.safetensors"],
    },
    Case {
        name: "multitask sweep of an MLP checkpoint",
        setup: nothing,
        args: &[
            "multitask",
            "sweep",
            "--checkpoint",
            "@mlp.safetensors",
            "--out",
            "@r.jsonl",
        ],
        code: 1,
        needles: &["mlp.safetensors", "not a convolutional checkpoint"],
    },
    Case {
        name: "a conv checkpoint with an extra tensor",
        setup: |d| {
            rewrite_checkpoint(d, |t, _| {
                t.push(("extra".into(), vec![1], TensorData::F32(vec![0.0])))
            })
        },
        args: &[
            "multitask",
            "sweep",
            "--checkpoint",
            "@bad.safetensors",
            "--out",
            "@r.jsonl",
        ],
        code: 1,
        needles: &["bad.safetensors", "unexpected tensor extra"],
    },
    Case {
        name: "a conv checkpoint of a 32×32×3 input for mnist-attributes",
        setup: |d| {
            let loaded = load_conv_checkpoint(&d.join("ck.safetensors")).unwrap();
            let json = CONV_ARCH.replace(
                r#""channels":1,"height":28,"width":28"#,
                r#""channels":3,"height":32,"width":32"#,
            );
            let net = ConvNet::<f32>::init(&ConvArch::from_json(&json).unwrap(), 1);
            save_conv_checkpoint(&d.join("bad.safetensors"), &net, &loaded.provenance).unwrap();
        },
        args: &[
            "multitask",
            "sweep",
            "--checkpoint",
            "@bad.safetensors",
            "--out",
            "@r.jsonl",
        ],
        code: 1,
        needles: &["bad.safetensors", "3×32×32 images"],
    },
    Case {
        name: "a conv checkpoint pretrained on renamed tasks",
        setup: |d| {
            rewrite_checkpoint(d, |_, m| {
                let p = m.get_mut("pretraining").unwrap();
                *p = p.replacen("even@0", "odd@0", 1);
            })
        },
        args: &[
            "multitask",
            "sweep",
            "--checkpoint",
            "@bad.safetensors",
            "--out",
            "@r.jsonl",
        ],
        code: 1,
        needles: &[
            "bad.safetensors",
            "\"odd@0\" in the checkpoint",
            "\"even@0\" in the data",
        ],
    },
    Case {
        name: "a conv checkpoint that is a FIFO",
        setup: |d| mkfifo(&d.join("fifo.safetensors")),
        args: &[
            "multitask",
            "sweep",
            "--checkpoint",
            "@fifo.safetensors",
            "--out",
            "@r.jsonl",
        ],
        code: 1,
        needles: &["fifo.safetensors", "FIFO"],
    },
    // multitask sweep: plans and options.
    Case {
        name: "multitask sweep of an unknown task",
        setup: nothing,
        args: &[
            "multitask",
            "sweep",
            "--checkpoint",
            "@ck.safetensors",
            "--tasks",
            "odd@0",
            "--out",
            "@r.jsonl",
        ],
        code: 1,
        needles: &["odd@0"],
    },
    Case {
        name: "multitask sweep of a task listed twice",
        setup: nothing,
        args: &[
            "multitask",
            "sweep",
            "--checkpoint",
            "@ck.safetensors",
            "--tasks",
            "even@0,even@0",
            "--out",
            "@r.jsonl",
        ],
        code: 1,
        needles: &["--tasks", "even@0", "listed twice"],
    },
    Case {
        name: "multitask sweep of 10^11 repeats",
        setup: nothing,
        args: &[
            "multitask",
            "sweep",
            "--checkpoint",
            "@ck.safetensors",
            "--repeats",
            "100000000000",
            "--out",
            "@r.jsonl",
        ],
        code: 1,
        needles: &["--repeats 100000000000", "split it"],
    },
    Case {
        name: "multitask sweep --readout pair",
        setup: nothing,
        args: &[
            "multitask",
            "sweep",
            "--checkpoint",
            "@ck.safetensors",
            "--readout",
            "pair",
            "--out",
            "@r.jsonl",
        ],
        code: 1,
        needles: &["--readout pair", "binary"],
    },
    Case {
        name: "multitask sweep --sizes under the online protocol",
        setup: nothing,
        args: &[
            "multitask",
            "sweep",
            "--checkpoint",
            "@ck.safetensors",
            "--sizes",
            "3",
            "--out",
            "@r.jsonl",
        ],
        code: 1,
        needles: &["--sizes"],
    },
    Case {
        name: "multitask sweep --batches under the dataset protocol",
        setup: nothing,
        args: &[
            "multitask",
            "sweep",
            "--checkpoint",
            "@ck.safetensors",
            "--protocol",
            "dataset",
            "--batches",
            "3",
            "--out",
            "@r.jsonl",
        ],
        code: 1,
        needles: &["--batches"],
    },
    Case {
        name: "multitask sweep --shards outside a job array",
        setup: nothing,
        args: &[
            "multitask",
            "sweep",
            "--checkpoint",
            "@ck.safetensors",
            "--shards",
            "2",
            "--out",
            "@r.jsonl",
        ],
        code: 1,
        needles: &["--shards 2", "SLURM_ARRAY_TASK_ID"],
    },
    Case {
        name: "a sweep whose task has no example leaves no results file",
        setup: |d| {
            let loaded = load_conv_checkpoint(&d.join("ck.safetensors")).unwrap();
            let json = CONV_ARCH
                .replace(
                    r#""channels":1,"height":28,"width":28"#,
                    r#""channels":3,"height":32,"width":32"#,
                )
                .replace(r#""tasks":16"#, r#""tasks":20"#);
            let net = ConvNet::<f32>::init(&ConvArch::from_json(&json).unwrap(), 1);
            let mut provenance = loaded.provenance;
            provenance.benchmark = "cifar100".into();
            provenance.tasks = (0..20).map(|c| format!("coarse{c:02}")).collect();
            save_conv_checkpoint(&d.join("cifar.safetensors"), &net, &provenance).unwrap();
        },
        args: &[
            "multitask",
            "sweep",
            "--benchmark",
            "cifar100",
            "--data",
            "@cifar",
            "--limit",
            "5",
            "--checkpoint",
            "@cifar.safetensors",
            "--tasks",
            "coarse05",
            "--out",
            "@r.jsonl",
        ],
        code: 1,
        needles: &["coarse05"],
    },
    Case {
        name: "multitask sweep --out = --checkpoint",
        setup: nothing,
        args: &[
            "multitask",
            "sweep",
            "--checkpoint",
            "@ck.safetensors",
            "--out",
            "@ck.safetensors",
        ],
        code: 1,
        needles: &["same file as --checkpoint"],
    },
    Case {
        name: "multitask sweep into a FIFO",
        setup: |d| mkfifo(&d.join("fifo")),
        args: &[
            "multitask",
            "sweep",
            "--checkpoint",
            "@ck.safetensors",
            "--out",
            "@fifo",
        ],
        code: 1,
        needles: &["fifo", "not a regular file"],
    },
    // multitask sweep: the results file it resumes.
    Case {
        name: "multitask sweep into the MLP's results",
        setup: nothing,
        args: &[
            "multitask",
            "sweep",
            "--checkpoint",
            "@ck.safetensors",
            "--tasks",
            "even@0",
            "--out",
            "@mlp.jsonl",
        ],
        code: 1,
        needles: &["mlp.jsonl"],
    },
    Case {
        name: "a multi-task record cut short",
        setup: |d| {
            edit_record(d, |r| {
                r["curve"].as_array_mut().unwrap().truncate(2);
                r["examples"].as_array_mut().unwrap().truncate(2);
            })
        },
        args: &[
            "multitask",
            "sweep",
            "--checkpoint",
            "@ck.safetensors",
            "--tasks",
            "even@0",
            "--methods",
            "stochastic,retrain-last",
            "--batches",
            "3",
            "--test-composites",
            "20",
            "--samples",
            "8",
            "--out",
            "@mt.jsonl",
        ],
        code: 1,
        needles: &["mt.jsonl", "measurements"],
    },
    Case {
        name: "a multi-task record of another benchmark",
        setup: |d| edit_record(d, |r| r["config"]["benchmark"] = "cifar100".into()),
        args: &[
            "multitask",
            "sweep",
            "--checkpoint",
            "@ck.safetensors",
            "--tasks",
            "even@0",
            "--methods",
            "stochastic,retrain-last",
            "--batches",
            "3",
            "--test-composites",
            "20",
            "--samples",
            "8",
            "--out",
            "@mt.jsonl",
        ],
        code: 1,
        needles: &["mt.jsonl", "benchmark"],
    },
    Case {
        name: "a multi-task record whose plan lacks its run",
        setup: |d| edit_record(d, |r| r["plan"]["repeats"] = 0.into()),
        args: &["multitask", "summary", "@mt.jsonl"],
        code: 1,
        needles: &["mt.jsonl", "line 1", "plan"],
    },
    // multitask merge and summary.
    Case {
        name: "multitask merge of both networks' records",
        setup: nothing,
        args: &["multitask", "merge", "@m.jsonl", "@mt.jsonl", "@mlp.jsonl"],
        code: 1,
        needles: &["mlp.jsonl", "never mix"],
    },
    Case {
        name: "multitask merge into an input",
        setup: nothing,
        args: &["multitask", "merge", "@mt.jsonl", "@mt.jsonl"],
        code: 1,
        needles: &["mt.jsonl", "same file"],
    },
    Case {
        name: "multitask merge of a partial result",
        setup: |d| edit_record(d, |r| r["plan"]["repeats"] = 2.into()),
        args: &["multitask", "merge", "@m.jsonl", "@mt.jsonl"],
        code: 1,
        needles: &["partial result", "--partial"],
    },
    Case {
        name: "multitask merge of a torn file",
        setup: |d| {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(d.join("mt.jsonl"))
                .unwrap();
            std::io::Write::write_all(&mut f, b"{\"format\":2,\"ta").unwrap();
        },
        args: &["multitask", "merge", "@m.jsonl", "@mt.jsonl"],
        code: 1,
        needles: &["mt.jsonl", "torn"],
    },
    Case {
        name: "multitask summary of a FIFO",
        setup: |d| mkfifo(&d.join("fifo.jsonl")),
        args: &["multitask", "summary", "@fifo.jsonl"],
        code: 1,
        needles: &["fifo.jsonl", "FIFO"],
    },
    Case {
        name: "multitask summary of a partial result",
        setup: |d| edit_record(d, |r| r["plan"]["repeats"] = 2.into()),
        args: &["multitask", "summary", "@mt.jsonl"],
        code: 1,
        needles: &["partial result", "--partial"],
    },
    Case {
        name: "multitask summary of a missing file",
        setup: nothing,
        args: &["multitask", "summary", "@none.jsonl"],
        code: 1,
        needles: &["none.jsonl"],
    },
    // report.
    Case {
        name: "report --also of a missing file",
        setup: nothing,
        args: &[
            "report",
            "--smoke",
            "--out",
            "@rep",
            "--also",
            "@none.jsonl",
        ],
        code: 1,
        needles: &["none.jsonl", "no such file"],
    },
    Case {
        name: "report --also of multi-task records",
        setup: nothing,
        args: &["report", "--smoke", "--out", "@rep", "--also", "@mt.jsonl"],
        code: 1,
        needles: &["mt.jsonl", "multi-task records"],
    },
    Case {
        name: "report --shards outside a job array",
        setup: nothing,
        args: &["report", "--smoke", "--out", "@rep", "--shards", "2"],
        code: 1,
        needles: &["--shards 2", "SLURM_ARRAY_TASK_ID"],
    },
    Case {
        name: "report --quick --full",
        setup: nothing,
        args: &["report", "--quick", "--full", "--out", "@rep"],
        code: 2,
        needles: &["--full"],
    },
    Case {
        name: "report of digits that do not exist",
        setup: nothing,
        args: &["report", "--smoke", "--out", "@rep", "--data", "@no-digits"],
        code: 1,
        needles: &["no-digits"],
    },
    Case {
        name: "report of a second data set that does not exist",
        setup: nothing,
        args: &[
            "report",
            "--smoke",
            "--out",
            "@rep",
            "--fashion",
            "@no-fashion",
        ],
        code: 1,
        needles: &["no-fashion"],
    },
    Case {
        name: "report whose folder is a file",
        setup: nothing,
        args: &["report", "--smoke", "--out", "@mt.jsonl"],
        code: 1,
        needles: &["mt.jsonl"],
    },
    // tune.
    Case {
        name: "tune --out named as its plot",
        setup: nothing,
        args: &[
            "tune",
            "--checkpoint",
            "@mlp.safetensors",
            "--out",
            "@x.png",
        ],
        code: 1,
        needles: &["--out", "x.png", "plot"],
    },
    Case {
        name: "tune --out named as its runs folder",
        setup: nothing,
        args: &[
            "tune",
            "--checkpoint",
            "@mlp.safetensors",
            "--out",
            "@x.runs",
        ],
        code: 1,
        needles: &["--out", "x.runs"],
    },
    Case {
        name: "tune whose runs folder is a file",
        setup: |d| std::fs::write(d.join("t.runs"), b"x").unwrap(),
        args: &["tune", "--checkpoint", "@mlp.safetensors", "--out", "@t.md"],
        code: 1,
        needles: &["t.runs", "not a folder"],
    },
    Case {
        name: "tune --grid 0",
        setup: nothing,
        args: &[
            "tune",
            "--checkpoint",
            "@mlp.safetensors",
            "--grid",
            "0",
            "--out",
            "@t.md",
        ],
        code: 1,
        needles: &["--grid"],
    },
    Case {
        name: "tune of a conv checkpoint",
        setup: nothing,
        args: &["tune", "--checkpoint", "@ck.safetensors", "--out", "@t.md"],
        code: 1,
        needles: &["ck.safetensors"],
    },
    Case {
        name: "tune --out = --checkpoint",
        setup: nothing,
        args: &[
            "tune",
            "--checkpoint",
            "@mlp.safetensors",
            "--out",
            "@mlp.safetensors",
        ],
        code: 1,
        needles: &["same file as --checkpoint"],
    },
    Case {
        name: "tune of a checkpoint that is a FIFO",
        setup: |d| mkfifo(&d.join("fifo.safetensors")),
        args: &[
            "tune",
            "--checkpoint",
            "@fifo.safetensors",
            "--out",
            "@t.md",
        ],
        code: 1,
        needles: &["fifo.safetensors", "FIFO"],
    },
];

#[test]
fn every_malformed_multitask_input_fails_in_one_line_and_leaves_the_folder_as_it_was() {
    assert!(CASES.len() >= 40, "{} cases", CASES.len());
    assert!(NAMES.split_whitespace().count() == 40);
    run_survey(CASES, fixtures(), &FIXTURES);
}
