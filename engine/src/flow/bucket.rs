//! Buckets (one cache line of 8 signature + index slots), the seeded key hash, and where a key
//! may live (its two candidate buckets and its signature).

use std::hash::BuildHasher;

use super::key::FlowKey;

/// Slots per bucket.
pub(super) const SLOTS: usize = 8;
/// Signature of an empty slot (a key's signature is never 0).
pub(super) const EMPTY: u16 = 0;

/// One cache line: 8 slots, each a 16-bit signature (high bits of the key's hash; 0 = empty)
/// and the 32-bit index of the entry, plus which slots hold an entry that is in its
/// alternative bucket, and how many entries whose *primary* is this bucket live in their
/// alternative (`overflow`): when it is 0, a key absent from this bucket is absent from the
/// table, and a miss reads one line instead of two. 53 bytes used, padded to 64 and aligned
/// to 64. The signatures are kept as two words of four 16-bit lanes (slot `s` in word `s / 4`,
/// lane `s % 4`), so that comparing all eight is a few word operations (plain integer code, no SIMD intrinsics).
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(64))]
pub(super) struct Bucket {
    sigs: [u64; 2],
    pub(super) ix: [u32; SLOTS],
    /// Entries whose primary bucket is this one, sitting in their alternative.
    pub(super) overflow: u32,
    /// Bit `s`: the entry in slot `s` is in its alternative bucket (this one).
    in_alt: u8,
}

const _: () = assert!(size_of::<Bucket>() == 64 && align_of::<Bucket>() == 64);

/// A one in every 16-bit lane.
const LANES: u64 = 0x0001_0001_0001_0001;

/// Bit `i` set for every zero 16-bit lane `i` of `x` (SWAR, exact: no carry crosses a lane).
#[inline]
fn zero_lanes(x: u64) -> u32 {
    const LOW15: u64 = 0x7fff * LANES;
    // Bit 15 of a lane ends up set iff the lane is zero.
    let t = !(((x & LOW15) + LOW15) | x | LOW15);
    // Gather bits 15, 31, 47, 63 into bits 48..=51 with one multiply (no two partial products
    // meet, so there are no carries), then shift them down.
    const GATHER: u64 = (1 << 48) | (1 << 33) | (1 << 18) | (1 << 3);
    ((t >> 15).wrapping_mul(GATHER) >> 48) as u32
}

impl Bucket {
    /// Bit `s` set for every slot `s` whose signature is `sig`.
    #[inline]
    pub(super) fn matches(&self, sig: u16) -> u32 {
        let b = u64::from(sig) * LANES;
        zero_lanes(self.sigs[0] ^ b) | zero_lanes(self.sigs[1] ^ b) << 4
    }

    /// Bit `s` set for every empty slot.
    #[inline]
    pub(super) fn empties(&self) -> u32 {
        self.matches(EMPTY)
    }

    /// Signature in slot `s`.
    #[inline]
    pub(super) fn sig(&self, s: usize) -> u16 {
        (self.sigs[s / 4] >> (16 * (s % 4))) as u16
    }

    /// Whether the entry in slot `s` is in its alternative bucket.
    #[inline]
    pub(super) fn in_alt(&self, s: usize) -> bool {
        self.in_alt & (1 << s) != 0
    }

    /// Fills slot `s`. (The caller keeps the primary bucket's `overflow` in step.)
    #[inline]
    pub(super) fn set(&mut self, s: usize, sig: u16, ix: u32, in_alt: bool) {
        let shift = 16 * (s % 4);
        let w = &mut self.sigs[s / 4];
        *w = (*w & !(0xffff << shift)) | u64::from(sig) << shift;
        self.ix[s] = ix;
        self.in_alt = (self.in_alt & !(1 << s)) | u8::from(in_alt) << s;
    }

    /// Empties slot `s`. (The caller keeps the primary bucket's `overflow` in step.)
    #[inline]
    pub(super) fn clear(&mut self, s: usize) {
        self.set(s, EMPTY, 0, false);
    }
}

/// Where a key may be: its primary bucket (low hash bits), its alternative bucket (the primary
/// xor a non-zero offset derived from the signature, so either bucket and the signature give
/// the other, and entries can move without rereading their key), and its signature.
#[derive(Debug, Clone, Copy)]
pub(super) struct Place {
    pub(super) prim: usize,
    pub(super) alt: usize,
    pub(super) sig: u16,
}

