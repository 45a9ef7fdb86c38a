//! Helpers shared by the root veth tests of `nic`: a two-namespace veth pair, kernel UDP
//! senders and receivers, bounded waits.
#![allow(dead_code)] // each test binary uses its own subset

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use nic::netns::{format_mac, End, Netns, VethConfig, VethPair};
use nic::xdp::{cleanup, Claim, XdpError, XdpMode, XdpProgram};

pub const DUT_IF: &str = "x0";
pub const PEER_IF: &str = "x1";
pub const DUT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub const PEER_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Two namespaces joined by a veth pair: `x0` (198.18.0.2/24) in `dut`, `x1` (198.18.0.1/24)
/// in `peer`, IPv6 off and static neighbours both ways, so the link carries only test traffic.
pub struct Pair {
    /// Held for its `Drop` (deletes the pair before the namespaces go).
    _link: VethPair,
    pub dut: Netns,
    pub peer: Netns,
    /// MAC of `x0`.
    pub dut_mac: [u8; 6],
    /// MAC of `x1`.
    pub peer_mac: [u8; 6],
}

impl Pair {
    pub fn new() -> Pair {
        Pair::with(VethConfig::default())
    }

    pub fn with(base: VethConfig) -> Pair {
        let dut = Netns::new("xt-dut").expect("create dut netns");
        let peer = Netns::new("xt-peer").expect("create peer netns");
        let cfg = VethConfig {
            addr_a: Some(format!("{DUT_ADDR}/24")),
            addr_b: Some(format!("{PEER_ADDR}/24")),
            disable_ipv6: true,
            ..base
        };
        let link = VethPair::new(&dut, DUT_IF, &peer, PEER_IF, &cfg).expect("create veth pair");
        let (dut_mac, peer_mac) = (link.mac(End::A).expect("dut mac"), link.mac(End::B).expect("peer mac"));
        let perm = |ns: &Netns, ip: Ipv4Addr, mac: &str, dev: &str| {
            ns.ip(&["neigh", "replace", &ip.to_string(), "lladdr", mac, "dev", dev, "nud", "permanent"])
                .expect("static neighbour");
        };
        perm(&dut, PEER_ADDR, &format_mac(&peer_mac), DUT_IF);
        perm(&peer, DUT_ADDR, &format_mac(&dut_mac), PEER_IF);
        Pair { _link: link, dut, peer, dut_mac, peer_mac }
    }

    pub fn attach(&self, mode: XdpMode, claim: &Claim) -> Result<XdpProgram, XdpError> {
        self.dut.run_in(|| Ok(XdpProgram::attach(DUT_IF, mode, claim))).expect("thread in dut netns")
    }

    pub fn cleanup(&self) -> nic::xdp::CleanupReport {
        self.dut.run_in(|| Ok(cleanup(DUT_IF))).expect("thread in dut netns").expect("cleanup")
    }

    /// (`xdp.mode` from `ip -j link show`, prog id, the flag word of `ip link show`).
    pub fn xdp_state(&self) -> (Option<u64>, Option<u64>, String) {
        let json = self.dut.ip(&["-j", "link", "show", "dev", DUT_IF]).expect("ip -j link show");
        let v: serde_json::Value = serde_json::from_str(&json).expect("ip -j json");
        let xdp = &v[0]["xdp"];
        let text = self.dut.ip(&["link", "show", "dev", DUT_IF]).expect("ip link show");
        let word = text.split_whitespace().find(|w| w.starts_with("xdp")).unwrap_or("").to_string();
        (xdp["mode"].as_u64(), xdp["prog"]["id"].as_u64(), word)
    }

    pub fn assert_clean(&self) {
        let (mode, id, word) = self.xdp_state();
        assert_eq!((mode, id, word.as_str()), (None, None, ""), "interface still has XDP");
    }
}

/// A UDP socket bound in `ns` to `addr:port`, with a read timeout.
pub fn udp_listener(ns: &Netns, addr: Ipv4Addr, port: u16) -> UdpSocket {
    ns.run_in(|| {
        let s = UdpSocket::bind((addr, port))?;
        s.set_read_timeout(Some(TIMEOUT))?;
        Ok(s)
    })
    .expect("bind udp listener")
}

/// Sends `n` datagrams from `ns` to `dst`.
pub fn send_udp(ns: &Netns, dst: SocketAddr, n: usize) {
    ns.run_in(|| {
        let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
        for i in 0..n {
            s.send_to(format!("datagram {i}").as_bytes(), dst)?;
        }
        Ok(())
    })
    .expect("send udp");
}

/// Receives datagrams until `n` arrived or nothing came for `TIMEOUT`; returns the count.
pub fn recv_count(s: &UdpSocket, n: usize) -> usize {
    let mut buf = [0u8; 2048];
    let mut got = 0;
    while got < n && s.recv(&mut buf).is_ok() {
        got += 1;
    }
    got
}

