//! `scratch`: the course's from-scratch exercises on the command line.

use clap::{Parser, Subcommand};

use cli::interrupt::Interrupted;
use scratch::gates;

mod commands;

/// Training allocates and frees multi-megabyte activations every step. glibc's malloc
/// returns such blocks to the kernel at once, so each step paid page faults and page
/// zeroing again (a fifth of the conv benchmark's time in perf); mimalloc keeps them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "scratch",
    version,
    about = "Neural networks from scratch: the course's MNIST exercises",
    long_about = "Neural networks from scratch: the course's exercises. No ML framework: \
layers with forward/backward passes, backprop, six optimisers, im2col convolution.\n\n\
Data sets are looked for in --data-dir (or $DL_DATA_DIR), then data/, then downloaded."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the truth tables of the AND, OR, NAND perceptrons and the two-layer XOR.
    Gates,
    /// Tasks 1 and 4: classify MNIST test image i (read from stdin, or --index), or any
    /// PNG/JPEG (--image). Random weights unless --weights is given.
    Predict(commands::predict::PredictArgs),
    /// Task 2: mean cross-entropy of the network on a random training minibatch.
    Loss(commands::loss::LossArgs),
    /// Task 3: train 784 → M → 10 with backprop and minibatch SGD; saves the weights as
    /// safetensors at the end and on Ctrl-C.
    Train(commands::train::TrainArgs),
    /// Test accuracy and the confusion matrix of trained weights.
    Eval(commands::eval::EvalArgs),
    /// Train several configs on the same data and plot their test accuracy and training
    /// loss per epoch side by side (compare.png, compare.csv).
    Compare(commands::compare::CompareArgs),
    /// Draw the first layer's weights: for 784 → M, each hidden unit's 784 weights as a
    /// 28×28 tile; for a convolution, its kernels.
    Visualize(commands::visualize::VisualizeArgs),
}

fn main() {
    let result = match cli::args::parse::<Cli>().command {
        Command::Gates => {
            print!("{}", gates::truth_tables());
            Ok(())
        }
        Command::Predict(a) => commands::predict::run(a),
        Command::Loss(a) => commands::loss::run(a),
        Command::Train(a) => commands::train::run(a),
        Command::Eval(a) => commands::eval::run(a),
        Command::Compare(a) => commands::compare::run(a),
        Command::Visualize(a) => commands::visualize::run(a),
    };
    if let Err(e) = result {
        if let Some(stopped) = e.downcast_ref::<Interrupted>() {
            eprintln!("{stopped}");
            std::process::exit(130);
        }
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
