//! Several configs trained on the same data, their curves side by side.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use cli::interrupt::Interrupted;
use dataset::DatasetChoice;
use scratch::data::Samples;
use scratch::experiment::Experiment;
use scratch::network::Network;
use scratch::train::train;
use scratch::{compare, optimizer};

use super::{RunArgs, print_epoch};

#[derive(Args)]
pub struct CompareArgs {
    /// Experiment configs to train, one curve each (e.g. configs/compare/*.toml).
    #[arg(required = true, num_args = 1..)]
    pub configs: Vec<PathBuf>,
    #[command(flatten)]
    pub run: RunArgs,
    /// Folder for compare.png and compare.csv.
    #[arg(long, default_value = "runs/compare")]
    pub out: PathBuf,
}

pub fn run(args: CompareArgs) -> Result<()> {
    // Read every config and check its layers before training any.
    let experiments = args
        .configs
        .iter()
        .map(|p| Experiment::new(Some(p), &args.run.overrides()))
        .collect::<Result<Vec<_>>>()?;
    let mut data: Vec<(DatasetChoice, (Samples, Samples))> = Vec::new();
    for exp in &experiments {
        if !data.iter().any(|(d, _)| *d == exp.dataset) {
            let loaded = args.run.data.load_limited(
                &exp.dataset,
                args.run.train_limit,
                args.run.test_limit,
            )?;
            data.push((exp.dataset.clone(), loaded));
        }
    }
    let data_of = |exp: &Experiment| {
        &data
            .iter()
            .find(|(d, _)| *d == exp.dataset)
            .expect("loaded above")
            .1
    };
    let archs = experiments
        .iter()
        .map(|exp| exp.architecture(&data_of(exp).0))
        .collect::<Result<Vec<_>>>()?;

    let stop = cli::interrupt::flag();
    let mut runs = Vec::new();
    let mut interrupted = false;
    for (exp, arch) in experiments.iter().zip(&archs) {
        let (train_set, test_set) = data_of(exp);
        println!(
            "{}: {}; {:?}; batch {}; {}",
            exp.name,
            arch.describe(),
            exp.optimizer,
            exp.batch_size,
            exp.dataset
        );
        let mut net = Network::new(arch, exp.seed)?;
        let mut opt = optimizer::build(&exp.optimizer);
        let outcome = train(
            &mut net,
            opt.as_mut(),
            train_set,
            test_set,
            &exp.options(0, std::io::stderr().is_terminal()),
            stop,
            |e| print_epoch(Some(&exp.name), e, exp.epochs),
        );
        if let Some(epoch) = outcome.diverged {
            eprintln!(
                "{}: the loss became NaN or infinite in epoch {epoch}; its curve stops there",
                exp.name
            );
        }
        interrupted = outcome.interrupted;
        runs.push(compare::Run {
            name: exp.name.clone(),
            epochs: outcome.epochs,
        });
        if interrupted {
            break;
        }
    }
    let wrote = compare::write(&args.out, &runs)?;
    if interrupted {
        return Err(Interrupted(format!("{wrote} (the runs so far)")).into());
    }
    println!("{wrote}");
    Ok(())
}
