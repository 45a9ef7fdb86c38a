//! Root integration tests of `nic::neigh` against the kernel's neighbour table.
//!
//! Each test builds its own pair of namespaces joined by a veth pair (unique names: prefix +
//! pid + counter): `n0` in `host` (xskd's side, 198.18.7.1/24 and 2001:2::1/64) and `n1` in
//! `peer` (198.18.7.2/24, 2001:2::2/64, both without DAD). Graded by independent witnesses:
//! the peer's MAC as `ip -j link` reports it in the peer namespace, and the host's table as
//! `ip -j -d neigh` prints it. Every wait is bounded; `Drop` removes everything even on failure.
//! Without root each test prints "skipped: needs root" and returns.
//!
//! Timing lines (`eprintln!`, shown with `--nocapture`) are measurements, taken while other
//! builds may share the machine.

use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, UdpSocket};
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use nic::neigh::{
    Created, NeighChangeKind, NeighEntry, NeighError, NeighOp, Neighbours, NudState, Removed, Resolver,
    XSKD_NEIGH_PROTOCOL,
};
use nic::netns::{format_mac, parse_mac, Netns, VethConfig, VethPair};

const HOST_IF: &str = "n0";
const PEER_IF: &str = "n1";
const HOST_V4: &str = "198.18.7.1";
const PEER_V4: &str = "198.18.7.2";
const HOST_V6: &str = "2001:2::1";
const PEER_V6: &str = "2001:2::2";
/// Addresses on the link that nobody has.
const NOBODY_V4: &str = "198.18.7.77";
const NOBODY_V6: &str = "2001:2::77";

macro_rules! require_root {
    () => {
        if std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(1) != 0 {
            eprintln!("skipped: needs root");
            return;
        }
    };
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

/// One line of `ip -j -d neigh show … nud all`, the independent view of the table.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Witness {
    dst: IpAddr,
    lladdr: Option<[u8; 6]>,
    state: String,
    managed: bool,
    protocol: Option<String>,
}

impl Witness {
    /// What `entry` should look like to `ip`.
    fn of(entry: &NeighEntry) -> Witness {
        Witness {
            dst: entry.ip,
            lladdr: entry.mac,
            state: entry.state.to_string(),
            managed: entry.managed,
            protocol: (entry.protocol != 0).then(|| entry.protocol.to_string()),
        }
    }
}

/// Two namespaces joined by a veth pair, addressed for IPv4 and IPv6.
struct Lab {
    /// Held for its `Drop` (deletes the pair before the namespaces go).
    _link: VethPair,
    host: Netns,
    peer: Netns,
    /// Index of `n0` in `host`, as `ip -j link` reports it.
    ifindex: u32,
}

impl Lab {
    fn new(prefix: &str) -> Lab {
        let host = Netns::new(&format!("{prefix}-h")).expect("create host netns");
        let peer = Netns::new(&format!("{prefix}-p")).expect("create peer netns");
        // No DAD, set before the interfaces exist so their link-local addresses skip it too:
        // while a link-local address is tentative, NDP resolution on the link stalls for ~2 s.
        for ns in [&host, &peer] {
            ns.sysctl("net/ipv6/conf/default/accept_dad", "0").expect("accept_dad");
        }
        let cfg = VethConfig {
            addr_a: Some(format!("{HOST_V4}/24")),
            addr_b: Some(format!("{PEER_V4}/24")),
            ..VethConfig::default()
        };
        let link = VethPair::new(&host, HOST_IF, &peer, PEER_IF, &cfg).expect("create veth pair");
        for (ns, dev, addr) in [(&host, HOST_IF, HOST_V6), (&peer, PEER_IF, PEER_V6)] {
            ns.ip(&["addr", "add", &format!("{addr}/64"), "dev", dev, "nodad"]).expect("ipv6 address");
        }
        let index = link_json(&host, HOST_IF)["ifindex"].as_u64().expect("ifindex");
        Lab { _link: link, host, peer, ifindex: u32::try_from(index).expect("32-bit ifindex") }
    }

