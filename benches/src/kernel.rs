//! Kernel-side knobs and counters shared by the kernel trials ([`crate::crossgen`],
//! [`crate::kfwd`], [`crate::xdpceil`]).
//!
//! Owns:
//! * [`SysctlGuard`] / [`WmemRaised`]: root-namespace sysctls changed for a trial and put back on
//!   `Drop` (also when the trial fails or panics). [`WmemRaised`] additionally holds an exclusive
//!   lock file for as long as the values are raised, so two trials of this harness (threads or
//!   processes) never save each other's raised value as "the original".
//! * Reading the kernel's own per-interface counters inside a namespace ([`link_stats`],
//!   [`ethtool_stats`]) — the receiver-side numbers that the generator's claims are checked
//!   against — and the global softnet backlog drops ([`softnet_dropped`]).
//! * Placement: threaded NAPI with its kthreads pinned ([`threaded_napi`]) and RPS masks
//!   ([`set_rps`]) inside a namespace. Both live on interfaces of a namespace the trial created
//!   and go away with it, so they need no restoring.
//! * [`sample_while`]: runs a piece of work (a generator) on a scoped thread while the calling
//!   thread samples a counter every few milliseconds, giving a [`Trace`] from which per-second
//!   rates and the receiver's active window are derived.
//!
//! Guarantees: every command's exit status is checked and errors name the command, namespace
//! and interface; nothing here touches interfaces or namespaces the caller did not create.

use std::collections::BTreeMap;
use std::fs::File;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nic::netns::Netns;

/// Runs `ip netns exec NS argv...`, failing on a non-zero exit; returns stdout.
pub fn ns_exec(ns: &Netns, argv: &[&str]) -> Result<String> {
    let out = ns.exec(argv)?;
    if !out.status.success() {
        bail!(
            "netns {}: `{}` failed ({}): {}",
            ns.name(),
            argv.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Writes `value` to `path` (a /sys or /proc/sys file) as seen from inside `ns`
/// (`ip netns exec` mounts the namespace's own sysfs).
pub fn ns_write(ns: &Netns, path: &str, value: &str) -> Result<()> {
    ns_exec(ns, &["sh", "-c", &format!("echo {value} > {path}")]).map(|_| ())
}

/// A root-namespace sysctl set to a value for the guard's life and restored on drop, unless
/// someone else changed it meanwhile (then it is left alone and a warning is printed: restoring
/// would clobber their change).
#[derive(Debug)]
pub struct SysctlGuard {
    path: String,
    original: String,
    set: String,
}

impl SysctlGuard {
    /// Sets `key` (e.g. `net/core/wmem_default`) to `value`. The calling thread must be in the
    /// initial network namespace: the `net.core.wmem_*` sysctls are not per-namespace, and the
    /// kernel refuses the write (EPERM) from any other.
    pub fn set(key: &str, value: &str) -> Result<SysctlGuard> {
        let path = format!("/proc/sys/{key}");
        let original = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?.trim().to_string();
        std::fs::write(&path, value).with_context(|| format!("write {value} to {path}"))?;
        Ok(SysctlGuard { path, original, set: value.trim().to_string() })
    }

    /// The value found before the change.
    pub fn original(&self) -> &str {
        &self.original
    }
}

impl Drop for SysctlGuard {
    fn drop(&mut self) {
        let now = std::fs::read_to_string(&self.path).map(|s| s.trim().to_string()).unwrap_or_default();
        if now != self.set {
            eprintln!(
                "warning: {} is {now:?}, not the {:?} this trial set; leaving it (original was {:?})",
                self.path, self.set, self.original
            );
            return;
        }
        if let Err(e) = std::fs::write(&self.path, &self.original) {
            eprintln!("warning: could not restore {} to {}: {e}", self.path, self.original);
        }
    }
}

/// Socket send-buffer size trafgen needs when the receiver runs on another CPU (platform.md
/// §3): with the default, its TX_RING stalls after a few thousand frames.
pub const TRAFGEN_WMEM: u64 = 8_388_608;

const WMEM_LOCK: &str = "/run/lock/xskd-bench-wmem.lock";

/// `net.core.wmem_default` and `net.core.wmem_max` raised in the initial namespace (they are not
/// per-namespace), restored on drop; an exclusive lock on a lock file is held meanwhile.
///
/// The lock file doubles as a journal: while the values are raised it holds the originals, and a
/// clean drop empties it. If a holder died without restoring (SIGKILL), the next [`raise`] finds
/// the record, restores those originals first (where the value is still the raised one), and
/// says so on stderr.
///
/// [`raise`]: WmemRaised::raise
#[derive(Debug)]
pub struct WmemRaised {
    max: Option<SysctlGuard>,
    default: Option<SysctlGuard>,
    lock: File,
}

const WMEM_KEYS: [&str; 2] = ["net/core/wmem_default", "net/core/wmem_max"];

fn read_sysctl(key: &str) -> Result<String> {
    Ok(std::fs::read_to_string(format!("/proc/sys/{key}")).with_context(|| format!("read {key}"))?.trim().to_string())
}

/// Restores what a dead holder's journal says: lines `KEY ORIGINAL SET`.
fn recover_journal(text: &str) {
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        let [key, original, set] = w[..] else { continue };
        if !WMEM_KEYS.contains(&key) {
            continue;
        }
        match read_sysctl(key) {
            Ok(now) if now == set => {
                let r = std::fs::write(format!("/proc/sys/{key}"), original);
                eprintln!("note: {key} was left at {set} by a trial that died; restored {original}: {r:?}");
            }
            _ => {}
        }
    }
}

impl WmemRaised {
    /// Raises both to `bytes` (never lowers: a larger value in place is kept), waiting up to
    /// `wait` for another trial holding the lock.
    pub fn raise(bytes: u64, wait: Duration) -> Result<WmemRaised> {
        use std::io::{Read, Seek, Write};
        let mut lock = File::options()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(WMEM_LOCK)
            .with_context(|| format!("open {WMEM_LOCK}"))?;
        let t0 = Instant::now();
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if t0.elapsed() < wait => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(std::fs::TryLockError::WouldBlock) => bail!("{WMEM_LOCK}: still locked after {wait:?}"),
                Err(std::fs::TryLockError::Error(e)) => return Err(e).context(format!("lock {WMEM_LOCK}")),
            }
        }
        let mut journal = String::new();
        lock.read_to_string(&mut journal).with_context(|| format!("read {WMEM_LOCK}"))?;
        recover_journal(&journal);
        let mut guards = Vec::new();
        for key in WMEM_KEYS {
            let cur: u64 = read_sysctl(key)?.parse().with_context(|| format!("parse {key}"))?;
            guards.push(SysctlGuard::set(key, &cur.max(bytes).to_string())?);
        }
        let record: String =
            guards.iter().zip(WMEM_KEYS).map(|(g, k)| format!("{k} {} {}\n", g.original, g.set)).collect();
        lock.set_len(0)?;
        lock.rewind()?;
        lock.write_all(record.as_bytes())?;
        lock.sync_data()?;
        let max = guards.pop();
        let default = guards.pop();
        Ok(WmemRaised { max, default, lock })
    }
}

