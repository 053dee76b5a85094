//! Segmented chains: members that cannot share one verifier context (root's
//! privileged programs next to a user's, GPL next to unlicensed, more maps
//! than one program may use) run in segments joined by tail calls, checked
//! packet by packet with BPF_PROG_TEST_RUN (bpf/test/probe.h) and with real
//! traffic on a veth pair.

use std::net::{SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use xdpd::engine::object::{self, Privilege, DEFAULT_MAX_OBJECT_SIZE};
use xdpd::engine::{ActionSet, AddOptions, Chain, Error, LoadedProgram};
use xdpd::kernel::hook::attached;
use xdpd_tests::netns::{drain, send_paced, udp_receiver, VethPair};
use xdpd_tests::packet::{probe_packet, trace, DROP, PASS, TX};
use xdpd_tests::{load, map_u64, require_root, PinDir};

fn root(priority: i32) -> AddOptions {
    AddOptions { priority: Some(priority), ..Default::default() }
}

fn user(priority: i32) -> AddOptions {
    AddOptions { priority: Some(priority), privilege: Privilege::User, ..Default::default() }
}

/// A user's program: verified at intake as an unprivileged loader's, as the service does.
fn load_user(object_name: &str, function: &str) -> LoadedProgram {
    let bytes = xdpd_bpf::object_bytes(object_name);
    object::load_with(&bytes, Some(function), DEFAULT_MAX_OBJECT_SIZE, None, Privilege::User)
        .unwrap_or_else(|e| panic!("loading {object_name}:{function} as a user: {e}"))
}

fn probe(slot: u8) -> LoadedProgram {
    load("probe", &format!("probe{slot}"))
}

fn run(chain: &Chain, frame: &[u8]) -> (u32, Vec<u8>) {
    let out = chain.program().expect("chain is loaded").test_run(frame, 1).expect("BPF_PROG_TEST_RUN");
    (out.retval, out.data)
}

/// What must not change when a change fails.
fn state(chain: &Chain) -> (u64, Option<u32>, Vec<u64>) {
    (chain.generation(), chain.running_prog_id(), chain.members().iter().map(|m| m.id).collect())
}

fn privileges(chain: &Chain) -> Vec<Privilege> {
    chain.segments().iter().map(|s| s.plan.privilege).collect()
}

#[test]
fn roots_privileged_program_and_a_users_program_share_a_chain_in_both_orders() {
    require_root();
    let refused = object::load_with(
        &xdpd_bpf::object_bytes("segments"),
        Some("seg_priv"),
        DEFAULT_MAX_OBJECT_SIZE,
        None,
        Privilege::User,
    );
    assert!(matches!(refused, Err(Error::VerifierRejected { .. })), "seg_priv needs the privileged verifier");
    for (root_prio, user_prio) in [(10, 20), (20, 10)] {
        let mut chain = Chain::unattached();
        chain.add(load("segments", "seg_priv"), root(root_prio)).unwrap();
        chain.add(load_user("probe", "probe1"), user(user_prio)).unwrap();
        let expected = if root_prio < user_prio { [12, 1] } else { [1, 12] };
        let classes =
            if root_prio < user_prio { [Privilege::Full, Privilege::User] } else { [Privilege::User, Privilege::Full] };
        assert_eq!(privileges(&chain), classes);
        // Explain and dry runs report each segment against its own limits.
        let report = chain.report().expect("a running chain");
        let limits: Vec<usize> = report.segments.iter().map(|s| s.insn_limit).collect();
        let expected_limits = if root_prio < user_prio { [1_000_000, 4096] } else { [4096, 1_000_000] };
        assert_eq!(limits, expected_limits);
        assert!(report.segments.iter().all(|s| s.members.len() == 1 && s.verified_insns > 0));
        assert!(report.segments[0].maps >= 1, "the first segment uses the version's program array");
        let (verdict, out) = run(&chain, &probe_packet(&[(12, PASS), (1, PASS)]));
        assert_eq!((verdict, trace(&out)), (PASS as u32, expected.to_vec()), "both run, in priority order");
        let first = expected[0];
        let (verdict, out) = run(&chain, &probe_packet(&[(first, DROP)]));
        assert_eq!((verdict, trace(&out)), (DROP as u32, vec![first]), "a verdict ends the chain across segments");
        let (verdict, out) = run(&chain, &probe_packet(&[(12, PASS), (1, TX)]));
        let ran = if root_prio < user_prio { 2 } else { 1 };
        assert_eq!((verdict, trace(&out).len()), (TX as u32, ran), "TX is a verdict wherever it comes");
    }
}

#[test]
fn a_refusal_is_the_members_own_and_changes_nothing() {
    require_root();
    let mut chain = Chain::unattached();
    chain.add(load_user("probe", "probe1"), user(10)).unwrap();
    chain.add(load_user("probe", "probe2"), user(30)).unwrap();
    chain.add(probe(3), root(40)).unwrap();
    let before = state(&chain);
    // Handed over as a user's (as if intake had let it through): its own segment refuses it.
    let err = chain.add(load("segments", "seg_priv"), user(20)).unwrap_err();
    let Error::ChainRejected { member, log, member_id, .. } = &err else { panic!("{err}") };
    assert_eq!(member, "seg_priv", "{err}");
    assert!(member_id.is_some());
    assert!(log.contains("leaks addr"), "its own verifier log: {log}");
    assert!(!log.contains("probe1") && !log.contains("probe2"), "the log is not the other members'");
    assert_eq!(state(&chain), before, "nothing changed");
    let (verdict, out) = run(&chain, &probe_packet(&[]));
    assert_eq!((verdict, trace(&out)), (PASS as u32, vec![1, 2, 3]));

    // The same in a chain of one segment: cut around it, refused alone, with its own log.
    let mut users = Chain::unattached();
    users.add(load_user("probe", "probe1"), user(10)).unwrap();
    users.add(load_user("probe", "probe2"), user(30)).unwrap();
    assert_eq!(users.segments().len(), 1);
    let before = state(&users);
    let err = users.add(load("segments", "seg_priv"), user(20)).unwrap_err();
    assert!(
        matches!(&err, Error::ChainRejected { member, log, .. } if member == "seg_priv" && log.contains("leaks addr"))
    );
    assert_eq!(state(&users), before, "nothing changed");
    assert_eq!(users.segments().len(), 1, "still one program");
}

#[test]
fn a_gpl_member_calling_a_kfunc_and_an_unlicensed_member_share_a_chain_in_both_orders() {
    require_root();
    for (gpl_prio, other_prio) in [(10, 20), (20, 10)] {
        let mut chain = Chain::unattached();
        chain.add(load("segments", "seg_gpl"), root(gpl_prio)).unwrap();
        chain.add(load("unlicensed", "unlicensed"), root(other_prio)).unwrap();
        let gpl: Vec<bool> = chain.segments().iter().map(|s| s.plan.gpl).collect();
        assert_eq!(gpl, if gpl_prio < other_prio { [true, false] } else { [false, true] });
        let expected = if gpl_prio < other_prio { vec![13, 14] } else { vec![14, 13] };
        let (verdict, out) = run(&chain, &probe_packet(&[]));
        assert_eq!((verdict, trace(&out)), (PASS as u32, expected));
        // Joined by a third member the other way round, both still run.
        chain.add(load("unlicensed", "unlicensed"), root(5)).unwrap();
        assert_eq!(run(&chain, &probe_packet(&[])).1.len(), probe_packet(&[]).len());
        assert_eq!(trace(&run(&chain, &probe_packet(&[])).1).len(), 3);
    }
}

#[test]
fn a_users_sixty_four_map_program_and_roots_programs_share_a_chain() {
    require_root();
    let mut chain = Chain::unattached();
    chain.add(probe(0), root(10)).unwrap();
    chain.add(load("segments", "seg_priv"), root(20)).unwrap();
    chain.add(load_user("maps64", "maps64"), user(90)).unwrap();
    assert_eq!(chain.segments().len(), 2);
    assert_eq!(chain.segments()[1].plan.maps, 64);
    let (verdict, out) = run(&chain, &probe_packet(&[]));
    assert_eq!((verdict, trace(&out)), (PASS as u32, vec![0, 12, 15]));
    let big = chain.members().iter().find(|m| m.program.name == "maps64").unwrap();
    for i in [0, 31, 63] {
        assert_eq!(map_u64(&big.program, &format!("m{i}"), 0, 8), 1, "map m{i} counted the packet");
    }
    // Not the last any more, it would need a 65th map (the program array): refused by name.
    let before = state(&chain);
    let err = chain.add(probe(1), root(95)).unwrap_err();
    let Error::LimitExceeded(why) = &err else { panic!("{err}") };
    assert!(why.contains("'maps64'") && why.contains("uses 64 maps") && why.contains("at most 63"), "{why}");
    assert_eq!(state(&chain), before);
    // Counting (one more map in every segment) goes on; the program that
    // needs every map runs in its own segment without the counter table.
    chain.set_counting(true).unwrap();
    assert!(chain.counting());
    let segments = chain.segments();
    assert_eq!(segments.iter().map(|s| s.plan.uncounted).collect::<Vec<_>>(), [false, true]);
    run(&chain, &probe_packet(&[]));
    assert_eq!(stats(&chain, 0)[2], 1, "root's first program is counted");
    assert_eq!(stats(&chain, 2), [0; 6], "the 64-map program is not");
    let big = chain.members().iter().find(|m| m.program.name == "maps64").unwrap();
    assert_eq!(map_u64(&big.program, "m63", 0, 8), 2, "but it ran");
    // A change in root's segment leaves the uncounted one as it runs.
    let before = segment_ids(&chain);
    chain.add(probe(1), root(30)).unwrap();
    let after = segment_ids(&chain);
    assert_eq!((after[1], chain.segments()[1].plan.uncounted), (before[1], true));
    assert_ne!(after[0], before[0]);
    let (verdict, out) = run(&chain, &probe_packet(&[]));
    assert_eq!((verdict, trace(&out)), (PASS as u32, vec![0, 12, 1, 15]));
    assert_eq!((stats(&chain, 0)[2], stats(&chain, 2)[2], stats(&chain, 3)), (2, 1, [0; 6]));
}

/// Packets per verdict of member `i` (in run order).
fn stats(chain: &Chain, i: usize) -> [u64; 6] {
    chain.members()[i].stats().packets
}

#[test]
fn verdicts_and_counters_across_forced_boundaries() {
    require_root();
    for per_segment in [1, 3] {
        let mut chain = Chain::unattached().with_segment_members(per_segment);
        let on_pass_tx = ActionSet::from_names(&["pass", "tx"]).unwrap();
        for slot in 0..16u8 {
            let options = AddOptions { proceed_on: Some(on_pass_tx), ..root(slot as i32) };
            chain.add(probe(slot), options).unwrap();
        }
        chain.set_counting(true).unwrap();
        assert_eq!(chain.segments().len(), 16usize.div_ceil(per_segment));
        let (verdict, out) = run(&chain, &probe_packet(&[(4, TX)]));
        assert_eq!((verdict, trace(&out)), (PASS as u32, (0..16).collect::<Vec<u8>>()));
        let (verdict, out) = run(&chain, &probe_packet(&[(7, DROP)]));
        assert_eq!((verdict, trace(&out)), (DROP as u32, (0..=7).collect::<Vec<u8>>()));
        let pass = |n: u64| [0, 0, n, 0, 0, 0];
        assert_eq!(stats(&chain, 0), pass(2));
        assert_eq!(stats(&chain, 4), ([0, 0, 1, 1, 0, 0]), "TX counted, and proceeded");
        assert_eq!(stats(&chain, 7), ([0, 1, 1, 0, 0, 0]));
        assert_eq!(stats(&chain, 8), pass(1), "after the drop, member 8 did not run");
        assert_eq!(stats(&chain, 15), pass(1));
    }
}

#[test]
fn thirty_four_segments_at_most_then_limit_exceeded() {
    require_root();
    let mut chain = Chain::unattached().with_segment_members(1);
    for i in 0..34u8 {
        chain.add(probe(i % 16), root(i as i32)).unwrap();
    }
    assert_eq!(chain.segments().len(), 34);
    let (verdict, out) = run(&chain, &probe_packet(&[]));
    assert_eq!((verdict, trace(&out).len()), (PASS as u32, 16), "every segment ran (the trace keeps 16)");
    let (verdict, _) = run(&chain, &probe_packet(&[(1, DROP)]));
    assert_eq!(verdict, DROP as u32);
    let before = state(&chain);
    let err = chain.add(probe(2), root(100)).unwrap_err();
    let Error::LimitExceeded(why) = &err else { panic!("{err}") };
    assert!(why.contains("35 segments") && why.contains("33 tail calls") && why.contains("'probe2'"), "{why}");
    assert_eq!(state(&chain), before);
}

fn sender(pair: &VethPair) -> UdpSocket {
    VethPair::run_in(&pair.ns_a, || UdpSocket::bind("0.0.0.0:0").expect("bind sender"))
}

fn on_veth(name: &str, test: impl FnOnce(&VethPair, u32, &std::path::Path) + Send) {
    require_root();
    let pair = VethPair::new();
    let pins = PinDir::new(name);
    let ifindex = VethPair::ifindex(&pair.ns_b, &pair.dev_b);
    VethPair::run_in(&pair.ns_b, || test(&pair, ifindex, &pins.0));
}

/// Kernel id of the map pinned at `path`.
fn array_id(path: &std::path::Path) -> u32 {
    let fd = xdpd::kernel::bpf::obj_get(&xdpd::kernel::path_cstring(path).unwrap()).unwrap();
    xdpd::kernel::bpf::map_info(std::os::fd::AsFd::as_fd(&fd)).unwrap().id
}

fn count_of(chain: &Chain, function: &str, map: &str) -> u64 {
    let m = chain.members().iter().find(|m| m.program.name == function).expect("member");
    map_u64(&m.program, map, 0, 8)
}

#[test]
fn root_and_user_segments_count_every_packet_on_a_veth_and_outlive_their_owner() {
    on_veth("seg-veth", |pair, ifindex, pins| {
        for (root_prio, user_prio) in [(10, 20), (20, 10)] {
            let mut chain = Chain::for_interface(ifindex, pins);
            chain.add(load("udp", "udp_drop"), root(1)).unwrap();
            chain.add(load("segments", "seg_priv_count"), root(root_prio)).unwrap();
            chain.add(load_user("udp", "udp_count"), user(user_prio)).unwrap();
            assert!(chain.segments().len() >= 2);
            assert!(pins.join(ifindex.to_string()).join("segments").exists(), "the version's array is pinned");
            let (kept, dropped) = (udp_receiver(9998), udp_receiver(9999));
            let tx = sender(pair);
            send_paced(&tx, SocketAddrV4::new(pair.addr_b, 9998), 300);
            send_paced(&tx, SocketAddrV4::new(pair.addr_b, 9999), 300);
            std::thread::sleep(Duration::from_millis(200));
            assert_eq!(count_of(&chain, "seg_priv_count", "priv_packets"), 300, "root's segment ran");
            assert_eq!(count_of(&chain, "udp_count", "packets"), 300, "the user's segment ran");
            assert_eq!((drain(&kept), drain(&dropped)), (300, 0));
            // A refused change leaves the pins (and the pinned array) as they were.
            let pin_dir = pins.join(ifindex.to_string());
            let pinned = |dir: &std::path::Path| {
                let mut names: Vec<String> = std::fs::read_dir(dir)
                    .unwrap()
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect();
                names.sort();
                names
            };
            let (before, array) = (pinned(&pin_dir), array_id(&pin_dir.join("segments")));
            assert!(chain.add(load("segments", "seg_priv"), user(15)).is_err());
            assert_eq!((pinned(&pin_dir), array_id(&pin_dir.join("segments"))), (before, array));
            // The owner goes (as the service exits idle): the pinned link and array keep every segment running.
            let running = chain.running_prog_id();
            let last = chain.members().iter().find(|m| m.program.name == "udp_count").unwrap().program.clone();
            let first = chain.members().iter().find(|m| m.program.name == "seg_priv_count").unwrap().program.clone();
            drop(chain);
            send_paced(&tx, SocketAddrV4::new(pair.addr_b, 9998), 100);
            std::thread::sleep(Duration::from_millis(200));
            assert_eq!(map_u64(&last, "packets", 0, 8), 400, "the user's segment still runs without its owner");
            assert_eq!(map_u64(&first, "priv_packets", 0, 8), 400, "root's segment still runs without its owner");
            assert_eq!(drain(&kept), 100);
            let mut again = Chain::for_interface(ifindex, pins);
            assert_eq!(attached(ifindex).unwrap().ids().next(), running);
            again.clear().unwrap();
            assert!(!pins.join(ifindex.to_string()).join("segments").exists(), "unpinned with the chain");
        }
    });
}

#[test]
fn changes_that_move_members_between_segments_leak_nothing_and_miss_nothing() {
    on_veth("seg-churn", |pair, ifindex, pins| {
        let mut chain = Chain::for_interface(ifindex, pins).with_segment_members(3);
        chain.add(load("udp", "udp_drop"), root(0)).unwrap();
        for i in 0..12 {
            chain.add(load("basic", "xdp_pass"), root(10 + i * 10)).unwrap();
        }
        chain.add(load_user("udp", "udp_count"), user(1000)).unwrap();
        let (kept, dropped) = (udp_receiver(9998), udp_receiver(9999));
        let tx = sender(pair);
        let stop = AtomicBool::new(false);
        let sent = AtomicU64::new(0);
        let (mut received, mut leaked) = (0, 0);
        let mut segment_counts = std::collections::BTreeSet::new();
        std::thread::scope(|s| {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    send_paced(&tx, SocketAddrV4::new(pair.addr_b, 9998), 16);
                    send_paced(&tx, SocketAddrV4::new(pair.addr_b, 9999), 16);
                    sent.fetch_add(16, Ordering::Relaxed);
                }
            });
            for change in 0..250 {
                // A member joins at a moving place and leaves: every member after it changes
                // segment (root's 14 in segments of 3, the user's counter in its own).
                let at = 5 + (change * 37) % 120;
                let other = chain.add(load("basic", "xdp_pass"), root(at)).unwrap();
                segment_counts.insert(chain.segments().len());
                chain.remove(other).unwrap();
                received += drain(&kept);
                leaked += drain(&dropped);
            }
            stop.store(true, Ordering::Relaxed);
        });
        std::thread::sleep(Duration::from_millis(200));
        received += drain(&kept);
        leaked += drain(&dropped);
        let sent = sent.load(Ordering::Relaxed);
        assert!(sent > 1000, "traffic flowed during the changes ({sent} packets per port)");
        assert!(segment_counts.len() == 1 && segment_counts.contains(&6), "{segment_counts:?}");
        assert_eq!(leaked, 0, "packets the dropping member (first segment) should have dropped got through");
        assert_eq!(count_of(&chain, "udp_count", "packets"), sent, "the counting member (last segment) missed packets");
        assert_eq!(received, sent, "the receiver missed packets");
        chain.clear().unwrap();
    });
}

