//! The chain attached to a real interface: a veth pair between two network
//! namespaces, real UDP packets, and programs attached by someone else.

use std::net::{SocketAddrV4, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use xdpd::engine::{AddOptions, Chain, Error};
use xdpd::kernel::hook::attached;
use xdpd::kernel::hook::AttachMode;
use xdpd_tests::netns::{drain, send_paced, udp_receiver, VethPair};
use xdpd_tests::{load, map_u64, require_root, PinDir};

fn opts(priority: i32) -> AddOptions {
    AddOptions { priority: Some(priority), ..Default::default() }
}

fn counted(chain: &Chain) -> u64 {
    let m = chain.members().iter().find(|m| m.program.name == "udp_count").expect("counter member");
    map_u64(&m.program, "packets", 0, 8)
}

/// Sets up the pair, runs `test` inside the receiver's namespace with the
/// receiver's ifindex and a private pin directory; everything is removed after.
fn on_veth(name: &str, test: impl FnOnce(&VethPair, u32, &std::path::Path) + Send) {
    require_root();
    let pair = VethPair::new();
    let pins = PinDir::new(name);
    let ifindex = VethPair::ifindex(&pair.ns_b, &pair.dev_b);
    VethPair::run_in(&pair.ns_b, || test(&pair, ifindex, &pins.0));
}

fn sender(pair: &VethPair) -> UdpSocket {
    VethPair::run_in(&pair.ns_a, || UdpSocket::bind("0.0.0.0:0").expect("bind sender"))
}

#[test]
fn real_traffic_reaches_the_members_and_the_receiver() {
    on_veth("traffic", |pair, ifindex, pins| {
        let mut chain = Chain::for_interface(ifindex, pins);
        chain.add(load("udp", "udp_drop"), AddOptions { mode: Some(AttachMode::Native), ..opts(10) }).unwrap();
        chain.add(load("udp", "udp_count"), opts(20)).unwrap();
        let running = chain.program().unwrap().info.id;
        assert_eq!(attached(ifindex).unwrap().native, running, "attached natively");
        assert!(chain.hook().unwrap().pin_path().exists());

        let (kept, dropped) = (udp_receiver(9998), udp_receiver(9999));
        let tx = sender(pair);
        send_paced(&tx, SocketAddrV4::new(pair.addr_b, 9998), 500);
        send_paced(&tx, SocketAddrV4::new(pair.addr_b, 9999), 500);
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(counted(&chain), 500, "the counting member saw every packet to 9998");
        assert_eq!(drain(&kept), 500, "the receiver got every packet to 9998");
        assert_eq!(drain(&dropped), 0, "the dropping member let nothing to 9999 through");

        // The last removal detaches and unpins.
        let ids: Vec<_> = chain.members().iter().map(|m| m.id).collect();
        for id in ids {
            chain.remove(id).unwrap();
        }
        assert_eq!(attached(ifindex).unwrap().ids().count(), 0);
        assert!(!chain.hook().unwrap().pin_path().exists());
        std::thread::sleep(Duration::from_millis(50));
        send_paced(&tx, SocketAddrV4::new(pair.addr_b, 9999), 10);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(drain(&dropped), 10, "no chain: packets pass");
    });
}

#[test]
fn updates_under_traffic_leak_nothing_and_miss_nothing() {
    on_veth("churn", |pair, ifindex, pins| {
        let mut chain = Chain::for_interface(ifindex, pins);
        chain.add(load("udp", "udp_drop"), opts(10)).unwrap();
        chain.add(load("udp", "udp_count"), opts(30)).unwrap();
        let (kept, dropped) = (udp_receiver(9998), udp_receiver(9999));
        let tx = sender(pair);
        let stop = AtomicBool::new(false);
        let sent = AtomicU64::new(0);
        let (mut received, mut leaked) = (0, 0);
        std::thread::scope(|s| {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    send_paced(&tx, SocketAddrV4::new(pair.addr_b, 9998), 32);
                    send_paced(&tx, SocketAddrV4::new(pair.addr_b, 9999), 32);
                    sent.fetch_add(32, Ordering::Relaxed);
                }
            });
            for cycle in 0..100 {
                let other = chain.add(load("basic", "xdp_pass"), opts(20)).unwrap();
                chain.remove(other).unwrap();
                if cycle % 10 == 0 {
                    received += drain(&kept);
                    leaked += drain(&dropped);
                }
            }
            stop.store(true, Ordering::Relaxed);
        });
        std::thread::sleep(Duration::from_millis(200));
        received += drain(&kept);
        leaked += drain(&dropped);
        let sent = sent.load(Ordering::Relaxed);
        assert!(sent > 1000, "traffic flowed during the updates ({sent} packets per port)");
        assert_eq!(leaked, 0, "packets the dropping member should have dropped got through");
        assert_eq!(counted(&chain), sent, "the counting member missed packets");
        assert_eq!(received, sent, "the receiver missed packets");
        assert_eq!(chain.generation(), 202);
        chain.clear().unwrap();
    });
}

