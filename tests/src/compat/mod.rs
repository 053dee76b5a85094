//! The compatibility suite: real XDP programs from public projects (sources
//! vendored in `tests/compat/`, see its SOURCES.md), each run standalone,
//! loaded the way libxdp loads it, and through xdpd's engine — alone, and
//! in a chain between two other members, inlined and called — on the same
//! crafted packets: verdict, output bytes and map contents must be identical.

pub mod frames;
pub mod maps;
pub mod standalone;

use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::path::PathBuf;

use xdpd::engine::object::{load_opts, LoadOptions, DEFAULT_MAX_OBJECT_SIZE};
use xdpd::engine::{Action, ActionSet, AddOptions, Chain, LinkMode, LoadedProgram, MemberId};

use self::standalone::Standalone;

/// Directory of the compiled suite (`<project>/<path>.o`).
pub const OBJECT_DIR: &str = env!("XDPD_COMPAT_OBJECTS");

/// One program of the suite.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// The public project it comes from.
    pub project: &'static str,
    /// Its object, relative to the project, without `.o`.
    pub object: &'static str,
    /// The function.
    pub function: &'static str,
    /// Refused, standalone and by xdpd: what xdpd's error must say.
    pub refused: Option<&'static str>,
}

impl Case {
    /// Path of the compiled object.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(OBJECT_DIR).join(self.project).join(format!("{}.o", self.object))
    }

    /// `project/object:function`.
    pub fn name(&self) -> String {
        format!("{}/{}:{}", self.project, self.object, self.function)
    }
}

const fn case(project: &'static str, object: &'static str, function: &'static str) -> Case {
    Case { project, object, function, refused: None }
}

/// A program that cannot run (refused standalone too), and what xdpd says.
const fn refused(project: &'static str, object: &'static str, function: &'static str, why: &'static str) -> Case {
    Case { project, object, function, refused: Some(why) }
}

/// Every program of the suite.
pub const CASES: &[Case] = &[
    case("xdp-tutorial", "basic01-xdp-pass/xdp_pass_kern", "xdp_prog_simple"),
    case("xdp-tutorial", "basic02-prog-by-name/xdp_prog_kern", "xdp_pass_func"),
    case("xdp-tutorial", "basic02-prog-by-name/xdp_prog_kern", "xdp_drop_func"),
    case("xdp-tutorial", "basic03-map-counter/xdp_prog_kern", "xdp_stats1_func"),
    // The tutorial's exercise before it is solved: no bounds check on the IPv6 header.
    refused("xdp-tutorial", "packet01-parsing/xdp_prog_kern", "xdp_parser_func", "R2 offset is outside of the packet"),
    case("xdp-tutorial", "packet02-rewriting/xdp_prog_kern", "xdp_port_rewrite_func"),
    case("xdp-tutorial", "packet02-rewriting/xdp_prog_kern", "xdp_vlan_swap_func"),
    case("xdp-tutorial", "packet03-redirecting/xdp_prog_kern", "xdp_icmp_echo_func"),
    case("xdp-tutorial", "packet03-redirecting/xdp_prog_kern", "xdp_redirect_func"),
    case("xdp-tutorial", "packet03-redirecting/xdp_prog_kern", "xdp_redirect_map_func"),
    case("xdp-tutorial", "packet03-redirecting/xdp_prog_kern", "xdp_router_func"),
    case("xdp-tutorial", "packet-solutions/xdp_prog_kern_02", "xdp_patch_ports_func"),
    case("xdp-tutorial", "packet-solutions/xdp_prog_kern_02", "xdp_vlan_swap_func"),
    case("xdp-tutorial", "packet-solutions/xdp_prog_kern_03", "xdp_icmp_echo_func"),
    case("xdp-tutorial", "packet-solutions/xdp_prog_kern_03", "xdp_redirect_map_func"),
    case("xdp-tutorial", "packet-solutions/xdp_prog_kern_03", "xdp_router_func"),
    case("xdp-tutorial", "packet-solutions/xdp_vlan01_kern", "xdp_vlan_01"),
    case("xdp-tutorial", "packet-solutions/xdp_vlan02_kern", "xdp_vlan_02"),
    case("xdp-tutorial", "experiment01-tailgrow/xdp_prog_kern", "tailgrow_pass"),
    case("xdp-tutorial", "experiment01-tailgrow/xdp_prog_kern", "tailgrow_tx"),
    case("xdp-tutorial", "advanced03-AF_XDP/af_xdp_kern", "xdp_sock_prog"),
    case("xdp-tools", "xdp-filter/xdpfilt_alw_all", "xdpfilt_alw_all"),
    case("xdp-tools", "xdp-filter/xdpfilt_alw_eth", "xdpfilt_alw_eth"),
    case("xdp-tools", "xdp-filter/xdpfilt_alw_ip", "xdpfilt_alw_ip"),
    case("xdp-tools", "xdp-filter/xdpfilt_alw_tcp", "xdpfilt_alw_tcp"),
    case("xdp-tools", "xdp-filter/xdpfilt_alw_udp", "xdpfilt_alw_udp"),
    case("xdp-tools", "xdp-filter/xdpfilt_dny_all", "xdpfilt_dny_all"),
    case("xdp-tools", "xdp-filter/xdpfilt_dny_eth", "xdpfilt_dny_eth"),
    case("xdp-tools", "xdp-filter/xdpfilt_dny_ip", "xdpfilt_dny_ip"),
    case("xdp-tools", "xdp-filter/xdpfilt_dny_tcp", "xdpfilt_dny_tcp"),
    case("xdp-tools", "xdp-filter/xdpfilt_dny_udp", "xdpfilt_dny_udp"),
    case("xdp-tools", "lib/testing/xdp_adjust_tail", "xdp_adjust_tail"),
    case("xdp-tools", "lib/testing/xdp_drop", "xdp_drop"),
    case("xdp-tools", "lib/testing/xdp_pass", "xdp_pass"),
    case("katran", "katran/lib/bpf/balancer.bpf", "balancer_ingress"),
    case("katran", "katran/decap/bpf/decap.bpf", "xdpdecap"),
    case("katran", "katran/lib/bpf/xdp_pktcntr", "pktcntr"),
    case("katran", "katran/lib/bpf/xdp_root", "xdp_root"),
    case("suricata", "ebpf/xdp_filter", "xdp_hashfilter"),
    case("suricata", "ebpf/xdp_lb", "xdp_loadfilter"),
    case("bpf-examples", "encap-forward/xdp_encap", "xdp_encap"),
    case("bpf-examples", "AF_XDP-example/xdpsock_kern", "xdp_sock_prog"),
    case("bpf-examples", "bpf-link-hang/xdp-pass", "xdp_pass"),
    case("cilium-ebpf", "docs/examples/getting_started/counter", "count_packets"),
    case("cilium-ebpf", "examples/xdp/xdp", "xdp_prog_func"),
    case("cilium-ebpf", "examples/xdp_live_frame/xdp", "xdp_prog_tx"),
];

