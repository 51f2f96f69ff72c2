//! Using a saved model: `evaluate` on its test set, `predict` image files.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::{Tensor, TensorData};
use dataset::{DatasetChoice, ImageShape};

use keraslike::backend::{self, Backend};
use keraslike::data::InMemoryImages;
use keraslike::evaluate::evaluate;
use keraslike::saved_model;

use super::DataArgs;
use super::{load_split, test_folder};

pub fn evaluate_command(
    model: &Path,
    folder: Option<&PathBuf>,
    data: &DataArgs,
    backend: Backend,
    batch: usize,
) -> Result<()> {
    let device = backend::device(backend)?;
    let grid = model.with_file_name("misclassified.png");
    let (model, card) = saved_model::load(model, &device)?;
    let shape = ImageShape {
        channels: card.model.input[0],
        height: card.model.input[1],
        width: card.model.input[2],
    };
    let batcher = card.batcher();
    let classes = card.classes.len();
    let batch = batch.max(1);
    let result = match &card.source {
        DatasetChoice::Folder(path) => {
            let root = folder.unwrap_or(path);
            let test = test_folder(root, &card)?;
            evaluate(&model, test, batcher, classes, batch, &device)?
        }
        source => {
            let (_, test) = load_split(source, data, Some(0), None)?;
            let s = test.shape;
            if (s.channels, s.height, s.width) != (shape.channels, shape.height, shape.width) {
                bail!(
                    "the {source} test images are {}x{}x{}, the model's input is {}x{}x{}",
                    s.channels,
                    s.height,
                    s.width,
                    shape.channels,
                    shape.height,
                    shape.width
                );
            }
            if test.is_empty() {
                bail!("the {source} test set is empty: there is nothing to evaluate");
            }
            evaluate(
                &model,
                InMemoryImages::new(test),
                batcher,
                classes,
                batch,
                &device,
            )?
        }
    };
    print!("{}", result.report(&card.classes));
    if result.write_misclassified(&grid, &card.classes)? {
        println!(
            "Wrote the {} surest mistakes to {}",
            result.worst.len(),
            grid.display()
        );
    }
    Ok(())
}

/// Listed one per line up to this many images; beyond, a count per class.
const LISTED: usize = 50;

/// Images per forward pass.
const PREDICT_BATCH: usize = 64;

/// The files to predict: each file as given, each folder's images (recursively, sorted).
fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let found = dataset::image_folder::image_files(path)?;
            if found.is_empty() {
                bail!(
                    "{}: no image files (PNG, JPEG, BMP, GIF, WebP) in it",
                    path.display()
                );
            }
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

pub fn predict(
    model: &Path,
    paths: &[PathBuf],
    csv: Option<&Path>,
    backend: Backend,
) -> Result<()> {
    let device = backend::device(backend)?;
    let (net, card) = saved_model::load(model, &device)?;
    let [c, h, w] = card.model.input;
    let files = expand(paths)?;
    // A folder's predictions go to a CSV (beside the model unless --csv says where).
    let csv = csv.map(Path::to_path_buf).or_else(|| {
        paths
            .iter()
            .any(|p| p.is_dir())
            .then(|| model.with_file_name("predictions.csv"))
    });
    let mut rows = Vec::with_capacity(files.len());
    let mut counts = vec![0usize; card.classes.len()];
    let bar =
        (files.len() > LISTED).then(|| cli::progress::items_bar(files.len() as u64, "predict"));
    for chunk in files.chunks(PREDICT_BATCH) {
        let mut inputs = Vec::with_capacity(chunk.len() * c * h * w);
        for path in chunk {
            inputs.extend(card.image_input(path)?);
        }
        let x = Tensor::<4>::from_data(TensorData::new(inputs, [chunk.len(), c, h, w]), &device);
        let probs = burn::tensor::activation::softmax(net.forward_logits(x), 1)
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("reading the output: {e:?}"))?;
        for (path, probs) in chunk.iter().zip(probs.chunks_exact(card.classes.len())) {
            let best = probs
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(i, _)| i)
                .context("the model has no outputs")?;
            counts[best] += 1;
            if files.len() <= LISTED {
                let listed: Vec<String> = card
                    .classes
                    .iter()
                    .zip(probs)
                    .map(|(name, p)| format!("{name}: {p:.4}"))
                    .collect();
                println!(
                    "{}: {} ({})",
                    path.display(),
                    card.classes[best],
                    listed.join(", ")
                );
            }
            let fields: Vec<String> = [
                csv_field(&path.display().to_string()),
                csv_field(&card.classes[best]),
            ]
            .into_iter()
            .chain(probs.iter().map(|p| format!("{p:.7}")))
            .collect();
            rows.push(fields.join(","));
        }
        if let Some(bar) = &bar {
            bar.inc(chunk.len() as u64);
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
        let summary: Vec<String> = card
            .classes
            .iter()
            .zip(&counts)
            .map(|(name, n)| format!("{name}: {n}"))
            .collect();
        println!("Predicted {} images: {}", files.len(), summary.join(", "));
    }
    if let Some(csv) = csv {
        let header: Vec<String> = ["file", "class"]
            .into_iter()
            .map(String::from)
            .chain(card.classes.iter().map(|n| csv_field(n)))
            .collect();
        let text = format!("{}\n{}\n", header.join(","), rows.join("\n"));
        dataset::output::write_atomic(&csv, text.as_bytes())?;
        println!("Wrote {} predictions to {}", rows.len(), csv.display());
    }
    Ok(())
}
