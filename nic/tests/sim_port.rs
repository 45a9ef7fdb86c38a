//! Tier-1 tests of the ring ports against the simulated kernel: no root, no NIC.
//!
//! They run the same `RingPort`/ring code that drives real AF_XDP sockets, with `SimWire`
//! playing the kernel's side, and check bytes, counts and chunk ownership accounting.

use nic::frame::FrameBuf;
use nic::pool::PoolCache;
use nic::port::{NullPort, Port};
use nic::sim::{sim_port, SimConfig};
use nic::umem::{Umem, UmemConfig};

fn umem(frames: u32) -> Umem {
    Umem::heap(UmemConfig { frame_size: 2048, frame_count: frames, headroom: 0 }).unwrap()
}

fn small() -> SimConfig {
    SimConfig { rx_size: 64, tx_size: 64, fill_size: 128, comp_size: 64, need_wakeup: true }
}

fn pkt(i: u32, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i as usize * 31 + j * 7) as u8).collect()
}

#[test]
fn inject_receive_transmit_complete_round_trip() {
    let u = umem(512);
    let mut cache = PoolCache::new(&u, 256);
    let (mut port, mut wire) = sim_port(&u, &mut cache, small());
    assert_eq!(wire.fill_pending(), 128, "fill ring primed before use");

    for i in 0..40 {
        assert!(wire.inject(&pkt(i, 60 + i as usize)));
    }
    let mut batch = FrameBuf::with_capacity(64);
    assert_eq!(port.rx_burst(&mut cache, &mut batch, 64), 40);
    for (i, f) in batch.iter().enumerate() {
        assert_eq!(f.data(), &pkt(i as u32, 60 + i)[..], "frame {i} bytes");
    }
    // Transmit them back unchanged (zero copy: the same chunks).
    let addrs: Vec<u64> = batch.iter().map(|f| f.desc_addr()).collect();
    assert_eq!(port.tx_burst(&mut cache, &mut batch), 40);
    assert!(batch.is_empty());
    wire.set_tx_needs_wakeup(true);
    port.flush();
    assert_eq!(wire.tx_kicks(), 1, "one kick for the burst");
    let mut seen = Vec::new();
    assert_eq!(wire.transmit_descs(64, |a, b| seen.push((a, b.to_vec()))), 40);
    for (i, (a, b)) in seen.iter().enumerate() {
        assert_eq!(*a, addrs[i], "frame {i} leaves from the address it arrived at");
        assert_eq!(b, &pkt(i as u32, 60 + i));
    }
    port.maintain(&mut cache);
    assert_eq!(port.counters().comp_reaped, 40);
    assert_eq!(port.counters().rx_packets, 40);
    assert_eq!(port.counters().tx_packets, 40);
    // Every chunk is somewhere: free list, cache or the kernel's fill ring.
    assert_eq!(u.free_count() + cache.len() + wire.fill_pending() as usize, 512);
}

#[test]
fn shared_umem_forwards_between_ports_without_copy() {
    let u = umem(1024);
    let mut cache = PoolCache::new(&u, 256);
    let (mut a, mut wa) = sim_port(&u, &mut cache, small());
    let (mut b, mut wb) = sim_port(&u, &mut cache, small());
    wb.set_tx_needs_wakeup(true);
    let mut batch = FrameBuf::with_capacity(64);
    let mut out = Vec::new();
    for round in 0..50u32 {
        for i in 0..16 {
            assert!(wa.inject(&pkt(round * 16 + i, 64)));
        }
        a.maintain(&mut cache);
        b.maintain(&mut cache);
        let n = a.rx_burst(&mut cache, &mut batch, 64);
        assert_eq!(n, 16);
        let rx_addrs: Vec<u64> = batch.iter().map(|f| f.desc_addr()).collect();
        assert_eq!(b.tx_burst(&mut cache, &mut batch), 16);
        b.flush();
        let mut tx_addrs = Vec::new();
        wb.transmit_descs(64, |addr, bytes| {
            tx_addrs.push(addr);
            out.push(bytes.to_vec());
        });
        // The TX descriptors of port b point at the very chunks port a received into: no copy.
        assert_eq!(tx_addrs, rx_addrs, "round {round}");
    }
    assert_eq!(out.len(), 800);
    for (i, p) in out.iter().enumerate() {
        assert_eq!(p, &pkt(i as u32, 64));
    }
    a.maintain(&mut cache);
    b.maintain(&mut cache);
    let total = u.free_count() + cache.len() + wa.fill_pending() as usize + wb.fill_pending() as usize;
    assert_eq!(total, 1024, "no chunk lost or duplicated");
}

