//! `scratch train` refusing what it cannot do well: each bad input is generated here; each
//! test checks the exit status, the message, and that no file was lost or replaced.

use std::path::{Path, PathBuf};
use std::process::Output;

use e2e::{binary, one_line_error, run, text};

fn scratch() -> PathBuf {
    binary("scratch", "scratch")
}

struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    data: PathBuf,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let data = root.join("data");
        dataset::synthetic::write_mnist_dir(&data.join("mnist"), 600, 100, true, 3).unwrap();
        Self {
            _dir: dir,
            root,
            data,
        }
    }

    fn train(&self, args: &[&str]) -> Output {
        let mut all = vec!["train", "--offline"];
        all.extend_from_slice(args);
        run(&scratch(), &all, None, &[("DL_DATA_DIR", &self.data)])
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
}

#[test]
fn settings_out_of_range_are_refused_before_any_work() {
    let s = Setup::new();
    let out = s.path("w.safetensors");
    let out_s = out.to_str().unwrap();
    for lr in ["nan", "0", "-0.5", "inf"] {
        let flag = format!("--lr={lr}");
        let err = one_line_error(&s.train(&[&flag, "--out", out_s]));
        assert!(err.contains("lr"), "{lr}: {err}");
    }
    let err = one_line_error(&s.train(&["--epochs", "0", "--out", out_s]));
    assert!(err.contains("--epochs"), "{err}");
    let err = one_line_error(&s.train(&["--train-limit", "0", "--out", out_s]));
    assert!(err.contains("no training images"), "{err}");

    let config = |name: &str, train: &str| {
        let path = s.path(name);
        std::fs::write(
            &path,
            format!(
                "[train]\nepochs = 1\n{train}\n[optimizer]\ntype = \"sgd\"\nlr = 0.1\n\
                 [[layers]]\ntype = \"affine\"\nunits = 10\n"
            ),
        )
        .unwrap();
        path
    };
    for (name, train, expect) in [
        ("decay.toml", "lr_decay = -1.0", "lr_decay"),
        ("nan-decay.toml", "lr_decay = nan", "lr_decay"),
        ("shift.toml", "shift = 1000", "shift"),
    ] {
        let cfg = config(name, train);
        let err = one_line_error(&s.train(&["--config", cfg.to_str().unwrap(), "--out", out_s]));
        assert!(err.contains(expect), "{name}: {err}");
    }
    assert!(!out.exists(), "a refused run wrote its weights");
}

#[test]
fn a_run_that_blows_up_without_nan_keeps_the_good_weights() {
    let s = Setup::new();
    let out = s.path("good.safetensors");
    let out_s = out.to_str().unwrap();
    let good = s.train(&["--epochs", "1", "--out", out_s]);
    assert!(good.status.success(), "{}", text(&good.stderr));
    let before = std::fs::read(&out).unwrap();
    // SGD at 1e6 on the sigmoid network: the loss stays finite but enormous.
    for args in [
        vec!["--epochs", "2", "--lr", "1e6", "--out", out_s],
        vec!["--epochs", "1", "--lr", "1e6", "--resume", out_s],
    ] {
        let done = s.train(&args);
        assert!(!done.status.success(), "{}", text(&done.stdout));
        let err = text(&done.stderr);
        assert!(
            err.contains("diverged") && err.contains("not written"),
            "{err}"
        );
        assert_eq!(
            std::fs::read(&out).unwrap(),
            before,
            "the good weights were replaced"
        );
    }
}

#[test]
fn an_out_that_is_not_a_weights_file_is_never_replaced() {
    let s = Setup::new();
    let notes = s.path("notes.txt");
    std::fs::write(&notes, "my notes").unwrap();
    let err = one_line_error(&s.train(&["--epochs", "1", "--out", notes.to_str().unwrap()]));
    assert!(
        err.contains("notes.txt") && err.contains("not a scratch weights file"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "my notes");
    let folder = s.path("a-folder");
    std::fs::create_dir(&folder).unwrap();
    let err = one_line_error(&s.train(&["--epochs", "1", "--out", folder.to_str().unwrap()]));
    assert!(err.contains("is a folder"), "{err}");
}

/// Raw IDX images of `side`×`side`, `n` of them, and their labels.
fn write_idx(dir: &Path, images: &str, labels: &str, n: u32, side: u32) {
    let mut b = vec![0, 0, 8, 3];
    for d in [n, side, side] {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend((0..n * side * side).map(|i| (i % 251) as u8));
    std::fs::write(dir.join(images), b).unwrap();
    let mut l = vec![0, 0, 8, 1];
    l.extend_from_slice(&n.to_be_bytes());
    l.extend((0..n).map(|i| (i % 10) as u8));
    std::fs::write(dir.join(labels), l).unwrap();
}

#[test]
fn training_and_test_images_of_other_shapes_are_refused_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let mnist = dir.path().join("mnist");
    std::fs::create_dir_all(&mnist).unwrap();
    write_idx(
        &mnist,
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        50,
        32,
    );
    write_idx(
        &mnist,
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
        20,
        28,
    );
    let out = dir.path().join("w.safetensors");
    let done = run(
        &scratch(),
        &["train", "--offline", "--out", out.to_str().unwrap()],
        None,
        &[("DL_DATA_DIR", dir.path())],
    );
    let err = one_line_error(&done);
    assert!(err.contains("32×32") && err.contains("28×28"), "{err}");
    assert!(!text(&done.stdout).contains("epoch"), "it trained first");
}

#[test]
fn a_network_too_large_for_memory_is_refused_with_the_numbers() {
    let s = Setup::new();
    let out = s.path("w.safetensors");
    let err = one_line_error(&s.train(&["--hidden", "1000000000", "--out", out.to_str().unwrap()]));
    assert!(
        err.contains("needs about") && err.contains("parameters"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn predict_names_the_real_range_and_never_echoes_a_huge_line() {
    let s = Setup::new();
    let predict = |stdin: &str| {
        run(
            &scratch(),
            &["predict", "--offline"],
            Some(stdin),
            &[("DL_DATA_DIR", &s.data)],
        )
    };
    let err = one_line_error(&predict(""));
    assert!(
        err.contains("0..=99"),
        "the generated test set has 100 images: {err}"
    );
    let err = one_line_error(&predict("100\n"));
    assert!(err.contains("0..=99"), "{err}");
    let huge = "9".repeat(5 << 20);
    let err = one_line_error(&predict(&huge));
    assert!(err.len() < 200, "{} bytes of error", err.len());

    // A test set of no images at all.
    let empty = tempfile::tempdir().unwrap();
    let mnist = empty.path().join("mnist");
    std::fs::create_dir_all(&mnist).unwrap();
    write_idx(
        &mnist,
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        10,
        28,
    );
    write_idx(
        &mnist,
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
        0,
        28,
    );
    let env = [("DL_DATA_DIR", empty.path())];
    let done = run(&scratch(), &["predict", "--offline"], Some("0\n"), &env);
    let err = one_line_error(&done);
    assert!(err.contains("empty"), "{err}");
    // eval reported accuracy 0.0000 on it.
    let weights = s.path("w.safetensors");
    let trained = s.train(&["--epochs", "1", "--out", weights.to_str().unwrap()]);
    assert!(trained.status.success(), "{}", text(&trained.stderr));
    let eval = ["eval", "--offline", "--weights", weights.to_str().unwrap()];
    let err = one_line_error(&run(&scratch(), &eval, None, &env));
    assert!(err.contains("empty"), "{err}");
}
