//! Human and JSON reports of a run: the start banner, the once-per-interval line per lcore, the
//! final summary, and the JSON document (`xskd run --json FILE`).
//!
//! Every number is printed with what it depends on (burst, frame counts, bind and XDP modes,
//! UMEM backing), so a line copied into a bug report or BENCHMARKS.md stands on its own.

use std::fmt::Write as _;
use std::time::Duration;

use engine::stats::{bucket_label, stall_label, BURST_BUCKETS, STALL_BUCKETS};
use engine::{LcoreSnapshot, Rates};
use nic::Umem;
use serde_json::{json, Value};

use crate::daemon::{PortReport, RunReport};

/// First lines of a run: UMEM and ports.
pub fn banner(plan: &crate::registry::Plan, umem: &Umem, ports: &[PortReport]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "xskd: umem {} frames x {} B on {}, burst {}, {} lcore(s)",
        umem.frame_count(),
        umem.frame_size(),
        umem.backing(),
        plan.engine.burst,
        plan.lcores.len()
    );
    for p in ports {
        let _ = write!(s, "xskd: port {}", p.name);
        if let Some(i) = &p.iface {
            let _ = write!(s, " ({i})");
        }
        let _ = write!(s, " bind={}", p.bind_mode);
        if let Some(m) = p.xdp_mode {
            let _ = write!(s, " xdp={m}");
        }
        s.push('\n');
    }
    for l in &plan.lcores {
        let qs: Vec<String> = l
            .queues
            .iter()
            .map(|q| format!("{}:{}={}", plan.ports[q.port].name, q.queue, plan.apps[q.app].name))
            .collect();
        let _ = writeln!(s, "xskd: lcore{} on cpu {}: {}", l.cpu, l.cpu, qs.join(" "));
    }
    s.truncate(s.trim_end().len());
    s
}

fn drops_text(prev: &LcoreSnapshot, cur: &LcoreSnapshot) -> String {
    let parts: Vec<String> = engine::DropReason::ALL
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let d = cur.counters.drops.0[i].saturating_sub(prev.counters.drops.0[i]);
            (d > 0).then(|| format!("{}={d}", r.name()))
        })
        .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(",")
    }
}

/// One line for one lcore over one interval.
pub fn line(at: Duration, prev: &LcoreSnapshot, cur: &LcoreSnapshot) -> String {
    let r = Rates::between(prev, cur);
    format!(
        "[{:7.1}s] {:<8} rx {:7.3} Mpps  tx {:7.3} Mpps  empty-polls {:5.1}%  drops {}",
        at.as_secs_f64(),
        cur.name,
        r.rx_pps / 1e6,
        r.tx_pps / 1e6,
        r.empty_poll_ratio * 100.0,
        drops_text(prev, cur)
    )
}

