//! Deterministic tests of the l4lb data path: frames built here byte by byte, run through a
//! shard with a fake clock, outputs parsed and their checksums verified from scratch.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use engine::maglev::{MaglevBackend, MaglevTable};
use engine::nat::NatFrame;
use engine::wire::{
    EtherType, EthernetAddress, EthernetFrame, Icmpv4Message, Icmpv4Packet, IpPair, IpProtocol, Ipv4Packet, TcpFlags,
    TcpPacket, UdpPacket,
};
use engine::{App, Batch, DropCounters, DropReason, Ingress, Instant, PortId, Shard, TxPort, Verdict};
use nic::{FrameBuf, PoolCache, Umem, UmemConfig};

use super::*;

const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xc0];
const D0_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xd0];
const D1_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xd1];
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const SNAT: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 2);

fn backend(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 19, 0, 11 + i as u8)
}

fn backend_mac(i: usize) -> [u8; 6] {
    [2, 0, 0, 0, 0x0b, i as u8]
}

fn params(extra: &str) -> L4lbParams {
    let text = format!(
        r#"
client_port = "d0"
backend_port = "d1"
snat = ["{SNAT}"]
{ports}
{extra}
[[service]]
name = "web"
vip = "{VIP}"
port = 80
backends = [{b}]
[[service]]
name = "dns"
vip = "{VIP}"
proto = "udp"
port = 53
backends = [{u}]
"#,
        ports = if extra.contains("nat_ports") { "" } else { "nat_ports = \"10000-10999\"" },
        b = (0..3)
            .map(|i| format!(
                "{{ addr = \"{}:8080\", mac = \"{}\" }}",
                backend(i),
                crate::params::fmt_mac(&backend_mac(i))
            ))
            .collect::<Vec<_>>()
            .join(", "),
        u = (0..3)
            .map(|i| format!(
                "{{ addr = \"{}:5353\", mac = \"{}\" }}",
                backend(i),
                crate::params::fmt_mac(&backend_mac(i))
            ))
            .collect::<Vec<_>>()
            .join(", "),
    );
    L4lbParams::parse(&text.parse::<toml::Table>().unwrap()).unwrap()
}

const TO_CLIENT: TxPort = TxPort(0);
const TO_BACKEND: TxPort = TxPort(1);
const FROM_CLIENT: Ingress = Ingress { port: PortId(0), handed_off: None };
const FROM_BACKEND: Ingress = Ingress { port: PortId(1), handed_off: None };

fn shard(p: &L4lbParams, shard: u16, shards: u16) -> L4lb {
    let w = Wiring {
        client: PortId(0),
        backend: PortId(1),
        to_client: TO_CLIENT,
        to_backend: TO_BACKEND,
        client_mac: D0_MAC,
        backend_mac: D1_MAC,
        shard: Shard(shard),
        shards,
    };
    let mut lb = L4lb::new(p, w, 64);
    for si in 0..p.services.len() {
        install(&mut lb, p, si, &[]);
    }
    lb
}

/// Installs service `si`'s table with the backends in `inactive` left out (as the controller
/// does for draining, removed or unresolved ones). Slots: service 0 is 0..3, service 1 3..6.
fn install(lb: &mut L4lb, p: &L4lbParams, si: usize, inactive: &[usize]) {
    let s = &p.services[si];
    let mb: Vec<MaglevBackend> = s
        .backends
        .iter()
        .enumerate()
        .map(|(i, b)| MaglevBackend { id: MaglevBackend::id_of(&b.addr), weight: 1, active: !inactive.contains(&i) })
        .collect();
    let members: Vec<u16> = (0..s.backends.len()).map(|i| (si * 3 + i) as u16).collect();
    lb.set_service_table(si, Arc::new(MaglevTable::new(&mb).unwrap()), members.into());
}

struct Frame {
    bytes: Vec<u8>,
}

fn eth(src: [u8; 6], dst: [u8; 6], l3: &[u8]) -> Vec<u8> {
    let mut v = vec![0u8; 14 + l3.len()];
    let mut e = EthernetFrame::new_unchecked(&mut v[..]);
    e.set_src_addr(EthernetAddress(src));
    e.set_dst_addr(EthernetAddress(dst));
    e.set_ethertype(EtherType::IPV4);
    v[14..].copy_from_slice(l3);
    v
}

fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: IpProtocol, l4: &[u8]) -> Vec<u8> {
    let mut v = vec![0u8; 20 + l4.len()];
    let mut ip = Ipv4Packet::new_unchecked(&mut v[..]);
    ip.set_version(4);
    ip.set_header_len(20);
    ip.set_total_len((20 + l4.len()) as u16);
    ip.set_ttl(64);
    ip.set_protocol(proto);
    ip.set_src_addr(src);
    ip.set_dst_addr(dst);
    ip.fill_checksum();
    v[20..].copy_from_slice(l4);
    v
}