/// A 64-byte Ethernet/IPv4/UDP frame to `port`.
fn udp_frame(port: u16) -> Vec<u8> {
    let mut p = vec![0u8; 64];
    p[12..14].copy_from_slice(&[0x08, 0x00]);
    p[14] = 0x45;
    p[16..18].copy_from_slice(&50u16.to_be_bytes());
    p[22] = 64;
    p[23] = 17;
    p[26..30].copy_from_slice(&[10, 0, 0, 1]);
    p[30..34].copy_from_slice(&[10, 0, 0, 2]);
    p[34..36].copy_from_slice(&1234u16.to_be_bytes());
    p[36..38].copy_from_slice(&port.to_be_bytes());
    p[38..40].copy_from_slice(&30u16.to_be_bytes());
    p
}

/// The count of `port` in a realistic member's hash map.
fn port_count(program: &LoadedProgram, port: u16) -> u64 {
    let map = program.map("port_counts").expect("port_counts");
    let key = (port as u32).to_ne_bytes();
    let entries = xdpd::kernel::bpf::map_entries(std::os::fd::AsFd::as_fd(&map.fd), 4, 8);
    entries.iter().find(|(k, _)| k[..] == key[..]).map_or(0, |(_, v)| u64::from_ne_bytes(v[..8].try_into().unwrap()))
}

