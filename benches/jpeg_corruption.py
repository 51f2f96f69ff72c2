"""The strict JPEG checks (crates/dataset/src/jpeg_scan.rs, image_file.rs) against libjpeg
on a generated catalogue: valid encodings PIL writes (sizes, grey/RGB/CMYK, qualities,
chroma subsampling, progressive, optimised tables, restart markers, EXIF, comments) and
libjpeg-turbo's cjpeg/jpegtran write, then four kinds of damage to 80 of them.

Run by benches/jpeg_corruption.sh; needs Pillow and numpy, and djpeg/cjpeg/jpegtran
(Debian: libjpeg-turbo-progs). Prints a markdown table.
"""
import argparse
import glob
import os
import random
import subprocess
import sys

import numpy as np
from PIL import Image, ImageFile

ImageFile.MAXBLOCK = 2**26  # large progressive files need a bigger encoder buffer


def photo(rng, w, h):
    y, x = np.mgrid[0:h, 0:w]
    r = 128 + 100 * np.sin(x / 17.0) + rng.normal(0, 12, (h, w))
    g = 128 + 90 * np.cos(y / 11.0 + x / 29.0) + rng.normal(0, 12, (h, w))
    b = ((x * y) % 256).astype(float)
    return Image.fromarray(np.stack([r, g, b], -1).clip(0, 255).astype(np.uint8))


def valid_catalogue(out):
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(0)
    n = 0
    for w, h in [(1, 1), (7, 5), (17, 33), (64, 64), (333, 251), (1024, 768)]:
        im = photo(rng, w, h)
        for mode in ["RGB", "L", "CMYK"]:
            for q in [5, 50, 95, 100]:
                for sub in [0, 1, 2] if mode == "RGB" else [-1]:
                    for prog in [False, True]:
                        kw = dict(quality=q, progressive=prog, optimize=n % 2 == 0)
                        if sub >= 0:
                            kw["subsampling"] = sub
                        if n % 3 == 0:
                            kw["exif"] = Image.Exif().tobytes()
                        if n % 5 == 0:
                            kw["comment"] = b"catalogue"
                        if n % 7 == 0 and mode == "RGB":
                            kw["restart_marker_blocks"] = 4
                        name = f"pil{n:04d}_{w}x{h}_{mode}_q{q}_s{sub}_p{int(prog)}.jpg"
                        im.convert(mode).save(os.path.join(out, name), **kw)
                        n += 1
    ppm = os.path.join(out, "source.ppm")
    photo(rng, 333, 251).save(ppm)
    tools = {
        "rst1": ["cjpeg", "-restart", "1"],
        "rst3b_prog": ["cjpeg", "-restart", "3B", "-progressive"],
        "411": ["cjpeg", "-sample", "4x1"],
        "440": ["cjpeg", "-sample", "1x2"],
        "smooth": ["cjpeg", "-smooth", "30"],
        "grey_float": ["cjpeg", "-grayscale", "-dct", "float"],
        "rgb_jpeg": ["cjpeg", "-rgb"],
    }
    for name, cmd in tools.items():
        with open(os.path.join(out, f"cjpeg_{name}.jpg"), "wb") as f:
            subprocess.run(cmd + [ppm], stdout=f, check=True)
    base = os.path.join(out, "cjpeg_smooth.jpg")
    for name, cmd in {
        "optimize": ["-optimize"],
        "progressive": ["-progressive"],
        "rot90": ["-rotate", "90"],
    }.items():
        with open(os.path.join(out, f"jpegtran_{name}.jpg"), "wb") as f:
            subprocess.run(["jpegtran", "-copy", "all"] + cmd + [base], stdout=f, check=True)
    os.remove(ppm)


def scan_start(b):
    i = b.index(b"\xff\xda")
    return i + 2 + int.from_bytes(b[i + 2 : i + 4], "big")


def damaged_catalogue(valid_dir, out, faces):
    random.seed(7)
    sources = sorted(glob.glob(os.path.join(valid_dir, "pil*_333x251_*.jpg")))[:40]
    if faces:
        sources += sorted(glob.glob(os.path.join(faces, "test/smile/*.jpg")))[:40]
    for kind in ["noise", "bit_flip", "zeroed", "cut_end_kept"]:
        os.makedirs(os.path.join(out, kind), exist_ok=True)
    for k, path in enumerate(sources):
        b = bytearray(open(path, "rb").read())
        s, e = scan_start(b), len(b) - 2
        noise = bytearray(b)
        lo, hi = s + (e - s) // 4, s + 3 * (e - s) // 4
        noise[lo:hi] = bytes(random.randrange(256) for _ in range(hi - lo))
        flip = bytearray(b)
        at = random.randrange(s, e)
        flip[at] ^= 1 << random.randrange(8)
        zeroed = bytearray(b)
        at = random.randrange(s, max(s + 1, e - 64))
        zeroed[at : at + 64] = bytes(64)
        cut = b[: random.randrange(s, e)] + b"\xff\xd9"
        for kind, data in [("noise", noise), ("bit_flip", flip), ("zeroed", zeroed), ("cut_end_kept", cut)]:
            open(os.path.join(out, kind, f"{k:03d}.jpg"), "wb").write(data)


def ours(check_bin, folder):
    lines = subprocess.run([check_bin, folder], capture_output=True, text=True, check=True).stdout.splitlines()
    refused = {l.split(" ", 1)[1].split(": ", 1)[0] for l in lines if l.startswith("refused ")}
    different = sum(l.startswith("different ") for l in lines)
    print(f"<!-- {folder}: {lines[-1]} -->")
    return refused, different, len(lines) - 2


def libjpeg_complains(path):
    r = subprocess.run(["djpeg", path], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return r.returncode != 0 or bool(r.stderr.strip())


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--check-bin", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--faces", default="")
    p.add_argument("--cifar", default="")
    a = p.parse_args()
    valid = os.path.join(a.work, "valid")
    valid_catalogue(valid)
    damaged = os.path.join(a.work, "damaged")
    damaged_catalogue(valid, damaged, a.faces)
    print("| set | files | refused here | libjpeg (djpeg) warns or fails | refused by only one | accepted with pixels differing from `image` |")
    print("| --- | --- | --- | --- | --- | --- |")
    sets = [("valid: generated encodings", valid)]
    sets += [(f"valid: {name}", d) for name, d in [("shared faces", a.faces), ("shared CIFAR-10", a.cifar)] if d]
    for i, (name, d) in enumerate(sets):
        refused, different, n = ours(a.check_bin, d)
        # libjpeg on the generated ones only (one djpeg process per file).
        lib = sum(libjpeg_complains(f) for f in glob.glob(os.path.join(d, "*.jpg"))) if i == 0 else "(not run)"
        print(f"| {name} | {n} | {len(refused)} | {lib} | | {different} |")
    for kind in ["noise", "bit_flip", "zeroed", "cut_end_kept"]:
        d = os.path.join(damaged, kind)
        refused, different, n = ours(a.check_bin, d)
        files = sorted(glob.glob(os.path.join(d, "*.jpg")))
        lib = {f for f in files if libjpeg_complains(f)}
        only_us, only_lib = len(refused - lib), len(lib - refused)
        print(f"| damaged: {kind} | {n} | {len(refused)} | {len(lib)} | {only_us} here, {only_lib} libjpeg | {different} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
