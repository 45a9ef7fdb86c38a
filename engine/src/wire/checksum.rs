//! The internet checksum (RFC 1071), the IPv4/IPv6 pseudo-header sums, and incremental updates
//! (RFC 1624).
//!
//! Owns the arithmetic only; the views decide which bytes are summed. Every function is total (no
//! panics for any input) and allocation-free.
//!
//! Conventions: [`data`], [`combine`] and the pseudo-header functions return the *folded
//! one's-complement sum* (not yet inverted). A header checksum field holds `!sum`; a received
//! header is valid when the sum over it, checksum field included, is `0xffff`.
//!
//! Incremental updates (RFC 1624, eqn. 3: `HC' = ~(~HC + ~m + m')`) come in two forms:
//! [`update_u16`] / [`update_u32`] for one changed field, and [`Delta`], which accumulates any
//! number of changed words and applies them with one fold. A NAT computes the address change once
//! as a `Delta` and applies it to the IPv4 header checksum and (through the pseudo header) to the
//! TCP/UDP checksum.
//!
//! [`data`] reads 16 bytes per iteration as two native-endian `u64` words into two independent
//! accumulators with end-around carry, and byte-swaps the folded result once at the end. This is
//! the byte-order independence of RFC 1071 §2(B): the one's-complement sum of byte-swapped words
//! is the byte-swapped sum.

use core::net::{Ipv4Addr, Ipv6Addr};

use super::ip::IpProtocol;

/// Adds two `u64` in one's-complement arithmetic (end-around carry).
#[inline(always)]
const fn add_u64(acc: u64, word: u64) -> u64 {
    let (sum, carry) = acc.overflowing_add(word);
    // If the add overflowed, `sum <= u64::MAX - 1`, so adding the carry back cannot overflow.
    sum + carry as u64
}

/// Folds a 64-bit one's-complement accumulator down to 16 bits, without branches.
///
/// `2^32 ≡ 2^16 ≡ 1 (mod 0xffff)`, so adding the halves keeps the value modulo `0xffff`; a
/// non-zero input stays non-zero. The bounds after each step: `< 2^33`, `<= 0x2fffe`,
/// `<= 0x10001`, `<= 0xffff`.
#[inline]
const fn fold(acc: u64) -> u16 {
    let a = (acc >> 32) + (acc & 0xffff_ffff);
    let b = (a >> 16) + (a & 0xffff);
    let c = (b >> 16) + (b & 0xffff);
    ((c >> 16) + (c & 0xffff)) as u16
}

/// The folded one's-complement sum of `bytes`, read as big-endian 16-bit words (an odd final
/// byte is padded with a zero byte, as RFC 1071 says).
///
/// Returns `0` only for all-zero input. The checksum to store in a header is `!data(..)` (or
/// `!combine(&[pseudo, data(..)])`).
#[inline]
pub fn data(bytes: &[u8]) -> u16 {
    let mut acc0: u64 = 0;
    let mut acc1: u64 = 0;
    let mut chunks = bytes.chunks_exact(16);
    for chunk in &mut chunks {
        let (lo, hi) = chunk.split_at(8);
        acc0 = add_u64(acc0, word(lo));
        acc1 = add_u64(acc1, word(hi));
    }
    let rest = chunks.remainder();
    let (eight, tail) = rest.split_at(rest.len() & !7);
    if !eight.is_empty() {
        acc0 = add_u64(acc0, word(eight));
    }
    if !tail.is_empty() {
        let mut padded = [0u8; 8];
        for (dst, src) in padded.iter_mut().zip(tail) {
            *dst = *src;
        }
        acc1 = add_u64(acc1, u64::from_ne_bytes(padded));
    }
    // Summing native-endian words gives the byte-swapped sum on little-endian machines;
    // `from_be` swaps it back there and is the identity on big-endian ones.
    u16::from_be(fold(add_u64(acc0, acc1)))
}