#[test]
fn five_hundred_realistic_members_each_with_its_own_map() {
    require_root();
    let bytes = xdpd_bpf::object_bytes("bench");
    let mut chain = Chain::unattached();
    chain.set_counting(true).unwrap();
    let mut added = Vec::new();
    for i in 0..500 {
        let program = object::load(&bytes, Some("realistic"), DEFAULT_MAX_OBJECT_SIZE).unwrap();
        let map = program.map("port_counts").unwrap();
        for port in [9u32, 9999] {
            xdpd::kernel::bpf::map_update(std::os::fd::AsFd::as_fd(&map.fd), &port.to_ne_bytes(), &0u64.to_ne_bytes())
                .unwrap();
        }
        added.push((program, root(i * 2), None));
    }
    // One change: linked and verified once.
    chain.change(&[], added, &AddOptions::default()).unwrap();
    // In the middle, a member that drops UDP to 9999.
    chain.add(load("udp", "udp_drop"), root(499)).unwrap();
    let segments = chain.segments();
    assert!(segments.len() >= 9 && segments.len() <= 34, "{} segments", segments.len());
    assert!(segments.iter().all(|s| s.plan.maps <= 62), "array and counter table fit beside every segment's maps");
    let sizes: usize = segments.iter().map(|s| s.members.len()).sum();
    assert_eq!(sizes, 501, "every member in exactly one segment");
    for _ in 0..3 {
        assert_eq!(run(&chain, &udp_frame(9)).0, PASS as u32);
    }
    assert_eq!(run(&chain, &udp_frame(9999)).0, DROP as u32);
    let members = chain.members();
    for (i, m) in members.iter().enumerate() {
        if m.program.name == "udp_drop" {
            assert_eq!(m.stats().packets, [0, 1, 3, 0, 0, 0], "the dropping member's verdicts");
            continue;
        }
        let before_drop = i < 250;
        assert_eq!(port_count(&m.program, 9), 3, "member {i} saw every packet to 9");
        assert_eq!(port_count(&m.program, 9999), u64::from(before_drop), "member {i} and the packet to 9999");
        assert_eq!(m.stats().packets, [0, 0, 3 + u64::from(before_drop), 0, 0, 0], "member {i}'s counters");
    }
}

