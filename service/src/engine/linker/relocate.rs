//! Relocation: once every instruction has its place in the linked program,
//! point the dispatcher's calls at the called members, the calls and
//! callback references of moved main functions at their subprograms, and
//! every map reference at the map's descriptor (handed in, as aya-obj does),
//! every local BTF type id at where the member's BTF went in the merged
//! one. Pure functions over instruction slices.

use super::plan::func_refs;
use crate::kernel::insn::Insn;

/// The immediate of a relative reference at `from` to `to`.
fn relative(from: usize, to: usize) -> i32 {
    to as i32 - from as i32 - 1
}

/// Points the dispatcher's calls (`(call instruction, member index)`) at the
/// first instruction of each called member.
pub fn member_calls(code: &mut [Insn], calls: &[(usize, usize)], places: &[Vec<usize>]) {
    for &(at, member) in calls {
        if let (Some(&entry), Some(call)) = (places.get(member).and_then(|p| p.first()), code.get_mut(at)) {
            call.imm = relative(at, entry);
        }
    }
}

/// Points the calls and callback references made by a member's main
/// function (its first `main_len` instructions, moved into the dispatcher)
/// at where their targets went. References from the tail keep their
/// offsets: the tail is copied whole.
pub fn member_refs(code: &mut [Insn], member: &[Insn], place: &[usize], main_len: usize) {
    for (at, target) in func_refs(member).filter(|&(at, _)| at < main_len) {
        let (Some(&from), Some(&to)) = (place.get(at), place.get(target)) else { continue };
        if let Some(ins) = code.get_mut(from) {
            ins.imm = relative(from, to);
        }
    }
}

/// Writes the descriptor of each referenced map into its `ld_imm64`:
/// `map_refs` are `(member instruction, map index)`, `fds` the member's
/// map descriptors by index.
pub fn map_fds(code: &mut [Insn], place: &[usize], map_refs: &[(usize, usize)], fds: &[i32]) {
    for &(at, map) in map_refs {
        if let (Some(&to), Some(&fd)) = (place.get(at), fds.get(map)) {
            if let Some(ins) = code.get_mut(to) {
                ins.imm = fd;
            }
        }
    }
}

/// Shifts every local BTF type id a member's instructions carry
/// (`type_id_refs`, the member's own indices) by where its BTF went in the
/// merged one.
pub fn local_type_ids(code: &mut [Insn], place: &[usize], type_id_refs: &[usize], shift: u32) {
    for &at in type_id_refs {
        if let Some(ins) = place.get(at).and_then(|&to| code.get_mut(to)) {
            ins.imm = (ins.imm as u32).wrapping_add(shift) as i32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::insn::{self, R0};

    #[test]
    fn dispatcher_calls_reach_the_called_member() {
        let mut code = vec![Insn::call_subprog(0), Insn::exit(), Insn::mov32_imm(R0, 2), Insn::exit()];
        member_calls(&mut code, &[(0, 0)], &[vec![2, 3]]);
        assert_eq!(code[0], Insn::call_subprog(1));
    }

    #[test]
    fn a_moved_main_function_still_calls_its_subprogram() {
        // The member: main = call +1 (-> 2); exit | sub at 2: r0 = 2; exit.
        let member = [Insn::call_subprog(1), Insn::exit(), Insn::mov32_imm(R0, 2), Insn::exit()];
        // Main inlined at 5..7, subprogram placed at 20..22.
        let place = [5, 6, 20, 21];
        let mut code = vec![Insn::default(); 22];
        code[5] = member[0];
        member_refs(&mut code, &member, &place, 2);
        assert_eq!(code[5], Insn::call_subprog(14));
    }

    #[test]
    fn references_from_the_tail_are_left_alone() {
        let member = [Insn::exit(), Insn::call_subprog(0), Insn::exit()];
        let mut code = member.to_vec();
        member_refs(&mut code, &member, &[0, 1, 2], 1);
        assert_eq!(code, member);
    }

    #[test]
    fn local_type_ids_follow_the_members_btf() {
        let ld = Insn::new(insn::LD_IMM64, 2, 0, 0, 8);
        let mut code = vec![Insn::exit(), ld, Insn::default(), Insn::mov32_imm(R0, 13)];
        local_type_ids(&mut code, &[1, 2, 3], &[0, 2], 40);
        assert_eq!((code[1].imm, code[3].imm), (48, 53));
        assert_eq!(code[0], Insn::exit());
    }

    #[test]
    fn map_references_get_the_members_descriptors() {
        let ld = Insn::new(insn::LD_IMM64, 1, insn::PSEUDO_MAP_FD, 0, 99);
        let mut code = vec![Insn::exit(), ld, Insn::default(), ld, Insn::default()];
        map_fds(&mut code, &[1, 2, 3, 4], &[(0, 1), (2, 0)], &[40, 41]);
        assert_eq!(code[1].imm, 41);
        assert_eq!(code[3].imm, 40);
        assert_eq!(code[0], Insn::exit());
    }
}
