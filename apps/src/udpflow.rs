//! Kernel UDP traffic for the demo and the veth tests: a sender and a receiver that run in
//! network namespaces (each on its own thread that enters the namespace), with payloads that
//! carry a sequence number and deterministic bytes, so the receiver checks every byte of every
//! datagram and counts loss, duplicates and reordering.
//!
//! This is deliberately the kernel's own path (socket → IP → veth), so tests of the engine
//! never grade it with its own generator. Use addresses in 198.18.0.0/15 (IPv4) or 2001:2::/48
//! (IPv6) only.

use std::collections::HashSet;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nic::netns::Netns;

/// Bytes of the payload header: sequence number (8) and flow id (1).
pub const HEADER: usize = 9;

/// Writes the payload of datagram `seq` of flow `flow` into `buf` (its whole length).
pub fn fill_payload(flow: u8, seq: u64, buf: &mut [u8]) {
    let n = buf.len();
    if n >= 8 {
        buf[..8].copy_from_slice(&seq.to_be_bytes());
    }
    if n >= 9 {
        buf[8] = flow;
    }
    for (i, b) in buf.iter_mut().enumerate().skip(HEADER) {
        *b = (seq as usize).wrapping_mul(131).wrapping_add(i * 7).wrapping_add(flow as usize) as u8;
    }
}

/// Checks a received payload; returns its sequence number if every byte is as sent.
pub fn check_payload(flow: u8, expect_len: usize, buf: &[u8]) -> Option<u64> {
    if buf.len() != expect_len || buf.len() < HEADER || buf[8] != flow {
        return None;
    }
    let seq = u64::from_be_bytes(buf[..8].try_into().ok()?);
    let ok = buf
        .iter()
        .enumerate()
        .skip(HEADER)
        .all(|(i, b)| *b == (seq as usize).wrapping_mul(131).wrapping_add(i * 7).wrapping_add(flow as usize) as u8);
    ok.then_some(seq)
}

/// UDP payload length for an Ethernet frame of `frame_len` bytes (no FCS) over IPv4.
pub fn payload_for_frame(frame_len: usize) -> usize {
    frame_len.saturating_sub(14 + 20 + 8).max(HEADER)
}

/// UDP payload length for an Ethernet frame of `frame_len` bytes (no FCS) over IPv6.
pub fn payload_for_frame_v6(frame_len: usize) -> usize {
    frame_len.saturating_sub(14 + 40 + 8).max(HEADER)
}

/// What to send.
#[derive(Debug, Clone)]
pub struct SendSpec {
    /// Source address to bind (IPv4 or IPv6).
    pub src: SocketAddr,
    /// Destination.
    pub dst: SocketAddr,
    /// Flow id written into every payload.
    pub flow: u8,
    /// UDP payload bytes.
    pub payload: usize,
    /// Stop after this many datagrams.
    pub count: Option<u64>,
    /// Stop after this long.
    pub duration: Duration,
    /// Datagrams per second (None: as fast as the kernel takes them).
    pub rate_pps: Option<u64>,
    /// CPU to pin the sending thread to.
    pub cpu: Option<usize>,
}

/// What was sent.
#[derive(Debug, Clone, Copy, Default)]
pub struct SendReport {
    /// Datagrams the kernel accepted.
    pub sent: u64,
    /// Send calls that failed (ENOBUFS and the like).
    pub errors: u64,
    /// Wall time.
    pub elapsed: Duration,
}

/// Sends per `spec` from inside `ns` (blocking).
pub fn send(ns: &Netns, spec: &SendSpec) -> io::Result<SendReport> {
    let spec = spec.clone();
    ns.run_in(move || {
        if let Some(c) = spec.cpu {
            let _ = nic::sys::pin_current_thread(c);
        }
        let sock = UdpSocket::bind(spec.src)?;
        sock.connect(spec.dst)?;
        let _ = nic::sys::set_int_sockopt(sock.as_fd(), libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, 4 << 20);
        let mut buf = vec![0u8; spec.payload];
        let mut r = SendReport::default();
        let t0 = Instant::now();
        let mut seq = 0u64;
        while t0.elapsed() < spec.duration && spec.count.is_none_or(|c| seq < c) {
            if let Some(rate) = spec.rate_pps {
                // Pace in small batches: ahead of schedule → sleep until due.
                let due = t0 + Duration::from_secs_f64(seq as f64 / rate as f64);
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
            }
            fill_payload(spec.flow, seq, &mut buf);
            match sock.send(&buf) {
                Ok(_) => {
                    r.sent += 1;
                    seq += 1;
                }
                Err(_) => {
                    r.errors += 1;
                    std::thread::yield_now();
                }
            }
        }
        r.elapsed = t0.elapsed();
        Ok(r)
    })
}

