//! The L4 tier: the peers of an L4 NAT load balancer on veth with one DUT core, and xskd's
//! `l4lb` once it exists, on the same topology ([`L4Topo`]) with the same clients.
//!
//! Four measurements ([`Measure`]), each trial on a fresh topology (so conntrack starts empty):
//! * **syn** — new-flow rate: `xskd pktgen --proto tcp` sends 60-byte SYNs from random sources
//!   and ports of 198.18.128.0/17 (each a new flow) flat out; the rate is what reaches the
//!   backends, counted per second by XDP sinks on the backends' interfaces (which drop, so the
//!   backends never answer). Long enough to see what happens once conntrack's table is full.
//! * **udp N** — established flows: N UDP flows (sequential source ports × source addresses) are
//!   sent once at a moderate rate (so conntrack holds them), then flat out at 60 bytes; same
//!   counting.
//! * **conn** — new TCP connections per second end to end: [`crate::l4tcp`]'s client (kernel TCP)
//!   against its servers in the backends.
//! * **bulk** — one iperf3 TCP stream to backend b1 through the DUT; Gbit/s from iperf3's
//!   receiver and, from b1's interface counters (`ip -s link`), the skbs per second b1 received
//!   and their average size (MTU-sized here: the client has no TX checksum offload, so no TSO,
//!   see [`crate::l4topo`]; with it, veth would carry 64 KB GSO segments that an AF_XDP path
//!   never sees) and the 1514-byte frames those bytes are on a wire.
//!
//! Placement: generator, clients, servers, iperf3, the bridge and the harness on `gen_cpu`; the
//! DUT's work on `dut_cpu` (RPS for the kernel peers, `taskset` for haproxy and xskd).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nic::netns::format_mac;
use nic::xdp_tools::{AttachMode, SinkAction, XdpSink};
use serde_json::{json, Value};

use crate::kernel::{link_stats, ns_exec, sample_while, Trace};
use crate::l4sys::{L4System, Service, StartOpts};
use crate::l4tcp::{run_client, ClientStats, RrServer};
use crate::l4topo::L4Topo;
use crate::run::{bounded, cpu_busy, cpu_times, Background};
use crate::sample::{median, steady};
use crate::veth::{strings, wait_for};

/// One of the tier's measurements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// (a) new-flow rate: SYNs from distinct sources forwarded per second.
    Syn,
    /// (b) established UDP flows at 60 bytes, this many flows.
    Udp(u64),
    /// (c) new TCP connections per second end to end.
    Conn,
    /// (d) bulk TCP throughput.
    Bulk,
}

impl Measure {
    /// Short name ("syn", "udp-1000", "conn", "bulk").
    pub fn name(self) -> String {
        match self {
            Measure::Syn => "syn".into(),
            Measure::Udp(n) => format!("udp-{n}"),
            Measure::Conn => "conn".into(),
            Measure::Bulk => "bulk".into(),
        }
    }

    /// The service the traffic goes to.
    pub fn service(self) -> Service {
        match self {
            Measure::Syn | Measure::Conn => Service::Rr,
            Measure::Udp(_) => Service::Udp,
            Measure::Bulk => Service::Bulk,
        }
    }

    /// Whether `sys` takes part: haproxy terminates TCP (it forwards no SYN) and relays no UDP.
    pub fn applies(self, sys: L4System) -> bool {
        !(sys == L4System::Haproxy && matches!(self, Measure::Syn | Measure::Udp(_)))
    }

    /// Unit of the headline number.
    pub fn unit(self) -> &'static str {
        match self {
            Measure::Syn => "M new flows/s",
            Measure::Udp(_) => "Mpps",
            Measure::Conn => "k conn/s",
            Measure::Bulk => "Gbit/s",
        }
    }
}

