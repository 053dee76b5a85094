//! Verdict counting, emitted at the chain's exits. A packet is counted once,
//! where the chain decides it: the deciding member's record gets the verdict
//! (packets and bytes), and a cascade of fixed increments credits every
//! member it passed with the one action that let it proceed. Only a member
//! that proceeds on more than one action is counted where it runs (its
//! verdict is not known in advance). Each CPU increments its own region of
//! the table with plain loads and stores: no atomics, no lock. That is exact
//! as long as two runs of the chain on one CPU do not interleave, which is
//! the case for traffic (XDP runs in the CPU's softirq, which does not nest);
//! a BPF_PROG_TEST_RUN in process context interrupted by the same chain's
//! softirq on the same CPU could lose an increment, as with any per-CPU map.
//!
//! ```text
//! exit of member k:  rV = r0; [rL = xdp_get_buff_len(ctx)]
//!                    r0 = smp_processor_id(); if r0 >= cpus: r0 = rV, exit
//!                    r1 = &table + r0 * region; r2 = length; w5 = wV
//!                    [record k, verdict w5: packets += 1, bytes += r2]
//!                    goto cascade(k - 1)
//! cascade:           member n-1, its proceed action: packets += 1, bytes += r2
//!                    ...
//!                    member 0, likewise
//!                    r0 = r5; exit
//! ```

use crate::engine::actions::ActionSet;
use crate::kernel::counter_table::RECORD_BYTES;
use crate::kernel::insn::{self, Insn, R0, R1};

const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;
/// bpf_get_smp_processor_id (inlined by the verifier on x86-64).
const HELPER_CPU: i32 = 8;
/// bpf_xdp_get_buff_len.
const HELPER_BUFF_LEN: i32 = 188;
/// Bytes of one verdict's pair (packets, bytes) in a record.
const VERDICT_BYTES: i32 = 16;
/// The verdict column of results 5 and more.
const OTHER: u32 = 5;

/// Where and how a chain counts.
#[derive(Debug, Clone, Copy)]
pub struct CountPlan {
    /// The counter table's descriptor.
    pub map_fd: i32,
    /// CPU regions in the table.
    pub cpus: u32,
    /// Bytes from one CPU's region to the next.
    pub region: u32,
    /// Take the length from bpf_xdp_get_buff_len (verified as a user, where
    /// `data_end - data` is refused, or with frags) instead of the pointers.
    pub len_by_helper: bool,
}

/// The single action a member proceeds on (its column), if it has exactly one.
pub fn single_action(set: ActionSet) -> Option<u32> {
    let mask = set.mask();
    mask.is_power_of_two().then(|| mask.trailing_zeros().min(OTHER))
}

/// Byte offset of `slot`'s record in a region.
pub fn record_offset(slot: usize) -> i64 {
    (slot * RECORD_BYTES) as i64
}

fn ldx(dst: u8, src: u8, off: i16) -> Insn {
    Insn::new(insn::BPF_LDX | insn::BPF_MEM | insn::BPF_DW, dst, src, off, 0)
}

fn stx(dst: u8, src: u8, off: i16) -> Insn {
    Insn::new(insn::BPF_STX | insn::BPF_MEM | insn::BPF_DW, dst, src, off, 0)
}

fn alu64_imm(op: u8, dst: u8, imm: i32) -> Insn {
    Insn::new(insn::BPF_ALU64 | op | insn::BPF_K, dst, 0, 0, imm)
}

fn alu64_reg(op: u8, dst: u8, src: u8) -> Insn {
    Insn::new(insn::BPF_ALU64 | op | insn::BPF_X, dst, src, 0, 0)
}

fn call_helper(id: i32) -> Insn {
    Insn::new(insn::CALL, 0, 0, 0, id)
}

/// `packets += 1; bytes += r2` at `base + off` (through r3 when `off` is out
/// of a load's 16-bit reach).
pub fn add_at(code: &mut Vec<Insn>, base: u8, off: i64) {
    let (base, off) = match i16::try_from(off + 8) {
        Ok(_) => (base, off as i16),
        Err(_) => {
            code.push(alu64_reg(insn::BPF_MOV, R3, base));
            code.push(alu64_imm(insn::BPF_ADD, R3, off as i32));
            (R3, 0)
        }
    };
    code.extend([ldx(R4, base, off), alu64_imm(insn::BPF_ADD, R4, 1), stx(base, R4, off)]);
    code.extend([ldx(R4, base, off + 8), alu64_reg(insn::BPF_ADD, R4, R2), stx(base, R4, off + 8)]);
}

/// Two callee-saved registers other than `ctx`: one keeps the verdict, one the length.
fn spare(ctx: u8) -> (u8, u8) {
    let mut free = (6..=9).filter(|&r| r != ctx);
    (free.next().unwrap_or(7), free.next().unwrap_or(8))
}

