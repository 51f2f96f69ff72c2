"""The lecture's TwoLayerNet in NumPy (784 -> 50 ReLU -> 10, SGD lr 0.1, batch 100,
weights 0.01*randn): the reference for crates/scratch/examples/bench_twolayer.rs.

    python3 benches/twolayer_numpy.py ../shared/data/mnist [epochs] [float32|float64]

Layers as in the course's layers.py (Affine, Relu, SoftmaxWithLoss); one epoch is
60000/100 = 600 iterations over a fresh permutation. The course's own code runs in
float64 (np.random.randn weights); float32 is the faster, like-for-like choice.
"""
import gzip
import sys
import time

import numpy as np


def load(path, name, offset, shape):
    with gzip.open(f"{path}/{name}", "rb") as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset).reshape(shape)


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/mnist"
    epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    dtype = np.dtype(sys.argv[3] if len(sys.argv) > 3 else "float32")
    x_train = load(path, "train-images-idx3-ubyte.gz", 16, (-1, 784)).astype(dtype) / dtype.type(255)
    t_train = load(path, "train-labels-idx1-ubyte.gz", 8, (-1,)).astype(np.int64)
    x_test = load(path, "t10k-images-idx3-ubyte.gz", 16, (-1, 784)).astype(dtype) / dtype.type(255)
    t_test = load(path, "t10k-labels-idx1-ubyte.gz", 8, (-1,)).astype(np.int64)

    rng = np.random.default_rng(1)
    W1 = (0.01 * rng.standard_normal((784, 50))).astype(dtype)
    b1 = np.zeros(50, dtype)
    W2 = (0.01 * rng.standard_normal((50, 10))).astype(dtype)
    b2 = np.zeros(10, dtype)
    lr, batch = dtype.type(0.1), 100
    n = x_train.shape[0]

    for epoch in range(epochs):
        order = rng.permutation(n)
        start = time.perf_counter()
        for it in range(n // batch):
            idx = order[it * batch:(it + 1) * batch]
            x, t = x_train[idx], t_train[idx]
            # forward
            a1 = x @ W1 + b1
            mask = a1 <= 0
            z1 = np.where(mask, 0, a1)
            a2 = z1 @ W2 + b2
            a2 = a2 - a2.max(axis=1, keepdims=True)
            y = np.exp(a2)
            y /= y.sum(axis=1, keepdims=True)
            # backward (softmax-with-loss, affine, relu, affine; no dx for the input)
            dy = y.copy()
            dy[np.arange(batch), t] -= 1
            dy /= batch
            dW2 = z1.T @ dy
            db2 = dy.sum(axis=0)
            dz1 = dy @ W2.T
            dz1[mask] = 0
            dW1 = x.T @ dz1
            db1 = dz1.sum(axis=0)
            W1 -= lr * dW1
            b1 -= lr * db1
            W2 -= lr * dW2
            b2 -= lr * db2
        secs = time.perf_counter() - start
        print(f"numpy  epoch {epoch + 1}: {secs:.3f} s, {n / secs:.0f} images/s")
    pred = np.argmax(np.maximum(x_test @ W1 + b1, 0) @ W2 + b2, axis=1)
    print(f"numpy  test accuracy after {epochs} epochs: {np.mean(pred == t_test):.4f}")


if __name__ == "__main__":
    main()
