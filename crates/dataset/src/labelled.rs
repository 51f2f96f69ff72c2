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

    /// The images in an order drawn from `seed` (the same for the same seed). Image
    /// folders list one class after another, so their first `n` images are all of one
    /// class; shuffled once, any prefix is a fair sample.
    pub fn shuffled(self, seed: u64) -> Self {
        use rand::SeedableRng;
        use rand::seq::SliceRandom;
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
        let mut pixels = Vec::with_capacity(self.pixels.len());
        for &i in &order {
            pixels.extend_from_slice(self.image(i));
        }
        let labels = order.iter().map(|&i| self.labels[i]).collect();
        Self {
            pixels,
            labels,
            ..self
        }
    }

    /// The first `n` images (or all, if fewer).
    pub fn truncate(mut self, n: usize) -> Self {
        let n = n.min(self.len());
        self.pixels.truncate(n * self.shape.len());
        self.labels.truncate(n);
        self
    }

    /// The first `limit` images if a limit is given (`--train-limit`, `--test-limit`).
    pub fn limited(self, limit: Option<usize>) -> Self {
        match limit {
            Some(n) => self.truncate(n),
            None => self,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffling_keeps_each_image_with_its_label() {
        let images = LabelledImages {
            pixels: (0..20).collect(),
            labels: (0..10).collect(),
            shape: ImageShape {
                channels: 1,
                height: 1,
                width: 2,
            },
            classes: (0..10).map(|c| c.to_string()).collect(),
        };
        let a = images.clone().shuffled(3);
        assert_ne!(a.labels, images.labels);
        for i in 0..10 {
            let l = a.labels[i];
            assert_eq!(a.image(i), [2 * l, 2 * l + 1]);
        }
        assert_eq!(a.labels, images.shuffled(3).labels);
    }
}

/// A training and a test split.
#[derive(Debug, Clone)]
pub struct Split {
    pub train: LabelledImages,
    pub test: LabelledImages,
}
