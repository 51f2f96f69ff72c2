//! The dataset crate's in-memory images (MNIST, CIFAR-10) as burn datasets and batches.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::{Dataset, DatasetError};
use burn::tensor::{Device, Int, Tensor, TensorData};
use dataset::augment::Augmentation;
use dataset::{ImageFolder, ImageShape, LabelledImages};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// One image: u8 pixels (C, H, W) and its class.
#[derive(Debug, Clone)]
pub struct ImageItem {
    pub pixels: Vec<u8>,
    pub label: usize,
}

/// A burn `Dataset` over images held in memory; cloning shares them.
#[derive(Debug, Clone)]
pub struct InMemoryImages {
    images: Arc<LabelledImages>,
}

impl InMemoryImages {
    pub fn new(images: LabelledImages) -> Self {
        Self {
            images: Arc::new(images),
        }
    }

    pub fn shape(&self) -> ImageShape {
        self.images.shape
    }

    pub fn classes(&self) -> &[String] {
        &self.images.classes
    }
}

impl Dataset<ImageItem> for InMemoryImages {
    fn get(&self, index: usize) -> Result<ImageItem, DatasetError> {
        Ok(ImageItem {
            pixels: self.images.image(index).to_vec(),
            label: self.images.labels[index] as usize,
        })
    }

    fn len(&self) -> usize {
        self.images.len()
    }
}

/// A burn `Dataset` over an image folder: only paths are held; each `get` decodes,
/// resizes and converts one file (burn's loader workers run these in parallel), so the
/// images are never all in memory.
#[derive(Debug, Clone)]
pub struct FolderImages {
    folder: ImageFolder,
}

impl FolderImages {
    pub fn new(folder: ImageFolder) -> Self {
        Self { folder }
    }

    pub fn folder(&self) -> &ImageFolder {
        &self.folder
    }
}

impl Dataset<ImageItem> for FolderImages {
    fn get(&self, index: usize) -> Result<ImageItem, DatasetError> {
        let (pixels, _) = self.folder.decode(index).map_err(DatasetError::new)?;
        Ok(ImageItem {
            pixels,
            label: self.folder.items()[index].class,
        })
    }

    fn len(&self) -> usize {
        self.folder.len()
    }
}

/// Training images through random augmentation (identity when none is set). Each `get`
/// draws from its own generator, seeded by the run's seed, the index and how many times
/// that index was drawn before, so every epoch sees different variants, and the same ones
/// whatever the order in which loader workers ask for them.
pub struct AugmentedImages<D> {
    inner: D,
    shape: ImageShape,
    augmentation: Augmentation,
    seed: u64,
    visits: Vec<AtomicU64>,
}

impl<D: Dataset<ImageItem>> AugmentedImages<D> {
    pub fn new(inner: D, shape: ImageShape, augmentation: Augmentation, seed: u64) -> Self {
        Self {
            visits: (0..inner.len()).map(|_| AtomicU64::new(0)).collect(),
            inner,
            shape,
            augmentation,
            seed,
        }
    }
}

impl<D: Dataset<ImageItem>> Dataset<ImageItem> for AugmentedImages<D> {
    fn get(&self, index: usize) -> Result<ImageItem, DatasetError> {
        let mut item = self.inner.get(index)?;
        if !self.augmentation.is_identity() {
            let call = self.visits[index].fetch_add(1, Ordering::Relaxed);
            let mut rng = StdRng::seed_from_u64(
                self.seed
                    ^ (index as u64).rotate_left(32)
                    ^ call.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            );
            item.pixels = self.augmentation.apply(&item.pixels, self.shape, &mut rng);
        }
        Ok(item)
    }

    fn len(&self) -> usize {
        self.inner.len()
    }
}

/// Images as a float tensor and their classes as an int tensor.
#[derive(Debug, Clone)]
pub struct ImageBatch {
    /// (batch, C, H, W)
    pub images: Tensor<4>,
    /// (batch,)
    pub targets: Tensor<1, Int>,
    /// (batch,): each image's weight in the loss (`class_weight`); `None`: all 1.
    pub weights: Option<Tensor<1>>,
}

/// The training batches of a `fit`: [`ImageBatcher`]'s, each image weighted by its class
/// when `class_weight` is set.
#[derive(Debug, Clone)]
pub struct WeightedBatcher {
    pub inner: ImageBatcher,
    /// One per class; `None`: unweighted batches.
    pub class_weights: Option<Vec<f32>>,
}

