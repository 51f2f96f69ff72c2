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
fn every_shipped_model_config_summarises() {
    // mnist-best has BatchNorm: its moving statistics count in the total, not as trainable.
    for name in [
        "mnist-best.toml",
        "mnist-cnn-augment.toml",
        "mnist-overfit.toml",
        "face.toml",
        "faces-64.toml",
        "faces-64-binary.toml",
        "cifar10-cnn.toml",
    ] {
        let out = run(
            &keraslike(),
            &["summary", "--config", &config(name)],
            None,
            &[],
        );
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("Total params:"), "{name}");
    }
    let out = run(
        &keraslike(),
        &["summary", "--config", &config("mnist-best.toml")],
        None,
        &[],
    );
    let s = text(&out.stdout);
    for row in [
        "Total params: 469,098",
        "Trainable params: 468,458",
        "Non-trainable params: 640",
    ] {
        assert!(s.contains(row), "missing {row:?} in\n{s}");
    }
}

#[test]
fn a_learning_rate_decay_above_one_is_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("growing.toml");
    let course = std::fs::read_to_string(config("mnist-cnn.toml")).unwrap();
    let growing = course.replace("[compile]", "[compile]\nlr_decay = 1.5");
    std::fs::write(&path, growing).unwrap();
    let out = run(
        &keraslike(),
        &["mnist", "--config", path.to_str().unwrap(), "--offline"],
        None,
        &[],
    );
    let err = one_line_error(&out);
    assert!(err.contains("lr_decay") && err.contains("1.5"), "{err}");
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

/// A small CNN, quick to train on the generated bars.
const SMALL_CNN: &str = "input = [1, 28, 28]\n\
    [[layers]]\ntype = \"Conv2D\"\nfilters = 4\nkernel_size = 3\nstrides = 2\nactivation = \"relu\"\n\
    [[layers]]\ntype = \"MaxPooling2D\"\npool_size = 2\n\
    [[layers]]\ntype = \"Flatten\"\n\
    [[layers]]\ntype = \"Dense\"\nunits = 10\nactivation = \"softmax\"\n\
    [compile]\noptimizer = \"adam\"\nlearning_rate = 0.01\n";

fn lines_of(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .count()
}

/// The seed fixes a run: the same seed gives the same history (losses and accuracies to
/// the last printed digit) with one loader worker or three, dropout included, and another
/// seed gives another run.
#[test]
fn a_seeded_fit_repeats_exactly_whatever_the_number_of_workers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    dataset::synthetic::write_mnist_dir(&data.join("mnist"), 300, 100, true, 4).unwrap();
    let config = dir.path().join("dropout.toml");
    std::fs::write(
        &config,
        SMALL_CNN.replace(
            "[[layers]]\ntype = \"Flatten\"\n",
            "[[layers]]\ntype = \"Flatten\"\n[[layers]]\ntype = \"Dropout\"\nrate = 0.3\n",
        ),
    )
    .unwrap();
    let fit = |name: &str, workers: &str, seed: &str| {
        let out = dir.path().join(name);
        let done = run(
            &keraslike(),
            &[
                "mnist",
                "--offline",
                "--config",
                config.to_str().unwrap(),
                "--epochs",
                "2",
                "--workers",
                workers,
                "--seed",
                seed,
                "--out",
                out.to_str().unwrap(),
            ],
            None,
            &[("DL_DATA_DIR", &data)],
        );
        assert!(done.status.success(), "{}", text(&done.stderr));
        // Every column but the seconds.
        std::fs::read_to_string(out.join("history.csv"))
            .unwrap()
            .lines()
            .map(|l| l.rsplit_once(',').unwrap().0.to_string())
            .collect::<Vec<_>>()
    };
    let one = fit("one", "1", "5");
    assert_eq!(fit("three", "3", "5"), one);
    assert_ne!(fit("other", "3", "6"), one);
}

#[test]
fn mnist_trains_resumes_evaluates_and_predicts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    dataset::synthetic::write_mnist_dir(&data.join("mnist"), 600, 200, true, 3).unwrap();
    let config = dir.path().join("small.toml");
    std::fs::write(&config, SMALL_CNN).unwrap();
    let out = dir.path().join("run");
    let (config, out_s) = (config.to_str().unwrap(), out.to_str().unwrap());
    let train = |extra: &[&str]| {
        let mut args = vec!["mnist", "--config", config, "--out", out_s, "--offline"];
        args.extend_from_slice(extra);
        run(&keraslike(), &args, None, &[("DL_DATA_DIR", &data)])
    };

    let first = train(&["--epochs", "2"]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let s = text(&first.stdout);
    for expected in [
        "Epoch 1/2",
        "Epoch 2/2",
        "val_acc",
        "Test accuracy",
        "Confusion",
    ] {
        assert!(s.contains(expected), "missing {expected:?} in\n{s}");
    }
    for file in ["model.bpk", "model.toml", "history.csv", "confusion.csv"] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    assert_eq!(lines_of(&out.join("history.csv")), 3);
    // The bars are easy: the test accuracy line must show it learned.
    let acc = test_accuracy(&s);
    assert!(acc > 0.9, "test accuracy {acc}\n{s}");
    // sklearn's classification report, and the grid of the surest mistakes when any.
    assert!(s.contains("f1-score") && s.contains("weighted avg"), "{s}");
    assert_eq!(out.join("misclassified.png").is_file(), acc < 1.0, "{s}");
    assert!(out.join("model.safetensors").is_file());

    // Starting again into the same folder would overwrite the run: refused, nothing touched.
    let history_before = std::fs::read(out.join("history.csv")).unwrap();
    let err = one_line_error(&train(&["--epochs", "2"]));
    assert!(err.contains("--resume"), "{err}");
    assert_eq!(
        std::fs::read(out.join("history.csv")).unwrap(),
        history_before
    );

    let resumed = train(&["--epochs", "3", "--resume"]);
    assert!(resumed.status.success(), "{}", text(&resumed.stderr));
    let s = text(&resumed.stdout);
    assert!(
        s.contains("Resuming from epoch 2") && s.contains("Epoch 3/3"),
        "{s}"
    );
    assert_eq!(lines_of(&out.join("history.csv")), 4);

    let model = out.join("model.bpk");
    let model_s = model.to_str().unwrap();
    let eval = run(
        &keraslike(),
        &["evaluate", "--model", model_s, "--offline"],
        None,
        &[("DL_DATA_DIR", &data)],
    );
    assert!(eval.status.success(), "{}", text(&eval.stderr));
    let s = text(&eval.stdout);
    assert!(
        s.contains("200 test images") && s.contains("Test accuracy"),
        "{s}"
    );

    // A stroke as a user would draw it: dark on white paper, any size.
    let png = dir.path().join("digit.png");
    let mut img = image::GrayImage::from_pixel(56, 40, image::Luma([250]));
    for y in 6..34 {
        for x in 24..30 {
            img.put_pixel(x, y, image::Luma([20]));
        }
    }
    img.save(&png).unwrap();
    let pred = run(
        &keraslike(),
        &["predict", "--model", model_s, png.to_str().unwrap()],
        None,
        &[],
    );
    assert!(pred.status.success(), "{}", text(&pred.stderr));
    let s = text(&pred.stdout);
    // One line: the file, the predicted class, then all ten probabilities.
    assert_eq!(s.lines().count(), 1, "{s}");
    assert!(s.starts_with(png.to_str().unwrap()), "{s}");
    assert_eq!(
        s.matches(": 0.").count() + s.matches(": 1.0").count(),
        10,
        "{s}"
    );

    let missing = run(
        &keraslike(),
        &["predict", "--model", model_s, "nope.png"],
        None,
        &[],
    );
    assert!(one_line_error(&missing).contains("nope.png"));
}

