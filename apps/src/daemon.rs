//! The daemon: turns a validated [`config::Plan`] into running lcores, and stops them cleanly.
//!
//! Order of operations (each step's failure is reported with its port/queue context and
//! unwinds what was done so far — programs detach, sockets close, nothing stays attached):
//! 1. map the UMEM (hugepages as configured, normal pages as a logged fallback);
//! 2. attach the XDP program to every AF_XDP port (native first, generic as a logged fallback
//!    when `xdp_mode = "auto"`), with the port's claim rules;
//! 3. per lcore: open each (port, queue) socket on the shared UMEM (fill ring primed from that
//!    lcore's cache) and register it in the port's XSKMAP;
//! 4. resolve every app's TX targets (same lcore: direct; other lcore: an SPSC handoff ring),
//!    build one shard per (app instance, lcore) owning the instance's queues there, and connect
//!    the shards of instances whose shards hand frames to each other;
//! 5. run one pinned thread per lcore; the calling thread prints one line per lcore per
//!    `stats_interval` and watches for the stop flag (SIGINT/SIGTERM) or the duration;
//! 6. on stop: take the sockets out of the XSKMAPs (no new frames reach them), let the lcores
//!    drain and exit, detach the XDP programs, take back the chunks the stopped rings still
//!    hold and close the sockets (`nic::RingPort::close`), then count the pool: every UMEM
//!    frame must be on the free list again (a shortfall is logged as a warning and reported);
//!    then unmap. Open fds and hugetlb memory are sampled before anything is opened and after
//!    everything is released ([`crate::resources`]), so leaks show in the report.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use config::PortPlanKind;
use engine::{AppSlot, IdleMode, LcoreBuilder, LcoreOptions, LcoreSnapshot, PortId, Shard, TxPort};
use nic::port::Reclaimed;

/// How long closing a port waits for its last TX completions.
const CLOSE_TIMEOUT: Duration = Duration::from_millis(100);
use nic::xdp::{AttachedMode, XdpProgStats, XdpProgram};
use nic::{
    AnyPort, Backing, BusyPollState, NullPort, PageSize, PoolCache, Region, RingPort, Umem, UmemConfig, XskConfig,
};

use crate::control::{ControlCtx, ControlSocket, Instance, LcoreControl, Shards};
use crate::registry::{AnyApp, AppHandle, BuildCtx, Plan, QueueInfo};
use crate::report;
use crate::resources::{self, Resources};

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Set to stop (signal handlers, tests).
    pub stop: Arc<AtomicBool>,
    /// Print one line per lcore per interval to stdout.
    pub print_lines: bool,
    /// Called once every socket is bound and registered (tests and the demo wait for it).
    pub on_ready: Option<crossbeam_channel::Sender<()>>,
    /// Receives the handles of the app shards that offer one, once they are built (before the
    /// lcores start), so a caller can show live statistics and read final reports.
    pub on_apps: Option<crossbeam_channel::Sender<Vec<AppEntry>>>,
}

/// An app shard of a run that offers a handle.
#[derive(Debug, Clone)]
pub struct AppEntry {
    /// Instance name.
    pub name: String,
    /// Shard index.
    pub shard: usize,
    /// CPU of its lcore.
    pub cpu: usize,
    /// Names of the ports of its queues.
    pub ports: Vec<String>,
    /// The handle (live, final once the run returns).
    pub handle: AppHandle,
}

/// What one port ended up as.
#[derive(Debug, Clone)]
pub struct PortReport {
    /// Port name.
    pub name: String,
    /// Interface (None for null ports).
    pub iface: Option<String>,
    /// "zero-copy", "copy" or "null".
    pub bind_mode: String,
    /// XDP attach mode obtained.
    pub xdp_mode: Option<AttachedMode>,
    /// XDP program counters at the end.
    pub xdp_stats: Option<XdpProgStats>,
    /// The port's AF_XDP sockets (none for null ports).
    pub sockets: Vec<SocketReport>,
}

