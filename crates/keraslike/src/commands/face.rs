//! Exercise B2: the smile / non-smile classifier, read from image folders as Keras's
//! `flow_from_directory` reads them, and trained with `fit_generator` semantics.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
use dataset::augment::Augmentation;
use dataset::image_input::Preprocess;
use dataset::{ColorMode, DatasetChoice, FolderOptions, ImageShape, Subset};

use keraslike::backend;
use keraslike::class_mode::ClassMode;
use keraslike::data::{AugmentedImages, FolderImages, ImageBatcher};
use keraslike::evaluate::evaluate;
use keraslike::fit::{FitOptions, fit};
use keraslike::model::Sequential;
use keraslike::model_config::summary_table;
use keraslike::saved_model::{self, ModelCard, Resample};

use super::TrainArgs;

#[derive(Clone, Copy, ValueEnum)]
pub enum Color {
    Rgb,
    Grayscale,
}

#[derive(Args)]
pub struct FaceArgs {
    /// Folder with `train/` and `test/`, each holding one subfolder per class
    /// (`smile/`, `nonsmile/`); with --validation-split, a folder of class subfolders
    /// (or its `train/`).
    #[arg(long)]
    data: PathBuf,
    /// Keras's validation_split with subset=: validate on the first FRACTION of each
    /// class's files (in path order), train on the rest, and leave test/ unused.
    #[arg(long, value_name = "FRACTION")]
    validation_split: Option<f64>,
    /// Input size HxW every image is resized to [default: the config's input, 218x178].
    #[arg(long, value_parser = parse_size)]
    size: Option<(usize, usize)>,
    /// Colour mode [default: the config's input channels: 3 rgb, 1 grayscale].
    #[arg(long, value_enum)]
    color: Option<Color>,
    /// How images are resized to the input size: nearest (Keras's default, exactly PIL's)
    /// or bilinear.
    #[arg(long, value_enum, default_value_t = Resample::Nearest)]
    interpolation: Resample,
    /// Batches per epoch, cycling through the shuffled training images (Keras
    /// `steps_per_epoch`) [default: the config's; without one, whole passes].
    #[arg(long)]
    steps_per_epoch: Option<usize>,
    /// Validation batches per epoch (Keras `validation_steps`) [default: the config's;
    /// without one, the whole test set].
    #[arg(long)]
    validation_steps: Option<usize>,
    /// Random flips, shifts, rotations and zooms of the training images.
    #[arg(long)]
    augment: bool,
    /// How labels meet the model (flow_from_directory's class_mode): categorical, one
    /// softmax output per class; or binary, two classes and a last layer of one sigmoid
    /// unit (binary cross-entropy) [default: the config's, else what its last layer is].
    #[arg(long, value_enum)]
    class_mode: Option<ClassMode>,
    /// Keras's rescale: every pixel value 0-255 is multiplied by this (1 keeps them as
    /// they are) [default: 1/255, the course's, giving inputs in [0, 1]].
    #[arg(long, default_value_t = saved_model::COURSE_RESCALE, value_parser = parse_rescale)]
    rescale: f32,
    /// Also read images in folders reached through symbolic links inside the class
    /// folders (Keras's follow_links=True); each real folder is read once.
    #[arg(long)]
    follow_links: bool,
    /// Skip unreadable images with a warning instead of stopping (every image is decoded
    /// once before training to find them).
    #[arg(long)]
    skip_invalid: bool,
    #[command(flatten)]
    train: TrainArgs,
}

fn parse_rescale(s: &str) -> Result<f32, String> {
    match s.trim().parse::<f32>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!(
            "{s:?}: expected a positive number, e.g. 0.00392 for 1/255"
        )),
    }
}

fn parse_size(s: &str) -> Result<(usize, usize), String> {
    let (h, w) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("{s:?}: expected HxW, e.g. 218x178"))?;
    let parse = |v: &str| v.trim().parse::<usize>().ok().filter(|&n| n > 0);
    match (parse(h), parse(w)) {
        (Some(h), Some(w)) => Ok((h, w)),
        _ => Err(format!(
            "{s:?}: expected HxW with positive numbers, e.g. 218x178"
        )),
    }
}

const COURSE_FACE: &str = include_str!("../../../../configs/face.toml");

/// Opens `root/<split>` as Keras would and prints what Keras prints.
/// Keras's `class_indices`: `{'nonsmile': 0, 'smile': 1}`.
fn class_indices(classes: &[String]) -> String {
    let pairs: Vec<String> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| format!("'{c}': {i}"))
        .collect();
    format!("{{{}}}", pairs.join(", "))
}