/// The final summary.
pub fn summary(r: &RunReport) -> String {
    let mut s = String::new();
    let secs = r.elapsed.as_secs_f64().max(1e-9);
    let _ = writeln!(
        s,
        "== xskd summary: {:.2} s, burst {}, umem {} x {} B on {} ==",
        secs, r.burst, r.umem.frame_count, r.umem.frame_size, r.umem_backing
    );
    let _ = writeln!(s, "{}", pool_line(r));
    let _ = writeln!(s, "{}", resources_line(r));
    for p in &r.ports {
        let _ = write!(s, "port {}", p.name);
        if let Some(i) = &p.iface {
            let _ = write!(s, " ({i})");
        }
        let _ = write!(s, ": bind {}", p.bind_mode);
        if let Some(m) = p.xdp_mode {
            let _ = write!(s, ", xdp {m}");
        }
        if let Some(x) = &p.xdp_stats {
            let _ = write!(
                s,
                ", xdp prog: redirected {} passed-unclaimed {} passed-no-socket {} short {}",
                x.redirected, x.passed_unclaimed, x.passed_no_socket, x.parse_short
            );
        }
        s.push('\n');
    }
    for l in &r.lcores {
        let t = l.port_totals();
        let c = &l.counters;
        let _ = writeln!(
            s,
            "{} (cpu {}): rx {} ({:.3} Mpps) tx {} ({:.3} Mpps) drops {} kicks/pkt {:.4} empty-polls {:.1}% iterations {}",
            l.name,
            l.cpu.map_or("-".into(), |c| c.to_string()),
            t.rx_packets,
            t.rx_packets as f64 / secs / 1e6,
            t.tx_packets,
            t.tx_packets as f64 / secs / 1e6,
            {
                let d: Vec<String> = c.drops.nonzero().map(|(n, v)| format!("{n}={v}")).collect();
                if d.is_empty() {
                    "none".to_string()
                } else {
                    d.join(",")
                }
            },
            if t.tx_packets > 0 { t.tx_kicks as f64 / t.tx_packets as f64 } else { 0.0 },
            if c.burst_hist.iter().sum::<u64>() > 0 { c.empty_polls as f64 * 100.0 / c.burst_hist.iter().sum::<u64>() as f64 } else { 0.0 },
            c.iterations
        );
        let total: u64 = c.burst_hist.iter().sum();
        if total > 0 {
            let h: Vec<String> = (0..BURST_BUCKETS)
                .filter(|&b| c.burst_hist[b] > 0)
                .map(|b| format!("{}:{:.1}%", bucket_label(b), c.burst_hist[b] as f64 * 100.0 / total as f64))
                .collect();
            let _ = writeln!(s, "  rx burst sizes: {}", h.join(" "));
        }
        if c.max_gap_ns > 0 {
            let h: Vec<String> = (0..STALL_BUCKETS).map(|b| format!("{}:{}", stall_label(b), c.stalls[b])).collect();
            let _ = writeln!(s, "  loop stalls: {} max {:.1} us", h.join(" "), c.max_gap_ns as f64 / 1e3);
        }
        for q in &l.queues {
            let p = &q.port;
            let _ = write!(
                s,
                "  {} [{}]: rx {} tx {} tx-kicks {} (busy {}, err {}) rx-wakeups {} fill-short {}",
                q.name,
                q.app,
                p.rx_packets,
                p.tx_packets,
                p.tx_kicks,
                p.tx_kicks_busy,
                p.tx_kick_errors,
                p.rx_wakeups,
                p.fill_short
            );
            if let Some(x) = &q.xdp {
                let _ = write!(
                    s,
                    " | kernel: rx_dropped {} rx_ring_full {} fill_empty {} tx_invalid {}",
                    x.rx_dropped, x.rx_ring_full, x.rx_fill_ring_empty_descs, x.tx_invalid_descs
                );
            }
            s.push('\n');
        }
        for a in &l.apps {
            let _ = write!(s, "  app {}:", a.name);
            for (k, v) in &a.counters {
                let _ = write!(s, " {k}={v}");
            }
            s.push('\n');
        }
    }
    s.truncate(s.trim_end().len());
    s
}

fn pool_line(r: &RunReport) -> String {
    let p = &r.pool;
    let c = &p.reclaimed;
    let mut s = format!(
        "umem: {} of {} frames back in the pool after stop (taken back from rings: rx {} fill {} completions {} tx {}; \
         from handoff rings between lcores: {}; kept by the kernel: {})",
        p.free_after_stop, p.frames, c.rx, c.fill, c.completions, c.tx_unsent, p.handoff_leftovers, c.kept_by_kernel
    );
    match p.missing() {
        0 => {}
        m if m > 0 => s.push_str(&format!(" -- {m} MISSING")),
        m => s.push_str(&format!(" -- {} TOO MANY (double free)", -m)),
    }
    if let Some(e) = &p.free_list_error {
        s.push_str(&format!(" -- FREE LIST: {e}"));
    }
    s
}

fn resources_line(r: &RunReport) -> String {
    let o = |v: Option<u64>| v.map_or("?".to_string(), |v| v.to_string());
    let x = &r.resources;
    format!(
        "process: open fds {} before, {} after; hugetlb {} KiB mapped, {} KiB after unmap",
        o(x.fds_before.map(|v| v as u64)),
        o(x.fds_after.map(|v| v as u64)),
        o(x.hugetlb_kib_mapped),
        o(x.hugetlb_kib_after)
    )
}

