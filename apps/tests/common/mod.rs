//! Shared helpers of the root (veth) tests: a topology with an `xskd run` child in the DUT
//! namespace, owned by guards so a failing test still tears everything down.
#![allow(dead_code)]

use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::process::{Child, Output};
use std::time::{Duration, Instant};

use apps::params::fmt_mac;
use apps::udpflow::{self, Receiver, SendSpec};
use nic::netns::Topology;

/// Skips (or, under `XSKD_REQUIRE_ROOT=1`, fails) a test that needs root: `nic::testenv`.
#[macro_export]
macro_rules! need_root {
    () => {
        nic::require_root!()
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
    pub child: Option<Child>,
    pub opts: EngineOpts,
}

impl Bed {
    pub fn new(tag: &str, opts: EngineOpts) -> Bed {
        let topo = Topology::new(tag).expect("topology");
        for (ns, dev) in [(topo.generator(), Topology::GEN_IF), (topo.sink(), Topology::SINK_IF)] {
            let out = ns.exec(&["ethtool", "-K", dev, "tx", "off"]).expect("ethtool");
            assert!(out.status.success(), "ethtool: {}", String::from_utf8_lossy(&out.stderr));
        }
        Bed { topo, dir: TempDir::new(tag), child: None, opts }
    }

    pub fn config(&self) -> String {
        let o = &self.opts;
        let lcore = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) - 1;
        let dst =
            |mac: [u8; 6]| if o.mode == "mac" { format!(", dst_mac = \"{}\"", fmt_mac(&mac)) } else { String::new() };
        format!(
            r#"[engine]
burst = 64
idle = "{idle}"
stats_interval_ms = 500
[umem]
frames = 16384
frame_size = 2048
hugepages = "{hp}"
[[port]]
name = "d0"
xdp_mode = "{xm}"
claim = {c0}
[[port]]
name = "d1"
xdp_mode = "{xm}"
claim = {c1}
[[queue]]
port = "d0"
lcore = {lcore}
app = "relay"
params = {{ mode = "{mode}", peer = "d1"{d0} }}
[[queue]]
port = "d1"
lcore = {lcore}
app = "relay"
params = {{ mode = "{mode}", peer = "d0"{d1} }}
"#,
            idle = o.idle,
            hp = o.hugepages,
            xm = o.xdp_mode,
            c0 = o.claim_d0,
            c1 = o.claim_d1,
            mode = o.mode,
            d0 = dst(self.topo.sink_mac()),
            d1 = dst(self.topo.gen_mac()),
        )
    }

    /// Starts `xskd run` in the DUT namespace and waits until it is ready.
    pub fn start(&mut self) {
        let cfg = self.dir.path("xskd.toml");
        std::fs::write(&cfg, self.config()).unwrap();
        let ready = self.dir.path("ready");
        let _ = std::fs::remove_file(&ready);
        let json = self.dir.path("report.json");
        let child = self
            .topo
            .dut()
            .spawn(&[
                XSKD,
                "run",
                "--quiet",
                "--config",
                cfg.to_str().unwrap(),
                "--json",
                json.to_str().unwrap(),
                "--ready-file",
                ready.to_str().unwrap(),
            ])
            .expect("spawn xskd");
        self.child = Some(child);
        let t0 = Instant::now();
        while !ready.exists() {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("xskd exited before ready: {st}");
            }
            assert!(t0.elapsed() < Duration::from_secs(30), "xskd not ready after 30 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, wait, return the JSON report.
    pub fn stop(&mut self) -> serde_json::Value {
        let mut c = self.child.take().expect("running");
        nic::sys::kill(c.id(), libc::SIGTERM).unwrap();
        let t0 = Instant::now();
        let st = loop {
            if let Some(st) = c.try_wait().unwrap() {
                break st;
            }
            if t0.elapsed() > Duration::from_secs(15) {
                let _ = c.kill();
                panic!("xskd did not stop after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(st.success(), "xskd exit status {st}");
        serde_json::from_str(&std::fs::read_to_string(self.dir.path("report.json")).unwrap()).unwrap()
    }

    /// SIGKILL, no cleanup by xskd.
    pub fn kill9(&mut self) {
        let mut c = self.child.take().expect("running");
        nic::sys::kill(c.id(), libc::SIGKILL).unwrap();
        let _ = c.wait();
    }

    /// Sends `count` datagrams of a `frame`-byte frame each way (paced) and checks every byte.
    pub fn exchange(
        &self,
        frame: usize,
        count: u64,
        rate: u64,
        flow_base: u8,
    ) -> (udpflow::RecvReport, udpflow::RecvReport) {
        let payload = udpflow::payload_for_frame(frame);
        let port_s = 9000 + flow_base as u16;
        let port_g = 9100 + flow_base as u16;
        let sink_addr = SocketAddrV4::new(Topology::SINK_ADDR, port_s);
        let gen_addr = SocketAddrV4::new(Topology::GEN_ADDR, port_g);
        let rx_f = Receiver::start(self.topo.sink(), sink_addr, flow_base, payload, None).unwrap();
        let rx_r = Receiver::start(self.topo.generator(), gen_addr, flow_base + 1, payload, None).unwrap();
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
        let f = spec(SocketAddrV4::new(Topology::GEN_ADDR, 9200 + flow_base as u16), sink_addr, flow_base);
        let r = spec(SocketAddrV4::new(Topology::SINK_ADDR, 9300 + flow_base as u16), gen_addr, flow_base + 1);
        let (sf, sr) = std::thread::scope(|s| {
            let a = s.spawn(|| udpflow::send(self.topo.generator(), &f).unwrap());
            let b = s.spawn(|| udpflow::send(self.topo.sink(), &r).unwrap());
            (a.join().unwrap(), b.join().unwrap())
        });
        assert_eq!(sf.sent, count, "kernel accepted every forward datagram");
        assert_eq!(sr.sent, count, "kernel accepted every reverse datagram");
        let gf = rx_f.finish(Duration::from_millis(300)).unwrap();
        let gr = rx_r.finish(Duration::from_millis(10)).unwrap();
        (gf, gr)
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

impl Drop for Bed {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Asserts that a receiver got exactly `count` intact, distinct datagrams.
pub fn assert_all_intact(r: &udpflow::RecvReport, count: u64, what: &str) {
    assert_eq!(r.corrupt, 0, "{what}: corrupt datagrams");
    assert_eq!(r.duplicates, 0, "{what}: duplicates");
    assert_eq!(r.good, count, "{what}: intact datagrams received (of {count})");
}
