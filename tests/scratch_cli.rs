//! `scratch` end to end, on generated MNIST-format files in a temporary data folder.

use std::path::Path;

use e2e::{binary, one_line_error, run, text};

fn scratch() -> std::path::PathBuf {
    binary("scratch", "scratch")
}

/// A data folder with generated MNIST files (600 train, 100 test).
fn data() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    dataset::synthetic::write_mnist_dir(&dir.path().join("mnist"), 600, 100, true, 3).unwrap();
    dir
}

fn with_data(dir: &Path) -> Vec<(&'static str, &Path)> {
    vec![("DL_DATA_DIR", dir)]
}

#[test]
fn gates_prints_the_four_truth_tables() {
    let out = run(&scratch(), &["gates"], None, &[]);
    assert!(out.status.success());
    let s = text(&out.stdout);
    for name in ["AND", "OR", "NAND", "XOR"] {
        assert!(s.contains(name), "{s}");
    }
    // The XOR table's rows.
    let xor = s.split("XOR").nth(1).unwrap();
    assert!(
        xor.contains("0  0 | 0") && xor.contains("1  0 | 1") && xor.contains("1  1 | 0"),
        "{xor}"
    );
}

#[test]
fn help_explains_every_command() {
    let out = run(&scratch(), &["--help"], None, &[]);
    let s = text(&out.stdout);
    for cmd in ["gates", "predict", "loss", "train", "eval"] {
        assert!(s.contains(cmd), "{s}");
    }
    let out = run(&scratch(), &["train", "--help"], None, &[]);
    assert!(text(&out.stdout).contains("--data-dir"));
}

#[test]
fn predict_reads_stdin_and_is_deterministic() {
    let dir = data();
    let a = run(
        &scratch(),
        &["predict"],
        Some("7\n"),
        &with_data(dir.path()),
    );
    assert!(a.status.success(), "{}", text(&a.stderr));
    let digit: u8 = text(&a.stdout).trim().parse().unwrap();
    assert!(digit < 10);
    let b = run(
        &scratch(),
        &["predict", "--index", "7"],
        None,
        &with_data(dir.path()),
    );
    assert_eq!(a.stdout, b.stdout);
}

#[test]
fn predict_rejects_bad_indices_with_one_line() {
    let dir = data();
    for bad in ["abc", "100", "-1", ""] {
        let out = run(
            &scratch(),
            &["predict"],
            Some(&format!("{bad}\n")),
            &with_data(dir.path()),
        );
        one_line_error(&out);
    }
}

