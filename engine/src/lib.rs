//! `engine`: typed wire views, batches and verdicts, the App trait, the pinned poll-mode loop.
//!
//! * [`wire`]: zero-copy packet views (`new_checked` on input) and `Repr`s for emitting.
//! * [`app`]: the [`App`] trait, its context [`Ctx`], [`Verdict`] and [`DropReason`].
//! * [`batch`]: [`Batch`], one burst with one verdict per frame.
//! * [`flow`]: the per-lcore flow table ([`FlowTable`]: 5-tuple → state, timeouts, bounded expiry).
//! * [`lcore`]: the pinned poll-mode loop ([`Lcore`], [`LcoreBuilder`]).
//! * [`nat`]: in-place address/port translation with incremental checksums, ICMP error
//!   translation ([`NatFrame`], [`FiveTuple`]).
//! * [`maglev`]: Maglev consistent hashing for load balancing ([`MaglevTable`]).
//! * [`stats`]: per-lcore counters, the burst-size histogram and published snapshots.
//! * [`time`]: the TSC loop clock and the [`Instant`] that protocol code receives.
//!
//! Nothing here touches raw memory: that lives in `nic`, behind safe APIs (the workspace lints
//! forbid it in every other crate).

pub mod app;
pub mod batch;
pub mod flow;
pub mod lcore;
pub mod maglev;
pub mod nat;
pub mod stats;
pub mod time;
pub mod wire;

pub use app::{App, Ctx, DropCounters, DropReason, Ingress, PortId, Shard, TxPort, Verdict};
pub use batch::Batch;
pub use flow::{FlowCounters, FlowIx, FlowKey, FlowTable, FlowTableConfig, FlowTimeouts, InsertError, TimeoutClass};
pub use lcore::{
    AppSlot, ControlFn, Handed, IdleMode, Lcore, LcoreBuilder, LcoreOptions, Stopped, DEFAULT_BURST, MAX_RX_BURSTS,
};
pub use maglev::{MaglevBackend, MaglevError, MaglevTable};
pub use nat::{FiveTuple, InnerChecksum, NatError, NatFrame};
pub use stats::{AppSnapshot, LcoreCounters, LcoreSnapshot, QueueSnapshot, Rates, SharedSnapshot};
pub use time::{Clock, Instant};
