//! The linked chain's semantics, checked packet by packet with
//! BPF_PROG_TEST_RUN on instrumented programs (bpf/test/probe.h).

use xdpd::engine::object::{load_with, Privilege, DEFAULT_MAX_OBJECT_SIZE};
use xdpd::engine::{Action, ActionSet, AddOptions, Chain, Error, LinkMode};
use xdpd_tests::packet::{self, probe_packet, trace, ABORTED, DROP, PASS, REDIRECT, TX};
use xdpd_tests::{load, map_u64, require_root};

fn opts(priority: i32) -> AddOptions {
    AddOptions { priority: Some(priority), ..Default::default() }
}

fn opts_on(priority: i32, proceed_on: ActionSet) -> AddOptions {
    AddOptions { priority: Some(priority), proceed_on: Some(proceed_on), ..Default::default() }
}

fn probe(slot: u8) -> xdpd::engine::LoadedProgram {
    load("probe", &format!("probe{slot}"))
}

/// Runs the chain's program once; returns (verdict, frame after the run).
fn run(chain: &Chain, frame: &[u8]) -> (u32, Vec<u8>) {
    let out = chain.program().expect("chain is loaded").test_run(frame, 1).expect("BPF_PROG_TEST_RUN");
    (out.retval, out.data)
}

#[test]
fn members_run_by_priority_then_order_of_addition() {
    require_root();
    let mut chain = Chain::unattached();
    for (slot, prio) in [(3, 30), (1, 10), (2, 10), (0, 20), (4, 10)] {
        chain.add(probe(slot), opts(prio)).unwrap();
    }
    let (verdict, out) = run(&chain, &probe_packet(&[]));
    assert_eq!(verdict, PASS as u32);
    assert_eq!(trace(&out), [1, 2, 4, 0, 3]);
    let order: Vec<i32> = chain.members().iter().map(|m| m.priority).collect();
    assert_eq!(order, [10, 10, 10, 20, 30]);
}

#[test]
fn every_proceed_on_set_and_every_result() {
    require_root();
    let actions = [ABORTED, DROP, PASS, TX, REDIRECT];
    for mask in 0u32..32 {
        let set = ActionSet::from_names(
            &xdpd::engine::Action::ALL
                .iter()
                .filter(|a| mask & (1 << **a as u32) != 0)
                .map(|a| a.name())
                .collect::<Vec<_>>(),
        )
        .unwrap();
        let mut chain = Chain::unattached();
        chain.add(probe(0), opts_on(1, set)).unwrap();
        chain.add(probe(1), opts_on(2, ActionSet::EMPTY)).unwrap();
        for result in actions.iter().copied().chain([7, 31, 32, 40, 255]) {
            let (verdict, out) = run(&chain, &probe_packet(&[(0, result), (1, TX)]));
            if set.proceeds(result as u32) {
                assert_eq!((verdict, trace(&out)), (TX as u32, vec![0, 1]), "set {set} result {result}");
            } else {
                assert_eq!((verdict, trace(&out)), (result as u32, vec![0]), "set {set} result {result}");
            }
        }
    }
}

#[test]
fn a_chain_whose_members_all_proceed_ends_in_pass() {
    require_root();
    let mut chain = Chain::unattached();
    let on_drop_tx = ActionSet::from_names(&["drop", "tx"]).unwrap();
    chain.add(probe(0), opts_on(1, on_drop_tx)).unwrap();
    chain.add(probe(1), opts_on(2, on_drop_tx)).unwrap();
    let (verdict, out) = run(&chain, &probe_packet(&[(0, DROP), (1, TX)]));
    assert_eq!((verdict, trace(&out)), (PASS as u32, vec![0, 1]));
}

