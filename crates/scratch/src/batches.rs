//! Minibatches copied out of the training set, one step at a time.
//!
//! The two threads of the [`team`] copy the batch, each its half of the columns (cut
//! where the first layer's kernels cut them, so the copy lands in the cache of the core
//! that reads it next). Copying random rows from DRAM is latency-bound, so the team's
//! worker prefetches the next batch's rows while it waits during the step.
//! (A loader thread one batch ahead, used before, needs the second core while the
//! team's worker spins on it, and each hand-off through a channel cost a futex wake-up
//! of ~10 µs.)

use std::ops::ControlFlow;
use std::sync::Mutex;

use ndarray::{Array2, Axis};

use crate::data::Samples;
use crate::team;

/// Calls `step(i, x, labels)` for minibatch i = `order[i·batch .. (i+1)·batch]`, i in
/// 0..iterations, in order, until it breaks.
pub fn for_each_batch<B>(
    samples: &Samples,
    order: &[usize],
    batch: usize,
    iterations: usize,
    mut step: impl FnMut(usize, &mut Array2<f32>, &[u8]) -> ControlFlow<B>,
) -> ControlFlow<B> {
    assert!(
        iterations * batch <= order.len(),
        "not enough samples for the batches"
    );
    let mut x = Array2::zeros((batch, samples.x.ncols()));
    let mut labels = Vec::with_capacity(batch);
    let batches: Vec<&[usize]> = order.chunks_exact(batch).take(iterations).collect();
    let features = samples.x.ncols();
    let middle = team::split_point(features, 16);
    for (i, chunk) in batches.iter().enumerate() {
        let next = batches.get(i + 1).copied().unwrap_or_default();
        {
            let (left, right) = x.view_mut().split_at(Axis(1), middle);
            let parts = [Mutex::new(left), Mutex::new(right)];
            team::split(&|part| {
                let columns = [0..middle, middle..features][part].clone();
                let mut x_part = parts[part].lock().expect("each part locks once");
                samples.copy_rows(chunk, columns, x_part.view_mut());
            });
        }
        team::prefetch_when_idle(next.iter().map(|&j| samples.source_row(j)));
        labels.clear();
        labels.extend(chunk.iter().map(|&j| samples.labels[j]));
        step(i, &mut x, &labels)?;
    }
    ControlFlow::Continue(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_arrive_in_order_and_stop_early() {
        let samples = Samples {
            x: Array2::from_shape_fn((10, 3), |(i, j)| (i * 3 + j) as f32),
            bytes: None,
            labels: (0..10).collect(),
            shape: dataset::ImageShape {
                height: 1,
                width: 3,
                channels: 1,
            },
            classes: (0..10).map(|c| c.to_string()).collect(),
        };
        let order = [9, 1, 8, 2, 7, 3, 6, 4, 5, 0];
        let mut seen = Vec::new();
        let flow = for_each_batch(&samples, &order, 3, 3, |i, x, labels| {
            assert_eq!(x.dim(), (3, 3));
            assert_eq!(
                x.column(0).to_vec(),
                labels.iter().map(|&l| l as f32 * 3.0).collect::<Vec<_>>()
            );
            seen.extend_from_slice(labels);
            if i == 1 {
                ControlFlow::Break(i)
            } else {
                ControlFlow::Continue(())
            }
        });
        assert_eq!(flow, ControlFlow::Break(1));
        assert_eq!(seen, [9, 1, 8, 2, 7, 3]);
        let mut all = Vec::new();
        let flow: ControlFlow<()> = for_each_batch(&samples, &order, 3, 3, |_, _, labels| {
            all.extend_from_slice(labels);
            ControlFlow::Continue(())
        });
        assert_eq!(flow, ControlFlow::Continue(()));
        assert_eq!(all, [9, 1, 8, 2, 7, 3, 6, 4, 5]);
    }
}
