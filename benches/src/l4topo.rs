//! The L4 load-balancer topology: `nic::netns::LbTopology` (a client namespace, the device
//! under test, and a backend LAN — a Linux bridge in its own namespace — with three backend
//! namespaces), plus what the benchmark needs on top of it.
//!
//! ```text
//!  cli: c0 198.18.0.1/24 ─── d0 198.18.0.2/24 ┐ dut ┌ d1 198.19.0.2/24 ─── l0 ┐ lan: br0 ┌ l1 ─── b0 198.19.0.11  b1
//!       route 198.19.0.0/24     + VIP 198.18.0.100/32  (+ 198.19.0.3.. with      │          ├ l2 ─── b0 198.19.0.12  b2
//!       via d0                  route 198.18.128.0/17   --snat-addrs)             └          └ l3 ─── b0 198.19.0.13  b3
//!                               via c0                         backends: default route via 198.19.0.2
//! ```
//!
//! * From `LbTopology`: the addresses, the VIP on d0 (the kernel answers ARP for it; clients are
//!   on its subnet), no static neighbour anywhere, IPv6 off, and TX checksum offload off on c0
//!   and the backends' b0 — frames that cross an AF_XDP engine must carry complete checksums,
//!   and every system is measured with that same client. (With TX checksum offload off the
//!   kernel cannot hand veth 64 KB TSO segments: GSO segments them in software before veth, so
//!   bulk TCP crosses the DUT as MTU-sized frames for every system.)
//! * Added here: the SNAT addresses (d1's own 198.19.0.2, and with `snat_addrs` > 1 also
//!   198.19.0.3 onwards as /32s on d1): nftables `snat`, haproxy's `source` (the first one) and
//!   xskd's full NAT all use them. One address gives a NAT 64 512 source ports (1024–65535) per
//!   backend and protocol: 193 536 flows over three backends. Routes for kernel forwarding
//!   (client → backends via d0, backends' default via d1); the generator's raw frames come from
//!   198.18.128.0/17 ([`L4Topo::GEN_SRC`]), which the DUT routes back via c0 (replies to it are
//!   dropped there: no such address). `ip_forward`, reverse-path filter off, the whole local
//!   port range for the client and the DUT (many short connections).
//! * Placement ([`L4Topo::place`]): RPS steers the receive work of d0 and d1 to the DUT's CPU
//!   and that of c0, the bridge ports and the backends to the client's CPU, so the DUT's CPU runs
//!   only the DUT (for the kernel peers: receive, conntrack/NAT, forward, transmit).
//!
//! Owns every namespace and veth it creates (unique names per process and call, removed on
//! `Drop`, also when construction fails half-way); addresses are in 198.18.0.0/15 only.

use std::net::Ipv4Addr;

use anyhow::{Context, Result};
use nic::netns::{LbTopology, LbTopologyConfig, Netns};

use crate::kernel::set_rps;

/// The topology.
#[derive(Debug)]
pub struct L4Topo {
    lb: LbTopology,
    snat_addrs: u8,
    tx_offload: bool,
}

/// One backend: its namespace index and address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backend {
    /// 0, 1, 2 for b1, b2, b3.
    pub index: usize,
    /// Its address on the LAN.
    pub addr: Ipv4Addr,
}