#[test]
fn run_config_metadata_gives_defaults_and_options_override_it() {
    require_root();
    let early = load("runconfig", "cfg_early");
    let final_ = load("runconfig", "cfg_final");
    let late = load("runconfig", "cfg_late");
    let none = load("runconfig", "cfg_none");
    let set = |names: &[&str]| ActionSet::from_names(names).unwrap();
    assert_eq!((early.run_config.priority, early.run_config.proceed_on), (10, set(&["drop", "pass"])));
    assert_eq!((final_.run_config.priority, final_.run_config.proceed_on), (50, set(&[])));
    assert_eq!(
        (late.run_config.priority, late.run_config.proceed_on),
        (70, set(&["aborted", "pass", "tx", "redirect"]))
    );
    assert_eq!((none.run_config.priority, none.run_config.proceed_on), (50, set(&["pass"])));

    let mut chain = Chain::unattached();
    chain.add(late, AddOptions::default()).unwrap();
    chain.add(none, AddOptions::default()).unwrap();
    chain.add(final_, AddOptions::default()).unwrap();
    chain.add(early, AddOptions::default()).unwrap();
    // early(10) drop→continue, none(50) pass→continue, final(50) pass→final verdict; late never runs.
    let (verdict, out) = run(&chain, &probe_packet(&[(0, DROP)]));
    assert_eq!((verdict, trace(&out)), (PASS as u32, vec![0, 3, 1]));

    // Options override the metadata: cfg_final first and proceeding on pass.
    let mut chain = Chain::unattached();
    chain.add(load("runconfig", "cfg_final"), opts_on(5, set(&["pass"]))).unwrap();
    chain.add(load("runconfig", "cfg_early"), AddOptions::default()).unwrap();
    let (verdict, out) = run(&chain, &probe_packet(&[(0, TX)]));
    assert_eq!((verdict, trace(&out)), (TX as u32, vec![1, 0]));
}

#[test]
fn unknown_run_config_member_is_refused_like_libxdp() {
    require_root();
    let err = xdpd::engine::object::load(&xdpd_bpf::object_bytes("badconfig"), None, 1 << 20).unwrap_err();
    assert!(matches!(&err, Error::InvalidObject(m) if m.contains("XDP_BOGUS")), "{err}");
}

#[test]
fn packet_modifying_members_first_middle_and_last() {
    require_root();
    let mutators = [("head_push", 20u8), ("tail_grow", 21)];
    for (name, slot) in mutators {
        for position in 0..3 {
            let mut chain = Chain::unattached();
            let mut expected = Vec::new();
            let mut probes = [0u8, 1].into_iter();
            for at in 0..3 {
                if at == position {
                    chain.add(load("adjust", name), opts(at)).unwrap();
                    expected.push(slot);
                } else if let Some(p) = probes.next() {
                    chain.add(probe(p), opts(at)).unwrap();
                    expected.push(p);
                }
            }
            let (verdict, out) = run(&chain, &probe_packet(&[]));
            assert_eq!(verdict, PASS as u32, "{name} at {position}");
            assert_eq!(trace(&out), expected, "{name} at {position}");
            match name {
                "head_push" => assert!(out.starts_with(b"HEAD") && out.len() == packet::LEN + 4),
                _ => assert!(out.ends_with(b"TAIL") && out.len() == packet::LEN + 4),
            }
        }
    }
    // Metadata written by one member is read by a later one, with a probe anywhere between.
    for position in 0..3 {
        let mut chain = Chain::unattached();
        chain.add(load("adjust", "meta_write"), opts(10)).unwrap();
        chain.add(load("adjust", "meta_read"), opts(20)).unwrap();
        chain.add(probe(0), opts([5, 15, 25][position])).unwrap();
        let (verdict, out) = run(&chain, &probe_packet(&[]));
        assert_eq!(verdict, PASS as u32);
        // TEST_RUN returns the frame starting at its metadata.
        assert_eq!(&out[..4], b"META");
        let frame = &out[4..];
        assert_eq!(&frame[packet::META_COPY..packet::META_COPY + 4], b"META");
        let mut expected = vec![22, 23];
        expected.insert(position, 0);
        assert_eq!(trace(frame), expected);
    }
}

