//! `model.evaluate()`: loss, accuracy and the confusion matrix over a whole data set.

use std::path::Path;

use anyhow::{Result, anyhow};
use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataset::Dataset;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::Device;
use dataset::output::write_atomic;

use crate::data::{ImageBatcher, ImageItem};
use crate::model::Sequential;

#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Mean cross-entropy per image.
    pub loss: f64,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
}

impl Evaluation {
    pub fn count(&self) -> usize {
        self.confusion.iter().flatten().sum()
    }

    pub fn accuracy(&self) -> f64 {
        let right: usize = (0..self.confusion.len())
            .map(|i| self.confusion[i][i])
            .sum();
        right as f64 / self.count().max(1) as f64
    }

    /// Of the images predicted as `class`, the fraction that are.
    pub fn precision(&self, class: usize) -> f64 {
        let predicted: usize = self.confusion.iter().map(|row| row[class]).sum();
        self.confusion[class][class] as f64 / predicted.max(1) as f64
    }

    /// Of the images of `class`, the fraction found.
    pub fn recall(&self, class: usize) -> f64 {
        let actual: usize = self.confusion[class].iter().sum();
        self.confusion[class][class] as f64 / actual.max(1) as f64
    }

    /// The matrix as text, rows true classes, columns predictions.
    pub fn confusion_table(&self, classes: &[String]) -> String {
        cli::table::confusion(classes, &self.confusion)
    }

    /// Test loss and accuracy, the confusion matrix, and precision and recall of the
    /// positive class (`smile` when there is one) for two classes.
    pub fn report(&self, classes: &[String]) -> String {
        let mut text = format!("{} test images\n", self.count());
        text += &format!("Test loss: {:.4}\n", self.loss);
        text += &format!("Test accuracy: {:.4}\n", self.accuracy());
        text += "Confusion matrix (rows: true class, columns: predicted):\n";
        text += &self.confusion_table(classes);
        let positive = classes
            .iter()
            .position(|c| c == "smile")
            .unwrap_or(classes.len().saturating_sub(1));
        if classes.len() == 2 {
            text += &format!(
                "{}: precision {:.4}, recall {:.4}\n",
                classes[positive],
                self.precision(positive),
                self.recall(positive)
            );
        }
        text
    }

    /// `confusion.csv`: a header of predicted classes, one row per true class.
    pub fn write_confusion_csv(&self, path: &Path, classes: &[String]) -> Result<()> {
        let mut csv = format!("true\\predicted,{}\n", classes.join(","));
        for (c, row) in classes.iter().zip(&self.confusion) {
            let cells: Vec<String> = row.iter().map(|n| n.to_string()).collect();
            csv += &format!("{c},{}\n", cells.join(","));
        }
        write_atomic(path, csv.as_bytes())?;
        Ok(())
    }
}

/// Runs `model` (in inference mode) over every item of `data`.
pub fn evaluate<D>(
    model: &Sequential,
    data: D,
    batcher: ImageBatcher,
    classes: usize,
    batch_size: usize,
    device: &Device,
) -> Result<Evaluation>
where
    D: Dataset<ImageItem> + 'static,
{
    let loader = DataLoaderBuilder::new(batcher)
        .batch_size(batch_size)
        .set_device(device.clone())
        .build(data);
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let mut confusion = vec![vec![0usize; classes]; classes];
    let (mut loss_sum, mut n) = (0.0f64, 0usize);
    for batch in loader.iter() {
        let batch = batch.map_err(|e| anyhow!("reading the data: {e}"))?;
        let size = batch.targets.dims()[0];
        let logits = model.forward_logits(batch.images);
        let loss = loss_fn.forward(logits.clone(), batch.targets.clone());
        loss_sum += loss.into_scalar::<f64>() * size as f64;
        n += size;
        let predicted = logits.argmax(1).flatten::<1>(0, 1).into_data();
        let truth = batch.targets.into_data();
        for (t, p) in truth.iter::<i64>().zip(predicted.iter::<i64>()) {
            confusion[t as usize][p as usize] += 1;
        }
    }
    Ok(Evaluation {
        loss: loss_sum / n.max(1) as f64,
        confusion,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_from_the_confusion_matrix() {
        let e = Evaluation {
            loss: 0.0,
            confusion: vec![vec![8, 2], vec![1, 9]],
        };
        assert_eq!(e.count(), 20);
        assert!((e.accuracy() - 0.85).abs() < 1e-12);
        assert!((e.precision(1) - 9.0 / 11.0).abs() < 1e-12);
        assert!((e.recall(1) - 0.9).abs() < 1e-12);
        let classes = ["nonsmile".to_string(), "smile".to_string()];
        let table = e.confusion_table(&classes);
        assert!(
            table
                .lines()
                .nth(2)
                .unwrap()
                .trim_start()
                .starts_with("smile")
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("confusion.csv");
        e.write_confusion_csv(&path, &classes).unwrap();
        let csv = std::fs::read_to_string(path).unwrap();
        assert_eq!(
            csv,
            "true\\predicted,nonsmile,smile\nnonsmile,8,2\nsmile,1,9\n"
        );
    }
}