#[test]
fn rx_drops_when_fill_ring_starves_and_recovers_after_refill() {
    let u = umem(64);
    let mut cache = PoolCache::new(&u, 64);
    let cfg = SimConfig { rx_size: 128, tx_size: 64, fill_size: 64, comp_size: 64, need_wakeup: true };
    let (mut port, mut wire) = sim_port(&u, &mut cache, cfg);
    // All 64 chunks are on the fill ring; deliver 64, the 65th must drop (fill empty).
    for i in 0..64 {
        assert!(wire.inject(&pkt(i, 60)));
    }
    assert!(!wire.inject(&pkt(64, 60)));
    assert_eq!(wire.stats().rx_dropped_fill_empty, 1);
    let mut batch = FrameBuf::with_capacity(64);
    assert_eq!(port.rx_burst(&mut cache, &mut batch, 64), 64);
    cache.free_burst(&mut batch);
    port.maintain(&mut cache);
    assert!(wire.inject(&pkt(65, 60)), "refill before taking RX restores reception");
}

#[test]
fn invalid_rx_descriptors_are_counted_not_received_and_their_chunks_return() {
    let u = umem(512);
    let mut cache = PoolCache::new(&u, 256);
    let (mut port, mut wire) = sim_port(&u, &mut cache, small());
    let beyond_umem = 512 * 2048 + 256;
    assert!(wire.inject(&pkt(0, 60)));
    assert!(wire.inject_bad_len(u.frame_size() + 1), "a chunk of ours, length past its end");
    assert!(wire.inject(&pkt(1, 61)));
    assert!(wire.inject_foreign(beyond_umem, 60), "an address outside the UMEM");
    assert!(wire.inject(&pkt(2, 62)));
    let mut batch = FrameBuf::with_capacity(64);
    assert_eq!(port.rx_burst(&mut cache, &mut batch, 64), 3, "only the valid descriptors are frames");
    assert_eq!(batch.len(), 3);
    for (i, f) in batch.iter().enumerate() {
        assert_eq!(f.data(), &pkt(i as u32, 60 + i)[..], "frame {i}");
    }
    let c = *port.counters();
    assert_eq!((c.rx_packets, c.rx_bytes, c.rx_invalid_descs), (3, 60 + 61 + 62, 2));
    cache.free_burst(&mut batch);
    // 512 chunks: 128 went to the fill ring, the simulated kernel took 4 of them (3 valid
    // frames, 1 bad length), 124 are still there. The bad-length chunk came back with its
    // descriptor; the foreign address named no chunk of ours, so nothing else is owed.
    assert_eq!(wire.fill_pending(), 124);
    assert_eq!(u.free_count() + cache.len() + wire.fill_pending() as usize, 512, "no chunk lost");
    port.maintain(&mut cache);
    assert_eq!(port.counters().rx_invalid_descs, 2);
    assert_eq!(port.rx_burst(&mut cache, &mut batch, 64), 0, "the invalid descriptors were consumed");
}

