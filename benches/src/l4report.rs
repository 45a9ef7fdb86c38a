//! The L4 tier's Markdown: one table of every (measurement, system) with the conditions next to
//! each number, ratios computed per repetition (median and min–max over repetitions), the run's
//! conditions (load, tool versions, conntrack limit, IPVS availability) and the published
//! figures we cite but did not measure.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::l4::{L4Opts, L4Trial, Measure};
use crate::l4sys::L4System;
use crate::sample::Summary;

/// The run's conditions, written above the table and into the JSON.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct L4Meta {
    /// The command line.
    pub command: String,
    /// `/proc/loadavg` before and after.
    pub loadavg: (String, String),
    /// Busy share of each CPU over 1 s before the run (other work on the machine).
    pub idle_check: Vec<f64>,
    /// `nf_conntrack_max` (root namespace, global).
    pub conntrack_max: Option<u64>,
    /// Whether the kernel has IPVS, and how that was decided.
    pub ipvs: String,
    /// Versions of the peers (`nft --version`, `haproxy -v`, `iperf3 --version`, kernel).
    pub versions: BTreeMap<String, String>,
}

impl L4Meta {
    /// Whether other load makes the numbers preliminary: 1-minute load ≥ 1.0 when the run
    /// started, or a CPU more than 20 % busy in the idle check.
    pub fn busy(&self) -> bool {
        let la: f64 = self.loadavg.0.split_whitespace().next().and_then(|x| x.parse().ok()).unwrap_or(0.0);
        la >= 1.0 || self.idle_check.iter().any(|&b| b > 0.2)
    }
}

fn frame(m: Measure) -> &'static str {
    match m {
        Measure::Syn => "64 B TCP SYN (60 + FCS)",
        Measure::Udp(_) => "64 B UDP (60 + FCS)",
        Measure::Conn => "TCP, 32 B request / 64 B response",
        Measure::Bulk => "TCP bulk, MTU 1500",
    }
}

fn what(m: Measure) -> String {
    match m {
        Measure::Syn => "(a) new flows: SYNs forwarded".into(),
        Measure::Udp(n) => format!("(b) established UDP, {n} flows"),
        Measure::Conn => "(c) new TCP connections end to end".into(),
        Measure::Bulk => "(d) bulk TCP (iperf3, 1 stream)".into(),
    }
}

fn med(v: &[f64]) -> f64 {
    Summary::of(v).median
}

/// Median over repetitions of a number in `extra` (path of keys).
fn extra(ts: &[&L4Trial], path: &[&str]) -> f64 {
    let v: Vec<f64> =
        ts.iter().filter_map(|t| path.iter().try_fold(&t.extra, |v, k| v.get(*k)).and_then(Value::as_f64)).collect();
    if v.is_empty() {
        f64::NAN
    } else {
        med(&v)
    }
}

fn notes(m: Measure, ts: &[&L4Trial]) -> String {
    let offered: Vec<f64> = ts.iter().filter_map(|t| t.offered_pps).map(|p| p / 1e6).collect();
    let ct = |f: &dyn Fn(&crate::l4::Conntrack) -> f64| {
        let v: Vec<f64> = ts.iter().filter_map(|t| t.conntrack.as_ref()).map(f).collect();
        (!v.is_empty()).then(|| med(&v))
    };
    let mut n = Vec::new();
    if !offered.is_empty() {
        n.push(format!("offered {:.3} Mpps", med(&offered)));
    }
    match m {
        Measure::Syn => n.push(format!(
            "first second {:.3} M, last 3 s {:.3} M/s; 99 % of all new flows after {:.1} s (of the run's SYNs); {:.0} k new flows in all",
            extra(ts, &["first_second"]),
            extra(ts, &["last_3s"]),
            extra(ts, &["secs_to_99pct"]),
            extra(ts, &["received"]) / 1e3
        )),
        Measure::Udp(_) => {
            let w = extra(ts, &["conntrack_after_warm", "count"]);
            if w.is_finite() {
                n.push(format!("conntrack after warm-up {w:.0}"));
            }
        }
        Measure::Conn => n.push(format!(
            "errors {:.0} connect / {:.0} io; per backend {}",
            extra(ts, &["client", "connect_errors"]),
            extra(ts, &["client", "io_errors"]),
            per_backend(ts)
        )),
        Measure::Bulk => n.push(format!(
            "{:.0} k skb/s at b1 (avg {:.1} KB), = {:.0} k 1514-B frames/s; {:.0} retransmits",
            extra(ts, &["skbs_per_s"]) / 1e3,
            extra(ts, &["bytes_per_skb"]) / 1e3,
            extra(ts, &["mtu_frames_per_s"]) / 1e3,
            extra(ts, &["retransmits"])
        )),
    }
    if matches!(m, Measure::Syn | Measure::Udp(_)) {
        n.push(format!("per backend {}", per_backend(ts)));
    }
    if let Some(c) = ct(&|c| c.count as f64) {
        let s = |k: &'static str| ct(&move |c| c.stats.get(k).copied().unwrap_or(0) as f64).unwrap_or(0.0);
        n.push(format!(
            "conntrack at end {c:.0} (drop {:.0}, early_drop {:.0}, insert_failed {:.0})",
            s("drop"),
            s("early_drop"),
            s("insert_failed")
        ));
    }
    n.join("; ")
}