/// Waits up to `TIMEOUT` for a datagram that must NOT come; true if none came in `wait`.
pub fn nothing_arrives(s: &UdpSocket, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).expect("timeout");
    let mut buf = [0u8; 2048];
    let none = s.recv(&mut buf).is_err();
    s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    none
}

/// Polls `f` until it returns true or `TIMEOUT` passes.
pub fn eventually(mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + TIMEOUT;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Interface counters as the kernel keeps them (`ip -s -j link show`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub rx_dropped: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tx_dropped: u64,
}

pub fn link_stats(ns: &Netns, dev: &str) -> LinkStats {
    let json = ns.ip(&["-s", "-j", "link", "show", "dev", dev]).expect("ip -s -j link show");
    let v: serde_json::Value = serde_json::from_str(&json).expect("ip json");
    let s = &v[0]["stats64"];
    let g = |dir: &str, k: &str| s[dir][k].as_u64().unwrap_or_else(|| panic!("{dev}: no stats64.{dir}.{k}: {json}"));
    LinkStats {
        rx_packets: g("rx", "packets"),
        rx_bytes: g("rx", "bytes"),
        rx_dropped: g("rx", "dropped"),
        tx_packets: g("tx", "packets"),
        tx_bytes: g("tx", "bytes"),
        tx_dropped: g("tx", "dropped"),
    }
}

/// One counter of `ethtool -S DEV` (veth: per-queue XDP counters such as
/// `rx_queue_1_xdp_redirect`).
pub fn ethtool_stat(ns: &Netns, dev: &str, name: &str) -> u64 {
    let out = ns.exec(&["ethtool", "-S", dev]).expect("ethtool -S");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.trim().strip_prefix(name).and_then(|r| r.strip_prefix(':')).map(|v| v.trim().parse().unwrap()))
        .unwrap_or_else(|| panic!("{dev}: no {name} in ethtool -S:\n{text}"))
}

/// Payload byte `j` of datagram `seq`: every datagram's content is known to the receiver.
pub fn pattern(seq: u64, j: usize) -> u8 {
    (seq as usize).wrapping_mul(31).wrapping_add(j.wrapping_mul(7)) as u8
}

/// A datagram payload of `len` bytes: the sequence number (8 bytes, big endian), then
/// [`pattern`].
pub fn payload(seq: u64, len: usize) -> Vec<u8> {
    let mut p: Vec<u8> = (0..len).map(|j| pattern(seq, j)).collect();
    p[..8].copy_from_slice(&seq.to_be_bytes());
    p
}

/// Sends datagrams `seqs` from a kernel UDP socket in `ns` (source port `sport`) to `dst`, each
/// making a frame of `frame_len` bytes (payload `frame_len - 42`); returns how many the socket
/// accepted.
pub fn send_seq(ns: &Netns, sport: u16, dst: SocketAddr, seqs: std::ops::Range<u64>, frame_len: usize) -> u64 {
    ns.run_in(|| {
        // The previous call's socket on `sport` may outlive its close for a moment: a process
        // that another test thread forks between our socket() and close() holds a copy of the
        // descriptor until it execs. Wait for the port (bounded) instead of failing.
        let end = Instant::now() + TIMEOUT;
        let s = loop {
            match UdpSocket::bind((Ipv4Addr::UNSPECIFIED, sport)) {
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < end => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                r => break r?,
            }
        };
        let mut n = 0;
        for seq in seqs {
            // A veth whose peer ring is full stops its queue, and a sender on a noqueue device
            // then gets ENOBUFS: wait for room (bounded), as a sender with a qdisc would.
            let end = Instant::now() + TIMEOUT;
            loop {
                match s.send_to(&payload(seq, frame_len - 42), dst) {
                    Ok(_) => break,
                    Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) && Instant::now() < end => {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(e) => return Err(std::io::Error::other(format!("datagram {seq} to {dst}: {e}"))),
                }
            }
            n += 1;
        }
        Ok(n)
    })
    .expect("send udp")
}

/// An Ethernet/IPv4/UDP frame (no IP options, UDP checksum 0 = none), as a kernel receiver
/// accepts it.
pub fn udp_frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    payload: &[u8],
) -> Vec<u8> {
    let mut f = Vec::with_capacity(42 + payload.len());
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + 8 + payload.len()) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[6] = 0x40; // DF
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src.0.octets());
    ip[16..20].copy_from_slice(&dst.0.octets());
    let mut sum: u32 = ip.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&src.1.to_be_bytes());
    f.extend_from_slice(&dst.1.to_be_bytes());
    f.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

/// Receives datagrams on `s` until `n` arrived or nothing came for `TIMEOUT`; returns their
/// payloads in arrival order.
pub fn recv_payloads(s: &UdpSocket, n: usize) -> Vec<Vec<u8>> {
    let mut buf = [0u8; 2048];
    let mut out = Vec::new();
    while out.len() < n {
        match s.recv(&mut buf) {
            Ok(len) => out.push(buf[..len].to_vec()),
            Err(_) => break,
        }
    }
    out
}
