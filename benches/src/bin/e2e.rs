//! `e2e`: the end-to-end benchmark harness.
//!
//! ```sh
//! cargo run --release -p benches --bin e2e -- tier1     # engine only: null ports vs testpmd net_null
//! cargo run --release -p benches --bin e2e -- --secs 4 --reps 2 smoke   # CI: relay-null.toml ≥ 2× testpmd
//! cargo run --release -p benches --bin e2e -- tier2     # veth copy mode: relay vs testpmd AF_XDP PMD
//! cargo run --release -p benches --bin e2e -- rfc       # zero-loss rate, max-load rate, latency: all systems
//! cargo run --release -p benches --bin e2e -- gens      # generator cross-check against kernel counters
//! cargo run --release -p benches --bin e2e -- ladder --size 1514 --rates-mpps 0.4,0.5   # many trials at fixed rates
//! cargo run --release -p benches --bin e2e -- l4        # L4 load balancer: nftables NAT, kernel, haproxy (, xskd)
//! ```
//!
//! Each benchmark runs xskd and its peer alternately within every repetition (so both see the
//! same machine state), pins the forwarding core and keeps everything else off it, samples once
//! per second, drops the first and last sample, and reports the median over repetitions with
//! the min–max. Results go to `bench-out/<bench>.json` and a Markdown table on stdout.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use benches::run::{bounded, cpus, have};
use benches::sample::{steady, Summary};
use benches::{peers, veth};
use clap::{Parser, Subcommand};
use serde_json::json;

#[derive(Parser, Debug)]
#[command(about = "xskd end-to-end benchmarks, side by side with their peers")]
struct Cli {
    /// Seconds per trial.
    #[arg(long, default_value_t = 8)]
    secs: u64,
    /// Repetitions.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// xskd binary (default: built with `cargo build --release -p apps`).
    #[arg(long)]
    xskd: Option<PathBuf>,
    /// Output directory for raw JSON.
    #[arg(long, default_value = "bench-out")]
    out: PathBuf,
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Subcommand, Debug)]
enum Bench {
    /// Engine only: relay over two null ports vs dpdk-testpmd over two net_null ports.
    Tier1 {
        /// Burst size (both systems).
        #[arg(long, default_value_t = 64)]
        burst: u32,
        /// Write the generated section of this Markdown file.
        #[arg(long)]
        write_md: Option<PathBuf>,
    },
    /// Engine only: the l4lb NAT over null ports replaying N active UDP flows vs the relay's io
    /// mode over the same ports, one lcore.
    Nat {
        /// Active flows (one frame each per replay pass, random order).
        #[arg(long, value_delimiter = ',', default_value = "1000,1000000")]
        flows: Vec<u32>,
        /// Burst size.
        #[arg(long, default_value_t = 64)]
        burst: u32,
        /// Write the generated section of this Markdown file.
        #[arg(long)]
        write_md: Option<PathBuf>,
    },
    /// The same NAT on 1, 2, 4 and 8 lcores (one shard each, flows spread over the queues as
    /// RSS would), engine only; lcore counts the machine cannot hold (CPU 0 stays the main
    /// CPU) are reported as skipped.
    Scale {
        /// Active flows.
        #[arg(long, default_value_t = 1_000_000)]
        flows: u32,
        /// Lcore counts.
        #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
        lcores: Vec<usize>,
        /// Burst size.
        #[arg(long, default_value_t = 64)]
        burst: u32,
        /// Write the generated section of this Markdown file.
        #[arg(long)]
        write_md: Option<PathBuf>,
    },
    /// CI performance smoke: `xskd run` on config/examples/relay-null.toml (relay io over two
    /// null ports, lcore 1) vs dpdk-testpmd io over two net_null ports on the same forwarding
    /// core, alternating; fails when the median per-repetition ratio is below `--min-ratio`.
    Smoke {
        /// Least acceptable xskd / testpmd ratio.
        #[arg(long, default_value_t = 2.0)]
        min_ratio: f64,
    },
    /// veth, copy mode: relay io between d0 and d1 vs dpdk-testpmd's AF_XDP PMD, live-frames
    /// generator on CPU 0, DUT forwarding core on CPU 1, XDP sink counting on s0.
    Tier2 {
        /// Burst size (both systems).
        #[arg(long, default_value_t = 64)]
        burst: u32,
        /// Frame lengths without FCS (60 = 64-byte frames).
        #[arg(long, value_delimiter = ',', default_value = "60,1514")]
        sizes: Vec<usize>,
        /// Forwarding modes.
        #[arg(long, value_delimiter = ',', default_value = "io")]
        modes: Vec<String>,
        /// Also count the DUT's syscalls with perf over each trial.
        #[arg(long)]
        syscalls: bool,
        /// Also measure the TX ceiling of the forwarding core: xskd pktgen vs testpmd txonly
        /// sending from d1 into the sink.
        #[arg(long)]
        tx_ceiling: bool,
        /// Write the generated section of this Markdown file.
        #[arg(long)]
        write_md: Option<PathBuf>,
    },
    /// Everything, writing the generated sections of BENCHMARKS.md and the plots: tier1, tier2
    /// (with syscall counts and TX ceilings), gens, rfc (all six systems, `--rx-ring 8192`), nat,
    /// scale, and l4 (all systems and measurements, `--syn-secs 8 --snat-addrs 8
    /// --conntrack-max 2097152`).
    All {
        /// The Markdown file to update.
        #[arg(long, default_value = "BENCHMARKS.md")]
        write_md: PathBuf,
    },
    /// Generator cross-check on one veth, one core: trafgen, UDP sendmmsg, xskd pktgen (AF_XDP
    /// and live frames), each sending an exact count, counted by the receiver's kernel.
    Gens {
        /// Frame sizes without FCS.
        #[arg(long, value_delimiter = ',', default_value = "60,1514")]
        sizes: Vec<usize>,
        /// Write the generated section of this Markdown file.
        #[arg(long)]
        write_md: Option<PathBuf>,
    },
    /// Loss ladder: at each fixed offered rate, many trials per system (systems alternate), and
    /// the fraction of trials that lost ≤ 0.01%. Complements `rfc` on a host whose rare stalls
    /// decide single trials.
    Ladder {
        /// Systems (as for rfc).
        #[arg(long, value_delimiter = ',', default_value = "xskd-io,testpmd-io")]
        systems: Vec<String>,
        /// Frame size without FCS, or "imix".
        #[arg(long, default_value = "1514")]
        size: String,
        /// Offered rates, Mpps.
        #[arg(long, value_delimiter = ',', required = true)]
        rates_mpps: Vec<f64>,
        /// Trials per (system, rate).
        #[arg(long, default_value_t = 10)]
        trials: usize,
        /// Seconds per trial.
        #[arg(long, default_value_t = 2.0)]
        trial_secs: f64,
        #[command(flatten)]
        dut: DutArgs,
    },
    /// The L4 load-balancer tier on veth, one DUT core: (a) new-flow rate (SYNs), (b) established
    /// UDP flows at 64 B, (c) new TCP connections per second end to end, (d) bulk TCP; for kernel
    /// forwarding (the no-NAT ceiling), nftables DNAT+SNAT with conntrack, haproxy `mode tcp`,
    /// and xskd `l4lb` (config: benches/src/l4sys.rs `xskd_l4lb_config`). Trials of
    /// --secs seconds (syn: --syn-secs), --reps repetitions.
    L4 {
        /// Systems: kernel, nftables, haproxy, xskd.
        #[arg(long, value_delimiter = ',', default_value = "kernel,nftables,haproxy,xskd")]
        systems: Vec<String>,
        /// Measurements: syn, udp, conn, bulk.
        #[arg(long, value_delimiter = ',', default_value = "syn,udp,conn,bulk")]
        measures: Vec<String>,
        /// Flow counts of the udp measurement.
        #[arg(long, value_delimiter = ',', default_value = "1000,1000000")]
        flows: Vec<u64>,
        /// Seconds of SYNs (long enough for conntrack's table to fill).
        #[arg(long, default_value_t = 10)]
        syn_secs: u64,
        /// Rate of the udp warm-up pass (each flow sent once), frames/s.
        #[arg(long, default_value_t = 150_000.0)]
        warm_pps: f64,
        /// Client threads of the conn measurement.
        #[arg(long, default_value_t = 16)]
        client_threads: usize,
        /// Generator burst.
        #[arg(long, default_value_t = 64)]
        burst: u32,
        /// Before each trial wait until other work is below this many cores (1-s samples) …
        #[arg(long, default_value_t = 0.3)]
        quiet_below: f64,
        /// … for at most this many seconds (0: do not wait); the table says how quiet it was.
        #[arg(long, default_value_t = 120)]
        quiet_wait: u64,
        /// SNAT addresses of the DUT (1..=8; one gives 64 512 ports per backend and protocol).
        #[arg(long, default_value_t = 1)]
        snat_addrs: u8,
        /// Raise the global `net.netfilter.nf_conntrack_max` to this for the run (restored after).
        #[arg(long)]
        conntrack_max: Option<u64>,
        /// TX checksum offload on for the client and backends (kernel peers only: TSO, 64 KB
        /// segments on veth; an AF_XDP DUT cannot take them).
        #[arg(long)]
        tx_offload: bool,
        /// Measure nothing: write the table of an earlier run's JSON (`bench-out/l4.json`), with
        /// this command's options describing that run.
        #[arg(long)]
        render: Option<PathBuf>,
        /// Write the generated section of this Markdown file.
        #[arg(long)]
        write_md: Option<PathBuf>,
    },
    /// RFC 2544-style: zero-loss throughput (binary search), forwarded rate at maximum offered
    /// load and latency at 10/50/90% of the zero-loss rate, for xskd, testpmd, the kernel and
    /// XDP, with xskd pktgen as the tester.
    Rfc {
        /// Systems: xskd-io, xskd-macswap, testpmd-io, testpmd-macswap, kernel, xdp.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "xskd-io,xskd-macswap,testpmd-io,testpmd-macswap,kernel,xdp"
        )]
        systems: Vec<String>,
        /// Frame sizes without FCS, or "imix".
        #[arg(long, value_delimiter = ',', default_value = "60,508,1514,imix")]
        sizes: Vec<String>,
        /// Seconds per search/latency trial.
        #[arg(long, default_value_t = 2.0)]
        trial_secs: f64,
        /// Burst.
        #[arg(long, default_value_t = 64)]
        burst: u32,
        /// Write plots and the generated sections of this Markdown file.
        #[arg(long)]
        write_md: Option<PathBuf>,
        #[command(flatten)]
        dut: DutArgs,
        /// Trials per offered rate in the zero-loss search …
        #[arg(long, default_value_t = 3)]
        trials: usize,
        /// … of which at least this many must lose ≤ 0.01% for the rate to pass.
        #[arg(long, default_value_t = 2)]
        need: usize,
    },
}

