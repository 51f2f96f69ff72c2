"""Checks that a keraslike model's `model.safetensors` rebuilds, outside this project, into
the network that made `keraslike predict`'s predictions: the same classes and, within
float tolerance, the same probabilities on the same image files.

    keraslike predict --model run/model.bpk IMAGES_DIR --csv predictions.csv
    python3 tests/python/check_export.py run/model.safetensors predictions.csv [--limit 64]

The network is PyTorch's `nn.Sequential` of the modules the file's metadata lists, loaded
with `load_state_dict(strict=True)` (so every name and shape must be PyTorch's), when torch
is installed; otherwise the same modules are run in NumPy from the same tensors. Images
are read as Keras's load_img does (PIL: convert to L or RGB, resize with NEAREST to the
input size), times the model's rescale (1/255: [0, 1]). Only models that read images that way (image-folder
models, not MNIST's digit centring) can be checked like this. Use lossless or grey images:
PIL (libjpeg-turbo) and keraslike (zune-jpeg) upsample a colour JPEG's chroma slightly
differently, which moves probabilities by ~1e-4 on the course's face model.
"""

import argparse
import csv
import json
import sys

import numpy as np
from PIL import Image
from safetensors import safe_open
from safetensors.numpy import load_file


def read_image(path, input_shape, rescale):
    c, h, w = input_shape
    image = Image.open(path).convert("L" if c == 1 else "RGB")
    if image.size != (w, h):
        image = image.resize((w, h), Image.NEAREST)
    pixels = np.asarray(image, dtype=np.float32) * np.float32(rescale)
    return pixels[None] if c == 1 else pixels.transpose(2, 0, 1)


def torch_forward(arch, path, x):
    import torch

    model = torch_model(arch, path)
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def torch_model(arch, path):
    """The `nn.Sequential` the file's `architecture` lists, its weights loaded strictly,
    in eval mode."""
    import torch.nn.functional as F
    from safetensors.torch import load_file as load_torch
    from torch import nn

    modules = []
    for m in arch:
        kind = m["type"]
        if kind == "Conv2d":
            conv = nn.Conv2d(m["in_channels"], m["out_channels"], m["kernel_size"], stride=m["stride"], bias=m["bias"])
            pad = tuple(m["pad"])  # (left, right, top, bottom): F.pad's order
            if any(pad):
                conv.register_forward_pre_hook(lambda _, args, pad=pad: (F.pad(args[0], pad),))
            modules.append(conv)
        elif kind == "MaxPool2d":
            modules.append(nn.MaxPool2d(m["kernel_size"], m["stride"]))
        elif kind == "Flatten":
            modules.append(nn.Flatten())
        elif kind == "Linear":
            modules.append(nn.Linear(m["in_features"], m["out_features"], bias=m["bias"]))
        elif kind == "Dropout":
            modules.append(nn.Dropout(m["p"]))
        elif kind in ("BatchNorm2d", "BatchNorm1d"):
            modules.append(getattr(nn, kind)(m["num_features"], eps=m["eps"]))
        elif kind == "LeakyReLU":
            modules.append(nn.LeakyReLU(m["negative_slope"]))
        elif kind == "Softmax":
            modules.append(nn.Softmax(dim=m["dim"]))
        else:
            modules.append(getattr(nn, kind)())
    model = nn.Sequential(*modules)
    model.load_state_dict(load_torch(path), strict=True)
    return model.eval()


