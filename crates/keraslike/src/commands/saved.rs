//! Using a saved model: `evaluate` on its test set, `predict` image files.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::{Tensor, TensorData};
use dataset::{DatasetChoice, ImageShape};

use keraslike::backend::{self, Backend};
use keraslike::data::{ImageBatcher, InMemoryImages};
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
    let (model, card) = saved_model::load(model, &device)?;
    let shape = ImageShape {
        channels: card.model.input[0],
        height: card.model.input[1],
        width: card.model.input[2],
    };
    let batcher = ImageBatcher::unit(shape);
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
    Ok(())
}

pub fn predict(model: &Path, images: &[PathBuf], backend: Backend) -> Result<()> {
    let device = backend::device(backend)?;
    let (model, card) = saved_model::load(model, &device)?;
    let [c, h, w] = card.model.input;
    for path in images {
        let x = card.image_input(path)?;
        let x = Tensor::<4>::from_data(TensorData::new(x, [1, c, h, w]), &device);
        let probs = burn::tensor::activation::softmax(model.forward_logits(x), 1)
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("reading the output: {e:?}"))?;
        let best = probs
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i)
            .context("the model has no outputs")?;
        let listed: Vec<String> = card
            .classes
            .iter()
            .zip(&probs)
            .map(|(name, p)| format!("{name}: {p:.4}"))
            .collect();
        println!(
            "{}: {} ({})",
            path.display(),
            card.classes[best],
            listed.join(", ")
        );
    }
    Ok(())
}
