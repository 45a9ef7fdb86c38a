//! One shard of an `l4lb` instance: the full-NAT data path on one lcore.
//!
//! **From clients** (the client port): each burst is parsed once into 5-tuples, looked up in
//! the flow table in one burst (hash all, prefetch, probe), and then, per frame:
//! * a hit: destination := the flow's backend, source := its SNAT address and port, MACs :=
//!   the backend's and our backend port's; TCP flags move the flow between timeout classes;
//! * a miss to a service: a TCP SYN (or any UDP datagram) opens a flow — backend by Maglev
//!   over the service's table, a free (SNAT address, port) pair of this shard, one flow-table
//!   entry — and is rewritten as above; other TCP segments are `no_flow` drops;
//! * ICMP echo to a VIP is answered here; an ICMP error about a flow (path-MTU discovery) is
//!   translated, quote included, and sent to the backend.
//!
//! **From backends**: if another shard owns the reply's destination port, the frame is handed
//! to it ([`Verdict::Handoff`]); else the reply's source (backend address, port) and protocol
//! name the backend's pool of pairs (one probe) and its destination (SNAT address, port)
//! indexes that pool's reverse map (no hash). The flow found must hold that very pair in that
//! pool and have that backend (else `no_flow`); the reply is rewritten back to VIP → client and
//! sent to the MAC the client's frames came from.
//!
//! NAT capacity ([`super::natports`]): a (SNAT address, port) pair is unique per backend, not
//! per shard — each backend (address, port, protocol) has its own pool of this shard's slice
//! of ports on every SNAT address of its family, as conntrack keeps reply tuples unique. A flow
//! that moves to another backend returns its pair to the old backend's pool and takes one from
//! the new one's.
//!
//! Every drop has a named counter ([`Counters`]); nothing on this path allocates, logs or makes
//! a syscall. Timers: a bounded expiry sweep ([`FlowTable::expire`]) every millisecond, which
//! returns the NAT pairs of expired flows. Runtime changes (backend MACs, Maglev tables, backend
//! states) arrive from the controller between loop iterations ([`L4lb::set_backend`],
//! [`L4lb::set_service_table`]).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use engine::flow::{FlowIx, FlowKey, FlowTable, InsertError, Probe, TimeoutClass};
use engine::maglev::MaglevTable;
use engine::nat::{FiveTuple, NatError, NatFrame, NatLayout, V4Flow};
use engine::wire::{EthernetAddress, Icmpv4Message, IpPair, IpProtocol, TcpFlags};
use engine::{App, Batch, Ctx, DropReason, Ingress, Instant, PortId, Shard, TxPort, Verdict};

use super::natports::{NatPorts, PoolId, PoolKey, Token, NO_POOL};
use super::params::L4lbParams;
use crate::registry::Handled;

/// State of a backend slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendState {
    /// No backend in this slot.
    Unused,
    /// Takes new flows (when its MAC is known and the Maglev table includes it).
    Active,
    /// Takes no new flows; its flows go on.
    Draining,
    /// Gone: its flows move to another backend on their next packet.
    Removed,
}

