//! Buckets (one cache line of 8 signature + index slots), the seeded key hash, and where a key
//! may live (its two candidate buckets and its signature).

use std::hash::BuildHasher;

use super::key::FlowKey;

/// Slots per bucket.
pub(super) const SLOTS: usize = 8;
/// Signature of an empty slot (a key's signature is never 0).
pub(super) const EMPTY: u16 = 0;

/// One cache line: 8 slots, each a 16-bit signature (high bits of the key's hash; 0 = empty)
/// and the 32-bit index of the entry. 48 bytes used, padded to 64 and aligned to 64.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(64))]
pub(super) struct Bucket {
    pub(super) sig: [u16; SLOTS],
    pub(super) ix: [u32; SLOTS],
}

const _: () = assert!(size_of::<Bucket>() == 64 && align_of::<Bucket>() == 64);

impl Bucket {
    /// Bit `s` set for every slot `s` whose signature is `sig` (compiles to one vector compare).
    #[inline]
    pub(super) fn matches(&self, sig: u16) -> u32 {
        let mut m = 0;
        for (s, &x) in self.sig.iter().enumerate() {
            m |= u32::from(x == sig) << s;
        }
        m
    }

    /// Bit `s` set for every empty slot.
    #[inline]
    pub(super) fn empties(&self) -> u32 {
        self.matches(EMPTY)
    }

    #[inline]
    pub(super) fn set(&mut self, slot: usize, sig: u16, ix: u32) {
        self.sig[slot] = sig;
        self.ix[slot] = ix;
    }

    #[inline]
    pub(super) fn clear(&mut self, slot: usize) {
        self.sig[slot] = EMPTY;
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
/// key's five words, each xored with a per-table secret, as in foldhash/wyhash. Three
/// independent products and a final one: a few nanoseconds. With a random seed, an attacker who
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