/// What a receiver saw.
#[derive(Debug, Clone, Default)]
pub struct RecvReport {
    /// Datagrams received with every byte correct.
    pub good: u64,
    /// Datagrams with a wrong length, flow or byte.
    pub corrupt: u64,
    /// Datagrams seen more than once.
    pub duplicates: u64,
    /// Datagrams that arrived with a lower sequence number than one before them.
    pub reordered: u64,
    /// Distinct sequence numbers received.
    pub distinct: u64,
    /// Highest sequence number seen.
    pub max_seq: Option<u64>,
}

/// A receiver running on its own thread inside a namespace.
#[derive(Debug)]
pub struct Receiver {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<io::Result<RecvReport>>,
}

impl Receiver {
    /// Binds `bind` inside `ns` and counts datagrams of `flow` with `payload` bytes until
    /// stopped. Returns once the socket is bound.
    pub fn start(
        ns: &Netns,
        bind: impl Into<SocketAddr>,
        flow: u8,
        payload: usize,
        cpu: Option<usize>,
    ) -> io::Result<Receiver> {
        let bind: SocketAddr = bind.into();
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel::<io::Result<()>>();
        let nsname = ns.name().to_string();
        let st = stop.clone();
        let handle = std::thread::spawn(move || -> io::Result<RecvReport> {
            let _g = nic::netns::enter_by_name(&nsname)?;
            if let Some(c) = cpu {
                let _ = nic::sys::pin_current_thread(c);
            }
            let sock = match UdpSocket::bind(bind) {
                Ok(s) => s,
                Err(e) => {
                    let _ = tx.send(Err(io::Error::new(e.kind(), e.to_string())));
                    return Err(e);
                }
            };
            let _ = nic::sys::set_int_sockopt(sock.as_fd(), libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 16 << 20);
            sock.set_read_timeout(Some(Duration::from_millis(50)))?;
            let _ = tx.send(Ok(()));
            let mut buf = vec![0u8; 65536];
            let mut seen = HashSet::new();
            let mut r = RecvReport::default();
            let mut last: Option<u64> = None;
            while !st.load(Ordering::Relaxed) {
                match sock.recv(&mut buf) {
                    Ok(n) => match check_payload(flow, payload, &buf[..n]) {
                        Some(seq) => {
                            if !seen.insert(seq) {
                                r.duplicates += 1;
                                continue;
                            }
                            r.good += 1;
                            if last.is_some_and(|l| seq < l) {
                                r.reordered += 1;
                            }
                            last = Some(seq);
                            r.max_seq = Some(r.max_seq.map_or(seq, |m: u64| m.max(seq)));
                        }
                        None => r.corrupt += 1,
                    },
                    Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                    Err(e) => return Err(e),
                }
            }
            r.distinct = seen.len() as u64;
            Ok(r)
        });
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(())) => Ok(Receiver { stop, handle }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::other("receiver did not start")),
        }
    }

    /// Stops (after draining for `grace`) and returns what was received.
    pub fn finish(self, grace: Duration) -> io::Result<RecvReport> {
        std::thread::sleep(grace);
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().map_err(|_| io::Error::other("receiver thread panicked"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trip_and_corruption_detected() {
        let mut b = vec![0u8; 100];
        fill_payload(3, 12345, &mut b);
        assert_eq!(check_payload(3, 100, &b), Some(12345));
        assert_eq!(check_payload(4, 100, &b), None);
        assert_eq!(check_payload(3, 100, &b[..99]), None, "truncated");
        b[50] ^= 1;
        assert_eq!(check_payload(3, 100, &b), None);
        assert_eq!(payload_for_frame(60), 18);
        assert_eq!(payload_for_frame(1514), 1472);
        assert_eq!(payload_for_frame_v6(1514), 1452);
    }
}
