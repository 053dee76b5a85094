//! xdpd's Cockpit page in a real browser: Debian's cockpit-ws serves the
//! package (`cockpit/`) in a local session whose bridge talks to a private
//! system bus with the built service on a veth pair; headless Chromium, driven
//! by Selenium (`tests/cockpit/page_test.py`), checks that the page lists the
//! interfaces, follows changes live, shows rising counters, adds and removes
//! programs, says why it is read-only for a user without administrative
//! access, and logs no console errors. The screenshot of the run is kept in
//! `target/cockpit-artifacts/`.
//!
//! Needs (and fails with a clear message without): cockpit-ws, cockpit-bridge,
//! cockpit-system (the shell around the page), chromium, chromium-driver and
//! python3-selenium.

use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use xdpd_tests::bus::{xdpctl_binary, TestBus};
use xdpd_tests::netns::VethPair;

const COCKPIT_WS: &str = "/usr/lib/cockpit/cockpit-ws";
const PYTHON: &str = "/usr/bin/python3";
/// The service's --idle-timeout, in seconds.
const IDLE_TIMEOUT: u64 = 4;
/// The whole browser run; a first call activates the service, Chromium starts slowly on 2 CPUs.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(240);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().expect("repository root")
}

/// Fails (never skips) when a tool the test needs is missing, naming its Debian package.
fn require_prerequisites() {
    let mut missing = Vec::new();
    for (path, package) in [
        (COCKPIT_WS, "cockpit-ws"),
        ("/usr/bin/cockpit-bridge", "cockpit-bridge"),
        ("/usr/share/cockpit/shell/manifest.json", "cockpit-system"),
        ("/usr/bin/chromium", "chromium"),
        ("/usr/bin/chromedriver", "chromium-driver"),
        (PYTHON, "python3"),
    ] {
        if !Path::new(path).exists() {
            missing.push(format!("{path} (package {package})"));
        }
    }
    let selenium = Command::new(PYTHON).args(["-c", "import selenium"]).stderr(Stdio::null()).status();
    if !selenium.is_ok_and(|s| s.success()) {
        missing.push("the selenium module of /usr/bin/python3 (package python3-selenium)".into());
    }
    assert!(
        missing.is_empty(),
        "the Cockpit page test needs {}: apt-get install cockpit-ws cockpit-bridge cockpit-system chromium chromium-driver python3-selenium (.ci/run does)",
        missing.join(", ")
    );
}

/// A process started in its own process group; the whole group is killed on drop
/// (cockpit-ws with its bridge; the Selenium script with chromedriver and Chromium).
struct Group {
    child: Child,
    name: &'static str,
}

impl Group {
    fn spawn(name: &'static str, cmd: &mut Command) -> Group {
        let child = cmd.process_group(0).spawn().unwrap_or_else(|e| panic!("start {name}: {e}"));
        Group { child, name }
    }

    /// Waits for the process to exit, up to `timeout`; None if it is still running.
    fn wait_for(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let pgid = self.child.id() as i32;
        // SAFETY: signalling the process group this test created, by its id.
        unsafe { libc::kill(-pgid, libc::SIGTERM) };
        if self.wait_for(Duration::from_secs(5)).is_none() {
            eprintln!("{} did not stop on SIGTERM; killing its process group", self.name);
        }
        // SAFETY: as above; whatever of the group is left (Chromium's helpers) goes too.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// A scratch directory readable by everyone (the read-only run's bridge is nobody), removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("xdpd-cockpit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Chromium's crash handlers start their own sessions, outside the script's
        // process group: any process still naming this directory (the profile) goes.
        let needle = self.0.display().to_string();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse::<i32>().ok()) else { continue };
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            if pid != std::process::id() as i32 && String::from_utf8_lossy(&cmdline).contains(&needle) {
                // SAFETY: a process started for this test (its command line names the test's own directory).
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Copies the package the way make install does: $DATA/cockpit/xdpd/<files>.
fn install_package(data: &Path) {
    let dest = data.join("cockpit/xdpd");
    std::fs::create_dir_all(&dest).expect("package dir");
    for entry in std::fs::read_dir(repo().join("cockpit")).expect("cockpit/") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, dest.join(path.file_name().expect("name"))).expect("copy package file");
    }
    for dir in [data.to_path_buf(), data.join("cockpit"), dest] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port").local_addr().expect("addr").port()
}

/// Where the screenshots go: target/cockpit-artifacts/.
fn artifacts() -> PathBuf {
    let target = xdpctl_binary().parent().and_then(Path::parent).expect("target dir").to_path_buf();
    let dir = target.join("cockpit-artifacts");
    std::fs::create_dir_all(&dir).expect("artifact dir");
    dir
}

