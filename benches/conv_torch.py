"""The course's SimpleConvNet in PyTorch (CPU): the reference for
crates/scratch/examples/bench_conv.rs.

    python3 benches/conv_torch.py ../shared/data/mnist [iterations]

conv 30 5x5 -> ReLU -> 2x2 max pooling -> linear 100 -> ReLU -> linear 10, cross-entropy,
SGD lr 0.1, batch 100, float32, PyTorch's default CPU threads.
"""
import gzip
import sys
import time

import numpy as np
import torch
from torch import nn


def load(path, name, offset, shape):
    with gzip.open(f"{path}/{name}", "rb") as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset).reshape(shape)


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/mnist"
    iterations = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    x_train = torch.from_numpy(load(path, "train-images-idx3-ubyte.gz", 16, (-1, 1, 28, 28)).astype(np.float32) / 255)
    t_train = torch.from_numpy(load(path, "train-labels-idx1-ubyte.gz", 8, (-1,)).astype(np.int64))
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv2d(1, 30, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(30 * 12 * 12, 100), nn.ReLU(), nn.Linear(100, 10),
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(1)

    def step():
        idx = torch.randperm(x_train.shape[0], generator=gen)[:100]
        opt.zero_grad()
        loss = loss_fn(model(x_train[idx]), t_train[idx])
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(5):
        step()
    start = time.perf_counter()
    for _ in range(iterations):
        loss = step()
    secs = time.perf_counter() - start
    print(f"pytorch {torch.__version__} ({torch.get_num_threads()} threads): "
          f"{iterations * 100 / secs:.0f} images/s ({iterations} iterations of 100 in {secs:.2f}s, "
          f"last loss {loss:.3f})")


if __name__ == "__main__":
    main()