def numpy_forward(arch, tensors, x):
    for i, m in enumerate(arch):
        kind = m["type"]
        t = lambda name: tensors[f"{i}.{name}"]
        if kind == "Conv2d":
            left, right, top, bottom = m["pad"]
            x = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
            (kh, kw), (sh, sw) = m["kernel_size"], m["stride"]
            oh, ow = (x.shape[2] - kh) // sh + 1, (x.shape[3] - kw) // sw + 1
            weight = t("weight")
            out = np.zeros((x.shape[0], weight.shape[0], oh, ow), np.float64)
            for dy in range(kh):
                for dx in range(kw):
                    patch = x[:, :, dy : dy + sh * oh : sh, dx : dx + sw * ow : sw]
                    out += np.einsum("nchw,oc->nohw", patch, weight[:, :, dy, dx])
            x = out + (t("bias")[None, :, None, None] if m["bias"] else 0)
        elif kind == "MaxPool2d":
            (kh, kw), (sh, sw) = m["kernel_size"], m["stride"]
            oh, ow = (x.shape[2] - kh) // sh + 1, (x.shape[3] - kw) // sw + 1
            x = np.max(
                [x[:, :, dy : dy + sh * oh : sh, dx : dx + sw * ow : sw] for dy in range(kh) for dx in range(kw)],
                axis=0,
            )
        elif kind == "Flatten":
            x = x.reshape(x.shape[0], -1)
        elif kind == "Linear":
            x = x @ t("weight").T + (t("bias") if m["bias"] else 0)
        elif kind in ("BatchNorm2d", "BatchNorm1d"):
            shape = (1, -1, 1, 1) if kind == "BatchNorm2d" else (1, -1)
            scale = t("weight") / np.sqrt(t("running_var") + m["eps"])
            x = (x - t("running_mean").reshape(shape)) * scale.reshape(shape) + t("bias").reshape(shape)
        elif kind == "ReLU":
            x = np.maximum(x, 0)
        elif kind == "LeakyReLU":
            x = np.where(x > 0, x, x * m["negative_slope"])
        elif kind == "Sigmoid":
            x = 1 / (1 + np.exp(-x))
        elif kind == "Tanh":
            x = np.tanh(x)
        elif kind == "Softmax":
            x = softmax(x)
        elif kind != "Dropout":
            sys.exit(f"module {i}: unknown type {kind}")
    return x


def softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("weights")
    p.add_argument("predictions")
    p.add_argument("--limit", type=int, default=64, help="check the first N predictions")
    p.add_argument("--tolerance", type=float, default=1e-4)
    args = p.parse_args()

    with safe_open(args.weights, framework="numpy") as f:
        meta = f.metadata()
    arch = json.loads(meta["architecture"])
    input_shape = json.loads(meta["input"])
    classes = json.loads(meta["classes"])
    rescale = json.loads(meta.get("rescale", str(1 / 255)))
    with open(args.predictions, newline="") as f:
        rows = list(csv.DictReader(f))[: args.limit]
    if not rows:
        sys.exit(f"{args.predictions}: no predictions")
    x = np.stack([read_image(r["file"], input_shape, rescale) for r in rows]).astype(np.float32)
    try:
        import torch  # noqa: F401

        framework = "PyTorch"
        probs = torch_forward(arch, args.weights, x)
    except ImportError:
        framework = "NumPy"
        probs = numpy_forward(arch, load_file(args.weights), x.astype(np.float64))
    if arch[-1]["type"] == "Sigmoid" and probs.shape[1] == 1 and len(classes) == 2:
        probs = np.concatenate([1 - probs, probs], axis=1)  # a binary head: P(class 1)
    elif arch[-1]["type"] != "Softmax":
        probs = softmax(probs)
    theirs = np.array([[float(r[c]) for c in classes] for r in rows])
    worst = float(np.abs(probs - theirs).max())
    same_class = all(classes[int(np.argmax(p))] == r["class"] for p, r in zip(probs, rows))
    verdict = "OK" if worst <= args.tolerance and same_class else "FAIL"
    print(
        f"{args.weights}: {len(rows)} images through {framework} ({len(arch)} modules): "
        f"largest probability difference {worst:.2e}, same classes: {same_class}: {verdict}"
    )
    sys.exit(0 if verdict == "OK" else 1)


if __name__ == "__main__":
    main()
