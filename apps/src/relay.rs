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
//! `peer` names the port to transmit on; without it a frame goes back out of the port it came
//! in on (a shard owning several queues sends each burst back through its own port). `dst_mac`
//! is required in `mac` mode; `src_mac` defaults to the output port's MAC address.

use engine::{App, Batch, Ctx, DropReason, Ingress, PortId, TxPort, Verdict};

use crate::params::{self, ParamErrors};
use crate::registry::{AppKind, BuildCtx, Handled};

/// The `[[queue]]` sections of a relay between two ports on one lcore, each port's frames
/// going out of the other: the one place this common configuration is written (the demo, the
/// tests and the benchmarks all use it). In `mac` mode, `dst_b` is written into frames sent
/// out of `b` and `dst_a` into frames sent out of `a`.
pub fn two_port_queues(a: &str, b: &str, lcore: usize, mode: &str, dst_b: [u8; 6], dst_a: [u8; 6]) -> String {
    let dst =
        |m: [u8; 6]| if mode == "mac" { format!(", dst_mac = \"{}\"", params::fmt_mac(&m)) } else { String::new() };
    format!(
        "[[queue]]\nport = \"{a}\"\nlcore = {lcore}\napp = \"relay\"\nparams = {{ mode = \"{mode}\", peer = \"{b}\"{db} }}\n\
         [[queue]]\nport = \"{b}\"\nlcore = {lcore}\napp = \"relay\"\nparams = {{ mode = \"{mode}\", peer = \"{a}\"{da} }}\n",
        db = dst(dst_b),
        da = dst(dst_a),
    )
}

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

impl AppKind for RelayParams {
    type App = Relay;

    fn parse(t: &toml::Table) -> Result<RelayParams, ParamErrors> {
        RelayParams::parse(t)
    }

    fn port_refs(&self) -> Vec<(&'static str, String)> {
        self.peer.iter().map(|p| ("peer", p.clone())).collect()
    }

    fn build(&self, cx: &BuildCtx<'_>) -> Result<Relay, String> {
        let src_of = |port: &str| match self.src_mac {
            Some(m) => Ok(m),
            None if self.mode == RelayMode::Mac => {
                (cx.mac_of)(port).ok_or_else(|| format!("cannot read the MAC address of port '{port}'; set src_mac"))
            }
            None => Ok([0; 6]),
        };
        let dst = self.dst_mac.unwrap_or([0; 6]);
        let out = match &self.peer {
            Some(peer) => Out::Fixed(cx.tx_of(peer, "relay peer")?, macs(src_of(peer)?, dst)),
            None => {
                let mut back = Vec::with_capacity(cx.queues.len());
                for q in cx.queues {
                    if !back.iter().any(|(p, _, _)| *p == q.port) {
                        back.push((q.port, q.tx, macs(src_of(&q.port_name)?, dst)));
                    }
                }
                Out::Back(back)
            }
        };
        Ok(Relay { mode: self.mode, out, counters: RelayCounters::default() })
    }
}
/// Relay counters.
#[derive(Debug, Default, Clone, Copy)]
struct RelayCounters {
    forwarded: u64,
    bursts: u64,
}

/// Destination then source MAC, as they go on the wire (mac mode).
type Macs = [u8; 12];

fn macs(src: [u8; 6], dst: [u8; 6]) -> Macs {
    let mut m = [0u8; 12];
    m[..6].copy_from_slice(&dst);
    m[6..].copy_from_slice(&src);
    m
}

/// Where frames go, with the MACs `mac` mode writes for that output.
#[derive(Debug)]
enum Out {
    /// Every frame to one target (`peer`).
    Fixed(TxPort, Macs),
    /// Back out of the ingress port: (ingress port, its TX target, MACs), one per own port.
    Back(Vec<(PortId, TxPort, Macs)>),
}

/// The relay app (one shard).
#[derive(Debug)]
pub struct Relay {
    mode: RelayMode,
    out: Out,
    counters: RelayCounters,
}

impl Handled for Relay {}

impl Relay {
    /// A relay sending everything to `to`. In `mac` mode, `src` and `dst` are written into
    /// every frame.
    pub fn new(mode: RelayMode, to: TxPort, src: [u8; 6], dst: [u8; 6]) -> Relay {
        Relay { mode, out: Out::Fixed(to, macs(src, dst)), counters: RelayCounters::default() }
    }

    /// Output target and MACs for a burst from `from`.
    #[inline]
    fn output(&self, from: Ingress) -> Option<(TxPort, Macs)> {
        match &self.out {
            Out::Fixed(t, m) => Some((*t, *m)),
            Out::Back(v) => v.iter().find(|(p, _, _)| *p == from.port).map(|(_, t, m)| (*t, *m)),
        }
    }
}

const ETH_HDR: usize = 14;

impl<'u> App<'u> for Relay {
    #[inline]
    fn process(&mut self, _cx: &mut Ctx<'_, 'u>, from: Ingress, batch: &mut Batch<'u>) {
        self.counters.bursts += 1;
        let Some((to, macs)) = self.output(from) else {
            batch.set_all(Verdict::Drop(DropReason::NoRoute));
            return;
        };
        let tx = Verdict::Tx(to);
        match self.mode {
            RelayMode::Io => {
                self.counters.forwarded += batch.len() as u64;
                batch.set_all(tx);
            }
            RelayMode::Mac | RelayMode::MacSwap => {
                let mut fwd = 0u64;
                let mode = self.mode;
                for (f, v) in batch.iter_mut() {
                    let d = f.data_mut();
                    if d.len() < ETH_HDR {
                        *v = Verdict::Drop(DropReason::Malformed);
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
        relay.process(&mut cx, Ingress::local(PortId(0)), &mut batch);
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
