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

mod count;
mod debug_info;
mod diagnose;
mod emit;
mod load;
mod plan;
mod relocate;

use std::ops::Range;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use self::emit::EmitMember;
use self::load::Refusal;
use self::plan::Placement;
use super::actions::ActionSet;
use super::member::MemberId;
use super::object::{LoadedProgram, Privilege};
use super::stats::VerdictCounters;
use super::Error;
use crate::kernel::bpf::{self, ProgInfo, TestRun};
use crate::kernel::insn::Insn;
use crate::kernel::prog::DebugInfo;
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
#[derive(Debug, Clone, Copy, Default)]
pub struct LinkTarget {
    /// The device, for a program offloaded to a NIC.
    pub offload_ifindex: Option<u32>,
    /// Inline where possible, or call every member.
    pub mode: LinkMode,
    /// With a user's program in the chain, verify it as an unprivileged loader would.
    pub privilege: Privilege,
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

/// A loaded chain program.
#[derive(Debug)]
pub struct LinkedChain {
    /// The loaded program.
    pub fd: OwnedFd,
    /// What the kernel reports about it (id, tag).
    pub info: ProgInfo,
    /// Where each member's instructions are in the linked program.
    pub layout: Vec<Segment>,
    /// Instructions of the linked program.
    pub insn_count: usize,
    /// Loaded with XDP frags support (every member declares it).
    pub frags: bool,
    /// How many members were inlined (the others are called).
    pub inlined: usize,
    /// The members whose main function was inlined.
    pub inlined_members: Vec<MemberId>,
    /// Maps the linked program uses, as the kernel counts them.
    pub map_count: usize,
    /// How long loading (verification) took.
    pub verify_time: std::time::Duration,
}

impl LinkedChain {
    /// Runs the chain on one packet with BPF_PROG_TEST_RUN.
    pub fn test_run(&self, packet: &[u8], repeat: u32) -> Result<TestRun, KernelError> {
        bpf::test_run(self.fd.as_fd(), packet, repeat)
    }

    /// The loaded program, to attach or swap in.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Links `members` (in run order) into one XDP program and loads it.
pub fn link(members: &[LinkInput<'_>], target: LinkTarget) -> Result<LinkedChain, Error> {
    if members.is_empty() {
        return Err(Error::InvalidArgument("a chain needs at least one program".into()));
    }
    let members = &members[..plan::reachable(members.iter().map(|m| m.proceed_on))];
    match link_as(members, target) {
        Err(Error::ChainRejected { .. }) if target.mode == LinkMode::Inline => {
            // Inlined, the chain exceeds a combined limit: try calling every member.
            tracing::debug!("the inlined chain does not verify; linking with calls");
            link_as(members, LinkTarget { mode: LinkMode::Call, ..target })
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
    let fd = load::load(&insns, None, &[], target).map_err(|refusal| match refusal {
        Refusal::Other(e) => e,
        Refusal::Verifier { errno, log } => {
            Error::Kernel(KernelError::new(format!("loading the pass-through program: {log}"), errno))
        }
    })?;
    let verify_time = started.elapsed();
    let info = bpf::prog_info(fd.as_fd())?;
    Ok(LinkedChain {
        fd,
        info,
        layout: Vec::new(),
        insn_count: insns.len(),
        frags: true,
        inlined: 0,
        inlined_members: Vec::new(),
        map_count: 0,
        verify_time,
    })
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
fn count_plan(members: &[LinkInput<'_>], target: LinkTarget) -> Option<count::CountPlan> {
    if target.offload_ifindex.is_some() {
        return None;
    }
    let table = members.iter().find_map(|m| m.counters)?.table();
    Some(count::CountPlan {
        map_fd: table.map_fd().as_raw_fd(),
        cpus: u32::try_from(table.cpus()).ok()?,
        region: u32::try_from(table.region_bytes()).ok()?,
        len_by_helper: target.privilege == Privilege::User || load::frags(members),
    })
}

/// plan → emit → relocate → debug info.
fn build(members: &[LinkInput<'_>], target: LinkTarget) -> Result<Linked, KernelError> {
    let mode = target.mode;
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
    let mut out = emit::emit(&emit_members, count_plan(members, target).as_ref());
    for ((m, placement), place) in members.iter().zip(&placements).zip(&out.places) {
        relocate::member_refs(&mut out.insns, &m.program.insns, place, placement.main_len());
        let fds: Vec<i32> = m.program.maps.iter().map(|map| map.fd.as_raw_fd()).collect();
        relocate::map_fds(&mut out.insns, place, &m.program.map_refs, &fds);
    }
    relocate::member_calls(&mut out.insns, &out.calls, &out.places);
    let debug = debug_info::build(members, &placements, &out.places)?;
    let inlined_members = members
        .iter()
        .zip(&placements)
        .filter(|(_, p)| matches!(p, Placement::Inline { .. }))
        .map(|(m, _)| m.id)
        .collect();
    Ok(Linked { insns: out.insns, debug, layout: out.layout, inlined_members })
}

/// Builds and loads the chain with every member placed per `target.mode`.
fn link_as(members: &[LinkInput<'_>], target: LinkTarget) -> Result<LinkedChain, Error> {
    let Linked { insns, debug, layout, inlined_members } = build(members, target)?;
    let started = std::time::Instant::now();
    let fd = load::load(&insns, debug, members, target).map_err(|refusal| match refusal {
        Refusal::Other(e) => e,
        Refusal::Verifier { errno, log } => diagnose::rejection(&log, &layout, members, errno, |m| {
            let single = [LinkInput { id: m.id, program: m.program, proceed_on: m.proceed_on, counters: None }];
            link(&single, target).err()
        }),
    })?;
    let verify_time = started.elapsed();
    let info = bpf::prog_info(fd.as_fd())?;
    let map_count = bpf::prog_map_ids(fd.as_fd())?.len();
    let (insn_count, frags, inlined) = (insns.len(), load::frags(members), inlined_members.len());
    Ok(LinkedChain { fd, info, layout, insn_count, frags, inlined, inlined_members, map_count, verify_time })
}