fn tcp(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), flags: TcpFlags, payload: &[u8]) -> Vec<u8> {
    let mut seg = vec![0u8; 20 + payload.len()];
    {
        let mut t = TcpPacket::new_unchecked(&mut seg[..]);
        t.set_src_port(src.1);
        t.set_dst_port(dst.1);
        t.set_header_len(20);
        t.set_flags(flags);
        t.set_window_len(65535);
        t.payload_mut().copy_from_slice(payload);
        t.fill_checksum(&IpPair::V4 { src: src.0, dst: dst.0 });
    }
    ipv4(src.0, dst.0, IpProtocol::TCP, &seg)
}

fn udp(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), payload: &[u8]) -> Vec<u8> {
    let mut d = vec![0u8; 8 + payload.len()];
    {
        let mut u = UdpPacket::new_unchecked(&mut d[..]);
        u.set_src_port(src.1);
        u.set_dst_port(dst.1);
        u.set_len((8 + payload.len()) as u16);
        u.payload_mut().copy_from_slice(payload);
        u.fill_checksum(&IpPair::V4 { src: src.0, dst: dst.0 });
    }
    ipv4(src.0, dst.0, IpProtocol::UDP, &d)
}

fn icmp(src: Ipv4Addr, dst: Ipv4Addr, ty: Icmpv4Message, code: u8, rest: [u8; 4], data: &[u8]) -> Vec<u8> {
    let mut m = vec![0u8; 8 + data.len()];
    {
        let mut p = Icmpv4Packet::new_unchecked(&mut m[..]);
        p.set_msg_type(ty);
        p.set_msg_code(code);
        p.rest_of_header_mut().copy_from_slice(&rest);
        p.data_mut().copy_from_slice(data);
        p.fill_checksum();
    }
    ipv4(src, dst, IpProtocol::ICMP, &m)
}

fn from_client(l3: Vec<u8>) -> Frame {
    Frame { bytes: eth(CLIENT_MAC, D0_MAC, &l3) }
}

fn from_backend(i: usize, l3: Vec<u8>) -> Frame {
    Frame { bytes: eth(backend_mac(i), D1_MAC, &l3) }
}

/// The test bench: a heap UMEM and a pool; runs bursts through a shard.
struct Bench {
    umem: Umem,
}

/// One output: verdict and bytes.
type Out = (Verdict, Vec<u8>);

impl Bench {
    fn new() -> Bench {
        Bench { umem: Umem::heap(UmemConfig { frame_size: 2048, frame_count: 1024, headroom: 0 }).unwrap() }
    }

    fn run(&self, lb: &mut L4lb, now: Instant, from: Ingress, frames: &[Frame]) -> Vec<Out> {
        let mut pool = PoolCache::new(&self.umem, 256);
        let mut batch = Batch::with_capacity(64);
        for f in frames {
            let mut fr = pool.alloc().unwrap();
            fr.set_len(f.bytes.len());
            fr.data_mut().copy_from_slice(&f.bytes);
            batch.buf_mut().push(fr).unwrap();
        }
        batch.reset_verdicts();
        let mut drops = DropCounters::default();
        let mut staging: Vec<FrameBuf> = vec![];
        let mut cx = engine::Ctx::new(now, &mut pool, &mut drops, &mut staging);
        lb.process(&mut cx, from, &mut batch);
        let out = (0..batch.len()).map(|i| (batch.verdict(i), batch.frames()[i].data().to_vec())).collect();
        pool.free_burst(batch.buf_mut());
        out
    }

    fn one(&self, lb: &mut L4lb, now: Instant, from: Ingress, f: Frame) -> Out {
        self.run(lb, now, from, &[f]).pop().unwrap()
    }
}

fn parsed(bytes: &[u8]) -> NatFrame<&[u8]> {
    let nf = NatFrame::new_checked(bytes).expect("output parses");
    assert!(nf.verify_checksums(), "every checksum of the output verifies");
    nf
}

fn macs(bytes: &[u8]) -> ([u8; 6], [u8; 6]) {
    (bytes[6..12].try_into().unwrap(), bytes[..6].try_into().unwrap())
}

fn t0() -> Instant {
    Instant::from_millis(1000)
}

fn backend_index(a: IpAddr) -> usize {
    (0..3).find(|&i| IpAddr::V4(backend(i)) == a).expect("a backend address")
}