/// Reads an eight-byte slice as a native-endian `u64` (callers pass exactly eight bytes).
#[inline(always)]
fn word(bytes: &[u8]) -> u64 {
    bytes.try_into().map_or(0, u64::from_ne_bytes)
}

/// One's-complement sum of two folded sums.
#[inline]
pub const fn add(a: u16, b: u16) -> u16 {
    fold(a as u64 + b as u64)
}

/// One's-complement sum of several folded sums (for example a pseudo-header sum and a
/// [`data`] sum).
#[inline]
pub fn combine(sums: &[u16]) -> u16 {
    fold(sums.iter().map(|&s| u64::from(s)).sum())
}

/// Sum of the IPv4 pseudo header: source, destination, zero, protocol, upper-layer length.
///
/// `length` is the length of the UDP datagram or TCP segment (header and payload).
#[inline]
pub fn pseudo_header_v4(src: &Ipv4Addr, dst: &Ipv4Addr, protocol: IpProtocol, length: u32) -> u16 {
    let s = u32::from(*src);
    let d = u32::from(*dst);
    let sum = u64::from(s >> 16)
        + u64::from(s & 0xffff)
        + u64::from(d >> 16)
        + u64::from(d & 0xffff)
        + u64::from(protocol.0)
        + u64::from(length >> 16)
        + u64::from(length & 0xffff);
    fold(sum)
}

/// Sum of the IPv6 pseudo header (RFC 8200 §8.1): source, destination, upper-layer packet
/// length (32 bits), three zero bytes, next header.
#[inline]
pub fn pseudo_header_v6(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: IpProtocol, length: u32) -> u16 {
    let s = u128::from(*src);
    let d = u128::from(*dst);
    let sum =
        sum_u128(s) + sum_u128(d) + u64::from(length >> 16) + u64::from(length & 0xffff) + u64::from(next_header.0);
    fold(sum)
}

/// Sum of the eight 16-bit words of a `u128` (no folding; at most 8 * 0xffff).
#[inline]
fn sum_u128(v: u128) -> u64 {
    (0..8).map(|i| ((v >> (16 * i)) & 0xffff) as u64).sum()
}

/// Updates a stored checksum after a 16-bit word of the covered data changed from `old` to
/// `new` (RFC 1624, eqn. 3: `HC' = ~(~HC + ~m + m')`).
///
/// `checksum` and the result are the values stored in the header (already inverted). The result
/// verifies exactly as a full recomputation would; it can differ from one only in the
/// representation of zero (`0x0000` vs `0xffff`), which both verify. See [`Delta::apply`] for when
/// it is bit-identical.
///
/// For a UDP-over-IPv4 checksum of `0` ("no checksum"), leave the field alone instead of calling
/// this.
#[inline]
pub const fn update_u16(checksum: u16, old: u16, new: u16) -> u16 {
    Delta::ZERO.add_u16(old, new).apply(checksum)
}

/// Updates a stored checksum after a 32-bit field (an IPv4 address, a TCP sequence number)
/// changed from `old` to `new`. Same rules as [`update_u16`]; the field must start at an even
/// offset of the covered data.
#[inline]
pub const fn update_u32(checksum: u16, old: u32, new: u32) -> u16 {
    Delta::ZERO.add_u32(old, new).apply(checksum)
}

/// The change of a one's-complement sum when some 16-bit words of the covered data change:
/// `Σ (~m + m')` over the changed words `m → m'`, kept unfolded (with end-around carry).
///
/// Build it with the `add_*` methods (each changed field must start at an even offset of the
/// covered data), then [`apply`](Self::apply) it to every checksum that covers those words. An
/// unchanged word (`old == new`) adds `0xffff`, the one's-complement "negative zero", and leaves
/// the result unchanged. `Copy` and `const`: extending a delta returns a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Delta {
    sum: u64,
}

impl Delta {
    /// No change.
    pub const ZERO: Self = Self { sum: 0 };

