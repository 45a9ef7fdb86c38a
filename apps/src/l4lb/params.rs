//! Parameters of an `l4lb` instance: parsed and validated once, every problem with its key.
//!
//! ```toml
//! [[app]]
//! name = "lb"
//! kind = "l4lb"
//! [app.params]
//! client_port = "d0"              # clients reach the VIPs through this port
//! backend_port = "d1"             # backends are on this port's L2 segment
//! snat = ["198.19.0.2"]           # source addresses towards backends (IPv4 and/or IPv6)
//! nat_ports = "1024-65535"        # source ports, split evenly between the shards
//! max_flows = 65536               # connections per shard (the flow table's capacity)
//! timeouts = { half_open = 5, established = 900, closing = 10, udp = 60 }   # seconds
//! [[app.params.service]]
//! vip = "198.18.0.100"
//! proto = "tcp"
//! port = 80
//! backends = ["198.19.0.11:8080", "198.19.0.12:8080", "198.19.0.13:8080"]
//! ```
//!
//! NAT capacity: a (SNAT address, port) pair is unique per backend, as conntrack keeps reply
//! tuples unique ([`super::natports`]), so at most `snat addresses of the backend's family ×
//! ports of nat_ports` flows go to each backend (address, port, protocol) at once — 64 512 per
//! backend with one address and the whole range, 193 536 over three backends; beyond that new
//! flows to that backend are dropped as `drop_nat_ports`. Add addresses to `snat` for more.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use engine::flow::FlowTimeouts;
use engine::maglev;

use crate::params::{self, ParamErrors};

/// Transport protocol of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum L4Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl L4Proto {
    /// IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            L4Proto::Tcp => 6,
            L4Proto::Udp => 17,
        }
    }

    /// Name as written in the config.
    pub fn name(self) -> &'static str {
        match self {
            L4Proto::Tcp => "tcp",
            L4Proto::Udp => "udp",
        }
    }
}

/// A backend of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendSpec {
    /// Address and port.
    pub addr: SocketAddr,
    /// Maglev weight (turns per population round), 1..=100.
    pub weight: u32,
    /// A fixed MAC (null ports, or a segment without ARP); None: learned from the kernel.
    pub mac: Option<[u8; 6]>,
}

/// A virtual service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    /// Name (for commands and reports): `name`, or `vip:port/proto`.
    pub name: String,
    /// Virtual IP.
    pub vip: IpAddr,
    /// Protocol.
    pub proto: L4Proto,
    /// Port.
    pub port: u16,
    /// Backends at start.
    pub backends: Vec<BackendSpec>,
    /// Maglev lookup table size (a prime ≥ 65537).
    pub table_size: u32,
}

/// Validated `l4lb` parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct L4lbParams {
    /// Port facing the clients.
    pub client_port: String,
    /// Port facing the backends.
    pub backend_port: String,
    /// Source addresses towards the backends.
    pub snat: Vec<IpAddr>,
    /// Source port range (inclusive), split between shards.
    pub nat_ports: (u16, u16),
    /// Connections per shard.
    pub max_flows: u32,
    /// Flow idle timeouts.
    pub timeouts: FlowTimeouts,
    /// Services.
    pub services: Vec<ServiceSpec>,
    /// Backend slots per instance (initial plus those added at run time).
    pub max_backends: u16,
    /// How long start-up waits for backend MACs before running without the unresolved ones.
    pub neighbour_wait: Duration,
}

const KEYS: &[&str] = &[
    "client_port",
    "backend_port",
    "snat",
    "nat_ports",
    "max_flows",
    "timeouts",
    "service",
    "max_backends",
    "neighbour_wait_ms",
];
const SERVICE_KEYS: &[&str] = &["name", "vip", "proto", "port", "backends", "table_size"];
const TIMEOUT_KEYS: &[&str] = &["half_open", "established", "closing", "udp", "other"];
const BACKEND_KEYS: &[&str] = &["addr", "weight", "mac"];

/// Parses "lo-hi" (inclusive) or a single port.
fn parse_range(s: &str) -> Option<(u16, u16)> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let (a, b): (u16, u16) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a >= 1 && a <= b).then_some((a, b))
}

fn port_name(t: &toml::Table, key: &str, errs: &mut ParamErrors) -> String {
    match params::opt_str(t, key, errs) {
        Some(s) => s.to_string(),
        None => {
            if !errs.has(key) {
                errs.push(key, "required: the name of a [[port]]".into());
            }
            String::new()
        }
    }
}

/// Why `backend` cannot serve a service on `vip` (None: it can): a backend is in the VIP's
/// address family (its flows keep their family through the NAT). Checked for the configured
/// backends and for those added at run time.
pub fn family_mismatch(vip: IpAddr, backend: SocketAddr) -> Option<String> {
    (backend.is_ipv4() != vip.is_ipv4()).then(|| format!("{backend} is not in the VIP's address family"))
}

