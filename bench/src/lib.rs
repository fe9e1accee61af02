//! Criterion benchmarks (`benches/`) and the side-by-side comparison script
//! (`bench/compare`, results in `bench/results/`). No library code: the crate exists
//! so the benchmarks build with the workspace.
#![forbid(unsafe_code)]
