//! Configuration parsing and validation: every rule, every key, all problems at once.

use config::{parse, validate, BindMode, Claim, Environment, Hugepages, Idle, Overrides, PortPlanKind, XdpMode};

/// A fake machine: interfaces xd0..xd3 (2 queues each), CPUs 0..=1, apps relay/pktgen/http/mcast;
/// relay params must have a known `mode` if given; `peer` and `backend_port` name ports.
struct FakeEnv;

impl Environment for FakeEnv {
    type Params = toml::Table;
    fn iface_exists(&self, name: &str) -> bool {
        matches!(name, "xd0" | "xd1" | "xd2" | "xd3")
    }
    fn iface_queues(&self, name: &str) -> Option<u32> {
        self.iface_exists(name).then_some(2)
    }
    fn cpu_online(&self, cpu: usize) -> bool {
        cpu < 2
    }
    fn app_kinds(&self) -> Vec<String> {
        vec!["relay".into(), "pktgen".into(), "l4lb".into(), "http".into(), "mcast".into()]
    }
    fn parse_params(
        &self,
        kind: &str,
        params: &toml::Table,
    ) -> Option<Result<toml::Table, config::env::ParamProblems>> {
        if !self.app_kinds().iter().any(|k| k == kind) {
            return None;
        }
        Some(match (kind, params.get("mode").and_then(|m| m.as_str())) {
            ("relay", Some(m)) if !["io", "mac", "macswap"].contains(&m) => {
                Err(vec![("mode".into(), format!("unknown mode '{m}'"))])
            }
            _ => Ok(params.clone()),
        })
    }
    /// `claim_udp = { port = "xd0", dst_port = 9 }` asks for UDP to that port.
    fn port_claims(&self, params: &toml::Table) -> Vec<(String, config::ClaimRule)> {
        let Some(t) = params.get("claim_udp").and_then(|v| v.as_table()) else { return vec![] };
        let port = t.get("port").and_then(|v| v.as_str()).unwrap_or_default().to_string();
        let n = t.get("dst_port").and_then(|v| v.as_integer()).unwrap_or(0) as u16;
        let rule = config::ClaimRule { ethertype: Some(0x0800), proto: Some(17), dst: None, dst_port: Some((n, n)) };
        vec![(port, rule)]
    }
    fn port_refs(&self, params: &toml::Table) -> Vec<(String, String)> {
        ["peer", "client_port", "backend_port"]
            .iter()
            .filter_map(|k| params.get(*k).and_then(|v| v.as_str()).map(|v| (k.to_string(), v.to_string())))
            .collect()
    }
}

const MINIMAL: &str = r#"
[[port]]
name = "xd0"

[[queue]]
port = "xd0"
lcore = 1
app = "relay"
"#;

fn keys(errs: &[config::ConfigError]) -> Vec<String> {
    errs.iter().map(|e| e.key.clone()).collect()
}

fn invalid(text: &str) -> Vec<String> {
    let cfg = parse(text).expect("parses");
    keys(&validate(&cfg, &FakeEnv).expect_err("should be invalid"))
}

#[test]
fn minimal_config_gets_defaults() {
    let plan = validate(&parse(MINIMAL).unwrap(), &FakeEnv).unwrap();
    assert_eq!(plan.engine.burst, 64);
    assert_eq!(plan.engine.idle, Idle::Spin);
    assert_eq!(plan.engine.duration, None);
    assert_eq!(plan.umem.frames, 16384);
    assert_eq!(plan.umem.frame_size, 2048);
    assert_eq!(plan.umem.hugepages, Hugepages::TwoMeg);
    let PortPlanKind::Xsk(x) = &plan.ports[0].kind else { panic!() };
    assert_eq!(x.iface, "xd0");
    assert_eq!(x.mode, BindMode::Auto);
    assert_eq!(x.xdp_mode, XdpMode::Auto);
    assert!(x.need_wakeup);
    assert_eq!((x.rx_ring, x.tx_ring, x.fill_ring, x.comp_ring), (2048, 2048, 4096, 2048));
    assert_eq!(x.claim, Claim::All);
    assert_eq!(x.queues, vec![0]);
    assert_eq!(plan.lcores.len(), 1);
    assert_eq!(plan.lcores[0].cpu, 1);
    assert_eq!(plan.lcores[0].queues[0].app, 0);
    assert_eq!(plan.apps.len(), 1);
    assert_eq!((plan.apps[0].name.as_str(), plan.apps[0].kind.as_str()), ("relay@xd0:0", "relay"));
    assert_eq!(plan.apps[0].lcores, vec![0]);
}