fn per_backend(ts: &[&L4Trial]) -> String {
    let Some(t) = ts.first() else { return String::new() };
    let total: u64 = t.per_backend.iter().sum();
    if total == 0 {
        return "–".into();
    }
    t.per_backend.iter().map(|&x| format!("{:.0}%", x as f64 * 100.0 / total as f64)).collect::<Vec<_>>().join("/")
}

/// Per-repetition ratios `a[r] / b[r]` over the repetitions both have.
fn ratios(a: &[&L4Trial], b: &[&L4Trial]) -> Option<Summary> {
    let v: Vec<f64> = a.iter().filter_map(|x| b.iter().find(|y| y.rep == x.rep).map(|y| x.value / y.value)).collect();
    (!v.is_empty()).then(|| Summary::of(&v))
}

fn fmt_ratio(s: Option<Summary>) -> String {
    s.map_or("–".into(), |s| s.fmt_ratio())
}

/// The generated section.
pub fn markdown(meta: &L4Meta, o: &L4Opts, systems: &[L4System], measures: &[Measure], trials: &[L4Trial]) -> String {
    let mut t = header(meta, o, trials);
    let with_xskd = systems.contains(&L4System::Xskd);
    t += "| measurement | frame | burst | cores | DUT sees | system | result | ÷ kernel fwd (per rep) |";
    t += if with_xskd { " xskd ÷ this |" } else { "" };
    t += " CPU busy gen / DUT | notes |\n|---|---|---|---|---|---|---|---|";
    t += if with_xskd { "---|" } else { "" };
    t += "---|---|\n";
    for &m in measures {
        let of = |s: L4System| -> Vec<&L4Trial> {
            trials.iter().filter(|x| x.system == s && x.measure == m.name()).collect()
        };
        for &s in systems.iter().filter(|s| m.applies(**s)) {
            let ts = of(s);
            if ts.is_empty() {
                continue;
            }
            let v: Vec<f64> = ts.iter().map(|x| x.value).collect();
            let busy =
                |c: usize| med(&ts.iter().filter_map(|x| x.cpu_busy.get(c)).copied().collect::<Vec<_>>()) * 100.0;
            let prec = if m == Measure::Conn || m == Measure::Bulk { 2 } else { 3 };
            t += &format!(
                "| {} | {} | {} | gen 0, DUT 1 | {} | {} | {} {} | {} |",
                what(m),
                frame(m),
                if matches!(m, Measure::Syn | Measure::Udp(_)) { "64 (generator)" } else { "–" },
                s.mode(),
                s.label(),
                Summary::of(&v).fmt(prec),
                m.unit(),
                if s == L4System::Kernel { "1.00×".into() } else { fmt_ratio(ratios(&ts, &of(L4System::Kernel))) }
            );
            if with_xskd {
                t += &format!(
                    " {} |",
                    if s == L4System::Xskd { "–".into() } else { fmt_ratio(ratios(&of(L4System::Xskd), &ts)) }
                );
            }
            let (gb, db) = (busy(o.gen_cpu), busy(o.dut_cpu));
            let took: Vec<f64> = ts.iter().filter_map(|x| x.offered_pps.map(|p| x.value * 1e6 / p)).collect();
            let bound = if !took.is_empty() && med(&took) >= TOOK_ALL {
                format!(" **tester-bound** ({:.0}% of the offered rate reached the backends);", med(&took) * 100.0)
            } else {
                String::new()
            };
            t += &format!(" {gb:.0}% / {db:.0}% |{bound} {} |\n", notes(m, &ts));
        }
        for &s in systems.iter().filter(|s| !m.applies(**s)) {
            t += &format!("| {} | {} | | | | {} | n/a: {} | | ", what(m), frame(m), s.label(), not_applicable(m));
            t += if with_xskd { "| " } else { "" };
            t += "| |\n";
        }
    }
    t += &footer(meta);
    t
}