/// The start of an exit block: the verdict in r0 kept, this CPU's region in
/// r1, the packet's length in r2, the verdict in w5. Returns the index of
/// the jump to patch to where the block continues when the CPU is out of
/// range (with the verdict in r0 restored from `rV`, returned too).
pub fn prologue(code: &mut Vec<Insn>, plan: &CountPlan, ctx: u8) -> (usize, u8) {
    let (keep, len) = spare(ctx);
    code.push(Insn::mov64_reg(keep, R0));
    if plan.len_by_helper {
        code.extend([Insn::mov64_reg(R1, ctx), call_helper(HELPER_BUFF_LEN), Insn::mov64_reg(len, R0)]);
    }
    code.push(call_helper(HELPER_CPU));
    code.push(Insn::new(insn::BPF_ALU | insn::BPF_MOV | insn::BPF_X, R0, R0, 0, 0));
    let out = code.len();
    code.push(Insn::new(insn::BPF_JMP | insn::BPF_JGE | insn::BPF_K, R0, 0, 0, plan.cpus as i32));
    code.push(alu64_imm(insn::BPF_MUL, R0, plan.region as i32));
    code.push(Insn::new(insn::LD_IMM64, R1, insn::PSEUDO_MAP_VALUE, 0, plan.map_fd));
    code.push(Insn::new(0, 0, 0, 0, 0));
    code.push(alu64_reg(insn::BPF_ADD, R1, R0));
    if plan.len_by_helper {
        code.push(Insn::mov64_reg(R2, len));
    } else {
        code.push(Insn::new(insn::BPF_LDX | insn::BPF_MEM | insn::BPF_W, R2, ctx, 4, 0));
        code.push(Insn::new(insn::BPF_LDX | insn::BPF_MEM | insn::BPF_W, R3, ctx, 0, 0));
        code.push(alu64_reg(insn::BPF_SUB, R2, R3));
    }
    code.push(Insn::new(insn::BPF_ALU | insn::BPF_MOV | insn::BPF_X, R5, keep, 0, 0));
    (out, keep)
}

/// Counts the verdict in w5 in the record at `off` of this CPU's region
/// (r0: the region's offset in the table, as the prologue left it). The
/// address is one constant pointer plus one bounded scalar, the only form
/// the verifier takes from an unprivileged loader.
pub fn add_verdict(code: &mut Vec<Insn>, plan: &CountPlan, off: i64) {
    code.push(Insn::new(insn::BPF_ALU | insn::BPF_MOV | insn::BPF_X, R3, R5, 0, 0));
    code.push(Insn::new(insn::BPF_JMP32 | insn::BPF_JLE | insn::BPF_K, R3, 0, 1, OTHER as i32));
    code.push(Insn::mov32_imm(R3, OTHER as i32));
    code.push(alu64_imm(insn::BPF_LSH, R3, VERDICT_BYTES.trailing_zeros() as i32));
    code.push(alu64_reg(insn::BPF_ADD, R3, R0));
    code.push(Insn::new(insn::LD_IMM64, R0, insn::PSEUDO_MAP_VALUE, 0, plan.map_fd));
    code.push(Insn::new(0, 0, 0, 0, 0));
    code.push(alu64_reg(insn::BPF_ADD, R0, R3));
    add_at(code, R0, off);
}

/// A member proceeding on more than one action, counted where it runs:
/// its record gets the verdict in r0, which is left as it was.
pub fn count_in_place(code: &mut Vec<Insn>, plan: &CountPlan, ctx: u8, slot: usize) {
    let (out, keep) = prologue(code, plan, ctx);
    add_verdict(code, plan, record_offset(slot));
    let here = code.len();
    patch_jump(code, out, here);
    code.push(Insn::mov64_reg(R0, keep));
}

/// The cascade's increment for a member passed with `action`.
pub fn add_passed(code: &mut Vec<Insn>, slot: usize, action: u32) {
    add_at(code, R1, record_offset(slot) + i64::from(action) * i64::from(VERDICT_BYTES));
}

/// The cascade's end: the verdict back in r0, exit.
pub fn finish(code: &mut Vec<Insn>) {
    code.push(Insn::mov64_reg(R0, R5));
    code.push(Insn::exit());
}

/// Points the (conditional or not) jump at `at` to `to`.
pub fn patch_jump(code: &mut [Insn], at: usize, to: usize) {
    let off = to as i64 - at as i64 - 1;
    if code[at].code == insn::BPF_JMP | insn::BPF_JA {
        code[at] = super::emit::jump(at, to);
    } else {
        code[at].off = off as i16;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::actions::Action;

    #[test]
    fn only_a_single_proceed_action_is_credited_by_the_cascade() {
        assert_eq!(single_action(ActionSet::of(&[Action::Pass])), Some(2));
        assert_eq!(single_action(ActionSet::of(&[Action::Redirect])), Some(4));
        assert_eq!(single_action(ActionSet::of(&[Action::Pass, Action::Drop])), None);
        assert_eq!(single_action(ActionSet::EMPTY), None);
    }

    #[test]
    fn a_record_out_of_a_loads_reach_goes_through_r3() {
        let mut near = Vec::new();
        add_passed(&mut near, 3, 2);
        assert_eq!(near.len(), 6, "load, add, store for packets and for bytes");
        assert_eq!(near[0], ldx(R4, R1, (3 * RECORD_BYTES + 32) as i16));
        let mut far = Vec::new();
        add_passed(&mut far, 400, 2);
        assert_eq!(far[..2], [alu64_reg(insn::BPF_MOV, R3, R1), alu64_imm(insn::BPF_ADD, R3, 400 * 96 + 32)]);
        assert_eq!(far[2], ldx(R4, R3, 0));
    }
}
