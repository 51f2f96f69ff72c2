//! Task 3 and every config: train, save the weights (also on Ctrl-C), `--resume`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;

use cli::interrupt::Interrupted;
use scratch::experiment::{Experiment, check_data, check_fits, check_out};
use scratch::network::Network;
use scratch::optimizer;
use scratch::train::train;
use scratch::weights_file::{self, Provenance};

use super::{RunArgs, print_epoch};

#[derive(Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Experiment config (TOML): layers, optimiser, regularisation, training settings.
    /// Default: configs/mlp-sigmoid.toml (the task-3 network), compiled in.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Hidden units M (the first affine layer's width).
    #[arg(long)]
    pub hidden: Option<usize>,
    /// Where to write the weights [default: runs/scratch/<config name>.safetensors, or the
    /// --resume file].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue training from these weights.
    #[arg(long)]
    pub resume: Option<PathBuf>,
}

pub fn run(args: TrainArgs) -> Result<()> {
    let exp = Experiment::new(args.config.as_deref(), &args.run.overrides())?;
    if args.resume.is_some() && (args.hidden.is_some() || args.config.is_some()) {
        eprintln!(
            "warning: --resume takes the network from the weights file; the layers of --config and --hidden are not used"
        );
    }
    let resumed = args
        .resume
        .as_ref()
        .map(|p| weights_file::load_with(p, args.run.kernels.into()))
        .transpose()?;
    let dataset = match (&resumed, &args.run.data.dataset) {
        (Some((_, prov)), None) => args.run.data.choice(prov.dataset.as_ref()),
        _ => exp.dataset.clone(),
    };
    let (train_set, test_set) =
        args.run
            .data
            .load_limited(&dataset, args.run.train_limit, args.run.test_limit)?;
    check_data(&train_set, &test_set, exp.cfg.train.shift)?;
    let (mut net, done) = match resumed {
        Some((net, prov)) => {
            check_fits(&net, &train_set, args.resume.as_deref())?;
            eprintln!(
                "resuming from {} ({} epochs done)",
                args.resume.as_deref().unwrap_or(Path::new("")).display(),
                prov.epochs
            );
            (net, prov.epochs)
        }
        None => {
            let mut arch = exp.architecture(&train_set)?;
            if let Some(m) = args.hidden {
                arch.set_hidden_units(m).context("--hidden")?;
            }
            let net = Network::with_kernels(&arch, exp.seed, args.run.kernels.into())
                .context("invalid network")?;
            (net, 0)
        }
    };
    let out = args
        .out
        .clone()
        .or_else(|| args.resume.clone())
        .unwrap_or_else(|| Path::new("runs/scratch").join(format!("{}.safetensors", exp.name)));
    check_out(&out)?;

    let mut opt = optimizer::build(&exp.optimizer);
    println!(
        "network {}; {:?}; batch {}; {}: {} train / {} test images",
        net.arch.describe(),
        exp.optimizer,
        exp.batch_size,
        dataset,
        train_set.len(),
        test_set.len()
    );
    let stop = cli::interrupt::flag();
    let outcome = train(
        &mut net,
        opt.as_mut(),
        &train_set,
        &test_set,
        &exp.options(done, std::io::stderr().is_terminal()),
        stop,
        |e| print_epoch(None, e, done + exp.epochs),
    );
    let epochs_done = done + outcome.epochs.len();
    if let Some(epoch) = outcome.diverged {
        bail!(
            "the training diverged in epoch {epoch}: its loss became NaN or infinite, or over \
             {}x the first minibatch's (or ln of the class count); try a smaller --lr. {} was \
             not written",
            scratch::train::DIVERGENCE_FACTOR,
            out.display()
        );
    }
    weights_file::save(
        &out,
        &net,
        &Provenance {
            epochs: epochs_done,
            dataset: Some(dataset.clone()),
            classes: train_set.classes.clone(),
        },
    )?;
    if outcome.interrupted {
        return Err(Interrupted(format!(
            "saved the weights after {epochs_done} complete epochs (and the partial one) to {}",
            out.display()
        ))
        .into());
    }
    println!("saved weights to {}", out.display());
    Ok(())
}
