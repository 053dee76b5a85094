//! `xdpctl maps`: a program's maps from its MapIds property (free to read),
//! and a dump of one map through the descriptor GetMaps hands out (which is
//! authorized: the program's owner, or org.xdp.manager1.manage), after the
//! changes `--set` and `--delete` ask for.

use std::collections::HashMap;
use std::net::IpAddr;
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
    /// A key of a longest-prefix-match trie as address/length.
    #[serde(skip_serializing_if = "Option::is_none")]
    prefix: Option<String>,
}

impl Value {
    fn of(bytes: &[u8]) -> Value {
        let int = match bytes.len() {
            4 => bytes.try_into().ok().map(|b| u64::from(u32::from_le_bytes(b))),
            8 => bytes.try_into().ok().map(u64::from_le_bytes),
            _ => None,
        };
        Value { hex: hex(bytes), int, prefix: None }
    }

    /// A trie key: a host-order u32 prefix length, then an IPv4 or IPv6 address.
    fn lpm_key(bytes: &[u8]) -> Value {
        let prefix = match bytes.len() {
            8 | 20 => {
                let len = u32::from_ne_bytes(bytes[..4].try_into().unwrap_or_default());
                let addr = match bytes.len() {
                    8 => IpAddr::from(<[u8; 4]>::try_from(&bytes[4..]).unwrap_or_default()),
                    _ => IpAddr::from(<[u8; 16]>::try_from(&bytes[4..]).unwrap_or_default()),
                };
                Some(format!("{addr}/{len}"))
            }
            _ => None,
        };
        match prefix {
            Some(_) => Value { hex: hex(bytes), int: None, prefix },
            None => Value::of(bytes),
        }
    }

