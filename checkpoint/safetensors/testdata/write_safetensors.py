"""Writes a safetensors file with json and numpy alone, laid out as the reference writer
does (tensors sorted by name, header padded with spaces to 8 bytes), and next to it a JSON
file with what a reader must find: per tensor its shape and the bits of its values."""
import json
import struct
import sys

import numpy as np


def main(path, expected_path):
    rng = np.random.default_rng(7)
    specials = np.array([0x7FC00001, 0xFFA00000, 0x7F800000, 0xFF800000, 0x80000000,
                         0x00000001, 0x3F800000], dtype="<u4").view("<f4")
    tensors = {
        "layer.0.weight": rng.standard_normal((5, 3)).astype("<f4"),
        "layer.0.bias": rng.standard_normal(5).astype("<f4"),
        "conv.weight": rng.standard_normal((4, 2, 3, 3)).astype("<f4"),
        "scalar": np.array(3.5, dtype="<f4"),
        "empty": np.zeros((0, 7), dtype="<f4"),
        "specials": specials,
    }
    header = {"__metadata__": {"format": "pt", "written_by": "numpy"}}
    chunks = []
    at = 0
    for name in sorted(tensors):
        b = tensors[name].tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [at, at + len(b)]}
        chunks.append(b)
        at += len(b)
    hb = json.dumps(header).encode("utf-8")
    hb += b" " * (-len(hb) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for c in chunks:
            f.write(c)
    expected = {
        "metadata": header["__metadata__"],
        "tensors": [{"name": name, "shape": list(tensors[name].shape),
                     "bits": [int(x) for x in tensors[name].reshape(-1).view("<u4")]}
                    for name in sorted(tensors)],
    }
    with open(expected_path, "w") as f:
        json.dump(expected, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
