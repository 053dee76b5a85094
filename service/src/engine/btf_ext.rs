//! The instructions of a program that carry a type id of the object's own
//! BTF (`bpf_core_type_id_local()`, a CO-RE relocation of kind
//! `BPF_CORE_TYPE_ID_LOCAL`): in a chain the member's BTF is appended to the
//! chain's, so the linker must shift those ids with it.
//!
//! They are found from the object's `.BTF.ext` (CO-RE relocations and
//! function records, per ELF section), read here with bounds checks (the
//! object is untrusted), and placed in the program libbpf loaded through the
//! function records libbpf handed the kernel: a function keeps its BTF type
//! id wherever libbpf put it.

use std::collections::HashMap;

use super::elf::Elf;
use crate::kernel::btf::FuncInfo;
use crate::kernel::insn::Insn;

/// `BPF_CORE_TYPE_ID_LOCAL` in `enum bpf_core_relo_kind`.
const TYPE_ID_LOCAL: u32 = 6;
const BTF_MAGIC: u16 = 0xeb9f;

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

/// One `.BTF.ext` record: the ELF section it is in (by name offset), the
/// byte offset of its instruction in that section, and two more words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Record {
    section: u32,
    insn_off: u32,
    a: u32,
    b: u32,
}

/// The records of one `.BTF.ext` info block (func_info or core_relo) at
/// `[off, off + len)` of `data`, whose first word is the record size.
fn records(data: &[u8], off: usize, len: usize, min_size: usize, words: usize) -> Result<Vec<Record>, String> {
    let bad = || "corrupt .BTF.ext (a record block lies outside it)".to_string();
    let block = data.get(off..off.checked_add(len).ok_or_else(bad)?).ok_or_else(bad)?;
    if block.is_empty() {
        return Ok(Vec::new());
    }
    let rec_size = u32_at(block, 0).ok_or_else(bad)? as usize;
    if rec_size < min_size || !rec_size.is_multiple_of(4) {
        return Err(format!("corrupt .BTF.ext (record size {rec_size})"));
    }
    let (mut at, mut out) = (4, Vec::new());
    while at < block.len() {
        let section = u32_at(block, at).ok_or_else(bad)?;
        let count = u32_at(block, at + 4).ok_or_else(bad)? as usize;
        at += 8;
        for _ in 0..count {
            let word = |k: usize| if k < words { u32_at(block, at + 4 * k) } else { Some(0) };
            let rec = Record {
                section,
                insn_off: word(0).ok_or_else(bad)?,
                a: word(1).ok_or_else(bad)?,
                b: word(3).ok_or_else(bad)?,
            };
            out.push(rec);
            at = at.checked_add(rec_size).filter(|&end| end <= block.len()).ok_or_else(bad)?;
        }
    }
    Ok(out)
}

/// `(function records, CO-RE relocations)` of the object's `.BTF.ext`
/// (`a` is the type id; for relocations `b` is the kind).
fn ext_records(ext: &[u8]) -> Result<(Vec<Record>, Vec<Record>), String> {
    let bad = || "corrupt .BTF.ext header".to_string();
    if u32_at(ext, 0).map(|w| w as u16) != Some(BTF_MAGIC) {
        return Err(bad());
    }
    let hdr_len = u32_at(ext, 4).ok_or_else(bad)? as usize;
    let field = |k: usize| u32_at(ext, 8 + 4 * k).map(|v| v as usize).ok_or_else(bad);
    let data = ext.get(hdr_len..).ok_or_else(bad)?;
    let funcs = records(data, field(0)?, field(1)?, 8, 2)?;
    // The header has the CO-RE block only from 32 bytes on (older objects have none).
    let relos = if hdr_len >= 32 { records(data, field(4)?, field(5)?, 16, 4)? } else { Vec::new() };
    Ok((funcs, relos))
}

