//! `xskd pktgen`: the traffic generator as a command.
//!
//! The command turns its flags (and an optional TOML profile whose `[pktgen]` table takes the
//! same keys as a pktgen queue's `params`) into an ordinary xskd configuration — one port for
//! the TX interface, one for the RX interface when it differs, a pktgen queue on each — and runs
//! it through the same validation and daemon as `xskd run`. So a profile that works here works
//! in a daemon config, and every problem is reported with its key, exit code 2.
//!
//! Two TX engines:
//! * `xsk` (default): AF_XDP TX from the engine's UMEM. Any content (templates, IMIX, pcap
//!   replay), token-bucket pacing per burst, a sequence number and TX timestamp in every frame.
//! * `live`: in-kernel "live frames" (`BPF_PROG_RUN` + `BPF_F_TEST_XDP_LIVE_FRAMES` with an
//!   `XDP_TX` program, the method of xdp-trafficgen): one template (fixed size; the UDP source
//!   port cycles through `--flows` values), several Mpps from one core, but it **only feeds XDP
//!   and AF_XDP receivers** (a receiver that passes frames to the kernel stack drops them), and
//!   its pacing is coarse (calls of ~100 ms of traffic). All its frames carry the same sequence
//!   number, so the receiver reports counts and loss, not ordering or latency.
//!
//! Live statistics go to stderr once per second; the final report goes to stdout as text, or
//! as JSON with `--json`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, ValueEnum};
use serde_json::json;

use crate::daemon::RunOptions;
use crate::pktgen::PktgenHandle;
use crate::pktgen::{FrameBuilder, IpRange, PktgenReport, PktgenSpec};
use crate::registry::Plan;

/// TX engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Engine {
    /// AF_XDP TX (any content, pcap replay, sequence numbers and timestamps).
    Xsk,
    /// In-kernel live frames (fast; feeds only XDP/AF_XDP receivers; coarse pacing).
    Live,
}

/// Flags of `xskd pktgen`.
#[derive(Args, Debug, Clone)]
#[command(after_help = "Sizes are frames without the 4-byte FCS: --size 60 is a 64-byte frame on the wire. \
The live engine (--engine live) reaches several Mpps from one core but its frames can only be \
received by XDP programs and AF_XDP sockets (not by the kernel stack), all carry the same \
sequence number, and its pacing is coarse (~100 ms). Addresses default to 198.18.0.1 -> 198.19.0.1. \
Random fields (--random) are drawn inside their ranges only.

