//! Emission: the dispatcher with each member's main function inlined (its
//! exits turned into jumps to the member's proceed-on test) or a call, the
//! verdict counting and proceed-on tests, then the tail of subprograms and
//! called members. Pure: instructions in, instructions and their new places
//! out; calls, callbacks and maps are pointed at their targets afterwards
//! (see `relocate`).

use super::count::{self, CountPlan};
use super::plan::Placement;
use super::Segment;
use crate::engine::actions::{Action, ActionSet};
use crate::engine::member::MemberId;
use crate::kernel::insn::{self, Insn, R0, R1, R6};

/// One member as emission sees it.
#[derive(Debug)]
pub struct EmitMember<'a> {
    /// Whose instructions these are (for the layout).
    pub id: MemberId,
    /// The member's instructions as the verifier accepted them alone.
    pub insns: &'a [Insn],
    /// Inlined or called.
    pub placement: Placement,
    /// Results that let the next member run.
    pub proceed_on: ActionSet,
    /// The member's record in the counter table (when counting).
    pub slot: Option<usize>,
}

/// Where a segment passes the packet on when every member proceeded: a
/// tail call into slot `index` of the version's program array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Next {
    /// Descriptor of the program array (patched into the `ld_imm64`).
    pub array_fd: i32,
    /// The slot holding the next segment.
    pub index: u32,
}

/// `bpf_tail_call(ctx, array, index)`; when it returns (an empty slot: it
/// never is while the version runs), the packet is aborted rather than let
/// through unfiltered by the members that did not run.
pub fn tail_call(ctx: u8, next: Next) -> Vec<Insn> {
    const R2: u8 = 2;
    const R3: u8 = 3;
    const BPF_FUNC_TAIL_CALL: i32 = 12;
    vec![
        Insn::mov64_reg(R1, ctx),
        Insn::new(insn::LD_IMM64, R2, insn::PSEUDO_MAP_FD, 0, next.array_fd),
        Insn::default(),
        Insn::mov32_imm(R3, next.index as i32),
        Insn::new(insn::CALL, 0, 0, 0, BPF_FUNC_TAIL_CALL),
        Insn::mov32_imm(R0, Action::Aborted as i32),
        Insn::exit(),
    ]
}

/// The emitted program, before relocation.
#[derive(Debug, Default)]
pub struct Emitted {
    /// Dispatcher region, then the tail.
    pub insns: Vec<Insn>,
    /// Per member: where each of its instructions went.
    pub places: Vec<Vec<usize>>,
    /// `(call instruction, member index)` of the dispatcher's member calls.
    pub calls: Vec<(usize, usize)>,
    /// Where each member's instructions are, for naming the culprit of a refusal.
    pub layout: Vec<Segment>,
}

