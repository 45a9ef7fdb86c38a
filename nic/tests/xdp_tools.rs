//! Root tests of the measuring instruments (`nic::xdp_tools`): the live-frames generator
//! delivers exactly the frames it says it sent into a counting sink, at a set rate, with
//! several flows; the forwarder moves frames between two veths. Each test builds its own
//! namespaces (unique names) with 198.18.0.0/15 addresses, is bounded in time, and cleans up
//! through `Drop`. Without root each test is skipped through `nic::testenv`
//! (and fails under `XSKD_REQUIRE_ROOT=1`).

use std::time::Duration;

use nic::netns::{End, Netns, VethConfig, VethPair};
use nic::xdp_tools::{AttachMode, LiveGen, LiveRun, SinkAction, XdpForward, XdpSink};

use nic::require_root;

/// A 60-byte IPv4/UDP frame 198.18.0.1:9 -> 198.19.0.1:9 with a zero UDP checksum.
fn frame(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..34];
    ip.copy_from_slice(&[0x45, 0, 0, 46, 0, 0, 0x40, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 19, 0, 1]);
    let mut sum = 0u32;
    for c in ip.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    f[34..42].copy_from_slice(&[0, 9, 0, 9, 0, 26, 0, 0]);
    f
}

struct Two {
    _link: VethPair,
    a: Netns,
    b: Netns,
    mac_a: [u8; 6],
    mac_b: [u8; 6],
}

fn two(tag: &str) -> Two {
    let a = Netns::new(&format!("tl{tag}a")).expect("netns a");
    let b = Netns::new(&format!("tl{tag}b")).expect("netns b");
    let cfg = VethConfig { disable_ipv6: true, ..VethConfig::default() };
    let link = VethPair::new(&a, "lg0", &b, "lg1", &cfg).expect("veth");
    let (mac_a, mac_b) = (link.mac(End::A).expect("mac"), link.mac(End::B).expect("mac"));
    Two { _link: link, a, b, mac_a, mac_b }
}

#[test]
fn livegen_count_reaches_the_sink_exactly() {
    require_root!();
    let t = two("c");
    let sink = t.b.run_in(|| Ok(XdpSink::attach("lg1", AttachMode::Native, SinkAction::Drop))).unwrap().unwrap();
    let f = frame(t.mac_b, t.mac_a);
    let rep =
        t.a.run_in(|| {
            let g = LiveGen::new("lg0", 0, 0).map_err(std::io::Error::other)?;
            let run = LiveRun { count: Some(100_000), duration: Duration::from_secs(10), rate_pps: None, batch: 64 };
            g.run(&f, &run, &|| false).map_err(std::io::Error::other)
        })
        .unwrap();
    assert_eq!(rep.sent, 100_000);
    assert_eq!(rep.seen, 100_000);
    // The sink runs in the generator's context on a veth (NAPI scheduled on this CPU); allow it
    // a moment to drain.
    let mut got = sink.counts().unwrap();
    for _ in 0..50 {
        if got.packets >= 100_000 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        got = sink.counts().unwrap();
    }
    assert_eq!(got.packets, 100_000, "sink count");
    assert_eq!(got.bytes, 100_000 * 60);
}

