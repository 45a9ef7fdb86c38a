//! The app registry: every app of this build declared **once**, and what is derived from that
//! declaration — the kind names, [`AppParams`] (typed parameters, parsed once during
//! validation and stored in the plan), [`AnyApp`] (the enum the lcores run: static dispatch,
//! one `match` per burst, no `dyn` per packet) and [`AppHandle`] (what a caller may watch
//! while an instance runs).
//!
//! Apps are compiled in, as testpmd's forwarding modes and VPP's graph nodes are. An app
//! contributes one [`AppKind`] implementation (on its parameter type: parse, the ports it
//! names, whether its shards hand frames to each other, how to build a shard) and one line
//! in the [`apps!`] list below. Neither the daemon nor validation knows any app by name.

use engine::{App, Batch, Ctx, Ingress, Instant, PortId, Shard, TxPort};

use crate::control::{ControlCtx, Controller};
use crate::params::ParamErrors;

/// One queue of the shard being built.
#[derive(Debug, Clone)]
pub struct QueueInfo {
    /// The port, as frames from it are marked ([`Ingress::port`]).
    pub port: PortId,
    /// Port name.
    pub port_name: String,
    /// Queue id.
    pub queue: u32,
    /// The queue as a TX target of this lcore.
    pub tx: TxPort,
}

/// What an app shard may learn about its surroundings while being built.
pub struct BuildCtx<'a> {
    /// Instance name.
    pub name: &'a str,
    /// This shard.
    pub shard: Shard,
    /// Number of shards of the instance (lcores it runs on).
    pub shards: u16,
    /// Frames per RX burst (the most a `process` call sees at once).
    pub burst: usize,
    /// The shard's own queues, in file order (at least one).
    pub queues: &'a [QueueInfo],
    /// Resolves a port name to a TX target reachable from this lcore (its own queue of that
    /// port, or a handoff ring to the lcore that polls it). Every port the parameters name
    /// ([`AppKind::port_refs`]) and every port of the shard's queues resolves.
    pub resolve: &'a dyn Fn(&str) -> Option<TxPort>,
    /// The id of a port by name.
    pub port_id: &'a dyn Fn(&str) -> Option<PortId>,
    /// MAC address of a port (interface MAC; synthetic for null ports).
    pub mac_of: &'a dyn Fn(&str) -> Option<[u8; 6]>,
}

impl std::fmt::Debug for BuildCtx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildCtx").field("name", &self.name).field("shard", &self.shard).finish()
    }
}

impl BuildCtx<'_> {
    /// The shard's first queue (apps that work on one queue use it).
    pub fn first(&self) -> &QueueInfo {
        &self.queues[0]
    }

    /// TX target of port `name`, or an error naming what the app wanted it for.
    pub fn tx_of(&self, name: &str, what: &str) -> Result<TxPort, String> {
        (self.resolve)(name).ok_or_else(|| format!("{what} port '{name}' has no queue this lcore can reach"))
    }
}

