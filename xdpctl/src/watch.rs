//! `xdpctl watch`: one line per signal of the service, as it arrives.
//!
//! One match rule (signals from org.xdp.Manager1 under /org/xdp/Manager1)
//! covers every signal of the contract; the bus matches the well-known name
//! against whoever owns it, so events keep coming across idle exits and
//! re-activations. The AddMatch call has returned before the "ready" line is
//! printed, so every change made after that line is reported.

use std::collections::HashMap;
use std::num::NonZeroUsize;

use futures_util::StreamExt;
use serde::Serialize;
use serde_json::{json, Map, Value};
use xdpd_client::{BUS_NAME, MANAGER_PATH};
use zbus::{MatchRule, Message, MessageStream, OwnedObjectPath};

use crate::bus::{program_id, Client};
use crate::error::{classify, Doing, Exit, Failure, Result};
use crate::output::Output;
use crate::props::{self, Props};

const LINK_IFACE: &str = "org.xdp.Manager1.Link";
const PROGRAM_IFACE: &str = "org.xdp.Manager1.Program";

#[derive(Debug, Serialize)]
struct Event {
    event: &'static str,
    /// When xdpctl received the signal: RFC 3339, UTC, milliseconds.
    time: String,
    /// The object the event is about.
    path: String,
    /// The network interface's name, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    interface: Option<String>,
    #[serde(flatten)]
    details: Map<String, Value>,
}

impl Event {
    fn new(event: &'static str, path: &str, interface: Option<String>, details: Value) -> Event {
        let details = match details {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        Event { event, time: crate::output::utc_now(), path: path.to_string(), interface, details }
    }

    /// One line for people: the event, the interface, then key=value pairs
    /// (program paths shortened to their ids).
    fn text(&self) -> String {
        let mut line = format!("{} {} {}", self.time, self.event, self.interface.as_deref().unwrap_or(&self.path));
        for (key, value) in &self.details {
            match (key.as_str(), value) {
                ("changed", Value::Object(changed)) => {
                    for (k, v) in changed {
                        line.push_str(&format!(" {k}={}", short(k, v)));
                    }
                }
                _ => line.push_str(&format!(" {key}={}", short(key, value))),
            }
        }
        if self.event == "foreign-program" {
            if let Some(iface) = &self.interface {
                // Id 0 is only ever reported for a chain whose link went away.
                line.push_str(&match self.details.get("id").and_then(Value::as_u64) {
                    Some(0) => format!(" (the chain was detached: xdpctl reclaim {iface} attaches it again)"),
                    _ => format!(" (xdpctl status {iface} says what runs and what to do)"),
                });
            }
        }
        line
    }
}

/// Program paths as ids, anything else as props::plain.
fn short(key: &str, value: &Value) -> String {
    match (key, value) {
        ("programs", Value::Array(paths)) => {
            let ids: Vec<String> = paths
                .iter()
                .map(|p| p.as_str().and_then(program_id).map_or_else(|| props::plain(p), |id| id.to_string()))
                .collect();
            format!("[{}]", ids.join(","))
        }
        (_, Value::String(s)) if s.is_empty() => "\"\"".into(),
        _ => props::plain(value),
    }
}

/// A D-Bus property name in the JSON style of every output: "KernelProgramId" -> "kernel_program_id".
fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Names of the link objects, to say which interface an event is about.
struct Names(HashMap<String, String>);

impl Names {
    fn of_link(&self, link: &str) -> Option<String> {
        self.0.get(link).cloned()
    }

