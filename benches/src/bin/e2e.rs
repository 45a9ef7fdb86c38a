//! `e2e`: the end-to-end benchmark harness.
//!
//! ```sh
//! cargo run --release -p benches --bin e2e -- tier1     # engine only: null ports vs testpmd net_null
//! cargo run --release -p benches --bin e2e -- tier2     # veth copy mode: relay vs testpmd AF_XDP PMD
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
    },
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
    let dst = |m: &str| if mode == "mac" { format!(", dst_mac = \"{m}\"") } else { String::new() };
    format!(
        r#"[engine]
burst = {burst}
duration_secs = {secs}
[umem]
frames = 8192
hugepages = "2M"
[[port]]
name = "null0"
kind = "null"
null_len = 60
[[port]]
name = "null1"
kind = "null"
null_len = 60
[[queue]]
port = "null0"
lcore = {fwd}
app = "relay"
params = {{ mode = "{mode}", peer = "null1"{d1} }}
[[queue]]
port = "null1"
lcore = {fwd}
app = "relay"
params = {{ mode = "{mode}", peer = "null0"{d0} }}
"#,
        d1 = dst("02:00:00:00:00:11"),
        d0 = dst("02:00:00:00:00:10"),
    )
}

/// One tier-1 trial of xskd: total forwarded pps (both directions), per-second samples.
fn xskd_null_trial(xskd: &Path, dir: &Path, main: usize, fwd: usize, mode: &str, burst: u32, secs: u64) -> Result<f64> {
    let cfg = dir.join(format!("null-{mode}.toml"));
    std::fs::write(&cfg, null_config(fwd, mode, burst, secs))?;
    let argv: Vec<String> =
        ["taskset", "-c", &main.to_string(), &xskd.to_string_lossy(), "run", "--config", &cfg.to_string_lossy()]
            .iter()
            .map(|s| s.to_string())
            .collect();
    let r = bounded(&argv, Duration::from_secs(secs + 15))?;
    if r.code != Some(0) {
        bail!("xskd failed ({:?}): {}", r.code, r.stderr.lines().last().unwrap_or(""));
    }
    let tx: Vec<f64> = peers::xskd_periods(&r.stdout).into_iter().map(|(_, tx)| tx).collect();
    if tx.is_empty() {
        bail!("no samples from xskd:\n{}", r.stdout);
    }
    Ok(steady(&tx))
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

fn tier1(cli: &Cli, burst: u32) -> Result<()> {
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
    println!("| relay mode | frame | burst | cores | xskd Mpps (both ports) | dpdk-testpmd Mpps | ratio |");
    println!("|---|---|---|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

fn tier2(cli: &Cli, burst: u32, sizes: &[usize], modes: &[String], syscalls: bool, tx_ceiling: bool) -> Result<()> {
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
    println!(
        "| relay mode | frame | burst | cores | offered Mpps | xskd Mpps (loss) | dpdk-testpmd Mpps (loss) | ratio | xskd syscalls / sendto per pkt | testpmd syscalls / sendto per pkt |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
    if !ceil_rows.is_empty() {
        println!();
        println!("| frame | burst | cores | xskd pktgen TX Mpps | dpdk-testpmd txonly Mpps | ratio |");
        println!("|---|---|---|---|---|---|");
        for r in ceil_rows {
            println!("{r}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn tempdir() -> Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("xskd-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.bench {
        Bench::Tier1 { burst } => tier1(&cli, burst),
        Bench::Tier2 { burst, ref sizes, ref modes, syscalls, tx_ceiling } => {
            tier2(&cli, burst, sizes, modes, syscalls, tx_ceiling)
        }
    }
}
