//! `xskd demo --app l4lb`: the NAT load balancer in front of three backends, with stock clients.
//!
//! ```text
//! client [c0 198.18.0.1] ⇄ [d0, VIP 198.18.0.100] dut: xskd l4lb [d1 198.19.0.2]
//!        ⇄ bridge ⇄ backends 198.19.0.11, .12, .13 (kernel TCP :8080, UDP :5353)
//! ```
//!
//! No static neighbour entries: the DUT's kernel answers ARP for the VIP and the SNAT
//! address, and xskd learns the backends' MACs from it. The demo then
//! 1. sends 300 HTTP requests (new connection each, kernel TCP) and 20 with `curl`, and checks
//!    that every backend took its share (±20 %);
//! 2. runs `ab -n 2000 -c 16` against the VIP (no failed request);
//! 3. moves 1 MiB each way over 6 concurrent connections, every byte checked;
//! 4. sends 300 UDP datagrams to the UDP service, every one echoed intact;
//! 5. drains backend 1 with `xskd ctl` and checks that the next 60 connections avoid it;
//! 6. pings the VIP (answered by xskd);
//!
//! then stops the engine and prints its l4lb counters, and PASS only if every check held.

use std::net::{SocketAddr, SocketAddrV4};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use nic::netns::{LbTopology, LbTopologyConfig, Netns};

use super::{ncpus, DemoArgs, DirGuard, EngineChild};
use crate::tcpflow::{self, BackendServer};

/// TCP port of the demo service on the VIP, and of the backends.
pub const VIP_PORT: u16 = 80;
/// Backends' TCP port.
pub const BACKEND_PORT: u16 = 8080;
/// UDP service port on the VIP.
pub const VIP_UDP_PORT: u16 = 53;
/// Backends' UDP port.
pub const BACKEND_UDP_PORT: u16 = 5353;

/// Settings of [`config`].
#[derive(Debug, Clone)]
pub struct LbConfig<'a> {
    /// Backends (198.19.0.11 …).
    pub backends: usize,
    /// CPU of the lcore.
    pub lcore: usize,
    /// UMEM hugepages.
    pub hugepages: &'a str,
    /// XDP attach mode.
    pub xdp_mode: &'a str,
    /// Control socket.
    pub control_socket: &'a Path,
    /// Connections per shard.
    pub max_flows: u32,
    /// Timeouts table (TOML inline table), e.g. `{ half_open = 5 }`.
    pub timeouts: &'a str,
    /// Bounded run time.
    pub duration_secs: f64,
}

/// The `xskd run` configuration of an l4lb on an [`LbTopology`]: services TCP VIP:80 → :8080
/// and UDP VIP:53 → :5353 on every backend, one lcore, claims derived from the services.
pub fn config(c: &LbConfig<'_>) -> String {
    let list = |port: u16| {
        (0..c.backends).map(|i| format!("\"{}:{port}\"", LbTopology::backend_addr(i))).collect::<Vec<_>>().join(", ")
    };
    format!(
        r#"# generated for the l4lb topology (nic::netns::LbTopology)
[engine]
burst = 64
idle = "poll"
duration_secs = {dur:.1}
control_socket = "{sock}"

[umem]
frames = 16384
hugepages = "{hp}"

[[port]]
name = "d0"
xdp_mode = "{xm}"

[[port]]
name = "d1"
xdp_mode = "{xm}"

[[app]]
name = "lb"
kind = "l4lb"
[app.params]
client_port = "d0"
backend_port = "d1"
snat = ["{snat}"]
nat_ports = "10000-59999"
max_flows = {max_flows}
timeouts = {timeouts}
[[app.params.service]]
name = "web"
vip = "{vip}"
proto = "tcp"
port = {vport}
backends = [{tcp}]
[[app.params.service]]
name = "dns"
vip = "{vip}"
proto = "udp"
port = {uport}
backends = [{udp}]

[[queue]]
port = "d0"
lcore = {lcore}
app = "lb"

[[queue]]
port = "d1"
lcore = {lcore}
app = "lb"
"#,
        dur = c.duration_secs,
        sock = c.control_socket.display(),
        hp = c.hugepages,
        xm = c.xdp_mode,
        snat = LbTopology::SNAT_ADDR,
        max_flows = c.max_flows,
        timeouts = c.timeouts,
        vip = LbTopology::VIP,
        vport = VIP_PORT,
        uport = VIP_UDP_PORT,
        tcp = list(BACKEND_PORT),
        udp = list(BACKEND_UDP_PORT),
        lcore = c.lcore,
    )
}

/// Starts one [`BackendServer`] per backend of `t` (IDs 1, 2, …).
pub fn start_backends(t: &LbTopology) -> Result<Vec<BackendServer>> {
    (0..t.backend_count())
        .map(|i| {
            let a = LbTopology::backend_addr(i);
            BackendServer::start(
                t.backend(i),
                (i + 1) as u8,
                SocketAddrV4::new(a, BACKEND_PORT),
                SocketAddrV4::new(a, BACKEND_UDP_PORT),
            )
            .with_context(|| format!("starting backend {}", i + 1))
        })
        .collect()
}