impl Drop for WmemRaised {
    fn drop(&mut self) {
        // Restore first, then clear the journal; the lock goes with the file afterwards.
        drop(self.max.take());
        drop(self.default.take());
        let _ = self.lock.set_len(0);
    }
}

/// The kernel's counters of one interface (`ip -s -j link show`, `stats64`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LinkStats {
    /// Received frames (on a veth: frames taken off its ring by NAPI, or handed over by the
    /// peer's `veth_xmit` when the receiver has no NAPI).
    pub rx_packets: u64,
    /// Received bytes (Ethernet frames without FCS; on a veth an skb can be a 64 KB GSO
    /// segment, counted once in `rx_packets`).
    pub rx_bytes: u64,
    /// Receive drops (on a veth: ring full, XDP errors).
    pub rx_dropped: u64,
    /// Transmitted frames.
    pub tx_packets: u64,
    /// Transmit drops.
    pub tx_dropped: u64,
}

impl LinkStats {
    /// Difference to an earlier reading.
    pub fn since(&self, e: &LinkStats) -> LinkStats {
        LinkStats {
            rx_packets: self.rx_packets.saturating_sub(e.rx_packets),
            rx_bytes: self.rx_bytes.saturating_sub(e.rx_bytes),
            rx_dropped: self.rx_dropped.saturating_sub(e.rx_dropped),
            tx_packets: self.tx_packets.saturating_sub(e.tx_packets),
            tx_dropped: self.tx_dropped.saturating_sub(e.tx_dropped),
        }
    }
}

/// Parses the output of `ip -s -j link show dev IF`.
pub fn parse_link_stats(json: &str) -> Result<LinkStats> {
    let v: serde_json::Value = serde_json::from_str(json).context("parse `ip -s -j link` output")?;
    let s = &v[0]["stats64"];
    let get = |dir: &str, k: &str| {
        s[dir][k].as_u64().with_context(|| format!("`ip -s -j link`: no stats64.{dir}.{k} in {json}"))
    };
    Ok(LinkStats {
        rx_packets: get("rx", "packets")?,
        rx_bytes: get("rx", "bytes")?,
        rx_dropped: get("rx", "dropped")?,
        tx_packets: get("tx", "packets")?,
        tx_dropped: get("tx", "dropped")?,
    })
}

