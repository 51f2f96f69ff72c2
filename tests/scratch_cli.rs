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
