//! Kernel TCP and UDP servers and clients for the load-balancer demo, tests and benchmarks:
//! backends that say who they are, and clients that check every byte.
//!
//! A [`BackendServer`] runs in a backend's namespace (threads that entered it) and serves, on
//! one TCP port and one UDP port:
//! * `GET …` (HTTP/1.0 or 1.1, one request per connection): `200 OK` with the body
//!   `backend=ID\n` — what `curl`, `ab` and `wrk` see, and how a client learns which backend it
//!   reached;
//! * `ECHO`: one byte, the backend's ID, then every byte received, echoed until the client
//!   closes — for byte-exact transfers in both directions and long-lived connections;
//! * UDP: each datagram back, prefixed with the ID.
//!
//! It counts connections (accepted, and open now) so tests can check where flows went. Clients
//! ([`http_backend`], [`echo_transfer`], [`udp_echo`]) run on a thread inside the client's
//! namespace. Everything is bounded by timeouts; addresses are the caller's (198.18.0.0/15).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nic::netns::Netns;

/// How long a client or server waits on one socket operation.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Counters of a backend server.
#[derive(Debug, Default)]
pub struct ServerCounters {
    /// TCP connections accepted.
    pub accepted: AtomicU64,
    /// TCP connections open now.
    pub open: AtomicU64,
    /// HTTP requests answered.
    pub http: AtomicU64,
    /// Bytes echoed.
    pub echoed: AtomicU64,
    /// UDP datagrams answered.
    pub udp: AtomicU64,
}

/// A backend's servers; stopped and joined on drop.
pub struct BackendServer {
    id: u8,
    stop: Arc<AtomicBool>,
    counters: Arc<ServerCounters>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for BackendServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendServer").field("id", &self.id).finish()
    }
}

fn serve_conn(mut s: TcpStream, id: u8, c: &ServerCounters, stop: &AtomicBool) -> io::Result<()> {
    s.set_read_timeout(Some(Duration::from_millis(200)))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    s.set_nodelay(true)?;
    let mut head = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match s.read(&mut head[got..]) {
            Ok(0) => return Ok(()),
            Ok(n) => got += n,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                if stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
            }
            Err(e) => return Err(e),
        }
    }
    let mut buf = vec![0u8; 64 * 1024];
    if &head == b"GET " {
        // Read to the end of the request head, then answer and close.
        let mut req: Vec<u8> = head.to_vec();
        while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 16 * 1024 {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => req.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    if stop.load(Ordering::Relaxed) {
                        return Ok(());
                    }
                }
                Err(e) => return Err(e),
            }
        }
        let body = format!("backend={id}\n");
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(resp.as_bytes())?;
        c.http.fetch_add(1, Ordering::Relaxed);
        return Ok(());
    }
    if &head != b"ECHO" {
        return Ok(());
    }
    s.write_all(&[id])?;
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                s.write_all(&buf[..n])?;
                c.echoed.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                if stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
            }
            Err(e) => return Err(e),
        }
    }
}

