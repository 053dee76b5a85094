//! Boot (issue #12 item 8): the unit is valid for systemd, and a service
//! started the way systemd starts it at boot — not by a D-Bus call — puts
//! persistent chains back after a reboot (bpffs emptied) on the interfaces
//! present, and on an interface that appears later as it appears, without
//! exiting idle before.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use xdpd_client::{LinkProxy, ManagerProxy};
use xdpd_tests::bus::{xdpd_binary, TestBus};
use xdpd_tests::netns::VethPair;
use zbus::Variant;

/// How long the service may take to do something; a bound, not a measurement.
const BOUND: Duration = Duration::from_secs(60);

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `systemd-analyze verify` of the unit as `make install` writes it (ExecStart
/// pointing at the built binary), offline.
#[test]
fn the_unit_verifies() {
    let dir = Scratch(std::env::temp_dir().join(format!("xdpd-unit-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).expect("scratch dir");
    let unit = std::fs::read_to_string(repo_file("systemd/xdpd.service")).expect("unit");
    let unit = unit.replace("/usr/libexec/xdpd", &xdpd_binary().display().to_string());
    std::fs::write(dir.0.join("xdpd.service"), unit).expect("write unit");
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(dir.0.join("xdpd.service"))
        .output()
        .expect("systemd-analyze (install systemd)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.trim().is_empty(), "systemd-analyze verify:\n{err}");
    // What boot restoring rests on (the unit's comments say why).
    let text = std::fs::read_to_string(dir.0.join("xdpd.service")).expect("unit");
    for line in ["WantedBy=multi-user.target", "Before=network-pre.target", "Wants=network-pre.target"] {
        assert!(text.lines().any(|l| l == line), "the unit lacks {line}");
    }
}

/// xdpd started directly, as systemd starts it at boot; killed on drop.
struct Started(Child);

impl Started {
    fn spawn(bus: &TestBus, ns: &str, idle_timeout: u64) -> Started {
        let log = std::fs::File::create(bus.dir.join("boot.log")).expect("log file");
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{ns}"))
            .arg(xdpd_binary())
            .arg("--state-dir")
            .arg(bus.dir.join("state"))
            .arg("--bpffs-root")
            .arg(bus.pins.0.join("xdpd"))
            .args(["--bus-address", &bus.address, "--idle-timeout", &idle_timeout.to_string(), "--log-stderr"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start xdpd");
        Started(child)
    }

    fn running(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `f` holds, at most BOUND.
fn wait_until(what: &str, log: &Path, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < BOUND,
            "{what}: not within {BOUND:?}\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn chain_on(ns: &str, dev: &str) -> u32 {
    let ifindex = VethPair::ifindex(ns, dev);
    VethPair::run_in(ns, || xdpd::kernel::hook::attached(ifindex).map(|a| a.native).unwrap_or(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_service_restores_persistent_chains_without_a_call() {
    let pair = VethPair::new();
    let ns = pair.ns_b.clone();
    run("ip", &["-n", &ns, "link", "add", "veth-c", "type", "veth", "peer", "name", "veth-d"]);
    let bus = TestBus::start("boot", &ns, 0);
    let conn = bus.connect().await;
    let manager = ManagerProxy::new(&conn).await.expect("manager");
    let object = xdpd_bpf::object_path("udp").display().to_string();
    for dev in [pair.dev_b.as_str(), "veth-c"] {
        let path = manager.get_link_by_name(dev).await.expect("link");
        let link = LinkProxy::builder(&conn).path(path).build().await.expect("link proxy");
        let persist = HashMap::from([("persist", Variant::from(true))]);
        link.add_program_from_path(&object, "udp_drop", persist).await.expect("add a persistent program");
        assert_ne!(chain_on(&ns, dev), 0);
    }

    // Reboot: the service goes, and the kernel forgets links and pins; veth-c
    // is not there at first (hot-plugged later).
    bus.stop_service();
    let pins = bus.pins.0.join("xdpd");
    for dev in [pair.dev_b.as_str(), "veth-c"] {
        let pin = pins.join(VethPair::ifindex(&ns, dev).to_string()).join("link");
        run("bpftool", &["link", "detach", "pinned", &pin.display().to_string()]);
    }
    std::fs::remove_dir_all(&pins).expect("empty bpffs");
    run("ip", &["-n", &ns, "link", "del", "veth-c"]);
    assert_eq!(chain_on(&ns, &pair.dev_b), 0);

    // Started as at boot, with a 1 s idle timeout: nobody calls it.
    let mut service = Started::spawn(&bus, &ns, 1);
    let log = bus.dir.join("boot.log");
    wait_until("the chain of veth-b restored", &log, || chain_on(&ns, &pair.dev_b) != 0);
    // Past its idle timeout it stays, because a persistent program waits for veth-c...
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        service.running(),
        "exited while veth-c was awaited:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    // ...whose chain comes back as soon as it appears.
    run("ip", &["-n", &ns, "link", "add", "veth-c", "type", "veth", "peer", "name", "veth-d"]);
    wait_until("the chain of veth-c restored", &log, || chain_on(&ns, "veth-c") != 0);
    // Then it exits idle; the pins keep both chains.
    wait_until("the idle exit", &log, || !service.running());
    assert_ne!(chain_on(&ns, &pair.dev_b), 0);
    assert_ne!(chain_on(&ns, "veth-c"), 0);
}
