//! `apps`: the xskd apps, the daemon that runs them, and the pieces of the `xskd` CLI.
//!
//! * [`relay`]: testpmd-style forwarding (io, mac, macswap).
//! * [`l4lb`]: L4 load balancer, full NAT, Maglev over the flow table.
//! * [`pktgen`]: traffic generator and receiver (loss, reordering, latency), pcap replay/capture.
//! * [`pktgen_cmd`]: `xskd pktgen`, flags/profile → config → daemon, AF_XDP or live-frames TX.
//! * [`registry`]: the app list, parameter validation, [`registry::AnyApp`].
//! * [`daemon`]: plan → UMEM → XDP → sockets → pinned lcores → orderly stop.
//! * [`control`]: app controllers, the shards they command, the control socket (`xskd ctl`).
//! * [`report`]: per-interval lines, the summary, JSON.
//! * [`resources`]: open fds and hugetlb memory of a process, from procfs (leak checks).
//! * [`demo`]: `xskd demo`, the engine on a throw-away veth topology.
//! * [`udpflow`]: kernel UDP sender/receiver with per-byte checking (demo and tests).
//! * [`tcpflow`]: kernel TCP/UDP backend servers and checking clients (load-balancer demo and tests).
//! * [`params`]: typed access to app parameter tables.
#![recursion_limit = "256"]

pub mod control;
pub mod daemon;
pub mod demo;
pub mod l4lb;
pub mod params;
pub mod pktgen;
pub mod pktgen_cmd;
pub mod registry;
pub mod relay;
pub mod report;
pub mod resources;
pub mod tcpflow;
pub mod udpflow;

/// The environment `xskd` validates configurations against: this machine, these apps.
pub fn system_env() -> registry::XskdEnv {
    registry::XskdEnv::new()
}