/// Reads the kernel counters of `dev` in `ns`.
pub fn link_stats(ns: &Netns, dev: &str) -> Result<LinkStats> {
    let out = ns.ip(&["-s", "-j", "link", "show", "dev", dev])?;
    parse_link_stats(&out)
}

/// Parses `ethtool -S` output into name → value.
pub fn parse_ethtool_stats(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// `ethtool -S dev` in `ns` (veth: per-queue XDP packets, drops, xdp_xmit errors).
pub fn ethtool_stats(ns: &Netns, dev: &str) -> Result<BTreeMap<String, u64>> {
    Ok(parse_ethtool_stats(&ns_exec(ns, &["ethtool", "-S", dev])?))
}

/// `after - before` for every counter in `after` whose name contains `filter`.
pub fn stats_delta(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    filter: &str,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter(|(k, _)| k.contains(filter))
        .map(|(k, v)| (k.clone(), v.saturating_sub(before.get(k).copied().unwrap_or(0))))
        .collect()
}

/// Sum of the "dropped" column of /proc/net/softnet_stat over all CPUs (backlog queue full,
/// e.g. with RPS). System-wide, not per namespace.
pub fn softnet_dropped() -> u64 {
    std::fs::read_to_string("/proc/net/softnet_stat")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1).and_then(|x| u64::from_str_radix(x, 16).ok()))
        .sum()
}

fn napi_kthreads(dev: &str) -> Vec<u32> {
    let prefix = format!("napi/{dev}-");
    let Ok(rd) = std::fs::read_dir("/proc") else { return Vec::new() };
    rd.filter_map(|e| {
        let e = e.ok()?;
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
        comm.trim().starts_with(&prefix).then_some(pid)
    })
    .collect()
}

