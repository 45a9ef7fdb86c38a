//! The poll loop over simulated ports: forwarding, verdict dispatch, drop accounting, staging
//! backpressure, cross-lcore handoff, and stopping. No root, no NIC.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use engine::{
    App, Batch, Ctx, DropReason, Ingress, Instant, LcoreBuilder, LcoreOptions, PortId, Shard, TxPort, Verdict,
};
use nic::sim::{sim_port, SimConfig};
use nic::{AnyPort, NullPort, PoolCache, Umem, UmemConfig};

/// Test app: forward everything to `to`, except frames whose first byte is 0xdd (dropped as
/// Filtered) and 0xee (left without a verdict).
struct Fwd {
    to: TxPort,
    seen: u64,
}

impl<'u> App<'u> for Fwd {
    fn process(&mut self, _cx: &mut Ctx<'_, 'u>, _from: Ingress, batch: &mut Batch<'u>) {
        self.seen += batch.len() as u64;
        if batch.frames().iter().all(|f| f.data().first() != Some(&0xdd) && f.data().first() != Some(&0xee)) {
            batch.set_all(Verdict::Tx(self.to));
            return;
        }
        for (f, v) in batch.iter_mut() {
            *v = match f.data().first() {
                Some(0xdd) => Verdict::Drop(DropReason::Filtered),
                Some(0xee) => continue,
                _ => Verdict::Tx(self.to),
            };
        }
    }
    fn report(&self, out: &mut Vec<(&'static str, u64)>) {
        out.push(("seen", self.seen));
    }
}

fn pkt(i: u32) -> Vec<u8> {
    let mut v = vec![0u8; 64];
    v[0] = 0x02;
    v[8..12].copy_from_slice(&i.to_be_bytes());
    v
}

fn umem() -> Umem {
    Umem::heap(UmemConfig { frame_size: 2048, frame_count: 16384, headroom: 0 }).unwrap()
}

#[test]
fn forwards_between_two_sim_ports_and_counts_every_drop() {
    let u = umem();
    let stop = Arc::new(AtomicBool::new(false));
    let mut cache = PoolCache::new(&u, 512);
    let (pa, mut wa) = sim_port(&u, &mut cache, SimConfig::default());
    let (pb, mut wb) = sim_port(&u, &mut cache, SimConfig::default());
    wb.set_tx_needs_wakeup(true);
    let mut b = LcoreBuilder::new(LcoreOptions::new("t0"), cache);
    let ta = b.add_queue("a:0", PortId(0), AnyPort::Ring(pa));
    let tb = b.add_queue("b:0", PortId(1), AnyPort::Ring(pb));
    b.set_app(ta, "fwd", Fwd { to: tb, seen: 0 });
    b.set_app(tb, "fwd", Fwd { to: ta, seen: 0 });
    let (lcore, shared) = b.build(stop.clone());
    const N: u32 = 30_000;
    std::thread::scope(|s| {
        let h = s.spawn(move || lcore.run());
        let mut out = Vec::new();
        let mut i = 0u32;
        let deadline = StdInstant::now() + Duration::from_secs(20);
        while (out.len() as u32) < N - 600 && StdInstant::now() < deadline {
            if i < N {
                let mut p = pkt(i);
                if i % 100 == 7 {
                    p[0] = 0xdd;
                }
                if i % 100 == 9 {
                    p[0] = 0xee;
                }
                if wa.inject(&p) {
                    i += 1;
                }
            }
            wb.transmit(64, |bytes| out.push(bytes.to_vec()));
        }
        std::thread::sleep(Duration::from_millis(50));
        wb.transmit(4096, |bytes| out.push(bytes.to_vec()));
        stop.store(true, Ordering::Relaxed);
        let snap = h.join().unwrap();
        wb.transmit(4096, |bytes| out.push(bytes.to_vec()));
        assert_eq!(out.len() as u32, N - 600, "all but the filtered and verdict-less frames arrive");
        // Order and content preserved.
        let mut expect = (0..N).filter(|i| i % 100 != 7 && i % 100 != 9);
        for o in &out {
            assert_eq!(o, &pkt(expect.next().unwrap()));
        }
        assert_eq!(snap.counters.drops.get(DropReason::Filtered), 300);
        assert_eq!(snap.counters.drops.get(DropReason::NoVerdict), 300);
        assert_eq!(snap.counters.rx_frames, N as u64);
        assert_eq!(snap.apps[0].counters, vec![("seen", N as u64)]);
        assert!(!snap.running);
        assert!(snap.counters.burst_hist.iter().sum::<u64>() > 0);
        assert!(shared.lock().unwrap().counters.rx_frames == N as u64);
    });
}

#[test]
fn null_ports_relay_and_stop_on_flag() {
    let u = umem();
    let stop = Arc::new(AtomicBool::new(false));
    let cache = PoolCache::new(&u, 512);
    let mut b = LcoreBuilder::new(LcoreOptions::new("null"), cache);
    let t0 = b.add_queue("n0:0", PortId(0), AnyPort::Null(NullPort::new(64)));
    let t1 = b.add_queue("n1:0", PortId(1), AnyPort::Null(NullPort::new(64)));
    b.set_app(t0, "fwd", Fwd { to: t1, seen: 0 });
    b.set_app(t1, "fwd", Fwd { to: t0, seen: 0 });
    let (lcore, _shared) = b.build(stop.clone());
    let stopper = stop.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        stopper.store(true, Ordering::Relaxed);
    });
    let snap = lcore.run();
    t.join().unwrap();
    let p = snap.port_totals();
    assert!(p.rx_packets > 100_000, "null relay moved {} frames", p.rx_packets);
    // Everything received was sent (null TX never refuses), nothing dropped.
    assert_eq!(snap.counters.drops.lost(), 0);
    assert_eq!(p.rx_packets, p.tx_packets);
    assert_eq!(u.free_count(), 16384, "every chunk back in the pool after the lcore ends");
}

