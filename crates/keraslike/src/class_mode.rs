//! `flow_from_directory(class_mode=...)`: how a folder's labels meet the model's last layer.
//!
//! - `categorical`: one output per class, softmax, categorical cross-entropy.
//! - `binary`: two classes, one sigmoid unit giving the probability of the second class
//!   (index 1), binary cross-entropy, Keras's `Dense(1, activation="sigmoid")` head.
//!
//! A binary head's output `z` is trained and read as the two logits `[0, z]`: their
//! softmax is `[1 - sigmoid(z), sigmoid(z)]`, and the cross-entropy of it with label `y`
//! is exactly binary cross-entropy, so loss, accuracy, evaluate and predict need nothing
//! of their own (see `Sequential::forward_logits`).

use anyhow::{Result, bail};
use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use crate::model_config::{Activation, LayerConfig, LayerInfo, ModelConfig, Shape};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ClassMode {
    Categorical,
    Binary,
}

impl ClassMode {
    /// What the model's last layers make it: binary when it ends in one sigmoid unit (as
    /// `Dense(units = 1, activation = "sigmoid")`, or a 1-unit Dense then a sigmoid
    /// Activation layer).
    pub fn of(config: &ModelConfig) -> ClassMode {
        let dense_units = |layer: &LayerConfig| match layer {
            LayerConfig::Dense {
                units, activation, ..
            } => Some((*units, *activation)),
            _ => None,
        };
        let head = match config.layers.as_slice() {
            [.., last] if dense_units(last).is_some() => dense_units(last),
            [
                ..,
                before,
                LayerConfig::Activation {
                    activation: Activation::Sigmoid,
                },
            ] => match dense_units(before) {
                Some((units, Activation::Linear)) => Some((units, Activation::Sigmoid)),
                _ => None,
            },
            _ => None,
        };
        match head {
            Some((1, Activation::Sigmoid)) => ClassMode::Binary,
            _ => ClassMode::Categorical,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ClassMode::Categorical => "categorical",
            ClassMode::Binary => "binary",
        }
    }
}

/// How many classes the model tells apart: its outputs, or 2 for a binary head.
pub fn classes_of(config: &ModelConfig, infos: &[LayerInfo]) -> Option<usize> {
    match (ClassMode::of(config), infos.last().map(|l| l.output)) {
        (ClassMode::Binary, _) => Some(2),
        (ClassMode::Categorical, Some(Shape::Flat(n))) => Some(n),
        _ => None,
    }
}

/// Checks that the model fits the data's `classes` in the mode `asked` for (by default,
/// the model's own); the mode used.
pub fn check(
    config: &ModelConfig,
    infos: &[LayerInfo],
    classes: &[String],
    asked: Option<ClassMode>,
) -> Result<ClassMode> {
    let own = ClassMode::of(config);
    let last = infos.last().map(|l| l.output);
    let ends_in = last.map_or("nothing".into(), |s| s.keras());
    match (asked.unwrap_or(own), own) {
        (ClassMode::Binary, ClassMode::Categorical) => bail!(
            "class_mode binary needs a model ending in one sigmoid unit (Dense with units = 1 and \
             activation = \"sigmoid\"); this one's last layer gives {ends_in}"
        ),
        (ClassMode::Categorical, ClassMode::Binary) => bail!(
            "the model ends in one sigmoid unit (Keras's binary classifier): train it with \
             class_mode binary, or end it in a softmax Dense layer of one unit per class"
        ),
        (ClassMode::Binary, ClassMode::Binary) if classes.len() != 2 => bail!(
            "class_mode binary needs exactly 2 classes; the data has {}: {}",
            classes.len(),
            classes.join(", ")
        ),
        (ClassMode::Categorical, ClassMode::Categorical)
            if last != Some(Shape::Flat(classes.len())) =>
        {
            bail!(
                "the model's last layer must give one output per class ({} classes: {}), not {ends_in}",
                classes.len(),
                classes.join(", "),
            )
        }
        (mode, _) => Ok(mode),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(head: &str) -> ModelConfig {
        let text = format!("input = [1, 4, 4]\n[[layers]]\ntype = \"Flatten\"\n{head}");
        ModelConfig::parse(&text, "test").expect("config")
    }

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("c{i}")).collect()
    }

    #[test]
    fn a_single_sigmoid_unit_is_a_binary_head_in_either_spelling() {
        let folded = config("[[layers]]\ntype = \"Dense\"\nunits = 1\nactivation = \"sigmoid\"\n");
        let separate = config(
            "[[layers]]\ntype = \"Dense\"\nunits = 1\n\
             [[layers]]\ntype = \"Activation\"\nactivation = \"sigmoid\"\n",
        );
        for c in [&folded, &separate] {
            assert_eq!(ClassMode::of(c), ClassMode::Binary);
            assert_eq!(classes_of(c, &c.infer().expect("infer")), Some(2));
        }
        // One unit without a sigmoid, or a sigmoid over two units, is not.
        let linear = config("[[layers]]\ntype = \"Dense\"\nunits = 1\n");
        let two = config("[[layers]]\ntype = \"Dense\"\nunits = 2\nactivation = \"sigmoid\"\n");
        assert_eq!(ClassMode::of(&linear), ClassMode::Categorical);
        assert_eq!(ClassMode::of(&two), ClassMode::Categorical);
    }

    #[test]
    fn the_mode_asked_for_must_fit_the_model_and_the_classes() {
        let binary = config("[[layers]]\ntype = \"Dense\"\nunits = 1\nactivation = \"sigmoid\"\n");
        let softmax = config("[[layers]]\ntype = \"Dense\"\nunits = 2\nactivation = \"softmax\"\n");
        let infos = |c: &ModelConfig| c.infer().expect("infer");
        let check_with = |c: &ModelConfig, n, asked| check(c, &infos(c), &names(n), asked);

        assert_eq!(check_with(&binary, 2, None).ok(), Some(ClassMode::Binary));
        assert_eq!(
            check_with(&binary, 2, Some(ClassMode::Binary)).ok(),
            Some(ClassMode::Binary)
        );
        assert_eq!(
            check_with(&softmax, 2, None).ok(),
            Some(ClassMode::Categorical)
        );
        let message = |r: Result<ClassMode>| r.expect_err("refused").to_string();
        assert!(message(check_with(&binary, 3, None)).contains("exactly 2 classes"));
        assert!(message(check_with(&softmax, 2, Some(ClassMode::Binary))).contains("(None, 2)"));
        assert!(
            message(check_with(&binary, 2, Some(ClassMode::Categorical)))
                .contains("one sigmoid unit")
        );
        assert!(message(check_with(&softmax, 3, None)).contains("one output per class"));
    }
}
