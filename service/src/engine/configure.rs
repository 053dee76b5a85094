//! Configuring an object before it is loaded, as libbpf skeletons do
//! (`skel->rodata->x = 1; bpf_map__set_max_entries(...)`): values of global
//! variables, typed and range-checked from the object's BTF, and map sizes.
//! Every error names the variable or the map; nothing is loaded then.

use super::Error;
use crate::kernel::btf::{self, Btf};
use crate::kernel::object::Object;
use crate::program::ObjectConfig;

/// What a settable variable is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scalar {
    /// An integer of `bytes` bytes.
    Int { bytes: u32, signed: bool },
    /// A C `bool` (one byte, 0 or 1).
    Bool,
    /// An enum of `bytes` bytes: any value of its size.
    Enum { bytes: u32 },
}

/// One global variable of the object.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Global {
    name: String,
    section: String,
    offset: usize,
    /// `Err`: why it cannot be set.
    scalar: Result<Scalar, String>,
}

/// Whether a DATASEC is one libbpf makes a global-data map of (not `.kconfig`).
fn settable_section(name: &str) -> bool {
    matches!(name, ".rodata" | ".data" | ".bss") || name.starts_with(".rodata.") || name.starts_with(".data.")
}

fn scalar(btf: &Btf, type_id: u32) -> Result<Scalar, String> {
    let id = btf.skip_modifiers(type_id);
    let header = btf.header(id).ok_or("its type is missing from the BTF")?;
    match header.kind {
        btf::KIND_INT => {
            let encoding = btf.int_encoding(id).ok_or("its integer type is malformed")?;
            let bytes = header.size_or_type;
            if encoding >> 24 & 4 != 0 {
                Ok(Scalar::Bool)
            } else if matches!(bytes, 1 | 2 | 4 | 8) {
                Ok(Scalar::Int { bytes, signed: encoding >> 24 & 1 != 0 })
            } else {
                Err(format!("it is a {bytes}-byte integer"))
            }
        }
        btf::KIND_ENUM | btf::KIND_ENUM64 if matches!(header.size_or_type, 1 | 2 | 4 | 8) => {
            Ok(Scalar::Enum { bytes: header.size_or_type })
        }
        btf::KIND_ARRAY => Err("it is an array".into()),
        btf::KIND_STRUCT => Err("it is a struct".into()),
        btf::KIND_PTR => Err("it is a pointer".into()),
        other => Err(format!("its BTF kind is {other}")),
    }
}

/// Every variable of the object's global-data sections.
fn globals(btf: &Btf) -> Vec<Global> {
    let mut out = Vec::new();
    for id in 1..btf.type_count() {
        let Some(h) = btf.header(id).filter(|h| h.kind == btf::KIND_DATASEC) else { continue };
        let Some(section) = btf.name(h.name_off).filter(|s| settable_section(s)) else { continue };
        for (var, offset, _) in btf.datasec_entries(id) {
            let (Some(name), Some(var_type)) = (btf.type_name(var), btf.header(var).map(|v| v.size_or_type)) else {
                continue;
            };
            out.push(Global { name, section: section.clone(), offset: offset as usize, scalar: scalar(btf, var_type) });
        }
    }
    out
}

/// Parses `text` for a variable of type `scalar`: its bytes, little-endian.
fn encode(name: &str, scalar: Scalar, text: &str) -> Result<Vec<u8>, Error> {
    let bad = |why: String| Error::InvalidArgument(format!("variable '{name}': {why}"));
    let t = text.trim();
    let value: i128 = match (scalar, t) {
        (_, "true") => 1,
        (_, "false") => 0,
        _ => {
            let (negative, digits) = t.strip_prefix('-').map_or((false, t), |d| (true, d));
            let magnitude = match digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
                Some(hex) => i128::from_str_radix(hex, 16),
                None => digits.parse::<i128>(),
            }
            .map_err(|_| bad(format!("'{text}' is not a number (decimal, 0x hexadecimal, true or false)")))?;
            if negative {
                -magnitude
            } else {
                magnitude
            }
        }
    };
    let (bytes, min, max) = match scalar {
        Scalar::Bool => (1, 0, 1),
        Scalar::Int { bytes, signed: true } => (bytes, -(1i128 << (8 * bytes - 1)), (1i128 << (8 * bytes - 1)) - 1),
        Scalar::Int { bytes, signed: false } => (bytes, 0, (1i128 << (8 * bytes)) - 1),
        Scalar::Enum { bytes } => (bytes, -(1i128 << (8 * bytes - 1)), (1i128 << (8 * bytes)) - 1),
    };
    if value < min || value > max {
        let kind = match scalar {
            Scalar::Bool => "bool".to_string(),
            Scalar::Int { bytes, signed } => format!("{}{}", if signed { "s" } else { "u" }, 8 * bytes),
            Scalar::Enum { bytes } => format!("{}-byte enum", bytes),
        };
        return Err(bad(format!("{value} is out of range for {kind} ({min}..={max})")));
    }
    Ok(value.to_le_bytes()[..bytes as usize].to_vec())
}

