//! Command lines and output parsers for the systems the harness runs: dpdk-testpmd (the peer)
//! and xskd itself (as a user would run it: the `xskd` binary on a generated config).

/// Per-period totals printed by `dpdk-testpmd --stats-period=1`: (sum of Rx-pps, sum of Tx-pps)
/// over all ports, one entry per period.
pub fn testpmd_periods(stdout: &str) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    for block in stdout.split("Port statistics ====").skip(1) {
        let mut rx = 0.0;
        let mut tx = 0.0;
        let mut seen = false;
        for line in block.lines() {
            let t = line.trim();
            if let Some(v) = field(t, "Rx-pps:") {
                rx += v;
                seen = true;
            }
            if let Some(v) = field(t, "Tx-pps:") {
                tx += v;
            }
        }
        if seen {
            out.push((rx, tx));
        }
    }
    out
}

fn field(line: &str, key: &str) -> Option<f64> {
    let rest = line.strip_prefix(key)?;
    rest.split_whitespace().next()?.parse().ok()
}

/// Totals of the final "Accumulated forward statistics for all ports" block of testpmd:
/// (RX-packets, RX-dropped, TX-packets).
pub fn testpmd_totals(stdout: &str) -> Option<(u64, u64, u64)> {
    let block = stdout.rsplit("Accumulated forward statistics for all ports").next()?;
    let mut rx = None;
    let mut drop = None;
    let mut tx = None;
    for l in block.lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        for i in 0..w.len().saturating_sub(1) {
            match w[i] {
                "RX-packets:" if rx.is_none() => rx = w[i + 1].parse().ok(),
                "RX-dropped:" if drop.is_none() => drop = w[i + 1].parse().ok(),
                "TX-packets:" if tx.is_none() => tx = w[i + 1].parse().ok(),
                _ => {}
            }
        }
    }
    Some((rx?, drop.unwrap_or(0), tx?))
}

/// Per-second totals printed by `xskd run` ("[  1.0s] lcore1 rx X Mpps tx Y Mpps ..."):
/// (rx pps, tx pps) summed over lcores, one entry per interval.
pub fn xskd_periods(stdout: &str) -> Vec<(f64, f64)> {
    let mut by_time: Vec<(String, f64, f64)> = Vec::new();
    for line in stdout.lines() {
        let Some(rest) = line.strip_prefix('[') else { continue };
        let Some((ts, rest)) = rest.split_once(']') else { continue };
        let w: Vec<&str> = rest.split_whitespace().collect();
        let get =
            |key: &str| w.iter().position(|x| *x == key).and_then(|i| w.get(i + 1)).and_then(|v| v.parse::<f64>().ok());
        let (Some(rx), Some(tx)) = (get("rx"), get("tx")) else { continue };
        let ts = ts.trim().to_string();
        match by_time.iter_mut().find(|(t, _, _)| *t == ts) {
            Some(e) => {
                e.1 += rx * 1e6;
                e.2 += tx * 1e6;
            }
            None => by_time.push((ts, rx * 1e6, tx * 1e6)),
        }
    }
    by_time.into_iter().map(|(_, r, t)| (r, t)).collect()
}

/// dpdk-testpmd over two `net_null` ports on one forwarding core (lcore `fwd`, main lcore
/// `main`): the engine-only peer.
pub fn testpmd_null(main: usize, fwd: usize, mode: &str, burst: u32) -> Vec<String> {
    [
        "dpdk-testpmd",
        "-l",
        &format!("{main},{fwd}"),
        "--main-lcore",
        &main.to_string(),
        "--no-huge",
        "-m",
        "1024",
        "--no-pci",
        "--file-prefix",
        &format!("xskd-bench-{}", std::process::id()),
        "--vdev",
        "net_null0",
        "--vdev",
        "net_null1",
        "--",
        "--nb-cores=1",
        "--total-num-mbufs=16384",
        &format!("--forward-mode={mode}"),
        &format!("--burst={burst}"),
        "--auto-start",
        "--stats-period=1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TESTPMD: &str = "Port statistics ====================================
  ######################## NIC statistics for port 0  ########################
  RX-packets: 100        RX-missed: 0          RX-bytes:  0
  Rx-pps:     16095798          Rx-bps:            0
  Tx-pps:     16095790          Tx-bps:            0
  ######################## NIC statistics for port 1  ########################
  Rx-pps:     16000000          Rx-bps:            0
  Tx-pps:     16000001          Tx-bps:            0
Port statistics ====================================
  Rx-pps:     1          Rx-bps:            0
  Tx-pps:     2          Tx-bps:            0
  +++++++++++++++ Accumulated forward statistics for all ports+++++++++++++++
  RX-packets: 31407823       RX-dropped: 25834233      RX-total: 57242056
  TX-packets: 5573590        TX-dropped: 0             TX-total: 5573590
";

    #[test]
    fn parses_testpmd() {
        let p = testpmd_periods(TESTPMD);
        assert_eq!(p, vec![(32095798.0, 32095791.0), (1.0, 2.0)]);
        assert_eq!(testpmd_totals(TESTPMD), Some((31407823, 25834233, 5573590)));
    }

    #[test]
    fn parses_xskd_lines() {
        let s = "[    1.0s] lcore0   rx   1.500 Mpps  tx   1.000 Mpps  empty-polls   0.0%  drops none
[    1.0s] lcore1   rx   0.500 Mpps  tx   0.500 Mpps  empty-polls   0.0%  drops none
[    2.0s] lcore0   rx   2.000 Mpps  tx   2.000 Mpps  empty-polls   0.0%  drops none
xskd: port d0";
        assert_eq!(xskd_periods(s), vec![(2.0e6, 1.5e6), (2.0e6, 2.0e6)]);
    }
}
