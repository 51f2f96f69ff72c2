#!/usr/bin/env python3
"""Trains one keraslike model TOML in Keras and in keraslike, on the same data, with the
same recipe, over several seeds each, and prints their per-epoch histories side by side.

The Keras side is built from the TOML alone: the same layers with Keras's own defaults
(initialisers, BatchNormalization, Dropout), the same optimiser and settings from
[compile], the course's data pipeline (arrays for MNIST-style IDX files,
ImageDataGenerator(rescale=1/255).flow_from_directory for image folders, the same
augmentation when [fit] asks for it). The keraslike side runs the built binary with the
same config. Runs alternate (keraslike seed 1, Keras seed 1, keraslike seed 2, ...), so
that a noisy machine affects both sides alike.

    # TensorFlow/Keras outside the project's build, e.g. in a venv:
    python3 -m venv ~/kerasenv && ~/kerasenv/bin/pip install tensorflow-cpu pillow scipy
    cargo build -p keraslike
    ~/kerasenv/bin/python benches/keras_parity.py --config configs/mnist-cnn.toml \\
        --data mnist --data-dir ../shared/data --epochs 2 --seeds 1 2 3
    ~/kerasenv/bin/python benches/keras_parity.py --config configs/face.toml \\
        --data folder:../shared/data/faces --seeds 1 2 3

--data: mnist | fashion (IDX files in DATA_DIR/mnist or DATA_DIR/fashion), or
folder:DIR (DIR/train/<class>/..., DIR/test/<class>/...: what `keraslike face` reads).
Flags override the config's [fit] settings on both sides. --markdown FILE appends the
table; --json FILE writes every history (with each epoch's seconds, and on the Keras side
its training steps). Image folders feed Keras endlessly, every epoch the same number of
steps as keraslike's (see run_keras).
"""

import argparse
import csv
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib

import numpy as np

# keraslike's defaults where the config says nothing (crates/keraslike/src/optimizer.rs).
DEFAULT_LR = {"adadelta": 1.0, "adam": 1e-3, "rmsprop": 1e-3, "adagrad": 1e-3, "sgd": 0.01}
HYPER = ["momentum", "nesterov", "beta_1", "beta_2", "rho", "epsilon", "initial_accumulator_value"]


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def find(folder, stem):
    for name in (stem + ".gz", stem):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            return path
    sys.exit(f"{folder}: no {stem}[.gz]")


def load_idx_set(data_dir, name, train_limit):
    folder = os.path.join(data_dir, name)
    x_train = read_idx(find(folder, "train-images-idx3-ubyte"))
    y_train = read_idx(find(folder, "train-labels-idx1-ubyte"))
    x_test = read_idx(find(folder, "t10k-images-idx3-ubyte"))
    y_test = read_idx(find(folder, "t10k-labels-idx1-ubyte"))
    if train_limit:
        x_train, y_train = x_train[:train_limit], y_train[:train_limit]
    # (N, H, W, 1) in [0, 1], labels one-hot, as the course's Keras code prepares them.
    prep = lambda x: (x.astype("float32") / 255.0)[..., None]
    onehot = lambda y: np.eye(10, dtype="float32")[y]
    return prep(x_train), onehot(y_train), prep(x_test), onehot(y_test)


def keras_model(cfg):
    import keras
    from keras import layers

    c, h, w = cfg["input"]
    model = keras.Sequential([keras.Input((h, w, c))])
    activation = lambda l: {"linear": None}.get(l.get("activation", "linear"), l.get("activation"))
    for l in cfg["layers"]:
        kind = l["type"]
        weights = {
            k: l[k] for k in ("use_bias", "kernel_initializer", "bias_initializer") if k in l
        }
        if kind == "Conv2D":
            model.add(
                layers.Conv2D(
                    l["filters"],
                    l["kernel_size"],
                    strides=l.get("strides", 1),
                    padding=l.get("padding", "valid"),
                    activation=activation(l),
                    **weights,
                )
            )
        elif kind == "MaxPooling2D":
            model.add(layers.MaxPooling2D(l["pool_size"], strides=l.get("strides")))
        elif kind == "Flatten":
            model.add(layers.Flatten())
        elif kind == "Dense":
            model.add(layers.Dense(l["units"], activation=activation(l), **weights))
        elif kind == "Dropout":
            model.add(layers.Dropout(l["rate"]))
        elif kind == "BatchNormalization":
            bn = {k: l[k] for k in ("momentum", "epsilon") if k in l}
            model.add(layers.BatchNormalization(**bn))
        elif kind == "Activation":
            model.add(layers.Activation(activation(l)))
        else:
            sys.exit(f"layer type {kind} has no Keras mapping here")
    return model


