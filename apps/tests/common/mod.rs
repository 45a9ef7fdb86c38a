//! Shared helpers of the root (veth) tests: a topology with an `xskd run` child in the DUT
//! namespace, owned by guards so a failing test still tears everything down, and the kernel's
//! own counters to grade a run with (`ip -s link`, `ethtool -S`, packet captures).
//!
//! Every run's report is checked when it stops ([`Bed::stop`] → [`assert_released`]): every UMEM
//! frame back in the pool, as many open fds as before the ports opened, no hugetlb memory
//! still mapped.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use apps::demo::EngineChild;
use apps::udpflow::{self, Receiver, SendSpec};
use nic::netns::{Netns, Topology, TopologyConfig};

/// Skips (or, under `XSKD_REQUIRE_ROOT=1`, fails) a test that needs root: `nic::testenv`.
#[macro_export]
macro_rules! need_root {
    () => {
        nic::require_root!()
    };
}

/// Whether `tool` can be run (found on `PATH`).
pub fn have_tool(tool: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Skip a test that needs an external tool; a failure instead when `XSKD_REQUIRE_ROOT=1` (CI
/// promises root and the tools).
#[macro_export]
macro_rules! need_tool {
    ($tool:expr) => {
        if !common::have_tool($tool) {
            if std::env::var("XSKD_REQUIRE_ROOT").as_deref() == Ok("1") {
                panic!("{} is required (XSKD_REQUIRE_ROOT=1) but not installed", $tool);
            }
            eprintln!("skipped: needs {}", $tool);
            return;
        }
    };
}

pub const XSKD: &str = env!("CARGO_BIN_EXE_xskd");

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "xskd-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self, f: &str) -> PathBuf {
        self.0.join(f)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Engine settings of a test.
#[derive(Clone, Debug)]
pub struct EngineOpts {
    pub xdp_mode: &'static str,
    pub hugepages: &'static str,
    pub idle: &'static str,
    /// `busy_poll = { usecs, budget }` on both ports.
    pub busy_poll: Option<(u32, u32)>,
    /// Claim rules for d0 and d1 (TOML values).
    pub claim_d0: String,
    pub claim_d1: String,
    pub mode: &'static str,
}

impl Default for EngineOpts {
    fn default() -> Self {
        EngineOpts {
            xdp_mode: "auto",
            hugepages: "2M",
            idle: "poll",
            busy_poll: None,
            claim_d0: r#"[{ ethertype = "ipv4", proto = "udp", dst = "198.19.0.0/24" }]"#.into(),
            claim_d1: r#"[{ ethertype = "ipv4", proto = "udp", dst = "198.18.0.0/24" }]"#.into(),
            mode: "mac",
        }
    }
}

/// gen ⇄ dut(xskd) ⇄ sink, with TX checksum offload off on g0/s0 (see demo.rs).
pub struct Bed {
    pub topo: Topology,
    pub dir: TempDir,
    pub engine: Option<EngineChild>,
    pub opts: EngineOpts,
}

impl Bed {
    pub fn new(tag: &str, opts: EngineOpts) -> Bed {
        Bed::with_topology(tag, opts, &TopologyConfig::default())
    }

    pub fn with_topology(tag: &str, opts: EngineOpts, cfg: &TopologyConfig) -> Bed {
        let topo = Topology::with_config(tag, cfg).expect("topology");
        for (ns, dev) in [(topo.generator(), Topology::GEN_IF), (topo.sink(), Topology::SINK_IF)] {
            let out = ns.exec(&["ethtool", "-K", dev, "tx", "off"]).expect("ethtool");
            assert!(out.status.success(), "ethtool: {}", String::from_utf8_lossy(&out.stderr));
        }
        Bed { topo, dir: TempDir::new(tag), engine: None, opts }
    }

    /// The lcore the default configuration runs on (the last CPU).
    pub fn lcore() -> usize {
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) - 1
    }

    /// `[engine]` and `[umem]` of this bed's options.
    pub fn engine_sections(&self) -> String {
        let o = &self.opts;
        format!(
            "[engine]\nburst = 64\nidle = \"{}\"\nstats_interval_ms = 500\n[umem]\nframes = 16384\nframe_size = 2048\nhugepages = \"{}\"\n",
            o.idle, o.hugepages
        )
    }

    /// A `[[port]]` section for `name` with this bed's XDP mode and busy-poll options.
    pub fn port_section(&self, name: &str, claim: &str) -> String {
        let bp = self
            .opts
            .busy_poll
            .map_or(String::new(), |(u, b)| format!("busy_poll = {{ usecs = {u}, budget = {b} }}\n"));
        format!("[[port]]\nname = \"{name}\"\nxdp_mode = \"{}\"\nclaim = {claim}\n{bp}", self.opts.xdp_mode)
    }

    pub fn config(&self) -> String {
        let o = &self.opts;
        let lcore = Bed::lcore();
        format!(
            "{engine}{p0}{p1}{queues}",
            engine = self.engine_sections(),
            p0 = self.port_section("d0", &o.claim_d0),
            p1 = self.port_section("d1", &o.claim_d1),
            queues = apps::relay::two_port_queues("d0", "d1", lcore, o.mode, self.topo.sink_mac(), self.topo.gen_mac()),
        )
    }

    /// Starts `xskd run` with [`Bed::config`] in the DUT namespace and waits until it is ready.
    pub fn start(&mut self) {
        let cfg = self.config();
        self.start_with(&cfg);
    }

    /// Starts `xskd run` with `config` in the DUT namespace and waits until it is ready.
    pub fn start_with(&mut self, config: &str) {
        let cfg = self.dir.path("xskd.toml");
        std::fs::write(&cfg, config).unwrap();
        let engine = EngineChild::start(
            self.topo.dut(),
            XSKD.as_ref(),
            &cfg,
            &self.dir.0,
            &["--quiet"],
            Duration::from_secs(30),
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
        self.engine = Some(engine);
    }

    /// Process id of the running daemon.
    pub fn pid(&self) -> u32 {
        self.engine.as_ref().and_then(EngineChild::pid).expect("running")
    }

    /// SIGTERM, wait, return the JSON report, checked with [`assert_released`].
    pub fn stop(&mut self) -> serde_json::Value {
        stop_checked(self.engine.take().expect("running"))
    }

    /// SIGKILL, no cleanup by xskd.
    pub fn kill9(&mut self) {
        self.engine.take().expect("running").kill9();
    }

    /// Sends `count` datagrams of a `frame`-byte frame each way (paced) and checks every byte.
    pub fn exchange(
        &self,
        frame: usize,
        count: u64,
        rate: u64,
        flow_base: u8,
    ) -> (udpflow::RecvReport, udpflow::RecvReport) {
        let port = |base: u16| base + flow_base as u16;
        let sink = SocketAddr::V4(SocketAddrV4::new(Topology::SINK_ADDR, port(9000)));
        let gen = SocketAddr::V4(SocketAddrV4::new(Topology::GEN_ADDR, port(9100)));
        let gen_src = SocketAddr::V4(SocketAddrV4::new(Topology::GEN_ADDR, port(9200)));
        let sink_src = SocketAddr::V4(SocketAddrV4::new(Topology::SINK_ADDR, port(9300)));
        exchange_between(
            (self.topo.generator(), gen_src, gen),
            (self.topo.sink(), sink_src, sink),
            udpflow::payload_for_frame(frame),
            count,
            rate,
            flow_base,
        )
    }

    pub fn run_xskd_in_dut(&self, args: &[&str]) -> Output {
        let mut argv = vec![XSKD];
        argv.extend_from_slice(args);
        self.topo.dut().exec(&argv).unwrap()
    }

    /// Whether an XDP program is attached to `dev` in the DUT namespace.
    pub fn xdp_attached(&self, dev: &str) -> bool {
        let out = self.topo.dut().ip(&["-j", "link", "show", dev]).unwrap();
        out.contains("\"xdp\"")
    }
}

/// One side of an exchange: its namespace, the address its sender binds, the address its
/// receiver binds.
pub type Side<'a> = (&'a Netns, SocketAddr, SocketAddr);

/// Sends `count` datagrams of `payload` bytes from `a` to `b` (flow `flow`) and from `b` to
/// `a` (flow `flow + 1`) at once, paced at `rate`, and returns what each receiver got
/// (a→b, b→a). Kernel sockets on both ends: the engine is graded by the kernel.
pub fn exchange_between(
    a: Side<'_>,
    b: Side<'_>,
    payload: usize,
    count: u64,
    rate: u64,
    flow: u8,
) -> (udpflow::RecvReport, udpflow::RecvReport) {
    let rx_f = Receiver::start(b.0, b.2, flow, payload, None).unwrap();
    let rx_r = Receiver::start(a.0, a.2, flow + 1, payload, None).unwrap();
    let spec = |src, dst, flow| SendSpec {
        src,
        dst,
        flow,
        payload,
        count: Some(count),
        duration: Duration::from_secs(20),
        rate_pps: Some(rate),
        cpu: None,
    };
    let f = spec(a.1, b.2, flow);
    let r = spec(b.1, a.2, flow + 1);
    let (sf, sr) = std::thread::scope(|s| {
        let x = s.spawn(|| udpflow::send(a.0, &f).unwrap());
        let y = s.spawn(|| udpflow::send(b.0, &r).unwrap());
        (x.join().unwrap(), y.join().unwrap())
    });
    assert_eq!(sf.sent, count, "kernel accepted every forward datagram");
    assert_eq!(sr.sent, count, "kernel accepted every reverse datagram");
    let gf = rx_f.finish(Duration::from_millis(300)).unwrap();
    let gr = rx_r.finish(Duration::from_millis(10)).unwrap();
    (gf, gr)
}

/// The release checks every run gets at stop: every UMEM frame back in the pool (counted by
/// the daemon after its lcores stopped and the rings were reclaimed), as many open fds as
/// before anything was opened, and no hugetlb memory still mapped (both read by the daemon
/// from procfs, the kernel's view).
pub fn assert_released(rep: &serde_json::Value) {
    let u = &rep["umem"];
    let frames = u["frames"].as_u64().expect("umem.frames");
    let free = u["free_after_stop"].as_u64().expect("umem.free_after_stop");
    assert_eq!(free, frames, "every UMEM frame back in the pool after stop: {u}");
    assert_eq!(u["free_list_error"], serde_json::Value::Null, "{u}");
    assert_eq!(u["reclaimed"]["kept_by_kernel"], 0, "{u}");
    let r = &rep["resources"];
    let before = r["fds_before"].as_u64().expect("resources.fds_before");
    assert_eq!(r["fds_after"].as_u64(), Some(before), "open fds after the run as before it: {r}");
    assert_eq!(r["hugetlb_kib_after"].as_u64(), Some(0), "no hugetlb memory mapped after the run: {r}");
}

/// Stops an engine with SIGTERM; its exit must be clean and its report must show every frame,
/// fd and hugepage released ([`assert_released`]). Returns the report.
pub fn stop_checked(mut e: EngineChild) -> serde_json::Value {
    let (st, rep) = e.stop(Duration::from_secs(15)).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(st.success(), "xskd exit status {st}");
    let rep = rep.expect("the JSON report");
    assert_released(&rep);
    rep
}

/// Asserts that a receiver got exactly `count` intact, distinct datagrams.
pub fn assert_all_intact(r: &udpflow::RecvReport, count: u64, what: &str) {
    assert_eq!(r.corrupt, 0, "{what}: corrupt datagrams");
    assert_eq!(r.duplicates, 0, "{what}: duplicates");
    assert_eq!(r.good, count, "{what}: intact datagrams received (of {count})");
}

/// Interface counters as the kernel keeps them (`ip -s link`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

/// Reads `dev`'s counters in `ns` from `ip -s -j link show`.
pub fn link_stats(ns: &Netns, dev: &str) -> LinkStats {
    let out = ns.ip(&["-s", "-j", "link", "show", "dev", dev]).expect("ip -s link");
    let v: serde_json::Value = serde_json::from_str(&out).expect("ip -j output");
    let s = &v[0]["stats64"];
    let n = |dir: &str, k: &str| s[dir][k].as_u64().unwrap_or_else(|| panic!("no stats64.{dir}.{k} in {out}"));
    LinkStats {
        rx_packets: n("rx", "packets"),
        rx_bytes: n("rx", "bytes"),
        tx_packets: n("tx", "packets"),
        tx_bytes: n("tx", "bytes"),
    }
}

/// `ethtool -S dev` in `ns`, as name → value.
pub fn ethtool_stats(ns: &Netns, dev: &str) -> HashMap<String, u64> {
    let out = ns.exec(&["ethtool", "-S", dev]).expect("ethtool -S");
    assert!(out.status.success(), "ethtool -S {dev}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (k, v) = l.trim().split_once(':')?;
            Some((k.trim().to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// A `tcpdump` capture on one interface and direction, stopped (and its frames read) by
/// [`Capture::finish`], killed on drop. The kernel's packet socket and libpcap see the frames,
/// not our code.
pub struct Capture {
    child: Option<Child>,
    file: PathBuf,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Capture {
    /// Starts capturing frames on `dev` in `ns` in `direction` ("in" or "out") into `file`;
    /// returns once tcpdump says it is listening.
    pub fn start(ns: &Netns, dev: &str, direction: &str, file: &Path) -> Capture {
        let mut child = ns
            .command(&[
                "tcpdump",
                "-i",
                dev,
                "-Q",
                direction,
                "-n",
                "-U",
                "--immediate-mode",
                "-s",
                "4096",
                "-B",
                "16384",
                "-Z",
                "root",
                "-w",
                file.to_str().unwrap(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tcpdump");
        let (tx, rx) = std::sync::mpsc::channel();
        let err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if line.contains("listening on") {
                    let _ = tx.send(());
                }
                text.push_str(&line);
                text.push('\n');
            }
            text
        });
        let mut cap = Capture { child: Some(child), file: file.to_path_buf(), stderr: Some(stderr) };
        if rx.recv_timeout(Duration::from_secs(10)).is_err() {
            let text = cap.stop();
            panic!("tcpdump on {dev} did not start listening: {text}");
        }
        cap
    }

    fn stop(&mut self) -> String {
        if let Some(mut c) = self.child.take() {
            let _ = nic::sys::kill(c.id(), libc::SIGINT);
            let t0 = Instant::now();
            while c.try_wait().ok().flatten().is_none() && t0.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        self.stderr.take().map(|h| h.join().unwrap_or_default()).unwrap_or_default()
    }

    /// Stops the capture (after a short grace for frames in flight), checks that the kernel
    /// dropped none of them on the way to tcpdump, and returns the captured frames.
    pub fn finish(mut self) -> Vec<Vec<u8>> {
        std::thread::sleep(Duration::from_millis(200));
        let text = self.stop();
        assert!(text.lines().any(|l| l.trim() == "0 packets dropped by kernel"), "tcpdump lost frames: {text}");
        let f = std::fs::File::open(&self.file).expect("capture file");
        let mut rd = pcap_file::pcap::PcapReader::new(f).expect("a pcap file");
        assert_eq!(rd.header().datalink, pcap_file::DataLink::ETHERNET);
        let mut frames = Vec::new();
        while let Some(p) = rd.next_packet() {
            let p = p.expect("pcap record");
            assert_eq!(p.data.len() as u32, p.orig_len, "frame captured whole");
            frames.push(p.data.into_owned());
        }
        frames
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The Internet checksum (RFC 1071) of `data`, folded, not inverted, starting from `sum`.
pub fn ones_sum(mut sum: u32, data: &[u8]) -> u32 {
    for c in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum
}

/// Checks an IPv4 packet's header checksum and its UDP checksum (over the pseudo-header), as a
/// receiver would; the test's own arithmetic, independent of the code under test.
pub fn ipv4_udp_checksums_ok(ip: &[u8]) -> bool {
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    if ip.len() < ihl + 8 || ones_sum(0, &ip[..ihl]) != 0xffff {
        return false;
    }
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let udp = &ip[ihl..total];
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&ip[12..20]);
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&(udp.len() as u16).to_be_bytes());
    udp[6..8] == [0, 0] || ones_sum(ones_sum(0, &pseudo), udp) == 0xffff
}

/// Sets a flag when dropped, also while unwinding from a failed assertion, so that a helper
/// thread looping until the flag is set ends and a scope waiting for it does not hang.
pub struct SetOnDrop<'a>(pub &'a std::sync::atomic::AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
