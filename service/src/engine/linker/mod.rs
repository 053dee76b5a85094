//! The userspace linker: one BPF program from a dispatcher and every member
//! of a chain, with the members' BTF, func_info and line_info merged so that
//! global subprograms, callbacks, kfuncs and source-annotated verifier logs
//! keep working.
//!
//! Each member is placed one of two ways:
//!
//! - **inline** (the fast path): the member's main function is spliced into
//!   the dispatcher. Its `exit`s become jumps to the member's proceed-on test,
//!   its calls and callback references are pointed at its subprograms (placed
//!   after the dispatcher), and the dispatcher keeps the context pointer in a
//!   callee-saved register (r6..r9) the member's main function never touches,
//!   so the member cannot disturb it. No call, no return: on CPUs with
//!   return-stack mitigations a BPF-to-BPF call+return costs several ns.
//! - **call**: the member is appended whole and called as a BPF-to-BPF
//!   subprogram. Used when inlining cannot be done safely: the member's main function uses
//!   all of r6..r9 (nowhere to keep the context), uses legacy packet loads
//!   (LD_ABS/LD_IND read r6 implicitly), or a subprogram refers back into the
//!   main function; and for the whole chain when the inlined chain does not
//!   verify (e.g. its main frame's stack, the largest of the inlined members',
//!   plus one member's call chain exceeds 512 bytes).
//!
//! ```text
//! dispatcher:  rC = r1                      ; context kept in a callee-saved register
//!   member i (inline):   r1 = rC
//!                        <main function>    ; exits jump to test_i
//!   member i (call):     r1 = rC
//!                        call member_i      ; r0 = its result
//!   test_i:  [count r0, when counting and the member proceeds on several actions]
//!            proceed-on test of r0          ; results >= 32 are always verdicts
//!            exit                           ; not proceeding: r0 is the verdict
//!                                           ; (counting: to an exit block, see `count`)
//!   ...
//!            w0 = XDP_PASS; exit            ; every member proceeded
//! then the subprograms of inlined members and the whole of called members
//! ```
//!
//! [`link`] runs in named phases, as libbpf's own linker does; the middle
//! three are pure functions over instruction slices, unit-tested beside them:
//!
//! 1. `plan`: which members are reachable, and each one's placement;
//! 2. `emit`: the dispatcher, tests, counters and tail, with every
//!    instruction's new place;
//! 3. `relocate`: calls, callback references and map descriptors;
//! 4. `debug_info`: the merged BTF and the translated func/line records;
//! 5. `load`: into the kernel (through `kernel::prog`);
//! 6. `diagnose`: a refusal turned into the member and its own instruction.
//!
//! When the inlined chain does not verify, the whole chain is linked again
//! with calls.
//!
//! A chain whose members cannot share one verifier context (see
//! `engine::segments`) is linked as several such programs, *segments*, by
//! `segmented`: each ends, where the dispatcher would return `XDP_PASS`, in a
//! tail call to the next through a program array of this version only
//! (`emit::tail_call`); they are linked back to front, since each names the
//! slot of the one after it.

mod count;
mod debug_info;
mod diagnose;
mod emit;
mod load;
mod plan;
mod relink;
mod relocate;
mod segmented;

pub use relink::{relink_one, Relinked};

use std::ops::Range;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use self::emit::{EmitMember, Next};
use self::load::Refusal;
use self::plan::Placement;
use super::actions::ActionSet;
use super::member::MemberId;
use super::object::{LoadedProgram, Privilege};
use super::segments::{self, Budget, MemberNeeds, SegmentPlan};
use super::stats::VerdictCounters;
use super::Error;
use crate::kernel::bpf::{self, ProgInfo, TestRun};
use crate::kernel::insn::Insn;
use crate::kernel::prog::DebugInfo;
use crate::kernel::prog_array::ProgArray;
use crate::kernel::KernelError;

/// Name of the linked program as the kernel shows it (`bpftool prog`).
pub const CHAIN_PROGRAM_NAME: &str = "xdpd_chain";

