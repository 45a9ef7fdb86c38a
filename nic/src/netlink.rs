//! A minimal rtnetlink transport shared by [`crate::xdp`] (link and XDP state) and
//! [`crate::neigh`] (the neighbour table): message and attribute encoding, the NETLINK_ROUTE
//! socket, request/acknowledge exchanges and multi-part dumps.
//!
//! Guarantees: every request waits for the kernel's answer (acknowledgement, reply, end of dump
//! or error; 5 s receive timeout), replies to other sequence numbers are skipped, a datagram
//! larger than the receive buffer is an error (never silently cut), and an error carries the
//! errno plus the kernel's extended-ack message when it sent one. The socket lives in the
//! network namespace of the thread that opened it, so interface indexes are those of that
//! namespace, whichever thread uses it later. Decoding never panics on malformed input.
//!
//! Control path only: requests allocate and block.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};

pub(crate) const NLMSG_HDRLEN: usize = 16;
pub(crate) const IFINFOMSG_LEN: usize = 16;
pub(crate) const NLMSG_ERROR: u16 = 2;
pub(crate) const NLMSG_DONE: u16 = 3;
pub(crate) const RTM_NEWLINK: u16 = 16;
pub(crate) const RTM_GETLINK: u16 = 18;
pub(crate) const NLM_F_REQUEST: u16 = 0x1;
pub(crate) const NLM_F_ACK: u16 = 0x4;
/// `NLM_F_ROOT | NLM_F_MATCH`.
pub(crate) const NLM_F_DUMP: u16 = 0x300;
/// In a dump reply: the table changed during the dump, the result may be inconsistent.
pub(crate) const NLM_F_DUMP_INTR: u16 = 0x10;
pub(crate) const NLM_F_EXCL: u16 = 0x200;
pub(crate) const NLM_F_CREATE: u16 = 0x400;
const NLM_F_CAPPED: u16 = 0x100;
const NLM_F_ACK_TLVS: u16 = 0x200;
pub(crate) const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = !(0x8000 | 0x4000);
const SOL_NETLINK: libc::c_int = 270;
const NETLINK_CAP_ACK: libc::c_int = 10;
const NETLINK_EXT_ACK: libc::c_int = 11;
const NETLINK_GET_STRICT_CHK: libc::c_int = 12;
const NLMSGERR_ATTR_MSG: u16 = 1;
pub(crate) const IFLA_IFNAME: u16 = 3;

/// Receive buffer: larger than any dump datagram the kernel builds (at most 32 KiB).
const RECV_BUF: usize = 64 * 1024;
/// How often a dump interrupted by a concurrent table change is restarted.
const DUMP_ATTEMPTS: usize = 4;

static SEQ: AtomicU32 = AtomicU32::new(1);

/// A fresh sequence number for a request.
pub(crate) fn next_seq() -> u32 {
    SEQ.fetch_add(1, Ordering::Relaxed)
}

/// A failed netlink request: the errno and the kernel's extended-ack message, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NlError {
    pub errno: i32,
    pub msg: Option<String>,
}

impl NlError {
    pub(crate) fn io(e: &io::Error) -> NlError {
        NlError { errno: e.raw_os_error().unwrap_or(libc::EIO), msg: None }
    }