#[test]
fn rx_ring_full_is_counted() {
    let u = umem(256);
    let mut cache = PoolCache::new(&u, 128);
    let cfg = SimConfig { rx_size: 8, tx_size: 64, fill_size: 64, comp_size: 64, need_wakeup: true };
    let (mut port, mut wire) = sim_port(&u, &mut cache, cfg);
    for i in 0..10 {
        assert_eq!(wire.inject(&pkt(i, 60)), i < 8, "packet {i}");
    }
    assert_eq!(wire.stats().rx_delivered, 8);
    assert_eq!(wire.stats().rx_dropped_ring_full, 2);
    // The port takes exactly the 8 that fit, in order; the 2 dropped never cost a chunk.
    let mut batch = FrameBuf::with_capacity(64);
    assert_eq!(port.rx_burst(&mut cache, &mut batch, 64), 8);
    for (i, f) in batch.iter().enumerate() {
        assert_eq!(f.data(), &pkt(i as u32, 60)[..]);
    }
    assert_eq!(wire.fill_pending(), 64 - 8);
    // Room again: the next packet is delivered.
    assert!(wire.inject(&pkt(10, 60)));
    assert_eq!(port.rx_burst(&mut cache, &mut batch, 64), 1);
    assert_eq!(batch[8].data(), &pkt(10, 60)[..]);
    assert_eq!(port.counters().rx_packets, 9);
    cache.free_burst(&mut batch);
    assert_eq!(u.free_count() + cache.len() + wire.fill_pending() as usize, 256);
}

#[test]
fn tx_ring_full_leaves_frames_with_the_caller() {
    let u = umem(256);
    let mut cache = PoolCache::new(&u, 128);
    let cfg = SimConfig { rx_size: 64, tx_size: 16, fill_size: 64, comp_size: 16, need_wakeup: true };
    let (mut port, mut wire) = sim_port(&u, &mut cache, cfg);
    let mut batch = FrameBuf::with_capacity(64);
    assert!(cache.alloc_bulk(&mut batch, 40, 60));
    let first: Vec<u64> = batch.iter().map(|f| f.desc_addr()).collect();
    assert_eq!(port.tx_burst(&mut cache, &mut batch), 16);
    assert_eq!(batch.len(), 24, "what did not fit stays with the caller");
    assert_eq!(batch[0].desc_addr(), first[16], "in order: the first 16 went");
    let mut sent = Vec::new();
    assert_eq!(wire.transmit_descs(64, |a, _| sent.push(a)), 16);
    port.maintain(&mut cache);
    assert_eq!(port.counters().comp_reaped, 16);
    assert_eq!(port.tx_burst(&mut cache, &mut batch), 16);
    assert_eq!(wire.transmit_descs(64, |a, _| sent.push(a)), 16);
    assert_eq!(sent, first[..32], "every posted frame sent once, in order");
    cache.free_burst(&mut batch);
    port.maintain(&mut cache);
    assert_eq!(u.free_count() + cache.len() + wire.fill_pending() as usize, 256);
}

#[test]
fn kicks_only_when_the_kernel_asks_and_at_most_one_per_flush() {
    let u = umem(512);
    let mut cache = PoolCache::new(&u, 256);
    let (mut port, mut wire) = sim_port(&u, &mut cache, small());
    let mut batch = FrameBuf::with_capacity(64);
    // Flag clear (like zero-copy while the driver is busy): no syscall.
    wire.set_tx_needs_wakeup(false);
    assert!(cache.alloc_bulk(&mut batch, 32, 60));
    port.tx_burst(&mut cache, &mut batch);
    port.flush();
    assert_eq!(wire.tx_kicks(), 0);
    wire.transmit(64, |_| {});
    // Flag set (copy mode, where the kernel sends during the kick): exactly one kick per
    // flush with new frames, none for a flush with nothing new and nothing outstanding.
    wire.set_tx_needs_wakeup(true);
    for _ in 0..10 {
        assert!(cache.alloc_bulk(&mut batch, 8, 60));
        port.tx_burst(&mut cache, &mut batch);
        port.flush();
        wire.transmit(64, |_| {});
        port.flush();
        port.maintain(&mut cache);
    }
    assert_eq!(wire.tx_kicks(), 10);
    // Nothing new and nothing outstanding: no kick.
    port.flush();
    assert_eq!(wire.tx_kicks(), 10);
}

