//! xdpctl end to end: the built binary against a private system bus whose
//! activated xdpd lives in a test network namespace. Human and JSON output of
//! every command, the exit status of every error class, and `watch` reporting
//! a scripted sequence of changes in order.

use std::io::{BufRead, BufReader};
use std::os::fd::AsFd;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use serde_json::Value;
use xdpd_tests::bus::{xdpctl_binary, TestBus};
use xdpd_tests::netns::VethPair;

/// Generous: a first call activates the service, a slow machine verifies slowly.
const TIMEOUT: Duration = Duration::from_secs(60);

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}\n--- stdout ---\n{}--- stderr ---\n{}", self.code, self.stdout, self.stderr)
    }
}

/// Runs `cmd` to completion, killing it (by its pid) if it outlives TIMEOUT.
fn run(mut cmd: Command) -> Run {
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start xdpctl");
    let pid = child.id();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(TIMEOUT) {
        Ok(out) => out.expect("wait for xdpctl"),
        Err(_) => {
            // SAFETY: killing the child this test started, by its pid.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("xdpctl did not finish within {TIMEOUT:?}");
        }
    };
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A veth pair and a private bus whose xdpd lives in the receiver's namespace.
/// Fields drop in order: bus (and service) first.
struct Fixture {
    bus: TestBus,
    pair: VethPair,
    ifindex: u32,
    /// Test objects copied where any user may read them (for the non-root cases).
    objects: TempDir,
}

impl Fixture {
    fn new(name: &str) -> Fixture {
        let pair = VethPair::new();
        let bus = TestBus::start(name, &pair.ns_b, 0);
        let ifindex = VethPair::ifindex(&pair.ns_b, &pair.dev_b);
        let objects = TempDir::new(name);
        Fixture { bus, pair, ifindex, objects }
    }

    fn command(&self, uid: Option<u32>, args: &[&str]) -> Command {
        let mut cmd = match uid {
            Some(uid) => {
                let mut c = Command::new("setpriv");
                c.args([format!("--reuid={uid}"), format!("--regid={uid}"), "--clear-groups".into()]);
                c.arg(xdpctl_binary());
                c
            }
            None => Command::new(xdpctl_binary()),
        };
        cmd.arg("--address").arg(&self.bus.address).args(args);
        cmd
    }

    fn run(&self, args: &[&str]) -> Run {
        run(self.command(None, args))
    }

    fn run_as(&self, uid: u32, args: &[&str]) -> Run {
        run(self.command(Some(uid), args))
    }

    /// Runs xdpctl and expects success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert_eq!(r.code, 0, "xdpctl {args:?}: {r}\n--- bus log ---\n{}", self.bus.log());
        r.stdout
    }

    /// Runs xdpctl with --json and expects one JSON document.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.ok(&all);
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("xdpctl {args:?} printed no JSON ({e}): {out}"))
    }

    /// Runs xdpctl, expects exit status `code` and an "xdpctl: " error line.
    fn fails(&self, code: i32, args: &[&str]) -> String {
        self.fails_as(None, code, args)
    }

    fn fails_as(&self, uid: Option<u32>, code: i32, args: &[&str]) -> String {
        let r = run(self.command(uid, args));
        assert_eq!(r.code, code, "xdpctl {args:?} (uid {uid:?}): {r}");
        assert!(r.stderr.starts_with("xdpctl: "), "xdpctl {args:?}: the error must start with 'xdpctl: ': {r}");
        r.stderr
    }

    /// Path of test object `name`, readable by everyone.
    fn object(&self, name: &str) -> String {
        self.objects.object(name)
    }

    fn status(&self) -> Value {
        let all = self.json(&["status", &self.pair.dev_b]);
        let links = all["interfaces"].as_array().expect("interfaces array");
        assert_eq!(links.len(), 1, "{all}");
        links[0].clone()
    }

    fn link_pin(&self) -> std::path::PathBuf {
        self.bus.pins.0.join("xdpd").join(self.ifindex.to_string()).join("link")
    }
}