#[test]
fn every_example_parses_and_validates() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let cfg = config::load(&p).unwrap_or_else(|e| panic!("{}: {e:?}", p.display()));
            validate(&cfg, &FakeEnv).unwrap_or_else(|e| panic!("{}: {e:?}", p.display()));
            n += 1;
        }
    }
    assert!(n >= 5, "expected at least 5 example files, found {n}");
}

#[test]
fn unknown_keys_at_every_level_are_reported_together() {
    let errs = parse(
        r#"
colour = 1
[engine]
burts = 32
[umem]
frame = 4096
[[port]]
name = "xd0"
rx_rnig = 64
busy_poll = { usec = 5 }
[[queue]]
port = "xd0"
lcore = 1
app = "relay"
lcores = 2
"#,
    )
    .unwrap_err();
    assert_eq!(
        keys(&errs),
        vec!["colour", "engine.burts", "umem.frame", "port[0].rx_rnig", "port[0].busy_poll.usec", "queue[0].lcores"]
    );
    assert!(errs[1].to_string().starts_with("engine.burts: unknown key (expected one of: burst,"));
}

#[test]
fn type_errors_carry_their_section() {
    let errs = parse("[engine]\nburst = \"x\"\n[[port]]\nname = \"xd0\"\nrx_ring = \"big\"\n[[queue]]\nport = \"xd0\"\napp = \"relay\"\n").unwrap_err();
    assert_eq!(keys(&errs), vec!["engine", "port[0]", "queue[0]"]);
    assert!(errs[0].message.contains("burst"), "{}", errs[0].message);
    assert!(errs[1].message.contains("rx_ring"), "{}", errs[1].message);
    assert!(errs[2].message.contains("lcore"), "{}", errs[2].message);
}

#[test]
fn syntax_error_names_the_line() {
    let errs = parse("[engine]\nburst = = 3\n").unwrap_err();
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].key, "line 2");
}

#[test]
fn enum_values_list_the_choices() {
    let errs = parse("[engine]\nidle = \"sleep\"\n").unwrap_err();
    assert!(errs[0].message.contains("expected one of: spin, poll, busy-poll"), "{}", errs[0].message);
}

#[test]
fn ring_sizes_must_be_powers_of_two_in_range() {
    let base = |extra: &str| {
        format!("[[port]]\nname = \"xd0\"\n{extra}\n[[queue]]\nport = \"xd0\"\nlcore = 1\napp = \"relay\"\n")
    };
    assert_eq!(invalid(&base("rx_ring = 1000")), vec!["port[0].rx_ring"]);
    assert_eq!(invalid(&base("tx_ring = 32")), vec!["port[0].tx_ring", "port[0].tx_ring"]);
    // An invalid ring is reported, and so is the UMEM it could not fit in.
    assert_eq!(invalid(&base("fill_ring = 32768")), vec!["port[0].fill_ring", "umem.frames"]);
    assert_eq!(invalid(&base("comp_ring = 0")), vec!["port[0].comp_ring"]);
    let e = validate(&parse(&base("rx_ring = 1000")).unwrap(), &FakeEnv).unwrap_err();
    assert_eq!(e[0].to_string(), "port[0].rx_ring: expected a power of two between 64 and 16384, got 1000");
}

