//! Tenant safety: nothing one caller sends may crash the service, forge its
//! log, or reach another owner's programs. Each test ends with the service up
//! and the other owner's program, chain and generation unchanged.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use xdpd_client::LinkProxy;
use xdpd_tests::memfd_with;
use xdpd_tests::polkit::{self, connect_as, Polkit};
use xdpd_tests::service::{link_proxy, program_proxy, Service as Fixture};
use zbus::{OwnedObjectPath, Variant};

/// alice and bob may add and remove their own programs.
const RULES: &str = r#"
polkit.addRule(function(action, subject) {
    if (action.id.indexOf("org.xdp.manager1.") != 0)
        return polkit.Result.NOT_HANDLED;
    if ((subject.user == "xdpd-alice" || subject.user == "xdpd-bob") &&
        (action.id == "org.xdp.manager1.add-program" || action.id == "org.xdp.manager1.remove-program"))
        return polkit.Result.YES;
    return polkit.Result.NOT_HANDLED;
});
"#;

/// Adds program `function` of test object `object`, passed as a memfd.
async fn add(
    link: &LinkProxy<'_>,
    object: &str,
    function: &str,
    options: HashMap<&str, Variant<'_>>,
) -> zbus::Result<OwnedObjectPath> {
    let file = memfd_with(&xdpd_bpf::object_bytes(object));
    link.add_program(zbus::Fd::from(file.as_fd()), function, options).await
}

fn none() -> HashMap<&'static str, Variant<'static>> {
    HashMap::new()
}

/// Entries of a bpffs directory (names), sorted; empty if it does not exist.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

fn object(name: &str) -> String {
    xdpd_bpf::object_path(name).display().to_string()
}

fn method_error(e: zbus::Error) -> (String, String) {
    match e {
        zbus::Error::MethodError(name, message, _) => (name.to_string(), message.unwrap_or_default()),
        zbus::Error::FDO(e) => {
            (zbus::DBusError::name(&*e).to_string(), zbus::DBusError::description(&*e).unwrap_or_default().to_string())
        }
        other => panic!("expected a method error, got {other}"),
    }
}

/// What a caller would make the log say if its strings went in raw.
const FORGED: &str = "INFO xdpd::iface::owner: program added caller=uid 0 (:1.1) interface=eth0 id=1";

/// Caller-chosen strings (function name, tag, path) never start a log line:
/// names and tags with control characters are refused at the front door,
/// paths are quoted, and the log writer keeps every event on one line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_caller_string_forges_a_log_line() {
    xdpd_tests::require_root();
    let fx = Fixture::new("tenant-log").await;
    let link = fx.link().await;
    let kept = link.add_program_from_path(&object("basic"), "xdp_pass", HashMap::new()).await.unwrap();
    let generation = link.generation().await.unwrap();
    let forged = format!("x\n{FORGED}");

    let err = link.add_program_from_path(&object("basic"), &forged, HashMap::new()).await.unwrap_err();
    let (name, message) = method_error(err);
    assert_eq!(name, "org.freedesktop.DBus.Error.InvalidArgs", "{message}");
    assert!(message.contains("function name"), "{message}");
    let tag = HashMap::from([("tag", Variant::from(forged.as_str()))]);
    let (name, _) = method_error(link.add_program_from_path(&object("basic"), "xdp_pass", tag).await.unwrap_err());
    assert_eq!(name, "org.freedesktop.DBus.Error.InvalidArgs");
    let path = format!("/nonexistent/{forged}");
    let (name, message) =
        method_error(link.add_program_from_path(&path, "xdp_pass", HashMap::new()).await.unwrap_err());
    assert_eq!(name, "org.xdp.Manager1.Error.InvalidObject", "{message}");
    assert!(message.contains("\\n"), "the path is quoted and escaped in the message: {message}");

    let log = fx.bus.log();
    assert!(!log.lines().any(|l| l.starts_with(FORGED)), "a caller forged a log line:\n{log}");
    assert_eq!(link.generation().await.unwrap(), generation);
    assert_eq!(link.programs().await.unwrap(), vec![kept]);
}