fn parse_snat(t: &toml::Table, errs: &mut ParamErrors) -> Vec<IpAddr> {
    let Some(v) = t.get("snat") else {
        errs.push("snat", "required: the source address(es) xskd uses towards the backends".into());
        return Vec::new();
    };
    let items: Vec<&toml::Value> = match v {
        toml::Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item.as_str().map(str::parse::<IpAddr>) {
            Some(Ok(a)) if !out.contains(&a) => out.push(a),
            Some(Ok(a)) => errs.push(&format!("snat[{i}]"), format!("{a} is listed twice")),
            _ => errs.push(&format!("snat[{i}]"), format!("expected an IP address string, got {item}")),
        }
    }
    if out.len() > 256 {
        errs.push("snat", format!("at most 256 addresses, got {}", out.len()));
    }
    if out.is_empty() && !errs.has("snat") {
        errs.push("snat", "at least one address".into());
    }
    out
}

fn parse_timeouts(t: &toml::Table, errs: &mut ParamErrors) -> FlowTimeouts {
    let mut to = FlowTimeouts::default();
    let Some(v) = t.get("timeouts") else { return to };
    let Some(tt) = v.as_table() else {
        errs.push("timeouts", format!("expected a table of seconds, got {}", v.type_str()));
        return to;
    };
    for k in tt.keys() {
        if !TIMEOUT_KEYS.contains(&k.as_str()) {
            errs.push(
                &format!("timeouts.{k}"),
                format!("unknown timeout (expected one of: {})", TIMEOUT_KEYS.join(", ")),
            );
        }
    }
    let mut get = |k: &str, dst: &mut Duration| {
        if let Some(s) = params::opt_f64(tt, k, 0.001..=1_000_000.0, errs) {
            *dst = Duration::from_secs_f64(s);
        }
    };
    get("half_open", &mut to.half_open);
    get("established", &mut to.established);
    get("closing", &mut to.closing);
    get("udp", &mut to.udp);
    get("other", &mut to.other);
    // The per-key errors above are keyed without the "timeouts." prefix; re-key them.
    for (k, _) in errs.0.iter_mut() {
        if TIMEOUT_KEYS.contains(&k.as_str()) {
            *k = format!("timeouts.{k}");
        }
    }
    to
}

fn parse_backend(v: &toml::Value, key: &str, errs: &mut ParamErrors) -> Option<BackendSpec> {
    let (addr, weight, mac) = match v {
        toml::Value::String(s) => (s.as_str(), 1, None),
        toml::Value::Table(t) => {
            for k in t.keys() {
                if !BACKEND_KEYS.contains(&k.as_str()) {
                    errs.push(
                        &format!("{key}.{k}"),
                        format!("unknown key (expected one of: {})", BACKEND_KEYS.join(", ")),
                    );
                }
            }
            let mut e = ParamErrors::default();
            let addr = params::opt_str(t, "addr", &mut e).unwrap_or("");
            let weight = params::opt_u64(t, "weight", 1..=100, &mut e).unwrap_or(1) as u32;
            let mac = params::opt_mac(t, "mac", &mut e);
            for (k, m) in e.0 {
                errs.push(&format!("{key}.{k}"), m);
            }
            (addr, weight, mac)
        }
        other => {
            errs.push(key, format!("expected \"ip:port\" or {{ addr, weight, mac }}, got {}", other.type_str()));
            return None;
        }
    };
    match addr.parse::<SocketAddr>() {
        Ok(a) if a.port() != 0 => Some(BackendSpec { addr: a, weight, mac }),
        _ => {
            errs.push(key, format!("'{addr}' is not an address with a port (198.19.0.11:8080, [2001:2::11]:8080)"));
            None
        }
    }
}

