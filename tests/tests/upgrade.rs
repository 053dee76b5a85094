//! Changes without surprises (issue #20): a replacement carries the replaced
//! program's maps over, so an upgraded block list keeps blocking through the
//! swap; maps that cannot be carried over are refused by name and change
//! nothing; fresh-maps starts empty.

use std::collections::HashMap;
use std::net::SocketAddrV4;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use xdpd_tests::netns::{drain, send_paced};
use xdpd_tests::service::Service as Fixture;
use zbus::{OwnedObjectPath, Variant};

type Options = HashMap<&'static str, Variant<'static>>;

fn object(name: &str) -> String {
    xdpd_bpf::object_path(name).display().to_string()
}

fn tagged(tag: &str, replace: bool) -> Options {
    let mut o = HashMap::from([("tag", Variant::from(tag.to_string()))]);
    if replace {
        o.insert("replace", Variant::from(true));
    }
    o
}

fn fresh(mut o: Options) -> Options {
    o.insert("fresh-maps", Variant::from(true));
    o
}

/// The name and message of a refused call.
fn refusal(e: &zbus::Error) -> (String, String) {
    match e {
        zbus::Error::MethodError(name, message, _) => (name.to_string(), message.clone().unwrap_or_default()),
        zbus::Error::FDO(e) => (zbus::DBusError::name(&**e).to_string(), e.to_string()),
        other => (format!("{other}"), String::new()),
    }
}

/// The blocklist key of `addr`/32.
fn host_key(addr: std::net::Ipv4Addr) -> Vec<u8> {
    let mut key = 32u32.to_ne_bytes().to_vec();
    key.extend(addr.octets());
    key
}

fn block(fd: BorrowedFd<'_>, key: &[u8]) {
    let zero = 0u64.to_ne_bytes();
    // SAFETY: key and value have the blocklist's key (8) and value (8) sizes.
    let ret = unsafe { libbpf_sys::bpf_map_update_elem(fd.as_raw_fd(), key.as_ptr().cast(), zero.as_ptr().cast(), 0) };
    assert_eq!(ret, 0, "blocklist update: {}", std::io::Error::last_os_error());
}

/// The u64 value of `key` in the map `fd`; None when absent.
fn value(fd: BorrowedFd<'_>, key: &[u8]) -> Option<u64> {
    let mut value = [0u8; 8];
    // SAFETY: key has the map's key size, value its 8-byte value size.
    let ret =
        unsafe { libbpf_sys::bpf_map_lookup_elem(fd.as_raw_fd(), key.as_ptr().cast(), value.as_mut_ptr().cast()) };
    (ret == 0).then(|| u64::from_ne_bytes(value))
}

async fn maps(f: &Fixture, program: &OwnedObjectPath) -> HashMap<String, zbus::OwnedFd> {
    f.program(program).await.get_maps().await.expect("GetMaps")
}

/// Everything a refused change must leave as it was.
#[derive(Debug, PartialEq)]
struct Observed {
    generation: u64,
    kernel_program: u32,
    programs: Vec<OwnedObjectPath>,
    record: Vec<u8>,
    attached: u32,
}

async fn observe(f: &Fixture) -> Observed {
    let link = f.link().await;
    let record = std::fs::read(f.bus.dir.join(format!("state/links/{}.json", f.ifindex))).unwrap_or_default();
    Observed {
        generation: link.generation().await.unwrap(),
        kernel_program: link.kernel_program_id().await.unwrap(),
        programs: link.programs().await.unwrap(),
        record,
        attached: f.attached().native,
    }
}

