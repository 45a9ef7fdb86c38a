//! What validation needs to know about the machine and the apps, behind a trait so tests can
//! fake it.
//!
//! [`Environment`] is what validation asks (machine facts and the app set); [`SystemEnv`]
//! answers the machine part: it reads `/sys/class/net/<if>` (interface existence; queue count =
//! number of `queues/rx-*` entries) and `/sys/devices/system/cpu/online`. Under `ip netns exec`, /sys is
//! remounted for the namespace, so these answers follow the namespace xskd runs in.

use std::path::Path;

/// Problems found in app parameters: (key suffix under `params`, message) for each.
pub type ParamProblems = Vec<(String, String)>;

/// The machine and the app set, as validation sees them.
///
/// Apps live above this crate, so validation reaches them through this trait: it asks whether
/// a kind exists, has its parameters parsed **once** into the app's typed value
/// ([`Environment::Params`], stored in the plan), and asks which ports those parameters name
/// so that references between sections are checked before anything is attached.
pub trait Environment {
    /// Typed, validated app parameters (the apps crate's enum; tests use anything simple).
    type Params: Clone + std::fmt::Debug + PartialEq;
    /// Whether interface `name` exists.
    fn iface_exists(&self, name: &str) -> bool;
    /// Number of RX queues of `name`.
    fn iface_queues(&self, name: &str) -> Option<u32>;
    /// Whether CPU `cpu` is online.
    fn cpu_online(&self, cpu: usize) -> bool;
    /// Known app kinds (for error messages).
    fn app_kinds(&self) -> Vec<String>;
    /// Parses `params` for an app of `kind`: `None` if the kind is unknown, else the typed
    /// value or every problem as (key suffix under `params`, message).
    fn parse_params(&self, kind: &str, params: &toml::Table) -> Option<Result<Self::Params, ParamProblems>>;
    /// Ports the parameters name, as (key suffix under `params`, port name), so validation can
    /// check that each exists and is polled by some lcore.
    fn port_refs(&self, params: &Self::Params) -> Vec<(String, String)>;
    /// Traffic the app needs steered to it, as (port name, rule): a port whose `claim` is not
    /// set claims exactly the union of these (or everything when no app asks for any), so a
    /// VIP or a NAT port range is written once, in the app's parameters.
    fn port_claims(&self, _params: &Self::Params) -> Vec<(String, crate::ClaimRule)> {
        Vec::new()
    }
    /// Problems with running the app as `shards` shards (one per lcore that polls one of its
    /// queues), as (key suffix under `params`, message): what only the whole plan reveals.
    fn check_shards(&self, _params: &Self::Params, _shards: usize) -> ParamProblems {
        Vec::new()
    }
}

/// The real machine: interfaces from /sys/class/net, CPUs from /sys/devices/system/cpu/online.
/// Apps wrap it in their own [`Environment`] (they know the app set).
#[derive(Debug, Clone)]
pub struct SystemEnv {
    online: Vec<usize>,
}

impl Default for SystemEnv {
    fn default() -> Self {
        SystemEnv::new()
    }
}

impl SystemEnv {
    /// Reads the online CPU list once.
    pub fn new() -> SystemEnv {
        let online = std::fs::read_to_string("/sys/devices/system/cpu/online")
            .ok()
            .and_then(|s| parse_cpu_list(s.trim()))
            .unwrap_or_else(|| (0..std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).collect());
        SystemEnv { online }
    }

    /// Whether interface `name` exists.
    pub fn iface_exists(&self, name: &str) -> bool {
        !name.is_empty() && !name.contains('/') && Path::new("/sys/class/net").join(name).exists()
    }

    /// Number of RX queues of `name` (`queues/rx-*` entries).
    pub fn iface_queues(&self, name: &str) -> Option<u32> {
        let dir = std::fs::read_dir(Path::new("/sys/class/net").join(name).join("queues")).ok()?;
        Some(dir.filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().starts_with("rx-")).count() as u32)
    }

    /// Whether CPU `cpu` is online.
    pub fn cpu_online(&self, cpu: usize) -> bool {
        self.online.contains(&cpu)
    }
}

/// Parses a kernel CPU list such as "0-3,6,8-9".
pub fn parse_cpu_list(s: &str) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    if s.is_empty() {
        return Some(out);
    }
    for part in s.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                if a > b {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.trim().parse().ok()?),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-1"), Some(vec![0, 1]));
        assert_eq!(parse_cpu_list("0-2,4,6-7"), Some(vec![0, 1, 2, 4, 6, 7]));
        assert_eq!(parse_cpu_list("3"), Some(vec![3]));
        assert_eq!(parse_cpu_list("2-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
    }

    #[test]
    fn system_env_sees_loopback_and_cpu0() {
        let env = SystemEnv::new();
        assert!(env.iface_exists("lo"));
        assert!(!env.iface_exists("no-such-if0"));
        assert!(!env.iface_exists("../lo"));
        assert!(env.iface_queues("lo").unwrap_or(0) >= 1);
        assert!(env.cpu_online(0));
        assert!(!env.cpu_online(100_000));
    }
}
