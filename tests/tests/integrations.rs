//! The integrations of examples/, run the way people run them against a
//! private system bus whose activated xdpd lives in a test network namespace:
//! the Python client (GObject introspection) and the NetworkManager dispatcher
//! script, invoked as NetworkManager does.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc::channel;
use std::time::Duration;

use serde_json::Value;
use xdpd_tests::bus::{xdpctl_binary, TestBus};
use xdpd_tests::netns::VethPair;

const TIMEOUT: Duration = Duration::from_secs(90);

fn repo_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

/// Runs `cmd` to completion, killing it (by its pid) if it outlives TIMEOUT.
fn run(mut cmd: Command) -> Output {
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start");
    let pid = child.id();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(TIMEOUT) {
        Ok(out) => out.expect("wait"),
        Err(_) => {
            // SAFETY: killing the child this test started, by its pid.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("{cmd:?} did not finish within {TIMEOUT:?}");
        }
    }
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The chain of `dev` as xdpctl status --json shows it.
fn status(bus: &TestBus, dev: &str) -> Value {
    let mut cmd = Command::new(xdpctl_binary());
    cmd.args(["--address", &bus.address, "--json", "status", dev]);
    let out = run(cmd);
    assert!(out.status.success(), "{}", text(&out));
    let all: Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    all["interfaces"][0].clone()
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("xdpd-integrations-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn python_client_passes_a_descriptor_and_follows_the_signals() {
    let pair = VethPair::new();
    let bus = TestBus::start("py-client", &pair.ns_b, 0);
    let dev = pair.dev_b.as_str();
    let object = xdpd_bpf::object_path("udp").display().to_string();
    let mut cmd = Command::new(repo_file("examples/python/xdpd_client.py"));
    cmd.args([dev, &object, "--program", "udp_drop", "--tag", "py", "--priority", "7", "--remove"])
        .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address);
    let out = run(cmd);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}\n--- bus log ---\n{}", bus.log());
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect();
    let path = lines[0].strip_prefix("added ").unwrap_or_else(|| panic!("{all}")).to_string();
    let link = path.rsplit_once("/program/").map(|(l, _)| l.to_string()).unwrap_or_else(|| panic!("{all}"));
    let id = path.rsplit('/').next().unwrap_or_default();
    let expected = [
        format!("added {path}"),
        format!("InterfacesAdded {path} name=udp_drop tag=py priority=7"),
        format!("PropertiesChanged Generation=1 Programs={path}"),
        format!("ChainChanged generation=1 programs={path}"),
    ];
    assert_eq!(lines[..4], expected, "{all}");
    assert!(lines[4].starts_with(&format!("program udp_drop: id {id}, sha256 ")), "{all}");
    let expected = [
        format!("removed {path}"),
        format!("InterfacesRemoved {path}"),
        "PropertiesChanged Generation=2 Programs=".to_string(),
        "ChainChanged generation=2 programs=".to_string(),
    ];
    assert_eq!(lines[5..], expected, "{all}");
    assert!(link.ends_with(&format!("/link/{}", VethPair::ifindex(&pair.ns_b, dev))), "{all}");
    assert_eq!(status(&bus, dev)["programs"].as_array().map(Vec::len), Some(0));

    // An error comes back as the service's error, with a non-zero status.
    let mut cmd = Command::new(repo_file("examples/python/xdpd_client.py"));
    cmd.args([dev, "/bin/true"]).env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address);
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("org.xdp.Manager1.Error.InvalidObject"), "{}", text(&out));
}

