//! Control plane through D-Bus: AddProgram and RemoveProgram latency for a
//! non-root caller authorized by polkit, at several chain lengths; the same
//! for xdp-loader as the outside reference; activation time; service RSS.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use xdpd_client::{LinkProxy, ManagerProxy, ProgramProxy};
use xdpd_tests::bus::TestBus;
use xdpd_tests::netns::VethPair;
use xdpd_tests::polkit::{uid, Polkit};
use zbus::Variant;

use crate::table::{percentile, Table};

const CALLS: usize = 60;
const RULES: &str = r#"
polkit.addRule(function(action, subject) {
    if (action.id.indexOf("org.xdp.manager1.") == 0 && subject.user == "xdpd-alice")
        return polkit.Result.YES;
    return polkit.Result.NOT_HANDLED;
});
"#;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Runs `f` on a thread whose credentials are `uid`'s (raw syscalls: this thread only),
/// so its bus connection is that user's.
fn as_user<T: Send>(uid: u32, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: changes only this thread's credentials (raw syscalls, not glibc's process-wide wrappers).
            unsafe {
                libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<u32>());
                libc::syscall(libc::SYS_setresgid, uid, uid, uid);
                libc::syscall(libc::SYS_setresuid, uid, uid, uid);
            }
            f()
        })
        .join()
        .expect("user thread")
    })
}

pub fn run() -> Vec<Table> {
    let pair = VethPair::new();
    let bus = TestBus::start("bench-control", &pair.ns_b, 0);
    let _polkit = Polkit::start(&bus, RULES);
    let object = xdpd_bpf::object_path("basic").display().to_string();
    let alice = uid("xdpd-alice");

    // Activation: the first call starts the service.
    let address = bus.address.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let activation = runtime.block_on(async {
        let conn = zbus::connection::Builder::address(address.as_str()).build().await.expect("connect");
        let start = Instant::now();
        ManagerProxy::new(&conn).await.expect("proxy").get_link_by_name(&pair.dev_b).await.expect("first call");
        start.elapsed()
    });
    let pid = bus.service_pid().expect("service");
    let idle_rss = rss_kib(pid);

    let mut latency = crate::table::Table::new(
        "control_latency",
        format!("control plane: AddProgramFromPath / Remove through D-Bus by a non-root caller authorized by polkit, {CALLS} calls each"),
        &["chain length", "add p50 ms", "add p99 ms", "remove p50 ms", "remove p99 ms"],
    );
    let link_path = format!("/org/xdp/Manager1/link/{}", VethPair::ifindex(&pair.ns_b, &pair.dev_b));
    let _present = as_user(alice, || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let conn = zbus::connection::Builder::address(address.as_str()).build().await.expect("connect as alice");
            let link = LinkProxy::builder(&conn).path(link_path.as_str()).build().await.expect("link");
            let mut present = 0;
            for length in [1usize, 10, 50] {
                while present < length - 1 {
                    let opts = HashMap::from([("priority", Variant::from(present as i32))]);
                    link.add_program_from_path(&object, "xdp_pass", opts).await.expect("fill");
                    present += 1;
                }
                let (mut adds, mut removes) = (Vec::new(), Vec::new());
                for _ in 0..CALLS {
                    let start = Instant::now();
                    let p = link.add_program_from_path(&object, "xdp_pass", HashMap::new()).await.expect("add");
                    adds.push(ms(start.elapsed()));
                    let program = ProgramProxy::builder(&conn).path(p).build().await.expect("program");
                    let start = Instant::now();
                    program.remove().await.expect("remove");
                    removes.push(ms(start.elapsed()));
                }
                adds.sort_by(f64::total_cmp);
                removes.sort_by(f64::total_cmp);
                latency.row(vec![
                    length.to_string(),
                    format!("{:.1}", percentile(&adds, 0.5)),
                    format!("{:.1}", percentile(&adds, 0.99)),
                    format!("{:.1}", percentile(&removes, 0.5)),
                    format!("{:.1}", percentile(&removes, 0.99)),
                ]);
            }
            present
        })
    });
    // Up to 100 programs for the RSS figure (as root: a user may have 64).
    runtime.block_on(async {
        let conn = zbus::connection::Builder::address(address.as_str()).build().await.expect("connect");
        let link = LinkProxy::builder(&conn).path(link_path.as_str()).build().await.expect("link");
        let mut present = link.programs().await.expect("programs").len();
        while present < 100 {
            let opts = HashMap::from([("priority", Variant::from(present as i32))]);
            link.add_program_from_path(&object, "xdp_pass", opts).await.expect("fill");
            present += 1;
        }
    });
    let full_rss = rss_kib(pid);

    // The outside reference: xdp-loader loading and unloading one program (a process per call).
    let mut reference = Vec::new();
    let other = VethPair::new();
    for _ in 0..20 {
        let ns = format!("--net=/run/netns/{}", other.ns_b);
        let start = Instant::now();
        let load = std::process::Command::new("nsenter")
            .args([ns.as_str(), "xdp-loader", "load", "-m", "native", "-p", "/sys/fs/bpf/xdpd-bench-xdp-loader"])
            .args([other.dev_b.as_str(), xdpd_bpf::object_path("basic").to_str().unwrap_or_default(), "-n", "xdp_pass"])
            .output();
        let loaded = start.elapsed();
        let start = Instant::now();
        let unload = std::process::Command::new("nsenter")
            .args([ns.as_str(), "xdp-loader", "unload", "--all", &other.dev_b])
            .output();
        let unloaded = start.elapsed();
        match (load, unload) {
            (Ok(l), Ok(u)) if l.status.success() && u.status.success() => reference.push((ms(loaded), ms(unloaded))),
            (Ok(l), _) => {
                eprintln!("xdp-loader failed: {}", String::from_utf8_lossy(&l.stderr).trim());
                break;
            }
            _ => {
                eprintln!("xdp-loader is not installed (apt-get install xdp-tools)");
                break;
            }
        }
    }
    let _ = std::fs::remove_dir_all("/sys/fs/bpf/xdpd-bench-xdp-loader");
    let mut loads: Vec<f64> = reference.iter().map(|r| r.0).collect();
    let mut unloads: Vec<f64> = reference.iter().map(|r| r.1).collect();
    loads.sort_by(f64::total_cmp);
    unloads.sort_by(f64::total_cmp);

    let mut other_table = Table::new("control_other", "control plane: reference and footprint", &["measure", "value"]);
    other_table.row(vec![
        format!("xdp-loader load / unload of one program, p50 ms ({} runs)", reference.len()),
        format!("{:.1} / {:.1}", percentile(&loads, 0.5), percentile(&unloads, 0.5)),
    ]);
    other_table.row(vec!["service activation to first reply, ms".into(), format!("{:.1}", ms(activation))]);
    other_table.row(vec!["service RSS idle, MiB".into(), format!("{:.1}", idle_rss as f64 / 1024.0)]);
    other_table.row(vec!["service RSS with 100 programs, MiB".into(), format!("{:.1}", full_rss as f64 / 1024.0)]);
    vec![latency, other_table]
}