/// Switches `dev` in `ns` to threaded NAPI and pins its new `napi/DEV-*` kthread(s) to `cpu`.
/// NAPI must be enabled first (on a veth: an XDP program attached), otherwise the kernel
/// answers `I/O error`. Kthreads are told apart from same-named ones of other namespaces by
/// appearing only after the switch. Returns their pids.
pub fn threaded_napi(ns: &Netns, dev: &str, cpu: usize) -> Result<Vec<u32>> {
    let before = napi_kthreads(dev);
    ns_write(ns, &format!("/sys/class/net/{dev}/threaded"), "1")
        .with_context(|| format!("threaded NAPI on {dev} (is an XDP program attached?)"))?;
    let t0 = Instant::now();
    let mut mine = Vec::new();
    while t0.elapsed() < Duration::from_secs(2) {
        mine = napi_kthreads(dev).into_iter().filter(|p| !before.contains(p)).collect();
        if !mine.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if mine.is_empty() {
        bail!("netns {}: no new napi/{dev}-* kthread after enabling threaded NAPI", ns.name());
    }
    for p in &mine {
        let out = std::process::Command::new("taskset")
            .args(["-pc", &cpu.to_string(), &p.to_string()])
            .stdin(std::process::Stdio::null())
            .output()
            .context("running taskset")?;
        if !out.status.success() {
            bail!("taskset -pc {cpu} {p}: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
    }
    Ok(mine)
}

/// Steers `dev`'s receive processing (queue rx-0) to the CPUs of `mask` with RPS.
pub fn set_rps(ns: &Netns, dev: &str, mask: u64) -> Result<()> {
    ns_write(ns, &format!("/sys/class/net/{dev}/queues/rx-0/rps_cpus"), &format!("{mask:x}"))
}

/// A counter sampled over time: (seconds since the start, cumulative value).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Trace {
    /// Samples, first one taken before the work started.
    pub points: Vec<(f64, u64)>,
}

impl Trace {
    /// Increase from the first to the last sample.
    pub fn total(&self) -> u64 {
        match (self.points.first(), self.points.last()) {
            (Some(a), Some(b)) => b.1.saturating_sub(a.1),
            _ => 0,
        }
    }

    /// Rates over consecutive whole seconds (per second), measured between the samples nearest
    /// after each second boundary.
    pub fn per_second(&self) -> Vec<f64> {
        let mut out = Vec::new();
        let Some(&first) = self.points.first() else { return out };
        let mut prev = first;
        let mut k = 1.0;
        for &p in &self.points {
            if p.0 >= k {
                let dt = p.0 - prev.0;
                if dt > 0.0 {
                    out.push(p.1.saturating_sub(prev.1) as f64 / dt);
                }
                prev = p;
                k = p.0.floor() + 1.0;
            }
        }
        out
    }

    /// Time during which the counter moved: from the last sample still at the start value to the
    /// first sample at the final value (an upper bound, off by at most two sampling ticks).
    /// `None` if it never moved.
    pub fn active_window(&self) -> Option<f64> {
        let (first, last) = (self.points.first()?.1, self.points.last()?.1);
        if last == first {
            return None;
        }
        let a = self.points.iter().rposition(|p| p.1 == first)?;
        let b = self.points.iter().position(|p| p.1 == last)?;
        Some(self.points[b].0 - self.points[a].0)
    }

    /// Mean rate over [`Trace::active_window`] (0 if it never moved).
    pub fn active_rate(&self) -> f64 {
        self.active_window().map_or(0.0, |w| self.total() as f64 / w.max(1e-9))
    }
}

/// Runs `work` on a scoped thread while the calling thread reads `counter` every `tick`; after
/// `work` returns, keeps sampling for at least `tail` and until the counter stops moving (at most
/// 10 × `tail`), so frames still in flight are counted. Returns the work's result and the trace.
pub fn sample_while<T: Send>(
    tick: Duration,
    tail: Duration,
    mut counter: impl FnMut() -> Result<u64>,
    work: impl FnOnce() -> Result<T> + Send,
) -> Result<(T, Trace)> {
    std::thread::scope(|s| {
        let t0 = Instant::now();
        let mut points = vec![(0.0, counter()?)];
        let h = s.spawn(work);
        let mut done_at: Option<Instant> = None;
        loop {
            std::thread::sleep(tick);
            let v = counter()?;
            let moved = points.last().is_some_and(|p| p.1 != v);
            points.push((t0.elapsed().as_secs_f64(), v));
            if done_at.is_none() && h.is_finished() {
                done_at = Some(Instant::now());
            }
            if let Some(d) = done_at {
                let e = d.elapsed();
                if (e >= tail && !moved) || e >= tail * 10 {
                    break;
                }
            }
        }
        let r = h.join().map_err(|_| anyhow::anyhow!("generator thread panicked"))?;
        Ok((r?, Trace { points }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ip_and_ethtool_stats() {
        let j = r#"[{"ifindex":3,"ifname":"d0","stats64":{"rx":{"bytes":60,"packets":7,"errors":0,"dropped":2,
            "over_errors":0,"multicast":0},"tx":{"bytes":0,"packets":5,"errors":0,"dropped":1,"carrier_errors":0,
            "collisions":0}}}]"#;
        let s = parse_link_stats(j).unwrap();
        assert_eq!(s, LinkStats { rx_packets: 7, rx_bytes: 60, rx_dropped: 2, tx_packets: 5, tx_dropped: 1 });
        assert_eq!(s.since(&LinkStats { rx_packets: 3, ..s }).rx_packets, 4);
        assert!(parse_link_stats("[{}]").is_err());
        let e = "NIC statistics:\n     peer_ifindex: 2\n     rx_queue_0_xdp_packets: 10\n     tx_queue_0_xdp_xmit_errors: 3\n";
        let m = parse_ethtool_stats(e);
        assert_eq!(m.get("rx_queue_0_xdp_packets"), Some(&10));
        assert_eq!(m.len(), 3);
        let mut m2 = m.clone();
        m2.insert("tx_queue_0_xdp_xmit_errors".into(), 10);
        assert_eq!(stats_delta(&m, &m2, "errors").get("tx_queue_0_xdp_xmit_errors"), Some(&7));
    }

    #[test]
    fn trace_rates_and_window() {
        // 1000/s between t=0.5 and t=2.5, sampled every 0.25 s.
        let points: Vec<(f64, u64)> = (0..=14)
            .map(|i| {
                let t = i as f64 * 0.25;
                (t, ((t.clamp(0.5, 2.5) - 0.5) * 1000.0) as u64)
            })
            .collect();
        let tr = Trace { points };
        assert_eq!(tr.total(), 2000);
        assert_eq!(tr.active_window(), Some(2.0));
        assert_eq!(tr.active_rate(), 1000.0);
        assert_eq!(tr.per_second(), vec![500.0, 1000.0, 500.0]);
        assert_eq!(Trace::default().active_window(), None);
    }

    #[test]
    fn sample_while_waits_for_the_tail() {
        use std::sync::atomic::{AtomicU64, Ordering};
        let c = AtomicU64::new(0);
        let (r, tr) = sample_while(
            Duration::from_millis(5),
            Duration::from_millis(30),
            || Ok(c.load(Ordering::Relaxed)),
            || {
                for _ in 0..10 {
                    c.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(5));
                }
                Ok(7)
            },
        )
        .unwrap();
        assert_eq!(r, 7);
        assert_eq!(tr.total(), 10);
        assert!(tr.active_window().unwrap() > 0.0);
    }
}
