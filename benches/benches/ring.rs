//! AF_XDP ring micro-benchmarks on the simulated kernel (`nic::sim`: heap rings, the same ring
//! code that runs against the kernel; no root, no NIC), by burst size, as time per frame.
//!
//! The user side of each ring is timed alone where the API allows it; the simulated kernel's
//! side (which copies packets in and out, as copy mode does) runs outside the timed sections
//! (`iter_custom`), a ring-full of frames at a time:
//!
//! * `ring_rx_burst`: `rx_burst` of `burst` frames off an RX ring the simulated kernel filled
//!   beforehand (peek descriptors, build frame handles, release).
//! * `ring_tx_send_flush`: `tx_burst` of `burst` frames then `flush` (need_wakeup is clear, as in
//!   zero-copy mode under load, so `flush` decides not to kick; a real kick is a `sendto` syscall
//!   and is not measured here).
//! * `ring_fill_refill`: `maintain` after the kernel consumed `burst` fill entries: nothing to
//!   reap, reserve `burst` fill slots, write chunk addresses from the cache, submit.
//! * `ring_comp_reap`: `maintain` after the kernel completed `burst` transmitted frames: reap
//!   `burst` completions into the cache; the fill ring is full so nothing is refilled.
//! * `ring_full_cycle`: everything, the simulated kernel included (timed): the kernel injects
//!   `burst` 60-byte packets (one copy each), then `maintain`, `rx_burst`, `tx_burst`, `flush`,
//!   and the kernel transmits them (completions posted).
//!
//! Fill and completion granularity is set by the kernel's side (`maintain` refills every free
//! slot and reaps every completion), so those two use one simulated port per burst in the timed
//! section, with rings of `burst` slots: a timed section then covers about 2048 frames over
//! `2048 / burst` ports, with no clock read per burst.
//!
//! Ring benchmarks use a 4096-frame cache so that pool refills/flushes do not land in the timed
//! sections (pool costs are measured by `--bench pool`). Every benchmark counts its frames and
//! checks afterwards that every UMEM chunk is accounted for.
//!
//! Run: `cargo bench -p benches --bench ring`.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use nic::port::Port;
use nic::sim::{sim_port, SimConfig, SimWire};
use nic::{FrameBuf, PoolCache, RingPort, Umem, UmemConfig};

const BURSTS: [usize; 6] = [8, 16, 32, 64, 128, 256];
const FRAMES: u32 = 16384;
/// Ring size of the single-port benchmarks, and frames per timed section of the others.
const RING: u32 = 2048;
const CACHE: usize = 4096;
const PKT: [u8; 60] = [0x5a; 60];

fn umem() -> Umem {
    Umem::heap(UmemConfig { frame_size: 2048, frame_count: FRAMES, headroom: 0 }).expect("heap UMEM")
}

fn ring_cfg(size: u32) -> SimConfig {
    SimConfig { rx_size: size, tx_size: size, fill_size: size, comp_size: size, need_wakeup: true }
}

/// Returns every chunk the simulated kernel holds to `cache`, drops the cache, and checks that
/// all UMEM chunks are back on the free list (nothing leaked or duplicated on the way).
fn check_accounting<'u>(u: &Umem, mut cache: PoolCache<'u>, ports: Vec<(RingPort<'u>, SimWire<'u>)>) {
    for (mut p, mut w) in ports {
        w.transmit(u32::MAX, |_| {});
        p.maintain(&mut cache);
        w.drain_fill_into(&mut cache);
    }
    drop(cache);
    assert_eq!(u.free_count(), FRAMES as usize, "UMEM chunks went missing");
}

