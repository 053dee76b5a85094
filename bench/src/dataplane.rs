//! Data plane: ns per packet with BPF_PROG_TEST_RUN on a 64-byte UDP packet,
//! for chains linked inline, linked with calls, a tail-call chain of the
//! same members (prog-array style, as L3AF and Katran build them), and the
//! sum of the members run standalone. And verification time vs chain length.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Instant;

use libbpf_rs::{MapCore, MapFlags};
use xdpd::engine::object::{load, DEFAULT_MAX_OBJECT_SIZE};
use xdpd::engine::{AddOptions, Chain, LinkMode};

use crate::table::Table;

const REPEAT: u32 = 1_000_000;
const ROUNDS: usize = 5;
const SIZES: [usize; 7] = [1, 2, 5, 10, 20, 50, 100];
const PORT: u16 = 9;
/// MAX_TAIL_CALL_CNT: the kernel ends a chain of tail calls after 33.
const MAX_TAIL_CALLS: usize = 33;

/// A 64-byte Ethernet/IPv4/UDP frame to `PORT`.
pub fn udp_packet() -> Vec<u8> {
    let mut p = vec![0u8; 64];
    p[12..14].copy_from_slice(&[0x08, 0x00]);
    p[14] = 0x45;
    p[16..18].copy_from_slice(&50u16.to_be_bytes());
    p[22] = 64;
    p[23] = 17;
    p[26..30].copy_from_slice(&[10, 0, 0, 1]);
    p[30..34].copy_from_slice(&[10, 0, 0, 2]);
    p[34..36].copy_from_slice(&1234u16.to_be_bytes());
    p[36..38].copy_from_slice(&PORT.to_be_bytes());
    p[38..40].copy_from_slice(&30u16.to_be_bytes());
    p
}

pub fn best_ns(fd: BorrowedFd<'_>) -> u32 {
    let packet = udp_packet();
    (0..ROUNDS)
        .map(|_| xdpd::kernel::bpf::test_run(fd, &packet, REPEAT).expect("BPF_PROG_TEST_RUN").duration_ns)
        .min()
        .unwrap_or(0)
}

#[derive(Clone, Copy)]
enum Member {
    Trivial,
    Realistic,
}

impl Member {
    fn program(self) -> (&'static str, &'static str) {
        match self {
            Member::Trivial => ("basic", "xdp_pass"),
            Member::Realistic => ("bench", "realistic"),
        }
    }

    fn tail_program(self) -> &'static str {
        match self {
            Member::Trivial => "tc_trivial",
            Member::Realistic => "tc_realistic",
        }
    }
}

/// Puts the benchmark port into a realistic member's hash map, so lookups hit.
pub fn seed_port(map: BorrowedFd<'_>) {
    let key = PORT as u32;
    let value = 0u64;
    // SAFETY: key and value match the map's sizes (4 and 8 bytes).
    unsafe {
        libbpf_sys::bpf_map_update_elem(map.as_raw_fd(), (&key as *const u32).cast(), (&value as *const u64).cast(), 0)
    };
}

/// A chain of `n` members, or the reason the kernel refuses it.
fn chain_of(kind: Member, n: usize, mode: LinkMode) -> Result<Chain, String> {
    let (object, function) = kind.program();
    let bytes = xdpd_bpf::object_bytes(object);
    let mut chain = Chain::unattached().with_link_mode(mode);
    for i in 0..n {
        let program = load(&bytes, Some(function), DEFAULT_MAX_OBJECT_SIZE).expect("load member");
        if let Some(map) = program.map("port_counts") {
            seed_port(map.fd.as_fd());
        }
        chain.add(program, AddOptions { priority: Some(i as i32), ..Default::default() }).map_err(|e| e.to_string())?;
    }
    Ok(chain)
}

