//! TCP segments (RFC 9293): header, flags, options (RFC 7323 window scale and timestamps,
//! RFC 2018 SACK), pseudo-header checksum, and a complete allocation-free [`TcpRepr`] for a
//! sans-I/O TCP.
//!
//! [`TcpPacket::check_len`] guarantees `20 <= data offset * 4 <= buffer.len()`. TCP has no length
//! field, so the view's buffer must be exactly the segment (the IP payload): the payload is
//! everything after the header, and the checksum covers the whole buffer.
//!
//! The options iterator ([`TcpOptions`]) never panics: a malformed option (length byte below 2,
//! running past the option space, or a wrong length for a known kind) yields one `Err(Error)`,
//! after which the iterator is finished. Unknown kinds with a well-formed length are yielded as
//! [`TcpOption::Unknown`], which [`TcpRepr::parse`] skips.

use core::fmt;
use core::iter::FusedIterator;
use core::ops::{Add, BitOr, BitOrAssign, Sub};

use super::checksum::Delta;
use super::ip::{self, IpPair, IpProtocol};
use super::{read_u16, read_u32, write_u16, write_u32, Error, Field, Result};

mod field {
    use super::Field;

    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const SEQ_NUM: Field = 4..8;
    pub const ACK_NUM: Field = 8..12;
    /// Data offset (4 bits), reserved (3), flags (9).
    pub const FLAGS: Field = 12..14;
    pub const WIN_SIZE: Field = 14..16;
    pub const CHECKSUM: Field = 16..18;
    pub const URGENT: Field = 18..20;

    pub const OPT_END: u8 = 0;
    pub const OPT_NOP: u8 = 1;
    pub const OPT_MSS: u8 = 2;
    pub const OPT_WS: u8 = 3;
    pub const OPT_SACKPERM: u8 = 4;
    pub const OPT_SACKRNG: u8 = 5;
    pub const OPT_TSTAMP: u8 = 8;
}

/// Length of a TCP header without options.
pub const HEADER_LEN: usize = field::URGENT.end;
/// Largest TCP header (data offset 15).
pub const MAX_HEADER_LEN: usize = 60;
/// Most option bytes a header can carry.
pub const MAX_OPTIONS_LEN: usize = MAX_HEADER_LEN - HEADER_LEN;
/// Most SACK blocks one option can carry (`(40 - 2) / 8`).
pub const MAX_SACK_BLOCKS: usize = 4;

/// A TCP sequence number: arithmetic wraps modulo 2^32.
///
/// Comparisons between sequence numbers only make sense within half the sequence space, so
/// there is deliberately no `PartialOrd`; use `a - b` (a signed distance) instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpSeqNumber(pub u32);

impl Add<u32> for TcpSeqNumber {
    type Output = Self;

    #[inline]
    fn add(self, rhs: u32) -> Self {
        Self(self.0.wrapping_add(rhs))
    }
}

impl Sub<u32> for TcpSeqNumber {
    type Output = Self;

    #[inline]
    fn sub(self, rhs: u32) -> Self {
        Self(self.0.wrapping_sub(rhs))
    }
}

impl Sub for TcpSeqNumber {
    /// Signed distance `self - rhs`, valid while the two are within 2^31 of each other.
    type Output = i32;

    #[inline]
    fn sub(self, rhs: Self) -> i32 {
        self.0.wrapping_sub(rhs.0) as i32
    }
}

impl fmt::Display for TcpSeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The nine TCP flag bits, as a small bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(u16);

impl TcpFlags {
    /// No more data from sender.
    pub const FIN: Self = Self(0x001);
    /// Synchronise sequence numbers.
    pub const SYN: Self = Self(0x002);
    /// Reset the connection.
    pub const RST: Self = Self(0x004);
    /// Push.
    pub const PSH: Self = Self(0x008);
    /// The acknowledgment field is significant.
    pub const ACK: Self = Self(0x010);
    /// The urgent pointer is significant.
    pub const URG: Self = Self(0x020);
    /// ECN echo.
    pub const ECE: Self = Self(0x040);
    /// Congestion window reduced.
    pub const CWR: Self = Self(0x080);
    /// Accurate ECN (formerly the experimental NS bit).
    pub const AE: Self = Self(0x100);
    const MASK: u16 = 0x1ff;

    /// No flags.
    #[inline]
    pub const fn empty() -> Self {
        Self(0)
    }

    /// The flags from the low nine bits of `bits` (other bits are dropped).
    #[inline]
    pub const fn from_bits_truncate(bits: u16) -> Self {
        Self(bits & Self::MASK)
    }

    /// The raw bits.
    #[inline]
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// Whether every flag of `other` is set in `self`.
    #[inline]
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any flag of `other` is set in `self`.
    #[inline]
    pub const fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    /// `self` with the flags of `other` set or cleared.
    #[inline]
    pub const fn with(self, other: Self, on: bool) -> Self {
        if on {
            Self(self.0 | other.0)
        } else {
            Self(self.0 & !other.0)
        }
    }
}

impl BitOr for TcpFlags {
    type Output = Self;

