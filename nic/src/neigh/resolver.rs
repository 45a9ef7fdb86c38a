//! [`Resolver`]: the daemon's guard over the neighbour entries of its backends. It ensures a
//! managed entry for each (interface, address), waits for them to resolve, re-reads them on
//! [`Resolver::refresh`] and reports what changed, recreates entries the kernel flushed, and
//! removes the entries it created when it is closed or dropped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::{Created, NeighEntry, NeighError, Neighbours, NudState, Removed};

/// How often [`Resolver::wait`] re-reads the table.
const WAIT_POLL: Duration = Duration::from_millis(10);

/// A target with its MAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// Interface index.
    pub ifindex: u32,
    /// Neighbour address.
    pub ip: IpAddr,
    /// Its MAC.
    pub mac: [u8; 6],
}

/// A target without a usable MAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unresolved {
    /// Interface index.
    pub ifindex: u32,
    /// Neighbour address.
    pub ip: IpAddr,
    /// The kernel's state of the entry (INCOMPLETE, FAILED, …); `None`: there was no entry
    /// at the last read (it has been recreated since).
    pub state: Option<NudState>,
}

/// Every target, resolved or not, in the order given to [`Resolver::new`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolution {
    /// Targets with a usable MAC.
    pub resolved: Vec<Resolved>,
    /// Targets without one.
    pub unresolved: Vec<Unresolved>,
}

/// What changed for one target between two reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NeighChangeKind {
    /// It had no usable MAC and now has one.
    Resolved {
        /// The MAC.
        mac: [u8; 6],
    },
    /// The MAC changed.
    MacChanged {
        /// Before.
        old: [u8; 6],
        /// Now.
        new: [u8; 6],
    },
    /// It had a MAC and has none now: stop sending to `old`.
    Unresolved {
        /// The MAC it had.
        old: [u8; 6],
        /// The kernel's state now; `None`: the entry was gone (and has been recreated).
        state: Option<NudState>,
    },
}

/// A change of one target, as [`Resolver::refresh`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighChange {
    /// Interface index.
    pub ifindex: u32,
    /// Neighbour address.
    pub ip: IpAddr,
    /// What changed.
    pub kind: NeighChangeKind,
}

/// The change from `old` to `new` usable MAC, if any.
fn diff(old: Option<[u8; 6]>, new: Option<[u8; 6]>, state: Option<NudState>) -> Option<NeighChangeKind> {
    match (old, new) {
        (None, Some(mac)) => Some(NeighChangeKind::Resolved { mac }),
        (Some(old), Some(new)) if old != new => Some(NeighChangeKind::MacChanged { old, new }),
        (Some(old), None) => Some(NeighChangeKind::Unresolved { old, state }),
        _ => None,
    }
}

#[derive(Debug)]
struct Target {
    ifindex: u32,
    ip: IpAddr,
    /// Whether the entry is xskd's to remove.
    ours: bool,
    mac: Option<[u8; 6]>,
    state: Option<NudState>,
}

/// Managed neighbour entries for a fixed list of targets, removed again on [`Resolver::close`]
/// or drop. Everything happens on the calling (control) thread.
#[derive(Debug)]
pub struct Resolver {
    nb: Neighbours,
    targets: Vec<Target>,
}

impl Resolver {
    /// Opens a socket in the calling thread's network namespace and ensures an entry for each
    /// (ifindex, address); duplicates count once. If one fails, the entries already created are
    /// removed before the error is returned.
    pub fn new(targets: &[(u32, IpAddr)]) -> Result<Resolver, NeighError> {
        let mut r = Resolver { nb: Neighbours::open()?, targets: Vec::with_capacity(targets.len()) };
        for &(ifindex, ip) in targets {
            if r.targets.iter().any(|t| t.ifindex == ifindex && t.ip == ip) {
                continue;
            }
            let created = r.nb.ensure_managed(ifindex, ip)?;
            if let Created::Existing(e) = &created {
                tracing::info!(ifindex, %ip, state = %e.state, managed = e.managed, "neighbour entry exists, left as it is");
            }
            r.targets.push(Target { ifindex, ip, ours: created.is_ours(), mac: None, state: None });
        }
        Ok(r)
    }

    /// Adds a target to a running resolver (a backend added at run time); a target it already
    /// has counts once. Its MAC is known after the next [`refresh`](Self::refresh) or
    /// [`wait`](Self::wait).
    pub fn add(&mut self, ifindex: u32, ip: IpAddr) -> Result<(), NeighError> {
        if self.targets.iter().any(|t| t.ifindex == ifindex && t.ip == ip) {
            return Ok(());
        }
        let created = self.nb.ensure_managed(ifindex, ip)?;
        self.targets.push(Target { ifindex, ip, ours: created.is_ours(), mac: None, state: None });
        Ok(())
    }

