//! The veth tier: a device under test forwarding between two veths in copy mode, fed by the
//! in-kernel live-frames generator and counted by an XDP sink, with xskd and dpdk-testpmd run
//! on the identical topology.
//!
//! ```text
//! gen [g0] ⇄ [d0] dut [d1] ⇄ [s0] sink
//!  CPU0: LiveGen on g0 (d0's NAPI runs here too: a veth's receive work runs on the sender)
//!  CPU1: the DUT's forwarding core (its TX into d1 runs s0's XDP sink on the same core)
//! ```
//!
//! Every trial builds a fresh topology (unique namespace names) and tears it down through
//! `Drop`, bounds every participant in time, and counts forwarded frames with the sink's own
//! per-CPU counters (never the DUT's counters alone).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nic::netns::{format_mac, Topology};
use nic::xdp_tools::{AttachMode, LiveGen, LiveRun, SinkAction, XdpSink};

use crate::run::{cpu_busy, cpu_times, Background};
use crate::sample::steady;

/// Which system forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dut {
    /// `xskd run` with the relay app in this mode ("io", "mac", "macswap").
    Xskd(&'static str),
    /// `dpdk-testpmd` with DPDK's AF_XDP PMD in this forwarding mode ("io", "mac", "macswap").
    Testpmd(&'static str),
    /// TX ceiling of the forwarding core: `xskd pktgen` (AF_XDP engine) sending flat out from
    /// d1 into the sink, no generator, no RX.
    XskdTx,
    /// TX ceiling of the peer: `dpdk-testpmd --forward-mode=txonly` on d1 alone.
    TestpmdTx,
}

impl Dut {
    /// Short label.
    pub fn label(&self) -> String {
        match self {
            Dut::Xskd(m) => format!("xskd relay {m}"),
            Dut::Testpmd(m) => format!("dpdk-testpmd {m}"),
            Dut::XskdTx => "xskd pktgen (AF_XDP TX only)".to_string(),
            Dut::TestpmdTx => "dpdk-testpmd txonly".to_string(),
        }
    }

    /// Whether this DUT only transmits (no generator runs).
    pub fn tx_only(&self) -> bool {
        matches!(self, Dut::XskdTx | Dut::TestpmdTx)
    }
}

/// Options of one trial.
#[derive(Debug, Clone)]
pub struct TrialOpts {
    /// Frame length without FCS (60 = "64-byte frames").
    pub len: usize,
    /// Seconds of traffic.
    pub secs: u64,
    /// CPU of the generator (and of d0's NAPI).
    pub gen_cpu: usize,
    /// CPU of the DUT's forwarding core.
    pub fwd_cpu: usize,
    /// CPU of the DUT's control/main thread.
    pub main_cpu: usize,
    /// Offered rate (frames/s); `None` = as fast as the generator goes.
    pub rate_pps: Option<f64>,
    /// Count syscalls of the DUT with `perf stat` over the traffic window.
    pub count_syscalls: bool,
    /// xskd burst and TX budget.
    pub burst: u32,
    /// Scratch directory.
    pub dir: PathBuf,
}

/// What one trial measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Trial {
    /// Label of the DUT.
    pub dut: String,
    /// Frame length (no FCS).
    pub len: usize,
    /// Per-second forwarded rates counted at the sink (frames/s).
    pub samples: Vec<f64>,
    /// Steady-state forwarded rate (median of samples without first and last), Mpps.
    pub fwd_mpps: f64,
    /// Frames the generator sent.
    pub sent: u64,
    /// Frames the sink counted.
    pub received: u64,
    /// Offered rate, Mpps.
    pub offered_mpps: f64,
    /// 1 - received/sent.
    pub loss: f64,
    /// Busy share of each CPU over the traffic window.
    pub cpu_busy: Vec<f64>,
    /// Syscalls of the DUT process per forwarded frame (all syscalls, all threads).
    pub syscalls_per_pkt: Option<f64>,
    /// sendto calls (TX kicks) of the DUT per forwarded frame.
    pub sendto_per_pkt: Option<f64>,
    /// Raw syscall counts (name, count).
    pub syscalls: Vec<(String, u64)>,
}

/// One IPv4/UDP frame 198.18.0.1 → 198.19.0.1 of `len` bytes (no FCS) from `src` to `dst`, with
/// valid checksums and a pktgen signature: pktgen's own template builder, so the benchmarks send
/// what `xskd pktgen` sends.
pub fn udp4_frame(dst: [u8; 6], src: [u8; 6], len: usize) -> Vec<u8> {
    let len16 = u16::try_from(len).expect("frame length fits u16");
    let spec = apps::pktgen::PktgenSpec { size: apps::pktgen::FrameSize::Fixed(len16), ..Default::default() };
    let mut b = apps::pktgen::FrameBuilder::new(&spec, src, dst);
    let mut f = vec![0u8; b.max_len()];
    let n = b.build(&mut f, 0, 0);
    f.truncate(n);
    f
}

