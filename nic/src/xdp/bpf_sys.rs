//! The few raw `bpf(2)` commands that aya 0.14 does not expose publicly and that `cleanup` and
//! a deterministic detach need: walk link ids, open a link or program by id, read link and
//! program info, and `BPF_LINK_DETACH`. Plus the `/proc` scan that finds which processes hold a
//! link open.
//!
//! Guarantees: every call passes a zeroed, 8-byte aligned attribute buffer and checks the
//! result; descriptors come back as `OwnedFd` (the kernel opens them close-on-exec).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_LINK_GET_FD_BY_ID: libc::c_long = 30;
const BPF_LINK_GET_NEXT_ID: libc::c_long = 31;
const BPF_LINK_DETACH: libc::c_long = 34;

/// `BPF_LINK_TYPE_XDP`.
pub(crate) const BPF_LINK_TYPE_XDP: u32 = 6;

/// `union bpf_attr`, as much of it as these commands use, zero-initialised.
#[repr(C, align(8))]
struct Attr([u8; 64]);

impl Attr {
    fn new() -> Attr {
        Attr([0; 64])
    }

    fn u32_at(mut self, off: usize, v: u32) -> Attr {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }

    fn u64_at(mut self, off: usize, v: u64) -> Attr {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }

    fn read_u32(&self, off: usize) -> u32 {
        u32::from_ne_bytes(self.0[off..off + 4].try_into().expect("4 bytes"))
    }
}

fn bpf(cmd: libc::c_long, attr: &mut Attr) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a valid, writable, zero-padded buffer of the size passed; the kernel
    // reads (and for some commands writes) at most that many bytes.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut Attr, std::mem::size_of::<Attr>()) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn fd_result(rc: libc::c_long) -> io::Result<OwnedFd> {
    let raw = i32::try_from(rc).map_err(|_| io::Error::other("bpf(2) returned a bad fd"))?;
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// The link id after `start` (`Ok(None)` at the end of the list).
pub(crate) fn next_link_id(start: u32) -> io::Result<Option<u32>> {
    let mut attr = Attr::new().u32_at(0, start);
    match bpf(BPF_LINK_GET_NEXT_ID, &mut attr) {
        Ok(_) => Ok(Some(attr.read_u32(4))),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// True for the errors `BPF_*_GET_FD_BY_ID` gives for an object that is gone (ENOENT) or
/// being released right now (EAGAIN: the link's id is already cleared).
pub(crate) fn is_gone(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::EAGAIN))
}

/// Opens the link `id` (see [`is_gone`] for the errors of a vanishing link).
pub(crate) fn link_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = Attr::new().u32_at(0, id);
    fd_result(bpf(BPF_LINK_GET_FD_BY_ID, &mut attr)?)
}

/// Opens the program `id` (ENOENT if it is gone).
pub(crate) fn prog_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = Attr::new().u32_at(0, id);
    fd_result(bpf(BPF_PROG_GET_FD_BY_ID, &mut attr)?)
}

/// Fills `info` with `BPF_OBJ_GET_INFO_BY_FD` for `fd`.
fn obj_info(fd: BorrowedFd<'_>, info: &mut [u64]) -> io::Result<()> {
    let len = u32::try_from(std::mem::size_of_val(info)).expect("small info buffer");
    let mut attr = Attr::new().u32_at(0, fd.as_raw_fd() as u32).u32_at(4, len).u64_at(8, info.as_mut_ptr() as u64);
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr).map(|_| ())
}

/// What `cleanup` needs of a `struct bpf_link_info`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LinkInfo {
    pub link_type: u32,
    pub id: u32,
    pub prog_id: u32,
    /// For XDP links: the interface index (in the namespace the link was made in; 0 once
    /// detached).
    pub xdp_ifindex: u32,
}

pub(crate) fn link_info(fd: BorrowedFd<'_>) -> io::Result<LinkInfo> {
    // struct bpf_link_info { u32 type; u32 id; u32 prog_id; union (8-aligned) {...} }:
    // the union starts at byte 16; for XDP its first member is `u32 ifindex`.
    let mut buf = [0u64; 16];
    obj_info(fd, &mut buf)?;
    let bytes: Vec<u8> = buf.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let at = |off: usize| u32::from_ne_bytes(bytes[off..off + 4].try_into().expect("4 bytes"));
    Ok(LinkInfo { link_type: at(0), id: at(4), prog_id: at(8), xdp_ifindex: at(16) })
}

/// The name of program `fd` (`struct bpf_prog_info.name`, at byte 64, 16 bytes).
pub(crate) fn prog_name(fd: BorrowedFd<'_>) -> io::Result<String> {
    let mut buf = [0u64; 64];
    obj_info(fd, &mut buf)?;
    let bytes: Vec<u8> = buf.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let name = &bytes[64..80];
    let end = name.iter().position(|&c| c == 0).unwrap_or(name.len());
    Ok(String::from_utf8_lossy(&name[..end]).into_owned())
}

/// The name of program `id`, or `None` if it no longer exists.
pub(crate) fn prog_name_by_id(id: u32) -> Option<String> {
    let fd = prog_fd_by_id(id).ok()?;
    use std::os::fd::AsFd;
    prog_name(fd.as_fd()).ok()
}

/// `BPF_LINK_DETACH`: detaches the link from its hook for every holder at once. Idempotent.
pub(crate) fn link_detach(fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = Attr::new().u32_at(0, fd.as_raw_fd() as u32);
    bpf(BPF_LINK_DETACH, &mut attr).map(|_| ())
}

/// Every XDP link in the system (all namespaces), skipping links that vanish while walking.
pub(crate) fn xdp_links() -> io::Result<Vec<LinkInfo>> {
    use std::os::fd::AsFd;
    let mut out = Vec::new();
    let mut id = 0u32;
    while let Some(next) = next_link_id(id)? {
        id = next;
        let fd = match link_fd_by_id(next) {
            Ok(fd) => fd,
            Err(e) if is_gone(&e) => continue,
            Err(e) => return Err(e),
        };
        let info = link_info(fd.as_fd())?;
        if info.link_type == BPF_LINK_TYPE_XDP {
            out.push(info);
        }
    }
    Ok(out)
}

/// The pids of the live processes that hold link `link_id` open, found through
/// `/proc/PID/fd/*` (links show as `anon_inode:bpf_link`) and `/proc/PID/fdinfo/*`
/// (`link_id:`). Processes that exit or deny access during the scan are skipped.
pub(crate) fn link_holders(link_id: u32) -> Vec<u32> {
    let needle = format!("link_id:\t{link_id}\n");
    let mut pids = Vec::new();
    let Ok(proc_dir) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for entry in proc_dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            let is_link =
                std::fs::read_link(fd.path()).map(|t| t.as_os_str() == "anon_inode:bpf_link").unwrap_or(false);
            is_link
                && std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{}", fd.file_name().to_string_lossy()))
                    .map(|s| s.contains(&needle))
                    .unwrap_or(false)
        });
        if holds {
            pids.push(pid);
        }
    }
    pids
}
