//! The control plane of a running daemon: app [`Controller`]s, the [`Shards`] they command,
//! and the control socket (`xskd ctl`).
//!
//! Everything here runs on the daemon's main thread, never on an lcore. An app that needs
//! work off the data path (resolving neighbours, building a Maglev table, applying a runtime
//! command) gets a [`Controller`] from its [`crate::registry::AppKind::controller`]; the
//! controller reaches its shards only by sending them closures ([`Shards::send_all`]), which
//! each lcore runs between two loop iterations (every 256 iterations, so within microseconds
//! when busy, at most a millisecond or so when idle). Nothing is shared with the shards but
//! what such a closure carries.
//!
//! The control socket is a Unix stream socket (mode 0600). A client writes one request line,
//! `APP ARGS…` (or `apps`, `help`), and reads the reply until the connection closes; the last
//! line is `ok` or `error: …`. `xskd ctl` is that client. Requests are served one at a time
//! with a 2 s read timeout, so a stuck client cannot stall the daemon for long.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use engine::{AppSlot, ControlFn};

use crate::registry::AnyApp;

/// The sending side of one lcore's command channel.
pub type LcoreControl = crossbeam_channel::Sender<(AppSlot, ControlFn<AnyApp>)>;

/// The shards of one app instance, as its controller reaches them.
#[derive(Clone, Default)]
pub struct Shards {
    targets: Vec<(LcoreControl, AppSlot)>,
}

impl std::fmt::Debug for Shards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shards").field("count", &self.targets.len()).finish()
    }
}

impl Shards {
    /// Shards reached through `targets` (one per shard, in shard order).
    pub fn new(targets: Vec<(LcoreControl, AppSlot)>) -> Shards {
        Shards { targets }
    }

    /// Number of shards.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Runs `f(shard index, app)` on every shard, on its lcore; returns how many shards were
    /// reached (an lcore that has ended is not).
    pub fn send_all(&self, f: impl Fn(usize, &mut AnyApp) + Send + Sync + 'static) -> usize {
        let f = Arc::new(f);
        self.targets
            .iter()
            .enumerate()
            .filter(|(i, (tx, slot))| {
                let (f, i) = (f.clone(), *i);
                tx.send((*slot, Box::new(move |a: &mut AnyApp| f(i, a)))).is_ok()
            })
            .count()
    }

    /// Waits until every shard has run everything sent to it before this call (commands run
    /// in order per lcore), or `timeout`; returns whether all did. A command that changes
    /// what the data path does ends with this, so its reply means "in effect".
    pub fn barrier(&self, timeout: Duration) -> bool {
        self.query(timeout, |_, _| ()).len() == self.len()
    }

    /// Asks every shard `q` and waits up to `timeout` for all answers (in shard order); a shard
    /// that does not answer in time is missing from the result.
    pub fn query<R: Send + 'static>(
        &self,
        timeout: Duration,
        q: impl Fn(usize, &mut AnyApp) -> R + Send + Sync + 'static,
    ) -> Vec<(usize, R)> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let sent = self.send_all(move |i, a| {
            let _ = tx.send((i, q(i, a)));
        });
        let deadline = std::time::Instant::now() + timeout;
        let mut out = Vec::with_capacity(sent);
        while out.len() < sent {
            match rx.recv_deadline(deadline) {
                Ok(r) => out.push(r),
                Err(_) => break,
            }
        }
        out.sort_by_key(|(i, _)| *i);
        out
    }
}

/// The control-thread side of an app instance.
pub trait Controller: Send {
    /// Before the lcores start: may block briefly (resolving neighbours). An error stops the
    /// run before any traffic is taken.
    fn start(&mut self, _shards: &Shards) -> Result<(), String> {
        Ok(())
    }
    /// Called about every 100 ms while the daemon runs.
    fn tick(&mut self, _shards: &Shards) {}
    /// A runtime command (the words after the instance name); the reply text, or an error.
    fn command(&mut self, args: &[&str], shards: &Shards) -> Result<String, String>;
    /// After the lcores have stopped (cleanup).
    fn stop(&mut self) {}
}

/// What a controller may learn when it is made.
pub struct ControlCtx<'a> {
    /// Instance name.
    pub name: &'a str,
    /// The interface of an AF_XDP port, by port name (None for null ports).
    pub iface_of: &'a dyn Fn(&str) -> Option<String>,
}

impl std::fmt::Debug for ControlCtx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlCtx").field("name", &self.name).finish()
    }
}

/// An app instance's controller, by name, as the daemon keeps them.
pub struct Instance {
    /// Instance name.
    pub name: String,
    /// App kind.
    pub kind: &'static str,
    /// Its controller, if the app has one.
    pub controller: Option<Box<dyn Controller>>,
    /// Its shards.
    pub shards: Shards,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance").field("name", &self.name).field("kind", &self.kind).finish()
    }
}

