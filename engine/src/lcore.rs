//! The pinned poll-mode core: [`Lcore`] and its builder.
//!
//! An lcore owns a set of (port, queue)s, one app instance per queue, a [`PoolCache`], TX
//! staging per target and its counters. Nothing it owns is touched by another thread, except
//! the handoff rings (SPSC, `rtrb`) to and from other lcores and its published snapshot.
//!
//! One iteration, in the order the models teach (DPDK l2fwd, the AF_XDP PMD, xdpsock):
//! 1. for each queue: `maintain` (reap completions eagerly, refill the fill ring *before*
//!    taking RX), `rx_burst` up to `burst` frames, `app.process` once for the burst, then
//!    dispatch — each frame to its TX target's staging or back to the cache with its drop
//!    reason counted (a uniform verdict is dispatched in bulk); while bursts come back full,
//!    take another (at most [`MAX_RX_BURSTS`]), unless the last one staged frames and left a
//!    target with less than a burst of room — so RX can drain faster than the iteration
//!    transmits, and backpressure stays in the RX ring;
//! 2. frames handed over by other lcores are moved into staging;
//! 3. each app's `produce` and due timers run (generators, protocol timers);
//! 4. staging is posted to TX rings (local targets) or handoff rings (remote targets); what
//!    does not fit stays staged for the next iteration, bounded by the staging capacity
//!    (2 × burst), beyond which frames are dropped as `tx_ring_full`/`handoff_full`;
//! 5. each port is flushed: at most one TX kick, only when the kernel asks.
//!
//! Time comes from a TSC clock read once per iteration (one clock may be shared by several
//! lcores, [`LcoreOptions::clock`], so their instants compare); statistics are published every
//! `publish_every`, XDP statistics (a syscall) at most once per second. No allocation, no
//! logging and no syscall happens per packet.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nic::port::Port;
use nic::{AnyPort, Frame, FrameBuf, PoolCache};

use crate::app::{App, Ctx, DropCounters, DropReason, Ingress, PortId, Shard, TxPort, Verdict};
use crate::batch::Batch;
use crate::stats::{burst_bucket, AppSnapshot, LcoreCounters, LcoreSnapshot, QueueSnapshot, SharedSnapshot};
use crate::time::{Clock, Instant};

/// Default frames per RX burst.
pub const DEFAULT_BURST: usize = 64;

/// What an lcore does when an iteration found no work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleMode {
    /// Keep polling (lowest latency; never put this on a core that runs NAPI work).
    Spin,
    /// After a run of idle iterations, sleep in `poll()` until a socket is readable (≤ 1 ms).
    Poll,
    /// Drive the kernel with non-blocking `recvfrom` (preferred busy polling): one before every
    /// RX burst of a port that has busy polling configured, so the queue's NAPI work runs on
    /// this core in the lcore's own time (as DPDK's AF_XDP driver does with `busy_budget`).
    /// One syscall per RX burst.
    BusyPoll,
}

/// Static settings of an lcore.
#[derive(Debug, Clone)]
pub struct LcoreOptions {
    /// Name for reports ("lcore1").
    pub name: String,
    /// CPU to pin to (None: do not pin).
    pub cpu: Option<usize>,
    /// Frames per RX burst.
    pub burst: usize,
    /// Idle behaviour.
    pub idle: IdleMode,
    /// Statistics publication period.
    pub publish_every: Duration,
    /// The clock to read (None: calibrate a new one when the lcore starts). Lcores given the
    /// same [`Clock`] share its epoch, so an [`Instant`] taken on one (a TX timestamp) can be
    /// compared with one taken on another (the RX time); it also saves the 20 ms calibration.
    pub clock: Option<Clock>,
}

impl LcoreOptions {
    /// Defaults: burst 64, spin, publish every 100 ms, not pinned, own clock.
    pub fn new(name: impl Into<String>) -> LcoreOptions {
        LcoreOptions {
            name: name.into(),
            cpu: None,
            burst: DEFAULT_BURST,
            idle: IdleMode::Spin,
            publish_every: Duration::from_millis(100),
            clock: None,
        }
    }
}

