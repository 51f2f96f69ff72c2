//! One error type for every loader: each variant names the file it is about.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The cause is part of the message and deliberately not the error's `source()`:
    /// printed as a chain (`{:#}`) it would appear twice.
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path}: not an IDX file: {reason}")]
    BadIdx { path: PathBuf, reason: String },
    #[error("{path}: not a CIFAR-10 binary batch: {reason}")]
    BadCifar { path: PathBuf, reason: String },
    #[error("{path}: cannot decode image: {reason}")]
    BadImage { path: PathBuf, reason: String },
    #[error("{images} has {n_images} images but {labels} has {n_labels} labels")]
    CountMismatch {
        images: PathBuf,
        n_images: usize,
        labels: PathBuf,
        n_labels: usize,
    },
    #[error("{path}: {reason}")]
    BadFolder { path: PathBuf, reason: String },
    #[error("{name}: not found in {searched} and downloading failed: {reason}")]
    NotFound {
        name: String,
        searched: String,
        reason: String,
    },
    #[error("download of {url} failed: {reason}")]
    Download { url: String, reason: String },
    #[error(
        "{name}: checksum mismatch (expected md5 {expected}, got {actual}); the partial file was deleted"
    )]
    Checksum {
        name: String,
        expected: String,
        actual: String,
    },
}

pub type Result<T, E = DatasetError> = std::result::Result<T, E>;

/// Attaches the file name to an I/O error.
pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> DatasetError {
    let path = path.into();
    move |cause| DatasetError::Io { path, cause }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_error_prints_its_cause_once_as_a_chain() {
        let e = io_err("/data/x.png")(std::io::Error::new(std::io::ErrorKind::NotFound, "gone"));
        let chain = format!("{:#}", anyhow::Error::new(e));
        assert_eq!(chain, "/data/x.png: gone");
    }
}
