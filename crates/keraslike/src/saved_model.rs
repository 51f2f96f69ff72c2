//! A trained model on disk, as Keras's `model.save()` keeps architecture and weights
//! together: `NAME.bpk` (burn's burnpack weights) and beside it `NAME.toml` (the layers,
//! the class names and how an image file becomes an input).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::Device;
use clap::ValueEnum;
use dataset::image_input::{self, Preprocess};
use dataset::output::write_atomic;
use dataset::{ColorMode, DatasetChoice, FolderOptions, ImageShape, Interpolation};
use serde::{Deserialize, Serialize};

use crate::data::ImageBatcher;
use crate::model::Sequential;
use crate::model_config::ModelConfig;

/// How images are resized to the model's input (`face --interpolation`; Keras's
/// `flow_from_directory(interpolation=...)`), kept with the model so that `evaluate` and
/// `predict` resize as training did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum Resample {
    /// Keras's default: PIL's nearest neighbour, reproduced exactly.
    #[default]
    Nearest,
    /// A triangle filter, widened when shrinking (PIL's BILINEAR).
    Bilinear,
}

impl Resample {
    /// A card without the setting comes from a run that resized bilinearly.
    fn unrecorded() -> Self {
        Resample::Bilinear
    }

    pub fn interpolation(self) -> Interpolation {
        match self {
            Resample::Nearest => Interpolation::Nearest,
            Resample::Bilinear => Interpolation::Bilinear,
        }
    }
}

/// Cards once wrote an image folder as `[source.folder] path = "DIR"`; they still load.
fn source<'de, D: serde::Deserializer<'de>>(d: D) -> Result<DatasetChoice, D::Error> {
    #[derive(Deserialize)]
    struct FolderTable {
        path: PathBuf,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Choice(DatasetChoice),
        Table { folder: FolderTable },
    }
    Ok(match Written::deserialize(d)? {
        Written::Choice(choice) => choice,
        Written::Table { folder } => DatasetChoice::Folder(folder.path),
    })
}

/// Everything but the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelCard {
    pub classes: Vec<String>,
    pub preprocess: Preprocess,
    /// How [`Preprocess::Resize`] resizes.
    #[serde(default = "Resample::unrecorded")]
    pub interpolation: Resample,
    /// The data set it was trained on, so that `evaluate` finds its test set.
    #[serde(deserialize_with = "source")]
    pub source: DatasetChoice,
    /// For an image folder without `test/`: the `--validation-split` it was trained with,
    /// whose validation subset `evaluate` then uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_split: Option<f64>,
    /// The image folder was read following symbolic links (`face --follow-links`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub follow_links: bool,
    /// Each pixel value 0-255 is multiplied by this (Keras's `rescale`; the course's 1/255
    /// unless `face --rescale` said otherwise).
    #[serde(default = "course_rescale", skip_serializing_if = "is_course_rescale")]
    pub rescale: f32,
    pub model: ModelConfig,
}

/// The course's `ImageDataGenerator(rescale=1./255)`.
pub const COURSE_RESCALE: f32 = 1.0 / 255.0;

fn course_rescale() -> f32 {
    COURSE_RESCALE
}

fn is_course_rescale(r: &f32) -> bool {
    *r == COURSE_RESCALE
}

/// The card that goes with weights `path`: same name, `.toml`.
pub fn card_path(path: &Path) -> PathBuf {
    path.with_extension("toml")
}

/// Writes any module's weights as burnpack, atomically.
pub fn save_weights<M: Module>(path: &Path, module: &M) -> Result<()> {
    let bytes = module
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| anyhow!("{}: cannot serialise the weights: {e}", path.display()))?;
    write_atomic(path, &bytes)?;
    Ok(())
}

/// Loads weights written by [`save_weights`] into `fresh`, a module of the same shape.
pub fn load_weights<M: Module>(path: &Path, fresh: M) -> Result<M> {
    let record = ModuleRecord::load(path)
        .map_err(|e| anyhow!("{}: not a burnpack weights file: {e}", path.display()))?;
    fresh
        .try_load_record(record)
        .map_err(|e| anyhow!("{}: weights do not fit the network: {e}", path.display()))
}

/// The PyTorch-style export that goes with weights `path`: same name, `.safetensors`.
pub fn export_path(path: &Path) -> PathBuf {
    path.with_extension("safetensors")
}

/// Saves weights, card and the PyTorch-style export ([`crate::export`]), each atomically.
pub fn save(path: &Path, model: &Sequential, card: &ModelCard) -> Result<()> {
    save_weights(path, model)?;
    crate::export::save(&export_path(path), model, card)?;
    let text = toml::to_string(card).context("cannot serialise the model card")?;
    write_atomic(&card_path(path), text.as_bytes())?;
    Ok(())
}