    /// Index of a host interface, as `ip -j link` reports it.
    fn ifindex_of(&self, dev: &str) -> u32 {
        let index = link_json(&self.host, dev)["ifindex"].as_u64().expect("ifindex");
        u32::try_from(index).expect("32-bit ifindex")
    }

    /// The peer's MAC as the peer namespace's `ip -j link` reports it.
    fn peer_mac(&self) -> [u8; 6] {
        let v = link_json(&self.peer, PEER_IF);
        parse_mac(v["address"].as_str().expect("address")).expect("mac")
    }

    /// Opens a `Neighbours` socket in the host namespace.
    fn neighbours(&self) -> Neighbours {
        self.host.run_in(|| Neighbours::open().map_err(io::Error::other)).expect("open neighbours in host netns")
    }

    /// Starts a `Resolver` in the host namespace.
    fn resolver(&self, targets: &[(u32, IpAddr)]) -> Result<Resolver, NeighError> {
        self.host.run_in(|| Ok(Resolver::new(targets))).expect("thread in host netns")
    }

    /// The host's table for `dev`, NOARP entries included, as `ip` prints it.
    fn witness(&self, dev: &str) -> Vec<Witness> {
        let out = self.host.ip(&["-j", "-d", "neigh", "show", "dev", dev, "nud", "all"]).expect("ip neigh");
        let v: serde_json::Value = serde_json::from_str(&out).expect("ip -j neigh json");
        v.as_array()
            .expect("array")
            .iter()
            .map(|e| Witness {
                dst: e["dst"].as_str().expect("dst").parse().expect("dst address"),
                lladdr: e["lladdr"].as_str().map(|m| parse_mac(m).expect("lladdr")),
                state: e["state"][0].as_str().unwrap_or("NONE").to_string(),
                managed: e.get("managed").is_some(),
                protocol: e["protocol"].as_str().map(str::to_string),
            })
            .collect()
    }

    /// The witness line for `addr` on `n0`, if any.
    fn witness_of(&self, addr: IpAddr) -> Option<Witness> {
        self.witness(HOST_IF).into_iter().find(|w| w.dst == addr)
    }
}

fn link_json(ns: &Netns, dev: &str) -> serde_json::Value {
    let out = ns.ip(&["-j", "link", "show", "dev", dev]).expect("ip -j link");
    let v: serde_json::Value = serde_json::from_str(&out).expect("ip -j link json");
    v[0].clone()
}

/// Polls `f` every `step` until it returns `Some` or `limit` passes; returns the value and when.
fn poll<T>(limit: Duration, step: Duration, mut f: impl FnMut() -> Option<T>) -> Option<(T, Duration)> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some((v, start.elapsed()));
        }
        if start.elapsed() >= limit {
            return None;
        }
        std::thread::sleep(step);
    }
}

fn resolves_to_the_peer_mac(prefix: &str, peer: &str) {
    let lab = Lab::new(prefix);
    let addr = ip(peer);
    let want = lab.peer_mac();
    let mut nb = lab.neighbours();
    let start = Instant::now();
    assert_eq!(nb.ensure_managed(lab.ifindex, addr).expect("ensure_managed"), Created::New);
    let (mac, _) =
        poll(Duration::from_secs(1), Duration::from_millis(1), || nb.lookup(lab.ifindex, addr).expect("lookup"))
            .expect("resolved within 1 s");
    let took = start.elapsed();
    eprintln!("{peer}: managed entry created and resolved in {took:?}");
    assert_eq!(mac, want, "the MAC is the peer's, as its own namespace reports it");

    let entry = nb.get(lab.ifindex, addr).expect("get").expect("entry");
    assert!(entry.managed && entry.protocol == XSKD_NEIGH_PROTOCOL, "{entry:?}");
    let w = lab.witness_of(addr).expect("ip neigh lists the entry");
    assert_eq!(w.lladdr, Some(want));
    assert!(w.managed, "ip -d neigh shows `managed`: {w:?}");
    assert_eq!(w.protocol.as_deref(), Some("88"));
    assert!(matches!(w.state.as_str(), "REACHABLE" | "STALE" | "DELAY"), "{w:?}");

    assert_eq!(nb.remove_managed(lab.ifindex, addr).expect("remove"), Removed::Deleted);
    assert_eq!(lab.witness_of(addr), None, "ip neigh no longer lists it");
    assert_eq!(nb.remove_managed(lab.ifindex, addr).expect("remove again"), Removed::Absent);
}

