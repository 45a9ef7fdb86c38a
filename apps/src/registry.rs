//! The app registry: which apps exist, how their parameters are validated, and [`AnyApp`], the
//! enum the lcores run (static dispatch: one `match` per burst, no `dyn` per packet).
//!
//! Apps are compiled in, as testpmd's forwarding modes and VPP's graph nodes are. A queue's
//! `app` key names one entry of [`APPS`]; its `params` table is validated by
//! [`validate_params`] when the config is validated, and consumed by [`build`] when the daemon
//! assembles the lcores (after validation, so `build` only fails on things validation cannot
//! know, such as a peer port bound on no lcore).

use engine::{App, Batch, Ctx, Instant, TxPort};

use crate::relay::{Relay, RelayMode, RelayParams};

/// Names of the apps this build knows.
pub const APPS: &[&str] = &["relay"];

/// Validates `params` for `app`; returns (key, message) for every problem.
pub fn validate_params(app: &str, params: &toml::Table) -> Vec<(String, String)> {
    match app {
        "relay" => RelayParams::parse(params).err().map(|e| e.0).unwrap_or_default(),
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
        _ => Err(format!("unknown app '{app}'")),
    }
}

/// Every app, for static dispatch.
#[derive(Debug)]
pub enum AnyApp {
    /// testpmd-style forwarding.
    Relay(Relay),
}

impl<'u> App<'u> for AnyApp {
    #[inline]
    fn process(&mut self, cx: &mut Ctx<'_, 'u>, batch: &mut Batch<'u>) {
        match self {
            AnyApp::Relay(a) => a.process(cx, batch),
        }
    }

    #[inline]
    fn produce(&mut self, cx: &mut Ctx<'_, 'u>) {
        match self {
            AnyApp::Relay(a) => App::produce(a, cx),
        }
    }

    #[inline]
    fn poll_at(&self) -> Option<Instant> {
        match self {
            AnyApp::Relay(a) => App::poll_at(a),
        }
    }

    fn on_timer(&mut self, cx: &mut Ctx<'_, 'u>) {
        match self {
            AnyApp::Relay(a) => App::on_timer(a, cx),
        }
    }

    fn is_done(&self) -> bool {
        match self {
            AnyApp::Relay(a) => App::is_done(a),
        }
    }

    fn report(&self, out: &mut Vec<(&'static str, u64)>) {
        match self {
            AnyApp::Relay(a) => App::report(a, out),
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
}