/// Options of the tier.
#[derive(Debug, Clone)]
pub struct L4Opts {
    /// The xskd binary (generator, and the DUT when measured).
    pub xskd: PathBuf,
    /// Scratch directory.
    pub dir: PathBuf,
    /// Seconds of traffic of the udp, conn and bulk trials.
    pub secs: u64,
    /// Seconds of SYNs of the syn trial.
    pub syn_secs: u64,
    /// CPU of everything but the DUT.
    pub gen_cpu: usize,
    /// The DUT's CPU.
    pub dut_cpu: usize,
    /// Generator burst (and xskd's).
    pub burst: u32,
    /// Rate of the udp warm-up pass, frames/s.
    pub warm_pps: f64,
    /// Client threads of the conn trial.
    pub client_threads: usize,
    /// Before each trial, wait until the machine's other work is below this many cores
    /// (busy share summed over CPUs in a 1-s sample) …
    pub quiet_below: f64,
    /// … for at most this long (then the trial runs anyway; its `other_load` says so).
    pub quiet_wait: Duration,
    /// SNAT addresses of the DUT (1..=8).
    pub snat_addrs: u8,
    /// TX checksum offload on for the client and backends (kernel peers only).
    pub tx_offload: bool,
}

/// The machine's load just before a trial (nothing of the harness runs then).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OtherLoad {
    /// Busy share of each CPU over the last 1-s sample.
    pub busy: Vec<f64>,
    /// Seconds waited for it to drop below the threshold.
    pub waited_s: f64,
    /// Whether it did.
    pub quiet: bool,
}

/// Samples the CPUs for 1 s at a time until their summed busy share is below `below` cores or
/// `max` has passed.
pub fn wait_quiet(below: f64, max: Duration) -> OtherLoad {
    let t0 = std::time::Instant::now();
    loop {
        let c0 = cpu_times();
        std::thread::sleep(Duration::from_secs(1));
        let busy = cpu_busy(&c0, &cpu_times());
        let quiet = busy.iter().sum::<f64>() < below;
        if quiet || t0.elapsed() >= max {
            return OtherLoad { busy, waited_s: t0.elapsed().as_secs_f64() - 1.0, quiet };
        }
    }
}

/// Conntrack of the DUT namespace.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Conntrack {
    /// Entries (`nf_conntrack_count`).
    pub count: u64,
    /// `conntrack -S` summed over CPUs: name → value (drop, early_drop, insert_failed, …).
    pub stats: std::collections::BTreeMap<String, u64>,
}

/// What one trial measured.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct L4Trial {
    /// System.
    pub system: L4System,
    /// Measurement name.
    pub measure: String,
    /// Repetition.
    pub rep: usize,
    /// Headline number, in `unit`.
    pub value: f64,
    /// Its unit.
    pub unit: String,
    /// Per-second values (same unit).
    pub samples: Vec<f64>,
    /// What the generator says it offered (frames/s), where there is one.
    pub offered_pps: Option<f64>,
    /// Frames or connections per backend (b1, b2, b3).
    pub per_backend: Vec<u64>,
    /// Conntrack at the end (systems that use it).
    pub conntrack: Option<Conntrack>,
    /// Busy share of each CPU over the traffic.
    pub cpu_busy: Vec<f64>,
    /// Other work on the machine just before the trial.
    pub other_load: OtherLoad,
    /// Measurement-specific numbers.
    pub extra: Value,
}

