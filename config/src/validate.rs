//! Validation (every problem, each with its key) and the immutable [`Plan`] it produces.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use crate::claim::{self, Claim, ClaimRule};
use crate::env::Environment;
use crate::schema::{BindMode, EngineConfig, Hugepages, Idle, PortKind, XdpMode};
use crate::ConfigError;

/// Frames each lcore's cache may hold (kept in sync with the daemon).
pub const LCORE_CACHE_FRAMES: u32 = 1024;

/// The validated, resolved configuration. Nothing in it needs defaulting or checking again;
/// app parameters are already parsed into the apps' typed values (`P`).
#[derive(Debug, Clone, PartialEq)]
pub struct Plan<P> {
    /// Engine-wide settings.
    pub engine: EnginePlan,
    /// UMEM geometry.
    pub umem: UmemPlan,
    /// Ports, in file order.
    pub ports: Vec<PortPlan>,
    /// App instances: the `[[app]]` sections in file order, then one per queue that named an
    /// app kind directly.
    pub apps: Vec<AppPlan<P>>,
    /// Lcores sorted by CPU, each with its queues in file order.
    pub lcores: Vec<LcorePlan>,
}

/// One app instance. It runs as one shard per lcore that polls one of its queues; on each such
/// lcore the shard owns all of the instance's queues there.
#[derive(Debug, Clone, PartialEq)]
pub struct AppPlan<P> {
    /// Instance name (`[[app]] name`, or `kind@port:queue` for a queue's own instance).
    pub name: String,
    /// App kind.
    pub kind: String,
    /// Parsed parameters.
    pub params: P,
    /// Indices into [`Plan::lcores`] of the lcores it runs on, ascending: shard `i` runs on
    /// `lcores[i]`.
    pub lcores: Vec<usize>,
}

impl<P> AppPlan<P> {
    /// Shard index of this instance on lcore `lcore` (an index into [`Plan::lcores`]).
    pub fn shard_on(&self, lcore: usize) -> Option<usize> {
        self.lcores.iter().position(|&l| l == lcore)
    }
}

impl<P> Plan<P> {
    /// Index of the port named `name`.
    pub fn port_index(&self, name: &str) -> Option<usize> {
        self.ports.iter().position(|p| p.name == name)
    }

    /// The queues of app `app` on lcore `lcore` (indices into [`Plan::lcores`] and
    /// [`LcorePlan::queues`]).
    pub fn app_queues(&self, lcore: usize, app: usize) -> impl Iterator<Item = &QueuePlan> + '_ {
        self.lcores[lcore].queues.iter().filter(move |q| q.app == app)
    }
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
    /// Control socket path.
    pub control_socket: Option<std::path::PathBuf>,
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
        /// Replay the frames of this pcap on RX (else frames of `len` untouched bytes).
        replay: Option<std::path::PathBuf>,
        /// Whether RX hands out frames at all.
        rx: bool,
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

/// One (port, queue) with the app instance that owns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuePlan {
    /// Index into [`Plan::ports`].
    pub port: usize,
    /// Queue id.
    pub queue: u32,
    /// Index into [`Plan::apps`].
    pub app: usize,
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
///
/// The steps run in file order of the sections and each reports every problem it finds, so a
/// file with three mistakes gets three lines. `check` and `run` both call this: whatever it
/// accepts, the daemon can build without consulting the file again.
pub fn validate<E: Environment>(cfg: &EngineConfig, env: &E) -> Result<Plan<E::Params>, Vec<ConfigError>> {
    let mut errs = Vec::new();
    check_engine(cfg, &mut errs);
    check_umem(cfg, &mut errs);
    let ports = check_ports(cfg, env, &mut errs);
    let apps = check_apps(cfg, env, &mut errs);
    let queues = check_queues(cfg, env, &ports, apps, &mut errs);
    let mut ports = ports;
    check_references(cfg, env, &ports, &queues, &mut errs);
    check_shards(env, &queues, &mut errs);
    apply_app_claims(cfg, env, &mut ports, &queues, &mut errs);
    check_frame_budget(cfg, &queues, &mut errs);
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(build_plan(cfg, ports, queues))
}

