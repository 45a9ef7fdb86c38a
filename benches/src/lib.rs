//! Benchmark support: the end-to-end harness (`src/bin/e2e.rs`) and helpers shared with the
//! criterion micro-benchmarks (`benches/`).
//!
//! * [`run`]: running peers and xskd as child processes with deadlines, pinned.
//! * [`sample`]: per-second samples → median of the steady part, and repetition statistics.
//! * [`peers`]: command lines and output parsers for the peers (dpdk-testpmd) and xskd.
//! * [`veth`]: the veth tier (live-frames generator → DUT → XDP sink) for xskd and testpmd.
//!
//! Every number the harness writes carries what it depends on: frame size, burst, cores and
//! their roles, copy/zero-copy mode, and the peer measured beside it in the same run.
#![forbid(unsafe_code)]

pub mod peers;
pub mod run;
pub mod sample;
pub mod veth;
