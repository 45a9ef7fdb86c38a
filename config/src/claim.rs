//! Claim rules: which traffic a port's XDP program steers to the engine (everything else goes
//! to the kernel). Parsed from the raw TOML value so every rule problem is reported with its
//! key (`port[0].claim[2].dst`).

use std::net::IpAddr;

use crate::ConfigError;

/// What a port claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Everything (pure forwarding port).
    All,
    /// Only frames matching one of the rules.
    Rules(Vec<ClaimRule>),
}

/// One rule; absent fields match anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimRule {
    /// Ethertype (host order).
    pub ethertype: Option<u16>,
    /// IP protocol number.
    pub proto: Option<u8>,
    /// Destination prefix.
    pub dst: Option<IpCidr>,
    /// Destination port range (inclusive), UDP/TCP only.
    pub dst_port: Option<(u16, u16)>,
}

/// An IP prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpCidr {
    /// Network address (host bits zero).
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix: u8,
}

impl std::str::FromStr for IpCidr {
    type Err = String;
    fn from_str(s: &str) -> Result<IpCidr, String> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| format!("'{a}' is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => {
                p.parse::<u8>().ok().filter(|&p| p <= max).ok_or_else(|| format!("prefix '/{p}' must be 0..={max}"))?
            }
        };
        let host_bits_set = match addr {
            IpAddr::V4(v) => prefix < 32 && u32::from(v) & (u32::MAX >> prefix) != 0,
            IpAddr::V6(v) => prefix < 128 && u128::from(v) & (u128::MAX >> prefix) != 0,
        };
        if host_bits_set {
            return Err(format!("'{s}' has host bits set beyond /{prefix}"));
        }
        Ok(IpCidr { addr, prefix })
    }
}

impl IpCidr {
    /// Whether `a` is inside the prefix.
    pub fn contains(&self, a: IpAddr) -> bool {
        match (self.addr, a) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                self.prefix == 0 || (u32::from(n) ^ u32::from(a)) >> (32 - u32::from(self.prefix)) == 0
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                self.prefix == 0 || (u128::from(n) ^ u128::from(a)) >> (128 - u32::from(self.prefix)) == 0
            }
            _ => false,
        }
    }

    /// The fewest prefixes that hold exactly `addrs` (duplicates allowed, any order, both
    /// families): runs of consecutive addresses become aligned blocks, so 198.19.0.2–9 is
    /// `.2/31 .4/30 .8/31`. Apps derive their claims through it, to stay within [`MAX_RULES`].
    pub fn cover(addrs: &[IpAddr]) -> Vec<IpCidr> {
        let mut out = Vec::new();
        for (v4, bits) in [(true, 32u32), (false, 128)] {
            let mut xs: Vec<u128> = addrs
                .iter()
                .filter(|a| a.is_ipv4() == v4)
                .map(|a| match a {
                    IpAddr::V4(v) => u128::from(u32::from(*v)),
                    IpAddr::V6(v) => u128::from(*v),
                })
                .collect();
            xs.sort_unstable();
            xs.dedup();
            let mut i = 0;
            while i < xs.len() {
                // The run xs[i..j] of consecutive addresses, lo..=hi.
                let mut j = i + 1;
                while j < xs.len() && xs[j] == xs[j - 1] + 1 {
                    j += 1;
                }
                let (mut lo, hi) = (xs[i], xs[j - 1]);
                loop {
                    // The largest aligned block at lo that stays within hi.
                    let mut k = lo.trailing_zeros().min(bits);
                    while k > 0 && (k >= 128 || lo + ((1u128 << k) - 1) > hi) {
                        k -= 1;
                    }
                    let addr = if v4 {
                        IpAddr::from(std::net::Ipv4Addr::from(lo as u32))
                    } else {
                        IpAddr::from(std::net::Ipv6Addr::from(lo))
                    };
                    out.push(IpCidr { addr, prefix: (bits - k) as u8 });
                    let last = lo + ((1u128 << k) - 1);
                    if last >= hi {
                        break;
                    }
                    lo = last + 1;
                }
                i = j;
            }
        }
        out
    }
}