/// Kernel ids of the running chain's segments, in run order.
fn segment_ids(chain: &Chain) -> Vec<u32> {
    chain.segments().iter().map(|s| s.prog_id).collect()
}

/// Root's probe1, a user's probe2, root's probe3: three segments (privilege classes), counting.
fn three_segments() -> Chain {
    let mut chain = Chain::unattached();
    chain.set_counting(true).unwrap();
    chain.add(probe(1), root(10)).unwrap();
    chain.add(load_user("probe", "probe2"), user(20)).unwrap();
    chain.add(probe(3), root(30)).unwrap();
    assert_eq!(privileges(&chain), [Privilege::Full, Privilege::User, Privilege::Full]);
    chain
}

const fn pass(n: u64) -> [u64; 6] {
    [0, 0, n, 0, 0, 0]
}

#[test]
fn a_change_in_one_segment_links_and_verifies_only_that_segment() {
    require_root();
    let mut chain = three_segments();
    let (verdict, out) = run(&chain, &probe_packet(&[]));
    assert_eq!((verdict, trace(&out)), (PASS as u32, vec![1, 2, 3]));
    let before = segment_ids(&chain);

    // A user's program joins the user's segment (the middle one): only it is linked again.
    let added = chain.add(load_user("probe", "probe4"), user(25)).unwrap();
    let after = segment_ids(&chain);
    assert_eq!((after.len(), after[0], after[2]), (3, before[0], before[2]), "the other segments run as they ran");
    assert_ne!(after[1], before[1], "the touched segment is a new program");
    assert_eq!(chain.running_prog_id(), Some(before[0]), "the hook runs the same first segment");
    let ranges: Vec<_> = chain.segments().iter().map(|s| s.plan.members.clone()).collect();
    assert_eq!(ranges, [0..1, 1..3, 3..4]);
    assert_eq!(chain.segments()[1].members, [chain.members()[1].id, added]);
    let report = chain.report().expect("running");
    assert_eq!(report.segments.iter().map(|s| s.members.len()).collect::<Vec<_>>(), [1, 2, 1]);
    let linking: Vec<&str> = report.members.iter().map(|m| m.linking.as_str()).collect();
    assert!(linking[0] == "inline" && linking[3] == "inline" && linking[2] == linking[1], "{linking:?}");
    let (verdict, out) = run(&chain, &probe_packet(&[]));
    assert_eq!((verdict, trace(&out)), (PASS as u32, vec![1, 2, 4, 3]));
    let (verdict, out) = run(&chain, &probe_packet(&[(4, DROP)]));
    assert_eq!((verdict, trace(&out)), (DROP as u32, vec![1, 2, 4]), "its verdict ends the chain");
    assert_eq!(stats(&chain, 0), pass(3), "counts go on across the change");
    assert_eq!(stats(&chain, 2), [0, 1, 1, 0, 0, 0], "the new member is counted in its segment");
    assert_eq!(stats(&chain, 3), pass(2), "the segment after it still runs and counts");

    // Its removal touches the same segment only.
    chain.remove(added).unwrap();
    let removed = segment_ids(&chain);
    assert_eq!((removed[0], removed[2]), (before[0], before[2]));
    assert!(removed[1] != before[1] && removed[1] != after[1]);
    let (verdict, out) = run(&chain, &probe_packet(&[]));
    assert_eq!((verdict, trace(&out)), (PASS as u32, vec![1, 2, 3]));
    assert_eq!((stats(&chain, 1), stats(&chain, 2)), (pass(4), pass(3)));

    // The first segment: swapped onto the hook alone, the others stay.
    chain.add(probe(0), root(5)).unwrap();
    let first = segment_ids(&chain);
    assert_eq!(&first[1..], &removed[1..]);
    assert_ne!(first[0], removed[0]);
    assert_eq!(chain.running_prog_id(), Some(first[0]), "the new first segment runs");
    // The last one.
    chain.add(probe(5), root(40)).unwrap();
    let last = segment_ids(&chain);
    assert_eq!(&last[..2], &first[..2]);
    assert_ne!(last[2], first[2]);
    let (verdict, out) = run(&chain, &probe_packet(&[(5, TX)]));
    assert_eq!((verdict, trace(&out)), (TX as u32, vec![0, 1, 2, 3, 5]));
    assert_eq!(stats(&chain, 4), [0, 0, 0, 1, 0, 0]);
    assert_eq!(stats(&chain, 3), pass(4));
}

