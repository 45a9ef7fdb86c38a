//! The XDP state of one interface over rtnetlink: read which programs are attached in which
//! mode (`RTM_GETLINK` → `IFLA_XDP`), and detach a netlink-attached program (`RTM_SETLINK` with
//! `IFLA_XDP_FD = -1`), optionally only if it is still the expected program
//! (`IFLA_XDP_EXPECTED_FD` + `XDP_FLAGS_REPLACE`, kernel ≥ 5.7).
//!
//! The transport (socket, acknowledgements, extended-ack errors, 5 s timeout) is
//! [`crate::netlink`]. Each call opens its socket in the calling thread's network namespace,
//! so interface indexes are those of that namespace.

use std::os::fd::{AsRawFd, BorrowedFd};

use crate::netlink::{
    attrs, ifinfomsg, message, next_seq, put_attr, rd_u32, NlError, Socket, IFINFOMSG_LEN, NLA_F_NESTED, NLM_F_ACK,
    NLM_F_REQUEST, RTM_GETLINK, RTM_NEWLINK,
};

const RTM_SETLINK: u16 = 19;

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

/// The XDP programs attached to one interface, by kernel program id (0 = none in that slot).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct XdpState {
    /// `IFLA_XDP_ATTACHED`: 0 none, 1 driver, 2 skb, 3 hw, 4 several.
    pub attached: u8,
    pub drv_prog_id: u32,
    pub skb_prog_id: u32,
    pub hw_prog_id: u32,
}

/// Builds an `RTM_*LINK` request for `ifindex` with `attrs_buf` after the `ifinfomsg`.
fn link_request(ty: u16, flags: u16, seq: u32, ifindex: u32, attrs_buf: &[u8]) -> Vec<u8> {
    message(ty, flags, seq, &ifinfomsg(ifindex), attrs_buf)
}

/// Reads the XDP state of `ifindex` in the calling thread's network namespace.
pub(crate) fn query(ifindex: u32) -> Result<XdpState, NlError> {
    let sock = Socket::open().map_err(|e| NlError::io(&e))?;
    let seq = next_seq();
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
    let seq = next_seq();
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
    use crate::netlink::rd_u16;

    #[test]
    fn request_header_is_well_formed() {
        let req = link_request(RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, 42, 7, &[0; 8]);
        assert_eq!(req.len(), 16 + 16 + 8);
        assert_eq!(rd_u32(&req, 0), Some(40));
        assert_eq!(rd_u16(&req, 4), Some(RTM_SETLINK));
        assert_eq!(rd_u32(&req, 8), Some(42));
        assert_eq!(rd_u32(&req, 20), Some(7));
    }
}
