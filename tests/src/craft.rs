//! Hostile objects made from real ones by changing a few bytes where a parser
//! trusts them: the ELF section table and the BTF type section.

const BTF_MAGIC: u16 = 0xeb9f;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Offset and size of the ELF64 section named `name`.
pub fn section(elf: &[u8], name: &str) -> Option<(usize, usize)> {
    let shoff = u64_at(elf, 0x28) as usize;
    let (shentsize, shnum, shstrndx) =
        (u16_at(elf, 0x3a) as usize, u16_at(elf, 0x3c) as usize, u16_at(elf, 0x3e) as usize);
    let header = |i: usize| shoff + i * shentsize;
    let strtab = u64_at(elf, header(shstrndx) + 24) as usize;
    (0..shnum).find_map(|i| {
        let h = header(i);
        let name_off = strtab + u32_at(elf, h) as usize;
        let end = elf[name_off..].iter().position(|&c| c == 0)? + name_off;
        (&elf[name_off..end] == name.as_bytes()).then(|| (u64_at(elf, h + 24) as usize, u64_at(elf, h + 32) as usize))
    })
}

/// Size of the kind-specific data that follows a BTF type's 12-byte header.
fn extra(kind: u32, vlen: usize) -> usize {
    match kind {
        1 | 14 | 17 => 4,             // INT, VAR, DECL_TAG
        3 => 12,                      // ARRAY
        4 | 5 | 15 | 19 => 12 * vlen, // STRUCT, UNION, DATASEC, ENUM64
        6 | 13 => 8 * vlen,           // ENUM, FUNC_PROTO
        _ => 0,
    }
}

/// Returns `object` with the return type of the prototype of the BTF FUNC
/// named `function` (e.g. an extern kfunc) set to `return_type`.
pub fn with_func_return_type(object: &[u8], function: &str, return_type: u32) -> Vec<u8> {
    let mut out = object.to_vec();
    let (btf, _) = section(object, ".BTF").expect("the object has .BTF");
    assert_eq!(u16_at(object, btf), BTF_MAGIC, "BTF magic");
    let hdr_len = u32_at(object, btf + 4) as usize;
    let (type_off, type_len) = (u32_at(object, btf + 8) as usize, u32_at(object, btf + 12) as usize);
    let str_off = u32_at(object, btf + 16) as usize;
    let (types, strings) = (btf + hdr_len + type_off, btf + hdr_len + str_off);
    let name_of = |off: u32| {
        let start = strings + off as usize;
        let end = object[start..].iter().position(|&c| c == 0).expect("NUL") + start;
        String::from_utf8_lossy(&object[start..end]).into_owned()
    };
    // Offsets of every type, by id (id 0 is void).
    let mut offsets = vec![0usize];
    let mut at = types;
    while at < types + type_len {
        offsets.push(at);
        let info = u32_at(object, at + 4);
        at += 12 + extra((info >> 24) & 0x1f, (info & 0xffff) as usize);
    }
    let func = offsets
        .iter()
        .skip(1)
        .copied()
        .find(|&t| (u32_at(object, t + 4) >> 24) & 0x1f == KIND_FUNC && name_of(u32_at(object, t)) == function);
    let func = func.unwrap_or_else(|| panic!("no BTF FUNC named {function}"));
    let proto = offsets[u32_at(object, func + 8) as usize];
    assert_eq!((u32_at(object, proto + 4) >> 24) & 0x1f, KIND_FUNC_PROTO, "FUNC points to a FUNC_PROTO");
    out[proto + 8..proto + 12].copy_from_slice(&return_type.to_le_bytes());
    out
}

/// `tenant_fdprobe` with its placeholder ld_imm64 turned into "r1 = the map
/// behind descriptor `fd`" (src_reg BPF_PSEUDO_MAP_FD).
pub fn naming_descriptor(fd: i32) -> Vec<u8> {
    let mut object = xdpd_bpf::object_bytes("tenant_fdprobe");
    let placeholder = [0x18, 0x01, 0, 0, 0xed, 0x5e, 0xed, 0x5e];
    let at = object.windows(8).position(|w| w == placeholder).expect("the placeholder instruction");
    object[at + 1] = 0x11;
    object[at + 4..at + 8].copy_from_slice(&fd.to_le_bytes());
    object
}
