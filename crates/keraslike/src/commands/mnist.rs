//! Exercise B1: the course's CNN (or any config) trained on MNIST with the test set as
//! validation data.

use anyhow::{Result, bail};
use burn::module::Module;
use clap::Args;
use dataset::DatasetChoice;

use dataset::augment::Augmentation;
use dataset::image_input::Preprocess;
use keraslike::backend;
use keraslike::data::{AugmentedImages, ImageBatcher, InMemoryImages};
use keraslike::evaluate::evaluate;
use keraslike::fit::{FitOptions, fit};
use keraslike::model::Sequential;
use keraslike::model_config::summary_table;
use keraslike::saved_model::{self, ModelCard, Resample};

use super::{DataArgs, TrainArgs};

#[derive(Args)]
pub struct MnistArgs {
    #[command(flatten)]
    train: TrainArgs,
    /// Train on the first N training images only.
    #[arg(long)]
    train_limit: Option<usize>,
    /// Validate and test on the first N test images only.
    #[arg(long)]
    test_limit: Option<usize>,
    /// The images: mnist, fashion, cifar10 or folder:DIR (DIR/train/<class>/*,
    /// DIR/test/<class>/*, all one size); the config's input must match them.
    #[arg(long, default_value = "mnist")]
    dataset: DatasetChoice,
    /// Randomly shift (±10%), rotate (±10°) and zoom (±10%) every training image, anew
    /// each epoch (also `augment = true` under [fit] in the config).
    #[arg(long)]
    augment: bool,
    #[command(flatten)]
    data: DataArgs,
}

const COURSE_CNN: &str = include_str!("../../../../configs/mnist-cnn.toml");

pub fn run(args: MnistArgs) -> Result<()> {
    let (config, name) = args.train.load_config(COURSE_CNN, "mnist-cnn")?;
    let infos = config.infer()?;
    let options = args.train.fit_options(&config)?;
    let augmentation = args.train.augmentation(
        &config,
        Augmentation::digits(),
        args.augment || config.fit.augment == Some(true),
    )?;
    super::check_training_memory(&config, &infos, options.batch_size)?;
    let out = args.train.out_dir(&name);
    let train_limit = args.train_limit.or(config.fit.train_limit);
    let (train, test) = super::load_split(&args.dataset, &args.data, train_limit, args.test_limit)?;
    let classes = train.classes.clone();
    let shape = train.shape;
    let [c, h, w] = config.input;
    let files = format!("the {} images", args.dataset);
    if (shape.channels, shape.height, shape.width) != (c, h, w) {
        bail!(
            "{files}: training images are {}x{}x{}, the model's input is {c}x{h}x{w}",
            shape.channels,
            shape.height,
            shape.width
        );
    }
    if test.shape != shape {
        bail!(
            "{files}: test images are {}x{}, training images {}x{}",
            test.shape.height,
            test.shape.width,
            shape.height,
            shape.width
        );
    }
    super::check_outputs(&config, &infos, &classes, config.fit.class_mode)?;
    let mut counts = vec![0usize; classes.len()];
    for &label in &train.labels {
        if let Some(count) = counts.get_mut(usize::from(label)) {
            *count += 1;
        }
    }
    let options = FitOptions {
        class_weights: args.train.class_weights(&config, &counts, &classes)?,
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
    println!(
        "Train on {} images, validate on {} ({:?}, {:?} lr {}, batch {}, {} epochs) -> {}",
        train.len(),
        test.len(),
        args.train.backend,
        options.optimizer.kind(),
        options.learning_rate,
        options.batch_size,
        options.epochs,
        out.display()
    );

    if !augmentation.is_identity() {
        println!("Augmenting: {augmentation:?}");
    }
    let train = AugmentedImages::new(
        InMemoryImages::new(train),
        shape,
        augmentation,
        options.seed,
    );
    let test = InMemoryImages::new(test);
    let fitted = fit(
        model,
        train,
        test.clone(),
        ImageBatcher::unit(shape),
        &out,
        &options,
    )?;
    let card = ModelCard {
        classes: classes.clone(),
        // A photo of a digit (or garment) is made to look like the 28×28 MNIST images;
        // anything else is resized, as Keras's load_img(target_size=...).
        preprocess: match args.dataset {
            DatasetChoice::Mnist | DatasetChoice::Fashion => Preprocess::Digits,
            DatasetChoice::Cifar10 | DatasetChoice::Folder(_) => Preprocess::Resize,
        },
        interpolation: Resample::default(),
        source: args.dataset,
        validation_split: None,
        follow_links: false,
        rescale: saved_model::COURSE_RESCALE,
        model: config,
    };
    let model_path = out.join("model.bpk");
    saved_model::save(&model_path, &fitted.model, &card)?;

    let plain = device.clone();
    let result = evaluate(
        &fitted.model.valid(),
        test,
        ImageBatcher::unit(shape),
        classes.len(),
        256,
        &plain,
    )?;
    println!("Confusion matrix (rows: true digit, columns: predicted):");
    print!("{}", result.confusion_table(&classes));
    result.write_confusion_csv(&out.join("confusion.csv"), &classes)?;
    println!("Test loss: {:.4}", result.loss);
    println!("Test accuracy: {:.4}", result.accuracy());
    print!("{}", result.classification_report(&classes));
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