/// An object that makes libbpf segfault (a kfunc prototype whose return type
/// id is out of range) is refused with InvalidObject naming the crash; the
/// service, the chain and the running member are untouched, and the next
/// request works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_that_crashes_libbpf_costs_only_its_request() {
    xdpd_tests::require_root();
    let fx = Fixture::new("tenant-crash").await;
    let link = fx.link().await;
    let kept = link.add_program_from_path(&object("basic"), "xdp_pass", HashMap::new()).await.unwrap();
    let generation = link.generation().await.unwrap();
    let kernel_program = link.kernel_program_id().await.unwrap();
    let pid = fx.bus.service_pid().expect("service running");

    let hostile = xdpd_tests::craft::with_func_return_type(
        &xdpd_bpf::object_bytes("features"),
        "bpf_cast_to_kern_ctx",
        0x7fff_ffff,
    );
    let file = memfd_with(&hostile);
    let err = link.add_program(zbus::Fd::from(file.as_fd()), "kfunc", none()).await;
    let (name, message) = method_error(err.expect_err("a crashing object must be refused"));
    assert_eq!(name, "org.xdp.Manager1.Error.InvalidObject", "{message}");
    assert!(message.contains("crashed libbpf") && message.contains("SIGSEGV"), "{message}");

    assert_eq!(fx.bus.service_pid(), Some(pid), "the service process must survive\n{}", fx.bus.log());
    assert_eq!(link.generation().await.unwrap(), generation);
    assert_eq!(link.kernel_program_id().await.unwrap(), kernel_program);
    assert_eq!(link.programs().await.unwrap(), vec![kept]);
    link.add_program_from_path(&object("basic"), "xdp_pass", HashMap::new()).await.unwrap();
    assert_eq!(fx.bus.service_pid(), Some(pid));
}

/// A map root pinned under /sys/fs/bpf with mode 0600 (removed on drop).
struct RootPin(PathBuf, OwnedFd);

impl RootPin {
    fn create(name: &str) -> RootPin {
        let path = PathBuf::from(format!("/sys/fs/bpf/{name}"));
        let _ = std::fs::remove_file(&path);
        let cname = std::ffi::CString::new(name).unwrap();
        // SAFETY: creating a one-entry array map; the descriptor is owned right away.
        let fd = unsafe {
            libbpf_sys::bpf_map_create(libbpf_sys::BPF_MAP_TYPE_ARRAY, cname.as_ptr(), 4, 4, 1, std::ptr::null())
        };
        assert!(fd >= 0, "bpf_map_create: {}", std::io::Error::from_raw_os_error(-fd));
        // SAFETY: a fresh descriptor.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let cpath = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: pinning our descriptor at a NUL-terminated path.
        assert_eq!(unsafe { libbpf_sys::bpf_obj_pin(fd.as_raw_fd(), cpath.as_ptr()) }, 0, "pin {}", path.display());
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        xdpd_tests::map_update(fd.as_fd(), 0, &1u32.to_le_bytes());
        RootPin(path, fd)
    }

    fn id(&self) -> u32 {
        let mut info = libbpf_sys::bpf_map_info::default();
        let mut len = std::mem::size_of_val(&info) as u32;
        // SAFETY: info is a valid bpf_map_info of `len` bytes.
        assert_eq!(unsafe { libbpf_sys::bpf_map_get_info_by_fd(self.1.as_raw_fd(), &mut info, &mut len) }, 0);
        info.id
    }
}