pub(crate) const ETH_IPV4: u16 = 0x0800;
pub(crate) const ETH_IPV6: u16 = 0x86dd;
pub(crate) const ETH_ARP: u16 = 0x0806;
const RULE_KEYS: &[&str] = &["ethertype", "proto", "dst", "dst_port"];
/// Maximum rules per port (the XDP program's rule array).
pub const MAX_RULES: usize = 16;

/// Parses `claim` of port `pi`; pushes every problem to `errs`.
pub(crate) fn parse(v: Option<&toml::Value>, pi: usize, errs: &mut Vec<ConfigError>) -> Option<Claim> {
    let key = format!("port[{pi}].claim");
    let v = match v {
        None => return Some(Claim::All),
        Some(v) => v,
    };
    match v {
        toml::Value::String(s) if s == "all" => Some(Claim::All),
        toml::Value::String(s) => {
            errs.push(ConfigError::new(&key, format!("expected \"all\" or an array of rules, got \"{s}\"")));
            None
        }
        toml::Value::Array(rules) => {
            if rules.is_empty() {
                errs.push(ConfigError::new(
                    &key,
                    "an empty rule list claims nothing; remove the port or claim something".into(),
                ));
                return None;
            }
            if rules.len() > MAX_RULES {
                errs.push(ConfigError::new(&key, format!("{} rules; at most {MAX_RULES} are supported", rules.len())));
            }
            let before = errs.len();
            let parsed: Vec<ClaimRule> =
                rules.iter().enumerate().filter_map(|(ri, r)| parse_rule(r, &format!("{key}[{ri}]"), errs)).collect();
            (errs.len() == before).then_some(Claim::Rules(parsed))
        }
        other => {
            errs.push(ConfigError::new(
                &key,
                format!("expected \"all\" or an array of rules, got {}", other.type_str()),
            ));
            None
        }
    }
}

