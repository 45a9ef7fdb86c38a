//! pktgen through the engine over simulated AF_XDP rings (no root, no NIC):
//!
//! * golden files: a few specs with fixed seeds (UDP and TCP), stepped with `Lcore::poll_once` and a fake
//!   clock, so every byte (TX timestamps in the signatures included) is deterministic; the
//!   transmitted frames are compared byte-for-byte with pcaps under `tests/golden/`. Run with
//!   `XSKD_BLESS=1` to (re)write them after an intended change — they are real pcaps, open them
//!   in Wireshark to review the change. Every golden frame is also checked semantically here
//!   (checksums from scratch, signature, sequence), so a blessed file cannot be garbage;
//! * loopback: a TX lcore → the simulated wire → an RX lcore, exact counts, zero loss, and
//!   exactly 10 % loss when the wire drops every 10th frame;
//! * the threaded path: `Lcore::run` on two threads sharing one clock, results read through
//!   the `PktgenHandle` after the lcores stopped, and a capture file written by the RX side;
//! * pcap replay.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apps::pktgen::pcap::{read_frames, PcapSink};
use apps::pktgen::tcp::{ACK, PSH, SYN};
use apps::pktgen::{
    FrameSize, IpRange, Pick, Pktgen, PktgenSpec, PortRange, Proto, Rate, Role, Signature, TcpNum, TcpSpec,
};
use apps::registry::AnyApp;
use engine::wire::{
    EtherType, EthernetFrame, IpPair, IpProtocol, Ipv4Packet, Ipv6Packet, TcpOption, TcpPacket, UdpPacket,
};
use engine::{App, Instant, Lcore, LcoreBuilder, LcoreOptions, PortId};
use nic::sim::{sim_port, SimConfig, SimWire};
use nic::{AnyPort, PoolCache, Umem, UmemConfig};

const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
/// Fake clock step per loop iteration.
const STEP_NS: u64 = 1_000;

fn umem(frames: u32) -> Umem {
    Umem::heap(UmemConfig { frame_size: 2048, frame_count: frames, headroom: 0 }).unwrap()
}

fn tx_spec() -> PktgenSpec {
    PktgenSpec { dst_mac: Some(DST_MAC), ..Default::default() }
}

/// One lcore with one pktgen queue on a simulated port.
fn lcore<'u>(u: &'u Umem, spec: &PktgenSpec, sim: SimConfig) -> (Lcore<'u, AnyApp>, SimWire<'u>) {
    let mut cache = PoolCache::new(u, 512);
    let (port, wire) = sim_port(u, &mut cache, sim);
    let mut b = LcoreBuilder::new(LcoreOptions::new("t"), cache);
    let q = b.add_queue("sim:0", PortId(0), AnyPort::Ring(port));
    b.set_app(q, "pktgen", AnyApp::Pktgen(Box::new(Pktgen::new(spec, q, SRC_MAC).unwrap())));
    let (l, _) = b.build(Arc::new(AtomicBool::new(false)));
    (l, wire)
}

fn app<'a>(l: &'a Lcore<'_, AnyApp>) -> &'a Pktgen {
    l.apps().next().and_then(AnyApp::pktgen).expect("a pktgen lcore")
}

/// Runs a TX spec to completion; returns (iteration time, frame bytes) of everything that
/// left the port, in order.
fn transmit_all(spec: &PktgenSpec) -> Vec<(u64, Vec<u8>)> {
    // The simulated port's fill ring takes 4096 chunks; the rest feed TX.
    let u = umem(8192);
    let (mut l, mut wire) = lcore(&u, spec, SimConfig::default());
    let mut out = Vec::new();
    let mut t = 0;
    for _ in 0..1_000_000 {
        t += STEP_NS;
        l.poll_once(Instant::from_nanos(t));
        let n = wire.transmit(u32::MAX, |b| out.push((t, b.to_vec())));
        if n == 0 && l.staged() == 0 && app(&l).is_done() {
            return out;
        }
    }
    panic!("did not finish: {} frames", out.len());
}

/// What a sent frame carried.
#[derive(Debug)]
struct Seen {
    vlan: Option<u16>,
    src: String,
    dst: String,
    ports: (u16, u16),
    sig: Signature,
}

