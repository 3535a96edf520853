"""Reads a safetensors file with json and numpy alone, independently of the Go reader, and
prints what it holds as one JSON object: header facts, metadata, and per tensor (in header
order) its shape, data offsets and the bits of its float32 values."""
import json
import struct
import sys

import numpy as np


def no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate key in the header: %r" % keys)
    return dict(pairs)


def main(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header_bytes = raw[8:8 + n]
    header = json.loads(header_bytes.decode("utf-8"), object_pairs_hook=no_duplicates)
    data = raw[8 + n:]
    meta = header.pop("__metadata__", None)
    tensors = []
    spans = []
    for name, info in header.items():
        if info["dtype"] != "F32":
            raise ValueError("%s: dtype %s" % (name, info["dtype"]))
        begin, end = info["data_offsets"]
        shape = tuple(info["shape"])
        count = int(np.prod(shape, dtype=np.int64))
        if count * 4 != end - begin:
            raise ValueError("%s: shape %s does not fill [%d, %d]" % (name, shape, begin, end))
        if count == 0:
            arr = np.zeros(shape, dtype="<f4")
        else:
            arr = np.frombuffer(data, dtype="<f4", count=count, offset=begin).reshape(shape)
        spans.append((begin, end))
        tensors.append({
            "name": name,
            "shape": list(arr.shape),
            "data_offsets": [begin, end],
            "bits": [int(b) for b in arr.reshape(-1).view("<u4")],
        })
    spans.sort()
    at = 0
    for begin, end in spans:
        if begin != at:
            raise ValueError("data does not tile: [%d, %d] after %d" % (begin, end, at))
        at = end
    out = {
        "header_len": n,
        "json_then_spaces": header_bytes.rstrip(b" ").endswith(b"}"),
        "data_len": len(data),
        "tiles": at == len(data),
        "metadata": meta,
        "tensors": tensors,
    }
    try:
        import safetensors.numpy as stnp
    except ImportError:
        out["safetensors_package"] = None
    else:
        loaded = stnp.load_file(path)
        for t in tensors:
            bits = [int(b) for b in loaded[t["name"]].reshape(-1).view("<u4")]
            if bits != t["bits"]:
                raise ValueError("the safetensors package reads %s differently" % t["name"])
        import safetensors
        out["safetensors_package"] = safetensors.__version__
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