/// The run as JSON (stable keys; raw counters plus derived rates).
pub fn json(r: &RunReport) -> Value {
    let secs = r.elapsed.as_secs_f64().max(1e-9);
    json!({
        "elapsed_s": r.elapsed.as_secs_f64(),
        "burst": r.burst,
        "umem": {
            "frames": r.umem.frame_count, "frame_size": r.umem.frame_size, "backing": r.umem_backing.to_string(),
            "free_after_stop": r.pool.free_after_stop,
            "handoff_leftovers": r.pool.handoff_leftovers,
            "reclaimed": {
                "rx": r.pool.reclaimed.rx, "fill": r.pool.reclaimed.fill,
                "completions": r.pool.reclaimed.completions, "tx": r.pool.reclaimed.tx_unsent,
                "kept_by_kernel": r.pool.reclaimed.kept_by_kernel,
            },
            "free_list_error": r.pool.free_list_error,
        },
        "resources": {
            "fds_before": r.resources.fds_before, "fds_after": r.resources.fds_after,
            "hugetlb_kib_mapped": r.resources.hugetlb_kib_mapped, "hugetlb_kib_after": r.resources.hugetlb_kib_after,
        },
        "ports": r.ports.iter().map(|p| json!({
            "name": p.name,
            "iface": p.iface,
            "bind_mode": p.bind_mode,
            "xdp_mode": p.xdp_mode.map(|m| m.to_string()),
            "xdp_prog": p.xdp_stats.map(|x| json!({
                "redirected": x.redirected, "passed_unclaimed": x.passed_unclaimed,
                "passed_no_socket": x.passed_no_socket, "parse_short": x.parse_short })),
            "sockets": p.sockets.iter().map(|k| json!({
                "queue": k.queue,
                "busy_poll": k.busy_poll.map(|b| json!({ "prefer": b.prefer, "usecs": b.usecs, "budget": b.budget })),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "lcores": r.lcores.iter().map(|l| {
            let t = l.port_totals();
            let c = &l.counters;
            json!({
                "name": l.name,
                "cpu": l.cpu,
                "rx_packets": t.rx_packets, "tx_packets": t.tx_packets,
                "rx_bytes": t.rx_bytes, "tx_bytes": t.tx_bytes,
                "rx_mpps": t.rx_packets as f64 / secs / 1e6,
                "tx_mpps": t.tx_packets as f64 / secs / 1e6,
                "tx_kicks": t.tx_kicks, "tx_kicks_busy": t.tx_kicks_busy, "tx_kick_errors": t.tx_kick_errors,
                "rx_wakeups": t.rx_wakeups,
                "iterations": c.iterations, "idle_iterations": c.idle_iterations, "empty_polls": c.empty_polls,
                "sleeps": c.sleeps, "handoff_in": c.handoff_in, "handoff_out": c.handoff_out,
                "drops": c.drops.nonzero().map(|(n, v)| (n.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
                "burst_hist": (0..BURST_BUCKETS).map(|b| (bucket_label(b), json!(c.burst_hist[b]))).collect::<serde_json::Map<_, _>>(),
                "loop_stalls": (0..STALL_BUCKETS).map(|b| (stall_label(b), json!(c.stalls[b]))).collect::<serde_json::Map<_, _>>(),
                "max_loop_gap_ns": c.max_gap_ns,
                "queues": l.queues.iter().map(|q| json!({
                    "name": q.name, "app": q.app,
                    "rx_packets": q.port.rx_packets, "tx_packets": q.port.tx_packets,
                    "tx_kicks": q.port.tx_kicks, "fill_short": q.port.fill_short,
                    "kernel": q.xdp.map(|x| json!({
                        "rx_dropped": x.rx_dropped, "rx_invalid_descs": x.rx_invalid_descs,
                        "tx_invalid_descs": x.tx_invalid_descs, "rx_ring_full": x.rx_ring_full,
                        "rx_fill_ring_empty_descs": x.rx_fill_ring_empty_descs,
                        "tx_ring_empty_descs": x.tx_ring_empty_descs })),
                })).collect::<Vec<_>>(),
                "apps": l.apps.iter().map(|a| json!({
                    "name": a.name,
                    "counters": a.counters.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
                })).collect::<Vec<_>>(),
            })
        }).collect::<Vec<_>>(),
    })
}
