#!/usr/bin/env bash
# The strict JPEG checks against libjpeg on a generated catalogue of valid and damaged
# files (benches/jpeg_corruption.py), plus the shared faces and CIFAR-10 JPEGs when
# DL_DATA_DIR holds them. Recorded in docs/BENCHMARKS.md ("Corrupt JPEGs").
#
#   apt-get install libjpeg-turbo-progs; python3 -m venv ~/kerasenv && ~/kerasenv/bin/pip install pillow numpy
#   PYTHON=~/kerasenv/bin/python DL_DATA_DIR=../shared/data benches/jpeg_corruption.sh
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
cargo build -p dataset --example check_jpegs
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
faces="" cifar=""
if [ -n "${DL_DATA_DIR:-}" ] && [ -d "$DL_DATA_DIR/faces" ]; then faces=$DL_DATA_DIR/faces; fi
if [ -n "${DL_DATA_DIR:-}" ] && [ -f "$DL_DATA_DIR/cifar10/cifar10-jpg.tar.gz" ]; then
    mkdir "$work/cifar" && tar xzf "$DL_DATA_DIR/cifar10/cifar10-jpg.tar.gz" -C "$work/cifar"
    cifar=$work/cifar
fi
"$py" benches/jpeg_corruption.py --check-bin target/debug/examples/check_jpegs \
    --work "$work/catalogue" --faces "$faces" --cifar "$cifar"