/// Parses a frame with engine::wire, verifying both checksums from scratch.
fn check(frame: &[u8]) -> Seen {
    let eth = EthernetFrame::new_checked(frame).expect("ethernet");
    let l3 = eth.l3_info().unwrap();
    let payload = eth.l3_payload().unwrap();
    let (src, dst, udp, pair) = match l3.ethertype {
        EtherType::IPV4 => {
            let ip = Ipv4Packet::new_checked(payload).expect("ipv4");
            assert!(ip.verify_checksum());
            let pair = IpPair::V4 { src: ip.src_addr(), dst: ip.dst_addr() };
            (ip.src_addr().to_string(), ip.dst_addr().to_string(), ip.into_payload(), pair)
        }
        EtherType::IPV6 => {
            let ip = Ipv6Packet::new_checked(payload).expect("ipv6");
            let pair = IpPair::V6 { src: ip.src_addr(), dst: ip.dst_addr() };
            (ip.src_addr().to_string(), ip.dst_addr().to_string(), ip.into_payload(), pair)
        }
        e => panic!("ethertype {e}"),
    };
    let udp = UdpPacket::new_checked(udp).expect("udp");
    assert!(udp.verify_checksum(&pair));
    let sig = Signature::parse(udp.payload()).expect("signature");
    Seen { vlan: l3.vlan.map(|v| v.vid()), src, dst, ports: (udp.src_port(), udp.dst_port()), sig }
}

/// What a sent TCP segment carried.
#[derive(Debug)]
struct SeenTcp {
    src: std::net::IpAddr,
    ports: (u16, u16),
    seq: u32,
    ack: u32,
    flags: u16,
    mss: Option<u16>,
    /// The segment's length as its IP header says (header + payload).
    seg_len: usize,
    sig: Option<Signature>,
}

/// Parses a TCP frame with engine::wire, verifying the IP and TCP checksums from scratch and
/// that everything after the IP length is zero padding.
fn check_tcp(frame: &[u8]) -> SeenTcp {
    let eth = EthernetFrame::new_checked(frame).expect("ethernet");
    let l3 = eth.l3_info().unwrap();
    let payload = eth.l3_payload().unwrap();
    let (src, seg, pair) = match l3.ethertype {
        EtherType::IPV4 => {
            let ip = Ipv4Packet::new_checked(payload).expect("ipv4");
            assert!(ip.verify_checksum());
            assert_eq!(ip.protocol(), IpProtocol::TCP);
            let total = usize::from(ip.total_len());
            assert!(payload[total..].iter().all(|&b| b == 0), "padding after the IP length");
            let pair = IpPair::V4 { src: ip.src_addr(), dst: ip.dst_addr() };
            (std::net::IpAddr::V4(ip.src_addr()), &payload[20..total], pair)
        }
        EtherType::IPV6 => {
            let ip = Ipv6Packet::new_checked(payload).expect("ipv6");
            assert_eq!(ip.next_header(), IpProtocol::TCP);
            let pair = IpPair::V6 { src: ip.src_addr(), dst: ip.dst_addr() };
            (std::net::IpAddr::V6(ip.src_addr()), ip.into_payload(), pair)
        }
        e => panic!("ethertype {e}"),
    };
    let tcp = TcpPacket::new_checked(seg).expect("tcp");
    assert!(tcp.verify_checksum(&pair), "TCP checksum");
    let mss = tcp.options_iter().find_map(|o| match o {
        Ok(TcpOption::MaxSegmentSize(m)) => Some(m),
        _ => None,
    });
    SeenTcp {
        src,
        ports: (tcp.src_port(), tcp.dst_port()),
        seq: tcp.seq_number().0,
        ack: tcp.ack_number().0,
        flags: tcp.flags().bits(),
        mss,
        seg_len: seg.len(),
        sig: Signature::parse(tcp.payload()),
    }
}

fn golden_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(format!("{name}.pcap"))
}

/// Writes the frames as a pcap (timestamps: the fake clock) and compares it with the golden
/// file, or writes the golden file when `XSKD_BLESS=1`.
fn compare_golden(name: &str, frames: &[(u64, Vec<u8>)]) {
    let mut sink = PcapSink::new(Vec::new(), 65535).unwrap();
    for (t, f) in frames {
        sink.write(*t, f.len() as u32, f).unwrap();
    }
    let bytes = sink.finish().unwrap();
    let path = golden_path(name);
    if std::env::var_os("XSKD_BLESS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        eprintln!("blessed {}", path.display());
        return;
    }
    let want =
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (run with XSKD_BLESS=1 to create it)", path.display()));
    if want != bytes {
        let got = std::env::temp_dir().join(format!("{name}.actual.pcap"));
        std::fs::write(&got, &bytes).unwrap();
        let first = want.iter().zip(&bytes).position(|(a, b)| a != b).unwrap_or(want.len().min(bytes.len()));
        panic!(
            "{name}: output differs from {} at byte {first} ({} vs {} bytes); actual written to {} \
             (compare in Wireshark; XSKD_BLESS=1 accepts it)",
            path.display(),
            want.len(),
            bytes.len(),
            got.display()
        );
    }
    // The golden file reads back as the same frames.
    let back = read_frames(&path, 9000).unwrap();
    assert_eq!(back.len(), frames.len());
    assert!(back.iter().zip(frames).all(|(a, (_, b))| a[..] == b[..]));
}