enum Target<'u> {
    Local(usize),
    Remote(rtrb::Producer<Frame<'u>>),
}

struct Inbound<'u> {
    ring: rtrb::Consumer<Frame<'u>>,
    to: usize,
}

/// A frame handed between two shards of one app instance, with the port it came in on.
pub type Handed<'u> = (Frame<'u>, PortId);

/// A command for an app shard, run on its lcore between iterations (runtime changes: backend
/// sets, groups). Built and boxed on the control thread; the lcore only calls it.
pub type ControlFn<A> = Box<dyn FnOnce(&mut A) + Send>;

struct Queue<'u> {
    name: String,
    port: AnyPort<'u>,
    port_id: PortId,
    /// Index into `Lcore::apps`.
    app: usize,
}

/// Handoff rings of one app shard: to each other shard (by shard index; `None` for itself and
/// for shards it has no ring to), and from each other shard.
struct ShardLinks<'u> {
    to: Vec<Option<rtrb::Producer<Handed<'u>>>>,
    from: Vec<(Shard, rtrb::Consumer<Handed<'u>>)>,
    /// Frames given `Verdict::Handoff(s)` during one dispatch, per shard.
    stage: Vec<FrameBuf<'u>>,
}

struct AppState<'u, A> {
    name: String,
    app: A,
    links: ShardLinks<'u>,
}

/// Index of an app shard on its lcore (returned by [`LcoreBuilder::add_app`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppSlot(pub usize);

/// A queue added to a builder: (name, port, port id, owning app once set).
type PendingQueue<'u> = (String, AnyPort<'u>, PortId, Option<usize>);

/// Assembles an lcore: queues first (their TX targets are needed to build apps), then apps,
/// then the handoff rings between app shards.
pub struct LcoreBuilder<'u, A> {
    opts: LcoreOptions,
    cache: PoolCache<'u>,
    queues: Vec<PendingQueue<'u>>,
    targets: Vec<Target<'u>>,
    inbound: Vec<Inbound<'u>>,
    apps: Vec<AppState<'u, A>>,
    control: Option<crossbeam_channel::Receiver<(AppSlot, ControlFn<A>)>>,
}

