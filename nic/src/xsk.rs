//! AF_XDP sockets: create, register or share the UMEM, map the rings, bind.
//!
//! The first socket opened on a [`Umem`] registers it (`XDP_UMEM_REG`); every later socket
//! binds with `XDP_SHARED_UMEM` to that one and gets its own fill/completion pair (one per
//! (netdev, queue), as the kernel requires). The kernel makes sharing sockets inherit the first
//! socket's copy/zero-copy and need_wakeup settings, so all ports of one UMEM run in the same
//! mode; [`open`] reports the mode actually obtained.
//!
//! Following the lessons collected in `anchors.md` §3: the fill ring is primed *before* bind,
//! bind is retried on the transient `EBUSY` that follows a previous socket's close on the same
//! queue, `auto` mode tries zero-copy and falls back to copy, and every failure carries the
//! interface, queue and operation.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use crate::pool::PoolCache;
use crate::ring::{CompRing, FillRing, RingCore, RingMem, RingOffsets, Role, RxRing, TxRing, XdpDesc};
use crate::sys::{self, Mapping};
use crate::umem::{Registration, Umem};

/// AF_XDP bind mode requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindMode {
    /// `XDP_COPY`: works on every driver (veth included).
    Copy,
    /// `XDP_ZEROCOPY`: needs driver support; fails otherwise.
    ZeroCopy,
    /// Try zero-copy, fall back to copy.
    Auto,
}

/// Preferred busy polling (`SO_PREFER_BUSY_POLL`, `SO_BUSY_POLL`, `SO_BUSY_POLL_BUDGET`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusyPoll {
    /// `SO_BUSY_POLL` in microseconds.
    pub usecs: u32,
    /// `SO_BUSY_POLL_BUDGET` in packets.
    pub budget: u32,
}

/// What to open.
#[derive(Debug, Clone)]
pub struct XskConfig {
    /// Interface name.
    pub ifname: String,
    /// Queue id.
    pub queue: u32,
    /// Bind mode.
    pub bind: BindMode,
    /// `XDP_USE_NEED_WAKEUP`.
    pub need_wakeup: bool,
    /// RX ring size (power of two).
    pub rx_size: u32,
    /// TX ring size (power of two).
    pub tx_size: u32,
    /// Fill ring size (power of two).
    pub fill_size: u32,
    /// Completion ring size (power of two).
    pub comp_size: u32,
    /// Optional preferred busy polling.
    pub busy_poll: Option<BusyPoll>,
    /// Copy-mode TX budget: descriptors the kernel sends per `sendto` (`XDP_MAX_TX_SKB_BUDGET`,
    /// kernel ≥ 6.17, 32..=tx_size; the kernel default is 32). `None` leaves the default. Older
    /// kernels answer ENOPROTOOPT, which is logged and ignored.
    pub tx_budget: Option<u32>,
}

impl XskConfig {
    /// Defaults for `ifname`/`queue`: auto mode, need_wakeup, rings 2048/2048/4096/2048.
    pub fn new(ifname: &str, queue: u32) -> XskConfig {
        XskConfig {
            ifname: ifname.to_string(),
            queue,
            bind: BindMode::Auto,
            need_wakeup: true,
            rx_size: 2048,
            tx_size: 2048,
            fill_size: 4096,
            comp_size: 2048,
            busy_poll: None,
            tx_budget: None,
        }
    }
}

/// An AF_XDP failure with its context.
#[derive(Debug, thiserror::Error)]
#[error("AF_XDP {op} on {ifname} queue {queue}: {source}")]
pub struct XskError {
    /// Interface.
    pub ifname: String,
    /// Queue.
    pub queue: u32,
    /// Operation (syscall and what it was for).
    pub op: &'static str,
    /// The errno.
    #[source]
    pub source: io::Error,
}