#[test]
fn a_syn_opens_a_flow_and_the_reply_comes_back_translated() {
    let b = Bench::new();
    let p = params("");
    let mut lb = shard(&p, 0, 1);
    let syn = from_client(tcp((CLIENT, 40000), (VIP, 80), TcpFlags::SYN, &[]));
    let (v, out) = b.one(&mut lb, t0(), FROM_CLIENT, syn);
    assert_eq!(v, Verdict::Tx(TO_BACKEND));
    let nf = parsed(&out);
    let t = nf.tuple();
    let bi = backend_index(t.dst_addr());
    assert_eq!(t.dst_port, 8080);
    assert_eq!(t.src_addr(), IpAddr::V4(SNAT));
    assert!((10000..=10999).contains(&t.src_port));
    assert_eq!(macs(&out), (D1_MAC, backend_mac(bi)));
    let nat_port = t.src_port;

    // SYN-ACK from that backend to the SNAT pair: back to VIP:80 → client:40000.
    let synack =
        from_backend(bi, tcp((backend(bi), 8080), (SNAT, nat_port), TcpFlags::SYN.with(TcpFlags::ACK, true), &[]));
    let (v, out) = b.one(&mut lb, t0(), FROM_BACKEND, synack);
    assert_eq!(v, Verdict::Tx(TO_CLIENT));
    let t = parsed(&out).tuple();
    assert_eq!((t.src_addr(), t.src_port), (IpAddr::V4(VIP), 80));
    assert_eq!((t.dst_addr(), t.dst_port), (IpAddr::V4(CLIENT), 40000));
    assert_eq!(macs(&out), (D0_MAC, CLIENT_MAC));

    // Data from the client sticks to the backend and the NAT pair; the payload is untouched.
    let data = from_client(tcp((CLIENT, 40000), (VIP, 80), TcpFlags::ACK.with(TcpFlags::PSH, true), b"hello, backend"));
    let (v, out) = b.one(&mut lb, t0(), FROM_CLIENT, data);
    assert_eq!(v, Verdict::Tx(TO_BACKEND));
    let nf = parsed(&out);
    assert_eq!((nf.tuple().dst_addr(), nf.tuple().src_port), (IpAddr::V4(backend(bi)), nat_port));
    assert!(out.ends_with(b"hello, backend"));
    let c = lb.counters();
    assert_eq!((c.new_flows, c.to_backend, c.to_client), (1, 2, 1));
    assert_eq!(lb.flow_count(), 1);
}

#[test]
fn segments_without_a_flow_and_foreign_replies_are_named_drops() {
    let b = Bench::new();
    let p = params("");
    let mut lb = shard(&p, 0, 1);
    let ack = from_client(tcp((CLIENT, 40001), (VIP, 80), TcpFlags::ACK, &[]));
    assert_eq!(b.one(&mut lb, t0(), FROM_CLIENT, ack).0, Verdict::Drop(DropReason::NoFlow));
    let other = from_client(tcp((CLIENT, 40001), (VIP, 81), TcpFlags::SYN, &[]));
    assert_eq!(b.one(&mut lb, t0(), FROM_CLIENT, other).0, Verdict::Drop(DropReason::Filtered));
    let stray = from_backend(0, tcp((backend(0), 8080), (SNAT, 10005), TcpFlags::ACK, &[]));
    assert_eq!(b.one(&mut lb, t0(), FROM_BACKEND, stray).0, Verdict::Drop(DropReason::NoFlow));
    // A reply to a real flow's pair but from another backend (or port) is not that flow.
    let (_, out) = b.one(&mut lb, t0(), FROM_CLIENT, from_client(tcp((CLIENT, 40002), (VIP, 80), TcpFlags::SYN, &[])));
    let t = parsed(&out).tuple();
    let bi = backend_index(t.dst_addr());
    let other_b = (bi + 1) % 3;
    let spoof = from_backend(other_b, tcp((backend(other_b), 8080), (SNAT, t.src_port), TcpFlags::ACK, &[]));
    assert_eq!(b.one(&mut lb, t0(), FROM_BACKEND, spoof).0, Verdict::Drop(DropReason::NoFlow));
    let c = lb.counters();
    assert_eq!((c.drop_no_flow, c.drop_no_service), (3, 1));
    // Truncated and fragmented input.
    let mut short = from_client(udp((CLIENT, 1), (VIP, 53), b"x"));
    short.bytes.truncate(30);
    assert_eq!(b.one(&mut lb, t0(), FROM_CLIENT, short).0, Verdict::Drop(DropReason::Malformed));
    let mut frag = from_client(udp((CLIENT, 1), (VIP, 53), b"xyz"));
    Ipv4Packet::new_unchecked(&mut frag.bytes[14..]).set_more_frags(true);
    Ipv4Packet::new_unchecked(&mut frag.bytes[14..]).fill_checksum();
    assert_eq!(b.one(&mut lb, t0(), FROM_CLIENT, frag).0, Verdict::Drop(DropReason::Unsupported));
    let c = lb.counters();
    assert_eq!((c.drop_malformed, c.drop_fragment), (1, 1));
}

