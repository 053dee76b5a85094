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
//!   test_i:  [count r0 in the member's counters, when counting is on]
//!            proceed-on test of r0          ; results >= 32 are always verdicts
//!            exit                           ; not proceeding: r0 is the verdict
//!   ...
//!            w0 = XDP_PASS; exit            ; every member proceeded
//! then the subprograms of inlined members and the whole of called members
//! ```

use std::collections::HashMap;
use std::ops::Range;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use super::actions::{Action, ActionSet};
use super::chain::MemberId;
use super::elf::is_gpl_compatible;
use super::object::{verifier_summary, LoadedProgram, Privilege};
use super::stats::VerdictCounters;
use super::Error;
use crate::kernel::bpf::{self, ProgInfo, TestRun};
use crate::kernel::btf::{Btf, FuncInfo, LineInfo};
use crate::kernel::insn::{self, Insn, R0, R1, R6};
use crate::kernel::prog::{self, DebugInfo, Image};
use crate::kernel::KernelError;

/// Name of the linked program as the kernel shows it (`bpftool prog`).
pub const CHAIN_PROGRAM_NAME: &str = "xdpd_chain";
const CHAIN_PROGRAM_CNAME: &std::ffi::CStr = c"xdpd_chain";

/// One member as the linker sees it.
pub struct LinkInput<'a> {
    pub id: MemberId,
    pub program: &'a LoadedProgram,
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
    pub offload_ifindex: Option<u32>,
    pub mode: LinkMode,
    /// With a user's program in the chain, verify it as an unprivileged loader would.
    pub privilege: Privilege,
}

/// Where some of a member's instructions went: `range` in the linked
/// program holds the member's instructions from `member_offset` on.
#[derive(Debug, Clone)]
pub struct Segment {
    pub id: MemberId,
    pub range: Range<usize>,
    pub member_offset: usize,
}

/// A loaded chain program.
#[derive(Debug)]
pub struct LinkedChain {
    pub fd: OwnedFd,
    pub info: ProgInfo,
    /// Where each member's instructions are in the linked program.
    pub layout: Vec<Segment>,
    pub insn_count: usize,
    pub frags: bool,
    /// How many members were inlined (the others are called).
    pub inlined: usize,
}

impl LinkedChain {
    /// Runs the chain on one packet with BPF_PROG_TEST_RUN.
    pub fn test_run(&self, packet: &[u8], repeat: u32) -> Result<TestRun, KernelError> {
        bpf::test_run(self.fd.as_fd(), packet, repeat)
    }

    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Instruction offsets where a member's functions start.
fn subprog_starts(insns: &[Insn]) -> Vec<usize> {
    let mut starts = vec![0];
    starts.extend(func_refs(insns).map(|(_, target)| target));
    starts.sort_unstable();
    starts.dedup();
    starts
}

/// `(instruction, target)` of every subprogram call and callback reference.
fn func_refs(insns: &[Insn]) -> impl Iterator<Item = (usize, usize)> + '_ {
    insns.iter().enumerate().filter_map(|(i, ins)| {
        let is_ref = ins.is_subprog_call() || (ins.is_ld_imm64() && ins.src() == insn::PSEUDO_FUNC);
        is_ref.then(|| usize::try_from(i as i64 + 1 + ins.imm as i64).ok()).flatten().map(|t| (i, t))
    })
}

/// Length of the member's main function: up to its first subprogram.
fn main_len(program: &LoadedProgram) -> usize {
    match program.func_info.get(1) {
        Some(f) => f.insn_off as usize,
        None => subprog_starts(&program.insns).get(1).copied().unwrap_or(program.insns.len()),
    }
}

/// Registers an instruction names (dst, and src where it is a register).
fn registers(ins: Insn) -> [Option<u8>; 2] {
    let class = ins.code & 0x07;
    let src_is_reg = match class {
        insn::BPF_LD => false,
        insn::BPF_ALU | insn::BPF_ALU64 | insn::BPF_JMP | insn::BPF_JMP32 => {
            ins.code & insn::BPF_X != 0 && ins.code != insn::CALL
        }
        _ => true, // LDX, ST, STX
    };
    [Some(ins.regs & 0x0f), src_is_reg.then_some(ins.regs >> 4)]
}

