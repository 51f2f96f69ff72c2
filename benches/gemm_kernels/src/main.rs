//! GFLOP/s of the gemm crate on the course CNN's products (batch 32): the conv layer's
//! im2col product and the dense layer's, each with its two backward products.

use std::time::Instant;

fn main() {
    let threads: usize = std::env::args()
        .nth(1)
        .map_or(1, |s| s.parse().expect("threads: a number"));
    let kernels = if cfg!(feature = "v4") { "AVX-512 (x86-v4)" } else { "AVX2" };
    println!("gemm 0.19, {kernels} kernels, {threads} thread(s)");
    let shapes = [
        ("conv forward     ", [25_088, 288, 64]),
        ("conv weight grad ", [288, 25_088, 64]),
        ("conv input grad  ", [25_088, 64, 288]),
        ("dense forward    ", [32, 12_544, 128]),
        ("dense weight grad", [12_544, 32, 128]),
        ("dense input grad ", [32, 128, 12_544]),
    ];
    for (name, [m, k, n]) in shapes {
        let a = vec![1.0f32; m * k];
        let b = vec![0.5f32; k * n];
        let mut c = vec![0.0f32; m * n];
        let parallelism = if threads > 1 {
            gemm::Parallelism::Rayon(threads)
        } else {
            gemm::Parallelism::None
        };
        let mut product = || {
            // SAFETY: row-major a (m×k), b (k×n), c (m×n) with the strides given.
            unsafe {
                gemm::gemm(
                    m, n, k, c.as_mut_ptr(), 1, n as isize, false, a.as_ptr(), 1, k as isize,
                    b.as_ptr(), 1, n as isize, 0.0f32, 1.0f32, false, false, false, parallelism,
                )
            }
        };
        product();
        let repeats = 10;
        let start = Instant::now();
        for _ in 0..repeats {
            product();
        }
        let seconds = start.elapsed().as_secs_f64() / repeats as f64;
        let gflops = 2.0 * (m * k * n) as f64 / seconds / 1e9;
        println!("{name} {m:>6}×{k:>6}×{n:>4}: {:7.2} ms, {gflops:6.1} GFLOP/s", seconds * 1e3);
    }
}