TCP (--proto tcp): SYN segments by default, each with a fresh random ISN (--tcp-seq random), \
window 64240, no options; --tcp-flags syn,ack,fin,rst,psh,urg,ece,cwr picks the flags, \
--tcp-seq/--tcp-ack N fixes the numbers, --tcp-mss N adds an MSS option to SYNs. A 60-byte \
frame is a bare segment padded to 60 bytes (no room for pktgen's sequence stamp): the receiver \
counts such segments (frames, bytes) but can track loss and order only for segments large \
enough to carry the 16-byte stamp in their payload (e.g. --size 128). \
Example, a SYN flood from random sources of 198.18.0.0/15: \
--proto tcp --src-ip 198.18.0.0 --src-ip-count 131072 --src-port 1024-65535 --random src_ip,src_port \
--dst-ip 198.19.0.1 --dst-port 80")]
pub struct PktgenArgs {
    /// Interface to transmit on, optionally with its queue: IFACE or IFACE:QUEUE. A
    /// comma-separated list sends from several queues at once (one lcore each, see --lcores):
    /// the rate and the count are split evenly, each queue sends its own stream (ids from
    /// --stream up).
    #[arg(long)]
    pub iface: String,
    /// Interface to receive on (same process): counts received, lost, reordered, duplicated
    /// frames and one-way latency. IFACE[:QUEUE], or a comma-separated list (one receiver per
    /// queue, all on --rx-lcore, results summed; sequence analysis is per receiver, so a stream
    /// must arrive on one queue, as each TX queue's does on a veth).
    #[arg(long)]
    pub rx_iface: Option<String>,
    /// TX engine.
    #[arg(long, value_enum, default_value_t = Engine::Xsk)]
    pub engine: Engine,
    /// Rate in packets per second.
    #[arg(long, group = "rate")]
    pub rate_pps: Option<f64>,
    /// Rate in L1 megabits per second (frame + FCS + preamble + inter-frame gap).
    #[arg(long, group = "rate")]
    pub rate_mbps: Option<f64>,
    /// Rate in L2 megabits per second (frame + FCS).
    #[arg(long, group = "rate")]
    pub rate_l2_mbps: Option<f64>,
    /// Rate as a percentage of --link-mbps (L1).
    #[arg(long, group = "rate", requires = "link_mbps")]
    pub rate_percent: Option<f64>,
    /// Link speed for --rate-percent, megabits per second.
    #[arg(long)]
    pub link_mbps: Option<f64>,
    /// Frame size without FCS: N, or MIN-MAX for uniform random sizes.
    #[arg(long, conflicts_with_all = ["imix", "sizes"])]
    pub size: Option<String>,
    /// List of frame sizes, cycled.
    #[arg(long, value_delimiter = ',')]
    pub sizes: Vec<u32>,
    /// IMIX: 64/594/1518-byte wire frames in 7:4:1.
    #[arg(long)]
    pub imix: bool,
    /// Stop after this many frames.
    #[arg(long)]
    pub count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Print the final report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Destination MAC (default: the RX interface's MAC when --rx-iface is given).
    #[arg(long)]
    pub dst_mac: Option<String>,
    /// Source MAC (default: the TX interface's MAC).
    #[arg(long)]
    pub src_mac: Option<String>,
    /// First source address.
    #[arg(long)]
    pub src_ip: Option<String>,
    /// First destination address.
    #[arg(long)]
    pub dst_ip: Option<String>,
    /// Number of source addresses.
    #[arg(long)]
    pub src_ip_count: Option<u64>,
    /// Number of destination addresses.
    #[arg(long)]
    pub dst_ip_count: Option<u64>,
    /// Source ports: P or LO-HI.
    #[arg(long)]
    pub src_port: Option<String>,
    /// Destination ports: P or LO-HI.
    #[arg(long)]
    pub dst_port: Option<String>,
    /// Fields drawn at random: src_ip, dst_ip, src_port, dst_port.
    #[arg(long, value_delimiter = ',')]
    pub random: Vec<String>,
    /// Flows: shorthand for a source port range of N ports starting at 1024.
    #[arg(long, conflicts_with = "src_port")]
    pub flows: Option<u32>,
    /// 802.1Q VLAN id.
    #[arg(long)]
    pub vlan: Option<u16>,
    /// IPv6 instead of IPv4.
    #[arg(long)]
    pub ipv6: bool,
    /// Transport protocol: udp or tcp.
    #[arg(long, value_parser = ["udp", "tcp"])]
    pub proto: Option<String>,
    /// TCP flags, comma-separated: syn, ack, fin, rst, psh, urg, ece, cwr (default syn).
    #[arg(long)]
    pub tcp_flags: Option<String>,
    /// TCP sequence number: N (every segment) or random (a fresh one per segment; the default).
    #[arg(long)]
    pub tcp_seq: Option<String>,
    /// TCP acknowledgement number: N (default 0) or random.
    #[arg(long)]
    pub tcp_ack: Option<String>,
    /// TCP window (default 64240).
    #[arg(long)]
    pub tcp_window: Option<u16>,
    /// Add a TCP MSS option with this value (SYN segments only).
    #[arg(long)]
    pub tcp_mss: Option<u16>,
    /// Stream id in the signature.
    #[arg(long)]
    pub stream: Option<u16>,
    /// Seed of random fields and sizes.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Replay the frames of this pcap file (xsk engine).
    #[arg(long)]
    pub pcap: Option<PathBuf>,
    /// Write received frames to this pcap file.
    #[arg(long)]
    pub capture: Option<PathBuf>,
    /// TOML profile: a `[pktgen]` table with the keys of a pktgen queue's params; flags win.
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// CPU of the TX core (default: the last CPU).
    #[arg(long)]
    pub lcore: Option<usize>,
    /// CPUs of the TX cores when --iface lists several queues (default: --lcore, then the
    /// CPUs below it).
    #[arg(long, value_delimiter = ',')]
    pub lcores: Vec<usize>,
    /// CPU of the RX core (default: the TX core).
    #[arg(long)]
    pub rx_lcore: Option<usize>,
    /// Frames per burst.
    #[arg(long, default_value_t = 64)]
    pub burst: u32,
    /// XDP attach mode of the ports: auto, native, generic.
    #[arg(long, default_value = "auto")]
    pub xdp_mode: String,
    /// AF_XDP bind mode: auto, copy, zero-copy.
    #[arg(long, default_value = "auto")]
    pub mode: String,
    /// UMEM hugepages: 2M, 1G, none.
    #[arg(long, default_value = "2M")]
    pub hugepages: String,
    /// How long the receiver keeps counting after the last frame was sent, ms.
    #[arg(long, default_value_t = 200)]
    pub linger_ms: u64,
}

fn split_iface(s: &str) -> Result<(String, u32)> {
    match s.split_once(':') {
        Some((i, q)) => Ok((i.to_string(), q.parse().with_context(|| format!("queue in '{s}'"))?)),
        None => Ok((s.to_string(), 0)),
    }
}

/// The TX queues of `--iface` (one or a comma-separated list).
pub fn tx_queues(a: &PktgenArgs) -> Result<Vec<(String, u32)>> {
    let v: Vec<(String, u32)> = a.iface.split(',').map(|s| split_iface(s.trim())).collect::<Result<_>>()?;
    if v.is_empty() || v.iter().any(|(i, _)| i.is_empty()) {
        bail!("--iface: give IFACE[:QUEUE][,IFACE[:QUEUE]...]");
    }
    for (i, x) in v.iter().enumerate() {
        if v[..i].contains(x) {
            bail!("--iface: {}:{} is listed twice", x.0, x.1);
        }
    }
    Ok(v)
}

/// The RX queues of `--rx-iface` (empty without it).
pub fn rx_queues(a: &PktgenArgs) -> Result<Vec<(String, u32)>> {
    match &a.rx_iface {
        None => Ok(Vec::new()),
        Some(s) => s.split(',').map(|x| split_iface(x.trim())).collect(),
    }
}

/// Splits `params` for queue `i` of `n`: rates and the count divided evenly (the remainder of
/// the count goes to the first queues), stream ids counted up from the base.
fn split_params(params: &toml::Table, i: usize, n: usize) -> toml::Table {
    let mut p = params.clone();
    if n == 1 {
        return p;
    }
    for k in ["rate_pps", "rate_mbps", "rate_l2_mbps", "rate_percent"] {
        if let Some(v) = p.get(k).and_then(|v| v.as_float().or_else(|| v.as_integer().map(|x| x as f64))) {
            p.insert(k.into(), toml::Value::Float(v / n as f64));
        }
    }
    if let Some(c) = p.get("count").and_then(|v| v.as_integer()) {
        let (c, n64, i64_) = (c as u64, n as u64, i as u64);
        let share = c / n64 + u64::from(i64_ < c % n64);
        p.insert("count".into(), toml::Value::Integer(share as i64));
    }
    let base = p.get("stream").and_then(|v| v.as_integer()).unwrap_or(0);
    p.insert("stream".into(), toml::Value::Integer(base + i as i64));
    p
}

fn mac_of(iface: &str) -> Option<String> {
    nic::sys::if_hwaddr(iface).ok().map(|m| nic::netns::format_mac(&m))
}

/// The pktgen params (TOML) the flags and the profile describe, for the sending queue.
pub fn params(a: &PktgenArgs) -> Result<toml::Table> {
    let mut t = toml::Table::new();
    if let Some(p) = &a.profile {
        let text = std::fs::read_to_string(p).with_context(|| format!("reading profile {}", p.display()))?;
        let doc: toml::Table = toml::from_str(&text).with_context(|| format!("parsing profile {}", p.display()))?;
        match doc.get("pktgen") {
            Some(toml::Value::Table(pt)) => t.extend(pt.clone()),
            _ => bail!("profile {}: no [pktgen] table", p.display()),
        }
    }
    let mut set = |k: &str, v: toml::Value| {
        t.insert(k.to_string(), v);
    };
    let f = |x: f64| toml::Value::Float(x);
    let i = |x: u64| toml::Value::Integer(x as i64);
    let s = |x: &str| toml::Value::String(x.to_string());
    if let Some(v) = a.rate_pps {
        set("rate_pps", f(v));
    }
    if let Some(v) = a.rate_mbps {
        set("rate_mbps", f(v));
    }
    if let Some(v) = a.rate_l2_mbps {
        set("rate_l2_mbps", f(v));
    }
    if let Some(v) = a.rate_percent {
        set("rate_percent", f(v));
    }
    if let Some(v) = a.link_mbps {
        set("link_mbps", f(v));
    }
    if let Some(v) = &a.size {
        match v.parse::<u64>() {
            Ok(n) => set("size", i(n)),
            Err(_) => set("size", s(v)),
        }
    }
    if !a.sizes.is_empty() {
        set("sizes", toml::Value::Array(a.sizes.iter().map(|&x| i(u64::from(x))).collect()));
    }
    if a.imix {
        set("imix", toml::Value::Boolean(true));
    }
    if let Some(v) = a.count {
        set("count", i(v));
    }
    if let Some(v) = a.duration {
        set("duration_s", f(v));
    }
    for (k, v) in [
        ("dst_mac", &a.dst_mac),
        ("src_mac", &a.src_mac),
        ("src_ip", &a.src_ip),
        ("dst_ip", &a.dst_ip),
        ("dst_port", &a.dst_port),
        ("src_port", &a.src_port),
    ] {
        if let Some(v) = v {
            set(k, s(v));
        }
    }
    if let Some(n) = a.flows {
        if n == 0 || n > 64512 {
            bail!("--flows must be in 1..=64512");
        }
        set("src_port", s(&format!("1024-{}", 1024 + n - 1)));
    }
    if let Some(v) = a.src_ip_count {
        set("src_ip_count", i(v));
    }
    if let Some(v) = a.dst_ip_count {
        set("dst_ip_count", i(v));
    }
    if !a.random.is_empty() {
        set("random", toml::Value::Array(a.random.iter().map(|x| s(x)).collect()));
    }
    if let Some(v) = a.vlan {
        set("vlan", i(u64::from(v)));
    }
    if a.ipv6 {
        set("ipv6", toml::Value::Boolean(true));
    }
    if let Some(v) = &a.proto {
        set("proto", s(v));
    }
    if let Some(v) = &a.tcp_flags {
        set("tcp_flags", s(v));
    }
    // A number, or a word the spec checks ("random").
    let num_or_word = |v: &str| v.parse::<u64>().map_or_else(|_| s(v), i);
    if let Some(v) = &a.tcp_seq {
        set("tcp_seq", num_or_word(v));
    }
    if let Some(v) = &a.tcp_ack {
        set("tcp_ack", num_or_word(v));
    }
    if let Some(v) = a.tcp_window {
        set("tcp_window", i(u64::from(v)));
    }
    if let Some(v) = a.tcp_mss {
        set("tcp_mss", i(u64::from(v)));
    }
    if let Some(v) = a.stream {
        set("stream", i(u64::from(v)));
    }
    if let Some(v) = a.seed {
        set("seed", i(v));
    }
    if let Some(p) = &a.pcap {
        set("pcap", s(&p.to_string_lossy()));
    }
    Ok(t)
}

fn toml_inline(t: &toml::Table) -> String {
    let mut parts = Vec::new();
    for (k, v) in t {
        parts.push(format!("{k} = {v}"));
    }
    format!("{{ {} }}", parts.join(", "))
}

/// Appends one `[[port]]` per distinct interface of `queues` (named `{prefix}0`, `{prefix}1`,
/// … in order of first appearance) and returns those interfaces, index = port number.
fn port_sections<'q>(
    out: &mut String,
    prefix: &str,
    queues: &'q [(String, u32)],
    a: &PktgenArgs,
    claim: &str,
) -> Vec<&'q str> {
    let mut ifaces: Vec<&str> = Vec::new();
    for (i, _) in queues {
        if !ifaces.contains(&i.as_str()) {
            ifaces.push(i);
        }
    }
    for (k, i) in ifaces.iter().enumerate() {
        *out += &format!(
            "[[port]]\nname = \"{prefix}{k}\"\niface = \"{i}\"\nmode = \"{}\"\nxdp_mode = \"{}\"\nclaim = {claim}\n\n",
            a.mode, a.xdp_mode
        );
    }
    ifaces
}

