//! The compatibility suite's programs through the service: each one's
//! AddProgramFromPath time by root through D-Bus into a chain of two other
//! members on a veth interface, and what Link.Explain then reports of it
//! (linking, its instructions, the instructions the verifier processed for
//! the chain).

use std::collections::HashMap;
use std::time::Instant;

use xdpd_client::{LinkProxy, ProgramProxy};
use xdpd_tests::bus::TestBus;
use xdpd_tests::compat::{self, CASES};
use xdpd_tests::netns::VethPair;
use xdpd_tests::polkit::Polkit;
use zbus::Variant;

use crate::table::{percentile, Table};

const CALLS: usize = 5;

pub fn run() -> Table {
    compat::stay_on_this_cpu();
    let pair = VethPair::new();
    let bus = TestBus::start("bench-compat", &pair.ns_b, 0);
    let _polkit = Polkit::start(&bus, "");
    let link_path = format!("/org/xdp/Manager1/link/{}", VethPair::ifindex(&pair.ns_b, &pair.dev_b));
    let mut table = Table::new(
        "compat",
        format!("compatibility suite: AddProgramFromPath by root through D-Bus between two members, median of {CALLS}"),
        &["program", "source", "section", "runs", "instructions", "verified instructions", "AddProgram ms"],
    );
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let conn = zbus::connection::Builder::address(bus.address.as_str()).build().await.expect("connect");
        let link = LinkProxy::builder(&conn).path(link_path.as_str()).build().await.expect("link");
        for (object, function, priority) in [("globaldata", "global_data", 1), ("basic", "xdp_pass", 99)] {
            let opts = HashMap::from([("priority", Variant::from(priority))]);
            let path = xdpd_bpf::object_path(object).display().to_string();
            link.add_program_from_path(&path, function, opts).await.expect("a surrounding member");
        }
        for case in CASES.iter().filter(|c| c.refused.is_none()) {
            let report = match compat::check(case) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("{}: {e}", case.name());
                    continue;
                }
            };
            let path = case.path().display().to_string();
            let (mut times, mut explained) = (Vec::new(), None);
            for _ in 0..CALLS {
                let opts = HashMap::from([("priority", Variant::from(50))]);
                let start = Instant::now();
                let p = link.add_program_from_path(&path, case.function, opts).await.expect("add");
                times.push(start.elapsed().as_secs_f64() * 1000.0);
                let report = link.explain().await.expect("explain");
                let member = report.members.iter().find(|m| m.path == p).map(|m| (m.linking.clone(), m.instructions));
                let verified = report.segments.iter().map(|s| s.verified_instructions).sum::<u32>();
                explained = member.map(|(linking, insns)| (linking, insns, verified));
                let program = ProgramProxy::builder(&conn).path(p).build().await.expect("program");
                program.remove().await.expect("remove");
            }
            let (linking, insns, verified) = explained.unwrap_or_default();
            times.sort_by(f64::total_cmp);
            table.row(vec![
                format!("`{}`", case.function),
                format!("{} `{}`", case.project, case.object),
                format!("`{}`", report.section),
                linking,
                insns.to_string(),
                verified.to_string(),
                format!("{:.1}", percentile(&times, 0.5)),
            ]);
        }
    });
    table
}