#[test]
fn a_failed_update_leaves_the_running_chain_alone() {
    on_veth("failed", |pair, ifindex, pins| {
        let mut chain = Chain::for_interface(ifindex, pins);
        chain.add(load("udp", "udp_count"), opts(10)).unwrap();
        let before = (chain.generation(), chain.program().unwrap().info.id, attached(ifindex).unwrap());

        // Alone it verifies; in this chain (no frags) its frags-owned program array cannot be used.
        let err = chain.add(load("tailcall_frags", "tail_entry_frags"), opts(5)).unwrap_err();
        assert!(matches!(err, Error::ChainRejected { .. }), "{err}");
        let err = chain
            .add(load("basic", "xdp_pass"), AddOptions { mode: Some(AttachMode::Generic), ..opts(5) })
            .unwrap_err();
        assert!(matches!(err, Error::Conflict(_)), "{err}");
        assert_eq!((chain.generation(), chain.program().unwrap().info.id, attached(ifindex).unwrap()), before);
        assert_eq!(chain.members().len(), 1);

        let kept = udp_receiver(9998);
        send_paced(&sender(pair), SocketAddrV4::new(pair.addr_b, 9998), 100);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!((counted(&chain), drain(&kept)), (100, 100), "the old chain still runs, with its count");
        chain.clear().unwrap();
    });
}

#[test]
fn generic_mode_and_a_restarted_owner_adopting_its_pinned_link() {
    on_veth("generic", |_pair, ifindex, pins| {
        let mut chain = Chain::for_interface(ifindex, pins);
        chain.add(load("basic", "xdp_pass"), AddOptions { mode: Some(AttachMode::Generic), ..opts(1) }).unwrap();
        let first = chain.program().unwrap().info.id;
        assert_eq!(attached(ifindex).unwrap().generic, first);
        drop(chain); // the link is pinned: the chain outlives its owner

        assert_eq!(attached(ifindex).unwrap().generic, first);
        let mut again = Chain::for_interface(ifindex, pins);
        assert!(again.hook().unwrap().is_attached(), "the pinned link is adopted");
        again.add(load("basic", "xdp_pass"), opts(2)).unwrap();
        let second = again.program().unwrap().info.id;
        assert_ne!(second, first);
        assert_eq!(attached(ifindex).unwrap().generic, second, "replaced, not attached twice");
        again.clear().unwrap();
        assert_eq!(attached(ifindex).unwrap().ids().count(), 0);
    });
}

fn attach_netlink(ifindex: u32, prog: std::os::fd::BorrowedFd<'_>) -> i32 {
    // SAFETY: plain libbpf call; XDP_FLAGS_DRV_MODE = 4.
    unsafe { libbpf_sys::bpf_xdp_attach(ifindex as i32, prog.as_raw_fd(), 4, std::ptr::null()) }
}

