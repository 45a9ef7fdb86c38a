//! Relay app micro-benchmarks: one lcore, two null ports, `relay` from each to the other (the
//! engine-only tier of BENCHMARKS.md, without process, threads or sampling around it).
//!
//! One measured iteration is one `Lcore::poll_once`: per port, `maintain`, `rx_burst` of
//! `burst` frames (null RX: frames from the lcore's pool cache, contents untouched), the relay's
//! `process` for the burst, dispatch to the other port's staging; then `tx_burst` on both ports
//! (null TX: frames back to the cache) and `flush`. That moves `2 × burst` frames, which is the
//! throughput criterion divides by, so results read as time per forwarded frame.
//!
//! * `relay_io`: frames leave unchanged (the packet memory is never touched).
//! * `relay_mac`: destination and source MAC rewritten in every frame (12 bytes written).
//!
//! The lcore uses the daemon's cache size (1024) and the app enum the daemon dispatches
//! ([`apps::registry::AnyApp`]). Afterwards each benchmark checks the lcore's counters: every
//! iteration received and sent `2 × burst` frames and nothing was dropped.
//!
//! Run: `cargo bench -p benches --bench relay`.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use apps::registry::AnyApp;
use apps::relay::{Relay, RelayMode};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use engine::{Instant, LcoreBuilder, LcoreOptions, PortId};
use nic::{AnyPort, NullPort, PoolCache, Umem, UmemConfig};

const BURSTS: [usize; 6] = [8, 16, 32, 64, 128, 256];
const FRAMES: u32 = 16384;
/// Cache size of the daemon's lcores (`apps/src/daemon.rs`).
const CACHE: usize = 1024;
/// 64-byte frames on the wire: 60 bytes in memory + FCS.
const FRAME_LEN: u32 = 60;

fn bench_relay(c: &mut Criterion, group: &str, mode: RelayMode) {
    let u = Umem::heap(UmemConfig { frame_size: 2048, frame_count: FRAMES, headroom: 0 }).expect("heap UMEM");
    let stop = Arc::new(AtomicBool::new(false));
    let mut g = c.benchmark_group(group);
    for burst in BURSTS {
        g.throughput(Throughput::Elements(2 * burst as u64));
        let mut opts = LcoreOptions::new("bench");
        opts.burst = burst;
        let mut b = LcoreBuilder::new(opts, PoolCache::new(&u, CACHE));
        let p0 = b.add_queue("null0:0", PortId(0), AnyPort::Null(NullPort::new(FRAME_LEN)));
        let p1 = b.add_queue("null1:0", PortId(1), AnyPort::Null(NullPort::new(FRAME_LEN)));
        b.set_app(p0, "relay", AnyApp::Relay(Box::new(Relay::new(mode, p1, [2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]))));
        b.set_app(p1, "relay", AnyApp::Relay(Box::new(Relay::new(mode, p0, [2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1]))));
        let (mut lcore, _shared) = b.build(stop.clone());
        let mut t = 0u64;
        g.bench_function(BenchmarkId::from_parameter(burst), |b| {
            b.iter(|| {
                t += 1;
                lcore.poll_once(Instant::from_nanos(t))
            })
        });
        let n = lcore.counters();
        assert_eq!(n.iterations, t);
        assert_eq!(n.rx_frames, t * 2 * burst as u64, "{group}/{burst}: an RX burst came up short");
        assert_eq!(n.tx_frames, n.rx_frames, "{group}/{burst}: frames were not all sent");
        assert_eq!(n.drops.lost(), 0, "{group}/{burst}: drops {:?}", n.drops.nonzero().collect::<Vec<_>>());
        assert_eq!(lcore.staged(), 0);
        assert_eq!(lcore.cache().stats().alloc_failed, 0);
        drop(lcore);
        assert_eq!(u.free_count(), FRAMES as usize, "UMEM chunks went missing");
    }
    g.finish();
}

fn relay_io(c: &mut Criterion) {
    bench_relay(c, "relay_io", RelayMode::Io);
}

fn relay_mac(c: &mut Criterion) {
    bench_relay(c, "relay_mac", RelayMode::Mac);
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .without_plots()
}

criterion_group! {
    name = relay;
    config = config();
    targets = relay_io, relay_mac
}
criterion_main!(relay);