/// The xskd config for the veth tier: d0 and d1 claimed entirely, relay between them on
/// `fwd` lcore.
pub fn xskd_config(mode: &str, fwd: usize, burst: u32, secs: f64, sink_mac: [u8; 6], gen_mac: [u8; 6]) -> String {
    RelayDut { mode, fwd, burst, secs, sink_mac, gen_mac, idle: "spin", rx_ring: None }.toml()
}

/// An xskd relay DUT between d0 and d1 on one lcore, as a config.
#[derive(Debug, Clone, Copy)]
pub struct RelayDut<'a> {
    /// Relay mode (`io`, `mac`, `macswap`).
    pub mode: &'a str,
    /// The forwarding lcore's CPU.
    pub fwd: usize,
    /// Burst.
    pub burst: u32,
    /// Run time.
    pub secs: f64,
    /// Destination MAC towards the sink (`mac` mode).
    pub sink_mac: [u8; 6],
    /// Destination MAC towards the generator (`mac` mode).
    pub gen_mac: [u8; 6],
    /// Lcore idle mode (`spin`, `poll`, `busy-poll`).
    pub idle: &'a str,
    /// RX ring size of both ports (None: the default, 2048). The fill ring gets twice as many
    /// slots and the UMEM enough frames to prime both ports' fill rings.
    pub rx_ring: Option<u32>,
}

impl RelayDut<'_> {
    /// The `xskd run` config.
    pub fn toml(&self) -> String {
        let RelayDut { mode, fwd, burst, secs, sink_mac, gen_mac, idle, rx_ring } = *self;
        let (frames, rings) = match rx_ring {
            Some(n) => ((8 * n).max(16384), format!("rx_ring = {n}\nfill_ring = {}\n", 2 * n)),
            None => (16384, String::new()),
        };
        format!(
            r#"[engine]
burst = {burst}
idle = "{idle}"
duration_secs = {secs:.1}
[umem]
frames = {frames}
frame_size = 2048
hugepages = "2M"
[[port]]
name = "d0"
xdp_mode = "native"
claim = "all"
{rings}[[port]]
name = "d1"
xdp_mode = "native"
claim = "all"
{rings}{queues}"#,
            queues = apps::relay::two_port_queues("d0", "d1", fwd, mode, sink_mac, gen_mac),
        )
    }
}

/// Owned copies of `v`.
pub fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Directory of libxdp's default XSK program (DPDK's AF_XDP PMD loads it).
pub fn libxdp_object_path() -> String {
    for d in ["/usr/lib/x86_64-linux-gnu/bpf", "/usr/lib/aarch64-linux-gnu/bpf", "/usr/lib/bpf"] {
        if Path::new(d).join("xsk_def_xdp_prog.o").exists() {
            return d.to_string();
        }
    }
    "/usr/lib/x86_64-linux-gnu/bpf".to_string()
}

