//! The systems of the L4 tier, each set up on a fresh [`L4Topo`]: kernel forwarding (the no-NAT
//! ceiling), nftables DNAT+SNAT with conntrack, haproxy `mode tcp`, and xskd's `l4lb` app.
//!
//! Each system answers the same three services ([`L4Topo::RR_PORT`], [`L4Topo::BULK_PORT`],
//! [`L4Topo::UDP_PORT`]) and says where a client sends to reach them ([`L4System::targets`]):
//! the VIP for the load balancers, the backends themselves for kernel forwarding (which
//! translates nothing). [`L4System::start`] returns a guard that undoes what it started.
//!
//! xskd is pluggable: [`xskd_l4lb_config`] is where its configuration comes from, and the lead
//! fills it in when the `l4lb` app exists; until then `--systems` leaves xskd out.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::kernel::ns_exec;
use crate::l4topo::L4Topo;
use crate::run::Background;
use crate::veth::{start_xskd_run, strings, wait_for};

/// A system under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum L4System {
    /// Plain IPv4 forwarding, no NAT, no conntrack: clients address a backend directly.
    Kernel,
    /// nftables `dnat to numgen inc mod 3 map {…}` + `snat` with conntrack.
    Nftables,
    /// haproxy 2.x `mode tcp`, `nbthread 1`, pinned to the DUT CPU (TCP services only).
    Haproxy,
    /// `xskd run` with the `l4lb` app (config from [`xskd_l4lb_config`]).
    Xskd,
}

/// Which traffic a system is measured with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// TCP request/response on [`L4Topo::RR_PORT`] (also where SYNs go).
    Rr,
    /// TCP bulk (iperf3) on [`L4Topo::BULK_PORT`].
    Bulk,
    /// UDP on [`L4Topo::UDP_PORT`].
    Udp,
}

impl Service {
    /// Its port.
    pub fn port(self) -> u16 {
        match self {
            Service::Rr => L4Topo::RR_PORT,
            Service::Bulk => L4Topo::BULK_PORT,
            Service::Udp => L4Topo::UDP_PORT,
        }
    }
}

impl L4System {
    /// Parses `kernel`, `nftables`, `haproxy`, `xskd`.
    pub fn parse(s: &str) -> Option<L4System> {
        match s {
            "kernel" => Some(L4System::Kernel),
            "nftables" | "nft" => Some(L4System::Nftables),
            "haproxy" => Some(L4System::Haproxy),
            "xskd" => Some(L4System::Xskd),
            _ => None,
        }
    }