#[test]
fn evaluate_and_predict_report_missing_models_in_one_line() {
    let out = run(
        &keraslike(),
        &["evaluate", "--model", "no/such/model.bpk", "--offline"],
        None,
        &[],
    );
    assert!(one_line_error(&out).contains("no/such/model.bpk"));
}

/// A small CNN for 24×20 colour images of two classes.
const SMALL_FACE_CNN: &str = "input = [3, 24, 20]\n\
    [[layers]]\ntype = \"Conv2D\"\nfilters = 4\nkernel_size = 3\npadding = \"same\"\nactivation = \"relu\"\n\
    [[layers]]\ntype = \"MaxPooling2D\"\npool_size = 2\n\
    [[layers]]\ntype = \"Flatten\"\n\
    [[layers]]\ntype = \"Dense\"\nunits = 2\nactivation = \"softmax\"\n\
    [compile]\noptimizer = \"adam\"\nlearning_rate = 0.01\n";

/// `root/{train,test}/{nonsmile,smile}` of generated bar images, plus in train/ a few of
/// other sizes and modes (grey PNG, RGBA PNG, JPEG) that the loader must take as they are.
fn face_folders(root: &Path) {
    let classes = ["nonsmile", "smile"];
    dataset::synthetic::write_image_folder(&root.join("train"), &classes, 60, (20, 24), 1).unwrap();
    dataset::synthetic::write_image_folder(&root.join("test"), &classes, 20, (20, 24), 2).unwrap();
    let odd = root.join("train/smile");
    image::GrayImage::from_pixel(50, 31, image::Luma([90]))
        .save(odd.join("grey.png"))
        .unwrap();
    image::RgbaImage::from_pixel(13, 17, image::Rgba([10, 200, 30, 128]))
        .save(odd.join("alpha.png"))
        .unwrap();
    image::RgbImage::from_pixel(64, 48, image::Rgb([200, 100, 50]))
        .save(root.join("train/nonsmile/photo.jpg"))
        .unwrap();
}

/// `face --data DATA --config CONFIG --out OUT` then `flags`.
fn train_face(data: &Path, config: &Path, out: &Path, flags: &[&str]) -> std::process::Output {
    let mut args = vec![
        "face",
        "--data",
        data.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(flags);
    run(&keraslike(), &args, None, &[])
}

/// A short run: 3 epochs of 5 steps of 16 images, 2 validation steps.
const SHORT_FACE_RUN: [&str; 8] = [
    "--epochs",
    "3",
    "--steps-per-epoch",
    "5",
    "--validation-steps",
    "2",
    "--batch-size",
    "16",
];

#[test]
fn face_trains_from_image_folders_and_evaluates_and_predicts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("faces");
    face_folders(&data);
    let config = dir.path().join("face.toml");
    std::fs::write(&config, SMALL_FACE_CNN).unwrap();
    let out = dir.path().join("run");
    let run_out = train_face(&data, &config, &out, &SHORT_FACE_RUN);
    assert!(run_out.status.success(), "{}", text(&run_out.stderr));
    let s = text(&run_out.stdout);
    for expected in [
        "Found 123 images belonging to 2 classes.",
        "Found 40 images belonging to 2 classes.",
        "class_indices: {'nonsmile': 0, 'smile': 1}",
        "Epoch 3/3",
        "40 test images",
        "smile: precision",
    ] {
        assert!(s.contains(expected), "missing {expected:?} in\n{s}");
    }
    assert_eq!(lines_of(&out.join("history.csv")), 4);
    let acc = test_accuracy(&s);
    assert!(acc >= 0.8, "test accuracy {acc}\n{s}");
    // Keras's default resizing, kept with the model for evaluate and predict.
    let card = std::fs::read_to_string(out.join("model.toml")).unwrap();
    assert!(card.contains("interpolation = \"nearest\""), "{card}");

    let model = out.join("model.bpk");
    let eval = run(
        &keraslike(),
        &["evaluate", "--model", model.to_str().unwrap()],
        None,
        &[],
    );
    assert!(eval.status.success(), "{}", text(&eval.stderr));
    assert!(text(&eval.stdout).contains("Test accuracy"));

    // Any size and mode: the model resizes as it was trained.
    let photo = data.join("train/nonsmile/photo.jpg");
    let grey = data.join("train/smile/grey.png");
    let pred = run(
        &keraslike(),
        &[
            "predict",
            "--model",
            model.to_str().unwrap(),
            photo.to_str().unwrap(),
            grey.to_str().unwrap(),
        ],
        None,
        &[],
    );
    assert!(pred.status.success(), "{}", text(&pred.stderr));
    let s = text(&pred.stdout);
    assert_eq!(s.lines().count(), 2, "{s}");
    assert!(s.lines().all(|l| l.contains("smile: ")), "{s}");
}

