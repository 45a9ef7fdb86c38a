//! Network namespaces and veth pairs for tests, the `xskd demo` topology and the benchmark
//! scripts, driven through iproute2 (`ip`) and `ethtool`.
//!
//! Owns: namespaces it creates ([`Netns`]), veth pairs it creates ([`VethPair`]), and the
//! three-namespace demo/bench [`Topology`]. Everything is removed on `Drop`.
//!
//! Guarantees:
//! * Names are unique per process and call (`prefix-PID-N`), so parallel tests never collide;
//!   interface names are checked to be 1..=15 bytes.
//! * Every command's exit status is checked; errors carry the command line and its stderr.
//! * [`Netns::enter`] switches only the *calling thread* (`setns(CLONE_NEWNET)`), and the
//!   guard switches it back on drop.
//! * Dropping a [`Netns`] runs `ip netns del`, which removes the name and the bind mount and
//!   kills nothing: processes still inside keep the namespace (and its interfaces) alive until
//!   they exit.

use std::fs::File;
use std::io;
use std::marker::PhantomData;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Longest interface name Linux accepts (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;

fn cmdline(prog: &str, args: &[&str]) -> String {
    std::iter::once(prog).chain(args.iter().copied()).collect::<Vec<_>>().join(" ")
}

/// Runs `prog args...`, returns stdout; a non-zero exit becomes an error with stderr.
fn run(prog: &str, args: &[&str]) -> io::Result<String> {
    let out = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("`{}`: {e}", cmdline(prog, args))))?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "`{}` failed ({}): {}",
            cmdline(prog, args),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn check_ifname(name: &str) -> io::Result<()> {
    if name.is_empty() || name.len() > IFNAME_MAX || name.contains(|c: char| c == '/' || c == ':' || c.is_whitespace())
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid interface name {name:?}: 1..={IFNAME_MAX} bytes, no '/', ':' or spaces"),
        ));
    }
    Ok(())
}

