"""The course's Keras CNN (configs/mnist-cnn.toml) in PyTorch on the CPU: the reference for
`cargo run -p keraslike --example backend_step` (burn's flex backend).

    python3 benches/mnist_cnn_torch.py [steps] [batch]

Conv2D 32 3x3 same relu -> Conv2D 64 3x3 same relu -> MaxPooling2D 2 -> Flatten ->
Dense 128 relu -> Dense 10; cross-entropy, Adam 1e-3, random 28x28 inputs (as
backend_step uses), PyTorch's default CPU threads. Prints training images/s.
"""
import sys
import time

import torch
from torch import nn


def main():
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 32
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * 14 * 14, 128), nn.ReLU(), nn.Linear(128, 10),
    )
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x = torch.rand(batch, 1, 28, 28)
    y = torch.arange(batch) % 10

    def step():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    secs = time.perf_counter() - start
    print(f"pytorch {torch.__version__} ({torch.get_num_threads()} threads): "
          f"{steps * batch / secs:.1f} images/s ({steps} steps of {batch})")


if __name__ == "__main__":
    main()
