//! The `a{sv}` options of AddProgram, checked strictly: unknown names and
//! wrong types are errors, never ignored.

use std::collections::HashMap;

use zbus::{OwnedVariant, Variant};

use super::change_options;
use crate::engine::ActionSet;
use crate::error::ServiceError;
use crate::kernel::hook::AttachMode;

pub use crate::iface::command::AddRequest;

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
    ("sha256", "s"),
];

/// Every option name and type, of every family.
fn all_options() -> impl Iterator<Item = &'static (&'static str, &'static str)> {
    OPTIONS.iter().chain(change_options::OPTIONS)
}

fn wrong_type(name: &str, value: &Variant<'_>) -> ServiceError {
    let expected = all_options().find(|(n, _)| *n == name).map_or("?", |(_, t)| t);
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

/// An announced object hash: 64 hex digits, compared in lowercase.
fn sha256(text: &str) -> Result<String, ServiceError> {
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ServiceError::InvalidArgs("option 'sha256' must be 64 hexadecimal digits".into()));
    }
    Ok(text.to_ascii_lowercase())
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
                if !printable(s.as_str(), 256) {
                    return Err(ServiceError::InvalidArgs("tag must be at most 256 printable characters".into()));
                }
                req.tag = s.as_str().to_string()
            }
            ("replace", Variant::Bool(b)) => req.replace = *b,
            ("expected-generation", Variant::U64(g)) => req.expected_generation = Some(*g),
            ("persist", Variant::Bool(b)) => req.persist = *b,
            ("snapshot", Variant::Bool(b)) => req.snapshot = *b,
            ("force", Variant::Bool(b)) => req.force = *b,
            ("sha256", Variant::Str(s)) => req.sha256 = Some(sha256(s.as_str())?),
            (other, value) if change_options::take(other, value, &mut req).is_some_and(|taken| taken) => {}
            (known, value) if all_options().any(|(n, _)| *n == known) => return Err(wrong_type(known, value)),
            (unknown, _) => {
                let known: Vec<&str> = all_options().map(|(n, _)| *n).collect();
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
    change_options::check(&req)?;
    Ok(req)
}

/// Options that belong to a change as a whole (ChangeChain's `options`), not to one of its programs.
const CHANGE_OPTIONS: [&str; 3] = ["mode", "force", "expected-generation"];

/// The options of one program of ChangeChain: AddProgram's, but for the change's own.
pub fn parse_part(options: &HashMap<String, OwnedVariant>, index: usize) -> Result<AddRequest, ServiceError> {
    if let Some(name) = CHANGE_OPTIONS.iter().find(|n| options.contains_key(**n)) {
        return Err(ServiceError::InvalidArgs(format!(
            "program {index} of the change: option '{name}' belongs to the change's options, not to one program"
        )));
    }
    parse(options).map_err(|e| e.context(&format!("program {index} of the change: ")))
}

/// ChangeChain's own options: mode, force, expected-generation.
pub fn parse_change(options: &HashMap<String, OwnedVariant>) -> Result<AddRequest, ServiceError> {
    if let Some(name) = options.keys().find(|n| !CHANGE_OPTIONS.contains(&n.as_str())) {
        return Err(ServiceError::InvalidArgs(format!(
            "option '{name}' of the change: only {} apply to a change as a whole",
            CHANGE_OPTIONS.join(", ")
        )));
    }
    parse(options)
}

/// Whether a caller-chosen name is at most `max` bytes with no control
/// character (so it can never break a log line or a message).
fn printable(s: &str, max: usize) -> bool {
    s.len() <= max && !s.chars().any(char::is_control)
}

/// Checks the function-name argument of AddProgram: what a BPF program's
/// name can be, and nothing that could break a log line.
pub fn function_name(name: &str) -> Result<(), ServiceError> {
    if printable(name, 256) && !name.contains(char::is_whitespace) {
        Ok(())
    } else {
        Err(ServiceError::InvalidArgs(
            "the program's function name must be at most 256 characters, none of them spaces or control characters"
                .into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_one(name: &str, value: Variant<'_>) -> Result<AddRequest, ServiceError> {
        let value = OwnedVariant::try_from(value).map_err(|e| ServiceError::Failed(e.to_string()))?;
        parse(&HashMap::from([(name.to_string(), value)]))
    }

    #[test]
    fn sha256_is_64_hex_digits_kept_in_lowercase() {
        let upper = "AB".repeat(32);
        assert_eq!(parse_one("sha256", Variant::from(upper.as_str())).map(|r| r.sha256), Ok(Some("ab".repeat(32))));
        for bad in ["", "abc", &"g".repeat(64), &"a".repeat(65)] {
            assert!(matches!(parse_one("sha256", Variant::from(bad)), Err(ServiceError::InvalidArgs(_))), "{bad}");
        }
        assert!(matches!(parse_one("sha256", Variant::from(7u32)), Err(ServiceError::InvalidArgs(_))));
        assert_eq!(parse(&HashMap::new()).map(|r| r.sha256), Ok(None));
    }
}
