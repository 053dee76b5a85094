//! The `a{sv}` options of AddProgram, checked strictly: unknown names and
//! wrong types are errors, never ignored.

use std::collections::HashMap;

use zbus::{OwnedVariant, Variant};

use super::error::ServiceError;
use crate::engine::ActionSet;
use crate::kernel::hook::AttachMode;

/// What a caller asked for, decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddRequest {
    pub priority: Option<i32>,
    pub proceed_on: Option<ActionSet>,
    pub mode: Option<AttachMode>,
    pub tag: String,
    pub replace: bool,
    pub expected_generation: Option<u64>,
    pub persist: bool,
    pub snapshot: bool,
    pub force: bool,
}

/// Every option the contract knows, with its D-Bus type.
pub const OPTIONS: &[(&str, &str)] = &[
    ("priority", "i"),
    ("proceed-on", "as"),
    ("mode", "s"),
    ("tag", "s"),
    ("replace", "b"),
    ("expected-generation", "t"),
    ("persist", "b"),
    ("snapshot", "b"),
    ("force", "b"),
];

fn wrong_type(name: &str, value: &Variant<'_>) -> ServiceError {
    let expected = OPTIONS.iter().find(|(n, _)| *n == name).map_or("?", |(_, t)| t);
    ServiceError::InvalidArgs(format!(
        "option '{name}' must be of type '{expected}', not '{}'",
        value.value_signature()
    ))
}

fn unwrap_variant<'a>(value: &'a Variant<'a>) -> &'a Variant<'a> {
    match value {
        Variant::Variant(inner) => inner,
        other => other,
    }
}

pub fn parse(options: &HashMap<String, OwnedVariant>) -> Result<AddRequest, ServiceError> {
    let mut req = AddRequest::default();
    let mut names: Vec<&String> = options.keys().collect();
    names.sort();
    for name in names {
        let value = unwrap_variant(&options[name]);
        match (name.as_str(), value) {
            ("priority", Variant::I32(p)) => req.priority = Some(*p),
            ("proceed-on", Variant::Array(a)) if a.element_signature().to_string() == "s" => {
                let actions: Vec<String> = a
                    .inner()
                    .iter()
                    .filter_map(|v| if let Variant::Str(s) = v { Some(s.as_str().to_string()) } else { None })
                    .collect();
                req.proceed_on = Some(ActionSet::from_names(&actions).map_err(|bad| {
                    ServiceError::InvalidArgs(format!(
                        "unknown action '{bad}' in proceed-on (known: aborted, drop, pass, tx, redirect)"
                    ))
                })?);
            }
            ("mode", Variant::Str(s)) => {
                req.mode = Some(AttachMode::from_name(s.as_str()).ok_or_else(|| {
                    ServiceError::InvalidArgs(format!(
                        "unknown mode '{}' (known: native, generic, offload)",
                        s.as_str()
                    ))
                })?)
            }
            ("tag", Variant::Str(s)) => {
                if s.as_str().len() > 256 || s.as_str().chars().any(char::is_control) {
                    return Err(ServiceError::InvalidArgs("tag must be at most 256 printable characters".into()));
                }
                req.tag = s.as_str().to_string()
            }
            ("replace", Variant::Bool(b)) => req.replace = *b,
            ("expected-generation", Variant::U64(g)) => req.expected_generation = Some(*g),
            ("persist", Variant::Bool(b)) => req.persist = *b,
            ("snapshot", Variant::Bool(b)) => req.snapshot = *b,
            ("force", Variant::Bool(b)) => req.force = *b,
            (known, value) if OPTIONS.iter().any(|(n, _)| *n == known) => return Err(wrong_type(known, value)),
            (unknown, _) => {
                let known: Vec<&str> = OPTIONS.iter().map(|(n, _)| *n).collect();
                return Err(ServiceError::InvalidArgs(format!(
                    "unknown option '{unknown}' (known: {})",
                    known.join(", ")
                )));
            }
        }
    }
    if req.snapshot && !req.persist {
        return Err(ServiceError::InvalidArgs("option 'snapshot' only applies with 'persist'".into()));
    }
    if req.replace && req.tag.is_empty() {
        return Err(ServiceError::InvalidArgs("option 'replace' needs a 'tag' naming the program to replace".into()));
    }
    Ok(req)
}