#[test]
fn udp_flows_expire_on_time_and_give_their_port_back() {
    let b = Bench::new();
    let p = params("timeouts = { udp = 2 }");
    let mut lb = shard(&p, 0, 1);
    let free0 = lb.nat_free();
    let dgram = || from_client(udp((CLIENT, 5000), (VIP, 53), b"query"));
    let (v, out) = b.one(&mut lb, t0(), FROM_CLIENT, dgram());
    assert_eq!(v, Verdict::Tx(TO_BACKEND));
    let port = parsed(&out).tuple().src_port;
    assert_eq!(lb.nat_free(), free0 - 1);
    // Kept alive by traffic at 1.5 s, it survives until 3.5 s + the sweep.
    b.one(&mut lb, t0() + Duration::from_millis(1500), FROM_CLIENT, dgram());
    let mut now = t0();
    let step = |lb: &mut L4lb, now: &mut Instant, ms: u64| {
        let end = *now + Duration::from_millis(ms);
        while *now < end {
            *now += Duration::from_millis(1);
            sweep(lb, *now);
        }
    };
    step(&mut lb, &mut now, 3400);
    assert_eq!(lb.flow_count(), 1, "not expired 1.9 s after its last packet");
    step(&mut lb, &mut now, 300);
    assert_eq!(lb.flow_count(), 0, "expired 2.2 s after its last packet");
    assert_eq!(lb.counters().expired, 1);
    assert_eq!(lb.nat_free(), free0, "the NAT pair is free again");
    // The stale pair no longer maps to anything; a new datagram opens a new flow.
    let stale = from_backend(0, udp((backend(0), 5353), (SNAT, port), b"late"));
    assert_eq!(b.one(&mut lb, now, FROM_BACKEND, stale).0, Verdict::Drop(DropReason::NoFlow));
    assert_eq!(b.one(&mut lb, now, FROM_CLIENT, dgram()).0, Verdict::Tx(TO_BACKEND));
    assert_eq!(lb.counters().new_flows, 2);
}

fn sweep(lb: &mut L4lb, now: Instant) {
    let u = Umem::heap(UmemConfig { frame_size: 2048, frame_count: 64, headroom: 0 }).unwrap();
    let mut pool = PoolCache::new(&u, 16);
    let mut drops = DropCounters::default();
    let mut staging: Vec<FrameBuf> = vec![];
    let mut cx = engine::Ctx::new(now, &mut pool, &mut drops, &mut staging);
    if lb.poll_at().is_some_and(|t| now >= t) {
        lb.on_timer(&mut cx);
    }
}

#[test]
fn a_full_table_refuses_new_flows_and_keeps_the_old_ones() {
    let b = Bench::new();
    let p = params("max_flows = 8");
    let mut lb = shard(&p, 0, 1);
    for i in 0..8u16 {
        let syn = from_client(tcp((CLIENT, 41000 + i), (VIP, 80), TcpFlags::SYN, &[]));
        assert_eq!(b.one(&mut lb, t0(), FROM_CLIENT, syn).0, Verdict::Tx(TO_BACKEND));
    }
    let syn = from_client(tcp((CLIENT, 42000), (VIP, 80), TcpFlags::SYN, &[]));
    assert_eq!(b.one(&mut lb, t0(), FROM_CLIENT, syn).0, Verdict::Drop(DropReason::TableFull));
    assert_eq!(lb.counters().drop_table_full, 1);
    let old = from_client(tcp((CLIENT, 41003), (VIP, 80), TcpFlags::ACK, b"still here"));
    assert_eq!(b.one(&mut lb, t0(), FROM_CLIENT, old).0, Verdict::Tx(TO_BACKEND));
    // Half-open flows expire (5 s by default): the table takes new flows again.
    let mut now = t0();
    for _ in 0..6000 {
        now += Duration::from_millis(1);
        sweep(&mut lb, now);
    }
    assert_eq!(lb.flow_count(), 0);
    let syn = from_client(tcp((CLIENT, 42000), (VIP, 80), TcpFlags::SYN, &[]));
    assert_eq!(b.one(&mut lb, now, FROM_CLIENT, syn).0, Verdict::Tx(TO_BACKEND));
}

#[test]
fn replies_for_another_shard_are_handed_to_it_once() {
    let b = Bench::new();
    let p = params("");
    // 1000 ports over 2 shards: shard 0 has 10000-10499, shard 1 10500-10999.
    let mut s0 = shard(&p, 0, 2);
    let mut s1 = shard(&p, 1, 2);
    let (_, out) = b.one(&mut s1, t0(), FROM_CLIENT, from_client(udp((CLIENT, 7000), (VIP, 53), b"q")));
    let t = parsed(&out).tuple();
    assert!((10500..=10999).contains(&t.src_port), "shard 1 hands out its own ports: {}", t.src_port);
    let bi = backend_index(t.dst_addr());
    let reply = || from_backend(bi, udp((backend(bi), 5353), (SNAT, t.src_port), b"answer"));
    assert_eq!(b.one(&mut s0, t0(), FROM_BACKEND, reply()).0, Verdict::Handoff(Shard(1)));
    assert_eq!(s0.counters().handed_off, 1);
    // On shard 1 (as handed over) it is translated; handed over to the wrong shard, it stops.
    let handed = Ingress { port: PortId(1), handed_off: Some(Shard(0)) };
    assert_eq!(b.one(&mut s1, t0(), handed, reply()).0, Verdict::Tx(TO_CLIENT));
    let mut s2 = shard(&p, 0, 2);
    assert_eq!(b.one(&mut s2, t0(), handed, reply()).0, Verdict::Drop(DropReason::NoFlow));
}

