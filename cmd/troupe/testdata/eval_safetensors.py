"""Evaluates a model exported by `troupe export --format safetensors` in PyTorch.

usage: eval_safetensors.py MODEL.safetensors MNIST_DIR N [K]

It reads the file with json and numpy alone, builds the torch.nn.Sequential that the
metadata's troupe.model describes, loads the tensors with load_state_dict(strict=True),
normalizes the first N MNIST test images as troupe does ((pixel/255 - mean) / std in float32,
or pixel/255 when std is 0), and prints one JSON object: the number correct, the accuracy,
every prediction, and the logits of the first K samples.
"""
import gzip
import json
import os
import struct
import sys

import numpy as np
import torch
from torch import nn


def read_safetensors(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    meta = header.pop("__metadata__", None) or {}
    tensors = {}
    for name, info in header.items():
        if info["dtype"] != "F32":
            raise ValueError("%s: dtype %s" % (name, info["dtype"]))
        begin, end = info["data_offsets"]
        arr = np.frombuffer(data[begin:end], dtype="<f4").reshape(info["shape"])
        tensors[name] = torch.from_numpy(arr.copy())
    return tensors, meta


def build(spec):
    """The torch.nn.Sequential equivalent of a troupe model spec, layer for layer."""
    shape = list(spec["input"])
    mods = []
    for ls in spec["layers"]:
        kind = ls["type"]
        if kind == "dense":
            mods.append(nn.Linear(shape[0], ls["units"]))
            shape = [ls["units"]]
        elif kind == "conv2d":
            k, s, p = ls["kernel"], ls.get("stride") or 1, ls.get("padding", 0)
            mods.append(nn.Conv2d(shape[0], ls["filters"], k, stride=s, padding=p))
            shape = [ls["filters"], (shape[1] + 2 * p - k) // s + 1, (shape[2] + 2 * p - k) // s + 1]
        elif kind == "maxpool2d":
            k = ls["size"]
            s = ls.get("stride") or k
            mods.append(nn.MaxPool2d(k, stride=s))
            shape = [shape[0], (shape[1] - k) // s + 1, (shape[2] - k) // s + 1]
        elif kind == "flatten":
            mods.append(nn.Flatten())
            shape = [int(np.prod(shape))]
        elif kind == "relu":
            mods.append(nn.ReLU())
        elif kind == "tanh":
            mods.append(nn.Tanh())
        elif kind == "gelu":
            mods.append(nn.GELU(approximate="tanh"))  # troupe's GELU is the tanh approximation
        elif kind == "dropout":
            mods.append(nn.Dropout(ls.get("rate", 0.0)))
        else:
            raise ValueError("unknown layer type %r" % kind)
    return nn.Sequential(*mods)


def read_idx(directory, names):
    """Reads the first IDX file of names found in directory, gzipped or not (by its magic)."""
    for name in names:
        path = os.path.join(directory, name)
        if os.path.exists(path):
            break
    else:
        raise FileNotFoundError("none of %s in %s" % (names, directory))
    raw = open(path, "rb").read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError("%s: not an IDX file of unsigned bytes" % path)
    ndim = raw[3]
    dims = struct.unpack(">%dI" % ndim, raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main():
    path, mnist_dir, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    k = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    tensors, meta = read_safetensors(path)
    spec = json.loads(meta["troupe.model"])
    model = build(spec)
    model.load_state_dict(tensors, strict=True)
    model.eval()

    images = read_idx(mnist_dir, ["t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"])[:n]
    labels = read_idx(mnist_dir, ["t10k-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"])[:n]
    mean = np.float32(float(meta.get("troupe.data.mean", "0")))
    std = np.float32(float(meta.get("troupe.data.std", "0")))
    x = images.astype(np.float32) / np.float32(255)
    if std != 0:
        x = (x - mean) / std
    x = x.reshape([len(images)] + list(spec["input"]))

    with torch.no_grad():
        logits = model(torch.from_numpy(np.ascontiguousarray(x)))
    preds = logits.argmax(dim=1).numpy()
    correct = int((preds == labels.astype(np.int64)).sum())
    print(json.dumps({
        "n": int(len(labels)),
        "correct": correct,
        "accuracy": correct / len(labels),
        "predictions": [int(p) for p in preds],
        "logits": logits[:k].tolist(),
        "torch": torch.__version__,
        "params": sum(p.numel() for p in model.parameters()),
    }))


if __name__ == "__main__":
    main()
