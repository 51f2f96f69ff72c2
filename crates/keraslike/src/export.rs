//! `model.safetensors`: a classifier's weights as PyTorch holds them, so the model can be
//! rebuilt and run in PyTorch (or NumPy) without this project.
//!
//! The network is the `nn.Sequential` whose modules are our layers in order (an
//! activation that Keras folds into a Conv2D or Dense layer is a module of its own, as
//! PyTorch writes it), and each tensor carries that module's PyTorch name and layout:
//! `"0.weight"` (Conv2d: out × in × kh × kw, as burn's), `"3.weight"` (Linear: out × in,
//! burn's transposed), BatchNorm's `weight`, `bias`, `running_mean`, `running_var` and
//! `num_batches_tracked`. The metadata's `architecture` lists the modules with what PyTorch
//! needs to build them; a Conv2D with Keras's "same" padding gives its zero padding
//! (left, right, top, bottom) explicitly, since with a stride Keras pads more after than
//! before, which `nn.Conv2d(padding=...)` cannot say. `tests/python/check_export.py`
//! rebuilds the network from it and compares predictions.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use burn::tensor::Tensor;
use dataset::output::write_atomic;
use safetensors::tensor::{Dtype, TensorView};
use serde_json::{Value, json};

use crate::model::{Act, Layer, Sequential};
use crate::saved_model::ModelCard;

/// One tensor of the file: name, shape and little-endian bytes.
struct Entry {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

fn f32_entry<const D: usize>(name: String, tensor: Tensor<D>) -> Result<Entry> {
    let shape = tensor.dims().to_vec();
    let values = tensor
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| anyhow!("reading {name}: {e:?}"))?;
    Ok(Entry {
        name,
        dtype: Dtype::F32,
        shape,
        bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    })
}

/// The activations' shape between modules.
#[derive(Clone, Copy)]
enum Flow {
    Image([usize; 3]),
    Flat(usize),
}