#[test]
fn engine_and_umem_ranges() {
    let t = |s: &str| invalid(&format!("{s}\n{MINIMAL}"));
    assert_eq!(t("[engine]\nburst = 0"), vec!["engine.burst"]);
    assert_eq!(t("[engine]\nburst = 512"), vec!["engine.burst"]);
    assert_eq!(t("[engine]\nstats_interval_ms = 10"), vec!["engine.stats_interval_ms"]);
    assert_eq!(t("[engine]\nduration_secs = -1.0"), vec!["engine.duration_secs"]);
    assert_eq!(t("[umem]\nframe_size = 3000"), vec!["umem.frame_size"]);
    assert_eq!(t("[umem]\nframe_size = 65536"), vec!["umem.frame_size"]);
    assert_eq!(t("[umem]\nheadroom = 1800"), vec!["umem.headroom"]);
    assert_eq!(t("[umem]\nframes = 0"), vec!["umem.frames"]);
    assert_eq!(t("[umem]\nframes = 4096"), vec!["umem.frames"]);
    let e = validate(&parse(&format!("[umem]\nframes = 4096\n{MINIMAL}")).unwrap(), &FakeEnv).unwrap_err();
    assert!(e[0].message.contains("7296 needed"), "{}", e[0].message);
}

#[test]
fn environment_checks_name_the_key() {
    // Interface, queue, lcore, app: each wrong, each reported.
    let errs = invalid(
        r#"
[[port]]
name = "p0"
iface = "eth9"
[[port]]
name = "xd1"
[[queue]]
port = "p0"
lcore = 1
app = "relay"
[[queue]]
port = "xd1"
queue = 2
lcore = 7
app = "bridge"
"#,
    );
    assert_eq!(errs, vec!["port[0].iface", "queue[1].queue", "queue[1].lcore", "queue[1].app"]);
}

#[test]
fn several_problems_are_reported_at_once() {
    let text = r#"
[engine]
burst = 300
[umem]
frame_size = 1000
[[port]]
name = "xd0"
rx_ring = 100
[[port]]
name = "xd0"
[[queue]]
port = "nope"
lcore = 1
app = "relay"
[[queue]]
port = "xd0"
lcore = 1
app = "relay"
params = { mode = "bridge" }
[[queue]]
port = "xd0"
lcore = 0
app = "relay"
"#;
    let errs = invalid(text);
    assert_eq!(
        errs,
        vec![
            "engine.burst",
            "umem.frame_size",
            "port[0].rx_ring",
            "port[1].name",
            "queue[0].port",
            "queue[1].params.mode",
            "queue[2].queue"
        ]
    );
}

#[test]
fn ports_without_queues_and_configs_without_queues() {
    assert_eq!(invalid("[[port]]\nname = \"xd0\"\n"), vec!["port[0]", "queue"]);
    let errs = invalid(
        "[[port]]\nname = \"xd0\"\n[[port]]\nname = \"xd1\"\n[[queue]]\nport = \"xd0\"\nlcore = 1\napp = \"relay\"\n",
    );
    assert_eq!(errs, vec!["port[1]"]);
}

#[test]
fn null_ports() {
    let ok = "[[port]]\nname = \"n0\"\nkind = \"null\"\nnull_len = 60\n[[queue]]\nport = \"n0\"\nlcore = 0\napp = \"relay\"\n";
    let plan = validate(&parse(ok).unwrap(), &FakeEnv).unwrap();
    assert_eq!(plan.ports[0].kind, PortPlanKind::Null { len: 60, replay: None, rx: true });
    let bad = "[[port]]\nname = \"n0\"\nkind = \"null\"\nnull_len = 20\niface = \"xd0\"\nclaim = \"all\"\n[[queue]]\nport = \"n0\"\nlcore = 0\napp = \"relay\"\n";
    assert_eq!(invalid(bad), vec!["port[0].iface", "port[0].claim", "port[0].null_len"]);
    let bad = "[[port]]\nname = \"x\"\nnull_len = 64\n[[queue]]\nport = \"x\"\nlcore = 0\napp = \"relay\"\n";
    assert_eq!(invalid(bad), vec!["port[0].name", "port[0].null_len"]);
}

