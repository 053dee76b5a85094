//! Segmented chains: ns/packet of realistic members in one segment against
//! the same members cut into segments (forced boundaries), the cost of one
//! boundary (a tail call), and the time of a change (link + verify every
//! segment) at 50 and 500 members.

use std::os::fd::AsFd;
use std::time::Instant;

use xdpd::engine::object::{load, DEFAULT_MAX_OBJECT_SIZE};
use xdpd::engine::{AddOptions, Chain};

use crate::dataplane::{best_ns, seed_port};
use crate::table::{percentile, Table};

/// A chain of `n` realistic members (each with its own map), cut after `per_segment` members when given.
fn realistic_chain(n: usize, per_segment: Option<usize>) -> Chain {
    let bytes = xdpd_bpf::object_bytes("bench");
    let mut chain = Chain::unattached();
    if let Some(k) = per_segment {
        chain = chain.with_segment_members(k);
    }
    for i in 0..n {
        let program = load(&bytes, Some("realistic"), DEFAULT_MAX_OBJECT_SIZE).expect("load member");
        if let Some(map) = program.map("port_counts") {
            seed_port(map.fd.as_fd());
        }
        chain.add(program, AddOptions { priority: Some(i as i32), ..Default::default() }).expect("add member");
    }
    chain
}

fn ns_and_segments(chain: &Chain) -> (u32, usize) {
    (best_ns(chain.program().expect("loaded").as_fd()), chain.segments().len())
}

/// ns/packet: as planned (one segment while 63 maps fit), a boundary every 16 members, every member a segment.
pub fn dataplane() -> Table {
    let mut t = Table::new(
        "segments_dataplane",
        "segmented chains, realistic members (one map each): ns/packet (segments), BPF_PROG_TEST_RUN, \
         64-byte packet, best of 5; boundary = (every member - as planned) / (N - 1) while the plan is one segment",
        &["members", "as planned", "every 16 members", "every member", "ns per boundary"],
    );
    for n in [1usize, 2, 10, 20, 34, 63, 100, 200, 500] {
        let (planned, planned_segments) = ns_and_segments(&realistic_chain(n, None));
        let (every16, segments16) = ns_and_segments(&realistic_chain(n, Some(16)));
        let every = (n <= 34).then(|| ns_and_segments(&realistic_chain(n, Some(1))));
        let boundary = match every {
            Some((ns, _)) if n > 1 && planned_segments == 1 => {
                format!("{:.2}", (ns as f64 - planned as f64) / (n - 1) as f64)
            }
            _ => "-".into(),
        };
        t.row(vec![
            n.to_string(),
            format!("{planned} ({planned_segments})"),
            format!("{every16} ({segments16})"),
            every.map_or("n/a (over 34 segments)".into(), |(ns, s)| format!("{ns} ({s})")),
            boundary,
        ]);
    }
    t
}

/// Time of one change (adding, then removing, a realistic member at the end) at 50 and 500 members.
pub fn changes() -> Table {
    let mut t = Table::new(
        "segments_changes",
        "segmented chains: one change (Chain::add of a realistic member at the end, then its removal; \
         link + load + verify every segment), 20 of each, ms",
        &["members", "segments", "add p50", "add p99", "remove p50", "remove p99"],
    );
    let bytes = xdpd_bpf::object_bytes("bench");
    for n in [50usize, 500] {
        let mut chain = realistic_chain(n, None);
        let (mut adds, mut removes) = (Vec::new(), Vec::new());
        for _ in 0..20 {
            let program = load(&bytes, Some("realistic"), DEFAULT_MAX_OBJECT_SIZE).expect("load");
            let start = Instant::now();
            let id = chain.add(program, AddOptions { priority: Some(100_000), ..Default::default() }).expect("add");
            adds.push(start.elapsed().as_secs_f64() * 1000.0);
            let start = Instant::now();
            chain.remove(id).expect("remove");
            removes.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        adds.sort_by(f64::total_cmp);
        removes.sort_by(f64::total_cmp);
        t.row(vec![
            n.to_string(),
            chain.segments().len().to_string(),
            format!("{:.1}", percentile(&adds, 0.5)),
            format!("{:.1}", percentile(&adds, 0.99)),
            format!("{:.1}", percentile(&removes, 0.5)),
            format!("{:.1}", percentile(&removes, 0.99)),
        ]);
    }
    t
}
