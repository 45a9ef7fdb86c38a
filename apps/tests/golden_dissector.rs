//! pktgen's golden pcaps (`tests/golden/*.pcap`) checked by an independent dissector:
//! tcpdump's own IPv4 header and UDP checksum verification (`-vv`) and length checks, so the
//! golden files are not blessed only by the code that wrote them (`pktgen_golden.rs`).
//!
//! Needs `tcpdump` (`.ci/deps` installs it): skipped without it through `nic::testenv`, and
//! failed under `XSKD_REQUIRE_ROOT=1`.

use std::path::{Path, PathBuf};
use std::process::Command;

use apps::pktgen::pcap::read_frames;

fn golden_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/golden")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
        .collect();
    v.sort();
    v
}

/// tcpdump's verdict on every packet of `file`: one string per packet (its continuation
/// lines joined), or tcpdump's error.
fn dissect(file: &Path) -> Result<Vec<String>, String> {
    let out = Command::new("tcpdump")
        .args(["-nn", "-vv", "-e", "-r"])
        .arg(file)
        .output()
        .map_err(|e| format!("run tcpdump: {e}"))?;
    if !out.status.success() {
        return Err(format!("tcpdump -r {}: {}", file.display(), String::from_utf8_lossy(&out.stderr)));
    }
    let mut packets: Vec<String> = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        match (line.starts_with(char::is_whitespace), packets.last_mut()) {
            (true, Some(p)) => {
                p.push(' ');
                p.push_str(line.trim());
            }
            _ => packets.push(line.to_string()),
        }
    }
    Ok(packets)
}

/// What is wrong with a packet by tcpdump's verdict: every frame pktgen writes is UDP or TCP
/// over IPv4 or IPv6, so each must carry tcpdump's verified checksum ("[udp sum ok]" for UDP,
/// "cksum 0x… (correct)" for TCP) and no complaint.
fn complaint(packet: &str) -> Option<&'static str> {
    if packet.contains("proto TCP") || packet.contains("next-header TCP") {
        if !packet.contains("(correct)") {
            return Some("no verified TCP checksum");
        }
    } else if !packet.contains("[udp sum ok]") {
        return Some("no verified UDP checksum");
    }
    ["bad cksum", "bad udp cksum", "incorrect", "truncated", "[|", "bad-len", "invalid"]
        .into_iter()
        .find(|bad| packet.contains(bad))
}

/// Every complaint about `file`, one line each.
fn check(file: &Path) -> Vec<String> {
    let frames = read_frames(file, 16384).expect("read pcap");
    let packets = match dissect(file) {
        Ok(p) => p,
        Err(e) => return vec![e],
    };
    let mut errs = Vec::new();
    if packets.len() != frames.len() {
        errs.push(format!("tcpdump saw {} packets, the file holds {}", packets.len(), frames.len()));
    }
    for (i, p) in packets.iter().enumerate() {
        if let Some(why) = complaint(p) {
            errs.push(format!("packet {i}: {why}: {p}"));
        }
    }
    errs
}

#[test]
fn golden_frames_pass_tcpdumps_checksum_and_length_checks() {
    nic::require_tool!("tcpdump");
    let files = golden_files();
    assert!(files.len() >= 4, "golden files: {files:?}");
    let mut errs = Vec::new();
    for f in &files {
        for e in check(f) {
            errs.push(format!("{}: {e}", f.display()));
        }
    }
    assert!(errs.is_empty(), "{}", errs.join("\n"));
}

/// The check can fail: a golden file with one payload byte flipped (UDP checksum now wrong)
/// and one with a bad IPv4 header checksum are both caught.
#[test]
fn the_dissector_check_catches_a_corrupted_frame() {
    nic::require_tool!("tcpdump");
    let src = golden_files().into_iter().find(|p| p.ends_with("ipv4_fixed60.pcap")).expect("ipv4_fixed60.pcap");
    let bytes = std::fs::read(&src).expect("read");
    // pcap: 24-byte file header, 16-byte record header, then the first frame.
    let frame0 = 24 + 16;
    let dir = std::env::temp_dir().join(format!("xskd-golden-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for (name, offset) in [("udp-payload", frame0 + 14 + 20 + 8), ("ip-ttl", frame0 + 14 + 8)] {
        let mut b = bytes.clone();
        b[offset] ^= 0x01;
        let path = dir.join(format!("{name}.pcap"));
        std::fs::write(&path, &b).expect("write");
        let errs = check(&path);
        assert!(
            errs.len() == 1 && errs[0].starts_with("packet 0: "),
            "{name}: exactly the corrupted packet is reported: {errs:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
