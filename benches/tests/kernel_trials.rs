//! Root tests of the kernel trials: one short run (≈1–3 s of traffic) of each trial of
//! `crossgen`, `kfwd` and `xdpceil`, checking that the numbers are sane and that independent
//! counters agree. Every trial builds its own namespaces (unique names, 198.18.0.0/15) and
//! removes them on drop; the trials run one at a time (a lock), since they would otherwise
//! compete for the same two cores. Results are printed as JSON on stderr (`--nocapture`).
//! Without root each test is skipped, and the trafgen runs are skipped when trafgen is not
//! installed, through `nic::testenv` (both fail under `XSKD_REQUIRE_ROOT=1`).

use std::sync::Mutex;
use std::time::Duration;

use benches::crossgen::{self, Amount, CrossOpts, GenKind, GenSpec, MAX_REL_DIFF};
use benches::kfwd::{self, KfwdOpts};
use benches::run::cpus;
use benches::xdpceil::{self, CeilOpts, Ceiling};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Whether the trafgen runs of `test` can run (skipped, or failed under `XSKD_REQUIRE_ROOT=1`,
/// without trafgen).
fn trafgen(test: &str) -> bool {
    nic::testenv::require_tool(test, "trafgen")
}

/// The second core for receive/forward work, when there is one.
fn other_cpu() -> Option<usize> {
    (cpus() >= 2).then_some(1)
}

fn show<T: serde::Serialize>(what: &str, t: &T) {
    eprintln!("{what}: {}", serde_json::to_string(t).unwrap());
}

#[test]
fn crossgen_generators_agree_with_the_receivers_kernel_counters() {
    nic::require_root!();
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut runs = vec![
        (GenKind::Sendmmsg, 60, Amount::Count(600_000)),
        (GenKind::Sendmmsg, 1514, Amount::Count(600_000)),
        (GenKind::Sendmmsg, 60, Amount::For(Duration::from_secs(2))),
    ];
    if trafgen(nic::fn_path!()) {
        runs.splice(
            0..0,
            [(GenKind::Trafgen, 60, Amount::Count(1_000_000)), (GenKind::Trafgen, 1514, Amount::Count(1_000_000))],
        );
    }
    for (kind, len, amount) in runs {
        let o = CrossOpts { gen: GenSpec { kind, len, amount, cpu: 0 }, rx_cpu: other_cpu() };
        let t = crossgen::trial(&o).unwrap_or_else(|e| panic!("{kind:?} {len} B: {e:#}"));
        show(&format!("crossgen {} {len} B {amount:?}", kind.label()), &t);
        eprintln!(
            "  => {} {len} B: {:.3} Mpps at the receiver; claimed {} kernel rx {} sink {}; claimed vs kernel {:.5}%",
            kind.label(),
            t.pps / 1e6,
            t.gen.claimed,
            t.kernel_rx.rx_packets,
            t.sink_rx,
            t.claimed_vs_kernel * 100.0
        );
        t.check().unwrap_or_else(|e| panic!("{e:#}"));
        if let Amount::Count(n) = amount {
            assert_eq!(t.gen.claimed, n);
        }
        assert!(t.claimed_vs_kernel <= MAX_REL_DIFF);
        assert!(t.pps > 10_000.0 && t.pps < 20e6, "rate {}", t.pps);
        assert!(t.window_s > 0.0);
    }
}

#[test]
fn kernel_forwarding_reaches_the_sink() {
    nic::require_root!();
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut gens = vec![GenKind::Sendmmsg];
    if trafgen(nic::fn_path!()) {
        gens.insert(0, GenKind::Trafgen);
    }
    for gen in gens {
        let o = KfwdOpts { gen, len: 60, secs: 3, gen_cpu: 0, fwd_cpu: other_cpu() };
        let t = kfwd::trial(&o).unwrap_or_else(|e| panic!("kfwd {gen:?}: {e:#}"));
        show(&format!("kfwd {}", gen.label()), &t);
        eprintln!(
            "  => kernel forwarding, {} 60 B: {:.3} Mpps forwarded, loss {:.2}% (claimed {}, sink {})",
            gen.label(),
            t.fwd_mpps,
            t.loss * 100.0,
            t.gen.claimed,
            t.received
        );
        assert!(t.received > 0 && t.fwd_mpps > 0.0);
        assert!(t.received <= t.gen.claimed, "more forwarded than sent");
        assert!((0.0..=1.0).contains(&t.loss));
        // The sink's count and s0's kernel count are independent counters of the same frames.
        assert!(
            crossgen::rel_diff(t.s0.rx_packets, t.received) <= MAX_REL_DIFF,
            "s0 {:?} vs sink {}",
            t.s0,
            t.received
        );
        // What d1 sent is what reached s0.
        assert!(crossgen::rel_diff(t.d1.tx_packets, t.s0.rx_packets) <= MAX_REL_DIFF, "d1 {:?} s0 {:?}", t.d1, t.s0);
    }
}

#[test]
fn xdp_forward_and_drop_ceilings() {
    nic::require_root!();
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut placements = vec![None];
    if let Some(c) = other_cpu() {
        placements.insert(0, Some(c));
    }
    for ceiling in [Ceiling::Forward, Ceiling::Drop] {
        for &napi_cpu in &placements {
            let o = CeilOpts { ceiling, len: 60, secs: 3, gen_cpu: 0, napi_cpu };
            let t = xdpceil::trial(&o).unwrap_or_else(|e| panic!("{ceiling:?} napi {napi_cpu:?}: {e:#}"));
            show(&format!("xdpceil {ceiling:?} napi_cpu {napi_cpu:?}"), &t);
            eprintln!(
                "  => XDP {ceiling:?}, NAPI {}: {:.3} Mpps (offered {:.3}, loss {:.2}%)",
                napi_cpu.map_or("softirq on CPU0".to_string(), |c| format!("kthread on CPU{c}")),
                t.mpps,
                t.offered_mpps,
                t.loss * 100.0
            );
            assert!(t.mpps > 0.1, "{} Mpps", t.mpps);
            assert!(t.received <= t.sent && t.received <= t.dut_seen);
            assert_eq!(t.napi_threads.is_empty(), napi_cpu.is_none());
            // The program on d0 saw exactly what the kernel took off d0's ring.
            assert!(
                crossgen::rel_diff(t.d0.rx_packets, t.dut_seen) <= MAX_REL_DIFF,
                "d0 {:?} seen {}",
                t.d0,
                t.dut_seen
            );
        }
    }
}