    /// Adds the change of one 16-bit word.
    #[inline]
    #[must_use]
    pub const fn add_u16(self, old: u16, new: u16) -> Self {
        Self { sum: add_u64(self.sum, !old as u64 + new as u64) }
    }

    /// Adds the change of a 32-bit field (two words).
    ///
    /// Summed 32 bits at a time: `!old + new` over `u32` is congruent modulo `0xffff` to the sum
    /// of the two words' changes (`2^16 ≡ 1` and `0xffff_ffff ≡ 0`), and is zero exactly when
    /// both words' terms are, so the result is identical to two [`Self::add_u16`].
    #[inline]
    #[must_use]
    pub const fn add_u32(self, old: u32, new: u32) -> Self {
        Self { sum: add_u64(self.sum, !old as u64 + new as u64) }
    }

    /// Adds the change of a 128-bit field (eight words), such as an IPv6 address.
    #[inline]
    #[must_use]
    pub const fn add_u128(self, old: u128, new: u128) -> Self {
        self.add_u32((old >> 96) as u32, (new >> 96) as u32)
            .add_u32((old >> 64) as u32, (new >> 64) as u32)
            .add_u32((old >> 32) as u32, (new >> 32) as u32)
            .add_u32(old as u32, new as u32)
    }

    /// Adds another delta (changes to more words of the same covered data).
    #[inline]
    #[must_use]
    pub const fn add(self, other: Self) -> Self {
        Self { sum: add_u64(self.sum, other.sum) }
    }

    /// Applies the change to a stored checksum (the inverted value in the header):
    /// `HC' = ~(~HC + delta)` (RFC 1624, eqn. 3).
    ///
    /// When `checksum` is the value a full computation stored (`!sum` of data that is not all
    /// zero, so never `0xffff`), the result is **bit-identical** to a full recomputation over the
    /// changed data: both folded sums lie in `1..=0xffff` and are congruent modulo `0xffff`. Every
    /// IPv4 header, TCP/UDP pseudo header and ICMP error message has a non-zero word, so this holds
    /// for them. A wrong checksum stays exactly as wrong (the receiver still detects it).
    #[inline]
    pub const fn apply(self, checksum: u16) -> u16 {
        !fold(add_u64(!checksum as u64, self.sum))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The textbook definition, 16 bits at a time.
    fn naive(bytes: &[u8]) -> u16 {
        let mut sum: u64 = 0;
        for pair in bytes.chunks(2) {
            let hi = u64::from(pair[0]) << 8;
            let lo = pair.get(1).map_or(0, |&b| u64::from(b));
            sum += hi | lo;
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(data(&bytes), 0xddf2);
        assert_eq!(naive(&bytes), 0xddf2);
    }

    #[test]
    fn known_ipv4_header() {
        // A classic example header (checksum field b861 included): sums to ffff.
        let hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
            0x00, 0xc7,
        ];
        assert_eq!(data(&hdr), 0xffff);
        let mut zeroed = hdr;
        zeroed[10] = 0;
        zeroed[11] = 0;
        assert_eq!(!data(&zeroed), 0xb861);
    }

    #[test]
    fn edge_lengths_and_values() {
        assert_eq!(data(&[]), 0);
        assert_eq!(data(&[0xab]), 0xab00);
        assert_eq!(data(&[0xff; 2]), 0xffff);
        assert_eq!(data(&[0; 100]), 0);
        // Many all-ones words: the accumulators overflow and carry around many times.
        assert_eq!(data(&[0xff; 4096]), 0xffff);
        for len in 0..64 {
            let bytes: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(37) ^ 0x5a).collect();
            assert_eq!(data(&bytes), naive(&bytes), "len {len}");
        }
    }

