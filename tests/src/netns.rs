//! Network namespaces and veth pairs for live-traffic tests. Everything is
//! deleted on drop, so a failing test leaves nothing behind.

use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip (install iproute2)");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// Two namespaces joined by a veth pair: `a` (10.199.N.1, sender) and `b`
/// (10.199.N.2, receiver, where the chain is attached).
pub struct VethPair {
    pub ns_a: String,
    pub ns_b: String,
    pub dev_a: String,
    pub dev_b: String,
    pub addr_a: std::net::Ipv4Addr,
    pub addr_b: std::net::Ipv4Addr,
}

impl VethPair {
    pub fn new() -> VethPair {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{}-{n}", std::process::id() % 100_000);
        let subnet = (std::process::id() as u8).wrapping_add(n as u8);
        let pair = VethPair {
            ns_a: format!("xdpd-a-{tag}"),
            ns_b: format!("xdpd-b-{tag}"),
            dev_a: "veth-a".into(),
            dev_b: "veth-b".into(),
            addr_a: std::net::Ipv4Addr::new(10, 199, subnet, 1),
            addr_b: std::net::Ipv4Addr::new(10, 199, subnet, 2),
        };
        // From here on Drop cleans up whatever was created.
        ip(&["netns", "add", &pair.ns_a]);
        ip(&["netns", "add", &pair.ns_b]);
        // IPv6 off before the devices exist: no neighbour discovery or MLD
        // packet reaches a chain whose counts or verdicts a test compares.
        for ns in [&pair.ns_a, &pair.ns_b] {
            for key in ["net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"] {
                let _ = Command::new("ip").args(["netns", "exec", ns, "sysctl", "-qw", key]).status();
            }
        }
        ip(&[
            "-n",
            &pair.ns_a,
            "link",
            "add",
            &pair.dev_a,
            "type",
            "veth",
            "peer",
            "name",
            &pair.dev_b,
            "netns",
            &pair.ns_b,
        ]);
        for (ns, dev, addr) in [(&pair.ns_a, &pair.dev_a, pair.addr_a), (&pair.ns_b, &pair.dev_b, pair.addr_b)] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        // Permanent neighbours: no ARP traffic racing the packets a test counts.
        let mac = |ns: &str, dev: &str| {
            let out = Command::new("ip").args(["-n", ns, "-br", "link", "show", dev]).output().expect("ip link show");
            String::from_utf8_lossy(&out.stdout).split_whitespace().nth(2).unwrap_or_default().to_string()
        };
        let (mac_a, mac_b) = (mac(&pair.ns_a, &pair.dev_a), mac(&pair.ns_b, &pair.dev_b));
        ip(&[
            "-n",
            &pair.ns_a,
            "neigh",
            "replace",
            &pair.addr_b.to_string(),
            "lladdr",
            &mac_b,
            "dev",
            &pair.dev_a,
            "nud",
            "permanent",
        ]);
        ip(&[
            "-n",
            &pair.ns_b,
            "neigh",
            "replace",
            &pair.addr_a.to_string(),
            "lladdr",
            &mac_a,
            "dev",
            &pair.dev_b,
            "nud",
            "permanent",
        ]);
        pair
    }

    /// Runs `f` on a thread that lives in namespace `ns` (setns affects only the calling thread).
    pub fn run_in<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| {
            s.spawn(|| {
                enter(ns);
                f()
            })
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
        })
    }

    /// Interface index of `dev` seen from inside `ns`.
    pub fn ifindex(ns: &str, dev: &str) -> u32 {
        VethPair::run_in(ns, || {
            let name = std::ffi::CString::new(dev).expect("device name");
            // SAFETY: NUL-terminated name.
            let idx = unsafe { libc::if_nametoindex(name.as_ptr()) };
            assert_ne!(idx, 0, "no interface {dev} in {ns}");
            idx
        })
    }
}

/// Moves the calling thread into network namespace `ns`.
pub fn enter(ns: &str) {
    let file = std::fs::File::open(format!("/run/netns/{ns}")).expect("open netns");
    // SAFETY: setns on a namespace descriptor; affects only this thread.
    let ret = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(ret, 0, "setns {ns}: {}", std::io::Error::last_os_error());
}