impl<'u, A: App<'u>> LcoreBuilder<'u, A> {
    /// A builder with its frame cache.
    pub fn new(opts: LcoreOptions, cache: PoolCache<'u>) -> Self {
        LcoreBuilder {
            opts,
            cache,
            queues: Vec::new(),
            targets: Vec::new(),
            inbound: Vec::new(),
            apps: Vec::new(),
            control: None,
        }
    }

    /// The cache (to prime ports' fill rings while opening them).
    pub fn cache_mut(&mut self) -> &mut PoolCache<'u> {
        &mut self.cache
    }

    /// Adds a (port, queue) this lcore polls, received frames marked as coming from `port_id`;
    /// returns it as a TX target.
    pub fn add_queue(&mut self, name: impl Into<String>, port_id: PortId, port: AnyPort<'u>) -> TxPort {
        self.queues.push((name.into(), port, port_id, None));
        self.targets.push(Target::Local(self.queues.len() - 1));
        TxPort((self.targets.len() - 1) as u8)
    }

    /// Adds a handoff ring to another lcore as a TX target.
    pub fn add_remote(&mut self, ring: rtrb::Producer<Frame<'u>>) -> TxPort {
        self.targets.push(Target::Remote(ring));
        TxPort((self.targets.len() - 1) as u8)
    }

    /// Frames arriving on `ring` (from another lcore) are sent on local target `to`.
    pub fn add_inbound(&mut self, ring: rtrb::Consumer<Frame<'u>>, to: TxPort) {
        let q = self.local_queue(to, "inbound handoff");
        self.inbound.push(Inbound { ring, to: q });
    }

    fn local_queue(&self, t: TxPort, what: &str) -> usize {
        match self.targets.get(t.0 as usize) {
            Some(Target::Local(q)) => *q,
            _ => panic!("{what}: target {} is not a local queue", t.0),
        }
    }

    /// Installs an app shard owning the local queues `queues` (a daemon bug panics: a queue
    /// that is not local, or already owned).
    pub fn add_app(&mut self, name: impl Into<String>, app: A, queues: &[TxPort]) -> AppSlot {
        let slot = self.apps.len();
        for &t in queues {
            let q = self.local_queue(t, "add_app");
            assert!(self.queues[q].3.is_none(), "queue {} already has an app", self.queues[q].0);
            self.queues[q].3 = Some(slot);
        }
        let links = ShardLinks { to: Vec::new(), from: Vec::new(), stage: Vec::new() };
        self.apps.push(AppState { name: name.into(), app, links });
        AppSlot(slot)
    }

    /// Installs an app shard owning the one queue `queue` (the common case).
    pub fn set_app(&mut self, queue: TxPort, name: impl Into<String>, app: A) -> AppSlot {
        self.add_app(name, app, &[queue])
    }

    /// Frames app shard `slot` hands to `shard` go through `ring`.
    pub fn add_shard_out(&mut self, slot: AppSlot, shard: Shard, ring: rtrb::Producer<Handed<'u>>) {
        let links = &mut self.apps[slot.0].links;
        let i = shard.0 as usize;
        if links.to.len() <= i {
            links.to.resize_with(i + 1, || None);
        }
        links.to[i] = Some(ring);
    }

    /// Frames shard `from` hands to app shard `slot` arrive on `ring`.
    pub fn add_shard_in(&mut self, slot: AppSlot, from: Shard, ring: rtrb::Consumer<Handed<'u>>) {
        self.apps[slot.0].links.from.push((from, ring));
    }

    /// Commands for this lcore's app shards arrive on `rx` (checked every few hundred
    /// iterations, never between frames).
    pub fn control(&mut self, rx: crossbeam_channel::Receiver<(AppSlot, ControlFn<A>)>) {
        self.control = Some(rx);
    }

    /// Builds the lcore. Panics if a queue has no app (a daemon bug).
    pub fn build(mut self, stop: Arc<AtomicBool>) -> (Lcore<'u, A>, SharedSnapshot) {
        let burst = self.opts.burst.max(1);
        for a in &mut self.apps {
            a.links.stage = (0..a.links.to.len()).map(|_| FrameBuf::with_capacity(burst)).collect();
        }
        let queues: Vec<Queue<'u>> = self
            .queues
            .into_iter()
            .map(|(name, port, port_id, app)| {
                let app = app.unwrap_or_else(|| panic!("queue {name} has no app"));
                Queue { name, port, port_id, app }
            })
            .collect();
        let staging = (0..self.targets.len()).map(|_| FrameBuf::with_capacity(2 * burst)).collect();
        let snapshot = LcoreSnapshot {
            name: self.opts.name.clone(),
            cpu: self.opts.cpu,
            burst,
            running: true,
            queues: queues
                .iter()
                .map(|q| QueueSnapshot {
                    name: q.name.clone(),
                    app: self.apps[q.app].name.clone(),
                    ..Default::default()
                })
                .collect(),
            apps: self.apps.iter().map(|a| AppSnapshot { name: a.name.clone(), counters: Vec::new() }).collect(),
            ..Default::default()
        };
        let shared = Arc::new(Mutex::new(snapshot.clone()));
        let lcore = Lcore {
            opts: self.opts,
            burst,
            cache: self.cache,
            batch: Batch::with_capacity(burst),
            queues,
            apps: self.apps,
            targets: self.targets,
            inbound: self.inbound,
            staging,
            counters: LcoreCounters::default(),
            control: self.control,
            stop,
            shared: shared.clone(),
            scratch: snapshot,
            report_buf: Vec::with_capacity(64),
        };
        (lcore, shared)
    }
}