/// Polls `ok` every 50 ms until it says yes, fails after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> Result<bool>) -> Result<()> {
    let t0 = Instant::now();
    while t0.elapsed() < timeout {
        if ok()? {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{what}: not ready after {timeout:?}")
}

/// Starts `xskd run` on `cfg_text` inside namespace `ns`, its process pinned to `main_cpu` (the
/// lcores pin themselves), and waits until it has bound its sockets (`--ready-file`).
pub fn start_xskd_run(
    xskd: &Path,
    ns: &str,
    main_cpu: usize,
    cfg_text: &str,
    dir: &Path,
    tag: &str,
) -> Result<Background> {
    let cfg = dir.join(format!("{tag}.toml"));
    std::fs::write(&cfg, cfg_text)?;
    let ready = dir.join(format!("{tag}.ready"));
    let _ = std::fs::remove_file(&ready);
    let argv = strings(&[
        "ip",
        "netns",
        "exec",
        ns,
        "taskset",
        "-c",
        &main_cpu.to_string(),
        &xskd.to_string_lossy(),
        "run",
        "--quiet",
        "--config",
        &cfg.to_string_lossy(),
        "--ready-file",
        &ready.to_string_lossy(),
    ]);
    let mut b = Background::spawn(&argv, dir, tag)?;
    wait_for("xskd", Duration::from_secs(20), || {
        if b.exited() {
            bail!("xskd exited early: {}", std::fs::read_to_string(dir.join(format!("{tag}.err"))).unwrap_or_default());
        }
        Ok(ready.exists())
    })?;
    Ok(b)
}

/// Starts `dpdk-testpmd` with DPDK's AF_XDP driver on `ifaces` inside namespace `ns` (main lcore
/// `main_cpu`, one forwarding core `fwd_cpu`), with `extra` testpmd arguments after the mode,
/// and waits until it prints statistics or `ready` says traffic flows.
#[allow(clippy::too_many_arguments)]
pub fn start_testpmd(
    ns: &str,
    main_cpu: usize,
    fwd_cpu: usize,
    ifaces: &[&str],
    mode: &str,
    burst: u32,
    extra: &[String],
    dir: &Path,
    tag: &str,
    mut ready: impl FnMut() -> Result<bool>,
) -> Result<Background> {
    let mut argv = strings(&[
        "ip",
        "netns",
        "exec",
        ns,
        "env",
        &format!("LIBXDP_OBJECT_PATH={}", libxdp_object_path()),
        "dpdk-testpmd",
        "-l",
        &format!("{main_cpu},{fwd_cpu}"),
        "--main-lcore",
        &main_cpu.to_string(),
        "--no-pci",
        "--huge-dir=/dev/hugepages",
        "-m",
        "512",
        &format!("--file-prefix=xskd-{tag}-{}", std::process::id()),
    ]);
    for (i, ifc) in ifaces.iter().enumerate() {
        argv.push("--vdev".into());
        argv.push(format!("net_af_xdp{i},iface={ifc}"));
    }
    argv.extend(strings(&[
        "--",
        "--nb-cores=1",
        &format!("--forward-mode={mode}"),
        &format!("--burst={burst}"),
        "--auto-start",
        "--stats-period=1",
    ]));
    argv.extend(extra.iter().cloned());
    let mut b = Background::spawn(&argv, dir, tag)?;
    wait_for("dpdk-testpmd", Duration::from_secs(30), || {
        if b.exited() {
            bail!(
                "dpdk-testpmd exited early: {}",
                std::fs::read_to_string(dir.join(format!("{tag}.err"))).unwrap_or_default()
            );
        }
        Ok(b.stdout().contains("Port statistics") || ready()?)
    })?;
    Ok(b)
}

/// Runs `perf stat` on `pid` for `secs`; returns (event, count) pairs.
fn perf_syscalls(pid: u32, secs: f64, dir: &Path) -> Result<Background> {
    let argv = strings(&[
        "perf",
        "stat",
        "-x",
        ",",
        "-e",
        "raw_syscalls:sys_enter",
        "-e",
        "syscalls:sys_enter_sendto",
        "-e",
        "syscalls:sys_enter_recvfrom",
        "-e",
        "syscalls:sys_enter_poll",
        "-p",
        &pid.to_string(),
        "--",
        "sleep",
        &format!("{secs:.2}"),
    ]);
    Ok(Background::spawn(&argv, dir, "perf")?)
}

fn parse_perf(stderr: &str) -> Vec<(String, u64)> {
    stderr
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let n = f.first()?.trim().parse::<u64>().ok()?;
            let ev = f.get(2)?.trim().to_string();
            Some((ev, n))
        })
        .collect()
}

