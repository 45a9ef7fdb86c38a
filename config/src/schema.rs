//! The TOML schema: what a user writes, with defaults, before validation.
//!
//! Every section is `deny_unknown_fields`. Values here are raw (plain integers and strings as
//! written); range and consistency checks happen in [`crate::validate`], so that every problem
//! of a file is reported at once rather than the first one serde meets.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

/// A whole configuration file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineConfig {
    /// `[engine]`.
    pub engine: EngineSection,
    /// `[umem]`.
    pub umem: UmemSection,
    /// `[[port]]`.
    pub ports: Vec<PortSection>,
    /// `[[app]]`: named app instances that queues join.
    pub apps: Vec<AppSection>,
    /// `[[queue]]`.
    pub queues: Vec<QueueSection>,
}

/// `[engine]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSection {
    /// Frames per RX burst (1..=256).
    pub burst: u32,
    /// What an lcore does when its rings are empty.
    pub idle: Idle,
    /// Period of the per-lcore stats line (100..=60000 ms).
    pub stats_interval_ms: u64,
    /// Stop after this many seconds (absent: run until SIGINT/SIGTERM).
    pub duration_secs: Option<f64>,
    /// Path of the control socket (`xskd ctl`); absent: none.
    pub control_socket: Option<String>,
}

impl Default for EngineSection {
    fn default() -> Self {
        EngineSection {
            burst: 64,
            idle: Idle::Spin,
            stats_interval_ms: 1000,
            duration_secs: None,
            control_socket: None,
        }
    }
}

/// `[umem]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UmemSection {
    /// Number of chunks.
    pub frames: u32,
    /// Chunk size: a power of two in 2048..=32768.
    pub frame_size: u32,
    /// Headroom the kernel leaves in front of received data.
    pub headroom: u32,
    /// Page size of the UMEM memory.
    pub hugepages: Hugepages,
}

impl Default for UmemSection {
    fn default() -> Self {
        UmemSection { frames: 16384, frame_size: 2048, headroom: 0, hugepages: Hugepages::TwoMeg }
    }
}

/// `[[port]]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSection {
    /// Unique name, referenced by queues and app parameters.
    pub name: String,
    /// AF_XDP socket or in-memory null port.
    #[serde(default)]
    pub kind: PortKind,
    /// Interface (xsk ports; default: the port name).
    pub iface: Option<String>,
    /// AF_XDP bind mode.
    #[serde(default)]
    pub mode: BindMode,
    /// XDP attach mode.
    #[serde(default)]
    pub xdp_mode: XdpMode,
    /// `XDP_USE_NEED_WAKEUP`.
    #[serde(default = "yes")]
    pub need_wakeup: bool,
    /// RX ring size.
    #[serde(default = "ring_2048")]
    pub rx_ring: u32,
    /// TX ring size.
    #[serde(default = "ring_2048")]
    pub tx_ring: u32,
    /// Fill ring size.
    #[serde(default = "ring_4096")]
    pub fill_ring: u32,
    /// Completion ring size.
    #[serde(default = "ring_2048")]
    pub comp_ring: u32,
    /// Copy-mode TX budget per kick (`XDP_MAX_TX_SKB_BUDGET`, 32..=tx_ring; absent: 2 × burst).
    pub tx_budget: Option<u32>,
    /// Preferred busy polling.
    pub busy_poll: Option<BusyPollSection>,
    /// Claim rules (validated in [`crate::validate`]): `"all"` or an array of rule tables.
    pub claim: Option<toml::Value>,
    /// Null ports: length of the frames RX hands out.
    pub null_len: Option<u32>,
    /// Null ports: a pcap whose frames RX hands out, in turn (all of one length; engine-only
    /// benchmarks of apps that parse their input).
    pub null_replay: Option<String>,
    /// Null ports: whether RX hands out frames at all (false: a TX-only sink).
    pub null_rx: Option<bool>,
}

fn yes() -> bool {
    true
}
fn ring_2048() -> u32 {
    2048
}
fn ring_4096() -> u32 {
    4096
}

/// `busy_poll = { usecs, budget }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BusyPollSection {
    /// `SO_BUSY_POLL` microseconds (1..=1000).
    pub usecs: u32,
    /// `SO_BUSY_POLL_BUDGET` (1..=1024).
    pub budget: u32,
}