/// The xskd configuration the command runs (also printed by `--dry-run`-style tests).
pub fn config_text(a: &PktgenArgs, tx_params: &toml::Table, ncpus: usize) -> Result<String> {
    let txq = tx_queues(a)?;
    let rxq = rx_queues(a)?;
    let rx = rxq.first().cloned();
    let lcore = a.lcore.unwrap_or(ncpus.saturating_sub(1));
    let lcores: Vec<usize> =
        (0..txq.len()).map(|i| a.lcores.get(i).copied().unwrap_or_else(|| lcore.saturating_sub(i))).collect();
    let rx_lcore = a.rx_lcore.unwrap_or(lcore);
    let same = txq.len() == 1 && rxq.len() == 1 && rx.as_ref().is_some_and(|r| *r == txq[0]);
    // The ports claim the protocol the generator sends (UDP or TCP), addressed to the
    // generator's own source range on the TX side (what could come back) and to its
    // destination range on the RX side: other traffic of that protocol on the interface (a
    // kernel connection of the same host) stays with the kernel.
    let proto = tx_params.get("proto").and_then(|v| v.as_str()).unwrap_or("udp");
    let ipv6 = a.ipv6 || tx_params.get("ipv6").and_then(|v| v.as_bool()).unwrap_or(false);
    let spec = PktgenSpec::parse(tx_params).ok();
    let claim_to = |range: Option<IpRange>| {
        let dst = range.map_or(String::new(), |r| format!(", dst = \"{}\"", r.covering_prefix()));
        format!("[{{ ethertype = \"{}\", proto = \"{proto}\"{dst} }}]", if ipv6 { "ipv6" } else { "ipv4" })
    };
    let tx_claim = claim_to(spec.as_ref().map(|s| s.src_ip));
    let rx_claim = claim_to(spec.as_ref().map(|s| s.dst_ip));
    let max_len = if a.imix { 1514 } else { 0 };
    let frame_size = if max_len > 1900 || a.sizes.iter().any(|&s| s > 1900) { 4096 } else { 2048 };
    let live = a.engine == Engine::Live;
    let mut out = format!(
        "# generated by `xskd pktgen`\n[engine]\nburst = {}\nidle = \"spin\"\n\n[umem]\nframes = {}\nframe_size = {frame_size}\nhugepages = \"{}\"\n\n",
        a.burst,
        16384 * txq.len().max(1),
        a.hugepages
    );
    if !live {
        // One port per distinct interface ("tx0", "tx1", ...); a TX-only port still needs a
        // claim: the generated UDP traffic is what could come back.
        let claim = if same { claim_to(None) } else { tx_claim };
        let ifaces = port_sections(&mut out, "tx", &txq, a, &claim);
        for (qi, (iface, q)) in txq.iter().enumerate() {
            let k = ifaces.iter().position(|i| i == iface).expect("listed above");
            let mut p = split_params(tx_params, qi, txq.len());
            p.insert("role".into(), toml::Value::String(if same { "txrx" } else { "tx" }.into()));
            p.insert("linger_ms".into(), toml::Value::Integer(a.linger_ms as i64));
            if same {
                if let Some(c) = &a.capture {
                    p.insert("capture".into(), toml::Value::String(c.to_string_lossy().into()));
                }
            }
            out += &format!(
                "[[queue]]\nport = \"tx{k}\"\nqueue = {q}\nlcore = {}\napp = \"pktgen\"\nparams = {}\n\n",
                lcores[qi],
                toml_inline(&p)
            );
        }
    }
    if !same || live {
        let ifaces = port_sections(&mut out, "rx", &rxq, a, &rx_claim);
        for (qi, (iface, q)) in rxq.iter().enumerate() {
            let k = ifaces.iter().position(|i| i == iface).expect("listed above");
            let mut p = toml::Table::new();
            p.insert("role".into(), toml::Value::String("rx".into()));
            if let Some(c) = &a.capture {
                let path = if rxq.len() == 1 { c.clone() } else { PathBuf::from(format!("{}.{qi}", c.display())) };
                p.insert("capture".into(), toml::Value::String(path.to_string_lossy().into()));
            }
            out += &format!(
                "[[queue]]\nport = \"rx{k}\"\nqueue = {q}\nlcore = {rx_lcore}\napp = \"pktgen\"\nparams = {}\n\n",
                toml_inline(&p)
            );
        }
    }
    Ok(out)
}