/// What running one packet gave: verdict, output bytes.
type Run = (u32, Vec<u8>);

/// One way of running the program: its runs and its maps after the last packet.
struct Copy {
    label: &'static str,
    runs: Vec<Run>,
    maps: BTreeMap<String, maps::Contents>,
}

/// What the suite learned of one program run through xdpd.
#[derive(Debug, Clone)]
pub struct Report {
    /// The program.
    pub case: Case,
    /// Its ELF section.
    pub section: String,
    /// Instructions it adds to a chain (as verified standalone).
    pub insns: usize,
    /// Whether its main function was inlined in the chain between two members.
    pub inlined: bool,
    /// Verdicts it gave on the suite's packets: `(verdict, count)`.
    pub verdicts: BTreeMap<u32, usize>,
}

/// Loads the program through xdpd's intake, named as libbpf names it.
pub fn load(case: &Case) -> Result<LoadedProgram, xdpd::engine::Error> {
    let bytes = std::fs::read(case.path()).unwrap_or_else(|e| panic!("{}: {e}", case.path().display()));
    let object_name = xdpd::engine::object::object_name_of(&case.path());
    load_opts(
        &bytes,
        &LoadOptions {
            function: Some(case.function),
            max_size: DEFAULT_MAX_OBJECT_SIZE,
            object_name: object_name.as_deref(),
            ..Default::default()
        },
    )
}

/// Proceeds on PASS only, so the chain's verdict is the program's own.
fn middle(priority: i32) -> AddOptions {
    AddOptions { priority: Some(priority), proceed_on: Some(ActionSet::of(&[Action::Pass])), ..Default::default() }
}

/// The program in a chain: alone, or between two pass-through members.
fn chained(case: &Case, mode: LinkMode, between: bool) -> Result<(Chain, MemberId), String> {
    let program = load(case).map_err(|e| e.to_string())?;
    let mut chain = Chain::unattached().with_link_mode(mode);
    let e = |e: xdpd::engine::Error| e.to_string();
    if between {
        chain.add(crate::load("globaldata", "global_data"), middle(1)).map_err(e)?;
        chain.add(crate::load("basic", "xdp_pass"), middle(99)).map_err(e)?;
    }
    let id = chain.add(program, middle(50)).map_err(e)?;
    Ok((chain, id))
}

fn run_chain(label: &'static str, chain: &Chain, id: MemberId) -> Copy {
    let mut runs = Vec::new();
    for (name, packet) in frames::packets() {
        let out = chain.program().expect("linked").test_run(&packet, 1).unwrap_or_else(|e| panic!("{name}: {e}"));
        runs.push((out.retval, out.data));
    }
    let member = &chain.member(id).expect("member").program;
    Copy { label, runs, maps: maps::all(member.maps.iter().map(|m| (m.name.clone(), m.fd.as_fd()))) }
}

