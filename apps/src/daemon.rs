//! The daemon: turns a validated [`config::Plan`] into running lcores, and stops them cleanly.
//!
//! Order of operations (each step's failure is reported with its port/queue context and
//! unwinds what was done so far — programs detach, sockets close, nothing stays attached):
//! 1. map the UMEM (hugepages as configured, normal pages as a logged fallback);
//! 2. attach the XDP program to every AF_XDP port (native first, generic as a logged fallback
//!    when `xdp_mode = "auto"`), with the port's claim rules;
//! 3. per lcore: open each (port, queue) socket on the shared UMEM (fill ring primed from that
//!    lcore's cache) and register it in the port's XSKMAP;
//! 4. resolve every app's TX targets (same lcore: direct; other lcore: an SPSC handoff ring)
//!    and build the apps;
//! 5. run one pinned thread per lcore; the calling thread prints one line per lcore per
//!    `stats_interval` and watches for the stop flag (SIGINT/SIGTERM) or the duration;
//! 6. on stop: detach the XDP programs first (no new frames reach the sockets), then let the
//!    lcores drain and exit, then close sockets and unmap.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use config::{Plan, PortPlanKind};
use engine::{IdleMode, LcoreBuilder, LcoreOptions, LcoreSnapshot, TxPort};
use nic::xdp::{AttachedMode, XdpProgStats, XdpProgram};
use nic::{AnyPort, Backing, NullPort, PageSize, PoolCache, Region, RingPort, Umem, UmemConfig, XskConfig};

use crate::registry::{self, AnyApp, BuildCtx};
use crate::report;

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Set to stop (signal handlers, tests).
    pub stop: Arc<AtomicBool>,
    /// Print one line per lcore per interval to stdout.
    pub print_lines: bool,
    /// Called once every socket is bound and registered (tests and the demo wait for it).
    pub on_ready: Option<crossbeam_channel::Sender<()>>,
    /// Receives the result handles of the pktgen instances once they are built (before the
    /// lcores start), so a caller can show live statistics and read the final report.
    pub on_pktgen: Option<crossbeam_channel::Sender<Vec<PktgenEntry>>>,
}

/// A pktgen instance of a run: where it is bound and its result handle.
#[derive(Debug, Clone)]
pub struct PktgenEntry {
    /// Port name.
    pub port: String,
    /// Queue id.
    pub queue: u32,
    /// Results (live, final once the run returns).
    pub handle: crate::pktgen::PktgenHandle,
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
}

/// Frames each lcore's cache holds at most.
const CACHE_SIZE: usize = 1024;
/// Slots of a handoff ring between two lcores.
const HANDOFF_SLOTS: usize = 4096;