#[test]
fn networkmanager_dispatcher_puts_the_declared_chain_in_place() {
    let pair = VethPair::new();
    let bus = TestBus::start("nm-dispatcher", &pair.ns_b, 0);
    let dev = pair.dev_b.as_str();
    let chains = TempDir::new("nm");
    let udp = xdpd_bpf::object_path("udp").display().to_string();
    std::fs::write(
        chains.0.join(format!("{dev}.toml")),
        format!(
            "[[interface]]\nname = \"{dev}\"\n\n[[interface.program]]\nobject = \"{udp}\"\nfunction = \"udp_count\"\n\
             tag = \"nm\"\npriority = 10\n"
        ),
    )
    .expect("write declaration");
    // As NetworkManager runs a dispatcher script: as root, "IFACE ACTION", its variables, a plain PATH.
    let dispatch = |iface: &str, action: &str| {
        let mut cmd = Command::new(repo_file("examples/networkmanager/90-xdpd"));
        cmd.env_clear()
            .args([iface, action])
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("NM_DISPATCHER_ACTION", action)
            .env("DEVICE_IFACE", iface)
            .env("DEVICE_IP_IFACE", iface)
            .env("CONNECTION_ID", "Wired connection 1")
            .env("CONNECTION_UUID", "0b7c7d4e-4a8b-4a53-9d2c-5f2a0a8f6b11")
            .env("XDPD_CHAINS_DIR", &chains.0)
            .env("XDPCTL", xdpctl_binary())
            .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address);
        run(cmd)
    };

    // Down, or another interface without a declaration: nothing happens.
    let out = dispatch(dev, "down");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(status(&bus, dev)["programs"].as_array().map(Vec::len), Some(0));
    let out = dispatch(&pair.dev_a, "up");
    assert!(out.status.success(), "{}", text(&out));

    // Up: the declared chain is put in place.
    let out = dispatch(dev, "up");
    assert!(out.status.success(), "{}\n--- bus log ---\n{}", text(&out), bus.log());
    let link = status(&bus, dev);
    assert_eq!(link["programs"][0]["name"], "udp_count", "{link}");
    assert_eq!(link["programs"][0]["tag"], "nm", "{link}");
    let generation = link["generation"].clone();

    // Up again (NetworkManager reconnects): nothing changes.
    let out = dispatch(dev, "up");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(status(&bus, dev)["generation"], generation);

    // A declaration that cannot be applied fails, and says why.
    std::fs::write(chains.0.join(format!("{dev}.toml")), "[[interface]]\nname = 3\n").expect("write");
    let out = dispatch(dev, "up");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a valid declaration"), "{}", text(&out));
    assert_eq!(status(&bus, dev)["generation"], generation);
}

/// The Rust client's default proxies (with their property cache) read Stats
/// fresh: it is never signalled, so a cached value would stay stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_client_default_proxies_read_fresh_stats() {
    use std::collections::HashMap;
    use std::os::fd::AsFd;
    use xdpd_client::{LinkProxy, ManagerProxy, ProgramProxy};

    let pair = VethPair::new();
    let bus = TestBus::start("client-stats", &pair.ns_b, 0);
    let conn = bus.connect().await;
    let manager = ManagerProxy::new(&conn).await.expect("manager proxy");
    let link = manager.get_link_by_name(&pair.dev_b).await.expect("link");
    let link = LinkProxy::builder(&conn).path(link).build().await.expect("link proxy");
    let object = std::fs::File::open(xdpd_bpf::object_path("udp")).expect("udp.o");
    let path = link.add_program(object.as_fd().into(), "udp_drop", HashMap::new()).await.expect("add");
    link.set_counting(true).await.expect("counting on");
    let program = ProgramProxy::builder(&conn).path(path).build().await.expect("program proxy");
    let before = program.stats().await.expect("stats").get("drop").copied().unwrap_or(0);
    let tx = VethPair::run_in(&pair.ns_a, || std::net::UdpSocket::bind("0.0.0.0:0").expect("bind"));
    xdpd_tests::netns::send_paced(&tx, std::net::SocketAddrV4::new(pair.addr_b, 9999), 5);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let after = program.stats().await.expect("stats").get("drop").copied().unwrap_or(0);
    assert_eq!(after, before + 5, "the second read must not come from the proxy's cache");
}
