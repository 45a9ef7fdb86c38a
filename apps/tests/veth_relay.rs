//! Tier-2 tests (root): `xskd run` relaying real packets between veth pairs in network
//! namespaces the test creates (198.18.0.0/15 only), checked byte for byte by kernel sockets.
//!
//! Each test owns its topology and its xskd process (guards tear both down on failure), so the
//! tests run in parallel. The engine idles in `poll()` here so parallel tests on a small
//! machine do not starve each other; the spinning loop is exercised by `xskd demo` and the
//! benchmarks.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use common::{assert_all_intact, ethtool_stats, link_stats, Bed, EngineOpts};
use nic::netns::Topology;

const COUNT: u64 = 2000;
const RATE: u64 = 20_000;

fn relay_matrix(tag: &str, xdp_mode: &'static str, hugepages: &'static str) {
    let mut bed = Bed::new(tag, EngineOpts { xdp_mode, hugepages, ..Default::default() });
    bed.start();
    // 64-byte frames (60 without FCS) and 1518-byte frames (1514 without FCS), both directions.
    let (f, r) = bed.exchange(60, COUNT, RATE, 10);
    assert_all_intact(&f, COUNT, "64 B gen→sink");
    assert_all_intact(&r, COUNT, "64 B sink→gen");
    let (f, r) = bed.exchange(1514, COUNT, RATE, 20);
    assert_all_intact(&f, COUNT, "1518 B gen→sink");
    assert_all_intact(&r, COUNT, "1518 B sink→gen");
    let rep = bed.stop();
    // The report states what was obtained; check it matches the request.
    let want_xdp = if xdp_mode == "generic" { "generic" } else { "native" };
    for p in rep["ports"].as_array().unwrap() {
        assert_eq!(p["bind_mode"], "copy", "veth binds in copy mode");
        assert_eq!(p["xdp_mode"], want_xdp);
        assert_eq!(p["xdp_prog"]["redirected"].as_u64().unwrap(), 2 * COUNT, "every claimed frame went to the socket");
    }
    let backing = rep["umem"]["backing"].as_str().unwrap();
    if hugepages == "none" {
        assert_eq!(backing, "normal-pages");
    } else if nic::mem::free_hugepages_2m().unwrap_or(0) >= 64 {
        // 32 MiB of UMEM fits; CI reserves pages with hugepages.sh before the tests.
        assert_eq!(backing, "hugepages-2M");
    }
    let l = &rep["lcores"][0];
    assert_eq!(l["rx_packets"].as_u64().unwrap(), 4 * COUNT);
    assert_eq!(l["tx_packets"].as_u64().unwrap(), 4 * COUNT);
    assert!(l["drops"].as_object().unwrap().is_empty(), "no drops: {}", l["drops"]);
    assert_eq!(l["tx_kick_errors"], 0, "every TX wakeup accepted by the kernel");
    // The kernel's side of the run. The DUT sends nothing of its own on d0/d1 (static
    // neighbours, no IPv6), so what their drivers transmitted is what the relay handed to its
    // sockets: COUNT frames of each size per port, to the byte.
    for dev in ["d0", "d1"] {
        let st = link_stats(bed.topo.dut(), dev);
        assert_eq!(st.tx_packets, 2 * COUNT, "{dev}: frames its driver transmitted");
        assert_eq!(st.tx_bytes, COUNT * (60 + 1514), "{dev}: bytes its driver transmitted");
    }
    // Per socket, the kernel dropped nothing and saw no bad descriptor (XDP_STATISTICS).
    for q in l["queues"].as_array().unwrap() {
        let k = &q["kernel"];
        for key in ["rx_dropped", "rx_ring_full", "rx_fill_ring_empty_descs", "rx_invalid_descs", "tx_invalid_descs"] {
            assert_eq!(k[key], 0, "{}: kernel {key}: {k}", q["name"]);
        }
    }
    if want_xdp == "native" {
        // veth's own per-queue XDP counters: every frame that came in was redirected.
        for dev in ["d0", "d1"] {
            let e = ethtool_stats(bed.topo.dut(), dev);
            assert_eq!(e["rx_queue_0_xdp_redirect"], 2 * COUNT, "{dev}: {e:?}");
            assert_eq!(e["rx_queue_0_xdp_packets"], 2 * COUNT, "{dev}: {e:?}");
        }
    }
    assert!(!bed.xdp_attached("d0") && !bed.xdp_attached("d1"), "interfaces clean after SIGTERM");
}

