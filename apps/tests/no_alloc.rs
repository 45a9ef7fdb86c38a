//! Proof that the data path does not allocate: the poll loop with relay apps over null ports
//! and over simulated AF_XDP rings (the real ring code), and with pktgen sending and receiving
//! over simulated rings, after warm-up, makes zero heap allocations for millions of frames. Its
//! own test binary; the counting allocator counts per thread, so each test sees only itself.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use apps::pktgen::{FrameSize, IpRange, Pick, Pktgen, PktgenSpec, PortRange, Proto, Role, TcpSpec};
use apps::registry::AnyApp;
use apps::relay::{Relay, RelayMode};
use engine::{App, Instant, LcoreBuilder, LcoreOptions, PortId};
use nic::alloc_count::{thread_allocations, CountingAlloc};
use nic::sim::{sim_port, SimConfig};
use nic::{AnyPort, NullPort, PoolCache, Umem, UmemConfig};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

#[test]
fn poll_loop_makes_no_allocation_per_frame() {
    // The counter is live: it sees an allocation when there is one.
    let c0 = thread_allocations();
    let v = std::hint::black_box(vec![1u8; 100]);
    assert_eq!(thread_allocations() - c0, 1);
    drop(v);
    let u = Umem::heap(UmemConfig { frame_size: 2048, frame_count: 16384, headroom: 0 }).unwrap();
    let stop = Arc::new(AtomicBool::new(false));

    // 1. Null ports, relay io and mac.
    for mode in [RelayMode::Io, RelayMode::Mac, RelayMode::MacSwap] {
        let mut b = LcoreBuilder::new(LcoreOptions::new("t"), PoolCache::new(&u, 1024));
        let a = b.add_queue("n0:0", PortId(0), AnyPort::Null(NullPort::new(60)));
        let c = b.add_queue("n1:0", PortId(1), AnyPort::Null(NullPort::new(60)));
        b.set_app(a, "relay", AnyApp::Relay(Box::new(Relay::new(mode, c, [2; 6], [4; 6]))));
        b.set_app(c, "relay", AnyApp::Relay(Box::new(Relay::new(mode, a, [2; 6], [4; 6]))));
        let (mut l, _) = b.build(stop.clone());
        for i in 0..1000 {
            l.poll_once(Instant::from_nanos(i));
        }
        let before = thread_allocations();
        for i in 0..50_000u64 {
            l.poll_once(Instant::from_nanos(1000 + i));
        }
        let allocs = thread_allocations() - before;
        let frames = l.counters().rx_frames;
        assert!(frames > 6_000_000, "{frames}");
        assert_eq!(allocs, 0, "{mode:?}: {allocs} allocations while forwarding {frames} frames");
    }

    // 2. Simulated AF_XDP rings: fill, RX, TX, completion, kicks — the code real sockets run.
    let mut cache = PoolCache::new(&u, 1024);
    let (pa, mut wa) = sim_port(&u, &mut cache, SimConfig::default());
    let (pb, mut wb) = sim_port(&u, &mut cache, SimConfig::default());
    wb.set_tx_needs_wakeup(true);
    let mut b = LcoreBuilder::new(LcoreOptions::new("t"), cache);
    let a = b.add_queue("a:0", PortId(0), AnyPort::Ring(pa));
    let c = b.add_queue("b:0", PortId(1), AnyPort::Ring(pb));
    b.set_app(a, "relay", AnyApp::Relay(Box::new(Relay::new(RelayMode::Mac, c, [2; 6], [4; 6]))));
    b.set_app(c, "relay", AnyApp::Relay(Box::new(Relay::new(RelayMode::Mac, a, [2; 6], [4; 6]))));
    let (mut l, _) = b.build(stop);
    let pkt = [0x55u8; 60];
    let mut sent = 0u64;
    let mut round = |l: &mut engine::Lcore<'_, AnyApp>, t: u64| {
        for _ in 0..64 {
            wa.inject(&pkt);
        }
        l.poll_once(Instant::from_nanos(t));
        wb.transmit(256, |_| sent += 1);
    };
    for t in 0..1000 {
        round(&mut l, t);
    }
    let before = thread_allocations();
    for t in 0..20_000 {
        round(&mut l, 1000 + t);
    }
    let allocs = thread_allocations() - before;
    assert!(sent > 1_000_000, "{sent}");
    assert_eq!(allocs, 0, "sim rings: {allocs} allocations for {sent} frames");
}

#[test]
fn pktgen_tx_and_rx_make_no_allocation_per_frame() {
    // The expensive shape: IPv6 + VLAN, IMIX, random addresses and ports, no rate limit.
    pktgen_no_alloc(PktgenSpec {
        dst_mac: Some([2; 6]),
        ipv6: true,
        vlan: Some(7),
        size: FrameSize::Imix,
        src_ip: IpRange { start: "2001:2::1".parse().unwrap(), count: 1000, pick: Pick::Random },
        dst_ip: IpRange { start: "2001:2::1:0".parse().unwrap(), count: 1000, pick: Pick::Seq },
        src_port: PortRange { first: 1000, last: 1999, pick: Pick::Random },
        ..Default::default()
    });
}