/// A network namespace created with `ip netns add`, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `PREFIX-PID-N` (N counts up per process).
    pub fn new(prefix: &str) -> io::Result<Netns> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{prefix}-{}-{n}", std::process::id());
        run("ip", &["netns", "add", &name])?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace name (as in `ip netns list`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NAME args...` and returns its stdout.
    pub fn ip(&self, args: &[&str]) -> io::Result<String> {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// A `Command` for `ip netns exec NAME argv...`, to configure and run.
    pub fn command(&self, argv: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(argv);
        c
    }

    /// Runs `ip netns exec NAME argv...` to completion and returns its output, whatever the exit
    /// status (check `status`); an error only if it could not be run.
    pub fn exec(&self, argv: &[&str]) -> io::Result<Output> {
        self.command(argv)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| io::Error::new(e.kind(), format!("`ip netns exec {} {}`: {e}", self.name, argv.join(" "))))
    }

    /// Starts `ip netns exec NAME argv...` with inherited stdio. `ip` execs the program, so the
    /// child's pid is the program's.
    pub fn spawn(&self, argv: &[&str]) -> io::Result<Child> {
        self.command(argv)
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("`ip netns exec {} {}`: {e}", self.name, argv.join(" "))))
    }

    /// Moves the *calling thread* into this namespace until the guard drops. Sockets created
    /// meanwhile stay in this namespace for their whole life.
    pub fn enter(&self) -> io::Result<NetnsGuard> {
        enter_by_name(&self.name)
    }

    /// Runs `f` on a scoped thread that is inside this namespace, and returns its result.
    pub fn run_in<T: Send>(&self, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
        std::thread::scope(|s| {
            s.spawn(|| {
                let _guard = self.enter()?;
                f()
            })
            .join()
            .map_err(|_| io::Error::other(format!("thread in netns {} panicked", self.name)))?
        })
    }

    /// Writes a sysctl of this namespace, e.g. `("net/ipv4/ip_forward", "1")`.
    pub fn sysctl(&self, key: &str, value: &str) -> io::Result<()> {
        let path = format!("/proc/sys/{key}");
        self.run_in(|| {
            std::fs::write(&path, value)
                .map_err(|e| io::Error::new(e.kind(), format!("netns {}: write {value} to {path}: {e}", self.name)))
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = run("ip", &["netns", "del", &self.name]) {
            tracing::warn!(netns = %self.name, error = %e, "could not delete network namespace");
        }
    }
}

/// The calling thread's previous network namespace; restored on drop. Not `Send`: it belongs
/// to the thread that entered.
#[derive(Debug)]
pub struct NetnsGuard {
    prev: OwnedFd,
    _not_send: PhantomData<*const ()>,
}

fn setns(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: `fd` is a valid namespace descriptor for the duration of the call; setns only
    // changes the calling thread's namespace.
    let rc = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Moves the calling thread into the network namespace `target` (an nsfs descriptor).
pub(crate) fn enter_fd(target: BorrowedFd<'_>) -> io::Result<NetnsGuard> {
    let prev: OwnedFd = File::open("/proc/thread-self/ns/net")?.into();
    setns(target).map_err(|e| io::Error::new(e.kind(), format!("setns(CLONE_NEWNET): {e}")))?;
    Ok(NetnsGuard { prev, _not_send: PhantomData })
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        if let Err(e) = setns(self.prev.as_fd()) {
            // The thread is stuck in the wrong namespace: that must not go unnoticed.
            tracing::error!(error = %e, "could not restore the thread's network namespace");
            if !std::thread::panicking() {
                panic!("could not restore the thread's network namespace: {e}");
            }
        }
    }
}

/// One end of a [`VethPair`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The first end (created in namespace A).
    A,
    /// The peer (in namespace B).
    B,
}

/// Switches the current thread into the namespace `/run/netns/NAME` (for threads that outlive
/// a borrow of the [`Netns`]); the guard switches back.
pub fn enter_by_name(name: &str) -> io::Result<NetnsGuard> {
    let f = File::open(format!("/run/netns/{name}"))
        .map_err(|e| io::Error::new(e.kind(), format!("open /run/netns/{name}: {e}")))?;
    enter_fd(f.as_fd())
}

/// Options of a [`VethPair`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VethConfig {
    /// Queue count for both ends (`numtxqueues/numrxqueues N`, then `ethtool -L rx N tx N`
    /// so AF_XDP can bind queues above 0). `None`: the kernel default (1 active channel).
    pub queues: Option<u32>,
    /// MTU of both ends.
    pub mtu: Option<u32>,
    /// Address with prefix (`198.18.0.1/24`) for end A.
    pub addr_a: Option<String>,
    /// Address with prefix for end B.
    pub addr_b: Option<String>,
    /// Disable IPv6 on both ends before they go up (no link-local address, no DAD/RS/MLD
    /// frames), so the only traffic is what a test sends.
    pub disable_ipv6: bool,
}

/// A veth pair with its ends in two namespaces, up, deleted on drop.
#[derive(Debug)]
pub struct VethPair {
    ns_a: String,
    name_a: String,
    ns_b: String,
    name_b: String,
}

impl VethPair {
    /// Creates `name_a` in `ns_a` and its peer `name_b` in `ns_b`, applies `cfg`, sets both up.
    pub fn new(ns_a: &Netns, name_a: &str, ns_b: &Netns, name_b: &str, cfg: &VethConfig) -> io::Result<VethPair> {
        check_ifname(name_a)?;
        check_ifname(name_b)?;
        let q = cfg.queues.map(|q| q.to_string());
        let mtu = cfg.mtu.map(|m| m.to_string());
        let mut per_end: Vec<&str> = Vec::new();
        if let Some(q) = &q {
            per_end.extend(["numtxqueues", q, "numrxqueues", q]);
        }
        if let Some(m) = &mtu {
            per_end.extend(["mtu", m]);
        }
        let mut args = vec!["link", "add", name_a];
        args.extend(&per_end);
        args.extend(["type", "veth", "peer", "name", name_b]);
        args.extend(&per_end);
        args.extend(["netns", ns_b.name()]);
        ns_a.ip(&args)?;
        // From here on, Drop removes the pair if a later step fails.
        let pair = VethPair {
            ns_a: ns_a.name().to_string(),
            name_a: name_a.to_string(),
            ns_b: ns_b.name().to_string(),
            name_b: name_b.to_string(),
        };
        for (ns, name, addr) in [(ns_a, name_a, &cfg.addr_a), (ns_b, name_b, &cfg.addr_b)] {
            if let Some(q) = cfg.queues.filter(|&q| q > 1) {
                set_channels(ns, name, q)?;
            }
            if cfg.disable_ipv6 {
                ns.sysctl(&format!("net/ipv6/conf/{name}/disable_ipv6"), "1")?;
            }
            if let Some(a) = addr {
                ns.ip(&["addr", "add", a, "dev", name])?;
            }
            ns.ip(&["link", "set", name, "up"])?;
        }
        Ok(pair)
    }

    /// The interface name of `end`.
    pub fn name(&self, end: End) -> &str {
        match end {
            End::A => &self.name_a,
            End::B => &self.name_b,
        }
    }

    /// The namespace name of `end`.
    pub fn netns(&self, end: End) -> &str {
        match end {
            End::A => &self.ns_a,
            End::B => &self.ns_b,
        }
    }

    /// Reads the MAC address of `end`.
    pub fn mac(&self, end: End) -> io::Result<[u8; 6]> {
        let out = run("ip", &["-n", self.netns(end), "-o", "link", "show", "dev", self.name(end)])?;
        let word = out
            .split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .ok_or_else(|| io::Error::other(format!("no link/ether in `ip link show`: {out}")))?;
        parse_mac(word)
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        // Deleting one end deletes both. The namespace may already be gone: not an error.
        let _ = run("ip", &["-n", &self.ns_a, "link", "del", &self.name_a]);
    }
}

/// Sets the active channel count of a veth end (`ethtool -L NAME rx N tx N`) unless it already
/// has it.
fn set_channels(ns: &Netns, name: &str, q: u32) -> io::Result<()> {
    let out = ns.exec(&["ethtool", "-l", name])?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "Current hardware settings:" section: RX: n / TX: n.
    let current = text.split("Current hardware settings:").nth(1).unwrap_or("");
    let get = |key: &str| current.lines().find_map(|l| l.trim().strip_prefix(key).map(|v| v.trim().to_string()));
    let want = q.to_string();
    if out.status.success() && get("RX:").as_deref() == Some(&want) && get("TX:").as_deref() == Some(&want) {
        return Ok(());
    }
    let out = ns.exec(&["ethtool", "-L", name, "rx", &want, "tx", &want])?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "netns {}: `ethtool -L {name} rx {q} tx {q}` failed ({}): {}",
            ns.name(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> io::Result<[u8; 6]> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, format!("bad MAC address {s:?}"));
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next().ok_or_else(bad)?, 16).map_err(|_| bad())?;
    }
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(mac)
}

/// Formats a MAC address as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// Options of a [`Topology`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopologyConfig {
    /// Queue count of both veth pairs (see [`VethConfig::queues`]).
    pub queues: Option<u32>,
    /// MTU of all four interfaces.
    pub mtu: Option<u32>,
    /// Enable IPv4 forwarding in the DUT namespace (kernel-forwarding baseline). Off by
    /// default, so that only xskd moves packets from d0 to d1.
    pub dut_ip_forward: bool,
}

/// The default demo/bench topology:
///
/// ```text
/// gen [g0 198.18.0.1/24] ⇄ [d0 198.18.0.2/24] dut [d1 198.19.0.2/24] ⇄ [s0 198.19.0.1/24] sink
/// ```
///
/// Routes: gen → 198.19.0.0/24 via 198.18.0.2; sink → 198.18.0.0/24 via 198.19.0.2. Static
/// (`nud permanent`) neighbours on every link, so no ARP is needed; IPv6 is disabled on the four
/// interfaces so they carry only what is sent on purpose. Drop removes everything.
#[derive(Debug)]
pub struct Topology {
    // Field order is drop order: links first, then namespaces.
    gen_link: VethPair,
    sink_link: VethPair,
    macs: [[u8; 6]; 4],
    generator: Netns,
    dut: Netns,
    sink: Netns,
}

impl Topology {
    /// Generator-side interface (in `gen`).
    pub const GEN_IF: &'static str = "g0";
    /// DUT interface facing the generator.
    pub const DUT_GEN_IF: &'static str = "d0";
    /// DUT interface facing the sink.
    pub const DUT_SINK_IF: &'static str = "d1";
    /// Sink-side interface (in `sink`).
    pub const SINK_IF: &'static str = "s0";
    /// Address of g0.
    pub const GEN_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    /// Address of d0.
    pub const DUT_GEN_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    /// Address of d1.
    pub const DUT_SINK_ADDR: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 2);
    /// Address of s0.
    pub const SINK_ADDR: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);

    /// Builds the topology with default options; namespaces are `PREFIX-{gen,dut,sink}-PID-N`.
    pub fn new(prefix: &str) -> io::Result<Topology> {
        Topology::with_config(prefix, &TopologyConfig::default())
    }

    /// Builds the topology with `cfg`.
    pub fn with_config(prefix: &str, cfg: &TopologyConfig) -> io::Result<Topology> {
        let gen_ns = Netns::new(&format!("{prefix}-gen"))?;
        let dut = Netns::new(&format!("{prefix}-dut"))?;
        let sink = Netns::new(&format!("{prefix}-sink"))?;
        let veth = |a: &str, b: &str| VethConfig {
            queues: cfg.queues,
            mtu: cfg.mtu,
            addr_a: Some(a.to_string()),
            addr_b: Some(b.to_string()),
            disable_ipv6: true,
        };
        let gen_link =
            VethPair::new(&gen_ns, Self::GEN_IF, &dut, Self::DUT_GEN_IF, &veth("198.18.0.1/24", "198.18.0.2/24"))?;
        let sink_link =
            VethPair::new(&dut, Self::DUT_SINK_IF, &sink, Self::SINK_IF, &veth("198.19.0.2/24", "198.19.0.1/24"))?;
        let macs = [gen_link.mac(End::A)?, gen_link.mac(End::B)?, sink_link.mac(End::A)?, sink_link.mac(End::B)?];
        let [g0, d0, d1, s0] = macs.map(|m| format_mac(&m));
        let neigh = |ns: &Netns, ip: Ipv4Addr, mac: &str, dev: &str| {
            ns.ip(&["neigh", "replace", &ip.to_string(), "lladdr", mac, "dev", dev, "nud", "permanent"])
        };
        neigh(&gen_ns, Self::DUT_GEN_ADDR, &d0, Self::GEN_IF)?;
        neigh(&dut, Self::GEN_ADDR, &g0, Self::DUT_GEN_IF)?;
        neigh(&dut, Self::SINK_ADDR, &s0, Self::DUT_SINK_IF)?;
        neigh(&sink, Self::DUT_SINK_ADDR, &d1, Self::SINK_IF)?;
        gen_ns.ip(&["route", "add", "198.19.0.0/24", "via", "198.18.0.2", "dev", Self::GEN_IF])?;
        sink.ip(&["route", "add", "198.18.0.0/24", "via", "198.19.0.2", "dev", Self::SINK_IF])?;
        if cfg.dut_ip_forward {
            dut.sysctl("net/ipv4/ip_forward", "1")?;
        }
        Ok(Topology { gen_link, sink_link, macs, generator: gen_ns, dut, sink })
    }

    /// The generator namespace (`gen`; `gen` is reserved as a keyword in Rust 2024).
    pub fn generator(&self) -> &Netns {
        &self.generator
    }

    /// The DUT namespace (where xskd runs).
    pub fn dut(&self) -> &Netns {
        &self.dut
    }

    /// The sink namespace.
    pub fn sink(&self) -> &Netns {
        &self.sink
    }

    /// The g0 ⇄ d0 pair (A = g0, B = d0).
    pub fn gen_link(&self) -> &VethPair {
        &self.gen_link
    }

    /// The d1 ⇄ s0 pair (A = d1, B = s0).
    pub fn sink_link(&self) -> &VethPair {
        &self.sink_link
    }

    /// MAC of g0.
    pub fn gen_mac(&self) -> [u8; 6] {
        self.macs[0]
    }

    /// MAC of d0.
    pub fn dut_gen_mac(&self) -> [u8; 6] {
        self.macs[1]
    }

    /// MAC of d1.
    pub fn dut_sink_mac(&self) -> [u8; 6] {
        self.macs[2]
    }

    /// MAC of s0.
    pub fn sink_mac(&self) -> [u8; 6] {
        self.macs[3]
    }
}