fn ring_rx_burst(c: &mut Criterion) {
    let u = umem();
    let mut g = c.benchmark_group("ring_rx_burst");
    for burst in BURSTS {
        g.throughput(Throughput::Elements(burst as u64));
        let mut cache = PoolCache::new(&u, CACHE);
        let (mut port, mut wire) = sim_port(&u, &mut cache, SimConfig { fill_size: 2 * RING, ..ring_cfg(RING) });
        let mut hold = FrameBuf::with_capacity(RING as usize);
        let (mut calls, mut frames) = (0u64, 0u64);
        g.bench_function(BenchmarkId::from_parameter(burst), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let k = left.min((RING as usize / burst) as u64);
                    for _ in 0..k as usize * burst {
                        assert!(wire.inject(&PKT), "simulated kernel dropped: {:?}", wire.stats());
                    }
                    let t = Instant::now();
                    for _ in 0..k {
                        frames += port.rx_burst(&mut cache, &mut hold, burst) as u64;
                    }
                    timed += t.elapsed();
                    calls += k;
                    left -= k;
                    let ends = [hold.as_slice().first(), hold.as_slice().last()];
                    assert!(ends.iter().all(|f| f.is_some_and(|f| f.data() == PKT)), "wrong frame contents");
                    cache.free_burst(&mut hold);
                    port.maintain(&mut cache);
                }
                timed
            })
        });
        assert_eq!(frames, calls * burst as u64, "an rx_burst came up short");
        assert_eq!(port.counters().rx_packets, frames);
        assert_eq!(wire.stats().rx_delivered, frames);
        check_accounting(&u, cache, vec![(port, wire)]);
    }
    g.finish();
}

fn ring_tx_send_flush(c: &mut Criterion) {
    let u = umem();
    let mut g = c.benchmark_group("ring_tx_send_flush");
    for burst in BURSTS {
        g.throughput(Throughput::Elements(burst as u64));
        let mut cache = PoolCache::new(&u, CACHE);
        let (mut port, mut wire) = sim_port(&u, &mut cache, ring_cfg(RING));
        wire.set_tx_needs_wakeup(false);
        let mut bufs: Vec<FrameBuf> = (0..RING as usize / burst).map(|_| FrameBuf::with_capacity(burst)).collect();
        let (mut calls, mut sent, mut on_wire) = (0u64, 0u64, 0u64);
        g.bench_function(BenchmarkId::from_parameter(burst), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let k = left.min(bufs.len() as u64) as usize;
                    for buf in &mut bufs[..k] {
                        assert!(cache.alloc_bulk(buf, burst, PKT.len() as u32));
                    }
                    let t = Instant::now();
                    for buf in &mut bufs[..k] {
                        sent += port.tx_burst(&mut cache, buf) as u64;
                        port.flush();
                    }
                    timed += t.elapsed();
                    calls += k as u64;
                    left -= k as u64;
                    assert!(bufs.iter().all(|b| b.is_empty()), "a tx_burst left frames behind");
                    on_wire += wire.transmit(RING, |p| assert_eq!(p.len(), PKT.len())) as u64;
                    port.maintain(&mut cache);
                }
                timed
            })
        });
        assert_eq!(sent, calls * burst as u64, "a tx_burst came up short");
        assert_eq!(on_wire, sent, "the simulated kernel did not see every frame");
        assert_eq!(port.counters().comp_reaped, sent);
        check_accounting(&u, cache, vec![(port, wire)]);
    }
    g.finish();
}

/// `RING / burst` simulated ports whose four rings have `burst` slots each.
fn small_ports<'u>(u: &'u Umem, cache: &mut PoolCache<'u>, burst: usize) -> (Vec<RingPort<'u>>, Vec<SimWire<'u>>) {
    (0..RING as usize / burst).map(|_| sim_port(u, cache, ring_cfg(burst as u32))).unzip()
}

