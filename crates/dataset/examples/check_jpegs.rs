//! The strict JPEG checks over every JPEG below a folder, against the `image` crate's
//! lenient decoder: one line per file, then a summary.
//!
//!     cargo run -p dataset --example check_jpegs -- DIR
//!
//! `ok PATH` (accepted; the pixels must equal the lenient decoder's), `refused PATH: WHY`,
//! and a last line `N files: A accepted with identical pixels, D accepted but different,
//! R refused (L of them decoded by the lenient decoder)`, and what the walk of the
//! compressed data cost against a lenient decode of the same bytes (files held in memory,
//! one thread). benches/jpeg_corruption.sh uses it to compare with libjpeg on a generated
//! catalogue.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn jpegs(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            jpegs(&path, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg"))
        {
            out.push(path);
        }
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let root = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: check_jpegs DIR"))?;
    let mut files = Vec::new();
    jpegs(Path::new(&root), &mut files)?;
    files.sort();
    let (mut same, mut different, mut refused, mut lenient_took) = (0, 0, 0, 0);
    let (mut walk, mut decode) = (Duration::ZERO, Duration::ZERO);
    for path in &files {
        let bytes = std::fs::read(path)?;
        let start = Instant::now();
        let walked = dataset::jpeg_scan::check(&bytes);
        walk += start.elapsed();
        let start = Instant::now();
        let decoded = image::load_from_memory(&bytes);
        decode += start.elapsed();
        let _ = std::hint::black_box((walked, decoded));

        let lenient = image::open(path);
        match dataset::image_file::open(path) {
            Ok(ours) => match lenient {
                Ok(theirs) if theirs.as_bytes() == ours.as_bytes() => {
                    same += 1;
                    println!("ok {}", path.display());
                }
                _ => {
                    different += 1;
                    println!("different {}", path.display());
                }
            },
            Err(e) => {
                refused += 1;
                lenient_took += usize::from(lenient.is_ok());
                println!("refused {e}");
            }
        }
    }
    println!(
        "{} files: {same} accepted with identical pixels, {different} accepted but different, \
         {refused} refused ({lenient_took} of them decoded by the lenient decoder)",
        files.len()
    );
    println!(
        "walk of the compressed data {:.1} ms, lenient decode {:.1} ms",
        walk.as_secs_f64() * 1e3,
        decode.as_secs_f64() * 1e3
    );
    Ok(())
}
