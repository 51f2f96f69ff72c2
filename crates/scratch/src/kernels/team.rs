//! A second thread that stays awake through a training step, for kernels too short to
//! hand to rayon.
//!
//! The first layer's sparse kernels take tens of microseconds each. Rayon's workers go
//! to sleep between jobs, and waking one (a futex call) costs about as much as the piece
//! it would run: splitting those kernels over rayon was measured slower than one thread.
//! This team's worker spins for a short while after each piece, so the next piece of
//! the same step starts within a microsecond; idle for longer, it sleeps and costs
//! nothing.
//!
//! [`split`] runs part 0 on the calling thread and part 1 on the worker and returns when
//! both are done. Jobs are written for exactly [`PARTS`] parts: when the worker is busy
//! with another caller, or the machine has one core (or `RAYON_NUM_THREADS=1`), both
//! parts run on the caller, one after the other, so results never depend on the
//! threading.

use std::cell::UnsafeCell;
use std::hint::spin_loop;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, TryLockError};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis};

/// Every job is split into this many parts.
pub const PARTS: usize = 2;

/// How long the worker spins after a piece before it sleeps: longer than the gaps
/// within and between training steps, short enough not to matter when idle.
const SPIN: Duration = Duration::from_micros(300);

type Job = dyn Fn(usize) + Sync;

/// Where `len` items (pixels, weight rows) are cut between part 0 and part 1: about the
/// middle, on a multiple of `align`. Kernels that hand the same items to the same part
/// step after step (copy, list, forward, dW, update) keep their data in that core's
/// cache: moving it between the cores of these machines cost more than the work.
pub fn split_point(len: usize, align: usize) -> usize {
    (len.div_ceil(align).div_ceil(PARTS) * align).min(len)
}

/// Runs `job(0)` here and `job(1)` on the worker (or both here), returning when both
/// have finished. A panic in either part is raised here after both have stopped.
pub fn split(job: &(dyn Fn(usize) + Sync)) {
    let Some(team) = team() else {
        return (0..PARTS).for_each(job);
    };
    // Another caller (parallel tests), or a job that itself splits: run inline.
    let _caller = match team.caller.try_lock() {
        Ok(guard) => guard,
        // A part panicked earlier: the team itself is fine.
        Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        Err(TryLockError::WouldBlock) => return (0..PARTS).for_each(job),
    };
    let shared = team.shared;
    let number = shared.posted.load(Ordering::Relaxed) + 1;
    // SAFETY: the worker reads the job only between `posted` reaching `number` and
    // `finished` reaching it, and `WaitForWorker` keeps this frame (which borrows `job`)
    // alive until then, even if part 0 panics. Only the caller holding `team.caller`
    // writes the slot.
    unsafe {
        let borrowed: *const (dyn Fn(usize) + Sync + '_) = job;
        *shared.job.get() =
            std::mem::transmute::<*const (dyn Fn(usize) + Sync + '_), *const Job>(borrowed);
    }
    shared.panicked.store(false, Ordering::Relaxed);
    shared.posted.store(number, Ordering::SeqCst);
    if shared.sleeping.load(Ordering::SeqCst) {
        team.worker.unpark();
    }
    let wait = WaitForWorker { shared, number };
    job(0);
    drop(wait);
    if shared.panicked.swap(false, Ordering::Relaxed) {
        panic!("a team job panicked on the worker thread");
    }
}

struct Team {
    shared: &'static Shared,
    worker: Thread,
    /// Held while a job is out, so that one caller at a time uses the worker.
    caller: Mutex<()>,
}

struct Shared {
    /// Memory to prefetch while idle: (address, bytes) ranges, and how far it got.
    prefetch: Mutex<Prefetch>,
    has_prefetch: AtomicBool,
    /// Numbers of the last job posted by the caller and finished by the worker.
    posted: AtomicU64,
    finished: AtomicU64,
    /// The posted job, valid from `posted` until `finished` reach its number.
    job: UnsafeCell<*const Job>,
    sleeping: AtomicBool,
    panicked: AtomicBool,
}

// SAFETY: `job` is written only by the caller holding `Team::caller`, before it
// publishes the job through `posted` (release), and read by the worker after it sees
// that number (acquire); the job itself is `Sync`.
unsafe impl Sync for Shared {}

fn team() -> Option<&'static Team> {
    static TEAM: OnceLock<Option<Team>> = OnceLock::new();
    TEAM.get_or_init(|| {
        // One core, or RAYON_NUM_THREADS=1 (the rest of this crate's threads are
        // rayon's): no worker.
        if rayon::current_num_threads() < PARTS {
            return None;
        }
        let shared: &'static Shared = Box::leak(Box::new(Shared {
            prefetch: Mutex::new(Prefetch::default()),
            has_prefetch: AtomicBool::new(false),
            posted: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            job: UnsafeCell::new(std::ptr::null::<fn(usize)>() as *const Job),
            sleeping: AtomicBool::new(false),
            panicked: AtomicBool::new(false),
        }));
        let handle = thread::Builder::new()
            .name("scratch-team".into())
            .spawn(move || work(shared))
            .ok()?;
        Some(Team {
            shared,
            worker: handle.thread().clone(),
            caller: Mutex::new(()),
        })
    })
    .as_ref()
}