fn check_engine(cfg: &EngineConfig, errs: &mut Vec<ConfigError>) {
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
    if let Some(p) = &e.control_socket {
        // sun_path holds 108 bytes including the terminating NUL.
        if p.is_empty() || p.len() > 107 {
            errs.push(ConfigError::new(
                "engine.control_socket",
                format!("expected a path of 1..=107 bytes (a Unix socket address), got {} bytes", p.len()),
            ));
        }
    }
    if let Some(d) = e.duration_secs {
        if !d.is_finite() || d <= 0.0 || d > 1e7 {
            errs.push(ConfigError::new(
                "engine.duration_secs",
                format!("expected a positive number of seconds, got {d}"),
            ));
        }
    }
}

fn check_umem(cfg: &EngineConfig, errs: &mut Vec<ConfigError>) {
    let u = &cfg.umem;
    if !u.frame_size.is_power_of_two() || !(2048..=32768).contains(&u.frame_size) {
        errs.push(ConfigError::new(
            "umem.frame_size",
            format!("expected a power of two between 2048 and 32768, got {}", u.frame_size),
        ));
    } else if u.frame_size > 4096 && u.hugepages == Hugepages::None {
        errs.push(ConfigError::new(
            "umem.frame_size",
            format!(
                "{} B chunks are larger than a 4 KiB page: the kernel accepts them only in hugepage memory \
                 (set umem.hugepages = \"2M\" or \"1G\", or frame_size = 4096)",
                u.frame_size
            ),
        ));
    }
    // u64: a headroom near u32::MAX must not wrap around and pass.
    if u.frame_size >= 2048 && u64::from(u.headroom) + 256 + 64 > u64::from(u.frame_size) {
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
}

/// What the port step learned: names, claims (AF_XDP ports), interfaces.
struct PortFacts {
    names: HashMap<String, usize>,
    claims: Vec<Option<Claim>>,
}

fn check_ports<E: Environment>(cfg: &EngineConfig, env: &E, errs: &mut Vec<ConfigError>) -> PortFacts {
    let (e, u) = (&cfg.engine, &cfg.umem);
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut ifaces: HashMap<&str, usize> = HashMap::new();
    let mut claims: Vec<Option<Claim>> = Vec::new();
    for (pi, p) in cfg.ports.iter().enumerate() {
        let k = |f: &str| format!("port[{pi}].{f}");
        if !valid_name(&p.name) {
            errs.push(ConfigError::new(
                &k("name"),
                format!("'{}' is not a valid name (1-32 of A-Z a-z 0-9 _ . -)", p.name),
            ));
        }
        let dup_name = names.insert(p.name.clone(), pi);
        if let Some(prev) = dup_name {
            errs.push(ConfigError::new(&k("name"), format!("'{}' is already the name of port[{prev}]", p.name)));
        }
        match p.kind {
            PortKind::Xsk => {
                let iface = p.iface.as_deref().unwrap_or(&p.name);
                let iface_key = if p.iface.is_some() { k("iface") } else { k("name") };
                if !env.iface_exists(iface) {
                    errs.push(ConfigError::new(&iface_key, format!("interface '{iface}' does not exist")));
                } else if let (None, Some(prev)) = (dup_name, ifaces.insert(iface, pi)) {
                    errs.push(ConfigError::new(
                        &iface_key,
                        format!("interface '{iface}' is already port[{prev}]: one XDP program and one set of queues per interface; bind more queues to that port instead"),
                    ));
                }
                for (f, v) in [
                    ("rx_ring", p.rx_ring),
                    ("tx_ring", p.tx_ring),
                    ("fill_ring", p.fill_ring),
                    ("comp_ring", p.comp_ring),
                ] {
                    ring(errs, k(f), v);
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
                for (f, set) in [
                    ("null_len", p.null_len.is_some()),
                    ("null_replay", p.null_replay.is_some()),
                    ("null_rx", p.null_rx.is_some()),
                ] {
                    if set {
                        errs.push(ConfigError::new(&k(f), "only meaningful for kind = \"null\"".into()));
                    }
                }
                claims.push(claim::parse(p.claim.as_ref(), pi, errs));
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
                let max = u.frame_size.saturating_sub(u.headroom.saturating_add(256));
                if !(60..=max.max(60)).contains(&len) {
                    errs.push(ConfigError::new(&k("null_len"), format!("expected 60..={max}, got {len}")));
                }
                if let Some(r) = &p.null_replay {
                    if p.null_len.is_some() {
                        errs.push(ConfigError::new(&k("null_len"), "the replayed frames have their own length".into()));
                    }
                    if !std::path::Path::new(r).is_file() {
                        errs.push(ConfigError::new(&k("null_replay"), format!("'{r}' is not a readable file")));
                    }
                }
                claims.push(None);
            }
        }
    }
    PortFacts { names, claims }
}

/// An app instance being assembled: its plan entry (params parsed, lcores filled later) and
/// where its parameters came from (for error keys).
struct AppDraft<P> {
    plan: Option<AppPlan<P>>,
    /// Key prefix of its params (`app[0].params` or `queue[3].params`).
    params_key: String,
    /// Section key (`app[0]` or `queue[3]`).
    key: String,
    used: bool,
}

fn parse_app<E: Environment>(
    env: &E,
    kind: &str,
    params: &toml::Table,
    kind_key: &str,
    params_key: &str,
    errs: &mut Vec<ConfigError>,
) -> Option<E::Params> {
    match env.parse_params(kind, params) {
        None => {
            errs.push(ConfigError::new(
                kind_key,
                format!("unknown app '{kind}' (known: {})", env.app_kinds().join(", ")),
            ));
            None
        }
        Some(Err(problems)) => {
            for (pk, msg) in problems {
                errs.push(ConfigError::new(&format!("{params_key}.{pk}"), msg));
            }
            None
        }
        Some(Ok(p)) => Some(p),
    }
}

fn check_apps<E: Environment>(cfg: &EngineConfig, env: &E, errs: &mut Vec<ConfigError>) -> Vec<AppDraft<E::Params>> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let kinds = env.app_kinds();
    cfg.apps
        .iter()
        .enumerate()
        .map(|(ai, a)| {
            let key = format!("app[{ai}]");
            if !valid_name(&a.name) {
                errs.push(ConfigError::new(
                    &format!("{key}.name"),
                    format!("'{}' is not a valid name (1-32 of A-Z a-z 0-9 _ . -)", a.name),
                ));
            } else if kinds.iter().any(|k| k == &a.name) {
                errs.push(ConfigError::new(
                    &format!("{key}.name"),
                    format!("'{}' is the name of an app kind; give the instance another name", a.name),
                ));
            }
            if let Some(prev) = seen.insert(a.name.as_str(), ai) {
                errs.push(ConfigError::new(
                    &format!("{key}.name"),
                    format!("'{}' is already the name of app[{prev}]", a.name),
                ));
            }
            let params_key = format!("{key}.params");
            let params = parse_app(env, &a.kind, &a.params, &format!("{key}.kind"), &params_key, errs);
            AppDraft {
                plan: params.map(|params| AppPlan {
                    name: a.name.clone(),
                    kind: a.kind.clone(),
                    params,
                    lcores: Vec::new(),
                }),
                params_key,
                key,
                used: false,
            }
        })
        .collect()
}

/// What the queue step produced: lcores (by CPU) with their queues, the app drafts (named and
/// queue-own), and which (port, queue)s are bound.
struct QueueFacts<P> {
    lcores: BTreeMap<usize, Vec<QueuePlan>>,
    apps: Vec<AppDraft<P>>,
    bound: HashSet<(usize, u32)>,
}

fn check_queues<E: Environment>(
    cfg: &EngineConfig,
    env: &E,
    ports: &PortFacts,
    mut apps: Vec<AppDraft<E::Params>>,
    errs: &mut Vec<ConfigError>,
) -> QueueFacts<E::Params> {
    let named: HashMap<&str, usize> = cfg.apps.iter().enumerate().map(|(i, a)| (a.name.as_str(), i)).collect();
    let mut seen: HashMap<(usize, u32), usize> = HashMap::new();
    let mut lcores: BTreeMap<usize, Vec<QueuePlan>> = BTreeMap::new();
    for (qi, q) in cfg.queues.iter().enumerate() {
        let k = |f: &str| format!("queue[{qi}].{f}");
        let port = ports.names.get(q.port.as_str()).copied();
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
            }
        }
        if !env.cpu_online(q.lcore) {
            errs.push(ConfigError::new(&k("lcore"), format!("CPU {} is not online", q.lcore)));
        }
        // The app: a named instance, or a kind (this queue's own instance).
        let app = match named.get(q.app.as_str()) {
            Some(&ai) => {
                if !q.params.is_empty() {
                    errs.push(ConfigError::new(
                        &k("params"),
                        format!("queue joins app instance '{}': its params belong in that [[app]] section", q.app),
                    ));
                }
                apps[ai].used = true;
                apps[ai].plan.is_some().then_some(ai)
            }
            None => {
                let params_key = k("params");
                let params = parse_app(env, &q.app, &q.params, &k("app"), &params_key, errs);
                let name = format!("{}@{}:{}", q.app, q.port, q.queue);
                apps.push(AppDraft {
                    plan: params.map(|params| AppPlan { name, kind: q.app.clone(), params, lcores: Vec::new() }),
                    params_key,
                    key: format!("queue[{qi}]"),
                    used: true,
                });
                apps[apps.len() - 1].plan.is_some().then_some(apps.len() - 1)
            }
        };
        if let (Some(pi), Some(app)) = (port, app) {
            lcores.entry(q.lcore).or_default().push(QueuePlan { port: pi, queue: q.queue, app });
        }
    }
    for a in apps.iter().filter(|a| !a.used) {
        if let Some(p) = &a.plan {
            errs.push(ConfigError::new(&a.key, format!("no [[queue]] runs app instance '{}'", p.name)));
        }
    }
    QueueFacts { lcores, apps, bound: seen.keys().copied().collect() }
}