/// Opens one UDP flow per source port in `ports`; returns each flow's backend index.
fn open_udp(b: &Bench, lb: &mut L4lb, ports: std::ops::Range<u16>) -> Vec<usize> {
    ports
        .map(|sp| {
            let (v, out) = b.one(lb, t0(), FROM_CLIENT, from_client(udp((CLIENT, sp), (VIP, 53), b"q")));
            assert_eq!(v, Verdict::Tx(TO_BACKEND));
            backend_index(parsed(&out).tuple().dst_addr())
        })
        .collect()
}

#[test]
fn draining_keeps_flows_and_removing_moves_only_that_backends_flows() {
    let b = Bench::new();
    let p = params("");
    let mut lb = shard(&p, 0, 1);
    let before = open_udp(&b, &mut lb, 20000..20600);
    let share = |v: &[usize], i: usize| v.iter().filter(|&&x| x == i).count();
    for i in 0..3 {
        assert!((150..=250).contains(&share(&before, i)), "backend {i}: {} of 600", share(&before, i));
    }
    // Drain backend 1 (slot 4 of the UDP service): out of the table, its flows stay.
    install(&mut lb, &p, 1, &[1]);
    lb.set_backend(4, 1, SocketAddr::from((backend(1), 5353)), BackendState::Draining, Some(backend_mac(1)));
    let again = open_udp(&b, &mut lb, 20000..20600);
    assert_eq!(again, before, "existing flows keep their backend while it drains");
    let fresh = open_udp(&b, &mut lb, 30000..30300);
    assert_eq!(share(&fresh, 1), 0, "no new flow goes to a draining backend");
    // Remove backend 2: its flows (only those) move on their next packet.
    install(&mut lb, &p, 1, &[1, 2]);
    lb.set_backend(5, 1, SocketAddr::from((backend(2), 5353)), BackendState::Removed, Some(backend_mac(2)));
    let after = open_udp(&b, &mut lb, 20000..20600);
    for (k, (&was, &now)) in before.iter().zip(&after).enumerate() {
        match was {
            2 => assert_ne!(now, 2, "flow {k} left the removed backend"),
            _ => assert_eq!(now, was, "flow {k} on backend {was} did not move"),
        }
    }
    assert_eq!(lb.counters().moved as usize, share(&before, 2));
}

#[test]
fn every_shard_picks_the_same_backend_for_a_flow() {
    let b = Bench::new();
    let p = params("");
    let mut s0 = shard(&p, 0, 3);
    let mut s2 = shard(&p, 2, 3);
    assert_eq!(open_udp(&b, &mut s0, 1000..1200), open_udp(&b, &mut s2, 1000..1200));
}

#[test]
fn echo_requests_to_the_vip_and_the_snat_address_are_answered() {
    let b = Bench::new();
    let p = params("");
    let mut lb = shard(&p, 0, 1);
    let ping = from_client(icmp(CLIENT, VIP, Icmpv4Message::ECHO_REQUEST, 0, [0, 7, 0, 1], b"abcdefgh"));
    let (v, out) = b.one(&mut lb, t0(), FROM_CLIENT, ping);
    assert_eq!(v, Verdict::Tx(TO_CLIENT));
    let nf = parsed(&out);
    assert_eq!(nf.icmp_type_code(), Some((Icmpv4Message::ECHO_REPLY.0, 0)));
    assert_eq!((nf.tuple().src_addr(), nf.tuple().dst_addr()), (IpAddr::V4(VIP), IpAddr::V4(CLIENT)));
    assert_eq!(macs(&out), (D0_MAC, CLIENT_MAC));
    let ping = from_backend(0, icmp(backend(0), SNAT, Icmpv4Message::ECHO_REQUEST, 0, [0, 9, 0, 1], b"x"));
    let (v, out) = b.one(&mut lb, t0(), FROM_BACKEND, ping);
    assert_eq!(v, Verdict::Tx(TO_BACKEND));
    assert_eq!(parsed(&out).tuple().dst_addr(), IpAddr::V4(backend(0)));
    // Echo to anything else is not ours.
    let other = from_client(icmp(CLIENT, Ipv4Addr::new(198, 18, 0, 7), Icmpv4Message::ECHO_REQUEST, 0, [0; 4], b""));
    assert_eq!(b.one(&mut lb, t0(), FROM_CLIENT, other).0, Verdict::Drop(DropReason::Unsupported));
    assert_eq!(lb.counters().icmp_echo, 2);
}

