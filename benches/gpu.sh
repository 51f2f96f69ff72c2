#!/usr/bin/env bash
# The three Keras exercises for a fixed amount of work on flex (CPU) and on wgpu (the GPU,
# or lavapipe's software Vulkan where there is none), side by side: images per second of
# the second epoch (the first compiles wgpu's shaders and warms the caches) and the loss
# after it, read from each run's history. One command measures the day a GPU is present:
#
#   DL_DATA_DIR=../shared/data benches/gpu.sh            # markdown table on stdout
#   BACKENDS="wgpu" SCALE=10 benches/gpu.sh               # only wgpu, ten times the work
#
# The work per workload (SCALE multiplies it):
#   B1 course CNN (configs/mnist-cnn.toml), 2 epochs of 2,000 training + 1,000 test images;
#   B2 face recipe (configs/face.toml, 218x178 RGB), 2 epochs of 10 steps + 3 validation
#      steps of 32 images from $DL_DATA_DIR/faces;
#   B3 DCGAN (configs/dcgan.toml), 2 epochs of 1,280 MNIST images (10 iterations of 128).
# The same seed gives both backends the same batches but not the same initial weights
# (each backend draws its own from the seed): their losses are close, not equal.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${DL_DATA_DIR:?set DL_DATA_DIR to the folder holding mnist/ and faces/}
scale=${SCALE:-1}
backends=${BACKENDS:-flex wgpu}
cargo build --workspace --bins >&2
bin=target/debug/keraslike
runs=$(mktemp -d)
trap 'rm -rf "$runs"' EXIT

# Field `col` (1-based) of the second epoch's row of a history CSV.
second_epoch() { awk -F, -v col="$2" 'NR == 3 { print $col }' "$1"; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { if (s > 0) printf "%.0f", n / s; else print "n/a" }'; }

echo "| workload | backend | images/s (epoch 2) | loss after epoch 2 |"
echo "| --- | --- | --- | --- |"
for backend in $backends; do
    train=$((2000 * scale)); test=$((1000 * scale))
    out=$runs/b1-$backend
    if "$bin" mnist --backend "$backend" --epochs 2 --train-limit "$train" --test-limit "$test" \
        --seed 1 --out "$out" >"$out.log" 2>&1; then
        seconds=$(second_epoch "$out/history.csv" 6)
        echo "| B1 course CNN | $backend | $(rate $((train + test)) "$seconds") | $(second_epoch "$out/history.csv" 2) |"
    else
        echo "| B1 course CNN | $backend | failed: $(tail -n 1 "$out.log") | |"
    fi

    steps=$((10 * scale)); val=$((3 * scale))
    out=$runs/b2-$backend
    if "$bin" face --data "$data/faces" --backend "$backend" --epochs 2 --steps-per-epoch "$steps" \
        --validation-steps "$val" --seed 1 --out "$out" >"$out.log" 2>&1; then
        seconds=$(second_epoch "$out/history.csv" 6)
        echo "| B2 face 218x178 RGB | $backend | $(rate $(((steps + val) * 32)) "$seconds") | $(second_epoch "$out/history.csv" 2) |"
    else
        echo "| B2 face 218x178 RGB | $backend | failed: $(tail -n 1 "$out.log") | |"
    fi

    images=$((1280 * scale))
    out=$runs/b3-$backend
    if "$bin" dcgan --backend "$backend" --epochs 2 --train-limit "$images" --seed 1 \
        --out "$out" >"$out.log" 2>&1; then
        seconds=$(second_epoch "$out/losses.csv" 6)
        # An iteration shows D B/2 real images and G B generated ones; counted here: the
        # real training images per second.
        echo "| B3 DCGAN (d_loss) | $backend | $(rate "$images" "$seconds") | $(second_epoch "$out/losses.csv" 2) |"
    else
        echo "| B3 DCGAN | $backend | failed: $(tail -n 1 "$out.log") | |"
    fi
done