/// A poll-mode core. Build with [`LcoreBuilder`], run with [`Lcore::run`].
pub struct Lcore<'u, A> {
    opts: LcoreOptions,
    burst: usize,
    cache: PoolCache<'u>,
    batch: Batch<'u>,
    queues: Vec<Queue<'u>>,
    apps: Vec<AppState<'u, A>>,
    targets: Vec<Target<'u>>,
    inbound: Vec<Inbound<'u>>,
    staging: Vec<FrameBuf<'u>>,
    counters: LcoreCounters,
    control: Option<crossbeam_channel::Receiver<(AppSlot, ControlFn<A>)>>,
    stop: Arc<AtomicBool>,
    shared: SharedSnapshot,
    scratch: LcoreSnapshot,
    report_buf: Vec<(&'static str, u64)>,
}

impl<'u, A> std::fmt::Debug for Lcore<'u, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lcore").field("name", &self.opts.name).field("queues", &self.queues.len()).finish()
    }
}

/// Most RX bursts taken from one queue per iteration (see [`Lcore::poll_once`]).
pub const MAX_RX_BURSTS: usize = 4;

/// Idle iterations before `IdleMode::Poll` sleeps.
const IDLE_BEFORE_SLEEP: u32 = 256;

impl<'u, A: App<'u>> Lcore<'u, A> {
    /// Runs until `stop` is set or every app is done; returns the final snapshot. The ports
    /// close when the lcore drops, with whatever chunks their rings still hold.
    pub fn run(mut self) -> LcoreSnapshot {
        self.run_loop()
    }

    /// As [`Lcore::run`], but hands back what may still hold frames once every lcore sharing
    /// the UMEM has stopped: the ports (still open, rings intact, so the caller can take back
    /// the chunks they hold with `nic::RingPort::close`) and the rings other lcores hand
    /// frames to this one on ([`Stopped::free_leftovers`]). The lcore's cache has returned its
    /// chunks to the shared free list when this returns.
    pub fn run_and_return_ports(mut self) -> Stopped<'u> {
        let snapshot = self.run_loop();
        Stopped {
            snapshot,
            ports: self.queues.drain(..).map(|q| q.port).collect(),
            inbound: self.inbound.drain(..).map(|i| i.ring).collect(),
            shard_in: self.apps.iter_mut().flat_map(|a| a.links.from.drain(..).map(|(_, r)| r)).collect(),
        }
    }

    fn run_loop(&mut self) -> LcoreSnapshot {
        if let Some(cpu) = self.opts.cpu {
            if let Err(e) = nic::sys::pin_current_thread(cpu) {
                tracing::warn!(lcore = %self.opts.name, cpu, error = %e, "could not pin lcore");
            }
        }
        let _span = tracing::info_span!("lcore", name = %self.opts.name, cpu = ?self.opts.cpu).entered();
        tracing::debug!(queues = self.queues.len(), apps = self.apps.len(), burst = self.burst, idle = ?self.opts.idle, "lcore running");
        let clock = self.opts.clock.unwrap_or_default();
        let start = clock.now();
        let mut next_publish = start + self.opts.publish_every;
        let mut next_xdp = start;
        let mut idle_run = 0u32;
        let mut iter = 0u64;
        let mut prev = start;
        loop {
            let now = clock.now();
            self.counters.note_gap(now - prev);
            prev = now;
            if iter & 255 == 0 {
                if self.stop.load(Ordering::Relaxed) || self.apps.iter().all(|a| a.app.is_done()) {
                    break;
                }
                self.run_control();
            }
            iter += 1;
            let work = self.poll_once(now);
            if work == 0 {
                self.counters.idle_iterations += 1;
                idle_run += 1;
                self.on_idle(idle_run);
            } else {
                idle_run = 0;
            }
            if now >= next_publish {
                let xdp = now >= next_xdp;
                if xdp {
                    next_xdp = now + Duration::from_secs(1);
                }
                self.publish(now - start, xdp, true);
                next_publish = now + self.opts.publish_every;
            }
        }
        self.drain(&clock);
        for a in &mut self.apps {
            a.app.finish();
        }
        let elapsed = clock.now() - start;
        self.publish(elapsed, true, false);
        // Give back what is still staged or waiting in inbound shard rings (counted: these
        // frames were not sent).
        for s in &mut self.staging {
            self.counters.drops.add(DropReason::TxRingFull, s.len() as u64);
            self.cache.free_burst(s);
        }
        for a in &mut self.apps {
            for (_, r) in &mut a.links.from {
                while let Ok((f, _)) = r.pop() {
                    self.counters.drops.add(DropReason::HandoffFull, 1);
                    self.cache.free(f);
                }
            }
        }
        self.publish(elapsed, false, false);
        self.scratch.clone()
    }

    /// Runs the commands waiting for this lcore's app shards (between iterations).
    fn run_control(&mut self) {
        let Some(rx) = &self.control else { return };
        while let Ok((slot, f)) = rx.try_recv() {
            if let Some(a) = self.apps.get_mut(slot.0) {
                f(&mut a.app);
            }
        }
    }

    /// One iteration. Returns the number of frames received, produced or sent.
    #[inline]
    pub fn poll_once(&mut self, now: Instant) -> usize {
        let busy_poll = self.opts.idle == IdleMode::BusyPoll;
        let Lcore { burst, cache, batch, queues, apps, targets, inbound, staging, counters, .. } = self;
        counters.iterations += 1;
        let mut work = 0usize;
        for q in queues.iter_mut() {
            q.port.maintain(cache);
            if busy_poll {
                q.port.idle_kick();
            }
            let a = &mut apps[q.app];
            let from = Ingress::local(q.port_id);
            // Drain: bursts until one comes back short, at most MAX_RX_BURSTS, and only while
            // the frames a burst stages still leave every target a burst of room (what cannot
            // be staged stays in the RX ring, where the kernel counts it, instead of being
            // dropped here). A sink or generator that consumes its RX stages nothing, so its
            // RX keeps up with the 2 × burst frames the iteration may transmit.
            let mut rounds = 0;
            loop {
                let n = q.port.rx_burst(cache, &mut batch.frames, *burst);
                if n == 0 {
                    if rounds == 0 {
                        counters.burst_hist[0] += 1;
                        counters.empty_polls += 1;
                    }
                    break;
                }
                rounds += 1;
                counters.burst_hist[burst_bucket(n)] += 1;
                work += n;
                counters.rx_frames += n as u64;
                let staged_before = staged_len(staging);
                batch.reset();
                let mut cx = Ctx { now, pool: cache, drops: &mut counters.drops, staging };
                a.app.process(&mut cx, from, batch);
                let mut sinks = Sinks { staging, shards: &mut a.links.stage };
                dispatch(batch, &mut sinks, cache, &mut counters.drops);
                flush_handoff(&mut a.links, from.port, cache, counters);
                if n < *burst || rounds == MAX_RX_BURSTS {
                    break;
                }
                if staged_len(staging) > staged_before && staging.iter().any(|s| s.remaining() < *burst) {
                    break;
                }
            }
        }
        for ib in inbound.iter_mut() {
            let s = &mut staging[ib.to];
            let n = ib.ring.slots().min(s.remaining());
            if n > 0 {
                if let Ok(chunk) = ib.ring.read_chunk(n) {
                    for f in chunk {
                        let _ = s.push(f);
                    }
                }
                counters.handoff_in += n as u64;
                work += n;
            }
        }
        for a in apps.iter_mut() {
            work += take_handed(a, *burst, now, batch, cache, staging, counters);
        }
        for a in apps.iter_mut() {
            let mut cx = Ctx { now, pool: cache, drops: &mut counters.drops, staging };
            a.app.produce(&mut cx);
            if a.app.poll_at().is_some_and(|t| now >= t) {
                a.app.on_timer(&mut cx);
            }
        }
        for (t, target) in targets.iter_mut().enumerate() {
            let s = &mut staging[t];
            if s.is_empty() {
                continue;
            }
            match target {
                Target::Local(qi) => {
                    let n = queues[*qi].port.tx_burst(cache, s);
                    counters.tx_frames += n as u64;
                    work += n;
                }
                Target::Remote(ring) => {
                    let n = ring.slots().min(s.len());
                    if n > 0 {
                        if let Ok(chunk) = ring.write_chunk_uninit(n) {
                            chunk.fill_from_iter(s.drain_front(n));
                        }
                        counters.handoff_out += n as u64;
                        work += n;
                    }
                }
            }
        }
        for q in queues.iter_mut() {
            q.port.flush();
        }
        work
    }

    fn on_idle(&mut self, idle_run: u32) {
        match self.opts.idle {
            IdleMode::Spin => {}
            IdleMode::BusyPoll => {
                for q in &mut self.queues {
                    q.port.idle_kick();
                }
            }
            IdleMode::Poll => {
                for q in &mut self.queues {
                    q.port.idle_kick();
                }
                let shard_rings_empty = self.apps.iter().all(|a| a.links.from.iter().all(|(_, r)| r.is_empty()));
                if idle_run >= IDLE_BEFORE_SLEEP && shard_rings_empty && self.staging.iter().all(|s| s.is_empty()) {
                    let mut fds = [0i32; 16];
                    let mut n = 0;
                    for q in &self.queues {
                        if let Some(fd) = q.port.poll_fd() {
                            if n < fds.len() {
                                fds[n] = fd;
                                n += 1;
                            }
                        }
                    }
                    if n > 0 {
                        self.counters.sleeps += 1;
                        let _ = nic::sys::poll_readable(&fds[..n], 1);
                    }
                }
            }
        }
    }

    /// After stop: keep flushing staged frames and reaping completions, until nothing is staged
    /// and every frame posted for transmission has completed (or 200 ms have passed), so final
    /// counts reflect what the kernel actually sent and the chunks are back in the cache. (In
    /// copy mode a completion can wait for the receiving side to consume the frame.)
    fn drain(&mut self, clock: &Clock) {
        let deadline = clock.now() + Duration::from_millis(200);
        loop {
            let pending: usize = self.staging.iter().map(|s| s.len()).sum();
            let Lcore { cache, queues, targets, staging, counters, .. } = self;
            for (t, target) in targets.iter_mut().enumerate() {
                let s = &mut staging[t];
                match target {
                    Target::Local(qi) => counters.tx_frames += queues[*qi].port.tx_burst(cache, s) as u64,
                    Target::Remote(ring) => {
                        let n = ring.slots().min(s.len());
                        if n > 0 {
                            if let Ok(chunk) = ring.write_chunk_uninit(n) {
                                chunk.fill_from_iter(s.drain_front(n));
                                counters.handoff_out += n as u64;
                            }
                        }
                    }
                }
            }
            for q in queues.iter_mut() {
                q.port.flush();
                q.port.maintain(cache);
            }
            let in_flight: u64 = queues.iter().map(|q| tx_in_flight(&q.port)).sum();
            if (pending == 0 && in_flight == 0) || clock.now() >= deadline {
                return;
            }
            if pending == 0 {
                // Only the kernel has work left: wait for its completions.
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }

    fn publish(&mut self, elapsed: Duration, read_xdp: bool, running: bool) {
        let s = &mut self.scratch;
        s.elapsed = elapsed;
        s.counters = self.counters;
        s.cache = self.cache.stats();
        s.running = running;
        for (qs, q) in s.queues.iter_mut().zip(&self.queues) {
            qs.port = *q.port.counters();
            if read_xdp {
                if let Some(x) = q.port.xdp_statistics() {
                    qs.xdp = Some(x);
                }
            }
        }
        for (as_, a) in s.apps.iter_mut().zip(&self.apps) {
            self.report_buf.clear();
            a.app.report(&mut self.report_buf);
            as_.counters.clear();
            as_.counters.extend_from_slice(&self.report_buf);
        }
        let lock = if running { self.shared.try_lock().ok() } else { self.shared.lock().ok() };
        if let Some(mut g) = lock {
            g.clone_from(s);
        }
    }

    /// Counters so far (tests and benchmarks).
    pub fn counters(&self) -> &LcoreCounters {
        &self.counters
    }

    /// The lcore's cache (tests: accounting checks).
    pub fn cache(&self) -> &PoolCache<'u> {
        &self.cache
    }

    /// The app shards, in the order they were added (tests and drivers that step the lcore
    /// with [`Lcore::poll_once`] read their results here).
    pub fn apps(&self) -> impl Iterator<Item = &A> + use<'_, 'u, A> {
        self.apps.iter().map(|a| &a.app)
    }

    /// The app shards, mutable.
    pub fn apps_mut(&mut self) -> impl Iterator<Item = &mut A> + use<'_, 'u, A> {
        self.apps.iter_mut().map(|a| &mut a.app)
    }

    /// Frames currently staged for transmission.
    pub fn staged(&self) -> usize {
        self.staging.iter().map(|s| s.len()).sum()
    }
}