/// One trial of `m` on `sys`, repetition `rep`, on a fresh topology.
pub fn trial(sys: L4System, m: Measure, rep: usize, o: &L4Opts) -> Result<L4Trial> {
    let other_load = wait_quiet(o.quiet_below, o.quiet_wait);
    if o.tx_offload && sys == L4System::Xskd {
        bail!("--tx-offload: an AF_XDP DUT needs complete checksums from the client and the backends");
    }
    let t = L4Topo::new("l4", o.snat_addrs, o.tx_offload).context("building the L4 topology (needs root)")?;
    t.place(o.dut_cpu, o.gen_cpu)?;
    t.warm_neighbours()?;
    let secs = match m {
        Measure::Syn => o.syn_secs,
        Measure::Udp(n) => o.secs + 4 + (n as f64 / o.warm_pps).ceil() as u64,
        _ => o.secs,
    };
    let max_flows = conntrack_max().map_or(262_144, |m| u32::try_from(m).unwrap_or(u32::MAX));
    let so =
        StartOpts { xskd: o.xskd.clone(), dir: o.dir.clone(), burst: o.burst, run_secs: secs as f64 + 20.0, max_flows };
    let mut running = sys.start(&t, o.dut_cpu, &so).with_context(|| format!("starting {}", sys.label()))?;
    let r = match m {
        Measure::Syn => syn(&t, sys, o),
        Measure::Udp(n) => udp(&t, sys, n, o),
        Measure::Conn => conn(&t, sys, o),
        Measure::Bulk => bulk(&t, sys, o),
    };
    running.check_alive(&o.dir)?;
    running.stop();
    let mut r = r.with_context(|| format!("{} {}", sys.label(), m.name()))?;
    r.system = sys;
    r.measure = m.name();
    r.rep = rep;
    r.unit = m.unit().to_string();
    r.other_load = other_load;
    if sys.uses_conntrack() {
        r.conntrack = Some(conntrack(&t)?);
    }
    Ok(r)
}

fn blank() -> L4Trial {
    L4Trial {
        system: L4System::Kernel,
        measure: String::new(),
        rep: 0,
        value: f64::NAN,
        unit: String::new(),
        samples: Vec::new(),
        offered_pps: None,
        per_backend: Vec::new(),
        conntrack: None,
        cpu_busy: Vec::new(),
        other_load: OtherLoad::default(),
        extra: Value::Null,
    }
}

/// Conntrack of the DUT namespace now.
pub fn conntrack(t: &L4Topo) -> Result<Conntrack> {
    let count = ns_exec(t.dut(), &["cat", "/proc/sys/net/netfilter/nf_conntrack_count"])?.trim().parse()?;
    let s = ns_exec(t.dut(), &["conntrack", "-S"]).unwrap_or_default();
    Ok(Conntrack { count, stats: parse_conntrack_stats(&s) })
}

/// Sums `conntrack -S` lines (`cpu=0 found=1 invalid=2 …`) over CPUs.
pub fn parse_conntrack_stats(s: &str) -> std::collections::BTreeMap<String, u64> {
    let mut m = std::collections::BTreeMap::new();
    for w in s.split_whitespace() {
        if let Some((k, v)) = w.split_once('=') {
            if k != "cpu" {
                if let Ok(v) = v.parse::<u64>() {
                    *m.entry(k.to_string()).or_insert(0) += v;
                }
            }
        }
    }
    m
}

/// The global conntrack table limit (`net.netfilter.nf_conntrack_max`, root namespace).
pub fn conntrack_max() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_max").ok()?.trim().parse().ok()
}

/// XDP counting sinks on the three backends' interfaces: IPv4/IPv6 frames are counted and
/// dropped (the backends never answer them), ARP goes to the backends' kernels, so the DUT
/// keeps resolving them however long a trial runs.
struct Sinks(Vec<XdpSink>);

impl Sinks {
    fn attach(t: &L4Topo) -> Result<Sinks> {
        let v = (0..3)
            .map(|i| {
                t.backend(i)
                    .run_in(|| {
                        XdpSink::attach_ip_only(L4Topo::BACKEND_IF, AttachMode::Native, SinkAction::Drop)
                            .map_err(std::io::Error::other)
                    })
                    .with_context(|| format!("XDP sink on b{}", i + 1))
            })
            .collect::<Result<_>>()?;
        Ok(Sinks(v))
    }