/// Final result of a pktgen run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PktgenOutcome {
    /// Engine used.
    pub engine: &'static str,
    /// TX interface and queue.
    pub iface: String,
    /// RX interface, if any.
    pub rx_iface: Option<String>,
    /// Frames sent.
    pub tx_pkts: u64,
    /// Bytes sent (no FCS).
    pub tx_bytes: u64,
    /// Seconds between the first and the last frame sent.
    pub tx_secs: f64,
    /// Frames per second sent.
    pub tx_pps: f64,
    /// L1 bits per second sent (frame + 24 bytes).
    pub tx_l1_bps: f64,
    /// Receiver results (xsk engine: full sequence analysis; live engine: counts only).
    pub rx: Option<serde_json::Value>,
    /// Frames received.
    pub rx_pkts: Option<u64>,
    /// Frames sent but not received (after the linger time).
    pub lost: Option<u64>,
    /// lost / sent.
    pub loss_ratio: Option<f64>,
    /// Frames that reached the receiving socket(s) but that the kernel dropped there (RX ring
    /// full, no fill buffer: `XDP_STATISTICS` rx_ring_full + rx_fill_ring_empty_descs +
    /// rx_dropped). They count in `lost`; a device-under-test measurement subtracts them, as
    /// they were forwarded and lost by the tester itself. None without an AF_XDP receiver.
    pub rx_socket_drops: Option<u64>,
    /// One-way latency distribution: (latency ns, fraction of frames at or below), from the
    /// receiver's histogram (empty when nothing was timed).
    pub latency_cdf: Vec<(u64, f64)>,
}

