//! `keraslike serve` end to end: its HTTP API on models trained here on generated data,
//! and the page in a real browser (headless Chromium driven through chromedriver).

use std::io::BufRead;
use std::path::{Path, PathBuf};

use base64::Engine;
use e2e::{Background, binary, http, run, text};
use serde_json::{Value, json};

fn keraslike() -> PathBuf {
    binary("keraslike", "keraslike")
}

fn scratch() -> PathBuf {
    binary("scratch", "scratch")
}

/// A small CNN for 28×28 digits: two image layers for the page's feature maps.
const DIGIT_CNN: &str = "input = [1, 28, 28]\n\
    [[layers]]\ntype = \"Conv2D\"\nfilters = 6\nkernel_size = 3\npadding = \"same\"\nactivation = \"relu\"\n\
    [[layers]]\ntype = \"MaxPooling2D\"\npool_size = 2\n\
    [[layers]]\ntype = \"Flatten\"\n\
    [[layers]]\ntype = \"Dense\"\nunits = 10\nactivation = \"softmax\"\n\
    [compile]\noptimizer = \"adam\"\nlearning_rate = 0.01\n";

struct Trained {
    cnn: PathBuf,
    mlp: PathBuf,
    generator: PathBuf,
    digit: PathBuf,
}

/// A keraslike CNN, a scratch MLP and a DCGAN generator trained on generated digits in
/// `dir`, and one test digit as a PNG.
fn trained(dir: &Path) -> Trained {
    let data = dir.join("data");
    dataset::synthetic::write_mnist_dir(&data.join("mnist"), 600, 50, true, 3).unwrap();
    let env = [("DL_DATA_DIR", data.as_path())];
    let config = dir.join("cnn.toml");
    std::fs::write(&config, DIGIT_CNN).unwrap();
    let cnn_dir = dir.join("cnn");
    let mlp = dir.join("mlp.safetensors");
    let gan_dir = dir.join("gan");
    let (config_s, cnn_s, mlp_s, gan_s) = (
        config.to_str().unwrap(),
        cnn_dir.to_str().unwrap(),
        mlp.to_str().unwrap(),
        gan_dir.to_str().unwrap(),
    );
    for (bin, args) in [
        (
            keraslike(),
            vec![
                "mnist",
                "--config",
                config_s,
                "--epochs",
                "2",
                "--out",
                cnn_s,
                "--offline",
            ],
        ),
        (
            scratch(),
            vec![
                "train",
                "--epochs",
                "2",
                "--hidden",
                "32",
                "--out",
                mlp_s,
                "--offline",
            ],
        ),
        (
            keraslike(),
            vec![
                "dcgan",
                "--epochs",
                "1",
                "--batch-size",
                "32",
                "--train-limit",
                "64",
                "--out",
                gan_s,
            ],
        ),
    ] {
        let out = run(&bin, &args, None, &env);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    }
    let test = dataset::mnist::load_dir(&data.join("mnist"), dataset::MnistKind::Digits)
        .unwrap()
        .test;
    let digit = dir.join("digit.png");
    image::GrayImage::from_raw(28, 28, test.image(0).to_vec())
        .unwrap()
        .save(&digit)
        .unwrap();
    Trained {
        cnn: cnn_dir.join("model.bpk"),
        mlp,
        generator: gan_dir.join("generator.bpk"),
        digit,
    }
}

/// `keraslike serve --port 0 ARGS` in the background, and the address it printed.
fn serve(args: &[&str]) -> (Background, String) {
    let mut child = std::process::Command::new(keraslike())
        .arg("serve")
        .args(["--port", "0"])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("start serve");
    let stdout = child.stdout.take().expect("stdout");
    let server = Background(child);
    let mut lines = std::io::BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("serve printed its address")
            .expect("a line");
        if let Some(rest) = line.strip_prefix("Serving on http://") {
            break rest.split('/').next().unwrap().to_string();
        }
    };
    // Keep reading what it prints, so a full pipe never blocks it.
    std::thread::spawn(move || lines.for_each(drop));
    (server, addr)
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|e| panic!("{e}: {}", text(body)))
}