/// A generator that emits `left` frames to `to`, then is done.
struct Gen {
    to: TxPort,
    left: u32,
}

impl<'u> App<'u> for Gen {
    fn process(&mut self, _cx: &mut Ctx<'_, 'u>, _from: Ingress, batch: &mut Batch<'u>) {
        batch.set_all(Verdict::Drop(DropReason::Consumed));
    }
    fn produce(&mut self, cx: &mut Ctx<'_, 'u>) {
        let n = (self.left as usize).min(cx.tx_room(self.to)).min(32);
        for _ in 0..n {
            let Some(mut f) = cx.pool.alloc() else { return };
            f.set_len(64);
            f.data_mut()[..4].copy_from_slice(&self.left.to_be_bytes());
            if let Err(f) = cx.emit(self.to, f) {
                cx.pool.free(f);
                return;
            }
            self.left -= 1;
        }
    }
    fn is_done(&self) -> bool {
        self.left == 0
    }
}

#[test]
fn generator_is_done_after_its_count_and_handoff_crosses_lcores() {
    let u = umem();
    let stop = Arc::new(AtomicBool::new(false));
    let (ring_tx, ring_rx) = rtrb::RingBuffer::new(1024);
    let mut c0 = PoolCache::new(&u, 512);
    let mut c1 = PoolCache::new(&u, 512);
    // lcore A: generator on a null port whose output is handed to lcore B.
    let (pb, mut wb) = sim_port(&u, &mut c1, SimConfig::default());
    wb.set_tx_needs_wakeup(true);
    let _ = &mut c0;
    let mut ba = LcoreBuilder::new(LcoreOptions::new("a"), c0);
    let qa = ba.add_queue("n:0", PortId(0), AnyPort::Null(NullPort::new(0)));
    let remote = ba.add_remote(ring_tx);
    ba.set_app(qa, "gen", Gen { to: remote, left: 5000 });
    // The null port would also hand out RX frames; the generator consumes them.
    let (la, _) = ba.build(stop.clone());
    let mut bb = LcoreBuilder::new(LcoreOptions::new("b"), c1);
    let qb = bb.add_queue("sim:0", PortId(1), AnyPort::Ring(pb));
    bb.add_inbound(ring_rx, qb);
    bb.set_app(qb, "fwd", Fwd { to: qb, seen: 0 });
    let (lb, _) = bb.build(stop.clone());
    std::thread::scope(|s| {
        let ha = s.spawn(move || la.run());
        let hb = s.spawn(move || lb.run());
        let mut got = 0;
        let deadline = StdInstant::now() + Duration::from_secs(10);
        while got < 5000 && StdInstant::now() < deadline {
            wb.transmit(256, |_| got += 1);
        }
        stop.store(true, Ordering::Relaxed);
        let a = ha.join().unwrap();
        assert_eq!(a.counters.handoff_out, 5000);
        let b = hb.join().unwrap();
        assert_eq!(got, 5000);
        assert_eq!(b.counters.handoff_in, 5000);
    });
    let _ = Instant::ZERO;
}

/// Records the first `now` its lcore hands it, then is done.
struct FirstNow {
    seen: Arc<std::sync::atomic::AtomicU64>,
}

impl<'u> App<'u> for FirstNow {
    fn process(&mut self, _cx: &mut Ctx<'_, 'u>, _from: Ingress, batch: &mut Batch<'u>) {
        batch.set_all(Verdict::Drop(DropReason::Consumed));
    }
    fn produce(&mut self, cx: &mut Ctx<'_, 'u>) {
        let _ = self.seen.compare_exchange(u64::MAX, cx.now.as_nanos(), Ordering::Relaxed, Ordering::Relaxed);
    }
    fn is_done(&self) -> bool {
        self.seen.load(Ordering::Relaxed) != u64::MAX
    }
}

