//! New TCP connections per second, end to end: a small request/response server for the backend
//! namespaces and a multi-threaded client for the client namespace, both plain kernel TCP
//! (`std::net`), the same for every system under test.
//!
//! Protocol: the client connects, writes [`REQ_LEN`] bytes, reads until the server closes; the
//! server reads the request, writes [`RESP_LEN`] bytes and closes first (so TIME_WAIT lands on
//! the servers, not on the client's ports). A connection counts as done only when the client
//! received exactly [`RESP_LEN`] bytes of the expected content; anything else is an error.
//!
//! Why our own instead of `wrk -H "Connection: close"` against nginx: the client and the three
//! servers share one CPU with the generator side on this 2-core machine, and nginx's HTTP
//! parsing plus wrk's would spend that CPU before the device under test does (platform.md: nginx
//! with `Connection: close` peaked at 18.8 k req/s on its own core). This pair does the least a
//! connection needs (connect, one write, one read, close), so more of the measurement is the
//! DUT's; the cost is that it is not a standard tool, which is why it is small and documented.
//!
//! Threads enter their namespace with `setns` and inherit the calling thread's CPU affinity
//! (the harness pins itself to the client's CPU). Everything is bounded in time: connect and
//! read timeouts, a deadline for the client, and [`RrServer::stop`] wakes and joins the servers.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};

/// Bytes of a request.
pub const REQ_LEN: usize = 32;
/// Bytes of a response.
pub const RESP_LEN: usize = 64;
/// Connect timeout of the client.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Read/write timeout on both sides.
pub const IO_TIMEOUT: Duration = Duration::from_secs(2);

fn response() -> [u8; RESP_LEN] {
    std::array::from_fn(|i| b'a' + (i % 26) as u8)
}

/// One request/response server per backend namespace, one thread each.
#[derive(Debug)]
pub struct RrServer {
    stop: Arc<AtomicBool>,
    served: Vec<Arc<AtomicU64>>,
    threads: Vec<(String, SocketAddr, JoinHandle<()>)>,
}

impl RrServer {
    /// Starts a server on `addr:port` inside each namespace of `nss` (pairs of namespace name
    /// and address), returning once all listen.
    pub fn start(nss: &[(String, Ipv4Addr)], port: u16) -> Result<RrServer> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut s = RrServer { stop: stop.clone(), served: Vec::new(), threads: Vec::new() };
        for (ns, addr) in nss {
            let sa = SocketAddr::from((*addr, port));
            let (tx, rx) = std::sync::mpsc::channel();
            let served = Arc::new(AtomicU64::new(0));
            let (ns2, stop2, served2) = (ns.clone(), stop.clone(), served.clone());
            let h = std::thread::spawn(move || {
                let listener = nic::netns::enter_by_name(&ns2).and_then(|g| Ok((g, TcpListener::bind(sa)?)));
                match listener {
                    Ok((_guard, l)) => {
                        let _ = tx.send(Ok(()));
                        serve(&l, &stop2, &served2);
                    }
                    Err(e) => {
                        let _ = tx.send(Err(anyhow!("netns {ns2}: listen on {sa}: {e}")));
                    }
                }
            });
            rx.recv_timeout(Duration::from_secs(5)).map_err(|_| anyhow!("server in {ns} did not start"))??;
            s.served.push(served);
            s.threads.push((ns.clone(), sa, h));
        }
        Ok(s)
    }

    /// Connections served so far, per server.
    pub fn served(&self) -> Vec<u64> {
        self.served.iter().map(|c| c.load(Ordering::Relaxed)).collect()
    }

    /// Stops every server (a connection from inside its namespace wakes its `accept`) and joins.
    pub fn stop(mut self) -> Vec<u64> {
        self.shutdown();
        self.served()
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for (ns, sa, h) in self.threads.drain(..) {
            let sa2 = sa;
            let _ = std::thread::spawn(move || {
                if let Ok(_g) = nic::netns::enter_by_name(&ns) {
                    let _ = TcpStream::connect_timeout(&sa2, CONNECT_TIMEOUT);
                }
            })
            .join();
            let _ = h.join();
        }
    }
}

impl Drop for RrServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn serve(l: &TcpListener, stop: &AtomicBool, served: &AtomicU64) {
    let resp = response();
    let mut req = [0u8; REQ_LEN];
    while !stop.load(Ordering::Relaxed) {
        let Ok((mut c, _)) = l.accept() else { continue };
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let _ = c.set_read_timeout(Some(IO_TIMEOUT));
        let _ = c.set_write_timeout(Some(IO_TIMEOUT));
        let _ = c.set_nodelay(true);
        if c.read_exact(&mut req).is_ok() && c.write_all(&resp).is_ok() {
            served.fetch_add(1, Ordering::Relaxed);
        }
        // Dropping `c` closes: the server closes first.
    }
}

