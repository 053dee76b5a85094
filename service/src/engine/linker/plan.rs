//! Planning: which members can run at all, and where each one goes
//! (inlined into the dispatcher, or called as a subprogram). Pure functions
//! over a member's instructions.

use super::LinkMode;
use crate::engine::actions::ActionSet;
use crate::kernel::btf::FuncInfo;
use crate::kernel::insn::{self, Insn};

/// How one member is placed in the linked program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// The main function (its first `main_len` instructions) is spliced into
    /// the dispatcher, which keeps the context in `reg` meanwhile.
    Inline {
        /// A callee-saved register (r6..r9) the main function never touches.
        reg: u8,
        /// Length of the main function.
        main_len: usize,
    },
    /// The whole member is appended and called as a BPF-to-BPF subprogram.
    Call,
}

impl Placement {
    /// How many of the member's instructions go into the dispatcher region.
    pub fn main_len(self) -> usize {
        match self {
            Placement::Inline { main_len, .. } => main_len,
            Placement::Call => 0,
        }
    }
}

/// How many members are linked: up to and including the first one that
/// never proceeds. The ones after it can never run, and the verifier
/// refuses unreachable code (they stay members, unlinked).
pub fn reachable(proceed_on: impl IntoIterator<Item = ActionSet>) -> usize {
    let mut count = 0;
    for set in proceed_on {
        count += 1;
        if set.mask() == 0 {
            break;
        }
    }
    count
}

/// `(instruction, target)` of every subprogram call and callback reference.
pub fn func_refs(insns: &[Insn]) -> impl Iterator<Item = (usize, usize)> + '_ {
    insns.iter().enumerate().filter_map(|(i, ins)| {
        let is_ref = ins.is_subprog_call() || (ins.is_ld_imm64() && ins.src() == insn::PSEUDO_FUNC);
        is_ref.then(|| usize::try_from(i as i64 + 1 + ins.imm as i64).ok()).flatten().map(|t| (i, t))
    })
}

/// Instruction offsets where a member's functions start (0 first).
pub fn subprog_starts(insns: &[Insn]) -> Vec<usize> {
    let mut starts = vec![0];
    starts.extend(func_refs(insns).map(|(_, target)| target));
    starts.sort_unstable();
    starts.dedup();
    starts
}

/// Length of the member's main function: up to its first subprogram
/// (from func_info when the member has BTF, else from its calls).
pub fn main_len(insns: &[Insn], func_info: &[FuncInfo]) -> usize {
    match func_info.get(1) {
        Some(f) => f.insn_off as usize,
        None => subprog_starts(insns).get(1).copied().unwrap_or(insns.len()),
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

/// Where a member goes: inline when `mode` allows it and it is safe, that
/// is when its main function leaves one of r6..r9 untouched (to keep the
/// context in), uses no legacy packet loads (LD_ABS/LD_IND read r6), and no
/// subprogram refers back into the main function; a call otherwise.
pub fn placement(insns: &[Insn], func_info: &[FuncInfo], mode: LinkMode) -> Placement {
    if mode == LinkMode::Call {
        return Placement::Call;
    }
    let main = main_len(insns, func_info).min(insns.len());
    if func_refs(insns).any(|(at, target)| at >= main && target < main) {
        return Placement::Call;
    }
    let mut used = [false; 11];
    let mut i = 0;
    while i < main {
        let ins = insns[i];
        if ins.code & 0x07 == insn::BPF_LD && ins.code != insn::LD_IMM64 {
            return Placement::Call;
        }
        for r in registers(ins).into_iter().flatten() {
            used[(r as usize).min(10)] = true;
        }
        i += if ins.is_ld_imm64() { 2 } else { 1 };
    }
    match (6..=9u8).find(|&r| !used[r as usize]) {
        Some(reg) => Placement::Inline { reg, main_len: main },
        None => Placement::Call,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::actions::Action;
    use crate::kernel::insn::{R0, R1, R6};

    fn ret(v: i32) -> Vec<Insn> {
        vec![Insn::mov32_imm(R0, v), Insn::exit()]
    }

    #[test]
    fn members_after_one_that_never_proceeds_are_not_linked() {
        let pass = ActionSet::of(&[Action::Pass]);
        assert_eq!(reachable([pass, pass, pass]), 3);
        assert_eq!(reachable([pass, ActionSet::default(), pass]), 2);
        assert_eq!(reachable([ActionSet::default(), pass]), 1);
        assert_eq!(reachable([]), 0);
    }

    #[test]
    fn a_simple_member_is_inlined_in_r6() {
        assert_eq!(placement(&ret(2), &[], LinkMode::Inline), Placement::Inline { reg: 6, main_len: 2 });
        assert_eq!(placement(&ret(2), &[], LinkMode::Call), Placement::Call);
    }

    #[test]
    fn the_first_free_callee_saved_register_keeps_the_context() {
        let mut code = vec![Insn::mov64_reg(R6, R1), Insn::mov64_reg(7, R6)];
        code.extend(ret(2));
        assert_eq!(placement(&code, &[], LinkMode::Inline), Placement::Inline { reg: 8, main_len: 4 });
    }

    #[test]
    fn a_member_using_r6_to_r9_is_called() {
        let mut code: Vec<Insn> = (6..=9).map(|r| Insn::mov64_reg(r, R1)).collect();
        code.extend(ret(2));
        assert_eq!(placement(&code, &[], LinkMode::Inline), Placement::Call);
    }

    #[test]
    fn legacy_packet_loads_force_a_call() {
        // ldabsb (BPF_LD | BPF_ABS | BPF_B) reads r6 implicitly.
        let mut code = vec![Insn::new(0x30, 0, 0, 0, 12)];
        code.extend(ret(2));
        assert_eq!(placement(&code, &[], LinkMode::Inline), Placement::Call);
    }

    #[test]
    fn the_main_function_ends_at_the_first_subprogram() {
        // main: call +2; exit | sub: r0 = 1; exit
        let code = [Insn::call_subprog(1), Insn::exit(), Insn::mov32_imm(R0, 1), Insn::exit()];
        assert_eq!(subprog_starts(&code), vec![0, 2]);
        assert_eq!(main_len(&code, &[]), 2);
        let info = [FuncInfo { insn_off: 0, type_id: 1 }, FuncInfo { insn_off: 3, type_id: 2 }];
        assert_eq!(main_len(&code, &info), 3, "func_info wins when the member has BTF");
        assert_eq!(placement(&code, &[], LinkMode::Inline), Placement::Inline { reg: 6, main_len: 2 });
    }

    #[test]
    fn a_subprogram_calling_back_into_main_forces_a_call() {
        // main: call +2 (-> 3); exit; pad | sub at 3: call -4 (-> 0); exit
        let code = [Insn::call_subprog(2), Insn::exit(), Insn::exit(), Insn::call_subprog(-4), Insn::exit()];
        assert_eq!(placement(&code, &[], LinkMode::Inline), Placement::Call);
    }

    #[test]
    fn callback_references_count_as_function_starts() {
        let code = [
            Insn::new(insn::LD_IMM64, 2, insn::PSEUDO_FUNC, 0, 3),
            Insn::default(),
            Insn::mov32_imm(R0, 2),
            Insn::exit(),
            Insn::mov32_imm(R0, 0),
            Insn::exit(),
        ];
        assert_eq!(func_refs(&code).collect::<Vec<_>>(), vec![(0, 4)]);
        assert_eq!(main_len(&code, &[]), 4);
    }
}
