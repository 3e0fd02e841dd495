#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target into fuzz/seeds/<target>/,
each seed made from a valid file: the shipped digits (raw and gzip), a
checkpoint that `comod pretrain` writes, a results file that `comod sweep`
writes, trace inputs, and valid task lists, shard and architecture specs.

Run from anywhere: python3 fuzz/make_seeds.py (builds comod first).
Standard library only."""

import gzip
import json
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "fuzz" / "seeds"
COMOD = ROOT / "target" / "release" / "comod"


def put(target, name, data):
    folder = SEEDS / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def safetensors(tensors, metadata=None):
    """The safetensors bytes of {name: (dtype, shape, raw bytes)}."""
    header, offset, payload = {}, 0, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        payload += raw
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + payload


def f32(values):
    return struct.pack(f"<{len(values)}f", *values)


def i64(values):
    return struct.pack(f"<{len(values)}q", *values)


def idx_seeds():
    images = gzip.decompress((ROOT / "data" / "mnist10k-images-idx3-ubyte.gz").read_bytes())
    labels = gzip.decompress((ROOT / "data" / "mnist10k-labels-idx1-ubyte.gz").read_bytes())
    # Three images and three labels: small enough for fast fuzzing.
    small_images = struct.pack(">IIII", 0x803, 3, 28, 28) + images[16 : 16 + 3 * 784]
    small_labels = struct.pack(">II", 0x801, 3) + labels[8:11]
    # The first byte picks the magic the target expects (even: images).
    put("idx", "images-raw", b"\x00" + small_images)
    put("idx", "images-gzip", b"\x00" + gzip.compress(small_images))
    put("idx", "labels-raw", b"\x01" + small_labels)
    put("idx", "labels-gzip", b"\x01" + gzip.compress(small_labels))
    put("idx", "labels-empty", b"\x01" + struct.pack(">II", 0x801, 0))


TINY_ARCH = {
    "format": 1,
    "input": 784,
    "layers": [
        {"kind": "encoder", "size": 4, "nonlinearity": "exp"},
        {"kind": "local", "size": 4},
        {"kind": "dense", "size": 3},
        {"kind": "readout", "size": 10},
    ],
    "modulated_layer": 1,
    "beta": 0.0,
}


def run(*args):
    subprocess.run([str(COMOD), *map(str, args)], check=True, stdout=subprocess.DEVNULL)


def file_seeds(work):
    arch = work / "tiny.json"
    arch.write_text(json.dumps(TINY_ARCH))
    put("arch", "tiny.json", json.dumps(TINY_ARCH))
    checkpoint = work / "tiny.safetensors"
    run("pretrain", "--arch", arch, "--data", ROOT / "data", "--epochs", "1", "--out", checkpoint)
    put("checkpoint", "tiny-pretrained", checkpoint.read_bytes())
    results = work / "results.jsonl"
    run("sweep", "--checkpoint", checkpoint, "--data", ROOT / "data", "--tasks", "1-7@0,2-3@1",
        "--methods", "stochastic,retrain-last", "--repeats", "1", "--batches", "2",
        "--test-composites", "8", "--record-coupling", "--out", results)
    lines = results.read_bytes().splitlines(keepends=True)
    put("results", "sweep.jsonl", b"".join(lines))
    put("results", "one-record", lines[0])
    put("results", "torn-last-line", lines[0] + lines[1][: len(lines[1]) // 2])
    put("results", "no-final-newline", lines[0].rstrip(b"\n"))
    run("sweep", "--checkpoint", checkpoint, "--data", ROOT / "data", "--tasks", "1-7@0",
        "--methods", "deterministic", "--repeats", "1", "--batches", "2", "--protocol", "dataset",
        "--sizes", "2", "--size-step", "4", "--test-composites", "8", "--out", work / "dataset.jsonl")
    put("results", "dataset.jsonl", (work / "dataset.jsonl").read_bytes())
    for preset in ["paper3", "relu-local2"]:
        out = work / f"{preset}.safetensors"
        run("pretrain", "--arch", preset, "--data", ROOT / "data", "--epochs", "1", "--out", out)
        header_len = struct.unpack("<Q", out.read_bytes()[:8])[0]
        header = json.loads(out.read_bytes()[8 : 8 + header_len])
        put("arch", f"{preset}.json", header["__metadata__"]["comod"])


def multitask_seeds(work):
    checkpoint = work / "conv.safetensors"
    run("multitask", "pretrain", "--data", ROOT / "data", "--epochs", "1", "--examples", "50",
        "--batch-size", "50", "--heldout", "20", "--out", checkpoint)
    put("conv_checkpoint", "conv-mnist", checkpoint.read_bytes())
    header_len = struct.unpack("<Q", checkpoint.read_bytes()[:8])[0]
    header = json.loads(checkpoint.read_bytes()[8 : 8 + header_len])
    put("conv_arch", "conv-mnist.json", header["__metadata__"]["architecture"])
    tiny = {"format": 2, "input": {"channels": 3, "height": 5, "width": 4},
            "stages": [{"kind": "conv", "channels": 2, "kernel": 1}, {"kind": "maxpool"},
                       {"kind": "conv", "channels": 3, "kernel": 5}, {"kind": "dense", "size": 2}],
            "tasks": 3, "modulated_stage": 3, "beta": 0.5}
    put("conv_arch", "tiny.json", json.dumps(tiny))
    record = lambda coarse, fine: bytes([coarse, fine]) + bytes((i * 7 + coarse) % 256 for i in range(3072))
    put("cifar", "two-records", record(3, 31) + record(19, 99))
    put("cifar", "bad-label", record(20, 0))
    names = ("5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose "
             "Black_Hair Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee "
             "Gray_Hair Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard "
             "Oval_Face Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair "
             "Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young")
    row = lambda i: f"{i:06d}.jpg  " + " ".join("1" if (i + a) % 3 == 0 else "-1" for a in range(40))
    put("celeba_lists", "attributes", b"\x00" + f"2\n{names}\n{row(1)}\n{row(2)}\n".encode())
    put("celeba_lists", "partition", b"\x01" + b"000001.jpg 0\n000002.jpg 2\n")


def trace_seeds():
    k, t = 2, 4
    stimuli = f32([((i * 37) % 101) / 101.0 for i in range(k * 784)])
    modulator = f32([1.0 + 0.1 * ((i % 5) - 2) for i in range(k * t)])
    base = {
        "stimuli": ("F32", [k, 784], stimuli),
        "modulator": ("F32", [k, t], modulator),
        "labels": ("I64", [k], i64([3, 7])),
    }
    put("trace_inputs", "all-classes", safetensors(base))
    pair = dict(base, labels=("I64", [k], i64([0, 1])), pair=("I64", [2], i64([3, 7])))
    pair["coupling"] = ("F32", [400], f32([0.5] * 400))
    pair["gain"] = ("F32", [200], f32([1.0] * 200))
    put("trace_inputs", "pair-coupling-gain",
        safetensors(pair, {"m0": "1.0", "lambda": "0.001", "gain_rule": "correlation"}))


def text_seeds():
    for i, text in enumerate(["1-7@0", "all", "1-7@0,3-8@2", " 0-9@3 , 2-4@1 ", "4-5@2,"]):
        put("task_list", f"list-{i}", text)
    for i, text in enumerate(["0/1", "0/8", "7/8", " 3 / 4 "]):
        put("shard", f"shard-{i}", text)


def main():
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    shutil.rmtree(SEEDS, ignore_errors=True)
    idx_seeds()
    with tempfile.TemporaryDirectory() as work:
        file_seeds(Path(work))
        multitask_seeds(Path(work))
    trace_seeds()
    text_seeds()
    for folder in sorted(SEEDS.iterdir()):
        print(f"{folder.name}: {len(list(folder.iterdir()))} seeds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