/// Rebuilds the model from its card and loads the weights.
pub fn load(path: &Path, device: &Device) -> Result<(Sequential, ModelCard)> {
    if !path.is_file() {
        bail!("{}: no such model file", path.display());
    }
    let card_file = card_path(path);
    let text = std::fs::read_to_string(&card_file).with_context(|| {
        format!(
            "{}: cannot read the model card that goes with {}",
            card_file.display(),
            path.display()
        )
    })?;
    let card: ModelCard =
        dataset::toml_text::parse(&text, &card_file.display().to_string(), "model card")
            .map_err(anyhow::Error::msg)?;
    let infos = card
        .model
        .infer()
        .with_context(|| format!("{}: the model it describes", card_file.display()))?;
    let outputs = infos.last().map(|l| l.output);
    if crate::class_mode::classes_of(&card.model, &infos) != Some(card.classes.len()) {
        bail!(
            "{}: lists {} class names for a model whose output is {}",
            card_file.display(),
            card.classes.len(),
            outputs.map_or("nothing".into(), |s| s.keras())
        );
    }
    // Every parameter is an f32 in the weights file: a card describing more than the file
    // holds is refused before the model is built (a small card can describe gigabytes).
    let params: u128 = infos.iter().map(|l| l.params() as u128).sum();
    let file_bytes = std::fs::metadata(path)
        .with_context(|| format!("{}: cannot read", path.display()))?
        .len();
    if params * 4 > u128::from(file_bytes) {
        bail!(
            "{}: describes a model of {params} parameters ({} bytes as f32), but {} holds only {file_bytes} bytes",
            card_file.display(),
            params * 4,
            path.display()
        );
    }
    let record = ModuleRecord::load(path)
        .map_err(|e| anyhow!("{}: not a burnpack weights file: {e}", path.display()))?;
    let model = Sequential::new(&card.model, device)?
        .try_load_record(record)
        .map_err(|e| {
            anyhow!(
                "{}: weights do not fit the model in {}: {e}",
                path.display(),
                card_file.display()
            )
        })?;
    Ok((model, card))
}

impl ModelCard {
    /// The model's input for image file `path`: (C, H, W) values in [0, 1].
    pub fn image_input(&self, path: &Path) -> Result<Vec<f32>> {
        let [channels, height, width] = self.model.input;
        let shape = ImageShape {
            channels,
            height,
            width,
        };
        let interpolation = self.interpolation.interpolation();
        let mut x = image_input::read(path, shape, self.preprocess, interpolation)?;
        // `read` gives p / 255; another rescale scales that (the course's stays exact).
        if self.rescale != COURSE_RESCALE {
            let factor = self.rescale * 255.0;
            x.iter_mut().for_each(|v| *v *= factor);
        }
        Ok(x)
    }

    /// The batcher that turns this model's images into its inputs (pixels × `rescale`).
    pub fn batcher(&self) -> ImageBatcher {
        let [channels, height, width] = self.model.input;
        ImageBatcher {
            shape: ImageShape {
                channels,
                height,
                width,
            },
            scale: self.rescale,
            offset: 0.0,
        }
    }

