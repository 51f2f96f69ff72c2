//! Task 2: the cross-entropy of a random minibatch.

use anyhow::{Result, bail};
use clap::Args;
use ndarray::Array2;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::index::sample;

use scratch::experiment::check_fits;
use scratch::layers::Mode;

use super::{DataArgs, NetworkArgs};

#[derive(Args)]
pub struct LossArgs {
    #[command(flatten)]
    pub net: NetworkArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// Minibatch size B.
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,
}

pub fn run(args: LossArgs) -> Result<()> {
    let (mut net, prov) = args.net.network()?;
    let choice = args.data.choice(prov.dataset.as_ref());
    let (train, _) = args.data.load(&choice)?;
    check_fits(&net, &train, args.net.weights.as_deref())?;
    if args.batch_size == 0 || args.batch_size > train.len() {
        bail!("--batch-size must be in 1..={}", train.len());
    }
    let mut rng = StdRng::seed_from_u64(args.net.seed);
    let idx = sample(&mut rng, train.len(), args.batch_size).into_vec();
    let (mut x, mut labels) = (Array2::zeros((0, 0)), Vec::new());
    train.gather(&idx, &mut x, &mut labels);
    println!("{:.6}", net.loss(&x, &labels, Mode::Eval));
    eprintln!(
        "(mean cross-entropy over {} random training images)",
        args.batch_size
    );
    Ok(())
}
