//! pcap files for pktgen: reading a file to replay, and capturing received frames.
//!
//! All file I/O happens off the packet path:
//!
//! * [`read_frames`] reads a whole pcap into memory when the app is built; replay then only
//!   copies bytes.
//! * [`CaptureRing`] is a fixed set of buffers filled on the hot path by
//!   [`CaptureRing::push`] (one copy, no allocation, no syscall; when the ring is full the frame
//!   is counted as not captured). [`PcapSink::write_ring`] empties it into a file from a timer
//!   or the app's finish step.
//!
//! Files are written little-endian with nanosecond timestamps (pcap magic `0xa1b23c4d`),
//! link type Ethernet, as Wireshark and tcpdump read them. The bytes written are the same on
//! every machine, which the golden tests rely on.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;
use std::time::Duration;

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
use pcap_file::{DataLink, Endianness, TsResolution};

/// Reads every frame of an Ethernet pcap (or pcap-ns) file. Errors name the file and the
/// problem: unreadable, not a pcap, not Ethernet, a frame longer than `max_len`, or empty.
pub fn read_frames(path: &Path, max_len: usize) -> Result<Vec<Box<[u8]>>, String> {
    let f = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    read_frames_from(io::BufReader::new(f), max_len).map_err(|e| format!("{}: {e}", path.display()))
}

/// [`read_frames`] over any reader.
pub fn read_frames_from(r: impl Read, max_len: usize) -> Result<Vec<Box<[u8]>>, String> {
    let mut rd = PcapReader::new(r).map_err(|e| format!("not a pcap file: {e}"))?;
    if rd.header().datalink != DataLink::ETHERNET {
        return Err(format!("link type {:?}, expected Ethernet", rd.header().datalink));
    }
    let mut out = Vec::new();
    while let Some(p) = rd.next_packet() {
        let p = p.map_err(|e| format!("frame {}: {e}", out.len()))?;
        if p.data.len() > max_len {
            return Err(format!("frame {} is {} bytes, more than {max_len}", out.len(), p.data.len()));
        }
        if p.data.len() < 14 {
            return Err(format!("frame {} is {} bytes, shorter than an Ethernet header", out.len(), p.data.len()));
        }
        out.push(p.data.into_owned().into_boxed_slice());
    }
    if out.is_empty() {
        return Err("no frames".into());
    }
    Ok(out)
}

/// Frames captured on the hot path, waiting to be written. See the module docs.
#[derive(Debug, Clone)]
pub struct CaptureRing {
    data: Box<[u8]>,
    snaplen: usize,
    /// Per slot: timestamp (ns), original length, captured length.
    meta: Box<[(u64, u32, u32)]>,
    head: usize,
    len: usize,
    captured: u64,
    missed: u64,
}

impl CaptureRing {
    /// A ring of `slots` buffers of `snaplen` bytes each (both at least 1), allocated here.
    pub fn new(slots: usize, snaplen: usize) -> CaptureRing {
        let (slots, snaplen) = (slots.max(1), snaplen.max(1));
        CaptureRing {
            data: vec![0u8; slots * snaplen].into_boxed_slice(),
            snaplen,
            meta: vec![(0, 0, 0); slots].into_boxed_slice(),
            head: 0,
            len: 0,
            captured: 0,
            missed: 0,
        }
    }

    /// Copies the first `snaplen` bytes of `frame` into the next free slot; returns `false`
    /// (and counts it) when the ring is full.
    #[inline]
    pub fn push(&mut self, ts_ns: u64, frame: &[u8]) -> bool {
        let slots = self.meta.len();
        if self.len == slots {
            self.missed += 1;
            return false;
        }
        let slot = (self.head + self.len) % slots;
        let n = frame.len().min(self.snaplen);
        self.data[slot * self.snaplen..slot * self.snaplen + n].copy_from_slice(&frame[..n]);
        self.meta[slot] = (ts_ns, frame.len() as u32, n as u32);
        self.len += 1;
        self.captured += 1;
        true
    }

    /// Frames waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Frames captured so far (including those already written).
    pub fn captured(&self) -> u64 {
        self.captured
    }

    /// Frames not captured because the ring was full.
    pub fn missed(&self) -> u64 {
        self.missed
    }

    /// Hands every waiting frame, oldest first, to `f(ts_ns, orig_len, bytes)` and empties the
    /// ring. Stops at the first error (those frames stay).
    pub fn drain<E>(&mut self, mut f: impl FnMut(u64, u32, &[u8]) -> Result<(), E>) -> Result<(), E> {
        let slots = self.meta.len();
        while self.len > 0 {
            let (ts, orig, n) = self.meta[self.head];
            let at = self.head * self.snaplen;
            f(ts, orig, &self.data[at..at + n as usize])?;
            self.head = (self.head + 1) % slots;
            self.len -= 1;
        }
        Ok(())
    }
}