/// A stopped lcore's ports and inbound rings ([`Lcore::run_and_return_ports`]).
pub struct Stopped<'u> {
    /// The final snapshot.
    pub snapshot: LcoreSnapshot,
    /// The ports, open.
    pub ports: Vec<AnyPort<'u>>,
    inbound: Vec<rtrb::Consumer<Frame<'u>>>,
    shard_in: Vec<rtrb::Consumer<Handed<'u>>>,
}

impl std::fmt::Debug for Stopped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stopped").field("name", &self.snapshot.name).field("ports", &self.ports.len()).finish()
    }
}

impl<'u> Stopped<'u> {
    /// Frees into `cache` the frames other lcores put on this lcore's handoff rings (TX
    /// handoff, app shard rings) after it stopped reading them — the last frames of a run, in
    /// flight between cores — and returns how many. Exact only once every lcore has stopped.
    pub fn free_leftovers(&mut self, cache: &mut PoolCache<'u>) -> u64 {
        let mut n = 0;
        for r in &mut self.inbound {
            while let Ok(f) = r.pop() {
                cache.free(f);
                n += 1;
            }
        }
        for r in &mut self.shard_in {
            while let Ok((f, _)) = r.pop() {
                cache.free(f);
                n += 1;
            }
        }
        n
    }
}