/// One AF_XDP socket as the kernel reported it after it was set up.
#[derive(Debug, Clone)]
pub struct SocketReport {
    /// Queue id.
    pub queue: u32,
    /// Busy-poll options read back from the kernel (None if they could not be read).
    pub busy_poll: Option<BusyPollState>,
}

/// The UMEM's frames after the run: all of them should be on the free list again.
#[derive(Debug, Clone, Default)]
pub struct PoolAccount {
    /// Frames of the UMEM.
    pub frames: u64,
    /// Frames on the free list once the lcores stopped and the rings were reclaimed.
    pub free_after_stop: u64,
    /// Frames found on the handoff rings between lcores after they stopped (never sent).
    pub handoff_leftovers: u64,
    /// What was taken back from the stopped ports' rings (summed over the ports), and what
    /// their kernels kept.
    pub reclaimed: Reclaimed,
    /// The free list's own check: no address outside the UMEM, none twice (the error if not).
    pub free_list_error: Option<String>,
}

impl PoolAccount {
    /// Frames not back in the pool (negative: more on the free list than exist, a double free).
    pub fn missing(&self) -> i64 {
        self.frames as i64 - self.free_after_stop as i64
    }
}

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// Wall time the lcores ran.
    pub elapsed: Duration,
    /// UMEM backing obtained.
    pub umem_backing: Backing,
    /// UMEM geometry.
    pub umem: UmemConfig,
    /// Ports.
    pub ports: Vec<PortReport>,
    /// Final lcore snapshots.
    pub lcores: Vec<LcoreSnapshot>,
    /// Burst size.
    pub burst: usize,
    /// UMEM frames after stop.
    pub pool: PoolAccount,
    /// Open fds and hugetlb memory before and after.
    pub resources: Resources,
}

/// Frames each lcore's cache holds at most.
const CACHE_SIZE: usize = 1024;
/// Slots of a handoff ring between two lcores.
const HANDOFF_SLOTS: usize = 4096;
/// How often app controllers run.
const CONTROL_TICK: Duration = Duration::from_millis(100);

/// Runs `plan` until stopped; see the module docs for the sequence.
pub fn run(plan: &Plan, opts: RunOptions) -> Result<RunReport> {
    let fds_before = resources::open_fds("self");
    let (result, hugetlb_kib_mapped) = {
        let umem = map_umem(plan)?;
        let mut progs = HashMap::new();
        attach_programs(plan, &mut progs)?;
        let result = run_with_programs(plan, &opts, &umem, &mut progs);
        // Whatever happened, detach what is still attached (normally already done at stop).
        detach_all(&mut progs);
        (result, resources::hugetlb_kib("self"))
    };
    // The UMEM is unmapped and every socket and BPF object is closed: what is still open or
    // mapped now leaked.
    let mut report = result?;
    report.resources = Resources {
        fds_before,
        fds_after: resources::open_fds("self"),
        hugetlb_kib_mapped,
        hugetlb_kib_after: resources::hugetlb_kib("self"),
    };
    let r = &report.resources;
    if let (Some(b), Some(a)) = (r.fds_before, r.fds_after) {
        if a != b {
            tracing::warn!(
                before = b,
                after = a,
                "{} file descriptor(s) still open after the run",
                a as i64 - b as i64
            );
        }
    }
    if let Some(k) = r.hugetlb_kib_after.filter(|&k| k > 0) {
        tracing::warn!(kib = k, "hugetlb memory still mapped after the UMEM was unmapped");
    }
    Ok(report)
}

fn map_umem(plan: &Plan) -> Result<Umem> {
    let page = match plan.umem.hugepages {
        config::Hugepages::TwoMeg => PageSize::Huge2M,
        config::Hugepages::OneGig => PageSize::Huge1G,
        config::Hugepages::None => PageSize::Normal,
    };
    let ucfg =
        UmemConfig { frame_size: plan.umem.frame_size, frame_count: plan.umem.frames, headroom: plan.umem.headroom };
    let region = Region::map(ucfg.frame_size as usize * ucfg.frame_count as usize, page).context("mapping the UMEM")?;
    let umem = Umem::new(region, ucfg).context("building the UMEM")?;
    tracing::info!(frames = ucfg.frame_count, frame_size = ucfg.frame_size, backing = %umem.backing(), "UMEM ready");
    Ok(umem)
}