fn parse_service(t: &toml::Table, key: &str, errs: &mut ParamErrors) -> Option<ServiceSpec> {
    let mut e = ParamErrors::default();
    e.unknown_keys(t, SERVICE_KEYS);
    let vip = match params::opt_str(t, "vip", &mut e).map(str::parse::<IpAddr>) {
        Some(Ok(a)) => Some(a),
        Some(Err(_)) => {
            e.push("vip", "not an IP address".into());
            None
        }
        None => {
            if !e.has("vip") {
                e.push("vip", "required".into());
            }
            None
        }
    };
    let proto = match params::opt_str(t, "proto", &mut e) {
        Some("tcp") | None => L4Proto::Tcp,
        Some("udp") => L4Proto::Udp,
        Some(o) => {
            e.push("proto", format!("unknown protocol '{o}' (expected tcp or udp)"));
            L4Proto::Tcp
        }
    };
    let port = params::opt_u64(t, "port", 1..=65535, &mut e);
    if port.is_none() && !e.has("port") {
        e.push("port", "required".into());
    }
    let table_size = params::opt_u64(t, "table_size", 1..=u64::from(maglev::MAX_TABLE_SIZE), &mut e)
        .map_or(maglev::DEFAULT_TABLE_SIZE, |v| v as u32);
    if !e.has("table_size") && (table_size < maglev::MIN_TABLE_SIZE || !maglev::is_prime(table_size)) {
        e.push("table_size", format!("{table_size} is not a prime ≥ {}", maglev::MIN_TABLE_SIZE));
    }
    let mut backends = Vec::new();
    match t.get("backends") {
        Some(toml::Value::Array(a)) => {
            for (i, v) in a.iter().enumerate() {
                let key = format!("backends[{i}]");
                let Some(b) = parse_backend(v, &key, &mut e) else { continue };
                if backends.iter().any(|x: &BackendSpec| x.addr == b.addr) {
                    e.push(&key, format!("{} is listed twice", b.addr));
                } else if let Some(why) = vip.and_then(|vip| family_mismatch(vip, b.addr)) {
                    e.push(&key, why);
                } else {
                    backends.push(b);
                }
            }
        }
        Some(v) => e.push("backends", format!("expected an array, got {}", v.type_str())),
        None => {}
    }
    let name = params::opt_str(t, "name", &mut e).map(str::to_string).unwrap_or_else(|| match (vip, port) {
        (Some(v), Some(p)) => format!("{}/{}", SocketAddr::new(v, p as u16), proto.name()),
        _ => String::new(),
    });
    for (k, m) in e.0 {
        errs.push(&format!("{key}.{k}"), m);
    }
    Some(ServiceSpec { name, vip: vip?, proto, port: port? as u16, backends, table_size })
}

impl L4lbParams {
    /// Parses and validates `t`; every problem is reported with its key.
    pub fn parse(t: &toml::Table) -> Result<L4lbParams, ParamErrors> {
        let mut errs = ParamErrors::default();
        errs.unknown_keys(t, KEYS);
        let client_port = port_name(t, "client_port", &mut errs);
        let backend_port = port_name(t, "backend_port", &mut errs);
        if !client_port.is_empty() && client_port == backend_port {
            errs.push("backend_port", "must differ from client_port".into());
        }
        let snat = parse_snat(t, &mut errs);
        let nat_ports = match params::opt_str(t, "nat_ports", &mut errs) {
            None => (1024, 65535),
            Some(s) => parse_range(s).unwrap_or_else(|| {
                errs.push("nat_ports", format!("'{s}' is not a port range lo-hi within 1-65535"));
                (1024, 65535)
            }),
        };
        let max_flows = params::opt_u64(t, "max_flows", 1..=(1 << 24), &mut errs).unwrap_or(65536) as u32;
        let max_backends = params::opt_u64(t, "max_backends", 1..=4096, &mut errs).unwrap_or(64) as u16;
        let neighbour_wait =
            Duration::from_millis(params::opt_u64(t, "neighbour_wait_ms", 0..=60_000, &mut errs).unwrap_or(3000));
        let timeouts = parse_timeouts(t, &mut errs);
        let mut services: Vec<ServiceSpec> = Vec::new();
        match t.get("service") {
            Some(toml::Value::Array(a)) => {
                for (i, v) in a.iter().enumerate() {
                    let key = format!("service[{i}]");
                    let Some(st) = v.as_table() else {
                        errs.push(&key, "expected a table".into());
                        continue;
                    };
                    let Some(s) = parse_service(st, &key, &mut errs) else { continue };
                    if services.iter().any(|x| x.vip == s.vip && x.proto == s.proto && x.port == s.port) {
                        errs.push(&key, format!("{} is already a service", s.name));
                    } else if services.iter().any(|x| x.name == s.name) {
                        errs.push(&format!("{key}.name"), format!("'{}' is already a service name", s.name));
                    } else {
                        if !snat.iter().any(|a| a.is_ipv4() == s.vip.is_ipv4()) && !snat.is_empty() {
                            errs.push("snat", format!("service {} needs an address of its family", s.name));
                        }
                        services.push(s);
                    }
                }
            }
            Some(v) => errs
                .push("service", format!("expected an array of tables [[app.params.service]], got {}", v.type_str())),
            None => errs.push("service", "at least one [[app.params.service]]".into()),
        }
        let initial: usize = services.iter().map(|s| s.backends.len()).sum();
        if initial > max_backends as usize {
            errs.push("max_backends", format!("{max_backends} is fewer than the {initial} backends configured"));
        }
        errs.into_result(L4lbParams {
            client_port,
            backend_port,
            snat,
            nat_ports,
            max_flows,
            timeouts,
            services,
            max_backends,
            neighbour_wait,
        })
    }