    fn malformed(what: &str) -> NlError {
        NlError { errno: libc::EBADMSG, msg: Some(format!("malformed netlink reply: {what}")) }
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

pub(crate) fn put_u16(buf: &mut Vec<u8>, v: u16) {
    buf.extend_from_slice(&v.to_ne_bytes());
}

pub(crate) fn put_u32(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_ne_bytes());
}

/// Appends one attribute (header, payload, padding to 4 bytes).
pub(crate) fn put_attr(buf: &mut Vec<u8>, ty: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    put_u16(buf, u16::try_from(len).expect("small netlink attribute"));
    put_u16(buf, ty);
    buf.extend_from_slice(payload);
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

pub(crate) fn rd_u16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

pub(crate) fn rd_u32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

/// Iterates over the netlink attributes in `b` as `(type without flags, payload)`; stops at
/// the first malformed one.
pub(crate) fn attrs(b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
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

/// A whole request: `nlmsghdr` (port id 0: the kernel fills it in), the family header
/// `fixed` (a multiple of 4 bytes) and the attributes.
pub(crate) fn message(ty: u16, flags: u16, seq: u32, fixed: &[u8], attrs_buf: &[u8]) -> Vec<u8> {
    debug_assert!(fixed.len().is_multiple_of(4));
    let len = NLMSG_HDRLEN + fixed.len() + attrs_buf.len();
    let mut b = Vec::with_capacity(len);
    put_u32(&mut b, u32::try_from(len).expect("small netlink message"));
    put_u16(&mut b, ty);
    put_u16(&mut b, flags);
    put_u32(&mut b, seq);
    put_u32(&mut b, 0);
    b.extend_from_slice(fixed);
    b.extend_from_slice(attrs_buf);
    b
}

/// `struct ifinfomsg` for `ifindex`, family `AF_UNSPEC`, everything else 0.
pub(crate) fn ifinfomsg(ifindex: u32) -> [u8; IFINFOMSG_LEN] {
    let mut m = [0u8; IFINFOMSG_LEN];
    m[0] = libc::AF_UNSPEC as u8;
    m[4..8].copy_from_slice(&i32::try_from(ifindex).unwrap_or(i32::MAX).to_ne_bytes());
    m
}

/// One message of a received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Msg<'a> {
    pub ty: u16,
    pub flags: u16,
    pub seq: u32,
    pub body: &'a [u8],
}

/// Iterates over the messages of one datagram; a malformed length ends it with an error.
pub(crate) fn messages(b: &[u8]) -> impl Iterator<Item = Result<Msg<'_>, NlError>> {
    let mut off = 0usize;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || off + NLMSG_HDRLEN > b.len() {
            return None;
        }
        let len = rd_u32(b, off).map_or(0, |v| v as usize);
        if len < NLMSG_HDRLEN || off + len > b.len() {
            failed = true;
            return Some(Err(NlError::malformed("message length")));
        }
        let msg = Msg {
            ty: rd_u16(b, off + 4).unwrap_or(0),
            flags: rd_u16(b, off + 6).unwrap_or(0),
            seq: rd_u32(b, off + 8).unwrap_or(0),
            body: &b[off + NLMSG_HDRLEN..off + len],
        };
        off += (len + 3) & !3;
        Some(Ok(msg))
    })
}

/// The error of an `NLMSG_ERROR` or `NLMSG_DONE` body: `Ok(())` for 0.
fn status(msg: &Msg<'_>) -> Result<(), NlError> {
    // NLMSG_DONE of an old kernel may carry no status word: that is success.
    let code = match rd_u32(msg.body, 0) {
        Some(v) => v as i32,
        None if msg.ty == NLMSG_DONE => 0,
        None => return Err(NlError::malformed("short NLMSG_ERROR")),
    };
    if code == 0 {
        return Ok(());
    }
    let msg_text = if msg.ty == NLMSG_ERROR { ext_ack_msg(msg.body, msg.flags) } else { done_ext_ack(msg.body) };
    Err(NlError { errno: code.saturating_neg(), msg: msg_text })
}

/// What one datagram of a dump contributed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DumpProgress {
    /// More datagrams follow.
    More,
    /// `NLMSG_DONE` seen; `interrupted` if any part carried `NLM_F_DUMP_INTR`.
    Done { interrupted: bool },
}

/// Collects into `out` the bodies of the messages of type `want` and sequence `seq` in one
/// datagram of a dump reply. `interrupted` accumulates `NLM_F_DUMP_INTR` across datagrams.
pub(crate) fn absorb_dump(
    datagram: &[u8],
    seq: u32,
    want: u16,
    interrupted: &mut bool,
    out: &mut Vec<Vec<u8>>,
) -> Result<DumpProgress, NlError> {
    for msg in messages(datagram) {
        let msg = msg?;
        if msg.seq != seq {
            continue; // a stale reply to an earlier request on this socket
        }
        *interrupted |= msg.flags & NLM_F_DUMP_INTR != 0;
        match msg.ty {
            NLMSG_ERROR => status(&msg)?, // an acknowledgement inside a dump is not expected; an error ends it
            NLMSG_DONE => {
                status(&msg)?;
                return Ok(DumpProgress::Done { interrupted: *interrupted });
            }
            t if t == want => out.push(msg.body.to_vec()),
            _ => {}
        }
    }
    Ok(DumpProgress::More)
}