fn run_standalone(s: &Standalone) -> Copy {
    let mut runs = Vec::new();
    for (name, packet) in frames::packets() {
        let out = xdpd::kernel::bpf::test_run(s.prog(), &packet, 1).unwrap_or_else(|e| panic!("{name}: {e}"));
        runs.push((out.retval, out.data));
    }
    Copy { label: "standalone", runs, maps: maps::all(s.maps()) }
}

/// The first difference between the standalone copy and another, if any.
fn difference(reference: &Copy, other: &Copy) -> Option<String> {
    let packets = frames::packets();
    for (k, (name, _)) in packets.iter().enumerate() {
        let (a, b) = (&reference.runs[k], &other.runs[k]);
        if a.0 != b.0 {
            return Some(format!("{}: packet {name}: verdict {} standalone, {} here", other.label, a.0, b.0));
        }
        if a.1 != b.1 {
            return Some(format!("{}: packet {name}: output bytes differ", other.label));
        }
    }
    let (ma, mb) = (&reference.maps, &other.maps);
    if ma.keys().ne(mb.keys()) {
        return Some(format!("{}: map names {:?} standalone, {:?} here", other.label, ma.keys(), mb.keys()));
    }
    let map = ma.keys().find(|m| ma[*m] != mb[*m])?;
    Some(format!("{}: after every packet, map '{map}' differs", other.label))
}

/// Compares the program standalone with `prog`, a chain program that runs
/// it between members that pass every packet (as the service linked it),
/// and `maps`, the program's maps in that chain.
pub fn compare_chain(
    case: &Case,
    label: &'static str,
    prog: std::os::fd::BorrowedFd<'_>,
    maps: Vec<(String, std::os::fd::BorrowedFd<'_>)>,
) -> Result<(), String> {
    let s = Standalone::load(&case.path(), case.function).map_err(|e| format!("standalone: {e}"))?;
    let reference = run_standalone(&s);
    let mut runs = Vec::new();
    for (name, packet) in frames::packets() {
        let out = xdpd::kernel::bpf::test_run(prog, &packet, 1).map_err(|e| format!("{name}: {e}"))?;
        runs.push((out.retval, out.data));
    }
    difference(&reference, &Copy { label, runs, maps: maps::all(maps) }).map_or(Ok(()), Err)
}

/// What a program the suite expects refused got: `Ok` with xdpd's reason
/// when it is refused standalone and by xdpd with the expected words.
pub fn check_refused(case: &Case, why: &str) -> Result<String, String> {
    if Standalone::load(&case.path(), case.function).is_ok() {
        return Err("loads standalone, but the suite expects it refused".into());
    }
    match load(case) {
        Ok(_) => Err("xdpd accepts it, but it is refused standalone".into()),
        Err(e) if e.to_string().contains(why) => Ok(e.to_string().lines().next().unwrap_or_default().to_string()),
        Err(e) => Err(format!("xdpd refuses it, but not saying '{why}': {e}")),
    }
}

/// Runs one program every way; `Err` names the first difference, or why
/// xdpd refused a program that loads standalone.
pub fn check(case: &Case) -> Result<Report, String> {
    check_against(case, case)
}

/// Like [`check`], with `reference` standalone and `case` through xdpd (for
/// showing that the suite sees a difference).
pub fn check_against(reference: &Case, case: &Case) -> Result<Report, String> {
    let s = Standalone::load(&reference.path(), reference.function).map_err(|e| format!("standalone: {e}"))?;
    let reference = run_standalone(&s);
    let mut inlined = false;
    let mut insns = 0;
    let mut section = String::new();
    for (label, mode, between) in [
        ("xdpd alone", LinkMode::Inline, false),
        ("xdpd between two members, inlined", LinkMode::Inline, true),
        ("xdpd between two members, called", LinkMode::Call, true),
    ] {
        let (chain, id) = chained(case, mode, between).map_err(|e| format!("{label}: refused: {e}"))?;
        if between && mode == LinkMode::Inline {
            inlined = chain.program().is_some_and(|p| p.inlined_members.contains(&id));
            let member = &chain.member(id).expect("member").program;
            (insns, section) = (member.insn_count(), member.section.clone());
        }
        if let Some(diff) = difference(&reference, &run_chain(label, &chain, id)) {
            return Err(diff);
        }
    }
    let mut verdicts = BTreeMap::new();
    for (v, _) in &reference.runs {
        *verdicts.entry(*v).or_insert(0) += 1;
    }
    Ok(Report { case: *case, section, insns, inlined, verdicts })
}

/// Runs this thread on the CPU it is on, so per-CPU map values land in the
/// same slot in every copy.
pub fn stay_on_this_cpu() {
    // SAFETY: plain system calls on this thread with a zeroed, then filled, set.
    unsafe {
        let cpu = libc::sched_getcpu();
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu.max(0) as usize, &mut set);
        assert_eq!(libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set), 0);
    }
}
