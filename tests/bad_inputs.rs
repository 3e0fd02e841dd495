//! The bad-input survey (§6, §7): malformed files, flags, task strings,
//! shard specs, architecture JSON, trace inputs and results files of other
//! versions, across every command. Each case asserts the exit code, one
//! line on stderr naming the culprit, and that the case's folder is byte
//! for byte as it was: no output left behind, half-written or replaced,
//! and no input destroyed.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::comod;
use common::survey::{Case, QUICK, edit_first_record, mkfifo, nothing, run_ok, run_survey};
use comod::io::tensors::{TensorData, write_tensors};

/// A network small enough that pretraining and sweeps take a moment.
const TINY_ARCH: &str = r#"{"format":1,"input":784,"layers":[{"kind":"encoder","size":4,"nonlinearity":"exp"},{"kind":"dense","size":3},{"kind":"readout","size":10}],"modulated_layer":1,"beta":0.0}"#;

/// Valid files every case starts from: `tiny.json`, `ck.safetensors`
/// (pretrained), `good.jsonl` (a sweep of it) and `inputs.safetensors`
/// (trace inputs for it), made once.
fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = common::shared_folder("comod-bad-inputs-").to_path_buf();
        let path = |name: &str| dir.join(name).to_str().unwrap().to_string();
        std::fs::write(dir.join("tiny.json"), TINY_ARCH).unwrap();
        let arch = path("tiny.json");
        let ck = path("ck.safetensors");
        run_ok(&["pretrain", "--arch", &arch, "--epochs", "1", "--out", &ck]);
        let mut sweep = vec![
            "sweep",
            "--checkpoint",
            &ck,
            "--tasks",
            "1-7@0",
            "--methods",
            "stochastic,retrain-last",
            "--repeats",
            "1",
        ];
        let good = path("good.jsonl");
        sweep.extend(QUICK);
        sweep.extend(["--out", &good]);
        run_ok(&sweep);
        write_trace_inputs(&dir.join("inputs.safetensors"), 1.0);
        dir
    })
}

/// Trace inputs for the tiny network, 2 trials, stimuli of `scale`.
fn write_trace_inputs(path: &Path, scale: f32) {
    let stimuli: Vec<f32> = (0..2 * 784).map(|i| scale * (i % 7) as f32 / 7.0).collect();
    let tensors = vec![
        (
            "stimuli".to_string(),
            vec![2, 784],
            TensorData::F32(stimuli),
        ),
        (
            "modulator".to_string(),
            vec![2, 3],
            TensorData::F32(vec![1.0, 1.1, 0.9, 1.2, 0.8, 1.0]),
        ),
        ("labels".to_string(), vec![2], TensorData::I64(vec![1, 7])),
    ];
    write_tensors(path, &tensors, Default::default()).unwrap();
}

/// Rewrites the first line of `good.jsonl` with `edit` of its JSON.
fn edit_record(dir: &Path, edit: fn(&mut serde_json::Value)) {
    edit_first_record(&dir.join("good.jsonl"), edit);
}

/// Writes `a.json`: the tiny architecture with `from` replaced by `to`.
fn tiny_arch_with(dir: &Path, from: &str, to: &str) {
    std::fs::write(dir.join("a.json"), TINY_ARCH.replace(from, to)).unwrap();
}

/// Writes a checkpoint holding only metadata `comod` = `arch`.
fn checkpoint_with_arch(dir: &Path, arch: &str) {
    let metadata = [("comod".to_string(), arch.to_string())]
        .into_iter()
        .collect();
    write_tensors(&dir.join("bad.safetensors"), &[], metadata).unwrap();
}

/// Copies the shipped digits into `data/` with the images replaced by `images`.
fn digits_with_images(dir: &Path, images: &[u8]) {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    std::fs::copy(
        shipped.join("mnist10k-labels-idx1-ubyte.gz"),
        data.join("mnist10k-labels-idx1-ubyte.gz"),
    )
    .unwrap();
    std::fs::write(data.join("mnist10k-images-idx3-ubyte"), images).unwrap();
}