/// Quantiles reported in [`PktgenOutcome::latency_cdf`].
const CDF_QUANTILES: [f64; 24] = [
    0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.925, 0.95, 0.975, 0.99, 0.995, 0.999,
    0.9995, 0.9999, 0.99999, 1.0,
];

fn cdf_of(h: Option<hdrhistogram::Histogram<u64>>) -> Vec<(u64, f64)> {
    match h {
        Some(h) if !h.is_empty() => CDF_QUANTILES.iter().map(|&q| (h.value_at_quantile(q), q)).collect(),
        _ => Vec::new(),
    }
}

/// Runs the command. `Ok(None)` means configuration errors were printed (exit code 2).
pub fn run(a: &PktgenArgs, stop: Arc<AtomicBool>) -> Result<Option<PktgenOutcome>> {
    let mut tx_params = params(a)?;
    let (tx_if, _) = tx_queues(a)?.swap_remove(0);
    if !tx_params.contains_key("dst_mac") && !tx_params.contains_key("pcap") {
        let rx_if = rx_queues(a)?.first().map(|x| x.0.clone());
        match rx_if.as_deref().and_then(mac_of) {
            Some(m) => {
                tx_params.insert("dst_mac".into(), toml::Value::String(m));
            }
            None => bail!("--dst-mac is needed (the MAC of the interface that receives on the far end)"),
        }
    }
    // Validate the TX spec the same way even for the live engine (it is not in the config).
    let spec = match PktgenSpec::parse(&tx_params) {
        Ok(s) => s,
        Err(e) => {
            for (k, m) in e.0 {
                eprintln!("  --{}: {m}", k.replace('_', "-"));
            }
            return Ok(None);
        }
    };
    let plan = if a.engine == Engine::Live && a.rx_iface.is_none() {
        None
    } else {
        let ncpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let text = config_text(a, &tx_params, ncpus)?;
        tracing::debug!(config = %text, "pktgen configuration");
        let cfg = match config::parse(&text) {
            Ok(c) => c,
            Err(errs) => {
                report_errors(&errs);
                return Ok(None);
            }
        };
        match config::validate(&cfg, &crate::system_env()) {
            Ok(p) => Some(p),
            Err(errs) => {
                report_errors(&errs);
                return Ok(None);
            }
        }
    };
    match (a.engine, plan) {
        (Engine::Xsk, Some(plan)) => run_xsk(a, &plan, stop),
        (Engine::Live, plan) => run_live(a, plan.as_ref(), &spec, &tx_if, stop),
        (Engine::Xsk, None) => unreachable!("the xsk engine always has a plan"),
    }
}