pub fn run(args: FaceArgs) -> Result<()> {
    let (mut config, name) = args.train.load_config(COURSE_FACE, "face")?;
    if let Some((h, w)) = args.size {
        config.input[1] = h;
        config.input[2] = w;
    }
    match args.color {
        Some(Color::Rgb) => config.input[0] = 3,
        Some(Color::Grayscale) => config.input[0] = 1,
        None => {}
    }
    let [channels, height, width] = config.input;
    let color_mode = match channels {
        1 => ColorMode::Grayscale,
        3 => ColorMode::Rgb,
        c => bail!("images have 1 (grayscale) or 3 (rgb) channels; the model's input has {c}"),
    };
    let infos = config.infer()?;

    let options = args.train.fit_options(&config)?;
    let augmentation = args.train.augmentation(
        &config,
        Augmentation::mild(),
        args.augment || config.fit.augment == Some(true),
    )?;
    super::check_training_memory(&config, &infos, options.batch_size)?;
    let steps = args.steps_per_epoch.or(config.fit.steps_per_epoch);
    let validation_steps = args.validation_steps.or(config.fit.validation_steps);
    if steps == Some(0) || validation_steps == Some(0) {
        bail!("--steps-per-epoch and --validation-steps must be at least 1");
    }
    let out = args.train.out_dir(&name);

    let folder_options = FolderOptions {
        target_size: Some((height as u32, width as u32)),
        color_mode,
        interpolation: args.interpolation.interpolation(),
        rescale: 1.0,
        skip_invalid: args.skip_invalid,
        prefetch: 4,
        follow_links: args.follow_links,
    };
    let (train, test) = match args.validation_split {
        None => (
            super::open_split(&args.data, "train", &folder_options)?,
            super::open_split(&args.data, "test", &folder_options)?,
        ),
        Some(split) => {
            let root = super::split_root(&args.data);
            (
                super::open_subset(&root, &folder_options, split, Subset::Training)?,
                super::open_subset(&root, &folder_options, split, Subset::Validation)?,
            )
        }
    };
    if train.classes() != test.classes() {
        bail!(
            "{}: train/ has classes {:?} but test/ has {:?}; both need the same class folders",
            args.data.display(),
            train.classes(),
            test.classes()
        );
    }
    let classes = train.classes().to_vec();
    println!("class_indices: {}", class_indices(&classes));
    let shape = ImageShape {
        channels,
        height,
        width,
    };
    super::check_outputs(
        &config,
        &infos,
        &classes,
        args.class_mode.or(config.fit.class_mode),
    )?;
    let options = FitOptions {
        class_weights: args
            .train
            .class_weights(&config, &train.class_counts(), &classes)?,
        ..options
    };

    let device = backend::device(args.train.backend)?;
    device.seed(options.seed);
    // Parameters live on the autodiff device so that training can differentiate them.
    let model = Sequential::new(&config, &device.clone().autodiff())?;
    let model = args
        .train
        .init_from(&config, model, &device.clone().autodiff())?;
    print!("{}", summary_table(&name, &infos));
    if !augmentation.is_identity() {
        println!("Augmenting: {augmentation:?}");
    }
    let train_data =
        AugmentedImages::new(FolderImages::new(train), shape, augmentation, options.seed);
    let test_data = FolderImages::new(test);
    let per_epoch = |steps: Option<usize>| match steps {
        Some(n) => format!("{n} steps of {}", options.batch_size),
        None => format!("whole passes in batches of {}", options.batch_size),
    };
    println!(
        "Training: {}; validation: {} ({:?}, {:?} lr {}, {} epochs) -> {}",
        per_epoch(steps),
        per_epoch(validation_steps),
        args.train.backend,
        options.optimizer.kind(),
        options.learning_rate,
        options.epochs,
        out.display()
    );
    // Keras's generator with steps_per_epoch: each epoch a fixed number of batches from
    // a reshuffled cycle through the data (the loader keeps the cycle).
    let options = FitOptions {
        train_items: steps.map(|n| n * options.batch_size),
        valid_items: validation_steps.map(|n| n * options.batch_size),
        ..options
    };
    let batcher = ImageBatcher {
        shape,
        scale: args.rescale,
        offset: 0.0,
    };
    let fitted = fit(
        model,
        train_data,
        test_data.clone(),
        batcher,
        &out,
        &options,
    )?;
    let data_root = std::fs::canonicalize(&args.data).unwrap_or(args.data.clone());
    let card = ModelCard {
        classes: classes.clone(),
        preprocess: Preprocess::Resize,
        interpolation: args.interpolation,
        source: DatasetChoice::Folder(data_root),
        validation_split: args.validation_split,
        follow_links: args.follow_links,
        rescale: args.rescale,
        model: config,
    };
    let model_path = out.join("model.bpk");
    saved_model::save(&model_path, &fitted.model, &card)?;

    let result = evaluate(
        &fitted.model,
        test_data,
        batcher,
        classes.len(),
        64,
        &device,
    )?;
    print!("{}", result.report(&classes));
    result.write_confusion_csv(&out.join("confusion.csv"), &classes)?;
    result.write_misclassified(&out.join("misclassified.png"), &classes)?;
    println!(
        "Wrote {} (+ model.toml, model.safetensors), history.csv, loss.png, acc.png, confusion.csv, misclassified.png in {}",
        model_path.display(),
        out.display()
    );
    if fitted.interrupted {
        return Err(cli::interrupt::Interrupted(
            "the model and history so far were saved; --resume continues".into(),
        )
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        face: FaceArgs,
    }

    #[test]
    fn images_are_resized_with_nearest_unless_bilinear_is_asked_for() {
        let parse = |extra: &[&str]| {
            let args = ["face", "--data", "/faces"].iter().chain(extra);
            Cli::try_parse_from(args)
                .expect("valid flags")
                .face
                .interpolation
        };
        assert_eq!(parse(&[]), Resample::Nearest);
        assert_eq!(parse(&["--interpolation", "bilinear"]), Resample::Bilinear);
        assert_eq!(
            Resample::Nearest.interpolation(),
            dataset::Interpolation::Nearest
        );
        assert!(Cli::try_parse_from(["face", "--data", "x", "--interpolation", "cubic"]).is_err());
    }
}