#[test]
fn subprograms_callbacks_kfuncs_spin_locks_and_global_data_survive_linking() {
    require_root();
    let mut chain = Chain::unattached();
    chain.add(probe(0), opts(0)).unwrap();
    for (i, name) in ["subprogs", "loop", "kfunc", "spinlock"].iter().enumerate() {
        chain.add(load("features", name), opts(10 + i as i32)).unwrap();
    }
    let globals = chain.add(load("globaldata", "global_data"), opts(20)).unwrap();
    chain.add(probe(1), opts(30)).unwrap();
    for round in 1..=3u64 {
        let (verdict, out) = run(&chain, &probe_packet(&[(1, TX)]));
        assert_eq!((verdict, trace(&out)), (TX as u32, vec![0, 5, 1]), "round {round}");
        let gd = &chain.member(globals).unwrap().program;
        assert_eq!(map_u64(gd, ".bss", 0, 8), round, "bss counter");
        let spin = &chain.members().iter().find(|m| m.program.name == "spinlock").unwrap().program;
        assert_eq!(map_u64(spin, "locked", 8, 16), round, "spin-locked counter");
    }
    // data_seed starts at 7 and gains rodata_answer (42) per packet.
    let gd = &chain.member(globals).unwrap().program;
    let data = xdpd_tests::map_lookup(
        std::os::fd::AsFd::as_fd(&gd.maps.iter().find(|m| m.name.ends_with(".data")).unwrap().fd),
        0,
        4,
    );
    let data = u32::from_ne_bytes(data.try_into().unwrap());
    assert_eq!(data, 7 + 3 * 42);
}

#[test]
fn a_member_that_tail_calls() {
    require_root();
    let mut chain = Chain::unattached();
    chain.add(probe(0), opts(0)).unwrap();
    let entry = chain.add(load("tailcall", "tail_entry"), opts(1)).unwrap();
    chain.add(probe(1), opts(2)).unwrap();
    // Empty program array: the tail call falls through and the chain goes on.
    let (verdict, out) = run(&chain, &probe_packet(&[]));
    assert_eq!((verdict, trace(&out)), (PASS as u32, vec![0, 6, 1]));

    // Fill the member's program array the way an application would.
    let target =
        libbpf_rs::ObjectBuilder::default().open_file(xdpd_bpf::object_path("tailcall")).unwrap().load().unwrap();
    let target_prog = target.progs().find(|p| p.name() == "tail_target").unwrap();
    let table = chain.member(entry).unwrap().program.map("jump_table").unwrap();
    use std::os::fd::{AsFd, AsRawFd};
    let fd_value = target_prog.as_fd().as_raw_fd() as u32;
    xdpd_tests::map_update(table.fd.as_fd(), 0, &fd_value.to_ne_bytes());
    let (verdict, out) = run(&chain, &probe_packet(&[]));
    assert_eq!((verdict, trace(&out)), (TX as u32, vec![0, 7]), "the tail call ends the chain with its verdict");
}

#[test]
fn one_program_is_picked_from_a_multi_program_object() {
    require_root();
    let mut chain = Chain::unattached();
    chain.add(probe(9), opts(1)).unwrap();
    chain.add(probe(4), opts(2)).unwrap();
    let (_, out) = run(&chain, &probe_packet(&[]));
    assert_eq!(trace(&out), [9, 4]);
    assert_eq!(chain.members()[0].program.name, "probe9");
}

#[test]
fn a_hundred_members_verify_and_run() {
    require_root();
    let mut chain = Chain::unattached();
    for i in 0..99u8 {
        chain.add(probe(i % 16), opts(i as i32)).unwrap();
    }
    let (verdict, out) = run(&chain, &probe_packet(&[]));
    assert_eq!(verdict, PASS as u32);
    assert_eq!(trace(&out), (0..16).collect::<Vec<u8>>());
    chain.add(load("basic", "xdp_drop"), opts(1000)).unwrap();
    assert_eq!(chain.members().len(), 100);
    let (verdict, _) = run(&chain, &probe_packet(&[]));
    assert_eq!(verdict, DROP as u32);
}

#[test]
fn a_counter_keeps_its_count_across_relinks() {
    require_root();
    let mut chain = Chain::unattached();
    let counter = chain.add(load("globaldata", "global_data"), opts(10)).unwrap();
    let map_id = chain.member(counter).unwrap().program.maps.iter().find(|m| m.name.ends_with(".bss")).unwrap().id;
    for round in 1..=20u64 {
        let other = chain.add(probe((round % 16) as u8), opts(5)).unwrap();
        run(&chain, &probe_packet(&[]));
        chain.remove(other).unwrap();
        run(&chain, &probe_packet(&[]));
        let program = &chain.member(counter).unwrap().program;
        assert_eq!(map_u64(program, ".bss", 0, 8), 2 * round);
        assert_eq!(program.maps.iter().find(|m| m.name.ends_with(".bss")).unwrap().id, map_id);
    }
    assert_eq!(chain.generation(), 41);
}