    #[inline]
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl BitOrAssign for TcpFlags {
    #[inline]
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

/// The SACK blocks of one SACK option, as a view over its bytes (1 to 4 blocks of 8 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSackBlocks<'a>(&'a [u8]);

impl<'a> TcpSackBlocks<'a> {
    /// Number of blocks.
    #[inline]
    #[allow(clippy::len_without_is_empty)] // never empty: the parser requires at least one block
    pub fn len(&self) -> usize {
        self.0.len() / 8
    }

    /// The `(left edge, right edge)` pairs, in option order.
    #[inline]
    pub fn iter(&self) -> impl Iterator<Item = (TcpSeqNumber, TcpSeqNumber)> + 'a {
        self.0.chunks_exact(8).map(|b| (TcpSeqNumber(read_u32(b, 0..4)), TcpSeqNumber(read_u32(b, 4..8))))
    }
}

/// One parsed TCP option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpOption<'a> {
    /// End of option list (kind 0); the iterator stops after it.
    EndOfList,
    /// Padding (kind 1).
    NoOperation,
    /// Maximum segment size (kind 2).
    MaxSegmentSize(u16),
    /// Window scale shift count (kind 3), as sent; RFC 7323 says to treat values above 14 as 14.
    WindowScale(u8),
    /// SACK permitted (kind 4).
    SackPermitted,
    /// SACK blocks (kind 5).
    SackRange(TcpSackBlocks<'a>),
    /// Timestamps (kind 8).
    Timestamps {
        /// Timestamp value.
        tsval: u32,
        /// Timestamp echo reply.
        tsecr: u32,
    },
    /// Any other kind with a well-formed length.
    Unknown {
        /// Option kind.
        kind: u8,
        /// The option's data (after kind and length).
        data: &'a [u8],
    },
}

/// Iterator over the options of a TCP header; see the module docs for its error behaviour.
#[derive(Debug, Clone)]
pub struct TcpOptions<'a> {
    data: &'a [u8],
}

impl<'a> TcpOptions<'a> {
    /// Iterates over raw option bytes (a header's `options()`).
    #[inline]
    pub const fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    #[inline]
    fn fail(&mut self) -> Option<Result<TcpOption<'a>>> {
        self.data = &[];
        Some(Err(Error))
    }
}

impl<'a> Iterator for TcpOptions<'a> {
    type Item = Result<TcpOption<'a>>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let data = self.data;
        let (&kind, after_kind) = data.split_first()?;
        match kind {
            field::OPT_END => {
                self.data = &[];
                return Some(Ok(TcpOption::EndOfList));
            }
            field::OPT_NOP => {
                self.data = after_kind;
                return Some(Ok(TcpOption::NoOperation));
            }
            _ => {}
        }
        let Some(&len) = after_kind.first() else {
            return self.fail();
        };
        let len = usize::from(len);
        if len < 2 || len > data.len() {
            return self.fail();
        }
        let body = &data[2..len];
        let option = match (kind, body.len()) {
            (field::OPT_MSS, 2) => TcpOption::MaxSegmentSize(read_u16(body, 0..2)),
            (field::OPT_WS, 1) => TcpOption::WindowScale(body[0]),
            (field::OPT_SACKPERM, 0) => TcpOption::SackPermitted,
            (field::OPT_SACKRNG, n) if n % 8 == 0 && (8..=8 * MAX_SACK_BLOCKS).contains(&n) => {
                TcpOption::SackRange(TcpSackBlocks(body))
            }
            (field::OPT_TSTAMP, 8) => {
                TcpOption::Timestamps { tsval: read_u32(body, 0..4), tsecr: read_u32(body, 4..8) }
            }
            (field::OPT_MSS | field::OPT_WS | field::OPT_SACKPERM, _) | (field::OPT_SACKRNG | field::OPT_TSTAMP, _) => {
                return self.fail()
            }
            (kind, _) => TcpOption::Unknown { kind, data: body },
        };
        self.data = &data[len..];
        Some(Ok(option))
    }
}

impl FusedIterator for TcpOptions<'_> {}

