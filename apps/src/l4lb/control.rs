//! The control-thread side of an `l4lb` instance: backend MACs from the kernel's neighbour
//! table, Maglev tables, and the runtime commands of `xskd ctl`.
//!
//! It owns the authoritative backend list (one slot per backend, never reused for another
//! address, so shards and controller agree on indices) and pushes every change to all shards
//! as a closure ([`Shards::send_all`]): a backend slot's address, state and MAC, or a service's
//! new Maglev table. Tables are built here (allocation happens off the lcores) and shared by
//! the shards through an `Arc`.
//!
//! * MACs: backends without a fixed `mac` get a managed neighbour entry on the backend port's
//!   interface ([`nic::neigh::Resolver`]); start-up waits up to `neighbour_wait_ms` for them,
//!   then runs with those resolved (the others join the Maglev table when they resolve);
//!   every 500 ms the entries are re-read and changes pushed.
//! * Draining a backend takes it out of its service's Maglev table (no new flows) while the
//!   shards keep its flows; removing it also marks it removed in the shards, whose flows on it
//!   then move on their next packet. Maglev moves only the table entries of the backend that
//!   changed, plus a small share (measured in `engine::maglev`'s tests).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::maglev::{MaglevBackend, MaglevTable};
use nic::neigh::{NeighChangeKind, Resolver};

use super::params::L4lbParams;
use super::shard::BackendState;
use crate::control::{Controller, Shards};
use crate::registry::AnyApp;

const REFRESH_EVERY: Duration = Duration::from_millis(500);
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
struct BackendCtl {
    addr: SocketAddr,
    weight: u32,
    state: BackendState,
    mac: Option<[u8; 6]>,
    fixed_mac: bool,
    service: usize,
}

#[derive(Debug, Clone)]
struct ServiceCtl {
    name: String,
    vip: IpAddr,
    table_size: u32,
    /// Backend slots of the service, in the order they were added.
    slots: Vec<u16>,
}

/// The controller of one `l4lb` instance.
pub struct L4lbControl {
    name: String,
    /// Backend port's interface index (None: a null port; MACs must be fixed or are zero).
    ifindex: Option<u32>,
    iface: Option<String>,
    services: Vec<ServiceCtl>,
    backends: Vec<BackendCtl>,
    max_backends: usize,
    resolver: Option<Resolver>,
    neighbour_wait: Duration,
    next_refresh: Instant,
}

impl std::fmt::Debug for L4lbControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("L4lbControl").field("name", &self.name).field("backends", &self.backends.len()).finish()
    }
}

fn with_shard(a: &mut AnyApp, f: impl FnOnce(&mut super::L4lb)) {
    if let AnyApp::L4lb(lb) = a {
        f(lb);
    }
}

fn fmt_mac(m: Option<[u8; 6]>) -> String {
    m.map_or_else(|| "unresolved".to_string(), |m| crate::params::fmt_mac(&m))
}

impl L4lbControl {
    /// The controller of `p`, its backends in configuration order (the shards number them the
    /// same way, [`super::L4lb::new`]). `iface` is the backend port's interface.
    pub fn new(name: &str, p: &L4lbParams, iface: Option<String>) -> L4lbControl {
        let mut backends = Vec::new();
        let services = p
            .services
            .iter()
            .enumerate()
            .map(|(si, s)| ServiceCtl {
                name: s.name.clone(),
                vip: s.vip,
                table_size: s.table_size,
                slots: s
                    .backends
                    .iter()
                    .map(|b| {
                        backends.push(BackendCtl {
                            addr: b.addr,
                            weight: b.weight,
                            state: BackendState::Active,
                            mac: b.mac,
                            fixed_mac: b.mac.is_some(),
                            service: si,
                        });
                        (backends.len() - 1) as u16
                    })
                    .collect(),
            })
            .collect();
        L4lbControl {
            name: name.to_string(),
            ifindex: None,
            iface,
            services,
            backends,
            max_backends: p.max_backends as usize,
            resolver: None,
            neighbour_wait: p.neighbour_wait,
            next_refresh: Instant::now(),
        }
    }

    /// Pushes slot `slot` to every shard.
    fn push_backend(&self, shards: &Shards, slot: u16) {
        let b = self.backends[slot as usize].clone();
        shards.send_all(move |_, a| with_shard(a, |lb| lb.set_backend(slot, b.service, b.addr, b.state, b.mac)));
    }

    /// Rebuilds service `si`'s Maglev table and pushes it: every backend of the service that is
    /// active and has a MAC takes part.
    fn push_table(&self, shards: &Shards, si: usize) -> Result<(), String> {
        let s = &self.services[si];
        let members: Vec<u16> =
            s.slots.iter().copied().filter(|&b| self.backends[b as usize].state != BackendState::Removed).collect();
        let mb: Vec<MaglevBackend> = members
            .iter()
            .map(|&b| {
                let be = &self.backends[b as usize];
                MaglevBackend {
                    id: MaglevBackend::id_of(&be.addr),
                    weight: be.weight,
                    active: be.state == BackendState::Active && be.mac.is_some(),
                }
            })
            .collect();
        let table = MaglevTable::with_size(&mb, s.table_size).map_err(|e| format!("service {}: {e}", s.name))?;
        let (table, members): (Arc<MaglevTable>, Arc<[u16]>) = (Arc::new(table), members.into());
        shards.send_all(move |_, a| with_shard(a, |lb| lb.set_service_table(si, table.clone(), members.clone())));
        Ok(())
    }

