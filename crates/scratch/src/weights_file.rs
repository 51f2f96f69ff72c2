//! Weights in safetensors format: one f32 tensor per parameter (W1, b1, W2, b2, ...) and
//! the architecture as JSON in the metadata, so a file alone rebuilds its network.
//! Loadable from Python with `safetensors.numpy.load_file`.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use dataset::DatasetChoice;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::network::{Kernels, Network};
use crate::spec::Architecture;

const FORMAT: &str = "scratch-v1";

/// What a weights file holds besides the network.
#[derive(Debug, Clone, Default)]
pub struct Provenance {
    /// Epochs trained so far (a resumed run continues from here).
    pub epochs: usize,
    /// The data set it was trained on (`mnist`, `cifar10`, `folder:DIR`), if known.
    pub dataset: Option<DatasetChoice>,
    /// Class names in label order (empty if unknown).
    pub classes: Vec<String>,
}

/// Data set names for a file's classes: the file's own, else "0", "1", ...
pub fn class_names(prov: &Provenance, classes: usize) -> Vec<String> {
    if prov.classes.len() == classes {
        prov.classes.clone()
    } else {
        (0..classes).map(|c| c.to_string()).collect()
    }
}

/// Writes atomically: a temporary file in the same folder, renamed over the target, so an
/// interrupted save never destroys the previous file.
pub fn save(path: &Path, net: &Network, provenance: &Provenance) -> Result<()> {
    let tensors = net.named_tensors();
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(name, t)| {
            let data: Vec<u8> = t.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name.clone(), data, t.shape().to_vec())
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, data, shape)| {
            Ok((
                name.clone(),
                TensorView::new(Dtype::F32, shape.clone(), data)?,
            ))
        })
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
    let metadata = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        (
            "architecture".to_string(),
            serde_json::to_string(&net.arch)?,
        ),
        ("epochs".to_string(), provenance.epochs.to_string()),
        (
            "classes".to_string(),
            serde_json::to_string(&provenance.classes)?,
        ),
    ]);
    let mut metadata = metadata;
    if let Some(d) = &provenance.dataset {
        metadata.insert("dataset".to_string(), d.to_string());
    }
    let serialized = safetensors::serialize(views, Some(metadata))?;
    dataset::output::write_atomic(path, &serialized)?;
    Ok(())
}

/// Rebuilds the network a weights file describes and loads its tensors.
pub fn load(path: &Path) -> Result<(Network, Provenance)> {
    load_with(path, Kernels::Fast)
}

/// [`load`], the network run by `kernels`.
pub fn load_with(path: &Path, kernels: Kernels) -> Result<(Network, Provenance)> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("{}: cannot read weights file", path.display()))?;
    let bad =
        |why: String| anyhow::anyhow!("{}: not a scratch weights file: {why}", path.display());
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
    let meta = header.metadata().clone().unwrap_or_default();
    if meta.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(bad(format!("metadata \"format\" is not \"{FORMAT}\"")));
    }
    let arch: Architecture = serde_json::from_str(
        meta.get("architecture")
            .ok_or_else(|| bad("no architecture".into()))?,
    )
    .map_err(|e| bad(format!("architecture: {e}")))?;
    let epochs = meta.get("epochs").and_then(|e| e.parse().ok()).unwrap_or(0);
    let dataset = meta
        .get("dataset")
        .map(|d| d.parse::<DatasetChoice>())
        .transpose()
        .map_err(|e| bad(format!("dataset: {e}")))?;
    let classes = meta
        .get("classes")
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or_default();
    let tensors = SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
    // Every parameter is an f32 in the file: an architecture claiming more than its bytes
    // hold is refused before the network is allocated (a 26 KB file can claim gigabytes).
    let params = arch
        .parameter_count()
        .map_err(|e| bad(format!("architecture: {e:#}")))?;
    if params * 4 > bytes.len() as u128 {
        return Err(bad(format!(
            "its architecture has {params} parameters ({} bytes as f32), the file only {} bytes",
            params * 4,
            bytes.len()
        )));
    }
    let mut net = Network::with_kernels(&arch, 0, kernels).map_err(|e| bad(format!("{e:#}")))?;
    for (name, target) in net.named_tensors_mut() {
        let view = tensors
            .tensor(&name)
            .map_err(|_| bad(format!("tensor {name} is missing")))?;
        if view.dtype() != Dtype::F32 {
            bail!(
                "{}: tensor {name} is {:?}, expected F32",
                path.display(),
                view.dtype()
            );
        }
        if view.shape() != target.shape() {
            bail!(
                "{}: tensor {name} has shape {:?}, the architecture needs {:?}",
                path.display(),
                view.shape(),
                target.shape()
            );
        }
        for (dst, src) in target.iter_mut().zip(view.data().chunks_exact(4)) {
            *dst = f32::from_le_bytes([src[0], src[1], src[2], src[3]]);
        }
    }
    Ok((
        net,
        Provenance {
            epochs,
            dataset,
            classes,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{InputShape, LayerSpec};

    fn arch() -> Architecture {
        Architecture {
            input: InputShape::MNIST,
            classes: 10,
            layers: vec![
                LayerSpec::Affine {
                    units: 8,
                    init: None,
                },
                LayerSpec::Sigmoid,
                LayerSpec::Affine {
                    units: 10,
                    init: None,
                },
            ],
        }
    }

    #[test]
    fn round_trips_tensors_architecture_and_epochs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        let net = Network::new(&arch(), 5).unwrap();
        let prov = Provenance {
            epochs: 3,
            dataset: Some(DatasetChoice::Mnist),
            classes: (0..10).map(|d| d.to_string()).collect(),
        };
        save(&path, &net, &prov).unwrap();
        let (loaded, back) = load(&path).unwrap();
        assert_eq!(back.epochs, 3);
        assert_eq!(back.dataset, Some(DatasetChoice::Mnist));
        assert_eq!(back.classes, prov.classes);
        assert_eq!(loaded.arch, net.arch);
        for ((n1, t1), (n2, t2)) in net.named_tensors().iter().zip(loaded.named_tensors()) {
            assert_eq!((n1, *t1), (&n2, t2));
        }
        let names: Vec<String> = loaded.named_tensors().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["W1", "b1", "W2", "b2"]);
        assert_eq!(loaded.named_tensors()[0].1.shape(), &[784, 8]);
    }

    #[test]
    fn garbage_and_missing_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junk.safetensors");
        std::fs::write(&path, b"not safetensors at all").unwrap();
        let msg = format!("{:#}", load(&path).err().unwrap());
        assert!(msg.contains("junk.safetensors"), "{msg}");
        let msg = format!(
            "{:#}",
            load(&dir.path().join("none.safetensors")).err().unwrap()
        );
        assert!(msg.contains("none.safetensors"), "{msg}");
    }

    #[test]
    fn saving_replaces_the_old_file_in_one_step() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        save(
            &path,
            &Network::new(&arch(), 1).unwrap(),
            &Provenance::default(),
        )
        .unwrap();
        save(
            &path,
            &Network::new(&arch(), 2).unwrap(),
            &Provenance {
                epochs: 1,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(load(&path).unwrap().1.epochs, 1);
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(files.len(), 1, "no temporary files left behind");
    }
}