impl BackendState {
    /// Name for reports and commands.
    pub fn name(self) -> &'static str {
        match self {
            BackendState::Unused => "unused",
            BackendState::Active => "active",
            BackendState::Draining => "draining",
            BackendState::Removed => "removed",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Backend {
    addr: IpAddr,
    port: u16,
    mac: Option<[u8; 6]>,
    state: BackendState,
    /// Flows of this shard on it now.
    flows: u64,
    /// Its pool of NAT pairs ([`NO_POOL`] until the slot is given a backend).
    pool: PoolId,
}

#[derive(Debug)]
struct Service {
    vip: IpAddr,
    proto: IpProtocol,
    port: u16,
    /// Maglev table over `members` (None until the controller installs one).
    table: Option<Arc<MaglevTable>>,
    /// Backend slot of each Maglev backend index.
    members: Arc<[u16]>,
}

/// One connection: what the reverse direction and the rewrites need beyond the key.
#[derive(Debug, Clone, Copy)]
pub struct Conn {
    backend: u16,
    /// The pool `token` came from (the backend's when the flow opened).
    pool: PoolId,
    token: Token,
    /// Where the client's frames came from (its MAC or its router's).
    client_mac: [u8; 6],
    /// The backend has answered (SYN-ACK seen).
    replied: bool,
}

macro_rules! counters {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $field:ident),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
        pub struct $name { $($(#[$fm])* pub $field: u64),+ }
        impl $name {
            /// (name, value) of every counter, in declaration order.
            pub fn fields(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
                [$((stringify!($field), self.$field)),+].into_iter()
            }
        }
    };
}

counters!(
    /// The shard's counters (the flow table's own are reported beside them, `flow_*`).
    Counters {
        /// Client → backend frames forwarded.
        to_backend,
        /// Backend → client frames forwarded.
        to_client,
        /// Flows opened.
        new_flows,
        /// Flows whose backend was removed, re-balanced on their next packet.
        moved,
        /// Flows expired (their NAT pairs returned).
        expired,
        /// Replies handed to the shard that owns their flow.
        handed_off,
        /// ICMP echo requests answered.
        icmp_echo,
        /// ICMP errors translated (towards backends and towards clients).
        icmp_translated,
        /// To a VIP, but no service on that protocol and port.
        drop_no_service,
        /// Not the first segment of a flow, or a reply that matches none.
        drop_no_flow,
        /// The service has no backend to give (none active and resolved).
        drop_no_backend,
        /// The flow table refused the flow (full).
        drop_table_full,
        /// No free (SNAT address, port) pair towards the backend chosen (its pool is exhausted).
        drop_nat_ports,
        /// IP fragments (not reassembled: the ports are in the first fragment only).
        drop_fragment,
        /// Truncated or inconsistent headers.
        drop_malformed,
        /// Not TCP/UDP/ICMP, or ICMP that is neither echo to us nor an error about a flow.
        drop_unsupported,
        /// A frame on a port the instance does not serve.
        drop_wrong_port,
    }
);

/// Static wiring of a shard.
#[derive(Debug, Clone)]
pub struct Wiring {
    /// Ports (as frames are marked) and their TX targets and MACs.
    pub client: PortId,
    /// Backend-side port.
    pub backend: PortId,
    /// TX target towards clients.
    pub to_client: TxPort,
    /// TX target towards backends.
    pub to_backend: TxPort,
    /// Our MAC on the client side.
    pub client_mac: [u8; 6],
    /// Our MAC on the backend side.
    pub backend_mac: [u8; 6],
    /// This shard and the number of shards.
    pub shard: Shard,
    /// Shards of the instance.
    pub shards: u16,
}

/// Entries examined per expiry step (every millisecond): a table of `capacity` entries is
/// swept in `capacity / SWEEP_BUDGET_MIN` ms at most, and in about one second when larger.
const SWEEP_BUDGET_MIN: usize = 256;
const SWEEP_EVERY: Duration = Duration::from_millis(1);
/// How many frames ahead of the one being handled the flow-table entry is prefetched: about a
/// DRAM latency's worth of per-frame work.
const PROBE_AHEAD: usize = 8;

/// The l4lb app (one shard).
pub struct L4lb {
    w: Wiring,
    flows: FlowTable<Conn>,
    /// NAT pairs per backend and their reverse maps.
    nat: NatPorts,
    services: Vec<Service>,
    backends: Vec<Backend>,
    /// Per-burst scratch: frame index and parsed layout, key; lookup results.
    burst: Vec<(usize, Parsed)>,
    /// Layouts of the burst's frames that took the general path.
    layouts: Vec<NatLayout>,
    keys: Vec<FlowKey>,
    /// The burst's flow-table probes, one per key (see [`engine::flow::Probe`]).
    probes: Vec<Probe>,
    expired: Vec<(FlowKey, Conn)>,
    sweep_budget: usize,
    next_sweep: Instant,
    counters: Counters,
}

impl std::fmt::Debug for L4lb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("L4lb").field("shard", &self.w.shard).field("flows", &self.flows.len()).finish()
    }
}

impl Handled for L4lb {}

/// How a frame of a client burst was parsed.
#[derive(Debug, Clone, Copy)]
enum Parsed {
    /// The fast path (untagged IPv4 without options, TCP/UDP).
    Fast(V4Flow),
    /// The general path: index into `L4lb::layouts`.
    Full(usize),
}

/// Rewrites a fast-path frame to `to` (an IPv4 tuple); false if `to` is not IPv4.
#[inline]
fn rewrite_v4(v: &V4Flow, frame: &mut [u8], to: &FiveTuple) -> bool {
    match to.ips {
        IpPair::V4 { src, dst } => v.rewrite(frame, u32::from(src), to.src_port, u32::from(dst), to.dst_port),
        IpPair::V6 { .. } => false,
    }
}

/// Sets the destination and source MACs of a frame (at least an Ethernet header long: both
/// paths have checked that).
#[inline]
fn set_macs(frame: &mut [u8], dst: [u8; 6], src: [u8; 6]) {
    if frame.len() >= 12 {
        frame[..6].copy_from_slice(&dst);
        frame[6..12].copy_from_slice(&src);
    }
}

/// Maglev's flow hash: the same on every shard (no per-table seed), so a flow picks the same
/// backend whichever shard sees it.
#[inline]
fn flow_hash(k: &FlowKey) -> u64 {
    let mut h: u64 = 0x9e37_79b9_7f4a_7c15;
    for w in k.words() {
        h = (h ^ w).wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 32;
    }
    h
}

impl L4lb {
    /// A shard with the instance's initial backends (slots in configuration order, MACs not yet
    /// known unless configured) and no Maglev tables: the controller installs those before the
    /// first packet.
    pub fn new(p: &L4lbParams, w: Wiring, burst: usize) -> L4lb {
        let per = p.ports_per_shard(w.shards);
        let nat = NatPorts::new(&p.snat, p.nat_ports.0, per, w.shard.0, w.shards, usize::from(p.max_backends));
        let unused = Backend {
            addr: IpAddr::from([0, 0, 0, 0]),
            port: 0,
            mac: None,
            state: BackendState::Unused,
            flows: 0,
            pool: NO_POOL,
        };
        let mut slots = 0u16..;
        let services = p
            .services
            .iter()
            .map(|s| Service {
                vip: s.vip,
                proto: IpProtocol(s.proto.number()),
                port: s.port,
                table: None,
                members: s.backends.iter().zip(&mut slots).map(|(_, slot)| slot).collect(),
            })
            .collect();
        let cap = p.max_flows as usize;
        let sweep_budget = (cap / 1000).max(SWEEP_BUDGET_MIN);
        let mut lb = L4lb {
            w,
            flows: FlowTable::new(cap, p.timeouts),
            nat,
            services,
            backends: vec![unused; p.max_backends as usize],
            burst: Vec::with_capacity(burst),
            layouts: Vec::with_capacity(burst),
            keys: Vec::with_capacity(burst),
            probes: Vec::with_capacity(burst),
            expired: Vec::with_capacity(sweep_budget + cap.min(4096)),
            sweep_budget,
            next_sweep: Instant::ZERO,
            counters: Counters::default(),
        };
        for (si, s) in p.services.iter().enumerate() {
            for (k, b) in s.backends.iter().enumerate() {
                let slot = lb.services[si].members[k];
                lb.set_backend(slot, si, b.addr, BackendState::Active, b.mac);
            }
        }
        lb
    }