    #[test]
    fn pseudo_headers_match_their_byte_layout() {
        let s4 = Ipv4Addr::new(192, 168, 0, 1);
        let d4 = Ipv4Addr::new(10, 255, 0, 254);
        let mut v4 = Vec::new();
        v4.extend_from_slice(&s4.octets());
        v4.extend_from_slice(&d4.octets());
        v4.extend_from_slice(&[0, 17, 0x05, 0xdc]);
        assert_eq!(pseudo_header_v4(&s4, &d4, IpProtocol::UDP, 1500), naive(&v4));

        let s6: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let d6: Ipv6Addr = "fe80::ffff:1234:5678:9abc".parse().unwrap();
        let mut v6 = Vec::new();
        v6.extend_from_slice(&s6.octets());
        v6.extend_from_slice(&d6.octets());
        v6.extend_from_slice(&70000u32.to_be_bytes());
        v6.extend_from_slice(&[0, 0, 0, 6]);
        assert_eq!(pseudo_header_v6(&s6, &d6, IpProtocol::TCP, 70000), naive(&v6));
    }

    #[test]
    fn combine_and_add_agree() {
        assert_eq!(combine(&[]), 0);
        assert_eq!(combine(&[0xffff, 0x0001]), 0x0001);
        assert_eq!(add(0xffff, 0x0001), 0x0001);
        assert_eq!(combine(&[0x8000, 0x8000, 0x1234]), add(add(0x8000, 0x8000), 0x1234));
    }

    /// Sets the checksum of a buffer whose checksum field is at `at`, returns the stored value.
    fn fill(buf: &mut [u8], at: usize) -> u16 {
        buf[at..at + 2].copy_from_slice(&[0, 0]);
        let c = !data(buf);
        buf[at..at + 2].copy_from_slice(&c.to_be_bytes());
        c
    }

    fn equal_mod_zero(a: u16, b: u16) -> bool {
        a == b || (a | b == 0xffff && (a == 0 || b == 0))
    }

