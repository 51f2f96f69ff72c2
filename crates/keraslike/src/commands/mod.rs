//! The subcommands that train and use models.

pub mod dcgan;
pub mod face;
pub mod mnist;
pub mod saved;
pub mod serve;
pub mod visualize;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use dataset::{DataDir, DatasetChoice, FolderOptions, ImageFolder, LabelledImages, Subset};

use dataset::augment::{Augmentation, Warp};
use keraslike::backend::Backend;
use keraslike::callbacks::{CallbackOptions, Monitor};
use keraslike::class_mode::ClassMode;
use keraslike::class_weight::{self, ClassWeight};
use keraslike::data::FolderImages;
use keraslike::fit::FitOptions;
use keraslike::lr_schedule::{Schedule, ScheduleKind};
use keraslike::model::Sequential;
use keraslike::model_config::{LayerInfo, ModelConfig};
use keraslike::optimizer::OptimizerKind;
use keraslike::saved_model::{ModelCard, Resample};

/// A data set held in memory (MNIST, Fashion-MNIST, CIFAR-10 or a folder of same-size
/// images) from `data`'s folder (or downloaded), each split cut to its limit.
pub fn load_split(
    choice: &DatasetChoice,
    data: &DataArgs,
    train_limit: Option<usize>,
    test_limit: Option<usize>,
) -> Result<(LabelledImages, LabelledImages)> {
    let dirs = DataDir::new(data.data_dir.clone()).with_download(!data.offline);
    let split = choice.load(&dirs)?;
    Ok((
        split.train.limited(train_limit),
        split.test.limited(test_limit),
    ))
}

/// `root/split` as an image folder, every file checked before any work ("Found N images
/// belonging to K classes.", as Keras prints).
pub fn open_split(root: &Path, split: &str, options: &FolderOptions) -> Result<ImageFolder> {
    let dir = root.join(split);
    if !dir.is_dir() {
        bail!(
            "{}: missing; --data must hold train/ and test/, each with one folder per class",
            dir.display()
        );
    }
    let folder = ImageFolder::open(&dir, options.clone())?.check_headers()?;
    println!("{}", folder.found_message());
    Ok(folder)
}

/// The folder whose class subfolders `--validation-split` divides: `data/train` when there
/// is one, else `data` itself.
pub fn split_root(data: &Path) -> PathBuf {
    let train = data.join("train");
    if train.is_dir() {
        train
    } else {
        data.to_path_buf()
    }
}

/// Keras's `flow_from_directory(dir, subset=...)` of a `validation_split`, every file
/// checked before any work, with Keras's "Found N images" line.
pub fn open_subset(
    dir: &Path,
    options: &FolderOptions,
    split: f64,
    subset: Subset,
) -> Result<ImageFolder> {
    let folder = ImageFolder::open(dir, options.clone())?
        .subset(split, subset)?
        .check_headers()?;
    println!("{}", folder.found_message());
    Ok(folder)
}

/// The folder's test split (or, for a model trained with `--validation-split`, its
/// validation subset), for `evaluate`.
pub fn test_folder(root: &Path, card: &ModelCard) -> Result<FolderImages> {
    let folder = match card.validation_split {
        None => open_split(root, "test", &card.folder_options()),
        Some(split) => open_subset(
            &split_root(root),
            &card.folder_options(),
            split,
            Subset::Validation,
        ),
    }
    .with_context(|| format!("evaluating on {}", root.display()))?;
    if folder.classes() != card.classes {
        bail!(
            "{}: test/ has classes {:?}, the model {:?}",
            root.display(),
            folder.classes(),
            card.classes
        );
    }
    Ok(FolderImages::new(folder))
}

#[derive(Args, Clone)]
pub struct DataArgs {
    /// Folder holding the data sets (`mnist/`, `fashion/`, ...). Looked in first, then the
    /// project's `data/`, then the files are downloaded into `data/`.
    #[arg(long, env = dataset::DATA_DIR_ENV)]
    pub data_dir: Option<PathBuf>,
    /// Never download: fail if the files are not found.
    #[arg(long)]
    pub offline: bool,
}

