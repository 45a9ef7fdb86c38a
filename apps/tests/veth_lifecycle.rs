//! Tier-2 tests (root): the daemon's life cycle on real veths — SIGKILL under load and restart,
//! again and again, and what a run leaves behind (hugepages, file descriptors, namespaces).
//!
//! Each test builds its own gen ⇄ dut ⇄ sink namespaces (unique names, 198.18.0.0/15 only),
//! runs `xskd run` as a child (guards tear both down on failure) and is bounded in time.

mod common;

use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use apps::resources;
use apps::udpflow::{self, Receiver};
use common::{assert_all_intact, Bed, EngineOpts};
use nic::netns::Topology;

/// The stop-under-load test floods the DUT as fast as the generator can send, which takes both
/// CPUs of a small machine: it runs alone in this binary (exclusive lock); the count-exact
/// tests take the lock shared.
static FLOOD: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Paced gen → sink datagrams (flow 250) from inside namespace `gen` until `stop` is set;
/// returns how many the kernel accepted.
fn background_load(gen: &str, stop: &AtomicBool) -> u64 {
    let _in_gen = nic::netns::enter_by_name(gen).unwrap();
    let sock = std::net::UdpSocket::bind(SocketAddrV4::new(Topology::GEN_ADDR, 9900)).unwrap();
    sock.connect(SocketAddrV4::new(Topology::SINK_ADDR, 9901)).unwrap();
    let mut buf = vec![0u8; udpflow::payload_for_frame(60)];
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        udpflow::fill_payload(250, seq, &mut buf);
        if sock.send(&buf).is_ok() {
            seq += 1;
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    seq
}

#[test]
fn five_sigkill_restarts_under_load_need_no_manual_step() {
    need_root!();
    let _shared = FLOOD.read().unwrap_or_else(|e| e.into_inner());
    let mut bed = Bed::new("xlkill", EngineOpts::default());
    let names: Vec<String> =
        [bed.topo.generator(), bed.topo.dut(), bed.topo.sink()].iter().map(|n| n.name().to_string()).collect();
    // A receiver for the load, so the sink answers it with nothing (no ICMP noise).
    let load_rx = Receiver::start(
        bed.topo.sink(),
        SocketAddrV4::new(Topology::SINK_ADDR, 9901),
        250,
        udpflow::payload_for_frame(60),
        None,
    )
    .unwrap();
    let stop = AtomicBool::new(false);
    let load_seen = std::thread::scope(|s| {
        let gen = names[0].clone();
        let stop = &stop;
        let load = s.spawn(move || background_load(&gen, stop));
        let stop_load = common::SetOnDrop(stop);
        for round in 0..5u8 {
            bed.start();
            // Bound again and forwarding: a count-exact exchange both ways, on its own flows,
            // while the load runs.
            let (f, r) = bed.exchange(60, 300, 10_000, 100 + 2 * round);
            assert_all_intact(&f, 300, &format!("round {round}: gen→sink"));
            assert_all_intact(&r, 300, &format!("round {round}: sink→gen"));
            std::thread::sleep(Duration::from_millis(100));
            bed.kill9();
            // The kernel detached the program with the process (bpf_link): nothing for a
            // person or `xskd cleanup` to remove.
            assert!(!bed.xdp_attached("d0") && !bed.xdp_attached("d1"), "round {round}: SIGKILL left XDP attached");
            let out = bed.run_xskd_in_dut(&["cleanup", "d0", "d1"]);
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "round {round}: cleanup: {text}");
            assert_eq!(text.matches("nothing to clean").count(), 2, "round {round}: leftovers: {text}");
        }
        // A last run, stopped cleanly: its report gets the release checks.
        bed.start();
        let (f, _) = bed.exchange(60, 300, 10_000, 120);
        assert_all_intact(&f, 300, "final run");
        drop(stop_load);
        let sent = load.join().unwrap();
        bed.stop();
        sent
    });
    let got = load_rx.finish(Duration::from_millis(100)).unwrap();
    assert!(load_seen > 0 && got.good > 0, "the load ran and crossed the engine ({} of {load_seen})", got.good);
    assert_eq!(got.corrupt, 0, "load datagrams intact");
    drop(bed);
    // Nothing left: the namespaces (and with them the veths) are gone.
    let list = std::process::Command::new("ip").args(["netns", "list"]).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    for n in &names {
        assert!(!list.lines().any(|l| l.split_whitespace().next() == Some(n)), "namespace {n} left behind");
        assert!(!std::path::Path::new("/run/netns").join(n).exists(), "/run/netns/{n} left behind");
    }
}

