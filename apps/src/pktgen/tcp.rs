//! [`TcpSpec`]: the TCP header fields of pktgen's TCP segments (`proto = "tcp"`), their TOML
//! keys, defaults and rules.
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `tcp_flags` | `"syn"`, `"syn,ack"`, … or `["syn", "ack"]`: any of fin, syn, rst, psh, ack, urg, ece, cwr | `"syn"` |
//! | `tcp_seq` | sequence number: `0..=4294967295` (every segment) or `"random"` (a fresh one per segment: a random ISN per SYN) | `"random"` |
//! | `tcp_ack` | acknowledgement number, same forms | `0` |
//! | `tcp_window` | window | `64240` (Linux's SYN window for a 1460-byte MSS) |
//! | `tcp_mss` | add an MSS option (4 bytes) with this value; only on segments with SYN | none |
//!
//! The header is 20 bytes, 24 with the MSS option; no other option is written. The segment's
//! payload rule (signature when there is room, otherwise a bare segment padded to the frame size)
//! is in [`super::build`].

use crate::params::{self, ParamErrors};

/// FIN.
pub const FIN: u8 = 0x01;
/// SYN.
pub const SYN: u8 = 0x02;
/// RST.
pub const RST: u8 = 0x04;
/// PSH.
pub const PSH: u8 = 0x08;
/// ACK.
pub const ACK: u8 = 0x10;
/// URG.
pub const URG: u8 = 0x20;
/// ECE.
pub const ECE: u8 = 0x40;
/// CWR.
pub const CWR: u8 = 0x80;

/// Flag names in bit order (bit 0 = FIN).
pub const FLAG_NAMES: [&str; 8] = ["fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr"];

/// The window of a Linux SYN with a 1460-byte MSS (44 × 1460).
pub const DEFAULT_WINDOW: u16 = 64240;

/// Every TCP key [`TcpSpec::parse`] reads.
pub const KEYS: [&str; 5] = ["tcp_flags", "tcp_seq", "tcp_ack", "tcp_window", "tcp_mss"];

/// A sequence or acknowledgement number: one value for every segment, or drawn per segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpNum {
    /// This value in every segment.
    Fixed(u32),
    /// Uniformly random per segment (seeded by [`super::PktgenSpec::seed`]).
    Random,
}

/// TCP header fields of the generated segments. See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSpec {
    /// Flag bits (the constants of this module, or-ed).
    pub flags: u8,
    /// Sequence number.
    pub seq: TcpNum,
    /// Acknowledgement number.
    pub ack: TcpNum,
    /// Window.
    pub window: u16,
    /// MSS option value (SYN segments only).
    pub mss: Option<u16>,
}

impl Default for TcpSpec {
    /// A SYN with a random ISN, window 64240, no options.
    fn default() -> TcpSpec {
        TcpSpec { flags: SYN, seq: TcpNum::Random, ack: TcpNum::Fixed(0), window: DEFAULT_WINDOW, mss: None }
    }
}

impl TcpSpec {
    /// Length of the TCP header: 20, or 24 with the MSS option.
    pub fn header_len(&self) -> usize {
        20 + if self.mss.is_some() { 4 } else { 0 }
    }

    /// Parses the `tcp_*` keys of `t` (defaults for the absent ones).
    pub fn parse(t: &toml::Table, errs: &mut ParamErrors) -> TcpSpec {
        let mut s = TcpSpec::default();
        if let Some(v) = t.get("tcp_flags") {
            match parse_flags(v) {
                Ok(f) => s.flags = f,
                Err(m) => errs.push("tcp_flags", m),
            }
        }
        s.seq = parse_num(t, "tcp_seq", errs).unwrap_or(s.seq);
        s.ack = parse_num(t, "tcp_ack", errs).unwrap_or(s.ack);
        s.window = params::opt_u64(t, "tcp_window", 0..=65535, errs).map_or(s.window, |v| v as u16);
        s.mss = params::opt_u64(t, "tcp_mss", 1..=65535, errs).map(|v| v as u16);
        s
    }