/// Frames posted for transmission on `port` whose completion has not been reaped yet.
fn tx_in_flight(port: &AnyPort<'_>) -> u64 {
    match port {
        AnyPort::Ring(p) => {
            let c = p.counters();
            c.tx_packets.saturating_sub(c.comp_reaped)
        }
        AnyPort::Null(_) => 0,
    }
}

/// Frames staged over all targets.
#[inline]
fn staged_len(staging: &[FrameBuf<'_>]) -> usize {
    staging.iter().map(|s| s.len()).sum()
}

/// Where dispatch puts frames: TX staging per target, and handoff staging per shard (empty
/// while dispatching frames that were themselves handed over).
struct Sinks<'a, 'u> {
    staging: &'a mut [FrameBuf<'u>],
    shards: &'a mut [FrameBuf<'u>],
}

impl<'u> Sinks<'_, 'u> {
    /// Stages `f` per `v`; gives it back with the drop reason when it cannot be staged.
    #[inline]
    fn put(&mut self, f: Frame<'u>, v: Verdict) -> Result<(), (Frame<'u>, DropReason)> {
        let (buf, full) = match v {
            Verdict::Drop(r) => return Err((f, r)),
            Verdict::Tx(t) => (self.staging.get_mut(t.0 as usize), DropReason::TxRingFull),
            Verdict::Handoff(s) => (self.shards.get_mut(s.0 as usize), DropReason::HandoffFull),
        };
        match buf {
            Some(b) => b.push(f).map_err(|f| (f, full)),
            None => Err((f, DropReason::NoRoute)),
        }
    }
}

