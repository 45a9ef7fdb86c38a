//! Validation (every problem, each with its key) and the immutable [`Plan`] it produces.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use crate::claim::{self, Claim};
use crate::env::Environment;
use crate::schema::{BindMode, EngineConfig, Hugepages, Idle, PortKind, XdpMode};
use crate::ConfigError;

/// Frames each lcore's cache may hold (kept in sync with the daemon).
pub const LCORE_CACHE_FRAMES: u32 = 1024;

/// The validated, resolved configuration. Nothing in it needs defaulting or checking again.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Engine-wide settings.
    pub engine: EnginePlan,
    /// UMEM geometry.
    pub umem: UmemPlan,
    /// Ports, in file order.
    pub ports: Vec<PortPlan>,
    /// Lcores sorted by CPU, each with its queues in file order.
    pub lcores: Vec<LcorePlan>,
}

/// `[engine]`, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct EnginePlan {
    /// Frames per RX burst.
    pub burst: u32,
    /// Idle behaviour.
    pub idle: Idle,
    /// Stats line period.
    pub stats_interval: Duration,
    /// Bounded run time.
    pub duration: Option<Duration>,
}

/// `[umem]`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UmemPlan {
    /// Chunks.
    pub frames: u32,
    /// Chunk size.
    pub frame_size: u32,
    /// Kernel RX headroom.
    pub headroom: u32,
    /// Page size.
    pub hugepages: Hugepages,
}

/// A port.
#[derive(Debug, Clone, PartialEq)]
pub struct PortPlan {
    /// Name.
    pub name: String,
    /// Kind and settings.
    pub kind: PortPlanKind,
}

/// Kind-specific port settings.
#[derive(Debug, Clone, PartialEq)]
pub enum PortPlanKind {
    /// AF_XDP.
    Xsk(XskPortPlan),
    /// In-memory null port.
    Null {
        /// RX frame length.
        len: u16,
    },
}

/// An AF_XDP port.
#[derive(Debug, Clone, PartialEq)]
pub struct XskPortPlan {
    /// Interface.
    pub iface: String,
    /// Bind mode.
    pub mode: BindMode,
    /// XDP attach mode.
    pub xdp_mode: XdpMode,
    /// need_wakeup.
    pub need_wakeup: bool,
    /// RX ring size.
    pub rx_ring: u32,
    /// TX ring size.
    pub tx_ring: u32,
    /// Fill ring size.
    pub fill_ring: u32,
    /// Completion ring size.
    pub comp_ring: u32,
    /// Copy-mode TX budget per kick.
    pub tx_budget: u32,
    /// Busy polling.
    pub busy_poll: Option<BusyPoll>,
    /// Claim rules.
    pub claim: Claim,
    /// Queues bound (sorted).
    pub queues: Vec<u32>,
}

/// Busy polling settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusyPoll {
    /// `SO_BUSY_POLL` µs.
    pub usecs: u32,
    /// `SO_BUSY_POLL_BUDGET`.
    pub budget: u32,
}

/// One lcore.
#[derive(Debug, Clone, PartialEq)]
pub struct LcorePlan {
    /// CPU.
    pub cpu: usize,
    /// Queues it polls.
    pub queues: Vec<QueuePlan>,
}

/// One (port, queue) with its app.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuePlan {
    /// Index into [`Plan::ports`].
    pub port: usize,
    /// Queue id.
    pub queue: u32,
    /// App name.
    pub app: String,
    /// App parameters (validated by the app).
    pub params: toml::Table,
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 32 && s.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

fn ring(errs: &mut Vec<ConfigError>, key: String, v: u32) {
    if !v.is_power_of_two() || !(64..=16384).contains(&v) {
        errs.push(ConfigError::new(&key, format!("expected a power of two between 64 and 16384, got {v}")));
    }
}