/// `--class-mode binary`: Keras's one-sigmoid-unit head learns the two classes, and
/// evaluate and predict read it as two probabilities; a head or data that does not fit
/// the mode is one clear line before training.
#[test]
fn class_mode_binary_trains_a_single_sigmoid_unit() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("faces");
    face_folders(&data);
    let binary = dir.path().join("binary.toml");
    std::fs::write(&binary, binary_head(SMALL_FACE_CNN)).unwrap();
    let softmax = dir.path().join("softmax.toml");
    std::fs::write(&softmax, SMALL_FACE_CNN).unwrap();
    let face = |config: &Path, out: &str, extra: &[&str]| {
        let flags = [&SHORT_FACE_RUN[..], extra].concat();
        train_face(&data, config, &dir.path().join(out), &flags)
    };
    let trained = face(&binary, "run", &["--class-mode", "binary"]);
    assert!(trained.status.success(), "{}", text(&trained.stderr));
    let s = text(&trained.stdout);
    assert!(s.contains("class_mode: binary"), "{s}");
    assert!(s.contains("(None, 1)"), "the summary shows one output\n{s}");
    let acc = test_accuracy(&s);
    assert!(acc >= 0.8, "test accuracy {acc}\n{s}");

    let model = dir.path().join("run/model.bpk");
    let eval = run(
        &keraslike(),
        &["evaluate", "--model", model.to_str().unwrap()],
        None,
        &[],
    );
    assert!(eval.status.success(), "{}", text(&eval.stderr));
    assert!(text(&eval.stdout).contains("smile: precision"));
    let photo = data.join("train/nonsmile/photo.jpg");
    let pred = run(
        &keraslike(),
        &[
            "predict",
            "--model",
            model.to_str().unwrap(),
            photo.to_str().unwrap(),
        ],
        None,
        &[],
    );
    assert!(pred.status.success(), "{}", text(&pred.stderr));
    let line = text(&pred.stdout);
    // "file: class (nonsmile: p0, smile: p1)"
    let inside = &line[line.rfind('(').unwrap() + 1..line.rfind(')').unwrap()];
    let sum: f64 = inside
        .split(", ")
        .map(|pair| pair.rsplit(": ").next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(inside.split(", ").count(), 2, "{line}");
    assert!((sum - 1.0).abs() < 1e-3, "{line}");

    // A softmax head asked to be binary, a binary head asked to be categorical, and a
    // binary head on three classes.
    let err = one_line_error(&face(&softmax, "bad1", &["--class-mode", "binary"]));
    assert!(
        err.contains("one sigmoid unit") && err.contains("(None, 2)"),
        "{err}"
    );
    let err = one_line_error(&face(&binary, "bad2", &["--class-mode", "categorical"]));
    assert!(err.contains("binary"), "{err}");
    dataset::synthetic::write_image_folder(&data.join("train"), &["zzz"], 3, (20, 24), 1).unwrap();
    dataset::synthetic::write_image_folder(&data.join("test"), &["zzz"], 3, (20, 24), 1).unwrap();
    let err = one_line_error(&face(&binary, "bad3", &[]));
    assert!(
        err.contains("exactly 2 classes") && err.contains("zzz"),
        "{err}"
    );
    for bad in ["bad1", "bad2", "bad3"] {
        assert!(!dir.path().join(bad).exists(), "{bad}: nothing written");
    }
}

/// `visualize` on a trained CNN: the kernels, every Conv2D's and pooling's maps, Grad-CAM
/// and saliency, and the numbers, whose probabilities are `predict`'s.
#[test]
fn visualize_draws_kernels_feature_maps_and_grad_cam() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("faces");
    face_folders(&data);
    let config = dir.path().join("face.toml");
    std::fs::write(&config, SMALL_FACE_CNN).unwrap();
    let out = dir.path().join("run");
    let trained = train_face(
        &data,
        &config,
        &out,
        &["--epochs", "2", "--batch-size", "16"],
    );
    assert!(trained.status.success(), "{}", text(&trained.stderr));
    let model = out.join("model.bpk");
    let image = std::fs::read_dir(data.join("test/smile"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .min()
        .unwrap();
    let pictures = dir.path().join("pictures");
    let visualize = |extra: &[&str]| {
        let mut args = vec![
            "visualize",
            "--model",
            model.to_str().unwrap(),
            "--out",
            pictures.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        run(&keraslike(), &args, None, &[])
    };
    let vis = visualize(&["--image", image.to_str().unwrap()]);
    assert!(vis.status.success(), "{}", text(&vis.stderr));
    let s = text(&vis.stdout);
    assert!(s.contains("Grad-CAM of") && s.contains("at conv2d"), "{s}");
    for file in [
        "kernels.png",
        "input.png",
        "feature_maps/1_conv2d.png",
        "feature_maps/2_max_pooling2d.png",
        "gradcam.png",
        "gradcam_heat.png",
        "saliency.png",
    ] {
        assert!(pictures.join(file).is_file(), "{file} missing\n{s}");
    }
    // 4 colour 3×3 kernels: a 2 × 2 grid of 36-pixel tiles, 2 pixels apart.
    let kernels = image::open(pictures.join("kernels.png")).unwrap().to_rgb8();
    assert_eq!(kernels.dimensions(), (78, 78));
    assert!(
        kernels.pixels().any(|p| p[0] != p[1] || p[1] != p[2]),
        "in colour"
    );
    let json = explanation(&pictures);
    let cam = grid_of(&json["grad_cam"]);
    assert_eq!((cam.len(), cam[0].len()), (24, 20));
    assert!(cam.iter().flatten().all(|v| (0.0..=1.0).contains(v)));

    let pred = run(
        &keraslike(),
        &[
            "predict",
            "--model",
            model.to_str().unwrap(),
            image.to_str().unwrap(),
        ],
        None,
        &[],
    );
    let line = text(&pred.stdout);
    for class in ["nonsmile", "smile"] {
        let p = json["probabilities"][class].as_f64().unwrap();
        assert!(line.contains(&format!("{class}: {p:.4}")), "{p} vs {line}");
    }

    // Another class explained; a class the model lacks; no image: kernels only.
    let other = if json["class"] == "smile" {
        "nonsmile"
    } else {
        "smile"
    };
    let vis = visualize(&["--image", image.to_str().unwrap(), "--class", other]);
    assert!(vis.status.success(), "{}", text(&vis.stderr));
    assert_eq!(explanation(&pictures)["class"], other);
    let err = one_line_error(&visualize(&[
        "--image",
        image.to_str().unwrap(),
        "--class",
        "cat",
    ]));
    assert!(
        err.contains("cat") && err.contains("nonsmile, smile"),
        "{err}"
    );
    let vis = visualize(&[]);
    assert!(text(&vis.stdout).contains("Pass --image"));
}

#[test]
fn face_rejects_bad_folders_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("faces");
    let face = |data: &Path| {
        run(
            &keraslike(),
            &[
                "face",
                "--data",
                data.to_str().unwrap(),
                "--out",
                dir.path().join("run").to_str().unwrap(),
            ],
            None,
            &[],
        )
    };
    // No test/.
    dataset::synthetic::write_image_folder(
        &data.join("train"),
        &["nonsmile", "smile"],
        2,
        (8, 8),
        1,
    )
    .unwrap();
    let err = one_line_error(&face(&data));
    assert!(err.contains("test") && err.contains("missing"), "{err}");
    // Different classes in test/.
    dataset::synthetic::write_image_folder(
        &data.join("test"),
        &["nonsmile", "smiling"],
        2,
        (8, 8),
        1,
    )
    .unwrap();
    let err = one_line_error(&face(&data));
    assert!(err.contains("smiling"), "{err}");
    // An unreadable image.
    std::fs::remove_dir_all(data.join("test/smiling")).unwrap();
    dataset::synthetic::write_image_folder(&data.join("test"), &["smile"], 2, (8, 8), 1).unwrap();
    std::fs::write(data.join("train/smile/broken.png"), b"not an image").unwrap();
    let err = one_line_error(&face(&data));
    assert!(err.contains("broken.png"), "{err}");
    assert!(
        !dir.path().join("run").exists(),
        "nothing written before training"
    );
}

#[test]
fn training_on_wgpu_without_an_adapter_is_one_clear_line() {
    let probe = text(&run(&keraslike(), &["backends"], None, &[]).stdout);
    if !probe.contains("Wgpu: unavailable") {
        eprintln!("a wgpu adapter exists here; the no-adapter path is not reachable");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    dataset::synthetic::write_mnist_dir(&data.join("mnist"), 20, 10, true, 3).unwrap();
    let out = run(
        &keraslike(),
        &[
            "mnist",
            "--backend",
            "wgpu",
            "--offline",
            "--out",
            dir.path().join("run").to_str().unwrap(),
        ],
        None,
        &[("DL_DATA_DIR", &data)],
    );
    let err = one_line_error(&out);
    assert!(err.contains("--backend flex"), "{err}");
}

/// The shared data folder CI points DL_DATA_DIR at.
fn shared_data() -> std::path::PathBuf {
    std::env::var_os("DL_DATA_DIR")
        .map(std::path::PathBuf::from)
        .expect("set DL_DATA_DIR to the folder holding mnist/ and faces/")
}

fn test_accuracy(stdout: &str) -> f64 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("Test accuracy: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no test accuracy line in\n{stdout}"))
}