    fn per_backend(&self) -> Result<Vec<u64>> {
        self.0.iter().map(|s| Ok(s.counts()?.packets)).collect()
    }

    fn total(&self) -> Result<u64> {
        Ok(self.per_backend()?.iter().sum())
    }
}

/// Runs `xskd pktgen` in the client namespace on c0 towards d0 with `args`, bounded; its JSON.
fn pktgen(t: &L4Topo, o: &L4Opts, args: &[String], limit: Duration) -> Result<Value> {
    let cpu = o.gen_cpu.to_string();
    let mut argv = strings(&["ip", "netns", "exec", t.cli().name(), "taskset", "-c", &cpu]);
    argv.push(o.xskd.to_string_lossy().into_owned());
    argv.extend(strings(&["pktgen", "--iface", L4Topo::CLI_IF, "--dst-mac", &format_mac(&t.d0_mac())]));
    argv.extend(strings(&["--lcore", &cpu, "--burst", &o.burst.to_string(), "--json", "--size", "60"]));
    argv.extend(args.iter().cloned());
    let r = bounded(&argv, limit)?;
    if r.code != Some(0) {
        bail!("xskd pktgen {args:?} failed ({:?}): {}", r.code, r.stderr.trim());
    }
    serde_json::from_str(&r.stdout).with_context(|| format!("pktgen JSON: {}", r.stdout))
}

/// The destination flags: the VIP, or for kernel forwarding a random one of the backends.
fn dst_args(sys: L4System, svc: Service) -> Vec<String> {
    let d = sys.targets(svc);
    let mut a = strings(&["--dst-ip", &d[0].to_string(), "--dst-port", &svc.port().to_string()]);
    if d.len() > 1 {
        a.extend(strings(&["--dst-ip-count", &d.len().to_string()]));
    }
    a
}

/// Sends with pktgen while sampling the sinks every 10 ms; the pktgen JSON and the trace.
fn send_counted(t: &L4Topo, o: &L4Opts, sinks: &Sinks, args: &[String], secs: u64) -> Result<(Value, Trace)> {
    sample_while(
        Duration::from_millis(10),
        Duration::from_millis(300),
        || sinks.total(),
        || pktgen(t, o, args, Duration::from_secs(secs + 20)),
    )
}

/// What a SYN trace says about a table that may fill: frames in the first second after the
/// first one arrived (the rate before any table is full), and the seconds until 99 % of all
/// frames had arrived (the whole run when the rate holds).
pub fn first_second_and_fill_time(tr: &Trace) -> (f64, f64) {
    let Some(&(_, v0)) = tr.points.first() else { return (0.0, 0.0) };
    // The last sample before anything arrived.
    let Some(i1) = tr.points.iter().position(|p| p.1 > v0) else { return (0.0, 0.0) };
    let t0 = tr.points[i1.saturating_sub(1)].0;
    let at = |t: f64| tr.points.iter().take_while(|p| p.0 <= t + 1e-9).last().map_or(v0, |p| p.1);
    let total = tr.total();
    let t99 = tr.points.iter().find(|p| (p.1 - v0) as f64 >= 0.99 * total as f64).map_or(t0, |p| p.0);
    ((at(t0 + 1.0) - v0) as f64, t99 - t0)
}

/// The new-flow rate of (a), M/s: the first 99 % of all new flows over the time they took —
/// the rate while the DUT had room. A DUT whose table (or NAT port space) fills during the run
/// is measured until it filled, not over seconds in which it could take nothing (which would
/// rank a faster-filling DUT lower); one that never fills, over the whole run. How long it had
/// room is reported beside it (`secs_to_99pct`).
pub fn new_flow_rate(received: u64, secs_to_99pct: f64) -> f64 {
    if secs_to_99pct > 0.0 {
        0.99 * received as f64 / secs_to_99pct / 1e6
    } else {
        0.0
    }
}