    /// Label in tables.
    pub fn label(self) -> &'static str {
        match self {
            L4System::Kernel => "kernel forwarding (no NAT)",
            L4System::Nftables => "nftables DNAT+SNAT (conntrack)",
            L4System::Haproxy => "haproxy mode tcp",
            L4System::Xskd => "xskd l4lb",
        }
    }

    /// Short name (JSON, logs).
    pub fn name(self) -> &'static str {
        match self {
            L4System::Kernel => "kernel",
            L4System::Nftables => "nftables",
            L4System::Haproxy => "haproxy",
            L4System::Xskd => "xskd",
        }
    }

    /// How the DUT sees frames: the kernel peers take skbs, xskd AF_XDP (veth: copy mode only).
    pub fn mode(self) -> &'static str {
        match self {
            L4System::Xskd => "AF_XDP copy (veth)",
            _ => "kernel (skb)",
        }
    }

    /// Whether the system handles `svc`: haproxy `mode tcp` relays TCP only.
    pub fn serves(self, svc: Service) -> bool {
        !(self == L4System::Haproxy && svc == Service::Udp)
    }

    /// Whether it uses conntrack (its table size matters).
    pub fn uses_conntrack(self) -> bool {
        self == L4System::Nftables
    }

    /// Where a client sends to reach `svc`: the VIP, or for kernel forwarding the backends (the
    /// bulk service: b1 only, as behind the VIP).
    pub fn targets(self, svc: Service) -> Vec<Ipv4Addr> {
        match (self, svc) {
            (L4System::Kernel, Service::Bulk) => vec![L4Topo::BACKEND_ADDRS[0]],
            (L4System::Kernel, _) => L4Topo::BACKEND_ADDRS.to_vec(),
            _ => vec![L4Topo::VIP],
        }
    }

    /// Socket addresses of [`Self::targets`].
    pub fn sockets(self, svc: Service) -> Vec<SocketAddr> {
        self.targets(svc).into_iter().map(|a| SocketAddr::from((a, svc.port()))).collect()
    }

    /// Sets the system up on `t` with its work on `dut_cpu`; the guard stops it.
    pub fn start(self, t: &L4Topo, dut_cpu: usize, o: &StartOpts) -> Result<Running> {
        match self {
            L4System::Kernel => Ok(Running::default()),
            L4System::Nftables => {
                let out = t
                    .dut()
                    .command(&["nft", "-f", "-"])
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .and_then(|mut c| {
                        use std::io::Write;
                        c.stdin.take().expect("piped").write_all(nft_ruleset(&t.snat_addrs()).as_bytes())?;
                        c.wait_with_output()
                    })
                    .context("running nft")?;
                if !out.status.success() {
                    bail!("nft -f: {}", String::from_utf8_lossy(&out.stderr));
                }
                Ok(Running::default())
            }
            L4System::Haproxy => {
                let cfg = o.dir.join("haproxy.cfg");
                std::fs::write(&cfg, haproxy_config(dut_cpu))?;
                let argv = strings(&[
                    "ip",
                    "netns",
                    "exec",
                    t.dut().name(),
                    "taskset",
                    "-c",
                    &dut_cpu.to_string(),
                    "haproxy",
                    "-db",
                    "-f",
                    &cfg.to_string_lossy(),
                ]);
                let mut b = Background::spawn(&argv, &o.dir, "haproxy")?;
                let dut = t.dut();
                wait_for("haproxy", Duration::from_secs(10), || {
                    if b.exited() {
                        bail!(
                            "haproxy exited: {}",
                            std::fs::read_to_string(o.dir.join("haproxy.err")).unwrap_or_default()
                        );
                    }
                    let ss = ns_exec(dut, &["ss", "-ltnH"])?;
                    Ok(ss.contains(&format!("{}:{}", L4Topo::VIP, L4Topo::RR_PORT))
                        && ss.contains(&format!("{}:{}", L4Topo::VIP, L4Topo::BULK_PORT)))
                })?;
                Ok(Running { proc: Some(b) })
            }
            L4System::Xskd => {
                let mut plan = L4Plan::new(dut_cpu, o.burst, o.run_secs, t.snat_addrs());
                plan.max_flows = o.max_flows;
                let text = xskd_l4lb_config(&plan)?;
                let b = start_xskd_run(&o.xskd, t.dut().name(), dut_cpu, &text, &o.dir, "xskd-l4lb")?;
                // xskd's XDP programs enabled NAPI on d0 and d1: move their receive work (the
                // XDP program and the copy into the UMEM) from the sending CPU — the generator's
                // or a backend's — to the DUT's core, as RPS does for the kernel peers. The
                // lcore sleeps in poll() when idle so the kthreads get that core (platform.md
                // §7.2: a spinning poller starves a NAPI kthread on its core).
                for dev in [L4Topo::DUT_CLI_IF, L4Topo::DUT_LAN_IF] {
                    crate::kernel::threaded_napi(t.dut(), dev, dut_cpu)?;
                }
                Ok(Running { proc: Some(b) })
            }
        }
    }
}

/// What [`L4System::start`] needs besides the topology.
#[derive(Debug, Clone)]
pub struct StartOpts {
    /// The xskd binary.
    pub xskd: PathBuf,
    /// Scratch directory (configs, process output).
    pub dir: PathBuf,
    /// xskd's burst.
    pub burst: u32,
    /// How long a DUT process must live at least (xskd `duration_secs`).
    pub run_secs: f64,
    /// xskd's flow table capacity: the `nf_conntrack_max` in effect, so both NATs get the same.
    pub max_flows: u32,
}

/// A started system; dropping it stops its process (SIGINT, then SIGKILL).
#[derive(Debug, Default)]
pub struct Running {
    proc: Option<Background>,
}

impl Running {
    /// Stops the process, if any; returns its stderr.
    pub fn stop(mut self) -> String {
        self.proc.take().map(|p| p.stop(libc::SIGINT, Duration::from_secs(5)).1).unwrap_or_default()
    }

    /// Fails if the process died.
    pub fn check_alive(&mut self, dir: &Path) -> Result<()> {
        if let Some(p) = &mut self.proc {
            if p.exited() {
                bail!("the DUT process exited during the trial: {}", last_err(dir));
            }
        }
        Ok(())
    }
}

