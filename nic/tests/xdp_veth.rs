//! Root integration tests of the XDP program, its loader, `cleanup`, and the netns/veth helpers.
//!
//! Every test builds its own namespaces and veth pairs (unique names: prefix + pid + counter),
//! uses only 198.18.0.0/15, is time-bounded (socket timeouts, bounded waits), and tears
//! everything down through `Drop` even when it fails. Without root each test is skipped
//! through `nic::testenv` (and fails under `XSKD_REQUIRE_ROOT=1`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;

use common::{
    eventually, nothing_arrives, recv_count, send_udp, udp_listener, Pair, DUT_ADDR, DUT_IF, PEER_ADDR, PEER_IF,
    TIMEOUT,
};
use nic::netns::{format_mac, End, Netns, Topology, TopologyConfig, VethConfig, VethPair};
use nic::xdp::{
    cleanup, cleanup_with, AttachSlot, AttachVia, AttachedMode, Claim, ClaimRule, CleanupOptions, XdpError, XdpMode,
    XdpOp, XdpProgStats, XdpProgram, PROGRAM_NAME,
};

const XDP_PASS: u32 = 2;
const OBJECT_PATH: &str = concat!(env!("OUT_DIR"), "/xskd.bpf.o");

use nic::require_root;

/// TCP `InSegs` of the namespace (`/proc/thread-self/net/snmp` from a thread inside it).
fn tcp_in_segs(ns: &Netns) -> u64 {
    ns.run_in(|| {
        let snmp = std::fs::read_to_string("/proc/thread-self/net/snmp")?;
        let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
        let (head, vals) = (tcp.next().unwrap_or(""), tcp.next().unwrap_or(""));
        let idx =
            head.split_whitespace().position(|w| w == "InSegs").ok_or_else(|| std::io::Error::other("no InSegs"))?;
        vals.split_whitespace().nth(idx).and_then(|v| v.parse().ok()).ok_or_else(|| std::io::Error::other("bad InSegs"))
    })
    .expect("read snmp")
}

/// One TCP exchange from `peer` to a listener in `dut` on `port`: connect, send, half-close,
/// read the answer. Returns what the server read.
fn tcp_exchange(dut: &Netns, peer: &Netns, port: u16) -> Vec<u8> {
    let listener = dut
        .run_in(|| {
            let l = TcpListener::bind((DUT_ADDR, port))?;
            l.set_nonblocking(true)?;
            Ok(l)
        })
        .expect("bind tcp listener");
    std::thread::scope(|s| {
        let server = s.spawn(move || {
            // Bounded accept: poll the non-blocking listener until TIMEOUT.
            let end = Instant::now() + TIMEOUT;
            let mut c = loop {
                match listener.accept() {
                    Ok((c, _)) => break c,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < end => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => panic!("accept on port {port}: {e}"),
                }
            };
            c.set_nonblocking(false).expect("blocking");
            c.set_read_timeout(Some(TIMEOUT)).expect("timeout");
            let mut got = Vec::new();
            c.read_to_end(&mut got).expect("server read");
            c.write_all(b"pong").expect("server write");
            got
        });
        peer.run_in(|| {
            let mut c = TcpStream::connect_timeout(&SocketAddr::from((DUT_ADDR, port)), TIMEOUT)?;
            c.set_read_timeout(Some(TIMEOUT))?;
            c.write_all(b"ping")?;
            c.shutdown(std::net::Shutdown::Write)?;
            let mut answer = Vec::new();
            c.read_to_end(&mut answer)?;
            assert_eq!(answer, b"pong");
            Ok(())
        })
        .expect("tcp client");
        server.join().expect("server thread")
    })
}

fn stats(p: &XdpProgram) -> XdpProgStats {
    p.stats().expect("read stats")
}

fn dst(port: u16) -> SocketAddr {
    SocketAddr::from((DUT_ADDR, port))
}

#[test]
fn attach_native_then_generic_reports_the_obtained_mode() {
    require_root!();
    let pair = Pair::new();
    pair.assert_clean();

    let p = pair.attach(XdpMode::Native, &Claim::All).expect("attach native");
    assert_eq!(p.mode(), AttachedMode::Native);
    assert_eq!(p.mode().to_string(), "native");
    assert_eq!(p.ifname(), DUT_IF);
    assert!(p.ifindex() > 0);
    assert!(p.link_id().is_some(), "attached through a bpf_link");
    let (mode, id, word) = pair.xdp_state();
    assert_eq!((mode, id, word.as_str()), (Some(1), Some(u64::from(p.prog_id())), "xdp"));
    p.detach().expect("detach native");
    pair.assert_clean();

    let p = pair.attach(XdpMode::Generic, &Claim::All).expect("attach generic");
    assert_eq!(p.mode(), AttachedMode::Generic);
    assert_eq!(p.mode().to_string(), "generic");
    let (mode, id, word) = pair.xdp_state();
    assert_eq!((mode, id, word.as_str()), (Some(2), Some(u64::from(p.prog_id())), "xdpgeneric"));
    p.detach().expect("detach generic");
    pair.assert_clean();

    // Auto on a driver that supports native XDP gets native.
    let p = pair.attach(XdpMode::Auto, &Claim::All).expect("attach auto");
    assert_eq!(p.mode(), AttachedMode::Native);
    drop(p);
    pair.assert_clean();
}