#[test]
fn names_and_busy_poll() {
    let t = |extra: &str| {
        invalid(&format!("[[port]]\nname = \"xd0\"\n{extra}\n[[queue]]\nport = \"xd0\"\nlcore = 1\napp = \"relay\"\n"))
    };
    assert_eq!(
        t("busy_poll = { usecs = 0, budget = 5000 }"),
        vec!["port[0].busy_poll.usecs", "port[0].busy_poll.budget"]
    );
    let errs = invalid("[[port]]\nname = \"bad name\"\n[[queue]]\nport = \"bad name\"\nlcore = 1\napp = \"relay\"\n");
    assert_eq!(errs, vec!["port[0].name", "port[0].name"]);
}

#[test]
fn claim_errors_surface_through_validation() {
    let errs = invalid("[[port]]\nname = \"xd0\"\nclaim = [{ proto = \"udp\", dst_port = \"9-1\" }]\n[[queue]]\nport = \"xd0\"\nlcore = 1\napp = \"relay\"\n");
    assert_eq!(errs, vec!["port[0].claim[0].dst_port"]);
}

#[test]
fn lcores_group_queues_sorted_by_cpu() {
    let text = r#"
[umem]
frames = 32768
[[port]]
name = "xd0"
[[port]]
name = "xd1"
[[queue]]
port = "xd1"
lcore = 1
app = "relay"
[[queue]]
port = "xd0"
lcore = 0
app = "relay"
[[queue]]
port = "xd0"
queue = 1
lcore = 1
app = "relay"
"#;
    let plan = validate(&parse(text).unwrap(), &FakeEnv).unwrap();
    assert_eq!(plan.lcores.iter().map(|l| l.cpu).collect::<Vec<_>>(), vec![0, 1]);
    assert_eq!(plan.lcores[1].queues.iter().map(|q| (q.port, q.queue)).collect::<Vec<_>>(), vec![(1, 0), (0, 1)]);
    let PortPlanKind::Xsk(x) = &plan.ports[0].kind else { panic!() };
    assert_eq!(x.queues, vec![0, 1]);
}

#[test]
fn overrides_replace_keys_of_the_same_name() {
    let mut cfg = parse(&format!("[engine]\nburst = 32\n{MINIMAL}")).unwrap();
    let ov = Overrides {
        burst: Some(16),
        hugepages: Some(Hugepages::None),
        mode: Some(BindMode::Copy),
        xdp_mode: Some(XdpMode::Generic),
        rx_ring: Some(512),
        duration_secs: Some(3.0),
        ..Default::default()
    };
    ov.apply(&mut cfg);
    let plan = validate(&cfg, &FakeEnv).unwrap();
    assert_eq!(plan.engine.burst, 16);
    assert_eq!(plan.umem.hugepages, Hugepages::None);
    assert_eq!(plan.engine.duration, Some(std::time::Duration::from_secs(3)));
    let PortPlanKind::Xsk(x) = &plan.ports[0].kind else { panic!() };
    assert_eq!((x.mode, x.xdp_mode, x.rx_ring), (BindMode::Copy, XdpMode::Generic, 512));
    // Overrides are validated like file values.
    let mut cfg = parse(MINIMAL).unwrap();
    Overrides { burst: Some(0), ..Default::default() }.apply(&mut cfg);
    assert_eq!(keys(&validate(&cfg, &FakeEnv).unwrap_err()), vec!["engine.burst"]);
}

#[test]
fn cli_values_parse_like_toml_values() {
    assert_eq!("busy-poll".parse::<Idle>(), Ok(Idle::BusyPoll));
    assert_eq!("zero-copy".parse::<BindMode>(), Ok(BindMode::ZeroCopy));
    assert_eq!("1G".parse::<Hugepages>(), Ok(Hugepages::OneGig));
    assert!("2m".parse::<Hugepages>().is_err());
}

