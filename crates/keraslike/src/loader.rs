//! A data loader whose batches come in one fixed order whatever the number of workers,
//! so a seeded run repeats exactly: each pass shuffles the whole data set with the seed
//! and the pass number (as Keras reshuffles every epoch), cuts it into batches, and
//! worker w builds batches w, w + W, w + 2W, … while the training loop takes them in
//! order. burn's multi-threaded loader instead hands batches out as they are ready and
//! gives each worker a fixed part of the data, so the order changes from run to run and
//! with the number of workers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataloader::{DataLoader, DataLoaderIterator, Progress};
use burn::data::dataset::transform::PartialDataset;
use burn::data::dataset::{Dataset, DatasetError};
use burn::tensor::Device;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

/// Batches each worker keeps ready ahead of the training loop.
const AHEAD: usize = 2;

pub struct OrderedLoader<I, O> {
    dataset: Arc<dyn Dataset<I>>,
    batcher: Arc<dyn Batcher<I, O>>,
    batch_size: usize,
    workers: usize,
    device: Device,
    /// `None`: the data set's own order every pass.
    shuffle: Option<u64>,
    /// Passes started so far: pass p shuffles with `seed + p`.
    passes: Arc<AtomicU64>,
    /// Items per pass when not the whole data set: drawn from an endless cycle of
    /// reshuffled passes over it, each pass going on where the last stopped (Keras's
    /// generator with `steps_per_epoch`).
    per_pass: Option<usize>,
    cycle: Arc<Mutex<Cycle>>,
}

/// Where the cycle of [`OrderedLoader::per_pass`] stands.
#[derive(Default)]
struct Cycle {
    order: Vec<usize>,
    at: usize,
    rounds: u64,
}

impl<I, O> OrderedLoader<I, O>
where
    I: Clone + Send + Sync + 'static,
    O: Send + 'static,
{
    pub fn new<D, B>(
        dataset: D,
        batcher: B,
        batch_size: usize,
        workers: usize,
        shuffle: Option<u64>,
    ) -> Self
    where
        D: Dataset<I> + 'static,
        B: Batcher<I, O> + 'static,
    {
        Self {
            dataset: Arc::new(dataset),
            batcher: Arc::new(batcher),
            batch_size: batch_size.max(1),
            workers: workers.max(1),
            device: Device::default(),
            shuffle,
            passes: Arc::new(AtomicU64::new(0)),
            per_pass: None,
            cycle: Arc::default(),
        }
    }

    /// Each pass `items` items from a cycle through the data set instead of one whole pass.
    pub fn per_pass(mut self, items: Option<usize>) -> Self {
        self.per_pass = items;
        self
    }

    /// The same settings over `dataset`; `cycle` is this loader's (the same data) or a
    /// fresh one (other data: the cycle holds indices into this loader's).
    fn with(&self, dataset: Arc<dyn Dataset<I>>, device: Device, cycle: Arc<Mutex<Cycle>>) -> Self {
        Self {
            dataset,
            batcher: Arc::clone(&self.batcher),
            batch_size: self.batch_size,
            workers: self.workers,
            device,
            shuffle: self.shuffle,
            passes: Arc::clone(&self.passes),
            per_pass: self.per_pass,
            cycle,
        }
    }

    /// The batches of the next pass, as lists of item indices.
    fn next_pass(&self) -> Vec<Vec<usize>> {
        let n = self.dataset.len();
        let shuffled = |round: u64| {
            let mut order: Vec<usize> = (0..n).collect();
            if let Some(seed) = self.shuffle {
                order.shuffle(&mut StdRng::seed_from_u64(seed.wrapping_add(round)));
            }
            order
        };
        let order = match self.per_pass {
            None => shuffled(self.passes.fetch_add(1, Ordering::Relaxed)),
            Some(_) if n == 0 => Vec::new(),
            Some(items) => {
                let mut cycle = self.cycle.lock().expect("no panic while held");
                let mut picked = Vec::with_capacity(items);
                while picked.len() < items {
                    if cycle.at == cycle.order.len() {
                        cycle.order = shuffled(cycle.rounds);
                        cycle.rounds += 1;
                        cycle.at = 0;
                    }
                    let take = (items - picked.len()).min(cycle.order.len() - cycle.at);
                    picked.extend_from_slice(&cycle.order[cycle.at..cycle.at + take]);
                    cycle.at += take;
                }
                picked
            }
        };
        order
            .chunks(self.batch_size)
            .map(<[usize]>::to_vec)
            .collect()
    }
}