fn report_errors(errs: &[config::ConfigError]) {
    eprintln!("xskd pktgen: {} problem(s):", errs.len());
    for e in errs {
        eprintln!("  {e}");
    }
}

struct DaemonRun {
    handle: std::thread::JoinHandle<Result<crate::daemon::RunReport>>,
    /// Pktgen shards: (port name of the shard's queue, results).
    pktgens: Vec<(String, PktgenHandle)>,
    stop: Arc<AtomicBool>,
}

fn start_daemon(plan: &Plan, stop: Arc<AtomicBool>) -> Result<DaemonRun> {
    let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
    let (pg_tx, pg_rx) = crossbeam_channel::bounded(1);
    let opts = RunOptions { stop: stop.clone(), print_lines: false, on_ready: Some(ready_tx), on_apps: Some(pg_tx) };
    let plan = plan.clone();
    let handle = std::thread::spawn(move || crate::daemon::run(&plan, opts));
    let pktgens = loop {
        if let Ok(v) = pg_rx.recv_timeout(Duration::from_millis(50)) {
            break v
                .into_iter()
                .filter_map(|e| e.handle.pktgen().map(|h| (e.ports[0].clone(), h.clone())))
                .collect::<Vec<_>>();
        }
        if handle.is_finished() {
            let r = handle.join().map_err(|_| anyhow!("engine thread panicked"))?;
            return Err(r.err().unwrap_or_else(|| anyhow!("engine stopped before starting")));
        }
    };
    while ready_rx.recv_timeout(Duration::from_millis(50)).is_err() {
        if handle.is_finished() {
            let r = handle.join().map_err(|_| anyhow!("engine thread panicked"))?;
            return Err(r.err().unwrap_or_else(|| anyhow!("engine stopped before ready")));
        }
    }
    Ok(DaemonRun { handle, pktgens, stop })
}

fn live_line(t: f64, tx: (u64, u64), rx: Option<u64>, dt: f64) {
    let rx_s = rx.map_or(String::new(), |r| format!("  rx {:8.3} Mpps", r as f64 / dt / 1e6));
    eprintln!(
        "[{t:6.1}s] tx {:8.3} Mpps {:8.3} Gbit/s (L1){rx_s}",
        tx.0 as f64 / dt / 1e6,
        (tx.1 + 24 * tx.0) as f64 * 8.0 / dt / 1e9
    );
}

/// The sum of several TX instances' reports (one per TX queue): counters added, the earliest
/// start and the latest end.
fn merge_tx(reports: &[PktgenReport]) -> PktgenReport {
    let mut m = reports[0].clone();
    for r in &reports[1..] {
        m.tx.pkts += r.tx.pkts;
        m.tx.bytes += r.tx.bytes;
        m.tx.pool_empty += r.tx.pool_empty;
        m.tx.oversize += r.tx.oversize;
        m.tx_start_ns = match (m.tx_start_ns, r.tx_start_ns) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        m.tx_end_ns = match (m.tx_end_ns, r.tx_end_ns) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
    }
    m
}

/// The sum of several receivers' reports and their merged latency histogram.
fn merge_rx(handles: &[crate::pktgen::PktgenHandle]) -> (Option<PktgenReport>, Option<hdrhistogram::Histogram<u64>>) {
    let mut it = handles.iter();
    let Some(first) = it.next() else { return (None, None) };
    let mut m = first.report();
    let mut hist = first.latency_histogram();
    for h in it {
        let r = h.report();
        if let (Some(a), Some(b)) = (&mut m.rx, &r.rx) {
            a.frames += b.frames;
            a.bytes += b.bytes;
            a.signed += b.signed;
            a.foreign += b.foreign;
            a.tcp += b.tcp;
            a.stream_overflow += b.stream_overflow;
            a.ts_future += b.ts_future;
            a.received += b.received;
            a.lost += b.lost;
            a.reordered += b.reordered;
            a.duplicated += b.duplicated;
            a.late += b.late;
            a.streams.extend(b.streams.iter().copied());
        }
        if let (Some(a), Some(b)) = (&mut hist, h.latency_histogram()) {
            let _ = a.add(&b);
        }
    }
    if let (Some(r), Some(h)) = (&mut m.rx, &hist) {
        r.latency = crate::pktgen::LatencySummary::of(h);
    }
    (Some(m), hist)
}

