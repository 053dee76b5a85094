//! Just enough ELF reading to refuse what is not a BPF object with a precise
//! message before libbpf sees it, and to read the object's license.

const EM_BPF: u16 = 247;

/// A checked ELF64 little-endian BPF relocatable object.
pub struct Elf<'a> {
    bytes: &'a [u8],
    sections: Vec<Section>,
    names: (usize, usize),
}

struct Section {
    name: u32,
    kind: u32,
    offset: usize,
    size: usize,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<usize> {
    usize::try_from(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?)).ok()
}

fn machine_name(machine: u16) -> String {
    match machine {
        3 => "x86 (i386)".into(),
        40 => "ARM".into(),
        62 => "x86-64".into(),
        183 => "AArch64".into(),
        243 => "RISC-V".into(),
        other => format!("machine {other}"),
    }
}

impl<'a> Elf<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Elf<'a>, String> {
        if bytes.is_empty() {
            return Err("empty object".into());
        }
        if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
            return Err(if bytes.starts_with(b"\x7fELF") || b"\x7fELF".starts_with(bytes) {
                "truncated ELF header".into()
            } else {
                "not an ELF file".into()
            });
        }
        if bytes[4] != 2 || bytes[5] != 1 {
            return Err("not a 64-bit little-endian ELF object (BPF objects are ELF64 LE)".into());
        }
        let machine = u16_at(bytes, 18).unwrap_or(0);
        if machine != EM_BPF {
            return Err(format!(
                "ELF object for {}, not for BPF (compile with clang -target bpf)",
                machine_name(machine)
            ));
        }
        let bad = || "truncated or corrupt section headers".to_string();
        let shoff = u64_at(bytes, 40).ok_or_else(bad)?;
        let shentsize = u16_at(bytes, 58).ok_or_else(bad)? as usize;
        let shnum = u16_at(bytes, 60).ok_or_else(bad)? as usize;
        let shstrndx = u16_at(bytes, 62).ok_or_else(bad)? as usize;
        if shentsize < 64 || shnum == 0 {
            return Err(bad());
        }
        let table_end = shnum.checked_mul(shentsize).and_then(|n| n.checked_add(shoff)).ok_or_else(bad)?;
        if table_end > bytes.len() {
            return Err(bad());
        }
        let mut sections = Vec::with_capacity(shnum);
        for i in 0..shnum {
            let at = shoff + i * shentsize;
            let section = Section {
                name: u32_at(bytes, at).ok_or_else(bad)?,
                kind: u32_at(bytes, at + 4).ok_or_else(bad)?,
                offset: u64_at(bytes, at + 24).ok_or_else(bad)?,
                size: u64_at(bytes, at + 32).ok_or_else(bad)?,
            };
            const SHT_NOBITS: u32 = 8;
            let end = section.offset.checked_add(section.size).ok_or_else(bad)?;
            if section.kind != SHT_NOBITS && end > bytes.len() {
                return Err(format!("section {i} lies beyond the end of the file (truncated object?)"));
            }
            sections.push(section);
        }
        let names = sections.get(shstrndx).ok_or_else(bad)?;
        let names = (names.offset, names.offset + names.size);
        Ok(Elf { bytes, sections, names })
    }

    fn name(&self, section: &Section) -> Option<&'a [u8]> {
        let start = self.names.0.checked_add(section.name as usize)?;
        let table = self.bytes.get(start..self.names.1)?;
        table.split(|&b| b == 0).next()
    }

    /// The contents of the section called `name`.
    pub fn section(&self, name: &str) -> Option<&'a [u8]> {
        const SHT_NOBITS: u32 = 8;
        let s = self.sections.iter().find(|s| s.kind != SHT_NOBITS && self.name(s) == Some(name.as_bytes()))?;
        self.bytes.get(s.offset..s.offset + s.size)
    }

    /// The license string of the object (`SEC("license")`), if any.
    pub fn license(&self) -> Option<String> {
        let raw = self.section("license")?;
        let text = raw.split(|&b| b == 0).next()?;
        Some(String::from_utf8_lossy(text).into_owned())
    }
}