/// Validates `cfg` against `env`; returns the plan or every problem found.
pub fn validate(cfg: &EngineConfig, env: &dyn Environment) -> Result<Plan, Vec<ConfigError>> {
    let mut errs = Vec::new();
    let e = &cfg.engine;
    if !(1..=256).contains(&e.burst) {
        errs.push(ConfigError::new("engine.burst", format!("expected 1..=256, got {}", e.burst)));
    }
    if !(100..=60_000).contains(&e.stats_interval_ms) {
        errs.push(ConfigError::new(
            "engine.stats_interval_ms",
            format!("expected 100..=60000, got {}", e.stats_interval_ms),
        ));
    }
    if let Some(d) = e.duration_secs {
        if !d.is_finite() || d <= 0.0 || d > 1e7 {
            errs.push(ConfigError::new(
                "engine.duration_secs",
                format!("expected a positive number of seconds, got {d}"),
            ));
        }
    }
    let u = &cfg.umem;
    if !u.frame_size.is_power_of_two() || !(2048..=32768).contains(&u.frame_size) {
        errs.push(ConfigError::new(
            "umem.frame_size",
            format!("expected a power of two between 2048 and 32768, got {}", u.frame_size),
        ));
    }
    if u.frame_size >= 2048 && u.headroom + 256 + 64 > u.frame_size {
        errs.push(ConfigError::new(
            "umem.headroom",
            format!(
                "{} leaves less than 64 data bytes in a {}-byte frame (256 more are the kernel's XDP headroom)",
                u.headroom, u.frame_size
            ),
        ));
    }
    if u.frames == 0 || u.frames > (1 << 24) {
        errs.push(ConfigError::new("umem.frames", format!("expected 1..=16777216, got {}", u.frames)));
    }

    // Ports.
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut claims: Vec<Option<Claim>> = Vec::new();
    for (pi, p) in cfg.ports.iter().enumerate() {
        let k = |f: &str| format!("port[{pi}].{f}");
        if !valid_name(&p.name) {
            errs.push(ConfigError::new(
                &k("name"),
                format!("'{}' is not a valid name (1-32 of A-Z a-z 0-9 _ . -)", p.name),
            ));
        }
        if let Some(prev) = names.insert(p.name.as_str(), pi) {
            errs.push(ConfigError::new(&k("name"), format!("'{}' is already the name of port[{prev}]", p.name)));
        }
        match p.kind {
            PortKind::Xsk => {
                let iface = p.iface.as_deref().unwrap_or(&p.name);
                if !env.iface_exists(iface) {
                    let key = if p.iface.is_some() { k("iface") } else { k("name") };
                    errs.push(ConfigError::new(&key, format!("interface '{iface}' does not exist")));
                }
                for (f, v) in [
                    ("rx_ring", p.rx_ring),
                    ("tx_ring", p.tx_ring),
                    ("fill_ring", p.fill_ring),
                    ("comp_ring", p.comp_ring),
                ] {
                    ring(&mut errs, k(f), v);
                    if v < e.burst && v.is_power_of_two() {
                        errs.push(ConfigError::new(&k(f), format!("{v} is smaller than engine.burst ({})", e.burst)));
                    }
                }
                if let Some(tb) = p.tx_budget {
                    if tb < 32 || (p.tx_ring.is_power_of_two() && tb > p.tx_ring) {
                        errs.push(ConfigError::new(
                            &k("tx_budget"),
                            format!("expected 32..=tx_ring ({}), got {tb}", p.tx_ring),
                        ));
                    }
                }
                if let Some(bp) = p.busy_poll {
                    if !(1..=1000).contains(&bp.usecs) {
                        errs.push(ConfigError::new(
                            &k("busy_poll.usecs"),
                            format!("expected 1..=1000, got {}", bp.usecs),
                        ));
                    }
                    if !(1..=1024).contains(&bp.budget) {
                        errs.push(ConfigError::new(
                            &k("busy_poll.budget"),
                            format!("expected 1..=1024, got {}", bp.budget),
                        ));
                    }
                }
                if p.null_len.is_some() {
                    errs.push(ConfigError::new(&k("null_len"), "only meaningful for kind = \"null\"".into()));
                }
                claims.push(claim::parse(p.claim.as_ref(), pi, &mut errs));
            }
            PortKind::Null => {
                for (f, set) in
                    [("iface", p.iface.is_some()), ("claim", p.claim.is_some()), ("busy_poll", p.busy_poll.is_some())]
                {
                    if set {
                        errs.push(ConfigError::new(&k(f), "has no meaning for kind = \"null\"".into()));
                    }
                }
                let len = p.null_len.unwrap_or(64);
                let max = u.frame_size.saturating_sub(u.headroom + 256);
                if !(60..=max.max(60)).contains(&len) {
                    errs.push(ConfigError::new(&k("null_len"), format!("expected 60..={max}, got {len}")));
                }
                claims.push(None);
            }
        }
    }

    // Queues.
    let mut seen: HashMap<(usize, u32), usize> = HashMap::new();
    let mut bound: HashSet<usize> = HashSet::new();
    let mut lcores: BTreeMap<usize, Vec<QueuePlan>> = BTreeMap::new();
    for (qi, q) in cfg.queues.iter().enumerate() {
        let k = |f: &str| format!("queue[{qi}].{f}");
        let port = names.get(q.port.as_str()).copied();
        match port {
            None => {
                let known: Vec<&str> = cfg.ports.iter().map(|p| p.name.as_str()).collect();
                errs.push(ConfigError::new(
                    &k("port"),
                    format!(
                        "no port named '{}' (ports: {})",
                        q.port,
                        if known.is_empty() { "none".into() } else { known.join(", ") }
                    ),
                ));
            }
            Some(pi) => {
                let p = &cfg.ports[pi];
                if p.kind == PortKind::Xsk {
                    let iface = p.iface.as_deref().unwrap_or(&p.name);
                    if let Some(n) = env.iface_queues(iface) {
                        if q.queue >= n {
                            errs.push(ConfigError::new(
                                &k("queue"),
                                format!("interface '{iface}' has {n} queue(s); queue {} does not exist", q.queue),
                            ));
                        }
                    }
                    if q.queue >= 64 {
                        errs.push(ConfigError::new(
                            &k("queue"),
                            format!("queue {} is beyond the XSKMAP's 64 entries", q.queue),
                        ));
                    }
                }
                if let Some(prev) = seen.insert((pi, q.queue), qi) {
                    errs.push(ConfigError::new(
                        &k("queue"),
                        format!("{}:{} is already bound by queue[{prev}]", q.port, q.queue),
                    ));
                }
                bound.insert(pi);
            }
        }
        if !env.cpu_online(q.lcore) {
            errs.push(ConfigError::new(&k("lcore"), format!("CPU {} is not online", q.lcore)));
        }
        if !env.app_known(&q.app) {
            errs.push(ConfigError::new(
                &k("app"),
                format!("unknown app '{}' (known: {})", q.app, env.app_names().join(", ")),
            ));
        } else {
            for (pk, msg) in env.validate_params(&q.app, &q.params) {
                errs.push(ConfigError::new(&format!("queue[{qi}].params.{pk}"), msg));
            }
        }
        if let Some(pi) = port {
            lcores.entry(q.lcore).or_default().push(QueuePlan {
                port: pi,
                queue: q.queue,
                app: q.app.clone(),
                params: q.params.clone(),
            });
        }
    }
    for (pi, p) in cfg.ports.iter().enumerate() {
        // (A duplicate name is reported once, above; its queues bind to the last port of that name.)
        if p.kind == PortKind::Xsk && !bound.contains(&pi) && names.get(p.name.as_str()) == Some(&pi) {
            errs.push(ConfigError::new(
                &format!("port[{pi}]"),
                format!("port '{}' has no [[queue]] bound to it", p.name),
            ));
        }
    }
    if cfg.queues.is_empty() {
        errs.push(ConfigError::new("queue", "no [[queue]] binding: nothing to run".into()));
    }

    // UMEM budget: every fill and RX ring full, plus every lcore's cache and staging.
    let xsk_queues: Vec<(usize, u32)> =
        seen.keys().copied().filter(|(pi, _)| cfg.ports[*pi].kind == PortKind::Xsk).collect();
    let rings: u64 =
        xsk_queues.iter().map(|(pi, _)| cfg.ports[*pi].fill_ring as u64 + cfg.ports[*pi].rx_ring as u64).sum();
    let caches = lcores.len() as u64 * LCORE_CACHE_FRAMES as u64;
    let staging: u64 = lcores.values().map(|qs| qs.len() as u64 * 2 * e.burst as u64).sum();
    let need = rings + caches + staging;
    if (u.frames as u64) < need && u.frames > 0 {
        errs.push(ConfigError::new(
            "umem.frames",
            format!("{} frames cannot keep every ring supplied: {need} needed ({rings} for fill+RX rings of {} socket(s), {caches} for {} lcore cache(s), {staging} for TX staging)", u.frames, xsk_queues.len(), lcores.len()),
        ));
    }

    if !errs.is_empty() {
        return Err(errs);
    }
    let ports = cfg
        .ports
        .iter()
        .zip(claims)
        .enumerate()
        .map(|(pi, (p, claim))| PortPlan {
            name: p.name.clone(),
            kind: match p.kind {
                PortKind::Null => PortPlanKind::Null { len: p.null_len.unwrap_or(64) as u16 },
                PortKind::Xsk => {
                    let mut queues: Vec<u32> = seen.keys().filter(|(i, _)| *i == pi).map(|(_, q)| *q).collect();
                    queues.sort_unstable();
                    PortPlanKind::Xsk(XskPortPlan {
                        iface: p.iface.clone().unwrap_or_else(|| p.name.clone()),
                        mode: p.mode,
                        xdp_mode: p.xdp_mode,
                        need_wakeup: p.need_wakeup,
                        rx_ring: p.rx_ring,
                        tx_ring: p.tx_ring,
                        fill_ring: p.fill_ring,
                        comp_ring: p.comp_ring,
                        tx_budget: p.tx_budget.unwrap_or((2 * e.burst).max(32).min(p.tx_ring)),
                        // idle = "busy-poll" drives the kernel with a recvfrom per RX burst,
                        // which busy-polls only on a socket with these options: a port without
                        // its own table gets DPDK's AF_XDP defaults (20 µs, budget = burst).
                        busy_poll: p
                            .busy_poll
                            .map(|b| BusyPoll { usecs: b.usecs, budget: b.budget })
                            .or((e.idle == Idle::BusyPoll).then_some(BusyPoll { usecs: 20, budget: e.burst })),
                        claim: claim.unwrap_or(Claim::All),
                        queues,
                    })
                }
            },
        })
        .collect();
    Ok(Plan {
        engine: EnginePlan {
            burst: e.burst,
            idle: e.idle,
            stats_interval: Duration::from_millis(e.stats_interval_ms),
            duration: e.duration_secs.map(Duration::from_secs_f64),
        },
        umem: UmemPlan { frames: u.frames, frame_size: u.frame_size, headroom: u.headroom, hugepages: u.hugepages },
        ports,
        lcores: lcores.into_iter().map(|(cpu, queues)| LcorePlan { cpu, queues }).collect(),
    })
}