#[test]
fn a_refused_or_ungated_change_of_one_segment_changes_nothing() {
    require_root();
    let mut chain = three_segments();
    let before = (state(&chain), segment_ids(&chain));
    // Refused in a segment of several members: cut around it, refused alone with its own log.
    let err = chain.add(load("segments", "seg_priv"), user(25)).unwrap_err();
    assert!(
        matches!(&err, Error::ChainRejected { member, log, .. } if member == "seg_priv" && log.contains("leaks addr")),
        "{err}"
    );
    assert_eq!((state(&chain), segment_ids(&chain)), before, "nothing changed");
    // Refused as the touched segment's only member.
    let users = chain.members()[1].id;
    let err = chain.replace(users, load("segments", "seg_priv"), user(20)).unwrap_err();
    assert!(matches!(&err, Error::ChainRejected { member, .. } if member == "seg_priv"), "{err}");
    assert_eq!((state(&chain), segment_ids(&chain)), before, "nothing changed");
    // Verified, but the gate (the durable record) refuses it: not put in.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
    let sink = seen.clone();
    chain.gate_next_change(Box::new(move |p| {
        *sink.lock().unwrap() = Some((p.program_id, p.members.len()));
        Err(Error::NotDurable("the test's gate refuses".into()))
    }));
    let err = chain.add(load_user("probe", "probe4"), user(25)).unwrap_err();
    assert!(matches!(err, Error::NotDurable(_)), "{err}");
    let (program_id, members) = seen.lock().unwrap().expect("the gate saw the change");
    assert_eq!(members, 4);
    assert!(program_id != 0 && !before.1.contains(&program_id), "the gate is shown the new segment's id");
    assert_eq!((state(&chain), segment_ids(&chain)), before, "nothing changed");
    let (verdict, out) = run(&chain, &probe_packet(&[]));
    assert_eq!((verdict, trace(&out)), (PASS as u32, vec![1, 2, 3]), "the running array was not touched");
    assert_eq!(stats(&chain, 2), pass(1));
}