/// Moves every frame of `batch` to its verdict's destination.
#[inline]
fn dispatch<'u>(batch: &mut Batch<'u>, sinks: &mut Sinks<'_, 'u>, cache: &mut PoolCache<'u>, drops: &mut DropCounters) {
    if let Some(v) = batch.uniform() {
        let frames = &mut batch.frames;
        let (buf, full) = match v {
            Verdict::Drop(r) => {
                drops.add(r, frames.len() as u64);
                cache.free_burst(frames);
                return;
            }
            Verdict::Tx(t) => (sinks.staging.get_mut(t.0 as usize), DropReason::TxRingFull),
            Verdict::Handoff(s) => (sinks.shards.get_mut(s.0 as usize), DropReason::HandoffFull),
        };
        let reason = match buf {
            Some(b) => {
                b.append_from(frames);
                full
            }
            None => DropReason::NoRoute,
        };
        if !frames.is_empty() {
            drops.add(reason, frames.len() as u64);
            cache.free_burst(frames);
        }
        return;
    }
    let (frames, verdicts) = batch.parts();
    for (f, v) in frames.drain().zip(verdicts.iter()) {
        if let Err((f, r)) = sinks.put(f, *v) {
            drops.add(r, 1);
            cache.free(f);
        }
    }
}

/// Posts the frames one dispatch staged for other shards into their rings, each tagged with
/// the port it came in on; what a full ring refuses is dropped as `handoff_full`.
#[inline]
fn flush_handoff<'u>(
    links: &mut ShardLinks<'u>,
    port: PortId,
    cache: &mut PoolCache<'u>,
    counters: &mut LcoreCounters,
) {
    for (stage, ring) in links.stage.iter_mut().zip(links.to.iter_mut()) {
        if stage.is_empty() {
            continue;
        }
        if let Some(ring) = ring {
            let n = ring.slots().min(stage.len());
            if n > 0 {
                if let Ok(chunk) = ring.write_chunk_uninit(n) {
                    chunk.fill_from_iter(stage.drain_front(n).map(|f| (f, port)));
                    counters.handoff_out += n as u64;
                }
            }
        }
        counters.drops.add(DropReason::HandoffFull, stage.len() as u64);
        cache.free_burst(stage);
    }
}