/// Class → probability at 4 decimals from `predict`'s lines: keraslike's
/// "file: 3 (0: 0.0012, 1: ...)" or scratch's "  0: 0.0012".
fn printed_probabilities(stdout: &str) -> Vec<(String, String)> {
    let inside = match (stdout.rfind('('), stdout.rfind(')')) {
        (Some(a), Some(b)) if stdout.lines().count() == 1 => stdout[a + 1..b].to_string(),
        _ => stdout
            .lines()
            .skip(1)
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(", "),
    };
    inside
        .split(", ")
        .map(|pair| {
            let (class, p) = pair.rsplit_once(": ").expect("class: p");
            (class.to_string(), p.to_string())
        })
        .collect()
}

fn answered_probabilities(result: &Value) -> Vec<(String, String)> {
    result["probabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let value = p["probability"].as_f64().unwrap();
            (
                p["class"].as_str().unwrap().to_string(),
                format!("{value:.4}"),
            )
        })
        .collect()
}

/// The API answers an uploaded image as `predict` does, for a keraslike CNN and a scratch
/// MLP side by side; serves the generator's samples and walk; refuses bad requests with
/// a clear message and goes on serving.
#[test]
fn serve_answers_uploads_as_predict_does_and_refuses_bad_requests() {
    let dir = tempfile::tempdir().unwrap();
    let t = trained(dir.path());
    let (_server, addr) = serve(&[
        "--model",
        t.cnn.to_str().unwrap(),
        "--model",
        t.mlp.to_str().unwrap(),
        "--generator",
        t.generator.to_str().unwrap(),
    ]);
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");

    let (status, page) = http(&addr, "GET", "/", b"");
    assert_eq!(status, 200);
    assert!(text(&page).contains("<canvas id=\"canvas\""));
    let (status, models) = http(&addr, "GET", "/api/models", b"");
    assert_eq!(status, 200);
    let models = json_of(&models);
    let kinds: Vec<&str> = models["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["keraslike", "scratch"]);
    assert_eq!(models["generator"]["latent"], 100);

    let png = std::fs::read(&t.digit).unwrap();
    let (status, answer) = http(&addr, "POST", "/api/predict", &png);
    assert_eq!(status, 200, "{}", text(&answer));
    let results = json_of(&answer)["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), 2);
    let digit = t.digit.to_str().unwrap();
    let keras_predict = run(
        &keraslike(),
        &["predict", "--model", t.cnn.to_str().unwrap(), digit],
        None,
        &[],
    );
    let scratch_predict = run(
        &scratch(),
        &[
            "predict",
            "--weights",
            t.mlp.to_str().unwrap(),
            "--image",
            digit,
        ],
        None,
        &[],
    );
    for (result, predicted) in results.iter().zip([keras_predict, scratch_predict]) {
        assert!(predicted.status.success(), "{}", text(&predicted.stderr));
        assert_eq!(
            answered_probabilities(result),
            printed_probabilities(&text(&predicted.stdout)),
            "{}",
            result["model"]
        );
        assert!(
            result["input_png"]
                .as_str()
                .unwrap()
                .starts_with("data:image/png;base64,")
        );
    }
    // The CNN's first two image layers and its Grad-CAM; none for the MLP.
    let maps = results[0]["feature_maps"].as_array().unwrap();
    let layers: Vec<&str> = maps.iter().map(|m| m["layer"].as_str().unwrap()).collect();
    assert_eq!(layers, ["conv2d", "max_pooling2d"]);
    assert_eq!(results[0]["grad_cam"]["layer"], "conv2d");
    assert!(results[1]["feature_maps"].as_array().unwrap().is_empty());
    assert!(results[1]["grad_cam"].is_null());

    let (status, samples) = http(&addr, "GET", "/api/samples?n=9&seed=4", b"");
    assert_eq!(status, 200);
    let grid = image::load_from_memory(&samples).unwrap();
    // 8 per row, 28-pixel images 2 pixels apart, enlarged 3 times.
    assert_eq!(
        (grid.width(), grid.height()),
        (3 * (8 * 30 + 2), 3 * (2 * 30 + 2))
    );
    let (_, again) = http(&addr, "GET", "/api/samples?n=9&seed=4", b"");
    assert_eq!(samples, again, "the same seed draws the same samples");
    let walk = |t: &str| http(&addr, "GET", &format!("/api/walk?a=1&b=2&t={t}"), b"");
    let (ends, middle) = (walk("0").1, walk("0.5").1);
    assert_eq!(walk("0").0, 200);
    assert_ne!(ends, middle, "the walk moves");

    // Bad requests: each a clear JSON error, and the server carries on.
    for (method, path, body, status, says) in [
        (
            "POST",
            "/api/predict",
            b"not an image".to_vec(),
            400,
            "uploaded image",
        ),
        ("POST", "/api/predict", Vec::new(), 400, "no image"),
        (
            "POST",
            "/api/predict",
            vec![0u8; (16 << 20) + 1],
            413,
            "16 MiB",
        ),
        ("GET", "/api/predict", Vec::new(), 405, "does not take GET"),
        ("GET", "/nope", Vec::new(), 404, "no such page"),
        ("GET", "/api/samples?n=1000", Vec::new(), 400, "1 to 64"),
        ("GET", "/api/walk?t=2", Vec::new(), 400, "[0, 1]"),
        ("GET", "/api/walk?a=x", Vec::new(), 400, "a=x"),
    ] {
        let (got, reply) = http(&addr, method, path, &body);
        assert_eq!(got, status, "{method} {path}: {}", text(&reply));
        let message = json_of(&reply)["error"].as_str().unwrap().to_string();
        assert!(message.contains(says), "{method} {path}: {message}");
        assert!(!message.contains("/tmp"), "no temporary paths: {message}");
    }
    let (status, _) = http(&addr, "GET", "/api/models", b"");
    assert_eq!(status, 200, "still serving");
}

/// Starting without models, or with a file that is not one, is one clear line.
#[test]
fn serve_refuses_missing_and_wrong_models_before_listening() {
    let out = run(&keraslike(), &["serve"], None, &[]);
    assert!(e2e::one_line_error(&out).contains("--model"));
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("bogus.safetensors");
    std::fs::write(&bogus, b"nope").unwrap();
    let out = run(
        &keraslike(),
        &["serve", "--model", bogus.to_str().unwrap(), "--port", "0"],
        None,
        &[],
    );
    assert!(e2e::one_line_error(&out).contains("bogus.safetensors"));
}

/// A chromedriver session: every command is a JSON request.
struct Browser {
    driver: String,
    session: String,
}

impl Browser {
    fn command(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("/session/{}{path}", self.session);
        let payload = if method == "GET" {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        let (status, reply) = http(&self.driver, method, &url, &payload);
        let reply = json_of(&reply);
        assert_eq!(status, 200, "{method} {path}: {reply}");
        reply["value"].clone()
    }

    fn script(&self, js: &str) -> Value {
        self.command("POST", "/execute/sync", json!({"script": js, "args": []}))
    }

    /// Waits up to 30 s for `js` to return true.
    fn wait_for(&self, js: &str) -> bool {
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_secs(30) {
            if self.script(js) == json!(true) {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        false
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = http(
            &self.driver,
            "DELETE",
            &format!("/session/{}", self.session),
            b"",
        );
    }
}

/// The first of `names` on the PATH.
fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// Where the browser test leaves its screenshot: `DL_ARTIFACTS`, else target/artifacts.
fn artifacts() -> PathBuf {
    std::env::var_os("DL_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/artifacts"))
}

/// The page in headless Chromium: a stroke drawn on the canvas with the mouse (WebDriver
/// pointer actions) brings every model's probabilities, the CNN's feature maps and
/// Grad-CAM, and the generator's samples and walk; the screenshot is kept. Skips, saying
/// so, when Chromium or chromedriver is missing, unless `DL_REQUIRE_BROWSER` is set.
#[test]
fn the_page_draws_a_digit_in_a_real_browser() {
    let (Some(chromium), Some(chromedriver)) = (
        on_path(&["chromium", "chromium-browser", "google-chrome"]),
        on_path(&["chromedriver"]),
    ) else {
        assert!(
            std::env::var_os("DL_REQUIRE_BROWSER").is_none(),
            "DL_REQUIRE_BROWSER is set but chromium or chromedriver is not on the PATH"
        );
        eprintln!("skipped: chromium and chromedriver are not installed (the API tests still ran)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // The page on your own models (docs/pictures.sh takes the README's screenshot so):
    // DL_SERVE_MODELS=cnn.bpk,mlp.safetensors (a 10-class CNN, then an MLP) and
    // DL_SERVE_GENERATOR=generator.bpk.
    let (models, generator) = match (
        std::env::var("DL_SERVE_MODELS"),
        std::env::var("DL_SERVE_GENERATOR"),
    ) {
        (Ok(models), Ok(generator)) => (
            models.split(',').map(PathBuf::from).collect::<Vec<_>>(),
            PathBuf::from(generator),
        ),
        _ => {
            let t = trained(dir.path());
            (vec![t.cnn, t.mlp], t.generator)
        }
    };
    let mut args = Vec::new();
    for model in &models {
        args.extend(["--model", model.to_str().unwrap()]);
    }
    args.extend(["--generator", generator.to_str().unwrap()]);
    let (_server, addr) = serve(&args);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _driver = Background(
        std::process::Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start chromedriver"),
    );
    let driver = format!("127.0.0.1:{port}");
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(&driver).is_err() {
        assert!(start.elapsed().as_secs() < 20, "chromedriver did not start");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let capabilities = json!({"capabilities": {"alwaysMatch": {
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1200,1400"]
        }
    }}});
    let (status, created) = http(
        &driver,
        "POST",
        "/session",
        capabilities.to_string().as_bytes(),
    );
    let created = json_of(&created);
    assert_eq!(status, 200, "{created}");
    let browser = Browser {
        driver: driver.clone(),
        session: created["value"]["sessionId"].as_str().unwrap().to_string(),
    };
    browser.command("POST", "/url", json!({"url": format!("http://{addr}/")}));
    assert!(
        browser.wait_for("return document.getElementById('samples').naturalWidth > 0"),
        "the generator's samples did not load"
    );

    // A "1": one vertical stroke through the canvas's middle, as a mouse draws it.
    let canvas = browser.command(
        "POST",
        "/element",
        json!({"using": "css selector", "value": "#canvas"}),
    );
    let stroke = json!({"actions": [{
        "type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
        "actions": [
            {"type": "pointerMove", "duration": 0, "origin": canvas, "x": 5, "y": -90},
            {"type": "pointerDown", "button": 0},
            {"type": "pointerMove", "duration": 150, "origin": canvas, "x": 0, "y": 0},
            {"type": "pointerMove", "duration": 150, "origin": canvas, "x": -5, "y": 90},
            {"type": "pointerUp", "button": 0}
        ]
    }]});
    browser.command("POST", "/actions", stroke);
    assert!(
        browser.wait_for(
            "return document.querySelectorAll('.model-result').length === 2 && \
             [...document.querySelectorAll('img')].every(i => i.complete)"
        ),
        "no answer after the stroke: {}",
        browser.script("return document.getElementById('status').textContent")
    );
    let seen = browser.script(
        "return {
            bars: document.querySelectorAll('.model-result .bar').length,
            best: [...document.querySelectorAll('.verdict')].map(v => v.textContent),
            maps: [...document.querySelectorAll('img.feature-map')].filter(i => i.naturalWidth > 0).length,
            gradcam: [...document.querySelectorAll('img.grad-cam')].filter(i => i.naturalWidth > 0).length,
            inputs: [...document.querySelectorAll('img.model-input')].filter(i => i.naturalWidth > 0).length,
            error: document.getElementById('status').className
        }",
    );
    assert_eq!(seen["bars"], 20, "ten probability bars per model: {seen}");
    assert_eq!(seen["maps"], 2, "the CNN's two feature-map layers: {seen}");
    assert_eq!(seen["gradcam"], 1, "{seen}");
    assert_eq!(seen["inputs"], 2, "{seen}");
    assert_eq!(seen["error"], "", "{seen}");
    eprintln!("the page after one stroke: {seen}");

    // The latent walk answers the slider.
    let before = browser.script("return document.getElementById('walk-image').src");
    browser.script(
        "const s = document.getElementById('walk'); s.value = 70; \
         s.dispatchEvent(new Event('input')); return true",
    );
    let after = browser.script("return document.getElementById('walk-image').src");
    assert_ne!(before, after);
    assert!(browser.wait_for("return document.getElementById('walk-image').naturalWidth > 0"));

    let shot = browser.command("GET", "/screenshot", json!({}));
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot.as_str().unwrap())
        .unwrap();
    let kept = artifacts().join("serve-page.png");
    std::fs::create_dir_all(kept.parent().unwrap()).unwrap();
    std::fs::write(&kept, &png).unwrap();
    assert!(image::load_from_memory(&png).unwrap().width() > 0);
    eprintln!("screenshot: {}", kept.display());
}