fn parse_rule(v: &toml::Value, key: &str, errs: &mut Vec<ConfigError>) -> Option<ClaimRule> {
    let Some(t) = v.as_table() else {
        errs.push(ConfigError::new(
            key,
            format!("expected a table like {{ proto = \"udp\", dst_port = 9 }}, got {}", v.type_str()),
        ));
        return None;
    };
    let before = errs.len();
    for k in t.keys() {
        if !RULE_KEYS.contains(&k.as_str()) {
            errs.push(ConfigError::new(
                &format!("{key}.{k}"),
                format!("unknown key (expected one of: {})", RULE_KEYS.join(", ")),
            ));
        }
    }
    if t.is_empty() {
        errs.push(ConfigError::new(key, "an empty rule matches everything; use claim = \"all\" instead".into()));
    }
    let ethertype = t.get("ethertype").and_then(|v| match v {
        toml::Value::String(s) => match s.as_str() {
            "ipv4" => Some(ETH_IPV4),
            "ipv6" => Some(ETH_IPV6),
            "arp" => Some(ETH_ARP),
            _ => {
                errs.push(ConfigError::new(
                    &format!("{key}.ethertype"),
                    format!("unknown ethertype '{s}' (ipv4, ipv6, arp, or a number)"),
                ));
                None
            }
        },
        toml::Value::Integer(i) if (0x600..=0xffff).contains(i) => Some(*i as u16),
        _ => {
            errs.push(ConfigError::new(
                &format!("{key}.ethertype"),
                "expected ipv4, ipv6, arp or a number 0x0600..=0xffff".into(),
            ));
            None
        }
    });
    let proto = t.get("proto").and_then(|v| match v {
        toml::Value::String(s) => match s.as_str() {
            "udp" => Some(17),
            "tcp" => Some(6),
            "icmp" => Some(1),
            "icmpv6" => Some(58),
            _ => {
                errs.push(ConfigError::new(
                    &format!("{key}.proto"),
                    format!("unknown protocol '{s}' (udp, tcp, icmp, icmpv6, or a number)"),
                ));
                None
            }
        },
        toml::Value::Integer(i) if (1..=255).contains(i) => Some(*i as u8),
        _ => {
            errs.push(ConfigError::new(
                &format!("{key}.proto"),
                "expected udp, tcp, icmp, icmpv6 or a number 1..=255".into(),
            ));
            None
        }
    });
    let dst = t.get("dst").and_then(|v| match v.as_str().map(str::parse::<IpCidr>) {
        Some(Ok(c)) => Some(c),
        Some(Err(e)) => {
            errs.push(ConfigError::new(&format!("{key}.dst"), e));
            None
        }
        None => {
            errs.push(ConfigError::new(
                &format!("{key}.dst"),
                "expected an address or CIDR string like \"198.18.0.0/15\"".into(),
            ));
            None
        }
    });
    let dst_port = t.get("dst_port").and_then(|v| {
        let r = match v {
            toml::Value::Integer(p) if (1..=65535).contains(p) => Ok((*p as u16, *p as u16)),
            toml::Value::String(s) => {
                match s.split_once('-').map(|(a, b)| (a.trim().parse::<u16>(), b.trim().parse::<u16>())) {
                    Some((Ok(a), Ok(b))) if a >= 1 && a <= b => Ok((a, b)),
                    _ => Err(format!("'{s}' is not a port range 'lo-hi' with 1 <= lo <= hi <= 65535")),
                }
            }
            _ => Err("expected a port 1..=65535 or a range \"lo-hi\"".to_string()),
        };
        r.map_err(|m| errs.push(ConfigError::new(&format!("{key}.dst_port"), m))).ok()
    });
    // Consistency.
    if let (Some(et), Some(c)) = (ethertype, dst) {
        let fam_ok = (et == ETH_IPV4 && c.addr.is_ipv4()) || (et == ETH_IPV6 && c.addr.is_ipv6());
        if !fam_ok {
            errs.push(ConfigError::new(
                &format!("{key}.dst"),
                format!("{} address with ethertype {et:#06x}", if c.addr.is_ipv4() { "an IPv4" } else { "an IPv6" }),
            ));
        }
    }
    if proto.is_some() && ethertype.is_some_and(|e| e != ETH_IPV4 && e != ETH_IPV6) {
        errs.push(ConfigError::new(
            &format!("{key}.proto"),
            "an IP protocol needs ethertype ipv4 or ipv6 (or none)".into(),
        ));
    }
    if dst.is_some() && ethertype.is_some_and(|e| e != ETH_IPV4 && e != ETH_IPV6) {
        errs.push(ConfigError::new(
            &format!("{key}.dst"),
            "a destination address needs ethertype ipv4 or ipv6 (or none)".into(),
        ));
    }
    if dst_port.is_some()
        && !matches!(proto, Some(6) | Some(17))
        && !errs.iter().any(|e| e.key == format!("{key}.proto"))
    {
        errs.push(ConfigError::new(&format!("{key}.dst_port"), "dst_port needs proto = \"udp\" or \"tcp\"".into()));
    }
    (errs.len() == before).then_some(ClaimRule { ethertype, proto, dst, dst_port })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(s: &str) -> (Option<Claim>, Vec<ConfigError>) {
        let v: toml::Table = format!("claim = {s}").parse().unwrap();
        let mut errs = Vec::new();
        let c = parse(v.get("claim"), 0, &mut errs);
        (c, errs)
    }

    #[test]
    fn all_and_rules() {
        assert_eq!(rules("\"all\"").0, Some(Claim::All));
        let (c, e) = rules(
            r#"[{ ethertype = "ipv4", proto = "udp", dst = "198.18.0.0/15", dst_port = 9 }, { proto = "tcp", dst_port = "8000-8080" }, { ethertype = "arp" }]"#,
        );
        assert!(e.is_empty(), "{e:?}");
        let Some(Claim::Rules(r)) = c else { panic!() };
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].ethertype, Some(0x0800));
        assert_eq!(r[0].proto, Some(17));
        assert_eq!(r[0].dst, Some(IpCidr { addr: "198.18.0.0".parse().unwrap(), prefix: 15 }));
        assert_eq!(r[0].dst_port, Some((9, 9)));
        assert_eq!(r[1].dst_port, Some((8000, 8080)));
        assert_eq!(r[2].ethertype, Some(0x0806));
        let (c, e) = rules(r#"[{ dst = "ff02::1" }]"#);
        assert!(e.is_empty());
        let Some(Claim::Rules(r)) = c else { panic!() };
        assert_eq!(r[0].dst.unwrap().prefix, 128);
    }

    #[test]
    fn every_rule_problem_has_its_key() {
        let (c, e) = rules(
            r#"[{ ethertype = "ipx" }, { proto = "sctpx", dst_port = 0 }, { dst = "198.18.0.1/15" }, { dst_port = 80 }, { ethertype = "ipv6", dst = "198.18.0.0/15" }, { colour = 1 }, {}]"#,
        );
        assert!(c.is_none());
        let keys: Vec<&str> = e.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "port[0].claim[0].ethertype",
                "port[0].claim[1].proto",
                "port[0].claim[1].dst_port",
                "port[0].claim[2].dst",
                "port[0].claim[3].dst_port",
                "port[0].claim[4].dst",
                "port[0].claim[5].colour",
                "port[0].claim[6]",
            ]
        );
    }

    #[test]
    fn wrong_shapes() {
        assert_eq!(rules("\"some\"").1[0].key, "port[0].claim");
        assert_eq!(rules("3").1[0].key, "port[0].claim");
        assert_eq!(rules("[]").1[0].key, "port[0].claim");
        assert_eq!(rules("[1]").1[0].key, "port[0].claim[0]");
        let many = format!("[{}]", vec!["{ proto = \"udp\" }"; 17].join(","));
        assert_eq!(rules(&many).1[0].key, "port[0].claim");
    }

    #[test]
    fn cidr_parsing() {
        assert!("198.18.0.0/15".parse::<IpCidr>().is_ok());
        assert!("198.18.0.0/33".parse::<IpCidr>().is_err());
        assert!("198.19.0.0/15".parse::<IpCidr>().is_err());
        assert!("2001:db8::/32".parse::<IpCidr>().is_ok());
        assert!("nonsense".parse::<IpCidr>().is_err());
    }
}