    fn text(&self) -> String {
        match (&self.prefix, self.int) {
            (Some(prefix), _) => prefix.clone(),
            (None, Some(n)) => format!("{} ({n})", self.hex),
            (None, None) => self.hex.clone(),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The changes `--set KEY=VALUE` and `--delete KEY` ask for, as given.
#[derive(Debug, Default)]
pub struct Edits {
    set: Vec<(String, String)>,
    delete: Vec<String>,
}

impl Edits {
    pub fn parse(set: &[String], delete: &[String]) -> Result<Edits> {
        let set = set
            .iter()
            .map(|s| match s.split_once('=') {
                Some((k, v)) if !k.is_empty() && !v.is_empty() => Ok((k.to_string(), v.to_string())),
                _ => Err(Failure::new(Exit::Usage, format!("--set takes KEY=VALUE, not '{s}'"))),
            })
            .collect::<Result<_>>()?;
        Ok(Edits { set, delete: delete.to_vec() })
    }

    fn is_empty(&self) -> bool {
        self.set.is_empty() && self.delete.is_empty()
    }
}

/// The bytes `text` stands for in a field of `size` bytes (see `xdpctl maps --help`).
fn parse_bytes(text: &str, size: usize, lpm_key: bool) -> std::result::Result<Vec<u8>, String> {
    if let Some(digits) = text.strip_prefix("hex:") {
        let digits: String = digits.chars().filter(|c| !c.is_whitespace()).collect();
        if digits.len() != size * 2 {
            return Err(format!("hex:{digits} is {} bytes, not {size}", digits.len() / 2));
        }
        return (0..size)
            .map(|i| u8::from_str_radix(&digits[2 * i..2 * i + 2], 16).map_err(|_| format!("'{digits}' is not hex")))
            .collect();
    }
    if text.contains(['.', ':']) {
        let (addr, len) = match text.split_once('/') {
            Some((addr, len)) => (addr, Some(len.parse::<u32>().map_err(|_| format!("bad prefix length '{len}'"))?)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| format!("'{addr}' is not an IP address"))?;
        let (octets, bits) = match addr {
            IpAddr::V4(a) => (a.octets().to_vec(), 32),
            IpAddr::V6(a) => (a.octets().to_vec(), 128),
        };
        if len.is_some_and(|l| l > bits) {
            return Err(format!("prefix length of '{text}' is over {bits}"));
        }
        if lpm_key && size == octets.len() + 4 {
            let mut key = len.unwrap_or(bits).to_ne_bytes().to_vec();
            key.extend(octets);
            return Ok(key);
        }
        if len.is_none() && size == octets.len() {
            return Ok(octets);
        }
        return Err(match len {
            Some(_) => format!("'{text}' needs a longest-prefix-match trie with {}-byte keys", octets.len() + 4),
            None => format!("'{text}' is {} bytes, not {size}", octets.len()),
        });
    }
    let n = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(digits) => u64::from_str_radix(digits, 16),
        None => text.parse::<u64>(),
    }
    .map_err(|_| format!("'{text}' is neither an unsigned integer, hex:BYTES nor an IP address"))?;
    let too_big = |_| format!("{text} does not fit in {size} bytes");
    Ok(match size {
        1 => u8::try_from(n).map_err(too_big)?.to_ne_bytes().to_vec(),
        2 => u16::try_from(n).map_err(too_big)?.to_ne_bytes().to_vec(),
        4 => u32::try_from(n).map_err(too_big)?.to_ne_bytes().to_vec(),
        8 => n.to_ne_bytes().to_vec(),
        _ => return Err(format!("an integer cannot fill {size} bytes: give hex:BYTES")),
    })
}

/// Applies `edits` to the map `fd`: deletions first, then updates.
fn apply(fd: BorrowedFd<'_>, info: &MapInfo, edits: &Edits, map: &str) -> Result<()> {
    let (key_size, value_size) = (info.key_size as usize, info.value_size as usize);
    let usage = |what: &str, text: &str, why: String| {
        Failure::new(Exit::Usage, format!("cannot use '{text}' as a {what} of map '{map}': {why}"))
    };
    let key = |text: &str| parse_bytes(text, key_size, info.lpm_trie()).map_err(|why| usage("key", text, why));
    let failed = |what: &str, text: &str, e: std::io::Error| {
        let hint = match e.raw_os_error() {
            Some(libc::EINVAL) if what == "delete" => " (array maps have no keys to delete: set the value to 0)",
            Some(libc::EPERM) => " (the map is read-only for programs' users, e.g. .rodata)",
            Some(libc::E2BIG) => " (the map is full: delete entries first)",
            _ => "",
        };
        Failure::new(Exit::Failure, format!("cannot {what} key '{text}' of map '{map}': {e}{hint}"))
    };
    // An array's keys are the indexes 0..max_entries: say so rather than the kernel's E2BIG.
    let in_range = |text: &str, key: &[u8]| {
        let index = <[u8; 4]>::try_from(key).map(u32::from_ne_bytes);
        match index {
            Ok(i) if info.array() && i >= info.max_entries => Err(Failure::new(
                Exit::Usage,
                format!(
                    "key {text} of map '{map}' is out of range: it is an array of {} entries (keys 0 to {})",
                    info.max_entries,
                    info.max_entries.saturating_sub(1)
                ),
            )),
            _ => Ok(()),
        }
    };
    for text in &edits.delete {
        if !bpf::delete(fd, &key(text)?).map_err(|e| failed("delete", text, e))? {
            return Err(Failure::new(Exit::NotFound, format!("map '{map}' has no key '{text}'")));
        }
    }
    for (k, v) in &edits.set {
        let key = key(k)?;
        in_range(k, &key)?;
        let value = parse_bytes(v, value_size, false).map_err(|why| usage("value", v, why))?;
        let value = if info.per_cpu() {
            // One 8-byte aligned slot per possible CPU, each with the value.
            let cpus = bpf::possible_cpus().map_err(|e| failed("set", k, e))?;
            let mut slot = value;
            slot.resize(value_size.div_ceil(8) * 8, 0);
            slot.repeat(cpus)
        } else {
            value
        };
        bpf::update(fd, &key, &value).map_err(|e| failed("set", k, e))?;
    }
    Ok(())
}

/// For apply: whether `key` of the map `fd` holds other than `value` (both as
/// `--set` takes them); when it does and `write`, sets it.
pub fn set_entry(fd: BorrowedFd<'_>, map: &str, key_text: &str, value_text: &str, write: bool) -> Result<bool> {
    let failed = |what: &str, e: std::io::Error| {
        Failure::new(Exit::Failure, format!("cannot {what} key '{key_text}' of map '{map}': {e}"))
    };
    let info = bpf::map_info(fd).map_err(|e| failed("describe the map for", e))?;
    let usage = |what: &str, text: &str, why: String| {
        Failure::new(Exit::Usage, format!("cannot use '{text}' as a {what} of map '{map}': {why}"))
    };
    let key = parse_bytes(key_text, info.key_size as usize, info.lpm_trie()).map_err(|w| usage("key", key_text, w))?;
    let value = parse_bytes(value_text, info.value_size as usize, false).map_err(|w| usage("value", value_text, w))?;
    let value_size = info.value_size as usize;
    let (cpus, slot) = if info.per_cpu() {
        (bpf::possible_cpus().map_err(|e| failed("read", e))?, value_size.div_ceil(8) * 8)
    } else {
        (1, value_size)
    };
    let current = bpf::lookup(fd, &key, slot * cpus).map_err(|e| failed("read", e))?;
    let same = current.is_some_and(|bytes| bytes.chunks(slot).all(|c| c.get(..value_size) == Some(&value[..])));
    if same {
        return Ok(false);
    }
    if write {
        apply(
            fd,
            &info,
            &Edits { set: vec![(key_text.to_string(), value_text.to_string())], delete: Vec::new() },
            map,
        )?;
    }
    Ok(true)
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

pub async fn run(
    client: &Client,
    out: &mut Output,
    iface: &str,
    program: &str,
    map: Option<&str>,
    edits: &Edits,
) -> Result<()> {
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
    if !edits.is_empty() {
        apply(fd.as_fd(), &info, edits, map)?;
    }
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
            let key = if info.lpm_trie() { Value::lpm_key(&next) } else { Value::of(&next) };
            entries.push(Entry { key, value, values });
        }
        key = Some(next);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::{parse_bytes, Edits, Value};

    #[test]
    fn values_print_hex_and_little_endian_integers() {
        assert_eq!(Value::of(&[0x61, 0x1e, 0, 0]).text(), "611e0000 (7777)");
        assert_eq!(Value::of(&[1, 0, 0, 0, 0, 0, 0, 0]).text(), "0100000000000000 (1)");
        assert_eq!(Value::of(&[1, 2]).text(), "0102");
    }

    #[test]
    fn trie_keys_print_as_prefixes() {
        let mut key = 26u32.to_ne_bytes().to_vec();
        key.extend([10, 199, 0, 64]);
        assert_eq!(Value::lpm_key(&key).text(), "10.199.0.64/26");
        assert_eq!(Value::lpm_key(&[1, 0, 0, 0]).text(), "01000000 (1)");
    }

    #[test]
    fn keys_and_values_parse_in_the_map_sizes() {
        assert_eq!(parse_bytes("9000", 4, false), Ok(9000u32.to_ne_bytes().to_vec()));
        assert_eq!(parse_bytes("0x10", 2, false), Ok(16u16.to_ne_bytes().to_vec()));
        assert_eq!(parse_bytes("0", 8, false), Ok(vec![0; 8]));
        assert!(parse_bytes("70000", 2, false).is_err());
        assert!(parse_bytes("1", 3, false).is_err());
        assert_eq!(parse_bytes("hex:0a 0b", 2, false), Ok(vec![10, 11]));
        assert!(parse_bytes("hex:0a", 2, false).is_err());
        assert_eq!(parse_bytes("10.1.2.3", 4, false), Ok(vec![10, 1, 2, 3]));
        let mut key = 24u32.to_ne_bytes().to_vec();
        key.extend([192, 0, 2, 0]);
        assert_eq!(parse_bytes("192.0.2.0/24", 8, true), Ok(key));
        let mut key = 32u32.to_ne_bytes().to_vec();
        key.extend([192, 0, 2, 1]);
        assert_eq!(parse_bytes("192.0.2.1", 8, true), Ok(key));
        assert!(parse_bytes("192.0.2.0/24", 8, false).is_err());
        assert!(parse_bytes("192.0.2.0/33", 8, true).is_err());
        assert_eq!(parse_bytes("2001:db8::/32", 20, true).map(|k| k.len()), Ok(20));
        assert!(parse_bytes("port", 4, false).is_err());
    }

    #[test]
    fn set_needs_key_and_value() {
        assert!(Edits::parse(&["22=0".into()], &[]).is_ok());
        for bad in ["22", "=0", "22="] {
            assert!(Edits::parse(&[bad.into()], &[]).is_err(), "{bad}");
        }
    }
}
