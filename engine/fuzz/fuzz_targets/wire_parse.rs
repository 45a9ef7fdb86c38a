//! `wire_parse`: arbitrary bytes → Ethernet → (802.1Q) → IPv4 / IPv6 / ARP → UDP / TCP / ICMPv4
//! / ICMPv6, calling every getter, every `Repr::parse`, the TCP options iterator, checksum
//! verification, and (on a copy) the in-place setters. The property is "no panic, whatever the
//! bytes"; a few asserts check the length guarantees `check_len` documents.
//!
//! Run (from `engine/fuzz`, nightly features through RUSTC_BOOTSTRAP on the stable toolchain):
//!
//! ```sh
//! cargo install cargo-fuzz
//! cd engine/fuzz
//! RUSTC_BOOTSTRAP=1 cargo fuzz run wire_parse corpus/wire_parse seeds/wire_parse -- \
//!     -max_len=1536 -max_total_time=60
//! ```
//!
//! `seeds/wire_parse/` holds seven valid frames (IPv4/UDP, VLAN/IPv4/TCP SYN, IPv4/TCP with
//! SACK and data, IPv4/ICMP echo, IPv6/UDP, IPv6/TCP SYN, ARP) whose checksums were computed
//! outside this crate; `engine`'s unit tests parse them too. New inputs go to `corpus/`
//! (ignored by git). Without `RUSTC_BOOTSTRAP=1` the stable toolchain rejects cargo-fuzz's
//! `-Zsanitizer` flags; `cargo check` of this crate works on stable.
//!
//! cargo-fuzz builds with `--cfg fuzzing`, so every `verify_checksum` returns `true` and
//! `Repr::parse` is reached with random checksums.

#![no_main]

use engine::wire::{
    checksum, ArpPacket, ArpRepr, EtherType, EthernetFrame, EthernetRepr, Icmpv4Packet, Icmpv4Repr,
    Icmpv6Packet, IpPair, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, TcpOption,
    TcpPacket, TcpRepr, UdpPacket, UdpRepr,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = checksum::data(data);
    parse_frame(data);
    let mut copy = data.to_vec();
    rewrite_frame(&mut copy);
});

fn parse_frame(data: &[u8]) {
    let Ok(eth) = EthernetFrame::new_checked(data) else {
        return;
    };
    let _ = (
        eth.dst_addr(),
        eth.src_addr(),
        eth.ethertype(),
        eth.is_vlan_tagged(),
    );
    let _ = eth.payload().len();
    let _ = EthernetRepr::parse(&eth);
    let Ok(l3) = eth.l3_info() else { return };
    let Ok(payload) = eth.l3_payload() else {
        panic!("l3_info succeeded but l3_payload failed");
    };
    assert_eq!(l3.offset + payload.len(), data.len());
    match l3.ethertype {
        EtherType::IPV4 => parse_ipv4(payload),
        EtherType::IPV6 => parse_ipv6(payload),
        EtherType::ARP => parse_arp(payload),
        _ => {}
    }
}

fn parse_arp(data: &[u8]) {
    let Ok(p) = ArpPacket::new_checked(data) else {
        return;
    };
    let _ = (p.hardware_type(), p.protocol_type(), p.operation());
    let (h, l) = (usize::from(p.hardware_len()), usize::from(p.protocol_len()));
    assert_eq!(p.source_hardware_addr().len(), h);
    assert_eq!(p.source_protocol_addr().len(), l);
    assert_eq!(p.target_hardware_addr().len(), h);
    assert_eq!(p.target_protocol_addr().len(), l);
    let _ = ArpRepr::parse(&p);
}

fn parse_ipv4(data: &[u8]) {
    let Ok(ip) = Ipv4Packet::new_checked(data) else {
        return;
    };
    let _ = (ip.version(), ip.dscp_ecn(), ip.dscp(), ip.ecn(), ip.ident());
    let _ = (
        ip.dont_frag(),
        ip.more_frags(),
        ip.frag_offset(),
        ip.is_fragment(),
    );
    let _ = (ip.ttl(), ip.checksum(), ip.verify_checksum());
    assert_eq!(ip.options().len() + 20, usize::from(ip.header_len()));
    assert_eq!(
        ip.payload().len() + usize::from(ip.header_len()),
        usize::from(ip.total_len())
    );
    let _ = Ipv4Repr::parse(&ip);
    let ips = IpPair::V4 {
        src: ip.src_addr(),
        dst: ip.dst_addr(),
    };
    parse_l4(ip.protocol(), ip.payload(), &ips);
}

