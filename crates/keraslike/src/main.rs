//! `keraslike`: the course's Keras exercises on burn.

mod commands;

use std::path::{Path, PathBuf};

use anyhow::Result;
use burn::module::Module;
use clap::{Parser, Subcommand};

use commands::DataArgs;
use commands::face::FaceArgs;
use commands::mnist::MnistArgs;
use keraslike::backend::{self, Backend};
use keraslike::model::Sequential;
use keraslike::model_config::{ModelConfig, summary_table};

/// A training step allocates and frees many multi-megabyte tensors. glibc's malloc hands
/// such blocks back to the kernel at once, so every step paid page faults and zeroing
/// again; mimalloc keeps them for reuse.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "keraslike",
    version,
    about = "The course's Keras exercises on the burn framework",
    long_about = "The course's Keras exercises on the burn framework.\n\n\
        Models are Keras-style Sequential stacks described in TOML (see configs/); \
        training writes history.csv, loss.png, acc.png, checkpoints and the model \
        into --out."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a model's summary as Keras's model.summary() does: each layer's output shape
    /// and parameter count, and the totals.
    Summary {
        /// Model description (TOML), e.g. configs/mnist-cnn.toml.
        #[arg(long)]
        config: PathBuf,
        /// Also build the model in burn on this backend and check its parameter count.
        #[arg(long, value_enum, default_value_t = Backend::Flex)]
        backend: Backend,
    },
    /// Exercise B1: train a CNN on MNIST, validating on the test set after every epoch.
    Mnist(MnistArgs),
    /// Exercise B2: train the smile / non-smile classifier on image folders
    /// (DIR/train/<class>/*, DIR/test/<class>/*), as Keras's flow_from_directory reads them.
    Face(FaceArgs),
    /// Exercise B3: train a DCGAN (MNIST by default); writes a sample grid from fixed noise
    /// after every epoch (samples/epoch_001.png, ...), losses.csv, loss.png, the generator
    /// and discriminator.
    Dcgan(commands::dcgan::DcganArgs),
    /// Write a grid of images made by a trained DCGAN generator.
    Generate(commands::dcgan::GenerateArgs),
    /// Score a DCGAN generator with an MNIST classifier from `mnist`: mean max class
    /// probability, the histogram of predicted digits and its entropy, and the Fréchet
    /// distance of penultimate-layer features to the real test images.
    GanScore(commands::dcgan::ScoreArgs),
    /// Loss, accuracy and confusion matrix of a saved model on its test set.
    Evaluate {
        /// The model file written by training (`model.bpk`; its `model.toml` beside it).
        #[arg(long)]
        model: PathBuf,
        /// For image-folder models: the folder holding test/ [default: the one trained on].
        #[arg(long)]
        data: Option<PathBuf>,
        #[command(flatten)]
        data_args: DataArgs,
        #[arg(long, value_enum, default_value_t = Backend::Flex)]
        backend: Backend,
        #[arg(long, default_value_t = 256)]
        batch_size: usize,
    },
    /// Class probabilities of a saved model for each image file.
    Predict {
        /// The model file written by training (`model.bpk`; its `model.toml` beside it).
        #[arg(long)]
        model: PathBuf,
        /// PNG, JPEG, BMP, GIF or WebP files, or folders of them (searched recursively).
        /// MNIST models see them as MNIST digits (grey, white on black, centred); others
        /// resized to the model's input.
        #[arg(required = true)]
        images: Vec<PathBuf>,
        /// Also write every prediction to this CSV (file, class, each class's
        /// probability) [default: predictions.csv beside the model when a folder is given].
        #[arg(long)]
        csv: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Backend::Flex)]
        backend: Backend,
    },
    /// Look inside a trained classifier: its first Conv2D's kernels (kernels.png) and, for
    /// --image, every Conv2D and MaxPooling2D layer's feature maps (feature_maps/), a
    /// Grad-CAM heat map of the predicted class over the image (gradcam.png) and the
    /// input-gradient saliency (saliency.png), and their numbers (explanation.json).
    Visualize(commands::visualize::VisualizeArgs),
    /// A local web page to draw a digit or drop a photo on: every --model's probabilities,
    /// the input as it saw it, its first feature maps and Grad-CAM; a --generator's
    /// samples and a walk between two latent vectors. Listens on 127.0.0.1:8080.
    Serve(commands::serve::ServeArgs),
    /// Check which burn backends work on this machine (a small matrix product on each; the
    /// GPU adapter is probed without panicking).
    Backends,
}

fn main() {
    let result = match cli::args::parse::<Cli>().command {
        Command::Summary { config, backend } => summary(&config, backend),
        Command::Mnist(args) => commands::mnist::run(args),
        Command::Face(args) => commands::face::run(args),
        Command::Dcgan(args) => commands::dcgan::run(args),
        Command::Generate(args) => commands::dcgan::generate(args),
        Command::GanScore(args) => commands::dcgan::score_command(args),
        Command::Evaluate {
            model,
            data,
            data_args,
            backend,
            batch_size,
        } => commands::saved::evaluate_command(
            &model,
            data.as_ref(),
            &data_args,
            backend,
            batch_size,
        ),
        Command::Predict {
            model,
            images,
            csv,
            backend,
        } => commands::saved::predict(&model, &images, csv.as_deref(), backend),
        Command::Visualize(args) => commands::visualize::run(args),
        Command::Serve(args) => commands::serve::run(args),
        Command::Backends => {
            for b in [Backend::Flex, Backend::Ndarray, Backend::Wgpu] {
                match backend::device(b).and_then(|d| backend::smoke_test(&d)) {
                    Ok(_) => println!("{b:?}: ok"),
                    Err(e) => println!("{b:?}: unavailable: {e:#}"),
                }
            }
            Ok(())
        }
    };
    if let Err(e) = result {
        if let Some(stopped) = e.downcast_ref::<cli::interrupt::Interrupted>() {
            eprintln!("{stopped}");
            std::process::exit(130);
        }
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn summary(path: &Path, backend: Backend) -> Result<()> {
    let config = ModelConfig::load(path)?;
    let infos = config
        .infer()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let title = path
        .file_stem()
        .map_or("sequential".into(), |s| s.to_string_lossy().into_owned());
    print!("{}", summary_table(&title, &infos));
    let device = backend::device(backend)?;
    let built = Sequential::new(&config, &device)?.num_params();
    // burn counts BatchNorm's moving statistics as parameters, as Keras's total does.
    let total: usize = infos.iter().map(|l| l.params()).sum();
    anyhow::ensure!(
        built == total,
        "burn module has {built} parameters, the table {total}"
    );
    Ok(())
}