/// Checks the common invariants: sequence 0.., the stream, valid checksums.
fn check_all(frames: &[(u64, Vec<u8>)], stream: u16) -> Vec<Seen> {
    let parsed: Vec<_> = frames.iter().map(|(_, f)| check(f)).collect();
    for (i, p) in parsed.iter().enumerate() {
        let mask = if p.sig.is_compact() { 0xffff_ffff } else { u64::MAX };
        assert_eq!(p.sig.seq, i as u64 & mask);
        assert_eq!(p.sig.stream, stream);
    }
    parsed
}

#[test]
fn golden_ipv4_fixed_60() {
    let mut s = tx_spec();
    s.count = Some(64);
    let frames = transmit_all(&s);
    assert_eq!(frames.len(), 64);
    assert!(frames.iter().all(|(_, f)| f.len() == 60));
    let p = check_all(&frames, 0);
    assert!(p
        .iter()
        .all(|p| p.src == "198.18.0.1" && p.dst == "198.19.0.1" && p.ports == (1024, 1024) && p.vlan.is_none()));
    // The whole count fits one iteration's staging: one timestamp.
    assert!(p.iter().all(|p| p.sig.tx_ts == STEP_NS));
    compare_golden("ipv4_fixed60", &frames);
}

#[test]
fn golden_ipv6_vlan_imix() {
    let mut s = tx_spec();
    s.ipv6 = true;
    s.vlan = Some(100);
    s.src_ip = IpRange::single("2001:2::1".parse().unwrap());
    s.dst_ip = IpRange::single("2001:2::2".parse().unwrap());
    s.size = FrameSize::Imix;
    s.rate = Rate::L1Mbps(10_000.0);
    s.count = Some(48);
    s.stream = 6;
    let frames = transmit_all(&s);
    assert_eq!(frames.len(), 48);
    let lens: Vec<usize> = frames.iter().map(|(_, f)| f.len()).collect();
    assert_eq!(lens.iter().filter(|&&l| l == 82).count(), 28, "7/12 small (raised to 82 for IPv6 + VLAN)");
    assert_eq!(lens.iter().filter(|&&l| l == 590).count(), 16);
    assert_eq!(lens.iter().filter(|&&l| l == 1514).count(), 4);
    let p = check_all(&frames, 6);
    assert!(p.iter().all(|p| p.vlan == Some(100)));
    // Paced: 10 Gbit/s L1 carries 1.25 bytes per ns, so the 48 frames (with 24 B overhead
    // each) take about their wire time.
    let wire_bytes: usize = lens.iter().map(|l| l + 24).sum();
    let span = frames.last().unwrap().0 - frames[0].0;
    assert!((span as f64 - wire_bytes as f64 / 1.25).abs() < 2.0 * STEP_NS as f64 + 1514.0, "{span} ns");
    compare_golden("ipv6_vlan_imix", &frames);
}

#[test]
fn golden_random_ports() {
    let mut s = tx_spec();
    s.src_port = PortRange { first: 1000, last: 1999, pick: Pick::Random };
    s.dst_port = PortRange { first: 5000, last: 5009, pick: Pick::Random };
    s.size = FrameSize::Fixed(128);
    s.rate = Rate::Pps(2_000_000.0);
    s.seed = 7;
    s.count = Some(64);
    let frames = transmit_all(&s);
    let p = check_all(&frames, 0);
    assert!(p.iter().all(|p| (1000..=1999).contains(&p.ports.0) && (5000..=5009).contains(&p.ports.1)));
    assert!(p.iter().map(|p| p.ports).collect::<HashSet<_>>().len() > 55);
    assert!(p.iter().all(|p| !p.sig.is_compact()), "128 B frames carry the full signature");
    // 2 Mpps with a 1 µs clock step: two frames per iteration.
    assert!(frames.chunks(2).all(|c| c.iter().all(|(t, _)| *t == c[0].0)));
    compare_golden("random_ports", &frames);
}