#[test]
fn changes_of_several_segments_or_of_the_plan_link_every_segment_again() {
    require_root();
    let mut chain = three_segments();
    let fresh = |before: &[u32], after: &[u32]| after.iter().all(|id| !before.contains(id));
    // Two segments at once.
    let before = segment_ids(&chain);
    let both = vec![(probe(0), root(5), None), (probe(4), root(40), None)];
    chain.change(&[], both, &AddOptions::default()).unwrap();
    assert_eq!(chain.segments().len(), 3);
    assert!(fresh(&before, &segment_ids(&chain)), "{before:?} {:?}", segment_ids(&chain));
    let (verdict, out) = run(&chain, &probe_packet(&[]));
    assert_eq!((verdict, trace(&out)), (PASS as u32, vec![0, 1, 2, 3, 4]));
    // A segment more.
    let before = segment_ids(&chain);
    let extra = chain.add(load_user("probe", "probe5"), user(50)).unwrap();
    assert_eq!(chain.segments().len(), 4);
    assert!(fresh(&before, &segment_ids(&chain)));
    let (verdict, out) = run(&chain, &probe_packet(&[]));
    assert_eq!((verdict, trace(&out)), (PASS as u32, vec![0, 1, 2, 3, 4, 5]));
    // A segment less, and back to one program.
    let before = segment_ids(&chain);
    chain.remove(extra).unwrap();
    assert!(fresh(&before, &segment_ids(&chain)));
    let users = chain.members()[2].id;
    chain.remove(users).unwrap();
    assert_eq!(chain.segments().len(), 1);
    assert!(chain.program().expect("running").array().is_none(), "one program, no array");
    let (verdict, out) = run(&chain, &probe_packet(&[]));
    assert_eq!((verdict, trace(&out)), (PASS as u32, vec![0, 1, 3, 4]));
    assert_eq!((stats(&chain, 0), stats(&chain, 3)), (pass(3), pass(3)), "counts go on across every change");
}

