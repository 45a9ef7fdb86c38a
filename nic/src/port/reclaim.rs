//! Taking back, after a run, the UMEM chunks that stopped ports' rings still reference, so that
//! every chunk is on the free list again and a leak anywhere above (an app, the engine's
//! dispatch, a handoff ring) shows as a shortfall of [`Umem::free_count`].
//!
//! A stopped port's chunks are in one of four places:
//! * **RX ring** — received by the kernel after the lcore's last poll: entries between our
//!   consumer index and the kernel's producer index;
//! * **completion ring** — sent, completion not reaped: likewise;
//! * **fill ring** — posted for the kernel to receive into and not taken. The kernel publishes
//!   its fill consumer index lazily (only when its cached view of the ring runs dry), so the
//!   published window `[consumer, producer)` also holds entries it has already taken. What it
//!   still holds is known by count instead: every chunk posted on the fill ring comes back on
//!   the RX ring once, so it holds `posted − received` of them, and because it takes entries in
//!   ring order those are the *newest* `posted − received` entries of the ring;
//! * **TX ring** — posted for sending, not sent: by the same argument the newest
//!   `posted − completed` entries.
//!
//! The count argument is exact unless the kernel keeps a taken chunk on its own internal free
//! list (a driver that allocates from the fill ring in batches, in zero-copy mode; copy mode
//! on 6.18 checks for RX room before taking a chunk, and runs on veth with RX-ring-full drops
//! came out exact): then the newest-entries window reaches back over chunks that did come
//! back. Those are already on our free list and are counted as [`Reclaimed::already_free`]
//! rather than added twice; the kept chunk itself cannot be named and stays missing (the
//! caller sees the shortfall).
//!
//! The caller guarantees quiescence: the lcores driving the ports have stopped (their caches
//! flushed to the free list) and the XDP program no longer redirects to the sockets.

use crate::port::{AnyPort, RingPort};
use crate::ring::XdpDesc;
use crate::umem::Umem;

/// What [`reclaim`] found, by where (chunk counts).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reclaimed {
    /// Received, never taken by the app.
    pub rx: u64,
    /// Sent, completion not reaped.
    pub completions: u64,
    /// Posted on the fill ring, not taken by the kernel.
    pub fill: u64,
    /// Posted on the TX ring, not sent.
    pub tx: u64,
    /// Ring entries whose chunk was already free (not added twice; see the module docs).
    pub already_free: u64,
    /// Ring entries that are not an address of this UMEM (not added).
    pub invalid: u64,
    /// Chunks that were on the free list twice before reclaiming (a double free).
    pub free_list_duplicates: u64,
}

impl Reclaimed {
    /// Chunks put back on the free list.
    pub fn total(&self) -> u64 {
        self.rx + self.completions + self.fill + self.tx
    }
}

/// Where a ring entry was found.
#[derive(Clone, Copy)]
enum Source {
    Rx,
    Completion,
    Fill,
    Tx,
}

impl RingPort<'_> {
    /// Appends every (source, address) the quiescent rings still hold to `out`.
    fn held_entries(&mut self, out: &mut Vec<(Source, u64)>) {
        let rx_prod = self.rx.core.shared_prod();
        let mut pos = self.rx.core.local_cons();
        while pos != rx_prod {
            let d: XdpDesc = self.rx.core.read_pos(pos);
            out.push((Source::Rx, d.addr));
            pos = pos.wrapping_add(1);
        }
        let comp_prod = self.comp.core.shared_prod();
        let mut pos = self.comp.core.local_cons();
        while pos != comp_prod {
            out.push((Source::Completion, self.comp.core.read_pos(pos)));
            pos = pos.wrapping_add(1);
        }
        // Fill: the kernel holds posted − received chunks, the newest entries of the ring.
        let fill = &self.fill.core;
        let newest = newest_held(fill.local_prod(), rx_prod, fill.shared_cons(), fill.size());
        for pos in newest {
            out.push((Source::Fill, fill.read_pos(pos)));
        }
        // TX: posted − completed, the newest entries.
        let tx = &self.tx.core;
        for pos in newest_held(tx.local_prod(), comp_prod, tx.shared_cons(), tx.size()) {
            let d: XdpDesc = tx.read_pos(pos);
            out.push((Source::Tx, d.addr));
        }
    }
}

/// Ring positions of the `posted − returned` newest entries of a producer ring (bounded by the
/// published window and the ring size, so only slots that still hold those entries are read).
fn newest_held(posted: u32, returned: u32, shared_cons: u32, size: u32) -> impl Iterator<Item = u32> {
    let held = posted.wrapping_sub(returned);
    let window = posted.wrapping_sub(shared_cons);
    // A "negative" held count (more returned than posted) would be a kernel bug: take nothing.
    let held = if held > i32::MAX as u32 { 0 } else { held };
    let n = held.min(window).min(size);
    (0..n).map(move |i| posted.wrapping_sub(n).wrapping_add(i))
}

