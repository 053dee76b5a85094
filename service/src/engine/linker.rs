//! The userspace linker: one BPF program from a dispatcher and every member
//! of a chain, with the members' BTF, func_info and line_info merged so that
//! global subprograms, callbacks, kfuncs and source-annotated verifier logs
//! keep working.
//!
//! Layout of the linked program (call linking):
//!
//! ```text
//! dispatcher:  r6 = r1                       ; keep ctx in a callee-saved register
//!              for each member i:
//!                r1 = r6
//!                call member_i               ; BPF-to-BPF call, r0 = its result
//!                if w0 > 31 goto verdict_i   ; results >= 32 are always verdicts
//!                w1 = proceed_mask_i
//!                w1 >>= w0
//!                if w1 & 1 goto next_i       ; result in the proceed-on set
//!   verdict_i:   exit                        ; r0 is the packet's verdict
//!   next_i:      ...
//!              w0 = XDP_PASS                 ; every member proceeded (left out when
//!              exit                          ;   the last member never proceeds)
//! member_0:    its instructions (main function, then its subprograms)
//! member_1:    ...
//! ```

use std::ffi::{c_char, CStr, CString};
use std::ops::Range;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::actions::{Action, ActionSet};
use super::btf::Btf;
use super::chain::MemberId;
use super::elf::is_gpl_compatible;
use super::insn::{self, Insn, R0, R1, R6};
use super::object::{verifier_summary, FuncInfo, LineInfo, LoadedProgram};
use super::Error;
use crate::kernel::bpf::{self, ProgInfo, TestRun};
use crate::kernel::KernelError;

/// Name of the linked program as the kernel shows it (`bpftool prog`).
pub const CHAIN_PROGRAM_NAME: &str = "xdpd_chain";
const LOG_SIZE: usize = 4 << 20;

/// One member as the linker sees it.
pub struct LinkInput<'a> {
    pub id: MemberId,
    pub program: &'a LoadedProgram,
    pub proceed_on: ActionSet,
}

/// Where the chain is meant to run; offloaded programs are loaded for their device.
#[derive(Debug, Clone, Copy, Default)]
pub struct LinkTarget {
    pub offload_ifindex: Option<u32>,
}