#[test]
#[ignore = "needs real MNIST: DL_DATA_DIR"]
fn real_mnist_course_cnn_learns_in_one_short_epoch() {
    let data = shared_data();
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        &keraslike(),
        &[
            "mnist",
            "--epochs",
            "1",
            "--train-limit",
            "12000",
            "--test-limit",
            "2000",
            "--offline",
            "--out",
            dir.path().join("run").to_str().unwrap(),
        ],
        None,
        &[("DL_DATA_DIR", &data)],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    println!("{s}");
    assert!(test_accuracy(&s) >= 0.93, "{s}");

    // Grad-CAM of the course CNN lies on the digit's strokes: on 10 test digits, most of
    // its weight within 2 pixels of the ink, well above that region's share of the image.
    let test = dataset::mnist::load_dir(&data.join("mnist"), dataset::MnistKind::Digits)
        .unwrap()
        .test;
    let model = dir.path().join("run/model.bpk");
    for i in 0..10 {
        let digit = dir.path().join(format!("digit{i}.png"));
        image::GrayImage::from_raw(28, 28, test.image(i).to_vec())
            .unwrap()
            .save(&digit)
            .unwrap();
        let out_dir = dir.path().join(format!("vis{i}"));
        let vis = run(
            &keraslike(),
            &[
                "visualize",
                "--model",
                model.to_str().unwrap(),
                "--image",
                digit.to_str().unwrap(),
                "--out",
                out_dir.to_str().unwrap(),
            ],
            None,
            &[],
        );
        assert!(vis.status.success(), "{}", text(&vis.stderr));
        let json = explanation(&out_dir);
        let (share, area) = weight_near_ink(&json, 2);
        println!(
            "digit {i} (label {}): {share:.2} of Grad-CAM within 2 px of the strokes, which cover {area:.2}",
            test.labels[i]
        );
        assert!(
            share >= 0.75 && share >= 2.0 * area,
            "digit {i}: {share} on {area}"
        );
    }
}

fn explanation(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("explanation.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn grid_of(value: &serde_json::Value) -> Vec<Vec<f64>> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect()
        })
        .collect()
}

/// The share of Grad-CAM's weight within `reach` pixels (in x and y) of the input's
/// bright pixels (> 0.3), and the share of the image that region covers.
fn weight_near_ink(json: &serde_json::Value, reach: usize) -> (f64, f64) {
    let input = grid_of(&json["input"][0]);
    let cam = grid_of(&json["grad_cam"]);
    let (h, w) = (input.len(), input[0].len());
    let near = |y: usize, x: usize| {
        (y.saturating_sub(reach)..(y + reach + 1).min(h)).any(|yy| {
            (x.saturating_sub(reach)..(x + reach + 1).min(w)).any(|xx| input[yy][xx] > 0.3)
        })
    };
    let (mut on, mut total, mut cells) = (0.0, 0.0, 0usize);
    for (y, row) in cam.iter().enumerate() {
        for (x, &heat) in row.iter().enumerate() {
            total += heat;
            if near(y, x) {
                on += heat;
                cells += 1;
            }
        }
    }
    (on / total, cells as f64 / (h * w) as f64)
}

#[test]
#[ignore = "needs the shared faces: DL_DATA_DIR"]
fn real_faces_beat_the_majority_baseline_after_a_short_run() {
    let faces = shared_data().join("faces");
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        &keraslike(),
        &[
            "face",
            "--data",
            faces.to_str().unwrap(),
            "--config",
            &config("faces-64.toml"),
            "--epochs",
            "2",
            "--steps-per-epoch",
            "60",
            "--validation-steps",
            "10",
            "--out",
            dir.path().join("run").to_str().unwrap(),
        ],
        None,
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    println!("{s}");
    assert!(
        s.contains("Found 10532 images belonging to 2 classes."),
        "{s}"
    );
    // Always answering "nonsmile" scores 72%.
    assert!(test_accuracy(&s) > 0.75, "{s}");
}

