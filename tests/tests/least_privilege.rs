//! Least privilege: the systemd unit scores 2.5 or better in `systemd-analyze
//! security`, its system-call filter allows every call the service makes, its
//! capabilities are enough for everything the service does (checked live:
//! the service runs with exactly those capabilities under setpriv), and the
//! bus policy lets only root own the name. SECURITY.md says why each
//! remaining privilege is needed.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use xdpd_client::{LinkProxy, ProgramProxy};
use xdpd_tests::bus::TestBus;
use xdpd_tests::netns::VethPair;
use xdpd_tests::polkit::{uid, Polkit};

const MAX_EXPOSURE: f64 = 2.5;

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

/// The values of every `key=` line of the unit, in order.
fn unit_values(key: &str) -> Vec<String> {
    let unit = std::fs::read_to_string(repo_file("systemd/xdpd.service")).unwrap();
    unit.lines().filter_map(|l| l.strip_prefix(&format!("{key}="))).map(|v| v.trim().to_string()).collect()
}

fn unit_capabilities(key: &str) -> BTreeSet<String> {
    unit_values(key).iter().flat_map(|v| v.split_whitespace().map(str::to_string)).collect()
}

#[test]
fn the_unit_scores_2_5_or_better() {
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(repo_file("systemd/xdpd.service"))
        .output()
        .expect("systemd-analyze (install systemd)");
    let text = String::from_utf8_lossy(&out.stdout);
    let overall = text
        .lines()
        .find_map(|l| l.split("Overall exposure level for xdpd.service:").nth(1))
        .unwrap_or_else(|| panic!("no overall exposure in:\n{text}\n{}", String::from_utf8_lossy(&out.stderr)));
    let score: f64 = overall.split_whitespace().next().and_then(|s| s.parse().ok()).expect("a number");
    let exposed: Vec<&str> = text.lines().filter(|l| l.starts_with('✗')).collect();
    eprintln!("systemd-analyze security: {score}\n{}", exposed.join("\n"));
    assert!(score <= MAX_EXPOSURE, "exposure {score} > {MAX_EXPOSURE}:\n{text}");
}

/// systemd's syscall group `name`, expanded (groups name other groups).
fn syscall_group(name: &str, cache: &mut HashMap<String, BTreeSet<String>>) -> BTreeSet<String> {
    if let Some(set) = cache.get(name) {
        return set.clone();
    }
    let out = Command::new("systemd-analyze").args(["syscall-filter", "--no-pager", name]).output().unwrap();
    let mut set = BTreeSet::new();
    for line in String::from_utf8_lossy(&out.stdout).lines().skip(1).map(str::trim) {
        if line.starts_with('@') {
            set.extend(syscall_group(line.split_whitespace().next().unwrap(), cache));
        } else if !line.is_empty() && !line.starts_with('#') {
            set.insert(line.to_string());
        }
    }
    assert!(!set.is_empty(), "systemd knows no syscall group {name}");
    cache.insert(name.to_string(), set.clone());
    set
}

/// Every system call xdpd (and its intake children) made while the D-Bus,
/// hostile, load, polkit, survival, xdpctl and tenant tests ran (recorded with `strace -f` around the
/// activated service; see SECURITY.md to record it again).
const SYSCALLS: &str =
    "access arch_prctl bind bpf brk capget capset clone3 close close_range connect dup2 dup3 epoll_create1 \
    epoll_ctl epoll_wait eventfd2 execve exit exit_group faccessat2 fcntl flock fsync futex getdents64 \
    geteuid getpid getrandom getsockname getsockopt gettid lseek madvise memfd_create mkdir mmap \
    mprotect mremap munmap newfstatat openat poll prctl pread64 prlimit64 read recvfrom recvmsg rename \
    rmdir rseq rt_sigaction rt_sigprocmask rt_sigreturn sched_getaffinity sendmsg sendto set_robust_list \
    set_tid_address setfsgid setfsuid setgroups setsockopt sigaltstack socket socketpair statx uname \
    unlink unlinkat wait4 write";

