//! Property tests: random and mutated experiment configs and weights files. Each must be
//! read into a value or refused with an error, never panic; a weights file whose metadata
//! claims a network larger than its tensors is refused before the network is allocated
//! (no load of these small files may allocate more than [`MAX_PEAK`] at once).

use dataset::peak_memory::{Counting, peak_during};
use proptest::prelude::*;

#[global_allocator]
static ALLOC: Counting = Counting;

/// What loading one of these weights files (a few KB) may allocate at its peak.
const MAX_PEAK: usize = 32 << 20;

use scratch::network::Network;
use scratch::spec::{Architecture, ExperimentConfig, InputShape};
use scratch::weights_file::{self, Provenance};

const CNN: &str = include_str!("../../../configs/cnn-mnist.toml");
const MLP: &str = include_str!("../../../configs/mlp-best.toml");

fn mutated_text(valid: &'static str) -> impl Strategy<Value = String> {
    let chars: Vec<char> = valid.chars().collect();
    let len = chars.len();
    prop::collection::vec(
        (
            0..len,
            prop::sample::select(vec!['0', '9', '-', '"', '=', '[', ']', '\n', 'x', '.']),
        ),
        1..6,
    )
    .prop_map(move |edits| {
        let mut c = chars.clone();
        for (at, ch) in edits {
            if at % 3 == 0 && at < c.len() {
                c.remove(at);
            } else if at < c.len() {
                c[at] = ch;
            }
        }
        c.into_iter().collect()
    })
}

fn check_config(text: &str) -> Result<(), TestCaseError> {
    if let Ok(cfg) = ExperimentConfig::parse(text, "fuzz.toml") {
        let _ = cfg.optimizer.validate();
        let arch = Architecture {
            input: InputShape::MNIST,
            classes: 10,
            layers: cfg.layers,
        };
        if let Ok(n) = arch.parameter_count()
            && n < 2_000_000
        {
            prop_assert!(
                Network::new(&arch, 1).is_ok(),
                "counted but did not build: {text}"
            );
        }
    }
    Ok(())
}

/// A small network's weights file, as `scratch train` writes it.
fn weights_bytes() -> Vec<u8> {
    let cfg = ExperimentConfig::parse(MLP, "mlp-best.toml").unwrap();
    let arch = Architecture {
        input: InputShape {
            channels: 1,
            height: 4,
            width: 4,
        },
        classes: 3,
        layers: cfg
            .layers
            .into_iter()
            .map(|l| match l {
                scratch::spec::LayerSpec::Affine { init, .. } => {
                    scratch::spec::LayerSpec::Affine { units: 5, init }
                }
                other => other,
            })
            .collect(),
    };
    let arch = Architecture {
        layers: {
            let mut l = arch.layers;
            if let Some(scratch::spec::LayerSpec::Affine { units, .. }) = l
                .iter_mut()
                .rev()
                .find(|l| matches!(l, scratch::spec::LayerSpec::Affine { .. }))
            {
                *units = 3;
            }
            l
        },
        ..arch
    };
    let net = Network::new(&arch, 3).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    let provenance = Provenance {
        epochs: 1,
        dataset: None,
        classes: vec![],
    };
    weights_file::save(&path, &net, &provenance).unwrap();
    std::fs::read(path).unwrap()
}

fn mutated_bytes(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = valid.len();
    (prop::collection::vec((0..len, any::<u8>()), 0..8), 0..=len).prop_map(move |(flips, keep)| {
        let mut b = valid.clone();
        for (at, v) in flips {
            b[at] = v;
        }
        b.truncate(keep);
        b
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_cnn_configs(text in mutated_text(CNN)) {
        check_config(&text)?;
    }

    #[test]
    fn mutated_mlp_configs(text in mutated_text(MLP)) {
        check_config(&text)?;
    }

    #[test]
    fn mutated_weights_files(bytes in mutated_bytes(weights_bytes())) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        std::fs::write(&path, &bytes).unwrap();
        let (loaded, peak) = peak_during(|| weights_file::load(&path).map(|_| ()));
        prop_assert!(peak <= MAX_PEAK, "{peak} bytes allocated");
        if let Err(e) = loaded {
            prop_assert!(format!("{e:#}").contains("w.safetensors"), "{e:#}");
        }
    }

    /// The architecture in the metadata (JSON inside the header's JSON) rewritten to
    /// claim 10^4 to 10^12 hidden units (31 MB to 3 TB of weights), the tensors left as
    /// they are.
    #[test]
    fn weights_files_claiming_huge_networks_are_refused(units in (4u32..=12).prop_flat_map(|e| 10u64.pow(e)..10u64.pow(e) * 10)) {
        let bytes = weights_bytes();
        let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header = std::str::from_utf8(&bytes[8..8 + header_len]).unwrap();
        let claim = header.replacen(r#"\"units\":5"#, &format!(r#"\"units\":{units}"#), 1);
        prop_assert_ne!(&claim, header, "the first affine layer's units are in the metadata");
        let mut out = (claim.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(claim.as_bytes());
        out.extend_from_slice(&bytes[8 + header_len..]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge.safetensors");
        std::fs::write(&path, &out).unwrap();
        let (loaded, peak) = peak_during(|| weights_file::load(&path).map(|_| ()));
        prop_assert!(peak <= MAX_PEAK, "{units} units: {peak} bytes allocated");
        match loaded {
            Ok(()) => prop_assert!(false, "a network of {units} hidden units was loaded"),
            Err(err) => prop_assert!(format!("{err:#}").contains("huge.safetensors"), "{err:#}"),
        }
    }
}

#[test]
fn the_starting_points_are_valid() {
    for text in [CNN, MLP] {
        ExperimentConfig::parse(text, "x").unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    std::fs::write(&path, weights_bytes()).unwrap();
    weights_file::load(&path).unwrap();
}
