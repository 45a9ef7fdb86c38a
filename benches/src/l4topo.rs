//! The L4 load-balancer topology: a client namespace, the device under test, and a backend LAN
//! (a Linux bridge in its own namespace) with three backend namespaces.
//!
//! ```text
//!  cli: g0 198.18.0.1/24 ─── d0 198.18.0.2/24 ┐ dut ┌ d1 198.19.0.2/24 ─── l0 ┐ lan: br0 ┌ l1 ─── e0 198.19.0.11  b1
//!       routes 198.18.1.0/24,     + VIP 198.18.1.1/32  + SNAT 198.19.0.3/32       │          ├ l2 ─── e0 198.19.0.12  b2
//!       198.19.0.0/24 via d0      route 198.18.128.0/17 via g0                    └          └ l3 ─── e0 198.19.0.13  b3
//!                                                             backends: default route via 198.19.0.2
//! ```
//!
//! * The VIP (198.18.1.1) is an address of d0, so the kernel answers for it and haproxy can bind
//!   it; clients reach it through their route via d0 (198.18.0.2), so nobody needs to resolve
//!   the VIP itself. The SNAT addresses (198.19.0.3, or 198.19.0.3 up to 198.19.0.10 with
//!   `snat_addrs` > 1) are addresses of d1: nftables `snat`, haproxy's `source` (the first one)
//!   and xskd's full NAT all use them, and the kernel answers ARP for them. One address gives
//!   a NAT 64 512 source ports (1024–65535) per backend and protocol: 193 536 flows over three
//!   backends.
//! * The generator's raw frames (pktgen) come from 198.18.128.0/17 ([`L4Topo::GEN_SRC`]); the
//!   DUT routes that block back via g0 (replies to it are dropped there: no such address).
//! * No static neighbour anywhere: ARP resolves every address, as for stock clients.
//! * Placement ([`L4Topo::place`]): RPS steers the receive work of d0 and d1 to the DUT's CPU
//!   and that of g0, the bridge ports and the backends to the client's CPU, so the DUT's CPU runs
//!   only the DUT (for the kernel peers: receive, conntrack/NAT, forward, transmit).
//!
//! Owns every namespace and veth it creates (unique names per process and call, removed on
//! `Drop`, also when construction fails half-way); addresses are in 198.18.0.0/15 only.

use std::net::Ipv4Addr;

use anyhow::{Context, Result};
use nic::netns::{End, Netns, VethConfig, VethPair};

use crate::kernel::set_rps;

