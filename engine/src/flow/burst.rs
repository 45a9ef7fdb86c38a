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
    /// Works in passes of up to [`STAGE`] keys, each in three stages: hash every key and
    /// prefetch both its buckets; compare signatures (the alternative bucket's only when the
    /// primary has no match) and prefetch the entry of the first match; compare keys.
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
        let mut places = [Place { prim: 0, alt: 0, sig: 0 }; STAGE];
        let places = &mut places[..keys.len()];
        for (p, k) in places.iter_mut().zip(keys) {
            *p = self.place_of(k);
            prefetch_read(&self.buckets[p.prim]);
            prefetch_read(&self.buckets[p.alt]);
        }
        // Signature matches per key: primary bucket, and the alternative only when the primary
        // has none (most entries sit in their primary bucket: no wait on the other line).
        let mut masks = [(0u32, 0u32); STAGE];
        let masks = &mut masks[..keys.len()];
        for (m, p) in masks.iter_mut().zip(places.iter()) {
            let bp = &self.buckets[p.prim];
            m.0 = bp.matches(p.sig);
            let candidate = match first(m.0) {
                Some(s) => Some(bp.ix[s]),
                None => {
                    let ba = &self.buckets[p.alt];
                    m.1 = ba.matches(p.sig);
                    first(m.1).map(|s| ba.ix[s])
                }
            };
            if let Some(ix) = candidate {
                prefetch_read(&self.entries[ix as usize]);
            }
        }
        let mut hits = 0;
        for (((o, k), p), m) in out.iter_mut().zip(keys).zip(places.iter()).zip(masks.iter()) {
            *o = self.find_in(p.prim, m.0, k).or_else(|| {
                // A false signature match in the primary: the alternative was not looked at yet.
                let am = if m.0 != 0 { self.buckets[p.alt].matches(p.sig) } else { m.1 };
                self.find_in(p.alt, am, k)
            });
            hits += u64::from(o.is_some());
        }
        self.count_lookups(keys.len() as u64, hits);
    }
}