#[test]
fn livegen_holds_a_set_rate() {
    require_root!();
    let t = two("r");
    let sink = t.b.run_in(|| Ok(XdpSink::attach("lg1", AttachMode::Native, SinkAction::Drop))).unwrap().unwrap();
    let f = frame(t.mac_b, t.mac_a);
    const RATE: f64 = 50_000.0;
    // The rate is measured at the receiver with this test's own clock: the sink's count at
    // 0.5 s and 2.5 s after the generator started (it paces in ~100 ms calls of 5 000 frames,
    // so either reading may be off by one call: at most ±10% over 2 s).
    let (rep, window) = std::thread::scope(|s| {
        let gen = s.spawn(|| {
            t.a.run_in(|| {
                let g = LiveGen::new("lg0", 0, 0).map_err(std::io::Error::other)?;
                let run = LiveRun { count: None, duration: Duration::from_secs(3), rate_pps: Some(RATE), batch: 64 };
                g.run(&f, &run, &|| false).map_err(std::io::Error::other)
            })
        });
        let t0 = std::time::Instant::now();
        let at = |secs: f64| {
            std::thread::sleep(Duration::from_secs_f64(secs).saturating_sub(t0.elapsed()));
            (sink.counts().unwrap().packets, t0.elapsed())
        };
        let (c0, e0) = at(0.5);
        let (c1, e1) = at(2.5);
        let rep = gen.join().unwrap().unwrap();
        (rep, (c1 - c0) as f64 / (e1 - e0).as_secs_f64())
    });
    assert!((window / RATE - 1.0).abs() < 0.12, "rate at the sink {window:.0} pps, wanted {RATE}");
    assert_eq!(rep.sent, 150_000, "rate x duration");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(sink.counts().unwrap().packets, rep.sent, "every frame reached the sink");
}

/// An `AF_PACKET` socket capturing every frame an interface receives (`ETH_P_ALL`), with a
/// receive buffer large enough to hold a whole test run.
struct Capture(std::os::fd::OwnedFd);

impl Capture {
    fn open(ns: &Netns, ifname: &str) -> Capture {
        use std::os::fd::FromRawFd;
        ns.run_in(|| {
            let proto = (libc::ETH_P_ALL as u16).to_be();
            // SAFETY: plain socket(2); the result is checked.
            let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, i32::from(proto)) };
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // SAFETY: a fresh descriptor nobody else owns.
            let me = Capture(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) });
            let buf: libc::c_int = 256 << 20;
            // SAFETY: `buf` outlives the call and the length is its size.
            let rc = unsafe {
                libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, (&buf as *const libc::c_int).cast(), 4)
            };
            if rc != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let idx = nic::sys::if_nametoindex(ifname)?;
            // SAFETY: all-zero is a valid sockaddr_ll; the fields are set below.
            let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            sa.sll_family = libc::AF_PACKET as u16;
            sa.sll_protocol = proto;
            sa.sll_ifindex = idx as i32;
            // SAFETY: `sa` is a valid sockaddr_ll that outlives the call; the length matches.
            let rc = unsafe {
                libc::bind(
                    fd,
                    (&sa as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            if rc != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(me)
        })
        .expect("AF_PACKET capture")
    }

    /// Every frame queued now (non-blocking), each cut to its first 64 bytes.
    fn drain(&self) -> Vec<Vec<u8>> {
        use std::os::fd::AsRawFd;
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        loop {
            // SAFETY: `buf` is writable for its length.
            let n = unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
            if n < 0 {
                return out;
            }
            out.push(buf[..(n as usize).min(64)].to_vec());
        }
    }

    /// Frames the kernel dropped at this socket (`PACKET_STATISTICS`, resets on read).
    fn drops(&self) -> u32 {
        use std::os::fd::AsRawFd;
        let mut st = libc::tpacket_stats { tp_packets: 0, tp_drops: 0 };
        let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
        // SAFETY: `st` and `len` are live and writable; `len` is the size of `st`.
        let rc = unsafe {
            libc::getsockopt(
                self.0.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut st as *mut libc::tpacket_stats).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0, "PACKET_STATISTICS: {}", std::io::Error::last_os_error());
        st.tp_drops
    }
}