#[test]
fn icmp_errors_about_a_flow_are_translated_both_ways() {
    let b = Bench::new();
    let p = params("");
    let mut lb = shard(&p, 0, 1);
    let (_, out) = b.one(&mut lb, t0(), FROM_CLIENT, from_client(tcp((CLIENT, 43000), (VIP, 80), TcpFlags::SYN, &[])));
    let sent = parsed(&out).tuple();
    let bi = backend_index(sent.dst_addr());
    // A router on the backend side says "fragmentation needed" about what we sent: it quotes
    // our packet (SNAT:port → backend:8080) and is addressed to SNAT.
    let quote = &out[14..14 + 28];
    let frag = from_backend(
        bi,
        icmp(Ipv4Addr::new(198, 19, 0, 1), SNAT, Icmpv4Message::DST_UNREACHABLE, 4, [0, 0, 5, 0xdc], quote),
    );
    let (v, err) = b.one(&mut lb, t0(), FROM_BACKEND, frag);
    assert_eq!(v, Verdict::Tx(TO_CLIENT));
    let nf = parsed(&err);
    assert_eq!((nf.tuple().src_addr(), nf.tuple().dst_addr()), (IpAddr::V4(VIP), IpAddr::V4(CLIENT)));
    let inner = nf.inner_tuple().unwrap();
    assert_eq!((inner.src_addr(), inner.src_port), (IpAddr::V4(CLIENT), 43000));
    assert_eq!((inner.dst_addr(), inner.dst_port), (IpAddr::V4(VIP), 80));
    assert_eq!(&err[14 + 20 + 4..14 + 20 + 8], &[0, 0, 5, 0xdc], "the MTU is kept");
    assert_eq!(macs(&err), (D0_MAC, CLIENT_MAC));

    // The client side reports an error about our reply (VIP:80 → client:43000).
    let reply_quote = {
        let r = tcp((VIP, 80), (CLIENT, 43000), TcpFlags::SYN.with(TcpFlags::ACK, true), &[]);
        r[..28].to_vec()
    };
    let e = from_client(icmp(CLIENT, VIP, Icmpv4Message::DST_UNREACHABLE, 3, [0; 4], &reply_quote));
    let (v, err) = b.one(&mut lb, t0(), FROM_CLIENT, e);
    assert_eq!(v, Verdict::Tx(TO_BACKEND));
    let nf = parsed(&err);
    assert_eq!((nf.tuple().src_addr(), nf.tuple().dst_addr()), (IpAddr::V4(SNAT), IpAddr::V4(backend(bi))));
    let inner = nf.inner_tuple().unwrap();
    assert_eq!((inner.src_addr(), inner.src_port), (IpAddr::V4(backend(bi)), 8080));
    assert_eq!((inner.dst_addr(), inner.dst_port), (IpAddr::V4(SNAT), sent.src_port));
    assert_eq!(lb.counters().icmp_translated, 2);
}

#[test]
fn tcp_flags_move_the_flow_between_timeout_classes() {
    let b = Bench::new();
    let p = params("timeouts = { half_open = 1, established = 100, closing = 3 }");
    let mut lb = shard(&p, 0, 1);
    let c = (CLIENT, 44000);
    let (_, out) = b.one(&mut lb, t0(), FROM_CLIENT, from_client(tcp(c, (VIP, 80), TcpFlags::SYN, &[])));
    let t = parsed(&out).tuple();
    let bi = backend_index(t.dst_addr());
    let synack =
        from_backend(bi, tcp((backend(bi), 8080), (SNAT, t.src_port), TcpFlags::SYN.with(TcpFlags::ACK, true), &[]));
    b.one(&mut lb, t0(), FROM_BACKEND, synack);
    b.one(&mut lb, t0(), FROM_CLIENT, from_client(tcp(c, (VIP, 80), TcpFlags::ACK, &[])));
    // Established: survives 5 s of silence (half-open would not).
    let mut now = t0();
    for _ in 0..5000 {
        now += Duration::from_millis(1);
        sweep(&mut lb, now);
    }
    assert_eq!(lb.flow_count(), 1);
    // FIN: closing, gone 3 s later.
    b.one(&mut lb, now, FROM_CLIENT, from_client(tcp(c, (VIP, 80), TcpFlags::FIN.with(TcpFlags::ACK, true), &[])));
    for _ in 0..3200 {
        now += Duration::from_millis(1);
        sweep(&mut lb, now);
    }
    assert_eq!(lb.flow_count(), 0);
}