/// One XDP program per AF_XDP port (on error, those attached so far detach when `progs` drops).
fn attach_programs(plan: &Plan, progs: &mut HashMap<usize, XdpProgram>) -> Result<()> {
    for (pi, port) in plan.ports.iter().enumerate() {
        if let PortPlanKind::Xsk(x) = &port.kind {
            let prog = XdpProgram::attach(&x.iface, xdp_mode(x.xdp_mode), &claim(&x.claim))
                .with_context(|| format!("port {}: attaching the XDP program to {}", port.name, x.iface))?;
            tracing::info!(port = %port.name, iface = %x.iface, mode = %prog.mode(), "XDP program attached");
            progs.insert(pi, prog);
        }
    }
    Ok(())
}

fn detach_all(progs: &mut HashMap<usize, XdpProgram>) {
    for (_, p) in progs.drain() {
        if let Err(e) = p.detach() {
            tracing::warn!(error = %e, "detaching XDP program");
        }
    }
}

fn xdp_mode(m: config::XdpMode) -> nic::xdp::XdpMode {
    match m {
        config::XdpMode::Native => nic::xdp::XdpMode::Native,
        config::XdpMode::Generic => nic::xdp::XdpMode::Generic,
        config::XdpMode::Auto => nic::xdp::XdpMode::Auto,
    }
}

fn claim(c: &config::Claim) -> nic::xdp::Claim {
    match c {
        config::Claim::All => nic::xdp::Claim::All,
        config::Claim::Rules(rules) => nic::xdp::Claim::Rules(
            rules
                .iter()
                .map(|r| nic::xdp::ClaimRule {
                    ethertype: r.ethertype,
                    proto: r.proto,
                    dst: r.dst.map(|c| (c.addr, c.prefix)),
                    dst_port: r.dst_port,
                })
                .collect(),
        ),
    }
}

fn bind_mode(m: config::BindMode) -> nic::BindMode {
    match m {
        config::BindMode::Copy => nic::BindMode::Copy,
        config::BindMode::ZeroCopy => nic::BindMode::ZeroCopy,
        config::BindMode::Auto => nic::BindMode::Auto,
    }
}

fn idle_mode(m: config::Idle) -> IdleMode {
    match m {
        config::Idle::Spin => IdleMode::Spin,
        config::Idle::Poll => IdleMode::Poll,
        config::Idle::BusyPoll => IdleMode::BusyPoll,
    }
}

/// Synthetic, locally administered MAC for null port `i`.
fn null_mac(i: usize) -> [u8; 6] {
    [0x02, 0, 0, 0, 0, i as u8]
}

/// What opening the queues found out about each port (by port index).
#[derive(Default)]
struct Opened {
    /// "zero-copy", "copy" or "null".
    bind_modes: HashMap<usize, String>,
    /// The port's sockets as the kernel reports them.
    sockets: HashMap<usize, Vec<SocketReport>>,
}

/// Where each bound (port, queue) lives: per lcore (index into `plan.lcores`), per port
/// index, the (queue id, TX target) pairs it polls.
type Local = Vec<HashMap<usize, Vec<(u32, TxPort)>>>;

