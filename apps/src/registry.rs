//! The app registry: which apps exist, how their parameters are validated, and [`AnyApp`], the
//! enum the lcores run (static dispatch: one `match` per burst, no `dyn` per packet).
//!
//! Apps are compiled in, as testpmd's forwarding modes and VPP's graph nodes are. A queue's
//! `app` key names one entry of [`APPS`]; its `params` table is validated by
//! [`validate_params`] when the config is validated, and consumed by [`build`] when the daemon
//! assembles the lcores (after validation, so `build` only fails on things validation cannot
//! know, such as a peer port bound on no lcore).

use engine::{App, Batch, Ctx, Instant, TxPort};

use crate::pktgen::{Pktgen, PktgenHandle, PktgenSpec};
use crate::relay::{Relay, RelayMode, RelayParams};

/// Names of the apps this build knows.
pub const APPS: &[&str] = &["relay", "pktgen"];

/// Validates `params` for `app`; returns (key, message) for every problem.
pub fn validate_params(app: &str, params: &toml::Table) -> Vec<(String, String)> {
    match app {
        "relay" => RelayParams::parse(params).err().map(|e| e.0).unwrap_or_default(),
        "pktgen" => PktgenSpec::parse(params).err().map(|e| e.0).unwrap_or_default(),
        _ => vec![("app".into(), format!("unknown app '{app}'"))],
    }
}

/// What an app may learn about its surroundings while being built.
pub struct BuildCtx<'a> {
    /// Name of the port the queue belongs to.
    pub port: &'a str,
    /// This queue as a TX target.
    pub this: TxPort,
    /// Resolves a port name to a TX target reachable from this lcore.
    pub resolve: &'a dyn Fn(&str) -> Option<TxPort>,
    /// MAC address of a port (interface MAC; synthetic for null ports).
    pub mac_of: &'a dyn Fn(&str) -> Option<[u8; 6]>,
}

impl std::fmt::Debug for BuildCtx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildCtx").field("port", &self.port).field("this", &self.this).finish()
    }
}

/// Ports an app instance wants to transmit on (so the daemon can create handoff rings for the
/// ones bound on another lcore before building).
pub fn tx_ports_wanted(app: &str, params: &toml::Table, own_port: &str) -> Vec<String> {
    match app {
        "relay" => match RelayParams::parse(params) {
            Ok(p) => vec![p.peer.unwrap_or_else(|| own_port.to_string())],
            Err(_) => vec![],
        },
        "pktgen" => match PktgenSpec::parse(params) {
            Ok(p) if p.role.sends() => vec![p.peer.unwrap_or_else(|| own_port.to_string())],
            _ => vec![],
        },
        _ => vec![],
    }
}

/// Builds the app instance for one queue.
pub fn build(app: &str, params: &toml::Table, cx: &BuildCtx<'_>) -> Result<AnyApp, String> {
    match app {
        "relay" => {
            let p = RelayParams::parse(params).map_err(|e| e.to_string())?;
            let peer = p.peer.as_deref().unwrap_or(cx.port);
            let to = (cx.resolve)(peer)
                .ok_or_else(|| format!("relay peer port '{peer}' has no queue this lcore can reach"))?;
            let src = match p.src_mac {
                Some(m) => m,
                None if p.mode == RelayMode::Mac => (cx.mac_of)(peer)
                    .ok_or_else(|| format!("cannot read the MAC address of port '{peer}'; set src_mac"))?,
                None => [0; 6],
            };
            Ok(AnyApp::Relay(Relay::new(p.mode, to, src, p.dst_mac.unwrap_or([0; 6]))))
        }
        "pktgen" => {
            let spec = PktgenSpec::parse(params).map_err(|e| e.to_string())?;
            let (to, src) = if spec.role.sends() {
                let peer = spec.peer.as_deref().unwrap_or(cx.port);
                let to = (cx.resolve)(peer)
                    .ok_or_else(|| format!("pktgen peer port '{peer}' has no queue this lcore can reach"))?;
                let src = match spec.src_mac {
                    Some(m) => m,
                    None if spec.pcap.is_none() => (cx.mac_of)(peer)
                        .ok_or_else(|| format!("cannot read the MAC address of port '{peer}'; set src_mac"))?,
                    None => [0; 6],
                };
                (to, src)
            } else {
                (cx.this, [0; 6])
            };
            Ok(AnyApp::Pktgen(Box::new(Pktgen::new(&spec, to, src)?)))
        }
        _ => Err(format!("unknown app '{app}'")),
    }
}

/// Every app, for static dispatch.
#[derive(Debug)]
pub enum AnyApp {
    /// testpmd-style forwarding.
    Relay(Relay),
    /// Traffic generator and receiver (boxed: its tables are large and it is dispatched once
    /// per burst, not per frame).
    Pktgen(Box<Pktgen>),
}

impl AnyApp {
    /// The pktgen instance, if this is one.
    pub fn pktgen(&self) -> Option<&Pktgen> {
        match self {
            AnyApp::Pktgen(p) => Some(p),
            _ => None,
        }
    }

