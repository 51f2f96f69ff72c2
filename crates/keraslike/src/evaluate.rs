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

/// How many of the most confidently misclassified images an evaluation keeps.
pub const WORST_KEPT: usize = 16;

#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Mean cross-entropy per image.
    pub loss: f64,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
    /// The misclassified images the model was surest of, surest first.
    pub worst: Vec<Misclassified>,
}

/// A test image the model got wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct Misclassified {
    /// Its position in the data set.
    pub index: usize,
    pub truth: usize,
    pub predicted: usize,
    /// The probability the model gave its (wrong) prediction.
    pub confidence: f32,
    /// The image, (C, H, W) in [0, 1] (the model's input before its rescale).
    pub pixels: Vec<f32>,
    pub shape: [usize; 3],
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

    /// Of precision and recall, their harmonic mean (0 when both are).
    pub fn f1(&self, class: usize) -> f64 {
        let (p, r) = (self.precision(class), self.recall(class));
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }

    /// scikit-learn's `classification_report`: precision, recall, F1 and support of each
    /// class, then the accuracy and the macro and support-weighted averages (a class never
    /// predicted has precision 0, as sklearn's `zero_division` default gives).
    pub fn classification_report(&self, classes: &[String]) -> String {
        let name_w = classes.iter().map(|c| c.len()).max().unwrap_or(0).max(12);
        let support: Vec<usize> = self.confusion.iter().map(|row| row.iter().sum()).collect();
        let total = self.count().max(1) as f64;
        let line = |name: &str, p: f64, r: f64, f: f64, n: usize| {
            format!("{name:>name_w$}  {p:>9.4} {r:>9.4} {f:>9.4} {n:>9}\n")
        };
        let mut text = format!(
            "{:>name_w$}  {:>9} {:>9} {:>9} {:>9}\n\n",
            "", "precision", "recall", "f1-score", "support"
        );
        for (k, name) in classes.iter().enumerate() {
            text += &line(
                name,
                self.precision(k),
                self.recall(k),
                self.f1(k),
                support[k],
            );
        }
        let k = classes.len().max(1) as f64;
        let mean = |f: &dyn Fn(usize) -> f64| (0..classes.len()).map(f).sum::<f64>() / k;
        let weighted = |f: &dyn Fn(usize) -> f64| {
            (0..classes.len())
                .map(|c| f(c) * support[c] as f64)
                .sum::<f64>()
                / total
        };
        text += &format!(
            "\n{:>name_w$}  {:>9} {:>9} {:>9.4} {:>9}\n",
            "accuracy",
            "",
            "",
            self.accuracy(),
            self.count()
        );
        text += &line(
            "macro avg",
            mean(&|c| self.precision(c)),
            mean(&|c| self.recall(c)),
            mean(&|c| self.f1(c)),
            self.count(),
        );
        text += &line(
            "weighted avg",
            weighted(&|c| self.precision(c)),
            weighted(&|c| self.recall(c)),
            weighted(&|c| self.f1(c)),
            self.count(),
        );
        text
    }

    /// `misclassified.png`: the images in [`Self::worst`] with what the model said, the
    /// surest mistake first (nothing is written when there is none).
    pub fn write_misclassified(&self, path: &Path, classes: &[String]) -> Result<bool> {
        if self.worst.is_empty() {
            return Ok(false);
        }
        let tiles: Vec<cli::Tile> = self
            .worst
            .iter()
            .map(|m| {
                let [c, h, w] = m.shape;
                let image = image::RgbImage::from_fn(w as u32, h as u32, |x, y| {
                    let at = |ch: usize| {
                        let v = m.pixels[(ch.min(c - 1) * h + y as usize) * w + x as usize];
                        (v.clamp(0.0, 1.0) * 255.0).round() as u8
                    };
                    image::Rgb([at(0), at(1), at(2)])
                });
                cli::Tile {
                    image,
                    caption: [
                        format!("{} {:.2}", classes[m.predicted], m.confidence),
                        format!("(true {}, #{})", classes[m.truth], m.index),
                    ],
                }
            })
            .collect();
        cli::write_captioned_grid(path, &tiles, 4)?;
        Ok(true)
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
        text += &self.classification_report(classes);
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
    let batcher_scale = batcher.scale;
    let loader = DataLoaderBuilder::new(batcher)
        .batch_size(batch_size)
        .set_device(device.clone())
        .build(data);
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let mut confusion = vec![vec![0usize; classes]; classes];
    let mut worst: Vec<Misclassified> = Vec::new();
    let (mut loss_sum, mut n) = (0.0f64, 0usize);
    for batch in loader.iter() {
        let batch = batch.map_err(|e| anyhow!("reading the data: {e}"))?;
        let [size, c, h, w] = batch.images.dims();
        let logits = model.forward_logits(batch.images.clone());
        let loss = loss_fn.forward(logits.clone(), batch.targets.clone());
        loss_sum += loss.into_scalar::<f64>() * size as f64;
        let probs = burn::tensor::activation::softmax(logits, 1)
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| anyhow!("reading the outputs: {e:?}"))?;
        let truth = batch.targets.into_data();
        let mut pixels: Option<Vec<f32>> = None;
        for (i, t) in truth.iter::<i64>().enumerate() {
            let row = &probs[i * classes..(i + 1) * classes];
            // The first of equal maxima, as argmax.
            let p = (1..classes).fold(0, |best, k| if row[k] > row[best] { k } else { best });
            let t = t as usize;
            confusion[t][p] += 1;
            let surer = |m: &Misclassified| m.confidence < row[p];
            if p != t && (worst.len() < WORST_KEPT || worst.last().is_some_and(surer)) {
                // The batch's pixels are read only when one of its images is kept.
                let all = match &pixels {
                    Some(all) => all,
                    None => pixels.insert(
                        batch
                            .images
                            .clone()
                            .into_data()
                            .try_to_vec::<f32>()
                            .map_err(|e| anyhow!("reading the images: {e:?}"))?,
                    ),
                };
                let one = c * h * w;
                // Back to [0, 1] from the batcher's scale (1/255 unless rescaled).
                let to_unit = 1.0 / (batcher_scale * 255.0);
                worst.push(Misclassified {
                    index: n + i,
                    truth: t,
                    predicted: p,
                    confidence: row[p],
                    pixels: all[i * one..(i + 1) * one]
                        .iter()
                        .map(|v| v * to_unit)
                        .collect(),
                    shape: [c, h, w],
                });
                worst.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
                worst.truncate(WORST_KEPT);
            }
        }
        n += size;
    }
    Ok(Evaluation {
        loss: loss_sum / n.max(1) as f64,
        confusion,
        worst,
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
            worst: Vec::new(),
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
        let report = e.classification_report(&classes);
        let lines: Vec<&str> = report.lines().collect();
        // scikit-learn's numbers for this matrix (classification_report, digits=4).
        assert!(
            lines[0].ends_with("precision    recall  f1-score   support"),
            "{report}"
        );
        assert!(
            lines[2].ends_with("nonsmile     0.8889    0.8000    0.8421        10"),
            "{report}"
        );
        assert!(
            lines[3].ends_with("smile     0.8182    0.9000    0.8571        10"),
            "{report}"
        );
        assert!(
            lines[5].ends_with("accuracy                         0.8500        20"),
            "{report}"
        );
        assert!(
            lines[6].ends_with("macro avg     0.8535    0.8500    0.8496        20"),
            "{report}"
        );
        assert!(
            lines[7].ends_with("weighted avg     0.8535    0.8500    0.8496        20"),
            "{report}"
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

    #[test]
    fn a_class_never_predicted_has_zero_precision_and_f1() {
        let e = Evaluation {
            loss: 0.0,
            confusion: vec![vec![5, 0, 0], vec![3, 0, 0], vec![0, 0, 2]],
            worst: Vec::new(),
        };
        assert_eq!((e.precision(1), e.recall(1), e.f1(1)), (0.0, 0.0, 0.0));
        let classes: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let report = e.classification_report(&classes);
        assert!(
            report.contains("accuracy                         0.7000        10"),
            "{report}"
        );
        // The rest of sklearn's classification_report(digits=4, zero_division=0).
        for line in [
            "a     0.6250    1.0000    0.7692         5",
            "macro avg     0.5417    0.6667    0.5897        10",
            "weighted avg     0.5125    0.7000    0.5846        10",
        ] {
            assert!(report.contains(line), "{line:?} in\n{report}");
        }
    }

    /// An untrained model on scrambled pixels gets about half wrong; the evaluation keeps
    /// the surest of those mistakes, surest first, with their own pixels, and draws them.
    #[test]
    fn the_surest_mistakes_are_kept_and_drawn() {
        use crate::data::InMemoryImages;
        use crate::model_config::ModelConfig;
        use dataset::{ImageShape, LabelledImages};
        let config = ModelConfig::parse(
            "input = [1, 4, 4]\n[[layers]]\ntype = \"Flatten\"\n\
             [[layers]]\ntype = \"Dense\"\nunits = 2\nactivation = \"softmax\"\n",
            "t.toml",
        )
        .unwrap();
        let device = Device::flex();
        let model = Sequential::new(&config, &device).unwrap();
        let shape = ImageShape {
            channels: 1,
            height: 4,
            width: 4,
        };
        let n = 40;
        let images = LabelledImages {
            shape,
            pixels: (0..n * 16).map(|i| (i * 37 % 256) as u8).collect(),
            labels: (0..n).map(|i| (i % 2) as u8).collect(),
            classes: vec!["zero".into(), "one".into()],
        };
        let e = evaluate(
            &model,
            InMemoryImages::new(images),
            ImageBatcher::unit(shape),
            2,
            8,
            &device,
        )
        .unwrap();
        let wrong: usize = e.count() - (0..2).map(|k| e.confusion[k][k]).sum::<usize>();
        assert!(wrong > 0);
        assert_eq!(e.worst.len(), wrong.min(WORST_KEPT));
        assert!(
            e.worst
                .windows(2)
                .all(|w| w[0].confidence >= w[1].confidence)
        );
        for m in &e.worst {
            assert_ne!(m.truth, m.predicted);
            assert!(m.confidence >= 0.5);
            assert_eq!(m.pixels.len(), 16);
            // The kept pixels are that image's.
            let expected: Vec<f32> = (0..16)
                .map(|j| ((m.index * 16 + j) * 37 % 256) as f32 / 255.0)
                .collect();
            assert!(
                m.pixels
                    .iter()
                    .zip(&expected)
                    .all(|(a, b)| (a - b).abs() < 1e-6)
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("misclassified.png");
        let classes = ["zero".to_string(), "one".to_string()];
        assert_eq!(
            e.write_misclassified(&path, &classes).unwrap(),
            !e.worst.is_empty()
        );
    }
}