#[test]
fn one_segment_changes_under_traffic_leak_nothing_and_miss_nothing() {
    on_veth("seg-one", |pair, ifindex, pins| {
        let mut chain = Chain::for_interface(ifindex, pins);
        chain.add(load("udp", "udp_drop"), root(0)).unwrap();
        chain.add(load("basic", "xdp_pass"), root(10)).unwrap();
        chain.add(load_user("udp", "udp_count"), user(1000)).unwrap();
        assert_eq!(chain.segments().len(), 2);
        let (kept, dropped) = (udp_receiver(9998), udp_receiver(9999));
        let tx = sender(pair);
        let stop = AtomicBool::new(false);
        let sent = AtomicU64::new(0);
        let (mut received, mut leaked, mut hook_swaps) = (0, 0, 0);
        std::thread::scope(|s| {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    send_paced(&tx, SocketAddrV4::new(pair.addr_b, 9998), 16);
                    send_paced(&tx, SocketAddrV4::new(pair.addr_b, 9999), 16);
                    sent.fetch_add(16, Ordering::Relaxed);
                }
            });
            for change in 0..100 {
                let before = segment_ids(&chain);
                // Even changes: a user's program joins the last segment (its slot of the
                // running array); odd ones: root's joins the first (a hook swap of it alone).
                let (program, options, touched) = if change % 2 == 0 {
                    (load_user("basic", "xdp_pass"), user(500 + change), 1)
                } else {
                    (load("basic", "xdp_pass"), root(5), 0)
                };
                let other = chain.add(program, options).unwrap();
                let after = segment_ids(&chain);
                assert_eq!(after[1 - touched], before[1 - touched], "change {change}: the other segment stays");
                assert_ne!(after[touched], before[touched]);
                hook_swaps += usize::from(touched == 0);
                assert_eq!(attached(ifindex).unwrap().ids().next(), Some(after[0]), "the hook runs the first segment");
                chain.remove(other).unwrap();
                received += drain(&kept);
                leaked += drain(&dropped);
            }
            stop.store(true, Ordering::Relaxed);
        });
        std::thread::sleep(Duration::from_millis(200));
        received += drain(&kept);
        leaked += drain(&dropped);
        let sent = sent.load(Ordering::Relaxed);
        assert!(sent > 500 && hook_swaps == 50, "traffic flowed during the changes ({sent} packets per port)");
        assert_eq!(leaked, 0, "packets the dropping member (first segment) should have dropped got through");
        assert_eq!(count_of(&chain, "udp_count", "packets"), sent, "the counting member (last segment) missed packets");
        assert_eq!(received, sent, "the receiver missed packets");
        assert_eq!(chain.segments().len(), 2);
        chain.clear().unwrap();
    });
}

