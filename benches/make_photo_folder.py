#!/usr/bin/env python3
"""Makes a two-class folder of colour JPEG "photos" larger than the course's 218x178, for
timing `keraslike face` against Keras's flow_from_directory on decoding and resizing work
that real photos cost (benches/face_speed.sh).

The pictures are CIFAR-10 JPEGs (two classes of the shared archive) upscaled to a seeded
random size between 400x330 and 960x1100 with bicubic filtering, plus a little Gaussian
noise so that the JPEG's entropy-coded data is as dense as a camera's (a smooth upscale
compresses far better than a photo and would decode unrealistically fast), saved at
quality 90.

    python3 benches/make_photo_folder.py ARCHIVE_OR_DIR OUT [--train 4000 --test 1000]

ARCHIVE_OR_DIR: cifar10-jpg.tar.gz or its unpacked folder (train/<class>/*.jpg,
test/<class>/*.jpg). OUT receives train/{cat,dog}/ and test/{cat,dog}/.
"""

import argparse
import io
import os
import random
import sys
import tarfile

import numpy as np
from PIL import Image

CLASSES = ("cat", "dog")


def sources(path, split, cls, limit):
    """Yields (name, bytes) of up to `limit` JPEGs of one class, in name order."""
    if os.path.isdir(path):
        folder = os.path.join(path, split, cls)
        for name in sorted(os.listdir(folder))[:limit]:
            with open(os.path.join(folder, name), "rb") as f:
                yield name, f.read()
        return
    with tarfile.open(path) as tar:
        members = sorted(
            (m for m in tar.getmembers() if m.isfile() and f"{split}/{cls}/" in m.name),
            key=lambda m: m.name,
        )[:limit]
        for m in members:
            yield os.path.basename(m.name), tar.extractfile(m).read()


def photo(data, rng):
    image = Image.open(io.BytesIO(data)).convert("RGB")
    w = rng.randint(400, 960)
    h = int(w * rng.uniform(0.82, 1.15))
    big = np.asarray(image.resize((w, h), Image.BICUBIC), dtype=np.float32)
    noise = np.random.default_rng(rng.randrange(2**32)).normal(0.0, 6.0, big.shape)
    return Image.fromarray(np.clip(big + noise, 0, 255).astype(np.uint8))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source")
    p.add_argument("out")
    p.add_argument("--train", type=int, default=4000, help="training images in all (half per class)")
    p.add_argument("--test", type=int, default=1000, help="test images in all (half per class)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    rng = random.Random(args.seed)
    for split, total in (("train", args.train), ("test", args.test)):
        for cls in CLASSES:
            folder = os.path.join(args.out, split, cls)
            os.makedirs(folder, exist_ok=True)
            count = 0
            for name, data in sources(args.source, split, cls, total // len(CLASSES)):
                photo(data, rng).save(os.path.join(folder, name), quality=90)
                count += 1
            if count == 0:
                sys.exit(f"{args.source}: no {split}/{cls}/*.jpg")
            print(f"{folder}: {count} photos", flush=True)


if __name__ == "__main__":
    main()