/// Step 1: per lcore, a builder with its cache, and one socket (or null port) per queue, each
/// registered in its port's XSKMAP.
fn open_queues<'u>(
    plan: &Plan,
    umem: &'u Umem,
    progs: &mut HashMap<usize, XdpProgram>,
    opened: &mut Opened,
) -> Result<(Vec<LcoreBuilder<'u, AnyApp>>, Local)> {
    // One clock for every lcore: instants (pktgen's TX timestamps) compare across lcores.
    let clock = engine::Clock::new();
    let mut builders = Vec::new();
    let mut local: Local = Vec::new();
    let mut replays: HashMap<usize, (u32, Arc<[u8]>)> = HashMap::new();
    for lp in &plan.lcores {
        let mut o = LcoreOptions::new(format!("lcore{}", lp.cpu));
        o.cpu = Some(lp.cpu);
        o.burst = plan.engine.burst as usize;
        o.idle = idle_mode(plan.engine.idle);
        o.clock = Some(clock);
        let mut b = LcoreBuilder::new(o, PoolCache::new(umem, CACHE_SIZE));
        let mut map: HashMap<usize, Vec<(u32, TxPort)>> = HashMap::new();
        for q in &lp.queues {
            let port = &plan.ports[q.port];
            let name = format!("{}:{}", port.name, q.queue);
            let any = match &port.kind {
                PortPlanKind::Xsk(x) => {
                    let cfg = XskConfig {
                        ifname: x.iface.clone(),
                        queue: q.queue,
                        bind: bind_mode(x.mode),
                        need_wakeup: x.need_wakeup,
                        rx_size: x.rx_ring,
                        tx_size: x.tx_ring,
                        fill_size: x.fill_ring,
                        comp_size: x.comp_ring,
                        busy_poll: x.busy_poll.map(|bp| nic::BusyPoll { usecs: bp.usecs, budget: bp.budget }),
                        tx_budget: Some(x.tx_budget),
                    };
                    let rp = RingPort::open_xsk(umem, b.cache_mut(), &cfg)
                        .with_context(|| format!("opening {name} on lcore {}", lp.cpu))?;
                    let sock = rp.socket().expect("xsk port has a socket");
                    opened.bind_modes.insert(q.port, if sock.zero_copy() { "zero-copy".into() } else { "copy".into() });
                    let busy_poll = sock
                        .busy_poll_state()
                        .map_err(|e| tracing::warn!(queue = %name, error = %e, "reading busy-poll options back"))
                        .ok();
                    opened.sockets.entry(q.port).or_default().push(SocketReport { queue: q.queue, busy_poll });
                    let prog =
                        progs.get_mut(&q.port).ok_or_else(|| anyhow!("port {} has no XDP program", port.name))?;
                    prog.register_socket(q.queue, rp.socket_fd().expect("fd"))
                        .with_context(|| format!("registering {name} in the XSKMAP"))?;
                    tracing::info!(
                        queue = %name,
                        lcore = lp.cpu,
                        zero_copy = sock.zero_copy(),
                        need_wakeup = sock.need_wakeup(),
                        tx_budget = ?sock.tx_budget(),
                        busy_poll = ?busy_poll,
                        "socket bound"
                    );
                    AnyPort::Ring(rp)
                }
                PortPlanKind::Null { len, replay, rx } => {
                    opened.bind_modes.insert(q.port, "null".into());
                    AnyPort::Null(match (replay, rx) {
                        (_, false) => NullPort::tx_only(),
                        (Some(path), true) => {
                            let (len, frames) = match replays.get(&q.port) {
                                Some(r) => r.clone(),
                                None => {
                                    let r = load_replay(path).with_context(|| format!("port {}", port.name))?;
                                    let room = umem.frame_size() as usize - umem.config().headroom as usize;
                                    if r.0 as usize > room {
                                        bail!(
                                            "port {}: replayed frames of {} bytes do not fit {room}-byte UMEM frames",
                                            port.name,
                                            r.0
                                        );
                                    }
                                    replays.insert(q.port, r.clone());
                                    r
                                }
                            };
                            let queues =
                                plan.lcores.iter().flat_map(|l| &l.queues).filter(|x| x.port == q.port).count();
                            NullPort::replay_share(len, frames, q.queue as usize % queues.max(1), queues.max(1))
                        }
                        (None, true) => NullPort::new(*len as u32),
                    })
                }
            };
            let t = b.add_queue(name, PortId(q.port as u16), any);
            map.entry(q.port).or_default().push((q.queue, t));
        }
        builders.push(b);
        local.push(map);
    }
    Ok((builders, local))
}