/// A pcap file being written.
#[derive(Debug)]
pub struct PcapSink<W: Write> {
    w: PcapWriter<W>,
    written: u64,
}

/// The header every file of ours has.
fn header(snaplen: u32) -> PcapHeader {
    PcapHeader {
        version_major: 2,
        version_minor: 4,
        ts_correction: 0,
        ts_accuracy: 0,
        snaplen,
        datalink: DataLink::ETHERNET,
        ts_resolution: TsResolution::NanoSecond,
        endianness: Endianness::Little,
    }
}

impl PcapSink<BufWriter<File>> {
    /// Creates (truncates) `path` and writes the file header.
    pub fn create(path: &Path, snaplen: usize) -> Result<Self, String> {
        let f = File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
        PcapSink::new(BufWriter::new(f), snaplen).map_err(|e| format!("{}: {e}", path.display()))
    }
}

impl<W: Write> PcapSink<W> {
    /// Writes the file header to `w`.
    pub fn new(w: W, snaplen: usize) -> Result<Self, String> {
        let snaplen = u32::try_from(snaplen).unwrap_or(u32::MAX).max(1);
        let w = PcapWriter::with_header(w, header(snaplen)).map_err(|e| e.to_string())?;
        Ok(PcapSink { w, written: 0 })
    }

    /// Writes one frame with a timestamp in ns (`orig_len`: its length before truncation).
    pub fn write(&mut self, ts_ns: u64, orig_len: u32, data: &[u8]) -> Result<(), String> {
        let p = PcapPacket::new(Duration::from_nanos(ts_ns), orig_len, data);
        self.w.write_packet(&p).map_err(|e| e.to_string())?;
        self.written += 1;
        Ok(())
    }

    /// Writes every frame waiting in `ring`, adding `ts_offset_ns` to its timestamp.
    pub fn write_ring(&mut self, ring: &mut CaptureRing, ts_offset_ns: u64) -> Result<(), String> {
        ring.drain(|ts, orig, data| self.write(ts.wrapping_add(ts_offset_ns), orig, data))
    }

    /// Frames written.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Flushes the underlying writer and gives it back (closing a file: drop the result).
    pub fn finish(self) -> Result<W, String> {
        let mut w = self.w.into_writer();
        w.flush().map_err(|e| e.to_string())?;
        Ok(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_order_truncates_and_counts_misses() {
        let mut r = CaptureRing::new(3, 4);
        assert!(r.push(1, &[1, 2, 3, 4, 5, 6]));
        assert!(r.push(2, &[7]));
        let mut out = Vec::new();
        r.drain(|ts, orig, d| {
            out.push((ts, orig, d.to_vec()));
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(out, vec![(1, 6, vec![1, 2, 3, 4]), (2, 1, vec![7])]);
        // Wraps around the end of the slots.
        for i in 0..4u8 {
            r.push(u64::from(i), &[i; 2]);
        }
        assert_eq!((r.len(), r.captured(), r.missed()), (3, 5, 1));
        let mut ts = Vec::new();
        r.drain(|t, _, _| {
            ts.push(t);
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(ts, vec![0, 1, 2]);
        assert!(r.is_empty());
    }

    #[test]
    fn written_files_read_back_and_are_byte_stable() {
        let mut ring = CaptureRing::new(8, 2048);
        let frames: Vec<Vec<u8>> = (0..5).map(|i| vec![i as u8; 60 + i * 100]).collect();
        for (i, f) in frames.iter().enumerate() {
            ring.push(1_000_000_007 * i as u64, f);
        }
        let mut sink = PcapSink::new(Vec::new(), 2048).unwrap();
        sink.write_ring(&mut ring, 5).unwrap();
        assert_eq!(sink.written(), 5);
        let bytes = sink.finish().unwrap();
        // Little-endian nanosecond pcap magic, version 2.4, link type 1.
        assert_eq!(&bytes[..4], &[0x4d, 0x3c, 0xb2, 0xa1]);
        assert_eq!(&bytes[4..8], &[2, 0, 4, 0]);
        assert_eq!(&bytes[20..24], &[1, 0, 0, 0]);
        // First record: ts 0 s + 5 ns, 60 bytes.
        assert_eq!(&bytes[24..40], &[0, 0, 0, 0, 5, 0, 0, 0, 60, 0, 0, 0, 60, 0, 0, 0]);
        let back = read_frames_from(&bytes[..], 9000).unwrap();
        assert_eq!(back.iter().map(|b| b.to_vec()).collect::<Vec<_>>(), frames);
        assert!(read_frames_from(&bytes[..], 100).unwrap_err().contains("more than 100"));
        assert!(read_frames_from(&bytes[..10], 100).is_err());
        assert!(read_frames_from(&b"not a pcap file at all, really"[..], 100).is_err());
        let empty = PcapSink::new(Vec::new(), 64).unwrap().finish().unwrap();
        assert_eq!(read_frames_from(&empty[..], 100).unwrap_err(), "no frames");
    }
}