#[test]
fn backlog_left_by_a_partial_kick_is_kicked_again() {
    let u = umem(512);
    let mut cache = PoolCache::new(&u, 256);
    let (mut port, mut wire) = sim_port(&u, &mut cache, small());
    wire.set_tx_needs_wakeup(true);
    let mut batch = FrameBuf::with_capacity(64);
    assert!(cache.alloc_bulk(&mut batch, 64, 60));
    port.tx_burst(&mut cache, &mut batch);
    port.flush(); // kernel (sim) has not consumed anything yet: backlog remains
    assert_eq!(wire.tx_kicks(), 1);
    wire.transmit(32, |_| {}); // copy mode sends at most 32 per kick
    port.flush(); // nothing new submitted, but 32 are still outstanding
    assert_eq!(wire.tx_kicks(), 2);
    wire.transmit(32, |_| {});
    // Nothing new and nothing outstanding any more: no third kick, however often we flush.
    port.flush();
    port.flush();
    assert_eq!(wire.tx_kicks(), 2);
}

#[test]
fn null_port_hands_out_and_takes_back_pool_frames() {
    let u = umem(256);
    let mut cache = PoolCache::new(&u, 128);
    let mut p = NullPort::new(64);
    let mut batch = FrameBuf::with_capacity(64);
    for _ in 0..100 {
        assert_eq!(p.rx_burst(&mut cache, &mut batch, 64), 64);
        assert!(batch.iter().all(|f| f.len() == 64));
        assert_eq!(p.tx_burst(&mut cache, &mut batch), 64);
    }
    assert_eq!(p.counters().rx_packets, 6400);
    assert_eq!(p.counters().tx_packets, 6400);
    assert_eq!(p.counters().tx_bytes, 6400 * 64);
    assert_eq!(u.free_count() + cache.len(), 256);
}

#[test]
fn sim_kernel_on_another_thread() {
    let u = umem(2048);
    let mut cache = PoolCache::new(&u, 512);
    let (mut port, mut wire) = sim_port(&u, &mut cache, SimConfig::default());
    wire.set_tx_needs_wakeup(true);
    const N: usize = 20_000;
    std::thread::scope(|s| {
        let h = s.spawn(move || {
            let mut got = Vec::with_capacity(N);
            let mut sent = 0u32;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while got.len() < N && std::time::Instant::now() < deadline {
                if (sent as usize) < N && wire.inject(&pkt(sent, 60)) {
                    sent += 1;
                }
                wire.transmit(64, |b| got.push(b.to_vec()));
            }
            got
        });
        let mut batch = FrameBuf::with_capacity(64);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut fwd = 0;
        while fwd < N && std::time::Instant::now() < deadline {
            port.maintain(&mut cache);
            port.rx_burst(&mut cache, &mut batch, 64);
            fwd += port.tx_burst(&mut cache, &mut batch);
            cache.free_burst(&mut batch);
            port.flush();
        }
        let got = h.join().unwrap();
        assert_eq!(got.len(), N);
        for (i, b) in got.iter().enumerate() {
            assert_eq!(b, &pkt(i as u32, 60), "packet {i} in order and intact");
        }
    });
}

#[test]
fn rx_kicks_only_when_the_fill_ring_asks() {
    let u = umem(512);
    let mut cache = PoolCache::new(&u, 256);
    let (mut port, wire) = sim_port(&u, &mut cache, small());
    let mut batch = FrameBuf::with_capacity(64);
    // Flag clear: empty polls and idle kicks make no syscall.
    for _ in 0..5 {
        assert_eq!(port.rx_burst(&mut cache, &mut batch, 64), 0);
        port.idle_kick();
    }
    assert_eq!((wire.rx_kicks(), port.counters().rx_wakeups), (0, 0));
    // Flag set (a zero-copy driver out of fill entries): every empty poll and idle kick wakes
    // the kernel once.
    wire.set_fill_needs_wakeup(true);
    assert!(port.fill_needs_wakeup());
    assert_eq!(port.rx_burst(&mut cache, &mut batch, 64), 0);
    port.idle_kick();
    assert_eq!((wire.rx_kicks(), port.counters().rx_wakeups), (2, 2));
    wire.set_fill_needs_wakeup(false);
    port.idle_kick();
    assert_eq!(wire.rx_kicks(), 2);
}