fn last_err(dir: &Path) -> String {
    ["haproxy.err", "xskd-l4lb.err"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(dir.join(f)).ok())
        .collect::<Vec<_>>()
        .join("\n")
}

fn backend_map() -> String {
    L4Topo::BACKEND_ADDRS.iter().enumerate().map(|(i, a)| format!("{i} : {a}")).collect::<Vec<_>>().join(", ")
}

/// The nftables ruleset: round robin over the three backends by `numgen inc mod 3` for the
/// request/response and UDP services, b1 for the bulk service, SNAT to the `snat` addresses
/// (consecutive) on d1. NAT happens on the first packet of a flow; conntrack applies it to the
/// rest.
pub fn nft_ruleset(snat: &[Ipv4Addr]) -> String {
    let (vip, b1) = (L4Topo::VIP, L4Topo::BACKEND_ADDRS[0]);
    let snat = match snat {
        [a] => a.to_string(),
        [a, .., z] => format!("{a}-{z}"),
        [] => L4Topo::SNAT_ADDR.to_string(),
    };
    let map = backend_map();
    format!(
        "table ip xskd_l4 {{
  chain pre {{
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr {vip} tcp dport {bulk} dnat to {b1}
    ip daddr {vip} tcp dport {rr} dnat to numgen inc mod 3 map {{ {map} }}
    ip daddr {vip} udp dport {udp} dnat to numgen inc mod 3 map {{ {map} }}
  }}
  chain post {{
    type nat hook postrouting priority srcnat; policy accept;
    oifname \"{d1}\" snat to {snat}
  }}
}}
",
        bulk = L4Topo::BULK_PORT,
        rr = L4Topo::RR_PORT,
        udp = L4Topo::UDP_PORT,
        d1 = L4Topo::DUT_LAN_IF,
    )
}

/// haproxy's config: one thread mapped to `cpu`, `mode tcp`, the request/response service
/// round robin over the three backends and the bulk service to b1, connecting from the (first)
/// SNAT address; no logging, no health checks (nothing but the relay on the DUT's CPU).
pub fn haproxy_config(cpu: usize) -> String {
    let (vip, snat) = (L4Topo::VIP, L4Topo::SNAT_ADDR);
    let servers: String = L4Topo::BACKEND_ADDRS
        .iter()
        .enumerate()
        .map(|(i, a)| format!("    server b{} {a}:{}\n", i + 1, L4Topo::RR_PORT))
        .collect();
    format!(
        "global
    nbthread 1
    cpu-map 1/1 {cpu}
    maxconn 9000
defaults
    mode tcp
    timeout connect 2s
    timeout client 10s
    timeout server 10s
    maxconn 9000
frontend rr
    bind {vip}:{rr}
    default_backend rr
backend rr
    balance roundrobin
    source {snat}
{servers}frontend bulk
    bind {vip}:{bulk}
    default_backend bulk
backend bulk
    source {snat}
    server b1 {b1}:{bulk}
",
        rr = L4Topo::RR_PORT,
        bulk = L4Topo::BULK_PORT,
        b1 = L4Topo::BACKEND_ADDRS[0],
    )
}