/// Indices, in `insns` (the program as libbpf loaded it, whose function
/// records are `loaded_funcs`), of every instruction that holds a local BTF
/// type id. Relocations in functions the program does not include are
/// ignored; one that cannot be placed refuses the object.
pub fn local_type_id_sites(elf: &Elf<'_>, insns: &[Insn], loaded_funcs: &[FuncInfo]) -> Result<Vec<usize>, String> {
    let Some(ext) = elf.section(".BTF.ext") else { return Ok(Vec::new()) };
    let (funcs, relos) = ext_records(ext)?;
    let wanted: Vec<&Record> = relos.iter().filter(|r| r.b == TYPE_ID_LOCAL).collect();
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    // Where each function (by its BTF type id) starts in the loaded program.
    let loaded: HashMap<u32, u32> = loaded_funcs.iter().map(|f| (f.type_id, f.insn_off)).collect();
    let mut sites = Vec::new();
    for relo in wanted {
        // The function of the relocation's section that holds its instruction.
        let Some(func) = funcs
            .iter()
            .filter(|f| f.section == relo.section && f.insn_off <= relo.insn_off)
            .max_by_key(|f| f.insn_off)
        else {
            return Err(format!("a local type id relocation at byte {} is in no function", relo.insn_off));
        };
        let Some(&start) = loaded.get(&func.a) else { continue };
        let at = start as usize + ((relo.insn_off - func.insn_off) / 8) as usize;
        let holds_imm = insns.get(at).is_some_and(|i| i.is_ld_imm64() || i.is_mov_imm());
        if !holds_imm {
            return Err(format!("a local type id relocation points at instruction {at}, which holds no immediate"));
        }
        sites.push(at);
    }
    sites.sort_unstable();
    sites.dedup();
    Ok(sites)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(rec_size: u32, sections: &[(u32, &[&[u32]])]) -> Vec<u8> {
        let mut out = rec_size.to_le_bytes().to_vec();
        for (name, recs) in sections {
            out.extend(name.to_le_bytes());
            out.extend((recs.len() as u32).to_le_bytes());
            for r in *recs {
                r.iter().for_each(|w| out.extend(w.to_le_bytes()));
            }
        }
        out
    }

    fn ext(funcs: &[u8], relos: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(u32::from(BTF_MAGIC).to_le_bytes()[..2].iter()); // magic
        out.extend([1u8, 0]); // version, flags
        out.extend(32u32.to_le_bytes()); // hdr_len
        let (f, r) = (funcs.len() as u32, relos.len() as u32);
        for w in [0, f, f, 0, f, r] {
            out.extend(w.to_le_bytes());
        }
        out.extend(funcs);
        out.extend(relos);
        out
    }

    #[test]
    fn relocations_and_function_records_are_read_per_section() {
        let funcs = block(8, &[(5, &[&[0, 7]]), (9, &[&[0, 12], &[64, 13]])]);
        let relos = block(16, &[(9, &[&[72, 20, 1, TYPE_ID_LOCAL], &[80, 21, 1, 0]])]);
        let (f, r) = ext_records(&ext(&funcs, &relos)).unwrap();
        assert_eq!(f.len(), 3);
        assert_eq!(f[2], Record { section: 9, insn_off: 64, a: 13, b: 0 });
        assert_eq!(r[0], Record { section: 9, insn_off: 72, a: 20, b: TYPE_ID_LOCAL });
        assert_eq!(r[1].b, 0);
    }

    #[test]
    fn corrupt_records_are_refused_not_read_past() {
        let funcs = block(8, &[(5, &[&[0, 7]])]);
        let mut raw = ext(&funcs, &[]);
        raw[32 + 8..32 + 12].copy_from_slice(&1000u32.to_le_bytes()); // 1000 records
        assert!(ext_records(&raw).is_err());
        assert!(ext_records(&[0u8; 3]).is_err());
        let tiny = block(2, &[]);
        assert!(records(&tiny, 0, tiny.len(), 8, 2).is_err());
    }
}