    // ---- controller side (between loop iterations) ----

    /// Sets backend slot `slot`, a backend of service `service`. The first time a backend
    /// (address, port, protocol) appears, its pool of NAT pairs is allocated here (the control
    /// path); a slot given another backend takes that backend's pool, and its flows keep the
    /// pairs of the pool they opened with.
    pub fn set_backend(
        &mut self,
        slot: u16,
        service: usize,
        addr: SocketAddr,
        state: BackendState,
        mac: Option<[u8; 6]>,
    ) {
        let Some(proto) = self.services.get(service).map(|s| s.proto.0) else { return };
        let Some(b) = self.backends.get_mut(slot as usize) else { return };
        b.addr = addr.ip();
        b.port = addr.port();
        b.state = state;
        b.mac = mac;
        if state != BackendState::Unused {
            b.pool = self.nat.pool(PoolKey { addr: addr.ip(), port: addr.port(), proto }).unwrap_or(NO_POOL);
        }
    }

    /// Installs service `service`'s Maglev table over `members` (backend slots).
    pub fn set_service_table(&mut self, service: usize, table: Arc<MaglevTable>, members: Arc<[u16]>) {
        if let Some(s) = self.services.get_mut(service) {
            s.table = Some(table);
            s.members = members;
        }
    }

    /// Flows of this shard per backend slot.
    pub fn backend_flows(&self) -> Vec<u64> {
        self.backends.iter().map(|b| b.flows).collect()
    }

    /// The shard's counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Free NAT pairs of this shard towards each backend slot (0 for a slot without a
    /// backend; slots of the same backend address, port and protocol share one pool).
    pub fn backend_nat_free(&self) -> Vec<u64> {
        self.backends.iter().map(|b| self.nat.free_pairs(b.pool) as u64).collect()
    }

    /// Free NAT pairs summed over the pools of every backend this shard has known.
    pub fn nat_free(&self) -> usize {
        self.nat.available()
    }

    /// Flows in the table now.
    pub fn flow_count(&self) -> usize {
        self.flows.len()
    }

    // ---- data path ----

    fn service_of(&self, t: &FiveTuple) -> Option<usize> {
        let dst = t.dst_addr();
        self.services.iter().position(|s| s.vip == dst && s.proto == t.protocol && s.port == t.dst_port)
    }