/// The callee-saved register where the dispatcher can keep the context while
/// the member's main function runs inline, if inlining it is safe.
fn inline_register(program: &LoadedProgram) -> Option<(u8, usize)> {
    let main = main_len(program);
    let code = &program.insns;
    // Subprograms must not refer back into the main function.
    if func_refs(code).any(|(at, target)| at >= main && target < main) {
        return None;
    }
    let mut used = [false; 11];
    let mut i = 0;
    while i < main {
        let ins = code[i];
        let class = ins.code & 0x07;
        if class == insn::BPF_LD && ins.code != insn::LD_IMM64 {
            return None; // LD_ABS / LD_IND use r6 implicitly
        }
        for r in registers(ins).into_iter().flatten() {
            used[(r as usize).min(10)] = true;
        }
        i += if ins.is_ld_imm64() { 2 } else { 1 };
    }
    (6..=9u8).find(|&r| !used[r as usize]).map(|r| (r, main))
}

/// The test after a member: fall through when its result is in `set`, else exit.
fn proceed_test(set: ActionSet) -> Vec<Insn> {
    let mask = set.mask();
    if mask == 0 {
        vec![Insn::exit()]
    } else if mask.is_power_of_two() {
        vec![Insn::jeq32_imm(R0, mask.trailing_zeros() as i32, 1), Insn::exit()]
    } else {
        vec![
            Insn::jgt32_imm(R0, 31, 3),
            Insn::mov32_imm(R1, mask as i32),
            Insn::rsh32_reg(R1, R0),
            Insn::jset32_imm(R1, 1, 1),
            Insn::exit(),
        ]
    }
}

/// A relative jump from `from` to `to` (gotol when out of a 16-bit reach).
fn jump(from: usize, to: usize) -> Insn {
    let off = to as i64 - from as i64 - 1;
    match i16::try_from(off) {
        Ok(off) => Insn::ja(off),
        Err(_) => Insn::gotol(off as i32),
    }
}

/// A member's debug info with type ids and strings already in the merged BTF,
/// instruction offsets still the member's own.
#[derive(Default)]
struct MemberDebug {
    funcs: Vec<FuncInfo>,
    lines: Vec<LineInfo>,
}

