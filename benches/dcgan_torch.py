"""The DCGAN of `keraslike dcgan` in PyTorch (CPU), for side-by-side epoch times and scores.

    python3 benches/dcgan_torch.py ../shared/data/mnist [epochs] [out.f32]

Same shapes (generator: dense 100 -> 128x7x7, BN, ReLU, ConvTranspose 4x4/2 -> 64, BN, ReLU,
ConvTranspose 4x4/2 -> 1, tanh; discriminator: Conv 4x4/2 -> 64, LeakyReLU 0.2, Conv 4x4/2
-> 128, BN, LeakyReLU 0.2, dense -> 1 logit), same iteration (D on 64 real + 64 generated,
then G on 128 with target 1), Adam 2e-4 beta1 0.5, 937 iterations per epoch. Writes 10,000
generated images as raw little-endian float32 (10000 x 1 x 28 x 28, values in [-1, 1]) for
`keraslike gan-score --images out.f32 --classifier ...`.

    --ema DECAY   also keep an exponential moving average of the generator's weights and
                  BatchNorm statistics (updated after every generator step) and write its
                  samples to OUT with "-ema" before the extension
    --every-epoch write the samples after every epoch (OUT with "-epochN"), not only at the end
    --pack M      PacGAN (Lin et al. 2018): the discriminator judges M images at once,
                  stacked as channels, all real or all generated (1 = plain DCGAN)
    --mbstd G     minibatch standard deviation (Karras et al. 2018): before its dense layer
                  the discriminator sees one more channel, the mean over features of the
                  standard deviation across groups of G of its inputs (0 = off)
    --real-target T  one-sided label smoothing: the discriminator's target for real images
    --refine C    the generator's last upsampling makes C channels (BatchNorm, ReLU) and a
                  3x3 stride-1 transposed convolution maps them to the image (0 = off)
    --log-every N print the losses (and the feature-matching distance) every N iterations
    --dropout P   dropout after each of the discriminator's LeakyReLUs (as in TensorFlow's
                  DCGAN tutorial; 0 = none)
    --threads T   torch threads (0 = torch's default)
    --fm L        feature matching (Salimans et al. 2016) added to the generator's loss with
                  weight L: squared distance between the batch means of the discriminator's
                  last hidden features on real and on generated images
"""
import argparse
import gzip
import time

import numpy as np
import torch
from torch import nn


def write_samples(g, out):
    """10,000 samples from z seed 0; training's random stream is left as it was."""
    rng = torch.get_rng_state()
    g.eval()
    torch.manual_seed(0)
    with torch.no_grad():
        images = torch.cat([g(torch.randn(500, 100)) for _ in range(20)])
    images.numpy().astype("<f4").tofile(out)
    print(f"wrote {out}: {images.shape[0]} images")
    g.train()
    torch.set_rng_state(rng)