/// Blocks until the worker has finished job `number` (on drop, so also on unwinding).
struct WaitForWorker {
    shared: &'static Shared,
    number: u64,
}

impl Drop for WaitForWorker {
    fn drop(&mut self) {
        let mut spins = 0u32;
        while self.shared.finished.load(Ordering::Acquire) < self.number {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(1 << 16) {
                // The worker has been descheduled: let it have this core.
                thread::yield_now();
            } else {
                spin_loop();
            }
        }
    }
}

/// Asks the worker to pull `ranges` into the caches while it waits for work (replacing
/// any earlier request). Used for the next minibatch's rows: copying random rows from
/// DRAM is latency-bound, and the worker is idle for tens of microseconds each step
/// while the caller runs the small layers. A prefetch never faults, so a range that is
/// freed before the worker gets to it does no harm; without a team this does nothing.
pub fn prefetch_when_idle<'a>(ranges: impl IntoIterator<Item = &'a [u8]>) {
    let Some(team) = team() else { return };
    let Ok(mut prefetch) = team.shared.prefetch.lock() else {
        return;
    };
    prefetch.ranges.clear();
    prefetch.ranges.extend(
        ranges
            .into_iter()
            .map(|r| (r.as_ptr() as usize, size_of_val(r))),
    );
    prefetch.next = (0, 0);
    team.shared.has_prefetch.store(true, Ordering::Release);
}

#[derive(Default)]
struct Prefetch {
    ranges: Vec<(usize, usize)>,
    /// The next range and byte offset in it.
    next: (usize, usize),
}

impl Prefetch {
    /// Prefetches up to `lines` more cache lines; false once all are done.
    fn advance(&mut self, mut lines: usize) -> bool {
        while lines > 0 {
            let Some(&(start, len)) = self.ranges.get(self.next.0) else {
                return false;
            };
            if self.next.1 >= len {
                self.next = (self.next.0 + 1, 0);
                continue;
            }
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a prefetch is only a hint: it never faults, whatever the address.
            unsafe {
                use std::arch::x86_64::{_MM_HINT_T1, _mm_prefetch};
                _mm_prefetch::<_MM_HINT_T1>((start + self.next.1) as *const i8);
            }
            #[cfg(not(target_arch = "x86_64"))]
            let _ = start;
            self.next.1 += 64;
            lines -= 1;
        }
        true
    }
}

