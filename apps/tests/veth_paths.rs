//! Tier-2 tests (root): the relay's other paths on real veths — idle modes (`spin`, the
//! default, and `busy-poll`), forwarding modes (`io`, `macswap`), and traffic other than IPv4
//! UDP (a kernel TCP connection both ways, IPv6 UDP, 802.1Q-tagged frames).
//!
//! Each test builds its own gen ⇄ dut ⇄ sink namespaces (unique names, 198.18.0.0/15 and
//! 2001:2::/48 only), runs `xskd run` as a child (guards tear both down on failure), is bounded
//! in time, and is graded by something the engine does not compute: kernel sockets checking
//! every byte, the interfaces' own counters, `tcpdump`'s capture. Every run's report is also
//! checked at stop for frames, fds and hugepages released (see `common::assert_released`).

mod common;

use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use apps::params::fmt_mac;
use common::{assert_all_intact, exchange_between, link_stats, Bed, Capture, EngineOpts};

const COUNT: u64 = 1000;
const RATE: u64 = 10_000;

/// A spinning lcore (idle `spin` or `busy-poll`) takes its CPU whole, and in copy mode that CPU
/// also runs the softirq work of the lcore's own TX: a second lcore pinned to the same CPU by
/// a test running in parallel starves (hundreds of frames lost in a test run). The spinning
/// tests of this file take this lock exclusively, the others shared.
static SPIN: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn spinning_alone() -> std::sync::RwLockWriteGuard<'static, ()> {
    SPIN.write().unwrap_or_else(|e| e.into_inner())
}

fn not_with_a_spinner() -> std::sync::RwLockReadGuard<'static, ()> {
    SPIN.read().unwrap_or_else(|e| e.into_inner())
}

/// Sum of one kernel XDP_STATISTICS field over every queue of the run.
fn kernel_sum(rep: &serde_json::Value, key: &str) -> u64 {
    rep["lcores"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l["queues"].as_array().unwrap())
        .map(|q| q["kernel"][key].as_u64().unwrap_or_else(|| panic!("no kernel.{key} in {q}")))
        .sum()
}

fn lcore_sum(rep: &serde_json::Value, key: &str) -> u64 {
    rep["lcores"].as_array().unwrap().iter().map(|l| l[key].as_u64().unwrap()).sum()
}

/// Both sizes both ways, every byte checked by kernel sockets.
fn relay_both_sizes(bed: &Bed, flow: u8) {
    let (f, r) = bed.exchange(60, COUNT, RATE, flow);
    assert_all_intact(&f, COUNT, "64 B gen→sink");
    assert_all_intact(&r, COUNT, "64 B sink→gen");
    let (f, r) = bed.exchange(1514, COUNT, RATE, flow + 2);
    assert_all_intact(&f, COUNT, "1518 B gen→sink");
    assert_all_intact(&r, COUNT, "1518 B sink→gen");
}

#[test]
fn idle_spin_relays_every_byte() {
    need_root!();
    let _alone = spinning_alone();
    let mut bed = Bed::new("xpspin", EngineOpts { idle: "spin", ..Default::default() });
    bed.start();
    relay_both_sizes(&bed, 10);
    let rep = bed.stop();
    assert_eq!(lcore_sum(&rep, "sleeps"), 0, "a spinning lcore never sleeps");
    assert_eq!(lcore_sum(&rep, "tx_packets"), 4 * COUNT);
    // Without poll() (which also drives copy-mode TX), the only TX processing the kernel does
    // for these sockets is our kicks, and each kick that drains the ring ends with one look
    // at an empty ring, which XDP_STATISTICS counts: the kernel's count of those equals our
    // kick count, less kicks answered busy or stopped at the per-kick budget (128 frames).
    let kicks = lcore_sum(&rep, "tx_kicks");
    let busy = lcore_sum(&rep, "tx_kicks_busy") + lcore_sum(&rep, "tx_kick_errors");
    let empty = kernel_sum(&rep, "tx_ring_empty_descs");
    assert!(kicks > 0);
    assert!(empty <= kicks, "the kernel saw {empty} empty-ring TX passes, we kicked {kicks} times");
    assert!(
        empty + busy + 4 * COUNT / 128 >= kicks,
        "the kernel saw {empty} TX passes for {kicks} kicks ({busy} busy)"
    );
}

