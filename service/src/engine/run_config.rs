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