    fn of_program(&self, program: &str) -> Option<String> {
        program.rsplit_once("/program/").and_then(|(link, _)| self.of_link(link))
    }
}

fn decode(msg: &Message, names: &mut Names) -> zbus::Result<Option<Event>> {
    let header = msg.header();
    let (Some(interface), Some(member), Some(path)) = (header.interface(), header.member(), header.path()) else {
        return Ok(None);
    };
    let path = path.as_str();
    let event = match (interface.as_str(), member.as_str()) {
        ("org.freedesktop.DBus.ObjectManager", "InterfacesAdded") => {
            let (object, interfaces): (OwnedObjectPath, HashMap<String, Props>) = msg.body().deserialize()?;
            let object = object.as_str();
            if let Some(p) = interfaces.get(PROGRAM_IFACE) {
                let details = json!({
                    "id": props::u64_of(p, "Id"),
                    "name": props::string(p, "Name"),
                    "priority": props::i32_of(p, "Priority"),
                    "proceed_on": props::strings(p, "ProceedOn"),
                    "tag": props::string(p, "Tag"),
                    "owner": props::u32_of(p, "Owner"),
                });
                let link = props::string(p, "Link");
                let iface = names.of_link(&link).or_else(|| names.of_program(object));
                Event::new("program-added", object, iface, details)
            } else if let Some(l) = interfaces.get(LINK_IFACE) {
                let name = props::string(l, "Name");
                names.0.insert(object.to_string(), name.clone());
                Event::new("link-added", object, Some(name), json!({ "index": props::i32_of(l, "Index") }))
            } else {
                return Ok(None);
            }
        }
        ("org.freedesktop.DBus.ObjectManager", "InterfacesRemoved") => {
            let (object, interfaces): (OwnedObjectPath, Vec<String>) = msg.body().deserialize()?;
            let object = object.as_str();
            if interfaces.iter().any(|i| i == PROGRAM_IFACE) {
                let details = json!({ "id": program_id(object).unwrap_or_default() });
                Event::new("program-removed", object, names.of_program(object), details)
            } else if interfaces.iter().any(|i| i == LINK_IFACE) {
                let name = names.0.remove(object);
                Event::new("link-removed", object, name, json!({}))
            } else {
                return Ok(None);
            }
        }
        ("org.freedesktop.DBus.Properties", "PropertiesChanged") => {
            let (iface, changed, invalidated): (String, Props, Vec<String>) = msg.body().deserialize()?;
            if iface != LINK_IFACE {
                return Ok(None);
            }
            let new_name = props::string(&changed, "Name");
            if !new_name.is_empty() {
                names.0.insert(path.to_string(), new_name);
            }
            let changed: Map<String, Value> = match props::props_json(&changed) {
                Value::Object(map) => map.into_iter().map(|(k, v)| (snake_case(&k), v)).collect(),
                _ => Map::new(),
            };
            let mut details = json!({ "changed": changed });
            if !invalidated.is_empty() {
                let invalidated: Vec<String> = invalidated.iter().map(|p| snake_case(p)).collect();
                details["invalidated"] = json!(invalidated);
            }
            Event::new("link-changed", path, names.of_link(path), details)
        }
        (LINK_IFACE, "ChainChanged") => {
            let (generation, programs): (u64, Vec<OwnedObjectPath>) = msg.body().deserialize()?;
            let programs: Vec<&str> = programs.iter().map(|p| p.as_str()).collect();
            let details = json!({ "generation": generation, "programs": programs });
            Event::new("chain-changed", path, names.of_link(path), details)
        }
        (LINK_IFACE, "ForeignProgramDetected") => {
            let (id,): (u32,) = msg.body().deserialize()?;
            Event::new("foreign-program", path, names.of_link(path), json!({ "id": id }))
        }
        _ => return Ok(None),
    };
    Ok(Some(event))
}

pub async fn run(client: &Client, out: &mut Output, count: Option<u64>) -> Result<()> {
    let rule = MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .sender(BUS_NAME)
        .path_namespace(MANAGER_PATH)
        .build()
        .map_err(|e| classify(e, &Doing::Read))?;
    // A deep queue: a slow terminal must not make the bus drop us.
    let mut stream = MessageStream::for_match_rule(rule, &client.conn, NonZeroUsize::new(4096))
        .await
        .map_err(|e| classify(e, &Doing::Read))?;
    // After subscribing, so no link can be missed in between; it also
    // activates the service, so "ready" means it is up.
    let mut names = Names(crate::change::link_names(client).await?);
    if out.json {
        out.json_line(&json!({ "event": "ready" }))?;
    } else {
        eprintln!("watching {BUS_NAME}; interrupt (Ctrl-C) to stop");
    }
    let mut printed = 0u64;
    while count.is_none_or(|n| printed < n) {
        let Some(msg) = stream.next().await else {
            return Err(Failure::new(
                Exit::Unreachable,
                "watch: the connection to the bus was closed; start xdpctl watch again once the bus is back",
            ));
        };
        let msg = msg.map_err(|e| classify(e, &Doing::Read))?;
        // A signal that does not decode as the contract says is skipped, not fatal.
        let Ok(Some(event)) = decode(&msg, &mut names) else { continue };
        if out.json {
            out.json_line(&event)?;
        } else {
            out.line(&event.text())?;
        }
        printed += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_read_well() {
        let e = Event::new(
            "chain-changed",
            "/org/xdp/Manager1/link/2",
            Some("eth0".into()),
            json!({ "generation": 2, "programs": ["/org/xdp/Manager1/link/2/program/1", "/org/xdp/Manager1/link/2/program/4"] }),
        );
        assert_eq!(e.text(), format!("{} chain-changed eth0 generation=2 programs=[1,4]", e.time));
        let line = serde_json::to_string(&e).unwrap_or_default();
        let start = format!(
            r#"{{"event":"chain-changed","time":"{}","path":"/org/xdp/Manager1/link/2","interface":"eth0""#,
            e.time
        );
        assert!(line.starts_with(&start), "{line}");
        assert_eq!(snake_case("KernelProgramId"), "kernel_program_id");
        assert_eq!(snake_case("Name"), "name");
    }
}