impl Default for BusyPollSection {
    fn default() -> Self {
        BusyPollSection { usecs: 20, budget: 64 }
    }
}

/// `[[app]]`: a named app instance. Every `[[queue]]` whose `app` names it joins it; on each
/// lcore those queues share one instance of the app (one shard of its state), so an app can
/// own, say, the client side and the backend side of a NAT on the same lcore.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSection {
    /// Instance name, referenced by `[[queue]] app` (and by control commands).
    pub name: String,
    /// Which app (`relay`, `pktgen`, `l4lb`, ...).
    pub kind: String,
    /// App parameters (validated by the app).
    #[serde(default)]
    pub params: toml::Table,
}

/// `[[queue]]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSection {
    /// Port name.
    pub port: String,
    /// Queue id.
    #[serde(default)]
    pub queue: u32,
    /// CPU that polls it.
    pub lcore: usize,
    /// The name of an `[[app]]` instance, or an app kind: a kind gives this queue an instance
    /// of its own, configured by `params`.
    pub app: String,
    /// App parameters of a queue-own instance (`app` names a kind).
    #[serde(default)]
    pub params: toml::Table,
}

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $s:literal),+ $(,)? } default $d:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $v),+ }
        impl $name {
            /// Accepted spellings.
            pub const NAMES: &'static [&'static str] = &[$($s),+];
            /// The spelling.
            pub fn as_str(self) -> &'static str { match self { $($name::$v => $s),+ } }
        }
        impl Default for $name { fn default() -> Self { $name::$d } }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s { $($s => Ok($name::$v),)+ _ => Err(format!("unknown value '{}' (expected one of: {})", s, Self::NAMES.join(", "))) }
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

string_enum!(
    /// What an lcore does when idle.
    Idle { /// Keep polling.
    Spin = "spin", /// Sleep in poll() after a run of idle iterations.
    Poll = "poll", /// Drive the kernel with non-blocking recvfrom.
    BusyPoll = "busy-poll" } default Spin
);
string_enum!(
    /// UMEM page size.
    Hugepages { /// 2 MiB pages.
    TwoMeg = "2M", /// 1 GiB pages.
    OneGig = "1G", /// Normal pages.
    None = "none" } default TwoMeg
);
string_enum!(
    /// AF_XDP bind mode.
    BindMode { /// XDP_COPY.
    Copy = "copy", /// XDP_ZEROCOPY.
    ZeroCopy = "zero-copy", /// Zero-copy, falling back to copy.
    Auto = "auto" } default Auto
);
string_enum!(
    /// XDP attach mode.
    XdpMode { /// Driver mode.
    Native = "native", /// skb (generic) mode.
    Generic = "generic", /// Native, falling back to generic.
    Auto = "auto" } default Auto
);
string_enum!(
    /// Port kind.
    PortKind { /// An AF_XDP socket per bound queue.
    Xsk = "xsk", /// In-memory null port (DPDK net_null).
    Null = "null" } default Xsk
);

/// Known keys per section (for reporting every unknown key at once).
pub(crate) const TOP_KEYS: &[&str] = &["engine", "umem", "port", "app", "queue"];
pub(crate) const ENGINE_KEYS: &[&str] = &["burst", "idle", "stats_interval_ms", "duration_secs", "control_socket"];
pub(crate) const UMEM_KEYS: &[&str] = &["frames", "frame_size", "headroom", "hugepages"];
pub(crate) const PORT_KEYS: &[&str] = &[
    "name",
    "kind",
    "iface",
    "mode",
    "xdp_mode",
    "need_wakeup",
    "rx_ring",
    "tx_ring",
    "fill_ring",
    "comp_ring",
    "busy_poll",
    "claim",
    "null_len",
    "null_replay",
    "null_rx",
];
pub(crate) const BUSY_POLL_KEYS: &[&str] = &["usecs", "budget"];
pub(crate) const APP_KEYS: &[&str] = &["name", "kind", "params"];
pub(crate) const QUEUE_KEYS: &[&str] = &["port", "queue", "lcore", "app", "params"];