    /// How images are read for this model: resized to its input with its interpolation,
    /// grey or RGB by its input's channels.
    pub fn folder_options(&self) -> FolderOptions {
        let [c, h, w] = self.model.input;
        FolderOptions {
            target_size: Some((h as u32, w as u32)),
            color_mode: if c == 1 {
                ColorMode::Grayscale
            } else {
                ColorMode::Rgb
            },
            interpolation: self.interpolation.interpolation(),
            follow_links: self.follow_links,
            ..FolderOptions::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Tensor;

    fn small_card() -> ModelCard {
        let model = ModelConfig::parse(
            "input = [3, 8, 6]\n[[layers]]\ntype = \"Flatten\"\n\
             [[layers]]\ntype = \"Dense\"\nunits = 2\nactivation = \"softmax\"\n",
            "x",
        )
        .unwrap();
        ModelCard {
            classes: vec!["nonsmile".into(), "smile".into()],
            preprocess: Preprocess::Resize,
            interpolation: Resample::Nearest,
            source: DatasetChoice::Mnist,
            validation_split: None,
            follow_links: false,
            rescale: COURSE_RESCALE,
            model,
        }
    }

    #[test]
    fn saved_model_loads_with_the_same_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.bpk");
        let device = Device::flex();
        let card = small_card();
        let model = Sequential::new(&card.model, &device).unwrap();
        save(&path, &model, &card).unwrap();
        let (back, back_card) = load(&path, &device).unwrap();
        assert_eq!(back_card, card);
        let x = Tensor::<4>::ones([1, 3, 8, 6], &device);
        let a = model
            .forward(x.clone())
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let b = back.forward(x).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn cards_name_their_data_set_as_the_command_line_does() {
        let mut card = small_card();
        card.source = DatasetChoice::Folder("/faces".into());
        let text = toml::to_string(&card).unwrap();
        assert!(text.contains(r#"source = "folder:/faces""#), "{text}");
        // The table form earlier cards used still loads.
        let old = format!(
            "{}\n[source.folder]\npath = \"/faces\"\n",
            text.replace(r#"source = "folder:/faces""#, "")
        );
        let back: ModelCard = toml::from_str(&old).unwrap();
        assert_eq!(back.source, card.source);
    }

    #[test]
    fn missing_or_mismatched_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let device = Device::flex();
        let path = dir.path().join("model.bpk");
        let err = load(&path, &device).unwrap_err().to_string();
        assert!(err.contains("no such model file"), "{err}");

        let card = small_card();
        let model = Sequential::new(&card.model, &device).unwrap();
        save(&path, &model, &card).unwrap();
        // A card describing a different network than the weights.
        let mut other = card.clone();
        other.model.input = [1, 8, 6];
        std::fs::write(card_path(&path), toml::to_string(&other).unwrap()).unwrap();
        let err = load(&path, &device).unwrap_err().to_string();
        assert!(err.contains("do not fit"), "{err}");

        // A card naming fewer classes than the model has outputs.
        let mut short = card.clone();
        short.classes.pop();
        std::fs::write(card_path(&path), toml::to_string(&short).unwrap()).unwrap();
        let err = load(&path, &device).unwrap_err().to_string();
        assert!(
            err.contains("1 class names") && err.contains("(None, 2)"),
            "{err}"
        );

        // A card describing a far larger model than the weights hold.
        let mut huge = card.clone();
        huge.model = ModelConfig::parse(
            "input = [3, 8, 6]\n[[layers]]\ntype = \"Flatten\"\n\
             [[layers]]\ntype = \"Dense\"\nunits = 1000000\n\
             [[layers]]\ntype = \"Dense\"\nunits = 2\nactivation = \"softmax\"\n",
            "x",
        )
        .unwrap();
        std::fs::write(card_path(&path), toml::to_string(&huge).unwrap()).unwrap();
        let err = load(&path, &device).unwrap_err().to_string();
        assert!(
            err.contains("model.toml") && err.contains("147000002 parameters"),
            "{err}"
        );

        std::fs::write(&path, b"not burnpack".repeat(200)).unwrap();
        std::fs::write(card_path(&path), toml::to_string(&card).unwrap()).unwrap();
        let err = load(&path, &device).unwrap_err().to_string();
        assert!(err.contains("not a burnpack"), "{err}");
    }

    #[test]
    fn resize_preprocessing_gives_planes_in_unit_range() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("red.png");
        image::RgbImage::from_pixel(20, 30, image::Rgb([255, 0, 0]))
            .save(&path)
            .unwrap();
        let x = small_card().image_input(&path).unwrap();
        assert_eq!(x.len(), 3 * 8 * 6);
        assert!(x[..48].iter().all(|&v| v == 1.0));
        assert!(x[48..].iter().all(|&v| v == 0.0));
    }

    /// `predict` resizes as the card says: nearest keeps the picture's exact pixel values,
    /// bilinear blends neighbours; a card without the setting means bilinear.
    #[test]
    fn predict_resizes_with_the_cards_interpolation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stripes.png");
        // Vertical stripes of 0 and 255, one pixel wide, shrunk from 20x30 to 6x8.
        image::RgbImage::from_fn(20, 30, |x, _| {
            image::Rgb([if x % 2 == 0 { 0 } else { 255 }; 3])
        })
        .save(&path)
        .unwrap();
        let mut card = small_card();
        let nearest = card.image_input(&path).unwrap();
        assert!(nearest.iter().all(|&v| v == 0.0 || v == 1.0), "{nearest:?}");
        card.interpolation = Resample::Bilinear;
        let bilinear = card.image_input(&path).unwrap();
        assert!(bilinear.iter().any(|&v| v > 0.1 && v < 0.9), "{bilinear:?}");

        let mut text = toml::to_string(&small_card()).unwrap();
        text = text.replace("interpolation = \"nearest\"\n", "");
        let old: ModelCard = toml::from_str(&text).unwrap();
        assert_eq!(old.interpolation, Resample::Bilinear);
    }
}