/// The training flags `mnist` and `face` share: Keras's `compile` and `fit` arguments,
/// each overriding the config's setting.
#[derive(Args)]
pub struct TrainArgs {
    /// Model and training settings (TOML) [default: the command's course model in configs/].
    #[arg(long)]
    config: Option<PathBuf>,
    /// Last epoch to train [default: the config's, else 10].
    #[arg(long)]
    epochs: Option<usize>,
    /// Images per step [default: the config's, else 32].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Optimiser [default: the config's, else adadelta].
    #[arg(long, value_enum)]
    optimizer: Option<OptimizerKind>,
    /// Learning rate [default: the config's, else the optimiser's: adadelta 1.0, adam,
    /// rmsprop and adagrad 0.001, sgd 0.01].
    #[arg(long)]
    lr: Option<f64>,
    /// Output folder [default: runs/keraslike/<config name>].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run in --out from its last checkpoint, up to --epochs.
    #[arg(long)]
    resume: bool,
    /// Start afresh in an --out that holds an earlier run, replacing its outputs (without
    /// it, a folder that is not empty is refused).
    #[arg(long)]
    overwrite: bool,
    /// Seed of the initial weights, shuffling, dropout and augmentation [default: the
    /// config's, else 42].
    #[arg(long)]
    seed: Option<u64>,
    /// Where the model runs: flex (fastest on CPU), ndarray, or wgpu (GPU).
    #[arg(long, value_enum, default_value_t = Backend::Flex)]
    pub backend: Backend,
    /// Threads preparing batches (decoding images, for image folders). The batches come in
    /// the seed's order whatever the number, so a seeded run repeats exactly.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Learning-rate schedule: constant, exponential (× --lr-decay over each epoch), step
    /// (× --lr-decay every --lr-step-epochs epochs) or cosine (down to 0 over the run)
    /// [default: the config's; exponential when it sets lr_decay].
    #[arg(long, value_enum, help_heading = "Learning rate")]
    lr_schedule: Option<ScheduleKind>,
    /// The exponential or step schedule's factor, in (0, 1] [default: the config's, else
    /// 0.9 for exponential, 0.1 for step].
    #[arg(long, help_heading = "Learning rate")]
    lr_decay: Option<f64>,
    /// The step schedule's period in epochs [default: 1].
    #[arg(long, help_heading = "Learning rate")]
    lr_step_epochs: Option<usize>,
    /// Transfer learning: start from this saved model (model.bpk) for every layer whose
    /// kind and weight shapes match, position by position; `trainable = false` in the
    /// config freezes layers [default: the config's init_from, else fresh weights].
    #[arg(long, value_name = "MODEL")]
    init_from: Option<PathBuf>,
    /// Train on the images in their own order every epoch (Keras's shuffle=False; for
    /// image folders, class by class in path order) [default: reshuffled every pass].
    #[arg(long)]
    no_shuffle: bool,
    /// Keras's class_weight: `balanced` (scikit-learn's: n / (classes × count), so each
    /// class weighs the same in all) or one weight per class in class order, as 1,2.5
    /// [default: the config's, else none].
    #[arg(long)]
    class_weight: Option<ClassWeight>,
    #[command(flatten)]
    callbacks: CallbackArgs,
    #[command(flatten)]
    augmentation: AugmentArgs,
}

/// Keras's ImageDataGenerator augmentation, one setting at a time (each over the
/// config's `[fit]` key of the same name, and over --augment's preset).
#[derive(Args)]
#[command(next_help_heading = "Augmentation (Keras's ImageDataGenerator)")]
pub struct AugmentArgs {
    /// Largest random rotation, in degrees.
    #[arg(long)]
    rotation_range: Option<f32>,
    /// Largest random shift left or right, as a fraction of the width.
    #[arg(long)]
    width_shift_range: Option<f32>,
    /// Largest random shift up or down, as a fraction of the height.
    #[arg(long)]
    height_shift_range: Option<f32>,
    /// Random zoom: the scale is drawn from [1 - ZOOM, 1 + ZOOM].
    #[arg(long)]
    zoom_range: Option<f32>,
    /// Mirror each training image left-right with probability 1/2.
    #[arg(long)]
    horizontal_flip: bool,
    /// How warped images are sampled: nearest, or bilinear (Keras's default,
    /// interpolation_order=1) [default: nearest].
    #[arg(long, value_enum)]
    augment_interpolation: Option<Resample>,
}

