//! Data loading for the course's exercises.
//!
//! - [`mnist`]: MNIST and Fashion-MNIST IDX files, gzip or raw ([`idx`] reads the format).
//! - [`augment`]: random flips, shifts, rotations and zooms (Keras `ImageDataGenerator`).
//! - [`choice`]: the `--dataset` names (`mnist`, `fashion`, `cifar10`, `folder:DIR`).
//! - [`cifar`]: CIFAR-10 binary batches, or the same as an image folder.
//! - [`image_folder`]: Keras `flow_from_directory` folders, streamed in batches.
//! - [`image_file`]: one image file opened under size limits, truncated or corrupt JPEGs refused.
//! - [`jpeg_scan`]: libjpeg's checks of a baseline JPEG's compressed data, without decoding.
//! - [`digit_image`]: any photo or drawing of a digit as a 28×28 MNIST-style input.
//! - [`image_input`]: one image file as a network's input (`predict` in both halves).
//! - [`download`]: checksummed, atomic downloads into the data directory.
//! - [`data_dir`]: where data is looked for (`--data-dir`, `DL_DATA_DIR`, `data/`).
//! - [`memory`]: the memory available, to refuse what would not fit before allocating it.
//! - [`output`]: atomic file writes, for every result both halves write.
//! - [`progress`]: the project's one progress-bar style (downloads, training epochs).
//! - [`peak_memory`]: a counting allocator, for tests that bound what a parser allocates.
//! - [`pil`]: PIL's grey conversion and nearest resize, as Keras's `load_img` applies them.
//! - [`synthetic`]: small generated data sets for tests.
//! - [`toml_text`]: configs and cards parsed with one-line errors naming file, line and column.
//!
//! Every loader returns a [`DatasetError`] naming the file at fault; none panics on bad input.

pub mod augment;
pub mod choice;
pub mod cifar;
pub mod data_dir;
pub mod digit_image;
pub mod download;
pub mod error;
pub mod idx;
pub mod image_file;
pub mod image_folder;
pub mod image_input;
pub mod jpeg_scan;
pub mod labelled;
pub mod memory;
pub mod mnist;
pub mod output;
pub mod peak_memory;
pub mod pil;
pub mod progress;
pub mod synthetic;
pub mod toml_text;

pub use choice::DatasetChoice;
pub use data_dir::{DATA_DIR_ENV, DataDir};
pub use error::{DatasetError, Result};
pub use image_folder::{Batch, ColorMode, FolderOptions, ImageFolder, Interpolation, Subset};
pub use labelled::{ImageShape, LabelledImages, Split};
pub use mnist::MnistKind;