/// Options of an [`LbTopology`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LbTopologyConfig {
    /// Number of backend namespaces (1..=50).
    pub backends: usize,
    /// Queue count of the DUT's two veth pairs (see [`VethConfig::queues`]).
    pub queues: Option<u32>,
}

impl Default for LbTopologyConfig {
    fn default() -> Self {
        LbTopologyConfig { backends: 3, queues: None }
    }
}

/// The load-balancer topology: a client, the DUT, and backends on one L2 segment.
///
/// ```text
/// client [c0 198.18.0.1/24] ⇄ [d0 198.18.0.2/24, VIP 198.18.0.100/32] dut [d1 198.19.0.2/24]
///   ⇄ [l0] lan: bridge br0 [l1..lN] ⇄ [b0 198.19.0.11/24] backend1 … [b0 198.19.0.1N/24] backendN
/// ```
///
/// No static neighbour entries anywhere: every host resolves the others by ARP (the DUT's
/// kernel owns the VIP on d0 and the SNAT address 198.19.0.2 on d1, and answers for them).
/// IPv6 is disabled on every interface. TX checksum offload is off on c0 and the backends'
/// b0: frames that cross an AF_XDP engine must carry complete checksums. Drop removes all.
#[derive(Debug)]
pub struct LbTopology {
    // Field order is drop order: links first, then namespaces.
    client_link: VethPair,
    dut_lan: VethPair,
    backend_links: Vec<VethPair>,
    macs: [[u8; 6]; 3],
    client: Netns,
    dut: Netns,
    lan: Netns,
    backends: Vec<Netns>,
}