#[test]
fn busy_poll_idle_gives_ports_busy_poll_options() {
    let plan_of = |engine: &str, port_extra: &str| {
        let text = format!(
            "[engine]\n{engine}\n[[port]]\nname = \"xd0\"\n{port_extra}\n[[port]]\nname = \"xd1\"\n\
             [[queue]]\nport = \"xd0\"\nlcore = 1\napp = \"relay\"\n[[queue]]\nport = \"xd1\"\nlcore = 1\napp = \"relay\"\n"
        );
        let plan = validate(&parse(&text).unwrap(), &FakeEnv).unwrap();
        plan.ports
            .iter()
            .map(|p| match &p.kind {
                PortPlanKind::Xsk(x) => x.busy_poll.map(|b| (b.usecs, b.budget)),
                _ => panic!("xsk port expected"),
            })
            .collect::<Vec<_>>()
    };
    // Spinning: no socket options unless a port asks.
    assert_eq!(plan_of("idle = \"spin\"", ""), vec![None, None]);
    assert_eq!(plan_of("idle = \"spin\"", "busy_poll = { usecs = 50 }"), vec![Some((50, 64)), None]);
    // busy-poll: every port busy-polls, with DPDK's defaults (20 µs, budget = burst) unless set.
    assert_eq!(plan_of("idle = \"busy-poll\"\nburst = 32", ""), vec![Some((20, 32)), Some((20, 32))]);
    assert_eq!(
        plan_of("idle = \"busy-poll\"", "busy_poll = { usecs = 10, budget = 16 }"),
        vec![Some((10, 16)), Some((20, 64))]
    );
}

/// One `[[app]]` instance spanning two ports and two lcores: each lcore gets one shard owning
/// its queues; params are parsed once into the plan.
#[test]
fn app_sections_span_queues_and_lcores() {
    let text = r#"
[umem]
frames = 65536
[[port]]
name = "xd0"
[[port]]
name = "xd1"
[[app]]
name = "lb"
kind = "relay"
params = { mode = "io", peer = "xd1" }
[[queue]]
port = "xd0"
lcore = 1
app = "lb"
[[queue]]
port = "xd1"
lcore = 1
app = "lb"
[[queue]]
port = "xd0"
queue = 1
lcore = 0
app = "lb"
[[queue]]
port = "xd1"
queue = 1
lcore = 0
app = "relay"
"#;
    let plan = validate(&parse(text).unwrap(), &FakeEnv).unwrap();
    assert_eq!(plan.apps.len(), 2);
    let lb = &plan.apps[0];
    assert_eq!((lb.name.as_str(), lb.kind.as_str()), ("lb", "relay"));
    assert_eq!(lb.params.get("peer").and_then(|v| v.as_str()), Some("xd1"));
    // lcores sorted by CPU: [cpu 0, cpu 1]; lb runs on both, shard 0 on cpu 0.
    assert_eq!(lb.lcores, vec![0, 1]);
    assert_eq!(lb.shard_on(1), Some(1));
    assert_eq!(plan.app_queues(1, 0).map(|q| (q.port, q.queue)).collect::<Vec<_>>(), vec![(0, 0), (1, 0)]);
    assert_eq!(plan.app_queues(0, 0).map(|q| (q.port, q.queue)).collect::<Vec<_>>(), vec![(0, 1)]);
    assert_eq!(plan.apps[1].name, "relay@xd1:1");
    assert_eq!(plan.apps[1].lcores, vec![0]);
}