#[test]
fn idle_busy_poll_relays_every_byte_and_sets_the_socket_options() {
    need_root!();
    let _alone = spinning_alone();
    let opts = EngineOpts { idle: "busy-poll", busy_poll: Some((20, 64)), ..Default::default() };
    let mut bed = Bed::new("xpbusy", opts);
    bed.start();
    relay_both_sizes(&bed, 20);
    let rep = bed.stop();
    // One non-blocking recvfrom drives each socket before every RX burst and on every idle
    // iteration: counted as RX wakeups; the lcore never sleeps.
    assert!(lcore_sum(&rep, "rx_wakeups") > 0, "busy-poll drives recvfrom");
    assert_eq!(lcore_sum(&rep, "sleeps"), 0);
    // The options as the kernel reports them (getsockopt after setup), on every socket.
    for p in rep["ports"].as_array().unwrap() {
        let socks = p["sockets"].as_array().unwrap();
        assert_eq!(socks.len(), 1, "{p}");
        let bp = &socks[0]["busy_poll"];
        assert_eq!(bp["prefer"], true, "SO_PREFER_BUSY_POLL: {p}");
        assert_eq!(bp["usecs"], 20, "SO_BUSY_POLL: {p}");
        // SO_BUSY_POLL_BUDGET cannot be read back on every kernel (ENOPROTOOPT): null then.
        assert!(bp["budget"].is_null() || bp["budget"] == 64, "SO_BUSY_POLL_BUDGET: {p}");
    }
    // Note: the kernel gives copy-mode AF_XDP sockets no NAPI id, so on veth busy polling
    // cannot drive NAPI (TcpExt BusyPollRxPackets stays 0); that part needs a zero-copy NIC.
}

#[test]
fn spin_default_sockets_report_busy_poll_off() {
    need_root!();
    let _shared = not_with_a_spinner();
    // The control for the test above: without busy_poll, the kernel reports the options off.
    let mut bed = Bed::new("xpnobusy", EngineOpts::default());
    bed.start();
    let (f, _) = bed.exchange(60, 100, RATE, 30);
    assert_all_intact(&f, 100, "gen→sink");
    let rep = bed.stop();
    for p in rep["ports"].as_array().unwrap() {
        assert_eq!(p["sockets"][0]["busy_poll"]["prefer"], false, "{p}");
        assert_eq!(p["sockets"][0]["busy_poll"]["usecs"], 0, "{p}");
    }
}

#[test]
fn relay_io_mode_forwards_frames_unchanged() {
    need_root!();
    let _shared = not_with_a_spinner();
    let mut bed = Bed::new("xpio", EngineOpts { mode: "io", ..Default::default() });
    // io leaves the Ethernet header alone, so each end addresses the *other* end's MAC: the
    // generator's gateway entry names s0, the sink's names g0. A relay that touched the MACs
    // would deliver frames the far end drops as not its own.
    let (g0, s0) = (fmt_mac(&bed.topo.gen_mac()), fmt_mac(&bed.topo.sink_mac()));
    let t = &bed.topo;
    t.generator().ip(&["neigh", "replace", "198.18.0.2", "lladdr", &s0, "dev", "g0", "nud", "permanent"]).unwrap();
    t.sink().ip(&["neigh", "replace", "198.19.0.2", "lladdr", &g0, "dev", "s0", "nud", "permanent"]).unwrap();
    bed.start();
    relay_both_sizes(&bed, 40);
    let rep = bed.stop();
    assert_eq!(lcore_sum(&rep, "tx_packets"), 4 * COUNT);
}

#[test]
fn relay_macswap_mode_swaps_the_addresses() {
    need_root!();
    let _shared = not_with_a_spinner();
    let mut bed = Bed::new("xpswap", EngineOpts { mode: "macswap", ..Default::default() });
    // macswap sends a frame back with source and destination exchanged. Give g0 and s0 one
    // MAC, M: a frame from g0 (src M, dst d0) leaves d1 as (src d0, dst M), which s0 accepts;
    // unswapped it would be addressed to d0 and dropped by s0's kernel.
    let m = fmt_mac(&bed.topo.sink_mac());
    bed.topo.generator().ip(&["link", "set", "dev", "g0", "address", &m]).unwrap();
    bed.start();
    relay_both_sizes(&bed, 50);
    let rep = bed.stop();
    assert_eq!(lcore_sum(&rep, "tx_packets"), 4 * COUNT);
}

/// Byte `i` of a test stream (deterministic, seed-dependent, not periodic on small strides).
fn stream_byte(seed: u8, i: u64) -> u8 {
    (i.wrapping_mul(0x9E37_79B9).rotate_right(13) as u8) ^ seed ^ (i >> 17) as u8
}

