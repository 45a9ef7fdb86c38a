//! The neighbour messages of rtnetlink (`struct ndmsg` + `NDA_*` attributes): the four requests
//! xskd sends, encoded exactly as iproute2 encodes the same commands, and the decoding of the
//! kernel's `RTM_NEWNEIGH` replies. Pure functions, no I/O.

use std::net::IpAddr;

use super::{NeighEntry, NudState};
use crate::netlink::{
    attrs, message, put_attr, rd_u16, rd_u32, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST,
};

pub(crate) const RTM_NEWNEIGH: u16 = 28;
pub(crate) const RTM_DELNEIGH: u16 = 29;
pub(crate) const RTM_GETNEIGH: u16 = 30;

const NDMSG_LEN: usize = 12;
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
const NDA_IFINDEX: u16 = 8;
const NDA_PROTOCOL: u16 = 12;
const NDA_FLAGS_EXT: u16 = 15;
const NTF_PROXY: u8 = 0x08;
const NTF_EXT_MANAGED: u32 = 1;

fn family(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => libc::AF_INET as u8,
        IpAddr::V6(_) => libc::AF_INET6 as u8,
    }
}

fn ip_bytes(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// `struct ndmsg { u8 family; u8 pad1; u16 pad2; s32 ifindex; u16 state; u8 flags; u8 type; }`.
fn ndmsg(family: u8, ifindex: u32, state: u16) -> [u8; NDMSG_LEN] {
    let mut m = [0u8; NDMSG_LEN];
    m[0] = family;
    m[4..8].copy_from_slice(&i32::try_from(ifindex).unwrap_or(i32::MAX).to_ne_bytes());
    m[8..10].copy_from_slice(&state.to_ne_bytes());
    m
}

/// `ip neigh add IP dev IFINDEX managed protocol PROTO`: `RTM_NEWNEIGH` with
/// `NLM_F_CREATE | NLM_F_EXCL` (an existing entry is refused with `EEXIST`, never modified),
/// state `NUD_NONE` (iproute2's choice for `managed`; the kernel refuses managed + PERMANENT),
/// `NDA_PROTOCOL` (marks the entry as xskd's) and `NDA_FLAGS_EXT = NTF_EXT_MANAGED`.
pub(crate) fn create_managed(seq: u32, ifindex: u32, ip: IpAddr, protocol: u8) -> Vec<u8> {
    let mut a = Vec::new();
    put_attr(&mut a, NDA_PROTOCOL, &[protocol]);
    put_attr(&mut a, NDA_DST, &ip_bytes(&ip));
    put_attr(&mut a, NDA_FLAGS_EXT, &NTF_EXT_MANAGED.to_ne_bytes());
    let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE;
    message(RTM_NEWNEIGH, flags, seq, &ndmsg(family(ip), ifindex, NudState::None.bits()), &a)
}

/// `ip neigh del IP dev IFINDEX` (the kernel reads only family, ifindex and `NDA_DST`).
pub(crate) fn delete(seq: u32, ifindex: u32, ip: IpAddr) -> Vec<u8> {
    let mut a = Vec::new();
    put_attr(&mut a, NDA_DST, &ip_bytes(&ip));
    message(RTM_DELNEIGH, NLM_F_REQUEST | NLM_F_ACK, seq, &ndmsg(family(ip), ifindex, 0), &a)
}

/// `ip neigh get IP dev IFINDEX`: one entry, `ENOENT` if there is none.
pub(crate) fn get(seq: u32, ifindex: u32, ip: IpAddr) -> Vec<u8> {
    let mut a = Vec::new();
    put_attr(&mut a, NDA_DST, &ip_bytes(&ip));
    message(RTM_GETNEIGH, NLM_F_REQUEST, seq, &ndmsg(family(ip), ifindex, 0), &a)
}

/// `ip neigh show dev IFINDEX` (IPv4 and IPv6): the filter is the `NDA_IFINDEX` attribute, the
/// header stays zero as strict checking demands.
pub(crate) fn dump(seq: u32, ifindex: u32) -> Vec<u8> {
    let mut a = Vec::new();
    put_attr(&mut a, NDA_IFINDEX, &ifindex.to_ne_bytes());
    message(RTM_GETNEIGH, NLM_F_REQUEST | NLM_F_DUMP, seq, &ndmsg(libc::AF_UNSPEC as u8, 0, 0), &a)
}

/// Decodes the body of an `RTM_NEWNEIGH` message. `None` for proxy entries, families other than
/// IPv4/IPv6, and malformed bodies (short header, missing or mis-sized `NDA_DST`).
pub(crate) fn parse_entry(body: &[u8]) -> Option<NeighEntry> {
    let fam = *body.first()?;
    let ifindex = rd_u32(body, 4)?;
    let state = NudState::from_bits(rd_u16(body, 8)?);
    let flags = *body.get(10)?;
    if flags & NTF_PROXY != 0 {
        return None;
    }
    let (mut ip, mut mac, mut protocol, mut managed) = (None, None, 0u8, false);
    for (ty, p) in attrs(body.get(NDMSG_LEN..)?) {
        match ty {
            NDA_DST => ip = parse_ip(fam, p),
            NDA_LLADDR => mac = <[u8; 6]>::try_from(p).ok(),
            NDA_PROTOCOL => protocol = p.first().copied().unwrap_or(0),
            NDA_FLAGS_EXT => managed = rd_u32(p, 0).is_some_and(|f| f & NTF_EXT_MANAGED != 0),
            _ => {}
        }
    }
    Some(NeighEntry { ifindex, ip: ip?, mac, state, managed, protocol })
}

fn parse_ip(fam: u8, p: &[u8]) -> Option<IpAddr> {
    match i32::from(fam) {
        libc::AF_INET => Some(IpAddr::from(<[u8; 4]>::try_from(p).ok()?)),
        libc::AF_INET6 => Some(IpAddr::from(<[u8; 16]>::try_from(p).ok()?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    //! The expected requests are iproute2 6.1's own bytes, captured with
    //! `strace -e trace=sendmsg -e write=3 ip neigh …` in a namespace where `va` has ifindex 3
    //! (sequence number 0x6b1129e5 / 0x6b1129e4 as iproute2 chose it). The reply fixture is a
    //! kernel 6.18 `RTM_GETNEIGH` dump captured the same way (`-e read=3`), described by the
    //! `ip -d neigh show dev va` output printed by that same command.

    use super::*;
    use crate::netlink::{absorb_dump, DumpProgress};
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
    }

    const V4: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 5, 2));
    const V6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2));

    #[test]
    fn create_managed_matches_iproute2_v4() {
        // ip neigh add 198.18.5.2 dev va managed protocol 88
        let want = hex("34000000 1c000506 e529116b 00000000 02000000 03000000 00000000 05000c00
                        58000000 08000100 c6120502 08000f00 01000000");
        assert_eq!(create_managed(0x6b11_29e5, 3, V4, 88), want);
    }

    #[test]
    fn create_managed_matches_iproute2_v6() {
        // ip neigh add 2001:2::2 dev va managed protocol 88
        let want = hex("40000000 1c000506 e529116b 00000000 0a000000 03000000 00000000 05000c00
                        58000000 14000100 20010002 00000000 00000000 00000002 08000f00 01000000");
        assert_eq!(create_managed(0x6b11_29e5, 3, V6, 88), want);
    }

    #[test]
    fn delete_matches_iproute2_but_for_the_ignored_state() {
        // ip neigh del 198.18.5.2 dev va: iproute2 leaves ndm_state = NUD_PERMANENT (0x80) from
        // its defaults; neigh_delete() never reads it, xskd sends 0.
        let mut want = hex("24000000 1d000500 e529116b 00000000 02000000 03000000 80000000 08000100
                            c6120502");
        want[24] = 0;
        assert_eq!(delete(0x6b11_29e5, 3, V4), want);
    }

    #[test]
    fn get_matches_iproute2() {
        // ip neigh get 2001:2::2 dev va
        let want = hex("30000000 1e000100 e429116b 00000000 0a000000 03000000 00000000 14000100
                        20010002 00000000 00000000 00000002");
        assert_eq!(get(0x6b11_29e4, 3, V6), want);
    }

    #[test]
    fn dump_matches_iproute2() {
        // ip neigh show dev va (iproute2 sends 284 bytes: this 36-byte request, then zeroes past
        // nlmsg_len that the kernel never reads)
        let want = hex("24000000 1e000103 f82a116b 00000000 00000000 00000000 00000000 08000800
                        03000000");
        assert_eq!(dump(0x6b11_2af8, 3), want);
    }

    /// The kernel's reply to `ip -d neigh show dev va` (ifindex 2 in that capture).
    fn fixture() -> Vec<Vec<u8>> {
        let datagram = hex(include_str!("testdata/dump_reply.hex"));
        let (mut out, mut intr) = (Vec::new(), false);
        let progress = absorb_dump(&datagram, 0x6b11_29ff, RTM_NEWNEIGH, &mut intr, &mut out).expect("valid dump");
        assert_eq!(progress, DumpProgress::Done { interrupted: false });
        out
    }

    #[test]
    fn kernel_dump_decodes_to_what_iproute2_printed() {
        // 198.18.5.2 lladdr 02:00:00:00:00:0b managed REACHABLE proto 88
        // 198.18.5.9 lladdr 02:00:00:00:00:09 PERMANENT
        // 198.18.5.3 managed INCOMPLETE
        // 2001:2::2 lladdr 02:00:00:00:00:0b managed REACHABLE proto 88
        // fe80::ff:fe00:b lladdr 02:00:00:00:00:0b DELAY
        // + three NOARP multicast entries (ff02::2, ff02::1:ff00:2, ff02::16) that `ip neigh`
        //   hides unless asked for `nud all`.
        let peer = Some([2, 0, 0, 0, 0, 0x0b]);
        let e = |ip: &str, mac, state, managed, protocol| NeighEntry {
            ifindex: 2,
            ip: ip.parse().expect("ip"),
            mac,
            state,
            managed,
            protocol,
        };
        let want = vec![
            e("198.18.5.2", peer, NudState::Reachable, true, 88),
            e("198.18.5.9", Some([2, 0, 0, 0, 0, 9]), NudState::Permanent, false, 0),
            e("198.18.5.3", None, NudState::Incomplete, true, 0),
            e("ff02::2", Some([0x33, 0x33, 0, 0, 0, 2]), NudState::NoArp, false, 0),
            e("2001:2::2", peer, NudState::Reachable, true, 88),
            e("ff02::1:ff00:2", Some([0x33, 0x33, 0xff, 0, 0, 2]), NudState::NoArp, false, 0),
            e("ff02::16", Some([0x33, 0x33, 0, 0, 0, 0x16]), NudState::NoArp, false, 0),
            e("fe80::ff:fe00:b", peer, NudState::Delay, false, 0),
        ];
        let got: Vec<NeighEntry> = fixture().iter().map(|b| parse_entry(b).expect("entry")).collect();
        assert_eq!(got, want);
        let usable: Vec<_> = got.iter().map(NeighEntry::usable_mac).collect();
        assert_eq!(usable[2], None, "an INCOMPLETE entry has no usable MAC");
        assert!(usable.iter().enumerate().all(|(i, m)| i == 2 || m.is_some()));
    }

    #[test]
    fn malformed_bodies_are_rejected() {
        let good = fixture().remove(0);
        assert!(parse_entry(&good).is_some());
        assert!(parse_entry(&good[..11]).is_none(), "short header");
        let mut proxy = good.clone();
        proxy[10] |= NTF_PROXY;
        assert!(parse_entry(&proxy).is_none(), "proxy entries are not neighbours");
        let mut other_family = good.clone();
        other_family[0] = libc::AF_BRIDGE as u8;
        assert!(parse_entry(&other_family).is_none());
        let mut v6_claimed = good.clone();
        v6_claimed[0] = libc::AF_INET6 as u8; // a 4-byte NDA_DST in an IPv6 message
        assert!(parse_entry(&v6_claimed).is_none());
        let no_attrs = &good[..NDMSG_LEN];
        assert!(parse_entry(no_attrs).is_none(), "no NDA_DST");
    }

    #[test]
    fn odd_lladdr_lengths_give_no_mac() {
        let mut body = ndmsg(libc::AF_INET as u8, 4, NudState::Reachable.bits()).to_vec();
        put_attr(&mut body, NDA_DST, &[198, 18, 0, 9]);
        put_attr(&mut body, NDA_LLADDR, &[0; 20]); // an InfiniBand-sized address
        let e = parse_entry(&body).expect("entry");
        assert_eq!(e.mac, None);
        assert_eq!(e.usable_mac(), None);
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = parse_entry(&bytes);
            let (mut out, mut intr) = (Vec::new(), false);
            let _ = absorb_dump(&bytes, 1, RTM_NEWNEIGH, &mut intr, &mut out);
        }
    }
}