fn parse_ipv6(data: &[u8]) {
    let Ok(ip) = Ipv6Packet::new_checked(data) else {
        return;
    };
    let _ = (
        ip.version(),
        ip.traffic_class(),
        ip.flow_label(),
        ip.hop_limit(),
    );
    assert_eq!(ip.payload().len(), usize::from(ip.payload_len()));
    let _ = Ipv6Repr::parse(&ip);
    let ips = IpPair::V6 {
        src: ip.src_addr(),
        dst: ip.dst_addr(),
    };
    parse_l4(ip.next_header(), ip.payload(), &ips);
}

fn parse_l4(protocol: IpProtocol, data: &[u8], ips: &IpPair) {
    match protocol {
        IpProtocol::UDP => parse_udp(data, ips),
        IpProtocol::TCP => parse_tcp(data, ips),
        IpProtocol::ICMP => parse_icmp(data),
        IpProtocol::ICMPV6 => parse_icmpv6(data, ips),
        _ => {}
    }
}

fn parse_udp(data: &[u8], ips: &IpPair) {
    let Ok(udp) = UdpPacket::new_checked(data) else {
        return;
    };
    let _ = (
        udp.src_port(),
        udp.dst_port(),
        udp.checksum(),
        udp.verify_checksum(ips),
    );
    assert_eq!(udp.payload().len() + 8, usize::from(udp.len()));
    let _ = UdpRepr::parse(&udp);
}

fn parse_tcp(data: &[u8], ips: &IpPair) {
    let Ok(tcp) = TcpPacket::new_checked(data) else {
        return;
    };
    let _ = (
        tcp.src_port(),
        tcp.dst_port(),
        tcp.seq_number(),
        tcp.ack_number(),
    );
    let _ = (
        tcp.flags(),
        tcp.fin(),
        tcp.syn(),
        tcp.rst(),
        tcp.psh(),
        tcp.ack(),
    );
    let _ = (
        tcp.urg(),
        tcp.ece(),
        tcp.cwr(),
        tcp.window_len(),
        tcp.checksum(),
    );
    let _ = (tcp.urgent_at(), tcp.segment_len(), tcp.verify_checksum(ips));
    assert_eq!(20 + tcp.options().len() + tcp.payload().len(), data.len());
    let mut errors = 0;
    for option in tcp.options_iter() {
        match option {
            Ok(TcpOption::SackRange(blocks)) => {
                assert_eq!(blocks.iter().count(), blocks.len());
            }
            Ok(_) => {}
            Err(_) => errors += 1,
        }
    }
    assert!(errors <= 1);
    if let Ok(repr) = TcpRepr::parse(&tcp) {
        assert_eq!(repr.payload.len(), tcp.payload().len());
        // Whatever was parsed can be emitted again, and parses back to itself (SACK blocks
        // beyond what fits next to the other options are dropped by design).
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), ips);
        let again = TcpPacket::new_checked(&buf[..]).expect("emitted TCP header is valid");
        let mut expect = repr;
        expect.sack_ranges.truncate(repr.sack_blocks_emitted());
        assert_eq!(TcpRepr::parse(&again), Ok(expect));
    }
}

fn parse_icmp(data: &[u8]) {
    let Ok(icmp) = Icmpv4Packet::new_checked(data) else {
        return;
    };
    let _ = (
        icmp.msg_type(),
        icmp.msg_code(),
        icmp.checksum(),
        icmp.echo_ident(),
    );
    let _ = (
        icmp.echo_seq_no(),
        icmp.next_hop_mtu(),
        icmp.verify_checksum(),
    );
    let _ = (icmp.rest_of_header().len(), icmp.data().len());
    if let Ok(repr) = Icmpv4Repr::parse(&icmp) {
        assert_eq!(repr.buffer_len(), data.len());
    }
}