impl Drop for RootPin {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Maps an object pins by name (as xdp-filter and L3AF do) are shared by
/// the programs of one owner, never with another owner, never with a pin of
/// the same name root keeps under /sys/fs/bpf; nothing is pinned outside the
/// service's root, and an owner's pins go with its last program.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maps_pinned_by_name_are_shared_by_one_owner_only() {
    xdpd_tests::require_root();
    let fx = Fixture::new("tenant-pins").await;
    let _polkit = Polkit::start(&fx.bus, RULES);
    let root_map = RootPin::create("shared_verdict");
    let before = entries(Path::new("/sys/fs/bpf"));
    let (alice, bob) = (connect_as(&fx.bus, "xdpd-alice").await, connect_as(&fx.bus, "xdpd-bob").await);
    let (alice_link, bob_link) = (link_proxy(&alice, &fx.link_path()).await, link_proxy(&bob, &fx.link_path()).await);
    let map_id = |conn: &zbus::Connection, path: OwnedObjectPath| {
        let conn = conn.clone();
        async move { program_proxy(&conn, &path).await.map_ids().await.unwrap()["shared_verdict"] }
    };

    let a1 = add(&alice_link, "tenant_pinned", "pinned_verdict", none()).await.unwrap();
    let a2 = add(&alice_link, "tenant_pinned", "pinned_verdict2", none()).await.unwrap();
    let b1 = add(&bob_link, "tenant_pinned", "pinned_verdict", none()).await.unwrap();
    let (a1_map, a2_map, b1_map) =
        (map_id(&alice, a1.clone()).await, map_id(&alice, a2.clone()).await, map_id(&bob, b1.clone()).await);
    assert_eq!(a1_map, a2_map, "one owner's programs share the map pinned by name");
    assert_ne!(a1_map, b1_map, "another owner's program gets its own map");
    assert!(![a1_map, b1_map].contains(&root_map.id()), "root's pin under /sys/fs/bpf was reached");
    assert_eq!(xdpd_tests::map_lookup(root_map.1.as_fd(), 0, 4), 1u32.to_le_bytes(), "root's map changed");
    assert_eq!(entries(Path::new("/sys/fs/bpf")), before, "a pin appeared outside the service's root");
    let owners = fx.pins().join("owner");
    let (alice_uid, bob_uid) = (polkit::uid("xdpd-alice").to_string(), polkit::uid("xdpd-bob").to_string());
    assert_eq!(entries(&owners), {
        let mut v = vec![alice_uid.clone(), bob_uid.clone()];
        v.sort();
        v
    });

    // The owner's pin stays while one of its programs uses the map, and goes with the last.
    program_proxy(&alice, &a1).await.remove().await.unwrap();
    assert_eq!(entries(&owners.join(&alice_uid)), ["shared_verdict"]);
    program_proxy(&alice, &a2).await.remove().await.unwrap();
    program_proxy(&bob, &b1).await.remove().await.unwrap();
    assert_eq!(entries(&owners), Vec::<String>::new(), "shared pins outlived their programs");
    assert_eq!(entries(Path::new("/sys/fs/bpf")), before);
}

/// GetMaps of a program with more maps than one system-bus message may
/// carry descriptors (16) is refused with LimitExceeded instead of getting the
/// service disconnected by the bus; GetMapsByName hands them out by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_maps_never_sends_more_descriptors_than_the_bus_allows() {
    xdpd_tests::require_root();
    let fx = Fixture::new("tenant-fds").await;
    let link = fx.link().await;
    let path = add(&link, "tenant_manymaps", "many_maps", none()).await.unwrap();
    let pid = fx.bus.service_pid();
    let program = fx.program(&path).await;
    let (name, message) = method_error(program.get_maps().await.unwrap_err());
    assert_eq!(name, "org.xdp.Manager1.Error.LimitExceeded", "{message}");
    assert!(message.contains("20 maps") && message.contains("GetMapsByName"), "{message}");
    let some = program.get_maps_by_name(&["m0", "m19"]).await.unwrap();
    assert_eq!(some.keys().map(String::as_str).collect::<std::collections::BTreeSet<_>>(), ["m0", "m19"].into());
    let all: Vec<String> = (0..17).map(|i| format!("m{i}")).collect();
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let (name, _) = method_error(program.get_maps_by_name(&all).await.unwrap_err());
    assert_eq!(name, "org.freedesktop.DBus.Error.InvalidArgs");
    let (name, message) = method_error(program.get_maps_by_name(&["nope"]).await.unwrap_err());
    assert_eq!(name, "org.freedesktop.DBus.Error.InvalidArgs", "{message}");
    assert_eq!(fx.bus.service_pid(), pid, "the bus dropped the service\n{}", fx.bus.log());
    assert_eq!(link.programs().await.unwrap(), vec![path]);
}