/// A DUT that passed on at least this share of what the generator offered (median over
/// repetitions) kept up: the generator set the number, not the DUT. (CPU busy shares cannot
/// decide it: this kernel accounts CPU time by ticks, without IRQ time accounting, so softirq
/// work that a kernel DUT's core runs from idle is mostly invisible.)
pub const TOOK_ALL: f64 = 0.95;

fn not_applicable(m: Measure) -> &'static str {
    match m {
        Measure::Syn => "a proxy completes the handshake itself and forwards no SYN",
        _ => "`mode tcp` relays TCP only",
    }
}

fn header(meta: &L4Meta, o: &L4Opts, trials: &[L4Trial]) -> String {
    let reps = trials.iter().map(|t| t.rep).max().map_or(0, |r| r + 1);
    let mut t = String::new();
    if meta.busy() || trials.iter().any(|x| !x.other_load.quiet) {
        t += "**Preliminary: the machine was not quiet** (see the load below); the ratios measured in the \
              same repetition are the numbers to read.\n\n";
    }
    t += &format!(
        "Command: `{}`. Topology: client namespace [c0] ⇄ [d0] DUT [d1] ⇄ backend LAN (a Linux bridge in \
         its own namespace) ⇄ three backend namespaces; VIP 198.18.0.100 on d0, {snat} on d1, \
         backends 198.19.0.11–13, no static neighbours, {offload}. CPU {g}: generator (`xskd pktgen`, AF_XDP copy mode), \
         clients, servers, iperf3, the bridge and the harness; CPU {d}: the DUT (RPS of d0 and d1 for the \
         kernel peers, haproxy `nbthread 1` + `cpu-map` + `taskset`, xskd `taskset` with d0's and d1's NAPI as \
         kthreads pinned there and `idle = \"poll\"`). Each trial on a fresh topology (empty \
         conntrack); systems alternate in a different order every repetition; median (min–max) of {reps} \
         repetitions; ratios per repetition. (a) and (b) count frames at the backends with XDP sinks \
         (kernel counters, not the generator's claim); (a) runs {syn} s of SYNs from random sources of \
         198.18.128.0/17 and random ports (every SYN a new flow), and its rate is the first 99 % of all new flows \
         over the time they took: the rate while the DUT had room in its table and NAT port space (a DUT that fills \
         them is not graded on the seconds after; the notes say when it filled); (b) sends each flow once at {warm:.0} \
         frames/s first, then {secs} s flat out; (c) {threads} client threads, connect / write / read until \
         the server closes / close, the server closes first; (d) one iperf3 stream of {secs} s to b1 \
         (Gbit/s: steady median of iperf3's receiver; frames: b1's `ip -s link`). A row marked \
         **tester-bound** passed on at least {took:.0} % of what the generator offered (median over repetitions): \
         the generator, not the DUT, set that number. CPU busy shares come from tick-based accounting \
         (`CONFIG_TICK_CPU_ACCOUNTING`, no IRQ time accounting): softirq work that a kernel DUT's core runs \
         out of idle is mostly not counted (kernel forwarding at 0.7 Mpps read 5–40 % busy while \
         `/proc/net/softnet_stat` showed that core taking all 0.7 M packets/s), so a low DUT share for \
         the kernel peers does not mean an idle core; for haproxy and xskd (processes and NAPI kthreads) \
         the shares are sound. They include whatever else ran on the machine.\n\n",
        meta.command,
        offload = if o.tx_offload {
            "TX checksum offload ON on the client's and the backends' interfaces (`--tx-offload`: kernel peers only; \
             veth carries 64 KB TSO segments)"
        } else {
            "TX checksum offload off on the client's and the backends' interfaces (frames through an AF_XDP DUT need \
             full checksums; so no TSO: the client's bulk TCP reaches every DUT as MTU-sized frames)"
        },
        snat = if o.snat_addrs == 1 {
            "SNAT address 198.19.0.2 (d1's own)".to_string()
        } else {
            format!("{} SNAT addresses from 198.19.0.2", o.snat_addrs)
        },
        syn = o.syn_secs,
        took = TOOK_ALL * 100.0,
        warm = o.warm_pps,
        secs = o.secs,
        threads = o.client_threads,
        g = o.gen_cpu,
        d = o.dut_cpu,
    );
    let pre: Vec<f64> = trials.iter().map(|x| x.other_load.busy.iter().sum::<f64>()).collect();
    let loud = trials.iter().filter(|x| !x.other_load.quiet).count();
    t += &format!(
        "Other work on the machine before each trial (1-s sample, cores busy summed over CPUs; a trial waits up to \
         {:.0} s for it to fall below {:.2}): median {:.2}, max {:.2}; {loud} of {} trials ran without it falling below. ",
        o.quiet_wait.as_secs_f64(),
        o.quiet_below,
        if pre.is_empty() { f64::NAN } else { med(&pre) },
        pre.iter().copied().fold(f64::NAN, f64::max),
        trials.len()
    );
    t += &format!(
        "Load: 1-minute loadavg {} at the start, {} at the end; CPU busy in a 1-s check before the run: {}. \
         `nf_conntrack_max` = {}. Versions: {}.\n\n",
        meta.loadavg.0.split_whitespace().next().unwrap_or("?"),
        meta.loadavg.1.split_whitespace().next().unwrap_or("?"),
        meta.idle_check.iter().map(|b| format!("{:.0}%", b * 100.0)).collect::<Vec<_>>().join(" / "),
        meta.conntrack_max.map_or("?".into(), |m| m.to_string()),
        meta.versions.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
    );
    t
}

