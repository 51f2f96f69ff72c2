//! `keraslike serve`: the page in the browser to draw on (see `keraslike::serve`).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;

use keraslike::backend::{self, Backend};
use keraslike::serve::{Loaded, LoadedGenerator, Site};

#[derive(Args)]
pub struct ServeArgs {
    /// A classifier to ask: a keraslike model.bpk (from mnist or face) or a scratch
    /// .safetensors (from scratch train); repeat to compare several on the same drawing.
    #[arg(long = "model", value_name = "MODEL")]
    models: Vec<PathBuf>,
    /// A DCGAN generator (generator.bpk from dcgan): samples and a latent walk.
    #[arg(long)]
    generator: Option<PathBuf>,
    /// Port to listen on (0: any free port, printed).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Address to listen on. The default answers this machine only; another address lets
    /// the network reach the models.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    #[arg(long, value_enum, default_value_t = Backend::Flex)]
    backend: Backend,
}

pub fn run(args: ServeArgs) -> Result<()> {
    if args.models.is_empty() && args.generator.is_none() {
        bail!("nothing to serve: pass --model MODEL (repeatable) and/or --generator G");
    }
    let plain = backend::device(args.backend)?;
    // Grad-CAM differentiates the classifiers; the generator only runs forward.
    let autodiff = plain.clone().autodiff();
    let mut models = Vec::new();
    for path in &args.models {
        let loaded = Loaded::load(path, &autodiff)?;
        println!(
            "{}: {} classes ({})",
            loaded.name,
            loaded.classes().len(),
            loaded.classes().join(", ")
        );
        models.push(loaded);
    }
    let generator = match &args.generator {
        Some(path) => Some(LoadedGenerator::load(path, &plain)?),
        None => None,
    };
    if !args.host.is_loopback() {
        eprintln!(
            "warning: listening on {}: other machines on the network can use the models",
            args.host
        );
    }
    Site { models, generator }.serve(SocketAddr::new(args.host, args.port))
}