#[test]
fn socket_addrs_parse_for_the_shard_layout() {
    // The initial backend slots follow the configuration order, services in turn.
    let p = params("");
    let addrs: Vec<SocketAddr> = p.services.iter().flat_map(|s| s.backends.iter().map(|b| b.addr)).collect();
    assert_eq!(addrs.len(), 6);
    assert_eq!(addrs[4], SocketAddr::from((backend(1), 5353)));
}

/// Two frames of one flow in one burst, the first of which moves the flow off a removed
/// backend: the second must see the moved flow, not the burst's stale lookup (which named an
/// entry that no longer exists).
#[test]
fn a_burst_that_moves_a_flow_does_not_trip_over_its_own_stale_lookup() {
    let b = Bench::new();
    let p = params("");
    let mut lb = shard(&p, 0, 1);
    let before = open_udp(&b, &mut lb, 20000..20030);
    let victim = (20000..20030u16).zip(&before).find(|(_, &bi)| bi == 2).map(|(sp, _)| sp).unwrap();
    install(&mut lb, &p, 1, &[2]);
    lb.set_backend(5, 1, SocketAddr::from((backend(2), 5353)), BackendState::Removed, Some(backend_mac(2)));
    let f = || from_client(udp((CLIENT, victim), (VIP, 53), b"again"));
    let out = b.run(&mut lb, t0(), FROM_CLIENT, &[f(), f(), f()]);
    let dsts: Vec<IpAddr> = out
        .iter()
        .map(|(v, o)| {
            assert_eq!(*v, Verdict::Tx(TO_BACKEND));
            parsed(o).tuple().dst_addr()
        })
        .collect();
    assert_ne!(dsts[0], IpAddr::V4(backend(2)));
    assert!(dsts.iter().all(|d| *d == dsts[0]), "all three on the flow's new backend: {dsts:?}");
    assert_eq!(lb.counters().moved, 1);
    assert_eq!(lb.flow_count(), 30);
}

/// A SYN that reuses the 5-tuple of a closing connection opens a new flow with a new NAT pair.
#[test]
fn a_syn_on_a_closing_flow_opens_a_new_one() {
    let b = Bench::new();
    let p = params("");
    let mut lb = shard(&p, 0, 1);
    let c = (CLIENT, 45000);
    let (_, out) = b.one(&mut lb, t0(), FROM_CLIENT, from_client(tcp(c, (VIP, 80), TcpFlags::SYN, &[])));
    let first = parsed(&out).tuple().src_port;
    b.one(&mut lb, t0(), FROM_CLIENT, from_client(tcp(c, (VIP, 80), TcpFlags::FIN.with(TcpFlags::ACK, true), &[])));
    let (_, out) = b.one(&mut lb, t0(), FROM_CLIENT, from_client(tcp(c, (VIP, 80), TcpFlags::SYN, &[])));
    let second = parsed(&out).tuple().src_port;
    assert_ne!(first, second, "a fresh NAT pair for the new connection");
    assert_eq!(lb.counters().new_flows, 2);
    assert_eq!(lb.flow_count(), 1);
    // The old pair is free again and no longer maps to a flow.
    let old = from_backend(0, tcp((backend(0), 8080), (SNAT, first), TcpFlags::ACK, &[]));
    assert_eq!(b.one(&mut lb, t0(), FROM_BACKEND, old).0, Verdict::Drop(DropReason::NoFlow));
}

mod robustness {
    use super::*;
    use proptest::prelude::*;