/// The learning-rate schedules train the DCGAN too, and a resumed run goes on where the
/// schedule was.
#[test]
fn dcgan_follows_a_learning_rate_schedule_across_a_resume() {
    let dir = tempfile::tempdir().unwrap();
    dataset::synthetic::write_mnist_dir(&dir.path().join("mnist"), 64, 10, true, 5).unwrap();
    let out = dir.path().join("gan");
    let env = [("DL_DATA_DIR", dir.path())];
    let dcgan = |epochs: &str, extra: &[&str]| {
        let mut args = vec![
            "dcgan",
            "--epochs",
            epochs,
            "--batch-size",
            "32",
            "--lr",
            "0.001",
            "--lr-schedule",
            "step",
            "--lr-decay",
            "0.5",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        run(&keraslike(), &args, None, &env)
    };
    let first = dcgan("2", &[]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let log = text(&first.stdout);
    assert!(log.contains("(× 0.5 every 1 epochs)"), "{log}");
    assert!(
        log.contains("epoch 1/2") && log.contains("lr: 1.0000e-3"),
        "{log}"
    );
    assert!(log.contains("lr: 5.0000e-4"), "{log}");
    let resumed = dcgan("3", &["--resume"]);
    assert!(resumed.status.success(), "{}", text(&resumed.stderr));
    let log = text(&resumed.stdout);
    assert!(
        log.contains("epoch 3/3") && log.contains("lr: 2.5000e-4"),
        "{log}"
    );

    let bad = run(
        &keraslike(),
        &[
            "dcgan",
            "--lr-decay",
            "2",
            "--out",
            dir.path().join("bad").to_str().unwrap(),
        ],
        None,
        &env,
    );
    assert!(one_line_error(&bad).contains("lr_decay"));
    assert!(!dir.path().join("bad").exists());
}

/// A few DCGAN iterations end to end on generated MNIST files: every output written,
/// losses finite, `--resume` continues, a used folder is refused, `generate` draws a grid.
#[test]
fn dcgan_trains_resumes_and_generates() {
    let dir = tempfile::tempdir().unwrap();
    dataset::synthetic::write_mnist_dir(&dir.path().join("mnist"), 96, 10, true, 5).unwrap();
    let out = dir.path().join("gan");
    let o = out.to_str().unwrap();
    let env = [("DL_DATA_DIR", dir.path())];
    let args = |epochs: &'static str| {
        vec![
            "dcgan",
            "--epochs",
            epochs,
            "--batch-size",
            "32",
            "--log-every",
            "1",
            "--out",
            o,
        ]
    };
    let res = run(&keraslike(), &args("1"), None, &env);
    assert!(res.status.success(), "{}", text(&res.stderr));
    let log = text(&res.stdout);
    assert!(log.contains("D(x)") && log.contains("D(G(z))"), "{log}");
    for file in [
        "generator.bpk",
        "generator.toml",
        "discriminator.bpk",
        "losses.csv",
        "samples/epoch_001.png",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let csv = std::fs::read_to_string(out.join("losses.csv")).unwrap();
    let row: Vec<f64> = csv
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect();
    assert!(
        row.iter().all(|v| v.is_finite()) && row[1] > 0.0 && row[2] > 0.0,
        "{csv}"
    );
    // 8×8 grid of 28×28 images with 2-pixel gaps.
    let grid = image::open(out.join("samples/epoch_001.png")).unwrap();
    assert_eq!((grid.width(), grid.height()), (8 * 30 + 2, 8 * 30 + 2));

    // A fresh run into the same folder would overwrite it: refused.
    let res = run(&keraslike(), &args("1"), None, &env);
    assert!(one_line_error(&res).contains("--resume"));
    let mut resume = args("2");
    resume.push("--resume");
    let res = run(&keraslike(), &resume, None, &env);
    assert!(res.status.success(), "{}", text(&res.stderr));
    assert!(out.join("samples/epoch_002.png").is_file());
    assert_eq!(
        std::fs::read_to_string(out.join("losses.csv"))
            .unwrap()
            .lines()
            .count(),
        3
    );

    let png = dir.path().join("grid.png");
    let res = run(
        &keraslike(),
        &[
            "generate",
            "--model",
            out.join("generator.bpk").to_str().unwrap(),
            "-n",
            "6",
            "--out",
            png.to_str().unwrap(),
        ],
        None,
        &[],
    );
    assert!(res.status.success(), "{}", text(&res.stderr));
    let grid = image::open(&png).unwrap();
    assert_eq!((grid.width(), grid.height()), (3 * 30 + 2, 2 * 30 + 2));

    let res = run(
        &keraslike(),
        &["dcgan", "--dataset", "imagenet", "--out", o],
        None,
        &env,
    );
    assert!(one_line_error(&res).contains("imagenet"));

    // PacGAN packs must divide the half batch, and a resumed run keeps its pack size.
    let mut bad_pack = args("3");
    bad_pack.extend(["--resume", "--pack", "3"]);
    let res = run(&keraslike(), &bad_pack, None, &env);
    assert!(one_line_error(&res).contains("pack = 3"));
    let mut other_pack = args("3");
    other_pack.extend(["--resume", "--pack", "8"]);
    let res = run(&keraslike(), &other_pack, None, &env);
    assert!(one_line_error(&res).contains("trained with pack"));
}

/// One `mnist` fit of the small CNN on generated bars into a fresh folder of `dir`: its
/// stdout and history rows (epoch, loss, acc, val_loss, val_acc as numbers). The 96 test
/// images are three whole validation batches, so an epoch's val_loss is the mean over the
/// images that `Test loss` is.
fn callback_fit(dir: &Path, name: &str, extra: &[&str]) -> (String, Vec<Vec<f64>>) {
    let data = dir.join("data");
    if !data.exists() {
        dataset::synthetic::write_mnist_dir(&data.join("mnist"), 300, 96, true, 4).unwrap();
        std::fs::write(dir.join("small.toml"), SMALL_CNN).unwrap();
    }
    let out = dir.join(name);
    let config = dir.join("small.toml");
    let mut args = vec![
        "mnist",
        "--offline",
        "--config",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let done = run(&keraslike(), &args, None, &[("DL_DATA_DIR", &data)]);
    assert!(done.status.success(), "{}", text(&done.stderr));
    let rows = std::fs::read_to_string(out.join("history.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').take(5).map(|f| f.parse().unwrap()).collect())
        .collect();
    (text(&done.stdout), rows)
}

fn test_loss(stdout: &str) -> f64 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("Test loss: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no test loss in\n{stdout}"))
}

/// EarlyStopping: with a min_delta no epoch can beat, epoch 1 stays the best, patience 1
/// stops after epoch 2, and --restore-best ends with epoch 1's weights: the test loss
/// printed after training (the validation data are the test set) is epoch 1's.
#[test]
fn early_stopping_stops_after_patience_and_restores_the_best_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--epochs", "6", "--patience", "1", "--min-delta", "10"];
    let (stdout, rows) = callback_fit(
        dir.path(),
        "restored",
        &[&flags[..], &["--restore-best"]].concat(),
    );
    assert_eq!(rows.len(), 2, "{stdout}");
    assert!(stdout.contains("Epoch 2: early stopping"), "{stdout}");
    assert!(
        stdout.contains("Restoring model weights from the end of the best epoch: 1."),
        "{stdout}"
    );
    let (epoch1, epoch2) = (rows[0][3], rows[1][3]);
    assert!((epoch1 - epoch2).abs() > 0.01, "epochs too alike: {rows:?}");
    let loss = test_loss(&stdout);
    assert!(
        (loss - epoch1).abs() < 2e-3,
        "test loss {loss}, epoch 1's {epoch1}"
    );

    // Without --restore-best the run ends with the last epoch's weights.
    let (stdout, rows) = callback_fit(dir.path(), "last", &flags);
    assert_eq!(rows.len(), 2);
    assert!(!stdout.contains("Restoring"), "{stdout}");
    let loss = test_loss(&stdout);
    assert!(
        (loss - rows[1][3]).abs() < 2e-3,
        "test loss {loss}, epoch 2's {}",
        rows[1][3]
    );
}

/// ModelCheckpoint(save_best_only): model.bpk and the test metrics are the epoch with the
/// lowest validation loss, whichever that is, and the run names it.
#[test]
fn save_best_only_keeps_the_epoch_with_the_lowest_validation_loss() {
    let dir = tempfile::tempdir().unwrap();
    let (stdout, rows) = callback_fit(
        dir.path(),
        "best",
        &["--epochs", "5", "--lr", "0.05", "--save-best-only"],
    );
    assert_eq!(rows.len(), 5);
    let best = rows
        .iter()
        .fold(None::<&Vec<f64>>, |b, r| match b {
            Some(b) if b[3] <= r[3] => Some(b),
            _ => Some(r),
        })
        .unwrap();
    let epoch = best[0] as usize;
    // This seed's best epoch is not the last, so the run must go back to it.
    assert!(epoch < 5, "{rows:?}");
    assert!(
        stdout.contains(&format!(
            "the model kept is epoch {epoch}'s, the best val_loss"
        )),
        "best epoch {epoch}:\n{stdout}"
    );
    let loss = test_loss(&stdout);
    assert!(
        (loss - best[3]).abs() < 2e-3,
        "test loss {loss}, best {}",
        best[3]
    );
    // The best epoch's checkpoint is kept beside the last two.
    let checkpoint = dir.path().join("best/checkpoint");
    assert!(checkpoint.join(format!("model-{epoch}.bpk")).is_file());
    let kept = std::fs::read_dir(&checkpoint)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("model-")
        })
        .count();
    assert!(kept <= 3, "{kept} model checkpoints kept");
}