impl BackendServer {
    /// Starts backend `id`'s servers in `ns`: TCP on `tcp`, UDP on `udp`.
    pub fn start(ns: &Netns, id: u8, tcp: SocketAddrV4, udp: SocketAddrV4) -> io::Result<BackendServer> {
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(ServerCounters::default());
        let name = ns.name().to_string();
        let (tx, rx) = std::sync::mpsc::channel::<io::Result<()>>();
        let t_tcp = {
            let (stop, counters, name, tx) = (stop.clone(), counters.clone(), name.clone(), tx.clone());
            std::thread::spawn(move || {
                let listener = (|| {
                    let _g = nic::netns::enter_by_name(&name)?;
                    let l = TcpListener::bind(tcp)?;
                    l.set_nonblocking(true)?;
                    Ok(l)
                })();
                let l = match listener {
                    Ok(l) => {
                        let _ = tx.send(Ok(()));
                        l
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                let mut conns: Vec<JoinHandle<()>> = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match l.accept() {
                        Ok((s, _)) => {
                            counters.accepted.fetch_add(1, Ordering::Relaxed);
                            counters.open.fetch_add(1, Ordering::Relaxed);
                            let (c, st) = (counters.clone(), stop.clone());
                            conns.push(std::thread::spawn(move || {
                                let _ = s.set_nonblocking(false).and_then(|_| serve_conn(s, id, &c, &st));
                                c.open.fetch_sub(1, Ordering::Relaxed);
                            }));
                            conns.retain(|h| !h.is_finished());
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(1)),
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
                for h in conns {
                    let _ = h.join();
                }
            })
        };
        let t_udp = {
            let (stop, counters) = (stop.clone(), counters.clone());
            std::thread::spawn(move || {
                let sock = (|| {
                    let _g = nic::netns::enter_by_name(&name)?;
                    let s = UdpSocket::bind(udp)?;
                    s.set_read_timeout(Some(Duration::from_millis(100)))?;
                    Ok(s)
                })();
                let s = match sock {
                    Ok(s) => {
                        let _ = tx.send(Ok(()));
                        s
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                let mut buf = vec![0u8; 65536];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = s.recv_from(&mut buf[1..]) {
                        buf[0] = id;
                        if s.send_to(&buf[..n + 1], from).is_ok() {
                            counters.udp.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        };
        let server = BackendServer { id, stop, counters, threads: vec![t_tcp, t_udp] };
        for _ in 0..2 {
            rx.recv_timeout(IO_TIMEOUT).map_err(|_| io::Error::other("backend server did not start"))??;
        }
        Ok(server)
    }

    /// The backend's ID.
    pub fn id(&self) -> u8 {
        self.id
    }

    /// Its counters.
    pub fn counters(&self) -> &ServerCounters {
        &self.counters
    }
}

impl Drop for BackendServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn connect(to: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&to, IO_TIMEOUT)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// One `GET /` to `to` on a new connection (call on a thread inside the client namespace);
/// returns the ID of the backend that answered.
pub fn http_backend(to: SocketAddr) -> io::Result<u8> {
    let mut s = connect(to)?;
    s.write_all(format!("GET / HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\n\r\n").as_bytes())?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let text = String::from_utf8_lossy(&resp);
    if !text.starts_with("HTTP/1.1 200") {
        return Err(io::Error::other(format!("unexpected response: {:?}", text.lines().next())));
    }
    text.split("backend=")
        .nth(1)
        .and_then(|r| r.trim().parse().ok())
        .ok_or_else(|| io::Error::other(format!("no backend id in {text:?}")))
}

/// Pattern byte `i` of transfer `seed`.
#[inline]
fn pattern(seed: u64, i: u64) -> u8 {
    (i.wrapping_mul(2_654_435_761).wrapping_add(seed.wrapping_mul(97)) >> 7) as u8
}

/// An open echo connection: which backend it reached, and the stream.
#[derive(Debug)]
pub struct EchoConn {
    /// Backend ID.
    pub backend: u8,
    stream: TcpStream,
    seed: u64,
    sent: u64,
}

impl EchoConn {
    /// Opens an echo connection to `to` (on a thread inside the client namespace).
    pub fn open(to: SocketAddr, seed: u64) -> io::Result<EchoConn> {
        let mut stream = connect(to)?;
        stream.write_all(b"ECHO")?;
        let mut id = [0u8; 1];
        stream.read_exact(&mut id)?;
        Ok(EchoConn { backend: id[0], stream, seed, sent: 0 })
    }

    /// Sends `bytes` more pattern bytes and checks that exactly they come back.
    pub fn exchange(&mut self, bytes: u64) -> io::Result<()> {
        const CHUNK: u64 = 16 * 1024;
        let mut out = vec![0u8; CHUNK as usize];
        let mut back = vec![0u8; CHUNK as usize];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(CHUNK);
            for (k, b) in out[..n as usize].iter_mut().enumerate() {
                *b = pattern(self.seed, self.sent + k as u64);
            }
            self.stream.write_all(&out[..n as usize])?;
            self.stream.read_exact(&mut back[..n as usize])?;
            if back[..n as usize] != out[..n as usize] {
                let at = back.iter().zip(&out).position(|(a, b)| a != b).unwrap_or(0) as u64;
                return Err(io::Error::other(format!("echo mismatch at byte {}", self.sent + at)));
            }
            self.sent += n;
            left -= n;
        }
        Ok(())
    }

    /// Bytes checked so far (each way).
    pub fn checked(&self) -> u64 {
        self.sent
    }

    /// Closes the connection (FIN), and waits for the server's.
    pub fn close(self) -> io::Result<()> {
        self.stream.shutdown(std::net::Shutdown::Write)?;
        let mut s = self.stream;
        let mut rest = Vec::new();
        s.read_to_end(&mut rest)?;
        if !rest.is_empty() {
            return Err(io::Error::other(format!("{} unexpected bytes after close", rest.len())));
        }
        Ok(())
    }
}

/// A whole echo transfer: connect, `bytes` each way checked, close. Returns the backend ID.
pub fn echo_transfer(to: SocketAddr, bytes: u64, seed: u64) -> io::Result<u8> {
    let mut c = EchoConn::open(to, seed)?;
    c.exchange(bytes)?;
    let b = c.backend;
    c.close()?;
    Ok(b)
}

/// Sends `n` datagrams of `len` bytes to `to` from `bind`, one at a time, each checked when it
/// comes back; returns the backend ID of each answered datagram (unanswered ones are missing).
pub fn udp_echo(bind: SocketAddrV4, to: SocketAddr, n: u32, len: usize) -> io::Result<Vec<u8>> {
    let s = UdpSocket::bind(bind)?;
    s.set_read_timeout(Some(Duration::from_millis(500)))?;
    let mut out = vec![0u8; len];
    let mut back = vec![0u8; len + 1];
    let mut ids = Vec::new();
    for i in 0..n {
        for (k, b) in out.iter_mut().enumerate() {
            *b = pattern(u64::from(i), k as u64);
        }
        s.send_to(&out, to)?;
        let deadline = Instant::now() + Duration::from_millis(500);
        while Instant::now() < deadline {
            match s.recv_from(&mut back) {
                Ok((m, _)) if m == len + 1 && back[1..] == out[..] => {
                    ids.push(back[0]);
                    break;
                }
                Ok(_) => continue,
                Err(_) => break,
            }
        }
    }
    Ok(ids)
}
