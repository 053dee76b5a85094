//! Segmented chains: ns/packet of realistic members in one segment against
//! the same members cut into segments (forced boundaries), the cost of one
//! boundary (a tail call), and the time of a change (link + verify the
//! segment it touches) at 50 and 500 members, and next to Katran's balancer.

use std::os::fd::AsFd;
use std::time::Instant;

use xdpd::engine::object::{load, load_with, Privilege, DEFAULT_MAX_OBJECT_SIZE};
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
    let mut added = Vec::new();
    for i in 0..n {
        let program = load(&bytes, Some("realistic"), DEFAULT_MAX_OBJECT_SIZE).expect("load member");
        if let Some(map) = program.map("port_counts") {
            seed_port(map.fd.as_fd());
        }
        added.push((program, AddOptions { priority: Some(i as i32), ..Default::default() }, None));
    }
    chain.change(&[], added, &AddOptions::default()).expect("add the members");
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
         64-byte packet, best of 5; boundary = (every member - as planned) / (N - 1) while the plan is one segment; \
         one C program = the same members' work written as one program (generated, clang -O2)",
        &["members", "as planned", "every 16 members", "every member", "ns per boundary", "one C program"],
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
            c_reference_ns(n).map_or("n/a (over 64 maps)".into(), |ns| ns.to_string()),
        ]);
    }
    t
}