/// One browser run against its own cockpit-ws: as root (administrative access) or as nobody.
fn browser_run(name: &str, readonly: bool) {
    xdpd_tests::require_root();
    require_prerequisites();
    let pair = VethPair::new();
    // The service exits when idle, as installed (there after 60 s): the page must cope.
    let bus = TestBus::start(name, &pair.ns_b, IDLE_TIMEOUT);
    let ifindex = VethPair::ifindex(&pair.ns_b, &pair.dev_b);
    let scratch = Scratch::new(name);
    let data = scratch.0.join("share");
    install_package(&data);
    let objects = scratch.0.join("objects");
    std::fs::create_dir_all(&objects).expect("objects dir");
    for object in ["proto_count", "port_block", "basic"] {
        std::fs::copy(xdpd_bpf::object_path(object), objects.join(format!("{object}.o"))).expect("copy object");
    }
    let profile = scratch.0.join("chromium");
    std::fs::create_dir_all(&profile).expect("profile dir");
    let xdpctl = xdpctl_binary();
    let bin_dir = xdpctl.parent().expect("xdpctl's dir");

    // The bridge finds packages in $XDG_DATA_DIRS/cockpit (base1 stays in /usr/share)
    // and reaches the service through DBUS_SYSTEM_BUS_ADDRESS; xdpctl is on its PATH.
    let bridge_list = Command::new("cockpit-bridge")
        .arg("--packages")
        .env("XDG_DATA_DIRS", format!("{}:/usr/share", data.display()))
        .output()
        .expect("cockpit-bridge --packages");
    let listed = String::from_utf8_lossy(&bridge_list.stdout);
    assert!(
        listed.lines().any(|l| l.starts_with("xdpd ")),
        "cockpit-bridge does not see the package in {}:\n{listed}{}",
        data.display(),
        String::from_utf8_lossy(&bridge_list.stderr)
    );

    let port = free_port();
    let log_path = scratch.0.join("cockpit-ws.log");
    let log = std::fs::File::create(&log_path).expect("ws log");
    let mut ws = Command::new(COCKPIT_WS);
    if readonly {
        ws = {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", COCKPIT_WS]);
            c
        };
    }
    ws.args(["--no-tls", "--local-session=cockpit-bridge", "--address=127.0.0.1"])
        .arg(format!("--port={port}"))
        .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
        .env("XDG_DATA_DIRS", format!("{}:/usr/share", data.display()))
        .env("PATH", format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin_dir.display()))
        .env("HOME", &scratch.0)
        .env("XDG_RUNTIME_DIR", &scratch.0)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log);
    let ws = Group::spawn("cockpit-ws", &mut ws);
    let ws_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(20), "cockpit-ws did not listen on {port}:\n{}", ws_log());
        std::thread::sleep(Duration::from_millis(50));
    }

    let screenshot = artifacts().join(format!("{name}.png"));
    for suffix in ["", "-error", "-failure"] {
        let _ = std::fs::remove_file(artifacts().join(format!("{name}{suffix}.png")));
    }
    let script_log = scratch.0.join("page_test.log");
    let out = std::fs::File::create(&script_log).expect("script log");
    let mut script = Group::spawn(
        "the Selenium script",
        Command::new(PYTHON)
            .arg(repo().join("tests/cockpit/page_test.py"))
            .env("XDPD_URL", format!("http://127.0.0.1:{port}/cockpit/@localhost/xdpd/index.html"))
            .env("XDPD_ADDRESS", &bus.address)
            .env("XDPCTL", &xdpctl)
            .env("XDPD_IFACE", &pair.dev_b)
            .env("XDPD_SENDER_NS", &pair.ns_a)
            .env("XDPD_SERVICE_NS", &pair.ns_b)
            .env("XDPD_TARGET", pair.addr_b.to_string())
            .env("XDPD_OBJECTS", &objects)
            .env("XDPD_LINK_PIN", bus.pins.0.join("xdpd").join(ifindex.to_string()).join("link"))
            .env("XDPD_PROFILE", &profile)
            .env("XDPD_SCREENSHOT", &screenshot)
            .env("XDPD_IDLE_TIMEOUT", IDLE_TIMEOUT.to_string())
            .env("XDPD_MODE", if readonly { "readonly" } else { "admin" })
            .env("HOME", &scratch.0)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out),
    );
    let status = script.wait_for(BROWSER_TIMEOUT);
    let output = std::fs::read_to_string(&script_log).unwrap_or_default();
    eprintln!("--- page_test.py ---\n{output}");
    match status {
        Some(s) if s.success() => {}
        Some(s) => panic!("the browser test failed ({s}):\n{output}\n--- cockpit-ws ---\n{}", ws_log()),
        None => panic!(
            "the browser test did not finish within {BROWSER_TIMEOUT:?}:\n{output}\n--- cockpit-ws ---\n{}",
            ws_log()
        ),
    }
    assert!(screenshot.is_file(), "no screenshot at {}", screenshot.display());
    eprintln!("screenshot: {}", screenshot.display());
    // Stop the browser side before the bus and the namespaces go (fields drop in reverse).
    drop(script);
    drop(ws);
}

#[test]
fn page_follows_the_chain_live_and_changes_it() {
    browser_run("cockpit", false);
}

#[test]
fn page_is_read_only_without_administrative_access() {
    browser_run("cockpit-readonly", true);
}
