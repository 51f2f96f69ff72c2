//! `keraslike` refusing what it cannot do well: each bad input is generated here, and each
//! test checks the exit status, the message, and that no file was lost or replaced.

use std::path::{Path, PathBuf};
use std::process::Output;

use e2e::{binary, one_line_error, run, text};

fn keraslike() -> PathBuf {
    binary("keraslike", "keraslike")
}

const SMALL_CNN: &str = "input = [1, 28, 28]\n\
    [[layers]]\ntype = \"Conv2D\"\nfilters = 4\nkernel_size = 3\nstrides = 2\nactivation = \"relu\"\n\
    [[layers]]\ntype = \"MaxPooling2D\"\npool_size = 2\n\
    [[layers]]\ntype = \"Flatten\"\n\
    [[layers]]\ntype = \"Dense\"\nunits = 10\nactivation = \"softmax\"\n\
    [compile]\noptimizer = \"adam\"\nlearning_rate = 0.01\n";

/// A folder with generated MNIST files, a small model config and a place for runs.
struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    data: PathBuf,
    config: PathBuf,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let data = root.join("data");
        dataset::synthetic::write_mnist_dir(&data.join("mnist"), 300, 100, true, 3).unwrap();
        let config = root.join("small.toml");
        std::fs::write(&config, SMALL_CNN).unwrap();
        Self {
            _dir: dir,
            root,
            data,
            config,
        }
    }

    fn config_with(&self, name: &str, text: &str) -> PathBuf {
        let path = self.root.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `keraslike mnist --offline --config CONFIG --out OUT EXTRA...` on the generated data.
    fn mnist(&self, config: &Path, out: &Path, extra: &[&str]) -> Output {
        let mut args = vec![
            "mnist",
            "--offline",
            "--config",
            config.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        run(&keraslike(), &args, None, &[("DL_DATA_DIR", &self.data)])
    }
}

/// Every file below `dir` with its bytes, sorted: what "untouched" compares.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                files.push((path, bytes));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn a_folder_that_is_not_empty_is_refused_unless_overwrite_is_given() {
    let s = Setup::new();
    let out = s.root.join("mine");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "my notes").unwrap();
    std::fs::write(out.join("model.bpk"), "a model I care about").unwrap();
    let before = snapshot(&out);

    let err = one_line_error(&s.mnist(&s.config, &out, &["--epochs", "1"]));
    assert!(
        err.contains("not empty") && err.contains("--overwrite") && err.contains("model.bpk"),
        "{err}"
    );
    assert_eq!(snapshot(&out), before, "a refused run changed the folder");

    let replaced = s.mnist(&s.config, &out, &["--epochs", "1", "--overwrite"]);
    assert!(replaced.status.success(), "{}", text(&replaced.stderr));
    // The earlier run's outputs are replaced; anything else stays.
    assert_eq!(
        std::fs::read_to_string(out.join("notes.txt")).unwrap(),
        "my notes"
    );
    assert_ne!(
        std::fs::read(out.join("model.bpk")).unwrap(),
        b"a model I care about"
    );
    assert!(out.join("history.csv").is_file());

    let both = one_line_error(&s.mnist(&s.config, &out, &["--resume", "--overwrite"]));
    assert!(both.contains("pass one"), "{both}");
}

#[test]
fn a_run_that_diverges_stops_and_writes_no_model() {
    let s = Setup::new();
    let out = s.root.join("diverged");
    // SGD at 1e30 sends the weights to infinity within a couple of steps.
    let done = s.mnist(
        &s.config,
        &out,
        &["--epochs", "2", "--optimizer", "sgd", "--lr", "1e30"],
    );
    assert!(!done.status.success(), "{}", text(&done.stdout));
    let err = text(&done.stderr);
    // It blows up within the first epoch, and the message says so.
    assert!(
        err.contains("loss became")
            && err.contains("in epoch 1")
            && err.contains("no model was written"),
        "{err}"
    );
    assert!(
        !out.join("model.bpk").exists(),
        "a diverged model was saved"
    );
    assert!(out.join("history.csv").is_file(), "the history is kept");
}

#[test]
fn learning_rates_that_are_not_positive_numbers_are_refused_before_any_work() {
    let s = Setup::new();
    for lr in ["nan", "0", "-0.1", "inf"] {
        let out = s.root.join(format!("lr-{lr}"));
        let flag = format!("--lr={lr}");
        let err = one_line_error(&s.mnist(&s.config, &out, &[&flag]));
        assert!(err.contains("learning rate"), "{lr}: {err}");
        assert!(!out.exists(), "{lr}: the refused run created its folder");
    }
    let bad_setting = s.config_with(
        "sgd-beta.toml",
        &SMALL_CNN.replace("optimizer = \"adam\"", "optimizer = \"sgd\"\nbeta_1 = 0.9"),
    );
    let err = one_line_error(&s.mnist(&bad_setting, &s.root.join("x"), &[]));
    assert!(err.contains("sgd") && err.contains("beta_1"), "{err}");
}