#[test]
fn auto_falls_back_to_generic_when_native_is_refused() {
    require_root!();
    // veth refuses native XDP when the peer's MTU exceeds one page of frame (ERANGE).
    let pair = Pair::with(VethConfig { mtu: Some(9000), ..VethConfig::default() });
    let err = pair.attach(XdpMode::Native, &Claim::All).expect_err("native must fail");
    assert_eq!(err.op(), Some(XdpOp::AttachNative), "{err}");
    assert_eq!(err.errno(), Some(libc::ERANGE), "{err}");
    assert!(err.to_string().starts_with("x0: attach native failed"), "{err}");
    pair.assert_clean();

    let p = pair.attach(XdpMode::Auto, &Claim::All).expect("auto attach");
    assert_eq!(p.mode(), AttachedMode::Generic);
    assert_eq!(pair.xdp_state().2, "xdpgeneric");
    p.detach().expect("detach");
    pair.assert_clean();
}

#[test]
fn claim_rules_steer_only_claimed_traffic_and_the_rest_reaches_the_kernel() {
    require_root!();
    let pair = Pair::new();
    let claim =
        Claim::Rules(vec![ClaimRule::udp_port(9000).to_prefix(IpAddr::V4(DUT_ADDR), 32), ClaimRule::tcp_port(9100)]);
    let p = pair.attach(XdpMode::Native, &claim).expect("attach");
    let claimed_rx = udp_listener(&pair.dut, DUT_ADDR, 9000);
    let other_rx = udp_listener(&pair.dut, DUT_ADDR, 9001);

    // UDP: claimed without a socket → passed_no_socket, and the kernel still gets it.
    let s0 = stats(&p);
    send_udp(&pair.peer, dst(9000), 20);
    send_udp(&pair.peer, dst(9001), 10);
    assert_eq!(recv_count(&claimed_rx, 20), 20, "claimed datagrams reach the kernel");
    assert_eq!(recv_count(&other_rx, 10), 10, "unclaimed datagrams reach the kernel");
    let d = stats(&p).since(&s0);
    assert_eq!(d, XdpProgStats { redirected: 0, passed_unclaimed: 10, passed_no_socket: 20, parse_short: 0 });

    // TCP to an unclaimed port: every segment the kernel counts went through as unclaimed.
    let (s1, segs1) = (stats(&p), tcp_in_segs(&pair.dut));
    assert_eq!(tcp_exchange(&pair.dut, &pair.peer, 9002), b"ping");
    let mut last = (XdpProgStats::default(), 0);
    let settled = eventually(|| {
        let d = stats(&p).since(&s1);
        let segs = tcp_in_segs(&pair.dut) - segs1;
        last = (d, segs);
        d.passed_unclaimed == segs && d.total() == segs
    });
    assert!(settled, "unclaimed TCP: xdp {:?} vs kernel InSegs {}", last.0, last.1);
    assert!(last.1 >= 4, "a TCP exchange has at least 4 segments, saw {}", last.1);

    // TCP to a claimed port with no socket: passed_no_socket, and the connection works.
    let (s2, segs2) = (stats(&p), tcp_in_segs(&pair.dut));
    assert_eq!(tcp_exchange(&pair.dut, &pair.peer, 9100), b"ping");
    let settled = eventually(|| {
        let d = stats(&p).since(&s2);
        let segs = tcp_in_segs(&pair.dut) - segs2;
        last = (d, segs);
        d.passed_no_socket == segs && d.total() == segs
    });
    assert!(settled, "claimed TCP: xdp {:?} vs kernel InSegs {}", last.0, last.1);

    // ARP: drop the peer's static entry; its ARP request is unclaimed and the kernel answers.
    pair.peer.ip(&["neigh", "del", &DUT_ADDR.to_string(), "dev", PEER_IF]).expect("del neigh");
    let s3 = stats(&p);
    send_udp(&pair.peer, dst(9001), 1);
    assert_eq!(recv_count(&other_rx, 1), 1, "datagram after ARP resolution");
    let d = stats(&p).since(&s3);
    let arp = d.passed_unclaimed - 1;
    assert!((1..=3).contains(&arp), "ARP requests seen: {arp} ({d:?})");
    assert_eq!((d.redirected, d.passed_no_socket, d.parse_short), (0, 0, 0));
    let neigh = pair.peer.ip(&["neigh", "show", &DUT_ADDR.to_string(), "dev", PEER_IF]).expect("neigh show");
    assert!(neigh.contains("lladdr"), "peer resolved the DUT through ARP: {neigh}");

    p.detach().expect("detach");
    pair.assert_clean();
}

