//! Tier-2 tests (root): the app model on real sockets — an app instance declared once with
//! `[[app]]`, running as one shard per lcore that owns all of the instance's queues there.
//!
//! * one shard owning a queue of each DUT port (one lcore): a relay without `peer` sends each
//!   burst back out of the port it came in on, so `macswap` makes it a reflector on both ports
//!   at once — graded byte for byte by `tcpdump` on the generator and sink interfaces;
//! * one instance on two lcores (two shards, veths with two queues): the example
//!   `config/examples/relay-two-shards.toml` as a user would run it, both shards forwarding —
//!   graded by kernel sockets and by veth's own per-queue XDP counters.
//!
//! Each test builds its own namespaces (unique names, 198.18.0.0/15 only), is bounded in time
//! and tears everything down through guards.

mod common;

use std::net::{SocketAddr, SocketAddrV4};
use std::time::Duration;

use apps::params::fmt_mac;
use apps::udpflow::{self, Receiver, SendSpec};
use common::{assert_all_intact, ethtool_stats, link_stats, Bed, Capture, EngineOpts};
use nic::netns::{Netns, Topology, TopologyConfig};

const COUNT: u64 = 500;

fn v4(a: std::net::Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(a, port))
}

fn send(ns: &Netns, src: SocketAddr, dst: SocketAddr, flow: u8, cpu: Option<usize>) -> u64 {
    let spec = SendSpec {
        src,
        dst,
        flow,
        payload: udpflow::payload_for_frame(200),
        count: Some(COUNT),
        duration: Duration::from_secs(20),
        rate_pps: Some(10_000),
        cpu,
    };
    udpflow::send(ns, &spec).unwrap().sent
}

/// Frame `out` as the reflector sends it back: destination and source MACs exchanged.
fn swapped(out: &[u8]) -> Vec<u8> {
    let mut f = out.to_vec();
    f[..6].copy_from_slice(&out[6..12]);
    f[6..12].copy_from_slice(&out[..6]);
    f
}

#[test]
fn one_shard_owns_a_queue_of_each_port_and_answers_each_on_its_own() {
    need_root!();
    need_tool!("tcpdump");
    let mut bed = Bed::new("xareflect", EngineOpts { mode: "macswap", ..Default::default() });
    let lcore = Bed::lcore();
    let config = format!(
        "{}{}{}[[app]]\nname = \"r\"\nkind = \"relay\"\nparams = {{ mode = \"macswap\" }}\n\
         [[queue]]\nport = \"d0\"\nlcore = {lcore}\napp = \"r\"\n[[queue]]\nport = \"d1\"\nlcore = {lcore}\napp = \"r\"\n",
        bed.engine_sections(),
        bed.port_section("d0", &bed.opts.claim_d0),
        bed.port_section("d1", &bed.opts.claim_d1),
    );
    bed.start_with(&config);
    let t = &bed.topo;
    let caps = [
        Capture::start(t.generator(), "g0", "out", &bed.dir.path("g0-out.pcap")),
        Capture::start(t.generator(), "g0", "in", &bed.dir.path("g0-in.pcap")),
        Capture::start(t.sink(), "s0", "out", &bed.dir.path("s0-out.pcap")),
        Capture::start(t.sink(), "s0", "in", &bed.dir.path("s0-in.pcap")),
    ];
    let rx_before = [link_stats(t.generator(), "g0").rx_packets, link_stats(t.sink(), "s0").rx_packets];
    // Kernel sockets send through the DUT as usual; the shard reflects them, each on the port it
    // came in on. (The reflected datagrams are not for the sender's host; its kernel drops them
    // silently, after the capture saw them.)
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| send(t.generator(), v4(Topology::GEN_ADDR, 9600), v4(Topology::SINK_ADDR, 9601), 1, None));
        let b = s.spawn(|| send(t.sink(), v4(Topology::SINK_ADDR, 9700), v4(Topology::GEN_ADDR, 9701), 2, None));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!((a, b), (COUNT, COUNT));
    let [g_out, g_in, s_out, s_in] = caps.map(Capture::finish);
    for (side, out, back) in [("g0", &g_out, &g_in), ("s0", &s_out, &s_in)] {
        assert_eq!(out.len() as u64, COUNT, "{side}: frames sent");
        assert_eq!(back.len() as u64, COUNT, "{side}: frames reflected back");
        for (i, (o, b)) in out.iter().zip(back.iter()).enumerate() {
            assert_eq!(b, &swapped(o), "{side}: frame {i} came back with only its MACs swapped, in order");
        }
    }
    assert_eq!(link_stats(t.generator(), "g0").rx_packets - rx_before[0], COUNT, "g0 driver RX");
    assert_eq!(link_stats(t.sink(), "s0").rx_packets - rx_before[1], COUNT, "s0 driver RX");
    let rep = bed.stop();
    // One lcore, one shard of "r" owning both queues.
    let l = &rep["lcores"];
    assert_eq!(l.as_array().unwrap().len(), 1, "{l}");
    let apps: Vec<&str> = l[0]["apps"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(apps, ["r"], "one shard");
    for q in l[0]["queues"].as_array().unwrap() {
        assert_eq!(q["app"], "r", "{q}");
        assert_eq!(q["rx_packets"], COUNT, "{q}");
        assert_eq!(q["tx_packets"], COUNT, "{q}: back out of the port it came in on");
    }
}