    fn is_vip(&self, a: IpAddr) -> bool {
        self.services.iter().any(|s| s.vip == a)
    }

    fn count_nat_error(&mut self, e: NatError) -> DropReason {
        match e {
            NatError::Fragment => {
                self.counters.drop_fragment += 1;
                DropReason::Unsupported
            }
            NatError::Malformed => {
                self.counters.drop_malformed += 1;
                DropReason::Malformed
            }
            NatError::Unsupported | NatError::Mismatch => {
                self.counters.drop_unsupported += 1;
                DropReason::Unsupported
            }
        }
    }

    /// Returns a flow's NAT pair and backend count (its table entry is already gone).
    fn release(&mut self, c: &Conn) {
        self.nat.free(c.pool, c.token);
        if let Some(b) = self.backends.get_mut(c.backend as usize) {
            b.flows = b.flows.saturating_sub(1);
        }
    }

    /// Opens a flow for `key` (a miss); returns its index or the drop reason. A TCP flow opens
    /// on a SYN, or on any segment of a flow that is `moving` off a removed backend (the new
    /// backend then resets it, and the client learns at once instead of timing out).
    fn open(
        &mut self,
        key: FlowKey,
        t: &FiveTuple,
        flags: TcpFlags,
        moving: bool,
        client_mac: [u8; 6],
        now: Instant,
    ) -> Result<FlowIx, DropReason> {
        let Some(si) = self.service_of(t) else {
            self.counters.drop_no_service += 1;
            return Err(DropReason::Filtered);
        };
        let tcp = t.protocol == IpProtocol::TCP;
        let opens = flags.contains(TcpFlags::SYN) && !flags.contains(TcpFlags::ACK);
        if tcp && !opens && !moving {
            self.counters.drop_no_flow += 1;
            return Err(DropReason::NoFlow);
        }
        let s = &self.services[si];
        let backend =
            s.table.as_ref().and_then(|tb| tb.lookup(flow_hash(&key))).and_then(|i| s.members.get(i).copied()).filter(
                |&b| {
                    let b = &self.backends[b as usize];
                    b.state == BackendState::Active && b.mac.is_some()
                },
            );
        let Some(backend) = backend else {
            self.counters.drop_no_backend += 1;
            return Err(DropReason::NoRoute);
        };
        let pool = self.backends[backend as usize].pool;
        let Some(token) = self.nat.alloc(pool, t.src_addr().is_ipv4()) else {
            self.counters.drop_nat_ports += 1;
            return Err(DropReason::TableFull);
        };
        let class = match (tcp, opens) {
            (false, _) => TimeoutClass::Udp,
            (true, true) => TimeoutClass::HalfOpen,
            (true, false) => TimeoutClass::Closing,
        };
        let conn = Conn { backend, pool, token, client_mac, replied: false };
        match self.flows.insert(key, conn, class, now) {
            Ok(ix) => {
                self.nat.bind(pool, token, ix.index());
                self.backends[backend as usize].flows += 1;
                self.counters.new_flows += 1;
                Ok(ix)
            }
            Err(InsertError::Exists(ix)) => {
                self.nat.free(pool, token);
                Ok(ix)
            }
            Err(InsertError::Full) => {
                self.nat.free(pool, token);
                self.counters.drop_table_full += 1;
                Err(DropReason::TableFull)
            }
        }
    }

    /// The new tuple of a client's packet on flow `ix` (towards its backend), or None when the
    /// backend is gone (the caller re-opens the flow).
    #[inline]
    fn to_backend_tuple(&self, ix: FlowIx, t: &FiveTuple) -> Option<(FiveTuple, [u8; 6])> {
        let c = self.flows.get(ix)?;
        let b = &self.backends[c.backend as usize];
        if b.state == BackendState::Removed {
            return None;
        }
        let (snat, nport) = self.nat.pair(c.token);
        let to = t.with_src(snat, nport).ok()?.with_dst(b.addr, b.port).ok()?;
        Some((to, b.mac.unwrap_or([0; 6])))
    }

    /// TCP state from a client's segment.
    #[inline]
    fn client_flags(&mut self, ix: FlowIx, flags: TcpFlags) {
        if flags.intersects(TcpFlags::FIN.with(TcpFlags::RST, true)) {
            self.flows.set_class(ix, TimeoutClass::Closing);
        } else if flags.contains(TcpFlags::ACK)
            && self.flows.class(ix) == Some(TimeoutClass::HalfOpen)
            && self.flows.get(ix).is_some_and(|c| c.replied)
        {
            self.flows.set_class(ix, TimeoutClass::Established);
        }
    }