/// The worker: runs part 1 of each posted job; spins for [`SPIN`] after each (doing any
/// prefetching asked for), then parks.
fn work(shared: &'static Shared) {
    let mut seen = 0u64;
    loop {
        let mut idle_since = Instant::now();
        let mut spins = 0u32;
        while shared.posted.load(Ordering::Acquire) == seen {
            if shared.has_prefetch.load(Ordering::Relaxed)
                && let Ok(mut prefetch) = shared.prefetch.try_lock()
            {
                // A few lines at a time, so a posted job waits at most that long.
                if !prefetch.advance(8) {
                    shared.has_prefetch.store(false, Ordering::Relaxed);
                }
                continue;
            }
            spins = spins.wrapping_add(1);
            if !spins.is_multiple_of(64) || idle_since.elapsed() < SPIN {
                spin_loop();
                continue;
            }
            // Announce the sleep before the last look at `posted`; the caller posts
            // before it looks at `sleeping`, so one of the two sees the other (SeqCst).
            shared.sleeping.store(true, Ordering::SeqCst);
            if shared.posted.load(Ordering::SeqCst) == seen {
                thread::park();
            }
            shared.sleeping.store(false, Ordering::SeqCst);
            idle_since = Instant::now();
        }
        seen += 1;
        // SAFETY: job `seen` was written before `posted` was released, and the caller
        // keeps it alive until `finished` reaches `seen`.
        let job = unsafe { &**shared.job.get() };
        if catch_unwind(AssertUnwindSafe(|| job(1))).is_err() {
            shared.panicked.store(true, Ordering::Relaxed);
        }
        shared.finished.store(seen, Ordering::Release);
    }
}

/// Parameters at least this big are updated by both threads of the team.
const TEAM_MIN_LEN: usize = 1 << 14;

/// Runs `update(param rows, grad rows)` over all rows: for big parameters, in two parts
/// on the team, cut where the sparse first layer cuts its weight rows, so each core
/// updates the rows whose gradient it computed (and reads next forward).
pub fn by_rows(
    param: &mut Array2<f32>,
    grad: &Array2<f32>,
    update: impl Fn(ArrayViewMut2<f32>, ArrayView2<f32>) + Sync,
) {
    if param.len() < TEAM_MIN_LEN {
        return update(param.view_mut(), grad.view());
    }
    let middle = split_point(param.nrows(), 16);
    let (p0, p1) = param.view_mut().split_at(Axis(0), middle);
    let (g0, g1) = grad.view().split_at(Axis(0), middle);
    let parts = [Mutex::new(Some((p0, g0))), Mutex::new(Some((p1, g1)))];
    split(&|part| {
        let rows = parts[part].lock().expect("each part locks once").take();
        if let Some((p, g)) = rows {
            update(p, g);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn split_points_are_aligned_and_in_range() {
        assert_eq!(split_point(784, 16), 400);
        assert_eq!(split_point(100, 1), 50);
        assert_eq!(split_point(5, 16), 5);
        assert_eq!(split_point(0, 16), 0);
        assert_eq!(split_point(32, 16), 16);
    }

    #[test]
    fn every_part_runs_once_per_job() {
        let runs: [AtomicUsize; PARTS] = Default::default();
        for _ in 0..1000 {
            split(&|part| {
                runs[part].fetch_add(1, Ordering::Relaxed);
            });
        }
        for r in &runs {
            assert_eq!(r.load(Ordering::Relaxed), 1000);
        }
    }

    #[test]
    fn parts_write_disjoint_halves_and_nested_splits_run_inline() {
        let halves = [Mutex::new(vec![0; 10]), Mutex::new(vec![0; 10])];
        split(&|part| {
            let mut half = halves[part].lock().unwrap();
            half.iter_mut().for_each(|v| *v = part + 1);
            // A job that splits again runs both inner parts on its own thread.
            let inner = AtomicUsize::new(0);
            split(&|p| {
                inner.fetch_add(p + 1, Ordering::Relaxed);
            });
            assert_eq!(inner.load(Ordering::Relaxed), 3);
        });
        assert_eq!(*halves[0].lock().unwrap(), vec![1; 10]);
        assert_eq!(*halves[1].lock().unwrap(), vec![2; 10]);
    }

    #[test]
    fn a_panic_on_either_part_reaches_the_caller() {
        for bad in 0..PARTS {
            let result = catch_unwind(|| split(&|part| assert_ne!(part, bad)));
            assert!(result.is_err(), "part {bad}");
        }
        // The team still works afterwards.
        let count = AtomicUsize::new(0);
        split(&|_| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn the_worker_wakes_after_sleeping() {
        let count = AtomicUsize::new(0);
        for _ in 0..3 {
            thread::sleep(SPIN * 3);
            split(&|_| {
                count.fetch_add(1, Ordering::Relaxed);
            });
        }
        assert_eq!(count.load(Ordering::Relaxed), 6);
    }
}