/// (a) SYNs from random sources of 198.18.128.0/17, random ports, flat out.
fn syn(t: &L4Topo, sys: L4System, o: &L4Opts) -> Result<L4Trial> {
    let sinks = Sinks::attach(t)?;
    let (src, n) = L4Topo::GEN_SRC;
    let mut args = strings(&["--proto", "tcp", "--tcp-mss", "1460", "--src-ip", &src.to_string()]);
    args.extend(strings(&["--src-ip-count", &n.to_string(), "--src-port", "1024-65535"]));
    args.extend(dst_args(sys, Service::Rr));
    let random = if sys.targets(Service::Rr).len() > 1 { "src_ip,src_port,dst_ip" } else { "src_ip,src_port" };
    args.extend(strings(&["--random", random, "--duration", &o.syn_secs.to_string()]));
    let c0 = cpu_times();
    let (rep, trace) = send_counted(t, o, &sinks, &args, o.syn_secs)?;
    let busy = cpu_busy(&c0, &cpu_times());
    let (first_s, fill_s) = first_second_and_fill_time(&trace);
    let samples: Vec<f64> = trace.per_second().iter().map(|v| v / 1e6).collect();
    let k = samples.len();
    let body = if k > 2 { &samples[1..k - 1] } else { &samples[..] };
    let tail = median(&body[body.len().saturating_sub(3)..]);
    let per_backend = sinks.per_backend()?;
    let received = per_backend.iter().sum::<u64>();
    Ok(L4Trial {
        value: new_flow_rate(received, fill_s),
        offered_pps: rep["tx_pps"].as_f64(),
        extra: json!({ "first_second": first_s / 1e6, "last_3s": tail, "secs_to_99pct": fill_s, "steady": steady(&samples),
                       "sent": rep["tx_pkts"], "received": received }),
        samples,
        per_backend,
        cpu_busy: busy,
        ..blank()
    })
}

/// Source ranges for `n` UDP flows: (addresses, ports per address), ports from 1024, at most
/// 62 500 ports per address; the flow count is their product (≥ n, = n when n divides).
pub fn udp_flows(n: u64) -> (u64, u64) {
    let ips = n.div_ceil(62_500).max(1);
    (ips, n.div_ceil(ips))
}

/// (b) `n` UDP flows sent once at the warm-up rate, then flat out.
fn udp(t: &L4Topo, sys: L4System, n: u64, o: &L4Opts) -> Result<L4Trial> {
    let sinks = Sinks::attach(t)?;
    let (ips, ports) = udp_flows(n);
    let (src, _) = L4Topo::GEN_SRC;
    let mut flows = strings(&["--src-ip", &src.to_string(), "--src-ip-count", &ips.to_string()]);
    flows.extend(strings(&["--src-port", &format!("1024-{}", 1023 + ports)]));
    flows.extend(dst_args(sys, Service::Udp));
    if sys.targets(Service::Udp).len() > 1 {
        flows.extend(strings(&["--random", "dst_ip"]));
    }
    let total = ips * ports;
    let mut warm = flows.clone();
    warm.extend(strings(&["--count", &total.to_string(), "--rate-pps", &o.warm_pps.to_string()]));
    let warm_secs = (total as f64 / o.warm_pps).ceil() as u64;
    let w0 = sinks.total()?;
    pktgen(t, o, &warm, Duration::from_secs(warm_secs + 20)).context("warm-up pass")?;
    std::thread::sleep(Duration::from_millis(500));
    let warmed = sinks.total()? - w0;
    let after_warm = if sys.uses_conntrack() { Some(conntrack(t)?) } else { None };
    // The AF_XDP socket of the warm-up pass may still be closing (platform.md: EBUSY for ~1 s).
    std::thread::sleep(Duration::from_millis(1000));
    let mut run = flows;
    run.extend(strings(&["--duration", &o.secs.to_string()]));
    let c0 = cpu_times();
    let b0 = sinks.per_backend()?;
    let (rep, trace) = send_counted(t, o, &sinks, &run, o.secs)?;
    let busy = cpu_busy(&c0, &cpu_times());
    let per_backend: Vec<u64> = sinks.per_backend()?.iter().zip(&b0).map(|(a, b)| a - b).collect();
    let samples: Vec<f64> = trace.per_second().iter().map(|v| v / 1e6).collect();
    Ok(L4Trial {
        value: steady(&samples),
        offered_pps: rep["tx_pps"].as_f64(),
        extra: json!({ "flows": total, "warm_sent": total, "warm_received": warmed,
                       "conntrack_after_warm": after_warm, "sent": rep["tx_pkts"] }),
        samples,
        per_backend,
        cpu_busy: busy,
        ..blank()
    })
}