impl LbTopology {
    /// Client interface.
    pub const CLIENT_IF: &'static str = "c0";
    /// DUT interface facing the client.
    pub const DUT_CLIENT_IF: &'static str = "d0";
    /// DUT interface facing the backends.
    pub const DUT_BACKEND_IF: &'static str = "d1";
    /// Backend interface (in every backend namespace).
    pub const BACKEND_IF: &'static str = "b0";
    /// Client address.
    pub const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    /// The DUT's own address on the client side.
    pub const DUT_CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    /// The virtual IP (on d0, /32).
    pub const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
    /// The DUT's address on the backend segment (the SNAT address).
    pub const SNAT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 2);

    /// Address of backend `i` (0-based): 198.19.0.(11 + i).
    pub fn backend_addr(i: usize) -> Ipv4Addr {
        Ipv4Addr::new(198, 19, 0, 11 + i as u8)
    }

    /// Builds it; namespaces are `PREFIX-{cli,dut,lan,bN}-PID-N`.
    pub fn new(prefix: &str, cfg: &LbTopologyConfig) -> io::Result<LbTopology> {
        if !(1..=50).contains(&cfg.backends) {
            return Err(io::Error::other(format!("{} backends: expected 1..=50", cfg.backends)));
        }
        let client = Netns::new(&format!("{prefix}-cli"))?;
        let dut = Netns::new(&format!("{prefix}-dut"))?;
        let lan = Netns::new(&format!("{prefix}-lan"))?;
        let backends: Vec<Netns> =
            (0..cfg.backends).map(|i| Netns::new(&format!("{prefix}-b{}", i + 1))).collect::<io::Result<_>>()?;
        let veth = |a: Option<&str>, b: Option<&str>, queues: Option<u32>| VethConfig {
            queues,
            mtu: None,
            addr_a: a.map(str::to_string),
            addr_b: b.map(str::to_string),
            disable_ipv6: true,
        };
        let client_link = VethPair::new(
            &client,
            Self::CLIENT_IF,
            &dut,
            Self::DUT_CLIENT_IF,
            &veth(Some("198.18.0.1/24"), Some("198.18.0.2/24"), cfg.queues),
        )?;
        dut.ip(&["addr", "add", &format!("{}/32", Self::VIP), "dev", Self::DUT_CLIENT_IF])?;
        lan.ip(&["link", "add", "br0", "type", "bridge"])?;
        lan.sysctl("net/ipv6/conf/br0/disable_ipv6", "1")?;
        lan.ip(&["link", "set", "br0", "up"])?;
        let dut_lan =
            VethPair::new(&dut, Self::DUT_BACKEND_IF, &lan, "l0", &veth(Some("198.19.0.2/24"), None, cfg.queues))?;
        lan.ip(&["link", "set", "l0", "master", "br0"])?;
        let mut backend_links = Vec::new();
        for (i, ns) in backends.iter().enumerate() {
            let addr = format!("{}/24", Self::backend_addr(i));
            let lname = format!("l{}", i + 1);
            let link = VethPair::new(ns, Self::BACKEND_IF, &lan, &lname, &veth(Some(&addr), None, None))?;
            lan.ip(&["link", "set", &lname, "master", "br0"])?;
            tx_offload_off(ns, Self::BACKEND_IF)?;
            backend_links.push(link);
        }
        tx_offload_off(&client, Self::CLIENT_IF)?;
        let macs = [client_link.mac(End::A)?, client_link.mac(End::B)?, dut_lan.mac(End::A)?];
        Ok(LbTopology { client_link, dut_lan, backend_links, macs, client, dut, lan, backends })
    }

    /// The client namespace.
    pub fn client(&self) -> &Netns {
        &self.client
    }

    /// The DUT namespace.
    pub fn dut(&self) -> &Netns {
        &self.dut
    }

    /// The LAN namespace (the bridge).
    pub fn lan(&self) -> &Netns {
        &self.lan
    }

    /// Backend namespace `i` (0-based).
    pub fn backend(&self, i: usize) -> &Netns {
        &self.backends[i]
    }

    /// Number of backends.
    pub fn backend_count(&self) -> usize {
        self.backends.len()
    }

    /// The c0 ⇄ d0 pair (A = c0).
    pub fn client_link(&self) -> &VethPair {
        &self.client_link
    }

    /// The d1 ⇄ l0 pair (A = d1).
    pub fn dut_lan_link(&self) -> &VethPair {
        &self.dut_lan
    }

    /// Backend `i`'s link (A = its b0, B = its port on the bridge).
    pub fn backend_link(&self, i: usize) -> &VethPair {
        &self.backend_links[i]
    }

    /// MAC of c0.
    pub fn client_mac(&self) -> [u8; 6] {
        self.macs[0]
    }

    /// MAC of d0.
    pub fn dut_client_mac(&self) -> [u8; 6] {
        self.macs[1]
    }

    /// MAC of d1.
    pub fn dut_backend_mac(&self) -> [u8; 6] {
        self.macs[2]
    }
}

/// Turns TX checksum offload off (`ethtool -K DEV tx off`).
pub fn tx_offload_off(ns: &Netns, dev: &str) -> io::Result<()> {
    let out = ns.exec(&["ethtool", "-K", dev, "tx", "off"])?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "ethtool -K {dev} tx off in {}: {}",
            ns.name(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trip() {
        let m = parse_mac("02:0a:ff:00:10:9c").expect("valid");
        assert_eq!(m, [0x02, 0x0a, 0xff, 0x00, 0x10, 0x9c]);
        assert_eq!(format_mac(&m), "02:0a:ff:00:10:9c");
        assert!(parse_mac("02:0a:ff:00:10").is_err());
        assert!(parse_mac("02:0a:ff:00:10:9c:00").is_err());
        assert!(parse_mac("zz:0a:ff:00:10:9c").is_err());
    }

    #[test]
    fn interface_names_are_checked() {
        assert!(check_ifname("d0").is_ok());
        assert!(check_ifname("abcdefghijklmno").is_ok());
        assert!(check_ifname("abcdefghijklmnop").is_err());
        assert!(check_ifname("").is_err());
        assert!(check_ifname("a/b").is_err());
        assert!(check_ifname("a b").is_err());
    }
}