/// Reads a null port's replay pcap: every frame must have the same length.
fn load_replay(path: &std::path::Path) -> Result<(u32, Arc<[u8]>)> {
    let frames = crate::pktgen::pcap::read_frames(path, 9216)
        .map_err(|e| anyhow!("reading the replay pcap {}: {e}", path.display()))?;
    let len = frames.first().map(|f| f.len()).ok_or_else(|| anyhow!("{}: no frames", path.display()))?;
    if let Some((i, f)) = frames.iter().enumerate().find(|(_, f)| f.len() != len) {
        bail!(
            "{}: frame {i} is {} bytes, the first is {len}: a replay port needs frames of one length",
            path.display(),
            f.len()
        );
    }
    let mut all = Vec::with_capacity(len * frames.len());
    for f in &frames {
        all.extend_from_slice(f);
    }
    tracing::info!(file = %path.display(), frames = frames.len(), len, "null port replay loaded");
    Ok((len as u32, all.into()))
}

/// Ports app `a`'s shard on lcore `li` transmits on: those its parameters name, and its own.
fn ports_used(plan: &Plan, a: usize, li: usize) -> Vec<usize> {
    let mut v: Vec<usize> = plan.app_queues(li, a).map(|q| q.port).collect();
    for (_, name) in plan.apps[a].params.port_refs() {
        if let Some(pi) = plan.port_index(&name) {
            v.push(pi);
        }
    }
    v.sort_unstable();
    v.dedup();
    v
}