#[test]
fn relay_native_xdp_hugepages() {
    need_root!();
    relay_matrix("xkrn", "native", "2M");
}

#[test]
fn relay_generic_xdp_hugepages() {
    need_root!();
    relay_matrix("xkrg", "generic", "2M");
}

#[test]
fn relay_native_xdp_normal_pages() {
    need_root!();
    relay_matrix("xkrnn", "native", "none");
}

#[test]
fn relay_generic_xdp_normal_pages() {
    need_root!();
    relay_matrix("xkrgn", "generic", "none");
}

#[test]
fn unclaimed_traffic_reaches_the_kernel_while_the_engine_runs() {
    need_root!();
    let mut bed = Bed::new("xkun", EngineOpts::default());
    // Make the generator resolve d0's MAC with ARP instead of the static entry.
    bed.topo.generator().ip(&["neigh", "del", "198.18.0.2", "dev", Topology::GEN_IF]).unwrap();
    bed.start();
    // The generator sends nothing unprompted (no IPv6, no traffic of its own): from here on,
    // every frame g0 transmits reaches d0's program exactly once.
    let g0_before = link_stats(bed.topo.generator(), Topology::GEN_IF).tx_packets;
    // A kernel TCP service and a kernel UDP service on the DUT's own address.
    let dut = bed.topo.dut().name().to_string();
    let (tcp_ready_tx, tcp_ready_rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        let _g = nic::netns::enter_by_name(&dut).unwrap();
        let l = TcpListener::bind("198.18.0.2:8080").unwrap();
        let u = UdpSocket::bind("198.18.0.2:7777").unwrap();
        u.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        tcp_ready_tx.send(()).unwrap();
        let (mut s, _) = l.accept().unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).unwrap();
        s.write_all(&buf).unwrap();
        let mut ub = [0u8; 64];
        let (n, from) = u.recv_from(&mut ub).unwrap();
        u.send_to(&ub[..n], from).unwrap();
    });
    tcp_ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let (tcp_echo, udp_echo) = bed
        .topo
        .generator()
        .run_in(|| {
            let mut s = TcpStream::connect_timeout(&"198.18.0.2:8080".parse().unwrap(), Duration::from_secs(10))?;
            s.set_read_timeout(Some(Duration::from_secs(10)))?;
            s.write_all(b"hello")?;
            let mut b = [0u8; 5];
            s.read_exact(&mut b)?;
            let u = UdpSocket::bind("198.18.0.1:0")?;
            u.set_read_timeout(Some(Duration::from_secs(10)))?;
            u.send_to(b"unclaimed-udp", SocketAddrV4::new("198.18.0.2".parse().unwrap(), 7777))?;
            let mut ub = [0u8; 64];
            let n = u.recv(&mut ub)?;
            Ok((b.to_vec(), ub[..n].to_vec()))
        })
        .unwrap();
    server.join().unwrap();
    assert_eq!(tcp_echo, b"hello", "TCP (not claimed) handled by the DUT kernel");
    assert_eq!(udp_echo, b"unclaimed-udp", "UDP to another destination handled by the DUT kernel");
    // And claimed traffic still crosses the engine meanwhile.
    let (f, r) = bed.exchange(60, 200, 10_000, 30);
    assert_all_intact(&f, 200, "claimed gen→sink");
    assert_all_intact(&r, 200, "claimed sink→gen");
    // Let the TCP teardown's last segments go out before counting.
    std::thread::sleep(Duration::from_millis(300));
    let g0_sent = link_stats(bed.topo.generator(), Topology::GEN_IF).tx_packets - g0_before;
    let rep = bed.stop();
    let d0 = &rep["ports"][0]["xdp_prog"];
    let n = |k: &str| d0[k].as_u64().unwrap();
    // The program counted each frame g0 sent exactly once: the 200 claimed datagrams
    // redirected, and everything else (ARP, the TCP connection, the unclaimed datagram) passed
    // to the kernel: at least the ARP request, SYN, the handshake's ACK, the data, FIN, the ACK
    // of the server's FIN and the datagram.
    assert_eq!(n("redirected"), 200, "{d0}");
    assert_eq!(n("passed_unclaimed"), g0_sent - 200, "every other frame g0 sent was passed: {d0}");
    assert_eq!(n("passed_no_socket") + n("parse_short"), 0, "{d0}");
    assert!(g0_sent - 200 >= 7, "ARP, TCP and UDP frames were sent: {g0_sent}");
}

