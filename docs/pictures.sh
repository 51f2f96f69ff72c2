#!/usr/bin/env bash
# The README's pictures, from models trained here on MNIST: `keraslike visualize` on a
# digit drawn by this script, `scratch visualize` of the task-3 MLP, and `keraslike
# serve`'s page in headless Chromium after one stroke drawn with the mouse (the browser
# test of tests/keraslike_serve.rs, pointed at these models). Writes docs/images/.
#
#   DL_DATA_DIR=../shared/data docs/pictures.sh
#
# Needs the MNIST files under DL_DATA_DIR, python3 with Pillow, chromium and chromedriver
# (Debian: apt-get install chromium chromium-driver). About 5 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DL_DATA_DIR:?set DL_DATA_DIR to the folder holding mnist/}"
export DL_DATA_DIR
cargo build --workspace --all-targets
work=$(mktemp -d)
images=docs/images
mkdir -p "$images"

echo "training: the course CNN (1 epoch), the task-3 MLP (3 epochs), a DCGAN (1 epoch on 12,000 digits)"
target/debug/keraslike mnist --epochs 1 --out "$work/cnn" --offline >/dev/null
target/debug/scratch train --epochs 3 --out "$work/mlp.safetensors" --offline >/dev/null
target/debug/keraslike dcgan --epochs 1 --train-limit 12000 --out "$work/gan" --offline >/dev/null

# A 7 drawn as a user would draw it: dark strokes on white.
python3 - "$work/seven.png" <<'PY'
import sys
from PIL import Image, ImageDraw
image = Image.new("L", (280, 280), 255)
ImageDraw.Draw(image).line([(70, 60), (210, 60), (120, 230)], fill=0, width=20, joint="curve")
image.save(sys.argv[1])
PY
target/debug/keraslike visualize --model "$work/cnn/model.bpk" --image "$work/seven.png" --out "$work/vis"
target/debug/scratch visualize --weights "$work/mlp.safetensors" --out "$work"

python3 - "$work" "$images" <<'PY'
import sys
from PIL import Image
work, images = sys.argv[1:]
# visualize: the input as the CNN saw it, Grad-CAM, saliency, and the first conv's maps.
row = [Image.open(f"{work}/vis/{name}").convert("RGB").resize((168, 168), Image.NEAREST)
       for name in ("input.png", "gradcam.png", "saliency.png")]
maps = Image.open(f"{work}/vis/feature_maps/1_conv2d.png").convert("RGB")
maps = maps.resize((168 * maps.width // maps.height, 168), Image.NEAREST)
sheet = Image.new("RGB", (sum(i.width for i in row) + maps.width + 40, 168), "white")
x = 0
for picture in row + [maps]:
    sheet.paste(picture, (x, 0))
    x += picture.width + 10
sheet.save(f"{images}/visualize.png", optimize=True)
first = Image.open(f"{work}/mlp_first_layer.png").convert("RGB")
first.crop((0, 0, first.width, first.height // 4)).save(f"{images}/scratch-first-layer.png", optimize=True)
PY

DL_SERVE_MODELS="$work/cnn/model.bpk,$work/mlp.safetensors" DL_SERVE_GENERATOR="$work/gan/generator.bpk" \
    DL_ARTIFACTS="$work" DL_REQUIRE_BROWSER=1 \
    cargo test -q -p e2e --test keraslike_serve -- the_page_draws_a_digit_in_a_real_browser
python3 - "$work/serve-page.png" "$images/serve.png" <<'PY'
import sys
from PIL import Image
page = Image.open(sys.argv[1]).convert("RGB")
page.resize((page.width * 2 // 3, page.height * 2 // 3), Image.LANCZOS).save(sys.argv[2], optimize=True)
PY
ls -l "$images"
