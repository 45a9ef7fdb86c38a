//! `relay`: testpmd-style forwarding from one port to another (or back out the same port).
//!
//! Modes, as `dpdk-testpmd --forward-mode`:
//! * `io`: the frame leaves unchanged (the received chunk is the transmitted chunk);
//! * `mac`: source MAC := the TX port's MAC (or `src_mac`), destination MAC := `dst_mac`;
//! * `macswap`: source and destination MACs are exchanged.
//!
//! All modes are zero-copy: the frame is rewritten in place and handed to the TX target. Drops
//! have named reasons: `malformed` (shorter than an Ethernet header, in `mac`/`macswap`), and,
//! counted by the engine, `tx_ring_full` when the output cannot keep up.
//!
//! Parameters (`[[queue]] params`):
//! ```toml
//! params = { mode = "mac", peer = "p1", dst_mac = "02:00:00:00:00:02", src_mac = "02:00:00:00:00:01" }
//! ```
//! `peer` (default: the queue's own port) names the port to transmit on; `dst_mac` is required
//! in `mac` mode; `src_mac` defaults to the peer port's MAC address.

use engine::{App, Batch, Ctx, DropReason, TxPort, Verdict};

use crate::params::{self, ParamErrors};

/// Forwarding mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayMode {
    /// Unchanged.
    Io,
    /// Rewrite both MACs.
    Mac,
    /// Swap MACs.
    MacSwap,
}

/// Validated relay parameters (port names unresolved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayParams {
    /// Mode.
    pub mode: RelayMode,
    /// Port to transmit on (None: the receiving port).
    pub peer: Option<String>,
    /// Destination MAC for `mac` mode.
    pub dst_mac: Option<[u8; 6]>,
    /// Source MAC for `mac` mode (None: the peer port's MAC).
    pub src_mac: Option<[u8; 6]>,
}

impl RelayParams {
    /// Parses and validates `params`; every problem is reported with its key.
    pub fn parse(t: &toml::Table) -> Result<RelayParams, ParamErrors> {
        let mut errs = ParamErrors::default();
        errs.unknown_keys(t, &["mode", "peer", "dst_mac", "src_mac"]);
        let mode = match params::opt_str(t, "mode", &mut errs) {
            None | Some("io") => RelayMode::Io,
            Some("mac") => RelayMode::Mac,
            Some("macswap") => RelayMode::MacSwap,
            Some(other) => {
                errs.push("mode", format!("unknown mode '{other}' (expected one of io, mac, macswap)"));
                RelayMode::Io
            }
        };
        let peer = params::opt_str(t, "peer", &mut errs).map(str::to_string);
        let dst_mac = params::opt_mac(t, "dst_mac", &mut errs);
        let src_mac = params::opt_mac(t, "src_mac", &mut errs);
        if mode == RelayMode::Mac && dst_mac.is_none() && !errs.has("dst_mac") {
            errs.push("dst_mac", "required in mac mode".to_string());
        }
        if mode != RelayMode::Mac && (dst_mac.is_some() || src_mac.is_some()) {
            errs.push("mode", "dst_mac/src_mac are only used in mac mode".to_string());
        }
        errs.into_result(RelayParams { mode, peer, dst_mac, src_mac })
    }
}

/// Relay counters.
#[derive(Debug, Default, Clone, Copy)]
struct RelayCounters {
    forwarded: u64,
    bursts: u64,
}

/// The relay app for one queue.
#[derive(Debug)]
pub struct Relay {
    mode: RelayMode,
    to: TxPort,
    /// Destination then source MAC, as they go on the wire (mac mode).
    macs: [u8; 12],
    counters: RelayCounters,
}

impl Relay {
    /// A relay sending to `to`. In `mac` mode, `src` and `dst` are written into every frame.
    pub fn new(mode: RelayMode, to: TxPort, src: [u8; 6], dst: [u8; 6]) -> Relay {
        let mut macs = [0u8; 12];
        macs[..6].copy_from_slice(&dst);
        macs[6..].copy_from_slice(&src);
        Relay { mode, to, macs, counters: RelayCounters::default() }
    }
}

const ETH_HDR: usize = 14;

impl<'u> App<'u> for Relay {
    #[inline]
    fn process(&mut self, cx: &mut Ctx<'_, 'u>, batch: &mut Batch<'u>) {
        self.counters.bursts += 1;
        let tx = Verdict::Tx(self.to);
        match self.mode {
            RelayMode::Io => {
                self.counters.forwarded += batch.len() as u64;
                batch.set_all(tx);
            }
            RelayMode::Mac | RelayMode::MacSwap => {
                let mut fwd = 0u64;
                let mut short = 0u64;
                let mode = self.mode;
                let macs = self.macs;
                for (f, v) in batch.iter_mut() {
                    let d = f.data_mut();
                    if d.len() < ETH_HDR {
                        *v = Verdict::Drop(DropReason::Malformed);
                        short += 1;
                        continue;
                    }
                    if mode == RelayMode::Mac {
                        d[..12].copy_from_slice(&macs);
                    } else {
                        let (dst, rest) = d.split_at_mut(6);
                        dst.swap_with_slice(&mut rest[..6]);
                    }
                    *v = tx;
                    fwd += 1;
                }
                let _ = (cx, short);
                self.counters.forwarded += fwd;
            }
        }
    }