impl L4Topo {
    /// Client interface.
    pub const CLI_IF: &'static str = LbTopology::CLIENT_IF;
    /// DUT interface facing the clients (the VIP side).
    pub const DUT_CLI_IF: &'static str = LbTopology::DUT_CLIENT_IF;
    /// DUT interface facing the backends (the SNAT side).
    pub const DUT_LAN_IF: &'static str = LbTopology::DUT_BACKEND_IF;
    /// Each backend's interface.
    pub const BACKEND_IF: &'static str = LbTopology::BACKEND_IF;
    /// The client's address.
    pub const CLI_ADDR: Ipv4Addr = LbTopology::CLIENT_ADDR;
    /// d0's address.
    pub const D0_ADDR: Ipv4Addr = LbTopology::DUT_CLIENT_ADDR;
    /// The virtual service address (on d0).
    pub const VIP: Ipv4Addr = LbTopology::VIP;
    /// d1's address, also the (first) SNAT address.
    pub const D1_ADDR: Ipv4Addr = LbTopology::SNAT_ADDR;
    /// The DUT's (first) source address towards the backends: d1's own.
    pub const SNAT_ADDR: Ipv4Addr = LbTopology::SNAT_ADDR;
    /// At most this many SNAT addresses (198.19.0.2–198.19.0.9, below the backends).
    pub const MAX_SNAT_ADDRS: u8 = 8;
    /// The backends' addresses, b1..b3.
    pub const BACKEND_ADDRS: [Ipv4Addr; 3] =
        [Ipv4Addr::new(198, 19, 0, 11), Ipv4Addr::new(198, 19, 0, 12), Ipv4Addr::new(198, 19, 0, 13)];
    /// First address and size of the block the generator's raw frames come from
    /// (198.18.128.0/17).
    pub const GEN_SRC: (Ipv4Addr, u32) = (Ipv4Addr::new(198, 18, 128, 0), 1 << 15);
    /// Port of the request/response service (TCP) on the VIP and the backends.
    pub const RR_PORT: u16 = 8080;
    /// Port of the bulk service (iperf3, TCP): VIP → backend b1 only (iperf3's control and data
    /// connections must reach the same server).
    pub const BULK_PORT: u16 = 5201;
    /// Port of the UDP service (datagrams counted and dropped at the backends).
    pub const UDP_PORT: u16 = 9;

    /// Builds it with `snat_addrs` SNAT addresses (1..=8), and with TX checksum offload turned
    /// back on for the client and the backends when `tx_offload` (kernel peers only: veth then
    /// carries 64 KB TSO segments, which an AF_XDP DUT cannot take); namespaces are
    /// `PREFIX-{cli,dut,lan,b1,b2,b3}-PID-N`.
    pub fn new(prefix: &str, snat_addrs: u8, tx_offload: bool) -> Result<L4Topo> {
        if !(1..=Self::MAX_SNAT_ADDRS).contains(&snat_addrs) {
            anyhow::bail!("snat_addrs {snat_addrs}: 1..={}", Self::MAX_SNAT_ADDRS);
        }
        let lb = LbTopology::new(prefix, &LbTopologyConfig { backends: 3, queues: None })?;
        debug_assert!((0..3).all(|i| LbTopology::backend_addr(i) == Self::BACKEND_ADDRS[i]));
        let t = L4Topo { lb, snat_addrs, tx_offload };
        t.configure().context("configuring the L4 topology")?;
        Ok(t)
    }

    fn configure(&self) -> Result<()> {
        let dut = self.dut();
        for a in self.snat_addrs().into_iter().skip(1) {
            dut.ip(&["addr", "add", &format!("{a}/32"), "dev", Self::DUT_LAN_IF])?;
        }
        dut.ip(&["route", "add", "198.18.128.0/17", "via", &Self::CLI_ADDR.to_string(), "dev", Self::DUT_CLI_IF])?;
        dut.sysctl("net/ipv4/ip_forward", "1")?;
        for dev in ["all", "default", Self::DUT_CLI_IF, Self::DUT_LAN_IF] {
            dut.sysctl(&format!("net/ipv4/conf/{dev}/rp_filter"), "0")?;
        }
        let via = Self::D0_ADDR.to_string();
        self.cli().ip(&["route", "add", "198.19.0.0/24", "via", &via, "dev", Self::CLI_IF])?;
        for i in 0..3 {
            self.backend(i).ip(&[
                "route",
                "add",
                "default",
                "via",
                &Self::D1_ADDR.to_string(),
                "dev",
                Self::BACKEND_IF,
            ])?;
        }
        if self.tx_offload {
            let on =
                |ns: &Netns, dev: &str| crate::kernel::ns_exec(ns, &["ethtool", "-K", dev, "tx", "on"]).map(|_| ());
            on(self.cli(), Self::CLI_IF)?;
            for i in 0..3 {
                on(self.backend(i), Self::BACKEND_IF)?;
            }
        }
        // Many short connections: the whole port range for the client and for haproxy's side.
        for ns in [self.cli(), self.dut()] {
            ns.sysctl("net/ipv4/ip_local_port_range", "1024 65535")?;
        }
        Ok(())
    }