#[test]
fn loss_of_random_weights_is_near_ln_10() {
    let dir = data();
    let out = run(
        &scratch(),
        &["loss", "--batch-size", "50"],
        None,
        &with_data(dir.path()),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let loss: f32 = text(&out.stdout).trim().parse().unwrap();
    assert!((1.5..4.0).contains(&loss), "{loss}");
}

#[test]
fn train_saves_resumes_and_evaluates() {
    let dir = data();
    let weights = dir.path().join("w.safetensors");
    let w = weights.to_str().unwrap();
    let out = run(
        &scratch(),
        &["train", "--epochs", "3", "--hidden", "32", "--out", w],
        None,
        &with_data(dir.path()),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let log = text(&out.stdout);
    assert_eq!(log.matches("epoch ").count(), 3, "{log}");
    assert!(log.contains("test acc"), "{log}");

    let out = run(
        &scratch(),
        &["train", "--epochs", "1", "--resume", w],
        None,
        &with_data(dir.path()),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("epoch   4/4"),
        "{}",
        text(&out.stdout)
    );

    let out = run(
        &scratch(),
        &["eval", "--weights", w],
        None,
        &with_data(dir.path()),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    let acc: f32 = report
        .split("test accuracy ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(acc > 0.9, "generated digits are easy: {report}");
    assert!(report.contains("confusion matrix"), "{report}");

    let out = run(
        &scratch(),
        &["predict", "--weights", w, "--index", "3"],
        None,
        &with_data(dir.path()),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// `visualize` draws each of the M hidden units' 784 weights as a 28×28 tile, the
/// brightest pixel where the unit's weight is largest.
#[test]
fn visualize_draws_the_first_layers_weights_as_tiles() {
    let dir = data();
    let weights = dir.path().join("w.safetensors");
    let w = weights.to_str().unwrap();
    let out = run(
        &scratch(),
        &["train", "--epochs", "1", "--hidden", "12", "--out", w],
        None,
        &with_data(dir.path()),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let pictures = dir.path().join("pictures");
    let vis = run(
        &scratch(),
        &[
            "visualize",
            "--weights",
            w,
            "--out",
            pictures.to_str().unwrap(),
        ],
        None,
        &[],
    );
    assert!(vis.status.success(), "{}", text(&vis.stderr));
    assert!(text(&vis.stdout).contains("12 tiles of 28×28"));
    let picture = image::open(pictures.join("w_first_layer.png"))
        .unwrap()
        .to_rgb8();
    // 12 tiles of 28×28 enlarged twice: 4 columns, 3 rows, 2 pixels apart.
    assert_eq!(picture.dimensions(), (4 * 58 + 2, 3 * 58 + 2));
    // The first tile's brightest pixel is where unit 1's weight is largest.
    let tensors = std::fs::read(&weights).unwrap();
    let file = safetensors::SafeTensors::deserialize(&tensors).unwrap();
    let w1 = file.tensor("W1").unwrap();
    let values: Vec<f32> = w1
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let units = w1.shape()[1];
    let unit0: Vec<f32> = values.iter().step_by(units).copied().collect();
    let top = (0..784)
        .max_by(|&a, &b| unit0[a].total_cmp(&unit0[b]))
        .unwrap();
    let (x, y) = (2 + 2 * (top % 28) as u32, 2 + 2 * (top / 28) as u32);
    assert_eq!(picture.get_pixel(x, y).0, [255; 3]);
    // Without --out, beside the weights; a file that is not weights is one line.
    let vis = run(&scratch(), &["visualize", "--weights", w], None, &[]);
    assert!(vis.status.success(), "{}", text(&vis.stderr));
    assert!(dir.path().join("w_first_layer.png").is_file());
    let bogus = dir.path().join("bogus.safetensors");
    std::fs::write(&bogus, b"not weights").unwrap();
    let err = one_line_error(&run(
        &scratch(),
        &["visualize", "--weights", bogus.to_str().unwrap()],
        None,
        &[],
    ));
    assert!(err.contains("bogus.safetensors"), "{err}");
}

#[test]
fn bad_weights_and_missing_data_are_one_line_errors() {
    let dir = data();
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, "junk").unwrap();
    let out = run(
        &scratch(),
        &["eval", "--weights", junk.to_str().unwrap()],
        None,
        &with_data(dir.path()),
    );
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("junk.safetensors"));

    let empty = tempfile::tempdir().unwrap();
    let out = run(
        &scratch(),
        &[
            "loss",
            "--offline",
            "--data-dir",
            empty.path().to_str().unwrap(),
        ],
        None,
        &[],
    );
    let err = one_line_error(&out);
    assert!(err.contains("mnist"), "{err}");
}

#[test]
fn zero_batch_size_is_refused() {
    let dir = data();
    let out = run(
        &scratch(),
        &["train", "--batch-size", "0"],
        None,
        &with_data(dir.path()),
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--batch-size"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn bad_config_is_reported_before_training() {
    let dir = data();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[[layers]]\ntype = \"affine\"\nunits = 7\n").unwrap();
    let out = run(
        &scratch(),
        &["train", "--config", cfg.to_str().unwrap()],
        None,
        &with_data(dir.path()),
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("10 classes") && !text(&out.stdout).contains("epoch"),
        "{err}"
    );
}

#[cfg(unix)]
#[test]
fn ctrl_c_saves_the_weights_and_exits_130() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = data();
    let weights = dir.path().join("w.safetensors");
    let mut child = Command::new(scratch())
        .args([
            "train",
            "--epochs",
            "100000",
            "--hidden",
            "16",
            "--out",
            weights.to_str().unwrap(),
        ])
        .env("DL_DATA_DIR", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first finished epoch, then interrupt as a terminal's Ctrl-C would.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(lines.any(|l| l.unwrap().starts_with("epoch")));
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let out = run(
        &scratch(),
        &["eval", "--weights", weights.to_str().unwrap()],
        None,
        &with_data(dir.path()),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// A small conv net: conv (padded) → BatchNorm → ReLU → pool → flatten → dropout → affine.
const SMALL_CNN: &str = r#"
[train]
epochs = 2
batch_size = 20

[optimizer]
type = "adam"

[regularization]
l2 = 0.0001

[[layers]]
type = "conv"
filters = 6
size = 3
pad = 1

[[layers]]
type = "batch_norm"

[[layers]]
type = "relu"

[[layers]]
type = "max_pool"
size = 2

[[layers]]
type = "flatten"

[[layers]]
type = "dropout"
ratio = 0.2

[[layers]]
type = "affine"
units = 10
"#;

fn test_accuracy(report: &str) -> f32 {
    report
        .split("test accuracy ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no test accuracy in {report}"))
}

#[test]
fn conv_config_trains_and_every_command_uses_the_file() {
    let dir = data();
    let cfg = dir.path().join("cnn.toml");
    std::fs::write(&cfg, SMALL_CNN).unwrap();
    let weights = dir.path().join("cnn.safetensors");
    let w = weights.to_str().unwrap();
    let out = run(
        &scratch(),
        &["train", "--config", cfg.to_str().unwrap(), "--out", w],
        None,
        &with_data(dir.path()),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let log = text(&out.stdout);
    assert!(
        log.contains("conv 6×3×3") && log.contains("[14×14×6]"),
        "{log}"
    );
    // The conv config's kernels as a picture: 6 tiles of 3×3, enlarged 12 times.
    let vis = run(&scratch(), &["visualize", "--weights", w], None, &[]);
    assert!(
        text(&vis.stdout).contains("6 3×3 kernels"),
        "{}",
        text(&vis.stderr)
    );
    let kernels = image::open(dir.path().join("cnn_kernels.png")).unwrap();
    assert_eq!(
        (kernels.width(), kernels.height()),
        (3 * 38 + 2, 2 * 38 + 2)
    );
    // Every parameter and BatchNorm's running statistics are in the file.
    let bytes = std::fs::read(&weights).unwrap();
    let header = String::from_utf8_lossy(&bytes[..2000.min(bytes.len())]);
    for name in [
        "\"W1\"",
        "\"gamma1\"",
        "\"running_mean1\"",
        "\"running_var1\"",
        "\"W2\"",
    ] {
        assert!(header.contains(name), "{name} missing from {header}");
    }

    let out = run(
        &scratch(),
        &["eval", "--weights", w],
        None,
        &with_data(dir.path()),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let acc = test_accuracy(&text(&out.stdout));
    assert!(
        acc > 0.8,
        "generated digits are easy: {}",
        text(&out.stdout)
    );

    let out = run(
        &scratch(),
        &["predict", "--weights", w, "--index", "5"],
        None,
        &with_data(dir.path()),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let png = dir.path().join("digit.png");
    image::GrayImage::from_fn(40, 40, |x, _| {
        image::Luma([if (18..22).contains(&x) { 0 } else { 255 }])
    })
    .save(&png)
    .unwrap();
    let out = run(
        &scratch(),
        &["predict", "--weights", w, "--image", png.to_str().unwrap()],
        None,
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).lines().count(),
        11,
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn layers_that_do_not_fit_are_reported_with_the_layer_and_shapes() {
    let dir = data();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "[[layers]]\ntype = \"max_pool\"\nsize = 2\n\n[[layers]]\ntype = \"conv\"\nfilters = 4\nsize = 15\n\n[[layers]]\ntype = \"affine\"\nunits = 10\n",
    )
    .unwrap();
    let out = run(
        &scratch(),
        &["train", "--config", cfg.to_str().unwrap()],
        None,
        &with_data(dir.path()),
    );
    let err = one_line_error(&out);
    assert!(
        err.contains("layer 2") && err.contains("14×14×1") && err.contains("15×15"),
        "{err}"
    );
    assert!(!text(&out.stdout).contains("epoch"));

    std::fs::write(&cfg, "[[layers]]\ntype = \"convolution\"\nfilters = 4\n").unwrap();
    let out = run(
        &scratch(),
        &["train", "--config", cfg.to_str().unwrap()],
        None,
        &with_data(dir.path()),
    );
    let err = text(&out.stderr);
    assert!(
        !out.status.success() && err.contains("bad.toml") && err.contains("convolution"),
        "{err}"
    );
}

#[test]
fn compare_trains_each_config_into_one_csv_and_one_png() {
    let dir = data();
    let mut configs = Vec::new();
    for opt in ["sgd", "adam"] {
        let path = dir.path().join(format!("opt-{opt}.toml"));
        std::fs::write(
            &path,
            format!(
                "[train]\nepochs = 2\nbatch_size = 50\n[optimizer]\ntype = \"{opt}\"\n\
                 [[layers]]\ntype = \"affine\"\nunits = 16\n[[layers]]\ntype = \"relu\"\n\
                 [[layers]]\ntype = \"affine\"\nunits = 10\n"
            ),
        )
        .unwrap();
        configs.push(path.to_str().unwrap().to_string());
    }
    let out_dir = dir.path().join("cmp");
    let mut args = vec!["compare"];
    args.extend(configs.iter().map(String::as_str));
    args.extend(["--out", out_dir.to_str().unwrap()]);
    let out = run(&scratch(), &args, None, &with_data(dir.path()));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let csv = std::fs::read_to_string(out_dir.join("compare.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows[0], "config,epoch,loss,train_acc,test_acc,seconds");
    assert_eq!(rows.len(), 5, "{csv}");
    assert!(
        rows[1].starts_with("opt-sgd,1,") && rows[4].starts_with("opt-adam,2,"),
        "{csv}"
    );
    // The chart is always drawn: its font is compiled in.
    let png = out_dir.join("compare.png");
    assert!(png.is_file(), "{}", text(&out.stderr));
}

#[test]
fn colour_image_folders_train_through_the_same_layers() {
    let dir = tempfile::tempdir().unwrap();
    for split in ["train", "test"] {
        dataset::synthetic::write_image_folder(
            &dir.path().join("shapes").join(split),
            &["a", "b", "c"],
            20,
            (12, 12),
            4,
        )
        .unwrap();
    }
    let cfg = dir.path().join("cnn.toml");
    std::fs::write(&cfg, SMALL_CNN.replace("units = 10", "units = 3")).unwrap();
    let folder = format!("folder:{}", dir.path().join("shapes").display());
    let weights = dir.path().join("w.safetensors");
    let out = run(
        &scratch(),
        &[
            "train",
            "--config",
            cfg.to_str().unwrap(),
            "--dataset",
            &folder,
            "--epochs",
            "3",
            "--out",
            weights.to_str().unwrap(),
        ],
        None,
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("12×12×3"),
        "{}",
        text(&out.stdout)
    );
    // eval finds the data set from the weights file and prints the class names.
    let out = run(
        &scratch(),
        &["eval", "--weights", weights.to_str().unwrap()],
        None,
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    assert!(
        report.contains("folder:") && report.lines().any(|l| l.trim_start().starts_with("c ")),
        "{report}"
    );
}
