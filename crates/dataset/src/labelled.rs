//! The in-memory form every small data set (MNIST, Fashion-MNIST, CIFAR-10) is loaded into.

/// Channels, height and width of one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageShape {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl ImageShape {
    pub fn len(&self) -> usize {
        self.channels * self.height * self.width
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `n` images of one shape as raw `u8` pixels, planar (C, H, W) per image, and one label each.
#[derive(Debug, Clone)]
pub struct LabelledImages {
    /// (n, C, H, W), row-major.
    pub pixels: Vec<u8>,
    /// (n,), values `0..classes.len()`.
    pub labels: Vec<u8>,
    pub shape: ImageShape,
    pub classes: Vec<String>,
}

impl LabelledImages {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The pixels of image `i`, (C, H, W).
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.shape.len();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// How many images each class has.
    pub fn class_histogram(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }

    /// Mean pixel value over all images, in 0..255.
    pub fn pixel_mean(&self) -> f64 {
        let sum: u64 = self.pixels.iter().map(|&p| p as u64).sum();
        sum as f64 / self.pixels.len().max(1) as f64
    }

    /// The first `n` images (or all, if fewer).
    pub fn truncate(mut self, n: usize) -> Self {
        let n = n.min(self.len());
        self.pixels.truncate(n * self.shape.len());
        self.labels.truncate(n);
        self
    }
}

/// A training and a test split.
#[derive(Debug, Clone)]
pub struct Split {
    pub train: LabelledImages,
    pub test: LabelledImages,
}