impl TrainArgs {
    /// The augmentation: `preset` when `use_preset` (--augment or `augment = true`), else
    /// none, with every setting the flags or the config give replacing the preset's.
    pub fn augmentation(
        &self,
        config: &ModelConfig,
        preset: Augmentation,
        use_preset: bool,
    ) -> Result<Augmentation> {
        let (flags, fit) = (&self.augmentation, &config.fit);
        let mut a = if use_preset {
            preset
        } else {
            Augmentation::default()
        };
        let fraction = |name: &str, v: Option<f32>| -> Result<Option<f32>> {
            match v {
                Some(v) if !(0.0..1.0).contains(&v) => bail!("{name} must be in [0, 1), not {v}"),
                other => Ok(other),
            }
        };
        if let Some(v) = fraction(
            "width_shift_range",
            flags.width_shift_range.or(fit.width_shift_range),
        )? {
            a.width_shift = v;
        }
        if let Some(v) = fraction(
            "height_shift_range",
            flags.height_shift_range.or(fit.height_shift_range),
        )? {
            a.height_shift = v;
        }
        if let Some(v) = fraction("zoom_range", flags.zoom_range.or(fit.zoom_range))? {
            a.zoom = v;
        }
        if let Some(v) = flags.rotation_range.or(fit.rotation_range) {
            if !(0.0..=180.0).contains(&v) {
                bail!("rotation_range must be in [0, 180] degrees, not {v}");
            }
            a.rotation = v;
        }
        if let Some(flip) = flags
            .horizontal_flip
            .then_some(true)
            .or(fit.horizontal_flip)
        {
            a.horizontal_flip = flip;
        }
        if let Some(how) = flags.augment_interpolation.or(fit.augment_interpolation) {
            a.warp = match how {
                Resample::Nearest => Warp::Nearest,
                Resample::Bilinear => Warp::Bilinear,
            };
        }
        Ok(a)
    }
}

/// Keras's callbacks as flags (each over the config's `[fit]` key of the same name).
#[derive(Args)]
#[command(
    next_help_heading = "Callbacks (Keras's EarlyStopping, ModelCheckpoint, ReduceLROnPlateau)"
)]
pub struct CallbackArgs {
    /// What the callbacks watch after every epoch [default: val_loss].
    #[arg(long, value_enum)]
    monitor: Option<Monitor>,
    /// EarlyStopping: stop once this many epochs in a row did not improve the monitored
    /// value.
    #[arg(long)]
    patience: Option<usize>,
    /// EarlyStopping: a change smaller than this is no improvement [default: 0].
    #[arg(long)]
    min_delta: Option<f64>,
    /// EarlyStopping(restore_best_weights=True): end with (and save) the best epoch's
    /// weights instead of the last epoch's.
    #[arg(long)]
    restore_best: bool,
    /// ModelCheckpoint(save_best_only=True): model.bpk holds the epoch with the best
    /// monitored value; the run says which epoch that was.
    #[arg(long)]
    save_best_only: bool,
    /// ReduceLROnPlateau: multiply the rate by --reduce-lr-factor once this many epochs in
    /// a row did not improve the monitored value.
    #[arg(long)]
    reduce_lr_patience: Option<usize>,
    /// ReduceLROnPlateau's factor, in (0, 1) [default: 0.1].
    #[arg(long)]
    reduce_lr_factor: Option<f64>,
    /// ReduceLROnPlateau never lowers the rate below this [default: 0].
    #[arg(long)]
    min_lr: Option<f64>,
}

impl CallbackArgs {
    fn options(&self) -> CallbackOptions {
        CallbackOptions {
            monitor: self.monitor,
            patience: self.patience,
            min_delta: self.min_delta,
            restore_best_weights: self.restore_best.then_some(true),
            save_best_only: self.save_best_only.then_some(true),
            reduce_lr_patience: self.reduce_lr_patience,
            reduce_lr_factor: self.reduce_lr_factor,
            min_lr: self.min_lr,
        }
    }
}

impl TrainArgs {
    /// The `--config` file, or the built-in `default` (text of `configs/<default_name>.toml`),
    /// with the name the run's folder takes.
    pub fn load_config(&self, default: &str, default_name: &str) -> Result<(ModelConfig, String)> {
        match &self.config {
            Some(path) => Ok((
                ModelConfig::load(path)?,
                path.file_stem()
                    .map_or("model".into(), |s| s.to_string_lossy().into_owned()),
            )),
            None => Ok((
                ModelConfig::parse(default, &format!("configs/{default_name}.toml"))?,
                default_name.to_string(),
            )),
        }
    }