/// The topology. Field order is drop order: links first, then namespaces.
#[derive(Debug)]
pub struct L4Topo {
    links: Vec<VethPair>,
    cli: Netns,
    dut: Netns,
    lan: Netns,
    backends: Vec<Netns>,
    d0_mac: [u8; 6],
    snat_addrs: u8,
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
    pub const CLI_IF: &'static str = "g0";
    /// DUT interface facing the clients (the VIP side).
    pub const DUT_CLI_IF: &'static str = "d0";
    /// DUT interface facing the backends (the SNAT side).
    pub const DUT_LAN_IF: &'static str = "d1";
    /// Each backend's interface.
    pub const BACKEND_IF: &'static str = "e0";
    /// The client's address.
    pub const CLI_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    /// d0's address.
    pub const D0_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    /// The virtual service address (on d0).
    pub const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
    /// d1's address.
    pub const D1_ADDR: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 2);
    /// The DUT's (first) source address towards the backends (on d1).
    pub const SNAT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 3);
    /// At most this many SNAT addresses (198.19.0.3–198.19.0.10, below the backends).
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

    /// Builds it with `snat_addrs` SNAT addresses (1..=8); namespaces are
    /// `PREFIX-{cli,dut,lan,b1,b2,b3}-PID-N`.
    pub fn new(prefix: &str, snat_addrs: u8) -> Result<L4Topo> {
        if !(1..=Self::MAX_SNAT_ADDRS).contains(&snat_addrs) {
            anyhow::bail!("snat_addrs {snat_addrs}: 1..={}", Self::MAX_SNAT_ADDRS);
        }
        let cli = Netns::new(&format!("{prefix}-cli"))?;
        let dut = Netns::new(&format!("{prefix}-dut"))?;
        let lan = Netns::new(&format!("{prefix}-lan"))?;
        let backends = (1..=3).map(|i| Netns::new(&format!("{prefix}-b{i}"))).collect::<std::io::Result<Vec<_>>>()?;
        let cfg = |a: Option<&str>, b: Option<&str>| VethConfig {
            addr_a: a.map(str::to_string),
            addr_b: b.map(str::to_string),
            disable_ipv6: true,
            ..VethConfig::default()
        };
        let mut links = vec![
            VethPair::new(
                &cli,
                Self::CLI_IF,
                &dut,
                Self::DUT_CLI_IF,
                &cfg(Some("198.18.0.1/24"), Some("198.18.0.2/24")),
            )?,
            VethPair::new(&dut, Self::DUT_LAN_IF, &lan, "l0", &cfg(Some("198.19.0.2/24"), None))?,
        ];
        for (i, b) in backends.iter().enumerate() {
            let addr = format!("{}/24", Self::BACKEND_ADDRS[i]);
            links.push(VethPair::new(&lan, &format!("l{}", i + 1), b, Self::BACKEND_IF, &cfg(None, Some(&addr)))?);
        }
        let d0_mac = links[0].mac(End::B)?;
        let t = L4Topo { links, cli, dut, lan, backends, d0_mac, snat_addrs };
        t.configure().context("configuring the L4 topology")?;
        Ok(t)
    }

    fn configure(&self) -> Result<()> {
        let lan = &self.lan;
        lan.ip(&["link", "add", "br0", "type", "bridge"])?;
        lan.sysctl("net/ipv6/conf/br0/disable_ipv6", "1")?;
        for p in ["l0", "l1", "l2", "l3"] {
            lan.ip(&["link", "set", p, "master", "br0"])?;
        }
        lan.ip(&["link", "set", "br0", "up"])?;
        let dut = &self.dut;
        dut.ip(&["addr", "add", &format!("{}/32", Self::VIP), "dev", Self::DUT_CLI_IF])?;
        for a in self.snat_addrs() {
            dut.ip(&["addr", "add", &format!("{a}/32"), "dev", Self::DUT_LAN_IF])?;
        }
        dut.ip(&["route", "add", "198.18.128.0/17", "via", &Self::CLI_ADDR.to_string(), "dev", Self::DUT_CLI_IF])?;
        dut.sysctl("net/ipv4/ip_forward", "1")?;
        for dev in ["all", "default", Self::DUT_CLI_IF, Self::DUT_LAN_IF] {
            dut.sysctl(&format!("net/ipv4/conf/{dev}/rp_filter"), "0")?;
        }
        let via = Self::D0_ADDR.to_string();
        self.cli.ip(&["route", "add", "198.18.1.0/24", "via", &via, "dev", Self::CLI_IF])?;
        self.cli.ip(&["route", "add", "198.19.0.0/24", "via", &via, "dev", Self::CLI_IF])?;
        for b in &self.backends {
            b.ip(&["route", "add", "default", "via", &Self::D1_ADDR.to_string(), "dev", Self::BACKEND_IF])?;
        }
        // Many short connections: the whole port range for the client and for haproxy's side.
        for ns in [&self.cli, &self.dut] {
            ns.sysctl("net/ipv4/ip_local_port_range", "1024 65535")?;
        }
        Ok(())
    }

    /// Steers receive work with RPS: d0 and d1 to `dut_cpu`; g0, the bridge ports and the
    /// backends to `other_cpu`.
    pub fn place(&self, dut_cpu: usize, other_cpu: usize) -> Result<()> {
        let (d, o) = (1u64 << dut_cpu, 1u64 << other_cpu);
        set_rps(&self.dut, Self::DUT_CLI_IF, d)?;
        set_rps(&self.dut, Self::DUT_LAN_IF, d)?;
        set_rps(&self.cli, Self::CLI_IF, o)?;
        for p in ["l0", "l1", "l2", "l3"] {
            set_rps(&self.lan, p, o)?;
        }
        for b in &self.backends {
            set_rps(b, Self::BACKEND_IF, o)?;
        }
        Ok(())
    }

    /// Resolves the neighbours every path needs once — a UDP datagram from the client to each
    /// backend, forwarded by the DUT's kernel — and waits until the DUT has a reachable
    /// neighbour entry for every backend (at most 3 s), so the first trial second does not time
    /// ARP. Run it before a DUT takes over d0/d1.
    pub fn warm_neighbours(&self) -> Result<()> {
        self.cli.run_in(|| {
            let s = std::net::UdpSocket::bind("0.0.0.0:0")?;
            for a in Self::BACKEND_ADDRS {
                s.send_to(b"warm", (a, Self::UDP_PORT))?;
            }
            Ok(())
        })?;
        let t0 = std::time::Instant::now();
        loop {
            let n = self.dut.ip(&["neigh", "show", "dev", Self::DUT_LAN_IF])?;
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
        &self.cli
    }

    /// The DUT namespace.
    pub fn dut(&self) -> &Netns {
        &self.dut
    }

    /// The LAN (bridge) namespace.
    pub fn lan(&self) -> &Netns {
        &self.lan
    }

    /// Backend namespace `i` (0 = b1).
    pub fn backend(&self, i: usize) -> &Netns {
        &self.backends[i]
    }

    /// The backends.
    pub fn backends(&self) -> impl Iterator<Item = Backend> {
        Self::BACKEND_ADDRS.into_iter().enumerate().map(|(index, addr)| Backend { index, addr })
    }

    /// MAC of d0 (where the generator's frames go).
    pub fn d0_mac(&self) -> [u8; 6] {
        self.d0_mac
    }

    /// MAC of g0.
    pub fn cli_mac(&self) -> Result<[u8; 6]> {
        Ok(self.links[0].mac(End::A)?)
    }

    /// MAC of d1.
    pub fn d1_mac(&self) -> Result<[u8; 6]> {
        Ok(self.links[1].mac(End::A)?)
    }
}

/// The first `n` SNAT addresses, from [`L4Topo::SNAT_ADDR`] up.
pub fn snat_range(n: u8) -> Vec<Ipv4Addr> {
    (0..u32::from(n)).map(|i| Ipv4Addr::from(u32::from(L4Topo::SNAT_ADDR) + i)).collect()
}