/// Answers one request line against the running instances.
pub fn handle_request(line: &str, instances: &mut [Instance]) -> Result<String, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        [] | ["help"] => Ok("requests: apps | APP COMMAND... (APP help lists an app's commands)".into()),
        ["apps"] => Ok(instances
            .iter()
            .map(|i| {
                format!(
                    "{} {} shards={}{}",
                    i.name,
                    i.kind,
                    i.shards.len(),
                    if i.controller.is_some() { "" } else { " (no commands)" }
                )
            })
            .collect::<Vec<_>>()
            .join("\n")),
        [name, args @ ..] => {
            let Some(inst) = instances.iter_mut().find(|i| i.name == *name) else {
                let names: Vec<&str> = instances.iter().map(|i| i.name.as_str()).collect();
                return Err(format!("no app instance '{name}' (instances: {})", names.join(", ")));
            };
            match &mut inst.controller {
                Some(c) => c.command(args, &inst.shards),
                None => Err(format!("app '{}' ({}) takes no commands", inst.name, inst.kind)),
            }
        }
    }
}

/// The listening control socket; the file is removed when this is dropped.
#[derive(Debug)]
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl ControlSocket {
    /// Binds `path` (a stale socket file left by a killed run is replaced; any other file is
    /// an error) with mode 0600.
    pub fn bind(path: &Path) -> Result<ControlSocket> {
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            use std::os::unix::fs::FileTypeExt;
            if !meta.file_type().is_socket() {
                anyhow::bail!("control socket {}: a file that is not a socket is in the way", path.display());
            }
            if UnixStream::connect(path).is_ok() {
                anyhow::bail!("control socket {}: another daemon is listening there", path.display());
            }
            std::fs::remove_file(path).with_context(|| format!("removing the stale socket {}", path.display()))?;
        }
        let listener =
            UnixListener::bind(path).with_context(|| format!("binding the control socket {}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("chmod 0600 {}", path.display()))?;
        listener.set_nonblocking(true).context("control socket: non-blocking")?;
        Ok(ControlSocket { listener, path: path.to_path_buf() })
    }

    /// Serves the requests waiting now (never blocks longer than one request's timeout).
    pub fn serve_pending(&self, instances: &mut [Instance]) {
        while let Ok((stream, _)) = self.listener.accept() {
            if let Err(e) = serve_one(stream, instances) {
                tracing::warn!(socket = %self.path.display(), error = %e, "control request failed");
            }
        }
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve_one(stream: UnixStream, instances: &mut [Instance]) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut line = String::new();
    BufReader::new(&stream).take(4096).read_line(&mut line)?;
    let reply = handle_request(line.trim(), instances);
    tracing::info!(request = %line.trim(), ok = reply.is_ok(), "control request");
    let mut w = &stream;
    match reply {
        Ok(text) if text.is_empty() => writeln!(w, "ok"),
        Ok(text) => writeln!(w, "{text}\nok"),
        Err(e) => writeln!(w, "error: {e}"),
    }
}

/// `xskd ctl`: sends `request` to the daemon at `path`; returns (reply without the status line,
/// whether it said ok).
pub fn request(path: &Path, request: &str) -> Result<(String, bool)> {
    let mut s = UnixStream::connect(path).with_context(|| format!("connecting to {}", path.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    writeln!(s, "{request}").context("sending the request")?;
    s.shutdown(std::net::Shutdown::Write).ok();
    let mut lines: Vec<String> = Vec::new();
    for l in BufReader::new(&s).lines() {
        lines.push(l.context("reading the reply")?);
    }
    match lines.pop() {
        Some(last) if last == "ok" => Ok((lines.join("\n"), true)),
        Some(last) if last.starts_with("error: ") => {
            lines.push(last.trim_start_matches("error: ").to_string());
            Ok((lines.join("\n"), false))
        }
        Some(last) => anyhow::bail!("malformed reply from {}: {last}", path.display()),
        None => anyhow::bail!("no reply from {}", path.display()),
    }
}

use std::io::Read as _;

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;
    impl Controller for Echo {
        fn command(&mut self, args: &[&str], shards: &Shards) -> Result<String, String> {
            match args {
                ["fail"] => Err("asked to".into()),
                _ => Ok(format!("{} shards: {}", shards.len(), args.join(" "))),
            }
        }
    }

    #[test]
    fn requests_reach_the_named_instance_over_the_socket() {
        let dir = std::env::temp_dir().join(format!("xskd-ctl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ctl.sock");
        let sock = ControlSocket::bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let mut inst = vec![
            Instance { name: "lb".into(), kind: "l4lb", controller: Some(Box::new(Echo)), shards: Shards::default() },
            Instance { name: "r".into(), kind: "relay", controller: None, shards: Shards::default() },
        ];
        let ask = |req: &'static str| {
            let p = path.clone();
            std::thread::spawn(move || request(&p, req).unwrap())
        };
        let cases: [(&str, &str, bool); 5] = [
            ("lb backend add x", "0 shards: backend add x", true),
            ("lb fail", "asked to", false),
            ("r x", "app 'r' (relay) takes no commands", false),
            ("zz", "no app instance 'zz' (instances: lb, r)", false),
            ("apps", "lb l4lb shards=0\nr relay shards=0 (no commands)", true),
        ];
        for (req, want, ok) in cases {
            let h = ask(req);
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while !h.is_finished() && std::time::Instant::now() < deadline {
                sock.serve_pending(&mut inst);
                std::thread::sleep(Duration::from_millis(5));
            }
            assert_eq!(h.join().unwrap(), (want.to_string(), ok), "{req}");
        }
        // A second daemon cannot take the socket of a live one; a stale file is replaced.
        assert!(ControlSocket::bind(&path).is_err());
        drop(sock);
        assert!(!path.exists(), "the socket file is removed on drop");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
