//! How good are a generator's digits? Scores from a trained MNIST classifier (B1):
//!
//! - the mean of the classifier's largest class probability (near 1: it is sure each
//!   image is some digit);
//! - the histogram of predicted digits and its entropy (log2 10 ≈ 3.32 bits when every
//!   digit is equally common: no mode collapse);
//! - the Fréchet distance between Gaussians fitted to the classifier's penultimate-layer
//!   features of generated and of real images (as FID does with Inception features):
//!   ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁ Σ₂)^½). Lower is better; 0 for identical statistics.

use anyhow::{Result, bail};
use burn::tensor::{Device, Tensor, TensorData};
use dataset::LabelledImages;
use ndarray::{Array1, Array2, Axis};

use super::model::{Generator, noise};
use crate::model::Sequential;

/// Where the scored images come from.
pub enum Source {
    /// An inference copy of a generator and its latent size.
    Generator(Box<Generator>, usize),
    /// Ready-made images in [-1, 1], and their shape.
    Images(Vec<f32>, [usize; 3]),
}

impl Source {
    fn available(&self, wanted: usize) -> usize {
        match self {
            Source::Generator(..) => wanted,
            Source::Images(v, shape) => wanted.min(v.len() / shape.iter().product::<usize>()),
        }
    }

    /// Images `start..start + n` in [-1, 1].
    fn chunk(&self, start: usize, n: usize, seed: u64, device: &Device) -> Tensor<4> {
        match self {
            Source::Generator(g, latent) => g.forward(noise(
                n,
                *latent,
                seed.wrapping_add(start as u64 * 7_919),
                device,
            )),
            Source::Images(values, [c, h, w]) => {
                let per = c * h * w;
                let data = values[start * per..(start + n) * per].to_vec();
                Tensor::from_data(TensorData::new(data, [n, *c, *h, *w]), device)
            }
        }
    }
}

/// Classifier outputs and penultimate features of `images` (n, C, H, W) in [0, 1].
fn classify(classifier: &Sequential, images: Tensor<4>) -> Result<(Vec<f32>, Array2<f32>)> {
    let probs = classifier.forward(images.clone());
    let features = classifier.penultimate(images);
    let [n, d] = features.dims();
    let features = Array2::from_shape_vec(
        (n, d),
        features
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?,
    )?;
    let probs = probs
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok((probs, features))
}

/// The scores of [`score`].
#[derive(Debug, Clone)]
pub struct GanScore {
    /// Images scored.
    pub count: usize,
    pub mean_max_probability: f64,
    /// Images per predicted digit.
    pub digit_counts: Vec<usize>,
    /// Fréchet distance of the generated images' features to the real ones'.
    pub frechet_distance: f64,
    /// Real images the distance was measured against.
    pub real_images: usize,
}

impl GanScore {
    /// The report `gan-score` prints.
    pub fn report(&self) -> String {
        let count = self.count as f64;
        let digits = self
            .digit_counts
            .iter()
            .enumerate()
            .map(|(d, &c)| format!("{d}: {:.2}%", 100.0 * c as f64 / count))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "GAN score over {} generated images (classifier's view):\n  \
             mean max class probability: {:.4}\n  \
             predicted digits: {digits}\n  \
             entropy of the digit histogram: {:.3} bits (uniform: {:.3})\n  \
             Fréchet distance to the {} MNIST test images (penultimate-layer features): {:.3}\n",
            self.count,
            self.mean_max_probability,
            entropy_bits(&self.digit_counts),
            (self.digit_counts.len() as f64).log2(),
            self.real_images,
            self.frechet_distance
        )
    }
}

/// Scores `count` images from `source` with an MNIST `classifier`, against the `real`
/// images (the MNIST test set).
pub fn score(
    source: &Source,
    classifier: &Sequential,
    real: &LabelledImages,
    count: usize,
    seed: u64,
    device: &Device,
) -> Result<GanScore> {
    const CHUNK: usize = 500;
    let count = source.available(count);
    if count == 0 {
        bail!("no images to score");
    }
    let classes = 10;
    let (mut counts, mut max_sum) = (vec![0usize; classes], 0.0f64);
    let mut gen_features = Vec::new();
    for start in (0..count).step_by(CHUNK) {
        let n = CHUNK.min(count - start);
        // The generator's [-1, 1] to the classifier's [0, 1].
        let images = (source.chunk(start, n, seed, device) + 1.0) / 2.0;
        let (probs, features) = classify(classifier, images)?;
        let width = probs.len() / n;
        for row in probs.chunks(width) {
            let (best, p) = row
                .iter()
                .enumerate()
                .fold((0, f32::MIN), |b, (i, &p)| if p > b.1 { (i, p) } else { b });
            counts[best.min(classes - 1)] += 1;
            max_sum += p as f64;
        }
        gen_features.push(features);
    }
    let mut real_features = Vec::new();
    for start in (0..real.len()).step_by(CHUNK) {
        let n = CHUNK.min(real.len() - start);
        let px: Vec<f32> = (start..start + n)
            .flat_map(|i| real.image(i).iter().map(|&p| p as f32 / 255.0))
            .collect();
        let s = real.shape;
        let images = Tensor::<4>::from_data(
            TensorData::new(px, [n, s.channels, s.height, s.width]),
            device,
        );
        real_features.push(classify(classifier, images)?.1);
    }
    let stack = |parts: Vec<Array2<f32>>| -> Result<Array2<f32>> {
        let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
        Ok(ndarray::concatenate(ndarray::Axis(0), &views)?)
    };
    let frechet_distance = frechet_distance(
        &mean_and_covariance(&stack(gen_features)?),
        &mean_and_covariance(&stack(real_features)?),
    );
    Ok(GanScore {
        count,
        mean_max_probability: max_sum / count as f64,
        digit_counts: counts,
        frechet_distance,
        real_images: real.len(),
    })
}