    /// A handle on a pktgen instance's results (take it before the app moves into its lcore).
    pub fn pktgen_handle(&self) -> Option<PktgenHandle> {
        self.pktgen().map(|p| p.handle())
    }
}

impl<'u> App<'u> for AnyApp {
    #[inline]
    fn process(&mut self, cx: &mut Ctx<'_, 'u>, batch: &mut Batch<'u>) {
        match self {
            AnyApp::Relay(a) => a.process(cx, batch),
            AnyApp::Pktgen(a) => App::process(&mut **a, cx, batch),
        }
    }

    #[inline]
    fn produce(&mut self, cx: &mut Ctx<'_, 'u>) {
        match self {
            AnyApp::Relay(a) => App::produce(a, cx),
            AnyApp::Pktgen(a) => App::produce(&mut **a, cx),
        }
    }

    #[inline]
    fn poll_at(&self) -> Option<Instant> {
        match self {
            AnyApp::Relay(a) => App::poll_at(a),
            AnyApp::Pktgen(a) => App::poll_at(&**a),
        }
    }

    fn on_timer(&mut self, cx: &mut Ctx<'_, 'u>) {
        match self {
            AnyApp::Relay(a) => App::on_timer(a, cx),
            AnyApp::Pktgen(a) => App::on_timer(&mut **a, cx),
        }
    }

    fn finish(&mut self) {
        match self {
            AnyApp::Relay(a) => App::finish(a),
            AnyApp::Pktgen(a) => App::finish(&mut **a),
        }
    }

    fn is_done(&self) -> bool {
        match self {
            AnyApp::Relay(a) => App::is_done(a),
            AnyApp::Pktgen(a) => App::is_done(&**a),
        }
    }

    fn report(&self, out: &mut Vec<(&'static str, u64)>) {
        match self {
            AnyApp::Relay(a) => App::report(a, out),
            AnyApp::Pktgen(a) => App::report(&**a, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_params_are_validated_through_the_registry() {
        let ok: toml::Table = "mode = \"io\"\npeer = \"p1\"".parse().unwrap();
        assert!(validate_params("relay", &ok).is_empty());
        let bad: toml::Table = "mode = \"x\"".parse().unwrap();
        assert_eq!(validate_params("relay", &bad)[0].0, "mode");
        assert_eq!(validate_params("nope", &ok)[0].0, "app");
        assert_eq!(tx_ports_wanted("relay", &ok, "p0"), vec!["p1".to_string()]);
        assert_eq!(tx_ports_wanted("relay", &toml::Table::new(), "p0"), vec!["p0".to_string()]);
    }

    #[test]
    fn pktgen_is_registered_validated_and_built() {
        assert!(APPS.contains(&"pktgen"));
        let tx: toml::Table = "dst_mac = \"02:00:00:00:00:02\"\npeer = \"p1\"\nrate_pps = 1000".parse().unwrap();
        assert!(validate_params("pktgen", &tx).is_empty());
        let bad: toml::Table = "size = 10\nwhat = 1".parse().unwrap();
        let keys: Vec<String> = validate_params("pktgen", &bad).into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec!["what", "size", "dst_mac"]);
        assert_eq!(tx_ports_wanted("pktgen", &tx, "p0"), vec!["p1".to_string()]);
        let rx: toml::Table = "role = \"rx\"".parse().unwrap();
        assert!(tx_ports_wanted("pktgen", &rx, "p0").is_empty());

        let resolve = |n: &str| (n == "p1").then_some(TxPort(1));
        let mac_of = |n: &str| (n == "p1").then_some([2, 0, 0, 0, 0, 9]);
        let cx = BuildCtx { port: "p0", this: TxPort(0), resolve: &resolve, mac_of: &mac_of };
        let app = build("pktgen", &tx, &cx).unwrap();
        let p = app.pktgen().unwrap();
        assert_eq!(p.tx_port(), TxPort(1));
        assert_eq!(p.max_frame_len(), 60);
        assert!(app.pktgen_handle().is_some());
        let app = build("pktgen", &rx, &cx).unwrap();
        assert_eq!(app.pktgen().unwrap().tx_port(), TxPort(0));
        let to_nowhere: toml::Table = "dst_mac = \"02:00:00:00:00:02\"\npeer = \"p9\"".parse().unwrap();
        assert!(build("pktgen", &to_nowhere, &cx).unwrap_err().contains("p9"));
    }

    /// The config crate validates examples with a fake app environment; here every example's
    /// app params go through the real validators.
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
            for q in &cfg.queues {
                let errs = validate_params(&q.app, &q.params);
                assert!(errs.is_empty(), "{}: queue {}:{}: {errs:?}", p.display(), q.port, q.queue);
                pktgen += usize::from(q.app == "pktgen");
            }
        }
        assert!(pktgen >= 2, "the pktgen example has a sender and a receiver");
    }
}
