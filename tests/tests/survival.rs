//! Chains outlive the process that built them: crashes at any instant,
//! changes behind the service's back, interfaces that come and go, reboots.

use std::collections::HashMap;
use std::net::{SocketAddrV4, UdpSocket};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use xdpd_client::{LinkProxy, ProgramProxy};
use xdpd_tests::netns::{drain, send_paced, udp_receiver, VethPair};
use zbus::{OwnedObjectPath, Variant};

use xdpd_tests::service::Service as Fixture;

fn object(name: &str) -> String {
    xdpd_bpf::object_path(name).display().to_string()
}

fn opts(priority: i32) -> HashMap<&'static str, Variant<'static>> {
    HashMap::from([("priority", Variant::from(priority))])
}

fn bpftool(args: &[&str]) {
    let out = std::process::Command::new("bpftool").args(args).output().expect("bpftool (install bpftool)");
    assert!(out.status.success(), "bpftool {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Signals of the service, as (member, message), waiting up to `timeout` for `n`.
async fn wait_signal(stream: &mut zbus::MessageStream, member: &str, timeout: Duration) -> zbus::Message {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = tokio::time::timeout(left, stream.next())
            .await
            .unwrap_or_else(|_| panic!("no {member} signal within {timeout:?}"))
            .unwrap()
            .unwrap();
        if msg.header().member().is_some_and(|m| m.as_str() == member) {
            return msg;
        }
    }
}

async fn signals(conn: &zbus::Connection) -> zbus::MessageStream {
    let rule =
        zbus::MatchRule::builder().msg_type(zbus::message::Type::Signal).sender("org.xdp.Manager1").build().unwrap();
    zbus::MessageStream::for_match_rule(rule, conn, std::num::NonZeroUsize::new(256)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_detach_and_replace_are_detected_and_reclaim_restores() {
    let f = Fixture::new("foreign").await;
    let link = f.link().await;
    link.add_program_from_path(&object("udp"), "udp_drop", opts(10)).await.unwrap();
    let ours = link.kernel_program_id().await.unwrap();
    assert_eq!(f.traffic(9999, 20), 0);
    let mut stream = signals(&f.conn).await;

    // Someone detaches xdpd's link: noticed, signalled, not fought.
    bpftool(&["link", "detach", "pinned", f.link_pin().to_str().unwrap()]);
    let msg = wait_signal(&mut stream, "ForeignProgramDetected", Duration::from_secs(10)).await;
    assert_eq!(msg.body().deserialize::<u32>().unwrap(), 0, "nothing attached now");
    assert_eq!(link.kernel_program_id().await.unwrap(), 0);
    assert_eq!(link.foreign_program_id().await.unwrap(), 0);
    assert_eq!(f.traffic(9999, 20), 20, "the service did not re-attach on its own");

    // Someone attaches their own program with netlink.
    let foreign = VethPair::run_in(&f.pair.ns_b, || {
        let object =
            libbpf_rs::ObjectBuilder::default().open_file(xdpd_bpf::object_path("basic")).unwrap().load().unwrap();
        let prog = object.progs().find(|p| p.name() == "xdp_pass").unwrap();
        // SAFETY: plain libbpf call; XDP_FLAGS_DRV_MODE = 4. The attachment outlives the descriptor.
        let ret = unsafe {
            libbpf_sys::bpf_xdp_attach(
                f.ifindex as i32,
                std::os::fd::AsRawFd::as_raw_fd(&prog.as_fd()),
                4,
                std::ptr::null(),
            )
        };
        assert_eq!(ret, 0);
        xdpd::kernel::hook::attached(f.ifindex).unwrap().native
    });
    let msg = wait_signal(&mut stream, "ForeignProgramDetected", Duration::from_secs(10)).await;
    assert_eq!(msg.body().deserialize::<u32>().unwrap(), foreign);
    assert_eq!(link.foreign_program_id().await.unwrap(), foreign);

    // Changing the chain now is a clear conflict...
    let err = link.add_program_from_path(&object("basic"), "xdp_pass", opts(20)).await.unwrap_err();
    assert!(err.to_string().contains("Reclaim"), "{err}");
    // ...and Reclaim takes the interface back, with the same chain.
    link.reclaim().await.unwrap();
    assert_eq!(link.kernel_program_id().await.unwrap(), ours);
    assert_eq!(link.foreign_program_id().await.unwrap(), 0);
    assert_eq!(f.attached().native, ours);
    assert_eq!(f.traffic(9999, 20), 0, "dropping again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_reboot_brings_back_persistent_programs_only() {
    let f = Fixture::new("reboot").await;
    let link = f.link().await;
    let persist = |prio: i32| HashMap::from([("priority", Variant::from(prio)), ("persist", Variant::from(true))]);
    let a = link.add_program_from_path(&object("udp"), "udp_count", persist(20)).await.unwrap();
    let b = link.add_program_from_path(&object("basic"), "xdp_pass", opts(10)).await.unwrap();
    let c = link.add_program_from_path(&object("udp"), "udp_drop", persist(5)).await.unwrap();
    let mut with_snapshot = persist(25);
    with_snapshot.insert("snapshot", Variant::from(true));
    let d = link.add_program_from_path(&object("udp"), "udp_count", with_snapshot).await.unwrap();
    assert_eq!(link.programs().await.unwrap(), vec![c.clone(), b.clone(), a.clone(), d.clone()]);
    assert_eq!(f.traffic(9998, 40), 40);

    // Reboot: the service goes, the kernel forgets everything (links, pins).
    f.bus.stop_service();
    bpftool(&["link", "detach", "pinned", f.link_pin().to_str().unwrap()]);
    std::fs::remove_dir_all(f.pins()).unwrap();
    assert_eq!(f.attached().native, 0);

    // The next start links and attaches the persistent programs, in order.
    assert_eq!(link.programs().await.unwrap(), vec![c.clone(), a.clone(), d.clone()]);
    let kernel = link.kernel_program_id().await.unwrap();
    assert_ne!(kernel, 0);
    assert_eq!(f.attached().native, kernel);
    assert_eq!(f.traffic(9999, 10), 0, "the persistent dropper runs again");
    let maps = f.program(&a).await.get_maps().await.unwrap();
    let count = u64::from_ne_bytes(xdpd_tests::map_lookup(maps["packets"].as_fd(), 0, 8).try_into().unwrap());
    assert_eq!(count, 0, "maps start empty after a reboot");
    let maps = f.program(&d).await.get_maps().await.unwrap();
    let count = u64::from_ne_bytes(xdpd_tests::map_lookup(maps["packets"].as_fd(), 0, 8).try_into().unwrap());
    assert_eq!(count, 40, "or from the snapshot saved when the service stopped, when asked for");
    assert!(f.program(&b).await.name().await.is_err(), "the non-persistent program is gone");
}

fn ip_in(ns: &str, args: &[&str]) {
    let out = std::process::Command::new("ip").args(["-n", ns]).args(args).output().unwrap();
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interfaces_deleted_recreated_and_renamed() {
    let f = Fixture::new("ifcycle").await;
    let manager = xdpd_client::ManagerProxy::new(&f.conn).await.unwrap();
    ip_in(&f.pair.ns_b, &["link", "add", "xd0", "type", "veth", "peer", "name", "xd1"]);
    let path = loop {
        match manager.get_link_by_name("xd0").await {
            Ok(p) => break p,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let ifindex: u32 = path.as_str().rsplit('/').next().unwrap().parse().unwrap();
    let link = LinkProxy::builder(&f.conn)
        .path(path.clone())
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .unwrap();
    let generic = HashMap::from([("mode", Variant::from("generic"))]);
    let p = link.add_program_from_path(&object("basic"), "xdp_pass", generic).await.unwrap();
    let record = f.bus.dir.join(format!("state/links/{ifindex}.json"));
    assert!(record.exists());

    // Renamed: same object, same programs, the new name recorded.
    ip_in(&f.pair.ns_b, &["link", "set", "xd0", "name", "xe0"]);
    let start = Instant::now();
    while link.name().await.unwrap() != "xe0" {
        assert!(start.elapsed() < Duration::from_secs(5), "rename not followed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(link.programs().await.unwrap(), vec![p]);
    assert!(std::fs::read_to_string(&record).unwrap().contains("\"xe0\""));

    // Deleted: objects, pins and record go.
    ip_in(&f.pair.ns_b, &["link", "del", "xe0"]);
    let start = Instant::now();
    while manager.get_link_by_name("xe0").await.is_ok() {
        assert!(start.elapsed() < Duration::from_secs(5), "deletion not followed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!record.exists(), "record removed");
    assert!(!f.pins().join(ifindex.to_string()).exists(), "pins removed");

    // Re-created under the old name: a new interface, empty.
    ip_in(&f.pair.ns_b, &["link", "add", "xd0", "type", "veth", "peer", "name", "xd1"]);
    let path = loop {
        match manager.get_link_by_name("xd0").await {
            Ok(p) => break p,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let link = LinkProxy::builder(&f.conn)
        .path(path)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .unwrap();
    assert!(link.programs().await.unwrap().is_empty());
    ip_in(&f.pair.ns_b, &["link", "del", "xd0"]);
}

/// Stops the traffic thread however the test ends (a panic included).
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[test]
fn sigkill_at_random_points_loses_nothing() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let f = runtime.block_on(Fixture::new("sigkill"));
    let mut rng = xdpd_tests::Rng::seeded();
    let link = runtime.block_on(f.link());
    let dropper = runtime.block_on(link.add_program_from_path(&object("udp"), "udp_drop", opts(10))).unwrap();
    let counter = runtime.block_on(link.add_program_from_path(&object("udp"), "udp_count", opts(30))).unwrap();

    let (rx_drop, rx_count) = VethPair::run_in(&f.pair.ns_b, || (udp_receiver(9999), udp_receiver(9998)));
    let tx = VethPair::run_in(&f.pair.ns_a, || UdpSocket::bind("0.0.0.0:0").unwrap());
    let stop = AtomicBool::new(false);
    let sent = AtomicU64::new(0);
    // The counter's map, read through its pin (the service may be down).
    let counter_id = counter.as_str().rsplit('/').next().unwrap().to_string();
    let counted = |f: &Fixture| {
        let pin = f.pins().join(f.ifindex.to_string()).join("prog").join(&counter_id).join("packets");
        let fd = xdpd::kernel::bpf::obj_get(&std::ffi::CString::new(pin.to_str().unwrap()).unwrap()).unwrap();
        u64::from_ne_bytes(xdpd_tests::map_lookup(fd.as_fd(), 0, 8).try_into().unwrap())
    };

    let mut churn: Vec<(OwnedObjectPath, String)> = Vec::new();
    let mut last_count = 0;
    let mut kills = 0;
    let mut leaked = 0;
    std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                send_paced(&tx, SocketAddrV4::new(f.pair.addr_b, 9998), 16);
                send_paced(&tx, SocketAddrV4::new(f.pair.addr_b, 9999), 16);
                sent.fetch_add(16, Ordering::Relaxed);
            }
        });
        for op in 0..200 {
            // Now and then, kill the service at a random instant during the next operation.
            let killer = (rng.below(12) == 0).then(|| {
                let delay = Duration::from_micros(rng.below(20_000));
                let pid = f.bus.service_pid();
                s.spawn(move || {
                    std::thread::sleep(delay);
                    if let Some(pid) = pid {
                        // SAFETY: killing the service we started.
                        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                    }
                    pid
                })
            });
            let choice = rng.below(3);
            let result = runtime.block_on(async {
                match choice {
                    0 if churn.len() < 8 => {
                        let tag = format!("churn-{op}");
                        let o =
                            HashMap::from([("priority", Variant::from(20i32)), ("tag", Variant::from(tag.clone()))]);
                        link.add_program_from_path(&object("basic"), "xdp_pass", o).await.map(|p| churn.push((p, tag)))
                    }
                    1 if !churn.is_empty() => {
                        let i = rng.below(churn.len() as u64) as usize;
                        let (p, tag) = churn[i].clone();
                        let o = HashMap::from([
                            ("priority", Variant::from(20i32)),
                            ("tag", Variant::from(tag)),
                            ("replace", Variant::from(true)),
                        ]);
                        link.add_program_from_path(&object("basic"), "xdp_pass", o)
                            .await
                            .map(|np| churn[i].0 = np)
                            .map(|_| drop(p))
                    }
                    _ if !churn.is_empty() => {
                        let i = rng.below(churn.len() as u64) as usize;
                        let p = churn.remove(i).0;
                        ProgramProxy::builder(&f.conn).path(p).build().await?.remove().await
                    }
                    _ => Ok(()),
                }
            });
            if let Some(k) = killer {
                if let Some(pid) = k.join().unwrap() {
                    if f.bus.wait_service_gone(pid, Duration::from_secs(5)) {
                        kills += 1;
                    }
                }
            }
            if result.is_err() || kills > 0 {
                // After a crash the truth is the service's: take its list again.
                let programs = runtime.block_on(link.programs()).expect("the service comes back");
                assert!(
                    programs.contains(&dropper) && programs.contains(&counter),
                    "op {op}: fixed programs lost their ids"
                );
                churn.retain(|(p, _)| programs.contains(p));
                for p in programs.iter().filter(|p| **p != dropper && **p != counter) {
                    if !churn.iter().any(|(c, _)| c == p) {
                        let tag = runtime.block_on(async { f.program(p).await.tag().await.unwrap() });
                        churn.push((p.clone(), tag));
                    }
                }
            }
            let now = counted(&f);
            assert!(now >= last_count, "op {op}: the counter went backwards ({last_count} -> {now})");
            last_count = now;
            leaked += drain(&rx_drop);
        }
        stop.store(true, Ordering::Relaxed);
    });
    std::thread::sleep(Duration::from_millis(200));
    leaked += drain(&rx_drop);
    let _ = drain(&rx_count);
    assert_eq!(leaked, 0, "packets to the dropped port got through");
    assert_eq!(counted(&f), sent.load(Ordering::Relaxed), "the counter missed packets");
    eprintln!("{kills} kills in 200 operations");

    // A clean restart: the record, the pins and the objects match the chain, nothing more.
    f.bus.stop_service();
    let programs = runtime.block_on(link.programs()).unwrap();
    let ids: Vec<String> = programs.iter().map(|p| p.as_str().rsplit('/').next().unwrap().to_string()).collect();
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(f.bus.dir.join(format!("state/links/{}.json", f.ifindex))).unwrap())
            .unwrap();
    let recorded: Vec<String> = record["members"].as_array().unwrap().iter().map(|m| m["id"].to_string()).collect();
    assert_eq!(recorded, ids, "record and chain agree");
    let mut pinned: Vec<String> = std::fs::read_dir(f.pins().join(f.ifindex.to_string()).join("prog"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    pinned.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(pinned, expected, "no leaked pins");
    let shas: std::collections::HashSet<String> =
        record["members"].as_array().unwrap().iter().map(|m| format!("{}.o", m["sha256"].as_str().unwrap())).collect();
    let stored: std::collections::HashSet<String> = std::fs::read_dir(f.bus.dir.join("state/objects"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    assert_eq!(stored, shas, "no leaked objects");
}

fn max_entries(fd: std::os::fd::BorrowedFd<'_>) -> u32 {
    use std::os::fd::AsRawFd;
    let mut info = libbpf_sys::bpf_map_info::default();
    let mut len = std::mem::size_of::<libbpf_sys::bpf_map_info>() as u32;
    // SAFETY: a properly sized buffer.
    assert_eq!(unsafe { libbpf_sys::bpf_map_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) }, 0);
    info.max_entries
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_and_device_bound_programs_come_back_as_they_were_after_a_reboot() {
    let f = Fixture::new("reboot-config").await;
    let link = f.link().await;
    let globals = HashMap::from([
        ("enabled".to_string(), "true".to_string()),
        ("mode".to_string(), "2".to_string()),
        ("drop_port".to_string(), "9999".to_string()),
    ]);
    let mut configured = HashMap::from([
        ("persist", Variant::from(true)),
        ("priority", Variant::from(10)),
        ("globals", Variant::from(globals.clone())),
    ]);
    configured.insert("map-sizes", Variant::from(HashMap::from([("flows".to_string(), 512u32)])));
    let a = link.add_program_from_path(&object("skelconfig"), "configured", configured).await.unwrap();
    let hinted = HashMap::from([("persist", Variant::from(true)), ("priority", Variant::from(5))]);
    let h = link.add_program_from_path(&object("hints"), "rx_hash", hinted).await.unwrap();
    assert_eq!(f.traffic(9999, 10), 0, "configured to drop 9999");

    // Reboot: the service goes, the kernel forgets everything (links, pins).
    f.bus.stop_service();
    bpftool(&["link", "detach", "pinned", f.link_pin().to_str().unwrap()]);
    std::fs::remove_dir_all(f.pins()).unwrap();
    assert_eq!(f.attached().native, 0);

    // Loaded again from the record: configured as before, the hints program bound to the interface.
    assert_eq!(link.programs().await.unwrap(), vec![h.clone(), a.clone()]);
    assert_eq!(f.program(&a).await.globals().await.unwrap(), globals);
    assert_eq!(f.traffic(9999, 10), 0, "still configured to drop 9999");
    assert_eq!(f.traffic(9998, 10), 10);
    let maps = f.program(&a).await.get_maps().await.unwrap();
    assert_eq!(max_entries(maps["flows"].as_fd()), 512, "the map has its configured size again");
    let maps = f.program(&h).await.get_maps().await.unwrap();
    let bss = maps.iter().find(|(name, _)| name.ends_with(".bss")).map(|(_, fd)| fd).expect("a .bss map");
    let hashed = u64::from_ne_bytes(xdpd_tests::map_lookup(bss.as_fd(), 0, 24)[..8].try_into().unwrap());
    assert!(hashed >= 20, "the hints program reads the device's hashes again: {hashed}");
}