/// (c) connections per second with the request/response client and servers.
fn conn(t: &L4Topo, sys: L4System, o: &L4Opts) -> Result<L4Trial> {
    let nss: Vec<(String, std::net::Ipv4Addr)> =
        t.backends().map(|b| (t.backend(b.index).name().to_string(), b.addr)).collect();
    let srv = RrServer::start(&nss, L4Topo::RR_PORT)?;
    let stats = ClientStats::default();
    let targets = sys.sockets(Service::Rr);
    let c0 = cpu_times();
    let ((), trace) = sample_while(
        Duration::from_millis(10),
        Duration::from_millis(100),
        || Ok(stats.counts().done),
        || run_client(t.cli().name(), &targets, o.client_threads, Duration::from_secs(o.secs), &stats),
    )?;
    let busy = cpu_busy(&c0, &cpu_times());
    let served = srv.stop();
    let c = stats.counts();
    if c.done == 0 {
        bail!("no connection completed: {c:?}");
    }
    let samples: Vec<f64> = trace.per_second().iter().map(|v| v / 1e3).collect();
    Ok(L4Trial {
        value: steady(&samples),
        extra: json!({ "client": c, "threads": o.client_threads,
                       "request_bytes": crate::l4tcp::REQ_LEN, "response_bytes": crate::l4tcp::RESP_LEN }),
        samples,
        per_backend: served,
        cpu_busy: busy,
        ..blank()
    })
}