/// One pass: the workers' channels, read in turn.
struct OrderedPass<O> {
    receivers: Vec<Receiver<Result<O, DatasetError>>>,
    batch_sizes: Vec<usize>,
    next: usize,
    items_done: usize,
    items_total: usize,
}

impl<O> Iterator for OrderedPass<O> {
    type Item = Result<O, DatasetError>;

    fn next(&mut self) -> Option<Self::Item> {
        let size = *self.batch_sizes.get(self.next)?;
        let received = self.receivers[self.next % self.receivers.len()].recv();
        self.next += 1;
        match received {
            Ok(Ok(batch)) => {
                self.items_done += size;
                Some(Ok(batch))
            }
            // A failed batch ends the pass (its worker has stopped).
            Ok(Err(e)) => {
                self.batch_sizes.truncate(self.next);
                Some(Err(e))
            }
            // The worker is gone before its last batch (it panicked): an error, not a
            // pass that silently ends early.
            Err(_) => {
                self.batch_sizes.truncate(self.next);
                Some(Err(DatasetError::new(std::io::Error::other(
                    "a worker preparing batches stopped before its last batch",
                ))))
            }
        }
    }
}

impl<O> DataLoaderIterator<O> for OrderedPass<O> {
    fn progress(&self) -> Progress {
        Progress::new(self.items_done, self.items_total, Some("items".into()))
    }
}