class MinibatchStd(nn.Module):
    """Appends one channel: the mean over (C, H, W) of the standard deviation of each
    feature across groups of `group` samples (each sample gets its group's value)."""

    def __init__(self, group):
        super().__init__()
        self.group = group

    def forward(self, x):
        n, c, h, w = x.shape
        g = min(self.group, n)
        y = x.reshape(g, n // g, c, h, w)
        y = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # (n/g)
        y = y.reshape(1, n // g, 1, 1, 1).expand(g, n // g, 1, h, w).reshape(n, 1, h, w)
        return torch.cat([x, y], dim=1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("path", nargs="?", default="../shared/data/mnist")
    parser.add_argument("epochs", nargs="?", type=int, default=1)
    parser.add_argument("out", nargs="?", default="torch-dcgan.f32")
    parser.add_argument("--ema", type=float)
    parser.add_argument("--every-epoch", action="store_true")
    parser.add_argument("--pack", type=int, default=1)
    parser.add_argument("--mbstd", type=int, default=0)
    parser.add_argument("--real-target", type=float, default=1.0)
    parser.add_argument("--fm", type=float, default=0.0)
    parser.add_argument("--refine", type=int, default=0)
    parser.add_argument("--log-every", type=int, default=0)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--train-limit", type=int, default=0,
                        help="use only the first N training images (as keraslike's --train-limit)")
    args = parser.parse_args()
    path, epochs, out = args.path, args.epochs, args.out
    stem, dot, ext = out.rpartition(".")
    with gzip.open(f"{path}/train-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    if args.train_limit:
        x = x[: args.train_limit]
    x = torch.from_numpy(x.astype(np.float32) / 127.5 - 1.0)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(42)
    if args.refine:
        last = [nn.ConvTranspose2d(64, args.refine, 4, 2, 1), nn.BatchNorm2d(args.refine), nn.ReLU(),
                nn.ConvTranspose2d(args.refine, 1, 3, 1, 1), nn.Tanh()]
    else:
        last = [nn.ConvTranspose2d(64, 1, 4, 2, 1), nn.Tanh()]
    g = nn.Sequential(
        nn.Linear(100, 128 * 7 * 7), nn.Unflatten(1, (128, 7, 7)), nn.BatchNorm2d(128), nn.ReLU(),
        nn.ConvTranspose2d(128, 64, 4, 2, 1), nn.BatchNorm2d(64), nn.ReLU(),
        *last,
    )
    extra = [MinibatchStd(args.mbstd)] if args.mbstd else []
    drop = [nn.Dropout(args.dropout)] if args.dropout else []
    d = nn.Sequential(
        nn.Conv2d(args.pack, 64, 4, 2, 1), nn.LeakyReLU(0.2), *drop,
        nn.Conv2d(64, 128, 4, 2, 1), nn.BatchNorm2d(128), nn.LeakyReLU(0.2), *drop,
        *extra, nn.Flatten(), nn.Linear((128 + len(extra)) * 7 * 7, 1),
    )
    print(f"pytorch {torch.__version__} ({torch.get_num_threads()} threads): generator "
          f"{sum(p.numel() for p in g.parameters())} parameters, discriminator "
          f"{sum(p.numel() for p in d.parameters())}")
    opt_g = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    ema = None
    if args.ema is not None:
        ema = torch.optim.swa_utils.AveragedModel(
            g, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(args.ema), use_buffers=True)
    half = 64
    pack = args.pack

    def judge(images):
        return d(images.reshape(-1, pack, 28, 28))

    def features(images):
        return d[:-1](images.reshape(-1, pack, 28, 28)).mean(dim=0)

    for epoch in range(1, epochs + 1):
        order = torch.randperm(x.shape[0])
        start = time.perf_counter()
        for it in range(x.shape[0] // half):
            real = x[order[it * half:(it + 1) * half]]
            fake = g(torch.randn(half, 100)).detach()
            loss_d = (bce(judge(real), torch.full((half // pack, 1), args.real_target))
                      + bce(judge(fake), torch.zeros(half // pack, 1))) / 2
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
            # D judges without gradients for its own parameters (only G is stepped), as
            # `keraslike dcgan` does; G's gradients are the same either way.
            d.requires_grad_(False)
            generated = g(torch.randn(2 * half, 100))
            loss_g = bce(judge(generated), torch.ones(2 * half // pack, 1))
            distance = 0.0  # feature matching's, for the log
            if args.fm:
                with torch.no_grad():
                    target = features(real)
                fm = (features(generated) - target).pow(2).sum()
                distance = fm.item()
                loss_g = loss_g + args.fm * fm
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
            d.requires_grad_(True)
            if ema is not None:
                ema.update_parameters(g)
            if args.log_every and (it + 1) % args.log_every == 0:
                print(f"epoch {epoch} iteration {it + 1}: d_loss {loss_d.item():.4f} "
                      f"g_loss {loss_g.item():.4f} feature distance {distance:.4f}", flush=True)
        print(f"epoch {epoch}/{epochs} - {time.perf_counter() - start:.1f}s - "
              f"d_loss: {loss_d.item():.4f} - g_loss: {loss_g.item():.4f}")
        if args.every_epoch or epoch == epochs:
            tag = f"-epoch{epoch}" if args.every_epoch else ""
            write_samples(g, f"{stem}{tag}{dot}{ext}")
            if ema is not None:
                write_samples(ema.module, f"{stem}{tag}-ema{dot}{ext}")


if __name__ == "__main__":
    main()