fn parse_icmpv6(data: &[u8], ips: &IpPair) {
    let Ok(icmp) = Icmpv6Packet::new_checked(data) else {
        return;
    };
    let _ = (icmp.msg_type(), icmp.msg_code(), icmp.checksum());
    let _ = (icmp.echo_ident(), icmp.echo_seq_no(), icmp.mtu());
    let _ = (icmp.msg_type().is_error(), icmp.verify_checksum(ips));
    assert_eq!(icmp.data().len() + 8, data.len());
}

/// Runs the in-place setters over a mutable copy: after `new_checked`, none may panic either.
fn rewrite_frame(data: &mut [u8]) {
    let Ok(mut eth) = EthernetFrame::new_checked(&mut data[..]) else {
        return;
    };
    eth.swap_addrs();
    let ethertype = match eth.l3_info() {
        Ok(l3) => l3.ethertype,
        Err(_) => return,
    };
    let Ok(l3) = eth.l3_payload_mut() else { return };
    match ethertype {
        EtherType::IPV4 => {
            let Ok(mut ip) = Ipv4Packet::new_checked(l3) else {
                return;
            };
            let ttl = ip.ttl().wrapping_sub(1);
            ip.rewrite_ttl(ttl);
            ip.rewrite_src_addr([10, 0, 0, 1].into());
            let _ = ip.options_mut().len();
            let ips = IpPair::V4 {
                src: ip.src_addr(),
                dst: ip.dst_addr(),
            };
            let protocol = ip.protocol();
            rewrite_l4(protocol, ip.payload_mut(), &ips);
            // Breaking the length fields must not make later accessors panic.
            ip.set_header_len(60);
            ip.set_total_len(u16::MAX);
            let _ = (ip.payload().len(), ip.options().len(), ip.verify_checksum());
            ip.fill_checksum();
        }
        EtherType::IPV6 => {
            let Ok(mut ip) = Ipv6Packet::new_checked(l3) else {
                return;
            };
            ip.set_hop_limit(ip.hop_limit().wrapping_sub(1));
            let ips = IpPair::V6 {
                src: ip.src_addr(),
                dst: ip.dst_addr(),
            };
            let next = ip.next_header();
            rewrite_l4(next, ip.payload_mut(), &ips);
            ip.set_payload_len(u16::MAX);
            let _ = ip.payload().len();
        }
        EtherType::ARP => {
            let Ok(mut arp) = ArpPacket::new_checked(l3) else {
                return;
            };
            arp.set_source_hardware_addr(&[2, 0, 0, 0, 0, 1]);
            arp.set_target_protocol_addr(&[10, 0, 0, 1]);
            arp.set_hardware_len(u8::MAX);
            let _ = arp.target_protocol_addr().len();
        }
        _ => {}
    }
}

fn rewrite_l4(protocol: IpProtocol, data: &mut [u8], ips: &IpPair) {
    match protocol {
        IpProtocol::UDP => {
            if let Ok(mut udp) = UdpPacket::new_checked(data) {
                udp.swap_ports();
                udp.fill_checksum(ips);
                let _ = udp.payload_mut().len();
                udp.set_len(u16::MAX);
                let _ = (udp.payload().len(), udp.verify_checksum(ips));
                udp.fill_checksum(ips);
            }
        }
        IpProtocol::TCP => {
            if let Ok(mut tcp) = TcpPacket::new_checked(data) {
                tcp.set_flags(tcp.flags());
                tcp.fill_checksum(ips);
                let _ = (tcp.options_mut().len(), tcp.payload_mut().len());
                tcp.set_header_len(60);
                let _ = (
                    tcp.options().len(),
                    tcp.payload().len(),
                    tcp.options_iter().count(),
                );
            }
        }
        IpProtocol::ICMP => {
            if let Ok(mut icmp) = Icmpv4Packet::new_checked(data) {
                let _ = icmp.echo_request_to_reply();
                icmp.fill_checksum();
                let _ = icmp.data_mut().len();
            }
        }
        _ => {}
    }
}