/// A directory under /tmp any user can read, removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("xdpctl-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod temp dir");
        TempDir(dir)
    }

    fn object(&self, name: &str) -> String {
        use std::os::unix::fs::PermissionsExt;
        let path = self.0.join(format!("{name}.o"));
        if !path.exists() {
            std::fs::copy(xdpd_bpf::object_path(name), &path).expect("copy test object");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod object");
        }
        path.display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Lines of a running xdpctl's stdout, as they come.
struct Lines {
    child: Child,
    lines: Receiver<String>,
    errors: Receiver<String>,
}

impl Lines {
    fn spawn(mut cmd: Command) -> Lines {
        let mut child =
            cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start xdpctl");
        let forward = |read: Box<dyn std::io::Read + Send>| {
            let (tx, rx) = channel();
            std::thread::spawn(move || {
                for line in BufReader::new(read).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            rx
        };
        let lines = forward(Box::new(child.stdout.take().expect("stdout")));
        let errors = forward(Box::new(child.stderr.take().expect("stderr")));
        Lines { child, lines, errors }
    }

    fn next(&self) -> String {
        self.lines.recv_timeout(TIMEOUT).unwrap_or_else(|_| {
            let errors: Vec<String> = self.errors.try_iter().collect();
            panic!("no line from xdpctl watch within {TIMEOUT:?}; stderr: {errors:?}")
        })
    }

    fn next_json(&self) -> Value {
        let line = self.next();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    fn next_error(&self) -> String {
        self.errors.recv_timeout(TIMEOUT).expect("a line on stderr")
    }

    /// Waits for the process to exit by itself; returns its status code.
    fn wait(mut self) -> i32 {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "xdpctl watch did not exit after --count events");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: stopping the child this test started, by its pid.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        }
        let _ = self.child.wait();
    }
}

fn program_id(path: &str) -> u64 {
    path.rsplit('/').next().and_then(|id| id.parse().ok()).unwrap_or_else(|| panic!("not a program path: {path}"))
}

/// The kernel id of the attached chain, read with busctl (not through xdpctl).
fn kernel_program_id(f: &Fixture) -> u64 {
    let (ok, out, err) = f.bus.busctl(&[
        "get-property",
        "org.xdp.Manager1",
        &format!("/org/xdp/Manager1/link/{}", f.ifindex),
        "org.xdp.Manager1.Link",
        "KernelProgramId",
    ]);
    assert!(ok, "{err}");
    out.trim().trim_start_matches("u ").parse().expect("u32")
}

#[test]
fn status_add_replace_remove_reclaim() {
    let f = Fixture::new("ctl-status");
    let dev = f.pair.dev_b.as_str();
    let udp = f.object("udp");

    // Nothing yet: every interface of the namespace, ours without programs.
    let out = f.ok(&["status"]);
    assert!(out.starts_with("INTERFACE"), "{out}");
    for iface in ["lo", dev] {
        assert!(
            out.lines().any(|l| l.starts_with(iface) && l.ends_with("no programs")),
            "{iface} not shown with 'no programs':\n{out}"
        );
    }
    let all = f.json(&["status"]);
    let names: Vec<&str> = all["interfaces"].as_array().unwrap().iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"lo") && names.contains(&dev), "{all}");
    let link = f.status();
    assert_eq!((link["mode"].as_str(), link["programs"].as_array().map(Vec::len)), (Some(""), Some(0)), "{link}");

    // Two programs, one reported as JSON, one as text.
    let added = f.json(&["add", dev, &udp, "--program", "udp_drop", "--priority", "10"]);
    assert_eq!(added["interface"], dev);
    assert_eq!(added["name"], "udp_drop");
    let drop_path = added["path"].as_str().unwrap().to_string();
    assert_eq!(added["id"].as_u64(), Some(program_id(&drop_path)));
    assert!(drop_path.starts_with(&format!("/org/xdp/Manager1/link/{}/program/", f.ifindex)), "{added}");
    let out = f.ok(&[
        "add",
        dev,
        &udp,
        "--program",
        "udp_count",
        "--priority",
        "20",
        "--tag",
        "counter",
        "--proceed-on",
        "pass,drop",
    ]);
    assert!(out.starts_with(&format!("added udp_count on {dev}: program ")), "{out}");
    let count_path = out.trim().rsplit(' ').next().unwrap().trim_matches(|c| c == '(' || c == ')').to_string();

    let link = f.status();
    let kernel_id = kernel_program_id(&f);
    assert_ne!(kernel_id, 0);
    assert_eq!(link["name"], dev);
    assert_eq!(link["mode"], "native");
    assert_eq!(link["kernel_program_id"].as_u64(), Some(kernel_id));
    assert_eq!(link["generation"].as_u64(), Some(2));
    let programs = link["programs"].as_array().unwrap();
    assert_eq!(programs.len(), 2, "{link}");
    let (first, second) = (&programs[0], &programs[1]);
    assert_eq!(
        (&first["position"], &first["name"], &first["priority"], &first["path"]),
        (&Value::from(1), &Value::from("udp_drop"), &Value::from(10), &Value::from(drop_path.as_str()))
    );
    assert_eq!(first["proceed_on"], serde_json::json!(["pass"]));
    assert_eq!(
        (&first["owner"], &first["owner_name"], &first["tag"]),
        (&Value::from(0), &Value::from("root"), &Value::from(""))
    );
    assert_eq!(
        (&second["position"], &second["name"], &second["tag"]),
        (&Value::from(2), &Value::from("udp_count"), &Value::from("counter"))
    );
    assert_eq!(second["path"], count_path.as_str());
    let mut proceed: Vec<&str> = second["proceed_on"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    proceed.sort_unstable();
    assert_eq!(proceed, ["drop", "pass"]);
    assert!(second["linked"].as_bool().unwrap());

    // The table: one row per program with every column.
    let out = f.ok(&["status", dev]);
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    let columns =
        ["INTERFACE", "MODE", "CHAIN", "POS", "PRIO", "PROGRAM", "PROCEED-ON", "OWNER", "TAG", "ID", "VERDICTS"];
    assert_eq!(header, columns, "verdicts are counted by default");
    let rows: Vec<Vec<&str>> = out.lines().skip(1).map(|l| l.split_whitespace().collect()).collect();
    let kernel = kernel_id.to_string();
    let drop_id = program_id(&drop_path).to_string();
    let count_id = program_id(&count_path).to_string();
    // (The last column counts whatever the interface received meanwhile.)
    assert_eq!(rows[0][..10], [dev, "native", &kernel, "1", "10", "udp_drop", "pass", "root", "-", &drop_id], "{out}");
    assert_eq!(rows[1][..6], [dev, "native", &kernel, "2", "20", "udp_count"], "{out}");
    assert_eq!(rows[1][7..10], ["root", "counter", &count_id], "{out}");
    assert_eq!(rows.len(), 2, "{out}");

    // replace: the program tagged "counter" gives way to port_block (new id).
    let out = f.ok(&["replace", dev, &udp, "--program", "port_block", "--tag", "counter"]);
    assert!(out.contains("port_block"), "{out}");
    let programs = f.status()["programs"].as_array().unwrap().clone();
    let names: Vec<&str> = programs.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["udp_drop", "port_block"]);
    assert_eq!(programs[1]["tag"], "counter");
    let block_path = programs[1]["path"].as_str().unwrap().to_string();
    assert_ne!(block_path, count_path, "replacing makes a new program object");
    // add --replace is the same operation.
    let again = f.json(&["add", dev, &udp, "--program", "port_block", "--tag", "counter", "--replace"]);
    let block_path_2 = again["path"].as_str().unwrap().to_string();
    assert_ne!(block_path_2, block_path);
    assert_eq!(f.status()["programs"].as_array().unwrap().len(), 2);

    // remove by id (text) and by object path (JSON).
    let out = f.ok(&["remove", dev, &drop_id]);
    assert_eq!(out.trim(), format!("removed udp_drop (program {drop_id}) from {dev}"));
    let removed = f.json(&["remove", dev, &block_path_2]);
    assert_eq!(removed["removed"], block_path_2.as_str());
    let out = f.ok(&["status", dev]);
    assert!(out.lines().nth(1).is_some_and(|l| l.starts_with(dev) && l.ends_with("no programs")), "{out}");
    assert_eq!(f.status()["kernel_program_id"].as_u64(), Some(0));

    // reclaim: nothing to reclaim without a chain; a no-op on a healthy one.
    let err = f.fails(6, &["reclaim", dev]);
    assert!(err.contains("no chain"), "{err}");
    f.ok(&["add", dev, &udp, "--program", "udp_drop"]);
    let out = f.ok(&["reclaim", dev]);
    assert_eq!(out.trim(), format!("reclaimed {dev}: chain program {} attached again", kernel_program_id(&f)));
    let reclaimed = f.json(&["reclaim", dev]);
    assert_eq!(reclaimed["kernel_program_id"].as_u64(), Some(kernel_program_id(&f)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maps_are_listed_and_dumped() {
    let f = Fixture::new("ctl-maps");
    let dev = f.pair.dev_b.as_str();
    let udp = f.object("udp");
    let block = f.json(&["add", dev, &udp, "--program", "port_block"]);
    let block_id = block["id"].as_u64().unwrap().to_string();
    let count = f.json(&["add", dev, &udp, "--program", "udp_count"]);
    let count_id = count["id"].as_u64().unwrap().to_string();

    // The application configures its program through the map.
    let conn = f.bus.connect().await;
    let path = zbus::OwnedObjectPath::try_from(block["path"].as_str().unwrap().to_string()).unwrap();
    let program = xdpd_client::ProgramProxy::builder(&conn)
        .path(path)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .unwrap();
    let map_ids = program.map_ids().await.unwrap();
    assert!(map_ids.contains_key("blocked_port"), "{map_ids:?}");
    let maps = program.get_maps().await.unwrap();
    xdpd_tests::map_update(maps["blocked_port"].as_fd(), 0, &7777u32.to_ne_bytes());

    // Listing: names and kernel ids, as MapIds says.
    let out = f.ok(&["maps", dev, &block_id]);
    let mut expected: Vec<(String, u32)> = map_ids.clone().into_iter().collect();
    expected.sort();
    let rows: Vec<Vec<&str>> = out.lines().skip(1).map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(out.lines().next().map(|l| l.split_whitespace().collect::<Vec<_>>()), Some(vec!["MAP", "ID"]));
    assert_eq!(rows.len(), expected.len(), "{out}");
    for (row, (name, id)) in rows.iter().zip(&expected) {
        assert_eq!(row[..], [name.as_str(), id.to_string().as_str()], "{out}");
    }
    let listed = f.json(&["maps", dev, &block_id]);
    let json_maps: Vec<(String, u32)> = listed["maps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap().to_string(), m["id"].as_u64().unwrap() as u32))
        .collect();
    assert_eq!(json_maps, expected);

    // Dumping: hex key => hex value, with the little-endian integers.
    let out = f.ok(&["maps", dev, &block_id, "blocked_port"]);
    let mut lines = out.lines();
    let head = lines.next().unwrap();
    assert!(
        head.starts_with(&format!(
            "map blocked_port: id {}, array, key 4 bytes, value 4 bytes",
            map_ids["blocked_port"]
        )),
        "{out}"
    );
    assert_eq!(lines.collect::<Vec<_>>(), ["00000000 (0) => 611e0000 (7777)"], "{out}");
    let dump = f.json(&["maps", dev, &block_id, "blocked_port"]);
    assert_eq!(dump["map"]["type"], "array");
    assert_eq!(dump["map"]["id"].as_u64(), Some(u64::from(map_ids["blocked_port"])));
    assert_eq!(dump["map"]["value_size"].as_u64(), Some(4));
    let entries = dump["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["key"], serde_json::json!({ "hex": "00000000", "int": 0 }));
    assert_eq!(entries[0]["value"], serde_json::json!({ "hex": "611e0000", "int": 7777 }));
    // An 8-byte counter, by full object path.
    let out = f.ok(&["maps", dev, count["path"].as_str().unwrap(), "packets"]);
    assert!(out.lines().any(|l| l == "00000000 (0) => 0000000000000000 (0)"), "{out}");

    // No such map, no such program.
    let err = f.fails(3, &["maps", dev, &count_id, "nope"]);
    assert!(err.contains("no map 'nope'") && err.contains("packets"), "{err}");
    f.fails(3, &["maps", dev, "999999"]);
    f.fails(3, &["maps", dev, "999999", "packets"]);
}

#[test]
fn maps_are_written_with_set_and_delete() {
    let f = Fixture::new("ctl-mapset");
    let dev = f.pair.dev_b.as_str();
    let id = |object: &str| f.json(&["add", dev, &f.object(object)])["id"].as_u64().unwrap().to_string();
    let (ports, blocklist, counter) = (id("port_block"), id("ip_blocklist"), id("proto_count"));
    let entries = |out: &str| {
        let mut lines: Vec<String> = out.lines().skip(1).map(str::to_string).collect();
        lines.sort();
        lines
    };

    // Integers in the map's key and value sizes, host byte order; the dump follows.
    let out = f.ok(&["maps", dev, &ports, "blocked_ports", "--set", "22=0", "--set", "9000=0x10"]);
    assert!(out.starts_with("map blocked_ports: id "), "{out}");
    assert_eq!(
        entries(&out),
        ["16000000 (22) => 0000000000000000 (0)", "28230000 (9000) => 1000000000000000 (16)"],
        "{out}"
    );
    // Deletions first, then updates.
    let out = f.ok(&["maps", dev, &ports, "blocked_ports", "--delete", "22", "--set", "22=1", "--delete", "9000"]);
    assert_eq!(entries(&out), ["16000000 (22) => 0100000000000000 (1)"], "{out}");

    // Trie keys: address/length, or raw bytes; printed as address/length.
    let out =
        f.ok(&["maps", dev, &blocklist, "blocklist", "--set", "10.199.77.64/26=0", "--set", "hex:20000000c0000201=2"]);
    assert_eq!(
        entries(&out),
        ["10.199.77.64/26 => 0000000000000000 (0)", "192.0.2.1/32 => 0200000000000000 (2)"],
        "{out}"
    );
    let dump = f.json(&["maps", dev, &blocklist, "blocklist", "--delete", "192.0.2.1"]);
    assert_eq!(dump["map"]["type"], "lpm_trie");
    let listed = dump["entries"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{dump}");
    assert_eq!(listed[0]["key"], serde_json::json!({ "hex": "1a0000000ac74d40", "prefix": "10.199.77.64/26" }));

    // A per-CPU map gets the value on every CPU.
    let out = f.ok(&["maps", dev, &counter, "packets", "--set", "9=7"]);
    let line = out.lines().find(|l| l.starts_with("09000000 (9) => ")).unwrap_or_else(|| panic!("{out}"));
    let values: Vec<&str> = line.split(" => ").nth(1).unwrap().split(", ").collect();
    assert!(!values.is_empty() && values.iter().all(|v| v.ends_with("0700000000000000 (7)")), "{out}");

    // Errors: 2 for what cannot be a key or value of the map, 3 for a missing
    // key, 1 for what the kernel refuses; the map stays as it was.
    for bad in [&["--set", "22"][..], &["--set", "5000000000=0"], &["--set", "10.0.0.0/8=0"], &["--set", "1=hex:00"]] {
        let mut args = vec!["maps", dev, &ports, "blocked_ports"];
        args.extend_from_slice(bad);
        let err = f.fails(2, &args);
        assert_eq!(err.lines().count(), 1, "{bad:?}: {err}");
    }
    let r = f.run(&["maps", dev, &ports, "--set", "1=0"]);
    assert_eq!(r.code, 2, "--set needs MAP: {r}");
    let err = f.fails(3, &["maps", dev, &ports, "blocked_ports", "--delete", "23"]);
    assert!(err.contains("no key '23'"), "{err}");
    let err = f.fails(1, &["maps", dev, &counter, "packets", "--delete", "1"]);
    assert!(err.contains("array maps have no keys to delete"), "{err}");
    assert_eq!(entries(&f.ok(&["maps", dev, &ports, "blocked_ports"])), ["16000000 (22) => 0100000000000000 (1)"]);

    // Writing needs what reading needs: the program's owner or org.xdp.manager1.manage.
    f.fails_as(Some(65534), 4, &["maps", dev, &ports, "blocked_ports", "--set", "1=0"]);
}

#[test]
fn exit_statuses_tell_the_error_classes_apart() {
    let f = Fixture::new("ctl-exit");
    let dev = f.pair.dev_b.as_str();
    let udp = f.object("udp");
    let one_line = |err: &str| assert_eq!(err.lines().count(), 1, "one line expected: {err}");

    // 2: usage, from clap or from the service's InvalidArgs.
    for args in [
        vec![],
        vec!["add", dev],
        vec!["add", dev, &udp, "--mode", "turbo"],
        vec!["add", dev, &udp, "--replace"],
        vec!["add", dev, &udp, "--proceed-on", "maybe"],
        vec!["replace", dev, &udp],
        vec!["status", "a", "b"],
    ] {
        let r = f.run(&args);
        assert_eq!(r.code, 2, "xdpctl {args:?}: {r}");
    }
    one_line(&f.fails(2, &["remove", dev, "abc"]));
    let long_tag = "t".repeat(300);
    let err = f.fails(2, &["add", dev, &udp, "--program", "udp_drop", "--tag", &long_tag]);
    assert!(err.contains("tag"), "{err}");
    one_line(&err);

    // 3: no such interface or program.
    for args in [
        vec!["status", "nope0"],
        vec!["add", "nope0", &udp],
        vec!["remove", "nope0", "1"],
        vec!["remove", dev, "999999"],
        vec!["remove", dev, "/org/xdp/Manager1/link/1/program/1"],
        vec!["reclaim", "nope0"],
    ] {
        let err = f.fails(3, &args);
        one_line(&err);
    }
    assert!(f.fails(3, &["status", "nope0"]).contains("nope0"));

    // 5: the object is refused.
    let err = f.fails(5, &["add", dev, "/bin/true"]);
    one_line(&err);
    assert!(err.contains("clang -target bpf"), "says how to build one: {err}");
    let err = f.fails(5, &["add", dev, "/nonexistent/prog.o"]);
    assert!(err.contains("cannot open"), "{err}");
    f.fails(5, &["add", dev, &udp, "--program", "nope"]);
    let err = f.fails(5, &["add", dev, &f.object("unverifiable")]);
    assert!(err.contains("verifier") && err.contains("outside of the packet"), "the whole log is printed: {err}");
    assert!(err.lines().count() > 1, "{err}");

    // 4: not root, and no polkit on this bus: denied, whatever the flags.
    let err = f.fails_as(Some(65534), 4, &["add", dev, &udp, "--program", "udp_drop"]);
    assert!(err.contains("org.xdp.manager1.add-program") && err.contains("run as root"), "{err}");
    one_line(&err);
    f.fails_as(Some(65534), 4, &["--no-ask-password", "add", dev, &udp, "--program", "udp_drop"]);
    let mine = f.json(&["add", dev, &udp, "--program", "udp_count"]);
    let id = mine["id"].as_u64().unwrap().to_string();
    let err = f.fails_as(Some(65534), 4, &["remove", dev, &id]);
    assert!(err.contains("org.xdp.manager1.manage"), "{err}");
    f.fails_as(Some(65534), 4, &["maps", dev, &id, "packets"]);
    f.fails_as(Some(65534), 4, &["reclaim", dev]);
    // Reading is free.
    let r = f.run_as(65534, &["status", dev]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains("udp_count"), "{r}");
    let r = f.run_as(65534, &["maps", dev, &id]);
    assert_eq!(r.code, 0, "{r}");

    // 6: a mode the chain does not have.
    let err = f.fails(6, &["add", dev, &udp, "--program", "udp_drop", "--mode", "generic"]);
    one_line(&err);
    f.ok(&["remove", dev, &id]);

    // 7: no bus there, through --address and through the environment.
    let r = run({
        let mut c = Command::new(xdpctl_binary());
        c.args(["--address", "unix:path=/nonexistent/xdpd-test-bus", "status"]);
        c
    });
    assert_eq!(r.code, 7, "{r}");
    assert!(r.stderr.starts_with("xdpctl: cannot connect") && r.stderr.contains("--address"), "{r}");
    let r = run({
        let mut c = Command::new(xdpctl_binary());
        c.env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/xdpd-test-bus").arg("status");
        c
    });
    assert_eq!(r.code, 7, "{r}");
    // A bus where org.xdp.Manager1 cannot be activated (dbus-daemon notices the
    // removed activation file on its own schedule: wait for it, generously).
    f.bus.stop_service();
    std::fs::remove_file(f.bus.dir.join("services/org.xdp.Manager1.service")).expect("remove activation file");
    let deadline = Instant::now() + TIMEOUT;
    let r = loop {
        let r = f.run(&["status"]);
        if r.code != 0 || Instant::now() > deadline {
            break r;
        }
        f.bus.stop_service();
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(r.code, 7, "{r}");
    assert!(r.stderr.starts_with("xdpctl: ") && r.stderr.contains("org.xdp.Manager1"), "{r}");
}

#[test]
fn foreign_programs_busy_conflict_reclaim_and_watch() {
    let f = Fixture::new("ctl-foreign");
    let dev = f.pair.dev_b.as_str();
    let udp = f.object("udp");
    let attach_foreign = || {
        VethPair::run_in(&f.pair.ns_b, || {
            let object = libbpf_rs::ObjectBuilder::default()
                .open_file(xdpd_bpf::object_path("basic"))
                .and_then(|o| o.load())
                .expect("load basic.o");
            let prog = object.progs().find(|p| p.name() == "xdp_pass").expect("xdp_pass");
            // SAFETY: plain libbpf call; XDP_FLAGS_DRV_MODE = 4. The attachment outlives the descriptor.
            let ret = unsafe {
                libbpf_sys::bpf_xdp_attach(
                    f.ifindex as i32,
                    std::os::fd::AsRawFd::as_raw_fd(&prog.as_fd()),
                    4,
                    std::ptr::null(),
                )
            };
            assert_eq!(ret, 0, "attach the foreign program");
            xdpd::kernel::hook::attached(f.ifindex).expect("attached").native
        })
    };

    // Someone else's program holds the interface: busy (6) until --force.
    let foreign = attach_foreign();
    let err = f.fails(6, &["add", dev, &udp, "--program", "udp_drop"]);
    assert!(err.contains("--force"), "{err}");
    // In the command line's words: the interface's name, no D-Bus advice, nothing said twice.
    assert!(err.contains(&format!("interface {dev} already runs")), "{err}");
    assert!(!err.contains(&format!("interface {} ", f.ifindex)) && !err.contains("pass force"), "{err}");
    assert_eq!(err.matches("take the interface over").count(), 1, "{err}");
    f.ok(&["add", dev, &udp, "--program", "udp_drop", "--force"]);
    let ours = kernel_program_id(&f);
    assert_ne!(ours, u64::from(foreign));

    // Behind the service's back: detached, then replaced. watch reports it.
    let watch = Lines::spawn(f.command(None, &["--json", "watch"]));
    assert_eq!(watch.next_json(), serde_json::json!({ "event": "ready" }));
    let out = Command::new("bpftool")
        .args(["link", "detach", "pinned"])
        .arg(f.link_pin())
        .output()
        .expect("bpftool (install bpftool)");
    assert!(out.status.success(), "bpftool: {}", String::from_utf8_lossy(&out.stderr));
    let next_foreign = || loop {
        let event = watch.next_json();
        if event["event"] == "foreign-program" {
            assert_eq!(event["interface"], dev);
            break event["id"].as_u64().unwrap();
        }
    };
    assert_eq!(next_foreign(), 0, "nothing attached after the detach");
    let foreign = attach_foreign();
    assert_eq!(next_foreign(), u64::from(foreign));
    drop(watch);

    // status shows it and fails (6): the chain does not run; changing is a
    // conflict (6); reclaim takes it back.
    let r = f.run(&["status", dev]);
    assert_eq!(r.code, 6, "{r}");
    assert!(r.stdout.contains(&format!("foreign program {foreign} replaced")), "{r}");
    assert!(r.stdout.contains(&format!("xdpctl reclaim {dev}")) && r.stderr.starts_with("xdpctl: "), "{r}");
    f.fails(6, &["add", dev, &udp, "--program", "udp_count"]);
    f.ok(&["reclaim", dev]);
    let link = f.status();
    assert_eq!(link["foreign_program_id"].as_u64(), Some(0));
    assert_eq!(link["kernel_program_id"].as_u64(), Some(ours));
}

#[test]
fn watch_reports_a_scripted_sequence_in_order() {
    let f = Fixture::new("ctl-watch");
    let dev = f.pair.dev_b.as_str();
    let udp = f.object("udp");
    let link = format!("/org/xdp/Manager1/link/{}", f.ifindex);

    let watch = Lines::spawn(f.command(None, &["--json", "watch", "--count", "9"]));
    assert_eq!(watch.next_json(), serde_json::json!({ "event": "ready" }));
    let a = f.json(&["add", dev, &udp, "--program", "udp_drop", "--priority", "10"]);
    let b = f.json(&["add", dev, &udp, "--program", "udp_count", "--priority", "20", "--tag", "counter"]);
    let (a_path, b_path) = (a["path"].as_str().unwrap(), b["path"].as_str().unwrap());
    f.ok(&["remove", dev, a_path]);

    let events: Vec<Value> = (0..9).map(|_| watch.next_json()).collect();
    assert_eq!(watch.wait(), 0, "watch exits by itself after --count events");
    // One JSON style: snake_case member names everywhere, and a time on every event.
    for e in &events {
        let names = e.as_object().unwrap().keys().chain(e["changed"].as_object().into_iter().flat_map(|c| c.keys()));
        for name in names {
            assert!(name.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{name} in {e}");
        }
        let time = e["time"].as_str().unwrap_or_default();
        assert!(time.len() == 24 && time.ends_with('Z'), "{e}");
    }
    let kinds: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "program-added",
            "link-changed",
            "chain-changed",
            "program-added",
            "link-changed",
            "chain-changed",
            "program-removed",
            "link-changed",
            "chain-changed"
        ],
        "{events:#?}"
    );
    assert!(events.iter().all(|e| e["interface"] == dev), "{events:#?}");
    assert_eq!(
        (&events[0]["path"], &events[0]["name"], &events[0]["priority"]),
        (&a["path"], &a["name"], &Value::from(10))
    );
    assert_eq!((&events[3]["path"], &events[3]["tag"]), (&b["path"], &Value::from("counter")));
    assert_eq!(events[6]["path"], a["path"]);
    assert_eq!(events[6]["id"], a["id"]);
    for (i, generation, programs) in [(2, 1, vec![a_path]), (5, 2, vec![a_path, b_path]), (8, 3, vec![b_path])] {
        assert_eq!(events[i]["path"], link.as_str());
        assert_eq!(events[i]["generation"].as_u64(), Some(generation), "{:#}", events[i]);
        assert_eq!(events[i]["programs"], serde_json::json!(programs));
        assert_eq!(events[i - 1]["path"], link.as_str());
        assert_eq!(events[i - 1]["changed"]["generation"].as_u64(), Some(generation), "{:#}", events[i - 1]);
    }

    // The same for people: a note on stderr once subscribed, then one line per event.
    let watch = Lines::spawn(f.command(None, &["watch", "--count", "3"]));
    assert!(watch.next_error().starts_with("watching org.xdp.Manager1"));
    let c = f.json(&["add", dev, &udp, "--program", "port_block", "--priority", "5"]);
    // Each line starts with the time it was received (RFC 3339, UTC), then the event.
    let lines: Vec<String> = (0..3)
        .map(|_| {
            let line = watch.next();
            let (time, rest) = line.split_once(' ').unwrap_or_default();
            assert!(time.len() == 24 && time.ends_with('Z') && time.as_bytes()[10] == b'T', "{line}");
            rest.to_string()
        })
        .collect();
    assert_eq!(watch.wait(), 0);
    let c_id = c["id"].as_u64().unwrap();
    let b_id = b["id"].as_u64().unwrap();
    assert!(
        lines[0].starts_with(&format!("program-added {dev} ")) && lines[0].contains(&format!("id={c_id}")),
        "{lines:?}"
    );
    assert!(lines[0].contains("name=port_block") && lines[0].contains("priority=5"), "{lines:?}");
    assert!(lines[1].starts_with(&format!("link-changed {dev} ")) && lines[1].contains("generation=4"), "{lines:?}");
    assert_eq!(lines[2], format!("chain-changed {dev} generation=4 programs=[{c_id},{b_id}]"));
}

#[test]
fn help_and_completions() {
    let xdpctl = |args: &[&str]| {
        let mut c = Command::new(xdpctl_binary());
        c.args(args);
        run(c)
    };
    let help = xdpctl(&["--help"]);
    assert_eq!(help.code, 0);
    assert!(help.stdout.contains("EXIT STATUS"), "{help}");
    for code in (0..=7).chain([10]) {
        assert!(help.stdout.lines().any(|l| l.trim_start().starts_with(&format!("{code}  "))), "exit {code}: {help}");
    }
    for command in ["status", "add", "replace", "remove", "maps", "watch", "reclaim", "explain", "hold"] {
        let r = xdpctl(&[command, "--help"]);
        assert_eq!(r.code, 0, "{r}");
        assert!(r.stdout.contains("EXAMPLES:") && r.stdout.contains(&format!("xdpctl {command}")), "{command}: {r}");
    }
    assert!(!help.stdout.contains("completions"), "the completions command is hidden");

    let bash = xdpctl(&["completions", "bash"]);
    assert_eq!(bash.code, 0, "{bash}");
    assert!(bash.stdout.contains("_xdpctl()") && bash.stdout.contains("complete -F _xdpctl"), "{bash}");
    assert!(bash.stdout.contains("--proceed-on") && bash.stdout.contains("reclaim"), "{bash}");
    let zsh = xdpctl(&["completions", "zsh"]);
    assert_eq!(zsh.code, 0, "{zsh}");
    assert!(zsh.stdout.starts_with("#compdef xdpctl"), "{zsh}");
    assert!(zsh.stdout.contains("native") && zsh.stdout.contains("--no-ask-password"), "{zsh}");
    assert_eq!(xdpctl(&["completions", "fish"]).code, 2);
}

#[test]
fn counting_shows_verdicts_in_status() {
    let f = Fixture::new("xdpctl-counting");
    let dev = f.pair.dev_b.as_str();
    let udp = xdpd_bpf::object_path("udp").display().to_string();
    f.ok(&["add", dev, &udp, "--program", "udp_drop"]);
    assert!(f.ok(&["status", dev]).contains("VERDICTS"), "counting is on by default");
    assert!(f.ok(&["counting", dev, "off"]).contains("off"));
    assert!(f.ok(&["counting", dev, "on"]).contains("on"));
    // Packets to the dropped port, sent from the other namespace.
    let tx = VethPair::run_in(&f.pair.ns_a, || std::net::UdpSocket::bind("0.0.0.0:0").unwrap());
    xdpd_tests::netns::send_paced(&tx, std::net::SocketAddrV4::new(f.pair.addr_b, 9999), 7);
    std::thread::sleep(std::time::Duration::from_millis(150));
    let status = f.ok(&["status", dev]);
    assert!(status.contains("VERDICTS") && status.contains("drop=7"), "{status}");
    let json = f.json(&["status", dev]);
    assert_eq!(json["interfaces"][0]["counting"], true);
    assert_eq!(json["interfaces"][0]["programs"][0]["stats"]["drop"], 7);
    f.ok(&["counting", dev, "off"]);
    f.fails_as(Some(65534), 4, &["counting", dev, "on"]);
}

/// add/replace --dry-run show the chain a change would produce and change
/// nothing; explain shows the running chain with the same numbers once the
/// change is made; a refused dry run fails like the change.
#[test]
fn dry_runs_and_explain_show_the_same_chain() {
    let f = Fixture::new("xdpctl-explain");
    let dev = f.pair.dev_b.as_str();
    let (blocklist, v2) = (f.object("ip_blocklist"), f.object("blocklist_v2"));
    let resized = f.object("blocklist_resized");
    let out = f.ok(&["explain", dev]);
    assert_eq!(out.trim(), format!("{dev}: no chain runs (generation 0)"));
    f.ok(&["add", dev, &blocklist, "-t", "fw"]);
    let generation = f.status()["generation"].clone();

    let out = f.ok(&["replace", dev, &v2, "-t", "fw", "--dry-run"]);
    assert!(out.starts_with(&format!("{dev}: the chain would be (dry run from generation {generation}")), "{out}");
    assert!(
        out.lines().any(|l| l.contains("ip_blocklist") && l.contains(" new ") && l.ends_with("blocklist")),
        "{out}"
    );
    assert!(out.contains("of 1000000 instructions,") && out.contains("of 64 maps"), "{out}");
    let planned = f.json(&["replace", dev, &v2, "-t", "fw", "--dry-run"]);
    assert_eq!(planned["dry_run"], true, "{planned}");
    assert_eq!(f.status()["generation"], generation, "a dry run changes nothing");
    // Refused alike: a user without the authorization, maps that cannot be carried over.
    let denied = f.run_as(65534, &["add", dev, &v2, "-t", "u"]).code;
    assert_eq!(f.run_as(65534, &["add", dev, &v2, "-t", "u", "--dry-run"]).code, denied);
    assert_ne!(denied, 0);
    let err = f.fails(6, &["replace", dev, &resized, "-t", "fw", "--dry-run"]);
    assert!(err.contains("map 'blocklist'") && err.contains("--fresh-maps"), "{err}");
    let planned_fresh = f.json(&["replace", dev, &resized, "-t", "fw", "--dry-run", "--fresh-maps"]);
    assert_eq!(planned_fresh["programs"][0]["carried_maps"], serde_json::json!([]), "{planned_fresh}");
    assert_eq!(f.status()["generation"], generation);

    f.ok(&["replace", dev, &v2, "-t", "fw"]);
    let shown = f.json(&["explain", dev]);
    assert_eq!(shown["dry_run"], false);
    assert_eq!(shown["generation"], generation.as_u64().unwrap() + 1);
    for field in ["instructions", "maps", "verified_instructions", "instruction_limit", "map_limit"] {
        assert_eq!(shown["segments"][0][field], planned["segments"][0][field], "{field}: {shown} vs {planned}");
    }
    for field in ["name", "linking", "instructions", "carried_maps", "priority"] {
        assert_eq!(shown["programs"][0][field], planned["programs"][0][field], "{field}");
    }
    let out = f.ok(&["explain", dev]);
    assert!(out.starts_with(&format!("{dev}: chain at generation ")) && out.contains("segment 1: 1 programs"), "{out}");
}

/// hold on: a pass-through program runs through the link without programs
/// (status says so); off: detached again; users may not.
#[test]
fn hold_keeps_a_pass_through_attached() {
    let f = Fixture::new("xdpctl-hold");
    let dev = f.pair.dev_b.as_str();
    f.fails_as(Some(65534), 4, &["hold", dev, "on"]);
    assert_eq!(f.status()["hold"], false);
    let out = f.ok(&["hold", dev, "on"]);
    assert!(out.starts_with(&format!("{dev} is held: program ")), "{out}");
    let link = f.status();
    assert_eq!(link["hold"], true, "{link}");
    assert_ne!(link["kernel_program_id"], 0, "{link}");
    assert!(f.ok(&["status", dev]).contains("no programs (held: a pass-through runs)"));
    let out = f.ok(&["explain", dev]);
    assert!(out.starts_with(&format!("{dev}: held, no programs: a pass-through runs")), "{out}");
    assert!(out.contains("segment 1: 0 programs, 2 of 1000000 instructions"), "{out}");
    let udp = f.object("udp");
    f.ok(&["add", dev, &udp, "-p", "udp_drop"]);
    let id = f.status()["programs"][0]["id"].to_string();
    f.ok(&["remove", &id]);
    assert_ne!(f.status()["kernel_program_id"], 0, "held: the last removal leaves the pass-through");
    let off = f.json(&["hold", dev, "off"]);
    assert_eq!((off["hold"].as_bool(), off["kernel_program_id"].as_u64()), (Some(false), Some(0)), "{off}");
    assert_eq!(f.status()["kernel_program_id"], 0);
}

/// Display columns of `s` as a terminal shows it: CJK ideographs take two.
fn display_width(s: &str) -> usize {
    s.chars()
        .map(|c| if ('\u{2e80}'..='\u{9fff}').contains(&c) || ('\u{ff00}'..='\u{ff60}').contains(&c) { 2 } else { 1 })
        .sum()
}

#[test]
fn command_line_speaks_ip_and_xdp_loader() {
    let f = Fixture::new("ctl-conventions");
    let dev = f.pair.dev_b.as_str();
    let udp = f.object("udp");
    let count = f.object("proto_count");

    // xdp-loader's and ip's spellings: -p/--prog-name, -P/--prio, -m skb, XDP_PASS, -t, -j.
    let a = f.json(&[
        "add",
        dev,
        &udp,
        "--prog-name",
        "udp_count",
        "--prio",
        "10",
        "-m",
        "skb",
        "--proceed-on",
        "XDP_PASS,XDP_DROP",
        "-t",
        "防火墙",
    ]);
    let b = f.json(&["add", dev, &count, "-p", "proto_count", "-P", "90", "-t", "counter"]);
    let link: Value = serde_json::from_str(&f.ok(&["-j", "show", dev])).expect("-j prints JSON");
    let link = &link["interfaces"][0];
    assert_eq!(link["mode"], "generic", "skb is generic: {link}");
    let mut proceed: Vec<&str> =
        link["programs"][0]["proceed_on"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    proceed.sort_unstable();
    assert_eq!(proceed, ["drop", "pass"]);
    assert_eq!(f.ok(&["list", dev]), f.ok(&["status", dev]), "list is status");

    // The table lines up with a wide (CJK) tag: every row's ID starts where the header's does.
    let table = f.ok(&["status", dev]);
    let column = |line: &str, cell: &str| line.rfind(cell).map(|at| display_width(&line[..at]));
    let header = table.lines().next().unwrap();
    let id_column = column(header, " ID").map(|c| c + 1);
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{table}");
    for (row, id) in rows.iter().zip([&a["id"], &b["id"]]) {
        assert_eq!(column(row, &format!(" {id}")).map(|c| c + 1), id_column, "misaligned:\n{table}");
    }

    // A map write out of an array's range says so, in the command line's words.
    let b_id = b["id"].to_string();
    let err = f.fails(2, &["maps", dev, &b_id, "packets", "--set", "99=1"]);
    assert!(err.contains("out of range") && err.contains("10 entries") && err.contains("0 to 9"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    // --proceed-on none ends the chain: refused without a terminal unless --force, naming what stops.
    let before = f.status()["generation"].clone();
    let err = f.fails(2, &["add", dev, &udp, "-p", "udp_drop", "-P", "5", "--proceed-on", "none"]);
    assert!(err.contains("--force") && err.contains("proto_count") && err.contains("stop running"), "{err}");
    assert_eq!(f.status()["generation"], before, "nothing changed");
    f.ok(&["add", dev, &udp, "-p", "udp_drop", "-P", "95", "--proceed-on", "none", "--force", "-t", "last"]);

    // replace says what it replaced, and which maps the new program took
    // over: none of proto_count's "packets" (a per-CPU array) can be port_block's
    // (an array), so that needs --fresh-maps, and changes nothing without.
    let before = f.status()["generation"].clone();
    let err = f.fails(6, &["replace", dev, &udp, "-p", "port_block", "-t", "counter"]);
    assert!(err.contains("map 'packets' cannot be carried over") && err.contains("--fresh-maps"), "{err}");
    assert_eq!(f.status()["generation"], before, "nothing changed");
    let out = f.ok(&["replace", dev, &udp, "-p", "port_block", "-t", "counter", "--fresh-maps"]);
    assert!(
        out.starts_with(&format!("replaced proto_count (program {b_id}) on {dev} with port_block: program ")),
        "{out}"
    );
    assert_eq!(out.lines().nth(1), Some("maps carried over: none"), "{out}");
    let replaced = f.json(&["replace", dev, &udp, "-p", "udp_count", "-t", "counter"]);
    assert_eq!(replaced["replaced"]["name"], "port_block", "{replaced}");
    let carried = replaced["carried_maps"].as_array().expect("carried_maps").clone();
    assert!(carried.iter().any(|m| m == "packets") && carried.iter().any(|m| m == "blocked_port"), "{replaced}");

    // remove by id alone (ids are global), and by tag.
    let a_id = a["id"].to_string();
    let out = f.ok(&["rm", &a_id]);
    assert_eq!(out.trim(), format!("removed udp_count (program {a_id}) from {dev}"));
    f.fails(3, &["remove", &a_id]);
    let removed = f.json(&["remove", "--tag", "counter"]);
    assert_eq!(removed["removed"].as_array().map(Vec::len), Some(1), "{removed}");
    f.fails(3, &["remove", dev, "--tag", "counter"]);
    f.ok(&["remove", dev, "--tag", "last"]);
    assert_eq!(f.status()["programs"].as_array().map(Vec::len), Some(0));
}

/// Help and error transcripts compared with tests/golden/xdpctl/ (UPDATE_GOLDEN=1 rewrites them).
#[test]
fn golden_transcripts() {
    let cases: &[(&str, &[&str])] = &[
        ("help", &["--help"]),
        ("help-short", &["-h"]),
        ("status-help", &["status", "--help"]),
        ("add-help", &["add", "--help"]),
        ("remove-help", &["remove", "--help"]),
        ("apply-help", &["apply", "--help"]),
        ("watch-help", &["watch", "--help"]),
        ("error-no-args", &[]),
        ("error-add-missing-object", &["add", "eth0"]),
        ("error-proceed-on", &["add", "eth0", "x.o", "--proceed-on", "maybe"]),
        ("error-mode", &["add", "eth0", "x.o", "--mode", "turbo"]),
        ("error-remove-nothing", &["--address", "unix:path=/nonexistent/xdpctl-golden", "remove"]),
        (
            "error-remove-both",
            &["--address", "unix:path=/nonexistent/xdpctl-golden", "remove", "eth0", "3", "--tag", "x"],
        ),
        ("error-no-bus", &["--address", "unix:path=/nonexistent/xdpctl-golden", "status"]),
    ];
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/xdpctl");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut wrong = Vec::new();
    for (name, args) in cases {
        let mut c = Command::new(xdpctl_binary());
        c.args(*args).env("COLUMNS", "100").env_remove("DBUS_SYSTEM_BUS_ADDRESS");
        let r = run(c);
        let transcript = format!("$ xdpctl {}\n{r}", args.join(" "));
        let path = dir.join(format!("{name}.txt"));
        if update {
            std::fs::create_dir_all(&dir).expect("golden dir");
            std::fs::write(&path, &transcript).expect("write golden");
            continue;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if expected != transcript {
            wrong.push(format!("{name}:\n--- expected ---\n{expected}\n--- got ---\n{transcript}"));
        }
    }
    assert!(wrong.is_empty(), "transcripts differ (UPDATE_GOLDEN=1 rewrites them):\n{}", wrong.join("\n"));
    // No help text says the same thing twice in a row.
    for entry in std::fs::read_dir(&dir).expect("golden dir") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).expect("read");
        for line in text.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            for n in 3..=6 {
                for w in words.windows(2 * n) {
                    assert!(w[..n] != w[n..], "repeated words in: {line}");
                }
            }
        }
    }
}

/// apply: add, re-apply (no change), edit, dry-run diff, apply, prune, export equals file.
#[test]
fn apply_makes_the_chain_match_a_file_and_export_writes_it_back() {
    let f = Fixture::new("ctl-apply");
    let dev = f.pair.dev_b.as_str();
    let udp = f.object("udp");
    let count = f.object("proto_count");
    let file = f.objects.0.join("chains.toml");
    let objects_dir = f.objects.0.display().to_string();
    // The declaration, in exactly the format export writes; the map contents go after it.
    let declaration = |count_priority: i32, udp_actions: &str| {
        format!(
            "[[interface]]\nname = \"{dev}\"\n\n\
             [[interface.program]]\nobject = \"{udp}\"\nfunction = \"udp_count\"\ntag = \"udp\"\npriority = 10\nproceed_on = [{udp_actions}]\n\n\
             [[interface.program]]\nobject = \"{count}\"\nfunction = \"proto_count\"\ntag = \"counter\"\npriority = {count_priority}\nproceed_on = [\"pass\"]\n"
        )
    };
    let with_maps = |text: String| format!("{text}\n[interface.program.maps.packets]\n3 = \"5\"\n");
    let file_arg = file.display().to_string();
    let generation = || f.status()["generation"].as_u64().unwrap();

    // Someone's program the file does not name: left alone unless --prune.
    f.ok(&["add", dev, &udp, "-p", "udp_drop", "-P", "99"]);
    std::fs::write(&file, with_maps(declaration(90, "\"pass\""))).expect("write declaration");
    let first = generation();
    let out = f.ok(&["apply", &file_arg]);
    // Both programs came in one change: one generation step.
    assert_eq!(generation(), first + 1, "{out}");
    assert!(out.contains(&format!("+ {dev}: add udp_count")) && out.contains("+ ") && out.contains("= "), "{out}");
    let names: Vec<String> =
        f.status()["programs"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(names, ["udp_count", "proto_count", "udp_drop"]);
    let counter_id = f.status()["programs"][1]["id"].to_string();
    let dump = f.ok(&["maps", dev, &counter_id, "packets"]);
    assert!(dump.lines().any(|l| l.starts_with("03000000 (3) =>") && l.contains("(5)")), "{dump}");

    // Again: nothing to do, the generation stays; --dry-run agrees (exit 0).
    let before = generation();
    let out = f.ok(&["apply", &file_arg]);
    assert_eq!(out.trim(), format!("{dev}: up to date (generation {before})"));
    assert_eq!(generation(), before);
    f.ok(&["apply", "--dry-run", &file_arg]);

    // Edited: --dry-run prints the difference and exits 10, changing nothing.
    std::fs::write(&file, with_maps(declaration(80, "\"drop\", \"pass\""))).expect("write declaration");
    let r = f.run(&["apply", "--dry-run", &file_arg]);
    assert_eq!(r.code, 10, "{r}");
    assert!(r.stdout.contains("~ ") && r.stdout.contains("priority 80 instead of 90"), "{r}");
    assert!(r.stdout.contains(&format!("{dev}: the new chain verifies: 3 programs in 1 segment(s)")), "{r}");
    assert!(r.stdout.contains("proceed-on drop,pass instead of pass"), "{r}");
    assert!(r.stdout.contains(&format!("= {dev}: set packets[3] = 5")), "the replaced program's maps are new: {r}");
    assert!(!r.stdout.contains("- "), "undeclared programs stay without --prune: {r}");
    assert_eq!(generation(), before);
    let dry: Value = serde_json::from_str(&f.run(&["--json", "apply", "-n", &file_arg]).stdout).expect("JSON");
    assert_eq!(dry["changed"], true, "{dry}");

    // Applied: the chain matches, the map is written into the new program.
    f.ok(&["apply", &file_arg]);
    let link = f.status();
    assert_eq!(link["generation"].as_u64().unwrap(), before + 1);
    assert_eq!(link["programs"][1]["priority"], 80, "{link}");
    let counter_id = link["programs"][1]["id"].to_string();
    let dump = f.ok(&["maps", dev, &counter_id, "packets"]);
    assert!(dump.lines().any(|l| l.starts_with("03000000 (3) =>") && l.contains("(5)")), "{dump}");
    f.ok(&["apply", "--dry-run", &file_arg]);

    // --prune removes what the file does not declare.
    let r = f.run(&["apply", "--dry-run", "--prune", &file_arg]);
    assert_eq!(r.code, 10, "{r}");
    assert!(r.stdout.contains(&format!("- {dev}: remove udp_drop")), "{r}");
    f.ok(&["apply", "--prune", &file_arg]);
    assert_eq!(f.status()["programs"].as_array().map(Vec::len), Some(2));

    // Atomic per interface: a file whose second program cannot load changes
    // nothing, not even the first one's part.
    let (g, programs) = (generation(), f.status()["programs"].clone());
    let junk = f.objects.0.join("junk.o");
    std::fs::write(&junk, b"not an ELF object").unwrap();
    let broken = format!(
        "{}\n[[interface.program]]\nobject = \"{}\"\ntag = \"junk\"\npriority = 5\n",
        declaration(70, "\"drop\", \"pass\""),
        junk.display()
    );
    std::fs::write(&file, broken).unwrap();
    // The dry run is refused exactly as the change is (the service verifies it: PlanChangeChain).
    let dry = f.run(&["apply", "--dry-run", &file_arg]);
    let r = f.run(&["apply", &file_arg]);
    assert_ne!(r.code, 0, "{r}");
    assert!(r.stderr.contains("program 1 of the change: invalid object"), "{r}");
    assert_eq!((dry.code, dry.stderr.clone()), (r.code, r.stderr.clone()), "{dry}");
    assert_eq!((generation(), f.status()["programs"].clone()), (g, programs), "a failed apply changed the chain");
    std::fs::write(&file, with_maps(declaration(80, "\"drop\", \"pass\""))).expect("write declaration");

    // export writes the same declaration (map contents are not exported).
    let exported = f.ok(&["export", dev, "--objects", &objects_dir]);
    assert_eq!(exported, declaration(80, "\"drop\", \"pass\""));

    // A declaration that cannot be: exit 2, nothing changed.
    let g = generation();
    std::fs::write(&file, format!("[[interface]]\nname = \"{dev}\"\n[[interface.program]]\nobject = \"{udp}\"\n"))
        .unwrap();
    let err = f.fails(2, &["apply", &file_arg]);
    assert!(err.contains("tag"), "{err}");
    std::fs::write(&file, "[[interface]]\nnaem = \"x\"\n").unwrap();
    f.fails(2, &["apply", &file_arg]);
    // More programs to add than one change carries descriptors for: refused before any call.
    let many: String = (0..17)
        .map(|i| format!("[[interface.program]]\nobject = \"{udp}\"\nfunction = \"udp_count\"\ntag = \"t{i}\"\n"))
        .collect();
    std::fs::write(&file, format!("[[interface]]\nname = \"{dev}\"\n{many}")).unwrap();
    let err = f.fails(2, &["apply", &file_arg]);
    assert!(err.contains("at most 16"), "{err}");
    assert_eq!(generation(), g);
}

/// Error transcripts from a live service, compared with tests/golden/xdpctl/
/// (UPDATE_GOLDEN=1 rewrites them): what people read when something is refused.
#[test]
fn golden_service_error_transcripts() {
    let f = Fixture::new("ctl-golden");
    let dev = f.pair.dev_b.as_str();
    let udp = f.object("udp");
    let count = f.object("proto_count");
    let counter = f.json(&["add", dev, &count, "-p", "proto_count", "-t", "counter"]);
    let counter_id = counter["id"].to_string();
    let objects = f.objects.0.display().to_string();
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("service-no-such-interface", vec!["status", "nope0"]),
        ("service-no-such-program", vec!["remove", "999999"]),
        ("service-not-an-object", vec!["add", dev, "/bin/true"]),
        ("service-no-such-function", vec!["add", dev, &udp, "-p", "nope"]),
        ("service-map-out-of-range", vec!["maps", dev, &counter_id, "packets", "--set", "99=1"]),
        ("service-no-such-map", vec!["maps", dev, &counter_id, "nope"]),
        ("service-proceed-on-none", vec!["add", dev, &udp, "-p", "udp_drop", "-P", "5", "--proceed-on", "none"]),
        ("service-nothing-to-reclaim", vec!["reclaim", "lo"]),
        ("service-denied", vec!["--no-ask-password", "remove", &counter_id]),
    ];
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/xdpctl");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut wrong = Vec::new();
    for (name, args) in &cases {
        let uid = if *name == "service-denied" { Some(65534) } else { None };
        let mut cmd = f.command(uid, args);
        cmd.env("COLUMNS", "100");
        let r = run(cmd);
        // What differs from run to run: the objects' directory and the interface's index.
        let link = format!("/org/xdp/Manager1/link/{}", f.ifindex);
        let transcript = format!("$ xdpctl {}\n{r}", args.join(" "))
            .replace(&objects, "$OBJECTS")
            .replace(&link, "/org/xdp/Manager1/link/$IFINDEX");
        let path = dir.join(format!("{name}.txt"));
        if update {
            std::fs::write(&path, &transcript).expect("write golden");
            continue;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if expected != transcript {
            wrong.push(format!("{name}:\n--- expected ---\n{expected}\n--- got ---\n{transcript}"));
        }
    }
    assert!(wrong.is_empty(), "transcripts differ (UPDATE_GOLDEN=1 rewrites them):\n{}", wrong.join("\n"));
}

/// Runs xdpctl with `input` on its standard input (written by a thread, so a
/// large input cannot block against a full stdout pipe).
fn run_with_stdin(f: &Fixture, args: &[&str], input: Vec<u8>) -> Run {
    use std::io::Write;
    let mut child = f
        .command(None, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start xdpctl");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        // xdpctl stops reading past its cap: a broken pipe is expected then.
        let _ = stdin.write_all(&input);
    });
    let pid = child.id();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(TIMEOUT) {
        Ok(out) => out.expect("wait for xdpctl"),
        Err(_) => {
            // SAFETY: killing the child this test started, by its pid.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("xdpctl did not finish within {TIMEOUT:?}");
        }
    };
    writer.join().expect("stdin writer");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn add_reads_the_object_from_standard_input() {
    let f = Fixture::new("xdpctl-stdin");
    let dev = f.pair.dev_b.as_str();
    let bytes = std::fs::read(xdpd_bpf::object_path("udp")).expect("read test object");

    // "-" is standard input: the object arrives through a memfd, as if from a file.
    let r = run_with_stdin(&f, &["--json", "add", dev, "-", "--program", "udp_drop", "--tag", "piped"], bytes.clone());
    assert_eq!(r.code, 0, "{r}\n--- bus log ---\n{}", f.bus.log());
    let added: Value = serde_json::from_str(r.stdout.trim()).unwrap_or_else(|e| panic!("no JSON ({e}): {r}"));
    assert_eq!(added["name"], "udp_drop", "{added}");
    let piped = f.status()["programs"][0].clone();
    assert_eq!((&piped["tag"], &piped["name"]), (&Value::from("piped"), &Value::from("udp_drop")), "{piped}");
    // The same bytes as the file: the same Sha256 as the object added by path.
    f.ok(&["add", dev, &f.object("udp"), "--program", "udp_drop", "--tag", "file"]);
    let programs = f.status()["programs"].as_array().unwrap().clone();
    assert_eq!(programs.len(), 2);
    assert_eq!(programs[0]["sha256"], programs[1]["sha256"], "{programs:?}");
    // replace takes "-" too (same path through xdpctl).
    let r = run_with_stdin(&f, &["replace", dev, "-", "--program", "udp_count", "--tag", "piped"], bytes.clone());
    assert_eq!(r.code, 0, "{r}");
    let names: Vec<Value> = f.status()["programs"].as_array().unwrap().iter().map(|p| p["name"].clone()).collect();
    assert!(names.contains(&Value::from("udp_count")) && names.len() == 2, "{names:?}");

    // The service keeps every intake check: garbage is refused with its message.
    let r = run_with_stdin(&f, &["add", dev, "-"], b"not an ELF object".to_vec());
    assert_eq!(r.code, 5, "{r}");
    assert!(r.stderr.starts_with("xdpctl: ") && r.stderr.contains("ELF"), "{r}");
    // Nothing, and more than the cap, are refused by xdpctl before any call.
    let r = run_with_stdin(&f, &["add", dev, "-"], Vec::new());
    assert_eq!(r.code, 5, "{r}");
    assert!(r.stderr.contains("standard input is empty"), "{r}");
    let mut huge = bytes;
    huge.resize((16 << 20) + 1, 0);
    let r = run_with_stdin(&f, &["add", dev, "-"], huge);
    assert_eq!(r.code, 5, "{r}");
    assert!(r.stderr.contains("larger than 16777216 bytes"), "{r}");
    assert_eq!(f.status()["programs"].as_array().map(Vec::len), Some(2), "refused inputs changed the chain");
    // The help says so.
    let help = f.run(&["add", "--help"]);
    assert!(help.stdout.contains("standard input"), "{help}");
}

/// apply and export carry a program's configuration (globals and map sizes):
/// applied as declared, a second apply changes nothing, a changed value is a
/// replacement, and export writes them back.
#[test]
fn apply_and_export_carry_globals_and_map_sizes() {
    let f = Fixture::new("ctl-apply-config");
    let dev = f.pair.dev_b.as_str();
    let object = f.object("skelconfig");
    let file = f.objects.0.join("config.toml");
    let file_arg = file.display().to_string();
    let declaration = |port: u32| {
        format!(
            "[[interface]]\nname = \"{dev}\"\n\n\
             [[interface.program]]\nobject = \"{object}\"\nfunction = \"configured\"\ntag = \"cfg\"\npriority = 10\nproceed_on = [\"pass\"]\n\n\
             [interface.program.globals]\ndrop_port = \"{port}\"\nenabled = \"true\"\nmode = \"2\"\n\n\
             [interface.program.map_sizes]\nflows = 1024\n"
        )
    };
    std::fs::write(&file, declaration(9999)).unwrap();
    f.ok(&["apply", &file_arg]);
    let generation = f.status()["generation"].as_u64().unwrap();
    let out = f.ok(&["apply", &file_arg]);
    assert_eq!(out.trim(), format!("{dev}: up to date (generation {generation})"));
    // Another value is another program: replaced (its maps carried over).
    std::fs::write(&file, declaration(9998)).unwrap();
    let r = f.run(&["apply", "--dry-run", &file_arg]);
    assert_eq!(r.code, 10, "{r}");
    assert!(r.stdout.contains("other globals"), "{r}");
    f.ok(&["apply", &file_arg]);
    assert_eq!(f.status()["generation"].as_u64().unwrap(), generation + 1);
    let exported = f.ok(&["export", dev, "--objects", &f.objects.0.display().to_string()]);
    assert_eq!(exported, declaration(9998));
}