/// Kernel AF_XDP statistics (`XDP_STATISTICS`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct XdpStatistics {
    /// Dropped for reasons other than invalid descriptors (e.g. RX ring full in copy mode).
    pub rx_dropped: u64,
    /// Invalid RX descriptors.
    pub rx_invalid_descs: u64,
    /// Invalid TX descriptors.
    pub tx_invalid_descs: u64,
    /// RX ring full.
    pub rx_ring_full: u64,
    /// Fill ring empty when the kernel wanted a buffer.
    pub rx_fill_ring_empty_descs: u64,
    /// TX ring empty when the kernel looked.
    pub tx_ring_empty_descs: u64,
}

/// A socket's busy-poll settings as the kernel reports them (`getsockopt`), not as requested.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BusyPollState {
    /// `SO_PREFER_BUSY_POLL`.
    pub prefer: bool,
    /// `SO_BUSY_POLL` in microseconds (0: off).
    pub usecs: u32,
    /// `SO_BUSY_POLL_BUDGET` (0: the kernel's default). None where the kernel cannot report it
    /// (`getsockopt` answers `ENOPROTOOPT` for this option, as 6.18 does).
    pub budget: Option<u32>,
}

/// The kernel-side handle of an open socket: fd plus identity and obtained mode.
pub struct XskSocket {
    fd: Arc<OwnedFd>,
    ifname: String,
    ifindex: u32,
    queue: u32,
    zero_copy: bool,
    need_wakeup: bool,
    shared: bool,
    tx_budget: Option<u32>,
}

impl fmt::Debug for XskSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XskSocket")
            .field("fd", &self.fd.as_raw_fd())
            .field("ifname", &self.ifname)
            .field("queue", &self.queue)
            .field("zero_copy", &self.zero_copy)
            .finish()
    }
}

impl XskSocket {
    /// Interface name.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }
    /// Interface index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }
    /// Queue id.
    pub fn queue(&self) -> u32 {
        self.queue
    }
    /// Whether the kernel runs this socket in zero-copy mode.
    pub fn zero_copy(&self) -> bool {
        self.zero_copy
    }
    /// Whether need_wakeup is in effect.
    pub fn need_wakeup(&self) -> bool {
        self.need_wakeup
    }
    /// Copy-mode TX budget in effect (None: the kernel default of 32).
    pub fn tx_budget(&self) -> Option<u32> {
        self.tx_budget
    }
    /// Whether this socket shares a UMEM registered by another socket.
    pub fn shares_umem(&self) -> bool {
        self.shared
    }
    /// Raw fd (for the XSKMAP and poll()).
    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }
    /// Reads the busy-poll socket options back from the kernel (three syscalls; off the hot
    /// path).
    ///
    /// Note: recent kernels set an AF_XDP socket's NAPI id at bind time, for zero-copy sockets
    /// only; a copy-mode socket has none, so these options take effect but busy polling drives
    /// no NAPI instance (measured on 6.18 with veth: `BusyPollRxPackets` stays 0).
    pub fn busy_poll_state(&self) -> io::Result<BusyPollState> {
        let get = |name| -> io::Result<i32> {
            let (v, _): (i32, usize) = sys::getsockopt(self.fd.as_fd(), libc::SOL_SOCKET, name)?;
            Ok(v)
        };
        Ok(BusyPollState {
            prefer: get(libc::SO_PREFER_BUSY_POLL)? != 0,
            usecs: get(libc::SO_BUSY_POLL)?.max(0) as u32,
            budget: match get(libc::SO_BUSY_POLL_BUDGET) {
                Ok(v) => Some(v.max(0) as u32),
                Err(e) if e.raw_os_error() == Some(libc::ENOPROTOOPT) => None,
                Err(e) => return Err(e),
            },
        })
    }

    /// Reads `XDP_STATISTICS` (a syscall; call off the hot path).
    pub fn statistics(&self) -> io::Result<XdpStatistics> {
        let (s, _len): (libc::xdp_statistics, usize) =
            sys::getsockopt(self.fd.as_fd(), libc::SOL_XDP, libc::XDP_STATISTICS)?;
        Ok(XdpStatistics {
            rx_dropped: s.rx_dropped,
            rx_invalid_descs: s.rx_invalid_descs,
            tx_invalid_descs: s.tx_invalid_descs,
            rx_ring_full: s.rx_ring_full,
            rx_fill_ring_empty_descs: s.rx_fill_ring_empty_descs,
            tx_ring_empty_descs: s.tx_ring_empty_descs,
        })
    }
}