/// A user's maps are bounded before they are created: an object whose maps
/// need more kernel memory than the user's limit, or a snapshot larger than
/// the user's snapshot limit, is refused with LimitExceeded naming the
/// numbers, and nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_memory_and_snapshots_are_limited_per_user() {
    xdpd_tests::require_root();
    let fx = Fixture::new("tenant-memory").await;
    let _polkit = Polkit::start(&fx.bus, RULES);
    let alice = connect_as(&fx.bus, "xdpd-alice").await;
    let link = link_proxy(&alice, &fx.link_path()).await;
    let generation = link.generation().await.unwrap();

    let (name, message) = method_error(add(&link, "tenant_bigmap", "bigmap_pass", none()).await.unwrap_err());
    assert_eq!(name, "org.xdp.Manager1.Error.LimitExceeded", "{message}");
    assert!(message.contains("268435456") && message.contains("67108864") && message.contains("bigmap"), "{message}");

    let snapshot = HashMap::from([("persist", Variant::from(true)), ("snapshot", Variant::from(true))]);
    let (name, message) = method_error(add(&link, "tenant_midmap", "midmap_pass", snapshot).await.unwrap_err());
    assert_eq!(name, "org.xdp.Manager1.Error.LimitExceeded", "{message}");
    assert!(message.contains("33554432") && message.contains("16777216") && message.contains("snapshot"), "{message}");
    assert_eq!(link.generation().await.unwrap(), generation, "a refused request changed the chain");
    assert!(link.programs().await.unwrap().is_empty());

    // Within the limits: the same map without a snapshot is fine.
    add(&link, "tenant_midmap", "midmap_pass", none()).await.unwrap();
    assert_eq!(link.generation().await.unwrap(), generation + 1);
}

/// A second xdpd refuses to start: on the same state directory (its lock)
/// and on the same bus (the name is neither replaceable nor queued). The
/// first keeps serving, its chain and record untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_refuses_to_start() {
    xdpd_tests::require_root();
    let fx = Fixture::new("tenant-second").await;
    let link = fx.link().await;
    let kept = link.add_program_from_path(&object("basic"), "xdp_pass", none()).await.unwrap();
    let pid = fx.bus.service_pid().expect("service running");
    let scratch = xdpd_tests::PinDir::new("tenant-second");
    let other_state = tempdir("tenant-second-state");
    let cases = [
        (fx.bus.dir.join("state"), fx.pins(), "another xdpd"),
        (other_state.clone(), fx.pins(), "another xdpd uses"),
        (other_state.clone(), scratch.0.join("xdpd"), "already owned"),
    ];
    for (state, bpffs, expected) in cases {
        let out = run_second(&fx, &state, &bpffs);
        assert!(!out.status.success(), "a second instance started ({state:?}, {bpffs:?})");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{expected:?} not in: {stderr}");
    }
    assert_eq!(fx.bus.service_pid(), Some(pid));
    assert_eq!(link.programs().await.unwrap(), vec![kept]);
    let _ = std::fs::remove_dir_all(other_state);
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xdpd-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs another xdpd on the test bus; it must exit by itself.
fn run_second(fx: &Fixture, state: &Path, bpffs: &Path) -> std::process::Output {
    let mut child = std::process::Command::new(xdpd_tests::bus::xdpd_binary())
        .args(["--bus-address", &fx.bus.address, "--log-stderr", "--idle-timeout", "0", "--state-dir"])
        .arg(state)
        .arg("--bpffs-root")
        .arg(bpffs)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("a second instance kept running");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// A caller's instruction naming a descriptor number (as if it were one of
/// the caller's maps) never reaches a map of the service or of another owner:
/// the program is loaded by a child that holds no descriptor of the service,
/// so every number from 0 to 63 is refused by the kernel as "not a map" —
/// none passes verification to be caught only afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_descriptor_number_in_a_callers_instructions_reaches_no_map() {
    xdpd_tests::require_root();
    let fx = Fixture::new("tenant-fdnum").await;
    let link = fx.link().await;
    // Members with maps: the service holds descriptors of them.
    for function in ["udp_count", "port_block"] {
        link.add_program_from_path(&object("udp"), function, none()).await.unwrap();
    }
    let (generation, programs) = (link.generation().await.unwrap(), link.programs().await.unwrap());
    for fd in 0..64 {
        let file = memfd_with(&xdpd_tests::craft::naming_descriptor(fd));
        let err = link.add_program(zbus::Fd::from(file.as_fd()), "fd_probe", none()).await;
        let (name, message) = method_error(err.expect_err("a borrowed descriptor number must be refused"));
        assert_eq!(name, "org.xdp.Manager1.Error.VerifierRejected", "descriptor {fd}: {message}");
        assert!(message.contains("not pointing to valid bpf_map"), "descriptor {fd} named a map: {message}");
    }
    assert_eq!(link.generation().await.unwrap(), generation);
    assert_eq!(link.programs().await.unwrap(), programs);
}

