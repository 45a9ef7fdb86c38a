//! Helpers for app parameter tables (`[[queue]] params`): typed getters that record every
//! problem with its key instead of stopping at the first, so `xskd` can print them all.

use std::fmt;

/// Problems found in a params table: (key, message) pairs, in discovery order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ParamErrors(pub Vec<(String, String)>);

impl ParamErrors {
    /// Records a problem.
    pub fn push(&mut self, key: &str, msg: String) {
        self.0.push((key.to_string(), msg));
    }

    /// Whether a problem was recorded for `key`.
    pub fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    /// Records every key of `t` not in `known`.
    pub fn unknown_keys(&mut self, t: &toml::Table, known: &[&str]) {
        for k in t.keys() {
            if !known.contains(&k.as_str()) {
                self.push(k, format!("unknown parameter (expected one of: {})", known.join(", ")));
            }
        }
    }

    /// `Ok(v)` when nothing was recorded.
    pub fn into_result<T>(self, v: T) -> Result<T, ParamErrors> {
        if self.0.is_empty() {
            Ok(v)
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for ParamErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, m)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{k}: {m}")?;
        }
        Ok(())
    }
}

/// Optional string parameter.
pub fn opt_str<'a>(t: &'a toml::Table, key: &str, errs: &mut ParamErrors) -> Option<&'a str> {
    match t.get(key) {
        None => None,
        Some(toml::Value::String(s)) => Some(s.as_str()),
        Some(v) => {
            errs.push(key, format!("expected a string, got {}", v.type_str()));
            None
        }
    }
}

/// Optional unsigned integer parameter within `range`.
pub fn opt_u64(
    t: &toml::Table,
    key: &str,
    range: std::ops::RangeInclusive<u64>,
    errs: &mut ParamErrors,
) -> Option<u64> {
    match t.get(key) {
        None => None,
        Some(toml::Value::Integer(i)) if *i >= 0 && range.contains(&(*i as u64)) => Some(*i as u64),
        Some(toml::Value::Integer(i)) => {
            errs.push(key, format!("{i} out of range {}..={}", range.start(), range.end()));
            None
        }
        Some(v) => {
            errs.push(key, format!("expected an integer, got {}", v.type_str()));
            None
        }
    }
}

/// Optional float parameter (integers accepted) within `range`.
pub fn opt_f64(
    t: &toml::Table,
    key: &str,
    range: std::ops::RangeInclusive<f64>,
    errs: &mut ParamErrors,
) -> Option<f64> {
    let v = match t.get(key) {
        None => return None,
        Some(toml::Value::Float(f)) => *f,
        Some(toml::Value::Integer(i)) => *i as f64,
        Some(v) => {
            errs.push(key, format!("expected a number, got {}", v.type_str()));
            return None;
        }
    };
    if !range.contains(&v) {
        errs.push(key, format!("{v} out of range {}..={}", range.start(), range.end()));
        return None;
    }
    Some(v)
}

/// Optional boolean parameter.
pub fn opt_bool(t: &toml::Table, key: &str, errs: &mut ParamErrors) -> Option<bool> {
    match t.get(key) {
        None => None,
        Some(toml::Value::Boolean(b)) => Some(*b),
        Some(v) => {
            errs.push(key, format!("expected true or false, got {}", v.type_str()));
            None
        }
    }
}

/// Parses "aa:bb:cc:dd:ee:ff".
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut out {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// Formats a MAC address.
pub fn fmt_mac(m: &[u8; 6]) -> String {
    format!("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
}

/// Optional MAC parameter.
pub fn opt_mac(t: &toml::Table, key: &str, errs: &mut ParamErrors) -> Option<[u8; 6]> {
    let s = opt_str(t, key, errs)?;
    match parse_mac(s) {
        Some(m) => Some(m),
        None => {
            errs.push(key, format!("'{s}' is not a MAC address (aa:bb:cc:dd:ee:ff)"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs() {
        assert_eq!(parse_mac("02:00:0a:ff:10:01"), Some([2, 0, 10, 255, 16, 1]));
        assert_eq!(parse_mac("02:00:0a:ff:10"), None);
        assert_eq!(parse_mac("02:00:0a:ff:10:01:02"), None);
        assert_eq!(parse_mac("0g:00:0a:ff:10:01"), None);
        assert_eq!(fmt_mac(&[2, 0, 10, 255, 16, 1]), "02:00:0a:ff:10:01");
    }

    #[test]
    fn typed_getters_record_errors_with_keys() {
        let t: toml::Table = "a = 1\nb = \"x\"\nc = 2.5\nd = true\ne = 99".parse().unwrap();
        let mut e = ParamErrors::default();
        assert_eq!(opt_u64(&t, "a", 0..=10, &mut e), Some(1));
        assert_eq!(opt_u64(&t, "b", 0..=10, &mut e), None);
        assert_eq!(opt_f64(&t, "c", 0.0..=3.0, &mut e), Some(2.5));
        assert_eq!(opt_bool(&t, "d", &mut e), Some(true));
        assert_eq!(opt_u64(&t, "e", 0..=10, &mut e), None);
        assert_eq!(opt_str(&t, "zz", &mut e), None);
        assert_eq!(e.0.len(), 2);
        assert_eq!(e.0[0].0, "b");
        assert_eq!(e.0[1].0, "e");
    }
}