#[test]
fn frags_only_when_every_member_declares_it() {
    require_root();
    let mut chain = Chain::unattached();
    chain.add(load("basic", "xdp_pass_frags"), opts(1)).unwrap();
    assert!(chain.program().unwrap().frags);
    chain.add(load("basic", "xdp_pass"), opts(2)).unwrap();
    assert!(!chain.program().unwrap().frags);
}

#[test]
fn a_chain_rejected_for_combined_limits_names_the_member() {
    require_root();
    // Called, the member's eight frames plus the dispatcher's are one too many.
    let mut chain = Chain::unattached().with_link_mode(LinkMode::Call);
    chain.add(probe(0), opts(1)).unwrap();
    let deep = load("basic", "deep_calls");
    let mut alone = Chain::unattached().with_link_mode(LinkMode::Call);
    let err = alone.add(load("basic", "deep_calls"), opts(2)).unwrap_err();
    assert!(matches!(&err, Error::ChainRejected { member, .. } if member == "deep_calls"), "{err}");
    chain.add(probe(1), opts(3)).unwrap();
    let before = (chain.generation(), chain.program().unwrap().info.id);
    let err = chain.add(deep, opts(2)).unwrap_err();
    match &err {
        Error::ChainRejected { member, summary, .. } => {
            assert_eq!(member, "deep_calls", "{err}");
            assert!(summary.contains("too deep"), "{err}");
        }
        other => panic!("expected ChainRejected, got {other}"),
    }
    assert_eq!((chain.generation(), chain.program().unwrap().info.id), before);
    assert_eq!(chain.members().len(), 2);
}

#[test]
fn inlining_saves_the_frame_a_call_would_cost() {
    require_root();
    let mut chain = Chain::unattached();
    chain.add(probe(0), opts(1)).unwrap();
    chain.add(load("basic", "deep_calls"), opts(2)).unwrap();
    assert_eq!(chain.program().unwrap().inlined, 2);
    let (verdict, out) = run(&chain, &probe_packet(&[]));
    assert_eq!((verdict, trace(&out)), (PASS as u32, vec![0]));
}

#[test]
fn per_member_verdict_counters_count_and_survive_relinks() {
    require_root();
    for mode in [LinkMode::Inline, LinkMode::Call] {
        let mut chain = Chain::unattached().with_link_mode(mode);
        let first = chain.add(probe(0), opts(1)).unwrap();
        let second = chain.add(probe(1), opts(2)).unwrap();
        run(&chain, &probe_packet(&[]));
        assert_eq!(chain.member(first).unwrap().stats().packets, [0; 6], "off by default");

        chain.set_counting(true).unwrap();
        run(&chain, &probe_packet(&[]));
        run(&chain, &probe_packet(&[(1, DROP)]));
        run(&chain, &probe_packet(&[(0, TX)]));
        run(&chain, &probe_packet(&[(0, 77)]));
        // aborted, drop, pass, tx, redirect, other
        assert_eq!(chain.member(first).unwrap().stats().packets, [0, 0, 2, 1, 0, 1], "{mode:?}");
        assert_eq!(chain.member(second).unwrap().stats().packets, [0, 1, 1, 0, 0, 0], "{mode:?}");

        // A relink (another member) keeps the counts; switching off stops counting.
        let other = chain.add(probe(2), opts(3)).unwrap();
        run(&chain, &probe_packet(&[]));
        chain.remove(other).unwrap();
        assert_eq!(chain.member(first).unwrap().stats().packets, [0, 0, 3, 1, 0, 1]);
        chain.set_counting(false).unwrap();
        run(&chain, &probe_packet(&[]));
        assert_eq!(chain.member(first).unwrap().stats().packets, [0, 0, 3, 1, 0, 1]);
    }
}