/// Writes `model` to `path` with its card's input shape (C, H, W), classes and rescale in
/// the metadata, atomically.
pub fn save(path: &Path, model: &Sequential, card: &ModelCard) -> Result<()> {
    let (input, classes) = (card.model.input, &card.classes);
    let mut entries = Vec::new();
    let mut modules: Vec<Value> = Vec::new();
    let mut flow = Flow::Image(input);
    for (i, layer) in model.layers.iter().enumerate() {
        let module = match layer {
            Layer::Conv2d(conv) => {
                let Flow::Image([c, h, w]) = flow else {
                    bail!("module {i}: Conv2D after Flatten");
                };
                let [out_c, in_c, kh, kw] = conv.weight.val().dims();
                let ((top, bottom), (left, right)) = crate::kernels::conv::padding(conv, h, w);
                let [sh, sw] = conv.stride;
                flow = Flow::Image([
                    out_c,
                    (h + top + bottom - kh) / sh + 1,
                    (w + left + right - kw) / sw + 1,
                ]);
                if in_c != c {
                    bail!("module {i}: Conv2D takes {in_c} channels, gets {c}");
                }
                entries.push(f32_entry(format!("{i}.weight"), conv.weight.val())?);
                if let Some(bias) = &conv.bias {
                    entries.push(f32_entry(format!("{i}.bias"), bias.val())?);
                }
                json!({"type": "Conv2d", "in_channels": in_c, "out_channels": out_c,
                       "kernel_size": [kh, kw], "stride": [sh, sw], "bias": conv.bias.is_some(),
                       "pad": [left, right, top, bottom]})
            }
            Layer::MaxPool2d(pool) => {
                let Flow::Image([c, h, w]) = flow else {
                    bail!("module {i}: MaxPooling2D after Flatten");
                };
                let ([kh, kw], [sh, sw]) = (pool.kernel_size, pool.stride);
                flow = Flow::Image([c, (h - kh) / sh + 1, (w - kw) / sw + 1]);
                json!({"type": "MaxPool2d", "kernel_size": [kh, kw], "stride": [sh, sw]})
            }
            Layer::Flatten(_) => {
                if let Flow::Image([c, h, w]) = flow {
                    flow = Flow::Flat(c * h * w);
                }
                json!({"type": "Flatten"})
            }
            Layer::Dense(linear) => {
                let [inputs, outputs] = linear.weight.val().dims();
                if let Flow::Flat(width) = flow
                    && width != inputs
                {
                    bail!("module {i}: Dense takes {inputs} features, gets {width}");
                }
                flow = Flow::Flat(outputs);
                // burn keeps (inputs, outputs); PyTorch's Linear (outputs, inputs).
                entries.push(f32_entry(
                    format!("{i}.weight"),
                    linear.weight.val().transpose(),
                )?);
                if let Some(bias) = &linear.bias {
                    entries.push(f32_entry(format!("{i}.bias"), bias.val())?);
                }
                json!({"type": "Linear", "in_features": inputs, "out_features": outputs,
                       "bias": linear.bias.is_some()})
            }
            Layer::Dropout(dropout) => json!({"type": "Dropout", "p": dropout.prob}),
            Layer::BatchNorm(bn) => {
                entries.push(f32_entry(format!("{i}.weight"), bn.gamma.val())?);
                entries.push(f32_entry(format!("{i}.bias"), bn.beta.val())?);
                entries.push(f32_entry(
                    format!("{i}.running_mean"),
                    bn.running_mean.value(),
                )?);
                entries.push(f32_entry(
                    format!("{i}.running_var"),
                    bn.running_var.value(),
                )?);
                entries.push(Entry {
                    name: format!("{i}.num_batches_tracked"),
                    dtype: Dtype::I64,
                    shape: Vec::new(),
                    bytes: 0i64.to_le_bytes().to_vec(),
                });
                let kind = match flow {
                    Flow::Image(_) => "BatchNorm2d",
                    Flow::Flat(_) => "BatchNorm1d",
                };
                json!({"type": kind, "num_features": bn.gamma.val().dims()[0], "eps": bn.epsilon})
            }
            Layer::Act(act) => match act {
                Act::Relu(_) => json!({"type": "ReLU"}),
                Act::Sigmoid(_) => json!({"type": "Sigmoid"}),
                Act::Tanh(_) => json!({"type": "Tanh"}),
                Act::LeakyRelu(l) => {
                    json!({"type": "LeakyReLU", "negative_slope": l.negative_slope})
                }
                Act::Softmax(_) => json!({"type": "Softmax", "dim": 1}),
            },
        };
        modules.push(module);
    }
    let metadata = HashMap::from([
        ("format".to_string(), "pt".to_string()),
        (
            "architecture".to_string(),
            Value::Array(modules).to_string(),
        ),
        ("input".to_string(), json!(input).to_string()),
        ("classes".to_string(), json!(classes).to_string()),
        ("rescale".to_string(), json!(card.rescale).to_string()),
    ]);
    let views = entries
        .iter()
        .map(|e| {
            TensorView::new(e.dtype, e.shape.clone(), &e.bytes).map(|view| (e.name.clone(), view))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let bytes = safetensors::serialize(views, Some(metadata))
        .with_context(|| format!("{}: cannot serialise the weights", path.display()))?;
    write_atomic(path, &bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_config::ModelConfig;
    use burn::tensor::Device;
    use safetensors::SafeTensors;

    const CONFIG: &str = "input = [3, 9, 7]\n\
        [[layers]]\ntype = \"Conv2D\"\nfilters = 4\nkernel_size = 3\nstrides = 2\npadding = \"same\"\nactivation = \"relu\"\n\
        [[layers]]\ntype = \"BatchNormalization\"\n\
        [[layers]]\ntype = \"MaxPooling2D\"\npool_size = 2\n\
        [[layers]]\ntype = \"Flatten\"\n\
        [[layers]]\ntype = \"Dropout\"\nrate = 0.5\n\
        [[layers]]\ntype = \"Dense\"\nunits = 3\nactivation = \"softmax\"\n";

    #[test]
    fn names_layouts_and_architecture_are_pytorchs() {
        let config = ModelConfig::parse(CONFIG, "t.toml").unwrap();
        let model = Sequential::new(&config, &Device::flex()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        let card = ModelCard {
            classes: vec!["a".into(), "b".into(), "c".into()],
            preprocess: dataset::image_input::Preprocess::Resize,
            interpolation: crate::saved_model::Resample::Nearest,
            source: dataset::DatasetChoice::Mnist,
            validation_split: None,
            follow_links: false,
            rescale: crate::saved_model::COURSE_RESCALE,
            model: config,
        };
        save(&path, &model, &card).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let file = SafeTensors::deserialize(&bytes).unwrap();
        let shape = |name: &str| file.tensor(name).unwrap().shape().to_vec();
        assert_eq!(shape("0.weight"), [4, 3, 3, 3]);
        assert_eq!(shape("0.bias"), [4]);
        assert_eq!(shape("2.running_var"), [4]);
        assert_eq!(
            file.tensor("2.num_batches_tracked").unwrap().dtype(),
            Dtype::I64
        );
        // 9x7 -> same, stride 2 -> 5x4 -> pool 2 -> 2x2: 4·2·2 = 16 inputs to the Linear.
        assert_eq!(shape("6.weight"), [3, 16]);
        // The Linear's weight is burn's transposed.
        let Layer::Dense(linear) = &model.layers[6] else {
            panic!("layer 6 is not the Dense");
        };
        let burns = linear
            .weight
            .val()
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        let exported: Vec<f32> = file
            .tensor("6.weight")
            .unwrap()
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(exported[1], burns[3]); // (out 0, in 1) = burn's (in 1, out 0)
        let (_, metadata) = SafeTensors::read_metadata(&bytes).unwrap();
        let metadata = metadata.metadata().clone().unwrap();
        let arch: Vec<Value> = serde_json::from_str(&metadata["architecture"]).unwrap();
        let kinds: Vec<&str> = arch.iter().map(|m| m["type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "Conv2d",
                "ReLU",
                "BatchNorm2d",
                "MaxPool2d",
                "Flatten",
                "Dropout",
                "Linear",
                "Softmax"
            ]
        );
        // Keras's "same" for 9 rows at stride 2 with a 3-kernel: 2 rows of padding, 1
        // before and 1 after; 7 columns: 2 as well.
        assert_eq!(arch[0]["pad"], json!([1, 1, 1, 1]));
        assert_eq!(metadata["classes"], "[\"a\",\"b\",\"c\"]");
    }
}