/// (d) one iperf3 stream to b1 through the DUT.
fn bulk(t: &L4Topo, sys: L4System, o: &L4Opts) -> Result<L4Trial> {
    let b1 = t.backend(0);
    let port = L4Topo::BULK_PORT.to_string();
    let srv_argv = strings(&["ip", "netns", "exec", b1.name(), "iperf3", "-s", "-1", "-p", &port]);
    let srv = Background::spawn(&srv_argv, &o.dir, "iperf3-server")?;
    wait_for("iperf3 server", Duration::from_secs(10), || {
        Ok(ns_exec(b1, &["ss", "-ltnH"])?.contains(&format!(":{port}")))
    })?;
    let target = sys.targets(Service::Bulk)[0].to_string();
    let secs = o.secs.to_string();
    let cli =
        strings(&["ip", "netns", "exec", t.cli().name(), "iperf3", "-c", &target, "-p", &port, "-t", &secs, "-J"]);
    let s0 = link_stats(b1, L4Topo::BACKEND_IF)?;
    let c0 = cpu_times();
    let r = bounded(&cli, Duration::from_secs(o.secs + 20))?;
    let busy = cpu_busy(&c0, &cpu_times());
    let b0 = link_stats(b1, L4Topo::BACKEND_IF)?.since(&s0);
    let _ = srv.stop(libc::SIGINT, Duration::from_secs(3));
    let v: Value = serde_json::from_str(&r.stdout).with_context(|| format!("iperf3 JSON: {}{}", r.stdout, r.stderr))?;
    if let Some(e) = v["error"].as_str() {
        bail!("iperf3: {e}");
    }
    let recv = &v["end"]["sum_received"];
    let secs_run = recv["seconds"].as_f64().context("iperf3: no end.sum_received.seconds")?;
    let samples: Vec<f64> = v["intervals"]
        .as_array()
        .map(|a| a.iter().filter_map(|i| i["sum"]["bits_per_second"].as_f64()).map(|b| b / 1e9).collect())
        .unwrap_or_default();
    let skb_per_s = b0.rx_packets as f64 / secs_run;
    Ok(L4Trial {
        value: steady(&samples),
        extra: json!({
            "iperf3_mean_gbps": recv["bits_per_second"].as_f64().map(|b| b / 1e9),
            "iperf3_bytes": recv["bytes"], "retransmits": v["end"]["sum_sent"]["retransmits"],
            "b1_rx_skbs": b0.rx_packets, "b1_rx_bytes": b0.rx_bytes, "b1_rx_dropped": b0.rx_dropped,
            "skbs_per_s": skb_per_s,
            "bytes_per_skb": b0.rx_bytes as f64 / b0.rx_packets.max(1) as f64,
            "mtu_frames_per_s": b0.rx_bytes as f64 / 1514.0 / secs_run,
        }),
        samples,
        per_backend: vec![b0.rx_packets, 0, 0],
        cpu_busy: busy,
        ..blank()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_ranges_and_conntrack_stats() {
        assert_eq!(udp_flows(1000), (1, 1000));
        assert_eq!(udp_flows(1_000_000), (16, 62_500));
        assert_eq!(udp_flows(62_500), (1, 62_500));
        assert_eq!(udp_flows(62_501), (2, 31_251));
        let s = "cpu=0   \tfound=3 invalid=10 insert=0 insert_failed=2 drop=5 early_drop=7 error=0\n\
                 cpu=1   \tfound=1 invalid=0 insert=0 insert_failed=0 drop=1 early_drop=0 error=0\n";
        let m = parse_conntrack_stats(s);
        assert_eq!((m["found"], m["invalid"], m["drop"], m["early_drop"], m["insert_failed"]), (4, 10, 6, 7, 2));
        assert!(!m.contains_key("cpu"));
        assert!(Measure::Syn.applies(L4System::Nftables) && !Measure::Syn.applies(L4System::Haproxy));
        assert!(Measure::Conn.applies(L4System::Haproxy) && !Measure::Udp(1).applies(L4System::Haproxy));
        assert_eq!(Measure::Udp(1000).name(), "udp-1000");
    }

    #[test]
    fn the_new_flow_rate_counts_until_the_table_filled() {
        // 1.5 M flows in 3 s, then nothing: 0.495 M/s, not the ~0 of the seconds after.
        assert!((new_flow_rate(1_500_000, 3.0) - 0.495).abs() < 1e-9);
        assert_eq!(new_flow_rate(0, 0.0), 0.0);
    }

    #[test]
    fn a_filling_table_shows_in_the_first_second_and_the_fill_time() {
        // Nothing for 0.5 s, then 100 000/s until 1.5 s (the table fills), then nothing more.
        let points: Vec<(f64, u64)> = (0..=400)
            .map(|i| {
                let t = i as f64 * 0.01;
                (t, 7 + ((t.clamp(0.5, 1.5) - 0.5) * 100_000.0).round() as u64)
            })
            .collect();
        let (first, fill) = first_second_and_fill_time(&Trace { points });
        assert!((first - 100_000.0).abs() <= 1_000.0, "{first}");
        assert!((fill - 0.99).abs() < 0.03, "{fill}");
        // A rate that holds: 99 % is reached at the end.
        let points: Vec<(f64, u64)> = (0..=400).map(|i| (i as f64 * 0.01, i * 1000)).collect();
        let (first, fill) = first_second_and_fill_time(&Trace { points });
        assert_eq!(first, 100_000.0);
        assert!(fill > 3.9, "{fill}");
    }
}
