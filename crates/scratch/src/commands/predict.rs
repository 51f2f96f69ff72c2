//! Tasks 1 and 4: classify a test image, or any image file.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use ndarray::Array2;

use scratch::data::image_input;
use scratch::experiment::check_fits;
use scratch::layers::{Mode, softmax_rows};
use scratch::network::argmax;

use super::{DataArgs, NetworkArgs};
use scratch::weights_file::class_names;

#[derive(Args)]
pub struct PredictArgs {
    #[command(flatten)]
    pub net: NetworkArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// Test image index (otherwise read from standard input).
    #[arg(long, conflicts_with = "image")]
    pub index: Option<String>,
    /// Classify this PNG/JPEG instead. For a 28×28 grey network (MNIST) it is converted
    /// to a white digit on black, cropped, scaled to a 20-pixel box and centred by mass,
    /// as MNIST was made; for other networks it is resized to the network's input.
    #[arg(long)]
    pub image: Option<PathBuf>,
}

pub fn run(args: PredictArgs) -> Result<()> {
    let (mut net, prov) = args.net.network()?;
    let names = class_names(&prov, net.arch.classes);
    if let Some(path) = &args.image {
        let input = net.arch.input;
        let pixels = image_input(path, input)?;
        let x = Array2::from_shape_vec((1, input.features()), pixels).expect("one input row");
        let probs = softmax_rows(&net.predict(&x, Mode::Eval));
        let p = probs.as_slice().expect("row-major");
        println!("{}: {}", path.display(), names[argmax(p)]);
        for (name, prob) in names.iter().zip(p) {
            println!("  {name}: {prob:.4}");
        }
        return Ok(());
    }
    let choice = args.data.choice(prov.dataset.as_ref());
    let (_, test) = args.data.load(&choice)?;
    check_fits(&net, &test, args.net.weights.as_deref())?;
    if test.is_empty() {
        bail!("the {choice} test set is empty: there is no image to predict");
    }
    let last = test.len() - 1;
    let text = match &args.index {
        Some(i) => i.clone(),
        None => read_index_from_stdin(last)?,
    };
    let index: usize = text
        .trim()
        .parse()
        .ok()
        .filter(|&i| i <= last)
        .with_context(|| {
            format!(
                "{} is not a test image index (expected an integer 0..={last})",
                shown(text.trim())
            )
        })?;
    let x = test.x().row(index).to_owned().insert_axis(ndarray::Axis(0));
    let logits = net.predict(&x, Mode::Eval);
    let class = argmax(logits.as_slice().expect("row-major"));
    println!("{}", names[class]);
    eprintln!(
        "(test image {index}: label {})",
        names[test.labels[index] as usize]
    );
    Ok(())
}

/// One line of standard input (at most 1 KiB of it), prompting on a terminal.
pub fn read_index_from_stdin(last: usize) -> Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("test image index (0-{last}): ");
        std::io::stderr().flush().ok();
    }
    let mut line = String::new();
    stdin
        .lock()
        .take(1024)
        .read_line(&mut line)
        .context("cannot read standard input")?;
    if line.trim().is_empty() {
        bail!("no index given on standard input (expected an integer 0..={last})");
    }
    Ok(line)
}

/// `text` quoted for a message, cut to 40 characters.
pub fn shown(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((at, _)) => format!("{:?}...", &text[..at]),
        None => format!("{text:?}"),
    }
}