/// Puts every chunk the rings of `ports` still hold back on `umem`'s free list, then closes
/// the ports. Null ports hold nothing. Call only once the ports are quiescent (module docs).
pub fn reclaim<'u>(umem: &'u Umem, ports: Vec<AnyPort<'u>>) -> Reclaimed {
    let mut r = Reclaimed::default();
    let mut entries = Vec::new();
    let mut ports = ports;
    for p in &mut ports {
        if let AnyPort::Ring(rp) = p {
            rp.held_entries(&mut entries);
        }
    }
    let mut owned = vec![false; umem.frame_count() as usize];
    let index = |chunk: u64| (chunk / umem.frame_size() as u64) as usize;
    for a in umem.free_snapshot() {
        let i = index(a);
        if owned[i] {
            r.free_list_duplicates += 1;
        }
        owned[i] = true;
    }
    let mut back = Vec::with_capacity(entries.len());
    for (src, addr) in entries {
        let chunk = umem.chunk_of(addr);
        if !umem.is_chunk_addr(chunk) {
            r.invalid += 1;
            continue;
        }
        let i = index(chunk);
        if owned[i] {
            r.already_free += 1;
            continue;
        }
        owned[i] = true;
        back.push(chunk);
        match src {
            Source::Rx => r.rx += 1,
            Source::Completion => r.completions += 1,
            Source::Fill => r.fill += 1,
            Source::Tx => r.tx += 1,
        }
    }
    // Close the sockets first: from here on the kernel touches none of these chunks.
    drop(ports);
    umem.give(&back);
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::FrameBuf;
    use crate::pool::PoolCache;
    use crate::port::Port;
    use crate::sim::{sim_port, SimConfig};
    use crate::umem::UmemConfig;

    fn frame(i: u8) -> Vec<u8> {
        vec![i; 60]
    }

    #[test]
    fn newest_held_is_bounded_by_window_and_size() {
        assert_eq!(newest_held(10, 4, 2, 8).collect::<Vec<_>>(), vec![4, 5, 6, 7, 8, 9]);
        assert_eq!(newest_held(10, 4, 7, 8).collect::<Vec<_>>(), vec![7, 8, 9], "window");
        assert_eq!(newest_held(20, 0, 0, 8).count(), 8, "ring size");
        assert_eq!(newest_held(3, 5, 3, 8).count(), 0, "more returned than posted");
        // Across the u32 wrap.
        let p = 2u32;
        let v: Vec<u32> = newest_held(p, p.wrapping_sub(3), p.wrapping_sub(5), 8).collect();
        assert_eq!(v, vec![u32::MAX, 0, 1]);
    }

    /// A port that received, transmitted and left frames on every ring gives every chunk back,
    /// counted by where it was; the free list then holds all of them, once each.
    #[test]
    fn every_chunk_comes_back_from_every_ring() {
        let umem = Umem::heap(UmemConfig { frame_size: 2048, frame_count: 256, headroom: 0 }).unwrap();
        let mut cache = PoolCache::new(&umem, 64);
        let cfg = SimConfig { rx_size: 64, tx_size: 64, fill_size: 64, comp_size: 64, need_wakeup: false };
        let (mut port, mut wire) = sim_port(&umem, &mut cache, cfg);
        port.maintain(&mut cache);
        // 10 frames received; the app takes 6 and transmits them; 4 stay on the RX ring.
        for i in 0..10 {
            assert!(wire.inject(&frame(i)));
        }
        let mut got = FrameBuf::with_capacity(64);
        assert_eq!(port.rx_burst(&mut cache, &mut got, 6), 6);
        assert_eq!(port.tx_burst(&mut cache, &mut got), 6);
        // The kernel sends 2 (completions not reaped); 4 stay on the TX ring.
        assert_eq!(wire.transmit(2, |_| {}), 2);
        drop(cache); // an lcore's cache flushes when the lcore ends
        let held_by_rings = 256 - umem.free_count();
        let r = reclaim(&umem, vec![AnyPort::Ring(port)]);
        assert_eq!((r.rx, r.completions, r.tx), (4, 2, 4));
        // The fill ring was topped up to 64 and 10 were taken.
        assert_eq!(r.fill, 54);
        assert_eq!(r.total() as usize, held_by_rings);
        assert_eq!((r.already_free, r.invalid, r.free_list_duplicates), (0, 0, 0));
        assert_eq!(umem.free_count(), 256);
        let mut all = umem.free_snapshot();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 256, "each chunk once");
        drop(wire);
    }

    /// A frame the app loses (dropped without a verdict) is not found on any ring: the
    /// shortfall stays visible.
    #[test]
    fn a_leaked_frame_stays_missing() {
        let umem = Umem::heap(UmemConfig { frame_size: 2048, frame_count: 128, headroom: 0 }).unwrap();
        let mut cache = PoolCache::new(&umem, 32);
        let cfg = SimConfig { rx_size: 32, tx_size: 32, fill_size: 32, comp_size: 32, need_wakeup: false };
        let (mut port, mut wire) = sim_port(&umem, &mut cache, cfg);
        port.maintain(&mut cache);
        for i in 0..3 {
            assert!(wire.inject(&frame(i)));
        }
        let mut got = FrameBuf::with_capacity(8);
        assert_eq!(port.rx_burst(&mut cache, &mut got, 3), 3);
        // Dropping a Frame without returning it leaks its chunk (see `frame`).
        drop(got.pop().unwrap());
        cache.free_burst(&mut got);
        // Post more fill entries than were taken, so the window covers the leaked chunk.
        port.maintain(&mut cache);
        drop(cache);
        let r = reclaim(&umem, vec![AnyPort::Ring(port)]);
        assert_eq!(r.fill, 32);
        assert_eq!(umem.free_count(), 127, "the leaked chunk is still missing");
        drop(wire);
    }
}