/// N instances of a tail-calling program sharing one program array; returns the objects.
fn tail_chain(kind: Member, n: usize) -> Vec<libbpf_rs::Object> {
    let mut objects: Vec<libbpf_rs::Object> = Vec::new();
    for i in 0..n {
        let mut open =
            libbpf_rs::ObjectBuilder::default().open_file(xdpd_bpf::object_path("bench")).expect("open bench.o");
        for mut p in open.progs_mut() {
            let keep = p.name() == kind.tail_program();
            p.set_autoload(keep);
        }
        for mut m in open.maps_mut() {
            let name = m.name().to_string_lossy().into_owned();
            if name.ends_with(".rodata") {
                // next_slot: the following instance; the last one calls an empty slot and ends.
                let next = if i + 1 < n { (i + 1) as u32 } else { 127 };
                m.set_initial_value(&next.to_ne_bytes()).expect("rodata");
            }
            if name == "chain_table" {
                if let Some(first) = objects.first() {
                    let table = first.maps().find(|m| m.name() == "chain_table").expect("table");
                    m.reuse_fd(table.as_fd()).expect("reuse table");
                }
            }
        }
        let object = open.load().expect("load tail-call member");
        for m in object.maps().filter(|m| m.name() == "port_counts") {
            seed_port(m.as_fd());
        }
        objects.push(object);
    }
    let first = &objects[0];
    let table = first.maps().find(|m| m.name() == "chain_table").expect("table");
    for (i, o) in objects.iter().enumerate() {
        let prog = o.progs().find(|p| p.name() == kind.tail_program()).expect("prog");
        let fd = prog.as_fd().as_raw_fd() as u32;
        table.update(&(i as u32).to_ne_bytes(), &fd.to_ne_bytes(), MapFlags::ANY).expect("fill table");
    }
    objects
}

fn standalone_ns(kind: Member) -> u32 {
    let (object, function) = kind.program();
    let mut open = libbpf_rs::ObjectBuilder::default().open_file(xdpd_bpf::object_path(object)).expect("open");
    for mut p in open.progs_mut() {
        let keep = p.name() == function;
        p.set_autoload(keep);
    }
    let object = open.load().expect("load standalone");
    for m in object.maps().filter(|m| m.name() == "port_counts") {
        seed_port(m.as_fd());
    }
    let prog = object.progs().find(|p| p.name() == function).expect("prog");
    best_ns(prog.as_fd())
}

pub fn run() -> Vec<Table> {
    let mut tables = Vec::new();
    for (kind, label, name) in [
        (Member::Trivial, "trivially passing members (return XDP_PASS)", "dataplane_trivial"),
        (
            Member::Realistic,
            "realistic members (parse Ethernet/IPv4/UDP, hash map lookup, count)",
            "dataplane_realistic",
        ),
    ] {
        let standalone = standalone_ns(kind);
        let mut t = Table::new(
            name,
            format!(
                "data plane, {label}: ns/packet, BPF_PROG_TEST_RUN, 64-byte packet, repeat {REPEAT}, best of {ROUNDS}; \
                 marginal = (ns(N) - ns(1)) / (N - 1); one member alone: {standalone} ns"
            ),
            &[
                "members",
                "inline",
                "inline marginal",
                "call",
                "call marginal",
                "tail calls",
                "tail marginal",
                "sum standalone",
            ],
        );
        let mut first = [0u32; 3];
        for n in SIZES {
            let (inline, call) = match (chain_of(kind, n, LinkMode::Inline), chain_of(kind, n, LinkMode::Call)) {
                (Ok(a), Ok(b)) => {
                    (best_ns(a.program().expect("loaded").as_fd()), best_ns(b.program().expect("loaded").as_fd()))
                }
                (Err(e), _) | (_, Err(e)) => {
                    eprintln!("{n} members: {e}");
                    let na = "n/a (over 64 maps)".to_string();
                    let tail = "n/a (over 33 tail calls)".to_string();
                    t.row(vec![
                        n.to_string(),
                        na.clone(),
                        "-".into(),
                        na,
                        "-".into(),
                        tail,
                        "-".into(),
                        (standalone as usize * n).to_string(),
                    ]);
                    continue;
                }
            };
            // The kernel stops a chain of tail calls after 33: longer chains cannot be built that way.
            let tail = if n <= MAX_TAIL_CALLS {
                let objects = tail_chain(kind, n);
                let entry = objects[0].progs().find(|p| p.name() == kind.tail_program()).expect("entry");
                best_ns(entry.as_fd())
            } else {
                0
            };
            let values = [inline, call, tail];
            if n == 1 {
                first = values;
            }
            let marginal = |k: usize| {
                if n > 1 {
                    format!("{:.2}", (values[k] as f64 - first[k] as f64) / (n - 1) as f64)
                } else {
                    "-".into()
                }
            };
            let (tail_cell, tail_marginal) = if n <= MAX_TAIL_CALLS {
                (tail.to_string(), marginal(2))
            } else {
                ("n/a (over 33 tail calls)".to_string(), "-".to_string())
            };
            t.row(vec![
                n.to_string(),
                inline.to_string(),
                marginal(0),
                call.to_string(),
                marginal(1),
                tail_cell,
                tail_marginal,
                (standalone as usize * n).to_string(),
            ]);
        }
        tables.push(t);
    }
    tables
}

/// One round of the kernel's ns per packet (BPF_PROG_TEST_RUN's average of `REPEAT`).
fn run_ns(fd: BorrowedFd<'_>, packet: &[u8]) -> u32 {
    xdpd::kernel::bpf::test_run(fd, packet, REPEAT).expect("BPF_PROG_TEST_RUN").duration_ns
}