#[test]
fn katrans_balancer_runs_in_a_segment_of_its_own_and_its_neighbours_changes_do_not_verify_it() {
    require_root();
    let balancer = xdpd_tests::compat::CASES.iter().find(|c| c.function == "balancer_ingress").unwrap();
    let mut chain = Chain::unattached();
    chain.set_counting(true).unwrap();
    chain.add(probe(1), root(1)).unwrap();
    chain.add(xdpd_tests::compat::load(balancer).unwrap(), root(10)).unwrap();
    chain.add(probe(3), root(20)).unwrap();
    let members: Vec<usize> = chain.segments().iter().map(|s| s.members.len()).collect();
    assert_eq!(members, [1, 1, 1], "the balancer (over 2,048 instructions) runs alone");
    let seg = &chain.segments()[1];
    let katran = (seg.prog_id, seg.verified_insns, seg.verify_time);
    assert!(katran.1 > 50_000, "{}", katran.1);
    let balancer_segment = |chain: &Chain| {
        let s = &chain.segments()[1];
        (s.prog_id, s.verified_insns, s.verify_time)
    };
    let expected = run(&chain, &probe_packet(&[]));
    assert_eq!(trace(&expected.1), [1, 3], "a probe frame passes the balancer");
    for (slot, priority, touched) in [(2, 5, 0), (4, 30, 2)] {
        let before = segment_ids(&chain);
        let id = chain.add(probe(slot), root(priority)).unwrap();
        assert_eq!(balancer_segment(&chain), katran, "the balancer's segment was not linked again");
        assert_ne!(segment_ids(&chain)[touched], before[touched]);
        chain.remove(id).unwrap();
        assert_eq!(balancer_segment(&chain), katran);
        assert_eq!(run(&chain, &probe_packet(&[])), expected);
    }
    assert_eq!(stats(&chain, 2), pass(3), "counted across every change");
}
