"""The course's SimpleConvNet in NumPy with the course's im2col convolution: the
reference for crates/scratch/examples/bench_conv.rs.

    python3 benches/conv_numpy.py ../shared/data/mnist [iterations]

conv 30 5x5 (im2col + matrix product) -> ReLU -> 2x2 max pooling (im2col as well) ->
affine 100 -> ReLU -> affine 10 -> softmax cross-entropy; SGD lr 0.1, batch 100,
float32, He initialisation. Layers follow the course's layers.py (Convolution, Pooling,
col2im with the same loops over filter positions).
"""
import gzip
import sys
import time

import numpy as np


def load(path, name, offset, shape):
    with gzip.open(f"{path}/{name}", "rb") as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset).reshape(shape)


def im2col(x, fh, fw, stride=1, pad=0):
    n, c, h, w = x.shape
    oh, ow = (h + 2 * pad - fh) // stride + 1, (w + 2 * pad - fw) // stride + 1
    img = np.pad(x, [(0, 0), (0, 0), (pad, pad), (pad, pad)], "constant")
    col = np.zeros((n, c, fh, fw, oh, ow), x.dtype)
    for y in range(fh):
        for xx in range(fw):
            col[:, :, y, xx, :, :] = img[:, :, y:y + stride * oh:stride, xx:xx + stride * ow:stride]
    return col.transpose(0, 4, 5, 1, 2, 3).reshape(n * oh * ow, -1)


def col2im(col, shape, fh, fw, stride=1, pad=0):
    n, c, h, w = shape
    oh, ow = (h + 2 * pad - fh) // stride + 1, (w + 2 * pad - fw) // stride + 1
    col = col.reshape(n, oh, ow, c, fh, fw).transpose(0, 3, 4, 5, 1, 2)
    img = np.zeros((n, c, h + 2 * pad + stride - 1, w + 2 * pad + stride - 1), col.dtype)
    for y in range(fh):
        for xx in range(fw):
            img[:, :, y:y + stride * oh:stride, xx:xx + stride * ow:stride] += col[:, :, y, xx, :, :]
    return img[:, :, pad:h + pad, pad:w + pad]


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/mnist"
    iterations = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    f32 = np.float32
    x_train = load(path, "train-images-idx3-ubyte.gz", 16, (-1, 1, 28, 28)).astype(f32) / f32(255)
    t_train = load(path, "train-labels-idx1-ubyte.gz", 8, (-1,)).astype(np.int64)
    rng = np.random.default_rng(1)
    W1 = (rng.standard_normal((30, 1, 5, 5)) * np.sqrt(2 / 25)).astype(f32)
    b1 = np.zeros(30, f32)
    W2 = (rng.standard_normal((30 * 12 * 12, 100)) * np.sqrt(2 / 4320)).astype(f32)
    b2 = np.zeros(100, f32)
    W3 = (rng.standard_normal((100, 10)) * np.sqrt(2 / 100)).astype(f32)
    b3 = np.zeros(10, f32)
    lr, batch = f32(0.1), 100

    def step():
        idx = rng.choice(x_train.shape[0], batch, replace=False)
        x, t = x_train[idx], t_train[idx]
        n = x.shape[0]
        # convolution: im2col, matrix product
        col = im2col(x, 5, 5)
        col_w = W1.reshape(30, -1).T
        c1 = (col @ col_w + b1).reshape(n, 24, 24, 30).transpose(0, 3, 1, 2)
        mask1 = c1 <= 0
        r1 = np.where(mask1, 0, c1)
        # 2x2 max pooling through im2col
        pcol = im2col(r1, 2, 2, 2).reshape(-1, 4)
        arg = np.argmax(pcol, axis=1)
        p1 = np.max(pcol, axis=1).reshape(n, 12, 12, 30).transpose(0, 3, 1, 2)
        flat = p1.reshape(n, -1)
        a2 = flat @ W2 + b2
        mask2 = a2 <= 0
        r2 = np.where(mask2, 0, a2)
        a3 = r2 @ W3 + b3
        a3 = a3 - a3.max(axis=1, keepdims=True)
        y = np.exp(a3)
        y /= y.sum(axis=1, keepdims=True)
        loss = -np.log(y[np.arange(n), t] + 1e-7).mean()
        # backward
        d3 = y.copy()
        d3[np.arange(n), t] -= 1
        d3 /= n
        dW3, db3 = r2.T @ d3, d3.sum(axis=0)
        dr2 = d3 @ W3.T
        dr2[mask2] = 0
        dW2, db2 = flat.T @ dr2, dr2.sum(axis=0)
        dflat = dr2 @ W2.T
        dp = dflat.reshape(n, 30, 12, 12).transpose(0, 2, 3, 1)
        dmax = np.zeros((dp.size, 4), f32)
        dmax[np.arange(arg.size), arg.flatten()] = dp.flatten()
        dr1 = col2im(dmax.reshape(n * 12 * 12, -1), r1.shape, 2, 2, 2)
        dr1[mask1] = 0
        dc1 = dr1.transpose(0, 2, 3, 1).reshape(-1, 30)
        dW1 = (col.T @ dc1).T.reshape(W1.shape)
        db1 = dc1.sum(axis=0)
        # The first layer's input gradient (col2im of dc1 @ col_w.T) is never used.
        for p, g in ((W1, dW1), (b1, db1), (W2, dW2), (b2, db2), (W3, dW3), (b3, db3)):
            p -= lr * g
        return loss

    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(iterations):
        loss = step()
    secs = time.perf_counter() - start
    print(f"numpy {np.__version__} im2col: {iterations * batch / secs:.0f} images/s "
          f"({iterations} iterations of {batch} in {secs:.2f}s, last loss {loss:.3f})")


if __name__ == "__main__":
    main()