def keras_optimizer(compile_cfg, steps_per_epoch):
    import keras

    name = compile_cfg.get("optimizer", "adadelta")
    lr = compile_cfg.get("learning_rate", DEFAULT_LR[name])
    decay = compile_cfg.get("lr_decay", 1.0)
    if decay != 1.0:
        lr = keras.optimizers.schedules.ExponentialDecay(lr, steps_per_epoch, decay)
    kwargs = {k: compile_cfg[k] for k in HYPER if k in compile_cfg}
    cls = {
        "adadelta": keras.optimizers.Adadelta,
        "adam": keras.optimizers.Adam,
        "rmsprop": keras.optimizers.RMSprop,
        "adagrad": keras.optimizers.Adagrad,
        "sgd": keras.optimizers.SGD,
    }[name]
    return cls(learning_rate=lr, **kwargs)


def augmenter(flip):
    # keraslike's Augmentation::mild / ::digits (crates/dataset/src/augment.rs).
    return dict(
        rotation_range=10,
        width_shift_range=0.1,
        height_shift_range=0.1,
        zoom_range=0.1,
        horizontal_flip=flip,
    )


def image_data_generator():
    # Keras 3.15 keeps the course's ImageDataGenerator only in its legacy module.
    try:
        from keras.preprocessing.image import ImageDataGenerator
    except ImportError:
        from keras.src.legacy.preprocessing.image import ImageDataGenerator
    return ImageDataGenerator


def endless(iterator, batches):
    """`iterator` (a DirectoryIterator) as a Keras data set of `batches` batches that goes
    on from pass to pass, reshuffled after each, as Keras 2's fit_generator drew from it.
    A PyDataset, so that Keras reads it as it reads the iterator itself (tf.data with
    prefetching)."""
    import keras

    class Endless(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.passes = 0

        def __len__(self):
            return batches

        def __getitem__(self, i):
            done, j = divmod(i, len(iterator))
            while self.passes < done:
                iterator.on_epoch_end()
                self.passes += 1
            return iterator[j]

    return Endless()


def epoch_clock():
    import keras

    class EpochClock(keras.callbacks.Callback):
        """Each epoch's seconds (training and validation) and training steps."""

        def __init__(self):
            super().__init__()
            self.seconds, self.steps = [], []

        def on_epoch_begin(self, epoch, logs=None):
            self.started, self.batches = time.time(), 0

        def on_train_batch_end(self, batch, logs=None):
            self.batches += 1

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.time() - self.started)
            self.steps.append(self.batches)

    return EpochClock()


def is_binary(cfg):
    """One sigmoid unit at the end: flow_from_directory's class_mode="binary"."""
    last = cfg["layers"][-1]
    if last["type"] == "Activation" and last.get("activation") == "sigmoid":
        last = dict(cfg["layers"][-2], activation="sigmoid")
    return last["type"] == "Dense" and last["units"] == 1 and last.get("activation") == "sigmoid"