#[test]
fn claim_all_counts_everything() {
    require_root!();
    let pair = Pair::new();
    let p = pair.attach(XdpMode::Generic, &Claim::All).expect("attach");
    let a = udp_listener(&pair.dut, DUT_ADDR, 9000);
    let b = udp_listener(&pair.dut, DUT_ADDR, 9001);
    let (s0, segs0) = (stats(&p), tcp_in_segs(&pair.dut));
    send_udp(&pair.peer, dst(9000), 20);
    send_udp(&pair.peer, dst(9001), 10);
    assert_eq!(recv_count(&a, 20), 20);
    assert_eq!(recv_count(&b, 10), 10);
    assert_eq!(tcp_exchange(&pair.dut, &pair.peer, 9002), b"ping");
    let mut last = (XdpProgStats::default(), 0);
    let settled = eventually(|| {
        let d = stats(&p).since(&s0);
        let segs = tcp_in_segs(&pair.dut) - segs0;
        last = (d, segs);
        d.passed_no_socket == 30 + segs && d.total() == d.passed_no_socket
    });
    assert!(settled, "claim all: xdp {:?}, TCP InSegs {}", last.0, last.1);
    drop(p);
    pair.assert_clean();
}

/// A minimal AF_XDP socket bound to one queue in copy mode: UMEM, fill/completion/RX rings set
/// up but not mapped, which is enough for the program to redirect to it.
struct BoundXsk {
    fd: OwnedFd,
    area: *mut libc::c_void,
    len: usize,
}

impl BoundXsk {
    fn bind(ns: &Netns, ifname: &str, queue: u32) -> BoundXsk {
        let json = ns.ip(&["-j", "link", "show", "dev", ifname]).expect("ip -j link show");
        let v: serde_json::Value = serde_json::from_str(&json).expect("json");
        let ifindex = u32::try_from(v[0]["ifindex"].as_u64().expect("ifindex")).expect("u32");
        let len = 16 * 4096;
        // SAFETY: anonymous private mapping with no address hint; checked for MAP_FAILED.
        let area = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(area, libc::MAP_FAILED, "mmap umem");
        // The socket must be created inside `ns`: bind() resolves the ifindex in the socket's
        // namespace, not the calling thread's.
        let fd = ns
            .run_in(|| {
                // SAFETY: plain socket(2) call; checked below.
                let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
                if raw < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // SAFETY: `raw` is a fresh descriptor nobody else owns.
                Ok(unsafe { OwnedFd::from_raw_fd(raw) })
            })
            .expect("socket(AF_XDP) in the dut namespace");
        let me = BoundXsk { fd, area, len };
        let reg = libc::xdp_umem_reg {
            addr: area as u64,
            len: len as u64,
            chunk_size: 4096,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        me.setsockopt(libc::XDP_UMEM_REG, &reg);
        for opt in [libc::XDP_UMEM_FILL_RING, libc::XDP_UMEM_COMPLETION_RING, libc::XDP_RX_RING] {
            me.setsockopt(opt, &16u32);
        }
        let sa = libc::sockaddr_xdp {
            sxdp_family: libc::AF_XDP as u16,
            sxdp_flags: libc::XDP_COPY,
            sxdp_ifindex: ifindex,
            sxdp_queue_id: queue,
            sxdp_shared_umem_fd: 0,
        };
        // SAFETY: `sa` is a valid sockaddr_xdp that outlives the call; the length matches.
        let rc = unsafe {
            libc::bind(
                me.fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_xdp).cast(),
                std::mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "bind AF_XDP: {}", std::io::Error::last_os_error());
        me
    }

    /// `XDP_STATISTICS` of the socket.
    fn stats(&self) -> libc::xdp_statistics {
        // SAFETY: all-zero is a valid value of this plain C struct of integers.
        let mut st: libc::xdp_statistics = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::xdp_statistics>() as libc::socklen_t;
        // SAFETY: `st` and `len` are live and writable; `len` is the size of `st`.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_XDP,
                libc::XDP_STATISTICS,
                (&mut st as *mut libc::xdp_statistics).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0, "XDP_STATISTICS: {}", std::io::Error::last_os_error());
        st
    }

    fn setsockopt<T>(&self, opt: libc::c_int, val: &T) {
        // SAFETY: `val` points to a live `T` of the size passed, for the duration of the call.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_XDP,
                opt,
                (val as *const T).cast(),
                std::mem::size_of::<T>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "setsockopt({opt}): {}", std::io::Error::last_os_error());
    }
}

impl Drop for BoundXsk {
    fn drop(&mut self) {
        // SAFETY: `area`/`len` are exactly the mapping made in `bind`; the socket (closed
        // after this, when `fd` drops) keeps its own pin on the UMEM pages.
        unsafe { libc::munmap(self.area, self.len) };
    }
}