/// Ports named by app parameters exist and are polled by some lcore; AF_XDP ports are bound.
fn check_references<E: Environment>(
    cfg: &EngineConfig,
    env: &E,
    ports: &PortFacts,
    queues: &QueueFacts<E::Params>,
    errs: &mut Vec<ConfigError>,
) {
    let polled: HashSet<usize> = queues.bound.iter().map(|(p, _)| *p).collect();
    for a in &queues.apps {
        let Some(plan) = &a.plan else { continue };
        for (pk, port) in env.port_refs(&plan.params) {
            let key = format!("{}.{pk}", a.params_key);
            match ports.names.get(port.as_str()) {
                None => errs.push(ConfigError::new(&key, format!("no port named '{port}'"))),
                Some(pi) if !polled.contains(pi) && cfg.ports[*pi].kind == PortKind::Null => {
                    errs.push(ConfigError::new(&key, format!("port '{port}' is polled by no lcore")));
                }
                Some(_) => {}
            }
        }
    }
    for (pi, p) in cfg.ports.iter().enumerate() {
        // (A duplicate name is reported once, above; its queues bind to the last port of that name.)
        if p.kind == PortKind::Xsk && !polled.contains(&pi) && ports.names.get(&p.name) == Some(&pi) {
            errs.push(ConfigError::new(
                &format!("port[{pi}]"),
                format!("port '{}' has no [[queue]] bound to it", p.name),
            ));
        }
    }
    if cfg.queues.is_empty() {
        errs.push(ConfigError::new("queue", "no [[queue]] binding: nothing to run".into()));
    }
}