/// A block-list program with an entry is replaced by a new version, three
/// times, while the blocked host sends without pause: not one packet gets
/// through, during or after the swaps, and the entry's drop count (the same
/// kernel map all along) counts every packet sent. With fresh-maps the new
/// version starts with an empty list and the host's packets arrive, which
/// shows the traffic would have told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgraded_block_list_keeps_blocking_through_the_swap() {
    let f = Fixture::new("upgrade-keep").await;
    let link = f.link().await;
    const PORT: u16 = 9411;
    assert_eq!(f.traffic(PORT, 20), 20, "nothing blocks yet");
    let first = link.add_program_from_path(&object("ip_blocklist"), "", tagged("fw", false)).await.unwrap();
    let key = host_key(f.pair.addr_a);
    let blocklist = maps(&f, &first).await.remove("blocklist").expect("blocklist map");
    block(blocklist.as_fd(), &key);
    assert_eq!(f.traffic(PORT, 20), 0, "the entry blocks");
    let first_map_id = f.program(&first).await.map_ids().await.unwrap()["blocklist"];
    let dropped_before = value(blocklist.as_fd(), &key).unwrap_or_default();

    let (stop, sent) = (AtomicBool::new(false), AtomicU64::new(0));
    let (rx, tx) = (f.receiver(PORT), f.sender());
    let mut current = first.clone();
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                send_paced(&tx, SocketAddrV4::new(f.pair.addr_b, PORT), 16);
                sent.fetch_add(16, Ordering::Relaxed);
            }
        });
        let runtime = tokio::runtime::Handle::current();
        let swapped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            for version in ["blocklist_v2", "ip_blocklist", "blocklist_v2"] {
                std::thread::sleep(Duration::from_millis(100));
                let path = tokio::task::block_in_place(|| {
                    runtime.block_on(link.add_program_from_path(&object(version), "", tagged("fw", true)))
                });
                current = path.unwrap_or_else(|e| panic!("replace with {version}: {e}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }));
        stop.store(true, Ordering::Relaxed);
        if let Err(panic) = swapped {
            std::panic::resume_unwind(panic);
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(drain(&rx), 0, "packets from the blocked host got through during or after the swaps");
    drop(rx);
    let sent = sent.load(Ordering::Relaxed);
    assert!(sent > 0);
    let counted = value(blocklist.as_fd(), &key).unwrap_or_default().saturating_sub(dropped_before);
    assert_eq!(counted, sent, "the carried entry counted every packet sent");

    let program = f.program(&current).await;
    assert_eq!(program.carried_maps().await.unwrap(), vec!["blocklist".to_string()]);
    assert_eq!(program.map_ids().await.unwrap()["blocklist"], first_map_id, "the same kernel map");
    let now = maps(&f, &current).await;
    assert!(value(now["looked_up"].as_fd(), &0u32.to_ne_bytes()).is_some_and(|n| n > 0), "v2 runs");
    assert_eq!(f.traffic(PORT, 20), 0, "still blocked after the swaps");
    // The record says what was carried over: a restart shows it too.
    f.bus.stop_service();
    let program = f.program(&current).await;
    assert_eq!(program.carried_maps().await.unwrap(), vec!["blocklist".to_string()], "after a restart");
    assert_eq!(program.map_ids().await.unwrap()["blocklist"], first_map_id);
    assert_eq!(f.traffic(PORT, 20), 0, "and still blocked");

    // fresh-maps: the new version starts with an empty block list.
    let fresh_path = link.add_program_from_path(&object("blocklist_v2"), "", fresh(tagged("fw", true))).await.unwrap();
    let program = f.program(&fresh_path).await;
    assert!(program.carried_maps().await.unwrap().is_empty());
    assert_ne!(program.map_ids().await.unwrap()["blocklist"], first_map_id);
    assert_eq!(f.traffic(PORT, 20), 20, "an empty block list blocks nothing");
}

/// A replacement whose map of a carried name differs (another max_entries)
/// is refused with Conflict naming the map, and changes nothing: generation,
/// kernel program, record, programs, the map and its entry. fresh-maps
/// without replace is InvalidArgs; with replace the same object is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maps_that_cannot_be_carried_over_are_refused_by_name_and_change_nothing() {
    let f = Fixture::new("upgrade-refuse").await;
    let link = f.link().await;
    const PORT: u16 = 9412;
    let first = link.add_program_from_path(&object("ip_blocklist"), "", tagged("fw", false)).await.unwrap();
    let key = host_key(f.pair.addr_a);
    let blocklist = maps(&f, &first).await.remove("blocklist").expect("blocklist map");
    block(blocklist.as_fd(), &key);
    assert_eq!(f.traffic(PORT, 10), 0);
    let before = observe(&f).await;
    let map_ids = f.program(&first).await.map_ids().await.unwrap();

    let e = link.add_program_from_path(&object("blocklist_resized"), "", tagged("fw", true)).await.unwrap_err();
    let (name, message) = refusal(&e);
    assert_eq!(name, "org.xdp.Manager1.Error.Conflict", "{message}");
    assert!(message.contains("map 'blocklist'") && message.contains("max_entries"), "{message}");
    assert!(message.contains("4096") && message.contains("1024") && message.contains("fresh-maps"), "{message}");
    assert_eq!(observe(&f).await, before, "a refused replacement changed something");
    assert_eq!(f.program(&first).await.map_ids().await.unwrap(), map_ids);
    assert_eq!(value(blocklist.as_fd(), &key), Some(10), "the entry is untouched");
    assert_eq!(f.traffic(PORT, 10), 0, "and still blocks");

    let e = link.add_program_from_path(&object("blocklist_v2"), "", fresh(tagged("other", false))).await.unwrap_err();
    assert_eq!(refusal(&e).0, "org.freedesktop.DBus.Error.InvalidArgs", "fresh-maps needs replace");
    let e = link
        .add_program_from_path(&object("blocklist_v2"), "", HashMap::from([("fresh-maps", Variant::from(1u32))]))
        .await
        .unwrap_err();
    assert_eq!(refusal(&e).0, "org.freedesktop.DBus.Error.InvalidArgs", "fresh-maps is a boolean");
    assert_eq!(observe(&f).await, before);

    let resized =
        link.add_program_from_path(&object("blocklist_resized"), "", fresh(tagged("fw", true))).await.unwrap();
    assert!(f.program(&resized).await.carried_maps().await.unwrap().is_empty());
    assert_eq!(link.programs().await.unwrap(), vec![resized]);
    assert_eq!(f.traffic(PORT, 10), 10, "the new program's own block list is empty");
}

/// A dry run of a replacement (and of an add) answers with the chain it
/// would produce and changes nothing: generation, kernel program, record,
/// programs, the map and its entry, the stored objects. The real change then
/// shows, through Explain, the same members, placements and numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_changes_nothing_and_reports_what_the_change_then_shows() {
    let f = Fixture::new("upgrade-plan").await;
    let link = f.link().await;
    const PORT: u16 = 9413;
    let prio = |p: i32, mut o: Options| {
        o.insert("priority", Variant::from(p));
        o
    };
    link.add_program_from_path(&object("udp"), "udp_count", prio(5, tagged("count", false))).await.unwrap();
    let first = link.add_program_from_path(&object("ip_blocklist"), "", tagged("fw", false)).await.unwrap();
    let key = host_key(f.pair.addr_a);
    let blocklist = maps(&f, &first).await.remove("blocklist").expect("blocklist map");
    block(blocklist.as_fd(), &key);
    assert_eq!(f.traffic(PORT, 10), 0);
    let before = observe(&f).await;
    let objects = || std::fs::read_dir(f.bus.dir.join("state/objects")).map_or(0, |d| d.count());
    let stored = objects();
    let map_id = blocklist_id(&f, &first).await;

    let plan = link.plan_add_program_from_path(&object("blocklist_v2"), "", tagged("fw", true)).await.unwrap();
    assert_eq!(plan.generation, before.generation);
    let names: Vec<(&str, u64)> = plan.members.iter().map(|m| (m.name.as_str(), m.id)).collect();
    assert_eq!(names[0].0, "udp_count");
    assert_eq!(names[1], ("ip_blocklist", 0), "the new program, in the old one's place");
    assert_eq!(plan.members[1].carried_maps, vec!["blocklist".to_string()]);
    assert_eq!(plan.members[1].path.as_str(), "/");
    let [segment] = plan.segments.as_slice() else { panic!("one segment: {plan:?}") };
    assert!(segment.instructions > 0 && segment.instruction_limit == 1_000_000, "{segment:?}");
    assert!(segment.maps >= 3 && segment.maps <= segment.map_limit && segment.map_limit == 64, "{segment:?}");
    assert!(segment.verified_instructions > 0 && segment.verified_limit == 1_000_000, "{segment:?}");
    assert!(segment.verify_usec > 0, "{segment:?}");
    let added = link.plan_add_program_from_path(&object("proto_count"), "", tagged("c", false)).await.unwrap();
    assert_eq!(added.members.len(), 3, "{added:?}");
    assert_eq!(added.members.last().map(|m| m.name.as_str()), Some("proto_count"));

    assert_eq!(observe(&f).await, before, "a dry run changed something");
    assert_eq!(blocklist_id(&f, &first).await, map_id, "the same map");
    assert_eq!(value(blocklist.as_fd(), &key), Some(10), "the entry is untouched");
    assert_eq!(objects(), stored, "a dry run stores no object");
    assert_eq!(f.traffic(PORT, 10), 0, "the running chain still blocks");

    let replaced = link.add_program_from_path(&object("blocklist_v2"), "", tagged("fw", true)).await.unwrap();
    let shown = link.explain().await.unwrap();
    assert_eq!(shown.generation, before.generation + 1);
    let id = f.program(&replaced).await.id().await.unwrap();
    let with_id = |m: &xdpd_client::MemberReport| {
        let id = if m.id == 0 { id } else { m.id };
        (id, m.name.clone(), m.linking.clone(), m.priority, m.instructions, m.carried_maps.clone())
    };
    let planned: Vec<_> = plan.members.iter().map(with_id).collect();
    let real: Vec<_> = shown.members.iter().map(with_id).collect();
    assert_eq!(planned, real, "the dry run's members are the change's");
    let [real_segment] = shown.segments.as_slice() else { panic!("one segment: {shown:?}") };
    let numbers = |s: &xdpd_client::SegmentReport| {
        (s.instructions, s.instruction_limit, s.maps, s.map_limit, s.verified_instructions, s.verified_limit)
    };
    assert_eq!(numbers(segment), numbers(real_segment), "the dry run's numbers are the change's");
    assert_eq!(real_segment.members, vec![real[0].0, id]);
}

async fn blocklist_id(f: &Fixture, program: &OwnedObjectPath) -> u32 {
    f.program(program).await.map_ids().await.unwrap()["blocklist"]
}

/// A dry run of a change the service refuses gets the error the change gets
/// (maps that cannot be carried over, a program the verifier refuses, a
/// stale expected-generation), and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_dry_run_gets_the_changes_error_and_changes_nothing() {
    let f = Fixture::new("upgrade-plan-refused").await;
    let link = f.link().await;
    link.add_program_from_path(&object("ip_blocklist"), "", tagged("fw", false)).await.unwrap();
    let before = observe(&f).await;
    let stale = HashMap::from([("expected-generation", Variant::from(before.generation + 7))]);
    let cases: Vec<(&str, &str, Options)> = vec![
        ("blocklist_resized", "", tagged("fw", true)),
        ("unverifiable", "", tagged("bad", false)),
        ("basic", "xdp_pass", stale),
    ];
    for (name, function, options) in cases {
        let planned = link.plan_add_program_from_path(&object(name), function, options.clone()).await.unwrap_err();
        assert_eq!(observe(&f).await, before, "{name}: a refused dry run changed something");
        let real = link.add_program_from_path(&object(name), function, options).await.unwrap_err();
        let (planned, real) = (refusal(&planned), refusal(&real));
        assert_eq!(planned.0, real.0, "{name}: the dry run and the change are refused alike");
        assert_eq!(planned.1.lines().next(), real.1.lines().next(), "{name}");
        assert!(!planned.0.contains("InvalidArgs"), "{name}: {planned:?}");
        assert_eq!(observe(&f).await, before, "{name}: a refused change changed something");
    }
}