/// Appends every member's BTF to one; returns it with the dispatcher's FUNC
/// and each member's debug info translated into it.
fn merge_btf(
    members: &[LinkInput<'_>],
    with_lines: bool,
) -> Result<(Btf, u32, Option<LineInfo>, Vec<MemberDebug>), KernelError> {
    let mut btf = Btf::empty()?;
    let int = btf.add_int("int", 4, true)?;
    let ctx = btf.add_struct_fwd("xdp_md")?;
    let ctx_ptr = btf.add_ptr(ctx)?;
    let proto = btf.add_func_proto(int, &[("ctx", ctx_ptr)])?;
    let dispatcher = btf.add_func("xdpd_dispatcher", true, proto)?;
    let dispatcher_line = if with_lines {
        let file = btf.add_str("xdpd")?;
        let line = btf.add_str("xdpd dispatcher")?;
        Some(LineInfo { insn_off: 0, file_name_off: file, line_off: line, line_col: 0 })
    } else {
        None
    };
    let mut out = Vec::with_capacity(members.len());
    for m in members {
        let mut debug = MemberDebug::default();
        match &m.program.btf {
            Some(raw) => {
                let src = Btf::from_raw(raw)?;
                let shift = btf.append(&src)? - 1;
                debug.funcs = m
                    .program
                    .func_info
                    .iter()
                    .map(|f| FuncInfo { insn_off: f.insn_off, type_id: f.type_id + shift })
                    .collect();
                if with_lines {
                    let mut strings = HashMap::new();
                    for l in &m.program.line_info {
                        let mut remap = |off: u32| -> Result<u32, KernelError> {
                            if let Some(&new) = strings.get(&off) {
                                return Ok(new);
                            }
                            let new = btf.add_str(&src.name(off).unwrap_or_default())?;
                            strings.insert(off, new);
                            Ok(new)
                        };
                        debug.lines.push(LineInfo {
                            file_name_off: remap(l.file_name_off)?,
                            line_off: remap(l.line_off)?,
                            ..*l
                        });
                    }
                }
            }
            None => {
                // No BTF: describe each function as a static `int f(ctx)`;
                // static functions are verified in their caller's context.
                for (k, start) in subprog_starts(&m.program.insns).into_iter().enumerate() {
                    let name = if k == 0 { m.program.name.clone() } else { format!("{}_{k}", m.program.name) };
                    let func = btf.add_func(&name, false, proto)?;
                    debug.funcs.push(FuncInfo { insn_off: start as u32, type_id: func });
                }
            }
        }
        out.push(debug);
    }
    Ok((btf, dispatcher, dispatcher_line, out))
}

/// The instructions and debug info of a linked chain, before loading.
struct Assembly {
    insns: Vec<Insn>,
    btf: Option<Btf>,
    func_info: Vec<FuncInfo>,
    line_info: Vec<LineInfo>,
    layout: Vec<Segment>,
    inlined: usize,
}

/// Lays the members out (see the module documentation).
fn assemble(members: &[LinkInput<'_>], mode: LinkMode) -> Result<Assembly, KernelError> {
    let with_btf = members.iter().any(|m| m.program.btf.is_some());
    let with_lines = with_btf && members.iter().all(|m| !m.program.line_info.is_empty());
    let (btf, dispatcher_func, dispatcher_line, debug) = if with_btf {
        let (btf, func, line, debug) = merge_btf(members, with_lines)?;
        (Some(btf), func, line, debug)
    } else {
        (None, 0, None, members.iter().map(|_| MemberDebug::default()).collect())
    };
    let placements: Vec<Option<(u8, usize)>> =
        members.iter().map(|m| if mode == LinkMode::Inline { inline_register(m.program) } else { None }).collect();

    // The dispatcher region: prologues, inlined main functions, tests.
    let mut code = Vec::new();
    let mut calls = Vec::new(); // (call instruction, member index)
    let mut ctx = R1; // where the context is now
    let mut main_at = vec![0usize; members.len()];
    for (i, m) in members.iter().enumerate() {
        match placements[i] {
            Some((reg, main)) => {
                if ctx != reg {
                    code.push(Insn::mov64_reg(reg, ctx));
                }
                if ctx != R1 {
                    code.push(Insn::mov64_reg(R1, reg));
                }
                ctx = reg;
                main_at[i] = code.len();
                code.extend_from_slice(&m.program.insns[..main]);
            }
            None => {
                if ctx == R1 {
                    code.push(Insn::mov64_reg(R6, R1));
                    ctx = R6;
                } else {
                    code.push(Insn::mov64_reg(R1, ctx));
                }
                calls.push((code.len(), i));
                code.push(Insn::call_subprog(0));
            }
        }
        let test_at = code.len();
        if let Some((_, main)) = placements[i] {
            // The main function's exits end the member: jump to its test.
            let start = main_at[i];
            for (j, ins) in code.iter_mut().enumerate().skip(start).take(main) {
                if ins.code == insn::BPF_JMP | insn::BPF_EXIT {
                    *ins = jump(j, test_at);
                }
            }
        }
        if let Some(counters) = m.counters {
            code.extend(counters.count_r0());
        }
        code.extend(proceed_test(m.proceed_on));
    }
    // When the last member never proceeds, a final "pass" would be unreachable
    // code, which the verifier refuses.
    if members.last().is_some_and(|m| m.proceed_on.mask() != 0) {
        code.push(Insn::mov32_imm(R0, Action::Pass as i32));
        code.push(Insn::exit());
    }

    // The tail: subprograms of inlined members, the whole of called members.
    let mut func_info = Vec::new();
    let mut line_info: Vec<LineInfo> = dispatcher_line.into_iter().collect();
    let mut tail_lines = Vec::new();
    if btf.is_some() {
        func_info.push(FuncInfo { insn_off: 0, type_id: dispatcher_func });
    }
    let mut layout = Vec::new();
    let mut places: Vec<Vec<usize>> = Vec::with_capacity(members.len());
    for (i, m) in members.iter().enumerate() {
        let insns = &m.program.insns;
        let main = placements[i].map_or(0, |(_, main)| main);
        let tail_at = code.len();
        code.extend_from_slice(&insns[main..]);
        let place: Vec<usize> =
            (0..insns.len()).map(|j| if j < main { main_at[i] + j } else { tail_at + j - main }).collect();
        if main > 0 {
            layout.push(Segment { id: m.id, range: main_at[i]..main_at[i] + main, member_offset: 0 });
        }
        if insns.len() > main {
            layout.push(Segment { id: m.id, range: tail_at..tail_at + insns.len() - main, member_offset: main });
        }
        // Calls and callback references from the moved main function.
        for (at, target) in func_refs(insns).filter(|&(at, _)| at < main).collect::<Vec<_>>() {
            let from = place[at];
            code[from].imm = place[target] as i32 - from as i32 - 1;
        }
        for &(at, map) in &m.program.map_refs {
            code[place[at]].imm = m.program.maps[map].fd.as_raw_fd();
        }
        for f in debug[i].funcs.iter().filter(|f| (f.insn_off as usize) >= main || main == 0) {
            func_info.push(FuncInfo { insn_off: place[f.insn_off as usize] as u32, ..*f });
        }
        for l in &debug[i].lines {
            let moved = LineInfo { insn_off: place[l.insn_off as usize] as u32, ..*l };
            if (l.insn_off as usize) < main {
                line_info.push(moved);
            } else {
                tail_lines.push(moved);
            }
        }
        places.push(place);
    }
    for (at, i) in calls {
        code[at].imm = places[i][0] as i32 - at as i32 - 1;
    }
    line_info.extend(tail_lines);
    let inlined = placements.iter().filter(|p| p.is_some()).count();
    Ok(Assembly { insns: code, btf, func_info, line_info, layout, inlined })
}

/// Links `members` (in run order) into one XDP program and loads it.
pub fn link(members: &[LinkInput<'_>], target: LinkTarget) -> Result<LinkedChain, Error> {
    if members.is_empty() {
        return Err(Error::InvalidArgument("a chain needs at least one program".into()));
    }
    // Members after one that never proceeds can never run; the verifier
    // refuses unreachable code, so they are not linked (they stay members).
    let reachable = members.iter().position(|m| m.proceed_on.mask() == 0).map_or(members.len(), |i| i + 1);
    let members = &members[..reachable];
    match load(members, target) {
        Err(Error::ChainRejected { .. }) if target.mode == LinkMode::Inline => {
            // Inlined, the chain exceeds a combined limit: try calling every member.
            tracing::debug!("the inlined chain does not verify; linking with calls");
            load(members, LinkTarget { mode: LinkMode::Call, ..target })
        }
        other => other,
    }
}

fn load(members: &[LinkInput<'_>], target: LinkTarget) -> Result<LinkedChain, Error> {
    let Assembly { insns, btf, func_info, line_info, layout, inlined } = assemble(members, target.mode)?;
    let debug = btf.map(|btf| DebugInfo { btf, func_info, line_info });
    let frags = members.iter().all(|m| m.program.frags);
    let license = if members.iter().all(|m| is_gpl_compatible(&m.program.license)) { c"GPL" } else { c"Proprietary" };
    let image = Image {
        name: CHAIN_PROGRAM_CNAME,
        license,
        insns: &insns,
        frags,
        offload_ifindex: target.offload_ifindex,
        as_user: target.privilege == Privilege::User,
    };
    let fd = prog::load(&image, debug).map_err(|refused| match refused.log {
        Some(log) => chain_rejection(&log, &layout, members, refused.errno, target),
        None => Error::Kernel(KernelError::new("loading the linked chain", refused.errno)),
    })?;
    let info = bpf::prog_info(fd.as_fd())?;
    Ok(LinkedChain { fd, info, layout, insn_count: insns.len(), frags, inlined })
}

/// Turns the verifier's verdict on a linked chain into an error that names
/// the member and its own instruction index.
fn chain_rejection(log: &str, layout: &[Segment], members: &[LinkInput<'_>], errno: i32, target: LinkTarget) -> Error {
    let summary = if log.trim().is_empty() {
        format!("the kernel refused the linked chain ({})", std::io::Error::from_raw_os_error(errno))
    } else {
        verifier_summary(log)
    };
    // The last instruction the verifier looked at: a line starting "N: ".
    let failing = log.lines().rev().find_map(|l| l.split_once(": ").and_then(|(n, _)| n.trim().parse::<usize>().ok()));
    let located = failing.and_then(|at| {
        let segment = layout.iter().find(|s| s.range.contains(&at))?;
        let member = members.iter().find(|m| m.id == segment.id)?;
        Some((segment.id, member, at - segment.range.start + segment.member_offset))
    });
    match located {
        Some((id, m, local)) => Error::ChainRejected {
            member_id: Some(id),
            member: m.program.name.clone(),
            insn: Some(local),
            summary,
            log: log.to_string(),
        },
        None if members.len() > 1 => {
            // A limit checked before any instruction (call depth, ...): find the
            // member that fails even alone behind the dispatcher.
            let alone = members.iter().find_map(|m| {
                let single = [LinkInput { id: m.id, program: m.program, proceed_on: m.proceed_on, counters: None }];
                link(&single, target).err().map(|e| (m, e))
            });
            match alone {
                Some((_, e @ Error::ChainRejected { .. })) => e,
                _ => Error::ChainRejected {
                    member_id: None,
                    member: "(the chain as a whole)".into(),
                    insn: None,
                    summary,
                    log: log.to_string(),
                },
            }
        }
        None => Error::ChainRejected {
            member_id: members.first().map(|m| m.id),
            member: members.first().map_or_else(String::new, |m| m.program.name.clone()),
            insn: None,
            summary,
            log: log.to_string(),
        },
    }
}