/// Everything the xskd `l4lb` DUT of this tier must implement, as data (the addresses and
/// ports are [`L4Topo`]'s constants; no MAC is given because nothing here has a static
/// neighbour: xskd must resolve its backends and answer for — or let the kernel answer for —
/// the VIP, d0's, d1's and the SNAT address).
#[derive(Debug, Clone, PartialEq)]
pub struct L4Plan {
    /// The CPU of the lcore (and of the whole process: `xskd run` runs under `taskset -c CPU`).
    pub lcore: usize,
    /// Burst.
    pub burst: u32,
    /// How long the daemon must run at least (`[engine] duration_secs`).
    pub secs: f64,
    /// Client-side interface (VIP side) and its kernel addresses.
    pub client_if: &'static str,
    /// Backend-side interface (SNAT side).
    pub backend_if: &'static str,
    /// The VIP (also a kernel address of `client_if`).
    pub vip: Ipv4Addr,
    /// d0's address (the clients' next hop towards the VIP).
    pub client_if_addr: Ipv4Addr,
    /// d1's address.
    pub backend_if_addr: Ipv4Addr,
    /// The SNAT addresses (also kernel addresses of `backend_if`); one gives 64 512 source
    /// ports per backend and protocol.
    pub snat: Vec<Ipv4Addr>,
    /// Virtual services: (protocol, VIP port, backends, backend port).
    pub services: Vec<(&'static str, u16, Vec<Ipv4Addr>, u16)>,
    /// Where the generator's raw frames come from (198.18.128.0/17): replies to these go back
    /// via the client `198.18.0.1`.
    pub client_sources: (Ipv4Addr, u32),
    /// Flow table capacity (`nf_conntrack_max`'s default here: 262 144).
    pub max_flows: u32,
}

impl L4Plan {
    /// The plan of this topology.
    pub fn new(lcore: usize, burst: u32, secs: f64, snat: Vec<Ipv4Addr>) -> L4Plan {
        let all = L4Topo::BACKEND_ADDRS.to_vec();
        L4Plan {
            lcore,
            burst,
            secs,
            client_if: L4Topo::DUT_CLI_IF,
            backend_if: L4Topo::DUT_LAN_IF,
            vip: L4Topo::VIP,
            client_if_addr: L4Topo::D0_ADDR,
            backend_if_addr: L4Topo::D1_ADDR,
            snat,
            services: vec![
                ("tcp", L4Topo::RR_PORT, all.clone(), L4Topo::RR_PORT),
                ("udp", L4Topo::UDP_PORT, all, L4Topo::UDP_PORT),
                ("tcp", L4Topo::BULK_PORT, vec![L4Topo::BACKEND_ADDRS[0]], L4Topo::BULK_PORT),
            ],
            client_sources: L4Topo::GEN_SRC,
            max_flows: 262_144,
        }
    }
}

/// The `xskd run` configuration of the L4 tier's DUT, from `p` (the `l4lb` parameters of
/// apps/src/l4lb/params.rs; `configs_name_every_service_and_backend` below checks that the
/// app's own parser accepts it).
///
/// What the harness does with it: writes it to a file and runs
/// `ip netns exec DUT taskset -c {p.lcore} xskd run --quiet --config FILE --ready-file F`,
/// waits for the ready file, then sends traffic; SIGINT at the end. What the config must give:
/// * `[engine] duration_secs` ≥ `p.secs`; one lcore, `p.lcore`; `burst = p.burst`.
/// * Ports `p.client_if` (d0) and `p.backend_if` (d1), native XDP; the app's claims (derived from
///   the services) take TCP/UDP to the VIP's service ports on d0 and the replies to the SNAT
///   addresses on d1; everything else (ARP, ICMP, traffic to d0's and d1's own addresses) must
///   reach the kernel, which holds these addresses: VIP 198.18.0.100 and 198.18.0.2 on d0,
///   198.19.0.2 (d1's own, the first SNAT address) and any further SNAT addresses on d1.
/// * Services `p.services`: (proto, VIP port) → backends (Maglev), backend port. The bulk service
///   (5201) has one backend because iperf3's control and data connections must meet the same
///   server.
/// * Full NAT: destination → backend, source → one of `p.snat` with a port of the lcore's range
///   (the udp measurement with 1 000 000 flows needs more than one address's 64 512 ports ×
///   3 backends = 193 536 tuples: `e2e l4 --snat-addrs 8`).
/// * Neighbours: no static entries anywhere. The clients' next hop is `198.18.0.1` (c0) for
///   every source, also the generator's raw frames from `p.client_sources` (198.18.128.0/17).
/// * Table and timeouts as nftables has them: `p.max_flows` flows (the `nf_conntrack_max` in
///   effect; 262 144 by default here),
///   half-open 120 s (`nf_conntrack_tcp_timeout_syn_sent`), closing 120 s (`time_wait`), UDP 30 s
///   (unreplied); established 7 440 s (the trials are short: only the half-open and UDP ones
///   matter).
/// * Idle: `poll` (sleep in poll() when idle). d0's and d1's NAPI run as threaded NAPI
///   kthreads pinned to the DUT's core — the DUT's receive work on the DUT's core, as RPS puts
///   the kernel peers' there — and a spinning lcore would starve them (platform.md §7.2).
///
/// What the clients expect: (a) and (b) count frames at the backends (XDP sinks that drop IP, so
/// backends never answer: SYNs and UDP datagrams are one-way); (c) a kernel TCP client connects
/// to VIP:8080, writes 32 bytes, reads 64 bytes until the server closes; (d) iperf3 to VIP:5201.
pub fn xskd_l4lb_config(p: &L4Plan) -> Result<String> {
    let quoted = |v: &[Ipv4Addr]| v.iter().map(|a| format!("\"{a}\"")).collect::<Vec<_>>().join(", ");
    let mut services = String::new();
    for (proto, port, backends, bport) in &p.services {
        let list: Vec<String> = backends.iter().map(|b| format!("\"{b}:{bport}\"")).collect();
        services += &format!(
            "[[app.params.service]]\nname = \"{proto}-{port}\"\nvip = \"{vip}\"\nproto = \"{proto}\"\nport = {port}\nbackends = [{}]\n",
            list.join(", "),
            vip = p.vip,
        );
    }
    Ok(format!(
        r#"# generated by e2e l4 (benches/src/l4sys.rs xskd_l4lb_config)
[engine]
burst = {burst}
idle = "poll"
duration_secs = {secs:.1}

[umem]
frames = 16384
hugepages = "2M"

[[port]]
name = "{cif}"
xdp_mode = "native"

[[port]]
name = "{bif}"
xdp_mode = "native"

[[app]]
name = "lb"
kind = "l4lb"
[app.params]
client_port = "{cif}"
backend_port = "{bif}"
snat = [{snat}]
nat_ports = "1024-65535"
max_flows = {max_flows}
timeouts = {{ half_open = 120, established = 7440, closing = 120, udp = 30 }}
{services}
[[queue]]
port = "{cif}"
lcore = {lcore}
app = "lb"

[[queue]]
port = "{bif}"
lcore = {lcore}
app = "lb"
"#,
        burst = p.burst,
        secs = p.secs,
        cif = p.client_if,
        bif = p.backend_if,
        snat = quoted(&p.snat),
        lcore = p.lcore,
        max_flows = p.max_flows,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_name_every_service_and_backend() {
        let r = nft_ruleset(&[L4Topo::SNAT_ADDR]);
        assert!(r.contains("ip daddr 198.18.0.100 tcp dport 8080 dnat to numgen inc mod 3 map { 0 : 198.19.0.11, 1 : 198.19.0.12, 2 : 198.19.0.13 }"), "{r}");
        assert!(r.contains("tcp dport 5201 dnat to 198.19.0.11"));
        assert!(r.contains("udp dport 9 dnat"));
        assert!(r.contains("oifname \"d1\" snat to 198.19.0.2"));
        let h = haproxy_config(1);
        assert!(h.contains("cpu-map 1/1 1") && h.contains("nbthread 1") && h.contains("mode tcp"));
        assert!(h.contains("bind 198.18.0.100:8080") && h.contains("server b3 198.19.0.13:8080"));
        assert!(h.contains("bind 198.18.0.100:5201") && h.contains("server b1 198.19.0.11:5201"));
        assert_eq!(h.matches("source 198.19.0.2").count(), 2);
        assert_eq!(L4System::Kernel.targets(Service::Rr).len(), 3);
        assert_eq!(L4System::Nftables.sockets(Service::Bulk), vec![SocketAddr::from((L4Topo::VIP, 5201))]);
        assert!(!L4System::Haproxy.serves(Service::Udp));
        let many = crate::l4topo::snat_range(8);
        assert!(nft_ruleset(&many).contains("snat to 198.19.0.2-198.19.0.9"));
        // The xskd config parses and validates as an `xskd run` config with these services.
        let x = xskd_l4lb_config(&L4Plan::new(1, 64, 10.0, many)).unwrap();
        config::parse(&x).unwrap_or_else(|e| panic!("{e:?}\n{x}"));
        let doc: toml::Table = toml::from_str(&x).unwrap();
        let params = doc["app"][0]["params"].as_table().unwrap();
        assert_eq!(params["snat"].as_array().unwrap().len(), 8);
        assert_eq!(params["service"].as_array().unwrap().len(), 3);
        // And the l4lb app itself accepts its params.
        let lb = apps::l4lb::L4lbParams::parse(params).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(lb.max_flows, 262_144);
        assert!(x.contains("backends = [\"198.19.0.11:5201\"]"), "{x}");
        for s in ["kernel", "nftables", "haproxy", "xskd"] {
            assert_eq!(L4System::parse(s).map(|x| x.name()), Some(s));
        }
    }
}
