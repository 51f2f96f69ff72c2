//! Experiment configs: a TOML list of layers plus optimiser and training settings.
//!
//! ```toml
//! [train]
//! epochs = 10
//! [optimizer]
//! type = "sgd"
//! lr = 0.5
//! [[layers]]
//! type = "affine"
//! units = 100
//! [[layers]]
//! type = "sigmoid"
//! ```

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::init::Init;

/// One layer of a network description.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum LayerSpec {
    Affine {
        units: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        init: Option<Init>,
    },
    Sigmoid,
    Relu,
}

/// The shape of one input sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputShape {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl InputShape {
    pub const MNIST: InputShape = InputShape {
        channels: 1,
        height: 28,
        width: 28,
    };

    pub fn features(&self) -> usize {
        self.channels * self.height * self.width
    }
}

/// Everything needed to rebuild a network: stored with its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Architecture {
    pub input: InputShape,
    pub classes: usize,
    pub layers: Vec<LayerSpec>,
}

impl Architecture {
    /// Checks that the layers chain from the input to `classes` outputs; errors name the
    /// layer (1-based, as in the config file) and the shapes.
    pub fn validate(&self) -> Result<()> {
        if self.layers.is_empty() {
            bail!("the network has no layers");
        }
        let mut features = self.input.features();
        for (i, layer) in self.layers.iter().enumerate() {
            if let LayerSpec::Affine { units, .. } = layer {
                if *units == 0 {
                    bail!("layer {} (affine): units must be at least 1", i + 1);
                }
                features = *units;
            }
        }
        if features != self.classes {
            bail!(
                "the last layer outputs {features} values but the data has {} classes \
                 (make the last affine layer's units {})",
                self.classes,
                self.classes
            );
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSettings {
    pub epochs: usize,
    pub batch_size: usize,
    pub seed: u64,
}

impl Default for TrainSettings {
    fn default() -> Self {
        Self {
            epochs: 10,
            batch_size: 100,
            seed: 42,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum OptimizerSpec {
    /// W ← W − η ∂L/∂W
    Sgd { lr: f32 },
}

impl Default for OptimizerSpec {
    fn default() -> Self {
        OptimizerSpec::Sgd { lr: 0.1 }
    }
}

/// A whole experiment config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    #[serde(default)]
    pub train: TrainSettings,
    #[serde(default)]
    pub optimizer: OptimizerSpec,
    pub layers: Vec<LayerSpec>,
}

/// The task-3 network, also in `configs/mlp-sigmoid.toml`.
pub const DEFAULT_CONFIG: &str = include_str!("../../../configs/mlp-sigmoid.toml");

impl ExperimentConfig {
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        toml::from_str(text).with_context(|| format!("{origin}: invalid config"))
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read config", path.display()))?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn default_config() -> Self {
        Self::parse(DEFAULT_CONFIG, "configs/mlp-sigmoid.toml")
            .expect("the shipped default config parses")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_config_parses_and_chains() {
        let cfg = ExperimentConfig::default_config();
        let arch = Architecture {
            input: InputShape::MNIST,
            classes: 10,
            layers: cfg.layers,
        };
        arch.validate().unwrap();
    }

    #[test]
    fn unknown_layer_types_and_options_are_rejected() {
        let bad_type = "[[layers]]\ntype = \"convolution\"\n";
        let msg = format!(
            "{:#}",
            ExperimentConfig::parse(bad_type, "x.toml").unwrap_err()
        );
        assert!(
            msg.contains("x.toml") && msg.contains("convolution"),
            "{msg}"
        );
        let bad_option = "[[layers]]\ntype = \"affine\"\nunits = 10\nwidth = 3\n";
        let msg = format!(
            "{:#}",
            ExperimentConfig::parse(bad_option, "y.toml").unwrap_err()
        );
        assert!(msg.contains("width"), "{msg}");
    }

    #[test]
    fn shapes_that_do_not_chain_are_reported() {
        let arch = Architecture {
            input: InputShape::MNIST,
            classes: 10,
            layers: vec![
                LayerSpec::Affine {
                    units: 50,
                    init: None,
                },
                LayerSpec::Relu,
            ],
        };
        let msg = arch.validate().unwrap_err().to_string();
        assert!(msg.contains("50") && msg.contains("10 classes"), "{msg}");
    }
}