/// Writes `len` stream bytes (seed `out`) and reads the peer's `len` bytes (seed `inp`) at the
/// same time; returns (bytes read, bytes that differed from the expected stream).
fn duplex(s: TcpStream, out: u8, inp: u8, len: u64) -> std::io::Result<(u64, u64)> {
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    s.set_write_timeout(Some(Duration::from_secs(20)))?;
    let mut w = s.try_clone()?;
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut i = 0u64;
        while i < len {
            let n = (len - i).min(buf.len() as u64) as usize;
            for (k, b) in buf[..n].iter_mut().enumerate() {
                *b = stream_byte(out, i + k as u64);
            }
            w.write_all(&buf[..n])?;
            i += n as u64;
        }
        w.shutdown(std::net::Shutdown::Write)
    });
    let mut r = s;
    let mut buf = vec![0u8; 64 * 1024];
    let (mut got, mut bad) = (0u64, 0u64);
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        bad += buf[..n].iter().enumerate().filter(|(k, b)| **b != stream_byte(inp, got + *k as u64)).count() as u64;
        got += n as u64;
    }
    writer.join().map_err(|_| std::io::Error::other("writer panicked"))??;
    Ok((got, bad))
}

#[test]
fn tcp_both_ways_through_the_relay_byte_exact() {
    need_root!();
    let _shared = not_with_a_spinner();
    const LEN: u64 = 4 << 20;
    let opts = EngineOpts {
        claim_d0: r#"[{ ethertype = "ipv4", proto = "tcp", dst = "198.19.0.0/24" }]"#.into(),
        claim_d1: r#"[{ ethertype = "ipv4", proto = "tcp", dst = "198.18.0.0/24" }]"#.into(),
        ..Default::default()
    };
    let mut bed = Bed::new("xptcp", opts);
    bed.start();
    let t0 = Instant::now();
    let sink = bed.topo.sink().name().to_string();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || -> std::io::Result<(u64, u64)> {
        let _g = nic::netns::enter_by_name(&sink)?;
        let l = TcpListener::bind("198.19.0.1:5201")?;
        l.set_nonblocking(true)?;
        ready_tx.send(()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let s = loop {
            match l.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(e) => return Err(e),
            }
        };
        s.set_nonblocking(false)?;
        duplex(s, 2, 1, LEN)
    });
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let client = bed
        .topo
        .generator()
        .run_in(|| {
            let s = TcpStream::connect_timeout(&"198.19.0.1:5201".parse().unwrap(), Duration::from_secs(10))?;
            duplex(s, 1, 2, LEN)
        })
        .unwrap();
    let server = server.join().unwrap().unwrap();
    eprintln!("{} MiB each way in {:?}", LEN >> 20, t0.elapsed());
    assert_eq!(client, (LEN, 0), "client received every byte of the server's stream, unchanged");
    assert_eq!(server, (LEN, 0), "server received every byte of the client's stream, unchanged");
    let rep = bed.stop();
    // Every segment crossed the engine (the DUT kernel forwards nothing): at least LEN / MSS
    // data segments each way.
    for p in rep["ports"].as_array().unwrap() {
        let red = p["xdp_prog"]["redirected"].as_u64().unwrap();
        assert!(red >= LEN / 1448, "{}: {red} frames redirected", p["name"]);
        assert_eq!(p["xdp_prog"]["passed_unclaimed"], 0, "{p}");
    }
}

