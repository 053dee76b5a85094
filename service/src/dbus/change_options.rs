//! The AddProgram options that say how a change is made rather than what is
//! added: `fresh-maps` (a replacement starts with its own maps instead of
//! carrying the replaced program's over). Kept apart from `options` so other
//! option families merge without touching each other.

use zbus::Variant;

use super::options::AddRequest;
use crate::error::ServiceError;

/// The options of this family, with their D-Bus type.
pub const OPTIONS: &[(&str, &str)] = &[("fresh-maps", "b")];

/// Takes `name` = `value` into `req` if it is an option of this family:
/// `None` when it is not one, `Some(false)` when its type is wrong.
pub fn take(name: &str, value: &Variant<'_>, req: &mut AddRequest) -> Option<bool> {
    match (name, value) {
        ("fresh-maps", Variant::Bool(b)) => req.fresh_maps = *b,
        (name, _) if OPTIONS.iter().any(|(n, _)| *n == name) => return Some(false),
        _ => return None,
    }
    Some(true)
}

/// The combinations of this family's options with the others that make no sense.
pub fn check(req: &AddRequest) -> Result<(), ServiceError> {
    if req.fresh_maps && !req.replace {
        return Err(ServiceError::InvalidArgs(
            "option 'fresh-maps' only applies with 'replace' (a program added afresh has no maps to carry over)".into(),
        ));
    }
    Ok(())
}
