#!/usr/bin/env bash
# Every Keras-parity comparison recorded in docs/BENCHMARKS.md ("Keras parity"), one after
# another, each table appended to OUT (default parity.md). Needs TensorFlow/Keras in
# $PYTHON (outside the project's build) and the data sets under DL_DATA_DIR:
#
#   python3 -m venv ~/kerasenv && ~/kerasenv/bin/pip install tensorflow-cpu pillow
#   PYTHON=~/kerasenv/bin/python DL_DATA_DIR=../shared/data benches/keras_parity.sh
#
# CIFAR-10 is read from an image folder: CIFAR10_DIR, else the shared JPEG archive
# ($DL_DATA_DIR/cifar10/cifar10-jpg.tar.gz) unpacked into a temporary folder.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
data=${DL_DATA_DIR:?set DL_DATA_DIR to the folder holding mnist/, faces/ and cifar10/}
out=${1:-parity.md}
cargo build --workspace --bins
parity() { "$py" benches/keras_parity.py --data-dir "$data" --markdown "$out" "$@"; }

# The course's face recipe at its 218x178 RGB (the shared 64x64 grey crops upscaled by
# flow_from_directory), then the same faces at their own size.
parity --config configs/face.toml --data "folder:$data/faces" --seeds 1 2 3
parity --config configs/faces-64.toml --data "folder:$data/faces" --epochs 2 --seeds 1 2 3
# The same network with Keras's binary head (class_mode="binary", binary_crossentropy).
parity --config configs/faces-64-binary.toml --data "folder:$data/faces" --epochs 2 --seeds 1 2 3 4 5 6
# The course CNN on MNIST (Adadelta lr 1), two of its ten epochs.
parity --config configs/mnist-cnn.toml --data mnist --epochs 2 --seeds 1 2 3
# A CIFAR-10 CNN from the JPEG folders.
cifar=${CIFAR10_DIR:-}
if [ -z "$cifar" ]; then
    cifar=$(mktemp -d)
    tar xzf "$data/cifar10/cifar10-jpg.tar.gz" -C "$cifar"
fi
parity --config configs/cifar10-cnn.toml --data "folder:$cifar" --seeds 1 2 3
# B1-(2)'s best model (BatchNorm, dropout, augmentation, decay), its first two epochs.
parity --config configs/mnist-best.toml --data mnist --epochs 2 --seeds 1