fn footer(meta: &L4Meta) -> String {
    format!(
        "\n**IPVS**: {}.\n\n\
         **Published, not measured here** (anchors.md A8; the XDP paper, CoNEXT 2018, Table \"load-balancer\": \
         Xeon E5-1650 v4 3.6 GHz, ConnectX-5 100G, Linux 4.18, TRex): Katran 5.2 Mpps on 1 core (29.3 Mpps on 6), \
         IPVS 1.2 Mpps on 1 core (7.3 on 6). Hardware NIC, kernel XDP, no veth: an order-of-magnitude reference, \
         not a peer in this run.\n",
        meta.ipvs
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(system: L4System, measure: &str, rep: usize, value: f64) -> L4Trial {
        L4Trial {
            system,
            measure: measure.into(),
            rep,
            value,
            unit: "Mpps".into(),
            samples: vec![],
            offered_pps: Some(1e6),
            per_backend: vec![1, 1, 2],
            conntrack: None,
            cpu_busy: vec![0.5, 1.0],
            other_load: crate::l4::OtherLoad { busy: vec![0.1, 0.0], waited_s: 0.0, quiet: true },
            extra: json!({ "first_second": 0.2, "last_3s": 0.1 }),
        }
    }

    #[test]
    fn ratios_are_per_repetition() {
        let k = [t(L4System::Kernel, "syn", 0, 1.0), t(L4System::Kernel, "syn", 1, 2.0)];
        let n = [t(L4System::Nftables, "syn", 0, 0.5), t(L4System::Nftables, "syn", 1, 0.5)];
        let r = ratios(&n.iter().collect::<Vec<_>>(), &k.iter().collect::<Vec<_>>()).unwrap();
        // 0.5/1.0 and 0.5/2.0, not the ratio of medians.
        assert_eq!((r.min, r.max, r.median), (0.25, 0.5, 0.375));
        let meta = L4Meta {
            command: "e2e l4".into(),
            loadavg: ("1.50 1 1".into(), "0.2".into()),
            idle_check: vec![0.0, 0.0],
            conntrack_max: Some(262144),
            ipvs: "absent".into(),
            versions: BTreeMap::new(),
        };
        assert!(meta.busy());
        let o = L4Opts {
            xskd: "x".into(),
            dir: "d".into(),
            secs: 8,
            syn_secs: 10,
            gen_cpu: 0,
            dut_cpu: 1,
            burst: 64,
            warm_pps: 1e5,
            client_threads: 16,
            quiet_below: 0.3,
            quiet_wait: std::time::Duration::from_secs(1),
            snat_addrs: 1,
            tx_offload: false,
        };
        let all: Vec<L4Trial> = k.into_iter().chain(n).collect();
        let md = markdown(&meta, &o, &[L4System::Kernel, L4System::Nftables, L4System::Haproxy], &[Measure::Syn], &all);
        assert!(md.starts_with("**Preliminary"));
        assert!(md.contains("| 0.375× (0.250–0.500) |") || md.contains("0.38× (0.25–0.50)"), "{md}");
        assert!(md.contains("haproxy mode tcp | n/a"), "{md}");
        assert!(md.contains("per backend 25%/25%/50%"), "{md}");
        assert!(md.contains("Katran 5.2 Mpps"));
    }
}
