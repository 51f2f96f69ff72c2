//! `scratch visualize`: the first layer's weights of a trained network as a picture.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;

use scratch::first_layer::{FirstLayer, first_layer_picture};
use scratch::weights_file;

#[derive(Args)]
pub struct VisualizeArgs {
    /// Trained weights (safetensors from `scratch train`).
    #[arg(long)]
    pub weights: PathBuf,
    /// Folder for the picture (made when missing) [default: the weights file's folder].
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(args: VisualizeArgs) -> Result<()> {
    let (net, _) = weights_file::load(&args.weights)?;
    let (kind, picture) = first_layer_picture(&net)
        .with_context(|| format!("{}: nothing to draw", args.weights.display()))?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.weights.parent().map(PathBuf::from).unwrap_or_default());
    if out.exists() && !out.is_dir() {
        bail!(
            "{}: --out must be a folder, and this is a file",
            out.display()
        );
    }
    if !out.as_os_str().is_empty() {
        std::fs::create_dir_all(&out)
            .with_context(|| format!("{}: cannot create the folder", out.display()))?;
    }
    let stem = args
        .weights
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "weights".into());
    let input = net.arch.input;
    let (file, what) = match kind {
        FirstLayer::Affine { units } => (
            out.join(format!("{stem}_first_layer.png")),
            format!(
                "{units} tiles of {}×{}: each hidden unit's weights on the input's pixels",
                input.height, input.width
            ),
        ),
        FirstLayer::Conv { filters, size } => (
            out.join(format!("{stem}_kernels.png")),
            format!("{filters} {size}×{size} kernels of the first convolution"),
        ),
    };
    cli::chart::write_png(&file, &picture)?;
    println!(
        "wrote {} ({what}, each scaled to its own range)",
        file.display()
    );
    Ok(())
}
