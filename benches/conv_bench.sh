#!/usr/bin/env bash
# Side by side, alternately, in one run: the course's SimpleConvNet trained from scratch
# in Rust, in NumPy with the course's im2col (as installed and single-threaded), and in
# PyTorch CPU (skipped if torch is not installed).
#   DL_DATA_DIR=../shared/data benches/conv_bench.sh [rounds] [iterations]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
iterations=${2:-100}
data=${DL_DATA_DIR:?set DL_DATA_DIR to the folder holding mnist/}
python=${PYTHON:-python3}
cargo build --quiet --release -p scratch --example bench_conv
bin=${CARGO_TARGET_DIR:-target}/release/examples/bench_conv
nproc
for r in $(seq "$rounds"); do
    echo "--- round $r"
    DL_DATA_DIR=$data $bin "$iterations"
    $python benches/conv_numpy.py "$data/mnist" "$((iterations / 4))"
    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 $python benches/conv_numpy.py "$data/mnist" "$((iterations / 4))" | sed 's/^/(1 thread) /'
    if $python -c "import torch" 2>/dev/null; then
        $python benches/conv_torch.py "$data/mnist" "$iterations"
    fi
done
