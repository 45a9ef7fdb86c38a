//! A minimal rtnetlink client for the XDP state of one interface: read which programs are
//! attached in which mode (`RTM_GETLINK` → `IFLA_XDP`), and detach a netlink-attached program
//! (`RTM_SETLINK` with `IFLA_XDP_FD = -1`), optionally only if it is still the expected program
//! (`IFLA_XDP_EXPECTED_FD` + `XDP_FLAGS_REPLACE`, kernel ≥ 5.7).
//!
//! Guarantees: every request waits for the kernel's answer (acknowledgement or error, 5 s receive
//! timeout) and an error carries the errno plus the kernel's extended-ack message when it sent
//! one. The socket is created in the calling thread's network namespace, so interface indexes
//! are those of that namespace.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};

const NLMSG_HDRLEN: usize = 16;
const IFINFOMSG_LEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_SETLINK: u16 = 19;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CAPPED: u16 = 0x100;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = !(0x8000 | 0x4000);
const SOL_NETLINK: libc::c_int = 270;
const NETLINK_CAP_ACK: libc::c_int = 10;
const NETLINK_EXT_ACK: libc::c_int = 11;
const NLMSGERR_ATTR_MSG: u16 = 1;

const IFLA_XDP: u16 = 43;
const IFLA_XDP_FD: u16 = 1;
const IFLA_XDP_ATTACHED: u16 = 2;
const IFLA_XDP_FLAGS: u16 = 3;
const IFLA_XDP_DRV_PROG_ID: u16 = 5;
const IFLA_XDP_SKB_PROG_ID: u16 = 6;
const IFLA_XDP_HW_PROG_ID: u16 = 7;
const IFLA_XDP_EXPECTED_FD: u16 = 8;

/// `XDP_FLAGS_SKB_MODE` (generic).
pub(crate) const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
/// `XDP_FLAGS_DRV_MODE` (native).
pub(crate) const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
/// `XDP_FLAGS_HW_MODE` (offload).
pub(crate) const XDP_FLAGS_HW_MODE: u32 = 1 << 3;
const XDP_FLAGS_REPLACE: u32 = 1 << 4;

static SEQ: AtomicU32 = AtomicU32::new(1);

/// The XDP programs attached to one interface, by kernel program id (0 = none in that slot).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct XdpState {
    /// `IFLA_XDP_ATTACHED`: 0 none, 1 driver, 2 skb, 3 hw, 4 several.
    pub attached: u8,
    pub drv_prog_id: u32,
    pub skb_prog_id: u32,
    pub hw_prog_id: u32,
}

/// A failed netlink request: the errno and the kernel's extended-ack message, if any.
#[derive(Debug)]
pub(crate) struct NlError {
    pub errno: i32,
    pub msg: Option<String>,
}

impl NlError {
    fn io(e: &io::Error) -> NlError {
        NlError { errno: e.raw_os_error().unwrap_or(libc::EIO), msg: None }
    }
}

impl std::fmt::Display for NlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let os = io::Error::from_raw_os_error(self.errno);
        match &self.msg {
            Some(m) => write!(f, "{os} (kernel: {m})"),
            None => write!(f, "{os}"),
        }
    }
}

fn put_u16(buf: &mut Vec<u8>, v: u16) {
    buf.extend_from_slice(&v.to_ne_bytes());
}

fn put_u32(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_ne_bytes());
}