#[test]
fn app_section_mistakes_are_reported_with_their_keys() {
    let errs = invalid(
        r#"
[[port]]
name = "xd0"
[[app]]
name = "relay"
kind = "relay"
[[app]]
name = "a"
kind = "bridge"
[[app]]
name = "b"
kind = "relay"
params = { mode = "x", peer = "nope" }
[[app]]
name = "b"
kind = "relay"
params = { peer = "nope" }
[[app]]
name = "idle"
kind = "relay"
[[queue]]
port = "xd0"
lcore = 1
app = "b"
params = { mode = "io" }
"#,
    );
    assert_eq!(
        errs,
        vec![
            "app[0].name",
            "app[1].kind",
            "app[2].params.mode",
            "app[3].name",
            "queue[0].params",
            "app[0]",
            "app[4]",
            "app[3].params.peer"
        ]
    );
}

#[test]
fn references_to_ports_are_checked_before_anything_runs() {
    let base = |extra: &str| {
        format!(
            "[[port]]\nname = \"xd0\"\n[[port]]\nname = \"n1\"\nkind = \"null\"\n{extra}\n\
             [[queue]]\nport = \"xd0\"\nlcore = 1\napp = \"relay\"\nparams = {{ peer = \"n1\" }}\n"
        )
    };
    // The peer exists but no lcore polls it.
    assert_eq!(invalid(&base("")), vec!["queue[0].params.peer"]);
    // Polled: fine.
    let ok = base("[[queue]]\nport = \"n1\"\nlcore = 1\napp = \"relay\"\n");
    validate(&parse(&ok).unwrap(), &FakeEnv).unwrap();
    // A peer naming no port at all.
    let bad =
        "[[port]]\nname = \"xd0\"\n[[queue]]\nport = \"xd0\"\nlcore = 1\napp = \"relay\"\nparams = { peer = \"p9\" }\n";
    assert_eq!(invalid(bad), vec!["queue[0].params.peer"]);
}

#[test]
fn check_refuses_what_the_kernel_would() {
    // Two ports on one interface: two XDP programs and fill rings would fight over it.
    let two = "[[port]]\nname = \"a\"\niface = \"xd0\"\n[[port]]\nname = \"b\"\niface = \"xd0\"\n\
               [[queue]]\nport = \"a\"\nlcore = 1\napp = \"relay\"\n[[queue]]\nport = \"b\"\nqueue = 1\nlcore = 1\napp = \"relay\"\n";
    assert_eq!(invalid(two), vec!["port[1].iface"]);
    // A headroom that would wrap a u32 sum around.
    assert_eq!(invalid(&format!("[umem]\nheadroom = 4294967295\n{MINIMAL}")), vec!["umem.headroom"]);
    // Chunks above 4 KiB need hugepage memory.
    assert_eq!(
        invalid(&format!("[umem]\nframe_size = 8192\nhugepages = \"none\"\nframes = 65536\n{MINIMAL}")),
        vec!["umem.frame_size"]
    );
    let plan = validate(&parse(&format!("[umem]\nframe_size = 8192\nframes = 65536\n{MINIMAL}")).unwrap(), &FakeEnv);
    assert!(plan.is_ok(), "{plan:?}");
}

/// A port without `claim` claims what its apps ask for; an explicit `claim` wins.
#[test]
fn ports_claim_what_their_apps_ask_for() {
    let text = r#"
[[port]]
name = "xd0"
[[port]]
name = "xd1"
claim = "all"
[[queue]]
port = "xd0"
lcore = 1
app = "relay"
params = { claim_udp = { port = "xd0", dst_port = 9 } }
[[queue]]
port = "xd1"
lcore = 1
app = "relay"
params = { claim_udp = { port = "xd1", dst_port = 7 } }
"#;
    let plan = validate(&parse(text).unwrap(), &FakeEnv).unwrap();
    let claims: Vec<Claim> = plan
        .ports
        .iter()
        .map(|p| match &p.kind {
            PortPlanKind::Xsk(x) => x.claim.clone(),
            _ => panic!(),
        })
        .collect();
    let rule = config::ClaimRule { ethertype: Some(0x0800), proto: Some(17), dst: None, dst_port: Some((9, 9)) };
    assert_eq!(claims, vec![Claim::Rules(vec![rule]), Claim::All]);
}
