//! `xskd`: the daemon and its tools.
//!
//! * `xskd run --config FILE [overrides]`: run the engine as configured until SIGINT/SIGTERM or
//!   `duration_secs`; one line per lcore per second, a summary at the end.
//! * `xskd check --config FILE`: validate only.
//! * `xskd demo`: build a gen ⇄ dut ⇄ sink topology of veth pairs in network namespaces, relay
//!   kernel-generated UDP through the engine in both directions, report, tear down.
//! * `xskd cleanup IFACE…`: remove what a killed run left attached.
//! * `xskd ctl --socket PATH APP COMMAND…`: runtime commands to a running daemon's apps.
//!
//! Exit codes: 0 success, 1 runtime failure, 2 invalid configuration (nothing was attached).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "xskd", version, about = "DPDK-style packet engine on AF_XDP")]
struct Cli {
    /// Log filter (tracing env-filter syntax), e.g. "info" or "xskd=debug".
    #[arg(long, global = true, default_value = "info", env = "XSKD_LOG")]
    log: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the engine as configured.
    Run(RunArgs),
    /// Generate traffic (and receive it on another port): rates, sizes, flows, loss, latency.
    Pktgen(Box<apps::pktgen_cmd::PktgenArgs>),
    /// Validate a configuration and print the resolved plan.
    Check(CheckArgs),
    /// Relay kernel UDP traffic through the engine on a throw-away veth topology.
    Demo(apps::demo::DemoArgs),
    /// Remove XDP programs a killed run left on interfaces.
    Cleanup(CleanupArgs),
    /// Send a command to a running daemon's apps (`apps` lists them; `APP help` their commands).
    Ctl(CtlArgs),
}

#[derive(Args, Debug)]
struct CtlArgs {
    /// The daemon's control socket ([engine] control_socket).
    #[arg(long, short, env = "XSKD_CONTROL_SOCKET")]
    socket: PathBuf,
    /// The request: `apps`, or an app instance name followed by its command.
    #[arg(required = true, trailing_var_arg = true)]
    request: Vec<String>,
}

/// CLI flags that override TOML keys of the same name (port-level keys apply to every port).
#[derive(Args, Debug, Default)]
struct OverrideArgs {
    /// [engine] burst: frames per RX burst.
    #[arg(long)]
    burst: Option<u32>,
    /// [engine] idle: spin | poll | busy-poll.
    #[arg(long)]
    idle: Option<String>,
    /// [engine] duration_secs: stop after this many seconds.
    #[arg(long)]
    duration_secs: Option<f64>,
    /// [engine] stats_interval_ms.
    #[arg(long)]
    stats_interval_ms: Option<u64>,
    /// [engine] control_socket: path of the control socket (`xskd ctl`).
    #[arg(long)]
    control_socket: Option<String>,
    /// [umem] frames.
    #[arg(long)]
    frames: Option<u32>,
    /// [umem] frame_size.
    #[arg(long)]
    frame_size: Option<u32>,
    /// [umem] hugepages: 2M | 1G | none.
    #[arg(long)]
    hugepages: Option<String>,
    /// [[port]] mode: copy | zero-copy | auto (all ports).
    #[arg(long)]
    mode: Option<String>,
    /// [[port]] xdp_mode: native | generic | auto (all ports).
    #[arg(long)]
    xdp_mode: Option<String>,
    /// [[port]] need_wakeup (all ports).
    #[arg(long)]
    need_wakeup: Option<bool>,
    /// [[port]] rx_ring (all ports).
    #[arg(long)]
    rx_ring: Option<u32>,
    /// [[port]] tx_ring (all ports).
    #[arg(long)]
    tx_ring: Option<u32>,
    /// [[port]] fill_ring (all ports).
    #[arg(long)]
    fill_ring: Option<u32>,
    /// [[port]] comp_ring (all ports).
    #[arg(long)]
    comp_ring: Option<u32>,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Configuration file (TOML).
    #[arg(long, short)]
    config: PathBuf,
    #[command(flatten)]
    overrides: OverrideArgs,
    /// Write the final report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Create this file once every socket is bound and registered (for scripts and tests).
    #[arg(long)]
    ready_file: Option<PathBuf>,
    /// Do not print per-interval lines.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args, Debug)]
struct CheckArgs {
    /// Configuration file (TOML).
    #[arg(long, short)]
    config: PathBuf,
    #[command(flatten)]
    overrides: OverrideArgs,
}

#[derive(Args, Debug)]
struct CleanupArgs {
    /// Interfaces to clean.
    #[arg(required = true)]
    ifaces: Vec<String>,
    /// Also detach xskd links held by live processes.
    #[arg(long)]
    force: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter =
        tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
    match cli.cmd {
        Cmd::Run(a) => run(a),
        Cmd::Check(a) => check(a),
        Cmd::Demo(a) => match apps::demo::run(&a) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                eprintln!("xskd demo: {e:#}");
                ExitCode::from(1)
            }
        },
        Cmd::Cleanup(a) => cleanup(a),
        Cmd::Ctl(a) => match apps::control::request(&a.socket, &a.request.join(" ")) {
            Ok((text, ok)) => {
                if ok {
                    if !text.is_empty() {
                        println!("{text}");
                    }
                    ExitCode::SUCCESS
                } else {
                    eprintln!("xskd ctl: {text}");
                    ExitCode::from(1)
                }
            }
            Err(e) => {
                eprintln!("xskd ctl: {e:#}");
                ExitCode::from(1)
            }
        },
        Cmd::Pktgen(a) => pktgen(a),
    }
}

