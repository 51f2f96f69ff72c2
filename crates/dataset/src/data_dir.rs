//! Where data sets are looked for: an explicit directory (the `--data-dir` flag or the
//! `DL_DATA_DIR` environment variable), then the project's `data/`, then a download into
//! `data/`.

use std::path::{Path, PathBuf};

/// The environment variable every command reads when `--data-dir` is not given.
pub const DATA_DIR_ENV: &str = "DL_DATA_DIR";

/// The search order for data files.
#[derive(Debug, Clone)]
pub struct DataDir {
    explicit: Option<PathBuf>,
    default: PathBuf,
    allow_download: bool,
}

impl DataDir {
    /// `explicit` is the user's `--data-dir` (clap fills it from `DL_DATA_DIR` too).
    pub fn new(explicit: Option<PathBuf>) -> Self {
        Self {
            explicit,
            default: default_data_dir(),
            allow_download: true,
        }
    }

    /// Reads `DL_DATA_DIR` itself: for tools without a clap front end (examples, tests).
    pub fn from_env() -> Self {
        Self::new(std::env::var_os(DATA_DIR_ENV).map(PathBuf::from))
    }

    /// Replaces the project `data/` directory (downloads go there too).
    pub fn with_default(mut self, default: PathBuf) -> Self {
        self.default = default;
        self
    }

    pub fn with_download(mut self, allow: bool) -> Self {
        self.allow_download = allow;
        self
    }

    pub fn allow_download(&self) -> bool {
        self.allow_download
    }

    /// Directories to look in for the data set stored in subfolder `sub` (e.g. `mnist`):
    /// `explicit/sub`, `explicit` itself (a user may point straight at the folder), then
    /// `data/sub`.
    pub fn candidates(&self, sub: &str) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        if let Some(e) = &self.explicit {
            dirs.push(e.join(sub));
            dirs.push(e.clone());
        }
        dirs.push(self.default.join(sub));
        dirs
    }

    /// Where a download of data set `sub` is written.
    pub fn download_dir(&self, sub: &str) -> PathBuf {
        self.default.join(sub)
    }

    /// The candidates as one human-readable list, for error messages.
    pub fn describe(&self, sub: &str) -> String {
        self.candidates(sub)
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The workspace's `data/` folder when run from a checkout (the usual `cargo run`), else
/// `./data`.
pub fn default_data_dir() -> PathBuf {
    let in_checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
    if in_checkout.is_dir() {
        in_checkout
    } else {
        PathBuf::from("data")
    }
}
