"""The course's Keras CNN (configs/mnist-cnn.toml) in PyTorch on the CPU: the reference for
`cargo run -p keraslike --example backend_step` (burn's flex backend).

    python3 benches/mnist_cnn_torch.py [steps] [batch]
    python3 benches/mnist_cnn_torch.py epochs ../shared/data/mnist [epochs]

Conv2D 32 3x3 same relu -> Conv2D 64 3x3 same relu -> MaxPooling2D 2 -> Flatten ->
Dense 128 relu -> Dense 10, PyTorch's default CPU threads. The first form: cross-entropy,
Adam 1e-3, random 28x28 inputs (as backend_step uses); prints training images/s. The
second: the course recipe that `cargo run -p keraslike -- mnist` runs (Adadelta lr 1.0,
rho 0.95, eps 1e-7 as Keras; batch 32; shuffled each epoch; the 10,000 test images as
validation data) on the real MNIST files; prints each epoch's time (training +
validation, as keraslike's epoch line counts it) and accuracies.
"""
import gzip
import sys
import time

import torch
from torch import nn


def model_of_the_course():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * 14 * 14, 128), nn.ReLU(), nn.Linear(128, 10),
    )


def load(path, name, offset, shape):
    with gzip.open(f"{path}/{name}", "rb") as f:
        return torch.frombuffer(bytearray(f.read()), dtype=torch.uint8)[offset:].reshape(shape)


def epochs(path, count):
    x_train = load(path, "train-images-idx3-ubyte.gz", 16, (-1, 1, 28, 28)).float() / 255
    t_train = load(path, "train-labels-idx1-ubyte.gz", 8, (-1,)).long()
    x_test = load(path, "t10k-images-idx3-ubyte.gz", 16, (-1, 1, 28, 28)).float() / 255
    t_test = load(path, "t10k-labels-idx1-ubyte.gz", 8, (-1,)).long()
    torch.manual_seed(42)
    model = model_of_the_course()
    opt = torch.optim.Adadelta(model.parameters(), lr=1.0, rho=0.95, eps=1e-7)
    batch = 32
    print(f"pytorch {torch.__version__} ({torch.get_num_threads()} threads), course recipe")
    for epoch in range(1, count + 1):
        start = time.perf_counter()
        model.train()
        order = torch.randperm(x_train.shape[0])
        loss_sum, correct = 0.0, 0
        for i in range(0, x_train.shape[0], batch):
            idx = order[i:i + batch]
            out = model(x_train[idx])
            loss = nn.functional.cross_entropy(out, t_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
            correct += (out.argmax(1) == t_train[idx]).sum().item()
        model.eval()
        with torch.no_grad():
            val_correct = sum((model(x_test[i:i + 1000]).argmax(1) == t_test[i:i + 1000]).sum().item()
                              for i in range(0, x_test.shape[0], 1000))
        secs = time.perf_counter() - start
        n = x_train.shape[0]
        print(f"epoch {epoch}: {secs:.1f} s - loss: {loss_sum / n:.4f} - acc: {correct / n:.4f}"
              f" - val_acc: {val_correct / x_test.shape[0]:.4f}")


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "epochs":
        epochs(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 1)
        return
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 32
    torch.manual_seed(1)
    model = model_of_the_course()
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