/// Time of one change (adding, then removing, a realistic member at the end) at 50 and 500 members.
pub fn changes() -> Table {
    let mut t = Table::new(
        "segments_changes",
        "segmented chains: one change (Chain::add of a realistic member at the end, then its removal; \
         only the last segment, which it touches, is linked, loaded and verified), 20 of each, ms",
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

/// The reference: the work of `n` realistic members written as ONE C
/// program (generated, compiled by clang, loaded by libbpf), each member's
/// work a function of its own map; `None` beyond the kernel's 64 maps.
pub fn c_reference_ns(n: usize) -> Option<u32> {
    if n == 0 || n > 64 {
        return None;
    }
    let dir = std::env::temp_dir().join(format!("xdpd-bench-ref-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let (src, obj) = (dir.join(format!("ref{n}.bpf.c")), dir.join(format!("ref{n}.o")));
    std::fs::write(&src, c_reference_source(n)).ok()?;
    let multiarch = format!("-I/usr/include/{}-linux-gnu", std::env::consts::ARCH);
    let status = std::process::Command::new("clang")
        .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror", &multiarch, "-c"])
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .status()
        .ok()?;
    let ns = status.success().then(|| load_and_run(&obj)).flatten();
    let _ = std::fs::remove_dir_all(&dir);
    ns
}

fn load_and_run(obj: &std::path::Path) -> Option<u32> {
    let object = libbpf_rs::ObjectBuilder::default().open_file(obj).ok()?.load().ok()?;
    for m in object.maps() {
        seed_port(m.as_fd());
    }
    let prog = object.progs().find(|p| p.name() == "reference")?;
    Some(best_ns(prog.as_fd()))
}

/// `n` hash maps and one program that does, for each, what bench.bpf.c's `realistic` does.
fn c_reference_source(n: usize) -> String {
    let mut c = String::from(
        "#include <linux/bpf.h>\n#include <linux/if_ether.h>\n#include <linux/ip.h>\n#include <linux/in.h>\n\
         #include <linux/udp.h>\n#include <bpf/bpf_helpers.h>\n#include <bpf/bpf_endian.h>\n\n\
         #define PORT_MAP(i) struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 1024); \
         __type(key, __u32); __type(value, __u64); } port_counts##i SEC(\".maps\");\n\
         static __always_inline void count_port(struct xdp_md *ctx, void *map)\n{\n\
         \tvoid *data = (void *)(long)ctx->data;\n\tvoid *end = (void *)(long)ctx->data_end;\n\
         \tstruct ethhdr *eth = data;\n\tstruct iphdr *ip = (void *)(eth + 1);\n\tstruct udphdr *udp = (void *)(ip + 1);\n\
         \t__u32 port;\n\t__u64 *count;\n\n\
         \tif ((void *)(udp + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->protocol != IPPROTO_UDP)\n\
         \t\treturn;\n\tport = bpf_ntohs(udp->dest);\n\tcount = bpf_map_lookup_elem(map, &port);\n\
         \tif (count)\n\t\t__sync_fetch_and_add(count, 1);\n}\n\n",
    );
    for i in 0..n {
        c += &format!("PORT_MAP({i})\n");
    }
    c += "\nSEC(\"xdp\") int reference(struct xdp_md *ctx)\n{\n";
    for i in 0..n {
        c += &format!("\tcount_port(ctx, &port_counts{i});\n");
    }
    c += "\treturn XDP_PASS;\n}\n\nchar LICENSE[] SEC(\"license\") = \"GPL\";\n";
    c
}

/// Katran's balancer (2,741 instructions, about 90,000 verified; a segment
/// of its own) between root's and a user's realistic member: adding and
/// removing a small one-map program, 20 of each, ms. Where the small program
/// joins a segment without the balancer only that segment is verified
/// again; where it makes a new segment every segment is.
pub fn katran() -> Table {
    let mut t = Table::new(
        "segments_katran",
        "segmented chains next to Katran's balancer: Chain::add of a small one-map program (realistic), \
         then its removal, 20 of each, ms; segments verified per change in parentheses",
        &["the small program", "segments", "add p50", "add p99", "remove p50", "remove p99"],
    );
    let balancer = xdpd_tests::compat::CASES
        .iter()
        .find(|c| c.function == "balancer_ingress")
        .expect("Katran's balancer in the compatibility suite");
    let bytes = xdpd_bpf::object_bytes("bench");
    let small = |privilege: Privilege| {
        load_with(&bytes, Some("realistic"), DEFAULT_MAX_OBJECT_SIZE, None, privilege).expect("load realistic")
    };
    // Root's small program, the balancer, a user's small program: three segments.
    let mut chain = Chain::unattached();
    chain.set_counting(true).expect("counting");
    chain.add(small(Privilege::Full), priority(1)).expect("add root's member");
    chain.add(xdpd_tests::compat::load(balancer).expect("load the balancer"), priority(10)).expect("add balancer");
    let user = AddOptions { privilege: Privilege::User, ..priority(20) };
    chain.add(small(Privilege::User), user).expect("add a user's member");
    let rows = [
        ("root's, before the balancer (joins root's segment)", Privilege::Full, 5),
        ("a user's, after the balancer (joins the user's segment)", Privilege::User, 30),
        ("root's, between the balancer and the user's (a new segment)", Privilege::Full, 15),
    ];
    for (what, privilege, prio) in rows {
        let (mut adds, mut removes, mut verified) = (Vec::new(), Vec::new(), 0);
        for _ in 0..20 {
            let program = small(privilege);
            let before: Vec<u32> = chain.segments().iter().map(|s| s.prog_id).collect();
            let start = Instant::now();
            let id = chain.add(program, AddOptions { privilege, ..priority(prio) }).expect("add");
            adds.push(start.elapsed().as_secs_f64() * 1000.0);
            verified = chain.segments().iter().filter(|s| !before.contains(&s.prog_id)).count();
            let start = Instant::now();
            chain.remove(id).expect("remove");
            removes.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        adds.sort_by(f64::total_cmp);
        removes.sort_by(f64::total_cmp);
        t.row(vec![
            what.into(),
            format!("{} ({verified})", chain.segments().len()),
            format!("{:.1}", percentile(&adds, 0.5)),
            format!("{:.1}", percentile(&adds, 0.99)),
            format!("{:.1}", percentile(&removes, 0.5)),
            format!("{:.1}", percentile(&removes, 0.99)),
        ]);
    }
    t
}

fn priority(priority: i32) -> AddOptions {
    AddOptions { priority: Some(priority), ..Default::default() }
}