/// The test after a member: fall through when its result is in `set`, else
/// exit with it. Results of 32 and more are always verdicts.
pub fn proceed_test(set: ActionSet) -> Vec<Insn> {
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
pub fn jump(from: usize, to: usize) -> Insn {
    let off = to as i64 - from as i64 - 1;
    match i16::try_from(off) {
        Ok(off) => Insn::ja(off),
        Err(_) => Insn::gotol(off as i32),
    }
}

/// Moves the context from register `ctx` to where member `placement`
/// wants it (r1 for the member, a callee-saved register kept across it);
/// returns where the dispatcher keeps it from now on.
fn prologue(code: &mut Vec<Insn>, ctx: u8, placement: Placement) -> u8 {
    match placement {
        Placement::Inline { reg, .. } => {
            if ctx != reg {
                code.push(Insn::mov64_reg(reg, ctx));
            }
            if ctx != R1 {
                code.push(Insn::mov64_reg(R1, reg));
            }
            reg
        }
        Placement::Call if ctx == R1 => {
            code.push(Insn::mov64_reg(R6, R1));
            R6
        }
        Placement::Call => {
            code.push(Insn::mov64_reg(R1, ctx));
            ctx
        }
    }
}

/// An exit of the chain when counting: where its jump is, the context
/// register there, the record that gets the verdict (if counted here) and
/// how many members before it the cascade credits.
struct Exit {
    jump_at: usize,
    ctx: u8,
    own: Option<usize>,
    passed: usize,
}

/// The dispatcher region; returns where each inlined main function starts
/// and, when counting, the chain's exits. A segment that is not the chain's
/// last ends in a tail call to `next`; when counting, the members it passed
/// are credited before it (a later segment's cascade covers only its own).
fn dispatcher(
    members: &[EmitMember<'_>],
    next: Option<Next>,
    plan: Option<&CountPlan>,
    out: &mut Emitted,
) -> (Vec<usize>, Vec<Exit>) {
    let code = &mut out.insns;
    let mut ctx = R1;
    let mut main_at = vec![0usize; members.len()];
    let mut exits = Vec::new();
    for (i, m) in members.iter().enumerate() {
        ctx = prologue(code, ctx, m.placement);
        let main = m.placement.main_len();
        main_at[i] = code.len();
        match m.placement {
            Placement::Inline { .. } => code.extend_from_slice(&m.insns[..main]),
            Placement::Call => {
                out.calls.push((code.len(), i));
                code.push(Insn::call_subprog(0));
            }
        }
        // The main function's exits end the member: jump to its test.
        let test_at = code.len();
        for (j, ins) in code.iter_mut().enumerate().skip(main_at[i]).take(main) {
            if ins.code == insn::BPF_JMP | insn::BPF_EXIT {
                *ins = jump(j, test_at);
            }
        }
        let in_place = m.proceed_on.mask() != 0 && count::single_action(m.proceed_on).is_none();
        if let (Some(plan), Some(slot), true) = (plan, m.slot, in_place) {
            count::count_in_place(code, plan, ctx, slot);
        }
        code.extend(proceed_test(m.proceed_on));
        if plan.is_some() {
            // Not proceeding: to the exit block that counts (see `count`).
            let own = m.slot.filter(|_| !in_place);
            let jump_at = code.len() - 1;
            exits.push(Exit { jump_at, ctx, own, passed: i });
            code[jump_at] = Insn::ja(0);
        }
    }
    // When the last member never proceeds, a final "pass" (or tail call)
    // would be unreachable code, which the verifier refuses.
    if members.last().is_some_and(|m| m.proceed_on.mask() != 0) {
        match (next, plan) {
            (Some(next), Some(plan)) => {
                let (out, _) = count::prologue(code, plan, ctx);
                for m in members {
                    if let (Some(slot), Some(action)) = (m.slot, count::single_action(m.proceed_on)) {
                        count::add_passed(code, slot, action);
                    }
                }
                let here = code.len();
                count::patch_jump(code, out, here);
                code.extend(tail_call(ctx, next));
            }
            (Some(next), None) => code.extend(tail_call(ctx, next)),
            (None, _) => {
                code.push(Insn::mov32_imm(R0, Action::Pass as i32));
                if plan.is_some() {
                    exits.push(Exit { jump_at: code.len(), ctx, own: None, passed: members.len() });
                    code.push(Insn::ja(0));
                } else {
                    code.push(Insn::exit());
                }
            }
        }
    }
    (main_at, exits)
}
/// The cascade (every member's increment for its proceed action, last
/// first), then one block per exit that counts its verdict and enters the
/// cascade below the members the packet passed.
fn counting_exits(members: &[EmitMember<'_>], plan: &CountPlan, exits: &[Exit], code: &mut Vec<Insn>) {
    // Only what some exit enters: a segment that ends in a tail call credits
    // its members before it, so no exit here passed them all (and the
    // verifier refuses unreachable code).
    let Some(reach) = exits.iter().map(|e| e.passed).max() else { return };
    let mut entry = vec![0usize; members.len() + 1];
    for (i, m) in members.iter().enumerate().rev() {
        entry[i + 1] = code.len();
        if i >= reach {
            continue;
        }
        if let (Some(slot), Some(action)) = (m.slot, count::single_action(m.proceed_on)) {
            count::add_passed(code, slot, action);
        }
    }
    entry[0] = code.len();
    count::finish(code);
    for exit in exits {
        let block = code.len();
        count::patch_jump(code, exit.jump_at, block);
        let (out, keep) = count::prologue(code, plan, exit.ctx);
        if let Some(slot) = exit.own {
            count::add_verdict(code, plan, count::record_offset(slot));
        }
        code.push(jump(code.len(), entry[exit.passed]));
        let here = code.len();
        count::patch_jump(code, out, here);
        code.push(Insn::mov64_reg(R0, keep));
        code.push(Insn::exit());
    }
}

/// Lays the members out: the dispatcher (ending in a tail call to `next`,
/// for a segment that is not the chain's last), then the subprograms of
/// inlined members and the whole of called members.
pub fn emit(members: &[EmitMember<'_>], next: Option<Next>, plan: Option<&CountPlan>) -> Emitted {
    let mut out = Emitted::default();
    let (main_at, exits) = dispatcher(members, next, plan, &mut out);
    if let Some(plan) = plan {
        counting_exits(members, plan, &exits, &mut out.insns);
    }
    for (i, m) in members.iter().enumerate() {
        let main = m.placement.main_len();
        let tail_at = out.insns.len();
        out.insns.extend_from_slice(&m.insns[main..]);
        let place = (0..m.insns.len()).map(|j| if j < main { main_at[i] + j } else { tail_at + j - main }).collect();
        if main > 0 {
            out.layout.push(Segment { id: m.id, range: main_at[i]..main_at[i] + main, member_offset: 0 });
        }
        if m.insns.len() > main {
            out.layout.push(Segment { id: m.id, range: tail_at..tail_at + m.insns.len() - main, member_offset: main });
        }
        out.places.push(place);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ret(v: i32) -> Vec<Insn> {
        vec![Insn::mov32_imm(R0, v), Insn::exit()]
    }

    fn pass() -> ActionSet {
        ActionSet::of(&[Action::Pass])
    }

    #[test]
    fn proceed_tests_by_shape_of_the_set() {
        assert_eq!(proceed_test(ActionSet::EMPTY), vec![Insn::exit()]);
        assert_eq!(proceed_test(pass()), vec![Insn::jeq32_imm(R0, 2, 1), Insn::exit()]);
        let two = proceed_test(ActionSet::of(&[Action::Pass, Action::Drop]));
        assert_eq!(two.len(), 5);
        assert_eq!(two[0], Insn::jgt32_imm(R0, 31, 3), "results >= 32 are always verdicts");
        assert_eq!(two[1], Insn::mov32_imm(R1, 0b110));
    }

    #[test]
    fn jumps_use_gotol_beyond_16_bits() {
        assert_eq!(jump(10, 11), Insn::ja(0));
        assert_eq!(jump(10, 5), Insn::ja(-6));
        assert_eq!(jump(0, 40_000), Insn::gotol(39_999));
    }

    #[test]
    fn two_inlined_members_behind_a_dispatcher() {
        let a = ret(2);
        let b = ret(1);
        let inline = Placement::Inline { reg: 6, main_len: 2 };
        let members = [
            EmitMember { id: 1, insns: &a, placement: inline, proceed_on: pass(), slot: None },
            EmitMember { id: 2, insns: &b, placement: inline, proceed_on: pass(), slot: None },
        ];
        let out = emit(&members, None, None);
        let expected = vec![
            Insn::mov64_reg(6, R1), // context kept in r6
            Insn::mov32_imm(R0, 2), // member 1, its exit now a jump to its test
            Insn::ja(0),
            Insn::jeq32_imm(R0, 2, 1),
            Insn::exit(),
            Insn::mov64_reg(R1, 6), // member 2 gets the context back
            Insn::mov32_imm(R0, 1),
            Insn::ja(0),
            Insn::jeq32_imm(R0, 2, 1),
            Insn::exit(),
            Insn::mov32_imm(R0, Action::Pass as i32),
            Insn::exit(),
        ];
        assert_eq!(out.insns, expected);
        assert_eq!(out.places, vec![vec![1, 2], vec![6, 7]]);
        assert!(out.calls.is_empty());
        assert_eq!(out.layout.len(), 2);
        assert_eq!(out.layout[1].range, 6..8);
    }

    #[test]
    fn a_segment_that_is_not_the_last_tail_calls_the_next() {
        let a = ret(2);
        let inline = Placement::Inline { reg: 6, main_len: 2 };
        let members = [EmitMember { id: 1, insns: &a, placement: inline, proceed_on: pass(), slot: None }];
        let out = emit(&members, Some(Next { array_fd: 42, index: 3 }), None);
        assert_eq!(
            &out.insns[..5],
            &[Insn::mov64_reg(6, R1), Insn::mov32_imm(R0, 2), Insn::ja(0), Insn::jeq32_imm(R0, 2, 1), Insn::exit()]
        );
        assert_eq!(&out.insns[5..], &tail_call(6, Next { array_fd: 42, index: 3 })[..]);
        assert_eq!(out.insns[6].imm, 42, "the array's descriptor");
        assert_eq!(out.insns[8], Insn::mov32_imm(3, 3), "the next segment's slot");
        // A member that never proceeds ends the chain: no tail call after it.
        let last = [EmitMember { id: 1, insns: &a, placement: inline, proceed_on: ActionSet::EMPTY, slot: None }];
        assert_eq!(emit(&last, Some(Next { array_fd: 42, index: 3 }), None).insns.len(), 4);
    }

    #[test]
    fn a_called_member_goes_to_the_tail_and_a_final_member_ends_the_chain() {
        let a = ret(1);
        let members =
            [EmitMember { id: 7, insns: &a, placement: Placement::Call, proceed_on: ActionSet::EMPTY, slot: None }];
        let out = emit(&members, None, None);
        let expected = vec![
            Insn::mov64_reg(R6, R1),
            Insn::call_subprog(0), // pointed at the tail by relocate
            Insn::exit(),          // never proceeds: no final pass
            Insn::mov32_imm(R0, 1),
            Insn::exit(),
        ];
        assert_eq!(out.insns, expected);
        assert_eq!(out.calls, vec![(1, 0)]);
        assert_eq!(out.places, vec![vec![3, 4]]);
        assert_eq!(out.layout[0].range, 3..5);
        assert_eq!(out.layout[0].member_offset, 0);
    }
}
