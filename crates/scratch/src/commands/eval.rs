//! Test accuracy and the confusion matrix of a weights file.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;

use scratch::experiment::check_fits;
use scratch::train::{accuracy, confusion_matrix};
use scratch::weights_file::{self};

use super::DataArgs;
use scratch::weights_file::class_names;

#[derive(Args)]
pub struct EvalArgs {
    /// Trained weights (safetensors from `scratch train`).
    #[arg(long)]
    pub weights: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
}

pub fn run(args: EvalArgs) -> Result<()> {
    let (mut net, prov) = weights_file::load(&args.weights)?;
    let choice = args.data.choice(prov.dataset.as_ref());
    let (_, test) = args.data.load(&choice)?;
    check_fits(&net, &test, Some(&args.weights))?;
    if test.is_empty() {
        bail!("the {choice} test set is empty: there is nothing to evaluate");
    }
    let acc = accuracy(&mut net, &test);
    println!(
        "{} ({} epochs): test accuracy {:.4} ({} {choice} images)",
        args.weights.display(),
        prov.epochs,
        acc,
        test.len()
    );
    println!("confusion matrix (rows: true class, columns: predicted)");
    let matrix = confusion_matrix(&mut net, &test);
    print!(
        "{}",
        cli::table::confusion(&class_names(&prov, net.arch.classes), &matrix)
    );
    Ok(())
}