    fn push_everything(&self, shards: &Shards) -> Result<(), String> {
        for slot in 0..self.backends.len() {
            self.push_backend(shards, slot as u16);
        }
        for si in 0..self.services.len() {
            self.push_table(shards, si)?;
        }
        Ok(())
    }

    fn resolve_targets(&self) -> Vec<(u32, IpAddr)> {
        let Some(ix) = self.ifindex else { return Vec::new() };
        let mut v: Vec<(u32, IpAddr)> = self
            .backends
            .iter()
            .filter(|b| !b.fixed_mac && b.state != BackendState::Removed)
            .map(|b| (ix, b.addr.ip()))
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Ensures a managed neighbour entry for every backend without a fixed MAC (creating the
    /// resolver the first time, adding targets later) and waits up to `wait` for them.
    fn resolve(&mut self, wait: Duration) -> Result<(), String> {
        let targets = self.resolve_targets();
        if targets.is_empty() {
            return Ok(());
        }
        let err = |e: nic::neigh::NeighError| format!("backend neighbours: {e}");
        let r = match &mut self.resolver {
            Some(r) => {
                for &(ix, ip) in &targets {
                    r.add(ix, ip).map_err(err)?;
                }
                r
            }
            None => self.resolver.insert(Resolver::new(&targets).map_err(err)?),
        };
        let res = r.wait(wait).map_err(err)?;
        for u in &res.unresolved {
            tracing::warn!(app = %self.name, backend = %u.ip, iface = ?self.iface, state = ?u.state, "backend MAC not resolved yet; it takes no flows until it is");
        }
        for b in &mut self.backends {
            if !b.fixed_mac {
                b.mac = r.mac(self.ifindex.unwrap_or(0), b.addr.ip());
            }
        }
        Ok(())
    }

    fn find(&self, service: &str, addr: &str) -> Result<(usize, SocketAddr, Option<u16>), String> {
        let si = self
            .services
            .iter()
            .position(|s| s.name == service)
            .ok_or_else(|| format!("no service '{service}' (services: {})", self.service_names()))?;
        let addr: SocketAddr = addr.parse().map_err(|_| format!("'{addr}' is not ip:port"))?;
        let slot = self.services[si].slots.iter().copied().find(|&b| self.backends[b as usize].addr == addr);
        Ok((si, addr, slot))
    }

    fn service_names(&self) -> String {
        self.services.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
    }

    fn backends_text(&self, shards: &Shards) -> String {
        let per_shard = shards.query(QUERY_TIMEOUT, |_, a| match a {
            AnyApp::L4lb(lb) => [lb.backend_flows(), lb.backend_nat_free()],
            _ => [Vec::new(), Vec::new()],
        });
        let mut out = Vec::new();
        for (slot, b) in self.backends.iter().enumerate() {
            // Column `c` (0: flows, 1: free NAT pairs) of this slot, summed over the shards.
            let sum = |c: usize| -> u64 { per_shard.iter().map(|(_, v)| v[c].get(slot).copied().unwrap_or(0)).sum() };
            out.push(format!(
                "{} {} {} weight={} mac={} flows={} nat_free={}",
                self.services[b.service].name,
                b.addr,
                b.state.name(),
                b.weight,
                fmt_mac(b.mac),
                sum(0),
                sum(1),
            ));
        }
        out.join("\n")
    }

    fn stats_text(&self, shards: &Shards) -> String {
        let per_shard = shards.query(QUERY_TIMEOUT, |_, a| {
            let mut v = Vec::new();
            a_report(a, &mut v);
            v
        });
        let mut sum: Vec<(&'static str, u64)> = Vec::new();
        for (_, v) in &per_shard {
            for (k, n) in v {
                match sum.iter_mut().find(|(kk, _)| kk == k) {
                    Some(e) => e.1 += n,
                    None => sum.push((k, *n)),
                }
            }
        }
        format!(
            "shards={} {}",
            per_shard.len(),
            sum.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
        )
    }

    fn backend_command(&mut self, args: &[&str], shards: &Shards) -> Result<String, String> {
        let [verb, service, addr, rest @ ..] = args else {
            return Err("usage: backend add|drain|activate|remove SERVICE IP:PORT [weight N]".into());
        };
        let (si, addr, slot) = self.find(service, addr)?;
        if let Some(why) = super::params::family_mismatch(self.services[si].vip, addr) {
            return Err(format!("{service}: {why}"));
        }
        match (*verb, slot) {
            ("add", Some(slot)) if self.backends[slot as usize].state != BackendState::Removed => {
                Err(format!("{addr} is already a backend of {service} ({})", self.backends[slot as usize].state.name()))
            }
            ("add", existing) => {
                let weight = match rest {
                    [] => 1,
                    ["weight", w] => {
                        w.parse::<u32>().ok().filter(|w| (1..=100).contains(w)).ok_or("weight: 1..=100")?
                    }
                    _ => return Err("usage: backend add SERVICE IP:PORT [weight N]".into()),
                };
                let slot = match existing {
                    Some(s) => s,
                    None if self.backends.len() < self.max_backends => {
                        self.backends.push(BackendCtl {
                            addr,
                            weight,
                            state: BackendState::Active,
                            mac: None,
                            fixed_mac: false,
                            service: si,
                        });
                        self.services[si].slots.push((self.backends.len() - 1) as u16);
                        (self.backends.len() - 1) as u16
                    }
                    None => return Err(format!("all {} backend slots are in use (max_backends)", self.max_backends)),
                };
                let b = &mut self.backends[slot as usize];
                b.state = BackendState::Active;
                b.weight = weight;
                if self.ifindex.is_some() {
                    self.resolve(self.neighbour_wait)?;
                }
                self.push_backend(shards, slot);
                self.push_table(shards, si)?;
                let b = &self.backends[slot as usize];
                Ok(format!("added {addr} to {service} (mac {})", fmt_mac(b.mac)))
            }
            (_, None) => Err(format!("{addr} is not a backend of {service}")),
            (verb @ ("drain" | "activate" | "remove"), Some(slot)) => {
                let state = match verb {
                    "drain" => BackendState::Draining,
                    "activate" => BackendState::Active,
                    _ => BackendState::Removed,
                };
                self.backends[slot as usize].state = state;
                self.push_backend(shards, slot);
                self.push_table(shards, si)?;
                Ok(format!("{addr} of {service}: {}", state.name()))
            }
            (v, _) => Err(format!("unknown backend command '{v}' (add, drain, activate, remove)")),
        }
    }
}

/// An app shard's report (the same counters the daemon publishes).
fn a_report(a: &mut AnyApp, out: &mut Vec<(&'static str, u64)>) {
    engine::App::report(a, out);
}

impl Controller for L4lbControl {
    fn start(&mut self, shards: &Shards) -> Result<(), String> {
        if let Some(iface) = &self.iface {
            let ix = nic::sys::if_nametoindex(iface).map_err(|e| format!("backend port interface {iface}: {e}"))?;
            self.ifindex = Some(ix);
            self.resolve(self.neighbour_wait)?;
        }
        self.push_everything(shards)?;
        let up = self.backends.iter().filter(|b| b.mac.is_some()).count();
        tracing::info!(app = %self.name, backends = self.backends.len(), resolved = up, "l4lb backends installed");
        Ok(())
    }

    fn tick(&mut self, shards: &Shards) {
        let now = Instant::now();
        if now < self.next_refresh {
            return;
        }
        self.next_refresh = now + REFRESH_EVERY;
        let Some(r) = &mut self.resolver else { return };
        let changes = match r.refresh() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(app = %self.name, error = %e, "refreshing backend neighbours");
                return;
            }
        };
        let mut services = Vec::new();
        for c in changes {
            tracing::info!(app = %self.name, backend = %c.ip, change = ?c.kind, "backend neighbour changed");
            let mac = match c.kind {
                NeighChangeKind::Resolved { mac } | NeighChangeKind::MacChanged { new: mac, .. } => Some(mac),
                NeighChangeKind::Unresolved { .. } => None,
            };
            for slot in 0..self.backends.len() {
                let b = &mut self.backends[slot];
                if b.addr.ip() == c.ip && !b.fixed_mac {
                    b.mac = mac;
                    services.push(b.service);
                    self.push_backend(shards, slot as u16);
                }
            }
        }
        services.sort_unstable();
        services.dedup();
        for si in services {
            if let Err(e) = self.push_table(shards, si) {
                tracing::warn!(app = %self.name, error = %e, "rebuilding a Maglev table");
            }
        }
    }

    fn command(&mut self, args: &[&str], shards: &Shards) -> Result<String, String> {
        match args {
            [] | ["help"] => Ok(
                "commands: services | backends | stats | backend add|drain|activate|remove SERVICE IP:PORT [weight N]"
                    .into(),
            ),
            ["services"] => Ok(self
                .services
                .iter()
                .map(|s| format!("{} backends={} table_size={}", s.name, s.slots.len(), s.table_size))
                .collect::<Vec<_>>()
                .join("\n")),
            ["backends"] => Ok(self.backends_text(shards)),
            ["stats"] => Ok(self.stats_text(shards)),
            ["backend", rest @ ..] => {
                let reply = self.backend_command(rest, shards)?;
                if !shards.barrier(QUERY_TIMEOUT) {
                    return Err(format!("{reply}, but not every shard confirmed it within {QUERY_TIMEOUT:?}"));
                }
                Ok(reply)
            }
            [other, ..] => Err(format!("unknown command '{other}' (help lists them)")),
        }
    }

    fn stop(&mut self) {
        if let Some(r) = self.resolver.take() {
            if let Err(e) = r.close() {
                tracing::warn!(app = %self.name, error = %e, "removing the managed neighbour entries");
            }
        }
    }
}
