//! The subcommands that train and use models.

pub mod face;
pub mod mnist;
pub mod saved;

use std::path::PathBuf;

use clap::Args;

#[derive(Args, Clone)]
pub struct DataArgs {
    /// Folder holding the data sets (`mnist/`, `fashion/`, ...). Looked in first, then the
    /// project's `data/`, then the files are downloaded into `data/`.
    #[arg(long, env = dataset::DATA_DIR_ENV)]
    pub data_dir: Option<PathBuf>,
    /// Never download: fail if the files are not found.
    #[arg(long)]
    pub offline: bool,
}