/// Writes every configured variable into its global-data map's initial value.
fn set_globals(object: &mut Object, config: &ObjectConfig) -> Result<(), Error> {
    if config.globals.is_empty() {
        return Ok(());
    }
    let all = object.with_btf(globals).unwrap_or_default();
    for (name, text) in &config.globals {
        let Some(global) = all.iter().find(|g| g.name == *name) else {
            let known: Vec<&str> = all.iter().filter(|g| g.scalar.is_ok()).map(|g| g.name.as_str()).collect();
            return Err(Error::InvalidArgument(if known.is_empty() {
                format!("no variable '{name}': the object has no settable global variables")
            } else {
                format!("no variable '{name}' in .rodata, .data or .bss (the object has: {})", known.join(", "))
            }));
        };
        let scalar = global
            .scalar
            .clone()
            .map_err(|why| Error::InvalidArgument(format!("variable '{name}' cannot be set: {why}")))?;
        let bytes = encode(name, scalar, text)?;
        let data = object.initial_value_mut(&global.section).ok_or_else(|| {
            Error::InvalidArgument(format!("variable '{name}': section {} has no data map", global.section))
        })?;
        let slot = data.get_mut(global.offset..global.offset + bytes.len()).ok_or_else(|| {
            Error::InvalidObject(format!("variable '{name}' lies outside section {}", global.section))
        })?;
        slot.copy_from_slice(&bytes);
    }
    Ok(())
}

/// Sets every configured map size.
fn set_map_sizes(object: &Object, config: &ObjectConfig) -> Result<(), Error> {
    for (name, &size) in &config.map_sizes {
        match object.is_global_data(name) {
            None => {
                let known: Vec<String> = object.map_definitions().into_iter().map(|d| d.name).collect();
                return Err(Error::InvalidArgument(format!(
                    "no map '{name}' to size (the object has: {})",
                    known.join(", ")
                )));
            }
            Some(true) => {
                return Err(Error::InvalidArgument(format!(
                    "map '{name}' holds global variables: it has one entry (set its variables instead)"
                )))
            }
            Some(false) if size == 0 => {
                return Err(Error::InvalidArgument(format!("map '{name}': a map needs at least one entry")))
            }
            Some(false) => object
                .set_max_entries(name, size)
                .map_err(|e| Error::InvalidArgument(format!("map '{name}' cannot have {size} entries: {e}")))?,
        }
    }
    Ok(())
}

/// Configures the open, not yet loaded object as `config` says.
pub(super) fn apply(object: &mut Object, config: &ObjectConfig) -> Result<(), Error> {
    set_map_sizes(object, config)?;
    set_globals(object, config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(r: Result<Vec<u8>, Error>) -> String {
        match r {
            Err(Error::InvalidArgument(m)) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn values_are_typed_and_range_checked() {
        let u8_ = Scalar::Int { bytes: 1, signed: false };
        let s16 = Scalar::Int { bytes: 2, signed: true };
        let u32_ = Scalar::Int { bytes: 4, signed: false };
        assert_eq!(encode("x", u8_, "255").ok(), Some(vec![255]));
        assert_eq!(encode("x", s16, "-2").ok(), Some(vec![0xfe, 0xff]));
        assert_eq!(encode("x", u32_, "0x01020304").ok(), Some(vec![4, 3, 2, 1]));
        assert_eq!(encode("x", Scalar::Bool, "true").ok(), Some(vec![1]));
        assert!(err(encode("x", u8_, "256")).contains("variable 'x': 256 is out of range for u8 (0..=255)"));
        assert!(err(encode("x", s16, "40000")).contains("out of range for s16"));
        assert!(err(encode("x", u32_, "-1")).contains("out of range for u32"));
        assert!(err(encode("x", Scalar::Bool, "2")).contains("out of range for bool"));
        assert!(err(encode("port", u32_, "eighty")).contains("variable 'port': 'eighty' is not a number"));
    }

    #[test]
    fn global_data_sections_but_not_kconfig() {
        assert!(settable_section(".rodata") && settable_section(".bss") && settable_section(".data.cfg"));
        assert!(!settable_section(".kconfig") && !settable_section(".maps") && !settable_section(".xdp_run_config"));
    }
}