#[test]
fn the_system_call_filter_allows_what_the_service_does() {
    // systemd applies the lines in order: the first (an allow list) sets the list,
    // a later "~" line removes from it, a later plain line adds to it.
    let mut cache = HashMap::new();
    let mut expand = |items: &str| -> BTreeSet<String> {
        items
            .split_whitespace()
            .flat_map(
                |i| if i.starts_with('@') { syscall_group(i, &mut cache) } else { BTreeSet::from([i.to_string()]) },
            )
            .collect()
    };
    let lines = unit_values("SystemCallFilter");
    assert!(!lines.is_empty() && !lines[0].starts_with('~'), "the filter starts with an allow list");
    let mut allowed = expand(&lines[0]);
    for line in &lines[1..] {
        match line.strip_prefix('~') {
            Some(denied) => allowed = &allowed - &expand(denied),
            None => allowed.extend(expand(line)),
        }
    }
    let missing: Vec<&str> = SYSCALLS.split_whitespace().filter(|s| !allowed.contains(*s)).collect();
    assert!(missing.is_empty(), "the unit's SystemCallFilter= refuses system calls xdpd makes: {missing:?}");
    // And it still refuses what a BPF manager never needs.
    for never in ["mount", "reboot", "init_module", "kexec_load", "ptrace", "setuid", "chroot", "swapon"] {
        assert!(!allowed.contains(never), "the filter allows {never}");
    }
}

#[test]
fn capabilities_are_ambient_because_root_gets_none_by_itself() {
    // With SecureBits=noroot, uid 0 alone grants nothing: every capability the
    // service has must be ambient (and in the bounding set).
    assert!(unit_values("SecureBits").iter().any(|v| v.contains("noroot")));
    let (bounding, ambient) = (unit_capabilities("CapabilityBoundingSet"), unit_capabilities("AmbientCapabilities"));
    assert_eq!(ambient, bounding);
    let expected = ["CAP_BPF", "CAP_NET_ADMIN", "CAP_PERFMON", "CAP_SETGID", "CAP_SETUID", "CAP_SYS_ADMIN"];
    assert_eq!(bounding, expected.iter().map(|c| c.to_string()).collect(), "SECURITY.md explains each");
}

#[test]
fn the_bus_policy_lets_only_root_own_the_name() {
    use quick_xml::events::Event;
    let name = "org.xdp.Manager1";
    let xml = std::fs::read_to_string(repo_file("systemd/org.xdp.Manager1.conf")).unwrap();
    let mut reader = quick_xml::Reader::from_str(&xml);
    let attr = |e: &quick_xml::events::BytesStart<'_>, key: &str| {
        e.attributes()
            .filter_map(Result::ok)
            .find(|a| a.key.as_ref() == key.as_bytes())
            .map(|a| String::from_utf8_lossy(&a.value).into_owned())
    };
    let (mut policy, mut owners, mut callable) = (None::<String>, Vec::new(), false);
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Start(e) if e.name().as_ref() == b"policy" => {
                policy = Some(format!(
                    "user={:?} group={:?} context={:?} at_console={:?}",
                    attr(&e, "user"),
                    attr(&e, "group"),
                    attr(&e, "context"),
                    attr(&e, "at_console")
                ));
            }
            Event::End(e) if e.name().as_ref() == b"policy" => policy = None,
            Event::Empty(e) | Event::Start(e) if e.name().as_ref() == b"allow" => {
                let owns = attr(&e, "own").is_some_and(|o| o == name || o == "*")
                    || attr(&e, "own_prefix").is_some_and(|p| name.starts_with(&p));
                if owns {
                    owners.push(policy.clone().unwrap_or_else(|| "outside any policy".into()));
                }
                callable |= attr(&e, "send_destination").as_deref() == Some(name)
                    && policy.as_deref().is_some_and(|p| p.contains("context=Some(\"default\")"));
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let root = "user=Some(\"root\") group=None context=None at_console=None";
    assert_eq!(owners, vec![root.to_string()], "only root may own {name}");
    assert!(callable, "everyone may call {name} (the service decides through polkit)");
}

/// `CAP_BPF` → `bpf`, as setpriv names capabilities.
fn setpriv_caps(caps: &BTreeSet<String>) -> String {
    let names: Vec<String> = caps.iter().map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase())).collect();
    format!("-all,{}", names.join(","))
}

fn capability_mask(caps: &BTreeSet<String>) -> u64 {
    let bit = |c: &str| match c {
        "CAP_SETGID" => 6,
        "CAP_SETUID" => 7,
        "CAP_NET_ADMIN" => 12,
        "CAP_SYS_ADMIN" => 21,
        "CAP_PERFMON" => 38,
        "CAP_BPF" => 39,
        other => panic!("add the bit of {other}"),
    };
    caps.iter().fold(0, |m, c| m | 1 << bit(c))
}

