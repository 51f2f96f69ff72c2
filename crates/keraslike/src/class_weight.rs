//! Keras's `fit(class_weight=...)`: each training image's loss weighted by its class, so
//! that a rare class counts as much as a common one (the shared faces are 72% non-smile).
//! As in Keras the training loss is the batch mean of the weighted losses (not divided
//! by the weights' sum, as PyTorch's weighted cross-entropy is), and validation is not
//! weighted.

use std::str::FromStr;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

/// `--class-weight balanced` / `[fit] class_weight = "balanced"`, or one weight per class
/// in the classes' order (`--class-weight 1,2.5`, `class_weight = [1.0, 2.5]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ClassWeight {
    Named(Balanced),
    Given(Vec<f64>),
}

/// The one named choice: scikit-learn's `compute_class_weight("balanced")`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Balanced {
    Balanced,
}

impl FromStr for ClassWeight {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text.trim().eq_ignore_ascii_case("balanced") {
            return Ok(ClassWeight::Named(Balanced::Balanced));
        }
        text.split(',')
            .map(|w| w.trim().parse::<f64>())
            .collect::<Result<Vec<_>, _>>()
            .map(ClassWeight::Given)
            .map_err(|_| format!("{text:?}: give \"balanced\" or one number per class, as 1,2.5"))
    }
}

impl ClassWeight {
    /// The weights for classes with `counts` training images each (`names` for messages).
    /// Balanced: n / (K · count), so every class's images weigh n / K in all.
    pub fn resolve(&self, counts: &[usize], names: &[String]) -> Result<Vec<f32>> {
        let weights: Vec<f64> = match self {
            ClassWeight::Named(Balanced::Balanced) => {
                let total: usize = counts.iter().sum();
                if let Some(k) = counts.iter().position(|&c| c == 0) {
                    bail!(
                        "class_weight balanced: class {} has no training images",
                        names.get(k).map_or("?", String::as_str)
                    );
                }
                counts
                    .iter()
                    .map(|&c| total as f64 / (counts.len() as f64 * c as f64))
                    .collect()
            }
            ClassWeight::Given(weights) => {
                if weights.len() != counts.len() {
                    bail!(
                        "class_weight has {} weights for {} classes ({})",
                        weights.len(),
                        counts.len(),
                        names.join(", ")
                    );
                }
                if let Some(w) = weights.iter().find(|w| !(w.is_finite() && **w >= 0.0)) {
                    bail!("class_weight {w}: weights must be finite and 0 or more");
                }
                if weights.iter().all(|&w| w == 0.0) {
                    bail!("class_weight: every weight is 0, so nothing would be learned");
                }
                weights.clone()
            }
        };
        Ok(weights.iter().map(|&w| w as f32).collect())
    }
}

/// `nonsmile 0.69, smile 1.80`.
pub fn describe(weights: &[f32], names: &[String]) -> String {
    names
        .iter()
        .zip(weights)
        .map(|(n, w)| format!("{n} {w:.4}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(k: usize) -> Vec<String> {
        (0..k).map(|i| format!("c{i}")).collect()
    }

    #[test]
    fn balanced_is_scikit_learns() {
        // compute_class_weight("balanced", classes=[0, 1], y=[0]*72 + [1]*28)
        let w = ClassWeight::from_str("balanced")
            .unwrap()
            .resolve(&[72, 28], &names(2))
            .unwrap();
        assert!((w[0] - 100.0 / 144.0).abs() < 1e-6 && (w[1] - 100.0 / 56.0).abs() < 1e-6);
    }

    #[test]
    fn explicit_weights_are_checked_against_the_classes() {
        let given = ClassWeight::from_str("1, 2.5").unwrap();
        assert_eq!(given, ClassWeight::Given(vec![1.0, 2.5]));
        assert_eq!(given.resolve(&[3, 4], &names(2)).unwrap(), [1.0, 2.5]);
        let err = |w: &str, counts: &[usize]| {
            ClassWeight::from_str(w)
                .unwrap()
                .resolve(counts, &names(counts.len()))
                .unwrap_err()
                .to_string()
        };
        assert!(err("1,2", &[1, 1, 1]).contains("2 weights for 3 classes"));
        assert!(err("1,-2", &[1, 1]).contains("-2"));
        assert!(err("0,0", &[1, 1]).contains("every weight is 0"));
        assert!(err("balanced", &[5, 0]).contains("c1 has no training images"));
        assert!(ClassWeight::from_str("heavy").is_err());
    }

    #[test]
    fn the_config_takes_a_name_or_a_list() {
        #[derive(Deserialize)]
        struct Fit {
            class_weight: ClassWeight,
        }
        let named: Fit = toml::from_str("class_weight = \"balanced\"").unwrap();
        assert_eq!(named.class_weight, ClassWeight::Named(Balanced::Balanced));
        let list: Fit = toml::from_str("class_weight = [1.0, 3]").unwrap();
        assert_eq!(list.class_weight, ClassWeight::Given(vec![1.0, 3.0]));
    }
}
