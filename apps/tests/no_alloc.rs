//! Proof that the data path does not allocate: the poll loop with relay apps over null ports
//! and over simulated AF_XDP rings (the real ring code), after warm-up, makes zero heap
//! allocations for millions of frames. Its own test binary, so the counting allocator sees only
//! this test's thread.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use apps::registry::AnyApp;
use apps::relay::{Relay, RelayMode};
use engine::{Instant, LcoreBuilder, LcoreOptions};
use nic::alloc_count::{thread_allocations, CountingAlloc};
use nic::sim::{sim_port, SimConfig};
use nic::{AnyPort, NullPort, PoolCache, Umem, UmemConfig};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

#[test]
fn poll_loop_makes_no_allocation_per_frame() {
    // The counter is live: it sees an allocation when there is one.
    let c0 = thread_allocations();
    let v = std::hint::black_box(vec![1u8; 100]);
    assert_eq!(thread_allocations() - c0, 1);
    drop(v);
    let u = Umem::heap(UmemConfig { frame_size: 2048, frame_count: 16384, headroom: 0 }).unwrap();
    let stop = Arc::new(AtomicBool::new(false));

    // 1. Null ports, relay io and mac.
    for mode in [RelayMode::Io, RelayMode::Mac, RelayMode::MacSwap] {
        let mut b = LcoreBuilder::new(LcoreOptions::new("t"), PoolCache::new(&u, 1024));
        let a = b.add_queue("n0:0", AnyPort::Null(NullPort::new(60)));
        let c = b.add_queue("n1:0", AnyPort::Null(NullPort::new(60)));
        b.set_app(a, "relay", AnyApp::Relay(Relay::new(mode, c, [2; 6], [4; 6])));
        b.set_app(c, "relay", AnyApp::Relay(Relay::new(mode, a, [2; 6], [4; 6])));
        let (mut l, _) = b.build(stop.clone());
        for i in 0..1000 {
            l.poll_once(Instant::from_nanos(i));
        }
        let before = thread_allocations();
        for i in 0..50_000u64 {
            l.poll_once(Instant::from_nanos(1000 + i));
        }
        let allocs = thread_allocations() - before;
        let frames = l.counters().rx_frames;
        assert!(frames > 6_000_000, "{frames}");
        assert_eq!(allocs, 0, "{mode:?}: {allocs} allocations while forwarding {frames} frames");
    }

    // 2. Simulated AF_XDP rings: fill, RX, TX, completion, kicks — the code real sockets run.
    let mut cache = PoolCache::new(&u, 1024);
    let (pa, mut wa) = sim_port(&u, &mut cache, SimConfig::default());
    let (pb, mut wb) = sim_port(&u, &mut cache, SimConfig::default());
    wb.set_tx_needs_wakeup(true);
    let mut b = LcoreBuilder::new(LcoreOptions::new("t"), cache);
    let a = b.add_queue("a:0", AnyPort::Ring(pa));
    let c = b.add_queue("b:0", AnyPort::Ring(pb));
    b.set_app(a, "relay", AnyApp::Relay(Relay::new(RelayMode::Mac, c, [2; 6], [4; 6])));
    b.set_app(c, "relay", AnyApp::Relay(Relay::new(RelayMode::Mac, a, [2; 6], [4; 6])));
    let (mut l, _) = b.build(stop);
    let pkt = [0x55u8; 60];
    let mut sent = 0u64;
    let mut round = |l: &mut engine::Lcore<'_, AnyApp>, t: u64| {
        for _ in 0..64 {
            wa.inject(&pkt);
        }
        l.poll_once(Instant::from_nanos(t));
        wb.transmit(256, |_| sent += 1);
    };
    for t in 0..1000 {
        round(&mut l, t);
    }
    let before = thread_allocations();
    for t in 0..20_000 {
        round(&mut l, 1000 + t);
    }
    let allocs = thread_allocations() - before;
    assert!(sent > 1_000_000, "{sent}");
    assert_eq!(allocs, 0, "sim rings: {allocs} allocations for {sent} frames");
}