    /// The branchless fold against the textbook loop, at the edges and on random values.
    #[test]
    fn fold_matches_the_loop() {
        fn looped(mut acc: u64) -> u16 {
            while acc > 0xffff {
                acc = (acc & 0xffff) + (acc >> 16);
            }
            acc as u16
        }
        let edges = [0, 1, 0xffff, 0x1_0000, 0x1_0001, 0x2_fffe, 0xffff_ffff, 0x1_0000_0000, u64::MAX, u64::MAX - 1];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for v in edges.into_iter().chain((0..10_000).map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x >> (x & 63)
        })) {
            assert_eq!(fold(v), looped(v), "{v:#x}");
        }
    }

    /// A few words, all changed, some to zero and from 0xffff: the delta applied once equals
    /// a full recomputation bit for bit.
    #[test]
    fn delta_is_bit_identical_to_recompute() {
        let mut buf = [0x45u8, 0x00, 0xff, 0xff, 0x12, 0x34, 0x00, 0x00, 0xab, 0xcd, 0x00, 0x01];
        let stored = fill(&mut buf, 6);
        let new_words = [(0usize, 0x0000u16), (2, 0x0000), (4, 0xffff), (8, 0x5432), (10, 0xfffe)];
        let mut d = Delta::ZERO;
        for (at, new) in new_words {
            let old = u16::from_be_bytes([buf[at], buf[at + 1]]);
            d = d.add_u16(old, new);
            buf[at..at + 2].copy_from_slice(&new.to_be_bytes());
        }
        let updated = d.apply(stored);
        assert_eq!(updated, fill(&mut buf, 6));
        assert_eq!(Delta::ZERO.apply(0x1234), 0x1234);
        assert_eq!(Delta::ZERO.add_u16(7, 7).apply(0x1234), 0x1234);
    }

    proptest! {
        /// A delta of random changes to random words, applied once, is bit-identical to a full
        /// recomputation (the stored checksum came from a full computation), and applying the
        /// reverse delta restores the original checksum.
        #[test]
        fn delta_matches_full_recompute(
            mut buf in proptest::collection::vec(any::<u8>(), 4..80),
            changes in proptest::collection::vec((any::<usize>(), any::<u16>()), 0..12),
        ) {
            let len = buf.len() & !1;
            let buf = &mut buf[..len];
            buf[2] |= 1; // never all-zero data
            let stored = fill(buf, 0);
            let original = buf.to_vec();
            let (mut forward, mut back) = (Delta::ZERO, Delta::ZERO);
            for (idx, new) in changes {
                let at = 2 + 2 * (idx % (len / 2 - 1));
                if at == 2 && new & 0x0100 == 0 {
                    continue; // keep the non-zero byte
                }
                let old = u16::from_be_bytes([buf[at], buf[at + 1]]);
                forward = forward.add_u16(old, new);
                back = back.add_u16(new, old);
                buf[at..at + 2].copy_from_slice(&new.to_be_bytes());
            }
            let updated = forward.apply(stored);
            buf[0..2].copy_from_slice(&updated.to_be_bytes());
            let after = buf.to_vec();
            prop_assert_eq!(updated, fill(buf, 0));
            prop_assert_eq!(buf.to_vec(), after);
            // `back` lists the words in the same order; undoing them restores the checksum.
            prop_assert_eq!(back.apply(updated), u16::from_be_bytes([original[0], original[1]]));
        }

        #[test]
        fn wide_deltas_equal_word_deltas(c in any::<u16>(), old in any::<u128>(), new in any::<u128>()) {
            let mut words = Delta::ZERO;
            for i in (0..8).rev() {
                words = words.add_u16((old >> (16 * i)) as u16, (new >> (16 * i)) as u16);
            }
            prop_assert_eq!(Delta::ZERO.add_u128(old, new).apply(c), words.apply(c));
            let (o32, n32) = (old as u32, new as u32);
            let high = update_u16(c, (o32 >> 16) as u16, (n32 >> 16) as u16);
            let high_then_low = update_u16(high, o32 as u16, n32 as u16);
            prop_assert_eq!(update_u32(c, o32, n32), high_then_low);
        }

        #[test]
        fn fast_sum_matches_naive(bytes in proptest::collection::vec(any::<u8>(), 0..600), skip in 0usize..8) {
            // `skip` shifts the start so every alignment of the slice is exercised.
            let s = &bytes[skip.min(bytes.len())..];
            prop_assert_eq!(data(s), naive(s));
        }

        #[test]
        fn incremental_u16_update_verifies(
            mut buf in proptest::collection::vec(any::<u8>(), 24..64),
            word_idx in 2usize..10,
            new in any::<u16>(),
        ) {
            let len = buf.len() & !1;
            let buf = &mut buf[..len];
            let stored = fill(buf, 0);
            let at = word_idx * 2;
            let old = u16::from_be_bytes([buf[at], buf[at + 1]]);
            buf[at..at + 2].copy_from_slice(&new.to_be_bytes());
            let updated = update_u16(stored, old, new);
            buf[0..2].copy_from_slice(&updated.to_be_bytes());
            prop_assert_eq!(data(buf), 0xffff);
            let recomputed = fill(buf, 0);
            prop_assert!(equal_mod_zero(updated, recomputed), "{:#x} vs {:#x}", updated, recomputed);
        }

        #[test]
        fn incremental_u32_update_verifies(
            mut buf in proptest::collection::vec(any::<u8>(), 24..64),
            word_idx in 1usize..5,
            new in any::<u32>(),
        ) {
            let len = buf.len() & !1;
            let buf = &mut buf[..len];
            let stored = fill(buf, 0);
            let at = word_idx * 4;
            let old = u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
            buf[at..at + 4].copy_from_slice(&new.to_be_bytes());
            let updated = update_u32(stored, old, new);
            buf[0..2].copy_from_slice(&updated.to_be_bytes());
            prop_assert_eq!(data(buf), 0xffff);
            let recomputed = fill(buf, 0);
            prop_assert!(equal_mod_zero(updated, recomputed), "{:#x} vs {:#x}", updated, recomputed);
        }
    }
}