const CASES: &[Case] = &[
    // Outputs that are not regular files, or are inputs.
    Case {
        name: "pretrain into a FIFO",
        setup: |d| mkfifo(&d.join("fifo")),
        args: &[
            "pretrain",
            "--arch",
            "@tiny.json",
            "--epochs",
            "1",
            "--out",
            "@fifo",
        ],
        code: 1,
        needles: &["fifo", "not a regular file"],
    },
    Case {
        name: "sweep into a FIFO",
        setup: |d| mkfifo(&d.join("fifo")),
        args: &[
            "sweep",
            "--checkpoint",
            "@ck.safetensors",
            "--tasks",
            "1-7@0",
            "--out",
            "@fifo",
        ],
        code: 1,
        needles: &["fifo", "not a regular file"],
    },
    Case {
        name: "merge into a FIFO",
        setup: |d| mkfifo(&d.join("fifo")),
        args: &["merge", "@fifo", "@good.jsonl"],
        code: 1,
        needles: &["fifo", "not a regular file"],
    },
    Case {
        name: "trace --out = --inputs",
        setup: nothing,
        args: &[
            "trace",
            "--checkpoint",
            "@ck.safetensors",
            "--inputs",
            "@inputs.safetensors",
            "--out",
            "@inputs.safetensors",
        ],
        code: 1,
        needles: &["same file as --inputs", "inputs.safetensors"],
    },
    Case {
        name: "trace --out = --checkpoint",
        setup: nothing,
        args: &[
            "trace",
            "--checkpoint",
            "@ck.safetensors",
            "--inputs",
            "@inputs.safetensors",
            "--out",
            "@ck.safetensors",
        ],
        code: 1,
        needles: &["same file as --checkpoint"],
    },
    Case {
        name: "summary of a results file named summary.md",
        setup: |d| std::fs::rename(d.join("good.jsonl"), d.join("summary.md")).unwrap(),
        args: &["summary", "@summary.md"],
        code: 1,
        needles: &["summary.md", "same file as results file"],
    },
    Case {
        name: "pretrain --out = --arch",
        setup: nothing,
        args: &[
            "pretrain",
            "--arch",
            "@tiny.json",
            "--epochs",
            "1",
            "--out",
            "@tiny.json",
        ],
        code: 1,
        needles: &["tiny.json", "same file as --arch"],
    },
    Case {
        name: "sweep --out = --checkpoint",
        setup: nothing,
        args: &[
            "sweep",
            "--checkpoint",
            "@ck.safetensors",
            "--tasks",
            "1-7@0",
            "--out",
            "@ck.safetensors",
        ],
        code: 1,
        needles: &["same file as --checkpoint"],
    },
    Case {
        name: "pretrain --out = an IDX file of --data",
        setup: |d| digits_with_images(d, b"images"),
        args: &[
            "pretrain",
            "--data",
            "@data",
            "--out",
            "@data/mnist10k-images-idx3-ubyte",
        ],
        code: 1,
        needles: &["same file as --data", "mnist10k-images-idx3-ubyte"],
    },
    Case {
        name: "merge into one of its inputs",
        setup: nothing,
        args: &["merge", "@good.jsonl", "@good.jsonl"],
        code: 1,
        needles: &["good.jsonl", "same file as input"],
    },
    // Sizes bounded before allocation.
    Case {
        name: "architecture JSON with a layer of 10^12 neurons",
        setup: |d| {
            std::fs::write(
                d.join("huge.json"),
                TINY_ARCH.replace("\"size\":3", "\"size\":1000000000000"),
            )
            .unwrap()
        },
        args: &[
            "pretrain",
            "--arch",
            "@huge.json",
            "--out",
            "@out.safetensors",
        ],
        code: 1,
        needles: &["huge.json", "layer 2 has size 1000000000000"],
    },
    Case {
        name: "checkpoint whose architecture has a layer of 10^12 neurons",
        setup: |d| {
            checkpoint_with_arch(
                d,
                &TINY_ARCH.replace("\"size\":4", "\"size\":1000000000000"),
            )
        },
        args: &["eval", "--checkpoint", "@bad.safetensors"],
        code: 1,
        needles: &["bad.safetensors", "layer 1 has size 1000000000000"],
    },
    Case {
        name: "--batches 10^12",
        setup: nothing,
        args: &[
            "sweep",
            "--checkpoint",
            "@ck.safetensors",
            "--tasks",
            "1-7@0",
            "--batches",
            "1000000000000",
            "--out",
            "@r.jsonl",
        ],
        code: 1,
        needles: &["--batches 1000000000000", "at most"],
    },
    Case {
        name: "--test-composites 10^12",
        setup: nothing,
        args: &[
            "sweep",
            "--checkpoint",
            "@ck.safetensors",
            "--tasks",
            "1-7@0",
            "--test-composites",
            "1000000000000",
            "--out",
            "@r.jsonl",
        ],
        code: 1,
        needles: &["--test-composites 1000000000000", "at most"],
    },
    Case {
        name: "--repeats 10^11",
        setup: nothing,
        args: &[
            "sweep",
            "--checkpoint",
            "@ck.safetensors",
            "--tasks",
            "1-7@0",
            "--repeats",
            "100000000000",
            "--out",
            "@r.jsonl",
        ],
        code: 1,
        needles: &["--repeats 100000000000", "split it"],
    },
    Case {
        name: "--samples 10^9",
        setup: nothing,
        args: &[
            "sweep",
            "--checkpoint",
            "@ck.safetensors",
            "--tasks",
            "1-7@0",
            "--samples",
            "1000000000",
            "--out",
            "@r.jsonl",
        ],
        code: 1,
        needles: &["--samples 1000000000", "at most"],
    },
    Case {
        name: "a sparse 20 GB checkpoint",
        setup: |d| {
            std::fs::File::create(d.join("sparse.safetensors"))
                .unwrap()
                .set_len(20 << 30)
                .unwrap()
        },
        args: &["eval", "--checkpoint", "@sparse.safetensors"],
        code: 1,
        needles: &["sparse.safetensors", "larger than 4 GiB"],
    },
    Case {
        name: "a device as checkpoint",
        setup: nothing,
        args: &["eval", "--checkpoint", "/dev/zero"],
        code: 1,
        needles: &["/dev/zero", "expected a regular file"],
    },
    Case {
        name: "a gzip bomb as IDX images",
        setup: |d| {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            let zeros = vec![0u8; 1 << 24];
            for _ in 0..65 {
                gz.write_all(&zeros).unwrap();
            }
            digits_with_images(d, &gz.finish().unwrap());
        },
        args: &["pretrain", "--data", "@data", "--out", "@out.safetensors"],
        code: 1,
        needles: &["mnist10k-images-idx3-ubyte", "more than 1 GiB"],
    },
    // Locks and resumes.
    Case {
        name: "resume over a record with a wrong seed",
        setup: |d| edit_record(d, |r| r["seed"] = 12345.into()),
        args: &[
            "sweep",
            "--checkpoint",
            "@ck.safetensors",
            "--tasks",
            "1-7@0",
            "--methods",
            "stochastic,retrain-last",
            "--repeats",
            "1",
            "--batches",
            "3",
            "--test-composites",
            "20",
            "--samples",
            "8",
            "--out",
            "@good.jsonl",
        ],
        code: 1,
        needles: &["good.jsonl", "seed 12345", "not a run of this sweep"],
    },
    Case {
        name: "resume over a record with an empty curve",
        setup: |d| {
            edit_record(d, |r| {
                r["curve"] = serde_json::json!([]);
                r["examples"] = serde_json::json!([]);
            })
        },
        args: &[
            "sweep",
            "--checkpoint",
            "@ck.safetensors",
            "--tasks",
            "1-7@0",
            "--methods",
            "stochastic,retrain-last",
            "--repeats",
            "1",
            "--batches",
            "3",
            "--test-composites",
            "20",
            "--samples",
            "8",
            "--out",
            "@good.jsonl",
        ],
        code: 1,
        needles: &["good.jsonl", "0 measurements where this sweep makes 4"],
    },
    Case {
        name: "resume over a run recorded twice",
        setup: |d| {
            let text = std::fs::read_to_string(d.join("good.jsonl")).unwrap();
            let first = text.lines().next().unwrap().to_string();
            std::fs::write(d.join("good.jsonl"), format!("{text}{first}\n")).unwrap();
        },
        args: &[
            "sweep",
            "--checkpoint",
            "@ck.safetensors",
            "--tasks",
            "1-7@0",
            "--out",
            "@good.jsonl",
        ],
        code: 1,
        needles: &["good.jsonl", "line 3", "recorded twice"],
    },
    Case {
        name: "summary of records of two configurations",
        setup: |d| {
            let text = std::fs::read_to_string(d.join("good.jsonl")).unwrap();
            let second = text
                .lines()
                .nth(1)
                .unwrap()
                .replace("\"master_seed\":0", "\"master_seed\":9");
            std::fs::write(
                d.join("good.jsonl"),
                format!("{}\n{second}\n", text.lines().next().unwrap()),
            )
            .unwrap();
        },
        args: &["summary", "@good.jsonl"],
        code: 1,
        needles: &["good.jsonl", "another configuration", "master_seed"],
    },
    Case {
        name: "summary of a missing file",
        setup: nothing,
        args: &["summary", "@missing.jsonl"],
        code: 1,
        needles: &["missing.jsonl", "no such file"],
    },
    Case {
        name: "summary whose --plots folder is a file",
        setup: |d| std::fs::write(d.join("plots"), "a file").unwrap(),
        args: &["summary", "@good.jsonl", "--plots", "@plots"],
        code: 1,
        needles: &["plots"],
    },
    Case {
        name: "results of a newer format",
        setup: |d| edit_record(d, |r| r["format"] = 99.into()),
        args: &["summary", "@good.jsonl"],
        code: 1,
        needles: &["good.jsonl", "line 1", "record format 99 is newer"],
    },
    Case {
        name: "results with a learning rate beyond f32 (read as inf, written as null)",
        setup: |d| edit_record(d, |r| r["config"]["lr"]["retrain_last"] = 6e47.into()),
        args: &["summary", "@good.jsonl"],
        code: 1,
        needles: &[
            "good.jsonl",
            "line 1",
            "configuration: --lr-retrain-last inf",
        ],
    },
    Case {
        name: "results line that is not JSON",
        setup: |d| {
            let text = std::fs::read_to_string(d.join("good.jsonl")).unwrap();
            std::fs::write(d.join("good.jsonl"), format!("{text}{{not json\n")).unwrap();
        },
        args: &["summary", "@good.jsonl"],
        code: 1,
        needles: &["good.jsonl", "line 3", "not a result record"],
    },
    Case {
        name: "results with an accuracy above 1",
        setup: |d| edit_record(d, |r| r["curve"][1] = 1.5.into()),
        args: &["summary", "@good.jsonl"],
        code: 1,
        needles: &["good.jsonl", "line 1", "accuracy 1.5"],
    },
    Case {
        name: "merge of a file with a torn last line",
        setup: |d| {
            let text = std::fs::read_to_string(d.join("good.jsonl")).unwrap();
            std::fs::write(d.join("good.jsonl"), &text[..text.len() - 20]).unwrap();
        },
        args: &["merge", "@merged.jsonl", "@good.jsonl"],
        code: 1,
        needles: &["good.jsonl", "torn"],
    },
    Case {
        name: "merge of a missing file",
        setup: nothing,
        args: &["merge", "@merged.jsonl", "@good.jsonl", "@missing.jsonl"],
        code: 1,
        needles: &["missing.jsonl"],
    },
    // Numbers that are not finite.
    Case {
        name: "trace inputs that overflow the encoder's exp",
        setup: |d| write_trace_inputs(&d.join("hot.safetensors"), 1e30),
        args: &[
            "trace",
            "--checkpoint",
            "@ck.safetensors",
            "--inputs",
            "@hot.safetensors",
            "--out",
            "@out.safetensors",
        ],
        code: 1,
        needles: &["out.safetensors", "not written", "is NaN"],
    },
    Case {
        name: "bench --seconds inf",
        setup: nothing,
        args: &["bench", "--seconds", "inf"],
        code: 1,
        needles: &["--seconds inf"],
    },
    Case {
        name: "bench --seconds NaN",
        setup: nothing,
        args: &["bench", "--seconds", "NaN"],
        code: 1,
        needles: &["--seconds NaN"],
    },
    Case {
        name: "bench --seconds -1",
        setup: nothing,
        args: &["bench", "--seconds", "-1"],
        code: 1,
        needles: &["--seconds -1"],
    },
    Case {
        name: "--lr-stochastic inf",
        setup: nothing,
        args: &[
            "sweep",
            "--checkpoint",
            "@ck.safetensors",
            "--tasks",
            "1-7@0",
            "--lr-stochastic",
            "inf",
            "--out",
            "@r.jsonl",
        ],
        code: 1,
        needles: &["--lr-stochastic inf"],
    },
    // Flags.
    Case {
        name: "sweep --modulated-layer without --arch",
        setup: nothing,
        args: &[
            "sweep",
            "--checkpoint",
            "@ck.safetensors",
            "--tasks",
            "1-7@0",
            "--modulated-layer",
            "2",
            "--out",
            "@r.jsonl",
        ],
        code: 2,
        needles: &["--arch"],
    },
    Case {
        name: "pretrain --epochs 0",
        setup: nothing,
        args: &["pretrain", "--epochs", "0", "--out", "@out.safetensors"],
        code: 1,
        needles: &["--epochs 0"],
    },
    Case {
        name: "--samples 0",
        setup: nothing,
        args: &[
            "sweep",
            "--checkpoint",
            "@ck.safetensors",
            "--tasks",
            "1-7@0",
            "--samples",
            "0",
            "--out",
            "@r.jsonl",
        ],
        code: 1,
        needles: &["--samples 0"],
    },
    Case {
        name: "an unknown method",
        setup: nothing,
        args: &[
            "sweep",
            "--checkpoint",
            "@ck.safetensors",
            "--tasks",
            "1-7@0",
            "--methods",
            "magic",
            "--out",
            "@r.jsonl",
        ],
        code: 2,
        needles: &["magic"],
    },
    // Task strings and shard specs.
    Case {
        name: "task with a > b",
        setup: nothing,
        args: &[
            "sweep",
            "--checkpoint",
            "@ck.safetensors",
            "--tasks",
            "7-1@0",
            "--out",
            "@r.jsonl",
        ],
        code: 1,
        needles: &["--tasks", "7-1@0"],
    },
    Case {
        name: "task with quadrant 9",
        setup: nothing,
        args: &[
            "sweep",
            "--checkpoint",
            "@ck.safetensors",
            "--tasks",
            "1-7@9",
            "--out",
            "@r.jsonl",
        ],
        code: 1,
        needles: &["--tasks", "1-7@9"],
    },
    Case {
        name: "task listed twice",
        setup: nothing,
        args: &[
            "sweep",
            "--checkpoint",
            "@ck.safetensors",
            "--tasks",
            "1-7@0,1-7@0",
            "--out",
            "@r.jsonl",
        ],
        code: 1,
        needles: &["1-7@0", "listed twice"],
    },
    Case {
        name: "an empty task list",
        setup: nothing,
        args: &[
            "sweep",
            "--checkpoint",
            "@ck.safetensors",
            "--tasks",
            ",",
            "--out",
            "@r.jsonl",
        ],
        code: 1,
        needles: &["--tasks", "no tasks given"],
    },
    Case {
        name: "shard 3/2",
        setup: nothing,
        args: &[
            "sweep",
            "--checkpoint",
            "@ck.safetensors",
            "--tasks",
            "1-7@0",
            "--shard",
            "3/2",
            "--out",
            "@r.jsonl",
        ],
        code: 2,
        needles: &["--shard", "3/2"],
    },
    Case {
        name: "shard 0/0",
        setup: nothing,
        args: &[
            "sweep",
            "--checkpoint",
            "@ck.safetensors",
            "--tasks",
            "1-7@0",
            "--shard",
            "0/0",
            "--out",
            "@r.jsonl",
        ],
        code: 2,
        needles: &["--shard", "0/0"],
    },
    Case {
        name: "shard a/b",
        setup: nothing,
        args: &[
            "sweep",
            "--checkpoint",
            "@ck.safetensors",
            "--tasks",
            "1-7@0",
            "--shard",
            "a/b",
            "--out",
            "@r.jsonl",
        ],
        code: 2,
        needles: &["--shard", "a/b"],
    },
    // Architecture JSON.
    Case {
        name: "architecture JSON with an unknown field",
        setup: |d| tiny_arch_with(d, "\"beta\"", "\"gamma\""),
        args: &["pretrain", "--arch", "@a.json", "--out", "@out.safetensors"],
        code: 1,
        needles: &["a.json", "gamma"],
    },
    Case {
        name: "architecture JSON of format 2",
        setup: |d| tiny_arch_with(d, "\"format\":1", "\"format\":2"),
        args: &["pretrain", "--arch", "@a.json", "--out", "@out.safetensors"],
        code: 1,
        needles: &["a.json", "format 2"],
    },
    Case {
        name: "architecture JSON whose readout has 5 logits",
        setup: |d| tiny_arch_with(d, "\"size\":10", "\"size\":5"),
        args: &["pretrain", "--arch", "@a.json", "--out", "@out.safetensors"],
        code: 1,
        needles: &["a.json", "readout has size 5"],
    },
    Case {
        name: "architecture JSON modulating the readout",
        setup: |d| tiny_arch_with(d, "\"modulated_layer\":1", "\"modulated_layer\":3"),
        args: &["pretrain", "--arch", "@a.json", "--out", "@out.safetensors"],
        code: 1,
        needles: &["a.json", "modulated_layer 3"],
    },
    Case {
        name: "architecture file that is not UTF-8",
        setup: |d| std::fs::write(d.join("a.json"), [0xff, 0xfe, 0x00]).unwrap(),
        args: &["pretrain", "--arch", "@a.json", "--out", "@out.safetensors"],
        code: 1,
        needles: &["a.json", "not UTF-8"],
    },
    // Trace inputs.
    Case {
        name: "trace inputs that are not safetensors",
        setup: |d| std::fs::write(d.join("bad.safetensors"), b"hello").unwrap(),
        args: &[
            "trace",
            "--checkpoint",
            "@ck.safetensors",
            "--inputs",
            "@bad.safetensors",
            "--out",
            "@out.safetensors",
        ],
        code: 1,
        needles: &["bad.safetensors", "not a valid safetensors file"],
    },
    Case {
        name: "trace inputs with a label out of range",
        setup: |d| {
            let tensors = vec![
                (
                    "stimuli".to_string(),
                    vec![1, 784],
                    TensorData::F32(vec![0.5; 784]),
                ),
                (
                    "modulator".to_string(),
                    vec![1, 2],
                    TensorData::F32(vec![1.0, 1.0]),
                ),
                ("labels".to_string(), vec![1], TensorData::I64(vec![12])),
            ];
            write_tensors(&d.join("bad.safetensors"), &tensors, Default::default()).unwrap();
        },
        args: &[
            "trace",
            "--checkpoint",
            "@ck.safetensors",
            "--inputs",
            "@bad.safetensors",
            "--out",
            "@out.safetensors",
        ],
        code: 1,
        needles: &["bad.safetensors", "tensor labels", "label 12"],
    },
    Case {
        name: "trace inputs without stimuli",
        setup: |d| {
            let tensors = vec![("labels".to_string(), vec![1], TensorData::I64(vec![1]))];
            write_tensors(&d.join("bad.safetensors"), &tensors, Default::default()).unwrap();
        },
        args: &[
            "trace",
            "--checkpoint",
            "@ck.safetensors",
            "--inputs",
            "@bad.safetensors",
            "--out",
            "@out.safetensors",
        ],
        code: 1,
        needles: &["bad.safetensors", "stimuli"],
    },
    Case {
        name: "trace inputs with an unexpected tensor",
        setup: |d| {
            let tensors = vec![("weights".to_string(), vec![1], TensorData::F32(vec![1.0]))];
            write_tensors(&d.join("bad.safetensors"), &tensors, Default::default()).unwrap();
        },
        args: &[
            "trace",
            "--checkpoint",
            "@ck.safetensors",
            "--inputs",
            "@bad.safetensors",
            "--out",
            "@out.safetensors",
        ],
        code: 1,
        needles: &["bad.safetensors", "unexpected tensor weights"],
    },
    // Data and checkpoints.
    Case {
        name: "IDX images with a bad magic",
        setup: |d| digits_with_images(d, &[0, 0, 8, 1, 0, 0, 0, 0]),
        args: &["pretrain", "--data", "@data", "--out", "@out.safetensors"],
        code: 1,
        needles: &["mnist10k-images-idx3-ubyte", "bad magic"],
    },
    Case {
        name: "IDX images with trailing bytes",
        setup: |d| {
            let mut bytes = vec![0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 28, 0, 0, 0, 28];
            bytes.extend(vec![0u8; 784 + 5]);
            digits_with_images(d, &bytes);
        },
        args: &["pretrain", "--data", "@data", "--out", "@out.safetensors"],
        code: 1,
        needles: &["mnist10k-images-idx3-ubyte", "5 trailing bytes"],
    },
    Case {
        name: "checkpoint without its architecture",
        setup: |d| write_tensors(&d.join("bad.safetensors"), &[], Default::default()).unwrap(),
        args: &["eval", "--checkpoint", "@bad.safetensors"],
        code: 1,
        needles: &["bad.safetensors", "architecture JSON) is missing"],
    },
    Case {
        name: "reproduce from digits that do not exist",
        setup: nothing,
        args: &["reproduce", "--data", "@no-digits", "--out", "@repro"],
        code: 1,
        needles: &["no-digits"],
    },
    Case {
        name: "reproduce over a corrupt checkpoint",
        setup: |d| {
            std::fs::create_dir(d.join("repro")).unwrap();
            std::fs::write(d.join("repro/pretrained.safetensors"), b"garbage").unwrap();
        },
        args: &["reproduce", "--out", "@repro"],
        code: 1,
        needles: &["pretrained.safetensors", "cannot be reused"],
    },
];

