//! Burst lookup in stages, so that the cache misses of a whole burst overlap instead of
//! following one another (DPDK's `rte_hash_lookup_bulk` does the same).

use nic::sys::prefetch_read;

use super::bucket::Place;
use super::insert::first;
use super::{FlowIx, FlowKey, FlowTable};

/// Keys per staged pass (a longer burst is done in passes of this many).
pub const STAGE: usize = 64;

impl<V> FlowTable<V> {
    /// Looks up every key of `keys`, writing the result for `keys[i]` to `out[i]`; the same
    /// results and counters as that many [`lookup`](Self::lookup)s.
    ///
    /// Works in passes of up to [`STAGE`] keys, each in four stages, so that the cache misses
    /// of a pass overlap: hash every key and prefetch its primary bucket; compare signatures
    /// there and prefetch the first matching entry, or else the alternative bucket; compare
    /// signatures in the alternative buckets fetched and prefetch their matching entries;
    /// compare keys. A hit costs two lines (bucket, entry) unless its entry sits in its
    /// alternative bucket; a miss one bucket, or two when an entry of its primary overflowed.
    /// (Prefetching both buckets up front, as DPDK does, measured 10–15 % slower for hits at
    /// 1 M flows; a rolling pipeline, key i hashed while key i − d is compared, d = 4, 8 or 16,
    /// was no faster than these stages.)
    ///
    /// Panics if `keys` and `out` differ in length.
    pub fn lookup_burst(&mut self, keys: &[FlowKey], out: &mut [Option<FlowIx>]) {
        assert_eq!(keys.len(), out.len(), "lookup_burst: {} keys but {} results", keys.len(), out.len());
        for (k, o) in keys.chunks(STAGE).zip(out.chunks_mut(STAGE)) {
            self.lookup_pass(k, o);
        }
    }

    #[inline]
    fn lookup_pass(&mut self, keys: &[FlowKey], out: &mut [Option<FlowIx>]) {
        let mut probes = [Probe::EMPTY; STAGE];
        let probes = &mut probes[..keys.len()];
        // 1. Hash; prefetch the primary bucket.
        for (p, k) in probes.iter_mut().zip(keys) {
            *p = self.probe_start(k);
        }
        // 2. Signatures in the primary: prefetch the first matching entry, or else the
        //    alternative bucket (if an entry of the primary overflowed there).
        for p in probes.iter_mut() {
            self.probe_advance(p);
        }
        // 3. Signatures in the alternative, where the primary had none: prefetch the entry.
        for p in probes.iter_mut() {
            self.probe_advance_alt(p);
        }
        // 4. Keys (a false signature match in the primary sends the key to its alternative,
        //    read now).
        for ((o, k), p) in out.iter_mut().zip(keys).zip(probes.iter()) {
            *o = self.probe_finish(k, p);
        }
    }
}

/// A lookup split into steps, so that a caller can interleave the steps of many keys with its
/// own work instead of stalling on a whole burst's misses at once: [`FlowTable::probe_start`]
/// hashes the key and prefetches its primary bucket, [`FlowTable::probe_advance`] reads that
/// bucket's signatures and prefetches the entry (or the alternative bucket), and
/// [`FlowTable::probe_finish`] compares keys. (The l4lb starts a frame's probe while it parses
/// the frame and advances the probe of frame `j + d` while it rewrites frame `j`.)
///
/// With no insert or remove between start and finish, finish gives what
/// [`lookup`](FlowTable::lookup) gives, and counts the same. After a change it still returns
/// only an entry that holds the key, but may miss a key inserted since: a caller that changed
/// the table confirms a miss with `lookup`.
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    place: Place,
    /// Signature matches in the primary bucket, or [`Probe::UNREAD`] before `probe_advance`.
    prim: u32,
    /// Signature matches in the alternative bucket ([`Probe::UNREAD`]: not read yet; 0 also
    /// when no entry of the primary overflowed, so the key can be nowhere else).
    alt: u32,
}

impl Probe {
    const UNREAD: u32 = u32::MAX;
    const EMPTY: Probe = Probe { place: Place { prim: 0, alt: 0, sig: 0 }, prim: Probe::UNREAD, alt: Probe::UNREAD };
}

impl<V> FlowTable<V> {
    /// Step 1 of a [`Probe`]: hash `key`, prefetch its primary bucket.
    #[inline]
    pub fn probe_start(&self, key: &FlowKey) -> Probe {
        let place = self.place_of(key);
        prefetch_read(&self.buckets[place.prim]);
        Probe { place, ..Probe::EMPTY }
    }

    /// Step 2 of a [`Probe`]: read the primary bucket's signatures; prefetch the first
    /// matching entry, or else the alternative bucket if an entry of the primary overflowed.
    #[inline]
    pub fn probe_advance(&self, p: &mut Probe) {
        let b = &self.buckets[p.place.prim];
        p.prim = b.matches(p.place.sig);
        match first(p.prim) {
            Some(s) => prefetch_read(&self.entries[b.ix[s] as usize]),
            None if b.overflow == 0 => p.alt = 0,
            None => prefetch_read(&self.buckets[p.place.alt]),
        }
    }

    /// Optional step between advance and finish, for a key its primary bucket did not hold:
    /// read the alternative bucket's signatures (prefetched by advance) and prefetch the entry.
    #[inline]
    pub fn probe_advance_alt(&self, p: &mut Probe) {
        if p.prim == 0 && p.alt == Probe::UNREAD {
            let b = &self.buckets[p.place.alt];
            p.alt = b.matches(p.place.sig);
            if let Some(s) = first(p.alt) {
                prefetch_read(&self.entries[b.ix[s] as usize]);
            }
        }
    }

    /// Step 3 of a [`Probe`] (step 2 may be skipped): the entry holding `key`, counted as one
    /// lookup. `key` must be the key the probe started with.
    #[inline]
    pub fn probe_finish(&mut self, key: &FlowKey, p: &Probe) -> Option<FlowIx> {
        let pl = p.place;
        let m = if p.prim == Probe::UNREAD { self.buckets[pl.prim].matches(pl.sig) } else { p.prim };
        let r = self.find_in(pl.prim, m, key).or_else(|| {
            let am = if p.alt == Probe::UNREAD { self.alt_matches(pl) } else { p.alt };
            self.find_in(pl.alt, am, key)
        });
        self.count_lookups(1, u64::from(r.is_some()));
        r
    }
}