fn status_mask(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

/// A directory removed on drop, also when the test fails.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The service runs the way the unit starts it as far as capabilities go
/// (noroot secure bits, the unit's bounding and ambient sets, no new
/// privileges), and everything works: adding by descriptor and by path as
/// root and as another user (the file-system identity switch), maps,
/// removal, and adopting the pinned chain after a restart (programs by id).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_works_with_only_the_units_capabilities() {
    let pair = VethPair::new();
    let bus = TestBus::start("caps", &pair.ns_b, 0);
    let caps = unit_capabilities("AmbientCapabilities");
    let activation = bus.dir.join("services/org.xdp.Manager1.service");
    let text = std::fs::read_to_string(&activation).unwrap();
    let wrapped = text.replace(
        "Exec=",
        &format!(
            "Exec=/usr/bin/setpriv --securebits=+noroot,+noroot_locked --no-new-privs --bounding-set={c} --inh-caps={c} --ambient-caps={c} ",
            c = setpriv_caps(&caps)
        ),
    );
    std::fs::write(&activation, wrapped).unwrap();
    let _polkit = Polkit::start(
        &bus,
        r#"polkit.addRule(function(action, subject) {
            if (subject.user == "xdpd-alice" && action.id == "org.xdp.manager1.add-program") return polkit.Result.YES;
            return polkit.Result.NOT_HANDLED;
        });"#,
    );
    let link_path = format!("/org/xdp/Manager1/link/{}", VethPair::ifindex(&pair.ns_b, &pair.dev_b));
    let conn = bus.connect().await;
    let link = LinkProxy::builder(&conn)
        .path(link_path.clone())
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .unwrap();

    // Root: by descriptor and by path.
    let udp = std::fs::File::open(xdpd_bpf::object_path("udp")).unwrap();
    let counter = link
        .add_program(zbus::Fd::from(std::os::fd::AsFd::as_fd(&udp)), "udp_count", HashMap::new())
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", bus.log()));
    let pid = bus.service_pid().unwrap();
    assert_eq!(status_mask(pid, "CapEff:"), capability_mask(&caps), "the service runs with the unit's capabilities");
    assert_eq!(status_mask(pid, "CapBnd:"), capability_mask(&caps));
    let basic = xdpd_bpf::object_path("basic").display().to_string();
    let by_path = link.add_program_from_path(&basic, "xdp_pass", HashMap::new()).await.unwrap();

    // Another user: the path is opened with alice's identity (setgroups, setfsgid, setfsuid).
    let scratch = Scratch(std::env::temp_dir().join(format!("xdpd-caps-{}", std::process::id())));
    let dir = &scratch.0;
    std::fs::create_dir_all(dir).unwrap();
    let (public, private) = (dir.join("public.o"), dir.join("private.o"));
    for (file, mode) in [(&public, 0o644), (&private, 0o600)] {
        std::fs::copy(xdpd_bpf::object_path("basic"), file).unwrap();
        std::fs::set_permissions(file, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    }
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let as_alice = |path: &Path| {
        let p = path.display().to_string();
        bus.busctl_as(
            Some(uid("xdpd-alice")),
            &[
                "--allow-interactive-authorization=no",
                "call",
                "org.xdp.Manager1",
                &link_path,
                "org.xdp.Manager1.Link",
                "AddProgramFromPath",
                "ssa{sv}",
                &p,
                "xdp_pass",
                "0",
            ],
        )
    };
    let (ok, out, err) = as_alice(&public);
    assert!(ok, "alice adds a file she can read: {err}\n{}", bus.log());
    let alices = out.trim().trim_start_matches("o ").trim_matches('"').to_string();
    let (ok, _, err) = as_alice(&private);
    assert!(!ok && err.contains("Permission denied"), "alice cannot read root's 0600 file: {err}");
    drop(scratch);

    // Maps, and removal.
    let program = |p: String| {
        let conn = conn.clone();
        async move { ProgramProxy::builder(&conn).path(p).build().await.unwrap() }
    };
    let maps = program(counter.to_string()).await.get_maps().await.unwrap();
    assert!(maps.contains_key("packets"));
    program(by_path.to_string()).await.remove().await.unwrap();

    // Adoption after a restart opens the running program by id (CAP_SYS_ADMIN).
    let kernel_id = link.kernel_program_id().await.unwrap();
    bus.stop_service();
    assert_eq!(link.kernel_program_id().await.unwrap(), kernel_id, "adopted:\n{}", bus.log());
    assert_eq!(link.programs().await.unwrap().len(), 2);
    assert!(!bus.log().contains("cannot restore"), "{}", bus.log());
    let pid2 = bus.service_pid().unwrap();
    assert_ne!(pid2, pid);
    assert_eq!(status_mask(pid2, "CapEff:"), capability_mask(&caps));
    // Root may remove anyone's program (no polkit needed): the chain goes away.
    program(alices).await.remove().await.unwrap();
    program(counter.to_string()).await.remove().await.unwrap();
    assert_eq!(link.kernel_program_id().await.unwrap(), 0);
}
