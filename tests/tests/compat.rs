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

/// Turns IPv6 off in a namespace, so no neighbour discovery or MLD packet
/// reaches the chain while the suite compares map contents.
fn quiet(ns: &str) {
    for key in ["net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"] {
        let ok = std::process::Command::new("ip")
            .args(["netns", "exec", ns, "sysctl", "-qw", key])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "sysctl {key} in {ns}");
    }
}

/// The same programs through the running service: AddProgramFromPath (the
/// intake sandbox, D-Bus, the owner, the durable gate) into a chain between
/// two members on a veth interface; the chain the kernel runs (by its
/// KernelProgramId) and the program's maps (GetMapsByName) against standalone.
#[tokio::test]
async fn every_public_program_behaves_the_same_through_the_service() {
    use std::collections::HashMap;
    use std::os::fd::AsFd;
    use zbus::Variant;
    require_root();
    compat::stay_on_this_cpu();
    let f = xdpd_tests::service::Service::new("compat").await;
    quiet(&f.pair.ns_a);
    quiet(&f.pair.ns_b);
    let link = f.link().await;
    for (object, function, priority) in [("globaldata", "global_data", 1), ("basic", "xdp_pass", 99)] {
        let opts = HashMap::from([("priority", Variant::from(priority))]);
        let path = xdpd_bpf::object_path(object).display().to_string();
        link.add_program_from_path(&path, function, opts).await.expect("a surrounding member");
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut failures = Vec::new();
    for case in CASES {
        let opts =
            HashMap::from([("priority", Variant::from(50)), ("proceed-on", Variant::from(vec!["pass".to_string()]))]);
        let path = case.path().display().to_string();
        let added = link.add_program_from_path(&path, case.function, opts).await;
        let outcome = match (added, case.refused) {
            (Err(e), Some(why)) if e.to_string().contains(why) => Ok(()),
            (Err(e), _) => Err(format!("the service refused it: {e}")),
            (Ok(_), Some(_)) => Err("the service accepted a program refused standalone".into()),
            (Ok(p), None) => {
                let program = f.program(&p).await;
                let names: Vec<String> = program.map_ids().await.unwrap().into_keys().collect();
                let mut fds = HashMap::new();
                for chunk in names.chunks(16) {
                    let chunk: Vec<&str> = chunk.iter().map(String::as_str).collect();
                    fds.extend(program.get_maps_by_name(&chunk).await.expect("the program's maps"));
                }
                let id = link.kernel_program_id().await.unwrap();
                let chain = xdpd::kernel::bpf::prog_fd_by_id(id).expect("the running chain");
                let maps = fds.iter().map(|(n, fd)| (n.clone(), fd.as_fd())).collect();
                let result = compat::compare_chain(case, "service", chain.as_fd(), maps);
                program.remove().await.expect("remove");
                result
            }
        };
        if let Err(why) = outcome {
            failures.push(format!("{}: {why}", case.name()));
        }
    }
    assert!(failures.is_empty(), "{} of {} programs differ:\n{}", failures.len(), CASES.len(), failures.join("\n"));
}