#[test]
fn golden_1000_flows() {
    let mut s = tx_spec();
    s.dst_ip = IpRange { start: "198.19.0.1".parse().unwrap(), count: 1000, pick: Pick::Seq };
    s.count = Some(1000);
    s.seed = 1;
    let frames = transmit_all(&s);
    let p = check_all(&frames, 0);
    let dsts: HashSet<&str> = p.iter().map(|p| p.dst.as_str()).collect();
    assert_eq!(dsts.len(), 1000);
    assert_eq!(p[999].dst, "198.19.3.232");
    compare_golden("flows_1000", &frames);
}

#[test]
fn golden_tcp_syn_flood_from_random_sources() {
    let mut s = tx_spec();
    s.proto = Proto::Tcp;
    s.tcp = TcpSpec { mss: Some(1460), ..TcpSpec::default() };
    s.src_ip = IpRange { start: "198.18.0.0".parse().unwrap(), count: 1 << 17, pick: Pick::Random };
    s.src_port = PortRange { first: 1024, last: 65535, pick: Pick::Random };
    s.dst_port = PortRange::single(80);
    s.seed = 3;
    s.count = Some(32);
    let frames = transmit_all(&s);
    assert_eq!(frames.len(), 32);
    let p: Vec<SeenTcp> = frames.iter().map(|(_, f)| check_tcp(f)).collect();
    for (q, (_, f)) in p.iter().zip(&frames) {
        assert_eq!(f.len(), 60);
        assert_eq!((q.flags, q.mss, q.seg_len, q.ack), (u16::from(SYN), Some(1460), 24, 0));
        assert!(q.sig.is_none(), "a bare SYN has no room for the stamp");
        let std::net::IpAddr::V4(a) = q.src else { panic!("v4") };
        assert!(a.octets()[0] == 198 && (18..=19).contains(&a.octets()[1]), "{a} outside 198.18.0.0/15");
        assert_eq!(q.ports.1, 80);
        assert!(q.ports.0 >= 1024);
    }
    assert_eq!(p.iter().map(|q| q.seq).collect::<HashSet<_>>().len(), 32, "a fresh ISN per SYN");
    assert_eq!(p.iter().map(|q| (q.src, q.ports.0)).collect::<HashSet<_>>().len(), 32, "32 distinct sources");
    compare_golden("tcp_syn_flood", &frames);
}

#[test]
fn golden_tcp_data_segments_carry_the_stamp() {
    let mut s = tx_spec();
    s.proto = Proto::Tcp;
    s.tcp = TcpSpec { flags: ACK | PSH, seq: TcpNum::Fixed(1_000_000), ack: TcpNum::Fixed(42), window: 502, mss: None };
    s.src_port = PortRange { first: 40000, last: 40003, pick: Pick::Seq };
    s.size = FrameSize::Fixed(128);
    s.stream = 2;
    s.count = Some(16);
    let frames = transmit_all(&s);
    let p: Vec<SeenTcp> = frames.iter().map(|(_, f)| check_tcp(f)).collect();
    for (i, q) in p.iter().enumerate() {
        assert_eq!((q.flags, q.seq, q.ack, q.seg_len), (u16::from(ACK | PSH), 1_000_000, 42, 128 - 34));
        assert_eq!(q.ports.0, 40000 + (i as u16 % 4));
        let sig = q.sig.expect("stamp");
        assert_eq!((sig.seq, sig.stream), (i as u64, 2));
    }
    compare_golden("tcp_ack_psh_128", &frames);
}

#[test]
fn golden_tcp_ipv6_syn() {
    let mut s = tx_spec();
    s.proto = Proto::Tcp;
    s.ipv6 = true;
    s.src_ip = IpRange { start: "2001:2::100".parse().unwrap(), count: 256, pick: Pick::Random };
    s.dst_ip = IpRange::single("2001:2::2".parse().unwrap());
    s.size = FrameSize::Fixed(78);
    s.tcp = TcpSpec { mss: Some(1440), ..TcpSpec::default() };
    s.seed = 11;
    s.count = Some(8);
    let frames = transmit_all(&s);
    let p: Vec<SeenTcp> = frames.iter().map(|(_, f)| check_tcp(f)).collect();
    assert!(p.iter().all(|q| q.flags == u16::from(SYN) && q.mss == Some(1440) && q.seg_len == 24 && q.sig.is_none()));
    compare_golden("tcp_ipv6_syn", &frames);
}