/// The other candidate bucket of an entry with signature `sig` that sits in bucket `b`.
/// `mask` is the bucket count minus one (at least 1), so the offset is never 0.
#[inline]
pub(super) fn other_bucket(b: usize, sig: u16, mask: usize) -> usize {
    b ^ ((usize::from(sig).wrapping_mul(0x9e37_79b1) | 1) & mask)
}

/// The table's key hash: a multiply-fold (128-bit product, high half xor low half) over the
/// key's five words, each xored with a per-table secret, as in foldhash/wyhash: three
/// independent products (addresses; addresses; ports, protocol and family) and a final one
/// over them: a few nanoseconds. The last word gets a product of its own: folding it straight
/// into the final product (one multiply less) leaves keys that differ only in a port with
/// about 10 k distinct signatures out of 65 k (`hash_spreads_structured_keys`). With a random seed, an attacker who
/// sees no hash output cannot aim many keys at one bucket.
#[derive(Debug, Clone, Copy)]
pub(super) struct FlowHasher {
    secret: [u64; 6],
    /// Hash bits kept (all of them except in collision tests).
    mask: u64,
}

#[inline]
fn fold(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// splitmix64: expands one seed into well-mixed secrets.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl FlowHasher {
    pub(super) fn with_seed(seed: u64, mask: u64) -> FlowHasher {
        let mut st = seed;
        FlowHasher { secret: std::array::from_fn(|_| splitmix(&mut st) | 1), mask }
    }

    /// A seed from the standard library's per-process random keys (`RandomState`).
    pub(super) fn random_seed() -> u64 {
        std::collections::hash_map::RandomState::new().hash_one(0x666c_6f77_u64)
    }

    #[inline]
    pub(super) fn hash(&self, k: &FlowKey) -> u64 {
        let [w0, w1, w2, w3, w4] = *k.words();
        let s = &self.secret;
        let a = fold(w0 ^ s[0], w1 ^ s[1]);
        let b = fold(w2 ^ s[2], w3 ^ s[3]);
        let c = fold(w4 ^ s[4], s[5]);
        fold(a ^ s[5], b ^ c) & self.mask
    }
}

/// The place of a key with hash `h` in a table of `mask + 1` buckets.
#[inline]
pub(super) fn place(h: u64, mask: usize) -> Place {
    let sig = (h >> 48) as u16;
    let sig = sig | u16::from(sig == EMPTY);
    let prim = h as usize & mask;
    Place { prim, alt: other_bucket(prim, sig, mask), sig }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The word-parallel compare equals a slot-by-slot one, whatever the signatures.
        #[test]
        fn matches_equals_slot_by_slot(sigs in any::<[u16; SLOTS]>(), pick in 0..SLOTS + 1, other in any::<u16>()) {
            let mut b = Bucket::default();
            for (s, &x) in sigs.iter().enumerate() {
                b.set(s, x, s as u32, s % 3 == 0);
            }
            let probe = if pick < SLOTS { sigs[pick] } else { other };
            let want = (0..SLOTS).filter(|&s| sigs[s] == probe).fold(0, |m, s| m | 1 << s);
            prop_assert_eq!(b.matches(probe), want);
            prop_assert_eq!(b.empties(), (0..SLOTS).filter(|&s| sigs[s] == EMPTY).fold(0, |m, s| m | 1 << s));
            for (s, &x) in sigs.iter().enumerate() {
                prop_assert_eq!((b.sig(s), b.ix[s], b.in_alt(s)), (x, s as u32, s % 3 == 0));
            }
            b.clear(3);
            prop_assert_eq!(b.sig(3), EMPTY);
            prop_assert_eq!(b.empties() & (1 << 3), 1 << 3);
        }
    }

    #[test]
    fn matches_sees_every_lane_value() {
        let mut b = Bucket::default();
        for s in 0..SLOTS {
            b.set(s, [0x8000, 0xffff, 1, 0x7fff, 0x0100, 0x8001, 0xfffe, 2][s], 0, false);
        }
        for (s, sig) in [0x8000u16, 0xffff, 1, 0x7fff, 0x0100, 0x8001, 0xfffe, 2].into_iter().enumerate() {
            assert_eq!(b.matches(sig), 1 << s, "{sig:#x}");
        }
        assert_eq!(b.empties(), 0);
        assert_eq!(Bucket::default().empties(), 0xff);
    }
}