/// ReduceLROnPlateau says when it lowers the rate; a rate too small to move the loss by
/// Keras's min_delta (1e-4) is a plateau at once.
#[test]
fn reduce_lr_on_plateau_lowers_the_rate_after_patience_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let (stdout, rows) = callback_fit(
        dir.path(),
        "plateau",
        &[
            "--epochs",
            "3",
            "--lr",
            "1e-9",
            "--reduce-lr-patience",
            "1",
            "--reduce-lr-factor",
            "0.5",
        ],
    );
    assert_eq!(rows.len(), 3);
    assert!(
        stdout.contains("Epoch 2: ReduceLROnPlateau reducing learning rate to 5.000e-10."),
        "{stdout}"
    );
    assert!(
        stdout.contains("Epoch 3: ReduceLROnPlateau reducing learning rate to 2.500e-10."),
        "{stdout}"
    );
}

/// A step schedule (×0.1 after every epoch) trains epoch 1 as the constant rate does
/// and epoch 2 differently; the seed fixes everything else.
#[test]
fn learning_rate_schedules_change_the_rate_from_epoch_two() {
    let dir = tempfile::tempdir().unwrap();
    let (_, constant) = callback_fit(dir.path(), "constant", &["--epochs", "2"]);
    let (_, step) = callback_fit(
        dir.path(),
        "step",
        &["--epochs", "2", "--lr-schedule", "step"],
    );
    let (_, cosine) = callback_fit(
        dir.path(),
        "cosine",
        &["--epochs", "2", "--lr-schedule", "cosine"],
    );
    assert_eq!(step[0], constant[0]);
    assert_ne!(step[1], constant[1]);
    // Cosine lowers the rate from the second step on: epoch 1 already differs.
    assert_ne!(cosine[0], constant[0]);
}

#[test]
fn callback_flags_that_do_not_belong_together_are_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    dataset::synthetic::write_mnist_dir(&data.join("mnist"), 20, 10, true, 3).unwrap();
    for (flags, expected) in [
        (&["--restore-best"][..], "give a patience"),
        (
            &["--reduce-lr-patience", "2", "--reduce-lr-factor", "1.5"][..],
            "reduce_lr_factor",
        ),
        (&["--min-lr", "0.1"][..], "reduce_lr_patience"),
        (&["--lr-step-epochs", "2"][..], "step schedule"),
        (
            &["--lr-schedule", "step", "--lr-decay", "0"][..],
            "lr_decay",
        ),
        (
            &["--reduce-lr-patience", "2", "--lr-schedule", "cosine"][..],
            "constant learning rate",
        ),
        (&["--monitor", "val_auc", "--patience", "2"][..], "val_auc"),
        (&["--class-weight", "1,2"][..], "2 weights for 10 classes"),
        (&["--class-weight", "heavy"][..], "balanced"),
        (&["--rotation-range", "200"][..], "rotation_range"),
        (&["--zoom-range", "1.5"][..], "zoom_range"),
    ] {
        let out = dir.path().join("run");
        let mut args = vec![
            "mnist",
            "--offline",
            "--epochs",
            "1",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(flags);
        let err = one_line_error(&run(&keraslike(), &args, None, &[("DL_DATA_DIR", &data)]));
        assert!(err.contains(expected), "{flags:?}: {err}");
        assert!(
            !out.join("history.csv").exists(),
            "{flags:?} started training"
        );
    }
}