    fn client_burst(&mut self, cx: &mut Ctx<'_, '_>, batch: &mut Batch<'_>) {
        let now = cx.now;
        self.burst.clear();
        self.keys.clear();
        self.probes.clear();
        self.layouts.clear();
        // Pass 1: parse every frame once (the fast path for the common frame, else the general
        // one, whose layout is kept); ICMP and bad frames are settled here.
        let mut settled = 0;
        for i in 0..batch.len() {
            if let Some(v) = V4Flow::parse(batch.frames()[i].data()) {
                let key = FlowKey::v4(Ipv4Addr::from(v.src), Ipv4Addr::from(v.dst), v.sport, v.dport, v.protocol());
                self.probes.push(self.flows.probe_start(&key));
                self.keys.push(key);
                self.burst.push((i, Parsed::Fast(v)));
                continue;
            }
            let parsed = NatFrame::new_checked(batch.frames()[i].data()).map(|f| f.layout());
            let v = match parsed {
                Ok(l) if matches!(l.tuple().protocol, IpProtocol::TCP | IpProtocol::UDP) => {
                    let t = l.tuple();
                    let key = FlowKey::from_ips(&t.ips, t.src_port, t.dst_port, t.protocol);
                    self.probes.push(self.flows.probe_start(&key));
                    self.keys.push(key);
                    self.burst.push((i, Parsed::Full(self.layouts.len())));
                    self.layouts.push(l);
                    continue;
                }
                Ok(l) if l.tuple().protocol == IpProtocol::ICMP => self.icmp_from_client(&mut batch.frames_mut()[i]),
                Ok(_) => {
                    self.counters.drop_unsupported += 1;
                    Verdict::Drop(DropReason::Unsupported)
                }
                Err(e) => Verdict::Drop(self.count_nat_error(e)),
            };
            batch.set_verdict(i, v);
            settled += 1;
        }
        // Pass 2: the flow-table lookups of the burst, in steps interleaved with the work (no
        // stall on a whole burst of cache misses at once): each key's hash and bucket prefetch
        // were done in pass 1 while its frame was parsed; the entry of frame j + PROBE_AHEAD is
        // prefetched while frame j is handled in pass 3.
        let n = self.keys.len();
        for p in self.probes.iter_mut().take(PROBE_AHEAD) {
            self.flows.probe_advance(p);
        }
        // Pass 3: forward hits, open misses. Once this burst has opened or closed a flow, the
        // pass-2 results may be stale: from then on a hit is confirmed by its key and a miss is
        // looked up again.
        let mut changed = false;
        let mut all_out = settled == 0;
        for j in 0..n {
            let (i, parsed) = self.burst[j];
            let key = self.keys[j];
            let (t, flags) = match parsed {
                Parsed::Fast(v) => (v.tuple(), v.tcp_flags()),
                Parsed::Full(k) => (self.layouts[k].tuple(), self.layouts[k].tcp_flags().unwrap_or(TcpFlags::empty())),
            };
            if let Some(p) = self.probes.get_mut(j + PROBE_AHEAD) {
                self.flows.probe_advance(p);
            }
            let mut hit = self.flows.probe_finish(&key, &self.probes[j]);
            if changed {
                hit = hit.filter(|&ix| self.flows.key(ix) == Some(&key));
                if hit.is_none() {
                    hit = self.flows.lookup(&key);
                }
            }
            // A new SYN on a flow that is closing is a new connection (the client reused its
            // port): it gets a fresh flow and NAT pair, so the backend never sees it collide
            // with the old connection's TIME-WAIT.
            let syn = flags.contains(TcpFlags::SYN) && !flags.contains(TcpFlags::ACK);
            if let Some(ix) = hit.filter(|&ix| syn && self.flows.class(ix) == Some(TimeoutClass::Closing)) {
                if let Some((_, c)) = self.flows.try_remove(ix) {
                    self.release(&c);
                }
                hit = None;
                changed = true;
            }
            let mut out = hit.and_then(|ix| self.to_backend_tuple(ix, &t).map(|o| (ix, o)));
            if out.is_none() {
                let mut moving = false;
                if let Some(ix) = hit {
                    // The backend was removed: this flow moves.
                    if let Some((_, c)) = self.flows.try_remove(ix) {
                        self.release(&c);
                    }
                    self.counters.moved += 1;
                    moving = true;
                }
                changed = true;
                let client_mac = batch.frames()[i].data()[6..12].try_into().unwrap_or([0; 6]);
                match self.open(key, &t, flags, moving, client_mac, now) {
                    Ok(ix) => out = self.to_backend_tuple(ix, &t).map(|o| (ix, o)),
                    Err(r) => {
                        batch.set_verdict(i, Verdict::Drop(r));
                        all_out = false;
                        continue;
                    }
                }
            }
            let Some((ix, (to, mac))) = out else {
                self.counters.drop_no_backend += 1;
                batch.set_verdict(i, Verdict::Drop(DropReason::NoRoute));
                all_out = false;
                continue;
            };
            self.flows.touch(ix, now);
            if t.protocol == IpProtocol::TCP {
                self.client_flags(ix, flags);
            }
            let frame = &mut batch.frames_mut()[i];
            let rewritten = match parsed {
                Parsed::Fast(v) => Ok(rewrite_v4(&v, frame.data_mut(), &to)),
                Parsed::Full(k) => NatFrame::with_layout(frame.data_mut(), self.layouts[k])
                    .and_then(|mut nf| nf.rewrite(&to))
                    .map(|()| true),
            };
            let v = match rewritten {
                Ok(true) => {
                    set_macs(frame.data_mut(), mac, self.w.backend_mac);
                    self.counters.to_backend += 1;
                    Verdict::Tx(self.w.to_backend)
                }
                Ok(false) => Verdict::Drop(self.count_nat_error(NatError::Malformed)),
                Err(e) => Verdict::Drop(self.count_nat_error(e)),
            };
            if all_out && v == Verdict::Tx(self.w.to_backend) {
                continue;
            }
            if all_out {
                // The first frame that does not go to the backends: give the ones before it
                // their verdict, which was left implicit.
                for &(k, _) in &self.burst[..j] {
                    batch.set_verdict(k, Verdict::Tx(self.w.to_backend));
                }
                all_out = false;
            }
            batch.set_verdict(i, v);
        }
        if all_out && n > 0 {
            // Every frame of the burst goes to the backends: one verdict, dispatched in bulk.
            batch.set_all(Verdict::Tx(self.w.to_backend));
        }
    }