fn put_attr(buf: &mut Vec<u8>, ty: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    put_u16(buf, u16::try_from(len).expect("small netlink attribute"));
    put_u16(buf, ty);
    buf.extend_from_slice(payload);
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

fn rd_u16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

fn rd_u32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

/// Iterates over the netlink attributes in `b` as `(type without flags, payload)`.
fn attrs(b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut off = 0usize;
    std::iter::from_fn(move || {
        let len = usize::from(rd_u16(b, off)?);
        let ty = rd_u16(b, off + 2)?;
        if len < 4 || off + len > b.len() {
            return None;
        }
        let payload = &b[off + 4..off + len];
        off += (len + 3) & !3;
        Some((ty & NLA_TYPE_MASK, payload))
    })
}

/// Builds an `RTM_*LINK` request for `ifindex` with `attrs_buf` after the `ifinfomsg`.
fn link_request(ty: u16, flags: u16, seq: u32, ifindex: u32, attrs_buf: &[u8]) -> Vec<u8> {
    let len = NLMSG_HDRLEN + IFINFOMSG_LEN + attrs_buf.len();
    let mut b = Vec::with_capacity(len);
    put_u32(&mut b, u32::try_from(len).expect("small netlink message"));
    put_u16(&mut b, ty);
    put_u16(&mut b, flags);
    put_u32(&mut b, seq);
    put_u32(&mut b, 0); // port id: kernel fills in
    b.push(libc::AF_UNSPEC as u8); // ifi_family
    b.push(0); // pad
    put_u16(&mut b, 0); // ifi_type
    b.extend_from_slice(&i32::try_from(ifindex).unwrap_or(i32::MAX).to_ne_bytes());
    put_u32(&mut b, 0); // ifi_flags
    put_u32(&mut b, 0); // ifi_change
    b.extend_from_slice(attrs_buf);
    b
}

struct Socket {
    fd: OwnedFd,
}

impl Socket {
    fn open() -> io::Result<Socket> {
        // SAFETY: plain socket(2) call with constant arguments; the result is checked below.
        let raw = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh, valid descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let one: libc::c_int = 1;
        for opt in [NETLINK_EXT_ACK, NETLINK_CAP_ACK] {
            // SAFETY: `one` outlives the call and the length matches its type. Failure only
            // loses the extended-ack text, so the result is ignored on purpose.
            let _ = unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    SOL_NETLINK,
                    opt,
                    (&one as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
        }
        let tv = libc::timeval { tv_sec: 5, tv_usec: 0 };
        // SAFETY: `tv` outlives the call and the length matches its type.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Socket { fd })
    }

    fn send(&self, msg: &[u8]) -> io::Result<()> {
        // SAFETY: `msg` is a valid buffer of `msg.len()` bytes for the duration of the call; an
        // unconnected netlink socket sends to the kernel (port id 0).
        let n = unsafe { libc::send(self.fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n as usize != msg.len() {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "short netlink send"));
        }
        Ok(())
    }

    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the duration of the call.
            let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Sends `msg` (sequence number `seq`) and returns the payload of the first reply of type
    /// `want` (or `Ok(None)` on a positive acknowledgement); errors carry the kernel's text.
    fn transact(&self, msg: &[u8], seq: u32, want: Option<u16>) -> Result<Option<Vec<u8>>, NlError> {
        self.send(msg).map_err(|e| NlError::io(&e))?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = self.recv(&mut buf).map_err(|e| NlError::io(&e))?;
            let mut off = 0usize;
            while off + NLMSG_HDRLEN <= n {
                let b = &buf[..n];
                let len = rd_u32(b, off).unwrap_or(0) as usize;
                let ty = rd_u16(b, off + 4).unwrap_or(0);
                let flags = rd_u16(b, off + 6).unwrap_or(0);
                let mseq = rd_u32(b, off + 8).unwrap_or(0);
                if len < NLMSG_HDRLEN || off + len > n {
                    return Err(NlError { errno: libc::EBADMSG, msg: Some("malformed netlink reply".into()) });
                }
                let body = &b[off + NLMSG_HDRLEN..off + len];
                off += (len + 3) & !3;
                if mseq != seq {
                    continue; // a stale reply to an earlier request on this socket
                }
                if ty == NLMSG_ERROR {
                    let err = rd_u32(body, 0).map_or(-libc::EBADMSG, |v| v as i32);
                    if err == 0 {
                        return Ok(None);
                    }
                    return Err(NlError { errno: -err, msg: ext_ack_msg(body, flags) });
                }
                if ty == NLMSG_DONE {
                    return Ok(None);
                }
                if Some(ty) == want {
                    return Ok(Some(body.to_vec()));
                }
            }
        }
    }
}

/// Extracts `NLMSGERR_ATTR_MSG` from an `NLMSG_ERROR` body when the kernel attached one.
fn ext_ack_msg(body: &[u8], flags: u16) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    // struct nlmsgerr { int error; struct nlmsghdr msg; } + the request payload unless capped.
    let orig_len = rd_u32(body, 4)? as usize;
    let mut off = 4 + NLMSG_HDRLEN;
    if flags & NLM_F_CAPPED == 0 {
        off += orig_len.saturating_sub(NLMSG_HDRLEN);
    }
    let off = (off + 3) & !3;
    attrs(body.get(off..)?).find(|(ty, _)| *ty == NLMSGERR_ATTR_MSG).map(|(_, p)| {
        let end = p.iter().position(|&c| c == 0).unwrap_or(p.len());
        String::from_utf8_lossy(&p[..end]).into_owned()
    })
}