/// Takes what other shards handed to app shard `a` (at most a burst per ring), in runs of
/// frames from the same port, and runs each run through the app like a received burst.
fn take_handed<'u, A: App<'u>>(
    a: &mut AppState<'u, A>,
    burst: usize,
    now: Instant,
    batch: &mut Batch<'u>,
    cache: &mut PoolCache<'u>,
    staging: &mut [FrameBuf<'u>],
    counters: &mut LcoreCounters,
) -> usize {
    let mut work = 0;
    for (shard, ring) in a.links.from.iter_mut() {
        let mut left = ring.slots().min(burst);
        while left > 0 {
            // Length of the leading run of frames that came in on one port.
            let (run, port) = {
                let Ok(chunk) = ring.read_chunk(left) else { break };
                let (x, y) = chunk.as_slices();
                let port = x[0].1;
                (x.iter().chain(y).take_while(|h| h.1 == port).count(), port)
            };
            let Ok(chunk) = ring.read_chunk(run) else { break };
            for (f, _) in chunk {
                let _ = batch.frames.push(f);
            }
            left -= run;
            work += run;
            counters.handoff_in += run as u64;
            batch.reset();
            let from = Ingress { port, handed_off: Some(*shard) };
            let mut cx = Ctx { now, pool: cache, drops: &mut counters.drops, staging };
            a.app.process(&mut cx, from, batch);
            let mut sinks = Sinks { staging, shards: &mut [] };
            dispatch(batch, &mut sinks, cache, &mut counters.drops);
        }
    }
    work
}
