//! Benchmark support: the end-to-end harness (`src/bin/e2e.rs`) and helpers shared with the
//! criterion micro-benchmarks (`benches/`).
//!
//! * [`run`]: running peers and xskd as child processes with deadlines, pinned.
//! * [`sample`]: per-second samples → median of the steady part, and repetition statistics.
//! * [`peers`]: command lines and output parsers for the peers (dpdk-testpmd) and xskd.
//! * [`veth`]: the veth tier (live-frames generator → DUT → XDP sink) for xskd and testpmd.
//! * [`kernel`]: kernel knobs and counters for the kernel trials (sysctl guards, `ip -s` and
//!   `ethtool -S` counters, threaded NAPI and RPS placement, counter traces).
//! * [`crossgen`]: generator cross-check (trafgen, UDP sendmmsg) against the receiver's kernel
//!   counters.
//! * [`kfwd`]: the kernel IPv4 forwarding baseline.
//! * [`l4`]: the L4 load-balancer tier (new flows, established flows, connections per second,
//!   bulk TCP) for nftables NAT, kernel forwarding, haproxy and xskd `l4lb`, on [`l4topo`]'s
//!   topology with [`l4sys`]'s systems, [`l4tcp`]'s client and server, written by [`l4report`].
//! * [`nat`]: engine-only NAT (l4lb on replaying null ports) vs the relay's io mode.
//! * [`xdpceil`]: in-kernel XDP forward and drop ceilings.
//! * [`rfc`]: the RFC 2544-style tier (zero-loss rate, max-load rate, latency) for every system.
//! * [`rfc2544`]: zero-loss throughput binary search.
//! * [`report`]: generated sections of BENCHMARKS.md.
//! * [`plot`]: SVG plots (throughput vs frame size, latency CDF).
//!
//! Every number the harness writes carries what it depends on: frame size, burst, cores and
//! their roles, copy/zero-copy mode, and the peer measured beside it in the same run.

pub mod crossgen;
pub mod interrupt;
pub mod kernel;
pub mod kfwd;
pub mod l4;
pub mod l4report;
pub mod l4sys;
pub mod l4tcp;
pub mod l4topo;
pub mod nat;
pub mod peers;
pub mod plot;
pub mod report;
pub mod rfc;
pub mod rfc2544;
pub mod run;
pub mod sample;
pub mod veth;
pub mod xdpceil;