/// The column a result is counted in: aborted, drop, pass, tx, redirect, other.
fn column(result: u8) -> usize {
    usize::from(result).min(5)
}

#[test]
fn counts_are_exact_for_every_proceed_on_set_and_every_result() {
    require_root();
    let results = [ABORTED, DROP, PASS, TX, REDIRECT, 7, 31, 32, 40, 255];
    {
        for mask in 0u32..32 {
            let set = ActionSet::from_names(
                &xdpd::engine::Action::ALL
                    .iter()
                    .filter(|a| mask & (1 << **a as u32) != 0)
                    .map(|a| a.name())
                    .collect::<Vec<_>>(),
            )
            .unwrap();
            let mut chain = Chain::unattached();
            chain.set_counting(true).unwrap();
            let first = chain.add(probe(0), opts_on(1, set)).unwrap();
            let last = chain.add(probe(1), opts_on(2, ActionSet::of(&[Action::Pass]))).unwrap();
            let (mut first_counts, mut last_counts) = ([0u64; 6], [0u64; 6]);
            for (i, result) in results.iter().copied().enumerate() {
                let repeat = 1 + i as u32;
                let out = chain.program().unwrap().test_run(&probe_packet(&[(0, result), (1, TX)]), repeat).unwrap();
                first_counts[column(result)] += u64::from(repeat);
                if set.proceeds(result as u32) {
                    assert_eq!(out.retval, TX as u32, "set {set} result {result}");
                    last_counts[column(TX)] += u64::from(repeat);
                } else {
                    assert_eq!(out.retval, result as u32, "set {set} result {result}");
                }
            }
            let stats = |id| chain.member(id).unwrap().stats();
            let bytes = |c: [u64; 6]| c.map(|n| n * packet::LEN as u64);
            assert_eq!(stats(first).packets, first_counts, "set {set}");
            assert_eq!(stats(first).bytes, bytes(first_counts), "set {set}");
            assert_eq!(stats(last).packets, last_counts, "set {set}");
            assert_eq!(stats(last).bytes, bytes(last_counts), "set {set}");
        }
    }
}

#[test]
fn a_users_chain_counts_too() {
    require_root();
    // Verified as an unprivileged loader's: the length comes from a helper.
    let user = |function: &str| {
        let bytes = xdpd_bpf::object_bytes("basic");
        load_with(&bytes, Some(function), DEFAULT_MAX_OBJECT_SIZE, None, Privilege::User).unwrap()
    };
    let as_user = |priority, proceed_on| AddOptions { privilege: Privilege::User, ..opts_on(priority, proceed_on) };
    let mut chain = Chain::unattached();
    chain.set_counting(true).unwrap();
    let ids = [
        chain.add(user("xdp_pass"), as_user(1, ActionSet::of(&[Action::Pass, Action::Drop]))).unwrap(),
        chain.add(user("xdp_pass"), as_user(2, ActionSet::of(&[Action::Pass]))).unwrap(),
        chain.add(user("xdp_drop"), as_user(3, ActionSet::of(&[Action::Pass]))).unwrap(),
    ];
    chain.program().unwrap().test_run(&probe_packet(&[]), 500).unwrap();
    let stats = |i: usize| chain.member(ids[i]).unwrap().stats();
    assert_eq!(stats(0).packets, [0, 0, 500, 0, 0, 0]);
    assert_eq!(stats(1).packets, [0, 0, 500, 0, 0, 0]);
    assert_eq!(stats(2).packets, [0, 500, 0, 0, 0, 0]);
    assert_eq!(stats(2).bytes, [0, 500 * packet::LEN as u64, 0, 0, 0, 0]);
}