#[test]
fn hugepages_and_fds_are_released() {
    need_root!();
    let _shared = FLOOD.read().unwrap_or_else(|e| e.into_inner());
    // How this isolates itself from tests running in parallel: it does not read the global
    // HugePages_Free, which every other run changes too; it reads the daemon's own mappings and
    // descriptors, from outside while it runs (/proc/PID) and as the daemon saw them itself
    // after releasing everything and before exiting (the report).
    let mut bed = Bed::new("xlres", EngineOpts { hugepages: "2M", ..Default::default() });
    let huge = nic::mem::free_hugepages_2m().unwrap_or(0) >= 64;
    bed.start();
    let pid = bed.pid().to_string();
    let fds_running = resources::open_fds(&pid).expect("/proc/PID/fd");
    let huge_running = resources::hugetlb_kib(&pid).expect("/proc/PID/smaps");
    let (f, _) = bed.exchange(60, 200, 10_000, 10);
    assert_all_intact(&f, 200, "gen→sink");
    let rep = bed.stop(); // asserts fds_after == fds_before and hugetlb_kib_after == 0
    let r = &rep["resources"];
    let before = r["fds_before"].as_u64().unwrap() as usize;
    // Two AF_XDP sockets, two XDP programs with their maps and links: the kernel listed them
    // while the daemon ran, and they are all closed now.
    assert!(fds_running >= before + 4, "{fds_running} fds while running, {before} before: the probe sees them");
    const UMEM_KIB: u64 = 16384 * 2048 / 1024;
    if huge {
        assert_eq!(rep["umem"]["backing"], "hugepages-2M");
        assert_eq!(huge_running, UMEM_KIB, "the UMEM's hugepages, as the kernel shows the running daemon's mappings");
        assert_eq!(r["hugetlb_kib_mapped"], UMEM_KIB, "{r}");
    } else {
        eprintln!("fewer than 64 free 2 MiB hugepages: checking the normal-pages fallback only");
        assert_eq!(huge_running, 0);
    }
    assert_eq!(r["hugetlb_kib_after"], 0, "{r}");
}

#[test]
fn stop_under_load_returns_every_frame_across_lcores() {
    need_root!();
    let _alone = FLOOD.write().unwrap_or_else(|e| e.into_inner());
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        eprintln!("skipped: needs 2 CPUs (one lcore per port)");
        return;
    }
    // d0 polled on CPU 0, d1 on CPU 1: every relayed frame crosses cores on a TX handoff ring.
    // SIGTERM while the generator sends as fast as it can: at stop, frames are in every place a
    // frame can be — RX and fill rings, staging, the handoff ring, TX rings, and (copy mode)
    // sent but not completed until the sink's kernel consumes them. The report's pool count
    // (checked by `stop`) must still find every one of them.
    let mut bed = Bed::new("xlstop", EngineOpts::default());
    let (g0, s0) = (apps::params::fmt_mac(&bed.topo.gen_mac()), apps::params::fmt_mac(&bed.topo.sink_mac()));
    let config = format!(
        "{}{}{}[[queue]]\nport = \"d0\"\nlcore = 0\napp = \"relay\"\nparams = {{ mode = \"mac\", peer = \"d1\", dst_mac = \"{s0}\" }}\n\
         [[queue]]\nport = \"d1\"\nlcore = 1\napp = \"relay\"\nparams = {{ mode = \"mac\", peer = \"d0\", dst_mac = \"{g0}\" }}\n",
        bed.engine_sections().replace("burst = 64", "burst = 32"),
        bed.port_section("d0", &bed.opts.claim_d0),
        bed.port_section("d1", &bed.opts.claim_d1),
    );
    // Three start/stop cycles: where the frames are at the moment of the stop varies.
    for cycle in 0..3 {
        stop_once_under_load(&mut bed, &config, cycle);
    }
}

fn stop_once_under_load(bed: &mut Bed, config: &str, cycle: u16) {
    bed.start_with(config);
    let gen = bed.topo.generator().name().to_string();
    let stop = AtomicBool::new(false);
    let rep = std::thread::scope(|s| {
        let load = s.spawn(|| {
            let _in_gen = nic::netns::enter_by_name(&gen).unwrap();
            let sock = std::net::UdpSocket::bind(SocketAddrV4::new(Topology::GEN_ADDR, 9910 + cycle)).unwrap();
            sock.connect(SocketAddrV4::new(Topology::SINK_ADDR, 9911)).unwrap();
            let buf = [0x5au8; 1000];
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                sent += u64::from(sock.send(&buf).is_ok());
            }
            sent
        });
        let stop_load = common::SetOnDrop(&stop);
        std::thread::sleep(Duration::from_millis(700));
        let rep = bed.stop(); // under load
        drop(stop_load);
        assert!(load.join().unwrap() > 0);
        rep
    });
    let out: u64 = rep["lcores"].as_array().unwrap().iter().map(|l| l["handoff_out"].as_u64().unwrap()).sum();
    assert!(out > 0, "cycle {cycle}: frames crossed cores: {}", rep["lcores"]);
}