/// Step 2: a TX handoff ring for every port an lcore's apps transmit on but it does not poll,
/// to the lcore that polls it. Returns (lcore, port) → TX target on that lcore.
fn connect_remote_ports(
    plan: &Plan,
    builders: &mut [LcoreBuilder<'_, AnyApp>],
    local: &Local,
) -> Result<HashMap<(usize, usize), TxPort>> {
    let mut remote = HashMap::new();
    for (ai, app) in plan.apps.iter().enumerate() {
        for &li in &app.lcores {
            for pi in ports_used(plan, ai, li) {
                if local[li].contains_key(&pi) || remote.contains_key(&(li, pi)) {
                    continue;
                }
                let Some((lj, (_, t))) = local.iter().enumerate().find_map(|(j, m)| m.get(&pi).map(|v| (j, v[0])))
                else {
                    bail!("app {} wants to transmit on port {}, which no lcore polls", app.name, plan.ports[pi].name);
                };
                let (p, c) = rtrb::RingBuffer::new(HANDOFF_SLOTS);
                let rt = builders[li].add_remote(p);
                builders[lj].add_inbound(c, t);
                remote.insert((li, pi), rt);
                tracing::info!(
                    from = plan.lcores[li].cpu,
                    to = plan.lcores[lj].cpu,
                    port = %plan.ports[pi].name,
                    "TX handoff ring between lcores"
                );
            }
        }
    }
    Ok(remote)
}

/// A built app shard: which instance, on which lcore, in which slot.
struct Built {
    app: usize,
    lcore: usize,
    slot: AppSlot,
}

/// Step 3: one shard per (app instance, lcore), owning the instance's queues there.
fn build_shards(
    plan: &Plan,
    builders: &mut [LcoreBuilder<'_, AnyApp>],
    local: &Local,
    remote: &HashMap<(usize, usize), TxPort>,
    macs: &[Option<[u8; 6]>],
    entries: &mut Vec<AppEntry>,
) -> Result<Vec<Built>> {
    let mut built = Vec::new();
    for (ai, app) in plan.apps.iter().enumerate() {
        for (shard, &li) in app.lcores.iter().enumerate() {
            let queues: Vec<QueueInfo> = plan
                .app_queues(li, ai)
                .map(|q| QueueInfo {
                    port: PortId(q.port as u16),
                    port_name: plan.ports[q.port].name.clone(),
                    queue: q.queue,
                    tx: local[li][&q.port].iter().find(|(qq, _)| *qq == q.queue).expect("queue was opened").1,
                })
                .collect();
            let resolve = |name: &str| -> Option<TxPort> {
                let pi = plan.port_index(name)?;
                if let Some(v) = local[li].get(&pi) {
                    // Prefer the shard's own queue id on that port (RSS symmetry), else the first.
                    let own = queues.first().map(|q| q.queue);
                    return Some(v.iter().find(|(qq, _)| Some(*qq) == own).unwrap_or(&v[0]).1);
                }
                remote.get(&(li, pi)).copied()
            };
            let port_id = |name: &str| plan.port_index(name).map(|i| PortId(i as u16));
            let mac_of = |name: &str| plan.port_index(name).and_then(|i| macs[i]);
            let cx = BuildCtx {
                name: &app.name,
                shard: Shard(shard as u16),
                shards: app.lcores.len() as u16,
                burst: plan.engine.burst as usize,
                queues: &queues,
                resolve: &resolve,
                port_id: &port_id,
                mac_of: &mac_of,
            };
            let shard_app = app
                .params
                .build(&cx)
                .map_err(|e| anyhow!("app {} ({}) on lcore {}: {e}", app.name, app.kind, plan.lcores[li].cpu))?;
            if let Some(handle) = shard_app.handle() {
                entries.push(AppEntry {
                    name: app.name.clone(),
                    shard,
                    cpu: plan.lcores[li].cpu,
                    ports: queues.iter().map(|q| q.port_name.clone()).collect(),
                    handle,
                });
            }
            let txs: Vec<TxPort> = queues.iter().map(|q| q.tx).collect();
            let slot = builders[li].add_app(app.name.clone(), shard_app, &txs);
            built.push(Built { app: ai, lcore: li, slot });
        }
    }
    Ok(built)
}

/// Step 4: for apps whose shards hand frames to each other, a ring for every ordered pair of
/// shards.
fn link_shards(plan: &Plan, builders: &mut [LcoreBuilder<'_, AnyApp>], built: &[Built]) {
    for (ai, app) in plan.apps.iter().enumerate() {
        if !app.params.shard_handoff() || app.lcores.len() < 2 {
            continue;
        }
        let shards: Vec<&Built> = built.iter().filter(|b| b.app == ai).collect();
        for (i, from) in shards.iter().enumerate() {
            for (j, to) in shards.iter().enumerate() {
                if i == j {
                    continue;
                }
                let (p, c) = rtrb::RingBuffer::new(HANDOFF_SLOTS);
                builders[from.lcore].add_shard_out(from.slot, Shard(j as u16), p);
                builders[to.lcore].add_shard_in(to.slot, Shard(i as u16), c);
            }
        }
        tracing::info!(app = %app.name, shards = shards.len(), "shard handoff rings");
    }
}

/// Step 5: a command channel per lcore, and each instance's controller with the shards it
/// commands.
fn controllers(plan: &Plan, builders: &mut [LcoreBuilder<'_, AnyApp>], built: &[Built]) -> Vec<Instance> {
    let channels: Vec<LcoreControl> = builders
        .iter_mut()
        .map(|b| {
            let (tx, rx) = crossbeam_channel::unbounded();
            b.control(rx);
            tx
        })
        .collect();
    plan.apps
        .iter()
        .enumerate()
        .map(|(ai, app)| {
            let shards = Shards::new(
                built.iter().filter(|b| b.app == ai).map(|b| (channels[b.lcore].clone(), b.slot)).collect(),
            );
            let iface_of = |name: &str| match &plan.ports[plan.port_index(name)?].kind {
                PortPlanKind::Xsk(x) => Some(x.iface.clone()),
                PortPlanKind::Null { .. } => None,
            };
            let cx = ControlCtx { name: &app.name, iface_of: &iface_of };
            Instance { name: app.name.clone(), kind: app.params.kind(), controller: app.params.controller(&cx), shards }
        })
        .collect()
}

fn run_with_programs(
    plan: &Plan,
    opts: &RunOptions,
    umem: &Umem,
    progs: &mut HashMap<usize, XdpProgram>,
) -> Result<RunReport> {
    let burst = plan.engine.burst as usize;
    let macs: Vec<Option<[u8; 6]>> = plan
        .ports
        .iter()
        .enumerate()
        .map(|(i, p)| match &p.kind {
            PortPlanKind::Xsk(x) => nic::sys::if_hwaddr(&x.iface).ok(),
            PortPlanKind::Null { .. } => Some(null_mac(i)),
        })
        .collect();
    let mut opened = Opened::default();
    let (mut builders, local) = open_queues(plan, umem, progs, &mut opened)?;
    let remote = connect_remote_ports(plan, &mut builders, &local)?;
    let mut entries = Vec::new();
    let built = build_shards(plan, &mut builders, &local, &remote, &macs, &mut entries)?;
    link_shards(plan, &mut builders, &built);
    let mut instances = controllers(plan, &mut builders, &built);
    let socket = plan.engine.control_socket.as_deref().map(ControlSocket::bind).transpose()?;
    for i in &mut instances {
        if let Some(c) = &mut i.controller {
            c.start(&i.shards).map_err(|e| anyhow!("app {} ({}): {e}", i.name, i.kind))?;
        }
    }
    if let Some(tx) = &opts.on_apps {
        let _ = tx.send(entries);
    }

    // 4. Run.
    let stop = opts.stop.clone();
    let lcore_stop = Arc::new(AtomicBool::new(false));
    let mut lcores = Vec::new();
    let mut shared = Vec::new();
    for b in builders {
        let (l, s) = b.build(lcore_stop.clone());
        lcores.push(l);
        shared.push(s);
    }
    let port_reports = |progs: &HashMap<usize, XdpProgram>, stats: &HashMap<usize, XdpProgStats>| -> Vec<PortReport> {
        plan.ports
            .iter()
            .enumerate()
            .map(|(i, p)| PortReport {
                name: p.name.clone(),
                iface: match &p.kind {
                    PortPlanKind::Xsk(x) => Some(x.iface.clone()),
                    PortPlanKind::Null { .. } => None,
                },
                bind_mode: opened.bind_modes.get(&i).cloned().unwrap_or_else(|| "unbound".into()),
                xdp_mode: progs.get(&i).map(|p| p.mode()),
                xdp_stats: stats.get(&i).copied(),
                sockets: opened.sockets.get(&i).cloned().unwrap_or_default(),
            })
            .collect()
    };
    if opts.print_lines {
        println!("{}", report::banner(plan, umem, &port_reports(progs, &HashMap::new())));
    }
    if let Some(tx) = &opts.on_ready {
        let _ = tx.send(());
    }
    let started = Instant::now();
    let stopped = std::thread::scope(|s| -> Result<Vec<engine::Stopped<'_>>> {
        let handles: Vec<_> = lcores
            .into_iter()
            .map(|l| {
                std::thread::Builder::new().name("xskd-lcore".into()).spawn_scoped(s, move || l.run_and_return_ports())
            })
            .collect::<std::io::Result<_>>()
            .context("spawning lcore threads")?;
        let mut prev: Vec<LcoreSnapshot> = shared.iter().map(|s| s.lock().expect("snapshot").clone()).collect();
        let interval = plan.engine.stats_interval;
        let mut next = started + interval;
        let mut next_tick = started;
        loop {
            let all_done = handles.iter().all(|h| h.is_finished());
            if stop.load(Ordering::Relaxed) || all_done || plan.engine.duration.is_some_and(|d| started.elapsed() >= d)
            {
                break;
            }
            if let Some(sock) = &socket {
                sock.serve_pending(&mut instances);
            }
            let now = Instant::now();
            if now >= next_tick {
                for i in &mut instances {
                    if let Some(c) = &mut i.controller {
                        c.tick(&i.shards);
                    }
                }
                next_tick = now + CONTROL_TICK;
            }
            if now >= next {
                for (i, sh) in shared.iter().enumerate() {
                    let cur = sh.lock().expect("snapshot").clone();
                    if opts.print_lines {
                        println!("{}", report::line(started.elapsed(), &prev[i], &cur));
                    }
                    prev[i] = cur;
                }
                next += interval;
                continue;
            }
            std::thread::sleep((next - now).min(Duration::from_millis(20)));
        }
        // Stop: first make the XDP programs stop steering frames to the sockets.
        for (pi, p) in progs.iter_mut() {
            if let PortPlanKind::Xsk(x) = &plan.ports[*pi].kind {
                for q in &x.queues {
                    let _ = p.unregister_socket(*q);
                }
            }
        }
        lcore_stop.store(true, Ordering::Relaxed);
        let stopped: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow!("an lcore thread panicked")))
            .collect::<Result<_>>()?;
        for i in &mut instances {
            if let Some(c) = &mut i.controller {
                c.stop();
            }
        }
        Ok(stopped)
    })?;
    let finals: Vec<LcoreSnapshot> = stopped.iter().map(|s| s.snapshot.clone()).collect();
    let elapsed = finals.iter().map(|f| f.elapsed).max().unwrap_or_default();
    let stats: HashMap<usize, XdpProgStats> =
        progs.iter().filter_map(|(i, p)| p.stats().ok().map(|s| (*i, s))).collect();
    let ports = port_reports(progs, &stats);
    // The programs go before the sockets close (see nic::xdp's ordering rule).
    detach_all(progs);
    let pool = account_pool(umem, stopped);
    Ok(RunReport {
        elapsed,
        umem_backing: umem.backing(),
        umem: umem.config(),
        ports,
        lcores: finals,
        burst,
        pool,
        resources: Resources::default(),
    })
}

/// Frees what is left on the handoff rings between the stopped lcores, takes back what the
/// stopped ports' rings hold, closes them, and counts the free list: every frame of the UMEM
/// should be on it. A shortfall (a leak) or an excess (a double free) is logged.
fn account_pool<'u>(umem: &'u Umem, stopped: Vec<engine::Stopped<'u>>) -> PoolAccount {
    let mut cache = PoolCache::new(umem, CACHE_SIZE);
    let mut handoff_leftovers = 0;
    let mut reclaimed = Reclaimed::default();
    for mut s in stopped {
        handoff_leftovers += s.free_leftovers(&mut cache);
        for port in s.ports.drain(..) {
            if let AnyPort::Ring(rp) = port {
                let r = rp.close(&mut cache, CLOSE_TIMEOUT);
                reclaimed.rx += r.rx;
                reclaimed.completions += r.completions;
                reclaimed.tx_unsent += r.tx_unsent;
                reclaimed.fill += r.fill;
                reclaimed.kept_by_kernel += r.kept_by_kernel;
            }
        }
    }
    drop(cache);
    let checked = umem.check_free_list();
    let pool = PoolAccount {
        frames: umem.frame_count() as u64,
        free_after_stop: umem.free_count() as u64,
        handoff_leftovers,
        reclaimed,
        free_list_error: checked.err(),
    };
    tracing::info!(frames = pool.frames, free = pool.free_after_stop, handoff_leftovers, reclaimed = ?reclaimed, "UMEM frames after stop");
    match pool.missing() {
        0 => {}
        m if m > 0 => tracing::warn!(
            frames = pool.frames,
            free = pool.free_after_stop,
            kept_by_kernel = reclaimed.kept_by_kernel,
            "{m} UMEM frame(s) not back in the pool after stop (leaked, or kept by the kernel)"
        ),
        m => tracing::warn!(
            frames = pool.frames,
            free = pool.free_after_stop,
            "{} more frame(s) on the free list than the UMEM has: a double free",
            -m
        ),
    }
    if let Some(e) = &pool.free_list_error {
        tracing::warn!(error = %e, "UMEM free list check after stop");
    }
    pool
}