/// Runs `plan` until stopped; see the module docs for the sequence.
pub fn run(plan: &Plan, opts: RunOptions) -> Result<RunReport> {
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

    // XDP programs, one per AF_XDP port.
    let mut progs: HashMap<usize, XdpProgram> = HashMap::new();
    for (pi, port) in plan.ports.iter().enumerate() {
        if let PortPlanKind::Xsk(x) = &port.kind {
            let prog = XdpProgram::attach(&x.iface, xdp_mode(x.xdp_mode), &claim(&x.claim))
                .with_context(|| format!("port {}: attaching the XDP program to {}", port.name, x.iface))?;
            tracing::info!(port = %port.name, iface = %x.iface, mode = %prog.mode(), "XDP program attached");
            progs.insert(pi, prog);
        }
    }
    let result = run_with_programs(plan, &opts, &umem, &mut progs);
    // Whatever happened, detach what is still attached (normally already done at stop).
    for (_, p) in progs.drain() {
        if let Err(e) = p.detach() {
            tracing::warn!(error = %e, "detaching XDP program");
        }
    }
    result
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

fn run_with_programs<'u>(
    plan: &Plan,
    opts: &RunOptions,
    umem: &'u Umem,
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
    let port_index: HashMap<&str, usize> = plan.ports.iter().enumerate().map(|(i, p)| (p.name.as_str(), i)).collect();

    // 1. Open sockets per lcore and remember where each (port, queue) lives.
    let mut builders: Vec<LcoreBuilder<'u, AnyApp>> = Vec::new();
    // One clock for every lcore: instants (pktgen's TX timestamps) compare across lcores.
    let clock = engine::Clock::new();
    // (lcore index, TX target) of each bound (port index, queue).
    let mut local: Vec<HashMap<usize, Vec<(u32, TxPort)>>> = Vec::new();
    let mut bind_modes: HashMap<usize, String> = HashMap::new();
    for lp in &plan.lcores {
        let mut o = LcoreOptions::new(format!("lcore{}", lp.cpu));
        o.cpu = Some(lp.cpu);
        o.burst = burst;
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
                    bind_modes.insert(q.port, if sock.zero_copy() { "zero-copy".into() } else { "copy".into() });
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
                        "socket bound"
                    );
                    AnyPort::Ring(rp)
                }
                PortPlanKind::Null { len } => {
                    bind_modes.insert(q.port, "null".into());
                    AnyPort::Null(NullPort::new(*len as u32))
                }
            };
            let t = b.add_queue(name, any);
            map.entry(q.port).or_default().push((q.queue, t));
        }
        builders.push(b);
        local.push(map);
    }

    // 2. Handoff rings for TX ports bound only on other lcores.
    // remote[(from lcore, port index)] = TxPort on `from`.
    let mut remote: HashMap<(usize, usize), TxPort> = HashMap::new();
    for (li, lp) in plan.lcores.iter().enumerate() {
        for q in &lp.queues {
            let own = &plan.ports[q.port].name;
            for want in registry::tx_ports_wanted(&q.app, &q.params, own) {
                let Some(&pi) = port_index.get(want.as_str()) else { continue };
                if local[li].contains_key(&pi) || remote.contains_key(&(li, pi)) {
                    continue;
                }
                let Some((lj, (_, t))) = local.iter().enumerate().find_map(|(j, m)| m.get(&pi).map(|v| (j, v[0])))
                else {
                    return Err(anyhow!(
                        "queue {own}:{} wants to transmit on port {want}, which no lcore polls",
                        q.queue
                    ));
                };
                let (p, c) = rtrb::RingBuffer::new(HANDOFF_SLOTS);
                let rt = builders[li].add_remote(p);
                builders[lj].add_inbound(c, t);
                remote.insert((li, pi), rt);
                tracing::info!(from = lp.cpu, to = plan.lcores[lj].cpu, port = %want, "handoff ring between lcores");
            }
        }
    }

    // 3. Apps.
    let mut pktgens = Vec::new();
    for (li, lp) in plan.lcores.iter().enumerate() {
        for q in &lp.queues {
            let own = plan.ports[q.port].name.clone();
            let this =
                local[li][&q.port].iter().find(|(qq, _)| *qq == q.queue).map(|(_, t)| *t).expect("queue was added");
            let resolve = |name: &str| -> Option<TxPort> {
                let pi = *port_index.get(name)?;
                if let Some(v) = local[li].get(&pi) {
                    // Prefer the same queue id on the peer port (RSS symmetry), else the first.
                    return Some(v.iter().find(|(qq, _)| *qq == q.queue).unwrap_or(&v[0]).1);
                }
                remote.get(&(li, pi)).copied()
            };
            let mac_of = |name: &str| -> Option<[u8; 6]> { port_index.get(name).and_then(|&i| macs[i]) };
            let cx = BuildCtx { port: &own, this, resolve: &resolve, mac_of: &mac_of };
            let app = registry::build(&q.app, &q.params, &cx)
                .map_err(|e| anyhow!("queue {own}:{}: app {}: {e}", q.queue, q.app))?;
            if let Some(handle) = app.pktgen_handle() {
                pktgens.push(PktgenEntry { port: own.clone(), queue: q.queue, handle });
            }
            builders[li].set_app(this, q.app.clone(), app);
        }
    }
    if let Some(tx) = &opts.on_pktgen {
        let _ = tx.send(pktgens);
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
                bind_mode: bind_modes.get(&i).cloned().unwrap_or_else(|| "unbound".into()),
                xdp_mode: progs.get(&i).map(|p| p.mode()),
                xdp_stats: stats.get(&i).copied(),
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
    let finals = std::thread::scope(|s| -> Result<Vec<LcoreSnapshot>> {
        let handles: Vec<_> = lcores
            .into_iter()
            .map(|l| std::thread::Builder::new().name("xskd-lcore".into()).spawn_scoped(s, move || l.run()))
            .collect::<std::io::Result<_>>()
            .context("spawning lcore threads")?;
        let mut prev: Vec<LcoreSnapshot> = shared.iter().map(|s| s.lock().expect("snapshot").clone()).collect();
        let interval = plan.engine.stats_interval;
        let mut next = started + interval;
        loop {
            let all_done = handles.iter().all(|h| h.is_finished());
            if stop.load(Ordering::Relaxed) || all_done || plan.engine.duration.is_some_and(|d| started.elapsed() >= d)
            {
                break;
            }
            let now = Instant::now();
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
        let mut finals = Vec::new();
        for h in handles {
            finals.push(h.join().map_err(|_| anyhow!("an lcore thread panicked"))?);
        }
        Ok(finals)
    })?;
    let elapsed = finals.iter().map(|f| f.elapsed).max().unwrap_or_default();
    let stats: HashMap<usize, XdpProgStats> =
        progs.iter().filter_map(|(i, p)| p.stats().ok().map(|s| (*i, s))).collect();
    let ports = port_reports(progs, &stats);
    Ok(RunReport { elapsed, umem_backing: umem.backing(), umem: umem.config(), ports, lcores: finals, burst })
}
