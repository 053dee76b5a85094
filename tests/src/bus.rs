//! A private system bus for one test: a real dbus-daemon (system-type
//! configuration, a <servicedir> for activation, the project's bus policy),
//! started in the test's network namespace so the activated xdpd sees only
//! the test's interfaces. Everything is stopped and removed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::PinDir;

/// Where cargo put the xdpd binary (next to the test binary's deps/ folder).
/// XDPD_BINARY names another one (e.g. an older build, to compare in a benchmark).
pub fn xdpd_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("XDPD_BINARY") {
        return bin.into();
    }
    // Tests live in target/<profile>/deps, the benchmark in target/<profile>.
    let exe = std::env::current_exe().expect("current_exe");
    let candidates = exe.ancestors().skip(1).take(2).map(|d| d.join("xdpd"));
    let bin = candidates.clone().find(|b| b.is_file());
    bin.unwrap_or_else(|| {
        panic!("xdpd is missing next to {}: build it first (cargo build --workspace --bins)", exe.display())
    })
}

/// Where cargo put the xdpctl binary (next to the test binary's deps/ folder,
/// or next to the benchmark).
pub fn xdpctl_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let bin = exe.ancestors().skip(1).take(2).map(|d| d.join("xdpctl")).find(|b| b.is_file());
    bin.unwrap_or_else(|| {
        panic!("xdpctl is missing next to {}: build it first (cargo build --workspace --bins)", exe.display())
    })
}

fn repo_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

pub struct TestBus {
    pub dir: PathBuf,
    pub address: String,
    pub pins: PinDir,
    daemon: Child,
}

impl TestBus {
    /// Starts a bus whose activated xdpd runs in network namespace `netns`.
    pub fn start(name: &str, netns: &str, idle_timeout: u64) -> TestBus {
        crate::require_root();
        let dir = std::env::temp_dir().join(format!("xdpd-bus-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("services")).expect("bus dir");
        // The named namespaces this xdpd follows: only those a test puts here
        // (other tests' namespaces in /run/netns are none of its business).
        std::fs::create_dir_all(dir.join("netns")).expect("netns dir");
        let pins = PinDir::new(&format!("bus-{name}"));
        let socket = dir.join("bus.sock");
        let policy = repo_file("systemd/org.xdp.Manager1.conf").canonicalize().expect("bus policy file");
        std::fs::write(
            dir.join("bus.conf"),
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <servicedir>{services}</servicedir>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus"/>
  </policy>
  <!-- polkitd switches to its own user, as on a real system -->
  <policy user="polkitd">
    <allow own="org.freedesktop.PolicyKit1"/>
  </policy>
  <include>{policy}</include>
</busconfig>
"#,
                socket = socket.display(),
                services = dir.join("services").display(),
                policy = policy.display(),
            ),
        )
        .expect("bus.conf");
        std::fs::write(
            dir.join("services/org.xdp.Manager1.service"),
            format!(
                "[D-BUS Service]\nName=org.xdp.Manager1\nExec={} --state-dir {} --bpffs-root {} --netns-dir {} --idle-timeout {idle_timeout} --log-stderr\nUser=root\n",
                xdpd_binary().display(),
                dir.join("state").display(),
                pins.0.join("xdpd").display(),
                dir.join("netns").display(),
            ),
        )
        .expect("activation file");
        let log = std::fs::File::create(dir.join("bus.log")).expect("bus log");
        let daemon = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{netns}"))
            .args(["dbus-daemon", "--nofork", "--nopidfile", "--config-file"])
            .arg(dir.join("bus.conf"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start dbus-daemon");
        let bus = TestBus { address: format!("unix:path={}", socket.display()), dir, pins, daemon };
        let start = Instant::now();
        // The socket file appears at bind(), before listen(): wait until it accepts.
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(start.elapsed() < Duration::from_secs(10), "dbus-daemon did not start: {}", bus.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        bus
    }

    /// What dbus-daemon and the activated xdpd printed.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("bus.log")).unwrap_or_default()
    }

    pub async fn connect(&self) -> zbus::Connection {
        zbus::connection::Builder::address(self.address.as_str()).build().await.expect("connect to the test bus")
    }

    /// Runs busctl against this bus; returns (success, stdout, stderr).
    pub fn busctl(&self, args: &[&str]) -> (bool, String, String) {
        self.busctl_as(None, args)
    }

    /// busctl as another user (setpriv), for authorization tests.
    pub fn busctl_as(&self, uid: Option<u32>, args: &[&str]) -> (bool, String, String) {
        let mut cmd = match uid {
            Some(uid) => {
                let mut c = Command::new("setpriv");
                c.args([format!("--reuid={uid}"), format!("--regid={uid}"), "--clear-groups".into(), "busctl".into()]);
                c
            }
            None => Command::new("busctl"),
        };
        let out = cmd.arg(format!("--address={}", self.address)).args(args).output().expect("run busctl");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The pid of the running xdpd, if it holds the name.
    pub fn service_pid(&self) -> Option<u32> {
        let (ok, out, _) = self.busctl(&[
            "call",
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "GetConnectionUnixProcessID",
            "s",
            "org.xdp.Manager1",
        ]);
        if !ok {
            return None;
        }
        out.split_whitespace().nth(1)?.parse().ok()
    }

    /// Waits until the service has exited (idle exit, or after `stop_service`).
    pub fn wait_service_gone(&self, pid: u32, timeout: Duration) -> bool {
        let start = Instant::now();
        while Path::new(&format!("/proc/{pid}")).exists() {
            if start.elapsed() > timeout {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        true
    }

    pub fn stop_service(&self) {
        if let Some(pid) = self.service_pid() {
            // SAFETY: signalling a process we started through the bus.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            self.wait_service_gone(pid, Duration::from_secs(10));
        }
    }
}

impl Drop for TestBus {
    fn drop(&mut self) {
        self.stop_service();
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        if std::thread::panicking() {
            eprintln!("--- bus log ---\n{}", self.log());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
