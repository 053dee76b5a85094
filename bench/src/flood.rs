//! A flood of refused requests: a user polkit refuses sends AddProgram with
//! 16 MiB objects from 8 connections, 16 at a time each, while root reads a
//! property. The service must not read what it has not authorized: its
//! memory stays near idle and root's reads stay fast.

use std::collections::HashMap;
use std::os::fd::{AsFd, FromRawFd};
use std::time::{Duration, Instant};

use xdpd_client::{LinkProxy, ManagerProxy};
use xdpd_tests::bus::TestBus;
use xdpd_tests::netns::VethPair;
use xdpd_tests::polkit::{connect_as, Polkit};
use zbus::Variant;

use crate::table::{percentile, Table};

const CONNECTIONS: usize = 8;
const IN_FLIGHT: usize = 16;
const ROUNDS: usize = 4;
const OBJECT_SIZE: i64 = 16 << 20;
const RULES: &str = r#"
polkit.addRule(function(action, subject) {
    if (action.id.indexOf("org.xdp.manager1.") == 0 && subject.user == "xdpd-carol")
        return polkit.Result.NO;
    return polkit.Result.NOT_HANDLED;
});
"#;

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// A sparse memfd of `OBJECT_SIZE` bytes (costs nothing until read).
fn big_object() -> std::fs::File {
    // SAFETY: memfd_create with a static name; the descriptor is owned right away.
    let fd = unsafe { libc::memfd_create(c"flood".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create");
    // SAFETY: a fresh descriptor we own.
    let file = unsafe { std::fs::File::from_raw_fd(fd) };
    file.set_len(OBJECT_SIZE as u64).expect("size the memfd");
    file
}

pub fn run() -> Table {
    let pair = VethPair::new();
    let bus = TestBus::start("bench-flood", &pair.ns_b, 0);
    let _polkit = Polkit::start(&bus, RULES);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let link_path = format!("/org/xdp/Manager1/link/{}", VethPair::ifindex(&pair.ns_b, &pair.dev_b));
    let mut table = Table::new(
        "flood",
        format!(
            "a flood of refused requests: {CONNECTIONS} connections x {IN_FLIGHT} AddProgram at a time x {ROUNDS} rounds, \
             each with a {} MiB object, from a user polkit refuses; root reads Link.Generation meanwhile",
            OBJECT_SIZE >> 20
        ),
        &["requests", "refused", "RSS idle MiB", "peak RSS MiB", "peak - idle MiB", "root read p50 ms", "root read max ms", "flood s"],
    );
    runtime.block_on(async {
        let root = zbus::connection::Builder::address(bus.address.as_str()).build().await.expect("connect");
        ManagerProxy::new(&root).await.expect("proxy").get_link_by_name(&pair.dev_b).await.expect("activate");
        let pid = bus.service_pid().expect("service");
        let idle = status_kib(pid, "VmRSS:");
        let mut users = Vec::new();
        for _ in 0..CONNECTIONS {
            users.push(connect_as(&bus, "xdpd-carol").await);
        }
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (root, path, done) = (root.clone(), link_path.clone(), done.clone());
            tokio::spawn(async move {
                let link = LinkProxy::builder(&root)
                    .path(path)
                    .cache_properties(zbus::proxy::CacheProperties::No)
                    .build()
                    .await
                    .expect("link");
                let mut reads = Vec::new();
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let start = Instant::now();
                    link.generation().await.expect("root read");
                    reads.push(start.elapsed().as_secs_f64() * 1000.0);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                reads
            })
        };
        let started = Instant::now();
        let mut refused = 0;
        for _ in 0..ROUNDS {
            let mut calls = Vec::new();
            for conn in &users {
                for _ in 0..IN_FLIGHT {
                    let (conn, path) = (conn.clone(), link_path.clone());
                    calls.push(tokio::spawn(async move {
                        let link = LinkProxy::builder(&conn).path(path).build().await.expect("link");
                        let object = big_object();
                        let options: HashMap<&str, Variant<'_>> = HashMap::new();
                        link.add_program(zbus::Fd::from(object.as_fd()), "", options).await.is_err()
                    }));
                }
            }
            for call in calls {
                refused += usize::from(call.await.unwrap_or(false));
            }
        }
        let flood = started.elapsed();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut reads = reader.await.expect("reader");
        reads.sort_by(f64::total_cmp);
        let peak = status_kib(pid, "VmHWM:");
        let mib = |kib: u64| format!("{:.1}", kib as f64 / 1024.0);
        table.row(vec![
            (CONNECTIONS * IN_FLIGHT * ROUNDS).to_string(),
            refused.to_string(),
            mib(idle),
            mib(peak),
            mib(peak.saturating_sub(idle)),
            format!("{:.1}", percentile(&reads, 0.5)),
            format!("{:.1}", reads.last().copied().unwrap_or(0.0)),
            format!("{:.1}", flood.as_secs_f64()),
        ]);
    });
    table
}