#[test]
fn managed_entry_resolves_to_the_peer_mac_v4() {
    require_root!();
    resolves_to_the_peer_mac("nb-res4", PEER_V4);
}

#[test]
fn managed_entry_resolves_to_the_peer_mac_v6() {
    require_root!();
    resolves_to_the_peer_mac("nb-res6", PEER_V6);
}

#[test]
fn an_address_nobody_has_is_reported_unresolved() {
    require_root!();
    let lab = Lab::new("nb-none");
    let targets = [(lab.ifindex, ip(NOBODY_V4)), (lab.ifindex, ip(NOBODY_V6))];
    let mut r = lab.resolver(&targets).expect("resolver");
    let res = r.wait(Duration::from_millis(300)).expect("wait");
    assert!(res.resolved.is_empty(), "{res:?}");
    assert_eq!(res.unresolved.len(), 2);
    // The kernel gives up after 3 probes 1 s apart (FAILED), and its managed work retries every
    // 5 s (INCOMPLETE again). No MAC may be reported at any point.
    let mut failed = BTreeSet::new();
    let start = Instant::now();
    while failed.len() < 2 && start.elapsed() < Duration::from_secs(8) {
        let changes = r.refresh().expect("refresh");
        assert!(changes.is_empty(), "no MAC appears for an address nobody has: {changes:?}");
        for u in r.resolution().unresolved {
            let state = u.state.expect("the entry exists");
            assert!(matches!(state, NudState::Incomplete | NudState::Failed), "{u:?}");
            assert_eq!(r.neighbours().lookup(u.ifindex, u.ip).expect("lookup"), None);
            if state == NudState::Failed {
                if failed.insert(u.ip) {
                    eprintln!("{}: FAILED after {:?}", u.ip, start.elapsed());
                }
                if let Some(w) = lab.witness_of(u.ip) {
                    assert!(w.lladdr.is_none() && w.managed, "{w:?}");
                    assert!(matches!(w.state.as_str(), "FAILED" | "INCOMPLETE"), "{w:?}");
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(failed.len(), 2, "both entries reached FAILED");
}

#[test]
fn broadcast_and_multicast_addresses_are_refused_and_leave_nothing() {
    require_root!();
    let lab = Lab::new("nb-bcast");
    let mut nb = lab.neighbours();
    for addr in ["198.18.7.255", "239.1.2.3", "ff02::1:2"] {
        let err = nb.ensure_managed(lab.ifindex, ip(addr)).expect_err("a NOARP address");
        assert!(matches!(err, NeighError::NotResolvable { .. }), "{addr}: {err}");
        assert!(err.to_string().contains(&format!("ifindex {} ({HOST_IF})", lab.ifindex)), "{err}");
        assert_eq!(lab.witness_of(ip(addr)), None, "{addr}: the NOARP entry was deleted again");
    }
    // A resolver whose list holds such an address fails, and removes what it had created.
    let err = lab.resolver(&[(lab.ifindex, ip(PEER_V4)), (lab.ifindex, ip("198.18.7.255"))]).expect_err("broadcast");
    assert!(matches!(err, NeighError::NotResolvable { .. }), "{err}");
    assert_eq!(lab.witness_of(ip(PEER_V4)), None, "the entry created before the failure is gone");
    // A namespace that never had an IPv4 address (not even 127.0.0.1: `lo` stays down) has no
    // local routing table, and the kernel then classifies every IPv4 neighbour as broadcast
    // (NOARP, ff:ff:ff:ff:ff:ff) for good. `Netns::new` brings `lo` up, so this one is raw.
    let bare = RawNetns::new("nb-bare");
    lab.peer.ip(&["link", "add", "b1", "type", "veth", "peer", "name", "b0", "netns", &bare.0]).expect("veth");
    let run = |args: &[&str]| {
        let out = std::process::Command::new("ip").args(["-n", &bare.0]).args(args).output().expect("ip");
        assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(&["link", "set", "b0", "up"]);
    let v: serde_json::Value = serde_json::from_str(&run(&["-j", "link", "show", "dev", "b0"])).expect("json");
    let b0 = u32::try_from(v[0]["ifindex"].as_u64().expect("ifindex")).expect("ifindex");
    let enter = || nic::netns::enter_by_name(&bare.0);
    let mut bare_nb = std::thread::scope(|s| {
        s.spawn(|| {
            let _guard = enter().expect("enter raw netns");
            Neighbours::open().expect("neighbours")
        })
        .join()
        .expect("thread")
    });
    let err = bare_nb.ensure_managed(b0, ip("198.18.9.2")).expect_err("no IPv4 address in the namespace");
    assert!(matches!(err, NeighError::NotResolvable { mac: Some(m), .. } if m == [0xff; 6]), "{err}");
    let left = run(&["-j", "neigh", "show", "dev", "b0", "nud", "all"]);
    assert!(!left.contains("198.18.9.2"), "the NOARP entry was deleted again: {left}");
}

/// A namespace made with plain `ip netns add` (loopback down, no address at all); deleted on
/// drop.
struct RawNetns(String);

impl RawNetns {
    fn new(prefix: &str) -> RawNetns {
        let name = format!("{prefix}-{}", std::process::id());
        let ok = std::process::Command::new("ip").args(["netns", "add", &name]).status().expect("ip netns add");
        assert!(ok.success(), "ip netns add {name}");
        RawNetns(name)
    }
}

impl Drop for RawNetns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Waits until `addr` resolves on the host and is at least `age` old (the kernel ignores an
/// ARP update within `locktime`, 1 s, of the last one).
fn resolve_and_age(lab: &Lab, r: &mut Resolver, addr: IpAddr, age: Duration) -> [u8; 6] {
    let res = r.wait(Duration::from_secs(1)).expect("wait");
    let mac = res.resolved.iter().find(|x| x.ip == addr).expect("resolved").mac;
    assert_eq!(mac, lab.peer_mac());
    std::thread::sleep(age);
    mac
}

#[test]
fn peer_mac_change_announced_by_the_peer_is_seen_at_once() {
    require_root!();
    let lab = Lab::new("nb-garp");
    // arp_notify / ndisc_notify: the peer announces a new MAC (gratuitous ARP, unsolicited NA).
    lab.peer.sysctl(&format!("net/ipv4/conf/{PEER_IF}/arp_notify"), "1").expect("arp_notify");
    lab.peer.sysctl(&format!("net/ipv6/conf/{PEER_IF}/ndisc_notify"), "1").expect("ndisc_notify");
    let targets = [(lab.ifindex, ip(PEER_V4)), (lab.ifindex, ip(PEER_V6))];
    let mut r = lab.resolver(&targets).expect("resolver");
    let old = resolve_and_age(&lab, &mut r, ip(PEER_V4), Duration::from_millis(1200));
    let new = [0x02, 0, 0, 0, 0x07, 0x02];
    lab.peer.ip(&["link", "set", PEER_IF, "address", &format_mac(&new)]).expect("change peer mac");
    assert_eq!(lab.peer_mac(), new);
    let start = Instant::now();
    let mut seen = BTreeSet::new();
    while seen.len() < 2 && start.elapsed() < Duration::from_secs(3) {
        for c in r.refresh().expect("refresh") {
            assert_eq!(c.kind, NeighChangeKind::MacChanged { old, new }, "{c:?}");
            assert!(seen.insert(c.ip));
            eprintln!("{}: announced MAC change seen by refresh after {:?}", c.ip, start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(seen.len(), 2, "both families saw the new MAC");
    assert_eq!(lab.witness_of(ip(PEER_V4)).expect("entry").lladdr, Some(new));
}

/// The kernel re-learns a silently changed MAC only through its own timers: REACHABLE ages out,
/// DELAY, PROBE (unicast to the old MAC, unanswered), FAILED, and the managed retry broadcasts.
/// The per-interface timers are shortened here (test namespace only) so the test stays short;
/// `peer_mac_change_with_default_timers` measures the default case.
fn silent_mac_change(prefix: &str, shorten: bool, limit: Duration) {
    let lab = Lab::new(prefix);
    if shorten {
        for (k, v) in [("base_reachable_time_ms", "1000"), ("delay_first_probe_time", "1")] {
            lab.host.sysctl(&format!("net/ipv4/neigh/{HOST_IF}/{k}"), v).expect("neigh sysctl");
        }
    }
    let addr = ip(PEER_V4);
    let mut r = lab.resolver(&[(lab.ifindex, addr)]).expect("resolver");
    let old = resolve_and_age(&lab, &mut r, addr, Duration::ZERO);
    let new = [0x02, 0, 0, 0, 0x07, 0x12];
    lab.peer.ip(&["link", "set", PEER_IF, "address", &format_mac(&new)]).expect("change peer mac");
    let start = Instant::now();
    let (mut lost, mut learned) = (None, None);
    while learned.is_none() && start.elapsed() < limit {
        for c in r.refresh().expect("refresh") {
            let t = start.elapsed();
            match c.kind {
                NeighChangeKind::Unresolved { old: o, state } => {
                    assert_eq!(o, old);
                    assert!(state.is_some_and(|s| !s.has_valid_lladdr()), "{c:?}");
                    lost.get_or_insert(t);
                }
                NeighChangeKind::Resolved { mac } | NeighChangeKind::MacChanged { new: mac, .. } => {
                    assert_eq!(mac, new, "{c:?}");
                    learned = Some(t);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let learned = learned.expect("the new MAC was learned");
    eprintln!(
        "silent MAC change ({} timers): old MAC reported until {lost:?}, new MAC from {learned:?}",
        if shorten { "shortened" } else { "default" }
    );
    assert_eq!(r.mac(lab.ifindex, addr), Some(new));
    assert_eq!(lab.witness_of(addr).expect("entry").lladdr, Some(new));
}

#[test]
fn peer_mac_change_is_seen_by_refresh() {
    require_root!();
    silent_mac_change("nb-mac", true, Duration::from_secs(20));
}

#[test]
#[ignore = "takes up to a minute: run with --ignored to measure the default timers"]
fn peer_mac_change_with_default_timers() {
    require_root!();
    silent_mac_change("nb-macdef", false, Duration::from_secs(90));
}

#[test]
fn static_and_foreign_entries_are_left_alone_and_learned_ones_taken_over() {
    require_root!();
    let lab = Lab::new("nb-keep");
    let h = |args: &[&str]| lab.host.ip(args).expect("ip neigh");
    h(&["neigh", "add", "198.18.7.9", "dev", HOST_IF, "lladdr", "02:00:00:00:07:09", "nud", "permanent"]);
    h(&["neigh", "add", "2001:2::9", "dev", HOST_IF, "lladdr", "02:00:00:00:07:19", "nud", "permanent"]);
    h(&["neigh", "add", "198.18.7.10", "dev", HOST_IF, "managed"]); // someone else's managed entry
                                                                    // A learned entry: the host sends a datagram to the peer, the kernel resolves it.
    lab.host
        .run_in(|| UdpSocket::bind((ip(HOST_V4), 0))?.send_to(b"learn", (ip(PEER_V4), 9)))
        .expect("udp to the peer");
    poll(Duration::from_secs(1), Duration::from_millis(5), || {
        lab.witness_of(ip(PEER_V4)).filter(|w| w.lladdr.is_some())
    })
    .expect("learned entry");
    let addrs = ["198.18.7.9", "2001:2::9", "198.18.7.10", PEER_V4].map(ip);
    let before: Vec<Witness> = addrs.iter().map(|a| lab.witness_of(*a).expect("entry")).collect();
    assert!(!before[3].managed, "the ping left a learned entry: {:?}", before[3]);

    let mut nb = lab.neighbours();
    for (addr, w) in addrs.iter().zip(&before).take(3) {
        match nb.ensure_managed(lab.ifindex, *addr).expect("ensure_managed") {
            Created::Existing(e) => {
                assert_eq!((e.ip, e.mac, e.managed), (w.dst, w.lladdr, w.managed), "{e:?}");
            }
            other => panic!("{addr}: {other:?}"),
        }
        assert!(matches!(nb.remove_managed(lab.ifindex, *addr).expect("remove"), Removed::NotOurs(_)));
    }
    // The learned entry is taken over: nothing would confirm it once xskd's frames bypass the
    // kernel. It becomes xskd's managed entry (resolved again at once) and is removed with it.
    let peer = ip(PEER_V4);
    assert_eq!(nb.ensure_managed(lab.ifindex, peer).expect("take over"), Created::New);
    let w = lab.witness_of(peer).expect("managed now");
    assert!(w.managed && w.protocol.as_deref() == Some("88"), "{w:?}");
    poll(Duration::from_secs(1), Duration::from_millis(5), || {
        lab.witness_of(peer).filter(|w| w.lladdr == before[3].lladdr)
    })
    .expect("resolved again to the same MAC");
    assert_eq!(nb.remove_managed(lab.ifindex, peer).expect("remove"), Removed::Deleted);
    for (addr, w) in addrs.iter().zip(&before).take(3) {
        let now = lab.witness_of(*addr).expect("still there");
        // A learned entry may age (REACHABLE → STALE) meanwhile; nothing else may change.
        assert_eq!((&now.lladdr, now.managed, &now.protocol), (&w.lladdr, w.managed, &w.protocol), "{addr}");
        if w.state == "PERMANENT" {
            assert_eq!(now.state, "PERMANENT");
        }
    }
}

#[test]
fn an_entry_left_by_a_killed_xskd_is_adopted_and_removed() {
    require_root!();
    let lab = Lab::new("nb-adopt");
    lab.host.ip(&["neigh", "add", PEER_V4, "dev", HOST_IF, "managed", "protocol", "88"]).expect("leftover");
    let mut nb = lab.neighbours();
    assert_eq!(nb.ensure_managed(lab.ifindex, ip(PEER_V4)).expect("ensure"), Created::Adopted);
    assert_eq!(nb.remove_managed(lab.ifindex, ip(PEER_V4)).expect("remove"), Removed::Deleted);
    assert_eq!(lab.witness_of(ip(PEER_V4)), None);
}

/// The entries of our address ranges in the witness, as a set.
fn ours(ws: &[Witness]) -> BTreeSet<IpAddr> {
    ws.iter()
        .map(|w| w.dst)
        .filter(|a| match a {
            IpAddr::V4(v4) => v4.octets()[..2] == [198, 18],
            IpAddr::V6(v6) => v6.segments()[..2] == [0x2001, 2],
        })
        .collect()
}

#[test]
fn remove_managed_removes_exactly_what_was_created() {
    require_root!();
    let lab = Lab::new("nb-rm");
    let h = |args: &[&str]| lab.host.ip(args).expect("ip neigh");
    h(&["neigh", "add", "198.18.7.9", "dev", HOST_IF, "lladdr", "02:00:00:00:07:09", "nud", "permanent"]);
    h(&["neigh", "add", "198.18.7.10", "dev", HOST_IF, "managed"]);
    let mut nb = lab.neighbours();
    let created = [PEER_V4, NOBODY_V4, PEER_V6, NOBODY_V6].map(ip);
    for a in created {
        assert_eq!(nb.ensure_managed(lab.ifindex, a).expect("ensure"), Created::New, "{a}");
    }
    let all: BTreeSet<IpAddr> = created.iter().copied().chain([ip("198.18.7.9"), ip("198.18.7.10")]).collect();
    assert_eq!(ours(&lab.witness(HOST_IF)), all);
    for a in created {
        assert_eq!(nb.remove_managed(lab.ifindex, a).expect("remove"), Removed::Deleted, "{a}");
    }
    for a in ["198.18.7.9", "198.18.7.10"].map(ip) {
        assert!(matches!(nb.remove_managed(lab.ifindex, a).expect("remove"), Removed::NotOurs(_)), "{a}");
    }
    let left: BTreeSet<IpAddr> = ["198.18.7.9", "198.18.7.10"].map(ip).into_iter().collect();
    assert_eq!(ours(&lab.witness(HOST_IF)), left, "exactly the foreign entries remain");
}

#[test]
fn dump_matches_ip_neigh() {
    require_root!();
    let lab = Lab::new("nb-dump");
    let h = |args: &[&str]| lab.host.ip(args).expect("ip");
    h(&["neigh", "add", "198.18.7.9", "dev", HOST_IF, "lladdr", "02:00:00:00:07:09", "nud", "permanent"]);
    h(&["neigh", "add", "198.18.7.11", "dev", HOST_IF, "lladdr", "02:00:00:00:07:0b", "nud", "stale"]);
    h(&["neigh", "add", "2001:2::9", "dev", HOST_IF, "lladdr", "02:00:00:00:07:19", "nud", "permanent"]);
    // A second interface whose entries must not show up in n0's dump: 600 entries, more than
    // one netlink datagram holds, so the dump comes in several parts.
    let cfg = VethConfig { addr_a: Some("198.18.8.1/22".into()), disable_ipv6: true, ..VethConfig::default() };
    let _second = VethPair::new(&lab.host, "n2", &lab.peer, "n3", &cfg).expect("second veth pair");
    let batch: String = (0..600)
        .map(|i| {
            format!(
                "neigh add 198.18.{}.{} dev n2 lladdr 02:00:00:00:{:02x}:{:02x} nud permanent\n",
                9 + i / 250,
                1 + i % 250,
                i / 256,
                i % 256
            )
        })
        .collect();
    let path = std::env::temp_dir().join(format!("nb-dump-{}.batch", std::process::id()));
    std::fs::write(&path, batch).expect("batch file");
    let out = lab.host.exec(&["ip", "-batch", path.to_str().expect("utf-8 path")]).expect("ip -batch");
    let _ = std::fs::remove_file(&path);
    assert!(out.status.success(), "ip -batch: {}", String::from_utf8_lossy(&out.stderr));

    let mut nb = lab.neighbours();
    for a in [PEER_V4, NOBODY_V4, PEER_V6] {
        assert_eq!(nb.ensure_managed(lab.ifindex, ip(a)).expect("ensure"), Created::New);
    }
    poll(Duration::from_secs(1), Duration::from_millis(5), || nb.lookup(lab.ifindex, ip(PEER_V6)).expect("lookup"))
        .expect("v6 resolved");
    // The two reads are not atomic: states may move between them (NDP on link-local addresses,
    // probes). Retry a few times until they agree.
    let agreed = poll(Duration::from_secs(2), Duration::from_millis(50), || {
        let mut got: Vec<Witness> = nb.dump(lab.ifindex).expect("dump").iter().map(Witness::of).collect();
        let mut want = lab.witness(HOST_IF);
        got.sort();
        want.sort();
        (got == want).then_some(got)
    });
    let (entries, _) = agreed.expect("dump and ip neigh agree");
    assert!(entries.len() >= 6, "{entries:?}");
    let mut n2: Vec<Witness> = nb.dump(lab.ifindex_of("n2")).expect("dump n2").iter().map(Witness::of).collect();
    let mut want = lab.witness("n2");
    n2.sort();
    want.sort();
    assert_eq!(n2.len(), 600);
    assert_eq!(n2, want);
}

#[test]
fn resolver_recreates_flushed_entries_and_cleans_up_on_drop() {
    require_root!();
    let lab = Lab::new("nb-resolver");
    lab.host
        .ip(&["neigh", "add", "198.18.7.9", "dev", HOST_IF, "lladdr", "02:00:00:00:07:09", "nud", "permanent"])
        .expect("static entry");
    let (v4, v6, nobody, stat) = (ip(PEER_V4), ip(PEER_V6), ip(NOBODY_V4), ip("198.18.7.9"));
    let peer = lab.peer_mac();
    let mut r = lab.resolver(&[(lab.ifindex, v4), (lab.ifindex, v6), (lab.ifindex, stat)]).expect("resolver");
    let start = Instant::now();
    let res = r.wait(Duration::from_secs(2)).expect("wait");
    eprintln!("resolver: 3 targets resolved after {:?}", start.elapsed());
    assert!(res.unresolved.is_empty(), "{res:?}");
    let macs: Vec<_> = res.resolved.iter().map(|x| (x.ip, x.mac)).collect();
    assert_eq!(macs, vec![(v4, peer), (v6, peer), (stat, [2, 0, 0, 0, 7, 9])]);
    drop(r);
    assert_eq!(ours(&lab.witness(HOST_IF)), [stat].into_iter().collect(), "only the static entry remains");

    let mut r = lab.resolver(&[(lab.ifindex, v4), (lab.ifindex, nobody), (lab.ifindex, stat)]).expect("resolver");
    let res = r.wait(Duration::from_millis(500)).expect("wait");
    assert_eq!(res.unresolved.iter().map(|u| u.ip).collect::<Vec<_>>(), vec![nobody]);
    // Carrier loss flushes every entry that is not PERMANENT, managed ones included.
    lab.peer.ip(&["link", "set", PEER_IF, "down"]).expect("peer down");
    let (changes, _) = poll(Duration::from_secs(2), Duration::from_millis(10), || {
        let c = r.refresh().expect("refresh");
        (!c.is_empty()).then_some(c)
    })
    .expect("the flush is seen");
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].ip, v4);
    assert!(matches!(changes[0].kind, NeighChangeKind::Unresolved { old, .. } if old == peer), "{changes:?}");
    for a in [v4, nobody] {
        let w = lab.witness_of(a).expect("recreated");
        assert!(w.managed && w.protocol.as_deref() == Some("88"), "{w:?}");
    }
    assert_eq!(lab.witness_of(stat).expect("kept").state, "PERMANENT");
    lab.peer.ip(&["link", "set", PEER_IF, "up"]).expect("peer up");
    let start = Instant::now();
    let (mac, took) = poll(Duration::from_secs(15), Duration::from_millis(20), || {
        r.refresh().expect("refresh").into_iter().find_map(|c| match c.kind {
            NeighChangeKind::Resolved { mac } if c.ip == v4 => Some(mac),
            _ => None,
        })
    })
    .expect("resolved again after carrier returned");
    eprintln!("resolver: resolved again {took:?} after the peer came back ({:?})", start.elapsed());
    assert_eq!(mac, peer);
    r.close().expect("close");
    assert_eq!(ours(&lab.witness(HOST_IF)), [stat].into_iter().collect(), "close removed what it created");
}

#[test]
fn errors_name_the_operation_interface_and_address() {
    require_root!();
    let lab = Lab::new("nb-err");
    let mut nb = lab.neighbours();
    let err = nb.ensure_managed(999_999, ip(PEER_V4)).expect_err("no such interface");
    assert_eq!(err.errno(), Some(libc::ENODEV), "{err}");
    assert_eq!(err.op(), Some(NeighOp::Create));
    let s = err.to_string();
    assert!(s.contains("ifindex 999999") && s.contains(PEER_V4), "{s}");
    // IPv6 disabled on an interface: the kernel refuses, with its own explanation.
    lab.host.sysctl(&format!("net/ipv6/conf/{HOST_IF}/disable_ipv6"), "1").expect("disable ipv6");
    let err = nb.ensure_managed(lab.ifindex, ip(PEER_V6)).expect_err("ipv6 disabled");
    let s = err.to_string();
    assert!(s.contains(&format!("ifindex {} ({HOST_IF})", lab.ifindex)) && s.contains(PEER_V6), "{s}");
    assert!(err.errno().is_some(), "{s}");
    eprintln!("error text: {s}");
}
