//! Minibatches copied out of the training set on a second thread, one step ahead of the
//! training loop (what a PyTorch `DataLoader` worker does).
//!
//! Copying 100 random MNIST rows is DRAM-bound (~30 µs, a sixth of a TwoLayerNet step);
//! the second core does it while the first trains on the previous batch. The batches and
//! their order are exactly those of a plain loop, so results do not change.

use std::ops::ControlFlow;
use std::sync::mpsc;

use ndarray::Array2;

use crate::data::Samples;

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
    std::thread::scope(|scope| {
        // One batch waits in the channel while the next is gathered: the loader never
        // runs more than two ahead. Used buffers come back to be refilled.
        let (ready, batches) = mpsc::sync_channel::<(Array2<f32>, Vec<u8>)>(1);
        let (recycle, used) = mpsc::channel::<(Array2<f32>, Vec<u8>)>();
        scope.spawn(move || {
            for chunk in order.chunks_exact(batch).take(iterations) {
                let (mut x, mut labels) = used
                    .try_recv()
                    .unwrap_or_else(|_| (Array2::zeros((0, 0)), Vec::new()));
                samples.gather(chunk, &mut x, &mut labels);
                // The receiver is gone once the loop below has stopped early.
                if ready.send((x, labels)).is_err() {
                    break;
                }
            }
        });
        for i in 0..iterations {
            let (mut x, labels) = batches.recv().expect("the loader sends every batch");
            step(i, &mut x, &labels)?;
            // The loader may have finished (last batches): then the buffer is dropped.
            let _ = recycle.send((x, labels));
        }
        ControlFlow::Continue(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_arrive_in_order_and_stop_early() {
        let samples = Samples {
            x: Array2::from_shape_fn((10, 3), |(i, j)| (i * 3 + j) as f32),
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