#[test]
fn a_foreign_program_is_refused_and_force_takes_over() {
    on_veth("foreign", |_pair, ifindex, pins| {
        let object =
            libbpf_rs::ObjectBuilder::default().open_file(xdpd_bpf::object_path("basic")).unwrap().load().unwrap();
        let prog = |name: &str| object.progs().find(|p| p.name() == name).unwrap();

        // Someone attached a program with plain netlink.
        assert_eq!(attach_netlink(ifindex, prog("xdp_drop").as_fd()), 0);
        let foreign_id = attached(ifindex).unwrap().native;
        let mut chain = Chain::for_interface(ifindex, pins);
        match chain.add(load("basic", "xdp_pass"), opts(1)).unwrap_err() {
            Error::Busy(f) => {
                assert_eq!((f.prog_id, f.name.as_str(), f.link_id), (foreign_id, "xdp_drop", None));
                assert!(f.to_string().contains("'xdp_drop'") && f.to_string().contains("force"), "{f}");
            }
            other => panic!("expected Busy, got {other}"),
        }
        assert_eq!(attached(ifindex).unwrap().native, foreign_id, "the foreign program was not touched");
        assert!(chain.members().is_empty() && !chain.hook().unwrap().pin_path().exists());

        chain.add(load("basic", "xdp_pass"), AddOptions { force: true, ..opts(1) }).unwrap();
        let ours = chain.program().unwrap().info.id;
        assert_eq!(attached(ifindex).unwrap().native, ours);
        // While xdpd's link holds the hook, netlink attaches fail.
        assert_eq!(attach_netlink(ifindex, prog("xdp_drop").as_fd()), -libc::EBUSY);
        chain.clear().unwrap();

        // libxdp's dispatcher, held by a bpf_link of its own.
        // SAFETY: plain libbpf call; the link descriptor becomes ours.
        let link = unsafe {
            let fd = libbpf_sys::bpf_link_create(
                prog("xdp_dispatcher").as_fd().as_raw_fd(),
                ifindex as i32,
                libbpf_sys::BPF_XDP,
                std::ptr::null(),
            );
            assert!(fd >= 0, "bpf_link_create: {fd}");
            <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd)
        };
        match chain.add(load("basic", "xdp_pass"), opts(1)).unwrap_err() {
            Error::Busy(f) => {
                assert!(f.is_libxdp_dispatcher() && f.link_id.is_some(), "{f}");
                assert!(f.to_string().contains("libxdp"), "{f}");
            }
            other => panic!("expected Busy, got {other}"),
        }
        chain.add(load("basic", "xdp_pass"), AddOptions { force: true, ..opts(1) }).unwrap();
        assert_eq!(attached(ifindex).unwrap().native, chain.program().unwrap().info.id);
        chain.clear().unwrap();
        drop(link);
        assert_eq!(attached(ifindex).unwrap().ids().count(), 0);
    });
}

fn load_for(object: &str, function: &str, ifindex: Option<u32>) -> Result<xdpd::engine::LoadedProgram, Error> {
    use xdpd::engine::object::{load_opts, LoadOptions, DEFAULT_MAX_OBJECT_SIZE};
    let bytes = xdpd_bpf::object_bytes(object);
    load_opts(
        &bytes,
        &LoadOptions { function: Some(function), max_size: DEFAULT_MAX_OBJECT_SIZE, ifindex, ..Default::default() },
    )
}

#[test]
fn xdp_hints_members_read_the_devices_metadata_under_real_traffic() {
    on_veth("hints", |pair, ifindex, pins| {
        // Without a device, a program that calls the metadata kfuncs cannot load.
        let err = load_for("hints", "rx_hash", None).unwrap_err();
        assert!(err.to_string().contains("bpf_xdp_metadata_rx_hash (XDP hints)"), "{err}");
        let hints = load_for("hints", "rx_hash", Some(ifindex)).unwrap();
        assert_eq!(hints.dev_bound, Some(ifindex));

        // Generic mode cannot run a device-bound chain: refused before anything changes.
        let mut generic = Chain::for_interface(ifindex, pins);
        let refused = generic.add(hints, AddOptions { mode: Some(AttachMode::Generic), ..opts(5) }).unwrap_err();
        assert!(refused.to_string().contains("in generic mode"), "{refused}");
        assert_eq!(attached(ifindex).unwrap().ids().count(), 0);

        // Natively, between other members, the chain is bound to the device and the member reads its hashes.
        let mut chain = Chain::for_interface(ifindex, pins);
        chain.add(load("udp", "udp_drop"), AddOptions { mode: Some(AttachMode::Native), ..opts(10) }).unwrap();
        let id = chain.add(load_for("hints", "rx_hash", Some(ifindex)).unwrap(), opts(5)).unwrap();
        chain.add(load("udp", "udp_count"), opts(20)).unwrap();
        assert_eq!(attached(ifindex).unwrap().native, chain.program().unwrap().info.id);
        let (kept, dropped) = (udp_receiver(9998), udp_receiver(9999));
        let tx = sender(pair);
        send_paced(&tx, SocketAddrV4::new(pair.addr_b, 9998), 200);
        send_paced(&tx, SocketAddrV4::new(pair.addr_b, 9999), 100);
        std::thread::sleep(Duration::from_millis(200));
        let member = &chain.member(id).unwrap().program;
        let (hashed, unhashed) = (map_u64(member, ".bss", 0, 24), map_u64(member, ".bss", 8, 24));
        assert!(hashed >= 300, "veth gave a receive hash for every UDP packet: {hashed} hashed, {unhashed} not");
        assert_eq!((counted(&chain), drain(&kept), drain(&dropped)), (200, 200, 0), "the other members still work");

        // Removing the hints member relinks without the device binding.
        chain.remove(id).unwrap();
        send_paced(&tx, SocketAddrV4::new(pair.addr_b, 9998), 50);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(drain(&kept), 50);
        let ids: Vec<_> = chain.members().iter().map(|m| m.id).collect();
        for id in ids {
            chain.remove(id).unwrap();
        }
    });
}

