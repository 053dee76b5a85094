//! libxdp's run-config metadata (`.xdp_run_config`), read the way libxdp reads
//! it so that objects written for libxdp behave the same under xdpd.

use super::actions::{Action, ActionSet};
use crate::kernel::btf::{Btf, KIND_DATASEC, KIND_PTR, KIND_STRUCT, KIND_VAR};

/// libxdp's default priority, for objects that declare none.
pub const DEFAULT_PRIORITY: i32 = 50;

/// A program's place and behaviour in a chain, as its object declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunConfig {
    /// Lower runs first.
    pub priority: i32,
    /// Results that let the chain proceed to the next program.
    pub proceed_on: ActionSet,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig { priority: DEFAULT_PRIORITY, proceed_on: ActionSet::of(&[Action::Pass]) }
    }
}

/// Reads the run config of `function`: defaults when the object has no
/// `.xdp_run_config` section or no entry for the function; an error for a
/// malformed entry or an unknown member, as libxdp does.
pub fn read(btf: Option<&Btf>, function: &str) -> Result<RunConfig, String> {
    let mut config = RunConfig::default();
    let Some(btf) = btf else { return Ok(config) };
    let Some(sec) = btf.find(".xdp_run_config", KIND_DATASEC) else { return Ok(config) };
    let wanted = format!("_{function}");
    let Some(var) = btf.datasec_vars(sec).into_iter().find(|&v| {
        btf.header(v).is_some_and(|h| h.kind == KIND_VAR) && btf.type_name(v).as_deref() == Some(wanted.as_str())
    }) else {
        return Ok(config);
    };
    let bad = |why: &str| format!("run config {wanted} in .xdp_run_config: {why}");
    let ty = btf.skip_modifiers(btf.header(var).map_or(0, |h| h.size_or_type));
    if btf.header(ty).map(|h| h.kind) != Some(KIND_STRUCT) {
        return Err(bad("not a struct"));
    }
    for (name, member_ty) in btf.struct_members(ty) {
        // Each member is `int (*name)[value]` (libbpf's __uint): a pointer to an array.
        let ptr = btf
            .header(member_ty)
            .filter(|h| h.kind == KIND_PTR)
            .ok_or_else(|| bad(&format!("member {name} is not __uint()")))?;
        let value = btf
            .array_len(btf.skip_modifiers(ptr.size_or_type))
            .ok_or_else(|| bad(&format!("member {name} is not __uint()")))?;
        if name == "priority" {
            config.priority = i32::try_from(value).map_err(|_| bad(&format!("priority {value} out of range")))?;
        } else if let Some(action) = Action::from_libxdp_name(&name) {
            config.proceed_on =
                if value != 0 { config.proceed_on.with(action) } else { config.proceed_on.without(action) };
        } else {
            return Err(bad(&format!(
                "unknown member '{name}' (libxdp knows priority, XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT)"
            )));
        }
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::btf::{KIND_ARRAY, KIND_INT};

    /// Raw BTF built by hand: an `int`, and for each function a VAR `_<function>`
    /// in a `.xdp_run_config` DATASEC whose struct has one `__uint(name, value)`
    /// member per entry (a pointer to an array of `value` ints), as libbpf's
    /// macros lay it out.
    fn run_config_btf(functions: &[(&str, &[(&str, u32)])]) -> Vec<u8> {
        let mut strings = vec![0u8];
        let mut add_str = |s: &str| {
            let off = strings.len() as u32;
            strings.extend_from_slice(s.as_bytes());
            strings.push(0);
            off
        };
        let info = |kind: u32, vlen: u32| (kind << 24) | vlen;
        let mut types: Vec<u32> = vec![add_str("int"), info(KIND_INT, 0), 4, 32]; // id 1
        let mut next_id = 2u32;
        let mut vars = Vec::new();
        for (function, members) in functions {
            let mut fields = Vec::new();
            for (name, value) in *members {
                types.extend([0, info(KIND_ARRAY, 0), 0, 1, 1, *value]); // array
                types.extend([0, info(KIND_PTR, 0), next_id]); // pointer to it
                fields.push((add_str(name), next_id + 1));
                next_id += 2;
            }
            types.extend([0, info(KIND_STRUCT, fields.len() as u32), 8 * fields.len() as u32]);
            for (k, (name, ty)) in fields.iter().enumerate() {
                types.extend([*name, *ty, 64 * k as u32]);
            }
            let strukt = next_id;
            types.extend([add_str(&format!("_{function}")), info(KIND_VAR, 0), strukt, 1]);
            vars.push((strukt + 1, 8 * fields.len() as u32));
            next_id += 2;
        }
        types.extend([add_str(".xdp_run_config"), info(KIND_DATASEC, vars.len() as u32), 0]);
        let mut offset = 0;
        for (var, size) in vars {
            types.extend([var, offset, size]);
            offset += size;
        }
        let type_bytes: Vec<u8> = types.iter().flat_map(|w| w.to_le_bytes()).collect();
        let mut raw = Vec::new();
        raw.extend(0xeb9fu16.to_le_bytes());
        raw.extend([1u8, 0]);
        for w in [24u32, 0, type_bytes.len() as u32, type_bytes.len() as u32, strings.len() as u32] {
            raw.extend(w.to_le_bytes());
        }
        raw.extend(type_bytes);
        raw.extend(strings);
        raw
    }

    fn read_from(functions: &[(&str, &[(&str, u32)])], function: &str) -> Result<RunConfig, String> {
        let btf = Btf::from_raw(&run_config_btf(functions)).expect("libbpf parses the hand-made BTF");
        read(Some(&btf), function)
    }

    #[test]
    fn no_btf_or_no_entry_gives_the_defaults() {
        assert_eq!(read(None, "prog"), Ok(RunConfig::default()));
        assert_eq!(read_from(&[("other", &[("priority", 5)])], "prog"), Ok(RunConfig::default()));
    }

    #[test]
    fn priority_and_actions_are_read_as_libxdp_does() {
        let config = read_from(&[("prog", &[("priority", 10), ("XDP_DROP", 1)])], "prog").expect("valid");
        assert_eq!(config.priority, 10);
        assert_eq!(config.proceed_on, ActionSet::of(&[Action::Pass, Action::Drop]));
    }

    #[test]
    fn a_zero_clears_the_default_pass() {
        let config = read_from(&[("prog", &[("XDP_PASS", 0)])], "prog").expect("valid");
        assert_eq!(config.priority, DEFAULT_PRIORITY);
        assert_eq!(config.proceed_on, ActionSet::EMPTY);
    }

    #[test]
    fn each_function_has_its_own_entry() {
        let functions: &[(&str, &[(&str, u32)])] = &[("a", &[("priority", 1)]), ("b", &[("priority", 2)])];
        assert_eq!(read_from(functions, "b").map(|c| c.priority), Ok(2));
    }

    #[test]
    fn unknown_members_are_errors() {
        let err = read_from(&[("prog", &[("XDP_BOUNCE", 1)])], "prog").expect_err("unknown member");
        assert!(err.contains("unknown member 'XDP_BOUNCE'"), "{err}");
    }
}
