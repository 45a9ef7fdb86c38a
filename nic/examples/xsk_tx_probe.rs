//! Probe: open an AF_XDP socket on IFACE queue 0 and transmit N UDP/IPv4 frames built in UMEM.
//! usage: xsk_tx_probe IFACE SRC_MAC DST_MAC SRC_IP DST_IP COUNT
//! (Addresses must be in 198.18.0.0/15; used by the veth tests' manual debugging.)
use nic::port::Port;
use nic::{FrameBuf, PoolCache, RingPort, Umem, UmemConfig, XskConfig};

fn mac(s: &str) -> [u8; 6] {
    let v: Vec<u8> = s.split(':').map(|x| u8::from_str_radix(x, 16).unwrap()).collect();
    v.try_into().unwrap()
}

fn csum(b: &[u8]) -> u16 {
    let mut s = 0u32;
    for c in b.chunks(2) {
        s += u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32;
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let (ifname, smac, dmac) = (&a[1], mac(&a[2]), mac(&a[3]));
    let sip: std::net::Ipv4Addr = a[4].parse().unwrap();
    let dip: std::net::Ipv4Addr = a[5].parse().unwrap();
    let count: usize = a[6].parse().unwrap();
    let umem = Umem::heap(UmemConfig { frame_size: 2048, frame_count: 16384, headroom: 0 }).unwrap();
    let mut cache = PoolCache::new(&umem, 512);
    let mut cfg = XskConfig::new(ifname, 0);
    cfg.bind = nic::BindMode::Copy;
    let mut port = RingPort::open_xsk(&umem, &mut cache, &cfg).expect("open xsk");
    let s = port.socket().unwrap();
    println!("bound {} q{} zero_copy={} need_wakeup={}", s.ifname(), s.queue(), s.zero_copy(), s.need_wakeup());
    let mut batch = FrameBuf::with_capacity(64);
    let mut sent = 0usize;
    let t0 = std::time::Instant::now();
    while sent < count && t0.elapsed().as_secs() < 10 {
        port.maintain(&mut cache);
        let n = (count - sent).min(64);
        if !cache.alloc_bulk(&mut batch, n, 60) {
            continue;
        }
        for (i, f) in batch.iter_mut().enumerate() {
            let b = f.data_mut();
            b[0..6].copy_from_slice(&dmac);
            b[6..12].copy_from_slice(&smac);
            b[12..14].copy_from_slice(&[8, 0]);
            let ip = &mut b[14..34];
            ip.copy_from_slice(&[0x45, 0, 0, 46, 0, 0, 0, 0, 64, 17, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            ip[12..16].copy_from_slice(&sip.octets());
            ip[16..20].copy_from_slice(&dip.octets());
            let c = csum(ip);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            let udp = &mut b[34..60];
            udp[..8].copy_from_slice(&[0x27, 0x0f, 0x27, 0x0f, 0, 26, 0, 0]);
            udp[8..16].copy_from_slice(&((sent + i) as u64).to_be_bytes());
        }
        let k = port.tx_burst(&mut cache, &mut batch);
        sent += k;
        cache.free_burst(&mut batch);
        port.flush();
    }
    for _ in 0..100 {
        port.maintain(&mut cache);
        port.flush();
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    println!("sent {sent} counters {:?} stats {:?}", port.counters(), port.xdp_statistics());
}