impl AsFd for XskSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The rings of an open socket, plus the socket.
pub struct XskParts {
    /// The socket.
    pub socket: XskSocket,
    /// Fill ring (primed).
    pub fill: FillRing,
    /// Completion ring.
    pub comp: CompRing,
    /// RX ring.
    pub rx: RxRing,
    /// TX ring.
    pub tx: TxRing,
}

/// `XDP_MAX_TX_SKB_BUDGET` (uapi `linux/if_xdp.h`, kernel 6.17+; not yet in libc).
const XDP_MAX_TX_SKB_BUDGET: i32 = 9;

const BIND_RETRIES: u32 = 40;
const BIND_RETRY_DELAY: Duration = Duration::from_millis(50);

/// Opens a socket on `cfg.ifname`/`cfg.queue` over `umem`, primes its fill ring from `cache`
/// and binds it. The XDP program must be attached and the socket registered in its XSKMAP by
/// the caller (see [`crate::xdp`]).
pub fn open(umem: &Umem, cache: &mut PoolCache<'_>, cfg: &XskConfig) -> Result<XskParts, XskError> {
    let err = |op: &'static str| {
        let ifname = cfg.ifname.clone();
        let queue = cfg.queue;
        move |source: io::Error| XskError { ifname, queue, op, source }
    };
    let ifindex = sys::if_nametoindex(&cfg.ifname).map_err(err("if_nametoindex"))?;
    for (name, size) in [("rx", cfg.rx_size), ("tx", cfg.tx_size), ("fill", cfg.fill_size), ("comp", cfg.comp_size)] {
        if !size.is_power_of_two() {
            return Err(err("ring setup")(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name} ring size {size} is not a power of two"),
            )));
        }
    }
    let existing = umem.registration.lock().expect("umem registration poisoned").clone();
    match (existing, cfg.bind) {
        (Some(reg), _) => open_once(umem, cache, cfg, ifindex, Some(reg), reg_flags(false, false)),
        (None, BindMode::Copy) => open_once(umem, cache, cfg, ifindex, None, libc::XDP_COPY),
        (None, BindMode::ZeroCopy) => open_once(umem, cache, cfg, ifindex, None, libc::XDP_ZEROCOPY),
        (None, BindMode::Auto) => match open_once(umem, cache, cfg, ifindex, None, libc::XDP_ZEROCOPY) {
            Ok(p) => Ok(p),
            Err(e) if e.op == "bind" => {
                tracing::info!(iface = %cfg.ifname, queue = cfg.queue, error = %e.source, "zero-copy bind refused, using copy mode");
                open_once(umem, cache, cfg, ifindex, None, libc::XDP_COPY)
            }
            Err(e) => Err(e),
        },
    }
}

fn reg_flags(_zc: bool, _nw: bool) -> u16 {
    // Sockets sharing a UMEM may not pass mode flags: they inherit the registering socket's.
    0
}