    /// Re-reads the table until every target has a usable MAC or `timeout` has passed (polling
    /// every 10 ms), and returns where each target stands.
    pub fn wait(&mut self, timeout: Duration) -> Result<Resolution, NeighError> {
        let start = Instant::now();
        loop {
            self.refresh()?;
            let elapsed = start.elapsed();
            if self.targets.iter().all(|t| t.mac.is_some()) || elapsed >= timeout {
                return Ok(self.resolution());
            }
            std::thread::sleep(WAIT_POLL.min(timeout - elapsed));
        }
    }

    /// Re-reads the entries (one dump per interface) and returns the changes since the last
    /// read. An entry that has disappeared (carrier loss and link down flush them) is created
    /// again as a managed one. Nothing is changed if a dump fails.
    pub fn refresh(&mut self) -> Result<Vec<NeighChange>, NeighError> {
        let mut tables: HashMap<u32, HashMap<IpAddr, NeighEntry>> = HashMap::new();
        for t in &self.targets {
            if let std::collections::hash_map::Entry::Vacant(slot) = tables.entry(t.ifindex) {
                slot.insert(self.nb.dump(t.ifindex)?.into_iter().map(|e| (e.ip, e)).collect());
            }
        }
        let mut changes = Vec::new();
        for t in &mut self.targets {
            let (mac, state) = match tables.get(&t.ifindex).and_then(|tbl| tbl.get(&t.ip)) {
                Some(e) => (e.usable_mac(), Some(e.state)),
                None => {
                    recreate(&mut self.nb, t);
                    (None, None)
                }
            };
            if let Some(kind) = diff(t.mac, mac, state) {
                changes.push(NeighChange { ifindex: t.ifindex, ip: t.ip, kind });
            }
            t.mac = mac;
            t.state = state;
        }
        Ok(changes)
    }

    /// Where each target stood at the last read.
    pub fn resolution(&self) -> Resolution {
        let mut r = Resolution::default();
        for t in &self.targets {
            match t.mac {
                Some(mac) => r.resolved.push(Resolved { ifindex: t.ifindex, ip: t.ip, mac }),
                None => r.unresolved.push(Unresolved { ifindex: t.ifindex, ip: t.ip, state: t.state }),
            }
        }
        r
    }

    /// The MAC of a target at the last read.
    pub fn mac(&self, ifindex: u32, ip: IpAddr) -> Option<[u8; 6]> {
        self.targets.iter().find(|t| t.ifindex == ifindex && t.ip == ip).and_then(|t| t.mac)
    }

    /// The underlying table access (same socket, same namespace).
    pub fn neighbours(&mut self) -> &mut Neighbours {
        &mut self.nb
    }

    /// Removes the entries this resolver created (or adopted) and are still xskd's; returns the
    /// first error after trying them all. Drop does the same, logging errors instead.
    pub fn close(mut self) -> Result<(), NeighError> {
        self.remove_ours()
    }

    fn remove_ours(&mut self) -> Result<(), NeighError> {
        let mut first_err = None;
        for t in self.targets.iter_mut().filter(|t| t.ours) {
            t.ours = false;
            match self.nb.remove_managed(t.ifindex, t.ip) {
                Ok(Removed::Deleted | Removed::Absent) => {}
                Ok(Removed::NotOurs(e)) => {
                    tracing::info!(ifindex = t.ifindex, ip = %t.ip, state = %e.state, "neighbour entry replaced by someone else, left as it is");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not remove a managed neighbour entry");
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

/// Creates the entry of `t` again after the kernel flushed it; failures are logged and the
/// target stays unresolved until a later refresh succeeds.
fn recreate(nb: &mut Neighbours, t: &mut Target) {
    match nb.ensure_managed(t.ifindex, t.ip) {
        Ok(created) => {
            t.ours |= created.is_ours();
            tracing::info!(ifindex = t.ifindex, ip = %t.ip, "neighbour entry was gone, created again");
        }
        Err(e) => tracing::warn!(error = %e, "could not recreate a neighbour entry"),
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        // Errors are logged by remove_ours.
        let _ = self.remove_ours();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
    const B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];

    #[test]
    fn diff_reports_each_kind_of_change_once() {
        assert_eq!(diff(None, Some(A), Some(NudState::Reachable)), Some(NeighChangeKind::Resolved { mac: A }));
        assert_eq!(diff(Some(A), Some(B), Some(NudState::Stale)), Some(NeighChangeKind::MacChanged { old: A, new: B }));
        assert_eq!(
            diff(Some(A), None, Some(NudState::Failed)),
            Some(NeighChangeKind::Unresolved { old: A, state: Some(NudState::Failed) })
        );
        assert_eq!(diff(Some(A), None, None), Some(NeighChangeKind::Unresolved { old: A, state: None }));
        assert_eq!(diff(Some(A), Some(A), Some(NudState::Delay)), None, "a state change alone is no MAC change");
        assert_eq!(diff(None, None, Some(NudState::Incomplete)), None);
    }
}