    /// Cross-field rules: at least one flag; an MSS option only on SYN segments.
    pub fn validate(&self, errs: &mut ParamErrors) {
        if self.flags == 0 {
            errs.push("tcp_flags", "give at least one flag".into());
        }
        if self.mss.is_some() && self.flags & SYN == 0 {
            errs.push("tcp_mss", "the MSS option is only sent on SYN segments: add syn to tcp_flags".into());
        }
    }

    /// The flags as text, "syn,ack".
    pub fn flags_text(&self) -> String {
        FLAG_NAMES
            .iter()
            .enumerate()
            .filter(|(i, _)| self.flags & (1 << i) != 0)
            .map(|(_, n)| *n)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Parses "syn", "syn,ack" (also separated by `|` or spaces) or an array of names.
pub fn parse_flags(v: &toml::Value) -> Result<u8, String> {
    let names: Vec<String> = match v {
        toml::Value::String(s) => {
            s.split([',', '|', ' ']).filter(|x| !x.is_empty()).map(|x| x.trim().to_ascii_lowercase()).collect()
        }
        toml::Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().map(str::to_ascii_lowercase).ok_or_else(|| format!("{x} is not a flag name")))
            .collect::<Result<_, _>>()?,
        other => return Err(format!("expected \"syn,ack\" or [\"syn\", \"ack\"], got {}", other.type_str())),
    };
    let mut bits = 0u8;
    for n in &names {
        match FLAG_NAMES.iter().position(|f| f == n) {
            Some(i) => bits |= 1 << i,
            None => return Err(format!("'{n}' is not one of {}", FLAG_NAMES.join(", "))),
        }
    }
    Ok(bits)
}

fn parse_num(t: &toml::Table, key: &str, errs: &mut ParamErrors) -> Option<TcpNum> {
    match t.get(key)? {
        toml::Value::String(s) if s == "random" => Some(TcpNum::Random),
        toml::Value::Integer(i) if (0..=i64::from(u32::MAX)).contains(i) => Some(TcpNum::Fixed(*i as u32)),
        v => {
            errs.push(key, format!("expected 0..=4294967295 or \"random\", got {v}"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> (TcpSpec, Vec<String>) {
        let t: toml::Table = s.parse().unwrap();
        let mut errs = ParamErrors::default();
        let spec = TcpSpec::parse(&t, &mut errs);
        spec.validate(&mut errs);
        (spec, errs.0.into_iter().map(|(k, _)| k).collect())
    }

    #[test]
    fn defaults_forms_and_errors() {
        let (s, e) = parse("");
        assert_eq!((s, e.len()), (TcpSpec::default(), 0));
        assert_eq!(s.header_len(), 20);
        assert_eq!(s.flags_text(), "syn");
        let (s, e) =
            parse("tcp_flags = \"SYN,ack\"\ntcp_seq = 7\ntcp_ack = \"random\"\ntcp_window = 0\ntcp_mss = 1460");
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(
            s,
            TcpSpec { flags: SYN | ACK, seq: TcpNum::Fixed(7), ack: TcpNum::Random, window: 0, mss: Some(1460) }
        );
        assert_eq!(s.header_len(), 24);
        assert_eq!(s.flags_text(), "syn,ack");
        let (s, _) = parse("tcp_flags = [\"fin\", \"psh\", \"ack\", \"cwr\"]\ntcp_seq = 4294967295");
        assert_eq!((s.flags, s.seq), (FIN | PSH | ACK | CWR, TcpNum::Fixed(u32::MAX)));
        assert_eq!(parse("tcp_flags = \"syn,bogus\"").1, vec!["tcp_flags"]);
        assert_eq!(parse("tcp_flags = []").1, vec!["tcp_flags"], "no flag at all");
        assert_eq!(parse("tcp_flags = 3").1, vec!["tcp_flags"]);
        assert_eq!(parse("tcp_seq = 4294967296").1, vec!["tcp_seq"]);
        assert_eq!(parse("tcp_ack = \"rand\"").1, vec!["tcp_ack"]);
        assert_eq!(parse("tcp_window = 65536").1, vec!["tcp_window"]);
        assert_eq!(parse("tcp_mss = 0").1, vec!["tcp_mss"]);
        assert_eq!(parse("tcp_flags = \"ack\"\ntcp_mss = 1460").1, vec!["tcp_mss"], "MSS needs SYN");
    }
}
