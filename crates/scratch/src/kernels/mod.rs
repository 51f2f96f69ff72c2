//! The fast paths behind the course code: what makes a CPU epoch short, kept apart from
//! the layers so that those read as the course's formulas.
//!
//! - [`gemm`]: the one matrix-product entry point the layers call (ndarray's GEMM, or
//!   [`small_gemm`]'s AVX-512 kernel for the small products of a conv net).
//! - [`sparse_input`] and [`sparse_affine`]: a first affine layer on raw pixels that
//!   skips the zero inputs (81% of MNIST's pixels), and reads batches of bytes.
//! - [`batches`]: minibatches as the training set's bytes or copied by two threads.
//! - [`team`]: the two-thread pool those kernels split their work on.
//!
//! Each has a portable path that the tests run on every machine, and the network can be
//! built without any of them ([`crate::network::Kernels::Plain`]).

pub mod batches;
pub mod gemm;
pub mod small_gemm;
pub mod sparse_affine;
pub mod sparse_input;
pub mod team;