/// IDX files of 32×32 images (another IDX data set), raw.
fn write_idx_32(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let images = |n: u32| {
        let mut b = vec![0, 0, 8, 3];
        for d in [n, 32, 32] {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b.extend((0..n * 32 * 32).map(|i| (i % 251) as u8));
        b
    };
    let labels = |n: u32| {
        let mut b = vec![0, 0, 8, 1];
        b.extend_from_slice(&n.to_be_bytes());
        b.extend((0..n).map(|i| (i % 10) as u8));
        b
    };
    std::fs::write(dir.join("train-images-idx3-ubyte"), images(40)).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte"), labels(40)).unwrap();
    std::fs::write(dir.join("t10k-images-idx3-ubyte"), images(10)).unwrap();
    std::fs::write(dir.join("t10k-labels-idx1-ubyte"), labels(10)).unwrap();
}

#[test]
fn data_and_models_that_do_not_fit_each_other_are_refused_before_training() {
    let s = Setup::new();
    let other = s.root.join("other");
    write_idx_32(&other.join("mnist"));
    let out = s.root.join("run32");
    let done = run(
        &keraslike(),
        &[
            "mnist",
            "--offline",
            "--config",
            s.config.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        None,
        &[("DL_DATA_DIR", &other)],
    );
    let err = one_line_error(&done);
    assert!(err.contains("1x32x32") && err.contains("1x28x28"), "{err}");
    assert!(!out.exists());

    // A model trained on 28×28 digits, evaluated where the test files hold 32×32 images.
    let trained = s.root.join("trained");
    let first = s.mnist(&s.config, &trained, &["--epochs", "1"]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let model = trained.join("model.bpk");
    let eval = run(
        &keraslike(),
        &["evaluate", "--offline", "--model", model.to_str().unwrap()],
        None,
        &[("DL_DATA_DIR", &other)],
    );
    let err = one_line_error(&eval);
    assert!(err.contains("1x32x32") && err.contains("1x28x28"), "{err}");

    let five = s.config_with("five.toml", &SMALL_CNN.replace("units = 10", "units = 5"));
    let err = one_line_error(&s.mnist(&five, &s.root.join("five"), &[]));
    assert!(
        err.contains("one output per class") && err.contains("10 classes"),
        "{err}"
    );

    let err = one_line_error(&s.mnist(&s.config, &s.root.join("none"), &["--train-limit", "0"]));
    assert!(err.contains("no training images"), "{err}");
}

#[test]
fn resuming_with_a_config_of_other_shapes_is_refused() {
    let s = Setup::new();
    let out = s.root.join("run");
    let first = s.mnist(&s.config, &out, &["--epochs", "1"]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    // Resuming a run that already has its epochs trains nothing and says only that.
    let noop = s.mnist(&s.config, &out, &["--epochs", "1", "--resume"]);
    assert!(noop.status.success(), "{}", text(&noop.stderr));
    assert!(
        text(&noop.stdout).contains("nothing to do"),
        "{}",
        text(&noop.stdout)
    );
    assert_eq!(text(&noop.stderr), "", "a no-op resume printed to stderr");
    let before = snapshot(&out);
    let wider = s.config_with(
        "wider.toml",
        &SMALL_CNN.replace("filters = 4", "filters = 6"),
    );
    let err = one_line_error(&s.mnist(&wider, &out, &["--epochs", "2", "--resume"]));
    assert!(
        err.contains("does not fit") && err.contains("model-1.bpk"),
        "{err}"
    );
    assert_eq!(snapshot(&out), before);
}

#[test]
fn models_and_batches_that_cannot_fit_in_memory_are_refused_with_the_numbers() {
    let s = Setup::new();
    let huge = s.config_with(
        "huge.toml",
        &SMALL_CNN.replace(
            "[[layers]]\ntype = \"Dense\"\nunits = 10",
            "[[layers]]\ntype = \"Dense\"\nunits = 1000000000\n[[layers]]\ntype = \"Dense\"\nunits = 10",
        ),
    );
    let out = s.root.join("huge");
    let err = one_line_error(&s.mnist(&huge, &out, &[]));
    assert!(
        err.contains("needs about") && err.contains("available"),
        "{err}"
    );
    assert!(!out.exists());
    let err = one_line_error(&s.mnist(&s.config, &out, &["--batch-size", "100000000000"]));
    assert!(
        err.contains("batches of 100000000000") && err.contains("needs about"),
        "{err}"
    );

    let faces = s.root.join("faces");
    for split in ["train", "test"] {
        dataset::synthetic::write_image_folder(&faces.join(split), &["a", "b"], 2, (8, 8), 1)
            .unwrap();
    }
    let face = run(
        &keraslike(),
        &[
            "face",
            "--data",
            faces.to_str().unwrap(),
            "--size",
            "20000x20000",
            "--out",
            out.to_str().unwrap(),
        ],
        None,
        &[],
    );
    let err = one_line_error(&face);
    assert!(err.contains("needs about"), "{err}");
    assert!(!out.exists());
}

#[test]
fn the_dcgan_refuses_a_used_folder_bad_rates_and_networks_that_cannot_fit() {
    let s = Setup::new();
    let out = s.root.join("mine");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "my notes").unwrap();
    let before = snapshot(&out);
    let done = run(
        &keraslike(),
        &[
            "dcgan",
            "--offline",
            "--epochs",
            "1",
            "--out",
            out.to_str().unwrap(),
        ],
        None,
        &[("DL_DATA_DIR", &s.data)],
    );
    let err = one_line_error(&done);
    assert!(
        err.contains("not empty") && err.contains("--overwrite"),
        "{err}"
    );
    assert_eq!(snapshot(&out), before);

    // Settings refused before any work, negative numbers included (not taken for flags).
    let fresh = s.root.join("fresh");
    let dcgan = |extra: &[&str]| {
        let mut args = vec!["dcgan", "--offline", "--epochs", "1", "--out"];
        args.push(fresh.to_str().unwrap());
        args.extend_from_slice(extra);
        run(&keraslike(), &args, None, &[("DL_DATA_DIR", &s.data)])
    };
    for (flag, value, expected) in [
        ("--lr", "0", "positive"),
        ("--lr", "-1", "positive"),
        ("--lr", "nan", "positive"),
        ("--latent", "100000000", "needs about"),
        ("--refine", "1000000", "needs about"),
    ] {
        let err = one_line_error(&dcgan(&[flag, value]));
        assert!(err.contains(expected), "{flag} {value}: {err}");
        assert!(!fresh.exists(), "{flag} {value}: nothing written");
    }
}

/// A 96×80 colour JPEG whose compressed data is overwritten with noise in its middle (the
/// header and end marker intact), and one cut in half with its end marker put back: the
/// `image` crate decodes both into plausible pixels without a word.
fn corrupt_jpegs(dir: &Path) -> [PathBuf; 2] {
    let img = image::RgbImage::from_fn(96, 80, |x, y| {
        image::Rgb([(x * 5) as u8, (y * 3 + x) as u8, (x * y % 251) as u8])
    });
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, image::ImageFormat::Jpeg).unwrap();
    let bytes = bytes.into_inner();
    let sos = bytes.windows(2).position(|w| w == [0xff, 0xda]).unwrap();
    let start = sos + 2 + usize::from(u16::from_be_bytes([bytes[sos + 2], bytes[sos + 3]]));
    let end = bytes.len() - 2;
    let mut noise = bytes.clone();
    let mut state = 0x2545_f491_u32;
    for b in &mut noise[start + (end - start) / 4..end - (end - start) / 4] {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        *b = state as u8;
    }
    let mut cut = bytes[..(start + end) / 2].to_vec();
    cut.extend_from_slice(&[0xff, 0xd9]);
    let paths = [dir.join("noise.jpg"), dir.join("cut.jpg")];
    std::fs::write(&paths[0], &noise).unwrap();
    std::fs::write(&paths[1], &cut).unwrap();
    for path in &paths {
        assert!(
            image::open(path).is_ok(),
            "the lenient decoder takes {path:?}"
        );
    }
    paths
}

#[test]
fn corrupt_images_are_refused_before_training_or_skipped_with_a_warning() {
    let s = Setup::new();
    let faces = s.root.join("faces");
    for split in ["train", "test"] {
        dataset::synthetic::write_image_folder(&faces.join(split), &["a", "b"], 6, (20, 24), 1)
            .unwrap();
    }
    let [noise, cut] = corrupt_jpegs(&faces.join("train/a"));
    std::fs::rename(&cut, faces.join("test/b/cut.jpg")).unwrap();
    // A PNG whose header reads but whose compressed pixels are damaged.
    let png = faces.join("train/b/00000.png");
    let mut bytes = std::fs::read(&png).unwrap();
    let idat = bytes.windows(4).position(|w| w == b"IDAT").unwrap();
    bytes[idat + 12] ^= 0x55;
    std::fs::write(faces.join("train/b/damaged.png"), bytes).unwrap();
    let config = s.config_with(
        "face.toml",
        &SMALL_CNN
            .replace("[1, 28, 28]", "[3, 24, 20]")
            .replace("units = 10", "units = 2"),
    );
    let out = s.root.join("run");
    let face = |extra: &[&str]| {
        let mut args = vec![
            "face",
            "--data",
            faces.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--epochs",
            "1",
        ];
        args.extend_from_slice(extra);
        run(&keraslike(), &args, None, &[])
    };
    let err = one_line_error(&face(&[]));
    assert!(
        err.contains(noise.to_str().unwrap()) && err.contains("corrupt"),
        "{err}"
    );
    assert!(!out.exists(), "nothing written before training");

    let skipped = face(&["--skip-invalid"]);
    assert!(skipped.status.success(), "{}", text(&skipped.stderr));
    let warnings = text(&skipped.stderr);
    for name in ["noise.jpg", "cut.jpg", "damaged.png"] {
        assert!(
            warnings
                .lines()
                .any(|l| l.starts_with("warning: skipping") && l.contains(name)),
            "no warning for {name} in\n{warnings}"
        );
    }
    let stdout = text(&skipped.stdout);
    assert!(
        stdout.contains("Found 12 images belonging to 2 classes."),
        "{stdout}"
    );
}