    fn backend_burst(&mut self, cx: &mut Ctx<'_, '_>, from: Ingress, batch: &mut Batch<'_>) {
        let now = cx.now;
        for i in 0..batch.len() {
            let v = self.reply(now, from, &mut batch.frames_mut()[i]);
            batch.set_verdict(i, v);
        }
    }

    /// One frame from the backend side.
    #[inline]
    fn reply(&mut self, now: Instant, from: Ingress, frame: &mut nic::Frame<'_>) -> Verdict {
        // The common frame takes the fast path; anything else (ICMP, IPv6, VLAN, options) the
        // general one. Both give the same bytes (engine::nat::v4's tests).
        let fast = V4Flow::parse(frame.data());
        let mut nf = None;
        let (t, flags) = match fast {
            Some(v) => (v.tuple(), v.tcp_flags()),
            None => match NatFrame::new_checked(frame.data_mut()) {
                Ok(f) => {
                    let r = (f.tuple(), f.tcp_flags().unwrap_or(TcpFlags::empty()));
                    nf = Some(f);
                    r
                }
                Err(e) => return Verdict::Drop(self.count_nat_error(e)),
            },
        };
        if t.protocol == IpProtocol::ICMP {
            return match nf {
                Some(f) => self.icmp_from_backend(from, f),
                None => Verdict::Drop(DropReason::Unsupported),
            };
        }
        if !matches!(t.protocol, IpProtocol::TCP | IpProtocol::UDP) {
            self.counters.drop_unsupported += 1;
            return Verdict::Drop(DropReason::Unsupported);
        }
        let Some(ix) = (match self.route_reply(from, (t.src_addr(), t.src_port), t.protocol, (t.dst_addr(), t.dst_port))
        {
            Ok(ix) => ix,
            Err(v) => return v,
        }) else {
            self.counters.drop_no_flow += 1;
            return Verdict::Drop(DropReason::NoFlow);
        };
        let (key, c) = match (self.flows.key(ix), self.flows.get(ix)) {
            (Some(k), Some(c)) => (*k, *c),
            _ => {
                self.counters.drop_no_flow += 1;
                return Verdict::Drop(DropReason::NoFlow);
            }
        };
        let b = &self.backends[c.backend as usize];
        if t.src_addr() != b.addr || t.src_port != b.port || t.protocol != key.protocol() {
            self.counters.drop_no_flow += 1;
            return Verdict::Drop(DropReason::NoFlow);
        }
        // Back to VIP:port → client:port.
        let Ok(to) =
            t.with_src(key.dst_addr(), key.dst_port()).and_then(|x| x.with_dst(key.src_addr(), key.src_port()))
        else {
            self.counters.drop_unsupported += 1;
            return Verdict::Drop(DropReason::Unsupported);
        };
        let rewritten = match (fast, nf) {
            (Some(v), _) => rewrite_v4(&v, frame.data_mut(), &to),
            (None, Some(mut f)) => f.rewrite(&to).is_ok(),
            (None, None) => false,
        };
        if !rewritten {
            self.counters.drop_unsupported += 1;
            return Verdict::Drop(DropReason::Unsupported);
        }
        set_macs(frame.data_mut(), c.client_mac, self.w.client_mac);
        self.flows.touch(ix, now);
        if t.protocol == IpProtocol::TCP {
            if flags.intersects(TcpFlags::FIN.with(TcpFlags::RST, true)) {
                self.flows.set_class(ix, TimeoutClass::Closing);
            } else if flags.contains(TcpFlags::SYN) && flags.contains(TcpFlags::ACK) {
                if let Some(c) = self.flows.get_mut(ix) {
                    c.replied = true;
                }
            }
        }
        self.counters.to_client += 1;
        Verdict::Tx(self.w.to_client)
    }