/// A loaded chain program.
#[derive(Debug)]
pub struct LinkedChain {
    pub fd: OwnedFd,
    pub info: ProgInfo,
    /// Instruction range of each member in the linked program.
    pub layout: Vec<(MemberId, Range<usize>)>,
    pub insn_count: usize,
    pub frags: bool,
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

/// Builds the dispatcher for members of the given lengths and proceed-on sets.
fn dispatcher(members: &[(usize, ActionSet)]) -> Vec<Insn> {
    let block_len = |set: ActionSet| if set.mask() == 0 { 3 } else { 7 };
    // When the last member never proceeds, the final "pass" is unreachable and
    // the verifier refuses unreachable code: leave it out.
    let tail = if members.last().is_some_and(|&(_, set)| set.mask() == 0) { 0 } else { 2 };
    let len = 1 + members.iter().map(|&(_, set)| block_len(set)).sum::<usize>() + tail;
    let mut code = Vec::with_capacity(len);
    code.push(Insn::mov64_reg(R6, R1));
    let mut member_start = len;
    for &(member_len, set) in members {
        code.push(Insn::mov64_reg(R1, R6));
        let here = code.len() as i32;
        code.push(Insn::call_subprog(member_start as i32 - here - 1));
        if set.mask() != 0 {
            code.push(Insn::jgt32_imm(R0, 31, 3));
            code.push(Insn::mov32_imm(R1, set.mask() as i32));
            code.push(Insn::rsh32_reg(R1, R0));
            code.push(Insn::jset32_imm(R1, 1, 1));
        }
        code.push(Insn::exit());
        member_start += member_len;
    }
    if tail != 0 {
        code.push(Insn::mov32_imm(R0, Action::Pass as i32));
        code.push(Insn::exit());
    }
    debug_assert_eq!(code.len(), len);
    code
}

/// Instruction offsets where a member's functions start (for members without BTF).
fn subprog_starts(insns: &[Insn]) -> Vec<usize> {
    let mut starts = vec![0];
    for (i, ins) in insns.iter().enumerate() {
        let is_func_ref = ins.is_subprog_call() || (ins.is_ld_imm64() && ins.src() == insn::PSEUDO_FUNC);
        if is_func_ref {
            let target = i as i64 + 1 + ins.imm as i64;
            if let Ok(t) = usize::try_from(target) {
                starts.push(t);
            }
        }
    }
    starts.sort_unstable();
    starts.dedup();
    starts
}

/// The chain's merged BTF with func_info and line_info for every function.
struct MergedBtf {
    btf: Btf,
    func_info: Vec<FuncInfo>,
    line_info: Vec<LineInfo>,
}

fn merge_btf(members: &[LinkInput<'_>], bases: &[usize]) -> Result<MergedBtf, KernelError> {
    let mut btf = Btf::empty()?;
    let int = btf.add_int("int", 4, true)?;
    let ctx = btf.add_struct_fwd("xdp_md")?;
    let ctx_ptr = btf.add_ptr(ctx)?;
    let proto = btf.add_func_proto(int, &[("ctx", ctx_ptr)])?;
    let dispatcher = btf.add_func("xdpd_dispatcher", true, proto)?;
    let mut func_info = vec![FuncInfo { insn_off: 0, type_id: dispatcher }];

    // line_info is all or nothing: every function needs one at its first instruction.
    let with_lines = members.iter().all(|m| !m.program.line_info.is_empty());
    let mut line_info = Vec::new();
    if with_lines {
        let file = btf.add_str("xdpd")?;
        let line = btf.add_str("xdpd dispatcher")?;
        line_info.push(LineInfo { insn_off: 0, file_name_off: file, line_off: line, line_col: 0 });
    }

    for (m, &base) in members.iter().zip(bases) {
        let base = base as u32;
        match &m.program.btf {
            Some(raw) => {
                let src = Btf::from_raw(raw)?;
                let shift = btf.append(&src)? - 1;
                func_info.extend(
                    m.program
                        .func_info
                        .iter()
                        .map(|f| FuncInfo { insn_off: f.insn_off + base, type_id: f.type_id + shift }),
                );
                if with_lines {
                    let mut strings = std::collections::HashMap::new();
                    for l in &m.program.line_info {
                        let mut remap = |off: u32| -> Result<u32, KernelError> {
                            if let Some(&new) = strings.get(&off) {
                                return Ok(new);
                            }
                            let new = btf.add_str(&src.name(off).unwrap_or_default())?;
                            strings.insert(off, new);
                            Ok(new)
                        };
                        line_info.push(LineInfo {
                            insn_off: l.insn_off + base,
                            file_name_off: remap(l.file_name_off)?,
                            line_off: remap(l.line_off)?,
                            line_col: l.line_col,
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
                    func_info.push(FuncInfo { insn_off: start as u32 + base, type_id: func });
                }
            }
        }
    }
    Ok(MergedBtf { btf, func_info, line_info })
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
    let shape: Vec<(usize, ActionSet)> = members.iter().map(|m| (m.program.insns.len(), m.proceed_on)).collect();
    let mut insns = dispatcher(&shape);
    let mut bases = Vec::with_capacity(members.len());
    let mut layout = Vec::with_capacity(members.len());
    for m in members {
        let base = insns.len();
        bases.push(base);
        insns.extend_from_slice(&m.program.insns);
        for &(at, map) in &m.program.map_refs {
            insns[base + at].imm = m.program.maps[map].fd.as_raw_fd();
        }
        layout.push((m.id, base..insns.len()));
    }

    let mut merged =
        if members.iter().any(|m| m.program.btf.is_some()) { Some(merge_btf(members, &bases)?) } else { None };
    let frags = members.iter().all(|m| m.program.frags);
    let license = if members.iter().all(|m| is_gpl_compatible(&m.program.license)) { c"GPL" } else { c"Proprietary" };

    let load = |log: Option<&mut Vec<c_char>>, merged: &mut Option<MergedBtf>| -> Result<OwnedFd, i32> {
        let mut opts = libbpf_sys::bpf_prog_load_opts {
            sz: std::mem::size_of::<libbpf_sys::bpf_prog_load_opts>() as _,
            expected_attach_type: libbpf_sys::BPF_XDP,
            prog_flags: if frags { libbpf_sys::BPF_F_XDP_HAS_FRAGS } else { 0 },
            prog_ifindex: target.offload_ifindex.unwrap_or(0),
            ..Default::default()
        };
        if let Some(m) = merged.as_mut() {
            opts.prog_btf_fd = m.btf.load().map_err(|e| e.errno())? as u32;
            opts.func_info = m.func_info.as_ptr().cast();
            opts.func_info_cnt = m.func_info.len() as u32;
            opts.func_info_rec_size = std::mem::size_of::<FuncInfo>() as u32;
            if !m.line_info.is_empty() {
                opts.line_info = m.line_info.as_ptr().cast();
                opts.line_info_cnt = m.line_info.len() as u32;
                opts.line_info_rec_size = std::mem::size_of::<LineInfo>() as u32;
            }
        }
        if let Some(log) = log {
            opts.log_buf = log.as_mut_ptr();
            opts.log_size = log.len() as u32;
            opts.log_level = 1;
        }
        let name = CString::new(CHAIN_PROGRAM_NAME).unwrap_or_default();
        // SAFETY: every pointer in opts and insns stays valid across the call.
        let fd = unsafe {
            libbpf_sys::bpf_prog_load(
                libbpf_sys::BPF_PROG_TYPE_XDP,
                name.as_ptr(),
                license.as_ptr(),
                insns.as_ptr().cast(),
                insns.len() as _,
                &mut opts,
            )
        };
        // SAFETY: a non-negative return is a fresh descriptor we own.
        if fd >= 0 {
            Ok(unsafe { OwnedFd::from_raw_fd(fd) })
        } else {
            Err(-fd)
        }
    };

    let fd = match load(None, &mut merged) {
        Ok(fd) => fd,
        Err(errno) if matches!(errno, libc::EINVAL | libc::EACCES | libc::E2BIG | libc::EFAULT) => {
            // Load again with a log to say what, and which member, the verifier refused.
            let mut log = vec![0 as c_char; LOG_SIZE];
            let second = load(Some(&mut log), &mut merged);
            // SAFETY: the kernel NUL-terminates the log.
            let log = unsafe { CStr::from_ptr(log.as_ptr()) }.to_string_lossy().into_owned();
            match second {
                Ok(fd) => fd,
                Err(_) => return Err(chain_rejection(&log, &layout, members, errno, target)),
            }
        }
        Err(errno) => return Err(Error::Kernel(KernelError::new("loading the linked chain", errno))),
    };
    let info = bpf::prog_info(fd.as_fd())?;
    Ok(LinkedChain { fd, info, layout, insn_count: insns.len(), frags })
}

/// Turns the verifier's verdict on a linked chain into an error that names
/// the member and its own instruction index.
fn chain_rejection(
    log: &str,
    layout: &[(MemberId, Range<usize>)],
    members: &[LinkInput<'_>],
    errno: i32,
    target: LinkTarget,
) -> Error {
    let summary = if log.trim().is_empty() {
        format!("the kernel refused the linked chain ({})", std::io::Error::from_raw_os_error(errno))
    } else {
        verifier_summary(log)
    };
    // The last instruction the verifier looked at: a line starting "N: ".
    let failing = log.lines().rev().find_map(|l| l.split_once(": ").and_then(|(n, _)| n.trim().parse::<usize>().ok()));
    let located = failing.and_then(|at| {
        layout
            .iter()
            .zip(members)
            .find(|((_, range), _)| range.contains(&at))
            .map(|((id, range), m)| (*id, m, at - range.start))
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
                let single = [LinkInput { id: m.id, program: m.program, proceed_on: m.proceed_on }];
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