/// One member as the linker sees it.
pub struct LinkInput<'a> {
    /// The member, for naming it in a rejection and in the layout.
    pub id: MemberId,
    /// Its program as intake loaded it.
    pub program: &'a LoadedProgram,
    /// Results that let the next member run.
    pub proceed_on: ActionSet,
    /// Where to count the member's verdicts, when counting is on.
    pub counters: Option<&'a VerdictCounters>,
    /// Whose program it is: root's are verified with the service's
    /// privileges, a user's as an unprivileged loader's (in its own segment).
    pub privilege: Privilege,
}

/// How members are placed in the linked program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LinkMode {
    /// Inline every member where that is safe, call the others.
    #[default]
    Inline,
    /// Call every member as a subprogram.
    Call,
}

/// Where and how the chain is meant to run; offloaded programs are loaded for their device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkTarget {
    /// The device, for a program offloaded to a NIC.
    pub offload_ifindex: Option<u32>,
    /// The device the chain is bound to (a member uses XDP hints).
    pub dev_bound_ifindex: Option<u32>,
    /// Inline where possible, or call every member.
    pub mode: LinkMode,
    /// How the chain is cut into segments.
    pub budget: Budget,
}

/// How one program of the chain (a segment) is loaded.
#[derive(Debug, Clone, Copy)]
struct ProgramTarget {
    target: LinkTarget,
    /// The segment's verifier context.
    privilege: Privilege,
    /// XDP frags: the same for every segment of a chain (the program array requires it).
    frags: bool,
    /// The tail call to the next segment, if any.
    next: Option<Next>,
}

/// Where some of a member's instructions went: `range` in the linked
/// program holds the member's instructions from `member_offset` on.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Whose instructions.
    pub id: MemberId,
    /// Instructions of the linked program.
    pub range: Range<usize>,
    /// The member's own index of the first of them.
    pub member_offset: usize,
}

/// One loaded program of a chain.
#[derive(Debug)]
struct Program {
    fd: OwnedFd,
    info: ProgInfo,
    layout: Vec<Segment>,
    insn_count: usize,
    inlined_members: Vec<MemberId>,
    map_count: usize,
    verify_time: std::time::Duration,
}

/// One loaded segment of a segmented chain, as plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedSegment {
    /// Its members, in run order.
    pub members: Vec<MemberId>,
    /// The plan it was loaded by (members as indices into the chain's run order).
    pub plan: SegmentPlan,
    /// Kernel id of its program.
    pub prog_id: u32,
    /// Instructions of its program.
    pub insn_count: usize,
    /// Maps its program uses, as the kernel counts them (the array and the counter table included).
    pub map_count: usize,
    /// Instructions the verifier processed to accept it.
    pub verified_insns: u32,
    /// How long loading (verification) took.
    pub verify_time: std::time::Duration,
    /// What it was linked from, member by member: a change that leaves
    /// these as they are does not link it again.
    inputs: Vec<MemberKey>,
}

/// What of a member goes into its segment's program: id, proceed-on set,
/// counter slot, verifier context.
type MemberKey = (MemberId, ActionSet, Option<usize>, Privilege);

impl LinkInput<'_> {
    fn key(&self) -> MemberKey {
        (self.id, self.proceed_on, self.counters.map(VerdictCounters::slot), self.privilege)
    }
}

/// A loaded chain: one program, or segments that tail-call each other
/// through a program array that belongs to this version only.
#[derive(Debug)]
pub struct LinkedChain {
    /// The program the hook runs (the first segment).
    pub fd: OwnedFd,
    /// What the kernel reports about it (id, tag).
    pub info: ProgInfo,
    /// Where each member's instructions are in its segment's program.
    pub layout: Vec<Segment>,
    /// Instructions of all segments.
    pub insn_count: usize,
    /// Loaded with XDP frags support (every member declares it).
    pub frags: bool,
    /// How many members were inlined (the others are called).
    pub inlined: usize,
    /// The members whose main function was inlined.
    pub inlined_members: Vec<MemberId>,
    /// The segments in run order (one for a chain that fits one program).
    pub segments: Vec<LinkedSegment>,
    /// The programs of the segments after the first, kept open with the array.
    rest: Vec<OwnedFd>,
    /// The version's program array (a chain of one segment has none).
    array: Option<ProgArray>,
    /// What it was linked for (a change for another target links it all again).
    target: LinkTarget,
}

