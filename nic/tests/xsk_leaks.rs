//! Root test: opening and closing AF_XDP ports and the XDP program leaks nothing. After every
//! socket is closed, the program detached and the UMEM dropped, this process has exactly the
//! file descriptors it had before (`/proc/self/fd`), and the UMEM's mapping (2 MiB hugepages
//! when any are free, as CI reserves them) is gone from `/proc/self/smaps`.
//!
//! Alone in its test binary on purpose: a descriptor count is process-wide, so no other test
//! may open files meanwhile. Without root it is skipped through `nic::testenv` (and fails under
//! `XSKD_REQUIRE_ROOT=1`).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{eventually, send_seq, Pair, DUT_ADDR, DUT_IF};
use nic::frame::FrameBuf;
use nic::mem::{Backing, PageSize, Region};
use nic::pool::PoolCache;
use nic::port::{Port, RingPort};
use nic::require_root;
use nic::umem::{Umem, UmemConfig};
use nic::xdp::{Claim, ClaimRule, XdpMode};
use nic::xsk::{BindMode, XskConfig};

fn open_fds() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .map(|e| {
            let e = e.expect("fd entry");
            let target = std::fs::read_link(e.path()).map(|t| t.display().to_string()).unwrap_or_default();
            format!("{} -> {target}", e.file_name().to_string_lossy())
        })
        .collect();
    v.sort();
    v
}

/// The `/proc/self/smaps` block of the mapping that starts at `addr`, if any.
fn smaps_block(addr: usize) -> Option<String> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
    let head = format!("{addr:x}-");
    let start = smaps.lines().position(|l| l.starts_with(&head))?;
    let block: Vec<&str> = smaps.lines().skip(start).take_while(|l| !l.contains("VmFlags")).collect();
    Some(block.join("\n"))
}

#[test]
fn closing_everything_releases_fds_and_the_umem_mapping() {
    require_root!();
    let pair = Pair::new();
    let _in_dut = pair.dut.enter().expect("enter dut");
    let before = open_fds();

    let frames = 2048u32;
    let len = frames as usize * 2048;
    let region = Region::map_exact(len, PageSize::Huge2M).or_else(|e| {
        eprintln!("no 2 MiB hugepages ({e}): normal pages");
        Region::map_exact(len, PageSize::Normal)
    });
    let region = region.expect("UMEM region");
    let backing = region.backing();
    let addr = region.as_ptr().as_ptr() as usize;
    let u = Umem::new(region, UmemConfig { frame_size: 2048, frame_count: frames, headroom: 0 }).expect("UMEM");
    let block = smaps_block(addr).expect("the UMEM is mapped");
    if backing == Backing::Huge2M {
        assert!(block.contains("KernelPageSize:     2048 kB"), "{block}");
    }
    {
        let mut cache = PoolCache::new(&u, 256);
        let cfg = |q| XskConfig { bind: BindMode::Copy, ..XskConfig::new(DUT_IF, q) };
        let mut port = RingPort::open_xsk(&u, &mut cache, &cfg(0)).expect("open");
        let mut prog = pair.attach(XdpMode::Native, &Claim::Rules(vec![ClaimRule::udp_port(9000)])).expect("attach");
        prog.register_socket(0, port.socket_fd().expect("fd")).expect("register");
        assert!(open_fds().len() > before.len(), "the socket and the program hold descriptors");

        assert_eq!(send_seq(&pair.peer, 40010, SocketAddr::from((DUT_ADDR, 9000)), 0..50, 60), 50);
        assert!(eventually(|| prog.stats().expect("stats").redirected == 50));
        let mut got = FrameBuf::with_capacity(64);
        assert!(eventually(|| {
            port.rx_burst(&mut cache, &mut got, 64);
            got.len() == 50
        }));
        cache.free_burst(&mut got);

        prog.unregister_socket(0).expect("unregister");
        prog.detach().expect("detach");
        let r = port.close(&mut cache, Duration::from_secs(5));
        assert_eq!(r.kept_by_kernel, 0, "{r:?}");
    }
    assert_eq!(u.check_free_list(), Ok(frames as usize));
    drop(u);
    // The kernel may finish releasing a socket (and its UMEM pin) asynchronously.
    let mut now = Vec::new();
    let same = eventually(|| {
        now = open_fds();
        now == before
    });
    assert!(same, "descriptors before:\n{}\nafter:\n{}", before.join("\n"), now.join("\n"));
    assert_eq!(smaps_block(addr), None, "the UMEM mapping is gone");
}