/// A NETLINK_ROUTE socket in the namespace of the thread that opened it.
#[derive(Debug)]
pub(crate) struct Socket {
    fd: OwnedFd,
}

impl Socket {
    /// Opens the socket with extended acks, capped acks and a 5 s receive timeout.
    pub(crate) fn open() -> io::Result<Socket> {
        // SAFETY: plain socket(2) call with constant arguments; the result is checked below.
        let raw = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh, valid descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let sock = Socket { fd };
        for opt in [NETLINK_EXT_ACK, NETLINK_CAP_ACK] {
            // Failure only loses the extended-ack text, so it is ignored on purpose.
            let _ = sock.set_netlink_opt(opt);
        }
        let tv = libc::timeval { tv_sec: 5, tv_usec: 0 };
        // SAFETY: `tv` outlives the call and the length matches its type.
        let rc = unsafe {
            libc::setsockopt(
                sock.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(sock)
    }

    /// Asks the kernel to validate dump and get requests strictly (`NETLINK_GET_STRICT_CHK`,
    /// Linux ≥ 4.20): filters are applied by the kernel and a malformed request is refused
    /// instead of being answered with everything.
    pub(crate) fn set_strict_check(&self) -> io::Result<()> {
        self.set_netlink_opt(NETLINK_GET_STRICT_CHK)
    }

    fn set_netlink_opt(&self, opt: libc::c_int) -> io::Result<()> {
        let one: libc::c_int = 1;
        // SAFETY: `one` outlives the call and the length matches its type.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                SOL_NETLINK,
                opt,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
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

    /// Receives one datagram into `buf`; a datagram longer than `buf` is an error.
    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the duration of the
            // call. MSG_TRUNC makes the call return the datagram's real length.
            let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_TRUNC) };
            if n >= 0 {
                let n = n as usize;
                if n > buf.len() {
                    return Err(io::Error::other(format!("netlink datagram of {n} bytes truncated to {}", buf.len())));
                }
                return Ok(n);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Sends `msg` (sequence number `seq`) and returns the body of the first reply of type
    /// `want` (or `Ok(None)` on a positive acknowledgement or an empty dump); errors carry the
    /// kernel's text.
    pub(crate) fn transact(&self, msg: &[u8], seq: u32, want: Option<u16>) -> Result<Option<Vec<u8>>, NlError> {
        self.send(msg).map_err(|e| NlError::io(&e))?;
        let mut buf = vec![0u8; RECV_BUF];
        loop {
            let n = self.recv(&mut buf).map_err(|e| NlError::io(&e))?;
            for m in messages(&buf[..n]) {
                let m = m?;
                if m.seq != seq {
                    continue; // a stale reply to an earlier request on this socket
                }
                match m.ty {
                    NLMSG_ERROR | NLMSG_DONE => return status(&m).map(|()| None),
                    t if Some(t) == want => return Ok(Some(m.body.to_vec())),
                    _ => {}
                }
            }
        }
    }

    /// Runs a dump: sends `request(seq)` and returns the bodies of every message of type `want`
    /// up to `NLMSG_DONE`. A dump the kernel marks as interrupted by a concurrent change
    /// (`NLM_F_DUMP_INTR`) is restarted, a few times at most.
    pub(crate) fn dump(&self, request: impl Fn(u32) -> Vec<u8>, want: u16) -> Result<Vec<Vec<u8>>, NlError> {
        let mut buf = vec![0u8; RECV_BUF];
        for _ in 0..DUMP_ATTEMPTS {
            let seq = next_seq();
            self.send(&request(seq)).map_err(|e| NlError::io(&e))?;
            let mut out = Vec::new();
            let mut interrupted = false;
            loop {
                let n = self.recv(&mut buf).map_err(|e| NlError::io(&e))?;
                match absorb_dump(&buf[..n], seq, want, &mut interrupted, &mut out)? {
                    DumpProgress::More => {}
                    DumpProgress::Done { interrupted: false } => return Ok(out),
                    DumpProgress::Done { interrupted: true } => break,
                }
            }
        }
        Err(NlError {
            errno: libc::EINTR,
            msg: Some(format!("dump interrupted by concurrent changes {DUMP_ATTEMPTS} times")),
        })
    }

    /// The name of interface `ifindex` in this socket's namespace, if it exists.
    pub(crate) fn ifname(&self, ifindex: u32) -> Option<String> {
        let seq = next_seq();
        let req = message(RTM_GETLINK, NLM_F_REQUEST, seq, &ifinfomsg(ifindex), &[]);
        let body = self.transact(&req, seq, Some(RTM_NEWLINK)).ok()??;
        let (_, name) = attrs(body.get(IFINFOMSG_LEN..)?).find(|(ty, _)| *ty == IFLA_IFNAME)?;
        let end = name.iter().position(|&c| c == 0).unwrap_or(name.len());
        Some(String::from_utf8_lossy(&name[..end]).into_owned())
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
    ack_text(body.get(off..)?)
}

/// `NLMSG_DONE` of a failed dump: the status word, then the extended-ack attributes.
fn done_ext_ack(body: &[u8]) -> Option<String> {
    ack_text(body.get(4..)?)
}

fn ack_text(tlvs: &[u8]) -> Option<String> {
    attrs(tlvs).find(|(ty, _)| *ty == NLMSGERR_ATTR_MSG).map(|(_, p)| {
        let end = p.iter().position(|&c| c == 0).unwrap_or(p.len());
        String::from_utf8_lossy(&p[..end]).into_owned()
    })
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

    fn raw(ty: u16, flags: u16, seq: u32, body: &[u8]) -> Vec<u8> {
        let mut m = message(ty, flags, seq, &[], body);
        while !m.len().is_multiple_of(4) {
            m.push(0);
        }
        m
    }

    #[test]
    fn dump_collects_across_datagrams_and_skips_other_sequences() {
        let mut d1 = raw(28, 0x2, 7, &[1, 0, 0, 0]);
        d1.extend(raw(28, 0x2, 6, &[9, 0, 0, 0])); // stale: other sequence
        d1.extend(raw(99, 0x2, 7, &[8, 0, 0, 0])); // other type
        let mut d2 = raw(28, 0x2 | NLM_F_DUMP_INTR, 7, &[2, 0, 0, 0]);
        d2.extend(raw(NLMSG_DONE, 0x2, 7, &0i32.to_ne_bytes()));
        let (mut out, mut intr) = (Vec::new(), false);
        assert_eq!(absorb_dump(&d1, 7, 28, &mut intr, &mut out), Ok(DumpProgress::More));
        assert_eq!(absorb_dump(&d2, 7, 28, &mut intr, &mut out), Ok(DumpProgress::Done { interrupted: true }));
        assert_eq!(out, vec![vec![1, 0, 0, 0], vec![2, 0, 0, 0]]);
    }

    #[test]
    fn dump_error_carries_errno_and_text() {
        let mut body = (-libc::EINVAL).to_ne_bytes().to_vec();
        put_attr(&mut body, NLMSGERR_ATTR_MSG, b"Invalid values in header for neighbor dump request\0");
        let d = raw(NLMSG_DONE, 0x2, 3, &body);
        let (mut out, mut intr) = (Vec::new(), false);
        let e = absorb_dump(&d, 3, 28, &mut intr, &mut out).unwrap_err();
        assert_eq!(e.errno, libc::EINVAL);
        assert_eq!(e.msg.as_deref(), Some("Invalid values in header for neighbor dump request"));
        let mut err = (-libc::ENODEV).to_ne_bytes().to_vec();
        err.extend_from_slice(&[0u8; 16]);
        let d = raw(NLMSG_ERROR, 0, 3, &err);
        assert_eq!(absorb_dump(&d, 3, 28, &mut intr, &mut out).unwrap_err().errno, libc::ENODEV);
    }

    #[test]
    fn malformed_message_length_is_an_error_not_a_panic() {
        let mut d = raw(28, 0, 1, &[0; 4]);
        d[0] = 200; // claims more than the datagram holds
        let (mut out, mut intr) = (Vec::new(), false);
        assert_eq!(absorb_dump(&d, 1, 28, &mut intr, &mut out).unwrap_err().errno, libc::EBADMSG);
        d[0] = 3; // shorter than a header
        assert_eq!(absorb_dump(&d, 1, 28, &mut intr, &mut out).unwrap_err().errno, libc::EBADMSG);
    }

    #[test]
    fn ifinfomsg_layout() {
        let m = ifinfomsg(7);
        assert_eq!(m[0], 0);
        assert_eq!(rd_u32(&m, 4), Some(7));
        assert!(m[8..].iter().all(|&b| b == 0));
    }
}
