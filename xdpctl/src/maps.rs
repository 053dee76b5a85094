//! `xdpctl maps`: a program's maps from its MapIds property (free to read),
//! and a dump of one map through the descriptor GetMaps hands out (which is
//! authorized: the program's owner, or org.xdp.manager1.manage).

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd};

use serde::Serialize;
use serde_json::json;

use crate::bpf::{self, MapInfo};
use crate::bus::{program_id, program_path, Client};
use crate::error::{classify, Doing, Exit, Failure, Result};
use crate::output::Output;
use crate::table::Table;

#[derive(Debug, Serialize)]
struct Value {
    /// Hex bytes.
    hex: String,
    /// The bytes as a little-endian integer, when 4 or 8 bytes long.
    #[serde(skip_serializing_if = "Option::is_none")]
    int: Option<u64>,
}

impl Value {
    fn of(bytes: &[u8]) -> Value {
        let int = match bytes.len() {
            4 => bytes.try_into().ok().map(|b| u64::from(u32::from_le_bytes(b))),
            8 => bytes.try_into().ok().map(u64::from_le_bytes),
            _ => None,
        };
        Value { hex: bytes.iter().map(|b| format!("{b:02x}")).collect(), int }
    }

    fn text(&self) -> String {
        match self.int {
            Some(n) => format!("{} ({n})", self.hex),
            None => self.hex.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
struct Entry {
    key: Value,
    /// The value; for per-CPU maps, one per possible CPU in CPU order.
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    values: Option<Vec<Value>>,
}

pub async fn run(client: &Client, out: &mut Output, iface: &str, program: &str, map: Option<&str>) -> Result<()> {
    let link_path = client.link_path(iface).await?;
    let path = program_path(&link_path, iface, program)?;
    let proxy = client.program(&path).await?;
    let id = program_id(path.as_str()).unwrap_or_default();
    let Some(map) = map else {
        let ids = proxy.map_ids().await.map_err(|e| classify(e, &Doing::ReadProgram { iface, program }))?;
        let mut ids: Vec<(String, u32)> = ids.into_iter().collect();
        ids.sort();
        if out.json {
            let maps: Vec<_> = ids.iter().map(|(name, id)| json!({ "name": name, "id": id })).collect();
            return out.json_line(&json!({ "interface": iface, "program": id, "path": path.as_str(), "maps": maps }));
        }
        let mut table = Table::new(vec!["MAP", "ID"]);
        for (name, map_id) in &ids {
            table.row(vec![name.clone(), map_id.to_string()]);
        }
        return out.text(&table.render());
    };
    let doing = Doing::GetMaps { iface, program };
    let maps: HashMap<String, zbus::OwnedFd> = client.call(proxy.inner(), "GetMaps", &(), &doing).await?;
    let Some(fd) = maps.get(map) else {
        let mut names: Vec<&str> = maps.keys().map(String::as_str).collect();
        names.sort_unstable();
        return Err(Failure::new(
            Exit::NotFound,
            format!("program {id} on {iface} has no map '{map}'; its maps are: {}", names.join(", ")),
        ));
    };
    let failed = |what: &str, e: std::io::Error| {
        Failure::new(Exit::Failure, format!("cannot {what} map '{map}' of program {id} on {iface}: {e}"))
    };
    let info = bpf::map_info(fd.as_fd()).map_err(|e| failed("describe", e))?;
    let entries = dump(fd.as_fd(), &info).map_err(|e| failed("read", e))?;
    if out.json {
        let description = json!({
            "name": map,
            "id": info.id,
            "type": info.type_name(),
            "key_size": info.key_size,
            "value_size": info.value_size,
            "max_entries": info.max_entries,
        });
        return out.json_line(&json!({
            "interface": iface,
            "program": id,
            "path": path.as_str(),
            "map": description,
            "entries": entries,
        }));
    }
    let mut text = format!(
        "map {map}: id {}, {}, key {} bytes, value {} bytes, {} max entries, {} entries\n",
        info.id,
        info.type_name(),
        info.key_size,
        info.value_size,
        info.max_entries,
        entries.len()
    );
    for entry in &entries {
        let value = match (&entry.value, &entry.values) {
            (Some(v), _) => v.text(),
            (None, Some(per_cpu)) => per_cpu
                .iter()
                .enumerate()
                .map(|(cpu, v)| format!("cpu{cpu} {}", v.text()))
                .collect::<Vec<_>>()
                .join(", "),
            (None, None) => String::new(),
        };
        text.push_str(&format!("{} => {value}\n", entry.key.text()));
    }
    out.text(&text)
}

/// Every entry of the map, in the kernel's key order.
fn dump(fd: BorrowedFd<'_>, info: &MapInfo) -> std::io::Result<Vec<Entry>> {
    if info.key_size == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            format!("a {} map has no keys to list", info.type_name()),
        ));
    }
    let key_size = info.key_size as usize;
    let value_size = info.value_size as usize;
    // Per-CPU lookups return one 8-byte aligned slot per possible CPU.
    let (cpus, slot) =
        if info.per_cpu() { (bpf::possible_cpus()?, value_size.div_ceil(8) * 8) } else { (1, value_size) };
    let mut entries = Vec::new();
    let mut key: Option<Vec<u8>> = None;
    while let Some(next) = bpf::next_key(fd, key.as_deref(), key_size)? {
        if let Some(bytes) = bpf::lookup(fd, &next, slot * cpus)? {
            let (value, values) = if info.per_cpu() {
                (None, Some(bytes.chunks(slot).map(|c| Value::of(&c[..value_size.min(c.len())])).collect()))
            } else {
                (Some(Value::of(&bytes)), None)
            };
            entries.push(Entry { key: Value::of(&next), value, values });
        }
        key = Some(next);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::Value;

    #[test]
    fn values_print_hex_and_little_endian_integers() {
        assert_eq!(Value::of(&[0x61, 0x1e, 0, 0]).text(), "611e0000 (7777)");
        assert_eq!(Value::of(&[1, 0, 0, 0, 0, 0, 0, 0]).text(), "0100000000000000 (1)");
        assert_eq!(Value::of(&[1, 2]).text(), "0102");
    }
}
