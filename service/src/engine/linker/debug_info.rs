//! Debug info of a linked chain: every member's BTF appended to one, the
//! dispatcher described as `int xdpd_dispatcher(struct xdp_md *ctx)`, and
//! each member's func_info / line_info translated: type ids and strings
//! into the merged BTF (`src_` → `dst_`), instruction offsets to where the
//! instructions went. With it, global subprograms, callbacks and kfuncs
//! verify, and verifier logs quote the members' source.

use std::collections::HashMap;

use super::plan::{subprog_starts, Placement};
use super::LinkInput;
use crate::kernel::btf::{Btf, FuncInfo, LineInfo};
use crate::kernel::prog::DebugInfo;
use crate::kernel::KernelError;

/// A member's debug info with type ids and strings already in the merged
/// BTF, instruction offsets still the member's own.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MemberDebug {
    /// Function records.
    pub funcs: Vec<FuncInfo>,
    /// Line records (empty unless every member has some).
    pub lines: Vec<LineInfo>,
    /// What the member's own type ids became in the merged BTF: `id + shift`.
    pub shift: u32,
}

/// The dispatcher's entries in the merged BTF.
struct Dispatcher {
    proto: u32,
    func: u32,
    line: Option<LineInfo>,
}

fn dispatcher(btf: &mut Btf, with_lines: bool) -> Result<Dispatcher, KernelError> {
    let int = btf.add_int("int", 4, true)?;
    let ctx = btf.add_struct_fwd("xdp_md")?;
    let ctx_ptr = btf.add_ptr(ctx)?;
    let proto = btf.add_func_proto(int, &[("ctx", ctx_ptr)])?;
    let func = btf.add_func("xdpd_dispatcher", true, proto)?;
    let line = if with_lines {
        let file = btf.add_str("xdpd")?;
        let line = btf.add_str("xdpd dispatcher")?;
        Some(LineInfo { insn_off: 0, file_name_off: file, line_off: line, line_col: 0 })
    } else {
        None
    };
    Ok(Dispatcher { proto, func, line })
}

/// Appends a member's own BTF and translates its records into `dst`.
fn append_member(dst: &mut Btf, m: &LinkInput<'_>, raw: &[u8], with_lines: bool) -> Result<MemberDebug, KernelError> {
    let src = Btf::from_raw(raw)?;
    let shift = dst.append(&src)? - 1;
    let funcs =
        m.program.func_info.iter().map(|f| FuncInfo { insn_off: f.insn_off, type_id: f.type_id + shift }).collect();
    let mut lines = Vec::new();
    if with_lines {
        let mut strings: HashMap<u32, u32> = HashMap::new();
        let mut remap = |off: u32| -> Result<u32, KernelError> {
            if let Some(&new) = strings.get(&off) {
                return Ok(new);
            }
            let new = dst.add_str(&src.name(off).unwrap_or_default())?;
            strings.insert(off, new);
            Ok(new)
        };
        for l in &m.program.line_info {
            lines.push(LineInfo { file_name_off: remap(l.file_name_off)?, line_off: remap(l.line_off)?, ..*l });
        }
    }
    Ok(MemberDebug { funcs, lines, shift })
}

/// A member without BTF: each function described as a static `int f(ctx)`
/// (static functions are verified in their caller's context).
fn describe_member(dst: &mut Btf, m: &LinkInput<'_>, proto: u32) -> Result<MemberDebug, KernelError> {
    let mut funcs = Vec::new();
    for (k, start) in subprog_starts(&m.program.insns).into_iter().enumerate() {
        let name = if k == 0 { m.program.name.clone() } else { format!("{}_{k}", m.program.name) };
        let func = dst.add_func(&name, false, proto)?;
        funcs.push(FuncInfo { insn_off: start as u32, type_id: func });
    }
    Ok(MemberDebug { funcs, lines: Vec::new(), shift: 0 })
}