fn open_once(
    umem: &Umem,
    cache: &mut PoolCache<'_>,
    cfg: &XskConfig,
    ifindex: u32,
    shared_with: Option<Registration>,
    mode_flags: u16,
) -> Result<XskParts, XskError> {
    let err = |op: &'static str| {
        let ifname = cfg.ifname.clone();
        let queue = cfg.queue;
        move |source: io::Error| XskError { ifname, queue, op, source }
    };
    let fd = sys::xsk_socket().map_err(err("socket(AF_XDP)"))?;
    let b = fd.as_fd();
    if shared_with.is_none() {
        let reg = libc::xdp_umem_reg {
            addr: umem.base().as_ptr() as u64,
            len: umem.region_len() as u64,
            chunk_size: umem.frame_size(),
            headroom: umem.headroom(),
            flags: 0,
            tx_metadata_len: 0,
        };
        sys::setsockopt(b, libc::SOL_XDP, libc::XDP_UMEM_REG, &reg).map_err(err("setsockopt(XDP_UMEM_REG)"))?;
    }
    sys::setsockopt(b, libc::SOL_XDP, libc::XDP_UMEM_FILL_RING, &cfg.fill_size)
        .map_err(err("setsockopt(XDP_UMEM_FILL_RING)"))?;
    sys::setsockopt(b, libc::SOL_XDP, libc::XDP_UMEM_COMPLETION_RING, &cfg.comp_size)
        .map_err(err("setsockopt(XDP_UMEM_COMPLETION_RING)"))?;
    sys::setsockopt(b, libc::SOL_XDP, libc::XDP_RX_RING, &cfg.rx_size).map_err(err("setsockopt(XDP_RX_RING)"))?;
    sys::setsockopt(b, libc::SOL_XDP, libc::XDP_TX_RING, &cfg.tx_size).map_err(err("setsockopt(XDP_TX_RING)"))?;
    let (off, _): (libc::xdp_mmap_offsets, usize) =
        sys::getsockopt(b, libc::SOL_XDP, libc::XDP_MMAP_OFFSETS).map_err(err("getsockopt(XDP_MMAP_OFFSETS)"))?;

    let map = |o: libc::xdp_ring_offset, size: u32, elem: usize, pgoff: u64, what: &'static str| {
        let len = o.desc as usize + size as usize * elem;
        Mapping::socket_ring(b, len, pgoff).map_err(err(what)).map(|m| (m, RingOffsets::from(o)))
    };
    let (fm, fo) = map(off.fr, cfg.fill_size, 8, libc::XDP_UMEM_PGOFF_FILL_RING, "mmap(fill ring)")?;
    let (cm, co) = map(off.cr, cfg.comp_size, 8, libc::XDP_UMEM_PGOFF_COMPLETION_RING, "mmap(completion ring)")?;
    let (rm, ro) =
        map(off.rx, cfg.rx_size, std::mem::size_of::<XdpDesc>(), libc::XDP_PGOFF_RX_RING as u64, "mmap(rx ring)")?;
    let (tm, to) =
        map(off.tx, cfg.tx_size, std::mem::size_of::<XdpDesc>(), libc::XDP_PGOFF_TX_RING as u64, "mmap(tx ring)")?;
    // SAFETY: each mapping is the kernel ring of the given size, laid out at the offsets the
    // kernel reported; each ring gets exactly one user-side owner here.
    let (mut fill, comp, rx, tx) = unsafe {
        (
            FillRing { core: RingCore::new(fm.ptr(), fo, cfg.fill_size, RingMem::Mmap(fm), Role::Producer) },
            CompRing {
                core: RingCore::new(cm.ptr(), co, cfg.comp_size, RingMem::Mmap(cm), Role::Consumer),
                invalid: 0,
            },
            RxRing { core: RingCore::new(rm.ptr(), ro, cfg.rx_size, RingMem::Mmap(rm), Role::Consumer), invalid: 0 },
            TxRing { core: RingCore::new(tm.ptr(), to, cfg.tx_size, RingMem::Mmap(tm), Role::Producer) },
        )
    };

    // Prime the fill ring before bind: some zero-copy drivers want buffers at bind time.
    fill.refill(cache, cfg.fill_size);

    let mut flags = mode_flags;
    if shared_with.is_none() && cfg.need_wakeup {
        flags |= libc::XDP_USE_NEED_WAKEUP;
    }
    let mut addr = libc::sockaddr_xdp {
        sxdp_family: libc::AF_XDP as u16,
        sxdp_flags: flags,
        sxdp_ifindex: ifindex,
        sxdp_queue_id: cfg.queue,
        sxdp_shared_umem_fd: 0,
    };
    if let Some(reg) = &shared_with {
        addr.sxdp_flags |= libc::XDP_SHARED_UMEM;
        addr.sxdp_shared_umem_fd = reg.fd.as_raw_fd() as u32;
    }
    let mut tries = 0;
    loop {
        match sys::bind_xdp(b, &addr) {
            Ok(()) => break,
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < BIND_RETRIES => {
                // The previous socket on this queue is still being torn down (deferred).
                tries += 1;
                std::thread::sleep(BIND_RETRY_DELAY);
            }
            Err(e) => {
                // Give the primed chunks back: the rings die with the fd.
                drain_fill_back(&mut fill, cache);
                return Err(err("bind")(e));
            }
        }
    }

    let (opts, _): (libc::xdp_options, usize) =
        sys::getsockopt(b, libc::SOL_XDP, libc::XDP_OPTIONS).map_err(err("getsockopt(XDP_OPTIONS)"))?;
    let zero_copy = opts.flags & libc::XDP_OPTIONS_ZEROCOPY != 0;

    if let Some(bp) = cfg.busy_poll {
        let one: i32 = 1;
        sys::setsockopt(b, libc::SOL_SOCKET, libc::SO_PREFER_BUSY_POLL, &one)
            .map_err(err("setsockopt(SO_PREFER_BUSY_POLL)"))?;
        sys::setsockopt(b, libc::SOL_SOCKET, libc::SO_BUSY_POLL, &(bp.usecs as i32))
            .map_err(err("setsockopt(SO_BUSY_POLL)"))?;
        sys::setsockopt(b, libc::SOL_SOCKET, libc::SO_BUSY_POLL_BUDGET, &(bp.budget as i32))
            .map_err(err("setsockopt(SO_BUSY_POLL_BUDGET)"))?;
    }

    let mut tx_budget = None;
    if let Some(budget) = cfg.tx_budget {
        let budget = budget.clamp(32, cfg.tx_size);
        match sys::setsockopt(b, libc::SOL_XDP, XDP_MAX_TX_SKB_BUDGET, &budget) {
            Ok(()) => tx_budget = Some(budget),
            Err(e) if e.raw_os_error() == Some(libc::ENOPROTOOPT) => {
                tracing::info!(iface = %cfg.ifname, queue = cfg.queue, "kernel has no XDP_MAX_TX_SKB_BUDGET (< 6.17): copy-mode TX sends 32 frames per kick");
            }
            Err(e) => return Err(err("setsockopt(XDP_MAX_TX_SKB_BUDGET)")(e)),
        }
    }

    let fd = Arc::new(fd);
    let (need_wakeup, shared) = match &shared_with {
        Some(reg) => (reg.need_wakeup, true),
        None => {
            let reg = Registration { fd: fd.clone(), zero_copy, need_wakeup: cfg.need_wakeup };
            *umem.registration.lock().expect("umem registration poisoned") = Some(reg);
            (cfg.need_wakeup, false)
        }
    };
    if let Some(reg) = &shared_with {
        debug_assert_eq!(reg.zero_copy, zero_copy, "shared sockets inherit the registering socket's mode");
    }
    Ok(XskParts {
        socket: XskSocket {
            fd,
            ifname: cfg.ifname.clone(),
            ifindex,
            queue: cfg.queue,
            zero_copy,
            need_wakeup,
            shared,
            tx_budget,
        },
        fill,
        comp,
        rx,
        tx,
    })
}

/// After a failed bind nothing has read the fill ring: take our primed chunks back.
fn drain_fill_back(fill: &mut FillRing, cache: &mut PoolCache<'_>) {
    // The fill ring was filled by us and never consumed; its producer index says how many.
    let n = fill.core.prod_outstanding();
    // Re-read the entries we wrote (slots [consumer, producer)).
    let mut addrs = Vec::with_capacity(n as usize);
    for i in 0..n {
        // The producer index is ahead of the consumer by n; slot i from the consumer side is
        // at producer - n + i, i.e. write offset (i - n) relative to the cached producer.
        addrs.push(fill.core.peek_written(n, i));
    }
    for a in addrs {
        cache.push_addr(a);
    }
}