/// Reads the XDP state of `ifindex` in the calling thread's network namespace.
pub(crate) fn query(ifindex: u32) -> Result<XdpState, NlError> {
    let sock = Socket::open().map_err(|e| NlError::io(&e))?;
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let req = link_request(RTM_GETLINK, NLM_F_REQUEST, seq, ifindex, &[]);
    let body = sock
        .transact(&req, seq, Some(RTM_NEWLINK))?
        .ok_or(NlError { errno: libc::ENODATA, msg: Some("no RTM_NEWLINK in the reply".into()) })?;
    let mut st = XdpState::default();
    let Some(link_attrs) = body.get(IFINFOMSG_LEN..) else {
        return Ok(st);
    };
    for (ty, payload) in attrs(link_attrs) {
        if ty != IFLA_XDP {
            continue;
        }
        for (xty, xp) in attrs(payload) {
            match xty {
                IFLA_XDP_ATTACHED => st.attached = xp.first().copied().unwrap_or(0),
                IFLA_XDP_DRV_PROG_ID => st.drv_prog_id = rd_u32(xp, 0).unwrap_or(0),
                IFLA_XDP_SKB_PROG_ID => st.skb_prog_id = rd_u32(xp, 0).unwrap_or(0),
                IFLA_XDP_HW_PROG_ID => st.hw_prog_id = rd_u32(xp, 0).unwrap_or(0),
                _ => {}
            }
        }
    }
    Ok(st)
}

/// Sets the XDP program of `ifindex` in the mode given by `mode_flags` (one of the
/// `XDP_FLAGS_*_MODE`) through netlink: `prog` = `None` detaches. With `expected`, the kernel
/// changes nothing unless that program is the one attached (EEXIST otherwise).
pub(crate) fn set_xdp(
    ifindex: u32,
    prog: Option<BorrowedFd<'_>>,
    mode_flags: u32,
    expected: Option<BorrowedFd<'_>>,
) -> Result<(), NlError> {
    let sock = Socket::open().map_err(|e| NlError::io(&e))?;
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let fd = prog.map_or(-1, |p| p.as_raw_fd());
    let mut flags = mode_flags;
    let mut nested = Vec::new();
    put_attr(&mut nested, IFLA_XDP_FD, &fd.to_ne_bytes());
    if let Some(exp) = expected {
        flags |= XDP_FLAGS_REPLACE;
        put_attr(&mut nested, IFLA_XDP_EXPECTED_FD, &exp.as_raw_fd().to_ne_bytes());
    }
    put_attr(&mut nested, IFLA_XDP_FLAGS, &flags.to_ne_bytes());
    let mut attrs_buf = Vec::new();
    put_attr(&mut attrs_buf, IFLA_XDP | NLA_F_NESTED, &nested);
    let req = link_request(RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, seq, ifindex, &attrs_buf);
    sock.transact(&req, seq, None).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_round_trip_with_padding() {
        let mut b = Vec::new();
        put_attr(&mut b, 7, &[1, 2, 3]);
        put_attr(&mut b, 9 | NLA_F_NESTED, &5u32.to_ne_bytes());
        assert_eq!(b.len(), 8 + 8);
        let got: Vec<(u16, Vec<u8>)> = attrs(&b).map(|(t, p)| (t, p.to_vec())).collect();
        assert_eq!(got, vec![(7, vec![1, 2, 3]), (9, 5u32.to_ne_bytes().to_vec())]);
    }

    #[test]
    fn truncated_attributes_stop_iteration() {
        let mut b = Vec::new();
        put_attr(&mut b, 1, &[0; 8]);
        b.truncate(6);
        assert_eq!(attrs(&b).count(), 0);
    }

    #[test]
    fn request_header_is_well_formed() {
        let req = link_request(RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, 42, 7, &[0; 8]);
        assert_eq!(req.len(), 16 + 16 + 8);
        assert_eq!(rd_u32(&req, 0), Some(40));
        assert_eq!(rd_u16(&req, 4), Some(RTM_SETLINK));
        assert_eq!(rd_u32(&req, 8), Some(42));
        assert_eq!(rd_u32(&req, 20), Some(7));
    }

    #[test]
    fn extended_ack_message_is_extracted() {
        // nlmsgerr: error, capped original header, then NLMSGERR_ATTR_MSG.
        let mut body = Vec::new();
        body.extend_from_slice(&(-libc::EBUSY).to_ne_bytes());
        body.extend_from_slice(&[0u8; 16]);
        put_attr(&mut body, NLMSGERR_ATTR_MSG, b"Can't replace active BPF XDP link\0");
        assert_eq!(
            ext_ack_msg(&body, NLM_F_ACK_TLVS | NLM_F_CAPPED).as_deref(),
            Some("Can't replace active BPF XDP link")
        );
        assert_eq!(ext_ack_msg(&body, 0), None);
    }
}
