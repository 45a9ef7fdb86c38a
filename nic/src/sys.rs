//! Thin, checked wrappers over the libc calls the AF_XDP code needs.
//!
//! Every function here returns `io::Result` and never swallows an errno; callers attach the
//! interface/queue context (see [`crate::xsk::XskError`]). The kernel ABI structs come from
//! `libc` (`linux/if_xdp.h` mirrors); this module only adds the calls and two constants libc
//! does not export.

use std::ffi::CString;
use std::io;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// `XDP_PACKET_HEADROOM`: the kernel places received data this far into a chunk (after the
/// UMEM headroom) in copy mode and in most zero-copy drivers.
pub const XDP_PACKET_HEADROOM: u32 = 256;

/// Smallest chunk the kernel accepts (`XDP_UMEM_MIN_CHUNK_SIZE`).
pub const XDP_UMEM_MIN_CHUNK_SIZE: u32 = 2048;

/// Creates an `AF_XDP` socket (close-on-exec).
pub fn xsk_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with constant arguments; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a freshly created descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `setsockopt` with a plain-old-data value.
pub fn setsockopt<T: Copy>(fd: BorrowedFd<'_>, level: i32, name: i32, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to `size_of::<T>()` readable bytes for the duration of the call;
    // the kernel copies them and keeps no reference.
    let rc = unsafe {
        libc::setsockopt(fd.as_raw_fd(), level, name, (value as *const T).cast(), size_of::<T>() as libc::socklen_t)
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `getsockopt` into a plain-old-data value. Returns the value and the length the kernel wrote,
/// so callers can detect older, shorter struct versions (e.g. `xdp_statistics` v1).
pub fn getsockopt<T: Copy>(fd: BorrowedFd<'_>, level: i32, name: i32) -> io::Result<(T, usize)> {
    let mut value = MaybeUninit::<T>::zeroed();
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: `value` has room for `len` bytes and `len` is passed by pointer as the ABI wants.
    let rc = unsafe { libc::getsockopt(fd.as_raw_fd(), level, name, value.as_mut_ptr().cast(), &mut len) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the value was zero-initialised and `T: Copy` is only used with kernel POD structs
    // (integers and arrays of integers) for which every bit pattern is valid.
    Ok((unsafe { value.assume_init() }, len as usize))
}

/// Binds an AF_XDP socket.
pub fn bind_xdp(fd: BorrowedFd<'_>, addr: &libc::sockaddr_xdp) -> io::Result<()> {
    // SAFETY: `addr` is a valid `sockaddr_xdp` for the duration of the call.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (addr as *const libc::sockaddr_xdp).cast(),
            size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A shared read/write mapping of a socket's ring (`mmap(MAP_SHARED | MAP_POPULATE)`).
/// Unmapped on drop.
#[derive(Debug)]
pub struct Mapping {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
}

// SAFETY: a mapping is plain memory; synchronisation of its contents is the ring protocol's job.
unsafe impl Send for Mapping {}
// SAFETY: as above; `Mapping` itself exposes only the pointer and length.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes of `fd` at page offset `offset`.
    pub fn socket_ring(fd: BorrowedFd<'_>, len: usize, offset: u64) -> io::Result<Mapping> {
        // SAFETY: we request a fresh mapping (addr = NULL) and check the result.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                offset as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = std::ptr::NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned NULL"))?;
        Ok(Mapping { ptr, len })
    }

    /// Start of the mapping.
    pub fn ptr(&self) -> std::ptr::NonNull<u8> {
        self.ptr
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (never, in practice).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe a mapping created by `mmap` and not unmapped before.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Resolves an interface name to its index in the current network namespace.
pub fn if_nametoindex(name: &str) -> io::Result<u32> {
    let c =
        CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name contains NUL"))?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(idx)
}

/// Outcome of a non-blocking kick (`sendto`/`recvfrom` with `MSG_DONTWAIT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kick {
    /// The kernel accepted the wakeup.
    Done,
    /// `EAGAIN`/`EBUSY`/`ENOBUFS`: the kernel is busy or out of resources; try again later.
    Busy,
    /// Any other errno (counted separately; e.g. `ENETDOWN`, `ENXIO`).
    Failed(i32),
}

fn classify(rc: isize) -> Kick {
    if rc >= 0 {
        return Kick::Done;
    }
    let e = io::Error::last_os_error().raw_os_error().unwrap_or(0);
    match e {
        libc::EAGAIN | libc::EBUSY | libc::ENOBUFS | libc::EINTR => Kick::Busy,
        _ => Kick::Failed(e),
    }
}

/// TX kick: `sendto(fd, NULL, 0, MSG_DONTWAIT, NULL, 0)`.
pub fn kick_tx(fd: RawFd) -> Kick {
    // SAFETY: a zero-length send with NULL buffers is the documented AF_XDP TX wakeup.
    let rc = unsafe { libc::sendto(fd, std::ptr::null(), 0, libc::MSG_DONTWAIT, std::ptr::null(), 0) };
    classify(rc)
}

/// RX/fill wakeup: `recvfrom(fd, NULL, 0, MSG_DONTWAIT, NULL, NULL)`; also drives busy polling.
pub fn kick_rx(fd: RawFd) -> Kick {
    // SAFETY: a zero-length receive with NULL buffers is the documented AF_XDP RX wakeup.
    let rc = unsafe {
        libc::recvfrom(fd, std::ptr::null_mut(), 0, libc::MSG_DONTWAIT, std::ptr::null_mut(), std::ptr::null_mut())
    };
    classify(rc)
}

/// Blocks until one of `fds` is readable or `timeout_ms` passes. Returns how many are ready.
pub fn poll_readable(fds: &[RawFd], timeout_ms: i32) -> io::Result<usize> {
    let mut pfds = [libc::pollfd { fd: -1, events: 0, revents: 0 }; 16];
    let n = fds.len().min(pfds.len());
    for (p, &fd) in pfds.iter_mut().zip(&fds[..n]) {
        p.fd = fd;
        p.events = libc::POLLIN;
    }
    // SAFETY: `pfds[..n]` is a valid, initialised array of pollfd for the duration of the call.
    let rc = unsafe { libc::poll(pfds.as_mut_ptr(), n as libc::nfds_t, timeout_ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(0);
        }
        return Err(e);
    }
    Ok(rc as usize)
}

/// Pins the calling thread to `cpu` with `sched_setaffinity`.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("cpu {cpu} out of range")));
    }
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` < CPU_SETSIZE, checked above.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t; pid 0 means the calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The CPU the calling thread runs on right now.
pub fn current_cpu() -> Option<usize> {
    // SAFETY: no arguments; returns -1 on error.
    let c = unsafe { libc::sched_getcpu() };
    (c >= 0).then_some(c as usize)
}

/// Reads the time-stamp counter (x86_64) or a monotonic nanosecond clock elsewhere.
/// Cheap enough to call once per poll-loop iteration; only differences are meaningful.
#[inline]
pub fn cycles() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC has no preconditions on x86_64.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        use std::time::Instant;
        static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        START.get_or_init(Instant::now).elapsed().as_nanos() as u64
    }
}

/// Hints the CPU to bring the cache line holding `*r` into every cache level (x86_64
/// `PREFETCHT0`; a no-op on other architectures). Only the first line of `T` is requested. A
/// hint: it never faults, changes no program state and may be ignored by the hardware, so safe
/// code (hash-table probes working in stages over a burst) can overlap cache misses with it.
#[inline(always)]
pub fn prefetch_read<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: PREFETCHT0 reads no data into the program and cannot fault, whatever the
        // address; here it is also a live reference. SSE is part of the x86_64 baseline.
        unsafe { _mm_prefetch::<_MM_HINT_T0>((r as *const T).cast::<i8>()) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}

/// CPU time the calling thread has used (`clock_gettime(CLOCK_THREAD_CPUTIME_ID)`). Unlike
/// wall-clock time it leaves out the time the thread waited for a CPU, so micro-benchmarks on a
/// shared machine measure the work itself. One system call per read: not for the data path.
pub fn thread_cpu_time() -> io::Result<std::time::Duration> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec owned by this frame; the clock id is a constant.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

/// Asks the kernel to back the memory of `mem` with transparent huge pages
/// (`madvise(MADV_HUGEPAGE)` on the 4 KiB pages that lie wholly inside it), for large tables
/// read at random, where 4 KiB pages cost a TLB miss (a nested page walk in a VM) per access.
/// Call it before the memory is first written: pages faulted in afterwards come as 2 MiB
/// pages where the range allows. Advisory only: contents are unchanged, and it fails
/// (`EINVAL`) where THP is not built into the kernel. Slices under one page do nothing.
pub fn advise_hugepages<T>(mem: &[T]) -> io::Result<()> {
    const PAGE: usize = 4096;
    let start = (mem.as_ptr() as usize).next_multiple_of(PAGE);
    let end = (mem.as_ptr() as usize + size_of_val(mem)) / PAGE * PAGE;
    if end <= start {
        return Ok(());
    }
    // SAFETY: MADV_HUGEPAGE only sets how the kernel backs the pages (it never changes or
    // frees their contents), and [start, end) is page-aligned and inside memory `mem` borrows.
    let rc = unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// MAC address of an interface in the calling thread's network namespace
/// (`ioctl(SIOCGIFHWADDR)`; unlike /sys/class/net this follows `setns`).
pub fn if_hwaddr(name: &str) -> io::Result<[u8; 6]> {
    if name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "interface name too long"));
    }
    // SAFETY: plain socket creation; checked below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data; zeroed is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    // SAFETY: SIOCGIFHWADDR reads ifr_name and writes ifr_hwaddr inside `req`, which lives
    // across the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: after a successful SIOCGIFHWADDR the union holds `ifru_hwaddr`.
    let sa = unsafe { req.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (m, b) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *m = *b as u8;
    }
    Ok(mac)
}

/// Sends `sig` to process `pid` (`kill(2)`).
pub fn kill(pid: u32, sig: i32) -> io::Result<()> {
    // SAFETY: plain syscall on integers.
    let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets an integer socket option on any socket (e.g. `SO_RCVBUFFORCE` on a UDP socket).
pub fn set_int_sockopt(fd: BorrowedFd<'_>, level: i32, name: i32, value: i32) -> io::Result<()> {
    setsockopt(fd, level, name, &value)
}

/// Most messages one [`send_repeated`] call hands to the kernel (the batch lives on the stack).
pub const SENDMMSG_MAX: usize = 256;

/// Sends `count` datagrams (at most [`SENDMMSG_MAX`]), each a copy of `payload`, on a
/// *connected* socket with one `sendmmsg(2)` call. Returns how many the kernel accepted (it may
/// be fewer than asked when it runs out of room or a later message fails); an error only when
/// not even the first one was sent. `count == 0` sends nothing and returns 0.
pub fn send_repeated(fd: BorrowedFd<'_>, payload: &[u8], count: usize) -> io::Result<usize> {
    let n = count.min(SENDMMSG_MAX);
    if n == 0 {
        return Ok(0);
    }
    // One iovec for all messages: the kernel only reads through it.
    let mut iov = libc::iovec { iov_base: payload.as_ptr().cast_mut().cast(), iov_len: payload.len() };
    // SAFETY: mmsghdr is plain data (pointers and integers); all-zero is a valid empty header.
    let mut msgs: [libc::mmsghdr; SENDMMSG_MAX] = unsafe { std::mem::zeroed() };
    for m in &mut msgs[..n] {
        m.msg_hdr.msg_iov = &mut iov;
        m.msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: `msgs[..n]` are initialised headers whose only pointer is `iov`, which points at
    // `payload` (`payload.len()` readable bytes); both outlive the call, and sendmmsg only reads
    // the payload (it writes each header's `msg_len`, inside `msgs`). No destination address:
    // the socket must be connected, which the kernel checks.
    let rc = unsafe { libc::sendmmsg(fd.as_raw_fd(), msgs.as_mut_ptr(), n as libc::c_uint, 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    /// Busy work advances the thread's CPU clock by about its wall time; sleeping does not.
    #[test]
    fn thread_cpu_time_counts_running_not_sleeping() {
        let c0 = thread_cpu_time().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let c1 = thread_cpu_time().unwrap();
        assert!(c1 - c0 < std::time::Duration::from_millis(25), "sleep counted: {:?}", c1 - c0);
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed() < std::time::Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let c2 = thread_cpu_time().unwrap();
        // On a loaded machine the spin gets less than its 50 ms of CPU, but some.
        assert!(c2 > c1 && c2 - c1 <= t.elapsed() + std::time::Duration::from_millis(5), "{:?}", c2 - c1);
    }

    #[test]
    fn send_repeated_delivers_count_copies() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(2))).unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.connect(rx.local_addr().unwrap()).unwrap();
        assert_eq!(send_repeated(tx.as_fd(), b"hello", 0).unwrap(), 0);
        assert_eq!(send_repeated(tx.as_fd(), b"hello", 10).unwrap(), 10);
        let mut buf = [0u8; 16];
        for _ in 0..10 {
            let n = rx.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"hello");
        }
        // More than the maximum is clamped.
        assert_eq!(send_repeated(tx.as_fd(), b"x", SENDMMSG_MAX + 5).unwrap(), SENDMMSG_MAX);
        // Not connected: the kernel refuses (EDESTADDRREQ).
        let lone = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(send_repeated(lone.as_fd(), b"x", 1).is_err());
    }

    #[test]
    fn prefetch_is_a_pure_hint() {
        let v = [7u64; 16];
        prefetch_read(&v[3]);
        prefetch_read(&v);
        assert_eq!(v, [7; 16]);
    }

    /// With THP in `madvise` or `always` mode, an advised 16 MiB buffer written afterwards is
    /// backed (at least partly) by huge pages, as /proc/self/smaps shows for its mapping.
    #[test]
    fn advise_hugepages_gets_huge_pages() {
        let mut v: Vec<u64> = Vec::with_capacity(2 << 20);
        let spare = v.spare_capacity_mut();
        advise_hugepages(spare).unwrap();
        advise_hugepages(&spare[..10]).unwrap(); // under a page: nothing to do
        v.resize(2 << 20, 0x5a);
        assert!(v.iter().all(|&x| x == 0x5a));
        let mode = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
        if !(mode.contains("[madvise]") || mode.contains("[always]")) {
            eprintln!("THP mode {mode:?}: not checking the backing");
            return;
        }
        let addr = v.as_ptr() as usize + (8 << 20);
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut in_range = false;
        let mut huge_kb = None;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ').filter(|(r, _)| r.contains('-') && !r.contains(':')) {
                let (a, b) = range.split_once('-').unwrap();
                let (a, b) = (usize::from_str_radix(a, 16).unwrap_or(0), usize::from_str_radix(b, 16).unwrap_or(0));
                in_range = (a..b).contains(&addr);
            } else if in_range && line.starts_with("AnonHugePages:") {
                huge_kb = line.split_whitespace().nth(1).and_then(|n| n.parse::<u64>().ok());
            }
        }
        let huge_kb = huge_kb.expect("the buffer's mapping is in smaps");
        assert!(huge_kb >= 2048, "AnonHugePages {huge_kb} kB for an advised 16 MiB buffer");
    }
}