/// Counting is on for an interface's chain; its counts are exact under real
/// traffic and BPF_PROG_TEST_RUN, and a restarted owner that adopts the
/// running program (no relink) takes the pinned counter table back: the
/// counts go on from where they were, across a relink too.
#[test]
fn verdict_counts_are_exact_and_survive_a_restarted_owner() {
    use xdpd::engine::{CounterResume, RestoredMember};
    on_veth("counts", |pair, ifindex, pins| {
        let mut chain = Chain::for_interface(ifindex, pins);
        assert!(chain.counting(), "on by default");
        let drop_id = chain.add(load("udp", "udp_drop"), opts(1)).unwrap();
        let tx = sender(pair);
        send_paced(&tx, SocketAddrV4::new(pair.addr_b, 9999), 40);
        std::thread::sleep(Duration::from_millis(100));
        let drops = |chain: &Chain| chain.member(drop_id).unwrap().stats();
        assert_eq!(drops(&chain).packets[1], 40);
        assert_eq!(drops(&chain).bytes[1], 40 * 50, "40 frames of 50 bytes");

        // The owner goes away; the chain runs on and counts on.
        let running = chain.running_prog_id().unwrap();
        let slot = chain.member(drop_id).unwrap().counters().unwrap().slot();
        let generation = chain.generation();
        drop(chain);
        send_paced(&tx, SocketAddrV4::new(pair.addr_b, 9999), 10);
        std::thread::sleep(Duration::from_millis(100));

        let restored = RestoredMember {
            id: drop_id,
            program: load("udp", "udp_drop"),
            priority: 1,
            proceed_on: xdpd::engine::ActionSet::of(&[xdpd::engine::Action::Pass]),
            tag: String::new(),
            seq: 1,
            privilege: Default::default(),
        };
        let resume = CounterResume { counting: true, slots: vec![(drop_id, slot)], ..Default::default() };
        let mut again = Chain::restore_counting(
            xdpd::engine::At { netns: None, ifindex, bpffs_dir: pins },
            vec![restored],
            generation,
            running,
            &resume,
        )
        .unwrap();
        assert_eq!(again.running_prog_id(), Some(running), "adopted, not relinked");
        assert!(again.counting());
        assert_eq!(drops(&again).packets[1], 50, "the packets sent while nobody was home are counted");
        // BPF_PROG_TEST_RUN on the adopted program counts in the same table.
        let fd = xdpd::kernel::bpf::prog_fd_by_id(running).unwrap();
        let frame = xdpd_tests::packet::probe_packet(&[]);
        let before = drops(&again).packets[2];
        xdpd::kernel::bpf::test_run(fd.as_fd(), &frame, 1000).unwrap();
        // (The interface may pass a stray packet of its own meanwhile, e.g. IPv6 neighbour discovery.)
        let passed = drops(&again).packets[2] - before;
        assert!((1000..1010).contains(&passed), "{passed}");

        // A relink (another member) keeps the counts.
        again.add(load("basic", "xdp_pass"), opts(2)).unwrap();
        send_paced(&tx, SocketAddrV4::new(pair.addr_b, 9999), 5);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(drops(&again).packets[1], 55);
        again.clear().unwrap();
    });
}
