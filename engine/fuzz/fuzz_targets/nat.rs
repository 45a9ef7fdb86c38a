//! `nat`: arbitrary bytes → `engine::nat::NatFrame` → every getter, the quoted tuple of ICMP
//! errors, and (on a copy) the rewrites: the full NAT to the reversed tuple and back, one-sided
//! DNAT/SNAT, the MAC rewrites and the ICMP error translation and back. The properties are "no
//! panic, whatever the bytes", "a rewritten frame parses again to the tuple it was rewritten to",
//! and "rewriting back gives back the original tuple"; under `cfg(fuzzing)` checksums are not
//! verified, so the fuzzer reaches the rewrites with random checksums.
//!
//! The translation is derived from the frame itself (reversed tuples), so the seeds of
//! `wire_parse` are valid inputs here too, and `seeds/nat/` adds ICMP errors.
//!
//! Run (from `engine/fuzz`, as for `wire_parse`):
//!
//! ```sh
//! RUSTC_BOOTSTRAP=1 cargo fuzz run nat corpus/nat seeds/nat seeds/wire_parse -- \
//!     -max_len=1536 -max_total_time=60
//! ```

#![no_main]

use engine::nat::{FiveTuple, NatFrame};
use engine::wire::EthernetAddress;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = NatFrame::new_checked(data) else {
        return;
    };
    let _ = (
        frame.vlan(),
        frame.ip_version(),
        frame.protocol(),
        frame.tcp_flags(),
    );
    let _ = (frame.icmp_type_code(), frame.src_mac(), frame.dst_mac());
    let _ = frame.verify_checksums();
    assert!(frame.l3_offset() < frame.l4_offset());
    assert!(frame.l4_offset() + frame.l4_len() <= data.len());
    let tuple = frame.tuple();
    let inner = frame.inner_tuple();
    assert!(inner.is_err() || frame.is_icmp_error());

    let mut copy = data.to_vec();
    rewrite(&mut copy, &tuple);
    if let Ok(inner) = inner {
        translate(&mut data.to_vec(), &tuple, &inner);
    }
});

/// Full NAT to the reversed tuple and back, then DNAT and SNAT one side at a time.
fn rewrite(bytes: &mut [u8], from: &FiveTuple) {
    let to = from.reversed();
    let mut f = NatFrame::new_checked(&mut bytes[..]).expect("parsed once already");
    if f.rewrite(&to).is_err() {
        return;
    }
    assert_eq!(f.tuple(), to);
    assert_eq!(reparsed(bytes), Some(to));
    let mut f = NatFrame::new_checked(&mut bytes[..]).expect("a rewrite keeps the frame valid");
    f.rewrite(from).expect("the reverse rewrite fits too");
    assert_eq!(f.tuple(), *from);
    f.rewrite_dst(to.dst_addr(), to.dst_port)
        .expect("same family");
    f.rewrite_src(to.src_addr(), to.src_port)
        .expect("same family");
    assert_eq!(f.tuple(), to);
    f.set_src_mac(EthernetAddress::BROADCAST);
    f.set_dst_mac(EthernetAddress([2, 0, 0, 0, 0, 1]));
    assert_eq!(reparsed(bytes), Some(to));
}

/// ICMP error translation to the reversed outer pair and quoted tuple, and back.
fn translate(bytes: &mut [u8], outer: &FiveTuple, inner: &FiveTuple) {
    let (outer_to, inner_to) = (outer.ips.reversed(), inner.reversed());
    let mut f = NatFrame::new_checked(&mut bytes[..]).expect("parsed once already");
    f.translate_icmp_error(&outer_to, &inner_to)
        .expect("a quote that parses translates");
    assert_eq!(f.tuple().ips, outer_to);
    assert_eq!(f.inner_tuple(), Ok(inner_to));
    f.translate_icmp_error(&outer.ips, inner)
        .expect("and translates back");
    assert_eq!(f.inner_tuple(), Ok(*inner));
    assert_eq!(reparsed(bytes).map(|t| t.ips), Some(outer.ips));
}

fn reparsed(bytes: &[u8]) -> Option<FiveTuple> {
    NatFrame::new_checked(bytes).ok().map(|f| f.tuple())
}