#[test]
fn malformed_config_exits_2_with_every_problem_and_attaches_nothing() {
    need_root!();
    let bed = Bed::new("xkbad", EngineOpts::default());
    let cfg = bed.dir.path("bad.toml");
    std::fs::write(
        &cfg,
        r#"[engine]
burst = 1000
[[port]]
name = "d0"
rx_ring = 1000
[[port]]
name = "d1"
[[port]]
name = "eth-nope"
[[queue]]
port = "d0"
lcore = 0
app = "relay"
params = { mode = "bridge", peer = "d1" }
[[queue]]
port = "d1"
lcore = 99
app = "relay"
"#,
    )
    .unwrap();
    let out = bed.run_xskd_in_dut(&["run", "--config", cfg.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "exit code 2; stderr: {err}");
    for key in ["engine.burst", "port[0].rx_ring", "port[2].name", "queue[0].params.mode", "queue[1].lcore", "port[2]"]
    {
        assert!(err.contains(&format!("  {key}: ")), "missing error for {key} in:\n{err}");
    }
    assert!(err.contains("configuration problem(s)"), "{err}");
    assert!(!bed.xdp_attached("d0") && !bed.xdp_attached("d1"), "nothing attached for an invalid config");
    // Unknown keys: also exit 2, all listed.
    std::fs::write(&cfg, "[engine]\nburts = 1\n[[port]]\nname = \"d0\"\nmod = \"copy\"\n").unwrap();
    let out = bed.run_xskd_in_dut(&["run", "--config", cfg.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("engine.burts") && err.contains("port[0].mod"), "{err}");
    // `check` agrees, and a bad CLI override is a config error too.
    let good = bed.dir.path("good.toml");
    std::fs::write(&good, bed.config()).unwrap();
    let out = bed.run_xskd_in_dut(&["check", "--config", good.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = bed.run_xskd_in_dut(&["check", "--config", good.to_str().unwrap(), "--mode", "warp"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn cleanup_command_removes_a_leftover_program() {
    need_root!();
    let bed = Bed::new("xkclean", EngineOpts::default());
    let out = bed.run_xskd_in_dut(&["cleanup", "d0"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("d0: nothing to clean"));
    // Leave a program attached through netlink, as an older tool or a crashed run would.
    let obj = bed.dir.path("pass.o");
    std::fs::write(&obj, nic::xdp::XDP_OBJECT).unwrap();
    let st = bed.topo.dut().ip(&["link", "set", "dev", "d0", "xdpgeneric", "obj", obj.to_str().unwrap(), "sec", "xdp"]);
    assert!(st.is_ok(), "{st:?}");
    assert!(bed.xdp_attached("d0") || bed.topo.dut().ip(&["-j", "link", "show", "d0"]).unwrap().contains("xdpgeneric"));
    let out = bed.run_xskd_in_dut(&["cleanup", "d0"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("d0: removed"), "{text}");
    let j = bed.topo.dut().ip(&["-j", "link", "show", "d0"]).unwrap();
    assert!(!j.contains("\"xdp\""), "{j}");
}