/// How the rfc and ladder tiers configure the AF_XDP devices under test.
#[derive(clap::Args, Debug, Clone)]
struct DutArgs {
    /// Idle mode of the xskd DUT (spin, poll, busy-poll). busy-poll (a recvfrom before each
    /// RX burst, with SO_PREFER_BUSY_POLL/SO_BUSY_POLL 20 µs/budget = burst on the ports) is
    /// close to what testpmd's AF_XDP driver does by default.
    #[arg(long, default_value = "busy-poll")]
    xskd_idle: String,
    /// RX ring size of the AF_XDP DUTs (xskd `rx_ring` with a fill ring twice that,
    /// testpmd `--rxd`/`--txd`); default: each system's own, 2048.
    #[arg(long)]
    rx_ring: Option<u32>,
}

/// Writes `text` as the generated section `name` of `md`, when a file was given.
fn write_section(md: Option<&Path>, name: &str, text: &str) -> Result<()> {
    md.map_or(Ok(()), |md| benches::report::update_section(md, name, text))
}

/// The command line that is running, as a user would type it (for the tables' "Command:").
fn invoked() -> String {
    format!("cargo run --release -p benches --bin e2e -- {}", std::env::args().skip(1).collect::<Vec<_>>().join(" "))
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace").to_path_buf()
}

fn xskd_binary(cli: &Cli) -> Result<PathBuf> {
    if let Some(p) = &cli.xskd {
        return Ok(p.clone());
    }
    let st = std::process::Command::new("cargo")
        .args(["build", "--release", "-q", "-p", "apps", "--bin", "xskd"])
        .current_dir(workspace_root())
        .status()
        .context("running cargo build for xskd")?;
    if !st.success() {
        bail!("building xskd failed");
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace_root().join("target"));
    Ok(target.join("release").join("xskd"))
}

fn null_config(fwd: usize, mode: &str, burst: u32, secs: u64) -> String {
    format!(
        "[engine]\nburst = {burst}\nduration_secs = {secs}\n[umem]\nframes = 8192\nhugepages = \"2M\"\n\
         [[port]]\nname = \"null0\"\nkind = \"null\"\nnull_len = 60\n[[port]]\nname = \"null1\"\nkind = \"null\"\nnull_len = 60\n{}",
        apps::relay::two_port_queues("null0", "null1", fwd, mode, [2, 0, 0, 0, 0, 0x11], [2, 0, 0, 0, 0, 0x10])
    )
}

/// One tier-1 trial of xskd: total forwarded pps (both directions), per-second samples.
fn xskd_null_trial(xskd: &Path, dir: &Path, main: usize, fwd: usize, mode: &str, burst: u32, secs: u64) -> Result<f64> {
    let cfg = dir.join(format!("null-{mode}.toml"));
    std::fs::write(&cfg, null_config(fwd, mode, burst, secs))?;
    xskd_run_trial(xskd, &cfg, main, &[]).map(|(pps, _)| pps)
}

