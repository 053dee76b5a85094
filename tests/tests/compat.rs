//! The compatibility suite (issue 14): every vendored public XDP program
//! behaves through xdpd exactly as it does standalone, loaded the way libxdp
//! loads it — alone and between two other members, inlined and called — on
//! the suite's crafted packets: verdict, output bytes, map contents.

use std::collections::BTreeSet;

use xdpd_tests::compat::{self, frames, CASES};
use xdpd_tests::require_root;

#[test]
fn every_public_program_behaves_the_same_through_xdpd() {
    require_root();
    compat::stay_on_this_cpu();
    let mut failures = Vec::new();
    let mut reports = Vec::new();
    for case in CASES {
        let result = match case.refused {
            Some(why) => compat::check_refused(case, why).map(|reason| eprintln!("{}: refused: {reason}", case.name())),
            None => compat::check(case).map(|report| reports.push(report)),
        };
        if let Err(why) = result {
            failures.push(format!("{}: {why}", case.name()));
        }
    }
    assert!(failures.is_empty(), "{} of {} programs differ:\n{}", failures.len(), CASES.len(), failures.join("\n"));
    // The bar: at least 30 programs from at least 6 projects.
    let projects: BTreeSet<&str> = CASES.iter().map(|c| c.project).collect();
    assert!(CASES.len() >= 30 && projects.len() >= 6, "{} programs from {} projects", CASES.len(), projects.len());
    // The packets reach the programs' decisions: the suite sees more than one verdict.
    let verdicts: BTreeSet<u32> = reports.iter().flat_map(|r| r.verdicts.keys().copied()).collect();
    assert!(verdicts.len() >= 4, "verdicts seen: {verdicts:?}");
    // Legacy section names are among them, loaded as XDP.
    assert!(reports.iter().any(|r| r.section == "prog"), "a SEC(\"prog\") program");
    assert!(reports.iter().any(|r| r.section.starts_with("xdp_")), "a SEC(\"xdp_foo\") program");
    assert!(frames::packets().len() >= 25);
}

#[test]
fn the_suite_sees_a_different_verdict_different_bytes_and_different_maps() {
    require_root();
    compat::stay_on_this_cpu();
    let find = |function: &str| CASES.iter().find(|c| c.function == function).expect("in the suite");
    let differ = |a: &str, b: &str| compat::check_against(find(a), find(b)).expect_err("must differ");
    assert!(differ("xdp_pass_func", "xdp_drop_func").contains("verdict"));
    // Same verdicts (XDP_PASS), different bytes: ports rewritten versus untouched.
    let bytes = differ("xdp_patch_ports_func", "xdp_prog_simple");
    assert!(bytes.contains("output bytes"), "{bytes}");
    // Same verdicts (XDP_PASS everywhere), different maps.
    assert!(differ("xdp_stats1_func", "count_packets").contains("map names"));
}