/// A view of a TCP segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps a buffer without checking it. Use for emitting into a (reused) buffer.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer and checks its lengths. Use for untrusted input.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Ensures `20 <= data offset * 4 <= buffer.len()`. After `Ok`, no accessor or setter
    /// panics. Option contents are checked by the options iterator, not here.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error);
        }
        let header_len = usize::from(self.header_len());
        if header_len < HEADER_LEN || header_len > len {
            return Err(Error);
        }
        Ok(())
    }

    /// Gives the buffer back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// Sequence number.
    #[inline]
    pub fn seq_number(&self) -> TcpSeqNumber {
        TcpSeqNumber(read_u32(self.buffer.as_ref(), field::SEQ_NUM))
    }

    /// Acknowledgment number (meaningful only with the ACK flag).
    #[inline]
    pub fn ack_number(&self) -> TcpSeqNumber {
        TcpSeqNumber(read_u32(self.buffer.as_ref(), field::ACK_NUM))
    }

    #[inline]
    fn offset_flags(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::FLAGS)
    }

    /// Header length in bytes (data offset * 4).
    #[inline]
    pub fn header_len(&self) -> u8 {
        ((self.offset_flags() >> 12) as u8) * 4
    }

    /// All nine flags.
    #[inline]
    pub fn flags(&self) -> TcpFlags {
        TcpFlags::from_bits_truncate(self.offset_flags())
    }

    /// FIN flag.
    #[inline]
    pub fn fin(&self) -> bool {
        self.flags().contains(TcpFlags::FIN)
    }

    /// SYN flag.
    #[inline]
    pub fn syn(&self) -> bool {
        self.flags().contains(TcpFlags::SYN)
    }

    /// RST flag.
    #[inline]
    pub fn rst(&self) -> bool {
        self.flags().contains(TcpFlags::RST)
    }

    /// PSH flag.
    #[inline]
    pub fn psh(&self) -> bool {
        self.flags().contains(TcpFlags::PSH)
    }

    /// ACK flag.
    #[inline]
    pub fn ack(&self) -> bool {
        self.flags().contains(TcpFlags::ACK)
    }

    /// URG flag.
    #[inline]
    pub fn urg(&self) -> bool {
        self.flags().contains(TcpFlags::URG)
    }

    /// ECE flag.
    #[inline]
    pub fn ece(&self) -> bool {
        self.flags().contains(TcpFlags::ECE)
    }

    /// CWR flag.
    #[inline]
    pub fn cwr(&self) -> bool {
        self.flags().contains(TcpFlags::CWR)
    }

    /// Window size (unscaled).
    #[inline]
    pub fn window_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::WIN_SIZE)
    }

    /// Checksum as stored.
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Urgent pointer (meaningful only with the URG flag).
    #[inline]
    pub fn urgent_at(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::URGENT)
    }

    /// Raw option bytes (`20..header_len`).
    #[inline]
    pub fn options(&self) -> &[u8] {
        let end = usize::from(self.header_len());
        self.buffer.as_ref().get(HEADER_LEN..end).unwrap_or_default()
    }

    /// Iterator over the parsed options.
    #[inline]
    pub fn options_iter(&self) -> TcpOptions<'_> {
        TcpOptions::new(self.options())
    }

    /// The payload: everything after the header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let start = usize::from(self.header_len());
        self.buffer.as_ref().get(start..).unwrap_or_default()
    }

    /// Sequence space the segment occupies: payload length, plus one for SYN, plus one for FIN.
    #[inline]
    pub fn segment_len(&self) -> usize {
        self.payload().len() + usize::from(self.syn()) + usize::from(self.fin())
    }

    /// Whether the checksum is valid for these IP addresses (the whole buffer is summed).
    /// Always `true` under `cfg(fuzzing)`.
    #[inline]
    pub fn verify_checksum(&self, ips: &IpPair) -> bool {
        if super::skip_checksum_verification() {
            return true;
        }
        ip::transport_checksum_ok(ips, IpProtocol::TCP, self.buffer.as_ref())
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> TcpPacket<&'a T> {
    /// The payload (everything after the header),
    /// borrowed from the underlying buffer rather than from the view, so it can outlive the
    /// view (for example in a `TcpRepr<'a>` returned from a parsing helper).
    #[inline]
    pub fn into_payload(self) -> &'a [u8] {
        let start = usize::from(self.header_len());
        let data: &'a [u8] = self.buffer.as_ref();
        data.get(start..).unwrap_or_default()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    /// Sets the source port.
    #[inline]
    pub fn set_src_port(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT, value);
    }

    /// Sets the destination port.
    #[inline]
    pub fn set_dst_port(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT, value);
    }

    /// Sets the sequence number.
    #[inline]
    pub fn set_seq_number(&mut self, value: TcpSeqNumber) {
        write_u32(self.buffer.as_mut(), field::SEQ_NUM, value.0);
    }

    /// Sets the acknowledgment number.
    #[inline]
    pub fn set_ack_number(&mut self, value: TcpSeqNumber) {
        write_u32(self.buffer.as_mut(), field::ACK_NUM, value.0);
    }

    /// Sets the header length in bytes (stored as `len / 4`); flags are kept.
    #[inline]
    pub fn set_header_len(&mut self, len: u8) {
        let word = (u16::from(len / 4) << 12) | (self.offset_flags() & 0x0fff);
        write_u16(self.buffer.as_mut(), field::FLAGS, word);
    }

    /// Sets all nine flags (the data offset is kept; the reserved bits are cleared).
    #[inline]
    pub fn set_flags(&mut self, flags: TcpFlags) {
        let word = (self.offset_flags() & 0xf000) | flags.bits();
        write_u16(self.buffer.as_mut(), field::FLAGS, word);
    }

    /// Sets the window size.
    #[inline]
    pub fn set_window_len(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::WIN_SIZE, value);
    }

    /// Stores a checksum value.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Sets the urgent pointer.
    #[inline]
    pub fn set_urgent_at(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::URGENT, value);
    }

    /// Raw option bytes, mutably.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.header_len());
        self.buffer.as_mut().get_mut(HEADER_LEN..end).unwrap_or_default()
    }

    /// The payload, mutably.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = usize::from(self.header_len());
        self.buffer.as_mut().get_mut(start..).unwrap_or_default()
    }

    /// Computes and stores the checksum for these IP addresses (over the whole buffer).
    #[inline]
    pub fn fill_checksum(&mut self, ips: &IpPair) {
        self.set_checksum(0);
        let c = ip::transport_checksum(ips, IpProtocol::TCP, self.buffer.as_ref());
        self.set_checksum(c);
    }

    /// Applies an incremental change (RFC 1624) to the checksum: `delta` lists the words of the
    /// segment *and of the pseudo header* (addresses) that changed. Bit-identical to
    /// [`Self::fill_checksum`] when the stored checksum was valid (see [`Delta::apply`]).
    #[inline]
    pub fn update_checksum(&mut self, delta: Delta) {
        let c = delta.apply(self.checksum());
        self.set_checksum(c);
    }
}

/// The control flag of a segment that changes the connection state; TCP allows at most one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TcpControl {
    /// None of SYN, FIN, RST.
    #[default]
    None,
    /// SYN.
    Syn,
    /// FIN.
    Fin,
    /// RST.
    Rst,
}

impl TcpControl {
    /// Sequence space the flag takes (SYN and FIN take one).
    #[inline]
    pub const fn len(self) -> usize {
        match self {
            Self::Syn | Self::Fin => 1,
            Self::None | Self::Rst => 0,
        }
    }

    /// Whether the flag takes no sequence space.
    #[inline]
    pub const fn is_empty(self) -> bool {
        self.len() == 0
    }
}

/// The timestamps option (RFC 7323).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpTimestamp {
    /// Timestamp value.
    pub tsval: u32,
    /// Timestamp echo reply.
    pub tsecr: u32,
}

/// Up to four SACK blocks, stored inline (no allocation).
///
/// Unused slots are always zero, so the derived equality compares only the live blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpSackRanges {
    blocks: [(TcpSeqNumber, TcpSeqNumber); MAX_SACK_BLOCKS],
    len: u8,
}

impl TcpSackRanges {
    /// No blocks.
    #[inline]
    pub const fn new() -> Self {
        Self { blocks: [(TcpSeqNumber(0), TcpSeqNumber(0)); MAX_SACK_BLOCKS], len: 0 }
    }

    /// Appends a `(left edge, right edge)` block; returns `false` (and changes nothing) when four
    /// blocks are already held.
    #[inline]
    pub fn push(&mut self, left: TcpSeqNumber, right: TcpSeqNumber) -> bool {
        let Some(slot) = self.blocks.get_mut(usize::from(self.len)) else {
            return false;
        };
        *slot = (left, right);
        self.len += 1;
        true
    }