/// Runs `xskd run --config cfg EXTRA…` with its main thread on CPU `main` (the config pins the
/// forwarding lcore); returns the steady total TX rate from the per-second lines, and stdout.
fn xskd_run_trial(xskd: &Path, cfg: &Path, main: usize, extra: &[String]) -> Result<(f64, String)> {
    let mut argv: Vec<String> =
        ["taskset", "-c", &main.to_string(), &xskd.to_string_lossy(), "run", "--config", &cfg.to_string_lossy()]
            .iter()
            .map(|s| s.to_string())
            .collect();
    argv.extend_from_slice(extra);
    let secs = extra
        .iter()
        .position(|a| a == "--duration-secs")
        .and_then(|i| extra.get(i + 1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(10.0);
    let r = bounded(&argv, Duration::from_secs_f64(secs + 15.0))?;
    if r.code != Some(0) {
        bail!("xskd failed ({:?}): {}", r.code, r.stderr.lines().last().unwrap_or(""));
    }
    let tx: Vec<f64> = peers::xskd_periods(&r.stdout).into_iter().map(|(_, tx)| tx).collect();
    if tx.is_empty() {
        bail!("no samples from xskd:\n{}", r.stdout);
    }
    Ok((steady(&tx), r.stdout))
}

/// The CI performance smoke (see `Bench::Smoke`).
fn smoke(cli: &Cli, min_ratio: f64) -> Result<()> {
    if !have("dpdk-testpmd") {
        bail!("dpdk-testpmd not found: apt-get install dpdk-dev");
    }
    if cpus() < 2 {
        bail!("smoke needs 2 CPUs: relay-null.toml pins its lcore to CPU 1");
    }
    let (main, fwd) = (0, 1);
    let xskd = xskd_binary(cli)?;
    let cfg = workspace_root().join("config/examples/relay-null.toml");
    let dir = tempdir()?;
    let json = dir.join("smoke.json");
    let extra: Vec<String> = ["--duration-secs", &cli.secs.to_string(), "--json", &json.to_string_lossy()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut ratios = Vec::new();
    for rep in 0..cli.reps {
        benches::interrupt::check()?;
        let (x, _) = xskd_run_trial(&xskd, &cfg, main, &extra)?;
        let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json)?)?;
        let forwarded = report["lcores"][0]["tx_packets"].as_u64().unwrap_or(0);
        let d = testpmd_null_trial(main, fwd, "io", 64, cli.secs)?;
        let ratio = x / d;
        println!(
            "smoke rep {rep}: xskd relay-null {:.2} Mpps ({forwarded} frames forwarded in {} s by its JSON report), \
             dpdk-testpmd net_null io {:.2} Mpps, ratio {ratio:.2}x",
            x / 1e6,
            cli.secs,
            d / 1e6
        );
        if forwarded == 0 {
            bail!("xskd's JSON report shows no forwarded frame: {report}");
        }
        ratios.push(ratio);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let s = Summary::of(&ratios);
    println!(
        "smoke: xskd / testpmd = {:.2}x median ({:.2}-{:.2}) over {} repetitions; required >= {min_ratio}x",
        s.median, s.min, s.max, cli.reps
    );
    if s.median < min_ratio {
        bail!("performance smoke failed: xskd is {:.2}x dpdk-testpmd, below {min_ratio}x", s.median);
    }
    Ok(())
}

fn testpmd_null_trial(main: usize, fwd: usize, mode: &str, burst: u32, secs: u64) -> Result<f64> {
    let argv = peers::testpmd_null(main, fwd, mode, burst);
    let r = bounded(&argv, Duration::from_secs(secs + 2))?;
    let tx: Vec<f64> = peers::testpmd_periods(&r.stdout).into_iter().map(|(_, tx)| tx).filter(|&v| v > 0.0).collect();
    if tx.is_empty() {
        bail!("no samples from dpdk-testpmd (exit {:?}):\n{}", r.code, r.stderr);
    }
    Ok(steady(&tx))
}

/// One run of `xskd run` on `config` pinned like tier 1; the steady TX rate (pps).
fn xskd_config_trial(xskd: &Path, dir: &Path, main: usize, name: &str, config: &str, secs: u64) -> Result<f64> {
    let cfg = dir.join(format!("{name}.toml"));
    std::fs::write(&cfg, config)?;
    let argv: Vec<String> =
        ["taskset", "-c", &main.to_string(), &xskd.to_string_lossy(), "run", "--config", &cfg.to_string_lossy()]
            .iter()
            .map(|s| s.to_string())
            .collect();
    let r = bounded(&argv, Duration::from_secs(secs + 30))?;
    if r.code != Some(0) {
        bail!("xskd ({name}) failed ({:?}): {}", r.code, r.stderr.lines().last().unwrap_or(""));
    }
    let tx: Vec<f64> = peers::xskd_periods(&r.stdout).into_iter().map(|(_, tx)| tx).collect();
    if tx.is_empty() {
        bail!("no samples from xskd ({name}):\n{}", r.stdout);
    }
    Ok(steady(&tx))
}

/// Writes a tier's raw JSON to `<out>/<name>.json` and returns its Markdown: `intro` (which
/// states the command line), then the table `header` and `rows`.
fn table(
    cli: &Cli,
    name: &str,
    raw: Vec<serde_json::Value>,
    intro: String,
    header: &str,
    rows: Vec<String>,
) -> Result<String> {
    std::fs::create_dir_all(&cli.out)?;
    std::fs::write(cli.out.join(format!("{name}.json")), serde_json::to_string_pretty(&json!({ name: raw }))?)?;
    let mut t = intro;
    t += header;
    for r in rows {
        t += &r;
        t.push('\n');
    }
    println!("{t}");
    Ok(t)
}

fn nat(cli: &Cli, flows: &[u32], burst: u32) -> Result<String> {
    let xskd = xskd_binary(cli)?;
    let n = cpus();
    if n < 2 {
        bail!("nat needs 2 CPUs: one main/control, one forwarding");
    }
    let (main, fwd) = (0, n - 1);
    let dir = tempdir()?;
    let mut rows = Vec::new();
    let mut raw = Vec::new();
    for &f in flows {
        let pcap = dir.join(format!("flows-{f}.pcap"));
        benches::nat::write_flows_pcap(&pcap, f, 0x5eed ^ u64::from(f))?;
        let (mut lb, mut io) = (Vec::new(), Vec::new());
        for rep in 0..cli.reps {
            benches::interrupt::check()?;
            let a = xskd_config_trial(
                &xskd,
                &dir,
                main,
                "nat-l4lb",
                &benches::nat::l4lb_config(&pcap, f, fwd, burst, cli.secs),
                cli.secs,
            )?;
            let b = xskd_config_trial(
                &xskd,
                &dir,
                main,
                "nat-relay",
                &benches::nat::relay_config(&pcap, fwd, burst, cli.secs),
                cli.secs,
            )?;
            eprintln!("nat {f} flows rep {rep}: l4lb {:.2} Mpps, relay io {:.2} Mpps", a / 1e6, b / 1e6);
            lb.push(a / 1e6);
            io.push(b / 1e6);
        }
        let ratios: Vec<f64> = lb.iter().zip(&io).map(|(a, b)| a / b).collect();
        let (sl, si, sr) = (Summary::of(&lb), Summary::of(&io), Summary::of(&ratios));
        rows.push(format!(
            "| {f} | 64 B (60 + FCS), UDP | {burst} | main {main}, forwarding {fwd} | {} | {} | {:.2}× ({:.2}–{:.2}) |",
            sl.fmt(2),
            si.fmt(2),
            sr.median,
            sr.min,
            sr.max
        ));
        raw.push(json!({ "flows": f, "burst": burst, "frame": 64, "l4lb_mpps": lb, "relay_io_mpps": io,
                         "ratio": ratios, "main_cpu": main, "fwd_cpu": fwd, "secs": cli.secs }));
    }
    let intro = format!(
        "Command: `{}`. Median (min–max) of {} repetitions of {} s, the two systems alternating; null ports (no kernel), one lcore, steady state (every flow established).\n\n",
        invoked(),
        cli.reps,
        cli.secs
    );
    let t = table(
        cli,
        "nat",
        raw,
        intro,
        "| active flows | frame | burst | cores | l4lb NAT Mpps | relay io Mpps | l4lb ÷ relay io |\n|---|---|---|---|---|---|---|\n",
        rows,
    )?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(t)
}

fn scale(cli: &Cli, flows: u32, counts: &[usize], burst: u32) -> Result<String> {
    let xskd = xskd_binary(cli)?;
    let n = cpus();
    let dir = tempdir()?;
    let pcap = dir.join(format!("flows-{flows}.pcap"));
    benches::nat::write_flows_pcap(&pcap, flows, 0x5ca1e)?;
    let mut rows = Vec::new();
    let mut raw = Vec::new();
    let mut base: Option<f64> = None;
    for &l in counts {
        if l + 1 > n {
            let why =
                format!("skipped: {l} lcores need {} CPUs (CPU 0 stays the main CPU); this machine has {n}", l + 1);
            eprintln!("scale {l}: {why}");
            rows.push(format!("| {l} | {flows} | – | – | – | {why} |"));
            raw.push(json!({ "lcores": l, "skipped": why }));
            continue;
        }
        let lcores: Vec<usize> = (1..=l).collect();
        let mut v = Vec::new();
        for rep in 0..cli.reps {
            benches::interrupt::check()?;
            let cfg = benches::nat::l4lb_config_on(&pcap, flows, &lcores, burst, cli.secs);
            let r = xskd_config_trial(&xskd, &dir, 0, &format!("scale-{l}"), &cfg, cli.secs)?;
            eprintln!("scale {l} lcores rep {rep}: {:.2} Mpps", r / 1e6);
            v.push(r / 1e6);
        }
        let s = Summary::of(&v);
        let b = *base.get_or_insert(s.median / l as f64);
        rows.push(format!(
            "| {l} | {flows} | {} | {:.2} | {:.2}× | |",
            s.fmt(2),
            s.median / l as f64,
            s.median / (b * l as f64)
        ));
        raw.push(json!({ "lcores": l, "flows": flows, "burst": burst, "mpps": v }));
    }
    let intro = format!(
        "Command: `{}`. Engine only (null ports replaying {flows} UDP flows, spread over the queues), one l4lb shard per lcore on CPUs 1…N, CPU 0 main; median (min–max) of {} repetitions of {} s.\n\n",
        invoked(),
        cli.reps,
        cli.secs
    );
    let t = table(
        cli,
        "scale",
        raw,
        intro,
        "| lcores | active flows | Mpps (total) | Mpps per lcore | of linear | note |\n|---|---|---|---|---|---|\n",
        rows,
    )?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(t)
}

fn tier1(cli: &Cli, burst: u32) -> Result<String> {
    if !have("dpdk-testpmd") {
        bail!("dpdk-testpmd not found: apt-get install dpdk-dev (Debian package of the peer)");
    }
    let xskd = xskd_binary(cli)?;
    let n = cpus();
    if n < 2 {
        bail!("tier1 needs 2 CPUs: one main/control, one forwarding");
    }
    let (main, fwd) = (0, n - 1);
    let dir = tempdir()?;
    let mut rows = Vec::new();
    let mut raw = Vec::new();
    for mode in ["io", "mac"] {
        let (mut x, mut d) = (Vec::new(), Vec::new());
        for rep in 0..cli.reps {
            benches::interrupt::check()?;
            let a = xskd_null_trial(&xskd, &dir, main, fwd, mode, burst, cli.secs)?;
            let b = testpmd_null_trial(main, fwd, mode, burst, cli.secs)?;
            eprintln!("tier1 {mode} rep {rep}: xskd {:.2} Mpps, testpmd {:.2} Mpps", a / 1e6, b / 1e6);
            x.push(a / 1e6);
            d.push(b / 1e6);
        }
        let (sx, sd) = (Summary::of(&x), Summary::of(&d));
        let ratios: Vec<f64> = x.iter().zip(&d).map(|(a, b)| a / b).collect();
        let sr = Summary::of(&ratios);
        rows.push(format!(
            "| {mode} | 64 B (60 + FCS) | {burst} | main {main}, forwarding {fwd} | {} | {} | **{:.2}×** ({:.2}–{:.2}) |",
            sx.fmt(2),
            sd.fmt(2),
            sr.median,
            sr.min,
            sr.max
        ));
        raw.push(
            json!({ "mode": mode, "burst": burst, "frame": 64, "xskd_mpps": x, "testpmd_mpps": d, "ratio": ratios,
                         "main_cpu": main, "fwd_cpu": fwd, "secs": cli.secs }),
        );
    }
    std::fs::create_dir_all(&cli.out)?;
    std::fs::write(cli.out.join("tier1.json"), serde_json::to_string_pretty(&json!({ "tier1": raw }))?)?;
    let mut t = format!(
        "Command: `{}`. Median (min–max) of {} repetitions of {} s, xskd and testpmd alternating.\n\n",
        invoked(),
        cli.reps,
        cli.secs
    );
    t += "| relay mode | frame | burst | cores | xskd Mpps (both ports) | dpdk-testpmd Mpps | ratio |\n|---|---|---|---|---|---|---|\n";
    for r in rows {
        t += &r;
        t.push('\n');
    }
    println!("{t}");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(t)
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

fn tier2(cli: &Cli, burst: u32, sizes: &[usize], modes: &[String], syscalls: bool, tx_ceiling: bool) -> Result<String> {
    if !have("dpdk-testpmd") {
        bail!("dpdk-testpmd not found: apt-get install dpdk-dev librte-net-af-xdp23");
    }
    if syscalls && !have("perf") {
        bail!("perf not found: apt-get install linux-perf");
    }
    let xskd = xskd_binary(cli)?;
    if cpus() < 2 {
        bail!("tier2 needs 2 CPUs: generator + NAPI on one, forwarding on the other");
    }
    let dir = tempdir()?;
    let opts = |len| veth::TrialOpts {
        len,
        secs: cli.secs,
        gen_cpu: 0,
        fwd_cpu: 1,
        main_cpu: 0,
        rate_pps: None,
        count_syscalls: syscalls,
        burst,
        dir: dir.clone(),
    };
    let mut rows = Vec::new();
    let mut raw = Vec::new();
    for mode in modes {
        let mode = leak(mode);
        for &len in sizes {
            let (mut x, mut d) = (Vec::new(), Vec::new());
            for rep in 0..cli.reps {
                benches::interrupt::check()?;
                let a = veth::trial(veth::Dut::Xskd(mode), &xskd, &opts(len))?;
                let b = veth::trial(veth::Dut::Testpmd(mode), &xskd, &opts(len))?;
                eprintln!(
                    "tier2 {mode} {len} B rep {rep}: xskd {:.3} Mpps (loss {:.1}%, {:?} sc/pkt, {:?} sendto/pkt), \
                     testpmd {:.3} Mpps (loss {:.1}%, {:?} sc/pkt, {:?} sendto/pkt); offered {:.2}/{:.2} Mpps",
                    a.fwd_mpps,
                    a.loss * 100.0,
                    a.syscalls_per_pkt,
                    a.sendto_per_pkt,
                    b.fwd_mpps,
                    b.loss * 100.0,
                    b.syscalls_per_pkt,
                    b.sendto_per_pkt,
                    a.offered_mpps,
                    b.offered_mpps
                );
                x.push(a);
                d.push(b);
            }
            let xm: Vec<f64> = x.iter().map(|t| t.fwd_mpps).collect();
            let dm: Vec<f64> = d.iter().map(|t| t.fwd_mpps).collect();
            let ratios: Vec<f64> = xm.iter().zip(&dm).map(|(a, b)| a / b).collect();
            let (sx, sd, sr) = (Summary::of(&xm), Summary::of(&dm), Summary::of(&ratios));
            let loss = |v: &[veth::Trial]| Summary::of(&v.iter().map(|t| t.loss * 100.0).collect::<Vec<_>>());
            let offered = Summary::of(&x.iter().chain(&d).map(|t| t.offered_mpps).collect::<Vec<_>>());
            let sc = |v: &[veth::Trial], f: fn(&veth::Trial) -> Option<f64>| {
                let s: Vec<f64> = v.iter().filter_map(f).collect();
                if s.is_empty() {
                    "–".to_string()
                } else {
                    format!("{:.4}", Summary::of(&s).median)
                }
            };
            rows.push(format!(
                "| {mode} | {} B ({len} + FCS) | {burst} | gen+NAPI 0, fwd 1 | {:.2} | {} ({:.0}% loss) | {} ({:.0}% loss) | **{:.2}×** ({:.2}–{:.2}) | {} / {} | {} / {} |",
                len + 4,
                offered.median,
                sx.fmt(3),
                loss(&x).median,
                sd.fmt(3),
                loss(&d).median,
                sr.median,
                sr.min,
                sr.max,
                sc(&x, |t| t.syscalls_per_pkt),
                sc(&x, |t| t.sendto_per_pkt),
                sc(&d, |t| t.syscalls_per_pkt),
                sc(&d, |t| t.sendto_per_pkt),
            ));
            raw.push(json!({ "mode": mode, "len": len, "burst": burst, "xskd": x, "testpmd": d, "ratio": ratios,
                             "gen_cpu": 0, "fwd_cpu": 1, "secs": cli.secs, "copy_mode": true }));
        }
    }
    let mut ceil_rows = Vec::new();
    if tx_ceiling {
        for &len in sizes {
            let (mut x, mut d) = (Vec::new(), Vec::new());
            for rep in 0..cli.reps {
                benches::interrupt::check()?;
                let a = veth::trial(veth::Dut::XskdTx, &xskd, &opts(len))?;
                let b = veth::trial(veth::Dut::TestpmdTx, &xskd, &opts(len))?;
                eprintln!(
                    "tier2 TX ceiling {len} B rep {rep}: xskd pktgen {:.3} Mpps, testpmd txonly {:.3} Mpps",
                    a.fwd_mpps, b.fwd_mpps
                );
                x.push(a);
                d.push(b);
            }
            let xm: Vec<f64> = x.iter().map(|t| t.fwd_mpps).collect();
            let dm: Vec<f64> = d.iter().map(|t| t.fwd_mpps).collect();
            let ratios: Vec<f64> = xm.iter().zip(&dm).map(|(a, b)| a / b).collect();
            let sr = Summary::of(&ratios);
            ceil_rows.push(format!(
                "| {} B ({len} + FCS) | {burst} | TX core 1 (sink on the same core) | {} | {} | **{:.2}×** ({:.2}–{:.2}) |",
                len + 4,
                Summary::of(&xm).fmt(3),
                Summary::of(&dm).fmt(3),
                sr.median,
                sr.min,
                sr.max
            ));
            raw.push(
                json!({ "tx_ceiling": true, "len": len, "burst": burst, "xskd": x, "testpmd": d, "ratio": ratios }),
            );
        }
    }
    std::fs::create_dir_all(&cli.out)?;
    std::fs::write(cli.out.join("tier2.json"), serde_json::to_string_pretty(&json!({ "tier2": raw }))?)?;
    let mut t = format!(
        "Command: `{}`. \
         Topology gen [g0] ⇄ [d0] dut [d1] ⇄ [s0] sink, copy mode (veth has no zero-copy); generator: in-kernel \
         live frames on g0 pinned to CPU 0 (d0's receive runs there too); DUT forwarding core CPU 1 (its TX into d1 \
         runs s0's XDP counting sink on the same core); forwarded rate counted by the sink, per second, median of the \
         steady seconds; median (min–max) of {} repetitions, xskd and testpmd alternating. Loss is at maximum offered \
         load (the generator offers ~6–9 Mpps). Syscalls per packet: `perf stat -e raw_syscalls:sys_enter,syscalls:sys_enter_sendto` \
         on the DUT process over the traffic window, divided by the frames the sink counted; trials of {} s.\n\n",
        invoked(),
        cli.reps,
        cli.secs
    );
    t += "| relay mode | frame | burst | cores | offered Mpps | xskd Mpps (loss) | dpdk-testpmd Mpps (loss) | ratio | xskd syscalls / sendto per pkt | testpmd syscalls / sendto per pkt |\n|---|---|---|---|---|---|---|---|---|---|\n";
    for r in rows {
        t += &r;
        t.push('\n');
    }
    if !ceil_rows.is_empty() {
        t += "\nTX ceiling of the forwarding core (no generator; the DUT core only transmits into d1, s0's sink runs on the same core):\n\n";
        t += "| frame | burst | cores | xskd pktgen TX Mpps | dpdk-testpmd txonly Mpps | ratio |\n|---|---|---|---|---|---|\n";
        for r in ceil_rows {
            t += &r;
            t.push('\n');
        }
    }
    println!("{t}");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(t)
}

fn all(cli: &Cli, md: &Path) -> Result<()> {
    let t = tier1(cli, 64)?;
    benches::report::update_section(md, "tier1", &t)?;
    let t = tier2(cli, 64, &[60, 1514], &["io".to_string(), "macswap".to_string()], true, true)?;
    benches::report::update_section(md, "tier2", &t)?;
    gens(cli, &[60, 1514], Some(md))?;
    let systems: Vec<String> = ["xskd-io", "xskd-macswap", "testpmd-io", "testpmd-macswap", "kernel", "xdp"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let sizes: Vec<String> = ["60", "508", "1514", "imix"].iter().map(|s| s.to_string()).collect();
    // 8192-slot RX rings for the AF_XDP DUTs: with 2048 the zero-loss rate on a shared VM is set by
    // how long the vCPU is taken away (BENCHMARKS.md, "What decides zero loss on this VM").
    let dut = DutArgs { xskd_idle: "busy-poll".to_string(), rx_ring: Some(8192) };
    rfc(cli, &systems, &sizes, 2.0, 64, Some(md), &dut, benches::rfc2544::Trials::at_least(2, 3))?;
    benches::report::update_section(md, "nat", &nat(cli, &[1000, 1_000_000], 64)?)?;
    benches::report::update_section(md, "scale", &scale(cli, 1_000_000, &[1, 2, 4, 8], 64)?)?;
    // The L4 tier as BENCHMARKS.md reads it: every system and measurement, 8 SNAT addresses and
    // a conntrack limit above 1 M flows so that the 1 M-flow UDP run fits both NATs.
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    l4(
        cli,
        &strings(&["kernel", "nftables", "haproxy", "xskd"]),
        &strings(&["syn", "udp", "conn", "bulk"]),
        &[1000, 1_000_000],
        8,
        150_000.0,
        16,
        64,
        (0.3, 45),
        8,
        Some(2_097_152),
        false,
        None,
        Some(md),
    )
}

fn gens(cli: &Cli, sizes: &[usize], md: Option<&Path>) -> Result<()> {
    use benches::crossgen::{set_xskd_binary, trial, Amount, CrossOpts, GenKind, GenSpec};
    if !have("trafgen") {
        bail!("trafgen not found: apt-get install netsniff-ng");
    }
    set_xskd_binary(xskd_binary(cli)?);
    let kinds = [GenKind::Trafgen, GenKind::Sendmmsg, GenKind::XskdXsk, GenKind::XskdLive];
    let mut t = format!(
        "Command: `{}`. \
         One veth pair (g0 → d0), generator pinned to CPU 0, d0's receive in softirq on the same core (the veth \
         default), an XDP program on d0 counting and dropping. Each generator sends an exact count; the rate is \
         d0's kernel `rx_packets` over the receiver's active window; \"claimed vs kernel\" is the largest relative \
         difference over the repetitions between what the generator says it sent and d0's `rx_packets` \
         (limit 0.1%). Median (min–max) of the repetitions; the generators take turns in a rotated order every \
         repetition, and \"vs trafgen\" is the ratio within each repetition, median (min–max).\n\n\
         | generator | frame | Mpps (kernel count) | vs trafgen | claimed vs kernel |\n|---|---|---|---|---|\n",
        invoked()
    );
    let mut raw = Vec::new();
    for &len in sizes {
        // pps[rep][kind]; the generators take turns in a different order every repetition.
        let mut pps = vec![vec![f64::NAN; kinds.len()]; cli.reps];
        let mut worst = vec![0.0f64; kinds.len()];
        for (rep, row) in pps.iter_mut().enumerate() {
            benches::interrupt::check()?;
            for turn in 0..kinds.len() {
                let k = (turn + rep) % kinds.len();
                let kind = kinds[k];
                let count = match kind {
                    GenKind::XskdLive => 20_000_000,
                    GenKind::XskdXsk => 2_000_000,
                    _ => 1_000_000,
                };
                let o = CrossOpts { gen: GenSpec { kind, len, amount: Amount::Count(count), cpu: 0 }, rx_cpu: None };
                let r = trial(&o).with_context(|| format!("{} {len} B", kind.label()))?;
                r.check()?;
                eprintln!(
                    "gens {} {len} B rep {rep}: {:.3} Mpps, claimed {} kernel {} sink {}",
                    kind.label(),
                    r.pps / 1e6,
                    r.gen.claimed,
                    r.kernel_rx.rx_packets,
                    r.sink_rx
                );
                worst[k] = worst[k].max(r.claimed_vs_kernel);
                row[k] = r.pps / 1e6;
                let mut j = serde_json::to_value(&r)?;
                j["rep"] = rep.into();
                j["turn"] = turn.into();
                raw.push(j);
            }
        }
        for (k, kind) in kinds.iter().enumerate() {
            let mine: Vec<f64> = pps.iter().map(|row| row[k]).collect();
            let ratio: Vec<f64> = pps.iter().map(|row| row[k] / row[0]).collect();
            t += &format!(
                "| {} | {} B ({len} + FCS) | {} | {} | {:.4}% |\n",
                kind.label(),
                len + 4,
                Summary::of(&mine).fmt(3),
                if k == 0 { "1.00×".to_string() } else { Summary::of(&ratio).fmt_ratio() },
                worst[k] * 100.0
            );
        }
    }
    std::fs::create_dir_all(&cli.out)?;
    std::fs::write(cli.out.join("gens.json"), serde_json::to_string_pretty(&raw)?)?;
    println!("{t}");
    write_section(md, "gens", &t)?;
    Ok(())
}

fn parse_size(s: &str) -> Result<benches::rfc::Size> {
    use benches::rfc::Size;
    if s == "imix" {
        Ok(Size::Imix)
    } else {
        s.parse().map(Size::Fixed).map_err(|e| anyhow::anyhow!("size '{s}': {e}"))
    }
}

/// What the rfc and ladder tiers share before their first trial: the systems parsed, tools
/// checked, the harness pinned to the tester's CPU 0, a scratch directory and the options.
fn tester_setup(
    cli: &Cli,
    systems: &[String],
    trial_secs: f64,
    burst: u32,
    dut: &DutArgs,
    trials: benches::rfc2544::Trials,
) -> Result<(Vec<benches::rfc::System>, benches::rfc::RfcOpts)> {
    use benches::rfc::System;
    let systems: Vec<System> = systems
        .iter()
        .map(|s| System::parse(s).ok_or_else(|| anyhow::anyhow!("unknown system '{s}'")))
        .collect::<Result<_>>()?;
    benches::rfc::check_tools(&systems)?;
    if cpus() < 2 {
        bail!("needs 2 CPUs: tester on one, forwarding on the other");
    }
    // Nothing of ours may run on the DUT's CPU: the harness, `ip`, the tester's control thread
    // and every process they start inherit this affinity (the DUTs pin their own lcores).
    nic::sys::pin_current_thread(0).context("pinning the harness to the tester's CPU 0")?;
    let o = benches::rfc::RfcOpts {
        trial_secs,
        max_secs: 3.0,
        max_loss: 1e-4,
        trials,
        resolution: 0.02,
        tester_cpu: 0,
        fwd_cpu: 1,
        main_cpu: 0,
        burst,
        xskd_idle: dut.xskd_idle.clone(),
        rx_ring: dut.rx_ring,
        xskd: xskd_binary(cli)?,
        dir: tempdir()?,
    };
    Ok((systems, o))
}

fn ladder(
    cli: &Cli,
    systems: &[String],
    size: &str,
    rates_mpps: &[f64],
    trials: usize,
    trial_secs: f64,
    dut: &DutArgs,
) -> Result<()> {
    use benches::rfc::ladder;
    let size = parse_size(size)?;
    let (systems, o) = tester_setup(cli, systems, trial_secs, 64, dut, benches::rfc2544::Trials::all(1))?;
    let dir = o.dir.clone();
    let mut points = Vec::new();
    for &r in rates_mpps {
        // Systems alternate at each rate, in halves, so slow drift of the host hits both.
        let half = trials.div_ceil(2);
        let mut by_sys: Vec<Option<benches::rfc::LadderPoint>> = vec![None; systems.len()];
        for chunk in [half, trials - half] {
            for (i, &sys) in systems.iter().enumerate() {
                if chunk == 0 {
                    continue;
                }
                let p = ladder(sys, size, r * 1e6, chunk, &o)?;
                match &mut by_sys[i] {
                    Some(acc) => acc.shots.extend(p.shots),
                    slot => *slot = Some(p),
                }
            }
        }
        for p in by_sys.into_iter().flatten() {
            let losses: Vec<String> =
                p.shots.iter().map(|s| format!("{:.3}%(+{} tester)", s.loss * 100.0, s.tester_drops)).collect();
            println!(
                "ladder {} {} at {:.3} Mpps: {}/{} trials loss ≤ 0.01% (offered {:.3} Mpps median) losses [{}]",
                p.system.label(),
                p.size.label(),
                r,
                p.passes(o.max_loss),
                p.shots.len(),
                benches::sample::median(&p.shots.iter().map(|s| s.offered_pps / 1e6).collect::<Vec<_>>()),
                losses.join(" ")
            );
            points.push(p);
        }
    }
    std::fs::create_dir_all(&cli.out)?;
    std::fs::write(cli.out.join("ladder.json"), serde_json::to_string_pretty(&points)?)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn rfc(
    cli: &Cli,
    systems: &[String],
    sizes: &[String],
    trial_secs: f64,
    burst: u32,
    md: Option<&Path>,
    dut: &DutArgs,
    trials: benches::rfc2544::Trials,
) -> Result<()> {
    use benches::rfc::{measure, RfcResult, Size};
    let sizes: Vec<Size> = sizes.iter().map(|s| parse_size(s)).collect::<Result<_>>()?;
    let (systems, o) = tester_setup(cli, systems, trial_secs, burst, dut, trials)?;
    let dir = o.dir.clone();
    // results[system][size] = reps
    let mut all: Vec<Vec<Vec<RfcResult>>> = vec![vec![Vec::new(); sizes.len()]; systems.len()];
    for rep in 0..cli.reps {
        benches::interrupt::check()?;
        for (zi, &size) in sizes.iter().enumerate() {
            for (si, &sys) in systems.iter().enumerate() {
                let r = measure(sys, size, &o).with_context(|| format!("{} {}", sys.label(), size.label()))?;
                eprintln!(
                    "rfc rep {rep} {} {}: zero-loss {:.3} Mpps{} | max load: offered {:.3} fwd {:.3} Mpps loss {:.2}%",
                    sys.label(),
                    size.label(),
                    r.zero_loss_pps.unwrap_or(0.0) / 1e6,
                    if r.tester_bound { " (tester-bound)" } else { "" },
                    r.max_load.offered_pps / 1e6,
                    r.max_load.fwd_pps / 1e6,
                    r.max_load.loss * 100.0
                );
                all[si][zi].push(r);
            }
        }
    }
    std::fs::create_dir_all(&cli.out)?;
    std::fs::write(cli.out.join("rfc.json"), serde_json::to_string_pretty(&all)?)?;
    let table = rfc_table(&systems, &sizes, &all, &o, cli.reps);
    println!("{table}");
    if let Some(md) = md {
        let plot_dir = md.parent().unwrap_or(Path::new(".")).join("docs");
        std::fs::create_dir_all(&plot_dir)?;
        let subtitle = format!(
            "veth copy mode, tester CPU {}, DUT CPU {}, burst {burst}, AF_XDP RX rings {}, median of {} reps",
            o.tester_cpu,
            o.fwd_cpu,
            o.rx_ring.map_or("2048 (default)".to_string(), |n| n.to_string()),
            cli.reps
        );
        let series: Vec<(String, Vec<(usize, f64)>)> = systems
            .iter()
            .enumerate()
            .map(|(si, s)| {
                let pts = sizes
                    .iter()
                    .enumerate()
                    .map(|(zi, z)| {
                        let v: Vec<f64> = all[si][zi].iter().map(|r| r.zero_loss_pps.unwrap_or(0.0) / 1e6).collect();
                        (z.wire_bytes(), Summary::of(&v).median)
                    })
                    .collect();
                (s.label().to_string(), pts)
            })
            .collect();
        benches::plot::throughput_vs_size(
            &plot_dir.join("throughput.svg"),
            "Zero-loss throughput vs frame size",
            &subtitle,
            &series,
        )?;
        // Latency CDF at 50% of each system's zero-loss rate, first size, first repetition.
        let cdfs: Vec<(String, Vec<(f64, f64)>)> = systems
            .iter()
            .enumerate()
            .filter_map(|(si, s)| {
                let r = all[si].first()?.first()?;
                let (_, shot) = r.latency.iter().find(|(f, _)| (*f - 0.5).abs() < 1e-9)?;
                let pts: Vec<(f64, f64)> = shot.latency_cdf.iter().map(|&(ns, q)| (ns.max(1) as f64, q)).collect();
                (!pts.is_empty()).then(|| (s.label().to_string(), pts))
            })
            .collect();
        benches::plot::latency_cdf(
            &plot_dir.join("latency-cdf.svg"),
            &format!("One-way latency at 50% of the zero-loss rate, {}", sizes[0].label()),
            &subtitle,
            &cdfs,
        )?;
        benches::report::update_section(md, "rfc", &table)?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn rfc_table(
    systems: &[benches::rfc::System],
    sizes: &[benches::rfc::Size],
    all: &[Vec<Vec<benches::rfc::RfcResult>>],
    o: &benches::rfc::RfcOpts,
    reps: usize,
) -> String {
    let mut t = String::new();
    t += &format!(
        "Command: `{}`. \
         Tester: `xskd pktgen` (AF_XDP copy mode) on CPU {} sending on g0 and receiving on s0; the harness and everything it \
         starts are pinned to that CPU too, so the DUT's CPU runs only the DUT; DUT forwarding on CPU {}; \
         burst {}; xskd with `idle = \"{}\"`; AF_XDP DUTs' RX rings: {}; search trials of {} s, a rate passes when {} of {} trials lose ≤ {}%, \
         resolution {}% of the tester's maximum; the zero-loss rate is what the tester actually offered in the passing \
         trials (on veth a DUT can make the tester's TX wait, so it can be below the rate asked for); \
         median (min–max) of {reps} repetitions. Latency is one-way g0 → s0 through the DUT (p50 / p99, µs) \
         at 10%, 50%, 90% of the zero-loss rate. \"tester-bound\": the DUT forwarded everything the tester could send.\n\n",
        invoked(),
        o.tester_cpu,
        o.fwd_cpu,
        o.burst,
        o.xskd_idle,
        match o.rx_ring {
            Some(n) => format!("{n} slots (xskd `rx_ring = {n}`, fill ring {}; testpmd `--rxd={n}`)", 2 * n),
            None => "each system's default, 2048 slots".to_string(),
        },
        o.trial_secs,
        o.trials.need,
        o.trials.of,
        o.max_loss * 100.0,
        o.resolution * 100.0
    );
    t += "| system | frame | zero-loss Mpps | vs testpmd (same mode; io for kernel, XDP) | max offered Mpps | fwd at max Mpps (loss) | latency p50/p99 µs @10% | @50% | @90% |\n";
    t += "|---|---|---|---|---|---|---|---|---|\n";
    let tp_io = systems.iter().position(|s| *s == benches::rfc::System::TestpmdIo);
    let tp_ms = systems.iter().position(|s| *s == benches::rfc::System::TestpmdMacswap);
    for (zi, z) in sizes.iter().enumerate() {
        for (si, s) in systems.iter().enumerate() {
            let tp = match s {
                benches::rfc::System::XskdMacswap | benches::rfc::System::TestpmdMacswap => tp_ms,
                _ => tp_io,
            };
            let v = &all[si][zi];
            let zl: Vec<f64> = v.iter().map(|r| r.zero_loss_pps.unwrap_or(0.0) / 1e6).collect();
            let bound = v.iter().filter(|r| r.tester_bound).count();
            let ratio = tp.map_or("–".to_string(), |ti| {
                let r: Vec<f64> = v
                    .iter()
                    .zip(&all[ti][zi])
                    .map(|(a, b)| a.zero_loss_pps.unwrap_or(0.0) / b.zero_loss_pps.unwrap_or(f64::NAN))
                    .collect();
                format!("{:.2}×", Summary::of(&r).median)
            });
            let off: Vec<f64> = v.iter().map(|r| r.max_load.offered_pps / 1e6).collect();
            let fwd: Vec<f64> = v.iter().map(|r| r.max_load.fwd_pps / 1e6).collect();
            let loss: Vec<f64> = v.iter().map(|r| r.max_load.loss * 100.0).collect();
            let lat = |f: f64| {
                let p = |k: &str| {
                    let x: Vec<f64> = v
                        .iter()
                        .filter_map(|r| r.latency.iter().find(|(g, _)| (*g - f).abs() < 1e-9))
                        .filter_map(|(_, s)| s.latency.as_ref()?.get(k)?.as_f64())
                        .collect();
                    if x.is_empty() {
                        f64::NAN
                    } else {
                        Summary::of(&x).median / 1e3
                    }
                };
                format!("{:.1} / {:.1}", p("p50_ns"), p("p99_ns"))
            };
            t += &format!(
                "| {} | {} | {}{} | {} | {} | {} ({:.1}%) | {} | {} | {} |\n",
                s.label(),
                z.label(),
                Summary::of(&zl).fmt(3),
                if bound > 0 { format!(" tester-bound {bound}/{}", v.len()) } else { String::new() },
                ratio,
                Summary::of(&off).fmt(3),
                Summary::of(&fwd).fmt(3),
                Summary::of(&loss).median,
                lat(0.1),
                lat(0.5),
                lat(0.9)
            );
        }
    }
    t
}

/// Debian packages of the L4 tier's peers and tools.
const L4_PACKAGES: &[&str] = &["nftables", "conntrack", "haproxy", "iperf3", "iproute2"];

#[allow(clippy::too_many_arguments)]
fn l4(
    cli: &Cli,
    systems: &[String],
    measures: &[String],
    flows: &[u64],
    syn_secs: u64,
    warm_pps: f64,
    client_threads: usize,
    burst: u32,
    quiet: (f64, u64),
    snat_addrs: u8,
    conntrack_max: Option<u64>,
    tx_offload: bool,
    render: Option<&Path>,
    md: Option<&Path>,
) -> Result<()> {
    use benches::l4::{trial, L4Opts, Measure};
    use benches::l4sys::L4System;
    let systems: Vec<L4System> = systems
        .iter()
        .map(|s| {
            L4System::parse(s).ok_or_else(|| anyhow::anyhow!("unknown system '{s}' (kernel, nftables, haproxy, xskd)"))
        })
        .collect::<Result<_>>()?;
    let mut ms = Vec::new();
    for m in measures {
        match m.as_str() {
            "syn" => ms.push(Measure::Syn),
            "udp" => ms.extend(flows.iter().map(|&n| Measure::Udp(n))),
            "conn" => ms.push(Measure::Conn),
            "bulk" => ms.push(Measure::Bulk),
            o => bail!("unknown measurement '{o}' (syn, udp, conn, bulk)"),
        }
    }
    let opts = |xskd: PathBuf, dir: PathBuf| L4Opts {
        xskd,
        dir,
        secs: cli.secs,
        syn_secs,
        gen_cpu: 0,
        dut_cpu: 1,
        burst,
        warm_pps,
        client_threads,
        quiet_below: quiet.0,
        quiet_wait: Duration::from_secs(quiet.1),
        snat_addrs,
        tx_offload,
    };
    if let Some(j) = render {
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(j)?)?;
        let meta: benches::l4report::L4Meta = serde_json::from_value(v["meta"].clone())?;
        let trials: Vec<benches::l4::L4Trial> = serde_json::from_value(v["trials"].clone())?;
        let table = benches::l4report::markdown(&meta, &opts("xskd".into(), "".into()), &systems, &ms, &trials);
        println!("{table}");
        return write_section(md, "l4", &table);
    }
    benches::run::ensure_packages(L4_PACKAGES).context("installing the L4 peers")?;
    if cpus() < 2 {
        bail!("l4 needs 2 CPUs: generator and clients on one, the DUT on the other");
    }
    // Global (root namespace) sysctl: raised for the run only, restored when the guard drops.
    let _ct_max = conntrack_max
        .map(|n| benches::kernel::SysctlGuard::set("net/netfilter/nf_conntrack_max", &n.to_string()))
        .transpose()?;
    let meta0 = l4_meta_start();
    // Everything of ours (and every process it starts) stays off the DUT's CPU.
    nic::sys::pin_current_thread(0).context("pinning the harness to CPU 0")?;
    let o = opts(xskd_binary(cli)?, tempdir()?);
    std::fs::create_dir_all(&cli.out)?;
    let mut trials = Vec::new();
    for rep in 0..cli.reps {
        benches::interrupt::check()?;
        for &m in &ms {
            // A different order every repetition: slow drift of the host hits every system.
            let n = systems.len();
            for k in 0..n {
                let sys = systems[(k + rep) % n];
                if !m.applies(sys) {
                    continue;
                }
                benches::interrupt::check()?;
                let t = trial(sys, m, rep, &o)?;
                eprintln!(
                    "l4 rep {rep} {} {}: {:.3} {} (CPU busy {:?}) {}",
                    m.name(),
                    sys.name(),
                    t.value,
                    t.unit,
                    t.cpu_busy.iter().map(|b| (b * 100.0).round()).collect::<Vec<_>>(),
                    t.extra
                );
                trials.push(t);
                let meta = benches::l4report::L4Meta { loadavg: (meta0.loadavg.0.clone(), loadavg()), ..meta0.clone() };
                std::fs::write(
                    cli.out.join("l4.json"),
                    serde_json::to_string_pretty(&json!({ "meta": meta, "trials": trials }))?,
                )?;
            }
        }
    }
    let meta = benches::l4report::L4Meta { loadavg: (meta0.loadavg.0.clone(), loadavg()), ..meta0 };
    let table = benches::l4report::markdown(&meta, &o, &systems, &ms, &trials);
    println!("{table}");
    write_section(md, "l4", &table)?;
    let _ = std::fs::remove_dir_all(&o.dir);
    Ok(())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_string()
}

/// The conditions of an L4 run, taken before it starts.
fn l4_meta_start() -> benches::l4report::L4Meta {
    let c0 = benches::run::cpu_times();
    std::thread::sleep(Duration::from_secs(1));
    let idle_check = benches::run::cpu_busy(&c0, &benches::run::cpu_times());
    let first_line = |argv: &[&str]| {
        std::process::Command::new(argv[0])
            .args(&argv[1..])
            .output()
            .map(|o| {
                let t = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
                t.lines().next().unwrap_or("").trim().to_string()
            })
            .unwrap_or_else(|e| format!("({e})"))
    };
    let mut versions = std::collections::BTreeMap::new();
    versions.insert("kernel".to_string(), first_line(&["uname", "-r"]));
    versions.insert("nft".to_string(), first_line(&["nft", "--version"]));
    versions.insert("haproxy".to_string(), first_line(&["haproxy", "-v"]));
    versions.insert("iperf3".to_string(), first_line(&["iperf3", "--version"]));
    benches::l4report::L4Meta {
        command: invoked(),
        loadavg: (loadavg(), String::new()),
        idle_check,
        conntrack_max: benches::l4::conntrack_max(),
        ipvs: ipvs_status(),
        versions,
    }
}

/// Whether this kernel has IPVS: `/proc/net/ip_vs` and the kernel config.
fn ipvs_status() -> String {
    let proc_ = Path::new("/proc/net/ip_vs").exists();
    let cfg =
        std::process::Command::new("zcat").arg("/proc/config.gz").output().ok().map(|o| {
            String::from_utf8_lossy(&o.stdout).lines().find(|l| l.contains("CONFIG_IP_VS")).map(str::to_string)
        });
    let cfg_text = match cfg {
        Some(Some(l)) => format!("kernel config: `{l}`"),
        Some(None) => "kernel config: CONFIG_IP_VS not set".into(),
        None => "kernel config unreadable".into(),
    };
    if proc_ {
        format!("present (/proc/net/ip_vs exists; {cfg_text}) but not measured by this tier yet")
    } else {
        format!("not available in this kernel, not measured (/proc/net/ip_vs absent; {cfg_text}; no modules to load)")
    }
}

fn tempdir() -> Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("xskd-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

/// Debian packages of the peers and tools the harness runs.
const PACKAGES: &[&str] =
    &["dpdk-dev", "librte-net-af-xdp23", "libxdp1", "netsniff-ng", "linux-perf", "ethtool", "iproute2"];

fn main() -> Result<()> {
    let cli = Cli::parse();
    benches::interrupt::install()?;
    let packages = if matches!(cli.bench, Bench::Smoke { .. }) { &["dpdk-dev"][..] } else { PACKAGES };
    benches::run::ensure_packages(packages).context("installing the peers")?;
    match cli.bench {
        Bench::Smoke { min_ratio } => smoke(&cli, min_ratio),
        Bench::Tier1 { burst, ref write_md } => write_section(write_md.as_deref(), "tier1", &tier1(&cli, burst)?),
        Bench::Nat { ref flows, burst, ref write_md } => {
            write_section(write_md.as_deref(), "nat", &nat(&cli, flows, burst)?)
        }
        Bench::Scale { flows, ref lcores, burst, ref write_md } => {
            write_section(write_md.as_deref(), "scale", &scale(&cli, flows, lcores, burst)?)
        }
        Bench::All { ref write_md } => all(&cli, write_md),
        Bench::Gens { ref sizes, ref write_md } => gens(&cli, sizes, write_md.as_deref()),
        Bench::Rfc { ref systems, ref sizes, trial_secs, burst, ref write_md, ref dut, trials, need } => {
            let trials = benches::rfc2544::Trials::at_least(need, trials);
            rfc(&cli, systems, sizes, trial_secs, burst, write_md.as_deref(), dut, trials)
        }
        Bench::Ladder { ref systems, ref size, ref rates_mpps, trials, trial_secs, ref dut } => {
            ladder(&cli, systems, size, rates_mpps, trials, trial_secs, dut)
        }
        Bench::L4 {
            ref systems,
            ref measures,
            ref flows,
            syn_secs,
            warm_pps,
            client_threads,
            burst,
            quiet_below,
            quiet_wait,
            snat_addrs,
            conntrack_max,
            tx_offload,
            ref render,
            ref write_md,
        } => l4(
            &cli,
            systems,
            measures,
            flows,
            syn_secs,
            warm_pps,
            client_threads,
            burst,
            (quiet_below, quiet_wait),
            snat_addrs,
            conntrack_max,
            tx_offload,
            render.as_deref(),
            write_md.as_deref(),
        ),
        Bench::Tier2 { burst, ref sizes, ref modes, syscalls, tx_ceiling, ref write_md } => {
            write_section(write_md.as_deref(), "tier2", &tier2(&cli, burst, sizes, modes, syscalls, tx_ceiling)?)
        }
    }
}
