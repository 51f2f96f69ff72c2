//! Minibatches out of the training set, one step at a time.
//!
//! A network whose first layer skips zero inputs (an MLP on MNIST) gets the batch as the
//! training set's own rows of bytes and lists their non-zeros straight from them: no
//! float copy of the batch is written and read back (measured: epochs ~12% shorter).
//! Otherwise the two threads of the [`team`] copy the batch, each its half of the columns (cut
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
use crate::kernels::team;

/// One minibatch as the step receives it.
pub enum Minibatch<'a, 'b> {
    /// Copied into floats (x = byte / 255), which the step may change (augmentation).
    Floats(&'b mut Array2<f32>),
    /// The training set's own rows of bytes, not copied: for a network whose first layer
    /// reads them directly ([`crate::network::Network::gradient_of_bytes`]).
    Bytes(&'b [&'a [u8]]),
}

/// Calls `step(i, batch, labels)` for minibatch i = `order[i·batch .. (i+1)·batch]`, i in
/// 0..iterations, in order, until it breaks. With `as_bytes` (and samples that have
/// bytes) the batch comes as [`Minibatch::Bytes`], else as [`Minibatch::Floats`].
pub fn for_each_batch<'a, B>(
    samples: &'a Samples,
    order: &[usize],
    batch: usize,
    iterations: usize,
    as_bytes: bool,
    mut step: impl FnMut(usize, Minibatch<'a, '_>, &[u8]) -> ControlFlow<B>,
) -> ControlFlow<B> {
    assert!(
        iterations * batch <= order.len(),
        "not enough samples for the batches"
    );
    let bytes = samples.bytes().filter(|_| as_bytes);
    let features = samples.x().ncols();
    let mut x = match bytes {
        Some(_) => Array2::zeros((0, 0)),
        None => Array2::zeros((batch, features)),
    };
    let mut rows: Vec<&[u8]> = Vec::with_capacity(batch);
    let mut labels = Vec::with_capacity(batch);
    let batches: Vec<&[usize]> = order.chunks_exact(batch).take(iterations).collect();
    let middle = team::split_point(features, 16);
    for (i, chunk) in batches.iter().enumerate() {
        if bytes.is_none() {
            let (left, right) = x.view_mut().split_at(Axis(1), middle);
            let parts = [Mutex::new(left), Mutex::new(right)];
            team::split(&|part| {
                let columns = [0..middle, middle..features][part].clone();
                let mut x_part = parts[part].lock().expect("each part locks once");
                samples.copy_rows(chunk, columns, x_part.view_mut());
            });
        }
        let next = batches.get(i + 1).copied().unwrap_or_default();
        team::prefetch_when_idle(next.iter().map(|&j| samples.source_row(j)));
        labels.clear();
        labels.extend(chunk.iter().map(|&j| samples.labels[j]));
        let minibatch = match bytes {
            Some(bytes) => {
                rows.clear();
                rows.extend(
                    chunk
                        .iter()
                        .map(|&j| bytes.row(j).to_slice().expect("row-major")),
                );
                Minibatch::Bytes(&rows)
            }
            None => Minibatch::Floats(&mut x),
        };
        step(i, minibatch, &labels)?;
    }
    ControlFlow::Continue(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_arrive_in_order_and_stop_early() {
        let samples = Samples::from_floats(
            Array2::from_shape_fn((10, 3), |(i, j)| (i * 3 + j) as f32),
            (0..10).collect(),
            dataset::ImageShape {
                height: 1,
                width: 3,
                channels: 1,
            },
            (0..10).map(|c| c.to_string()).collect(),
        );
        let order = [9, 1, 8, 2, 7, 3, 6, 4, 5, 0];
        let mut seen = Vec::new();
        let flow = for_each_batch(&samples, &order, 3, 3, true, |i, batch, labels| {
            // No bytes in these samples: floats even when bytes are asked for.
            let Minibatch::Floats(x) = batch else {
                panic!("floats expected")
            };
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
        let flow: ControlFlow<()> =
            for_each_batch(&samples, &order, 3, 3, false, |_, _, labels| {
                all.extend_from_slice(labels);
                ControlFlow::Continue(())
            });
        assert_eq!(flow, ControlFlow::Continue(()));
        assert_eq!(all, [9, 1, 8, 2, 7, 3, 6, 4, 5]);
    }

    #[test]
    fn byte_batches_are_the_rows_the_float_batches_copy() {
        let bytes = Array2::from_shape_fn((6, 4), |(i, j)| (i * 40 + j * 7) as u8);
        let samples = Samples::from_bytes(
            bytes.clone(),
            (0..6).collect(),
            dataset::ImageShape {
                height: 2,
                width: 2,
                channels: 1,
            },
            (0..6).map(|c| c.to_string()).collect(),
        );
        let order = [4, 0, 5, 1, 3, 2];
        let (mut floats, mut byte_rows) = (Vec::new(), Vec::new());
        let _: ControlFlow<()> = for_each_batch(&samples, &order, 2, 3, false, |_, batch, _| {
            let Minibatch::Floats(x) = batch else {
                panic!("floats asked for")
            };
            floats.extend(x.iter().copied());
            ControlFlow::Continue(())
        });
        let _: ControlFlow<()> =
            for_each_batch(&samples, &order, 2, 3, true, |_, batch, labels| {
                let Minibatch::Bytes(rows) = batch else {
                    panic!("bytes asked for")
                };
                for (row, &label) in rows.iter().zip(labels) {
                    assert_eq!(*row, bytes.row(label as usize).to_slice().unwrap());
                }
                byte_rows.extend(
                    rows.iter()
                        .flat_map(|r| r.iter().map(|&b| crate::data::to_unit(b))),
                );
                ControlFlow::Continue(())
            });
        assert_eq!(floats.len(), 24);
        assert_eq!(floats, byte_rows);
    }
}