    /// Keeps the first `n` blocks.
    #[inline]
    pub fn truncate(&mut self, n: usize) {
        for slot in self.blocks.iter_mut().skip(n) {
            *slot = (TcpSeqNumber(0), TcpSeqNumber(0));
        }
        self.len = self.len.min(n as u8);
    }

    /// The live blocks.
    #[inline]
    pub fn as_slice(&self) -> &[(TcpSeqNumber, TcpSeqNumber)] {
        self.blocks.get(..usize::from(self.len)).unwrap_or_default()
    }

    /// Number of blocks.
    #[inline]
    pub const fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether there are no blocks.
    #[inline]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A whole TCP segment as a sans-I/O TCP sees it.
///
/// The ACK flag is `ack_number.is_some()`, URG is `urgent_pointer.is_some()`, and SYN/FIN/RST are
/// `control`, so no combination of fields contradicts the flags. The AE (accurate ECN) bit is
/// not represented and is emitted as zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TcpRepr<'a> {
    /// Source port (never 0 in a parsed repr).
    pub src_port: u16,
    /// Destination port (never 0 in a parsed repr).
    pub dst_port: u16,
    /// SYN, FIN, RST or none.
    pub control: TcpControl,
    /// Sequence number.
    pub seq_number: TcpSeqNumber,
    /// Acknowledgment number, if the ACK flag is set.
    pub ack_number: Option<TcpSeqNumber>,
    /// Window size as sent (unscaled).
    pub window_len: u16,
    /// Window scale option.
    pub window_scale: Option<u8>,
    /// Maximum segment size option.
    pub max_seg_size: Option<u16>,
    /// SACK-permitted option.
    pub sack_permitted: bool,
    /// SACK blocks. `emit` writes as many as fit in the option space after the other options
    /// (four alone, three with timestamps, two on a SYN-style header with MSS, window scale and
    /// timestamps); see [`TcpRepr::sack_blocks_emitted`].
    pub sack_ranges: TcpSackRanges,
    /// Timestamps option.
    pub timestamp: Option<TcpTimestamp>,
    /// PSH flag.
    pub push: bool,
    /// ECN-echo flag.
    pub ece: bool,
    /// Congestion-window-reduced flag.
    pub cwr: bool,
    /// Urgent pointer, if the URG flag is set.
    pub urgent_pointer: Option<u16>,
    /// Segment data.
    pub payload: &'a [u8],
}

// Option layout `emit` uses, the one Linux sends: MSS, then SACK-permitted and timestamps
// sharing one 4-byte-aligned block (NOPs pad whichever is missing), then window scale, then SACK
// blocks. Every piece is a multiple of 4 bytes, so no trailing padding is needed.
const MSS_SPACE: usize = 4; // kind, len, mss
const SACKPERM_SPACE: usize = 4; // NOP, NOP, kind, len  (or kind, len, then the timestamps)
const TSTAMP_SPACE: usize = 12; // NOP, NOP (or SACK-permitted), kind, len, tsval, tsecr
const WS_SPACE: usize = 4; // NOP, kind, len, shift
const SACK_SPACE_BASE: usize = 4; // NOP, NOP, kind, len (then 8 per block)

impl<'a> TcpRepr<'a> {
    /// A plain segment (no control flag, no ACK, no options, no payload) to fill in.
    #[inline]
    pub const fn new(src_port: u16, dst_port: u16, seq_number: TcpSeqNumber) -> Self {
        Self {
            src_port,
            dst_port,
            control: TcpControl::None,
            seq_number,
            ack_number: None,
            window_len: 0,
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: TcpSackRanges::new(),
            timestamp: None,
            push: false,
            ece: false,
            cwr: false,
            urgent_pointer: None,
            payload: &[],
        }
    }

    /// Parses a checked segment. Errors if a port is 0, if more than one of SYN/FIN/RST is set,
    /// or if an option is malformed. Unknown options are skipped; when an option repeats, the
    /// last one wins. The checksum is *not* verified (see [`TcpPacket::verify_checksum`]).
    #[inline]
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &TcpPacket<&'a T>) -> Result<Self> {
        if packet.src_port() == 0 || packet.dst_port() == 0 {
            return Err(Error);
        }
        let flags = packet.flags();
        let control = match (packet.syn(), packet.fin(), packet.rst()) {
            (false, false, false) => TcpControl::None,
            (true, false, false) => TcpControl::Syn,
            (false, true, false) => TcpControl::Fin,
            (false, false, true) => TcpControl::Rst,
            _ => return Err(Error),
        };
        let mut repr = Self::new(packet.src_port(), packet.dst_port(), packet.seq_number());
        repr.control = control;
        repr.ack_number = packet.ack().then(|| packet.ack_number());
        repr.window_len = packet.window_len();
        repr.push = flags.contains(TcpFlags::PSH);
        repr.ece = flags.contains(TcpFlags::ECE);
        repr.cwr = flags.contains(TcpFlags::CWR);
        repr.urgent_pointer = packet.urg().then(|| packet.urgent_at());