impl<I, O> DataLoader<O> for OrderedLoader<I, O>
where
    I: Clone + Send + Sync + 'static,
    O: Send + 'static,
{
    fn iter<'a>(&'a self) -> Box<dyn DataLoaderIterator<O> + 'a> {
        let batches = Arc::new(self.next_pass());
        let workers = self.workers.min(batches.len()).max(1);
        let mut receivers = Vec::with_capacity(workers);
        for w in 0..workers {
            let (sender, receiver) = sync_channel(AHEAD);
            let (dataset, batcher) = (Arc::clone(&self.dataset), Arc::clone(&self.batcher));
            let (batches, device) = (Arc::clone(&batches), self.device.clone());
            // A worker stops at the end of its batches or when the pass is dropped.
            thread::spawn(move || {
                for indices in batches.iter().skip(w).step_by(workers) {
                    let batch = dataset
                        .get_many(indices.clone())
                        .map(|items| batcher.batch(items, &device));
                    let failed = batch.is_err();
                    if sender.send(batch).is_err() || failed {
                        return;
                    }
                }
            });
            receivers.push(receiver);
        }
        Box::new(OrderedPass {
            receivers,
            batch_sizes: batches.iter().map(Vec::len).collect(),
            next: 0,
            items_done: 0,
            items_total: self.num_items(),
        })
    }

    fn num_items(&self) -> usize {
        self.per_pass.unwrap_or(self.dataset.len())
    }

    fn to_device(&self, device: &Device) -> Arc<dyn DataLoader<O>> {
        let same_data = Arc::clone(&self.dataset);
        Arc::new(self.with(same_data, device.clone(), Arc::clone(&self.cycle)))
    }

    fn slice(&self, start: usize, end: usize) -> Arc<dyn DataLoader<O>> {
        let part = PartialDataset::new(Arc::clone(&self.dataset), start, end);
        Arc::new(self.with(Arc::new(part), self.device.clone(), Arc::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Items are their own indices; a batch is the list of its items.
    struct Numbers(usize);

    impl Dataset<usize> for Numbers {
        fn get(&self, index: usize) -> Result<usize, DatasetError> {
            Ok(index)
        }

        fn len(&self) -> usize {
            self.0
        }
    }

    struct Lists;

    impl Batcher<usize, Vec<usize>> for Lists {
        fn batch(&self, items: Vec<usize>, _device: &Device) -> Vec<usize> {
            items
        }
    }

    fn passes(workers: usize, shuffle: Option<u64>) -> Vec<Vec<Vec<usize>>> {
        let loader = OrderedLoader::new(Numbers(23), Lists, 4, workers, shuffle);
        (0..3)
            .map(|_| loader.iter().map(|b| b.unwrap()).collect())
            .collect()
    }

    #[test]
    fn the_order_is_the_seeds_whatever_the_number_of_workers() {
        let one = passes(1, Some(7));
        for workers in [2, 3, 8] {
            assert_eq!(passes(workers, Some(7)), one, "{workers} workers");
        }
        // Each pass is a permutation of every item, reshuffled from pass to pass.
        for pass in &one {
            let mut all: Vec<usize> = pass.iter().flatten().copied().collect();
            assert_eq!(pass.len(), 6, "23 items in batches of 4");
            all.sort();
            assert_eq!(all, (0..23).collect::<Vec<_>>());
        }
        assert_ne!(one[0], one[1]);
        assert_ne!(passes(2, Some(8)), one);
        // Without a seed: the data set's order.
        let plain = passes(3, None);
        assert_eq!(plain[0].concat(), (0..23).collect::<Vec<_>>());
    }

    /// Fails on one item: the pass yields the batches before it, then the error, then ends.
    struct FailsAt(usize);

    impl Dataset<usize> for FailsAt {
        fn get(&self, index: usize) -> Result<usize, DatasetError> {
            if index == self.0 {
                Err(DatasetError::new(std::io::Error::other(format!(
                    "item {index}"
                ))))
            } else {
                Ok(index)
            }
        }

        fn len(&self) -> usize {
            12
        }
    }

    #[test]
    fn a_failing_item_is_an_error_and_ends_the_pass() {
        for workers in [1, 3] {
            let loader = OrderedLoader::new(FailsAt(5), Lists, 2, workers, None);
            let results: Vec<Result<Vec<usize>, String>> = loader
                .iter()
                .map(|b| b.map_err(|e| e.to_string()))
                .collect();
            assert_eq!(results.len(), 3, "{workers} workers: {results:?}");
            assert_eq!(results[0], Ok(vec![0, 1]));
            assert!(results[2].as_ref().unwrap_err().contains("item 5"));
        }
    }

    #[test]
    fn passes_of_a_fixed_size_go_on_through_reshuffled_cycles() {
        let run = |workers| {
            let loader =
                OrderedLoader::new(Numbers(10), Lists, 3, workers, Some(4)).per_pass(Some(6));
            assert_eq!(loader.num_items(), 6);
            (0..5)
                .map(|_| loader.iter().flat_map(|b| b.unwrap()).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        };
        let passes = run(1);
        assert_eq!(run(3), passes, "the same whatever the workers");
        let stream: Vec<usize> = passes.concat();
        // 30 items: three whole cycles of the 10, each a permutation, back to back.
        for cycle in stream.chunks(10) {
            let mut sorted = cycle.to_vec();
            sorted.sort();
            assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        }
        assert_ne!(stream[..10], stream[10..20]);
    }

    #[test]
    fn progress_counts_items_and_a_slice_keeps_the_settings() {
        let loader = OrderedLoader::new(Numbers(10), Lists, 4, 2, None);
        let mut pass = loader.iter();
        pass.next();
        assert_eq!(pass.progress().items_processed, 4);
        assert_eq!(pass.progress().items_total, 10);
        let part = loader.slice(2, 9);
        assert_eq!(part.num_items(), 7);
        let batches: Vec<Vec<usize>> = part.iter().map(|b| b.unwrap()).collect();
        assert_eq!(batches, [vec![2, 3, 4, 5], vec![6, 7, 8]]);
    }
}