/// The VIP's TCP service address.
pub fn vip_tcp() -> SocketAddr {
    SocketAddr::from((LbTopology::VIP, VIP_PORT))
}

/// Counts per backend ID (index 0 = backend 1).
fn histogram(ids: &[u8], n: usize) -> Vec<usize> {
    let mut h = vec![0; n];
    for &i in ids {
        if (1..=n).contains(&(i as usize)) {
            h[i as usize - 1] += 1;
        }
    }
    h
}

/// `n` sequential HTTP requests, a new connection each, from the client namespace.
pub fn http_requests(ns: &Netns, n: usize) -> Result<Vec<u8>> {
    ns.run_in(|| (0..n).map(|_| tcpflow::http_backend(vip_tcp())).collect::<std::io::Result<Vec<u8>>>())
        .context("HTTP requests to the VIP")
}

fn run_tool(ns: &Netns, argv: &[&str]) -> Result<Option<String>> {
    match ns.exec(argv) {
        Ok(out) if out.status.success() => Ok(Some(String::from_utf8_lossy(&out.stdout).to_string())),
        Ok(out) => bail!("{} failed: {}", argv.join(" "), String::from_utf8_lossy(&out.stderr).trim()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn ctl(exe: &str, sock: &Path, args: &[&str]) -> Result<String> {
    let mut argv = vec!["ctl", "--socket", sock.to_str().unwrap_or_default()];
    argv.extend_from_slice(args);
    let out = std::process::Command::new(exe).args(&argv).output().context("running xskd ctl")?;
    if !out.status.success() {
        bail!("xskd ctl {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

/// One check of the demo: its line and whether it passed.
struct Check {
    line: String,
    ok: bool,
}

fn check(out: &mut Vec<Check>, ok: bool, line: String) {
    println!("{} {line}", if ok { "  ok  " } else { "  FAIL" });
    out.push(Check { line, ok });
}

/// Runs the demo; `Ok(true)` when every check passed.
pub fn run(a: &DemoArgs) -> Result<bool> {
    let lcore = a.lcore.unwrap_or(ncpus() - 1);
    let exe = match &a.xskd {
        Some(p) => p.clone(),
        None => std::env::current_exe().context("locating the xskd binary")?,
    };
    let exe_s = exe.to_string_lossy().to_string();
    println!("xskd demo l4lb: client ⇄ xskd (VIP {}) ⇄ 3 backends on a bridge, no static neighbours", LbTopology::VIP);
    let topo = LbTopology::new("xklb", &LbTopologyConfig::default()).context("building the topology (needs root)")?;
    let servers = start_backends(&topo)?;
    let dir = std::env::temp_dir().join(format!("xskd-demo-lb-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let _dir = DirGuard(dir.clone());
    let (cfg_path, sock) = (dir.join("l4lb.toml"), dir.join("ctl.sock"));
    let cfg = LbConfig {
        backends: topo.backend_count(),
        lcore,
        hugepages: &a.hugepages,
        xdp_mode: &a.xdp_mode,
        control_socket: &sock,
        max_flows: 65536,
        timeouts: "{ half_open = 5, established = 300, closing = 10, udp = 30 }",
        duration_secs: 120.0,
    };
    std::fs::write(&cfg_path, config(&cfg))?;
    let mut engine = EngineChild::start(topo.dut(), &exe, &cfg_path, &dir, &["--quiet"], Duration::from_secs(20))
        .context("xskd run in the DUT namespace")?;
    let mut checks = Vec::new();
    let n_b = topo.backend_count();

    // 1. Spread of new connections.
    let t0 = Instant::now();
    let ids = http_requests(topo.client(), 300)?;
    let h = histogram(&ids, n_b);
    let even = 300.0 / n_b as f64;
    let spread_ok = ids.len() == 300 && h.iter().all(|&c| (c as f64 - even).abs() <= 0.2 * even);
    check(
        &mut checks,
        spread_ok,
        format!(
            "300 HTTP connections (kernel TCP) in {:.2} s, per backend {h:?} (±20 % of {even:.0})",
            t0.elapsed().as_secs_f64()
        ),
    );
    let url = format!("http://{}:{VIP_PORT}/", LbTopology::VIP);
    let mut curl_ids = Vec::new();
    let mut curl_missing = false;
    for _ in 0..20 {
        match run_tool(topo.client(), &["curl", "-sS", "--max-time", "5", &url])? {
            Some(body) => curl_ids.extend(body.trim().strip_prefix("backend=").and_then(|x| x.parse::<u8>().ok())),
            None => {
                curl_missing = true;
                break;
            }
        }
    }
    if curl_missing {
        check(&mut checks, false, "curl is not installed (apt-get install curl)".into());
    } else {
        check(
            &mut checks,
            curl_ids.len() == 20,
            format!("20 × curl {url}: per backend {:?}", histogram(&curl_ids, n_b)),
        );
    }

    // 2. ab: many short connections, concurrently.
    match run_tool(topo.client(), &["ab", "-q", "-n", "2000", "-c", "16", "-s", "5", &url])? {
        Some(out) => {
            let field = |name: &str| {
                out.lines()
                    .find(|l| l.starts_with(name))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|v| v.trim().to_string())
            };
            let failed = field("Failed requests").unwrap_or_default();
            let complete = field("Complete requests").unwrap_or_default();
            let rps = field("Requests per second").unwrap_or_default();
            check(
                &mut checks,
                failed == "0" && complete == "2000",
                format!("ab -n 2000 -c 16: complete {complete}, failed {failed}, {rps}"),
            );
        }
        None => check(&mut checks, false, "ab is not installed (apt-get install apache2-utils)".into()),
    }

    // 3. Byte-exact transfers, both ways, concurrently.
    let t0 = Instant::now();
    let client = topo.client();
    let results: Vec<std::io::Result<u8>> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..6u64)
            .map(|i| sc.spawn(move || client.run_in(|| tcpflow::echo_transfer(vip_tcp(), 1 << 20, i))))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(std::io::Error::other("panicked")))).collect()
    });
    let bad: Vec<String> = results.iter().filter_map(|r| r.as_ref().err().map(|e| e.to_string())).collect();
    check(
        &mut checks,
        bad.is_empty(),
        format!(
            "6 connections × 1 MiB each way, every byte checked, in {:.2} s{}",
            t0.elapsed().as_secs_f64(),
            if bad.is_empty() { String::new() } else { format!(": {}", bad.join("; ")) }
        ),
    );

    // 4. UDP.
    let udp = topo.client().run_in(|| {
        tcpflow::udp_echo(
            SocketAddrV4::new(LbTopology::CLIENT_ADDR, 40000),
            SocketAddr::from((LbTopology::VIP, VIP_UDP_PORT)),
            300,
            200,
        )
    })?;
    check(
        &mut checks,
        udp.len() == 300,
        format!(
            "300 UDP datagrams to {}:{VIP_UDP_PORT}: {} echoed intact, per backend {:?}",
            LbTopology::VIP,
            udp.len(),
            histogram(&udp, n_b)
        ),
    );

    // 5. Drain backend 1 at run time.
    let b1 = format!("{}:{BACKEND_PORT}", LbTopology::backend_addr(0));
    ctl(&exe_s, &sock, &["lb", "backend", "drain", "web", &b1])?;
    let ids = http_requests(topo.client(), 60)?;
    let h = histogram(&ids, n_b);
    check(
        &mut checks,
        ids.len() == 60 && h[0] == 0,
        format!("xskd ctl lb backend drain web {b1}; next 60 connections per backend {h:?}"),
    );
    ctl(&exe_s, &sock, &["lb", "backend", "activate", "web", &b1])?;
    println!("xskd ctl lb backends:\n{}", ctl(&exe_s, &sock, &["lb", "backends"])?.trim_end());

    // 6. ICMP echo to the VIP.
    match run_tool(topo.client(), &["ping", "-c", "3", "-i", "0.2", "-W", "1", &LbTopology::VIP.to_string()]) {
        Ok(Some(out)) => {
            let ok = out.contains(" 0% packet loss");
            check(
                &mut checks,
                ok,
                format!("ping {}: {}", LbTopology::VIP, out.lines().find(|l| l.contains("packet loss")).unwrap_or("?")),
            );
        }
        Ok(None) => println!("  skip ping is not installed (apt-get install iputils-ping)"),
        Err(e) => check(&mut checks, false, format!("ping {}: {e}", LbTopology::VIP)),
    }

    // Stop and report.
    let (status, report) = engine.stop(Duration::from_secs(10))?;
    if !status.success() {
        bail!("xskd run failed: {status}");
    }
    let report = report.context("reading the engine's JSON report")?;
    for l in report["lcores"].as_array().ok_or_else(|| anyhow!("no lcores in the report"))? {
        for app in l["apps"].as_array().into_iter().flatten() {
            let c = &app["counters"];
            let pick = |k: &str| c[k].as_u64().unwrap_or(0);
            println!(
                "engine {} app {}: to_backend {} to_client {} new_flows {} expired {} icmp_echo {} drops: no_flow {} table_full {} malformed {}",
                l["name"].as_str().unwrap_or("?"),
                app["name"].as_str().unwrap_or("?"),
                pick("to_backend"),
                pick("to_client"),
                pick("new_flows"),
                pick("expired"),
                pick("icmp_echo"),
                pick("drop_no_flow"),
                pick("drop_table_full"),
                pick("drop_malformed"),
            );
        }
    }
    let served: Vec<u64> =
        servers.iter().map(|s| s.counters().accepted.load(std::sync::atomic::Ordering::Relaxed)).collect();
    println!("backends accepted connections: {served:?}");
    let ok = checks.iter().all(|c| c.ok);
    let failed: Vec<&str> = checks.iter().filter(|c| !c.ok).map(|c| c.line.as_str()).collect();
    println!(
        "{}",
        if ok {
            "demo l4lb: PASS — every connection, byte and datagram went through the VIP to a backend and back"
                .to_string()
        } else {
            format!("demo l4lb: FAIL — {}", failed.join(" | "))
        }
    );
    drop(servers);
    drop(topo);
    Ok(ok)
}