/// One trial of `dut` on a fresh topology.
pub fn trial(dut: Dut, xskd: &Path, o: &TrialOpts) -> Result<Trial> {
    let topo = Topology::new("e2v").context("building the veth topology (needs root)")?;
    // The sink: counts and drops every frame that reaches s0.
    let sink = topo
        .sink()
        .run_in(|| {
            XdpSink::attach(Topology::SINK_IF, AttachMode::Native, SinkAction::Drop).map_err(std::io::Error::other)
        })
        .context("attaching the XDP sink on s0")?;
    let dut_ns = topo.dut().name().to_string();
    let ready = o.dir.join(format!("ready-{}", std::process::id()));
    let _ = std::fs::remove_file(&ready);
    let main = o.main_cpu.to_string();
    let fwd = o.fwd_cpu;
    let run_secs = o.secs as f64 + 8.0;
    let proc = match dut {
        Dut::Xskd(mode) => {
            let cfg = xskd_config(mode, fwd, o.burst, run_secs, topo.sink_mac(), topo.gen_mac());
            start_xskd_run(xskd, &dut_ns, o.main_cpu, &cfg, &o.dir, "xskd")?
        }
        Dut::XskdTx => {
            let argv = strings(&[
                "ip",
                "netns",
                "exec",
                &dut_ns,
                "taskset",
                "-c",
                &main,
                &xskd.to_string_lossy(),
                "pktgen",
                "--iface",
                "d1",
                "--dst-mac",
                &format_mac(&topo.sink_mac()),
                "--size",
                &o.len.to_string(),
                "--duration",
                &format!("{}", o.secs + 4),
                "--lcore",
                &fwd.to_string(),
                "--burst",
                &o.burst.to_string(),
                "--xdp-mode",
                "native",
                "--json",
            ]);
            let b = Background::spawn(&argv, &o.dir, "xskd-tx")?;
            let s = &sink;
            wait_for("xskd pktgen", Duration::from_secs(20), || Ok(s.counts()?.packets > 0))?;
            b
        }
        Dut::Testpmd(_) | Dut::TestpmdTx => {
            let (mode, ifaces, extra): (&str, &[&str], Vec<String>) = match dut {
                Dut::Testpmd(m) => (
                    m,
                    &["d0", "d1"],
                    vec![
                        format!("--eth-peer=1,{}", format_mac(&topo.sink_mac())),
                        format!("--eth-peer=0,{}", format_mac(&topo.gen_mac())),
                    ],
                ),
                _ => (
                    "txonly",
                    &["d1"],
                    vec![format!("--eth-peer=0,{}", format_mac(&topo.sink_mac())), format!("--txpkts={}", o.len)],
                ),
            };
            let s = &sink;
            start_testpmd(&dut_ns, o.main_cpu, fwd, ifaces, mode, o.burst, &extra, &o.dir, "testpmd", || {
                Ok(s.counts()?.packets > 0)
            })?
        }
    };

    // Generator on gen_cpu in the gen namespace, flat out or at a rate, for `secs`.
    let frame = udp4_frame(topo.dut_gen_mac(), topo.gen_mac(), o.len);
    let stop = Arc::new(AtomicBool::new(false));
    let gen_cpu = o.gen_cpu;
    let tx_only = dut.tx_only();
    let run = LiveRun { count: None, duration: Duration::from_secs(o.secs), rate_pps: o.rate_pps, batch: 64 };
    let c0 = cpu_times();
    let perf = if o.count_syscalls { Some(perf_syscalls(proc.pid(), o.secs as f64 - 1.0, &o.dir)?) } else { None };
    let s0 = sink.counts()?;
    let t0 = Instant::now();
    let gen = {
        let stop = stop.clone();
        let ns = topo.generator();
        std::thread::scope(|sc| {
            let h = sc.spawn(move || {
                ns.run_in(|| {
                    if tx_only {
                        std::thread::sleep(run.duration);
                        return Ok(nic::xdp_tools::LiveReport { sent: 0, seen: 0, elapsed: run.duration, calls: 0 });
                    }
                    nic::sys::pin_current_thread(gen_cpu)?;
                    let g = LiveGen::new(Topology::GEN_IF, 0, 0).map_err(std::io::Error::other)?;
                    g.run(&frame, &run, &|| stop.load(Ordering::Relaxed)).map_err(std::io::Error::other)
                })
            });
            // Sample the sink once per second while the generator runs.
            let mut samples = Vec::new();
            let mut last = s0;
            let mut next = t0 + Duration::from_secs(1);
            while !h.is_finished() {
                let now = Instant::now();
                if now >= next {
                    let c = sink.counts().unwrap_or(last);
                    samples.push(c.since(&last).packets as f64);
                    last = c;
                    next += Duration::from_secs(1);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            h.join().map_err(|_| anyhow::anyhow!("generator thread panicked")).map(|r| (r, samples))
        })?
    };
    let c1 = cpu_times();
    let (gen_report, samples) = gen;
    let gen_report = gen_report.context("live-frames generator")?;
    // Let the DUT drain what is in flight, then read the sink.
    std::thread::sleep(Duration::from_millis(300));
    let received = sink.counts()?.since(&s0).packets;
    let perf_out = perf.map(|p| p.stop(libc::SIGINT, Duration::from_secs(5)));
    let (_out, err, _code) = proc.stop(libc::SIGINT, Duration::from_secs(8));
    if received == 0 {
        bail!("{}: nothing reached the sink; DUT stderr:\n{err}", dut.label());
    }
    let fwd_pps = steady(&samples);
    let (syscalls, per_pkt, sendto_pp) = match perf_out {
        Some((_, perr, _)) => {
            let v = parse_perf(&perr);
            // perf ran for secs-1 seconds inside the traffic window; normalise by the frames the
            // sink counted in the same time span (steady rate × window).
            let window_pkts = fwd_pps * (o.secs as f64 - 1.0);
            let get = |k: &str| v.iter().find(|(e, _)| e.ends_with(k)).map(|x| x.1 as f64 / window_pkts);
            (v.clone(), get("raw_syscalls:sys_enter"), get("sys_enter_sendto"))
        }
        None => (Vec::new(), None, None),
    };
    Ok(Trial {
        dut: dut.label(),
        len: o.len,
        samples,
        fwd_mpps: fwd_pps / 1e6,
        sent: gen_report.sent,
        received,
        offered_mpps: gen_report.pps() / 1e6,
        loss: if tx_only { 0.0 } else { 1.0 - received as f64 / gen_report.sent.max(1) as f64 },
        cpu_busy: cpu_busy(&c0, &c1),
        syscalls_per_pkt: per_pkt,
        sendto_per_pkt: sendto_pp,
        syscalls,
    })
}