/// Each app instance can run as as many shards as lcores poll its queues.
fn check_shards<E: Environment>(env: &E, queues: &QueueFacts<E::Params>, errs: &mut Vec<ConfigError>) {
    for (ai, a) in queues.apps.iter().enumerate() {
        let Some(plan) = &a.plan else { continue };
        let shards = queues.lcores.values().filter(|qs| qs.iter().any(|q| q.app == ai)).count();
        for (pk, msg) in env.check_shards(&plan.params, shards) {
            errs.push(ConfigError::new(&format!("{}.{pk}", a.params_key), msg));
        }
    }
}

/// Ports whose `claim` is unset claim what their apps ask for (every rule of every app that
/// names the port), or everything when no app asks.
fn apply_app_claims<E: Environment>(
    cfg: &EngineConfig,
    env: &E,
    ports: &mut PortFacts,
    queues: &QueueFacts<E::Params>,
    errs: &mut Vec<ConfigError>,
) {
    let mut wanted: BTreeMap<usize, Vec<ClaimRule>> = BTreeMap::new();
    for a in &queues.apps {
        let Some(plan) = &a.plan else { continue };
        for (port, rule) in env.port_claims(&plan.params) {
            if let Some(&pi) = ports.names.get(port.as_str()) {
                let rules = wanted.entry(pi).or_default();
                if !rules.contains(&rule) {
                    rules.push(rule);
                }
            }
        }
    }
    for (pi, rules) in wanted {
        let p = &cfg.ports[pi];
        if p.kind != PortKind::Xsk || p.claim.is_some() {
            continue;
        }
        if rules.len() > claim::MAX_RULES {
            errs.push(ConfigError::new(
                &format!("port[{pi}].claim"),
                format!(
                    "the apps on port '{}' need {} claim rules, more than the XDP program's {}; set claim explicitly",
                    p.name,
                    rules.len(),
                    claim::MAX_RULES
                ),
            ));
            continue;
        }
        ports.claims[pi] = Some(Claim::Rules(rules));
    }
}