#[test]
fn pktgen_tcp_syn_flood_makes_no_allocation_per_frame() {
    // Random sources from 198.18.0.0/15, a random ISN per SYN, an MSS option; bare and stamped
    // segments (60 and 128 bytes).
    pktgen_no_alloc(PktgenSpec {
        dst_mac: Some([2; 6]),
        proto: Proto::Tcp,
        tcp: TcpSpec { mss: Some(1460), ..TcpSpec::default() },
        size: FrameSize::List(vec![60, 128]),
        src_ip: IpRange { start: "198.18.0.0".parse().unwrap(), count: 1 << 17, pick: Pick::Random },
        src_port: PortRange { first: 1024, last: 65535, pick: Pick::Random },
        ..Default::default()
    });
}

fn pktgen_no_alloc(tx: PktgenSpec) {
    let u = Umem::heap(UmemConfig { frame_size: 2048, frame_count: 16384, headroom: 0 }).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut cache = PoolCache::new(&u, 1024);
    let (pa, mut wa) = sim_port(&u, &mut cache, SimConfig::default());
    let (pb, mut wb) = sim_port(&u, &mut cache, SimConfig::default());
    let mut b = LcoreBuilder::new(LcoreOptions::new("t"), cache);
    let a = b.add_queue("a:0", PortId(0), AnyPort::Ring(pa));
    let c = b.add_queue("b:0", PortId(1), AnyPort::Ring(pb));
    b.set_app(a, "pktgen", AnyApp::Pktgen(Box::new(Pktgen::new(&tx, a, [4; 6]).unwrap())));
    let rx = PktgenSpec { role: Role::Rx, ..Default::default() };
    b.set_app(c, "pktgen", AnyApp::Pktgen(Box::new(Pktgen::new(&rx, c, [4; 6]).unwrap())));
    let (mut l, _) = b.build(stop);
    let mut report = Vec::with_capacity(64);
    let mut round = |l: &mut engine::Lcore<'_, AnyApp>, t: u64| {
        l.poll_once(Instant::from_nanos(t * 1000));
        wa.forward_to(&mut wb, 256);
        if t.is_multiple_of(1000) {
            // The off-hot-path publication too (counters, handle snapshot, histogram copy).
            for app in l.apps() {
                report.clear();
                App::report(app, &mut report);
            }
        }
    };
    for t in 0..1000 {
        round(&mut l, t);
    }
    let before = thread_allocations();
    for t in 1000..21_000 {
        round(&mut l, t);
    }
    let allocs = thread_allocations() - before;
    let p: Vec<&Pktgen> = l.apps().filter_map(AnyApp::pktgen).collect();
    let sent = p[0].tx_counters().pkts;
    let rx = p[1].rx_stats().unwrap();
    assert!(sent > 1_000_000, "{sent}");
    assert!(rx.frames() > 1_000_000, "{}", rx.frames());
    if tx.proto == Proto::Tcp {
        assert_eq!(rx.tcp(), rx.frames());
    } else {
        assert_eq!(rx.foreign(), 0);
    }
    assert_eq!(allocs, 0, "pktgen: {allocs} allocations for {sent} frames sent, {} received", rx.frames());
}

/// Builds an Ethernet + IPv4 + UDP frame into `buf`; returns its length.
fn udp_frame(buf: &mut [u8], src: ([u8; 4], u16), dst: ([u8; 4], u16), macs: ([u8; 6], [u8; 6])) -> usize {
    use engine::wire::{EtherType, EthernetAddress, EthernetFrame, IpPair, IpProtocol, Ipv4Packet, UdpPacket};
    let payload = 18;
    let len = 14 + 20 + 8 + payload;
    buf[..len].fill(0);
    let mut e = EthernetFrame::new_unchecked(&mut buf[..len]);
    e.set_src_addr(EthernetAddress(macs.0));
    e.set_dst_addr(EthernetAddress(macs.1));
    e.set_ethertype(EtherType::IPV4);
    let mut ip = Ipv4Packet::new_unchecked(&mut buf[14..len]);
    ip.set_version(4);
    ip.set_header_len(20);
    ip.set_total_len((20 + 8 + payload) as u16);
    ip.set_ttl(64);
    ip.set_protocol(IpProtocol::UDP);
    ip.set_src_addr(src.0.into());
    ip.set_dst_addr(dst.0.into());
    ip.fill_checksum();
    let mut u = UdpPacket::new_unchecked(&mut buf[34..len]);
    u.set_src_port(src.1);
    u.set_dst_port(dst.1);
    u.set_len((8 + payload) as u16);
    u.fill_checksum(&IpPair::V4 { src: src.0.into(), dst: dst.0.into() });
    len
}

