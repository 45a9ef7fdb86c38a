//! NAT rewrite micro-benchmarks (`engine::nat`), as time per rewritten packet:
//!
//! * `nat_rewrite/ipv4_tcp`: full NAT (DNAT + SNAT: both addresses, both ports) of a 54-byte
//!   IPv4 TCP segment on a view parsed once: four field writes, the IPv4 header checksum and the
//!   TCP checksum updated incrementally (RFC 1624). Each iteration rewrites to the backend tuple
//!   and back, two rewrites.
//! * `nat_rewrite/ipv6_udp`: the same for an IPv6 UDP datagram (two 128-bit addresses).
//! * `nat_parse_rewrite/ipv4_tcp`, `…/ipv6_udp`: `NatFrame::new_checked` (Ethernet, IP, L4
//!   length checks, 5-tuple) plus the rewrite, the per-packet cost on a real path.
//!
//! After each benchmark the frame must be back to its original bytes with valid checksums, so a
//! benchmark that skipped its work would fail.
//!
//! Time is the benchmark thread's **CPU time** (`nic::sys::thread_cpu_time`,
//! `CLOCK_THREAD_CPUTIME_ID`), not wall-clock time: on a shared machine the thread waits for a
//! CPU much of the time, which says nothing about the rewrite. Cache and branch-predictor
//! pollution by the other tasks is still in the numbers; on a quiet machine the two clocks agree.
//!
//! Run: `cargo bench -p benches --bench nat`.

use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use engine::nat::{FiveTuple, NatFrame};
use engine::wire::{
    EtherType, EthernetAddress, EthernetFrame, EthernetRepr, IpPair, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Packet,
    Ipv6Repr, TcpPacket, TcpRepr, TcpSeqNumber, UdpPacket, UdpRepr,
};

/// A frame for `t` (TCP with no options or UDP, empty payload), checksums filled.
fn frame(t: &FiveTuple) -> Vec<u8> {
    let v6 = t.ips.is_v6();
    let eth = EthernetRepr {
        src_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
        dst_addr: EthernetAddress([2, 0, 0, 0, 0, 2]),
        ethertype: if v6 { EtherType::IPV6 } else { EtherType::IPV4 },
        vlan: None,
    };
    let l4_len = if t.protocol == IpProtocol::TCP { 20 } else { 8 };
    let ip_len = if v6 { 40 } else { 20 };
    let mut buf = vec![0u8; 14 + ip_len + l4_len];
    eth.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
    match t.ips {
        IpPair::V4 { src, dst } => {
            let ip = Ipv4Repr {
                src_addr: src,
                dst_addr: dst,
                protocol: t.protocol,
                payload_len: l4_len,
                ttl: 64,
                dscp_ecn: 0,
                ident: 1,
                dont_frag: true,
            };
            ip.emit(&mut Ipv4Packet::new_unchecked(&mut buf[14..]));
        }
        IpPair::V6 { src, dst } => {
            let ip = Ipv6Repr {
                src_addr: src,
                dst_addr: dst,
                next_header: t.protocol,
                payload_len: l4_len,
                hop_limit: 64,
                traffic_class: 0,
                flow_label: 0,
            };
            ip.emit(&mut Ipv6Packet::new_unchecked(&mut buf[14..]));
        }
    }
    let l4 = &mut buf[14 + ip_len..];
    if t.protocol == IpProtocol::TCP {
        let mut tcp = TcpRepr::new(t.src_port, t.dst_port, TcpSeqNumber(1));
        tcp.ack_number = Some(TcpSeqNumber(2));
        tcp.window_len = 1024;
        tcp.emit(&mut TcpPacket::new_unchecked(l4), &t.ips);
    } else {
        UdpRepr { src_port: t.src_port, dst_port: t.dst_port }.emit(
            &mut UdpPacket::new_unchecked(l4),
            &t.ips,
            0,
            |_| {},
        );
    }
    buf
}

/// Client → VIP, and the translated backend flow (every field changes).
fn cases() -> [(&'static str, FiveTuple, FiveTuple); 2] {
    let v4 = |a: [u8; 4], b: [u8; 4]| IpPair::V4 { src: Ipv4Addr::from(a), dst: Ipv4Addr::from(b) };
    let v6 = |a: u128, b: u128| IpPair::V6 { src: Ipv6Addr::from_bits(a), dst: Ipv6Addr::from_bits(b) };
    let t = |ips, protocol, src_port, dst_port| FiveTuple { ips, protocol, src_port, dst_port };
    let net = 0x2001_0db8_u128 << 96;
    [
        (
            "ipv4_tcp",
            t(v4([198, 18, 1, 10], [198, 18, 0, 100]), IpProtocol::TCP, 43210, 443),
            t(v4([198, 18, 0, 200], [198, 18, 2, 20]), IpProtocol::TCP, 61000, 8443),
        ),
        (
            "ipv6_udp",
            t(v6(net | 0x1_0010, net | 0x100), IpProtocol::UDP, 43210, 53),
            t(v6(net | 0x200, net | 0x2_0020), IpProtocol::UDP, 61000, 5353),
        ),
    ]
}

/// Runs `f` `iters` times; returns the thread CPU time it took.
fn cpu_time(iters: u64, mut f: impl FnMut()) -> Duration {
    let start = nic::sys::thread_cpu_time().expect("thread CPU clock");
    for _ in 0..iters {
        f();
    }
    nic::sys::thread_cpu_time().expect("thread CPU clock") - start
}

/// The frame is back to its original bytes and its checksums verify.
fn check(bytes: &[u8], original: &[u8]) {
    assert_eq!(bytes, original, "the rewrites did not cancel out");
    assert!(NatFrame::new_checked(bytes).expect("still parses").verify_checksums());
}

fn nat_rewrite(c: &mut Criterion) {
    let mut g = c.benchmark_group("nat_rewrite");
    g.throughput(Throughput::Elements(2));
    for (name, client, backend) in cases() {
        let original = frame(&client);
        let mut bytes = original.clone();
        let mut f = NatFrame::new_checked(&mut bytes[..]).expect("valid frame");
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iters| {
                cpu_time(iters, || {
                    f.rewrite(black_box(&backend)).expect("same family and protocol");
                    f.rewrite(black_box(&client)).expect("same family and protocol");
                })
            })
        });
        check(&bytes, &original);
    }
    g.finish();
}

fn nat_parse_rewrite(c: &mut Criterion) {
    let mut g = c.benchmark_group("nat_parse_rewrite");
    g.throughput(Throughput::Elements(2));
    for (name, client, backend) in cases() {
        let original = frame(&client);
        let mut bytes = original.clone();
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iters| {
                cpu_time(iters, || {
                    for to in [&backend, &client] {
                        let mut f = NatFrame::new_checked(black_box(&mut bytes[..])).expect("valid frame");
                        f.rewrite(black_box(to)).expect("same family and protocol");
                    }
                })
            })
        });
        check(&bytes, &original);
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(1))
}

criterion_group! {
    name = benches;
    config = config();
    targets = nat_rewrite, nat_parse_rewrite
}
criterion_main!(benches);
