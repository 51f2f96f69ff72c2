"""Checks that a `scratch train` weights file loads in Python with safetensors.numpy.

    python3 tests/python/check_weights.py runs/scratch/mlp-sigmoid.safetensors
"""
import json
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file

path = sys.argv[1]
tensors = load_file(path)
with safe_open(path, framework="numpy") as f:
    meta = f.metadata()
arch = json.loads(meta["architecture"])
hidden = arch["layers"][0]["units"]
expected = {"W1": (784, hidden), "b1": (1, hidden), "W2": (hidden, 10), "b2": (1, 10)}
shapes = {k: v.shape for k, v in tensors.items()}
assert shapes == expected, f"{shapes} != {expected}"
assert all(v.dtype == np.float32 for v in tensors.values())
assert all(np.isfinite(v).all() for v in tensors.values())
print(f"{path}: {sorted(shapes.items())}, architecture {arch['layers']}, epochs {meta['epochs']}: OK")
