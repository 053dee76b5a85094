//! Which map descriptors one GetMaps call hands out: never more than one
//! reply may carry on the system bus (dbus-daemon disconnects a sender of
//! more, and that sender would be the service).

use std::collections::BTreeSet;

use crate::error::ServiceError;

/// Most descriptors one reply carries: dbus-daemon's system bus allows 16
/// (`max_message_unix_fds`) and disconnects a sender of more — the service.
pub const MAX_FDS_PER_REPLY: usize = 16;

/// Which maps a GetMaps call hands out: all of them (at most
/// [`MAX_FDS_PER_REPLY`]) or the named ones, each known and asked for once.
pub fn map_selection<'a>(
    all: impl Iterator<Item = &'a str>,
    names: Option<Vec<String>>,
) -> Result<BTreeSet<String>, ServiceError> {
    let all: BTreeSet<String> = all.map(str::to_string).collect();
    let Some(names) = names else {
        if all.len() > MAX_FDS_PER_REPLY {
            return Err(ServiceError::LimitExceeded(format!(
                "the program has {} maps, and one reply may carry at most {MAX_FDS_PER_REPLY} descriptors: \
                 ask for up to {MAX_FDS_PER_REPLY} of them by name with GetMapsByName",
                all.len()
            )));
        }
        return Ok(all);
    };
    if names.len() > MAX_FDS_PER_REPLY {
        return Err(ServiceError::InvalidArgs(format!(
            "{} map names asked for; one reply may carry at most {MAX_FDS_PER_REPLY} descriptors",
            names.len()
        )));
    }
    let mut wanted = BTreeSet::new();
    for name in names {
        if !all.contains(&name) {
            return Err(ServiceError::InvalidArgs(format!("the program has no map named {name:?}")));
        }
        if !wanted.insert(name.clone()) {
            return Err(ServiceError::InvalidArgs(format!("map {name:?} is asked for twice")));
        }
    }
    Ok(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_maps_never_hands_out_more_descriptors_than_a_reply_may_carry() {
        let names: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
        let all = || names.iter().map(String::as_str);
        assert!(matches!(map_selection(all().take(16), None), Ok(s) if s.len() == 16));
        assert!(matches!(map_selection(all(), None), Err(ServiceError::LimitExceeded(_))));
        let some = vec!["m3".to_string(), "m19".to_string()];
        assert_eq!(map_selection(all(), Some(some.clone())).unwrap().into_iter().collect::<Vec<_>>(), ["m19", "m3"]);
        assert!(matches!(map_selection(all(), Some(names.clone())), Err(ServiceError::InvalidArgs(_))));
        assert!(matches!(map_selection(all(), Some(vec!["nope".into()])), Err(ServiceError::InvalidArgs(_))));
        assert!(matches!(
            map_selection(all(), Some(vec!["m1".into(), "m1".into()])),
            Err(ServiceError::InvalidArgs(_))
        ));
    }
}
