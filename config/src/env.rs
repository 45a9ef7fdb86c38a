//! What validation needs to know about the machine, behind a trait so tests can fake it.
//!
//! [`SystemEnv`] reads `/sys/class/net/<if>` (interface existence; queue count = number of
//! `queues/rx-*` entries) and `/sys/devices/system/cpu/online`. Under `ip netns exec`, /sys is
//! remounted for the namespace, so these answers follow the namespace xskd runs in.

use std::path::Path;

/// The machine, as validation sees it.
pub trait Environment {
    /// Whether interface `name` exists.
    fn iface_exists(&self, name: &str) -> bool;
    /// Number of RX queues of `name`.
    fn iface_queues(&self, name: &str) -> Option<u32>;
    /// Whether CPU `cpu` is online.
    fn cpu_online(&self, cpu: usize) -> bool;
    /// Whether `app` is a known app.
    fn app_known(&self, app: &str) -> bool;
    /// Known app names (for error messages).
    fn app_names(&self) -> Vec<String>;
    /// Problems in `params` for `app`, as (key suffix, message).
    fn validate_params(&self, app: &str, params: &toml::Table) -> Vec<(String, String)>;
}

/// Parameter validator callback of [`SystemEnv`].
pub type ParamValidator = Box<dyn Fn(&str, &toml::Table) -> Vec<(String, String)> + Send + Sync>;

/// The real machine.
pub struct SystemEnv {
    apps: Vec<String>,
    validate: ParamValidator,
    online: Vec<usize>,
}

impl std::fmt::Debug for SystemEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemEnv").field("apps", &self.apps).field("online", &self.online).finish()
    }
}

impl SystemEnv {
    /// An environment knowing `apps`, validating their params with `validate`.
    pub fn new(apps: Vec<String>, validate: ParamValidator) -> SystemEnv {
        let online = std::fs::read_to_string("/sys/devices/system/cpu/online")
            .ok()
            .and_then(|s| parse_cpu_list(s.trim()))
            .unwrap_or_else(|| (0..std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).collect());
        SystemEnv { apps, validate, online }
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

impl Environment for SystemEnv {
    fn iface_exists(&self, name: &str) -> bool {
        !name.is_empty() && !name.contains('/') && Path::new("/sys/class/net").join(name).exists()
    }

    fn iface_queues(&self, name: &str) -> Option<u32> {
        let dir = std::fs::read_dir(Path::new("/sys/class/net").join(name).join("queues")).ok()?;
        Some(dir.filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().starts_with("rx-")).count() as u32)
    }

    fn cpu_online(&self, cpu: usize) -> bool {
        self.online.contains(&cpu)
    }

    fn app_known(&self, app: &str) -> bool {
        self.apps.iter().any(|a| a == app)
    }

    fn app_names(&self) -> Vec<String> {
        self.apps.clone()
    }

    fn validate_params(&self, app: &str, params: &toml::Table) -> Vec<(String, String)> {
        (self.validate)(app, params)
    }
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
        let env = SystemEnv::new(vec!["relay".into()], Box::new(|_, _| vec![]));
        assert!(env.iface_exists("lo"));
        assert!(!env.iface_exists("no-such-if0"));
        assert!(!env.iface_exists("../lo"));
        assert!(env.iface_queues("lo").unwrap_or(0) >= 1);
        assert!(env.cpu_online(0));
        assert!(!env.cpu_online(100_000));
        assert!(env.app_known("relay"));
        assert!(!env.app_known("nope"));
    }
}