fn run_xsk(a: &PktgenArgs, plan: &Plan, stop: Arc<AtomicBool>) -> Result<Option<PktgenOutcome>> {
    let d = start_daemon(plan, stop.clone())?;
    let txs: Vec<_> = d.pktgens.iter().filter(|(p, _)| p.starts_with("tx")).map(|(_, h)| h.clone()).collect();
    if txs.is_empty() {
        bail!("no TX pktgen");
    }
    let rxs: Vec<_> = d.pktgens.iter().filter(|(p, _)| p.starts_with("rx")).map(|(_, h)| h.clone()).collect();
    let tx_report = || merge_tx(&txs.iter().map(|h| h.report()).collect::<Vec<_>>());
    let t0 = Instant::now();
    let mut last = (0u64, 0u64, 0u64);
    let mut next = t0 + Duration::from_secs(1);
    let mut done_at: Option<Instant> = None;
    loop {
        std::thread::sleep(Duration::from_millis(10));
        if d.handle.is_finished() || stop.load(Ordering::Relaxed) {
            break;
        }
        let reports: Vec<PktgenReport> = txs.iter().map(|h| h.report()).collect();
        if reports.iter().all(|r| r.tx_end_ns.is_some() || r.tx.oversize > 0) {
            let at = *done_at.get_or_insert_with(Instant::now);
            if at.elapsed() >= Duration::from_millis(a.linger_ms + 150) {
                break;
            }
        }
        if Instant::now() >= next {
            let r = merge_tx(&reports);
            let rxn = if rxs.is_empty() {
                r.rx.as_ref().map(|s| s.frames)
            } else {
                Some(rxs.iter().map(|h| h.report().rx.map_or(0, |s| s.frames)).sum())
            };
            live_line(
                t0.elapsed().as_secs_f64(),
                (r.tx.pkts - last.0, r.tx.bytes - last.1),
                rxn.map(|n| n - last.2),
                1.0,
            );
            last = (r.tx.pkts, r.tx.bytes, rxn.unwrap_or(0));
            next += Duration::from_secs(1);
        }
    }
    d.stop.store(true, Ordering::Relaxed);
    let report = d.handle.join().map_err(|_| anyhow!("engine thread panicked"))??;
    for p in &report.ports {
        tracing::info!(port = %p.name, bind = %p.bind_mode, "port");
    }
    let r = tx_report();
    let (rxr, hist) =
        if rxs.is_empty() { (r.rx.is_some().then(|| r.clone()), txs[0].latency_histogram()) } else { merge_rx(&rxs) };
    let mut o = outcome(a, "xsk", &r, rxr.as_ref());
    o.latency_cdf = cdf_of(hist);
    if !rxs.is_empty() {
        o.rx_socket_drops = rx_socket_drops(&report);
    }
    Ok(Some(o))
}

fn outcome(a: &PktgenArgs, engine: &'static str, r: &PktgenReport, rx: Option<&PktgenReport>) -> PktgenOutcome {
    let secs = match (r.tx_start_ns, r.tx_end_ns) {
        (Some(s), Some(e)) if e > s => (e - s) as f64 / 1e9,
        _ => f64::NAN,
    };
    let rx_sum = rx.and_then(|x| x.rx.clone());
    // Signed frames count by sequence number; bare TCP segments (no room for a signature) only
    // as TCP frames.
    let rx_pkts = rx_sum.as_ref().map(|s| s.received.max(s.signed).max(s.tcp));
    let lost = rx_pkts.map(|n| r.tx.pkts.saturating_sub(n));
    PktgenOutcome {
        engine,
        iface: a.iface.clone(),
        rx_iface: a.rx_iface.clone(),
        tx_pkts: r.tx.pkts,
        tx_bytes: r.tx.bytes,
        tx_secs: secs,
        tx_pps: r.tx.pkts as f64 / secs,
        tx_l1_bps: (r.tx.bytes + 24 * r.tx.pkts) as f64 * 8.0 / secs,
        rx: rx_sum.as_ref().map(|s| serde_json::to_value(s).unwrap_or_default()),
        rx_pkts,
        lost,
        loss_ratio: lost.map(|l| l as f64 / r.tx.pkts.max(1) as f64),
        rx_socket_drops: None,
        latency_cdf: Vec::new(),
    }
}

/// Kernel drops at the receiving sockets (queues of the `rx…` ports) in a daemon report.
fn rx_socket_drops(report: &crate::daemon::RunReport) -> Option<u64> {
    let mut any = false;
    let mut sum = 0u64;
    for q in report.lcores.iter().flat_map(|l| &l.queues).filter(|q| q.name.starts_with("rx")) {
        if let Some(x) = &q.xdp {
            any = true;
            sum += x.rx_ring_full + x.rx_fill_ring_empty_descs + x.rx_dropped;
        }
    }
    any.then_some(sum)
}