impl Batcher<ImageItem, ImageBatch> for WeightedBatcher {
    fn batch(&self, items: Vec<ImageItem>, device: &Device) -> ImageBatch {
        let Some(class_weights) = &self.class_weights else {
            return self.inner.batch(items, device);
        };
        let weights: Vec<f32> = items
            .iter()
            .map(|item| class_weights.get(item.label).copied().unwrap_or(1.0))
            .collect();
        let n = weights.len();
        let batch = self.inner.batch(items, device);
        ImageBatch {
            weights: Some(Tensor::from_data(TensorData::new(weights, [n]), device)),
            ..batch
        }
    }
}

/// Stacks items into a batch, mapping each pixel p to `p · scale + offset`:
/// [0, 1] for classifiers (Keras's `rescale=1/255`), [-1, 1] for the DCGAN.
#[derive(Debug, Clone, Copy)]
pub struct ImageBatcher {
    pub shape: ImageShape,
    pub scale: f32,
    pub offset: f32,
}

impl ImageBatcher {
    /// Pixels to [0, 1].
    pub fn unit(shape: ImageShape) -> Self {
        Self {
            shape,
            scale: 1.0 / 255.0,
            offset: 0.0,
        }
    }

    /// Pixels to [-1, 1], matching a tanh output.
    pub fn symmetric(shape: ImageShape) -> Self {
        Self {
            shape,
            scale: 2.0 / 255.0,
            offset: -1.0,
        }
    }
}

impl Batcher<ImageItem, ImageBatch> for ImageBatcher {
    fn batch(&self, items: Vec<ImageItem>, device: &Device) -> ImageBatch {
        let n = items.len();
        let ImageShape {
            channels,
            height,
            width,
        } = self.shape;
        let pixels: Vec<f32> = items
            .iter()
            .flat_map(|item| {
                item.pixels
                    .iter()
                    .map(|&p| p as f32 * self.scale + self.offset)
            })
            .collect();
        let labels: Vec<i64> = items.iter().map(|item| item.label as i64).collect();
        ImageBatch {
            images: Tensor::from_data(
                TensorData::new(pixels, [n, channels, height, width]),
                device,
            ),
            targets: Tensor::from_data(TensorData::new(labels, [n]), device),
            weights: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataset::synthetic;

    #[test]
    fn batches_have_nchw_images_in_range_and_their_labels() {
        let shape = ImageShape {
            channels: 1,
            height: 28,
            width: 28,
        };
        let images = InMemoryImages::new(synthetic::bars(5, shape, 10, 1));
        assert_eq!(images.len(), 5);
        let items: Vec<ImageItem> = (0..3).map(|i| images.get(i).unwrap()).collect();
        let device = Device::flex();
        for (batcher, lo, hi) in [
            (ImageBatcher::unit(shape), 0.0, 1.0),
            (ImageBatcher::symmetric(shape), -1.0, 1.0),
        ] {
            let batch = batcher.batch(items.clone(), &device);
            assert_eq!(batch.images.dims(), [3, 1, 28, 28]);
            let values = batch.images.into_data().try_to_vec::<f32>().unwrap();
            assert!(values.iter().all(|&v| (lo..=hi).contains(&v)));
            assert!(
                values.iter().any(|&v| v > hi - 0.25),
                "bright bars survive scaling"
            );
            let targets: Vec<i64> = batch.targets.into_data().iter::<i64>().collect();
            assert_eq!(targets, [0, 1, 2]);
        }
    }

    #[test]
    fn folder_images_decode_on_demand_and_augmentation_varies_per_call() {
        let dir = tempfile::tempdir().unwrap();
        dataset::synthetic::write_image_folder(dir.path(), &["a", "b"], 3, (10, 8), 4).unwrap();
        let folder = ImageFolder::open(
            dir.path(),
            dataset::FolderOptions {
                target_size: Some((8, 10)),
                ..Default::default()
            },
        )
        .unwrap();
        let images = FolderImages::new(folder);
        assert_eq!(images.len(), 6);
        let item = images.get(4).unwrap();
        assert_eq!(item.pixels.len(), 3 * 8 * 10);
        assert_eq!(item.label, 1);

        let shape = ImageShape {
            channels: 3,
            height: 8,
            width: 10,
        };
        let plain = AugmentedImages::new(images.clone(), shape, Augmentation::default(), 1);
        assert_eq!(plain.get(4).unwrap().pixels, item.pixels);
        let augmented = AugmentedImages::new(images, shape, Augmentation::mild(), 1);
        let variants: std::collections::HashSet<Vec<u8>> =
            (0..8).map(|_| augmented.get(4).unwrap().pixels).collect();
        assert!(variants.len() > 1, "eight draws gave one variant");
    }
}
