#!/usr/bin/env bash
# Side by side, alternately, in one run: the Rust TwoLayerNet and the NumPy one (as
# installed, and single-threaded), each for a few epochs, several rounds.
#   DL_DATA_DIR=../shared/data benches/mlp_vs_numpy.sh [rounds] [epochs]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
epochs=${2:-3}
data=${DL_DATA_DIR:?set DL_DATA_DIR to the folder holding mnist/}
cargo build --quiet -p scratch --example bench_twolayer
bin=target/debug/examples/bench_twolayer
python3 -c "import numpy; print('numpy', numpy.__version__)"
nproc
for r in $(seq "$rounds"); do
    echo "--- round $r"
    DL_DATA_DIR=$data $bin "$epochs"
    python3 benches/twolayer_numpy.py "$data/mnist" "$epochs" float32
    echo "(numpy single-threaded:)"
    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python3 benches/twolayer_numpy.py "$data/mnist" "$epochs" float32
done
