//! What each fuzz target does with its input, shared by the targets in
//! `fuzz_targets/` and by the corpus replay of `tests/fuzz_corpora.rs`: run
//! one parser on arbitrary bytes; an error is fine, a panic is a bug, and
//! whatever parses must survive its own round trip.

use std::path::Path;

use comod::conv::ConvArch;
use comod::conv::checkpoint::conv_checkpoint_from;
use comod::data::celeba::{parse_celeba_attributes, parse_celeba_partition};
use comod::data::cifar::{CIFAR_COARSE, parse_cifar_records};
use comod::data::idx::{IMAGES_MAGIC, LABELS_MAGIC, decompress_maybe_gzip, parse_idx};
use comod::data::parse_task_list;
use comod::io::checkpoint::checkpoint_from;
use comod::io::tensors::TensorFile;
use comod::io::trace::parse_trace_inputs;
use comod::net::Arch;
use comod::sweep::plan::Shard;
use comod::sweep::record::{Architecture, Record};
use comod::sweep::store::parse_results;

/// The name given to every fuzz input in error messages.
const INPUT: &str = "fuzz-input";

/// IDX images or labels, raw or gzip: the first byte picks the magic
/// expected (even: images, odd: labels), the rest is the file.
pub fn idx(data: &[u8]) {
    let Some((&pick, file)) = data.split_first() else {
        return;
    };
    let magic = if pick % 2 == 0 {
        IMAGES_MAGIC
    } else {
        LABELS_MAGIC
    };
    let Ok(bytes) = decompress_maybe_gzip(file.to_vec()) else {
        return;
    };
    if let Ok(array) = parse_idx(&bytes, magic) {
        let cells: usize = array.dims.iter().product();
        assert_eq!(cells, array.data.len(), "dimensions and payload disagree");
    }
}

/// A checkpoint: safetensors with the architecture JSON in its metadata.
pub fn checkpoint(data: &[u8]) {
    let Ok(file) = TensorFile::from_bytes(Path::new(INPUT), data.to_vec()) else {
        return;
    };
    if let Ok(checkpoint) = checkpoint_from(&file) {
        assert!(checkpoint.model.params.iter().all(|w| w.is_finite()));
        assert_eq!(
            Arch::from_json(&checkpoint.model.arch().to_json())
                .ok()
                .as_ref(),
            Some(checkpoint.model.arch())
        );
    }
}

/// A `comod trace` input file, for the network of the `paper3` preset.
pub fn trace_inputs(data: &[u8]) {
    let arch = Arch::preset("paper3", 1).expect("a preset");
    let Ok(file) = TensorFile::from_bytes(Path::new(INPUT), data.to_vec()) else {
        return;
    };
    if let Ok(inputs) = parse_trace_inputs(&file, &arch) {
        assert!(!inputs.labels.is_empty());
    }
}

/// A results file (JSON lines) of either network, as a resume or a merge
/// reads it: every record read writes back to a line that reads as the
/// same record.
pub fn results(data: &[u8]) {
    round_trip::<Arch>(data);
    round_trip::<ConvArch>(data);
}

fn round_trip<A: Architecture>(data: &[u8]) {
    if let Ok(contents) = parse_results::<A>(Path::new(INPUT), data) {
        for record in contents.records.values() {
            let again = Record::<A>::from_line(record.to_line().as_bytes()).expect("reads back");
            assert_eq!(&again, record, "a record changed on its round trip");
        }
    }
}

/// A `--tasks` list: a list parsed prints as one that parses the same.
pub fn task_list(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(tasks) = parse_task_list(text) {
        let printed: Vec<String> = tasks.iter().map(ToString::to_string).collect();
        assert_eq!(parse_task_list(&printed.join(",")).ok(), Some(tasks));
    }
}

/// A `--shard i/n` specification.
pub fn shard(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(shard) = text.parse::<Shard>() {
        assert!(shard.index < shard.count);
        assert_eq!(shard.to_string().parse::<Shard>(), Ok(shard));
    }
}

/// An architecture JSON (§7).
pub fn arch(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(arch) = Arch::from_json(text) {
        assert_eq!(Arch::from_json(&arch.to_json()).ok(), Some(arch));
    }
}

/// A convolutional architecture JSON (§7 format 2, §8).
pub fn conv_arch(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(arch) = ConvArch::from_json(text) {
        assert_eq!(arch.shapes().len(), arch.stages.len() + 1);
        assert_eq!(ConvArch::from_json(&arch.to_json()).ok(), Some(arch));
    }
}

/// A convolutional checkpoint (§8).
pub fn conv_checkpoint(data: &[u8]) {
    let Ok(file) = TensorFile::from_bytes(Path::new(INPUT), data.to_vec()) else {
        return;
    };
    if let Ok(checkpoint) = conv_checkpoint_from(&file) {
        assert!(checkpoint.net.params.iter().all(|w| w.is_finite()));
        assert_eq!(
            checkpoint.provenance.tasks.len(),
            checkpoint.net.arch().tasks
        );
    }
}

/// A CIFAR-100 binary file: every record gives 3072 pixels and one coarse task.
pub fn cifar(data: &[u8]) {
    if let Ok((pixels, labels)) = parse_cifar_records(data) {
        let records = data.len() / 3074;
        assert_eq!(pixels.len(), records * 3072);
        assert!(
            labels
                .chunks_exact(CIFAR_COARSE)
                .all(|l| l.iter().map(|&x| x as usize).sum::<usize>() == 1)
        );
    }
}

/// CelebA's lists: the first byte picks the attribute list (even) or
/// the partition list (odd).
pub fn celeba_lists(data: &[u8]) {
    let Some((&pick, text)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    if pick % 2 == 0 {
        if let Ok((names, rows)) = parse_celeba_attributes(text) {
            assert_eq!(names.len(), 40);
            // The names are distinct task names; the files stay in the image folder.
            assert!(
                names
                    .iter()
                    .enumerate()
                    .all(|(i, n)| !n.contains(',') && !names[..i].contains(n))
            );
            assert!(rows.iter().all(|(f, _)| inside_folder(f)));
            assert!(rows.iter().all(|(_, v)| v.iter().all(|&x| x <= 1)));
        }
    } else if let Ok(rows) = parse_celeba_partition(text) {
        assert!(
            rows.iter()
                .all(|(f, split)| inside_folder(f) && *split <= 2)
        );
    }
}

/// Whether an image name names a file inside its folder.
fn inside_folder(name: &str) -> bool {
    !name.is_empty() && !name.contains(['/', '\\']) && name != ".." && name != "."
}

/// What a target does with one input.
pub type Body = fn(&[u8]);

/// Every target, by name: what `tests/fuzz_corpora.rs` replays.
pub const TARGETS: [(&str, Body); 11] = [
    ("idx", idx),
    ("checkpoint", checkpoint),
    ("trace_inputs", trace_inputs),
    ("results", results),
    ("task_list", task_list),
    ("shard", shard),
    ("arch", arch),
    ("conv_arch", conv_arch),
    ("conv_checkpoint", conv_checkpoint),
    ("cifar", cifar),
    ("celeba_lists", celeba_lists),
];