#[test]
fn a_packet_every_member_passes_counts_for_each_of_them() {
    require_root();
    for mode in [LinkMode::Inline, LinkMode::Call] {
        let mut chain = Chain::unattached().with_link_mode(mode);
        chain.set_counting(true).unwrap();
        let on_pass_drop = ActionSet::of(&[Action::Pass, Action::Drop]);
        let ids = [
            chain.add(probe(0), opts(1)).unwrap(),
            chain.add(probe(1), opts_on(2, on_pass_drop)).unwrap(),
            chain.add(probe(2), opts(3)).unwrap(),
        ];
        chain.program().unwrap().test_run(&probe_packet(&[(1, DROP)]), 1000).unwrap();
        chain.program().unwrap().test_run(&probe_packet(&[(2, TX)]), 10).unwrap();
        chain.program().unwrap().test_run(&probe_packet(&[(0, ABORTED)]), 3).unwrap();
        let packets = |i: usize| chain.member(ids[i]).unwrap().stats().packets;
        assert_eq!(packets(0), [3, 0, 1010, 0, 0, 0], "{mode:?}");
        assert_eq!(packets(1), [0, 1000, 10, 0, 0, 0], "{mode:?}");
        assert_eq!(packets(2), [0, 0, 1000, 10, 0, 0], "{mode:?}");
    }
}

#[test]
fn counting_four_hundred_members_uses_one_map() {
    require_root();
    // The kernel allows a program 64 maps: counters share one table. Records
    // beyond 32 KiB into a CPU's region are out of a load's 16-bit reach.
    let mut chain = Chain::unattached();
    let ids: Vec<_> = (0..400).map(|i| chain.add(load("basic", "xdp_pass"), opts(i)).unwrap()).collect();
    chain.set_counting(true).unwrap();
    run(&chain, &probe_packet(&[]));
    run(&chain, &probe_packet(&[]));
    for id in ids {
        assert_eq!(chain.member(id).unwrap().stats().packets, [0, 0, 2, 0, 0, 0]);
    }
}

/// The name of type `id` in the BTF the kernel holds for the program `fd`.
fn type_name_in_program_btf(fd: std::os::fd::BorrowedFd<'_>, id: u32) -> String {
    use std::os::fd::AsRawFd;
    let mut info = libbpf_sys::bpf_prog_info::default();
    let mut len = std::mem::size_of::<libbpf_sys::bpf_prog_info>() as u32;
    // SAFETY: info is a properly sized buffer for the call.
    let ret = unsafe { libbpf_sys::bpf_prog_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) };
    assert_eq!(ret, 0, "prog info: {}", std::io::Error::last_os_error());
    assert_ne!(info.btf_id, 0, "the program has BTF");
    // SAFETY: libbpf returns an owned BTF or an error pointer (NULL with errno in libbpf 1.x).
    unsafe {
        let btf = libbpf_sys::btf__load_from_kernel_by_id(info.btf_id);
        assert!(!btf.is_null(), "load BTF {}", info.btf_id);
        let t = libbpf_sys::btf__type_by_id(btf, id);
        let name = if t.is_null() {
            format!("<no type {id}>")
        } else {
            let n = libbpf_sys::btf__name_by_offset(btf, (*t).name_off);
            if n.is_null() {
                String::new()
            } else {
                std::ffi::CStr::from_ptr(n).to_string_lossy().into_owned()
            }
        };
        libbpf_sys::btf__free(btf);
        name
    }
}

#[test]
fn local_btf_type_ids_name_the_same_types_in_the_chain() {
    require_root();
    let ids =
        |p: &xdpd::engine::LoadedProgram| (map_u64(p, ".bss", 0, 8) as u32, (map_u64(p, ".bss", 0, 8) >> 32) as u32);
    for mode in [LinkMode::Inline, LinkMode::Call] {
        let mut chain = Chain::unattached().with_link_mode(mode);
        // Members with BTF before it: its BTF lands further in the chain's.
        chain.add(load("globaldata", "global_data"), opts(1)).unwrap();
        chain.add(load("features", "subprogs"), opts(2)).unwrap();
        let tagger = chain.add(load("typeid", "type_ids"), opts(3)).unwrap();
        assert_eq!(run(&chain, &probe_packet(&[])).0, u32::from(PASS));
        let program = &chain.member(tagger).unwrap().program;
        let (main_id, sub_id) = ids(program);
        let fd = chain.program().unwrap().as_fd();
        assert_eq!(type_name_in_program_btf(fd, main_id), "xdpd_meta_main", "{mode:?}: main function's id {main_id}");
        assert_eq!(type_name_in_program_btf(fd, sub_id), "xdpd_meta_sub", "{mode:?}: subprogram's id {sub_id}");
    }
}