    /// The flow a reply from `backend` (address, port) over `proto` to `snat` (address, port)
    /// belongs to: `Ok(Some)` ours, `Ok(None)` none, `Err(verdict)` another shard's (handed
    /// over). The flow found holds exactly that pair in that backend's pool.
    #[inline]
    fn route_reply(
        &mut self,
        from: Ingress,
        backend: (IpAddr, u16),
        proto: IpProtocol,
        snat: (IpAddr, u16),
    ) -> Result<Option<FlowIx>, Verdict> {
        match self.nat.token_of(snat.0, snat.1) {
            Some(tok) => {
                let Some(pool) = self.nat.find(PoolKey { addr: backend.0, port: backend.1, proto: proto.0 }) else {
                    return Ok(None);
                };
                let ix = self.nat.flow(pool, tok).and_then(|i| self.flows.ix(i));
                Ok(ix.filter(|&ix| self.flows.get(ix).is_some_and(|c| c.pool == pool && c.token == tok)))
            }
            None => match self.nat.owner(snat.1) {
                Some(s) if s != self.w.shard.0 && from.handed_off.is_none() => {
                    self.counters.handed_off += 1;
                    Err(Verdict::Handoff(Shard(s)))
                }
                _ => Ok(None),
            },
        }
    }

    /// ICMP from a client: echo to a VIP is answered; an error about one of our replies goes on
    /// to the flow's backend.
    fn icmp_from_client(&mut self, frame: &mut nic::Frame<'_>) -> Verdict {
        let mut nf = match NatFrame::new_checked(frame.data_mut()) {
            Ok(nf) => nf,
            Err(e) => return Verdict::Drop(self.count_nat_error(e)),
        };
        let t = nf.tuple();
        if nf.is_icmp_error() {
            // The quote is our reply (VIP → client); its flow is the quote reversed.
            let inner = match nf.inner_tuple() {
                Ok(i) => i,
                Err(e) => return Verdict::Drop(self.count_nat_error(e)),
            };
            let key = FlowKey::from_ips(&inner.ips.reversed(), inner.dst_port, inner.src_port, inner.protocol);
            let Some(ix) = self.flows.lookup(&key) else {
                self.counters.drop_no_flow += 1;
                return Verdict::Drop(DropReason::NoFlow);
            };
            let Some((fwd, mac)) = self.to_backend_tuple(ix, &inner.reversed()) else {
                self.counters.drop_no_backend += 1;
                return Verdict::Drop(DropReason::NoRoute);
            };
            // Outer: SNAT → backend; the quote becomes what the backend sent: backend → SNAT.
            let outer = IpPair::from_addrs(fwd.src_addr(), fwd.dst_addr());
            return match outer.map(|o| nf.translate_icmp_error(&o, &fwd.reversed())) {
                Some(Ok(_)) => {
                    nf.set_dst_mac(EthernetAddress(mac));
                    nf.set_src_mac(EthernetAddress(self.w.backend_mac));
                    self.counters.icmp_translated += 1;
                    Verdict::Tx(self.w.to_backend)
                }
                Some(Err(e)) => Verdict::Drop(self.count_nat_error(e)),
                None => Verdict::Drop(self.count_nat_error(NatError::Mismatch)),
            };
        }
        if self.is_vip(t.dst_addr()) && nf.icmp_type_code() == Some((Icmpv4Message::ECHO_REQUEST.0, 0)) {
            return self.echo_reply(nf, self.w.to_client);
        }
        self.counters.drop_unsupported += 1;
        Verdict::Drop(DropReason::Unsupported)
    }

