//! Benchmark support crate (criterion benches live in benches/).
#![forbid(unsafe_code)]