/// An app kind, implemented by its parameter type.
pub trait AppKind: Sized + Clone + PartialEq + std::fmt::Debug {
    /// The app (one shard).
    type App;
    /// Whether shards of one instance hand frames to each other ([`engine::Verdict::Handoff`]);
    /// the daemon then connects every pair of shards with a bounded ring.
    const SHARD_HANDOFF: bool = false;
    /// Parses and validates a `params` table; every problem is reported with its key.
    fn parse(t: &toml::Table) -> Result<Self, ParamErrors>;
    /// Ports the parameters name, as (key, port name): validation checks that each exists and
    /// is polled, the daemon gives every shard a TX target for each.
    fn port_refs(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
    /// Builds the shard described by `cx`.
    fn build(&self, cx: &BuildCtx<'_>) -> Result<Self::App, String>;
    /// Traffic the app needs on its ports (a port without an explicit `claim` claims the union
    /// of what its apps ask for).
    fn claims(&self) -> Vec<(String, config::ClaimRule)> {
        Vec::new()
    }
    /// The instance's control-thread side, if it has work off the data path or runtime
    /// commands.
    fn controller(&self, _cx: &ControlCtx<'_>) -> Option<Box<dyn Controller>> {
        None
    }
    /// Problems with running as `shards` shards, as (key, message) (validation).
    fn check_shards(&self, _shards: usize) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// What a caller may watch or drive while an instance runs (taken before the apps move into
/// their lcores).
#[derive(Debug, Clone)]
pub enum AppHandle {
    /// A pktgen shard's live and final results.
    Pktgen(crate::pktgen::PktgenHandle),
}

impl AppHandle {
    /// The pktgen results, if this is a pktgen shard's handle.
    pub fn pktgen(&self) -> Option<&crate::pktgen::PktgenHandle> {
        match self {
            AppHandle::Pktgen(h) => Some(h),
        }
    }
}

/// Declares the apps: `Variant => "kind": ParamsType`, with `ParamsType: AppKind`.
macro_rules! apps {
    ($( $(#[$m:meta])* $variant:ident => $kind:literal : $params:ty ),+ $(,)?) => {
        /// Names of the app kinds this build knows.
        pub const APPS: &[&str] = &[$($kind),+];

        /// Parsed parameters of an app instance, one variant per kind.
        #[derive(Debug, Clone, PartialEq)]
        pub enum AppParams {
            $( $(#[$m])* $variant(Box<$params>), )+
        }

        impl AppParams {
            /// Parses `t` for `kind`; `None` when the kind is unknown.
            pub fn parse(kind: &str, t: &toml::Table) -> Option<Result<AppParams, ParamErrors>> {
                match kind {
                    $( $kind => Some(<$params as AppKind>::parse(t).map(|p| AppParams::$variant(Box::new(p)))), )+
                    _ => None,
                }
            }

            /// The kind's name.
            pub fn kind(&self) -> &'static str {
                match self { $( AppParams::$variant(_) => $kind, )+ }
            }

            /// Ports the parameters name (see [`AppKind::port_refs`]).
            pub fn port_refs(&self) -> Vec<(&'static str, String)> {
                match self { $( AppParams::$variant(p) => p.port_refs(), )+ }
            }

            /// Whether the instance's shards hand frames to each other.
            pub fn shard_handoff(&self) -> bool {
                match self { $( AppParams::$variant(_) => <$params as AppKind>::SHARD_HANDOFF, )+ }
            }

            /// Builds one shard.
            pub fn build(&self, cx: &BuildCtx<'_>) -> Result<AnyApp, String> {
                match self { $( AppParams::$variant(p) => p.build(cx).map(|a| AnyApp::$variant(Box::new(a))), )+ }
            }

            /// Claim rules the app asks for (see [`AppKind::claims`]).
            pub fn claims(&self) -> Vec<(String, config::ClaimRule)> {
                match self { $( AppParams::$variant(p) => p.claims(), )+ }
            }

            /// Problems with running as `shards` shards (see [`AppKind::check_shards`]).
            pub fn check_shards(&self, shards: usize) -> Vec<(String, String)> {
                match self { $( AppParams::$variant(p) => p.check_shards(shards), )+ }
            }

            /// The instance's controller (see [`AppKind::controller`]).
            pub fn controller(&self, cx: &ControlCtx<'_>) -> Option<Box<dyn Controller>> {
                match self { $( AppParams::$variant(p) => p.controller(cx), )+ }
            }
        }

        /// Every app, for static dispatch (boxed: one pointer per burst, and the enum stays
        /// small whatever an app's tables weigh).
        #[derive(Debug)]
        pub enum AnyApp {
            $( $(#[$m])* $variant(Box<<$params as AppKind>::App>), )+
        }

        impl<'u> App<'u> for AnyApp {
            #[inline]
            fn process(&mut self, cx: &mut Ctx<'_, 'u>, from: Ingress, batch: &mut Batch<'u>) {
                match self { $( AnyApp::$variant(a) => App::process(&mut **a, cx, from, batch), )+ }
            }
            #[inline]
            fn produce(&mut self, cx: &mut Ctx<'_, 'u>) {
                match self { $( AnyApp::$variant(a) => App::produce(&mut **a, cx), )+ }
            }
            #[inline]
            fn poll_at(&self) -> Option<Instant> {
                match self { $( AnyApp::$variant(a) => App::poll_at(&**a), )+ }
            }
            fn on_timer(&mut self, cx: &mut Ctx<'_, 'u>) {
                match self { $( AnyApp::$variant(a) => App::on_timer(&mut **a, cx), )+ }
            }
            fn finish(&mut self) {
                match self { $( AnyApp::$variant(a) => App::finish(&mut **a), )+ }
            }
            fn is_done(&self) -> bool {
                match self { $( AnyApp::$variant(a) => App::is_done(&**a), )+ }
            }
            fn report(&self, out: &mut Vec<(&'static str, u64)>) {
                match self { $( AnyApp::$variant(a) => App::report(&**a, out), )+ }
            }
        }

        impl AnyApp {
            /// What a caller may watch while the shard runs.
            pub fn handle(&self) -> Option<AppHandle> {
                match self { $( AnyApp::$variant(a) => Handled::handle(&**a), )+ }
            }
        }
    };
}

/// Apps that offer a handle implement this (the default offers none).
pub trait Handled {
    /// The handle, if any.
    fn handle(&self) -> Option<AppHandle> {
        None
    }
}

apps! {
    /// testpmd-style forwarding.
    Relay => "relay": crate::relay::RelayParams,
    /// Traffic generator and receiver.
    Pktgen => "pktgen": crate::pktgen::PktgenSpec,
    /// L4 load balancer with full NAT (Maglev, flow table).
    L4lb => "l4lb": crate::l4lb::L4lbParams,
}

impl AnyApp {
    /// The pktgen shard, if this is one (tests and drivers that step an lcore).
    pub fn pktgen(&self) -> Option<&crate::pktgen::Pktgen> {
        match self {
            AnyApp::Pktgen(p) => Some(p),
            _ => None,
        }
    }

    /// The pktgen results handle, if this is a pktgen shard.
    pub fn pktgen_handle(&self) -> Option<crate::pktgen::PktgenHandle> {
        match self.handle() {
            Some(AppHandle::Pktgen(h)) => Some(h),
            _ => None,
        }
    }
}

/// Validates `params` for `kind`; returns (key, message) for every problem (unknown kind: one
/// problem keyed `app`).
pub fn validate_params(kind: &str, params: &toml::Table) -> Vec<(String, String)> {
    match AppParams::parse(kind, params) {
        None => vec![("app".into(), format!("unknown app '{kind}'"))],
        Some(Ok(_)) => Vec::new(),
        Some(Err(e)) => e.0,
    }
}

/// The machine plus this build's apps: what `xskd check` and `xskd run` validate against.
#[derive(Debug, Default)]
pub struct XskdEnv {
    sys: config::SystemEnv,
}

impl XskdEnv {
    /// Reads the machine once.
    pub fn new() -> XskdEnv {
        XskdEnv { sys: config::SystemEnv::new() }
    }
}

impl config::Environment for XskdEnv {
    type Params = AppParams;
    fn iface_exists(&self, name: &str) -> bool {
        self.sys.iface_exists(name)
    }
    fn iface_queues(&self, name: &str) -> Option<u32> {
        self.sys.iface_queues(name)
    }
    fn cpu_online(&self, cpu: usize) -> bool {
        self.sys.cpu_online(cpu)
    }
    fn app_kinds(&self) -> Vec<String> {
        APPS.iter().map(|s| s.to_string()).collect()
    }
    fn parse_params(&self, kind: &str, params: &toml::Table) -> Option<Result<AppParams, config::env::ParamProblems>> {
        AppParams::parse(kind, params).map(|r| r.map_err(|e| e.0))
    }
    fn port_refs(&self, params: &AppParams) -> Vec<(String, String)> {
        params.port_refs().into_iter().map(|(k, p)| (k.to_string(), p)).collect()
    }
    fn port_claims(&self, params: &AppParams) -> Vec<(String, config::ClaimRule)> {
        params.claims()
    }
    fn check_shards(&self, params: &AppParams, shards: usize) -> config::env::ParamProblems {
        params.check_shards(shards)
    }
}

/// The validated plan of this build.
pub type Plan = config::Plan<AppParams>;

#[cfg(test)]
mod tests {
    use super::*;

    fn table(s: &str) -> toml::Table {
        s.parse().unwrap()
    }

    #[test]
    fn kinds_parse_into_their_typed_params() {
        let ok = table("mode = \"io\"\npeer = \"p1\"");
        let p = AppParams::parse("relay", &ok).unwrap().unwrap();
        assert_eq!(p.kind(), "relay");
        assert_eq!(p.port_refs(), vec![("peer", "p1".to_string())]);
        assert!(!p.shard_handoff());
        assert!(validate_params("relay", &ok).is_empty());
        assert_eq!(validate_params("relay", &table("mode = \"x\""))[0].0, "mode");
        assert_eq!(validate_params("nope", &ok)[0].0, "app");
        assert!(AppParams::parse("nope", &ok).is_none());
        // No peer: the relay names no port (it sends back out of the port it received on).
        assert!(AppParams::parse("relay", &table("")).unwrap().unwrap().port_refs().is_empty());
    }

    fn ctx_with<'a>(
        queues: &'a [QueueInfo],
        resolve: &'a dyn Fn(&str) -> Option<TxPort>,
        mac_of: &'a dyn Fn(&str) -> Option<[u8; 6]>,
        port_id: &'a dyn Fn(&str) -> Option<PortId>,
    ) -> BuildCtx<'a> {
        BuildCtx { name: "t", shard: Shard(0), shards: 1, burst: 64, queues, resolve, port_id, mac_of }
    }

    #[test]
    fn pktgen_is_registered_validated_and_built() {
        assert!(APPS.contains(&"pktgen"));
        let tx = table("dst_mac = \"02:00:00:00:00:02\"\npeer = \"p1\"\nrate_pps = 1000");
        assert!(validate_params("pktgen", &tx).is_empty());
        let bad = table("size = 10\nwhat = 1");
        let keys: Vec<String> = validate_params("pktgen", &bad).into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec!["what", "size", "dst_mac"]);
        let txp = AppParams::parse("pktgen", &tx).unwrap().unwrap();
        assert_eq!(txp.port_refs(), vec![("peer", "p1".to_string())]);
        let rx = AppParams::parse("pktgen", &table("role = \"rx\"")).unwrap().unwrap();
        assert!(rx.port_refs().is_empty());

        let queues = [QueueInfo { port: PortId(0), port_name: "p0".into(), queue: 0, tx: TxPort(0) }];
        let resolve = |n: &str| match n {
            "p0" => Some(TxPort(0)),
            "p1" => Some(TxPort(1)),
            _ => None,
        };
        let mac_of = |n: &str| (n == "p1").then_some([2, 0, 0, 0, 0, 9]);
        let port_id = |n: &str| (n == "p1").then_some(PortId(1));
        let cx = ctx_with(&queues, &resolve, &mac_of, &port_id);
        let app = txp.build(&cx).unwrap();
        let AnyApp::Pktgen(p) = &app else { panic!("not a pktgen") };
        assert_eq!(p.tx_port(), TxPort(1));
        assert_eq!(p.max_frame_len(), 60);
        assert!(app.pktgen_handle().is_some());
        let app = rx.build(&cx).unwrap();
        let AnyApp::Pktgen(p) = &app else { panic!("not a pktgen") };
        assert_eq!(p.tx_port(), TxPort(0));
        let to_nowhere = table("dst_mac = \"02:00:00:00:00:02\"\npeer = \"p9\"");
        let e = AppParams::parse("pktgen", &to_nowhere).unwrap().unwrap().build(&cx).unwrap_err();
        assert!(e.contains("p9"), "{e}");
    }

    /// The config crate validates examples with a fake app environment; here every example
    /// goes through the real one (app params included).
    #[test]
    fn example_configs_have_valid_app_params() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/examples");
        let mut pktgen = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_none_or(|x| x != "toml") {
                continue;
            }
            let cfg = config::load(&p).unwrap_or_else(|e| panic!("{}: {e:?}", p.display()));
            for (i, a) in cfg.apps.iter().enumerate() {
                let errs = validate_params(&a.kind, &a.params);
                assert!(errs.is_empty(), "{}: app[{i}]: {errs:?}", p.display());
            }
            for q in &cfg.queues {
                if cfg.apps.iter().any(|a| a.name == q.app) {
                    continue;
                }
                let errs = validate_params(&q.app, &q.params);
                assert!(errs.is_empty(), "{}: queue {}:{}: {errs:?}", p.display(), q.port, q.queue);
                pktgen += usize::from(q.app == "pktgen");
            }
        }
        assert!(pktgen >= 2, "the pktgen example has a sender and a receiver");
    }
}
