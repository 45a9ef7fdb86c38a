//! `l4lb`: an L4 load balancer with full NAT — virtual services (VIP, protocol, port) in front
//! of backend sets, Maglev consistent hashing for new flows, and a flow table that keeps every
//! later packet of a flow on its backend.
//!
//! One instance (`[[app]] kind = "l4lb"`) owns a client-side port and a backend-side port and
//! runs as one shard per lcore that polls one of its queues. A flow lives in the shard that saw
//! its first packet: the NIC's RSS keeps a client's packets on one queue, and the shard gives
//! it a source port from its own slice of the NAT range, so the reply's destination port names
//! the shard — a reply hashed to another queue is handed to the owner (`handed_off`).
//!
//! * [`params`]: the TOML parameters.
//! * [`natports`]: the (SNAT address, port) pairs of a shard and the reply → flow map.
//! * [`shard`]: the data path ([`L4lb`]).
//! * [`control`]: backend MACs, Maglev tables and runtime commands, off the lcores.
//!
//! Addresses: the kernel owns the VIPs (on the client-side interface, or any interface of the
//! namespace with ARP answered on the client side) and the SNAT addresses (on the backend-side
//! interface), so it answers ARP/NDP for them — the XDP program passes ARP and NDP to it.
//! Backend MACs come from the kernel's neighbour table (managed entries, [`nic::neigh`]); client
//! MACs are taken from each flow's first frame. The ports claim exactly the services, ICMP to
//! the VIPs and SNAT addresses, and the NAT port range (unless a port sets `claim` itself).
//!
//! Not handled (each a named drop): IP fragments (`drop_fragment`), protocols other than TCP,
//! UDP and ICMPv4, ICMPv6 errors (IPv6 services work, but ICMPv6 is left to the kernel: it
//! carries NDP), and TCP segments that do not start a flow when none exists (`drop_no_flow`).

pub mod control;
pub mod natports;
pub mod params;
pub mod shard;
#[cfg(test)]
mod tests;

use std::net::IpAddr;

pub use control::L4lbControl;
pub use params::{BackendSpec, L4Proto, L4lbParams, ServiceSpec};
pub use shard::{BackendState, Counters, L4lb, Wiring};

use crate::control::{ControlCtx, Controller};
use crate::params::ParamErrors;
use crate::registry::{AppKind, BuildCtx};

fn cidr(a: IpAddr) -> config::IpCidr {
    config::IpCidr { addr: a, prefix: if a.is_ipv4() { 32 } else { 128 } }
}

fn ethertype(a: IpAddr) -> u16 {
    if a.is_ipv4() {
        0x0800
    } else {
        0x86dd
    }
}

impl AppKind for L4lbParams {
    type App = L4lb;
    const SHARD_HANDOFF: bool = true;

    fn parse(t: &toml::Table) -> Result<L4lbParams, ParamErrors> {
        L4lbParams::parse(t)
    }

    fn port_refs(&self) -> Vec<(&'static str, String)> {
        vec![("client_port", self.client_port.clone()), ("backend_port", self.backend_port.clone())]
    }

    fn claims(&self) -> Vec<(String, config::ClaimRule)> {
        let mut v = Vec::new();
        let rule = |dst: config::IpCidr, proto: u8, ports: Option<(u16, u16)>| config::ClaimRule {
            ethertype: Some(ethertype(dst.addr)),
            proto: Some(proto),
            dst: Some(dst),
            dst_port: ports,
        };
        for s in &self.services {
            v.push((self.client_port.clone(), rule(cidr(s.vip), s.proto.number(), Some((s.port, s.port)))));
            if s.vip.is_ipv4() {
                v.push((self.client_port.clone(), rule(cidr(s.vip), 1, None)));
            }
        }
        let protos: Vec<u8> = {
            let mut p: Vec<u8> = self.services.iter().map(|s| s.proto.number()).collect();
            p.sort_unstable();
            p.dedup();
            p
        };
        // The SNAT addresses as the fewest prefixes that hold exactly them (eight consecutive
        // addresses: three rules per protocol, not eight).
        for c in config::IpCidr::cover(&self.snat) {
            for &p in &protos {
                v.push((self.backend_port.clone(), rule(c, p, Some(self.nat_ports))));
            }
            if c.addr.is_ipv4() {
                v.push((self.backend_port.clone(), rule(c, 1, None)));
            }
        }
        v
    }

    fn build(&self, cx: &BuildCtx<'_>) -> Result<L4lb, String> {
        let per = self.ports_per_shard(cx.shards);
        if per == 0 {
            return Err(format!(
                "nat_ports {}-{} has fewer ports than the {} shards",
                self.nat_ports.0, self.nat_ports.1, cx.shards
            ));
        }
        let port = |name: &str| (cx.port_id)(name).ok_or_else(|| format!("no port '{name}'"));
        let mac = |name: &str| (cx.mac_of)(name).ok_or_else(|| format!("cannot read the MAC address of port '{name}'"));
        let w = Wiring {
            client: port(&self.client_port)?,
            backend: port(&self.backend_port)?,
            to_client: cx.tx_of(&self.client_port, "l4lb client")?,
            to_backend: cx.tx_of(&self.backend_port, "l4lb backend")?,
            client_mac: mac(&self.client_port)?,
            backend_mac: mac(&self.backend_port)?,
            shard: cx.shard,
            shards: cx.shards,
        };
        Ok(L4lb::new(self, w, cx.burst))
    }

    fn check_shards(&self, shards: usize) -> Vec<(String, String)> {
        let per = self.ports_per_shard(shards.min(u16::MAX as usize) as u16);
        if per == 0 || shards > u16::MAX as usize {
            return vec![(
                "nat_ports".into(),
                format!(
                    "{}-{} has fewer ports than the {shards} shards (lcores) the instance runs on",
                    self.nat_ports.0, self.nat_ports.1
                ),
            )];
        }
        Vec::new()
    }

    fn controller(&self, cx: &ControlCtx<'_>) -> Option<Box<dyn Controller>> {
        Some(Box::new(L4lbControl::new(cx.name, self, (cx.iface_of)(&self.backend_port))))
    }
}