    /// The source ports shard `shard` of `shards` hands out: an equal, disjoint slice of the
    /// range (what is left over at the top goes unused), so no two shards can give out the same
    /// (address, port) and a reply's destination port tells which shard owns its flow.
    pub fn shard_ports(&self, shard: u16, shards: u16) -> (u16, u16) {
        let (lo, hi) = self.nat_ports;
        let per = (u32::from(hi) - u32::from(lo) + 1) / u32::from(shards.max(1));
        let start = u32::from(lo) + per * u32::from(shard);
        (start as u16, (start + per - 1) as u16)
    }

    /// Ports per shard.
    pub fn ports_per_shard(&self, shards: u16) -> u32 {
        (u32::from(self.nat_ports.1) - u32::from(self.nat_ports.0) + 1) / u32::from(shards.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<L4lbParams, ParamErrors> {
        L4lbParams::parse(&s.parse::<toml::Table>().unwrap())
    }

    const OK: &str = r#"
client_port = "d0"
backend_port = "d1"
snat = ["198.19.0.2"]
nat_ports = "10000-19999"
timeouts = { half_open = 2, udp = 0.5 }
[[service]]
vip = "198.18.0.100"
port = 80
backends = ["198.19.0.11:8080", { addr = "198.19.0.12:8080", weight = 2, mac = "02:00:00:00:00:12" }]
[[service]]
name = "dns"
vip = "198.18.0.100"
proto = "udp"
port = 53
backends = ["198.19.0.11:53"]
"#;

    #[test]
    fn a_full_table_parses() {
        let p = parse(OK).unwrap();
        assert_eq!((p.client_port.as_str(), p.backend_port.as_str()), ("d0", "d1"));
        assert_eq!(p.nat_ports, (10000, 19999));
        assert_eq!(p.timeouts.half_open, Duration::from_secs(2));
        assert_eq!(p.timeouts.udp, Duration::from_millis(500));
        assert_eq!(p.services.len(), 2);
        assert_eq!(p.services[0].name, "198.18.0.100:80/tcp");
        assert_eq!(p.services[0].backends[1].weight, 2);
        assert_eq!(p.services[0].backends[1].mac, Some([2, 0, 0, 0, 0, 0x12]));
        assert_eq!(p.services[1].name, "dns");
        assert_eq!(p.services[1].proto, L4Proto::Udp);
        assert_eq!(p.services[0].table_size, 65537);
        // 10 000 ports over 3 shards: 3333 each, disjoint, in order.
        assert_eq!(p.shard_ports(0, 3), (10000, 13332));
        assert_eq!(p.shard_ports(2, 3), (16666, 19998));
        assert_eq!(p.ports_per_shard(3), 3333);
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let e = parse(
            r#"
client_port = "d0"
backend_port = "d0"
snat = ["x", "2001:2::1"]
nat_ports = "9-1"
colour = 1
timeouts = { half_open = -1, forever = 3 }
[[service]]
vip = "198.18.0.100"
port = 80
proto = "sctp"
table_size = 65536
backends = ["198.19.0.11", "[2001:2::1]:80", "198.19.0.12:80", "198.19.0.12:80"]
[[service]]
vip = "198.18.0.100"
port = 70000
"#,
        )
        .unwrap_err();
        let keys: Vec<&str> = e.0.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "colour",
                "backend_port",
                "snat[0]",
                "nat_ports",
                "timeouts.forever",
                "timeouts.half_open",
                "service[0].proto",
                "service[0].table_size",
                "service[0].backends[0]",
                "service[0].backends[1]",
                "service[0].backends[3]",
                "snat",
                "service[1].port",
            ],
            "{e}"
        );
        let e = parse("client_port = \"a\"\nbackend_port = \"b\"\nsnat = \"198.19.0.2\"").unwrap_err();
        assert_eq!(e.0[0].0, "service");
    }

    #[test]
    fn table_size_must_be_a_large_prime() {
        let base = |ts: &str| {
            format!(
                "client_port = \"a\"\nbackend_port = \"b\"\nsnat = \"198.19.0.2\"\n[[service]]\nvip = \"198.18.0.1\"\nport = 1\n{ts}"
            )
        };
        assert!(parse(&base("table_size = 65537")).is_ok());
        assert!(parse(&base("table_size = 655373")).is_ok());
        assert_eq!(parse(&base("table_size = 65541")).unwrap_err().0[0].0, "service[0].table_size");
        assert_eq!(parse(&base("table_size = 7")).unwrap_err().0[0].0, "service[0].table_size");
    }
}