    /// Steers receive work with RPS: d0 and d1 to `dut_cpu`; g0, the bridge ports and the
    /// backends to `other_cpu`.
    pub fn place(&self, dut_cpu: usize, other_cpu: usize) -> Result<()> {
        let (d, o) = (1u64 << dut_cpu, 1u64 << other_cpu);
        set_rps(self.dut(), Self::DUT_CLI_IF, d)?;
        set_rps(self.dut(), Self::DUT_LAN_IF, d)?;
        set_rps(self.cli(), Self::CLI_IF, o)?;
        for p in ["l0", "l1", "l2", "l3"] {
            set_rps(self.lan(), p, o)?;
        }
        for i in 0..3 {
            set_rps(self.backend(i), Self::BACKEND_IF, o)?;
        }
        Ok(())
    }

    /// Resolves the neighbours every path needs once — a UDP datagram from the client to each
    /// backend, forwarded by the DUT's kernel — and waits until the DUT has a reachable
    /// neighbour entry for every backend (at most 3 s), so the first trial second does not time
    /// ARP. Run it before a DUT takes over d0/d1.
    pub fn warm_neighbours(&self) -> Result<()> {
        self.cli().run_in(|| {
            let s = std::net::UdpSocket::bind("0.0.0.0:0")?;
            for a in Self::BACKEND_ADDRS {
                s.send_to(b"warm", (a, Self::UDP_PORT))?;
            }
            Ok(())
        })?;
        let t0 = std::time::Instant::now();
        loop {
            let n = self.dut().ip(&["neigh", "show", "dev", Self::DUT_LAN_IF])?;
            let ok = Self::BACKEND_ADDRS
                .iter()
                .all(|a| n.lines().any(|l| l.starts_with(&format!("{a} ")) && l.contains("lladdr")));
            if ok {
                return Ok(());
            }
            if t0.elapsed() > std::time::Duration::from_secs(3) {
                anyhow::bail!("the DUT did not resolve every backend: {n}");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// The SNAT addresses, from [`Self::SNAT_ADDR`] up.
    pub fn snat_addrs(&self) -> Vec<Ipv4Addr> {
        snat_range(self.snat_addrs)
    }

    /// The client namespace.
    pub fn cli(&self) -> &Netns {
        self.lb.client()
    }

    /// The DUT namespace.
    pub fn dut(&self) -> &Netns {
        self.lb.dut()
    }

    /// The LAN (bridge) namespace.
    pub fn lan(&self) -> &Netns {
        self.lb.lan()
    }

    /// Backend namespace `i` (0 = b1).
    pub fn backend(&self, i: usize) -> &Netns {
        self.lb.backend(i)
    }

    /// The backends.
    pub fn backends(&self) -> impl Iterator<Item = Backend> {
        Self::BACKEND_ADDRS.into_iter().enumerate().map(|(index, addr)| Backend { index, addr })
    }

    /// MAC of d0 (where the generator's frames go).
    pub fn d0_mac(&self) -> [u8; 6] {
        self.lb.dut_client_mac()
    }
}

/// The first `n` SNAT addresses, from [`L4Topo::SNAT_ADDR`] up.
pub fn snat_range(n: u8) -> Vec<Ipv4Addr> {
    // 198.19.0.2 (d1's own) and up.
    (0..u32::from(n)).map(|i| Ipv4Addr::from(u32::from(L4Topo::SNAT_ADDR) + i)).collect()
}
