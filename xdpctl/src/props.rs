//! Property values as the service sends them (GetManagedObjects, signals):
//! typed reads that tolerate a missing or mistyped property (an older or
//! newer service), and a conversion of any D-Bus value to JSON.

use std::collections::HashMap;

use serde_json::{Map, Value};
use zbus::{OwnedVariant, Variant};

pub type Props = HashMap<String, OwnedVariant>;

fn get<'a>(props: &'a Props, name: &str) -> Option<&'a Variant<'static>> {
    props.get(name).map(|v| match &**v {
        Variant::Variant(inner) => &**inner,
        other => other,
    })
}

pub fn string(props: &Props, name: &str) -> String {
    match get(props, name) {
        Some(Variant::Str(s)) => s.as_str().to_string(),
        Some(Variant::ObjectPath(p)) => p.as_str().to_string(),
        _ => String::new(),
    }
}

pub fn u64_of(props: &Props, name: &str) -> u64 {
    match get(props, name) {
        Some(Variant::U64(n)) => *n,
        Some(Variant::U32(n)) => u64::from(*n),
        _ => 0,
    }
}

pub fn u32_of(props: &Props, name: &str) -> u32 {
    match get(props, name) {
        Some(Variant::U32(n)) => *n,
        _ => 0,
    }
}

pub fn i32_of(props: &Props, name: &str) -> i32 {
    match get(props, name) {
        Some(Variant::I32(n)) => *n,
        _ => 0,
    }
}

pub fn bool_of(props: &Props, name: &str) -> bool {
    matches!(get(props, name), Some(Variant::Bool(true)))
}

/// A dictionary of string to unsigned counts (`a{st}`), in name order.
pub fn counts(props: &Props, name: &str) -> std::collections::BTreeMap<String, u64> {
    match get(props, name).map(to_json) {
        Some(Value::Object(map)) => map.into_iter().filter_map(|(k, v)| Some((k, v.as_u64()?))).collect(),
        _ => Default::default(),
    }
}

/// A dictionary of string to string (`a{ss}`), in name order.
pub fn string_map(props: &Props, name: &str) -> std::collections::BTreeMap<String, String> {
    match get(props, name).map(to_json) {
        Some(Value::Object(map)) => map.into_iter().filter_map(|(k, v)| Some((k, v.as_str()?.to_string()))).collect(),
        _ => Default::default(),
    }
}

/// Arrays of strings or object paths.
pub fn strings(props: &Props, name: &str) -> Vec<String> {
    match get(props, name) {
        Some(Variant::Array(a)) => a
            .inner()
            .iter()
            .filter_map(|v| match v {
                Variant::Str(s) => Some(s.as_str().to_string()),
                Variant::ObjectPath(p) => Some(p.as_str().to_string()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Any D-Bus value as JSON: dictionaries with string keys become objects,
/// other dictionaries arrays of [key, value] pairs.
pub fn to_json(v: &Variant<'_>) -> Value {
    match v {
        Variant::U8(n) => Value::from(*n),
        Variant::Bool(b) => Value::from(*b),
        Variant::I16(n) => Value::from(*n),
        Variant::U16(n) => Value::from(*n),
        Variant::I32(n) => Value::from(*n),
        Variant::U32(n) => Value::from(*n),
        Variant::I64(n) => Value::from(*n),
        Variant::U64(n) => Value::from(*n),
        Variant::F64(n) => Value::from(*n),
        Variant::Str(s) => Value::from(s.as_str()),
        Variant::Signature(s) => Value::from(s.to_string()),
        Variant::ObjectPath(p) => Value::from(p.as_str()),
        Variant::Variant(inner) => to_json(inner),
        Variant::Array(a) => Value::Array(a.inner().iter().map(to_json).collect()),
        Variant::Dict(d) => {
            let pairs: Vec<(Value, Value)> = d.iter().map(|(k, v)| (to_json(k), to_json(v))).collect();
            if pairs.iter().all(|(k, _)| k.is_string()) {
                let mut map = Map::new();
                for (k, v) in pairs {
                    if let Value::String(k) = k {
                        map.insert(k, v);
                    }
                }
                Value::Object(map)
            } else {
                Value::Array(pairs.into_iter().map(|(k, v)| Value::Array(vec![k, v])).collect())
            }
        }
        Variant::Structure(s) => Value::Array(s.fields().iter().map(to_json).collect()),
        #[cfg(unix)]
        Variant::Fd(_) => Value::Null,
    }
}

/// A property map as one JSON object.
pub fn props_json(props: &Props) -> Value {
    let mut map = Map::new();
    let mut names: Vec<&String> = props.keys().collect();
    names.sort();
    for name in names {
        map.insert(name.clone(), to_json(&props[name]));
    }
    Value::Object(map)
}

/// A JSON value the way a person reads it on one line: strings bare, lists
/// comma separated.
pub fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => format!("[{}]", items.iter().map(plain).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_become_json() {
        let props: Props = HashMap::from([
            ("Name".to_string(), OwnedVariant::from(zbus::Str::from("eth0"))),
            ("Generation".to_string(), OwnedVariant::from(3u64)),
        ]);
        assert_eq!(string(&props, "Name"), "eth0");
        assert_eq!(u64_of(&props, "Generation"), 3);
        assert_eq!(u64_of(&props, "Missing"), 0);
        assert_eq!(props_json(&props), serde_json::json!({"Generation": 3, "Name": "eth0"}));
        assert_eq!(plain(&serde_json::json!(["a", "b"])), "[a,b]");
    }
}
