//! The data set a command trains on, as typed: `mnist`, `fashion`, `cifar10` or
//! `folder:DIR` (shared by `scratch --dataset` and `keraslike dcgan --dataset`).

use std::path::PathBuf;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatasetChoice {
    Mnist,
    Fashion,
    Cifar10,
    /// An image folder: one subfolder per class (how a command lays it out is its own).
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
}