/// Where a member's records go in the linked program: its function records
/// (those of the main function only when it is called, not inlined), and
/// its line records split into the dispatcher region and the tail.
pub fn translate(
    debug: &MemberDebug,
    place: &[usize],
    main_len: usize,
) -> (Vec<FuncInfo>, Vec<LineInfo>, Vec<LineInfo>) {
    let at = |off: u32| place.get(off as usize).map(|&p| p as u32);
    let funcs = debug
        .funcs
        .iter()
        .filter(|f| (f.insn_off as usize) >= main_len || main_len == 0)
        .filter_map(|f| Some(FuncInfo { insn_off: at(f.insn_off)?, ..*f }))
        .collect();
    let (mut main, mut tail) = (Vec::new(), Vec::new());
    for l in &debug.lines {
        let Some(insn_off) = at(l.insn_off) else { continue };
        let moved = LineInfo { insn_off, ..*l };
        if (l.insn_off as usize) < main_len {
            main.push(moved);
        } else {
            tail.push(moved);
        }
    }
    (funcs, main, tail)
}

/// The merged debug info of the chain (`None` when no member has BTF) and
/// each member's type id shift into it. Line info is kept only when every
/// member has some.
pub fn build(
    members: &[LinkInput<'_>],
    placements: &[Placement],
    places: &[Vec<usize>],
) -> Result<(Option<DebugInfo>, Vec<u32>), KernelError> {
    let mut shifts = Vec::with_capacity(members.len());
    if !members.iter().any(|m| m.program.btf.is_some()) {
        return Ok((None, vec![0; members.len()]));
    }
    let with_lines = members.iter().all(|m| !m.program.line_info.is_empty());
    let mut btf = Btf::empty()?;
    let d = dispatcher(&mut btf, with_lines)?;
    let mut func_info = vec![FuncInfo { insn_off: 0, type_id: d.func }];
    let mut line_info: Vec<LineInfo> = d.line.into_iter().collect();
    let mut tail_lines = Vec::new();
    for ((m, placement), place) in members.iter().zip(placements).zip(places) {
        let debug = match &m.program.btf {
            Some(raw) => append_member(&mut btf, m, raw, with_lines)?,
            None => describe_member(&mut btf, m, d.proto)?,
        };
        shifts.push(debug.shift);
        let (funcs, main, tail) = translate(&debug, place, placement.main_len());
        func_info.extend(funcs);
        line_info.extend(main);
        tail_lines.extend(tail);
    }
    line_info.extend(tail_lines);
    Ok((Some(DebugInfo { btf, func_info, line_info }), shifts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(insn_off: u32) -> LineInfo {
        LineInfo { insn_off, file_name_off: 1, line_off: 2, line_col: 3 }
    }

    #[test]
    fn an_inlined_main_function_loses_its_func_record_and_keeps_its_lines() {
        let debug = MemberDebug {
            funcs: vec![FuncInfo { insn_off: 0, type_id: 10 }, FuncInfo { insn_off: 2, type_id: 11 }],
            lines: vec![line(0), line(1), line(2)],
            shift: 0,
        };
        let place = [5, 6, 30, 31];
        let (funcs, main, tail) = translate(&debug, &place, 2);
        assert_eq!(funcs, vec![FuncInfo { insn_off: 30, type_id: 11 }]);
        assert_eq!(main.iter().map(|l| l.insn_off).collect::<Vec<_>>(), vec![5, 6]);
        assert_eq!(tail, vec![line(30)]);
    }

    #[test]
    fn a_called_member_keeps_every_record() {
        let debug = MemberDebug { funcs: vec![FuncInfo { insn_off: 0, type_id: 4 }], lines: vec![line(0)], shift: 0 };
        let (funcs, main, tail) = translate(&debug, &[40, 41], 0);
        assert_eq!(funcs, vec![FuncInfo { insn_off: 40, type_id: 4 }]);
        assert!(main.is_empty());
        assert_eq!(tail, vec![line(40)]);
    }

    #[test]
    fn the_dispatcher_is_a_global_function_of_one_context_argument() {
        let mut btf = Btf::empty().expect("libbpf allocates an empty BTF");
        let d = dispatcher(&mut btf, true).expect("types are added");
        assert_eq!(btf.type_name(d.func).as_deref(), Some("xdpd_dispatcher"));
        assert_eq!(btf.header(d.proto).map(|h| h.vlen), Some(1));
        let line = d.line.expect("a line record");
        assert_eq!(btf.name(line.line_off).as_deref(), Some("xdpd dispatcher"));
    }
}
