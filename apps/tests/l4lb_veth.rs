//! The L4 load balancer on real sockets: a client namespace, xskd (l4lb) in the DUT namespace,
//! three backend namespaces on a bridge (nic::netns::LbTopology), no static neighbours.
//! Kernel TCP/UDP clients talk to the VIP; every byte is checked by the client, where each
//! connection went is told by the backend that answered (its servers say who they are), and
//! the engine's own view is read through `xskd ctl`.

mod common;

use std::collections::HashMap;
use std::net::{SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use apps::demo::l4lb::{self as lbdemo, LbConfig};
use apps::demo::EngineChild;
use apps::tcpflow::{self, BackendServer, EchoConn};
use common::{TempDir, XSKD};
use nic::netns::{LbTopology, LbTopologyConfig};

struct LbBed {
    // Drop order: the engine first, then servers, then the topology.
    engine: Option<EngineChild>,
    servers: Vec<BackendServer>,
    topo: LbTopology,
    _dir: TempDir,
    sock: PathBuf,
}

impl LbBed {
    fn start(tag: &str, max_flows: u32, timeouts: &str) -> LbBed {
        let topo = LbTopology::new(tag, &LbTopologyConfig::default()).expect("topology");
        let servers = lbdemo::start_backends(&topo).expect("backends");
        let dir = TempDir::new(tag);
        let sock = dir.path("ctl.sock");
        let lcore = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) - 1;
        let cfg = lbdemo::config(&LbConfig {
            backends: 3,
            lcore,
            hugepages: "2M",
            xdp_mode: "auto",
            control_socket: &sock,
            max_flows,
            timeouts,
            duration_secs: 300.0,
        });
        let cfg_path = dir.path("lb.toml");
        std::fs::write(&cfg_path, cfg).unwrap();
        let engine =
            EngineChild::start(topo.dut(), XSKD.as_ref(), &cfg_path, &dir.0, &["--quiet"], Duration::from_secs(30))
                .unwrap_or_else(|e| panic!("{e:#}"));
        LbBed { engine: Some(engine), servers, topo, _dir: dir, sock }
    }

    fn ctl(&self, args: &[&str]) -> String {
        let mut argv = vec!["ctl", "--socket", self.sock.to_str().unwrap()];
        argv.extend_from_slice(args);
        let out = std::process::Command::new(XSKD).args(&argv).output().unwrap();
        assert!(out.status.success(), "xskd ctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// The instance's counters summed over shards (`lb stats`).
    fn stats(&self) -> HashMap<String, u64> {
        self.ctl(&["lb", "stats"])
            .split_whitespace()
            .filter_map(|kv| kv.split_once('=').and_then(|(k, v)| v.parse().ok().map(|v| (k.to_string(), v))))
            .collect()
    }

    /// HTTP connections accepted by each backend so far.
    fn accepted(&self) -> Vec<u64> {
        self.servers.iter().map(|s| s.counters().accepted.load(std::sync::atomic::Ordering::Relaxed)).collect()
    }

    fn stop(&mut self) -> serde_json::Value {
        common::stop_checked(self.engine.take().expect("running"))
    }
}

fn per_backend(ids: &[u8]) -> [usize; 3] {
    let mut h = [0; 3];
    for &i in ids {
        h[i as usize - 1] += 1;
    }
    h
}

fn backend_addr(i: usize) -> String {
    format!("{}:{}", LbTopology::backend_addr(i), lbdemo::BACKEND_PORT)
}

#[test]
fn connections_spread_evenly_and_every_byte_crosses_intact() {
    need_root!();
    let mut bed = LbBed::start("xlb1", 65536, "{ half_open = 5 }");
    // 3000 new connections: Maglev over three backends, each within ±10 % of 1000.
    let ids = lbdemo::http_requests(bed.topo.client(), 3000).expect("3000 requests");
    let h = per_backend(&ids);
    for (i, &n) in h.iter().enumerate() {
        assert!((900..=1100).contains(&n), "backend {}: {n} of 3000 ({h:?})", i + 1);
    }
    // The backends agree (what they accepted is what the clients were told).
    let acc = bed.accepted();
    assert_eq!(acc.iter().map(|&a| a as usize).collect::<Vec<_>>(), h.to_vec());
    // Eight concurrent transfers of 4 MiB each way, every byte checked.
    let client = bed.topo.client();
    let results: Vec<std::io::Result<u8>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8u64)
            .map(|i| s.spawn(move || client.run_in(|| tcpflow::echo_transfer(lbdemo::vip_tcp(), 4 << 20, i))))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in &results {
        assert!(r.is_ok(), "{r:?}");
    }
    // UDP: 500 datagrams of 1000 bytes from 5 source ports, each echoed intact.
    for port in 0..5u16 {
        let got = bed
            .topo
            .client()
            .run_in(|| {
                tcpflow::udp_echo(
                    SocketAddrV4::new(LbTopology::CLIENT_ADDR, 41000 + port),
                    SocketAddr::from((LbTopology::VIP, lbdemo::VIP_UDP_PORT)),
                    100,
                    1000,
                )
            })
            .unwrap();
        assert_eq!(got.len(), 100, "UDP from port {}", 41000 + port);
    }
    let st = bed.stats();
    assert_eq!(st["drop_no_flow"] + st["drop_malformed"] + st["drop_table_full"], 0, "{st:?}");
    assert_eq!(st["new_flows"], 3000 + 8 + 5);
    let report = bed.stop();
    let lcore = &report["lcores"][0];
    assert_eq!(lcore["drops"].as_object().map_or(0, |m| m.len()), 0, "engine drops: {}", lcore["drops"]);
}

#[test]
fn drained_backends_finish_their_connections_and_removed_ones_lose_only_theirs() {
    need_root!();
    let bed = LbBed::start("xlb2", 65536, "{ half_open = 5 }");
    let client = bed.topo.client();
    // 30 long-lived connections.
    let mut conns: Vec<EchoConn> = (0..30u64)
        .map(|i| {
            let mut c = client.run_in(|| EchoConn::open(lbdemo::vip_tcp(), i)).unwrap();
            client.run_in(|| c.exchange(1000)).unwrap();
            c
        })
        .collect();
    let on = |b: u8, conns: &[EchoConn]| conns.iter().filter(|c| c.backend == b).count();
    assert!((1..=3).all(|b| on(b, &conns) > 0), "all backends took connections");

    // Drain backend 1: no new connection goes there; its open ones go on.
    bed.ctl(&["lb", "backend", "drain", "web", &backend_addr(0)]);
    let ids = lbdemo::http_requests(client, 150).unwrap();
    assert_eq!(per_backend(&ids)[0], 0, "drained backend got new connections: {:?}", per_backend(&ids));
    for c in conns.iter_mut().filter(|c| c.backend == 1) {
        client.run_in(|| c.exchange(64 * 1024)).expect("a drained backend's connection goes on");
    }
    let listing = bed.ctl(&["lb", "backends"]);
    assert!(listing.contains(&format!("web {} draining", backend_addr(0))), "{listing}");

    // Remove backend 2: its connections move (a new backend resets them), the others go on.
    bed.ctl(&["lb", "backend", "remove", "web", &backend_addr(1)]);
    let before = bed.stats()["moved"];
    let mut moved_conns = 0;
    for c in conns.iter_mut() {
        let r = client.run_in(|| c.exchange(4096));
        match c.backend {
            2 => {
                assert!(r.is_err(), "a removed backend's connection cannot go on");
                moved_conns += 1;
            }
            b => assert!(r.is_ok(), "connection on backend {b}: {r:?}"),
        }
    }
    assert_eq!(bed.stats()["moved"] - before, moved_conns, "exactly the removed backend's flows moved");
    let ids = lbdemo::http_requests(client, 60).unwrap();
    assert_eq!(per_backend(&ids), [0, 0, 60], "drained and removed backends get no new connections");
    // The drained backend's connections close cleanly.
    for c in conns.into_iter().filter(|c| c.backend == 1) {
        client.run_in(|| c.close()).expect("clean close on a drained backend");
    }
}

#[test]
fn idle_flows_expire_on_time() {
    need_root!();
    let bed = LbBed::start("xlb3", 65536, "{ half_open = 1, established = 2, closing = 1, udp = 1 }");
    let client = bed.topo.client();
    for port in 0..10u16 {
        let got = client
            .run_in(|| {
                tcpflow::udp_echo(
                    SocketAddrV4::new(LbTopology::CLIENT_ADDR, 42000 + port),
                    SocketAddr::from((LbTopology::VIP, lbdemo::VIP_UDP_PORT)),
                    1,
                    64,
                )
            })
            .unwrap();
        assert_eq!(got.len(), 1);
    }
    let mut idle = client.run_in(|| EchoConn::open(lbdemo::vip_tcp(), 7)).unwrap();
    client.run_in(|| idle.exchange(100)).unwrap();
    let st = bed.stats();
    assert_eq!(st["flow_len"], 11, "{st:?}");
    let t0 = Instant::now();
    // UDP flows go after 1 s (+ the sweep), the established connection after 2 s.
    while bed.stats()["flow_len"] > 1 {
        assert!(t0.elapsed() < Duration::from_millis(1800), "UDP flows not expired after {:?}", t0.elapsed());
        std::thread::sleep(Duration::from_millis(50));
    }
    let udp_gone = t0.elapsed();
    assert!(udp_gone >= Duration::from_millis(800), "UDP flows expired early: {udp_gone:?}");
    while bed.stats()["flow_len"] > 0 {
        assert!(t0.elapsed() < Duration::from_millis(2800), "TCP flow not expired after {:?}", t0.elapsed());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(t0.elapsed() >= Duration::from_millis(1800), "TCP flow expired early: {:?}", t0.elapsed());
    let st = bed.stats();
    assert_eq!(st["expired"], 11, "{st:?}");
    // Every pair is back in each backend's pool: 3 TCP and 3 UDP backends × 50 000 pairs.
    assert_eq!(st["nat_ports_free"], 6 * 50000, "every NAT pair is back: {st:?}");
    let mut bed = bed;
    bed.stop();
}

#[test]
fn a_syn_flood_fills_the_table_and_an_established_transfer_survives() {
    need_root!();
    let bed = LbBed::start("xlb4", 4096, "{ half_open = 2 }");
    let client = bed.topo.client();
    let dut_mac = nic::netns::format_mac(&bed.topo.dut_client_mac());
    let mut conn = client.run_in(|| EchoConn::open(lbdemo::vip_tcp(), 99)).unwrap();
    client.run_in(|| conn.exchange(64 * 1024)).unwrap();
    let flood = std::thread::scope(|s| {
        let transfer = s.spawn(|| {
            // 48 MiB each way while the flood runs.
            for _ in 0..48 {
                client.run_in(|| conn.exchange(1 << 20))?;
            }
            Ok::<u64, std::io::Error>(conn.checked())
        });
        std::thread::sleep(Duration::from_millis(200));
        let vip = LbTopology::VIP.to_string();
        let out = client
            .exec(&[
                XSKD,
                "pktgen",
                "--iface",
                LbTopology::CLIENT_IF,
                "--dst-mac",
                &dut_mac,
                "--proto",
                "tcp",
                "--src-ip",
                "198.18.128.0",
                "--src-ip-count",
                "32768",
                "--src-port",
                "1024-65535",
                "--random",
                "src_ip,src_port",
                "--dst-ip",
                &vip,
                "--dst-port",
                "80",
                "--rate-pps",
                "200000",
                "--duration",
                "3",
                "--lcore",
                "0",
                "--hugepages",
                "none",
                "--json",
            ])
            .unwrap();
        assert!(out.status.success(), "pktgen: {}", String::from_utf8_lossy(&out.stderr));
        let checked = transfer.join().unwrap().expect("the transfer completes byte-exact during the flood");
        assert_eq!(checked, 64 * 1024 + (48 << 20));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    });
    let sent = flood["tx_pkts"].as_u64().unwrap_or(0);
    assert!(sent > 100_000, "the flood sent {sent} SYNs");
    let st = bed.stats();
    assert!(st["drop_table_full"] > 0 && st["flow_full"] > 0, "new flows beyond 4096 are refused: {st:?}");
    assert!(st["new_flows"] >= 4096, "{st:?}");
    // Half-open flows go after 2 s; the established connection stays and still works.
    let t0 = Instant::now();
    while bed.stats()["flow_len"] > 10 {
        assert!(t0.elapsed() < Duration::from_secs(5), "the table did not empty: {:?}", bed.stats());
        std::thread::sleep(Duration::from_millis(100));
    }
    client.run_in(|| conn.exchange(1 << 20)).expect("the established connection outlives the flood");
    client.run_in(|| conn.close()).unwrap();
    let ids = lbdemo::http_requests(client, 30).unwrap();
    assert_eq!(ids.len(), 30, "new connections are accepted again");
    let mut bed = bed;
    bed.stop();
}