    /// A valid frame of some kind from either side, to be mutated.
    fn base(kind: u8, sp: u16, bi: usize) -> (Ingress, Vec<u8>) {
        match kind % 6 {
            0 => (FROM_CLIENT, from_client(tcp((CLIENT, sp), (VIP, 80), TcpFlags::SYN, &[])).bytes),
            1 => (FROM_CLIENT, from_client(udp((CLIENT, sp), (VIP, 53), b"query")).bytes),
            2 => {
                (FROM_CLIENT, from_client(icmp(CLIENT, VIP, Icmpv4Message::ECHO_REQUEST, 0, [0, 1, 0, 1], b"x")).bytes)
            }
            3 => (FROM_BACKEND, from_backend(bi, udp((backend(bi), 5353), (SNAT, 10000 + sp % 1000), b"a")).bytes),
            4 => (
                FROM_BACKEND,
                from_backend(bi, tcp((backend(bi), 8080), (SNAT, 10000 + sp % 1000), TcpFlags::ACK, b"b")).bytes,
            ),
            _ => {
                let q = udp((SNAT, 10000 + sp % 1000), (backend(bi), 5353), b"q");
                (
                    FROM_BACKEND,
                    from_backend(bi, icmp(backend(bi), SNAT, Icmpv4Message::DST_UNREACHABLE, 3, [0; 4], &q[..28]))
                        .bytes,
                )
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
        /// Any bytes, truncations and bit flips of valid frames from either side: no panic,
        /// every frame gets one verdict, and the NAT pairs and flows stay in step.
        #[test]
        fn mangled_frames_are_counted_never_fatal(
            frames in prop::collection::vec((any::<u8>(), any::<u16>(), 0usize..3, any::<u16>(), any::<u8>(), 0usize..120), 1..40)
        ) {
            let b = Bench::new();
            let p = params("max_flows = 16");
            let mut lb = shard(&p, 0, 2);
            let total = lb.nat_free();
            for (kind, sp, bi, flip_at, flip, cut) in frames {
                let (from, mut bytes) = base(kind, sp, bi);
                let i = flip_at as usize % bytes.len();
                bytes[i] ^= flip;
                bytes.truncate(bytes.len().saturating_sub(cut));
                let out = b.run(&mut lb, t0(), from, &[Frame { bytes }]);
                prop_assert_eq!(out.len(), 1);
                // Whatever goes out parses and carries valid checksums whenever its input did.
                if let (Verdict::Tx(_), bytes) = &out[0] {
                    prop_assert!(NatFrame::new_checked(&bytes[..]).is_ok());
                }
                prop_assert_eq!(lb.nat_free() + lb.flow_count(), total);
            }
        }
    }
}

/// `check` refuses an instance whose NAT port range cannot give every shard a port (what the
/// daemon would otherwise refuse only when building the shards).
#[test]
fn validation_checks_the_port_range_against_the_shard_count() {
    let text = |range: &str| {
        format!(
            r#"
[[port]]
name = "c"
kind = "null"
[[port]]
name = "b"
kind = "null"
[[app]]
name = "lb"
kind = "l4lb"
[app.params]
client_port = "c"
backend_port = "b"
snat = ["198.19.0.2"]
nat_ports = "{range}"
[[app.params.service]]
vip = "198.18.0.100"
port = 80
[[queue]]
port = "c"
lcore = 0
app = "lb"
[[queue]]
port = "b"
queue = 0
lcore = 1
app = "lb"
"#
        )
    };
    let env = crate::system_env();
    let errs = config::validate(&config::parse(&text("1024-1024")).unwrap(), &env).unwrap_err();
    assert_eq!(errs.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(), vec!["app[0].params.nat_ports"], "{errs:?}");
    assert!(config::validate(&config::parse(&text("1024-1025")).unwrap(), &env).is_ok());
}

#[test]
fn a_nat_pair_is_in_use_towards_every_backend_at_once() {
    // 100 ports on one SNAT address: each of the three UDP backends gets all 100, so 300
    // flows fit, and the same (SNAT address, port) carries three flows at once.
    let b = Bench::new();
    let p = params("nat_ports = \"10000-10099\"");
    let mut lb = shard(&p, 0, 1);
    assert_eq!(lb.nat_free(), 2 * 3 * 100, "three pools per protocol of 100 pairs (TCP and UDP backends)");
    let mut opened: Vec<(u16, usize, u16)> = vec![]; // (client port, backend, SNAT port)
    for sp in 20000..20600u16 {
        let (v, out) = b.one(&mut lb, t0(), FROM_CLIENT, from_client(udp((CLIENT, sp), (VIP, 53), b"q")));
        if v == Verdict::Tx(TO_BACKEND) {
            let t = parsed(&out).tuple();
            opened.push((sp, backend_index(t.dst_addr()), t.src_port));
        } else {
            assert_eq!(v, Verdict::Drop(DropReason::TableFull));
        }
    }
    assert_eq!(opened.len(), 300, "100 flows to each backend");
    assert_eq!(lb.counters().drop_nat_ports, 300);
    for i in 0..3 {
        let mut ports: Vec<u16> = opened.iter().filter(|o| o.1 == i).map(|o| o.2).collect();
        ports.sort_unstable();
        assert_eq!(ports, (10000..10100).collect::<Vec<_>>(), "backend {i} uses every pair once");
    }
    // Every reply finds its own client, although each pair is in use three times.
    for &(sp, bi, np) in &opened {
        let (v, out) = b.one(&mut lb, t0(), FROM_BACKEND, from_backend(bi, udp((backend(bi), 5353), (SNAT, np), b"a")));
        assert_eq!(v, Verdict::Tx(TO_CLIENT));
        let t = parsed(&out).tuple();
        assert_eq!((t.dst_addr(), t.dst_port, t.src_addr(), t.src_port), (IpAddr::V4(CLIENT), sp, IpAddr::V4(VIP), 53));
    }
    // A reply from the wrong backend for a pair in use is no flow of ours.
    let &(_, bi, np) = &opened[0];
    let other = (bi + 1) % 3;
    let wrong = from_backend(other, udp((backend(other), 5354), (SNAT, np), b"x"));
    assert_eq!(b.one(&mut lb, t0(), FROM_BACKEND, wrong).0, Verdict::Drop(DropReason::NoFlow));
}