impl LinkedChain {
    /// How member `id` runs here: "inline" (spliced into the dispatcher),
    /// "call" (a BPF-to-BPF call) or "not-linked" (an earlier member ends
    /// the chain, so it was left out).
    pub fn linking_of(&self, id: MemberId) -> &'static str {
        if self.inlined_members.contains(&id) {
            "inline"
        } else if self.layout.iter().any(|s| s.id == id) {
            "call"
        } else {
            "not-linked"
        }
    }

    /// Runs the chain on one packet with BPF_PROG_TEST_RUN.
    pub fn test_run(&self, packet: &[u8], repeat: u32) -> Result<TestRun, KernelError> {
        bpf::test_run(self.fd.as_fd(), packet, repeat)
    }

    /// The loaded program, to attach or swap in.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The version's program array, when the chain has several segments.
    pub fn array(&self) -> Option<&ProgArray> {
        self.array.as_ref()
    }
}

/// Links `members` (in run order) into one XDP program, or into segments
/// when they cannot share one verifier context, and loads them.
pub fn link(members: &[LinkInput<'_>], target: LinkTarget) -> Result<LinkedChain, Error> {
    if members.is_empty() {
        return Err(Error::InvalidArgument("a chain needs at least one program".into()));
    }
    let members = &members[..plan::reachable(members.iter().map(|m| m.proceed_on))];
    let needs: Vec<MemberNeeds> = members.iter().map(|m| MemberNeeds::of(m.id, m.program, m.privilege)).collect();
    let plan = segments::plan(&needs, &target.budget)?;
    let frags = load::frags(members);
    if let [one] = plan.as_slice() {
        let uncounted: Vec<LinkInput<'_>>;
        let members = if one.uncounted {
            uncounted = members.iter().map(|m| LinkInput { counters: None, ..*m }).collect();
            &uncounted[..]
        } else {
            members
        };
        match link_program(members, ProgramTarget { target, privilege: one.privilege, frags, next: None }) {
            Ok(program) => return Ok(segmented::single(program, one.clone(), members, frags, target)),
            // Refused together (a combined limit, or one member's own fault): cut it
            // around the member at fault, so only a member failing alone fails the change.
            Err(Error::ChainRejected { .. }) if members.len() > 1 && target.offload_ifindex.is_none() => {}
            Err(e) => return Err(e),
        }
    }
    if target.offload_ifindex.is_some() {
        return Err(Error::LimitExceeded(format!(
            "an offloaded chain must fit one program, but these programs need {} (privilege, license or map budget)",
            plan.len()
        )));
    }
    segmented::link(members, &needs, plan, target, frags)
}

/// Links one program, inlined where possible; when the inlined program
/// does not verify, linked again with calls.
fn link_program(members: &[LinkInput<'_>], target: ProgramTarget) -> Result<Program, Error> {
    match link_as(members, target) {
        Err(Error::ChainRejected { .. }) if target.target.mode == LinkMode::Inline => {
            // Inlined, the chain exceeds a combined limit: try calling every member.
            tracing::debug!("the inlined chain does not verify; linking with calls");
            let mode = LinkMode::Call;
            link_as(members, ProgramTarget { target: LinkTarget { mode, ..target.target }, ..target })
        }
        other => other,
    }
}

/// The program a held interface runs while its chain has no member: every
/// packet passes (`w0 = XDP_PASS; exit`). Loaded like a chain (same name,
/// type and expected attach type, frags allowed) so any chain can replace it
/// through the link, and it can replace any chain.
pub fn pass_through(target: LinkTarget) -> Result<LinkedChain, Error> {
    let insns = [Insn::mov32_imm(crate::kernel::insn::R0, XDP_PASS), Insn::exit()];
    let started = std::time::Instant::now();
    let program = ProgramTarget { target, privilege: Privilege::Full, frags: true, next: None };
    let fd = load::load(&insns, None, &[], &program).map_err(|refusal| match refusal {
        Refusal::Other(e) => e,
        Refusal::Verifier { errno, log } => {
            Error::Kernel(KernelError::new(format!("loading the pass-through program: {log}"), errno))
        }
    })?;
    let verify_time = started.elapsed();
    let info = bpf::prog_info(fd.as_fd())?;
    let program = Program {
        fd,
        info,
        layout: Vec::new(),
        insn_count: insns.len(),
        inlined_members: Vec::new(),
        map_count: 0,
        verify_time,
    };
    let plan =
        SegmentPlan { members: 0..0, privilege: Privilege::Full, gpl: true, maps: 0, insns: 0, uncounted: false };
    Ok(segmented::single(program, plan, &[], true, target))
}

/// `XDP_PASS`.
const XDP_PASS: i32 = 2;

/// The linked program before loading.
struct Linked {
    insns: Vec<Insn>,
    debug: Option<DebugInfo>,
    layout: Vec<Segment>,
    inlined_members: Vec<MemberId>,
}

/// How the chain counts, when its members have counters (all share one
/// table); a chain offloaded to a NIC does not count (its helpers and maps
/// are the device's).
fn count_plan(members: &[LinkInput<'_>], target: &ProgramTarget) -> Option<count::CountPlan> {
    if target.target.offload_ifindex.is_some() {
        return None;
    }
    let table = members.iter().find_map(|m| m.counters)?.table();
    Some(count::CountPlan {
        map_fd: table.map_fd().as_raw_fd(),
        cpus: u32::try_from(table.cpus()).ok()?,
        region: u32::try_from(table.region_bytes()).ok()?,
        len_by_helper: target.privilege == Privilege::User || target.frags,
    })
}

/// plan → emit → relocate → debug info.
fn build(members: &[LinkInput<'_>], target: ProgramTarget) -> Result<Linked, KernelError> {
    let mode = target.target.mode;
    let placements: Vec<Placement> =
        members.iter().map(|m| plan::placement(&m.program.insns, &m.program.func_info, mode)).collect();
    let emit_members: Vec<EmitMember<'_>> = members
        .iter()
        .zip(&placements)
        .map(|(m, &placement)| EmitMember {
            id: m.id,
            insns: &m.program.insns,
            placement,
            proceed_on: m.proceed_on,
            slot: m.counters.map(VerdictCounters::slot),
        })
        .collect();
    let mut out = emit::emit(&emit_members, target.next, count_plan(members, &target).as_ref());
    for ((m, placement), place) in members.iter().zip(&placements).zip(&out.places) {
        relocate::member_refs(&mut out.insns, &m.program.insns, place, placement.main_len());
        let fds: Vec<i32> = m.program.maps.iter().map(|map| map.fd.as_raw_fd()).collect();
        relocate::map_fds(&mut out.insns, place, &m.program.map_refs, &fds);
    }
    relocate::member_calls(&mut out.insns, &out.calls, &out.places);
    let (debug, shifts) = debug_info::build(members, &placements, &out.places)?;
    for ((m, place), shift) in members.iter().zip(&out.places).zip(shifts) {
        relocate::local_type_ids(&mut out.insns, place, &m.program.type_id_refs, shift);
    }
    let inlined_members = members
        .iter()
        .zip(&placements)
        .filter(|(_, p)| matches!(p, Placement::Inline { .. }))
        .map(|(m, _)| m.id)
        .collect();
    Ok(Linked { insns: out.insns, debug, layout: out.layout, inlined_members })
}

/// Builds and loads one program with every member placed per `target.mode`.
fn link_as(members: &[LinkInput<'_>], target: ProgramTarget) -> Result<Program, Error> {
    let Linked { insns, debug, layout, inlined_members } = build(members, target)?;
    let started = std::time::Instant::now();
    let fd = load::load(&insns, debug, members, &target).map_err(|refusal| match refusal {
        Refusal::Other(e) => e,
        Refusal::Verifier { errno, log } => diagnose::rejection(&log, &layout, members, errno, |m| {
            let single = [LinkInput { counters: None, ..*m }];
            link_program(&single, ProgramTarget { next: None, ..target }).err()
        }),
    })?;
    let verify_time = started.elapsed();
    let info = bpf::prog_info(fd.as_fd())?;
    let map_count = bpf::prog_map_ids(fd.as_fd())?.len();
    Ok(Program { fd, info, layout, insn_count: insns.len(), inlined_members, map_count, verify_time })
}