/// TX lcore → wire (optionally dropping frames whose index is a multiple of 10) → RX lcore.
fn loopback(n: u64, drop_every_10th: bool) -> apps::pktgen::PktgenReport {
    let u = umem(16384);
    let mut s = tx_spec();
    s.count = Some(n);
    s.rate = Rate::Pps(20_000_000.0); // 20 frames per 1 µs step: below the RX burst
    s.stream = 9;
    s.dst_ip.count = 1000;
    let (mut tx, mut wa) = lcore(&u, &s, SimConfig::default());
    let rx_spec = PktgenSpec { role: Role::Rx, ..Default::default() };
    let (mut rx, mut wb) = lcore(&u, &rx_spec, SimConfig::default());
    let handle = app(&rx).handle();
    let (mut t, mut k, mut idle) = (0u64, 0u64, 0);
    while idle < 10 {
        t += STEP_NS;
        tx.poll_once(Instant::from_nanos(t));
        let moved = wa.transmit(u32::MAX, |b| {
            if !(drop_every_10th && k % 10 == 0) {
                assert!(wb.inject(b), "the simulated RX ring must not overflow in this test");
            }
            k += 1;
        });
        // The receiver runs 700 ns later: every frame's latency is exactly that.
        rx.poll_once(Instant::from_nanos(t + 700));
        idle = if moved == 0 && app(&tx).is_done() { idle + 1 } else { 0 };
    }
    assert_eq!(k, n);
    assert_eq!(app(&tx).tx_counters().pkts, n);
    // What the handle publishes (off the hot path, from `report`) equals the app's own view.
    let mut counters = Vec::new();
    App::report(app(&rx), &mut counters);
    let r = handle.report();
    assert_eq!(r, app(&rx).report_now());
    assert!(counters.contains(&("rx_received", r.rx.as_ref().unwrap().received)));
    assert!(!app(&rx).is_done(), "a receiver is never done by itself");
    r
}

#[test]
fn loopback_counts_every_frame_exactly() {
    let r = loopback(100_000, false);
    let rx = r.rx.unwrap();
    assert_eq!((rx.frames, rx.signed, rx.received), (100_000, 100_000, 100_000));
    assert_eq!((rx.lost, rx.reordered, rx.duplicated, rx.late, rx.foreign), (0, 0, 0, 0, 0));
    assert_eq!(rx.streams.len(), 1);
    assert_eq!((rx.streams[0].stream, rx.streams[0].next_seq), (9, 100_000));
    assert_eq!((rx.latency.count, rx.latency.min_ns, rx.latency.max_ns), (100_000, 700, 700));
}

#[test]
fn loopback_reports_exactly_ten_percent_loss() {
    let r = loopback(100_000, true);
    let rx = r.rx.unwrap();
    assert_eq!(rx.received, 90_000);
    assert_eq!(rx.lost, 10_000);
    assert_eq!((rx.reordered, rx.duplicated, rx.late), (0, 0, 0));
    assert_eq!(rx.streams[0].next_seq, 100_000, "the last frame arrived: every loss is visible");
}