#[test]
fn ipv6_udp_through_the_relay_byte_exact() {
    need_root!();
    let _shared = not_with_a_spinner();
    let opts = EngineOpts {
        claim_d0: r#"[{ ethertype = "ipv6", proto = "udp", dst = "2001:2:0:2::/64" }]"#.into(),
        claim_d1: r#"[{ ethertype = "ipv6", proto = "udp", dst = "2001:2:0:1::/64" }]"#.into(),
        ..Default::default()
    };
    let mut bed = Bed::new("xpv6", opts);
    let t = &bed.topo;
    let d0 = fmt_mac(&t.dut_gen_mac());
    let d1 = fmt_mac(&t.dut_sink_mac());
    // IPv6 on the two end interfaces only (the DUT's stay IPv6-less: nothing reaches its
    // kernel), no DAD, static neighbours for the gateways.
    for (ns, dev, addr, net, gw, mac) in [
        (t.generator(), "g0", "2001:2:0:1::1/64", "2001:2:0:2::/64", "2001:2:0:1::2", &d0),
        (t.sink(), "s0", "2001:2:0:2::1/64", "2001:2:0:1::/64", "2001:2:0:2::2", &d1),
    ] {
        ns.sysctl(&format!("net/ipv6/conf/{dev}/accept_dad"), "0").unwrap();
        ns.sysctl(&format!("net/ipv6/conf/{dev}/disable_ipv6"), "0").unwrap();
        ns.ip(&["-6", "addr", "add", addr, "dev", dev, "nodad"]).unwrap();
        ns.ip(&["-6", "neigh", "replace", gw, "lladdr", mac, "dev", dev, "nud", "permanent"]).unwrap();
        ns.ip(&["-6", "route", "add", net, "via", gw, "dev", dev]).unwrap();
    }
    bed.start();
    let v6 = |s: &str, port: u16| SocketAddr::V6(SocketAddrV6::new(s.parse::<Ipv6Addr>().unwrap(), port, 0, 0));
    let (g, s) = ("2001:2:0:1::1", "2001:2:0:2::1");
    for (frame, flow) in [(78usize, 60u8), (1514, 62)] {
        let payload = apps::udpflow::payload_for_frame_v6(frame);
        let (f, r) = exchange_between(
            (bed.topo.generator(), v6(g, 9400), v6(g, 9401)),
            (bed.topo.sink(), v6(s, 9500), v6(s, 9501)),
            payload,
            COUNT,
            RATE,
            flow,
        );
        assert_all_intact(&f, COUNT, &format!("IPv6 {frame} B gen→sink"));
        assert_all_intact(&r, COUNT, &format!("IPv6 {frame} B sink→gen"));
    }
    let rep = bed.stop();
    for p in rep["ports"].as_array().unwrap() {
        assert_eq!(p["xdp_prog"]["redirected"], 2 * COUNT, "claimed by the IPv6 rule: {p}");
    }
}

#[test]
fn vlan_tagged_frames_cross_tagged_and_intact() {
    need_root!();
    need_tool!("tcpdump");
    let _shared = not_with_a_spinner();
    // No 802.1Q driver is needed: the generator (xskd pktgen, on g0) writes tagged frames,
    // tcpdump on s0 sees what arrives. The claim rule is the plain IPv4 one: the XDP program
    // matches it after the tag.
    const N: u64 = 500;
    const VID: u16 = 100;
    const SIZE: usize = 200;
    let mut bed = Bed::new("xpvlan", EngineOpts::default());
    bed.start();
    let cap = Capture::start(bed.topo.sink(), "s0", "in", &bed.dir.path("s0.pcap"));
    let s0_before = link_stats(bed.topo.sink(), "s0").rx_packets;
    let d0 = fmt_mac(&bed.topo.dut_gen_mac());
    let (vid, size, n) = (VID.to_string(), SIZE.to_string(), N.to_string());
    let out = bed
        .topo
        .generator()
        .command(&[
            common::XSKD,
            "pktgen",
            "--json",
            "--hugepages",
            "none",
            "--iface",
            "g0",
            "--vlan",
            &vid,
            "--size",
            &size,
            "--dst-mac",
            &d0,
            "--src-ip",
            "198.18.0.1",
            "--dst-ip",
            "198.19.0.1",
            "--count",
            &n,
            "--rate-pps",
            "10000",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "pktgen: {}", String::from_utf8_lossy(&out.stderr));
    let frames = cap.finish();
    assert_eq!(link_stats(bed.topo.sink(), "s0").rx_packets - s0_before, N, "s0 driver RX");
    assert_eq!(frames.len() as u64, N, "every tagged frame reached s0");
    let (s0, d1) = (bed.topo.sink_mac(), bed.topo.dut_sink_mac());
    let mut payloads = std::collections::HashSet::new();
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f.len(), SIZE, "frame {i}: length");
        assert_eq!((&f[..6], &f[6..12]), (&s0[..], &d1[..]), "frame {i}: MACs rewritten by the relay");
        assert_eq!(&f[12..14], &[0x81, 0x00], "frame {i}: still 802.1Q-tagged");
        assert_eq!(u16::from_be_bytes([f[14], f[15]]), VID, "frame {i}: VLAN id (and PCP 0)");
        assert_eq!(&f[16..18], &[0x08, 0x00], "frame {i}: IPv4 inside the tag");
        let ip = &f[18..];
        assert_eq!((&ip[12..16], &ip[16..20]), (&[198, 18, 0, 1][..], &[198, 19, 0, 1][..]), "frame {i}: addresses");
        assert!(common::ipv4_udp_checksums_ok(ip), "frame {i}: IPv4/UDP checksums (bytes intact)");
        assert!(payloads.insert(ip[28..].to_vec()), "frame {i}: a duplicate");
    }
    let rep = bed.stop();
    assert_eq!(rep["ports"][0]["xdp_prog"]["redirected"], N, "claimed through the tag: {}", rep["ports"][0]);
    assert_eq!(rep["ports"][0]["xdp_prog"]["passed_unclaimed"], 0);
}
