//! Inline linking is indistinguishable from call linking: random chains of
//! the test programs over random packets, in both modes, give the same
//! verdicts, the same packet bytes and the same map contents.

use std::os::fd::AsFd;

use xdpd::engine::{ActionSet, AddOptions, Chain, LinkMode, LoadedProgram};
use xdpd_tests::packet::probe_packet;
use xdpd_tests::{load, map_lookup, require_root};

/// Every test program that is usable as a member, by (object, function).
const POOL: &[(&str, &str)] = &[
    ("probe", "probe0"),
    ("probe", "probe1"),
    ("probe", "probe2"),
    ("probe", "probe3"),
    ("probe", "probe9"),
    ("adjust", "head_push"),
    ("adjust", "tail_grow"),
    ("adjust", "meta_write"),
    ("adjust", "meta_read"),
    ("features", "subprogs"),
    ("features", "loop"),
    ("features", "kfunc"),
    ("features", "spinlock"),
    ("globaldata", "global_data"),
    ("udp", "udp_drop"),
    ("udp", "udp_count"),
    ("basic", "xdp_pass"),
    ("basic", "xdp_drop"),
    ("tailcall", "tail_entry"),
    ("runconfig", "cfg_early"),
];

struct Pick {
    program: (&'static str, &'static str),
    priority: i32,
    proceed_on: ActionSet,
}

fn build(picks: &[Pick], mode: LinkMode) -> Chain {
    let mut chain = Chain::unattached().with_link_mode(mode);
    for p in picks {
        let options = AddOptions { priority: Some(p.priority), proceed_on: Some(p.proceed_on), ..Default::default() };
        chain.add(load(p.program.0, p.program.1), options).unwrap_or_else(|e| panic!("{:?}: {e}", p.program));
    }
    chain
}

/// Contents of every array map of a program, by map name (key 0).
fn array_maps(program: &LoadedProgram) -> Vec<(String, Vec<u8>)> {
    const ARRAY: u32 = 2;
    let mut out = Vec::new();
    for map in &program.maps {
        if map.map_type != ARRAY || map.name.ends_with(".rodata") {
            continue;
        }
        let size = xdpd_tests::map_value_size(map.fd.as_fd());
        out.push((map.name.clone(), map_lookup(map.fd.as_fd(), 0, size)));
    }
    out
}

#[test]
fn random_chains_behave_the_same_inlined_and_called() {
    require_root();
    let mut rng = xdpd_tests::Rng::seeded();
    let results = [0u8, 1, 2, 2, 2, 3, 4, 7, 32, 200];
    let mut inlined_total = 0;
    for round in 0..30 {
        let n = 1 + rng.below(10) as usize;
        let picks: Vec<Pick> = (0..n)
            .map(|_| {
                // Mostly proceeding on pass, sometimes on other sets.
                let mask = if rng.below(3) == 0 { rng.below(32) as u32 } else { 1 << 2 };
                let names: Vec<&str> = xdpd::engine::Action::ALL
                    .iter()
                    .filter(|a| mask & (1 << **a as u32) != 0)
                    .map(|a| a.name())
                    .collect();
                Pick {
                    program: POOL[rng.below(POOL.len() as u64) as usize],
                    priority: rng.below(4) as i32,
                    proceed_on: ActionSet::from_names(&names).unwrap(),
                }
            })
            .collect();
        let inline = build(&picks, LinkMode::Inline);
        let call = build(&picks, LinkMode::Call);
        assert_eq!(call.program().unwrap().inlined, 0);
        inlined_total += inline.program().unwrap().inlined;
        for _ in 0..20 {
            let actions: Vec<(u8, u8)> =
                (0..16).map(|slot| (slot, results[rng.below(results.len() as u64) as usize])).collect();
            let packet = probe_packet(&actions);
            let a = inline.program().unwrap().test_run(&packet, 1).unwrap();
            let b = call.program().unwrap().test_run(&packet, 1).unwrap();
            let chain: Vec<_> = picks.iter().map(|p| p.program.1).collect();
            assert_eq!((a.retval, &a.data), (b.retval, &b.data), "round {round}, chain {chain:?}, packet {packet:?}");
        }
        for (x, y) in inline.members().iter().zip(call.members()) {
            assert_eq!(x.program.name, y.program.name);
            assert_eq!(array_maps(&x.program), array_maps(&y.program), "round {round}: maps of {}", x.program.name);
        }
    }
    assert!(inlined_total > 0, "nothing was inlined");
    eprintln!("{inlined_total} members inlined over 30 chains");
}