/// Per-image feature rows → mean and covariance (divided by n − 1), in f64.
pub fn mean_and_covariance(features: &Array2<f32>) -> (Array1<f64>, Array2<f64>) {
    let x = features.mapv(f64::from);
    let n = x.nrows().max(2) as f64;
    let mean = x.mean_axis(Axis(0)).expect("at least one row");
    let centred = &x - &mean;
    let cov = centred.t().dot(&centred) / (n - 1.0);
    (mean, cov)
}

/// Eigenvalues and eigenvectors (columns) of a symmetric matrix, by cyclic Jacobi
/// rotations: small (128 × 128) and exact enough for a score.
pub fn symmetric_eigen(a: &Array2<f64>) -> (Array1<f64>, Array2<f64>) {
    let n = a.nrows();
    let mut a = a.clone();
    let mut v = Array2::<f64>::eye(n);
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[[i, j]] * a[[i, j]])
            .sum();
        let scale: f64 = a.iter().map(|x| x * x).sum::<f64>().max(1e-300);
        if off <= 1e-22 * scale {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[[p, q]];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[[q, q]] - a[[p, p]]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[[k, p]], a[[k, q]]);
                    a[[k, p]] = c * akp - s * akq;
                    a[[k, q]] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[[p, k]], a[[q, k]]);
                    a[[p, k]] = c * apk - s * aqk;
                    a[[q, k]] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[[k, p]], v[[k, q]]);
                    v[[k, p]] = c * vkp - s * vkq;
                    v[[k, q]] = s * vkp + c * vkq;
                }
            }
        }
    }
    (a.diag().to_owned(), v)
}

/// Fréchet distance between N(μ₁, Σ₁) and N(μ₂, Σ₂). Tr((Σ₁Σ₂)^½) is computed as
/// Tr((S Σ₂ S)^½) with S = Σ₁^½, a symmetric matrix whose eigenvalues are real.
pub fn frechet_distance(
    (mu1, s1): &(Array1<f64>, Array2<f64>),
    (mu2, s2): &(Array1<f64>, Array2<f64>),
) -> f64 {
    let diff = mu1 - mu2;
    let (l1, v1) = symmetric_eigen(s1);
    let sqrt_s1 = v1
        .dot(&Array2::from_diag(&l1.mapv(|l| l.max(0.0).sqrt())))
        .dot(&v1.t());
    let m = sqrt_s1.dot(s2).dot(&sqrt_s1);
    let m = (&m + &m.t()) / 2.0; // symmetric up to rounding
    let (lm, _) = symmetric_eigen(&m);
    let tr_sqrt: f64 = lm.iter().map(|l| l.max(0.0).sqrt()).sum();
    diff.dot(&diff) + s1.diag().sum() + s2.diag().sum() - 2.0 * tr_sqrt
}

/// Entropy in bits of a histogram of counts.
pub fn entropy_bits(counts: &[usize]) -> f64 {
    let total: usize = counts.iter().sum();
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / total as f64;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn eigen_decomposition_reconstructs_the_matrix() {
        let a = array![[4.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.5, 0.2, 1.0]];
        let (l, v) = symmetric_eigen(&a);
        let back = v.dot(&Array2::from_diag(&l)).dot(&v.t());
        assert!((&back - &a).iter().all(|d| d.abs() < 1e-9), "{back}");
        assert!((l.sum() - 8.0).abs() < 1e-9);
    }

    #[test]
    fn frechet_distance_of_known_gaussians() {
        // Diagonal covariances: Σ (μ₁ − μ₂)² + Σ (σ₁ − σ₂)².
        let a = (array![0.0, 1.0], array![[1.0, 0.0], [0.0, 4.0]]);
        let b = (array![1.0, 1.0], array![[4.0, 0.0], [0.0, 9.0]]);
        let fd = frechet_distance(&a, &b);
        assert!((fd - (1.0 + 1.0 + 1.0)).abs() < 1e-9, "{fd}");
        assert!(frechet_distance(&a, &a).abs() < 1e-9);
        // A rotated (non-diagonal) copy of the same Gaussian is still at distance 0.
        let r = array![[0.6, -0.8], [0.8, 0.6]];
        let rotated = (r.dot(&a.0), r.dot(&a.1).dot(&r.t()));
        assert!(frechet_distance(&rotated, &rotated).abs() < 1e-9);
    }

    #[test]
    fn sample_statistics_and_entropy() {
        let x = array![[1.0f32, 2.0], [3.0, 2.0], [5.0, 2.0]];
        let (mean, cov) = mean_and_covariance(&x);
        assert_eq!(mean, array![3.0, 2.0]);
        assert_eq!(cov, array![[4.0, 0.0], [0.0, 0.0]]);
        assert!((entropy_bits(&[5; 10]) - 10f64.log2()).abs() < 1e-12);
        assert_eq!(entropy_bits(&[7, 0, 0]), 0.0);
    }
}
