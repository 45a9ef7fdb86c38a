//! Random-access memory cost on this machine, to read the flow-table benchmark against: for
//! buffers the size of the flow table's arrays (16 MiB of buckets and 64 MiB of entries at 1 M
//! flows, 256 MiB of entries at 4 M), on 4 KiB pages and on transparent huge pages:
//!
//! * *dependent*: a pointer chase through a random cycle of cache lines (one miss at a time:
//!   the latency of one line);
//! * *independent*: loads of random lines with a software prefetch 32 loads ahead (as many
//!   misses in flight as the core allows: the best time per line a burst lookup can reach).
//!
//! Run: `taskset -c 1 cargo run --release -p benches --example memlat`.

use std::time::Instant;

type Line = [u64; 8];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn buffer(lines: usize, huge: bool) -> Vec<Line> {
    let mut v: Vec<Line> = Vec::with_capacity(lines);
    if huge {
        nic::sys::advise_hugepages(v.spare_capacity_mut()).expect("madvise");
    }
    v.resize(lines, [0; 8]);
    v
}

fn main() {
    const LOADS: usize = 2_000_000;
    let mut rng = Rng(12345);
    println!("{:>8} {:>6} {:>16} {:>22}", "MiB", "pages", "dependent ns", "independent ns/line");
    for mib in [16usize, 64, 256] {
        for huge in [false, true] {
            let lines = mib << 14;
            let mut v = buffer(lines, huge);
            // Sattolo's shuffle: one cycle through every line.
            let mut next: Vec<usize> = (0..lines).collect();
            for i in (1..lines).rev() {
                next.swap(i, rng.next() as usize % i);
            }
            for (l, n) in v.iter_mut().zip(&next) {
                l[0] = *n as u64;
            }
            drop(next);
            let t = Instant::now();
            let mut p = 0usize;
            for _ in 0..LOADS {
                p = v[p][0] as usize;
            }
            let dependent = t.elapsed().as_nanos() as f64 / LOADS as f64;
            let idx: Vec<usize> = (0..LOADS).map(|_| rng.next() as usize % lines).collect();
            let t = Instant::now();
            let mut sum = 0u64;
            for i in 0..LOADS {
                if let Some(&ahead) = idx.get(i + 32) {
                    nic::sys::prefetch_read(&v[ahead]);
                }
                sum = sum.wrapping_add(v[idx[i]][1]);
            }
            let independent = t.elapsed().as_nanos() as f64 / LOADS as f64;
            let pages = if huge { "THP" } else { "4 KiB" };
            println!("{mib:>8} {pages:>6} {dependent:>16.1} {independent:>22.1}   ({p} {sum})");
        }
    }
}