#[test]
fn registered_socket_receives_claimed_frames_instead_of_the_kernel() {
    require_root!();
    let pair = Pair::new();
    let claim = Claim::Rules(vec![ClaimRule::udp_port(9000)]);
    let mut p = pair.attach(XdpMode::Native, &claim).expect("attach");
    let claimed_rx = udp_listener(&pair.dut, DUT_ADDR, 9000);
    let other_rx = udp_listener(&pair.dut, DUT_ADDR, 9001);
    let xsk = BoundXsk::bind(&pair.dut, DUT_IF, 0);

    let err = p.register_socket(64, xsk.fd.as_fd()).expect_err("queue 64 is out of range");
    assert!(err.to_string().contains("queue 64 is out of range"), "{err}");
    p.register_socket(0, xsk.fd.as_fd()).expect("register queue 0");

    let s0 = stats(&p);
    send_udp(&pair.peer, dst(9000), 10);
    send_udp(&pair.peer, dst(9001), 5);
    assert_eq!(recv_count(&other_rx, 5), 5);
    assert!(eventually(|| stats(&p).since(&s0).redirected == 10));
    // The socket has no fill-ring entries, so it drops what it gets; its own counters prove the
    // frames were delivered to *this* socket (a socket bound elsewhere would count nothing).
    let mut xs = (0, 0);
    let delivered = eventually(|| {
        let st = xsk.stats();
        xs = (st.rx_dropped, st.rx_fill_ring_empty_descs);
        xs == (10, 10)
    });
    assert!(delivered, "socket-side counters (dropped, fill-ring-empty): {xs:?}");
    assert!(
        nothing_arrives(&claimed_rx, Duration::from_millis(300)),
        "a redirected datagram reached the kernel socket"
    );
    assert_eq!(
        stats(&p).since(&s0),
        XdpProgStats { redirected: 10, passed_unclaimed: 5, passed_no_socket: 0, parse_short: 0 }
    );

    // Unregistered: claimed frames go back to the kernel.
    p.unregister_socket(0).expect("unregister");
    p.unregister_socket(0).expect("unregister twice is fine");
    let s1 = stats(&p);
    send_udp(&pair.peer, dst(9000), 3);
    assert_eq!(recv_count(&claimed_rx, 3), 3);
    assert_eq!(stats(&p).since(&s1).passed_no_socket, 3);

    // Detach before closing the socket.
    p.detach().expect("detach");
    drop(xsk);
    pair.assert_clean();
}

// ---- Frame builders for BPF_PROG_TEST_RUN classification. ----

fn eth(ethertype: u16, vlan: Option<u16>) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01];
    if let Some(tci) = vlan {
        f.extend_from_slice(&0x8100u16.to_be_bytes());
        f.extend_from_slice(&tci.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

fn udp(dport: u16) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&40000u16.to_be_bytes());
    h.extend_from_slice(&dport.to_be_bytes());
    h.extend_from_slice(&12u16.to_be_bytes());
    h.extend_from_slice(&[0, 0, b'x', b'k', b's', b'd']);
    h
}

fn tcp(dport: u16) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&40000u16.to_be_bytes());
    h.extend_from_slice(&dport.to_be_bytes());
    h.extend_from_slice(&[0; 8]);
    h.extend_from_slice(&[0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
    h
}

fn ipv4(proto: u8, dst: [u8; 4], ihl: u8, frag_off: u16, l4: &[u8]) -> Vec<u8> {
    let hlen = usize::from(ihl.max(5)) * 4;
    let mut h = vec![0u8; hlen];
    h[0] = 0x40 | ihl;
    h[2..4].copy_from_slice(&u16::try_from(hlen + l4.len()).unwrap().to_be_bytes());
    h[6..8].copy_from_slice(&frag_off.to_be_bytes());
    h[8] = 64;
    h[9] = proto;
    h[12..16].copy_from_slice(&PEER_ADDR.octets());
    h[16..20].copy_from_slice(&dst);
    for b in &mut h[20..] {
        *b = 1; // NOP options
    }
    h.extend_from_slice(l4);
    h
}

fn ipv6(nexthdr: u8, dst: Ipv6Addr, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0u8; 40];
    h[0] = 0x60;
    h[4..6].copy_from_slice(&u16::try_from(payload.len()).unwrap().to_be_bytes());
    h[6] = nexthdr;
    h[7] = 64;
    h[8..24].copy_from_slice(&Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1).octets());
    h[24..40].copy_from_slice(&dst.octets());
    h.extend_from_slice(payload);
    h
}