    fn report(&self, out: &mut Vec<(&'static str, u64)>) {
        out.push(("forwarded", self.counters.forwarded));
        out.push(("bursts", self.counters.bursts));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::{DropCounters, Instant};
    use nic::{FrameBuf, PoolCache, Umem, UmemConfig};

    fn table(s: &str) -> toml::Table {
        s.parse().unwrap()
    }

    #[test]
    fn params_parse_and_report_every_problem() {
        let p = RelayParams::parse(&table(
            r#"mode = "mac"
dst_mac = "02:00:00:00:00:02"
peer = "p1""#,
        ))
        .unwrap();
        assert_eq!(p.mode, RelayMode::Mac);
        assert_eq!(p.peer.as_deref(), Some("p1"));
        assert_eq!(p.dst_mac, Some([2, 0, 0, 0, 0, 2]));
        assert_eq!(RelayParams::parse(&table("")).unwrap().mode, RelayMode::Io);
        let e = RelayParams::parse(&table(
            r#"mode = "bridge"
dst_mac = "zz"
colour = 3"#,
        ))
        .unwrap_err();
        let keys: Vec<&str> = e.0.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, vec!["colour", "mode", "dst_mac"]);
        let e = RelayParams::parse(&table(r#"mode = "mac""#)).unwrap_err();
        assert_eq!(e.0[0].0, "dst_mac");
        let e = RelayParams::parse(&table("mode = 5")).unwrap_err();
        assert_eq!(e.0[0].0, "mode");
    }

    fn run(mode: RelayMode, frames: &[Vec<u8>]) -> (Vec<Verdict>, Vec<Vec<u8>>, DropCounters) {
        let u = Umem::heap(UmemConfig { frame_size: 2048, frame_count: 256, headroom: 0 }).unwrap();
        let mut pool = PoolCache::new(&u, 64);
        let mut batch = Batch::with_capacity(64);
        for bytes in frames {
            let mut f = pool.alloc().unwrap();
            f.set_len(bytes.len());
            f.data_mut().copy_from_slice(bytes);
            batch.buf_mut().push(f).unwrap();
        }
        batch.reset_verdicts();
        let mut relay = Relay::new(mode, TxPort(1), [0xaa; 6], [0xbb; 6]);
        let mut drops = DropCounters::default();
        let mut staging: Vec<FrameBuf> = vec![];
        let mut cx = Ctx::new(Instant::ZERO, &mut pool, &mut drops, &mut staging);
        relay.process(&mut cx, &mut batch);
        let verdicts = (0..batch.len()).map(|i| batch.verdict(i)).collect();
        let out = batch.frames().iter().map(|f| f.data().to_vec()).collect();
        let buf = batch.buf_mut();
        pool.free_burst(buf);
        (verdicts, out, drops)
    }

    #[test]
    fn io_forwards_unchanged() {
        let f: Vec<u8> = (0..60).collect();
        let (v, out, _) = run(RelayMode::Io, &[f.clone(), f.clone()]);
        assert_eq!(v, vec![Verdict::Tx(TxPort(1)); 2]);
        assert_eq!(out, vec![f.clone(), f]);
    }

    #[test]
    fn mac_rewrites_both_addresses_and_nothing_else() {
        let f: Vec<u8> = (0..60).collect();
        let (v, out, _) = run(RelayMode::Mac, std::slice::from_ref(&f));
        assert_eq!(v[0], Verdict::Tx(TxPort(1)));
        assert_eq!(&out[0][..6], &[0xbb; 6]);
        assert_eq!(&out[0][6..12], &[0xaa; 6]);
        assert_eq!(&out[0][12..], &f[12..]);
    }

    #[test]
    fn macswap_swaps_and_short_frames_are_malformed() {
        let f: Vec<u8> = (0..60).collect();
        let (v, out, _) = run(RelayMode::MacSwap, &[f.clone(), vec![1, 2, 3]]);
        assert_eq!(&out[0][..6], &f[6..12]);
        assert_eq!(&out[0][6..12], &f[..6]);
        assert_eq!(&out[0][12..], &f[12..]);
        assert_eq!(v[1], Verdict::Drop(DropReason::Malformed));
        assert_eq!(out[1], vec![1, 2, 3]);
    }
}