#[test]
fn livegen_varies_source_ports_and_fwd_redirects() {
    require_root!();
    // a --lg0/lg1--> b (forwarder lg1 -> lg2) --lg2/lg3--> c (sink, passing to a capture)
    let t = two("f");
    let c = Netns::new("tlfc").expect("netns c");
    let cfg = VethConfig { disable_ipv6: true, ..VethConfig::default() };
    let link2 = VethPair::new(&t.b, "lg2", &c, "lg3", &cfg).expect("veth 2");
    let sink = c.run_in(|| Ok(XdpSink::attach("lg3", AttachMode::Native, SinkAction::Pass))).unwrap().unwrap();
    let cap = Capture::open(&c, "lg3");
    // lg2 must be able to transmit xdp_frames: its peer lg3 has an XDP program (the sink).
    let fwd = t.b.run_in(|| Ok(XdpForward::attach("lg1", "lg2", AttachMode::Native))).unwrap().unwrap();
    let f = frame(t.mac_b, t.mac_a);
    const N: u64 = 20_000;
    let rep =
        t.a.run_in(|| {
            let g = LiveGen::new("lg0", 1000, 10_000).map_err(std::io::Error::other)?;
            let run = LiveRun { count: Some(N), duration: Duration::from_secs(10), rate_pps: None, batch: 64 };
            g.run(&f, &run, &|| false).map_err(std::io::Error::other)
        })
        .unwrap();
    assert_eq!(rep.sent, N);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(fwd.counts().unwrap().packets, N, "forwarder saw every frame");
    // Redirect into a veth can refuse frames when the peer ring is full; at this size it fits.
    assert_eq!(sink.counts().unwrap().packets, N, "sink saw every frame");
    // The frames themselves, as the kernel's packet tap saw them after the sink: UDP source
    // ports cycle through exactly 10000..11000, everything else as in the template.
    let frames = cap.drain();
    assert_eq!(frames.len() as u64 + u64::from(cap.drops()), N, "captured or counted as dropped by the tap");
    let mut ports = std::collections::BTreeSet::new();
    for fr in &frames {
        assert_eq!(fr.len(), 60);
        assert_eq!((&fr[..34], &fr[36..]), (&f[..34], &f[36..]), "only the source port changes");
        ports.insert(u16::from_be_bytes([fr[34], fr[35]]));
    }
    assert_eq!(ports.len(), 1000, "distinct source ports");
    assert_eq!((ports.first(), ports.last()), (Some(&10_000), Some(&10_999)));
    drop(link2);
}

#[test]
fn an_ip_only_sink_lets_arp_through_and_counts_only_ip() {
    require_root!();
    let a = Netns::new("tlipa").expect("netns a");
    let b = Netns::new("tlipb").expect("netns b");
    let cfg = VethConfig {
        disable_ipv6: true,
        addr_a: Some("198.18.0.1/24".into()),
        addr_b: Some("198.18.0.2/24".into()),
        ..VethConfig::default()
    };
    let _link = VethPair::new(&a, "ip0", &b, "ip1", &cfg).expect("veth");
    let send = |n: usize| {
        a.run_in(|| {
            let s = std::net::UdpSocket::bind("198.18.0.1:0")?;
            for _ in 0..n {
                s.send_to(&[0u8; 18], "198.18.0.2:9")?;
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(())
        })
        .expect("send")
    };
    let neigh = || a.ip(&["neigh", "show", "198.18.0.2", "dev", "ip0"]).expect("ip neigh");
    {
        // The plain sink drops ARP too: the sender never learns b's MAC, nothing IP leaves.
        let sink = b.run_in(|| Ok(XdpSink::attach("ip1", AttachMode::Native, SinkAction::Drop))).unwrap().unwrap();
        send(20);
        std::thread::sleep(Duration::from_millis(300));
        assert!(!neigh().contains("lladdr"), "resolved through a sink that drops ARP: {}", neigh());
        let c = sink.counts().unwrap();
        assert!(c.packets >= 1 && c.bytes == c.packets * 42, "only ARP requests (42 B) reached it: {c:?}");
    }
    let _ = a.ip(&["neigh", "flush", "dev", "ip0"]);
    let sink = b.run_in(|| Ok(XdpSink::attach_ip_only("ip1", AttachMode::Native, SinkAction::Drop))).unwrap().unwrap();
    send(100);
    std::thread::sleep(Duration::from_millis(200));
    assert!(neigh().contains("lladdr"), "ARP answered through the sink: {}", neigh());
    let c = sink.counts().unwrap();
    // 100 datagrams of 18 bytes: 60-byte frames; the ARP exchange is not counted.
    assert_eq!((c.packets, c.bytes), (100, 6000));
}