#[test]
fn every_malformed_input_fails_in_one_line_and_leaves_the_folder_as_it_was() {
    assert!(CASES.len() >= 40, "{} cases", CASES.len());
    let names = [
        "tiny.json",
        "ck.safetensors",
        "good.jsonl",
        "inputs.safetensors",
    ];
    run_survey(CASES, fixtures(), &names);
}

#[test]
fn the_longest_output_name_is_written_and_devices_survive() {
    let dir = tempfile::tempdir().unwrap();
    let long = dir
        .path()
        .join(format!("{}.safetensors", "n".repeat(255 - 12)));
    let arch = fixtures().join("tiny.json");
    let out = comod(
        &[
            "pretrain",
            "--arch",
            arch.to_str().unwrap(),
            "--epochs",
            "1",
            "--out",
            long.to_str().unwrap(),
        ],
        "2",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(long.is_file());
    let out = comod(
        &[
            "pretrain",
            "--arch",
            arch.to_str().unwrap(),
            "--epochs",
            "1",
            "--out",
            "/dev/null",
        ],
        "2",
    );
    assert_eq!(out.status.code(), Some(1));
    let meta = std::fs::metadata("/dev/null").unwrap();
    assert!(!meta.is_file(), "/dev/null must stay a device");
}

#[test]
fn a_results_file_in_use_is_refused_naming_its_holder_and_a_stale_lock_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("r.jsonl");
    let ck = fixtures().join("ck.safetensors");
    let mut args = vec![
        "sweep",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--tasks",
        "1-7@0",
    ];
    args.extend(QUICK);
    args.extend([
        "--methods",
        "deterministic",
        "--repeats",
        "1",
        "--out",
        results.to_str().unwrap(),
    ]);
    let held = comod::io::lock::FileLock::acquire(&results).unwrap();
    let out = comod(&args, "2");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let holder = format!("in use by pid {}", std::process::id());
    assert!(
        stderr.contains(&holder) && stderr.contains("r.jsonl"),
        "{stderr}"
    );
    assert!(
        !results.exists(),
        "nothing written while another holds the lock"
    );
    // The lock is the file's, however it is spelt: through a link too.
    std::fs::write(&results, b"").unwrap();
    let link = dir.path().join("link.jsonl");
    std::os::unix::fs::symlink(&results, &link).unwrap();
    let via_link: Vec<&str> = args
        .iter()
        .map(|a| {
            if *a == results.to_str().unwrap() {
                link.to_str().unwrap()
            } else {
                *a
            }
        })
        .collect();
    let out = comod(&via_link, "2");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(1) && stderr.contains(&holder),
        "{stderr}"
    );
    std::fs::remove_file(&results).unwrap();
    drop(held);
    // A lock file left by a killed process holds no lock: it is taken over.
    std::fs::write(comod::io::lock::lock_path(&results), "pid 1 on elsewhere").unwrap();
    let out = comod(&args, "2");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(results.is_file() && !comod::io::lock::lock_path(&results).exists());
    // A sweep through the link writes the file it points to and keeps the link.
    let out = comod(&via_link, "2");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
}