def run_keras(cfg, fit, args, seed):
    import keras

    ImageDataGenerator = image_data_generator()

    keras.utils.set_random_seed(seed)
    model = keras_model(cfg)
    clock = epoch_clock()
    c, h, w = cfg["input"]
    batch = fit["batch_size"]
    if args.data.startswith("folder:"):
        root = args.data[len("folder:") :]
        aug = augmenter(True) if fit.get("augment") else {}
        flow = lambda gen, split: gen.flow_from_directory(
            os.path.join(root, split),
            target_size=(h, w),
            color_mode="grayscale" if c == 1 else "rgb",
            batch_size=batch,
            class_mode="binary" if is_binary(cfg) else "categorical",
            interpolation=args.interpolation,
            seed=seed,
        )
        train = flow(ImageDataGenerator(rescale=1.0 / 255, **aug), "train")
        test = flow(ImageDataGenerator(rescale=1.0 / 255), "test")
        steps = fit.get("steps_per_epoch") or len(train)
        val_steps = fit.get("validation_steps") or len(test)
        model.compile(
            optimizer=keras_optimizer(cfg.get("compile", {}), steps),
            loss="binary_crossentropy" if is_binary(cfg) else "categorical_crossentropy",
            metrics=["accuracy"],
        )
        # Keras 3 ends an epoch early when a data set with a length (a DirectoryIterator
        # has one) runs out mid-epoch ("Your input ran out of data"): with
        # steps_per_epoch not dividing a pass, its epochs alternate long and short. The
        # course's Keras 2 fit_generator drew from the iterator endlessly, as keraslike
        # does, and so does this.
        history = model.fit(
            endless(train, steps * fit["epochs"]),
            steps_per_epoch=steps,
            epochs=fit["epochs"],
            validation_data=endless(test, val_steps * fit["epochs"]),
            validation_steps=val_steps,
            verbose=2,
            callbacks=[clock],
        )
    else:
        x, y, xt, yt = load_idx_set(args.data_dir, args.data, fit.get("train_limit"))
        steps = -(-len(x) // batch)
        model.compile(
            optimizer=keras_optimizer(cfg.get("compile", {}), steps),
            loss="categorical_crossentropy",
            metrics=["accuracy"],
        )
        if fit.get("augment"):
            gen = ImageDataGenerator(**augmenter(False)).flow(x, y, batch_size=batch, seed=seed)
            history = model.fit(
                gen, epochs=fit["epochs"], validation_data=(xt, yt), verbose=2, callbacks=[clock]
            )
        else:
            history = model.fit(
                x, y, batch_size=batch, epochs=fit["epochs"], validation_data=(xt, yt), verbose=2, callbacks=[clock]
            )
    h = history.history
    return [
        dict(
            epoch=i + 1,
            loss=h["loss"][i],
            acc=h["accuracy"][i],
            val_loss=h["val_loss"][i],
            val_acc=h["val_accuracy"][i],
            seconds=clock.seconds[i],
            steps=clock.steps[i],
        )
        for i in range(len(h["loss"]))
    ]


def run_keraslike(args, fit, seed):
    out = tempfile.mkdtemp(prefix="parity-")
    cmd = [args.keraslike]
    if args.data.startswith("folder:"):
        cmd += ["face", "--data", args.data[len("folder:") :], "--interpolation", args.interpolation]
        for flag, key in (("--steps-per-epoch", "steps_per_epoch"), ("--validation-steps", "validation_steps")):
            if fit.get(key):
                cmd += [flag, str(fit[key])]
        if fit.get("augment"):
            cmd += ["--augment"]
    else:
        cmd += ["mnist", "--dataset", args.data, "--data-dir", args.data_dir]
        if fit.get("train_limit"):
            cmd += ["--train-limit", str(fit["train_limit"])]
        if fit.get("augment"):
            cmd += ["--augment"]
    cmd += ["--config", args.config, "--epochs", str(fit["epochs"]), "--batch-size", str(fit["batch_size"])]
    cmd += ["--seed", str(seed), "--out", out]
    print("$", " ".join(cmd), flush=True)
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        sys.exit(f"keraslike failed:\n{done.stdout[-3000:]}")
    with open(os.path.join(out, "history.csv")) as f:
        rows = list(csv.DictReader(f))
    return [{k: float(r[k]) for k in ("epoch", "loss", "acc", "val_loss", "val_acc", "seconds")} for r in rows]


def spread(values):
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ({min(values):.4f}-{max(values):.4f})"


def epoch_seconds(runs, e):
    """The epoch's mean seconds over the runs (blank for a history saved without them)."""
    times = [r["history"][e]["seconds"] for r in runs if "seconds" in r["history"][e]]
    return f"{statistics.mean(times):.1f}" if times else ""


def table(results, epochs):
    lines = [
        "| epoch | side | loss | acc | val_loss | val_acc | s/epoch | s/run |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for e in range(epochs):
        for side in ("keraslike", "Keras"):
            runs = results[side]
            cell = lambda k: spread([r["history"][e][k] for r in runs])
            secs = statistics.mean(r["seconds"] for r in runs) if e == epochs - 1 else None
            lines.append(
                f"| {e + 1} | {side} | {cell('loss')} | {cell('acc')} | {cell('val_loss')} | {cell('val_acc')} | "
                + epoch_seconds(runs, e)
                + " | "
                + (f"{secs:.0f}" if secs else "")
                + " |"
            )
    return "\n".join(lines)


def curves(results, key):
    """Epochs at which keraslike's mean `key` lies inside Keras's seed range widened by half
    a point each side (the final-accuracy margin), and how many epochs there are."""
    epochs = min(len(r["history"]) for side in results.values() for r in side)
    inside = 0
    for e in range(epochs):
        ours = statistics.mean(r["history"][e][key] for r in results["keraslike"])
        theirs = [r["history"][e][key] for r in results["Keras"]]
        inside += min(theirs) - 0.005 <= ours <= max(theirs) + 0.005
    return inside, epochs


def verdict(results):
    ours = [r["history"][-1]["val_acc"] for r in results["keraslike"]]
    theirs = [r["history"][-1]["val_acc"] for r in results["Keras"]]
    mean_ours, mean_theirs = statistics.mean(ours), statistics.mean(theirs)
    inside = min(theirs) <= mean_ours <= max(theirs) if len(theirs) > 1 else False
    close = mean_ours >= mean_theirs - 0.005
    ok = inside or close
    (acc_in, n), (val_in, _) = curves(results, "acc"), curves(results, "val_acc")
    return (
        f"final val_acc: keraslike {spread(ours)}, Keras {spread(theirs)}; "
        f"keraslike mean {'inside Keras range' if inside else 'outside Keras range'}, "
        f"{(mean_ours - mean_theirs) * 100:+.2f} points vs Keras mean: {'PASS' if ok else 'FAIL'}. "
        f"Curves: keraslike's mean acc inside Keras's range (±0.5 point) at {acc_in}/{n} epochs, "
        f"val_acc at {val_in}/{n}"
    ), ok


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config")
    p.add_argument("--data", help="mnist | fashion | folder:DIR")
    p.add_argument("--data-dir", default=os.environ.get("DL_DATA_DIR", "data"))
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--steps-per-epoch", type=int)
    p.add_argument("--validation-steps", type=int)
    p.add_argument("--train-limit", type=int)
    p.add_argument("--interpolation", default="nearest", choices=["nearest", "bilinear"])
    p.add_argument("--keraslike", default="target/debug/keraslike", help="the built binary")
    p.add_argument("--only", choices=["keraslike", "Keras"], help="run one side only")
    p.add_argument("--markdown", help="append the table to this file")
    p.add_argument("--json", help="write every history to this file")
    p.add_argument("--from-json", help="print the table and verdict of a saved --json run, train nothing")
    args = p.parse_args()

    if args.from_json:
        with open(args.from_json) as f:
            saved = json.load(f)
        epochs = len(saved["results"]["Keras"][0]["history"])
        print(saved["header"] + "\n\n" + table(saved["results"], epochs) + "\n\n" + verdict(saved["results"])[0])
        return

    if not (args.config and args.data):
        p.error("--config and --data are needed (or --from-json)")
    with open(args.config, "rb") as f:
        cfg = tomllib.load(f)
    fit = dict(cfg.get("fit", {}))
    fit.setdefault("epochs", 10)
    fit.setdefault("batch_size", 32)
    for key in ("epochs", "batch_size", "steps_per_epoch", "validation_steps", "train_limit"):
        if getattr(args, key) is not None:
            fit[key] = getattr(args, key)

    import tensorflow as tf

    results = {"keraslike": [], "Keras": []}
    for seed in args.seeds:
        for side in ("keraslike", "Keras"):
            if args.only and side != args.only:
                continue
            started = time.time()
            history = run_keraslike(args, fit, seed) if side == "keraslike" else run_keras(cfg, fit, args, seed)
            seconds = time.time() - started
            results[side].append(dict(seed=seed, seconds=seconds, history=history))
            last = history[-1]
            print(f"{side} seed {seed}: val_acc {last['val_acc']:.4f} val_loss {last['val_loss']:.4f} in {seconds:.0f} s", flush=True)

    header = (
        f"{args.config} on {args.data}, epochs {fit['epochs']}, batch {fit['batch_size']}"
        + (f", {fit['steps_per_epoch']} steps/epoch" if fit.get("steps_per_epoch") else "")
        + (f", {fit['validation_steps']} validation steps" if fit.get("validation_steps") else "")
        + (f", first {fit['train_limit']} training images" if fit.get("train_limit") else "")
        + f", seeds {' '.join(map(str, args.seeds))}; Keras {__import__('keras').__version__} / TF {tf.__version__}"
    )
    text = header + "\n\n"
    if results["keraslike"] and results["Keras"]:
        text += table(results, fit["epochs"]) + "\n\n"
        line, _ = verdict(results)
        text += line + "\n"
    print("\n" + text)
    if args.markdown:
        with open(args.markdown, "a") as f:
            f.write(text + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(header=header, results=results), f, indent=1)


if __name__ == "__main__":
    main()