#[test]
fn lcores_given_one_clock_share_its_epoch() {
    let u = umem();
    let clock = engine::Clock::new();
    // Without sharing, each lcore's clock would start near zero (its own calibration); with it,
    // both see instants of this clock, which is already 100 ms old.
    std::thread::sleep(Duration::from_millis(100));
    let before = clock.now();
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Vec<_> = (0..2).map(|_| Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX))).collect();
    std::thread::scope(|s| {
        let mut handles = Vec::new();
        for (i, seen) in seen.iter().enumerate() {
            let mut o = LcoreOptions::new(format!("c{i}"));
            o.clock = Some(clock);
            let mut b = LcoreBuilder::new(o, PoolCache::new(&u, 64));
            let q = b.add_queue("n:0", PortId(0), AnyPort::Null(NullPort::new(0)));
            b.set_app(q, "first", FirstNow { seen: seen.clone() });
            let (l, _) = b.build(stop.clone());
            handles.push(s.spawn(move || l.run()));
        }
        for h in handles {
            h.join().unwrap();
        }
    });
    let after = clock.now();
    for s in &seen {
        let t = Instant::from_nanos(s.load(Ordering::Relaxed));
        assert!(t >= before && t <= after, "{t:?} outside [{before:?}, {after:?}]");
        assert!(t.as_nanos() >= 100_000_000);
    }
}

/// Forwards every frame to `to`, or consumes it (a sink, a generator's receiver) when `None`.
struct FwdOrSink {
    to: Option<TxPort>,
}

impl<'u> App<'u> for FwdOrSink {
    fn process(&mut self, _cx: &mut Ctx<'_, 'u>, _from: Ingress, batch: &mut Batch<'u>) {
        batch.set_all(self.to.map_or(Verdict::Drop(DropReason::Consumed), Verdict::Tx));
    }
}

#[test]
fn an_iteration_drains_rx_up_to_the_staging_room() {
    let u = umem();
    let clock = engine::Clock::new();
    let burst = 64usize;
    let backlog = 1000u32;
    for forward in [false, true] {
        let stop = Arc::new(AtomicBool::new(false));
        let mut cache = PoolCache::new(&u, 512);
        let (pa, mut wa) = sim_port(&u, &mut cache, SimConfig::default());
        let (pb, mut wb) = sim_port(&u, &mut cache, SimConfig::default());
        for i in 0..backlog {
            assert!(wa.inject(&pkt(i)));
        }
        let mut b = LcoreBuilder::new(LcoreOptions::new("drain"), cache);
        let ta = b.add_queue("a:0", PortId(1), AnyPort::Ring(pa));
        let tb = b.add_queue("b:0", PortId(0), AnyPort::Ring(pb));
        b.set_app(ta, "a", FwdOrSink { to: forward.then_some(tb) });
        b.set_app(tb, "sink", FwdOrSink { to: None });
        let (mut lcore, _) = b.build(stop);
        let got = lcore.poll_once(clock.now());
        if forward {
            // Two bursts fill the 2 × burst staging towards b; the rest waits in a's RX ring.
            assert_eq!(lcore.counters().rx_frames, 2 * burst as u64);
            let mut out = 0;
            wb.transmit(4096, |_| out += 1);
            assert_eq!(out, 2 * burst, "both bursts were sent in the same iteration");
            assert_eq!(got, 4 * burst, "received and sent");
        } else {
            // Nothing is staged: the iteration takes MAX_RX_BURSTS full bursts.
            assert_eq!(lcore.counters().rx_frames, (engine::MAX_RX_BURSTS * burst) as u64);
            assert_eq!(got, engine::MAX_RX_BURSTS * burst);
        }
        assert_eq!(lcore.counters().drops.get(DropReason::TxRingFull), 0);
        // Later iterations drain the rest; a short burst ends an iteration's draining.
        let mut polls = 1;
        while lcore.counters().rx_frames < u64::from(backlog) {
            lcore.poll_once(clock.now());
            wb.transmit(4096, |_| ());
            polls += 1;
            assert!(polls < 100);
        }
        assert_eq!(lcore.counters().rx_frames, u64::from(backlog));
        let per_poll = if forward { 2 * burst } else { engine::MAX_RX_BURSTS * burst };
        assert_eq!(polls, (backlog as usize).div_ceil(per_poll));
    }
}

