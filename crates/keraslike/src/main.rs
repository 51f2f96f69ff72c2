//! `keraslike`: the course's Keras exercises on burn.
//!
//! This version has the model description and its Keras-style summary, and checks the
//! backends; training (mnist, face, dcgan) comes next.

use std::path::PathBuf;

use anyhow::Result;
use burn::module::Module;
use clap::{Parser, Subcommand};

use keraslike::backend::{self, Backend};
use keraslike::model;
use keraslike::model_config::{ModelConfig, summary_table};

#[derive(Parser)]
#[command(
    name = "keraslike",
    version,
    about = "The course's Keras exercises on the burn framework"
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
    /// Check which burn backends work on this machine (a small matrix product on each; the
    /// GPU adapter is probed without panicking).
    Backends,
}

fn main() {
    let result = match Cli::parse().command {
        Command::Summary { config, backend } => summary(&config, backend),
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
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn summary(path: &std::path::Path, backend: Backend) -> Result<()> {
    let config = ModelConfig::load(path)?;
    let infos = config
        .infer()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let title = path
        .file_stem()
        .map_or("sequential".into(), |s| s.to_string_lossy().into_owned());
    print!("{}", summary_table(&title, &infos));
    let device = backend::device(backend)?;
    let built = model::Sequential::new(&config, &device)?.num_params();
    let trainable: usize = infos.iter().map(|l| l.trainable).sum();
    anyhow::ensure!(
        built == trainable,
        "burn module has {built} parameters, the table {trainable}"
    );
    Ok(())
}