#[cfg(test)]
mod cover_tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn v4(last: u8) -> IpAddr {
        IpAddr::from(Ipv4Addr::new(198, 19, 0, last))
    }

    #[test]
    fn consecutive_addresses_become_aligned_blocks() {
        let got: Vec<String> = IpCidr::cover(&(2..=9).map(v4).collect::<Vec<_>>())
            .iter()
            .map(|c| format!("{}/{}", c.addr, c.prefix))
            .collect();
        assert_eq!(got, ["198.19.0.2/31", "198.19.0.4/30", "198.19.0.8/31"]);
        let one = IpCidr::cover(&[v4(7), v4(7)]);
        assert_eq!(one, [IpCidr { addr: v4(7), prefix: 32 }]);
        let v6: IpAddr = "2001:2::2".parse().unwrap();
        assert_eq!(IpCidr::cover(&[v6, v4(1)]), [IpCidr { addr: v4(1), prefix: 32 }, IpCidr { addr: v6, prefix: 128 }]);
        assert!(IpCidr::cover(&[]).is_empty());
        let all: Vec<IpAddr> = (0..=255).map(v4).collect();
        assert_eq!(IpCidr::cover(&all), [IpCidr { addr: v4(0), prefix: 24 }]);
    }

    /// Every subset of eight addresses, placed at every alignment of a /28: the cover holds
    /// exactly the subset, its prefixes have no host bits, and it is never longer than one
    /// prefix per address.
    #[test]
    fn the_cover_is_exact_for_every_subset() {
        for base in 0..8u8 {
            for mask in 0u16..256 {
                let set: Vec<IpAddr> = (0..8u8).filter(|b| mask >> b & 1 == 1).map(|b| v4(base + b)).collect();
                let cover = IpCidr::cover(&set);
                assert!(cover.len() <= set.len());
                for c in &cover {
                    let s = format!("{}/{}", c.addr, c.prefix);
                    assert_eq!(s.parse::<IpCidr>().as_ref(), Ok(c), "{s} has no host bits");
                }
                for last in 0..=255u8 {
                    let inside = cover.iter().any(|c| c.contains(v4(last)));
                    assert_eq!(inside, set.contains(&v4(last)), "base {base} mask {mask:08b}: .{last}");
                }
            }
        }
    }
}
