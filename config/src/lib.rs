//! `config`: the TOML schema, validation and the immutable plan.
//!
//! Data flows one way: TOML text → [`parse`] → [`EngineConfig`] (+ CLI [`Overrides`]) →
//! [`validate`] → [`Plan`]. Parsing reports every unknown key and every mistyped section at once;
//! validation reports every range, consistency and environment problem at once. Each
//! [`ConfigError`] names the offending key (`port[1].rx_ring`, `queue[0].params.mode`,
//! `port[0].claim[2].dst`), so a user with three typos sees three lines.
//!
//! * [`schema`]: the sections, their keys and defaults.
//! * [`claim`]: claim rules for the XDP program.
//! * [`validate`](mod@validate): checks and the [`Plan`].
//! * [`env`]: what validation asks the machine ([`Environment`], [`SystemEnv`]).
//! * [`overrides`]: CLI flags over TOML keys.

use std::fmt;
use std::path::Path;

pub mod claim;
pub mod env;
pub mod overrides;
pub mod schema;
pub mod validate;

pub use claim::{Claim, ClaimRule, IpCidr};
pub use env::{Environment, SystemEnv};
pub use overrides::Overrides;
pub use schema::{
    AppSection, BindMode, BusyPollSection, EngineConfig, EngineSection, Hugepages, Idle, PortKind, PortSection,
    QueueSection, UmemSection, XdpMode,
};
pub use validate::{
    validate, AppPlan, BusyPoll, EnginePlan, LcorePlan, Plan, PortPlan, PortPlanKind, QueuePlan, UmemPlan, XskPortPlan,
};

/// One problem in a configuration, with the key it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Key path, e.g. `port[1].rx_ring`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    /// A problem at `key`.
    pub fn new(key: &str, message: String) -> ConfigError {
        ConfigError { key: key.to_string(), message }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

impl std::error::Error for ConfigError {}

fn unknown_keys(t: &toml::Table, known: &[&str], prefix: &str, errs: &mut Vec<ConfigError>) {
    for k in t.keys() {
        if !known.contains(&k.as_str()) {
            let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
            errs.push(ConfigError::new(&key, format!("unknown key (expected one of: {})", known.join(", "))));
        }
    }
}

fn section<T: serde::de::DeserializeOwned>(v: &toml::Value, key: &str, errs: &mut Vec<ConfigError>) -> Option<T> {
    match v.clone().try_into::<T>() {
        Ok(t) => Some(t),
        Err(e) => {
            // serde's message for unknown fields duplicates what `unknown_keys` reported.
            let msg = e.to_string();
            if !msg.contains("unknown field") {
                errs.push(ConfigError::new(key, msg.trim().replace('\n', " ")));
            }
            None
        }
    }
}

/// Parses configuration text: TOML syntax, types, unknown keys (all reported together).
pub fn parse(text: &str) -> Result<EngineConfig, Vec<ConfigError>> {
    let root: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            let e: toml::de::Error = e;
            let at = e.span().map(|s| {
                let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
                format!("line {line}")
            });
            return Err(vec![ConfigError::new(&at.unwrap_or_else(|| "toml".into()), e.message().to_string())]);
        }
    };
    let mut errs = Vec::new();
    unknown_keys(&root, schema::TOP_KEYS, "", &mut errs);
    let mut cfg = EngineConfig::default();
    if let Some(v) = root.get("engine") {
        match v.as_table() {
            Some(t) => {
                unknown_keys(t, schema::ENGINE_KEYS, "engine", &mut errs);
                if let Some(s) = section(v, "engine", &mut errs) {
                    cfg.engine = s;
                }
            }
            None => errs.push(ConfigError::new("engine", "expected a table [engine]".into())),
        }
    }
    if let Some(v) = root.get("umem") {
        match v.as_table() {
            Some(t) => {
                unknown_keys(t, schema::UMEM_KEYS, "umem", &mut errs);
                if let Some(s) = section(v, "umem", &mut errs) {
                    cfg.umem = s;
                }
            }
            None => errs.push(ConfigError::new("umem", "expected a table [umem]".into())),
        }
    }
    for (name, known) in [("port", schema::PORT_KEYS), ("app", schema::APP_KEYS), ("queue", schema::QUEUE_KEYS)] {
        let Some(v) = root.get(name) else { continue };
        let Some(arr) = v.as_array() else {
            errs.push(ConfigError::new(name, format!("expected an array of tables [[{name}]]")));
            continue;
        };
        for (i, item) in arr.iter().enumerate() {
            let key = format!("{name}[{i}]");
            let Some(t) = item.as_table() else {
                errs.push(ConfigError::new(&key, "expected a table".into()));
                continue;
            };
            unknown_keys(t, known, &key, &mut errs);
            match name {
                "port" => {
                    if let Some(bp) = t.get("busy_poll").and_then(|b| b.as_table()) {
                        unknown_keys(bp, schema::BUSY_POLL_KEYS, &format!("{key}.busy_poll"), &mut errs);
                    }
                    if let Some(p) = section(item, &key, &mut errs) {
                        cfg.ports.push(p);
                    }
                }
                "app" => {
                    if let Some(a) = section(item, &key, &mut errs) {
                        cfg.apps.push(a);
                    }
                }
                _ => {
                    if let Some(q) = section(item, &key, &mut errs) {
                        cfg.queues.push(q);
                    }
                }
            }
        }
    }
    if errs.is_empty() {
        Ok(cfg)
    } else {
        Err(errs)
    }
}

/// Reads and parses a configuration file.
pub fn load(path: &Path) -> Result<EngineConfig, Vec<ConfigError>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![ConfigError::new(&path.display().to_string(), format!("cannot read: {e}"))])?;
    parse(&text)
}