    /// ICMP from the backend side: echo to a SNAT address is answered; an error about a packet
    /// we sent to a backend goes back to the flow's client.
    fn icmp_from_backend(&mut self, from: Ingress, mut nf: NatFrame<&mut [u8]>) -> Verdict {
        let t = nf.tuple();
        if nf.is_icmp_error() {
            // The quote is what we sent: SNAT:port → backend.
            let inner = match nf.inner_tuple() {
                Ok(i) => i,
                Err(e) => return Verdict::Drop(self.count_nat_error(e)),
            };
            let backend = (inner.dst_addr(), inner.dst_port);
            let ix = match self.route_reply(from, backend, inner.protocol, (inner.src_addr(), inner.src_port)) {
                Ok(Some(ix)) => ix,
                Ok(None) => {
                    self.counters.drop_no_flow += 1;
                    return Verdict::Drop(DropReason::NoFlow);
                }
                Err(v) => return v,
            };
            let (key, c) = match (self.flows.key(ix), self.flows.get(ix)) {
                (Some(k), Some(c)) => (*k, *c),
                _ => {
                    self.counters.drop_no_flow += 1;
                    return Verdict::Drop(DropReason::NoFlow);
                }
            };
            // The quote becomes what the client sent (client → VIP); outer: VIP → client.
            let quote = FiveTuple {
                ips: match IpPair::from_addrs(key.src_addr(), key.dst_addr()) {
                    Some(p) => p,
                    None => return Verdict::Drop(self.count_nat_error(NatError::Mismatch)),
                },
                protocol: key.protocol(),
                src_port: key.src_port(),
                dst_port: key.dst_port(),
            };
            let Some(outer) = IpPair::from_addrs(key.dst_addr(), key.src_addr()) else {
                return Verdict::Drop(self.count_nat_error(NatError::Mismatch));
            };
            return match nf.translate_icmp_error(&outer, &quote) {
                Ok(_) => {
                    nf.set_dst_mac(EthernetAddress(c.client_mac));
                    nf.set_src_mac(EthernetAddress(self.w.client_mac));
                    self.counters.icmp_translated += 1;
                    Verdict::Tx(self.w.to_client)
                }
                Err(e) => Verdict::Drop(self.count_nat_error(e)),
            };
        }
        if self.nat.has_addr(t.dst_addr()) && nf.icmp_type_code() == Some((Icmpv4Message::ECHO_REQUEST.0, 0)) {
            return self.echo_reply(nf, self.w.to_backend);
        }
        self.counters.drop_unsupported += 1;
        Verdict::Drop(DropReason::Unsupported)
    }

    /// Turns an echo request into its reply in place and sends it back where it came from.
    fn echo_reply(&mut self, mut nf: NatFrame<&mut [u8]>, out: TxPort) -> Verdict {
        match nf.echo_reply() {
            Ok(()) => {
                self.counters.icmp_echo += 1;
                Verdict::Tx(out)
            }
            Err(e) => Verdict::Drop(self.count_nat_error(e)),
        }
    }

    fn sweep(&mut self, now: Instant) {
        self.expired.clear();
        let n = self.flows.expire(now, self.sweep_budget, &mut self.expired);
        for k in 0..n.min(self.expired.len()) {
            let c = self.expired[k].1;
            self.release(&c);
        }
        self.counters.expired += n as u64;
    }
}

impl<'u> App<'u> for L4lb {
    fn process(&mut self, cx: &mut Ctx<'_, 'u>, from: Ingress, batch: &mut Batch<'u>) {
        if from.port == self.w.client && from.handed_off.is_none() {
            self.client_burst(cx, batch);
        } else if from.port == self.w.backend {
            self.backend_burst(cx, from, batch);
        } else {
            self.counters.drop_wrong_port += batch.len() as u64;
            batch.set_all(Verdict::Drop(DropReason::NoRoute));
        }
    }

    fn poll_at(&self) -> Option<Instant> {
        Some(self.next_sweep)
    }

    fn on_timer(&mut self, cx: &mut Ctx<'_, 'u>) {
        self.sweep(cx.now);
        self.next_sweep = cx.now + SWEEP_EVERY;
    }

    fn report(&self, out: &mut Vec<(&'static str, u64)>) {
        out.extend(self.counters.fields());
        let fc = self.flows.counters();
        out.extend(fc.fields_prefixed());
        out.push(("flow_occupancy", self.flows.len() as u64));
        out.push(("nat_ports_free", self.nat.available() as u64));
    }
}
