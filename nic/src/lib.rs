//! `nic`: everything that touches raw memory or the kernel's AF_XDP and BPF interfaces.
//!
//! This is the only crate of the workspace that contains `unsafe`; every block carries a
//! `// SAFETY:` line. Everything above it (engine, apps) is safe code.
//!
//! * [`mem`]: memory regions (2 MiB / 1 GiB hugepages, normal pages, heap for tests).
//! * [`umem`]: the UMEM (region + geometry + the shared free list of chunks).
//! * [`frame`]: [`Frame`], the exclusive handle to one chunk, and [`FrameBuf`].
//! * [`pool`]: [`PoolCache`], the per-lcore cache in front of the UMEM free list.
//! * [`ring`]: the four AF_XDP rings on the kernel's ring protocol.
//! * [`xsk`]: AF_XDP sockets (create, register/share UMEM, bind, options, statistics).
//! * [`port`]: the [`Port`] trait and its implementations (XSK, simulated, null).
//! * [`sim`]: the simulated kernel behind [`sim::sim_port`].
//! * [`xdp`]: the XDP program that steers claimed traffic to the sockets.
//! * [`netns`]: network namespaces and veth pairs for tests, the demo and benchmarks.
//! * [`neigh`]: neighbours (ARP/NDP) from the kernel's table over rtnetlink: managed entries
//!   for backends, lookups, dumps, and the [`neigh::Resolver`] the daemon's control thread uses.
//! * [`sys`]: checked libc wrappers (syscalls with their errno).
//! * [`testenv`]: root/tool requirements of tests: skip loudly, or fail under `XSKD_REQUIRE_ROOT=1`.
//! * [`alloc_count`]: a counting allocator to prove the hot path does not allocate.

pub mod alloc_count;
pub mod frame;
pub mod mem;
pub mod neigh;
mod netlink;
pub mod netns;
pub mod pool;
pub mod port;
pub mod ring;
pub mod sim;
pub mod sys;
pub mod testenv;
pub mod umem;
pub mod xdp;
pub mod xdp_tools;
pub mod xsk;

pub use frame::{Frame, FrameBuf};
pub use mem::{Backing, PageSize, Region};
pub use pool::PoolCache;
pub use port::{AnyPort, NullPort, Port, PortCounters, RingPort};
pub use umem::{Umem, UmemConfig};
pub use xsk::{BindMode, BusyPoll, BusyPollState, XdpStatistics, XskConfig, XskError};