#[test]
fn one_instance_on_two_lcores_forwards_on_both_shards() {
    need_root!();
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        eprintln!("skipped: needs 2 CPUs (one lcore per queue)");
        return;
    }
    let cfg = TopologyConfig { queues: Some(2), ..Default::default() };
    let mut bed = Bed::with_topology("xashard", EngineOpts::default(), &cfg);
    let t = &bed.topo;
    // The example as a user runs it, on this topology's interfaces (ports xd0/xd1 on d0/d1).
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/examples/relay-two-shards.toml");
    let config = std::fs::read_to_string(example)
        .unwrap()
        .replace("name = \"xd0\"\n", "name = \"xd0\"\niface = \"d0\"\n")
        .replace("name = \"xd1\"\n", "name = \"xd1\"\niface = \"d1\"\n");
    // io mode leaves the MACs alone: each end addresses the other end's MAC.
    let (g0, s0) = (fmt_mac(&t.gen_mac()), fmt_mac(&t.sink_mac()));
    t.generator().ip(&["neigh", "replace", "198.18.0.2", "lladdr", &s0, "dev", "g0", "nud", "permanent"]).unwrap();
    t.sink().ip(&["neigh", "replace", "198.19.0.2", "lladdr", &g0, "dev", "s0", "nud", "permanent"]).unwrap();
    // XPS: a sender on CPU c transmits on queue c, which lands on the DUT's RX queue c.
    for (ns, dev) in [(t.generator(), "g0"), (t.sink(), "s0")] {
        for q in 0..2 {
            let cmd = format!("echo {} > /sys/class/net/{dev}/queues/tx-{q}/xps_cpus", 1 << q);
            let out = ns.exec(&["sh", "-c", &cmd]).unwrap();
            assert!(out.status.success(), "{cmd}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    bed.start_with(&config);
    let t = &bed.topo;
    // Four flows: each direction once from each CPU.
    let payload = udpflow::payload_for_frame(200);
    let flows = [
        (t.generator(), t.sink(), Topology::GEN_ADDR, Topology::SINK_ADDR, 0usize, 10u8),
        (t.generator(), t.sink(), Topology::GEN_ADDR, Topology::SINK_ADDR, 1, 11),
        (t.sink(), t.generator(), Topology::SINK_ADDR, Topology::GEN_ADDR, 0, 12),
        (t.sink(), t.generator(), Topology::SINK_ADDR, Topology::GEN_ADDR, 1, 13),
    ];
    let port = |flow: u8| 9800 + u16::from(flow);
    let rx: Vec<Receiver> = flows
        .iter()
        .map(|&(_, to, _, dst, _, flow)| {
            Receiver::start(to, SocketAddrV4::new(dst, port(flow)), flow, payload, None).unwrap()
        })
        .collect();
    std::thread::scope(|s| {
        let hs: Vec<_> = flows
            .iter()
            .map(|&(from, _, src, dst, cpu, flow)| {
                s.spawn(move || send(from, v4(src, port(flow) + 100), v4(dst, port(flow)), flow, Some(cpu)))
            })
            .collect();
        for h in hs {
            assert_eq!(h.join().unwrap(), COUNT);
        }
    });
    for (r, f) in rx.into_iter().zip(flows) {
        assert_all_intact(&r.finish(Duration::from_millis(200)).unwrap(), COUNT, &format!("flow {}", f.5));
    }
    // veth's own per-queue counters: each DUT port received COUNT frames on each of its two
    // queues, and its XDP program redirected them all — so both shards of each instance had
    // work, and (every datagram being accounted for above) forwarded it.
    for dev in ["d0", "d1"] {
        let e = ethtool_stats(t.dut(), dev);
        for q in 0..2 {
            assert_eq!(e[&format!("rx_queue_{q}_xdp_redirect")], COUNT, "{dev} queue {q}: {e:?}");
        }
    }
    let rep = bed.stop();
    // Two lcores, each running a shard of both instances; the queues' counts match the kernel's.
    let lcores = rep["lcores"].as_array().unwrap();
    assert_eq!(lcores.len(), 2);
    for l in lcores {
        let mut apps: Vec<&str> = l["apps"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
        apps.sort_unstable();
        assert_eq!(apps, ["east", "west"], "{}", l["name"]);
        for q in l["queues"].as_array().unwrap() {
            assert_eq!(q["rx_packets"], COUNT, "{q}");
            assert_eq!(q["tx_packets"], COUNT, "{q}");
        }
        assert_eq!(l["handoff_in"], 0, "no frame crossed cores");
    }
}
