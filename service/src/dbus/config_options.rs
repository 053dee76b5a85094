//! The AddProgram options that configure an object before it is loaded, as
//! libbpf skeletons do: `globals` (a{ss}: variable → value) and `map-sizes`
//! (a{su}: map → max_entries). Typed against the object's BTF later, in the
//! intake child; here only their shape is checked.

use std::collections::BTreeMap;

use zbus::Variant;

use super::options::AddRequest;
use crate::error::ServiceError;

/// The options of this family, with their D-Bus type.
pub const OPTIONS: &[(&str, &str)] = &[("globals", "a{ss}"), ("map-sizes", "a{su}"), ("object-name", "s")];

/// Takes `name` = `value` into `req` if it is an option of this family:
/// `None` when it is not one, `Some(false)` when its type is wrong, an
/// error naming what is wrong inside a value of the right type.
pub fn take(name: &str, value: &Variant<'_>, req: &mut AddRequest) -> Result<Option<bool>, ServiceError> {
    match (name, value) {
        ("globals", v @ Variant::Dict(_)) => req.config.globals = globals(v)?,
        ("map-sizes", v @ Variant::Dict(_)) => req.config.map_sizes = map_sizes(v)?,
        ("object-name", Variant::Str(s)) => req.config.object_name = Some(object_name(s.as_str())?),
        (name, _) if OPTIONS.iter().any(|(n, _)| *n == name) => return Ok(Some(false)),
        _ => return Ok(None),
    }
    Ok(Some(true))
}

/// At most this many variables or maps in one request.
const MAX_ENTRIES: usize = 256;

fn name_ok(option: &str, name: &str) -> Result<(), ServiceError> {
    if name.is_empty() || name.len() > 256 || name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(ServiceError::InvalidArgs(format!(
            "option '{option}': names are 1 to 256 characters, none of them spaces or control characters"
        )));
    }
    Ok(())
}

fn entries<'a>(option: &str, value: &'a Variant<'a>) -> Result<Vec<(&'a Variant<'a>, &'a Variant<'a>)>, ServiceError> {
    let Variant::Dict(dict) = value else {
        return Err(ServiceError::InvalidArgs(format!("option '{option}' must be a dictionary")));
    };
    let pairs: Vec<_> = dict.iter().collect();
    if pairs.len() > MAX_ENTRIES {
        return Err(ServiceError::InvalidArgs(format!("option '{option}' names more than {MAX_ENTRIES} entries")));
    }
    Ok(pairs)
}

/// `globals` (a{ss}): variable → value (decimal, 0x hexadecimal, true, false).
pub fn globals(value: &Variant<'_>) -> Result<BTreeMap<String, String>, ServiceError> {
    let mut out = BTreeMap::new();
    for (k, v) in entries("globals", value)? {
        let (Variant::Str(name), Variant::Str(text)) = (k, v) else {
            return Err(ServiceError::InvalidArgs("option 'globals' must be of type 'a{ss}'".into()));
        };
        name_ok("globals", name.as_str())?;
        if text.as_str().len() > 64 || text.as_str().chars().any(char::is_control) {
            return Err(ServiceError::InvalidArgs(format!(
                "option 'globals': the value of '{}' must be at most 64 printable characters",
                name.as_str()
            )));
        }
        out.insert(name.as_str().to_string(), text.as_str().to_string());
    }
    Ok(out)
}

/// `map-sizes` (a{su}): map → max_entries.
pub fn map_sizes(value: &Variant<'_>) -> Result<BTreeMap<String, u32>, ServiceError> {
    let mut out = BTreeMap::new();
    for (k, v) in entries("map-sizes", value)? {
        let (Variant::Str(name), Variant::U32(size)) = (k, v) else {
            return Err(ServiceError::InvalidArgs("option 'map-sizes' must be of type 'a{su}'".into()));
        };
        name_ok("map-sizes", name.as_str())?;
        out.insert(name.as_str().to_string(), *size);
    }
    Ok(out)
}

/// `object-name` (s): what libbpf names the object (and so its global-data
/// maps, `<object>.bss`) when the descriptor names no file: 1 to 64 letters,
/// digits, `_` and `-`.
pub fn object_name(name: &str) -> Result<String, ServiceError> {
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if name.is_empty() || name.len() > 64 || !name.chars().all(ok) {
        return Err(ServiceError::InvalidArgs(
            "option 'object-name' must be 1 to 64 letters, digits, '_' or '-'".into(),
        ));
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn shapes_are_checked() {
        let good = Variant::from(HashMap::from([("port".to_string(), "0x50".to_string())]));
        assert_eq!(globals(&good).ok(), Some(BTreeMap::from([("port".to_string(), "0x50".to_string())])));
        let wrong = Variant::from(HashMap::from([("port".to_string(), 80u32)]));
        assert!(matches!(globals(&wrong), Err(ServiceError::InvalidArgs(m)) if m.contains("a{ss}")));
        assert_eq!(map_sizes(&wrong).ok(), Some(BTreeMap::from([("port".to_string(), 80)])));
        let spaced = Variant::from(HashMap::from([("a b".to_string(), 1u32)]));
        assert!(matches!(map_sizes(&spaced), Err(ServiceError::InvalidArgs(_))));
        assert!(matches!(globals(&Variant::from(7u32)), Err(ServiceError::InvalidArgs(_))));
        assert_eq!(object_name("filter_bpf").ok().as_deref(), Some("filter_bpf"));
        assert!(object_name("a.b").is_err() && object_name("").is_err() && object_name("../x").is_err());
    }
}