#[test]
fn without_need_wakeup_every_flush_with_news_kicks() {
    let u = umem(512);
    let mut cache = PoolCache::new(&u, 256);
    let cfg = SimConfig { need_wakeup: false, ..small() };
    let (mut port, mut wire) = sim_port(&u, &mut cache, cfg);
    wire.set_tx_needs_wakeup(false); // ignored by a port without need_wakeup
    wire.set_fill_needs_wakeup(true); // likewise
    let mut batch = FrameBuf::with_capacity(64);
    for round in 1..=5 {
        assert!(cache.alloc_bulk(&mut batch, 8, 60));
        port.tx_burst(&mut cache, &mut batch);
        port.flush();
        assert_eq!(wire.tx_kicks(), round);
        wire.transmit(64, |_| {});
        port.flush(); // nothing new, nothing outstanding
        assert_eq!(wire.tx_kicks(), round);
        port.maintain(&mut cache);
    }
    assert_eq!(port.rx_burst(&mut cache, &mut batch, 64), 0);
    port.idle_kick();
    assert_eq!(wire.rx_kicks(), 0, "no RX kicks without need_wakeup (and without busy polling)");
}

#[test]
fn invalid_fill_addresses_are_skipped_like_the_kernel_does() {
    let u = umem(64);
    let mut cache = PoolCache::new(&u, 64);
    let cfg = SimConfig { rx_size: 128, tx_size: 64, fill_size: 128, comp_size: 64, need_wakeup: true };
    let (mut port, mut wire) = sim_port(&u, &mut cache, cfg);
    assert_eq!(wire.fill_pending(), 64, "all 64 chunks posted");
    assert!(port.post_invalid_fill(64 * 2048));
    for i in 0..64 {
        assert!(wire.inject(&pkt(i, 60)));
    }
    // The 65th consumes the invalid entry, skips it, and finds the ring empty.
    assert!(!wire.inject(&pkt(64, 60)));
    let s = wire.stats();
    assert_eq!((s.rx_delivered, s.rx_fill_invalid_descs, s.rx_dropped_fill_empty), (64, 1, 1));
    let mut batch = FrameBuf::with_capacity(64);
    assert_eq!(port.rx_burst(&mut cache, &mut batch, 64), 64);
    assert_eq!(port.counters().rx_invalid_descs, 0, "no invalid RX descriptor ever reached the port");
    cache.free_burst(&mut batch);
}

/// `close` on a simulated port: frames left on every ring come back, once.
#[test]
fn close_returns_every_chunk_once() {
    let u = umem(512);
    let mut cache = PoolCache::new(&u, 256);
    let (mut port, mut wire) = sim_port(&u, &mut cache, small());
    // 10 received and sent back, of which the wire transmits 4 (completions not reaped); 5
    // more left on the RX ring; the fill ring partly consumed.
    for i in 0..15 {
        assert!(wire.inject(&pkt(i, 60)));
    }
    let mut batch = FrameBuf::with_capacity(64);
    assert_eq!(port.rx_burst(&mut cache, &mut batch, 10), 10);
    assert_eq!(port.tx_burst(&mut cache, &mut batch), 10);
    assert_eq!(wire.transmit(4, |_| {}), 4);
    let r = port.close(&mut cache, std::time::Duration::from_secs(1));
    assert_eq!(r, nic::port::Reclaimed { rx: 5, completions: 4, tx_unsent: 6, fill: 128 - 15, kept_by_kernel: 0 });
    drop(cache);
    assert_eq!(u.check_free_list(), Ok(512));
}