fn ring_fill_refill(c: &mut Criterion) {
    let u = umem();
    let mut g = c.benchmark_group("ring_fill_refill");
    for burst in BURSTS {
        g.throughput(Throughput::Elements(burst as u64));
        let mut cache = PoolCache::new(&u, CACHE);
        let (mut ports, mut wires) = small_ports(&u, &mut cache, burst);
        let mut calls = 0u64;
        g.bench_function(BenchmarkId::from_parameter(burst), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let k = left.min(ports.len() as u64) as usize;
                    for w in &mut wires[..k] {
                        // The kernel takes every fill entry (as if it received `burst` packets).
                        assert_eq!(w.drain_fill_into(&mut cache), burst as u32);
                    }
                    let t = Instant::now();
                    for p in &mut ports[..k] {
                        p.maintain(&mut cache);
                    }
                    timed += t.elapsed();
                    calls += k as u64;
                    left -= k as u64;
                }
                timed
            })
        });
        let posted: u64 = ports.iter().map(|p| p.counters().fill_posted).sum();
        let short: u64 = ports.iter().map(|p| p.counters().fill_short).sum();
        assert_eq!(posted, calls * burst as u64, "a refill came up short");
        assert_eq!(short, 0);
        check_accounting(&u, cache, ports.into_iter().zip(wires).collect());
    }
    g.finish();
}

fn ring_comp_reap(c: &mut Criterion) {
    let u = umem();
    let mut g = c.benchmark_group("ring_comp_reap");
    for burst in BURSTS {
        g.throughput(Throughput::Elements(burst as u64));
        let mut cache = PoolCache::new(&u, CACHE);
        let (mut ports, mut wires) = small_ports(&u, &mut cache, burst);
        let mut buf = FrameBuf::with_capacity(burst);
        let mut calls = 0u64;
        g.bench_function(BenchmarkId::from_parameter(burst), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let k = left.min(ports.len() as u64) as usize;
                    for (p, w) in ports[..k].iter_mut().zip(&mut wires[..k]) {
                        assert!(cache.alloc_bulk(&mut buf, burst, PKT.len() as u32));
                        assert_eq!(p.tx_burst(&mut cache, &mut buf), burst);
                        assert_eq!(w.transmit(burst as u32, |_| {}), burst as u32);
                    }
                    let t = Instant::now();
                    for p in &mut ports[..k] {
                        p.maintain(&mut cache);
                    }
                    timed += t.elapsed();
                    calls += k as u64;
                    left -= k as u64;
                }
                timed
            })
        });
        let reaped: u64 = ports.iter().map(|p| p.counters().comp_reaped).sum();
        let posted: u64 = ports.iter().map(|p| p.counters().fill_posted).sum();
        assert_eq!(reaped, calls * burst as u64, "a reap came up short");
        assert_eq!(posted, 0, "the fill ring was supposed to stay full");
        check_accounting(&u, cache, ports.into_iter().zip(wires).collect());
    }
    g.finish();
}

fn ring_full_cycle(c: &mut Criterion) {
    let u = umem();
    let mut g = c.benchmark_group("ring_full_cycle");
    for burst in BURSTS {
        g.throughput(Throughput::Elements(burst as u64));
        let mut cache = PoolCache::new(&u, CACHE);
        let (mut port, mut wire) = sim_port(&u, &mut cache, ring_cfg(RING));
        wire.set_tx_needs_wakeup(false);
        let mut buf = FrameBuf::with_capacity(burst);
        let (mut calls, mut done) = (0u64, 0u64);
        g.bench_function(BenchmarkId::from_parameter(burst), |b| {
            b.iter(|| {
                for _ in 0..burst {
                    wire.inject(&PKT);
                }
                port.maintain(&mut cache);
                port.rx_burst(&mut cache, &mut buf, burst);
                port.tx_burst(&mut cache, &mut buf);
                port.flush();
                calls += 1;
                done += wire.transmit(burst as u32, |_| {}) as u64;
            })
        });
        assert_eq!(done, calls * burst as u64, "a cycle came up short");
        assert_eq!(wire.stats().rx_delivered, done, "the simulated kernel dropped: {:?}", wire.stats());
        assert!(buf.is_empty());
        check_accounting(&u, cache, vec![(port, wire)]);
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(1))
        .without_plots()
}

criterion_group! {
    name = ring;
    config = config();
    targets = ring_rx_burst, ring_tx_send_flush, ring_fill_refill, ring_comp_reap, ring_full_cycle
}
criterion_main!(ring);
