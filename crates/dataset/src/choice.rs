//! The data set a command trains on, as typed: `mnist`, `fashion`, `cifar10` or
//! `folder:DIR` (shared by `scratch --dataset` and `keraslike dcgan --dataset`), and as
//! written in configs, weights files and generator cards (the same text).

use std::path::PathBuf;
use std::str::FromStr;

use crate::error::{DatasetError, Result};
use crate::{DataDir, FolderOptions, ImageFolder, MnistKind, Split};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DatasetChoice {
    Mnist,
    Fashion,
    Cifar10,
    /// An image folder: one subfolder per class (how a command lays it out is its own).
    Folder(PathBuf),
}

impl DatasetChoice {
    /// Its training and test images, in file order, from the data directory (downloaded
    /// there if allowed). A folder holds `DIR/train/<class>/*` and `DIR/test/<class>/*`,
    /// read at their own size (all the same) in RGB, as `flow_from_directory` would without
    /// a `target_size`.
    pub fn load(&self, dirs: &DataDir) -> Result<Split> {
        Ok(match self {
            Self::Mnist => crate::mnist::load(MnistKind::Digits, dirs)?,
            Self::Fashion => crate::mnist::load(MnistKind::Fashion, dirs)?,
            Self::Cifar10 => crate::cifar::load(dirs)?,
            Self::Folder(dir) => {
                let open = |split: &str| {
                    ImageFolder::open(&dir.join(split), FolderOptions::default())?.load_all()
                };
                let (train, test) = (open("train")?, open("test")?);
                if train.classes != test.classes || train.shape != test.shape {
                    return Err(DatasetError::BadFolder {
                        path: dir.clone(),
                        reason: format!(
                            "train/ has classes {:?} of {:?} images, test/ has {:?} of {:?}",
                            train.classes, train.shape, test.classes, test.shape
                        ),
                    });
                }
                Split { train, test }
            }
        })
    }
}

impl FromStr for DatasetChoice {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
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

impl TryFrom<String> for DatasetChoice {
    type Error = String;

    fn try_from(s: String) -> std::result::Result<Self, String> {
        s.parse()
    }
}

impl From<DatasetChoice> for String {
    fn from(choice: DatasetChoice) -> String {
        choice.to_string()
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn configs_and_files_hold_the_typed_text() {
        #[derive(Debug, serde::Serialize, serde::Deserialize)]
        struct Settings {
            dataset: DatasetChoice,
        }
        let text = toml::to_string(&Settings {
            dataset: DatasetChoice::Folder("/x".into()),
        })
        .unwrap();
        assert_eq!(text.trim(), r#"dataset = "folder:/x""#);
        let back: Settings = toml::from_str(&text).unwrap();
        assert_eq!(back.dataset, DatasetChoice::Folder("/x".into()));
        let bad = toml::from_str::<Settings>(r#"dataset = "imagenet""#).unwrap_err();
        assert!(bad.to_string().contains("unknown data set"), "{bad}");
    }
}