/// What the client counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ClientCounts {
    /// Connections that completed (full response).
    pub done: u64,
    /// Connect failures (refused, timed out, no port).
    pub connect_errors: u64,
    /// Connections that failed after connecting (timeout, short or wrong response).
    pub io_errors: u64,
}

/// Live counters of a running client, readable while it runs.
#[derive(Debug, Default)]
pub struct ClientStats {
    done: AtomicU64,
    connect_errors: AtomicU64,
    io_errors: AtomicU64,
}

impl ClientStats {
    /// A snapshot.
    pub fn counts(&self) -> ClientCounts {
        ClientCounts {
            done: self.done.load(Ordering::Relaxed),
            connect_errors: self.connect_errors.load(Ordering::Relaxed),
            io_errors: self.io_errors.load(Ordering::Relaxed),
        }
    }
}

/// Runs `threads` client threads inside namespace `ns` for `dur`: each connects to the next of
/// `targets` (round robin per thread, starting at its own index), requests, reads the response
/// until the server closes, closes, again. Returns when all threads have stopped.
pub fn run_client(ns: &str, targets: &[SocketAddr], threads: usize, dur: Duration, stats: &ClientStats) -> Result<()> {
    if targets.is_empty() || threads == 0 {
        return Err(anyhow!("client: no target or no thread"));
    }
    let deadline = Instant::now() + dur;
    std::thread::scope(|sc| {
        let hs: Vec<_> = (0..threads)
            .map(|i| {
                sc.spawn(move || -> Result<()> {
                    let _g = nic::netns::enter_by_name(ns)?;
                    let mut k = i;
                    while Instant::now() < deadline {
                        one_connection(&targets[k % targets.len()], stats);
                        k += 1;
                    }
                    Ok(())
                })
            })
            .collect();
        hs.into_iter().try_for_each(|h| h.join().map_err(|_| anyhow!("client thread panicked"))?)
    })
}

fn one_connection(to: &SocketAddr, stats: &ClientStats) {
    let mut c = match TcpStream::connect_timeout(to, CONNECT_TIMEOUT) {
        Ok(c) => c,
        Err(_) => {
            stats.connect_errors.fetch_add(1, Ordering::Relaxed);
            // A refused or unreachable target: do not spin on it.
            std::thread::sleep(Duration::from_millis(1));
            return;
        }
    };
    let _ = c.set_read_timeout(Some(IO_TIMEOUT));
    let _ = c.set_write_timeout(Some(IO_TIMEOUT));
    let _ = c.set_nodelay(true);
    let req = [b'q'; REQ_LEN];
    let mut buf = [0u8; RESP_LEN + 1];
    let ok = c.write_all(&req).is_ok() && read_until_close(&mut c, &mut buf) == Some(RESP_LEN) && {
        let want = response();
        buf[..RESP_LEN] == want[..]
    };
    if ok {
        stats.done.fetch_add(1, Ordering::Relaxed);
    } else {
        stats.io_errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// Reads until EOF into `buf`; the byte count, or None on an error or more than `buf` holds.
fn read_until_close(c: &mut TcpStream, buf: &mut [u8]) -> Option<usize> {
    let mut n = 0;
    loop {
        if n == buf.len() {
            return None;
        }
        match c.read(&mut buf[n..]) {
            Ok(0) => return Some(n),
            Ok(k) => n += k,
            Err(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Root only: one namespace, server and client on its loopback-free veth-less lo.
    #[test]
    fn client_and_server_agree_on_every_connection() {
        if !std::fs::read_to_string("/proc/self/status")
            .is_ok_and(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")))
        {
            eprintln!("skipped: needs root");
            return;
        }
        let ns = nic::netns::Netns::new("l4rr").unwrap();
        let lo = Ipv4Addr::LOCALHOST;
        let srv = RrServer::start(&[(ns.name().to_string(), lo)], 18080).unwrap();
        let stats = ClientStats::default();
        run_client(ns.name(), &[SocketAddr::from((lo, 18080))], 4, Duration::from_millis(500), &stats).unwrap();
        // A port nobody listens on: connect errors, no completions.
        let bad = ClientStats::default();
        run_client(ns.name(), &[SocketAddr::from((lo, 18081))], 1, Duration::from_millis(50), &bad).unwrap();
        let served = srv.stop();
        let c = stats.counts();
        assert!(c.done > 100, "{c:?}");
        assert_eq!(c.io_errors + c.connect_errors, 0, "{c:?}");
        // The server counts a connection when it has written the response; the client when it
        // has read it all: the same set.
        assert_eq!(served, vec![c.done]);
        let b = bad.counts();
        assert_eq!(b.done, 0);
        assert!(b.connect_errors > 0);
    }
}
