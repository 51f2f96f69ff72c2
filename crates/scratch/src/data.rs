//! Images as network inputs: (n, features) f32 in [0, 1], each row one image in
//! channels-last (row, column, channel) order.

use std::path::PathBuf;
use std::str::FromStr;

use crate::spec::InputShape;
use dataset::{DataDir, FolderOptions, ImageFolder, ImageShape, LabelledImages, MnistKind, Split};
use ndarray::{Array2, ArrayViewMut1, Axis};

pub struct Samples {
    /// (n, H·W·C), pixels / 255, channels-last.
    pub x: Array2<f32>,
    pub labels: Vec<u8>,
    pub shape: ImageShape,
    pub classes: Vec<String>,
}

impl Samples {
    pub fn from_images(images: &LabelledImages) -> Self {
        let features = images.shape.len();
        let c = images.shape.channels;
        let plane = images.shape.height * images.shape.width;
        // The data sets store planes (C, H, W); convolutions here want (H, W, C).
        let mut x = Array2::zeros((images.len(), features));
        for (mut row, i) in x.axis_iter_mut(Axis(0)).zip(0..images.len()) {
            let chw = images.image(i);
            let row = row.as_slice_mut().expect("row-major");
            for (p, pixel) in row.chunks_exact_mut(c).enumerate() {
                for (ch, v) in pixel.iter_mut().enumerate() {
                    *v = chw[ch * plane + p] as f32 / 255.0;
                }
            }
        }
        Self {
            x,
            labels: images.labels.clone(),
            shape: images.shape,
            classes: images.classes.clone(),
        }
    }

    /// The shape of one sample, as network descriptions state it.
    pub fn input_shape(&self) -> InputShape {
        InputShape {
            channels: self.shape.channels,
            height: self.shape.height,
            width: self.shape.width,
        }
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Copies rows `idx` into `x` and `labels` (reused buffers: no allocation per batch).
    pub fn gather(&self, idx: &[usize], x: &mut Array2<f32>, labels: &mut Vec<u8>) {
        if x.nrows() != idx.len() {
            *x = Array2::zeros((idx.len(), self.x.ncols()));
        }
        labels.clear();
        for (mut row, &i) in x.axis_iter_mut(Axis(0)).zip(idx) {
            copy_row(&mut row, self.x.row(i).as_slice().expect("row-major"));
            labels.push(self.labels[i]);
        }
    }
}

fn copy_row(dst: &mut ArrayViewMut1<f32>, src: &[f32]) {
    dst.as_slice_mut().expect("row-major").copy_from_slice(src);
}

/// The data sets `scratch` trains on: `mnist`, `fashion`, `cifar10` or `folder:DIR`
/// (DIR/train/<class>/*, DIR/test/<class>/*, all images the same size).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatasetChoice {
    Mnist,
    Fashion,
    Cifar10,
    Folder(PathBuf),
}

impl FromStr for DatasetChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "mnist" => Ok(Self::Mnist),
            "fashion" => Ok(Self::Fashion),
            "cifar10" => Ok(Self::Cifar10),
            _ => match s.strip_prefix("folder:") {
                Some(dir) if !dir.is_empty() => Ok(Self::Folder(PathBuf::from(dir))),
                _ => Err(format!(
                    "unknown data set {s:?} (expected mnist, fashion, cifar10 or folder:DIR)"
                )),
            },
        }
    }
}

impl std::fmt::Display for DatasetChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Mnist => write!(f, "mnist"),
            Self::Fashion => write!(f, "fashion"),
            Self::Cifar10 => write!(f, "cifar10"),
            Self::Folder(dir) => write!(f, "folder:{}", dir.display()),
        }
    }
}

impl DatasetChoice {
    /// Train and test images, from the data directory (downloaded there if allowed).
    /// Image folders come class by class; they are shuffled once (fixed seed) so that
    /// `--train-limit N` keeps a mix of classes.
    pub fn load(&self, dirs: &DataDir) -> anyhow::Result<Split> {
        let split = self.load_in_file_order(dirs)?;
        Ok(match self {
            Self::Mnist | Self::Fashion => split,
            Self::Cifar10 | Self::Folder(_) => Split {
                train: split.train.shuffled(1),
                test: split.test.shuffled(2),
            },
        })
    }

    fn load_in_file_order(&self, dirs: &DataDir) -> anyhow::Result<Split> {
        Ok(match self {
            Self::Mnist => dataset::mnist::load(MnistKind::Digits, dirs)?,
            Self::Fashion => dataset::mnist::load(MnistKind::Fashion, dirs)?,
            Self::Cifar10 => dataset::cifar::load(dirs)?,
            Self::Folder(dir) => {
                let open = |split: &str| -> anyhow::Result<LabelledImages> {
                    Ok(
                        ImageFolder::open(&dir.join(split), FolderOptions::default())?
                            .load_all()?,
                    )
                };
                let (train, test) = (open("train")?, open("test")?);
                if train.classes != test.classes || train.shape != test.shape {
                    anyhow::bail!(
                        "{}: train/ has classes {:?} of {:?} images, test/ has {:?} of {:?}",
                        dir.display(),
                        train.classes,
                        train.shape,
                        test.classes,
                        test.shape
                    );
                }
                Split { train, test }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_images_become_channels_last_rows() {
        // One 1×2 RGB image stored as planes: R = (10, 20), G = (30, 40), B = (50, 60).
        let images = LabelledImages {
            pixels: vec![10, 20, 30, 40, 50, 60],
            labels: vec![0],
            shape: ImageShape {
                channels: 3,
                height: 1,
                width: 2,
            },
            classes: vec!["a".into()],
        };
        let s = Samples::from_images(&images);
        let row: Vec<u8> =
            s.x.row(0)
                .iter()
                .map(|v| (v * 255.0).round() as u8)
                .collect();
        assert_eq!(row, [10, 30, 50, 20, 40, 60]);
    }

    #[test]
    fn dataset_names_parse() {
        assert_eq!("cifar10".parse(), Ok(DatasetChoice::Cifar10));
        assert_eq!(
            "folder:/x/y".parse(),
            Ok(DatasetChoice::Folder(PathBuf::from("/x/y")))
        );
        assert!("folder:".parse::<DatasetChoice>().is_err());
        assert!(
            "imagenet"
                .parse::<DatasetChoice>()
                .unwrap_err()
                .contains("cifar10")
        );
    }
}