fn frame(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Class {
    Claimed,
    Unclaimed,
    Short,
}

fn classify(p: &XdpProgram, f: &[u8]) -> Class {
    let before = stats(p);
    assert_eq!(p.test_run(f).expect("test run"), XDP_PASS);
    let d = stats(p).since(&before);
    assert_eq!(d.total(), 1, "exactly one counter per frame: {d:?}");
    assert_eq!(d.redirected, 0);
    if d.passed_no_socket == 1 {
        Class::Claimed
    } else if d.passed_unclaimed == 1 {
        Class::Unclaimed
    } else {
        Class::Short
    }
}

#[test]
fn parser_and_rules_classify_crafted_frames() {
    require_root!();
    let pair = Pair::new();
    let v6 = |s: &str| s.parse::<Ipv6Addr>().unwrap();
    let claim = Claim::Rules(vec![
        ClaimRule {
            proto: Some(17),
            dst: Some((IpAddr::V4(DUT_ADDR), 24)),
            dst_port: Some((9000, 9010)),
            ..ClaimRule::default()
        },
        ClaimRule { ethertype: Some(0x0806), ..ClaimRule::default() },
        ClaimRule { dst: Some((IpAddr::V6(v6("2001:2::")), 45)), ..ClaimRule::default() },
        ClaimRule { proto: Some(47), ..ClaimRule::default() },
        ClaimRule::udp_port(53),
    ]);
    let p = pair.attach(XdpMode::Generic, &claim).expect("attach");
    let here = [198, 18, 0, 2];
    let elsewhere = [198, 18, 1, 2];
    let e4 = eth(0x0800, None);
    let e6 = eth(0x86dd, None);
    let cases: Vec<(&str, Vec<u8>, Class)> = vec![
        ("udp 9000", frame(&[&e4, &ipv4(17, here, 5, 0, &udp(9000))]), Class::Claimed),
        ("udp 9010 (range end)", frame(&[&e4, &ipv4(17, here, 5, 0, &udp(9010))]), Class::Claimed),
        ("udp 9011", frame(&[&e4, &ipv4(17, here, 5, 0, &udp(9011))]), Class::Unclaimed),
        ("udp 9000 other /24", frame(&[&e4, &ipv4(17, elsewhere, 5, 0, &udp(9000))]), Class::Unclaimed),
        ("tcp 9000", frame(&[&e4, &ipv4(6, here, 5, 0, &tcp(9000))]), Class::Unclaimed),
        ("vlan udp 9000", frame(&[&eth(0x0800, Some(7)), &ipv4(17, here, 5, 0, &udp(9000))]), Class::Claimed),
        ("ihl 6 udp 9000", frame(&[&e4, &ipv4(17, here, 6, 0, &udp(9000))]), Class::Claimed),
        ("first fragment", frame(&[&e4, &ipv4(17, here, 5, 0x2000, &udp(9000))]), Class::Claimed),
        ("non-first fragment", frame(&[&e4, &ipv4(17, here, 5, 0x0001, &udp(9000))]), Class::Unclaimed),
        ("gre", frame(&[&e4, &ipv4(47, elsewhere, 5, 0, &[0; 8])]), Class::Claimed),
        ("arp", frame(&[&eth(0x0806, None), &[0u8; 28]]), Class::Claimed),
        ("vlan arp", frame(&[&eth(0x0806, Some(3)), &[0u8; 28]]), Class::Claimed),
        ("ipv6 in /45", frame(&[&e6, &ipv6(17, v6("2001:2:7::1"), &udp(1))]), Class::Claimed),
        ("ipv6 outside /45", frame(&[&e6, &ipv6(17, v6("2001:2:8::1"), &udp(1))]), Class::Unclaimed),
        ("ipv6 udp 53", frame(&[&e6, &ipv6(17, v6("2001:2:8::1"), &udp(53))]), Class::Claimed),
        (
            "ipv6 hop-by-hop then udp 53 (no extension walk)",
            frame(&[&e6, &ipv6(0, v6("2001:2:8::1"), &[&[17u8, 0, 1, 4, 0, 0, 0, 0][..], &udp(53)].concat())]),
            Class::Unclaimed,
        ),
        ("ipv4 udp 53", frame(&[&e4, &ipv4(17, elsewhere, 5, 0, &udp(53))]), Class::Claimed),
        ("truncated udp", frame(&[&e4, &ipv4(17, here, 5, 0, &udp(9000))[..22]]), Class::Short),
        ("truncated ipv4", frame(&[&e4, &[0x45u8; 10]]), Class::Short),
        ("ihl 4", frame(&[&e4, &ipv4(17, here, 4, 0, &udp(9000))]), Class::Short),
        ("truncated ipv6", frame(&[&e6, &[0x60u8; 30]]), Class::Short),
        ("vlan cut short", frame(&[&e4[..12], &[0x81, 0x00, 0x00]]), Class::Short),
        ("ipx", frame(&[&eth(0x8137, None), &[0u8; 30]]), Class::Unclaimed),
    ];
    let mut wrong = Vec::new();
    for (name, f, want) in &cases {
        let got = classify(&p, f);
        if got != *want {
            wrong.push(format!("{name}: want {want:?}, got {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "misclassified:\n{}", wrong.join("\n"));
    drop(p);

    // No rules: nothing is claimed. Claim::All: everything is, truncated frames included.
    let p = pair.attach(XdpMode::Generic, &Claim::Rules(vec![])).expect("attach, no rules");
    for (name, f, want) in &cases {
        let expect = if *want == Class::Short { Class::Short } else { Class::Unclaimed };
        assert_eq!(classify(&p, f), expect, "no rules: {name}");
    }
    drop(p);
    let p = pair.attach(XdpMode::Generic, &Claim::All).expect("attach, all");
    for (name, f, _) in &cases {
        assert_eq!(classify(&p, f), Class::Claimed, "claim all: {name}");
    }
}

#[test]
fn detach_and_drop_leave_the_interface_clean() {
    require_root!();
    let pair = Pair::new();
    let p = pair.attach(XdpMode::Native, &Claim::All).expect("attach");
    assert_eq!(pair.xdp_state().2, "xdp");
    p.detach().expect("detach");
    pair.assert_clean();
    assert!(pair.cleanup().nothing_to_clean());

    let p = pair.attach(XdpMode::Generic, &Claim::All).expect("attach");
    assert_eq!(pair.xdp_state().2, "xdpgeneric");
    drop(p);
    pair.assert_clean();

    // Attaching twice: the second attach is refused with a pointer to `xskd cleanup`.
    let first = pair.attach(XdpMode::Native, &Claim::All).expect("attach");
    let err = pair.attach(XdpMode::Native, &Claim::All).expect_err("second attach");
    let msg = err.to_string();
    assert!(matches!(err, XdpError::AlreadyAttached { .. }), "{msg}");
    assert!(msg.contains(&format!("'{PROGRAM_NAME}' (id {})", first.prog_id())), "{msg}");
    assert!(msg.contains(&format!("held by pid {}", std::process::id())), "{msg}");
    assert!(msg.contains("run `xskd cleanup x0`"), "{msg}");
    drop(first);
    pair.assert_clean();
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const CHILD_ENV: &str = "XSKD_TEST_SIGKILL_CHILD_IFACE";

#[test]
fn sigkilled_process_leaves_nothing_attached() {
    if let Ok(iface) = std::env::var(CHILD_ENV) {
        // Child side: started by the parent inside its namespace with `ip netns exec`.
        let p = XdpProgram::attach(&iface, XdpMode::Native, &Claim::All).expect("child attach");
        println!("ATTACHED {}", p.prog_id());
        std::io::stdout().flush().expect("flush");
        std::thread::sleep(Duration::from_secs(30)); // the parent kills us long before
        panic!("child was not killed within 30 s");
    }
    require_root!();
    let pair = Pair::new();
    let exe = std::env::current_exe().expect("current exe");
    let exe = exe.to_str().expect("utf-8 path");
    let mut cmd = pair.dut.command(&[
        exe,
        "--exact",
        "sigkilled_process_leaves_nothing_attached",
        "--nocapture",
        "--test-threads=1",
    ]);
    cmd.env(CHILD_ENV, DUT_IF).stdin(Stdio::null()).stdout(Stdio::piped());
    let mut child = KillOnDrop(cmd.spawn().expect("spawn child"));
    let out = child.0.stdout.take().expect("child stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            // libtest may print "test NAME ... " on the same line first.
            if let Some((_, id)) = line.split_once("ATTACHED ") {
                let _ = tx.send(id.trim().parse::<u64>().ok());
                return;
            }
        }
        let _ = tx.send(None);
    });
    let prog_id = rx.recv_timeout(Duration::from_secs(30)).expect("child reports within 30 s").expect("child attached");
    let (mode, id, _) = pair.xdp_state();
    assert_eq!((mode, id), (Some(1), Some(prog_id)), "child's program is attached");

    // The child's program is held by a live process: cleanup leaves it alone.
    let report = pair.cleanup();
    assert_eq!(report.kept.len(), 1, "{report}");
    assert!(report.removed.is_empty(), "{report}");

    child.0.kill().expect("SIGKILL child");
    child.0.wait().expect("reap child");
    pair.assert_clean();
    assert!(pair.cleanup().nothing_to_clean());
    let p = pair.attach(XdpMode::Native, &Claim::All).expect("attach after SIGKILL, no manual step");
    assert_eq!(p.mode(), AttachedMode::Native);
    p.detach().expect("detach");
    pair.assert_clean();
}

#[test]
fn cleanup_removes_netlink_attached_programs() {
    require_root!();
    let pair = Pair::new();
    let report = pair.cleanup();
    assert!(report.nothing_to_clean());
    assert_eq!(report.to_string(), "x0: nothing to clean");

    for (ip_mode, slot, json_mode) in [("xdpgeneric", AttachSlot::Generic, 2), ("xdpdrv", AttachSlot::Native, 1)] {
        let out = pair
            .dut
            .exec(&["ip", "link", "set", "dev", DUT_IF, ip_mode, "obj", OBJECT_PATH, "sec", "xdp"])
            .expect("run ip");
        assert!(out.status.success(), "ip link set {ip_mode}: {}", String::from_utf8_lossy(&out.stderr));
        let (mode, id, _) = pair.xdp_state();
        assert_eq!(mode, Some(json_mode));
        let id = id.expect("prog id");

        // Attaching over it is refused, in every mode, with the way out in the message.
        for m in [XdpMode::Native, XdpMode::Generic, XdpMode::Auto] {
            let err = pair.attach(m, &Claim::All).expect_err("attach over a netlink program");
            let msg = err.to_string();
            assert!(matches!(err, XdpError::AlreadyAttached { .. }), "{m}: {msg}");
            assert!(msg.contains("attached through netlink"), "{msg}");
            assert!(msg.contains(&format!("(id {id})")), "{msg}");
            assert!(msg.contains("xskd cleanup x0"), "{msg}");
        }

        let report = pair.cleanup();
        assert_eq!(report.removed.len(), 1, "{report}");
        assert!(report.kept.is_empty(), "{report}");
        let r = &report.removed[0];
        assert_eq!((r.slot, u64::from(r.prog_id), r.prog_name.as_str()), (slot, id, PROGRAM_NAME));
        assert_eq!(r.via, AttachVia::Netlink);
        assert!(report.to_string().contains("removed"), "{report}");
        pair.assert_clean();
        assert!(pair.cleanup().nothing_to_clean());
    }
}

#[test]
fn cleanup_leaves_live_links_unless_forced() {
    require_root!();
    let pair = Pair::new();
    let p = pair.attach(XdpMode::Native, &Claim::All).expect("attach");
    let report = pair.cleanup();
    assert!(report.removed.is_empty(), "{report}");
    assert_eq!(report.kept.len(), 1, "{report}");
    let kept = &report.kept[0];
    assert_eq!(kept.program.prog_id, p.prog_id());
    match &kept.program.via {
        AttachVia::Link { link_id, holders } => {
            assert_eq!(Some(*link_id), p.link_id());
            assert!(holders.contains(&std::process::id()), "holders {holders:?}");
        }
        other => panic!("expected a link, got {other:?}"),
    }
    assert_eq!(pair.xdp_state().2, "xdp", "still attached");

    let forced = pair
        .dut
        .run_in(|| Ok(cleanup_with(DUT_IF, &CleanupOptions { detach_live_links: true })))
        .expect("thread")
        .expect("forced cleanup");
    assert_eq!(forced.removed.len(), 1, "{forced}");
    pair.assert_clean();
    // The owner's own detach after a forced cleanup is harmless.
    p.detach().expect("detach after forced cleanup");
    pair.assert_clean();
}

#[test]
fn errors_name_the_interface_and_operation() {
    require_root!();
    let pair = Pair::new();
    let err = pair
        .dut
        .run_in(|| Ok(XdpProgram::attach("nope0", XdpMode::Native, &Claim::All)))
        .expect("thread")
        .expect_err("no such interface");
    assert!(matches!(err, XdpError::NoSuchInterface { .. }), "{err}");
    assert!(err.to_string().starts_with("nope0: no such network interface"), "{err}");

    let bad = Claim::Rules(vec![ClaimRule { dst_port: Some((2, 1)), ..ClaimRule::default() }]);
    let err = pair.attach(XdpMode::Native, &bad).expect_err("bad rule");
    assert!(err.to_string().starts_with("x0: invalid claim rule #0"), "{err}");
    pair.assert_clean();
    let err = pair.dut.run_in(|| Ok(cleanup("nope0"))).expect("thread").expect_err("cleanup");
    assert!(matches!(err, XdpError::NoSuchInterface { .. }), "{err}");
}

// ---- netns / veth / topology helpers ----

fn netns_listed(name: &str) -> bool {
    let out = std::process::Command::new("ip").args(["netns", "list"]).output().expect("ip netns list");
    String::from_utf8_lossy(&out.stdout).lines().any(|l| l.split_whitespace().next() == Some(name))
}

fn thread_netns_ino() -> u64 {
    std::fs::metadata("/proc/thread-self/ns/net").expect("ns").ino()
}

#[test]
fn netns_names_are_unique_and_drop_deletes_them() {
    require_root!();
    let a = Netns::new("xn").expect("a");
    let b = Netns::new("xn").expect("b");
    assert_ne!(a.name(), b.name());
    assert!(a.name().starts_with(&format!("xn-{}-", std::process::id())));
    let (na, nb) = (a.name().to_string(), b.name().to_string());
    assert!(netns_listed(&na) && netns_listed(&nb));
    let lo = a.ip(&["-o", "link", "show", "lo"]).expect("ip -n");
    assert!(lo.contains("UP"), "lo is up: {lo}");
    let out = a.exec(&["ip", "-o", "link"]).expect("exec");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1, "only lo inside");
    let err = a.ip(&["link", "show", "dev", "nope0"]).expect_err("must fail");
    assert!(err.to_string().contains("nope0"), "error carries the command: {err}");
    drop(a);
    drop(b);
    assert!(!netns_listed(&na) && !netns_listed(&nb), "namespaces deleted on drop");
}

#[test]
fn enter_guard_switches_and_restores_the_thread() {
    require_root!();
    let ns = Netns::new("xe").expect("netns");
    let target = std::fs::metadata(format!("/run/netns/{}", ns.name())).expect("nsfs").ino();
    let before = thread_netns_ino();
    assert_ne!(before, target);
    {
        let _g = ns.enter().expect("enter");
        assert_eq!(thread_netns_ino(), target);
        // Nested enter of another namespace restores to the first one.
        let other = Netns::new("xe").expect("other");
        {
            let _g2 = other.enter().expect("enter other");
            assert_ne!(thread_netns_ino(), target);
        }
        assert_eq!(thread_netns_ino(), target);
    }
    assert_eq!(thread_netns_ino(), before);
    // run_in uses another thread: this one is untouched.
    let inside = ns.run_in(|| Ok(thread_netns_ino())).expect("run_in");
    assert_eq!((inside, thread_netns_ino()), (target, before));
}

#[test]
fn veth_pair_with_queues_mtu_and_macs() {
    require_root!();
    let a = Netns::new("xv").expect("a");
    let b = Netns::new("xv").expect("b");
    assert!(VethPair::new(&a, "abcdefghijklmnop", &b, "v1", &VethConfig::default()).is_err());
    let pair = VethPair::new(
        &a,
        "v0",
        &b,
        "v1",
        &VethConfig {
            queues: Some(2),
            mtu: Some(2000),
            addr_a: Some("198.18.5.1/24".into()),
            addr_b: Some("198.18.5.2/24".into()),
            disable_ipv6: true,
        },
    )
    .expect("veth pair");
    for (end, ns) in [(End::A, &a), (End::B, &b)] {
        let name = pair.name(end);
        let json = ns.ip(&["-j", "link", "show", "dev", name]).expect("ip -j");
        let v: serde_json::Value = serde_json::from_str(&json).expect("json");
        assert_eq!(v[0]["mtu"].as_u64(), Some(2000));
        assert_eq!(v[0]["operstate"].as_str(), Some("UP"));
        let mac = pair.mac(end).expect("mac");
        assert_eq!(v[0]["address"].as_str(), Some(format_mac(&mac).as_str()));
        let chans = ns.exec(&["ethtool", "-l", name]).expect("ethtool -l");
        let text = String::from_utf8_lossy(&chans.stdout);
        let current = text.split("Current hardware settings:").nth(1).expect("current");
        assert!(current.contains("RX:\t\t2") && current.contains("TX:\t\t2"), "{text}");
        let addrs = ns.ip(&["-o", "-6", "addr", "show", "dev", name]).expect("v6 addrs");
        assert!(addrs.trim().is_empty(), "IPv6 disabled: {addrs}");
    }
    assert_ne!(pair.mac(End::A).unwrap(), pair.mac(End::B).unwrap());
    // With 2 active channels, an AF_XDP socket can bind queue 1 (EINVAL on a 1-channel veth).
    drop(BoundXsk::bind(&a, "v0", 1));
    assert_eq!((pair.netns(End::A), pair.netns(End::B)), (a.name(), b.name()));
    // Reachability over the pair.
    let rx = udp_listener(&b, Ipv4Addr::new(198, 18, 5, 2), 7000);
    send_udp(&a, SocketAddr::from(([198, 18, 5, 2], 7000)), 3);
    assert_eq!(recv_count(&rx, 3), 3);
    drop(pair);
    assert!(a.ip(&["link", "show", "dev", "v0"]).is_err(), "veth deleted on drop");
}

#[test]
fn topology_routes_through_the_dut() {
    require_root!();
    let names;
    {
        let topo = Topology::with_config("xtp", &TopologyConfig { dut_ip_forward: true, ..TopologyConfig::default() })
            .expect("topology");
        names = [topo.generator().name().to_string(), topo.dut().name().to_string(), topo.sink().name().to_string()];
        let mac_of = |ns: &Netns, dev: &str| {
            let v: serde_json::Value =
                serde_json::from_str(&ns.ip(&["-j", "link", "show", "dev", dev]).expect("ip")).expect("json");
            v[0]["address"].as_str().expect("address").to_string()
        };
        assert_eq!(format_mac(&topo.gen_mac()), mac_of(topo.generator(), Topology::GEN_IF));
        assert_eq!(format_mac(&topo.dut_gen_mac()), mac_of(topo.dut(), Topology::DUT_GEN_IF));
        assert_eq!(format_mac(&topo.dut_sink_mac()), mac_of(topo.dut(), Topology::DUT_SINK_IF));
        assert_eq!(format_mac(&topo.sink_mac()), mac_of(topo.sink(), Topology::SINK_IF));
        let neigh = topo.generator().ip(&["neigh", "show", "dev", Topology::GEN_IF]).expect("neigh");
        assert!(neigh.contains("PERMANENT") && neigh.contains("198.18.0.2"), "{neigh}");
        let route = topo.sink().ip(&["route", "show", "198.18.0.0/24"]).expect("route");
        assert!(route.contains("via 198.19.0.2"), "{route}");

        // gen → sink through the DUT's kernel forwarding, and back.
        let rx = udp_listener(topo.sink(), Topology::SINK_ADDR, 7000);
        send_udp(topo.generator(), SocketAddr::from((Topology::SINK_ADDR, 7000)), 5);
        assert_eq!(recv_count(&rx, 5), 5, "gen → sink via dut");
        let back = udp_listener(topo.generator(), Topology::GEN_ADDR, 7001);
        send_udp(topo.sink(), SocketAddr::from((Topology::GEN_ADDR, 7001)), 5);
        assert_eq!(recv_count(&back, 5), 5, "sink → gen via dut");
    }
    for n in &names {
        assert!(!netns_listed(n), "{n} deleted on drop");
    }
}