/// Whether the kernel treats `license` as GPL-compatible (kernel/module.c's list).
pub fn is_gpl_compatible(license: &str) -> bool {
    matches!(license, "GPL" | "GPL v2" | "GPL and additional rights" | "Dual BSD/GPL" | "Dual MIT/GPL" | "Dual MPL/GPL")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ELF64 LE header for `machine` followed by the sections `(name, type, contents)`
    /// (a null section and `.shstrtab` are added).
    fn elf(machine: u16, sections: &[(&str, u32, &[u8])]) -> Vec<u8> {
        let mut names = vec![0u8];
        let mut add_name = |n: &str| {
            let off = names.len() as u32;
            names.extend_from_slice(n.as_bytes());
            names.push(0);
            off
        };
        let mut headers: Vec<(u32, u32, usize, usize)> = vec![(0, 0, 0, 0)];
        let mut data = Vec::new();
        for (name, kind, contents) in sections {
            headers.push((add_name(name), *kind, 64 + data.len(), contents.len()));
            data.extend_from_slice(contents);
        }
        let shstrtab = add_name(".shstrtab");
        headers.push((shstrtab, 3, 64 + data.len(), names.len()));
        data.extend_from_slice(&names);
        let mut out = vec![0u8; 64];
        out[..4].copy_from_slice(b"\x7fELF");
        out[4] = 2; // ELFCLASS64
        out[5] = 1; // little-endian
        out[18..20].copy_from_slice(&machine.to_le_bytes());
        out[40..48].copy_from_slice(&((64 + data.len()) as u64).to_le_bytes());
        out[58..60].copy_from_slice(&64u16.to_le_bytes());
        out[60..62].copy_from_slice(&(headers.len() as u16).to_le_bytes());
        out[62..64].copy_from_slice(&((headers.len() - 1) as u16).to_le_bytes());
        out.extend(data);
        for (name, kind, offset, size) in headers {
            let mut h = [0u8; 64];
            h[..4].copy_from_slice(&name.to_le_bytes());
            h[4..8].copy_from_slice(&kind.to_le_bytes());
            h[24..32].copy_from_slice(&(offset as u64).to_le_bytes());
            h[32..40].copy_from_slice(&(size as u64).to_le_bytes());
            out.extend(h);
        }
        out
    }

    #[test]
    fn a_bpf_object_and_its_license() {
        let bytes = elf(EM_BPF, &[("xdp", 1, &[0; 16]), ("license", 1, b"Dual MIT/GPL\0")]);
        let parsed = Elf::parse(&bytes).expect("a valid object");
        assert_eq!(parsed.license().as_deref(), Some("Dual MIT/GPL"));
        assert_eq!(parsed.section("xdp").map(<[u8]>::len), Some(16));
        assert!(parsed.section("maps").is_none());
        let unlicensed = elf(EM_BPF, &[("xdp", 1, &[0; 8])]);
        assert_eq!(Elf::parse(&unlicensed).expect("valid").license(), None);
    }

    #[test]
    fn what_is_not_a_bpf_object_is_named() {
        let err = |bytes: &[u8]| Elf::parse(bytes).err().unwrap_or_default();
        assert_eq!(err(b""), "empty object");
        assert_eq!(err(b"\x7fEL"), "truncated ELF header");
        assert_eq!(err(&[b'#'; 100]), "not an ELF file");
        let mut elf32 = elf(EM_BPF, &[]);
        elf32[4] = 1;
        assert!(err(&elf32).starts_with("not a 64-bit little-endian"));
        assert!(err(&elf(62, &[])).starts_with("ELF object for x86-64, not for BPF"));
    }

    #[test]
    fn truncated_objects_are_refused() {
        let bytes = elf(EM_BPF, &[("xdp", 1, &[0; 16])]);
        assert_eq!(
            Elf::parse(&bytes[..bytes.len() - 1]).err().as_deref(),
            Some("truncated or corrupt section headers")
        );
        let mut beyond = bytes.clone();
        let xdp_header = beyond.len() - 2 * 64; // null, xdp, .shstrtab
        beyond[xdp_header + 32..xdp_header + 40].copy_from_slice(&1_000_000u64.to_le_bytes());
        assert!(Elf::parse(&beyond).err().is_some_and(|e| e.contains("lies beyond the end")));
    }

    #[test]
    fn gpl_compatible_licenses_are_the_kernels() {
        assert!(is_gpl_compatible("GPL"));
        assert!(is_gpl_compatible("Dual BSD/GPL"));
        assert!(!is_gpl_compatible("MIT"));
        assert!(!is_gpl_compatible(""));
    }
}