/// One app shard owning two ports: frames from port 0 go out on port 1 and vice versa, and the
/// app sees which port each burst came from. Frames whose byte 20 is 0xaa are handed to shard
/// 1 (another lcore), which sends them back out of *its* port 1, recording the ingress it saw.
struct TwoSided {
    out: [TxPort; 2],
    /// (port, handed_off) of every burst seen.
    seen: Vec<(u16, Option<u16>)>,
    handoff: bool,
}

impl<'u> App<'u> for TwoSided {
    fn process(&mut self, _cx: &mut Ctx<'_, 'u>, from: Ingress, batch: &mut Batch<'u>) {
        self.seen.push((from.port.0, from.handed_off.map(|s| s.0)));
        let out = self.out[1 - from.port.0 as usize];
        for (f, v) in batch.iter_mut() {
            *v = if self.handoff && f.data()[20] == 0xaa { Verdict::Handoff(Shard(1)) } else { Verdict::Tx(out) };
        }
    }
}

#[test]
fn one_app_shard_owns_several_queues_and_hands_frames_to_another_shard() {
    let u = umem();
    let clock = engine::Clock::new();
    let stop = Arc::new(AtomicBool::new(false));
    let mut c0 = PoolCache::new(&u, 512);
    let mut c1 = PoolCache::new(&u, 512);
    let (pa, mut wa) = sim_port(&u, &mut c0, SimConfig::default());
    let (pb, mut wb) = sim_port(&u, &mut c0, SimConfig::default());
    let (pc, mut wc) = sim_port(&u, &mut c1, SimConfig::default());
    let (pd, mut wd) = sim_port(&u, &mut c1, SimConfig::default());
    // Shard 0 on lcore "s0": ports 0 (a) and 1 (b). Shard 1 on lcore "s1": ports 0 (c), 1 (d).
    let (to1, from0) = rtrb::RingBuffer::new(64);
    let mut b0 = LcoreBuilder::new(LcoreOptions::new("s0"), c0);
    let ta = b0.add_queue("a:0", PortId(0), AnyPort::Ring(pa));
    let tb = b0.add_queue("b:0", PortId(1), AnyPort::Ring(pb));
    let s0 = b0.add_app("lb", TwoSided { out: [ta, tb], seen: vec![], handoff: true }, &[ta, tb]);
    b0.add_shard_out(s0, Shard(1), to1);
    let (mut l0, _) = b0.build(stop.clone());
    let mut b1 = LcoreBuilder::new(LcoreOptions::new("s1"), c1);
    let tc = b1.add_queue("c:0", PortId(0), AnyPort::Ring(pc));
    let td = b1.add_queue("d:0", PortId(1), AnyPort::Ring(pd));
    let s1 = b1.add_app("lb", TwoSided { out: [tc, td], seen: vec![], handoff: false }, &[tc, td]);
    b1.add_shard_in(s1, Shard(0), from0);
    let (mut l1, _) = b1.build(stop.clone());

    let mut marked = pkt(7);
    marked[20] = 0xaa;
    for i in 0..10 {
        assert!(wa.inject(&pkt(i)));
    }
    assert!(wa.inject(&marked));
    assert!(wb.inject(&pkt(100)));
    l0.poll_once(clock.now());
    l1.poll_once(clock.now());
    let collect = |w: &mut nic::sim::SimWire<'_>| {
        let mut v = Vec::new();
        w.transmit(4096, |b| v.push(b.to_vec()));
        v
    };
    // Port 0 → port 1 and back, on shard 0.
    assert_eq!(collect(&mut wb), (0..10).map(pkt).collect::<Vec<_>>());
    assert_eq!(collect(&mut wa), vec![pkt(100)]);
    // The marked frame crossed to shard 1, which saw it as port 0 handed off by shard 0 and
    // sent it out of its own port 1.
    assert_eq!(collect(&mut wd), vec![marked.clone()]);
    assert!(collect(&mut wc).is_empty());
    assert_eq!(l0.apps().next().unwrap().seen, vec![(0, None), (1, None)]);
    assert_eq!(l1.apps().next().unwrap().seen, vec![(0, Some(0))]);
    assert_eq!(l0.counters().handoff_out, 1);
    assert_eq!(l1.counters().handoff_in, 1);
    assert_eq!(l0.counters().drops.lost() + l1.counters().drops.lost(), 0);

    // A full handoff ring is a counted drop, never a leak: 64-slot ring, 200 marked frames.
    for _ in 0..200 {
        assert!(wa.inject(&marked));
    }
    for _ in 0..10 {
        l0.poll_once(clock.now());
    }
    assert_eq!(l0.counters().handoff_out, 1 + 64);
    assert_eq!(l0.counters().drops.get(DropReason::HandoffFull), 200 - 64);
    for _ in 0..10 {
        l1.poll_once(clock.now());
    }
    assert_eq!(collect(&mut wd).len(), 64);
    let _ = stop;
}
