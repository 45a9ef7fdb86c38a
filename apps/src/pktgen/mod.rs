//! `pktgen`: a traffic generator and receiver — DPDK-pktgen/TRex-style, sans-I/O, on the engine.
//!
//! One instance per queue, in one of three roles: send (`tx`), receive and measure (`rx`), or
//! both (`txrx`). It sends UDP or TCP over IPv4 or IPv6 (optionally VLAN-tagged) with thousands
//! of flows from address and port ranges walked in sequence or at random, fixed/listed/random/IMIX
//! frame sizes, at a packet or bit rate, or replays a pcap; every synthesised UDP frame, and every
//! TCP segment with room for it in its payload, carries a signature (stream, sequence number, TX
//! timestamp) from which the receiver computes loss, reordering, duplication and one-way latency.
//! A bare TCP segment (a 60-byte SYN) has no room: the receiver counts those, frames and bytes,
//! without sequence accounting.
//!
//! * [`spec`]: [`PktgenSpec`], the parameters (TOML keys, defaults, validation).
//! * [`tcp`]: [`TcpSpec`], the TCP header fields (flags, sequence and ack numbers, window, MSS).
//! * [`build`]: [`FrameBuilder`], template-based frame writing with incremental checksums,
//!   and the [`Signature`] format.
//! * [`rate`]: [`TokenBucket`], exact-rate pacing with time passed in.
//! * [`rx`]: [`RxStats`], per-stream sequence windows and the latency histogram.
//! * [`pcap`]: reading a pcap to replay, a pre-allocated capture ring and the file writer.
//! * [`app`]: [`Pktgen`], the [`engine::App`], and [`PktgenHandle`] for its results.
//!
//! Everything below `app` is plain data and functions of their inputs (no clock, no I/O, except
//! `pcap`'s file functions, which the app calls only at build time and from its timer/finish
//! steps), so it is tested without an lcore; `apps/tests/pktgen_golden.rs` runs it through the
//! engine over simulated rings and compares the bytes with checked-in pcaps.

pub mod app;
pub mod build;
pub mod pcap;
pub mod rate;
pub mod rx;
pub mod spec;
pub mod tcp;

pub use app::{CaptureCounters, Pktgen, PktgenHandle, PktgenReport, TxCounters};
pub use build::{FrameBuilder, Signature, WyRand};
pub use rate::TokenBucket;
pub use rx::{LatencySummary, RxStats, RxSummary, SeqWindow, StreamSummary};
pub use spec::{FrameSize, IpRange, Pick, PktgenSpec, PortRange, Proto, Rate, Role};
pub use tcp::{TcpNum, TcpSpec};
