//! Property tests: thousands of random and mutated files thrown at the IDX, CIFAR-10 and
//! image readers. Each must return (a value or an error naming the file), never panic,
//! and never allocate for a size the file does not hold: every input here is under 64 KB,
//! and no call may allocate more than [`MAX_PEAK`] at once.

use std::io::Write;
use std::path::Path;

use proptest::prelude::*;

use dataset::peak_memory::{Counting, peak_during};
use dataset::{cifar, idx, image_file};

#[global_allocator]
static ALLOC: Counting = Counting;

/// What one read of a small input may allocate at its peak. The inputs' valid forms need
/// well under 1 MB; a header's unchecked claim would ask for gigabytes.
const MAX_PEAK: usize = 32 << 20;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A valid file, then some of its bytes changed, some removed or some appended.
fn mutated(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = valid.len();
    (
        prop::collection::vec((0..len.max(1), any::<u8>()), 0..8),
        0..=len,
        prop::collection::vec(any::<u8>(), 0..16),
    )
        .prop_map(move |(flips, keep, tail)| {
            let mut bytes = valid.clone();
            for (at, value) in flips {
                if at < bytes.len() {
                    bytes[at] = value;
                }
            }
            bytes.truncate(keep);
            bytes.extend(tail);
            bytes
        })
}

fn valid_idx() -> Vec<u8> {
    let data: Vec<u8> = (0..3 * 5 * 4).map(|i| (i * 7) as u8).collect();
    idx::encode_idx(&[3, 5, 4], &data)
}

/// Writes `bytes` to a fresh file and runs `read` on it; the error, if any, must name it.
fn read_named<T, E: std::fmt::Display>(
    name: &str,
    bytes: &[u8],
    read: impl Fn(&Path) -> Result<T, E>,
) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    let (result, peak) = peak_during(|| read(&path).map(|_| ()));
    prop_assert!(
        peak <= MAX_PEAK,
        "{name} of {} bytes: {peak} bytes allocated",
        bytes.len()
    );
    if let Err(e) = result {
        let msg = e.to_string();
        prop_assert!(msg.contains(name), "{msg}");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn idx_reader_takes_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        read_named("random.idx", &bytes, idx::read_idx)?;
    }

    #[test]
    fn idx_reader_takes_mutated_files(bytes in mutated(valid_idx())) {
        read_named("mutated.idx", &bytes, idx::read_idx)?;
        read_named("mutated.idx.gz", &gzip(&bytes), idx::read_idx)?;
    }

    /// Headers claiming up to 2^32 per dimension, on a few bytes of data: refused from the
    /// sizes alone (nothing near the claim is allocated: the test would run out of memory).
    #[test]
    fn idx_reader_refuses_claims_the_file_cannot_hold(
        dims in prop::collection::vec(any::<u32>(), 1..4),
        payload in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut bytes = vec![0, 0, 8, dims.len() as u8];
        for d in &dims {
            bytes.extend_from_slice(&d.to_be_bytes());
        }
        let claimed: u128 = dims.iter().map(|&d| d as u128).product();
        bytes.extend(&payload);
        for (name, content) in [("claim.idx", bytes.clone()), ("claim.idx.gz", gzip(&bytes))] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(name);
            std::fs::write(&path, &content).unwrap();
            match idx::read_idx(&path) {
                Ok(arr) => prop_assert_eq!(arr.data.len() as u128, claimed),
                Err(e) => prop_assert!(e.to_string().contains(name)),
            }
        }
    }

    #[test]
    fn cifar_reader_takes_mutated_batches(bytes in mutated({
        let mut b = Vec::new();
        for i in 0..3u8 {
            b.push(i);
            b.extend((0..3072).map(|p| (p as u8).wrapping_mul(i)));
        }
        b
    })) {
        read_named("data_batch_1.bin", &bytes, cifar::read_batch)?;
    }

    #[test]
    fn image_reader_takes_mutated_pngs_and_jpegs(
        png in mutated(encoded(image::ImageFormat::Png)),
        jpeg in mutated(encoded(image::ImageFormat::Jpeg)),
    ) {
        read_named("x.png", &png, image_file::open)?;
        read_named("x.jpg", &jpeg, image_file::open)?;
    }

    #[test]
    fn jpeg_scan_walk_takes_mutated_baseline_and_progressive_jpegs(
        baseline in mutated(jpeg_with(false)),
        progressive in mutated(jpeg_with(true)),
    ) {
        for bytes in [baseline, progressive] {
            // A verdict either way, never a panic or a hang, nor a large allocation.
            let (_, peak) = peak_during(|| dataset::jpeg_scan::check(&bytes));
            prop_assert!(peak <= MAX_PEAK, "{} bytes: {peak} allocated", bytes.len());
        }
    }
}

/// A 4:2:0 colour JPEG with restart markers (baseline) or progressive scans.
fn jpeg_with(progressive: bool) -> Vec<u8> {
    let (w, h) = (40u16, 24u16);
    let pixels: Vec<u8> = (0..usize::from(w) * usize::from(h) * 3)
        .map(|i| (i * 29 % 251) as u8)
        .collect();
    let mut out = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, 80);
    encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
    encoder.set_progressive(progressive);
    if !progressive {
        encoder.set_restart_interval(2);
    }
    encoder
        .encode(&pixels, w, h, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    out
}

fn encoded(format: image::ImageFormat) -> Vec<u8> {
    let img = image::RgbImage::from_fn(16, 12, |x, y| image::Rgb([x as u8 * 9, y as u8 * 11, 7]));
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, format).unwrap();
    bytes.into_inner()
}

/// The bound above means something: the probe sees an allocation of that size.
#[test]
fn the_memory_probe_sees_a_large_allocation() {
    let (bytes, peak) = peak_during(|| vec![1u8; MAX_PEAK + 1]);
    assert!(peak > MAX_PEAK, "{peak}");
    drop(bytes);
    let (_, peak) = peak_during(|| 0);
    assert_eq!(peak, 0);
}