    /// The flags over the config's `[compile]` and `[fit]` settings.
    pub fn fit_options(&self, config: &ModelConfig) -> Result<FitOptions> {
        let (optimizer, learning_rate) = config.compile.resolve(self.optimizer, self.lr)?;
        let options = FitOptions {
            epochs: self.epochs.or(config.fit.epochs).unwrap_or(10),
            batch_size: self.batch_size.or(config.fit.batch_size).unwrap_or(32),
            optimizer,
            learning_rate,
            schedule: Schedule::new(
                self.lr_schedule.or(config.compile.lr_schedule),
                self.lr_decay.or(config.compile.lr_decay),
                self.lr_step_epochs.or(config.compile.lr_step_epochs),
            )?,
            callbacks: config
                .fit
                .callbacks()
                .overridden_by(&self.callbacks.options()),
            seed: self.seed.or(config.fit.seed).unwrap_or(42),
            workers: self.workers.max(1),
            resume: self.resume,
            overwrite: self.overwrite,
            classes: keraslike::class_mode::classes_of(config, &config.infer()?).unwrap_or(2),
            train_items: None,
            valid_items: None,
            class_weights: None,
            shuffle: !(self.no_shuffle || config.fit.shuffle == Some(false)),
        };
        if options.epochs == 0 || options.batch_size == 0 {
            bail!("--epochs and --batch-size must be at least 1");
        }
        // Settings that belong together are checked before any work.
        options.callbacks.build()?;
        Ok(options)
    }

    /// `model` with the weights of `--init-from` / `init_from` copied in where they fit,
    /// saying which layers were copied.
    pub fn init_from(
        &self,
        config: &ModelConfig,
        model: Sequential,
        device: &burn::tensor::Device,
    ) -> Result<Sequential> {
        let Some(path) = self.init_from.as_ref().or(config.fit.init_from.as_ref()) else {
            return Ok(model);
        };
        let (source, _) = keraslike::saved_model::load(path, device)
            .with_context(|| format!("init_from {}", path.display()))?;
        let weighted = model
            .layers
            .iter()
            .filter(|l| l.weighted_kind().is_some())
            .count();
        let (model, copied) = model.copy_matching(&source);
        if copied.is_empty() {
            bail!(
                "init_from {}: no layer matches this model's in kind and shape",
                path.display()
            );
        }
        let names: Vec<String> = copied
            .iter()
            .map(|&i| format!("{} {}", model.layers[i].weighted_kind().unwrap_or("?"), i))
            .collect();
        println!(
            "init_from {}: copied {} of {weighted} layers with weights ({})",
            path.display(),
            copied.len(),
            names.join(", ")
        );
        Ok(model)
    }

    /// The class weights asked for (flag over config), for classes of `counts` training
    /// images each; printed as Keras users would check them.
    pub fn class_weights(
        &self,
        config: &ModelConfig,
        counts: &[usize],
        names: &[String],
    ) -> Result<Option<Vec<f32>>> {
        let Some(asked) = self
            .class_weight
            .as_ref()
            .or(config.fit.class_weight.as_ref())
        else {
            return Ok(None);
        };
        let weights = asked.resolve(counts, names)?;
        println!("class_weight: {}", class_weight::describe(&weights, names));
        Ok(Some(weights))
    }

    /// `--out`, or `runs/keraslike/<name>`.
    pub fn out_dir(&self, name: &str) -> PathBuf {
        self.out
            .clone()
            .unwrap_or_else(|| Path::new("runs/keraslike").join(name))
    }
}

/// The model's last layer must fit the data's classes in the class mode asked for (by
/// default the model's own: one sigmoid unit is binary); the mode used, as printed.
pub fn check_outputs(
    config: &ModelConfig,
    infos: &[LayerInfo],
    classes: &[String],
    asked: Option<ClassMode>,
) -> Result<ClassMode> {
    let mode = keraslike::class_mode::check(config, infos, classes, asked)?;
    println!("class_mode: {}", mode.name());
    Ok(mode)
}

/// Refuses a model and batch size whose training would not fit in memory, with the numbers
/// (a Dense layer of 10^9 units, a 20000x20000 input, a batch of 10^8 images).
pub fn check_training_memory(
    config: &ModelConfig,
    infos: &[LayerInfo],
    batch: usize,
) -> Result<()> {
    let bytes = keraslike::model_config::training_bytes(config.input, infos, batch);
    dataset::memory::check_fits(bytes, &format!("training this model in batches of {batch}"))
        .map_err(anyhow::Error::msg)
}