/// What the service takes from an intake child is checked by the service
/// itself, so a child libbpf may have been subverted in cannot lie where it
/// matters: the object's hash (polkit's `object_sha256`), each map's id, type
/// and size (the per-user map limit), a descriptor that is no map, and BTF
/// the linker would parse (the kernel must accept it first).
#[test]
fn a_childs_answer_is_vouched_for_by_the_service() {
    use xdpd::engine::sandbox::vouch;
    xdpd_tests::require_root();
    let bytes = xdpd_bpf::object_bytes("udp");
    let honest = xdpd::engine::object::load(&bytes, Some("udp_count"), 1 << 24).unwrap();
    let (sha256, ids): (String, Vec<(u32, u32, u64)>) =
        (honest.sha256.clone(), honest.maps.iter().map(|m| (m.id, m.map_type, m.bytes)).collect());
    let mut lying = honest;
    lying.sha256 = "0".repeat(64);
    for map in &mut lying.maps {
        (map.id, map.map_type, map.bytes) = (999_999, 0, 0);
    }
    let vouched = vouch(lying, &bytes).unwrap();
    assert_eq!(vouched.sha256, sha256);
    assert_eq!(vouched.maps.iter().map(|m| (m.id, m.map_type, m.bytes)).collect::<Vec<_>>(), ids);
    assert!(ids.iter().all(|&(_, _, bytes)| bytes > 0), "{ids:?}");

    // A descriptor that is no map is refused.
    let mut lying = vouched;
    lying.maps[0].fd = OwnedFd::from(memfd_with(b"not a map"));
    let err = vouch(lying, &bytes).unwrap_err().to_string();
    assert!(err.contains("no map"), "{err}");

    // BTF goes through the kernel before libbpf parses it in the service (the
    // honest program's BTF, the kernel's own copy, passed above).
    use xdpd::kernel::btf::Btf;
    let mut btf = Btf::empty().unwrap();
    btf.add_int("int", 4, true).unwrap();
    let valid = btf.raw_data();
    Btf::kernel_accepts(&valid).expect("a BTF with one int");
    let mut broken = valid;
    broken[8..12].copy_from_slice(&u32::MAX.to_le_bytes()); // type_off far outside
    assert!(Btf::kernel_accepts(&broken).is_err());
    assert!(Btf::kernel_accepts(b"\x9f\xeb garbage").is_err());
}