/// The Python that runs `tests/python/`: `DL_PYTHON`, else `python3`; `None` (with the
/// reason printed) when it lacks NumPy, safetensors or Pillow.
fn python_with_numpy() -> Option<String> {
    let python = std::env::var("DL_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = std::process::Command::new(&python)
        .args(["-c", "import numpy, safetensors, PIL"])
        .output();
    match probe {
        Ok(out) if out.status.success() => Some(python),
        Ok(out) => {
            let why = text(&out.stderr);
            let last = why.trim().lines().last().unwrap_or("").to_string();
            eprintln!("skipped: {python} lacks numpy/safetensors/Pillow ({last})");
            None
        }
        Err(e) => {
            eprintln!("skipped: cannot run {python}: {e}");
            None
        }
    }
}

/// A model with every kind of weight (a stride-2 "same" Conv2D, whose padding Keras puts
/// mostly after, BatchNormalization, two Dense layers).
const EXPORT_CNN: &str = "input = [3, 24, 20]\n\
    [[layers]]\ntype = \"Conv2D\"\nfilters = 6\nkernel_size = 3\nstrides = 2\npadding = \"same\"\nactivation = \"relu\"\n\
    [[layers]]\ntype = \"BatchNormalization\"\n\
    [[layers]]\ntype = \"MaxPooling2D\"\npool_size = 2\n\
    [[layers]]\ntype = \"Flatten\"\n\
    [[layers]]\ntype = \"Dropout\"\nrate = 0.3\n\
    [[layers]]\ntype = \"Dense\"\nunits = 8\nactivation = \"tanh\"\n\
    [[layers]]\ntype = \"Dense\"\nunits = 2\nactivation = \"softmax\"\n\
    [compile]\noptimizer = \"adam\"\nlearning_rate = 0.01\n";

/// [`EXPORT_CNN`] with Keras's binary head: one sigmoid unit.
fn binary_head(config: &str) -> String {
    config.replace(
        "units = 2\nactivation = \"softmax\"",
        "units = 1\nactivation = \"sigmoid\"",
    )
}

/// `model.safetensors` rebuilt outside the project (PyTorch when installed, else NumPy)
/// gives `predict`'s probabilities on a folder of test images, from `predictions.csv`.
#[test]
fn the_pytorch_style_export_predicts_as_keraslike_does_in_python() {
    let Some(python) = python_with_numpy() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("faces");
    face_folders(&data);
    // The course's rescale (1/255), raw pixel values (Keras's rescale=None), and a binary
    // head.
    for (name, model_config, rescale) in [
        ("course", EXPORT_CNN.to_string(), None),
        ("raw", EXPORT_CNN.to_string(), Some("1")),
        ("binary", binary_head(EXPORT_CNN), None),
    ] {
        let config = dir.path().join(format!("{name}.toml"));
        std::fs::write(&config, model_config).unwrap();
        let out = dir.path().join(name);
        let mut args = vec![
            "face",
            "--data",
            data.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--epochs",
            "2",
            "--steps-per-epoch",
            "4",
            "--validation-steps",
            "1",
            "--batch-size",
            "16",
        ];
        if let Some(r) = rescale {
            args.extend(["--rescale", r]);
        }
        let trained = run(&keraslike(), &args, None, &[]);
        assert!(trained.status.success(), "{}", text(&trained.stderr));
        let card = std::fs::read_to_string(out.join("model.toml")).unwrap();
        assert_eq!(card.contains("rescale = 1.0"), rescale.is_some(), "{card}");
        let model = out.join("model.bpk");
        let predicted = run(
            &keraslike(),
            &[
                "predict",
                "--model",
                model.to_str().unwrap(),
                data.join("test").to_str().unwrap(),
            ],
            None,
            &[],
        );
        assert!(predicted.status.success(), "{}", text(&predicted.stderr));
        let csv = out.join("predictions.csv");
        assert_eq!(lines_of(&csv), 41, "40 test images and the header");
        assert!(text(&predicted.stdout).contains("Wrote 40 predictions"));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/check_export.py");
        let checked = std::process::Command::new(&python)
            .arg(&script)
            .arg(out.join("model.safetensors"))
            .arg(&csv)
            .output()
            .unwrap();
        let report = text(&checked.stdout);
        eprintln!("{report}");
        assert!(
            checked.status.success(),
            "{report}{}",
            text(&checked.stderr)
        );
        assert!(
            report.contains("40 images") && report.ends_with(": OK\n"),
            "{report}"
        );
    }
}

/// `predict` takes folders (recursively, sorted) and files together, and a folder with no
/// images is one clear line.
#[test]
fn predict_reads_folders_recursively_and_writes_every_probability() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("faces");
    face_folders(&data);
    let config = dir.path().join("face.toml");
    std::fs::write(&config, SMALL_FACE_CNN).unwrap();
    let out = dir.path().join("run");
    let trained = run(
        &keraslike(),
        &[
            "face",
            "--data",
            data.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--epochs",
            "1",
            "--steps-per-epoch",
            "2",
            "--validation-steps",
            "1",
        ],
        None,
        &[],
    );
    assert!(trained.status.success(), "{}", text(&trained.stderr));
    let model = out.join("model.bpk");
    let csv = dir.path().join("all.csv");
    let photo = data.join("train/nonsmile/photo.jpg");
    let predicted = run(
        &keraslike(),
        &[
            "predict",
            "--model",
            model.to_str().unwrap(),
            data.to_str().unwrap(),
            photo.to_str().unwrap(),
            "--csv",
            csv.to_str().unwrap(),
        ],
        None,
        &[],
    );
    assert!(predicted.status.success(), "{}", text(&predicted.stderr));
    // 123 training and 40 test images under the folder, then the photo again: more than
    // are listed, so a count per class instead.
    let s = text(&predicted.stdout);
    assert!(s.contains("Predicted 164 images: nonsmile: "), "{s}");
    let rows: Vec<String> = std::fs::read_to_string(&csv)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(rows[0], "file,class,nonsmile,smile");
    assert_eq!(rows.len(), 165);
    let files: Vec<&str> = rows[1..164]
        .iter()
        .map(|r| r.split(',').next().unwrap())
        .collect();
    assert!(
        files.windows(2).all(|w| w[0] < w[1]),
        "the folder's files in order"
    );
    for row in &rows[1..] {
        let fields: Vec<&str> = row.split(',').collect();
        let p: Vec<f64> = fields[2..].iter().map(|v| v.parse().unwrap()).collect();
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-5, "{row}");
        let best = if p[1] > p[0] { "smile" } else { "nonsmile" };
        assert_eq!(fields[1], best, "{row}");
    }

    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let err = one_line_error(&run(
        &keraslike(),
        &[
            "predict",
            "--model",
            model.to_str().unwrap(),
            empty.to_str().unwrap(),
        ],
        None,
        &[],
    ));
    assert!(err.contains("no image files"), "{err}");
}