/// The cost of per-member verdict counting (SetCounting) on inline chains:
/// two chains of the same members, one counting, measured in alternation
/// (best of `ROUNDS` each), so both see the same machine.
pub fn counting() -> Table {
    let mut t = Table::new(
        "counting",
        format!(
            "verdict counting: ns/packet of inline chains, counting off and on side by side (repeat {REPEAT}, \
             best of {} alternating rounds)",
            2 * ROUNDS
        ),
        &["members", "kind", "off", "on", "cost per member ns"],
    );
    let packet = udp_packet();
    for (kind, label) in [(Member::Trivial, "trivial"), (Member::Realistic, "realistic")] {
        for n in [1usize, 10, 50, 100] {
            let Ok(off) = chain_of(kind, n, LinkMode::Inline) else { continue }; // realistic: over 64 maps
            let mut on = chain_of(kind, n, LinkMode::Inline).expect("chain");
            on.set_counting(true).expect("counting on");
            let (mut best_off, mut best_on) = (u32::MAX, u32::MAX);
            for _ in 0..2 * ROUNDS {
                best_off = best_off.min(run_ns(off.program().expect("loaded").as_fd(), &packet));
                best_on = best_on.min(run_ns(on.program().expect("loaded").as_fd(), &packet));
            }
            t.row(vec![
                n.to_string(),
                label.to_string(),
                best_off.to_string(),
                best_on.to_string(),
                format!("{:.2}", (f64::from(best_on) - f64::from(best_off)) / n as f64),
            ]);
        }
    }
    t
}

/// What a held hook costs while no program runs (SetHold): the pass-through
/// program against a chain of one trivially passing member and of the
/// example ip_blocklist.
pub fn hold() -> Table {
    let mut t = Table::new(
        "hold",
        format!("held hook: ns/packet of what runs on an interface (repeat {REPEAT}, best of {ROUNDS})"),
        &["program", "ns/packet", "instructions"],
    );
    let pass = xdpd::engine::linker::pass_through(Default::default()).expect("pass-through");
    t.row(vec![
        "pass-through (held, no programs)".into(),
        best_ns(pass.as_fd()).to_string(),
        pass.insn_count.to_string(),
    ]);
    for (object, function) in [("basic", "xdp_pass"), ("ip_blocklist", "ip_blocklist")] {
        let mut chain = Chain::unattached();
        chain.add(xdpd_tests::load(object, function), AddOptions::default()).expect("add");
        let linked = chain.program().expect("loaded");
        t.row(vec![format!("chain of {function}"), best_ns(linked.as_fd()).to_string(), linked.insn_count.to_string()]);
    }
    t
}

fn verified_insns(fd: BorrowedFd<'_>) -> u32 {
    let mut info = libbpf_sys::bpf_prog_info::default();
    let mut len = std::mem::size_of_val(&info) as u32;
    // SAFETY: info is a valid bpf_prog_info of `len` bytes.
    unsafe { libbpf_sys::bpf_prog_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) };
    info.verified_insns
}

/// Time to link and verify a chain of N realistic members (the Nth addition).
pub fn verification() -> Table {
    let mut t = Table::new(
        "verification",
        "verification: adding the Nth realistic member (link + load + verify the whole chain), best of 3",
        &["members", "inline ms", "inline insns verified", "call ms", "call insns verified"],
    );
    for n in [1usize, 10, 20, 50, 100] {
        let mut row = vec![n.to_string()];
        for mode in [LinkMode::Inline, LinkMode::Call] {
            let Ok(mut chain) = chain_of(Member::Realistic, n - 1, mode) else {
                row.extend(["n/a (over 64 maps)".to_string(), "-".to_string()]);
                continue;
            };
            let bytes = xdpd_bpf::object_bytes("bench");
            let mut best = f64::MAX;
            for _ in 0..3 {
                let program = load(&bytes, Some("realistic"), DEFAULT_MAX_OBJECT_SIZE).expect("load");
                let start = Instant::now();
                let id = chain.add(program, AddOptions { priority: Some(1000), ..Default::default() }).expect("add");
                best = best.min(start.elapsed().as_secs_f64() * 1000.0);
                let verified = verified_insns(chain.program().expect("loaded").as_fd());
                if row.len() < if mode == LinkMode::Inline { 3 } else { 5 } {
                    row.push(String::new());
                    row.push(verified.to_string());
                }
                chain.remove(id).expect("remove");
            }
            let at = row.len() - 2;
            row[at] = format!("{best:.2}");
        }
        t.row(row);
    }
    t
}
