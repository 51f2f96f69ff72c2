#!/usr/bin/env bash
# B2's speed: the course's face recipe (configs/face.toml: 218x178 RGB, 10 epochs of 100
# steps of 32, 30 validation steps) on a folder of JPEG photos larger than that, keraslike
# and Keras alternately, ROUNDS rounds (default 2). Prints each run's epoch seconds, the
# fit time (the sum of its epochs), CPU use and peak resident memory.
#
#   PYTHON=~/kerasenv/bin/python DL_DATA_DIR=../shared/data benches/face_speed.sh [PHOTOS] [ROUNDS]
#
# PHOTOS (default /tmp/photos) is made by benches/make_photo_folder.py from the shared
# CIFAR-10 archive when it does not exist. EPOCHS=N shortens the runs.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
photos=${1:-/tmp/photos}
rounds=${2:-2}
epochs=${EPOCHS:-10}
if [ ! -d "$photos/train" ]; then
    data=${DL_DATA_DIR:?set DL_DATA_DIR to the folder holding cifar10/, or pass a PHOTOS folder}
    "$py" benches/make_photo_folder.py "$data/cifar10/cifar10-jpg.tar.gz" "$photos"
fi
cargo build -p keraslike --bin keraslike
work=$(mktemp -d)

measure() { # name, command...: runs it under /usr/bin/time, prints the resources line
    local name=$1
    shift
    /usr/bin/time -f "%e %P %M" -o "$work/time" "$@" >"$work/$name.log" 2>&1 || {
        tail -20 "$work/$name.log"
        exit 1
    }
    read -r wall cpu rss <"$work/time"
    printf '%s wall %s s, CPU %s, peak RSS %d MiB\n' "$name" "$wall" "$cpu" $((rss / 1024))
}

for round in $(seq 1 "$rounds"); do
    out="$work/keraslike-$round"
    measure "keraslike-$round" target/debug/keraslike face --data "$photos" \
        --epochs "$epochs" --out "$out"
    # history.csv: epoch,loss,acc,val_loss,val_acc,seconds
    awk -F, 'NR > 1 { s = s sprintf("%.1f ", $6); t += $6 } END { printf "  epochs: %s\n  fit %.1f s\n", s, t }' \
        "$out/history.csv"
    measure "keras-$round" "$py" benches/keras_parity.py --config configs/face.toml \
        --data "folder:$photos" --epochs "$epochs" --seeds 1 --only Keras --json "$work/keras-$round.json"
    "$py" - "$work/keras-$round.json" <<'EOF'
import json, sys
history = json.load(open(sys.argv[1]))["results"]["Keras"][0]["history"]
print("  epochs:", " ".join(f"{h['seconds']:.1f}" for h in history), "(steps", " ".join(str(h["steps"]) for h in history) + ")")
print(f"  fit {sum(h['seconds'] for h in history):.1f} s")
EOF
done