        // Borrow option and payload bytes from the underlying buffer (lifetime 'a), not from
        // the view.
        let data: &'a [u8] = packet.buffer.as_ref();
        let header_len = usize::from(packet.header_len());
        let options = data.get(HEADER_LEN..header_len).ok_or(Error)?;
        repr.payload = data.get(header_len..).ok_or(Error)?;
        for option in TcpOptions::new(options) {
            match option? {
                TcpOption::EndOfList | TcpOption::NoOperation | TcpOption::Unknown { .. } => {}
                TcpOption::MaxSegmentSize(mss) => repr.max_seg_size = Some(mss),
                TcpOption::WindowScale(shift) => repr.window_scale = Some(shift),
                TcpOption::SackPermitted => repr.sack_permitted = true,
                TcpOption::SackRange(blocks) => {
                    repr.sack_ranges = TcpSackRanges::new();
                    for (left, right) in blocks.iter() {
                        repr.sack_ranges.push(left, right);
                    }
                }
                TcpOption::Timestamps { tsval, tsecr } => {
                    repr.timestamp = Some(TcpTimestamp { tsval, tsecr });
                }
            }
        }
        Ok(repr)
    }

    /// Option bytes other than SACK blocks.
    #[inline]
    const fn fixed_options_len(&self) -> usize {
        let mss = if self.max_seg_size.is_some() { MSS_SPACE } else { 0 };
        let sack_perm_and_ts = match (self.sack_permitted, self.timestamp.is_some()) {
            (_, true) => TSTAMP_SPACE,
            (true, false) => SACKPERM_SPACE,
            (false, false) => 0,
        };
        let ws = if self.window_scale.is_some() { WS_SPACE } else { 0 };
        mss + sack_perm_and_ts + ws
    }

    /// How many of `sack_ranges` `emit` writes: as many as fit after the other options.
    #[inline]
    pub const fn sack_blocks_emitted(&self) -> usize {
        let n = self.sack_ranges.len();
        if n == 0 {
            return 0;
        }
        let room = (MAX_OPTIONS_LEN - self.fixed_options_len() - SACK_SPACE_BASE) / 8;
        if n < room {
            n
        } else {
            room
        }
    }

    /// Header length `emit` writes (20 plus options, a multiple of 4, at most 60).
    #[inline]
    pub const fn header_len(&self) -> usize {
        let sack = match self.sack_blocks_emitted() {
            0 => 0,
            n => SACK_SPACE_BASE + 8 * n,
        };
        HEADER_LEN + self.fixed_options_len() + sack
    }

    /// Bytes `emit` writes: header and payload.
    #[inline]
    pub const fn buffer_len(&self) -> usize {
        self.header_len() + self.payload.len()
    }

    /// Sequence space the segment occupies (payload plus SYN/FIN).
    #[inline]
    pub const fn segment_len(&self) -> usize {
        self.payload.len() + self.control.len()
    }

    /// The flags `emit` writes.
    #[inline]
    pub const fn flags(&self) -> TcpFlags {
        let control = match self.control {
            TcpControl::None => TcpFlags::empty(),
            TcpControl::Syn => TcpFlags::SYN,
            TcpControl::Fin => TcpFlags::FIN,
            TcpControl::Rst => TcpFlags::RST,
        };
        control
            .with(TcpFlags::ACK, self.ack_number.is_some())
            .with(TcpFlags::PSH, self.push)
            .with(TcpFlags::ECE, self.ece)
            .with(TcpFlags::CWR, self.cwr)
            .with(TcpFlags::URG, self.urgent_pointer.is_some())
    }

    /// Writes the whole segment (header, options, payload) and its checksum for these IP
    /// addresses. Panics if the buffer is shorter than [`Self::buffer_len`]; the view's buffer
    /// should be exactly that long, since the checksum covers all of it.
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut TcpPacket<T>, ips: &IpPair) {
        let header_len = self.header_len();
        let data = packet.buffer.as_mut();
        write_u16(data, field::SRC_PORT, self.src_port);
        write_u16(data, field::DST_PORT, self.dst_port);
        write_u32(data, field::SEQ_NUM, self.seq_number.0);
        write_u32(data, field::ACK_NUM, self.ack_number.map_or(0, |a| a.0));
        let offset = (header_len / 4) as u16;
        write_u16(data, field::FLAGS, (offset << 12) | self.flags().bits());
        write_u16(data, field::WIN_SIZE, self.window_len);
        write_u16(data, field::CHECKSUM, 0);
        write_u16(data, field::URGENT, self.urgent_pointer.unwrap_or(0));
        self.emit_options(&mut data[HEADER_LEN..header_len]);
        data[header_len..header_len + self.payload.len()].copy_from_slice(self.payload);
        packet.fill_checksum(ips);
    }

    /// Writes the options into exactly `header_len() - 20` bytes.
    #[inline]
    fn emit_options(&self, out: &mut [u8]) {
        const NOP: u8 = field::OPT_NOP;
        let mut at = 0;
        let mut put = |bytes: &[u8]| {
            out[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        if let Some(mss) = self.max_seg_size {
            let [hi, lo] = mss.to_be_bytes();
            put(&[field::OPT_MSS, 4, hi, lo]);
        }
        let sack_perm = if self.sack_permitted { [field::OPT_SACKPERM, 2] } else { [NOP, NOP] };
        if let Some(ts) = self.timestamp {
            put(&sack_perm);
            put(&[field::OPT_TSTAMP, 10]);
            put(&ts.tsval.to_be_bytes());
            put(&ts.tsecr.to_be_bytes());
        } else if self.sack_permitted {
            put(&[NOP, NOP]);
            put(&sack_perm);
        }
        if let Some(shift) = self.window_scale {
            put(&[NOP, field::OPT_WS, 3, shift]);
        }
        let blocks = self.sack_blocks_emitted();
        if blocks > 0 {
            put(&[NOP, NOP, field::OPT_SACKRNG, (2 + 8 * blocks) as u8]);
            for (left, right) in self.sack_ranges.as_slice().iter().take(blocks) {
                put(&left.0.to_be_bytes());
                put(&right.0.to_be_bytes());
            }
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};
    use proptest::prelude::*;

    pub(in crate::wire) fn exercise<T: AsRef<[u8]>>(p: &TcpPacket<T>, ips: &IpPair) {
        let _ = (p.src_port(), p.dst_port(), p.seq_number(), p.ack_number());
        let _ = (p.header_len(), p.flags(), p.fin(), p.syn(), p.rst(), p.psh());
        let _ = (p.ack(), p.urg(), p.ece(), p.cwr(), p.window_len(), p.checksum());
        let _ = (p.urgent_at(), p.segment_len(), p.verify_checksum(ips));
        let (options, payload) = (p.options().len(), p.payload().len());
        assert_eq!(TcpPacket::new_unchecked(p.buffer.as_ref()).into_payload(), p.payload());
        if p.check_len().is_ok() {
            assert_eq!(20 + options + payload, p.buffer.as_ref().len());
        }
        let mut count = 0;
        for option in p.options_iter() {
            count += 1;
            if let Ok(TcpOption::SackRange(blocks)) = option {
                assert_eq!(blocks.iter().count(), blocks.len());
            }
        }
        assert!(count <= 40);
        if let Ok(repr) = TcpRepr::parse(&TcpPacket::new_unchecked(p.buffer.as_ref())) {
            assert_eq!(repr.payload.len(), payload);
            assert!(repr.header_len() <= MAX_HEADER_LEN);
        }
    }

    fn exercise_mut(bytes: &[u8], ips: &IpPair) {
        let mut buf = bytes.to_vec();
        let Ok(mut p) = TcpPacket::new_checked(&mut buf[..]) else {
            return;
        };
        p.set_src_port(1);
        p.set_dst_port(2);
        p.set_seq_number(TcpSeqNumber(u32::MAX));
        p.set_ack_number(TcpSeqNumber(0));
        p.set_flags(TcpFlags::from_bits_truncate(u16::MAX));
        p.set_window_len(9);
        p.set_urgent_at(3);
        let _ = (p.options_mut().len(), p.payload_mut().len());
        p.fill_checksum(ips);
        assert!(p.verify_checksum(ips));
        p.set_header_len(60);
        let _ = (p.options_mut().len(), p.payload_mut().len());
        p.fill_checksum(ips);
        exercise(&p, ips);
        p.set_header_len(0);
        let _ = (p.options_mut().len(), p.payload_mut().len());
        exercise(&p, ips);
    }

    fn ips() -> IpPair {
        IpPair::V4 { src: Ipv4Addr::new(10, 0, 0, 1), dst: Ipv4Addr::new(10, 0, 0, 2) }
    }

    /// A Linux SYN, 10.0.0.1:43210 → 10.0.0.2:80: MSS 1460, SACK permitted, timestamps
    /// (tsval 0x01020304, tsecr 0), NOP, window scale 7. Checksum 0x2340 computed
    /// independently of this crate.
    const LINUX_SYN: [u8; 40] = [
        0xa8, 0xca, 0x00, 0x50, 0x12, 0x34, 0x56, 0x78, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfa, 0xf0, 0x23, 0x40,
        0x00, 0x00, // fixed header, data offset 10
        0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x01, 0x02, 0x03, 0x04, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03,
        0x03, 0x07,
    ];

    #[test]
    fn parses_linux_syn() {
        let p = TcpPacket::new_checked(&LINUX_SYN[..]).unwrap();
        assert!(p.verify_checksum(&ips()));
        assert_eq!((p.src_port(), p.dst_port()), (43210, 80));
        assert_eq!(p.seq_number(), TcpSeqNumber(0x1234_5678));
        assert_eq!((p.header_len(), p.window_len(), p.checksum()), (40, 64240, 0x2340));
        assert!(p.syn() && !p.ack() && !p.fin() && !p.rst() && !p.psh());
        assert_eq!(p.segment_len(), 1);
        let options: Vec<_> = p.options_iter().collect::<Result<_>>().unwrap();
        assert_eq!(
            options,
            [
                TcpOption::MaxSegmentSize(1460),
                TcpOption::SackPermitted,
                TcpOption::Timestamps { tsval: 0x0102_0304, tsecr: 0 },
                TcpOption::NoOperation,
                TcpOption::WindowScale(7),
            ]
        );
        let repr = TcpRepr::parse(&p).unwrap();
        let mut expect = TcpRepr::new(43210, 80, TcpSeqNumber(0x1234_5678));
        expect.control = TcpControl::Syn;
        expect.window_len = 64240;
        expect.max_seg_size = Some(1460);
        expect.window_scale = Some(7);
        expect.sack_permitted = true;
        expect.timestamp = Some(TcpTimestamp { tsval: 0x0102_0304, tsecr: 0 });
        assert_eq!(repr, expect);
        // `emit` uses Linux's option layout, so the segment comes back byte for byte.
        assert_eq!(repr.header_len(), 40);
        let mut out = [0u8; 40];
        repr.emit(&mut TcpPacket::new_unchecked(&mut out[..]), &ips());
        assert_eq!(out, LINUX_SYN);
    }

    #[test]
    fn data_segment_with_sack_and_payload() {
        let payload = b"GET / HTTP/1.1\r\n\r\n";
        let mut repr = TcpRepr::new(80, 43210, TcpSeqNumber(1000));
        repr.ack_number = Some(TcpSeqNumber(u32::MAX));
        repr.window_len = 501;
        repr.push = true;
        repr.ece = true;
        repr.urgent_pointer = Some(4);
        repr.timestamp = Some(TcpTimestamp { tsval: 7, tsecr: 9 });
        for i in 0..4 {
            assert!(repr.sack_ranges.push(TcpSeqNumber(i * 100), TcpSeqNumber(i * 100 + 50)));
        }
        assert!(!repr.sack_ranges.push(TcpSeqNumber(1), TcpSeqNumber(2)));
        repr.payload = payload;
        // Timestamps take 12 bytes: only three of the four blocks fit.
        assert_eq!(repr.sack_blocks_emitted(), 3);
        assert_eq!(repr.header_len(), 20 + 12 + 4 + 24);
        let v6 = IpPair::V6 { src: Ipv6Addr::LOCALHOST, dst: "2001:db8::80".parse().unwrap() };
        let mut buf = vec![0x5a; repr.buffer_len()];
        repr.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), &v6);
        let p = TcpPacket::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum(&v6));
        assert!(!p.verify_checksum(&ips()));
        assert_eq!(p.payload(), payload);
        assert_eq!(p.flags(), TcpFlags::ACK | TcpFlags::PSH | TcpFlags::ECE | TcpFlags::URG);
        let parsed = TcpRepr::parse(&p).unwrap();
        let mut expect = repr;
        expect.sack_ranges.truncate(3);
        assert_eq!(parsed, expect);
        assert_eq!(parsed.sack_ranges.as_slice()[2], (TcpSeqNumber(200), TcpSeqNumber(250)));
        assert_eq!(parsed.segment_len(), payload.len());
    }

    #[test]
    fn option_layouts() {
        let emit_options = |repr: &TcpRepr<'_>| {
            let mut buf = vec![0xee; repr.buffer_len()];
            repr.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), &ips());
            buf[20..].to_vec()
        };
        let mut repr = TcpRepr::new(1, 2, TcpSeqNumber(3));
        assert_eq!(repr.header_len(), 20);
        repr.sack_permitted = true;
        assert_eq!(emit_options(&repr), [1, 1, 4, 2]);
        repr.window_scale = Some(14);
        assert_eq!(emit_options(&repr), [1, 1, 4, 2, 1, 3, 3, 14]);
        repr.max_seg_size = Some(9000);
        repr.timestamp = Some(TcpTimestamp { tsval: 1, tsecr: 2 });
        for i in 0..4 {
            repr.sack_ranges.push(TcpSeqNumber(i), TcpSeqNumber(i + 1));
        }
        // MSS 4 + SACK-permitted/timestamps 12 + window scale 4 leave room for two blocks.
        assert_eq!(repr.sack_blocks_emitted(), 2);
        assert_eq!(repr.header_len(), 60);
        let opts = emit_options(&repr);
        assert_eq!(&opts[..8], &[2, 4, 0x23, 0x28, 4, 2, 8, 10]);
        assert_eq!(&opts[20..24], &[1, 1, 5, 18]);
        repr.sack_permitted = false;
        assert_eq!(&emit_options(&repr)[4..8], &[1, 1, 8, 10]);
    }

    #[test]
    fn options_iterator_errors_instead_of_panicking() {
        let cases: &[(&[u8], usize)] = &[
            (&[2], 0),                         // kind without a length byte
            (&[2, 1, 0, 0], 0),                // length below 2
            (&[2, 0], 0),                      // length 0 would loop forever if accepted
            (&[2, 5, 0, 0], 0),                // runs past the option space
            (&[2, 3, 0], 0),                   // MSS with the wrong length
            (&[3, 4, 0, 0], 0),                // window scale with the wrong length
            (&[4, 3, 0], 0),                   // SACK permitted with data
            (&[8, 9, 0, 0, 0, 0, 0, 0, 0], 0), // timestamps too short
            (&[5, 2], 0),                      // SACK with no block
            (&[5, 9, 0, 0, 0, 0, 0, 0, 0], 0), // SACK with a partial block
            (&[1, 1, 2, 9], 2),                // good NOPs, then an error
        ];
        for &(bytes, good) in cases {
            let items: Vec<_> = TcpOptions::new(bytes).collect();
            assert_eq!(items.len(), good + 1, "{bytes:?}");
            assert_eq!(items[good], Err(Error), "{bytes:?}");
            assert!(items[..good].iter().all(|i| i.is_ok()));
        }
        // Unknown kinds are yielded with their data; EOL stops the iteration even before junk.
        let items: Vec<_> = TcpOptions::new(&[30, 4, 0xaa, 0xbb, 1, 0, 2, 0xff]).collect::<Result<_>>().unwrap();
        assert_eq!(
            items,
            [TcpOption::Unknown { kind: 30, data: &[0xaa, 0xbb] }, TcpOption::NoOperation, TcpOption::EndOfList,]
        );
        // A malformed option makes the whole repr fail, not panic.
        let mut seg = LINUX_SYN;
        seg[21] = 40;
        let p = TcpPacket::new_checked(&seg[..]).unwrap();
        assert_eq!(TcpRepr::parse(&p), Err(Error));
    }

    #[test]
    fn repr_rejections_and_check_len() {
        let with = |f: &dyn Fn(&mut [u8; 40])| {
            let mut b = LINUX_SYN;
            f(&mut b);
            b
        };
        let syn_fin = with(&|b| b[13] = 0x03);
        assert!(TcpRepr::parse(&TcpPacket::new_checked(&syn_fin[..]).unwrap()).is_err());
        let syn_rst = with(&|b| b[13] = 0x06);
        assert!(TcpRepr::parse(&TcpPacket::new_checked(&syn_rst[..]).unwrap()).is_err());
        let port0 = with(&|b| b[2..4].fill(0));
        assert!(TcpRepr::parse(&TcpPacket::new_checked(&port0[..]).unwrap()).is_err());
        let short_offset = with(&|b| b[12] = 0x40);
        assert!(TcpPacket::new_checked(&short_offset[..]).is_err());
        let long_offset = with(&|b| b[12] = 0xb0);
        assert!(TcpPacket::new_checked(&long_offset[..]).is_err());
        let plain = with(&|b| b[12] = 0x50);
        let p = TcpPacket::new_checked(&plain[..]).unwrap();
        assert!(p.options().is_empty());
        assert_eq!(p.payload().len(), 20);
    }

    #[test]
    fn flags_and_seq_numbers() {
        let f = TcpFlags::SYN | TcpFlags::ACK;
        assert!(f.contains(TcpFlags::SYN) && f.intersects(TcpFlags::ACK | TcpFlags::FIN));
        assert!(!f.contains(TcpFlags::SYN | TcpFlags::FIN));
        assert_eq!(f.with(TcpFlags::SYN, false), TcpFlags::ACK);
        let mut g = TcpFlags::empty();
        g |= TcpFlags::AE;
        assert_eq!(g.bits(), 0x100);
        assert_eq!(TcpFlags::from_bits_truncate(0xffff).bits(), 0x1ff);
        let a = TcpSeqNumber(u32::MAX - 1);
        assert_eq!(a + 3, TcpSeqNumber(1));
        assert_eq!(TcpSeqNumber(1) - 3, a);
        assert_eq!(TcpSeqNumber(1) - a, 3);
        assert_eq!(a - TcpSeqNumber(1), -3);
        assert_eq!(a.to_string(), "4294967294");
        assert_eq!((TcpControl::Syn.len(), TcpControl::Rst.is_empty()), (1, true));
        let mut r = TcpSackRanges::new();
        r.push(TcpSeqNumber(1), TcpSeqNumber(2));
        r.push(TcpSeqNumber(3), TcpSeqNumber(4));
        let mut s = TcpSackRanges::new();
        s.push(TcpSeqNumber(1), TcpSeqNumber(2));
        r.truncate(1);
        assert_eq!(r, s);
        assert_eq!((r.len(), r.is_empty()), (1, false));
    }

    #[test]
    fn every_prefix_is_safe() {
        for len in 0..=LINUX_SYN.len() {
            let prefix = &LINUX_SYN[..len];
            let checked = TcpPacket::new_checked(prefix);
            assert_eq!(checked.is_ok(), len == LINUX_SYN.len(), "len {len}");
            if let Ok(p) = checked {
                exercise(&p, &ips());
            }
            exercise_mut(prefix, &ips());
            // The same prefix with the data offset shrunk to fit: options get cut mid-way.
            if len >= 20 {
                let mut b = prefix.to_vec();
                b[12] = ((len / 4) as u8) << 4;
                let p = TcpPacket::new_checked(&b[..]).unwrap();
                exercise(&p, &ips());
                exercise_mut(&b, &ips());
            }
        }
    }

    fn any_repr(payload: &[u8]) -> impl Strategy<Value = TcpRepr<'_>> {
        let ports = (1u16.., 1u16..);
        let control =
            prop_oneof![Just(TcpControl::None), Just(TcpControl::Syn), Just(TcpControl::Fin), Just(TcpControl::Rst)];
        let numbers = (any::<u32>(), proptest::option::of(any::<u32>()), any::<u16>());
        let options = (
            proptest::option::of(any::<u8>()),
            proptest::option::of(any::<u16>()),
            any::<bool>(),
            proptest::collection::vec((any::<u32>(), any::<u32>()), 0..=4),
            proptest::option::of((any::<u32>(), any::<u32>())),
        );
        let bits = (any::<bool>(), any::<bool>(), any::<bool>(), proptest::option::of(any::<u16>()));
        (ports, control, numbers, options, bits, 0..=payload.len()).prop_map(
            move |(
                (src_port, dst_port),
                control,
                (seq, ack, win),
                (ws, mss, sp, sacks, ts),
                (push, ece, cwr, urg),
                n,
            )| {
                let mut repr = TcpRepr::new(src_port, dst_port, TcpSeqNumber(seq));
                repr.control = control;
                repr.ack_number = ack.map(TcpSeqNumber);
                repr.window_len = win;
                repr.window_scale = ws;
                repr.max_seg_size = mss;
                repr.sack_permitted = sp;
                for (l, r) in sacks {
                    repr.sack_ranges.push(TcpSeqNumber(l), TcpSeqNumber(r));
                }
                repr.timestamp = ts.map(|(tsval, tsecr)| TcpTimestamp { tsval, tsecr });
                repr.push = push;
                repr.ece = ece;
                repr.cwr = cwr;
                repr.urgent_pointer = urg;
                repr.payload = &payload[..n];
                repr
            },
        )
    }

    const PAYLOAD: [u8; 256] = {
        let mut p = [0u8; 256];
        let mut i = 0;
        while i < 256 {
            p[i] = (i as u8).wrapping_mul(151).wrapping_add(7);
            i += 1;
        }
        p
    };

    fn any_ips() -> impl Strategy<Value = IpPair> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<[u8; 4]>()).prop_map(|(s, d)| IpPair::V4 { src: s.into(), dst: d.into() }),
            (any::<[u8; 16]>(), any::<[u8; 16]>()).prop_map(|(s, d)| IpPair::V6 { src: s.into(), dst: d.into() }),
        ]
    }

    proptest! {
        #[test]
        fn repr_round_trip(repr in any_repr(&PAYLOAD), ips in any_ips(), junk in any::<u8>()) {
            let mut buf = vec![junk; repr.buffer_len()];
            repr.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), &ips);
            let p = TcpPacket::new_checked(&buf[..]).unwrap();
            prop_assert!(p.verify_checksum(&ips));
            prop_assert!(usize::from(p.header_len()) <= MAX_HEADER_LEN);
            prop_assert_eq!(usize::from(p.header_len()), repr.header_len());
            let parsed = TcpRepr::parse(&p).unwrap();
            let mut expect = repr;
            expect.sack_ranges.truncate(repr.sack_blocks_emitted());
            prop_assert_eq!(parsed, expect);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..90), ips in any_ips()) {
            if let Ok(p) = TcpPacket::new_checked(&bytes[..]) {
                exercise(&p, &ips);
            }
            exercise_mut(&bytes, &ips);
        }

        /// Valid fixed header, arbitrary option bytes: the options parser gets real coverage.
        #[test]
        fn arbitrary_options_never_panic(options in proptest::collection::vec(any::<u8>(), 0..=40), tail in 0usize..8) {
            let padded = options.len().div_ceil(4) * 4;
            let mut b = vec![0u8; 20 + padded + tail];
            b[0..4].copy_from_slice(&[0, 1, 0, 2]);
            b[12] = (((20 + padded) / 4) as u8) << 4;
            b[20..20 + options.len()].copy_from_slice(&options);
            let p = TcpPacket::new_checked(&b[..]).unwrap();
            exercise(&p, &ips());
            let _ = TcpRepr::parse(&p);
        }

        #[test]
        fn options_iterator_is_bounded(bytes in proptest::collection::vec(any::<u8>(), 0..=40)) {
            // Every item consumes at least one byte, and an error ends the iteration.
            let mut n = 0;
            let mut errors = 0;
            for item in TcpOptions::new(&bytes) {
                n += 1;
                errors += usize::from(item.is_err());
            }
            prop_assert!(n <= bytes.len());
            prop_assert!(errors <= 1);
        }
    }
}