#[test]
fn threaded_lcores_share_a_clock_and_publish_final_results_with_capture() {
    let u = umem(32768);
    let stop = Arc::new(AtomicBool::new(false));
    let clock = engine::Clock::new();
    let cap_path = std::env::temp_dir().join(format!("xskd-pktgen-capture-{}.pcap", std::process::id()));
    let sim = SimConfig { rx_size: 8192, fill_size: 8192, ..SimConfig::default() };
    let build = |spec: &PktgenSpec, name: &str| {
        let mut cache = PoolCache::new(&u, 512);
        let (port, wire) = sim_port(&u, &mut cache, sim);
        let mut o = LcoreOptions::new(name);
        o.clock = Some(clock);
        o.publish_every = Duration::from_millis(10);
        let mut b = LcoreBuilder::new(o, cache);
        let q = b.add_queue("sim:0", PortId(1), AnyPort::Ring(port));
        let app = AnyApp::Pktgen(Box::new(Pktgen::new(spec, q, SRC_MAC).unwrap()));
        let h = app.pktgen_handle().unwrap();
        b.set_app(q, "pktgen", app);
        let (l, _) = b.build(stop.clone());
        (l, wire, h)
    };
    let mut s = tx_spec();
    s.count = Some(20_000);
    s.rate = Rate::Pps(200_000.0);
    let (ltx, mut wa, htx) = build(&s, "tx");
    let rs = PktgenSpec {
        role: Role::Rx,
        capture: Some(cap_path.clone()),
        capture_frames: 32768,
        capture_snaplen: 128,
        ..Default::default()
    };
    let (lrx, mut wb, hrx) = build(&rs, "rx");
    std::thread::scope(|sc| {
        let tx_thread = sc.spawn(move || ltx.run());
        let rx_thread = sc.spawn(move || lrx.run());
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while wa.stats().tx_sent < 20_000 && std::time::Instant::now() < deadline {
            wa.forward_to(&mut wb, 1024);
            std::thread::yield_now();
        }
        let snap = tx_thread.join().unwrap();
        wa.forward_to(&mut wb, 1024);
        assert_eq!(snap.apps[0].counters.iter().find(|(k, _)| *k == "tx_pkts"), Some(&("tx_pkts", 20_000)));
        // Let the receiver drain its ring (its counters are published every 10 ms).
        let drops = |w: &SimWire<'_>| w.stats().rx_dropped_ring_full + w.stats().rx_dropped_fill_empty;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while hrx.report().rx.map_or(0, |r| r.received) + drops(&wb) < 20_000 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::Relaxed);
        rx_thread.join().unwrap();
    });
    assert_eq!(htx.report().tx.pkts, 20_000);
    let r = hrx.report();
    let rx = r.rx.unwrap();
    // Whatever the simulated kernel dropped (RX ring full while the RX thread was descheduled)
    // is exactly what the receiver reports lost.
    let st = wb.stats();
    let sim_drops = st.rx_dropped_ring_full + st.rx_dropped_fill_empty;
    assert_eq!(rx.received + sim_drops, 20_000, "{st:?}");
    assert_eq!(rx.lost, sim_drops);
    assert_eq!(rx.latency.count, rx.received);
    // One clock: latencies are small and positive (not an epoch apart).
    assert!(rx.latency.max_ns < 5_000_000_000, "{:?}", rx.latency);
    assert!(rx.latency.min_ns > 0);
    let hist = hrx.latency_histogram().unwrap();
    assert_eq!(hist.len(), rx.received);
    // The capture file holds every received frame (written by the timer and the finish step).
    let cap = r.capture.unwrap();
    assert_eq!((cap.captured, cap.missed, cap.errors), (rx.frames, 0, 0));
    assert_eq!(cap.written, cap.captured);
    let frames = read_frames(&cap_path, 9000).unwrap();
    assert_eq!(frames.len() as u64, rx.frames);
    assert!(frames.iter().all(|f| f.len() == 60 && Signature::parse(&f[42..]).is_some()));
    let _ = std::fs::remove_file(&cap_path);
}

#[test]
fn pcap_replay_sends_the_file_in_order_cycling() {
    let path = std::env::temp_dir().join(format!("xskd-pktgen-replay-{}.pcap", std::process::id()));
    let src: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i; 60 + 100 * i as usize]).collect();
    let mut sink = PcapSink::create(&path, 65535).unwrap();
    for (i, f) in src.iter().enumerate() {
        sink.write(i as u64, f.len() as u32, f).unwrap();
    }
    drop(sink.finish().unwrap());
    let s = PktgenSpec { pcap: Some(path.clone()), count: Some(7), rate: Rate::L2Mbps(100.0), ..Default::default() };
    let out = transmit_all(&s);
    let _ = std::fs::remove_file(&path);
    let got: Vec<Vec<u8>> = out.into_iter().map(|(_, f)| f).collect();
    let want: Vec<Vec<u8>> = (0..7).map(|i| src[i % 3].clone()).collect();
    assert_eq!(got, want);
    // A missing file is a build error, not a panic.
    let bad = PktgenSpec { pcap: Some("/nonexistent/x.pcap".into()), ..Default::default() };
    assert!(Pktgen::new(&bad, engine::TxPort(0), SRC_MAC).unwrap_err().contains("/nonexistent/x.pcap"));
}

#[test]
fn frames_larger_than_the_umem_frame_are_refused_without_panicking() {
    let mut s = tx_spec();
    s.size = FrameSize::Fixed(1900); // 2048-byte chunks hold 1792 after the 256-byte headroom
    s.count = Some(10);
    let out = transmit_all(&s);
    assert!(out.is_empty());
    // (The generator itself would have had frames: the pool is not what stopped it.)
    let u = umem(1024);
    let (mut l, _w) = lcore(&u, &s, SimConfig::default());
    l.poll_once(Instant::from_nanos(1));
    assert_eq!(app(&l).tx_counters().oversize, 1);
    assert!(app(&l).is_done());
}