fn pktgen(a: Box<apps::pktgen_cmd::PktgenArgs>) -> ExitCode {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            eprintln!("xskd: cannot install signal handler: {e}");
            return ExitCode::from(1);
        }
    }
    match apps::pktgen_cmd::run(&a, stop) {
        Ok(Some(o)) => {
            if a.json {
                println!("{}", serde_json::to_string_pretty(&o).expect("json"));
            } else {
                print!("{}", apps::pktgen_cmd::human(&o));
            }
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::from(2),
        Err(e) => {
            eprintln!("xskd pktgen: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn overrides(o: &OverrideArgs) -> Result<config::Overrides, Vec<config::ConfigError>> {
    let mut errs = Vec::new();
    fn parse<T: std::str::FromStr>(key: &str, v: &Option<String>, errs: &mut Vec<config::ConfigError>) -> Option<T>
    where
        T::Err: std::fmt::Display,
    {
        v.as_deref().and_then(|s| match s.parse::<T>() {
            Ok(x) => Some(x),
            Err(e) => {
                errs.push(config::ConfigError { key: format!("--{}", key.replace('_', "-")), message: e.to_string() });
                None
            }
        })
    }
    let ov = config::Overrides {
        burst: o.burst,
        idle: parse("idle", &o.idle, &mut errs),
        duration_secs: o.duration_secs,
        stats_interval_ms: o.stats_interval_ms,
        control_socket: o.control_socket.clone(),
        frames: o.frames,
        frame_size: o.frame_size,
        hugepages: parse("hugepages", &o.hugepages, &mut errs),
        mode: parse("mode", &o.mode, &mut errs),
        xdp_mode: parse("xdp_mode", &o.xdp_mode, &mut errs),
        need_wakeup: o.need_wakeup,
        rx_ring: o.rx_ring,
        tx_ring: o.tx_ring,
        fill_ring: o.fill_ring,
        comp_ring: o.comp_ring,
    };
    if errs.is_empty() {
        Ok(ov)
    } else {
        Err(errs)
    }
}

/// Loads, overrides and validates; prints every problem and returns None on failure.
fn load_plan(path: &std::path::Path, o: &OverrideArgs) -> Option<apps::registry::Plan> {
    let report = |errs: Vec<config::ConfigError>| {
        eprintln!("xskd: {} configuration problem(s) in {}:", errs.len(), path.display());
        for e in errs {
            eprintln!("  {e}");
        }
    };
    let mut cfg = match config::load(path) {
        Ok(c) => c,
        Err(errs) => {
            report(errs);
            return None;
        }
    };
    match overrides(o) {
        Ok(ov) => ov.apply(&mut cfg),
        Err(errs) => {
            report(errs);
            return None;
        }
    }
    let env = apps::system_env();
    match config::validate(&cfg, &env) {
        Ok(p) => Some(p),
        Err(errs) => {
            report(errs);
            None
        }
    }
}

fn check(a: CheckArgs) -> ExitCode {
    match load_plan(&a.config, &a.overrides) {
        Some(plan) => {
            println!(
                "{}: valid — {} port(s), {} lcore(s), burst {}",
                a.config.display(),
                plan.ports.len(),
                plan.lcores.len(),
                plan.engine.burst
            );
            ExitCode::SUCCESS
        }
        None => ExitCode::from(2),
    }
}

fn run(a: RunArgs) -> ExitCode {
    let Some(plan) = load_plan(&a.config, &a.overrides) else {
        return ExitCode::from(2);
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            eprintln!("xskd: cannot install signal handler: {e}");
            return ExitCode::from(1);
        }
    }
    let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
    let ready_file = a.ready_file.clone();
    let waiter = std::thread::spawn(move || {
        if ready_rx.recv().is_ok() {
            if let Some(p) = ready_file {
                if let Err(e) = std::fs::write(&p, format!("{}\n", std::process::id())) {
                    eprintln!("xskd: cannot write ready file {}: {e}", p.display());
                }
            }
        }
    });
    let opts = apps::daemon::RunOptions { stop, print_lines: !a.quiet, on_ready: Some(ready_tx), on_apps: None };
    let result = apps::daemon::run(&plan, opts);
    let _ = waiter.join();
    match result {
        Ok(report) => {
            println!("{}", apps::report::summary(&report));
            if let Some(p) = &a.json {
                let text = serde_json::to_string_pretty(&apps::report::json(&report)).expect("json");
                if let Err(e) = std::fs::write(p, text) {
                    eprintln!("xskd: cannot write {}: {e}", p.display());
                    return ExitCode::from(1);
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xskd: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn cleanup(a: CleanupArgs) -> ExitCode {
    let mut ok = true;
    for i in &a.ifaces {
        let opts = nic::xdp::CleanupOptions { detach_live_links: a.force };
        match nic::xdp::cleanup_with(i, &opts) {
            Ok(r) => println!("{r}"),
            Err(e) => {
                eprintln!("xskd cleanup {i}: {e}");
                ok = false;
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