/// UMEM budget: every fill and RX ring full, plus every lcore's cache and staging.
fn check_frame_budget<P>(cfg: &EngineConfig, queues: &QueueFacts<P>, errs: &mut Vec<ConfigError>) {
    let (e, u) = (&cfg.engine, &cfg.umem);
    let xsk_queues: Vec<(usize, u32)> =
        queues.bound.iter().copied().filter(|(pi, _)| cfg.ports[*pi].kind == PortKind::Xsk).collect();
    let rings: u64 =
        xsk_queues.iter().map(|(pi, _)| cfg.ports[*pi].fill_ring as u64 + cfg.ports[*pi].rx_ring as u64).sum();
    let caches = queues.lcores.len() as u64 * LCORE_CACHE_FRAMES as u64;
    let staging: u64 = queues.lcores.values().map(|qs| qs.len() as u64 * 2 * e.burst as u64).sum();
    let need = rings + caches + staging;
    if (u.frames as u64) < need && u.frames > 0 {
        errs.push(ConfigError::new(
            "umem.frames",
            format!("{} frames cannot keep every ring supplied: {need} needed ({rings} for fill+RX rings of {} socket(s), {caches} for {} lcore cache(s), {staging} for TX staging)", u.frames, xsk_queues.len(), queues.lcores.len()),
        ));
    }
}

/// Assembles the plan from checked parts (only called when there was no error).
fn build_plan<P>(cfg: &EngineConfig, ports: PortFacts, queues: QueueFacts<P>) -> Plan<P> {
    let (e, u) = (&cfg.engine, &cfg.umem);
    let lcores: Vec<LcorePlan> = queues.lcores.into_iter().map(|(cpu, queues)| LcorePlan { cpu, queues }).collect();
    let mut apps: Vec<AppPlan<P>> = queues.apps.into_iter().filter_map(|a| a.plan).collect();
    for (li, l) in lcores.iter().enumerate() {
        for q in &l.queues {
            let a = &mut apps[q.app];
            if a.lcores.last() != Some(&li) {
                a.lcores.push(li);
            }
        }
    }
    let ports = cfg
        .ports
        .iter()
        .zip(ports.claims)
        .enumerate()
        .map(|(pi, (p, claim))| PortPlan {
            name: p.name.clone(),
            kind: match p.kind {
                PortKind::Null => PortPlanKind::Null {
                    len: p.null_len.unwrap_or(64) as u16,
                    replay: p.null_replay.as_ref().map(std::path::PathBuf::from),
                    rx: p.null_rx.unwrap_or(true),
                },
                PortKind::Xsk => {
                    let mut queues: Vec<u32> = queues.bound.iter().filter(|(i, _)| *i == pi).map(|(_, q)| *q).collect();
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
    Plan {
        engine: EnginePlan {
            burst: e.burst,
            idle: e.idle,
            stats_interval: Duration::from_millis(e.stats_interval_ms),
            duration: e.duration_secs.map(Duration::from_secs_f64),
            control_socket: e.control_socket.as_ref().map(std::path::PathBuf::from),
        },
        umem: UmemPlan { frames: u.frames, frame_size: u.frame_size, headroom: u.headroom, hugepages: u.hugepages },
        ports,
        apps,
        lcores,
    }
}
