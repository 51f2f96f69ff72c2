//! `keraslike` end to end.

use std::path::Path;

use e2e::{binary, one_line_error, run, text};

fn keraslike() -> std::path::PathBuf {
    binary("keraslike", "keraslike")
}

fn config(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../configs")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

#[test]
fn summary_of_the_course_cnn_matches_keras() {
    let out = run(
        &keraslike(),
        &["summary", "--config", &config("mnist-cnn.toml")],
        None,
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    for row in [
        "conv2d (Conv2D)",
        "(None, 28, 28, 32)",
        "320",
        "18,496",
        "max_pooling2d (MaxPooling2D)",
        "(None, 12544)",
        "1,605,760",
        "1,290",
        "Total params: 1,625,866",
    ] {
        assert!(s.contains(row), "missing {row:?} in\n{s}");
    }
}

#[test]
fn summary_of_a_bad_config_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "input = [1, 28, 28]\n[[layers]]\ntype = \"Dense\"\nunits = 10\n",
    )
    .unwrap();
    let out = run(
        &keraslike(),
        &["summary", "--config", path.to_str().unwrap()],
        None,
        &[],
    );
    let err = one_line_error(&out);
    assert!(
        err.contains("bad.toml") && err.contains("layer 1 (Dense)"),
        "{err}"
    );
}

#[test]
fn backends_reports_cpu_backends_and_wgpu_without_panicking() {
    let out = run(&keraslike(), &["backends"], None, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.contains("Flex: ok") && s.contains("Ndarray: ok"), "{s}");
    assert!(
        s.contains("Wgpu: ok") || s.contains("Wgpu: unavailable"),
        "{s}"
    );
    assert!(
        !text(&out.stderr).contains("panicked"),
        "{}",
        text(&out.stderr)
    );
}