fn run_live(
    a: &PktgenArgs,
    plan: Option<&Plan>,
    spec: &PktgenSpec,
    tx_if: &str,
    stop: Arc<AtomicBool>,
) -> Result<Option<PktgenOutcome>> {
    use nic::xdp_tools::{LiveGen, LiveRun};
    if spec.pcap.is_some() {
        bail!("--pcap needs the xsk engine");
    }
    if spec.proto == crate::pktgen::Proto::Tcp && spec.src_port.count() > 1 {
        bail!(
            "--engine live varies only UDP source ports: with --proto tcp give one source port, or use the xsk engine"
        );
    }
    let src_mac = match spec.src_mac {
        Some(m) => m,
        None => nic::sys::if_hwaddr(tx_if).with_context(|| format!("MAC of {tx_if}"))?,
    };
    let dst_mac = spec.dst_mac.ok_or_else(|| anyhow!("--dst-mac is needed"))?;
    let mut b = FrameBuilder::new(spec, src_mac, dst_mac);
    let mut frame = vec![0u8; b.max_len()];
    let len = b.build(&mut frame, 0, 0);
    frame.truncate(len);
    let flows = u16::try_from(spec.src_port.count()).unwrap_or(u16::MAX);
    let d = plan.map(|p| start_daemon(p, stop.clone())).transpose()?;
    let rxs: Vec<_> = d
        .as_ref()
        .map(|d| d.pktgens.iter().filter(|(p, _)| p.starts_with("rx")).map(|(_, h)| h.clone()).collect())
        .unwrap_or_default();
    let rate = match spec.rate {
        crate::pktgen::Rate::Pps(p) => Some(p),
        crate::pktgen::Rate::Max => None,
        crate::pktgen::Rate::L1Mbps(m) => Some(m * 1e6 / ((len + 24) * 8) as f64),
        crate::pktgen::Rate::L2Mbps(m) => Some(m * 1e6 / ((len + 4) * 8) as f64),
        crate::pktgen::Rate::Percent { pct, link_mbps } => {
            Some(pct / 100.0 * link_mbps * 1e6 / ((len + 24) * 8) as f64)
        }
    };
    let run = LiveRun {
        count: spec.count,
        duration: spec.duration.unwrap_or(Duration::from_secs(if spec.count.is_some() { 3600 } else { 10 })),
        rate_pps: rate,
        batch: 64,
    };
    let cpu = a.lcore.unwrap_or(0);
    let gen =
        LiveGen::new(tx_if, if flows > 1 { flows } else { 0 }, spec.src_port.first).map_err(|e| anyhow!("{e}"))?;
    nic::sys::pin_current_thread(cpu).with_context(|| format!("pinning to CPU {cpu}"))?;
    let stop2 = stop.clone();
    let rep = gen.run(&frame, &run, &|| stop2.load(Ordering::Relaxed)).map_err(|e| anyhow!("{e}"))?;
    std::thread::sleep(Duration::from_millis(a.linger_ms));
    let rx_rep = match d {
        Some(d) => {
            d.stop.store(true, Ordering::Relaxed);
            d.handle.join().map_err(|_| anyhow!("engine thread panicked"))??;
            merge_rx(&rxs).0
        }
        None => None,
    };
    let rx_pkts = rx_rep.as_ref().and_then(|r| r.rx.as_ref()).map(|s| s.frames);
    let lost = rx_pkts.map(|n| rep.sent.saturating_sub(n));
    let secs = rep.elapsed.as_secs_f64();
    Ok(Some(PktgenOutcome {
        engine: "live",
        iface: a.iface.clone(),
        rx_iface: a.rx_iface.clone(),
        tx_pkts: rep.sent,
        tx_bytes: rep.sent * len as u64,
        tx_secs: secs,
        tx_pps: rep.pps(),
        tx_l1_bps: (rep.sent * (len as u64 + 24)) as f64 * 8.0 / secs,
        rx: rx_rep
            .and_then(|r| r.rx)
            .map(|s| json!({ "frames": s.frames, "bytes": s.bytes, "foreign": s.foreign, "tcp": s.tcp })),
        rx_pkts,
        lost,
        loss_ratio: lost.map(|l| l as f64 / rep.sent.max(1) as f64),
        rx_socket_drops: None,
        latency_cdf: Vec::new(),
    }))
}

/// The human-readable final report.
pub fn human(o: &PktgenOutcome) -> String {
    let mut s = format!(
        "xskd pktgen ({} engine) on {}: sent {} frames, {} bytes in {:.3} s = {:.4} Mpps, {:.3} Gbit/s L1\n",
        o.engine,
        o.iface,
        o.tx_pkts,
        o.tx_bytes,
        o.tx_secs,
        o.tx_pps / 1e6,
        o.tx_l1_bps / 1e9
    );
    if let (Some(rx), Some(lost)) = (o.rx_pkts, o.lost) {
        s += &format!(
            "  received on {}: {rx} frames, lost {lost} ({:.4}%)\n",
            o.rx_iface.as_deref().unwrap_or("?"),
            o.loss_ratio.unwrap_or(0.0) * 100.0
        );
        if let Some(d) = o.rx_socket_drops.filter(|&d| d > 0) {
            s += &format!("  of which dropped at our own receiving socket (its RX ring full): {d}\n");
        }
    }
    if let Some(r) = &o.rx {
        if let (Some(re), Some(du)) = (r.get("reordered"), r.get("duplicated")) {
            s += &format!("  reordered {re}, duplicated {du}\n");
        }
        if let Some(l) = r.get("latency").filter(|l| l.get("count").and_then(|c| c.as_u64()).unwrap_or(0) > 0) {
            let g = |k: &str| l.get(k).and_then(|v| v.as_f64()).unwrap_or(f64::NAN) / 1e3;
            s += &format!(
                "  latency us: min {:.1}  p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}\n",
                g("min_ns"),
                g("p50_ns"),
                g("p90_ns"),
                g("p99_ns"),
                g("p999_ns"),
                g("max_ns")
            );
        }
    }
    s
}