/// Keras's class_weight: balanced weights from the training set's class counts, printed,
/// and a training loss that is the weighted one (a class weighted 0 leaves its images out
/// of the loss, so the loss differs from the unweighted run's from the first epoch).
#[test]
fn class_weight_balanced_or_given_weights_the_training_loss() {
    let dir = tempfile::tempdir().unwrap();
    let (stdout, balanced) = callback_fit(
        dir.path(),
        "balanced",
        &["--epochs", "1", "--class-weight", "balanced"],
    );
    assert!(stdout.contains("class_weight: 0 "), "{stdout}");
    assert_eq!(balanced.len(), 1);
    let (_, plain) = callback_fit(dir.path(), "plain", &["--epochs", "1"]);
    let (_, given) = callback_fit(
        dir.path(),
        "given",
        &["--epochs", "1", "--class-weight", "0,1,1,1,1,1,1,1,1,1"],
    );
    assert_ne!(
        given[0][1], plain[0][1],
        "training loss {given:?} vs {plain:?}"
    );
}

/// Keras's validation_split for a folder of class subfolders without train/ and test/:
/// the first 20% of each class's files validate, the rest train, and `evaluate` later
/// finds the same validation subset through the model card.
#[test]
fn face_validation_split_divides_a_folder_without_a_test_split() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("photos");
    dataset::synthetic::write_image_folder(&data, &["nonsmile", "smile"], 10, (20, 24), 1).unwrap();
    let config = dir.path().join("face.toml");
    std::fs::write(&config, SMALL_FACE_CNN).unwrap();
    let out = dir.path().join("run");
    let face = |split: &str| {
        run(
            &keraslike(),
            &[
                "face",
                "--data",
                data.to_str().unwrap(),
                "--config",
                config.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--epochs",
                "1",
                "--batch-size",
                "8",
                "--validation-split",
                split,
            ],
            None,
            &[],
        )
    };
    let err = one_line_error(&face("1.5"));
    assert!(err.contains("validation_split must be in (0, 1)"), "{err}");
    let trained = face("0.2");
    assert!(trained.status.success(), "{}", text(&trained.stderr));
    let s = text(&trained.stdout);
    assert!(s.contains("Found 16 images belonging to 2 classes."), "{s}");
    assert!(s.contains("Found 4 images belonging to 2 classes."), "{s}");
    assert!(s.contains("4 test images"), "{s}");
    let eval = run(
        &keraslike(),
        &[
            "evaluate",
            "--model",
            out.join("model.bpk").to_str().unwrap(),
        ],
        None,
        &[],
    );
    assert!(eval.status.success(), "{}", text(&eval.stderr));
    assert!(
        text(&eval.stdout).contains("4 test images"),
        "{}",
        text(&eval.stdout)
    );
}

/// ImageDataGenerator's settings one by one: a shift-only, bilinear augmentation is what
/// the run uses (and says), and it changes training from the unaugmented run's.
#[test]
fn augmentation_settings_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let (_, plain) = callback_fit(dir.path(), "plain", &["--epochs", "1"]);
    let (stdout, shifted) = callback_fit(
        dir.path(),
        "shifted",
        &[
            "--epochs",
            "1",
            "--width-shift-range",
            "0.2",
            "--augment-interpolation",
            "bilinear",
        ],
    );
    assert!(
        stdout.contains(
            "width_shift: 0.2, height_shift: 0.0, rotation: 0.0, zoom: 0.0, warp: Bilinear"
        ),
        "{stdout}"
    );
    assert_ne!(shifted[0][1], plain[0][1]);
}

/// Keras's shuffle=False: the same seed trains differently in the data's own order, and
/// the same order on every try.
#[test]
fn no_shuffle_trains_in_the_datas_own_order() {
    let dir = tempfile::tempdir().unwrap();
    let (_, shuffled) = callback_fit(dir.path(), "shuffled", &["--epochs", "2"]);
    let (_, ordered) = callback_fit(dir.path(), "ordered", &["--epochs", "2", "--no-shuffle"]);
    let (_, again) = callback_fit(dir.path(), "again", &["--epochs", "2", "--no-shuffle"]);
    assert_ne!(ordered, shuffled);
    assert_eq!(ordered, again);
}

/// One tensor of a model.safetensors, as bytes.
fn exported(path: &Path, name: &str) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    file.tensor(name).unwrap().data().to_vec()
}

/// Transfer learning: a model started from another's weights (init_from) with its
/// convolution frozen (trainable = false) keeps that convolution to the last bit, trains
/// its Dense layer, and its summary counts the frozen weights as non-trainable.
#[test]
fn init_from_copies_matching_layers_and_frozen_ones_do_not_change() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _) = callback_fit(dir.path(), "source", &["--epochs", "1"]);
    let source = dir.path().join("source");
    let frozen = SMALL_CNN.replacen(
        "activation = \"relu\"\n",
        "activation = \"relu\"\ntrainable = false\n",
        1,
    );
    let config = dir.path().join("frozen.toml");
    std::fs::write(&config, frozen).unwrap();
    let out = dir.path().join("tuned");
    let data = dir.path().join("data");
    let model = source.join("model.bpk");
    let done = run(
        &keraslike(),
        &[
            "mnist",
            "--offline",
            "--config",
            config.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--epochs",
            "1",
            "--seed",
            "9",
            "--init-from",
            model.to_str().unwrap(),
        ],
        None,
        &[("DL_DATA_DIR", &data)],
    );
    assert!(done.status.success(), "{}", text(&done.stderr));
    let s = text(&done.stdout);
    assert!(
        s.contains("copied 2 of 2 layers with weights (Conv2D 0, Dense 4)"),
        "{s}"
    );
    // The convolution's 4·(3·3·1) + 4 = 40 weights are frozen.
    assert!(s.contains("Non-trainable params: 40"), "{s}");
    let (before, after) = (
        source.join("model.safetensors"),
        out.join("model.safetensors"),
    );
    assert_eq!(exported(&after, "0.weight"), exported(&before, "0.weight"));
    assert_eq!(exported(&after, "0.bias"), exported(&before, "0.bias"));
    assert_ne!(exported(&after, "4.weight"), exported(&before, "4.weight"));

    // A model of another shape shares nothing: one clear line, before training.
    let other = dir.path().join("other.toml");
    std::fs::write(&other, SMALL_CNN.replace("filters = 4", "filters = 5")).unwrap();
    let other_out = dir.path().join("other");
    let err = one_line_error(&run(
        &keraslike(),
        &[
            "mnist",
            "--offline",
            "--config",
            other.to_str().unwrap(),
            "--out",
            other_out.to_str().unwrap(),
            "--epochs",
            "1",
            "--init-from",
            model.to_str().unwrap(),
        ],
        None,
        &[("DL_DATA_DIR", &data)],
    ));
    assert!(err.contains("no layer matches"), "{err}");
}