impl Default for VethPair {
    fn default() -> Self {
        VethPair::new()
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        for ns in [&self.ns_a, &self.ns_b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// A UDP socket bound in the calling thread's namespace with a large receive
/// buffer, so bursts are counted rather than dropped by the socket.
pub fn udp_receiver(port: u16) -> std::net::UdpSocket {
    let sock = std::net::UdpSocket::bind(("0.0.0.0", port)).expect("bind receiver");
    let size: libc::c_int = 32 << 20;
    // SAFETY: setsockopt with a c_int option value.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    sock.set_nonblocking(true).expect("nonblocking");
    sock
}

/// Reads every datagram queued on `sock` now; returns how many.
pub fn drain(sock: &std::net::UdpSocket) -> u64 {
    let mut buf = [0u8; 2048];
    let mut n = 0;
    while sock.recv(&mut buf).is_ok() {
        n += 1;
    }
    n
}

/// Sends `count` datagrams to `to`, in bursts of 32 with a pause between, a
/// pace the veth ring absorbs without dropping.
pub fn send_paced(sock: &std::net::UdpSocket, to: std::net::SocketAddrV4, count: u64) {
    for i in 0..count {
        sock.send_to(&i.to_be_bytes(), to).expect("send");
        if i % 32 == 31 {
            std::thread::sleep(std::time::Duration::from_micros(300));
        }
    }
}

/// Namespace `ns` (of `ip netns`) shown to an xdpd under `name` in the
/// directory of named namespaces it follows (`--netns-dir`): a bind mount,
/// as `ip netns add` makes in /run/netns. Unmounted and removed on drop.
pub struct Followed {
    pub path: std::path::PathBuf,
}

impl Followed {
    pub fn new(dir: &std::path::Path, name: &str, ns: &str) -> Followed {
        let path = dir.join(name);
        std::fs::File::create(&path).expect("mount point");
        let followed = Followed { path };
        let out = Command::new("mount")
            .args(["--bind", &format!("/run/netns/{ns}")])
            .arg(&followed.path)
            .output()
            .expect("run mount");
        assert!(out.status.success(), "mount --bind: {}", String::from_utf8_lossy(&out.stderr));
        followed
    }

    /// The namespace's inode, as the service reports it.
    pub fn inode(&self) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&self.path).expect("stat the namespace").ino()
    }
}

impl Drop for Followed {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The XDP programs on `dev` in namespace `ns`.
pub fn attached_in(ns: &str, dev: &str) -> xdpd::kernel::hook::Attached {
    let index = VethPair::ifindex(ns, dev);
    VethPair::run_in(ns, || xdpd::kernel::hook::attached(index).expect("query XDP programs"))
}

impl VethPair {
    /// Sends `count` datagrams from `a` to `b`'s `port`; returns how many arrived.
    pub fn traffic(&self, port: u16, count: u64) -> u64 {
        let rx = VethPair::run_in(&self.ns_b, || udp_receiver(port));
        let tx = VethPair::run_in(&self.ns_a, || std::net::UdpSocket::bind("0.0.0.0:0").expect("bind sender"));
        send_paced(&tx, std::net::SocketAddrV4::new(self.addr_b, port), count);
        std::thread::sleep(std::time::Duration::from_millis(150));
        drain(&rx)
    }
}

/// A process that made a network namespace of its own with `unshare -n`
/// (as root) or `unshare -rn` (as user `uid`, in a user namespace), and
/// sleeps in it; killed on drop, which ends the namespace.
pub struct Unshared {
    child: std::process::Child,
}

impl Unshared {
    pub fn new(uid: Option<u32>) -> Unshared {
        let mut cmd = match uid {
            None => {
                let mut c = Command::new("unshare");
                c.arg("-n");
                c
            }
            Some(uid) => {
                let mut c = Command::new("setpriv");
                c.args([format!("--reuid={uid}"), format!("--regid={uid}"), "--clear-groups".into()]);
                c.args(["unshare", "-rn"]);
                c
            }
        };
        let child = cmd.args(["sleep", "600"]).spawn().expect("run unshare");
        let unshared = Unshared { child };
        let own = std::fs::read_link("/proc/self/ns/net").expect("own netns");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        // unshare execs sleep in place: the pid is the sleeper's, in its namespace once unshared.
        while std::fs::read_link(unshared.ns_path()).is_ok_and(|l| l == own) {
            assert!(std::time::Instant::now() < deadline, "unshare did not make a namespace");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        unshared
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn ns_path(&self) -> std::path::PathBuf {
        format!("/proc/{}/ns/net", self.pid()).into()
    }

    /// The inode of its namespace.
    pub fn inode(&self) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(self.ns_path()).expect("stat its namespace").ino()
    }

    /// Runs `f` on a thread inside its namespace.
    pub fn run_in<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let file = std::fs::File::open(self.ns_path()).expect("open its namespace");
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: setns on a namespace descriptor; affects only this thread.
                let ret = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(ret, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
        })
    }

    /// Runs `ip ARGS` inside its namespace.
    pub fn ip(&self, args: &[&str]) {
        let pid = self.pid().to_string();
        let out = Command::new("nsenter").args(["-t", &pid, "-n", "ip"]).args(args).output().expect("nsenter ip");
        assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }

    /// Ends the process (and so its namespace) now.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Unshared {
    fn drop(&mut self) {
        self.kill();
    }
}
