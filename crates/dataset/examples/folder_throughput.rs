//! Image-folder loading throughput: decode + resize + convert + rescale, streamed in batches.
//!
//!     cargo run -p dataset --example folder_throughput -- ../shared/data/faces/train [H W] [passes]
//!
//! Prints images/s for each pass (the first pass includes cold file-cache reads).

use std::path::PathBuf;
use std::time::Instant;

use dataset::{ColorMode, FolderOptions, ImageFolder};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = PathBuf::from(
        args.first()
            .map(String::as_str)
            .unwrap_or("../shared/data/faces/train"),
    );
    let h: u32 = args.get(1).map_or(Ok(218), |s| s.parse())?;
    let w: u32 = args.get(2).map_or(Ok(178), |s| s.parse())?;
    let passes: usize = args.get(3).map_or(Ok(3), |s| s.parse())?;
    let options = FolderOptions {
        target_size: Some((h, w)),
        color_mode: ColorMode::Rgb,
        rescale: 1.0 / 255.0,
        ..FolderOptions::default()
    };
    let folder = ImageFolder::open(&root, options)?;
    println!(
        "{} ({}), target {h}x{w} RGB, batch 32, {} threads",
        folder.found_message(),
        root.display(),
        rayon::current_num_threads()
    );
    for pass in 0..passes {
        let start = Instant::now();
        let mut n = 0;
        let mut checksum = 0.0f64;
        for batch in folder.batches(32, Some(1), pass as u64) {
            let batch = batch?;
            n += batch.len();
            checksum += batch.images[0] as f64;
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "pass {}: {n} images in {secs:.2} s = {:.0} images/s (checksum {checksum:.1})",
            pass + 1,
            n as f64 / secs
        );
    }
    Ok(())
}
