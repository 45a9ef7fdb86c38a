//! Engine-only NAT: the l4lb on null ports with many active flows, against the relay's io mode
//! over the same ports in the same run.
//!
//! The client-side null port replays a pcap of `flows` UDP datagrams (60-byte frames), one per
//! flow, in random order, over and over — the flow table sees every flow once per pass, so after
//! the first pass every frame is a hit on an established flow (the steady state is measured,
//! the first and last seconds are dropped). The backend-side port is a TX-only null port. Both
//! systems pay for the replay's copy into the frame; the relay then forwards the frame as it
//! is, the l4lb parses it, looks its flow up (burst lookup), rewrites two addresses, two ports
//! and the MACs with incremental checksums. One lcore, no kernel in the path.

use std::io;
use std::net::Ipv4Addr;
use std::path::Path;

use apps::pktgen::pcap::PcapSink;
use engine::wire::{EtherType, EthernetAddress, EthernetFrame, IpPair, IpProtocol, Ipv4Packet, UdpPacket};

/// The VIP of the benchmark service.
pub const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);

/// Source ports per source address in the generated flows.
const PORTS_PER_ADDR: u32 = 64;

/// Writes one 60-byte UDP frame per flow (distinct source address and port, 198.18.0.0/15)
/// to `VIP:53`, in a random order fixed by `seed`.
pub fn write_flows_pcap(path: &Path, flows: u32, seed: u64) -> io::Result<()> {
    let mut order: Vec<u32> = (0..flows).collect();
    let mut x = seed | 1;
    for i in (1..order.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    let f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut sink = PcapSink::new(f, 128).map_err(io::Error::other)?;
    let mut frame = [0u8; 60];
    for (k, &i) in order.iter().enumerate() {
        let src = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 1, 0)) + i / PORTS_PER_ADDR);
        let sport = 1024 + (i % PORTS_PER_ADDR) as u16;
        build_udp(&mut frame, src, sport);
        sink.write(k as u64, 60, &frame).map_err(io::Error::other)?;
    }
    Ok(())
}

fn build_udp(frame: &mut [u8; 60], src: Ipv4Addr, sport: u16) {
    frame.fill(0);
    let mut e = EthernetFrame::new_unchecked(&mut frame[..]);
    e.set_src_addr(EthernetAddress([2, 0, 0, 0, 0, 0xc0]));
    e.set_dst_addr(EthernetAddress([2, 0, 0, 0, 0, 0xd0]));
    e.set_ethertype(EtherType::IPV4);
    let mut ip = Ipv4Packet::new_unchecked(&mut frame[14..]);
    ip.set_version(4);
    ip.set_header_len(20);
    ip.set_total_len(46);
    ip.set_ttl(64);
    ip.set_protocol(IpProtocol::UDP);
    ip.set_src_addr(src);
    ip.set_dst_addr(VIP);
    ip.fill_checksum();
    let mut u = UdpPacket::new_unchecked(&mut frame[34..60]);
    u.set_src_port(sport);
    u.set_dst_port(53);
    u.set_len(26);
    u.fill_checksum(&IpPair::V4 { src, dst: VIP });
}

/// SNAT addresses needed for `flows` flows (64 512 ports each, 1024-65535).
pub fn snat_addrs(flows: u32) -> u32 {
    flows.div_ceil(64_512).max(1)
}

fn ports(replay: &Path) -> String {
    format!(
        r#"[[port]]
name = "c"
kind = "null"
null_replay = "{}"
[[port]]
name = "b"
kind = "null"
null_rx = false
"#,
        replay.display()
    )
}

/// `xskd run` config: the l4lb over the replay port, `flows` capacity, on lcore `lcore`.
pub fn l4lb_config(replay: &Path, flows: u32, lcore: usize, burst: u32, secs: u64) -> String {
    l4lb_config_on(replay, flows, &[lcore], burst, secs)
}

/// The same with one shard per lcore of `lcores`: queue k of both ports on `lcores[k]`, the
/// replayed flows spread over the queues (see `nic::NullPort::replay_share`).
pub fn l4lb_config_on(replay: &Path, flows: u32, lcores: &[usize], burst: u32, secs: u64) -> String {
    let snat: Vec<String> =
        (0..snat_addrs(flows)).map(|i| format!("\"{}\"", Ipv4Addr::new(198, 19, 1, i as u8))).collect();
    let backends: Vec<String> =
        (0..3).map(|i| format!("{{ addr = \"198.19.0.{}:53\", mac = \"02:00:00:00:0b:{i:02x}\" }}", 11 + i)).collect();
    format!(
        r#"[engine]
burst = {burst}
duration_secs = {secs}
[umem]
frames = {frames}
hugepages = "2M"
{ports}
[[app]]
name = "lb"
kind = "l4lb"
[app.params]
client_port = "c"
backend_port = "b"
snat = [{snat}]
max_flows = {cap}
timeouts = {{ udp = 3600 }}
[[app.params.service]]
vip = "{VIP}"
proto = "udp"
port = 53
backends = [{backends}]
{queues}"#,
        frames = 16384 * lcores.len(),
        ports = ports(replay),
        snat = snat.join(", "),
        cap = (flows / lcores.len() as u32 + flows / 10).max(1024),
        backends = backends.join(", "),
        queues = lcores
            .iter()
            .enumerate()
            .map(|(q, l)| format!(
                "[[queue]]\nport = \"c\"\nqueue = {q}\nlcore = {l}\napp = \"lb\"\n[[queue]]\nport = \"b\"\nqueue = {q}\nlcore = {l}\napp = \"lb\"\n"
            ))
            .collect::<String>(),
    )
}

/// `xskd run` config: relay io from the replay port to the sink port.
pub fn relay_config(replay: &Path, lcore: usize, burst: u32, secs: u64) -> String {
    format!(
        r#"[engine]
burst = {burst}
duration_secs = {secs}
[umem]
frames = 16384
hugepages = "2M"
{ports}
[[queue]]
port = "c"
lcore = {lcore}
app = "relay"
params = {{ mode = "io", peer = "b" }}
[[queue]]
port = "b"
lcore = {lcore}
app = "relay"
params = {{ mode = "io", peer = "c" }}
"#,
        ports = ports(replay),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pcap_holds_distinct_valid_flows() {
        let dir = std::env::temp_dir().join(format!("xskd-natpcap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f.pcap");
        write_flows_pcap(&p, 1000, 7).unwrap();
        let frames = apps::pktgen::pcap::read_frames(&p, 128).unwrap();
        assert_eq!(frames.len(), 1000);
        let mut seen = std::collections::HashSet::new();
        for f in &frames {
            let nf = engine::nat::NatFrame::new_checked(&f[..]).unwrap();
            assert!(nf.verify_checksums());
            let t = nf.tuple();
            assert_eq!((t.dst_addr(), t.dst_port), (std::net::IpAddr::V4(VIP), 53));
            assert!(seen.insert((t.src_addr(), t.src_port)));
        }
        assert_eq!(snat_addrs(1_000_000), 16);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