/// The l4lb's NAT path over simulated AF_XDP rings: new flows (Maglev, flow-table insert, NAT
/// pair), hits in both directions (burst lookup, reverse map, incremental checksums) and the
/// expiry sweep, with zero allocations once the tables are built.
#[test]
fn l4lb_nat_path_makes_no_allocation_per_frame() {
    use apps::l4lb::{L4lb, L4lbParams, Wiring};
    use engine::maglev::{MaglevBackend, MaglevTable};
    use engine::nat::NatFrame;
    use engine::Shard;

    let u = Umem::heap(UmemConfig { frame_size: 2048, frame_count: 16384, headroom: 0 }).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let params: L4lbParams = L4lbParams::parse(
        &r#"
client_port = "c"
backend_port = "b"
snat = ["198.19.0.2"]
max_flows = 32768
timeouts = { udp = 0.05 }
[[service]]
vip = "198.18.0.100"
proto = "udp"
port = 53
backends = [{ addr = "198.19.0.11:53", mac = "02:00:00:00:0b:01" }, { addr = "198.19.0.12:53", mac = "02:00:00:00:0b:02" }]
"#
        .parse::<toml::Table>()
        .unwrap(),
    )
    .unwrap();
    let mut cache = PoolCache::new(&u, 1024);
    let (pc, mut wc) = sim_port(&u, &mut cache, SimConfig::default());
    let (pb, mut wb) = sim_port(&u, &mut cache, SimConfig::default());
    let mut b = LcoreBuilder::new(LcoreOptions::new("t"), cache);
    let tc = b.add_queue("c:0", PortId(0), AnyPort::Ring(pc));
    let tb = b.add_queue("b:0", PortId(1), AnyPort::Ring(pb));
    let w = Wiring {
        client: PortId(0),
        backend: PortId(1),
        to_client: tc,
        to_backend: tb,
        client_mac: [2, 0, 0, 0, 0, 0xd0],
        backend_mac: [2, 0, 0, 0, 0, 0xd1],
        shard: Shard(0),
        shards: 1,
    };
    let mut lb = L4lb::new(&params, w, 64);
    let mb: Vec<MaglevBackend> = params.services[0]
        .backends
        .iter()
        .map(|b| MaglevBackend { id: MaglevBackend::id_of(&b.addr), weight: 1, active: true })
        .collect();
    lb.set_service_table(0, Arc::new(MaglevTable::new(&mb).unwrap()), vec![0u16, 1].into());
    b.add_app("lb", AnyApp::L4lb(Box::new(lb)), &[tc, tb]);
    let (mut l, _) = b.build(stop);

    let mut frame = [0u8; 2048];
    // Replies are built here (allocated before the measurement) and injected after transmit.
    let mut replies = vec![[0u8; 128]; 256];
    let mut lens = vec![0usize; 256];
    let (mut to_backend, mut to_client) = (0u64, 0u64);
    let mut round = |l: &mut engine::Lcore<'_, AnyApp>, t: u64| {
        // 32 flows per round (100 µs) from a rotating window of 32768 source ports, each
        // revisited after ~100 ms: every frame of a round opens a flow or hits one, and flows
        // idle for 50 ms expire in between.
        for k in 0..32u64 {
            let sport = 1024 + ((t * 32 + k) % 32768) as u16;
            let n = udp_frame(
                &mut frame,
                ([198, 18, 0, 1], sport),
                ([198, 18, 0, 100], 53),
                ([2, 0, 0, 0, 0, 0xc0], [2, 0, 0, 0, 0, 0xd0]),
            );
            wc.inject(&frame[..n]);
        }
        l.poll_once(Instant::from_nanos(t * 100_000));
        // The backends answer: each frame towards them comes back with addresses swapped.
        let mut m = 0;
        wb.transmit(256, |bytes| {
            let n = bytes.len().min(128);
            replies[m][..n].copy_from_slice(&bytes[..n]);
            lens[m] = n;
            m += 1;
        });
        to_backend += m as u64;
        for (reply, &n) in replies.iter_mut().zip(&lens).take(m) {
            if let Ok(mut nf) = NatFrame::new_checked(&mut reply[..n]) {
                let back = nf.tuple().reversed();
                let _ = nf.rewrite(&back);
            }
            let mut e = engine::wire::EthernetFrame::new_unchecked(&mut reply[..n]);
            let (s, d) = (e.src_addr(), e.dst_addr());
            e.set_src_addr(d);
            e.set_dst_addr(s);
            wb.inject(&reply[..n]);
        }
        l.poll_once(Instant::from_nanos(t * 100_000 + 50_000));
        wc.transmit(256, |_| to_client += 1);
    };
    for t in 0..500 {
        round(&mut l, t);
    }
    let before = thread_allocations();
    for t in 500..20_500 {
        round(&mut l, t);
    }
    let allocs = thread_allocations() - before;
    let c = match l.apps().next() {
        Some(AnyApp::L4lb(lb)) => lb.counters(),
        _ => panic!("not an l4lb lcore"),
    };
    assert!(to_backend > 600_000 && to_client > 600_000, "{to_backend} {to_client}");
    assert!(c.new_flows > 100_000 && c.expired > 100_000, "new flows and expiries both happened: {c:?}");
    assert_eq!(c.drop_table_full + c.drop_no_flow + c.drop_nat_ports, 0, "{c:?}");
    assert_eq!(allocs, 0, "l4lb: {allocs} allocations for {to_backend} + {to_client} frames");
}
