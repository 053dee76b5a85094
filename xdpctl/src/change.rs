//! The commands that change a chain: add, replace, remove, reclaim. Each is
//! one authorized call (with ALLOW_INTERACTIVE_AUTH unless --no-ask-password).

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::path::Path;

use serde_json::json;
use zbus::{OwnedObjectPath, Variant};

use std::io::IsTerminal;

use crate::bus::{program_id, Client};
use crate::cli::ProgramOptions;
use crate::error::{Doing, Exit, Failure, Result};
use crate::output::Output;
use crate::props;

const LINK_IFACE: &str = "org.xdp.Manager1.Link";
const PROGRAM_IFACE: &str = "org.xdp.Manager1.Program";

/// The `a{sv}` options of AddProgram; only what the user gave, so the
/// service's defaults (the object's metadata) apply to the rest.
pub fn options(opts: &ProgramOptions, replace: bool) -> HashMap<&'static str, Variant<'static>> {
    let mut map = HashMap::new();
    if let Some(priority) = opts.priority {
        map.insert("priority", Variant::from(priority));
    }
    if let Some(actions) = &opts.proceed_on {
        // "none" is the empty set: the program ends the chain.
        let actions: Vec<String> = actions.iter().filter(|a| a.as_str() != "none").cloned().collect();
        map.insert("proceed-on", Variant::from(actions));
    }
    if let Some(mode) = opts.mode {
        map.insert("mode", Variant::from(mode.name()));
    }
    if let Some(tag) = &opts.tag {
        map.insert("tag", Variant::from(tag.clone()));
    }
    if let Some(generation) = opts.expected_generation {
        map.insert("expected-generation", Variant::from(generation));
    }
    for (name, set) in [
        ("replace", replace),
        ("persist", opts.persist),
        ("snapshot", opts.snapshot),
        ("force", opts.force),
        ("fresh-maps", opts.fresh_maps),
    ] {
        if set {
            map.insert(name, Variant::from(true));
        }
    }
    map
}

/// A program of the service as GetManagedObjects shows it.
pub struct Known {
    pub path: String,
    pub link: String,
    pub id: u64,
    pub name: String,
    pub tag: String,
    pub owner: u32,
    pub priority: i32,
}

/// Every program of the service (or of the link `link` only), in no particular order.
pub async fn programs(client: &Client, link: Option<&str>) -> Result<Vec<Known>> {
    let objects = client.managed_objects().await?;
    let mut all = Vec::new();
    for (path, interfaces) in &objects {
        let Some(p) = interfaces.iter().find(|(n, _)| n.as_str() == PROGRAM_IFACE).map(|(_, p)| p) else {
            continue;
        };
        let known = Known {
            path: path.to_string(),
            link: props::string(p, "Link"),
            id: props::u64_of(p, "Id"),
            name: props::string(p, "Name"),
            tag: props::string(p, "Tag"),
            owner: props::u32_of(p, "Owner"),
            priority: props::i32_of(p, "Priority"),
        };
        if link.is_none_or(|l| known.link == l || known.path.starts_with(&format!("{l}/program/"))) {
            all.push(known);
        }
    }
    all.sort_by_key(|k| k.id);
    Ok(all)
}

/// --proceed-on none ends the chain: say what stops running, and go on only
/// with --force or the user's yes.
async fn confirm_chain_end(client: &Client, link: &str, iface: &str, opts: &ProgramOptions) -> Result<()> {
    let following: Vec<String> = programs(client, Some(link))
        .await?
        .into_iter()
        // Equal priorities run in the order of addition: those already there run first.
        .filter(|p| opts.priority.is_none_or(|prio| p.priority > prio))
        .filter(|p| opts.tag.as_ref().is_none_or(|t| *t != p.tag))
        .map(|p| format!("{} (program {}, priority {})", p.name, p.id, p.priority))
        .collect();
    let who = if following.is_empty() {
        "every program added after it with a higher priority will never run".to_string()
    } else {
        format!("these programs of {iface} stop running: {}", following.join(", "))
    };
    eprintln!("xdpctl: warning: --proceed-on none makes this program end the chain of {iface}; {who}");
    if opts.force {
        return Ok(());
    }
    if client.interactive() && std::io::stdin().is_terminal() {
        eprint!("Add it anyway? [y/N] ");
        let mut answer = String::new();
        if std::io::stdin().read_line(&mut answer).is_ok() && matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(());
        }
        return Err(Failure::new(Exit::Usage, "not added: the chain was left as it was"));
    }
    Err(Failure::new(
        Exit::Usage,
        format!("--proceed-on none ends the chain of {iface}: give --force to confirm (nothing was changed)"),
    ))
}

pub async fn add(
    client: &Client,
    out: &mut Output,
    iface: &str,
    object: &Path,
    opts: &ProgramOptions,
    replace: bool,
) -> Result<()> {
    let object_name = object.display().to_string();
    if opts.proceed_on.as_ref().is_some_and(|a| a.len() > 1 && a.iter().any(|a| a == "none")) {
        return Err(Failure::new(
            Exit::Usage,
            "--proceed-on none cannot be combined with actions; give one or the other",
        ));
    }
    // Opened here, with the user's own rights; the service reads the descriptor.
    // "-" is standard input, copied into a memfd (for callers that cannot pass a
    // descriptor, e.g. Cockpit's bridge): the service still checks everything.
    let file = if object.as_os_str() == "-" {
        stdin_memfd()?
    } else {
        std::fs::File::open(object).map_err(|e| {
            Failure::new(Exit::Invalid, format!("cannot open {object_name}: {e}; give a readable XDP ELF object file"))
        })?
    };
    let link_path = client.link_path(iface).await?;
    if opts.proceed_on.as_ref().is_some_and(|a| a.iter().any(|a| a == "none")) {
        confirm_chain_end(client, link_path.as_str(), iface, opts).await?;
    }
    // What replace will replace: the caller's program with that tag on the link.
    let replaced = match (&opts.tag, replace) {
        (Some(tag), true) => {
            // SAFETY: geteuid has no failure mode.
            let me = unsafe { libc::geteuid() };
            programs(client, Some(link_path.as_str())).await?.into_iter().find(|p| p.tag == *tag && p.owner == me)
        }
        _ => None,
    };
    let link = client.link(&link_path).await?;
    let program = opts.program.clone().unwrap_or_default();
    let body = (zbus::Fd::from(file.as_fd()), program.as_str(), options(opts, replace));
    let doing = Doing::Add { iface, object: &object_name };
    if opts.dry_run {
        let report: xdpd_client::ChainReport = client.call(link.inner(), "PlanAddProgram", &body, &doing).await?;
        return crate::explain::print(out, iface, &report, true);
    }
    let path: OwnedObjectPath = client.call(link.inner(), "AddProgram", &body, &doing).await?;
    // The function name the service chose when --program was not given, and
    // the maps it carried over; decoration only.
    let (name, carried) = match client.program(&path).await {
        Ok(proxy) => (proxy.name().await.unwrap_or(program), proxy.carried_maps().await.unwrap_or_default()),
        Err(_) => (program, Vec::new()),
    };
    let id = program_id(path.as_str()).unwrap_or_default();
    if out.json {
        let mut doc = json!({ "interface": iface, "id": id, "path": path.as_str(), "name": name });
        if let Some(old) = &replaced {
            doc["replaced"] = json!({ "id": old.id, "path": old.path, "name": old.name });
            doc["carried_maps"] = json!(carried);
        }
        return out.json_line(&doc);
    }
    let Some(old) = &replaced else {
        return out.line(&format!("added {name} on {iface}: program {id} ({})", path.as_str()));
    };
    out.line(&format!(
        "replaced {} (program {}) on {iface} with {name}: program {id} ({})",
        old.name,
        old.id,
        path.as_str()
    ))?;
    let carried = if carried.is_empty() { "none".to_string() } else { carried.join(", ") };
    out.line(&format!("maps carried over: {carried}"))
}

/// The service's default object size cap (xdpd --max-object-size): reading
/// stops one byte past it, so an endless stdin cannot fill memory.
const STDIN_MAX_OBJECT_SIZE: u64 = 16 << 20;

/// Standard input, read into a memfd (the service reads it from offset 0).
fn stdin_memfd() -> Result<std::fs::File> {
    use std::io::{Read, Write};
    use std::os::fd::FromRawFd;
    let failed =
        |e: std::io::Error| Failure::new(Exit::Failure, format!("cannot copy standard input into a memfd: {e}"));
    // SAFETY: memfd_create with a NUL-terminated name; the descriptor is owned by the File.
    let fd = unsafe { libc::memfd_create(c"xdpctl-stdin".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(failed(std::io::Error::last_os_error()));
    }
    // SAFETY: fd is a fresh descriptor nothing else owns.
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    let mut bytes = Vec::new();
    std::io::stdin().lock().take(STDIN_MAX_OBJECT_SIZE + 1).read_to_end(&mut bytes).map_err(failed)?;
    if bytes.len() as u64 > STDIN_MAX_OBJECT_SIZE {
        return Err(Failure::new(
            Exit::Invalid,
            format!("the object on standard input is larger than {STDIN_MAX_OBJECT_SIZE} bytes; use a smaller object"),
        ));
    }
    if bytes.is_empty() {
        return Err(Failure::new(
            Exit::Invalid,
            "standard input is empty; pipe an XDP ELF object into xdpctl add IFACE -",
        ));
    }
    file.write_all(&bytes).map_err(failed)?;
    Ok(file)
}

/// What `remove` removes: one program by id or path (on IFACE when given),
/// or every program with a tag (on IFACE when given).
#[derive(Debug, PartialEq, Eq)]
pub enum RemoveTarget {
    Program { iface: Option<String>, program: String },
    Tag { iface: Option<String>, tag: String },
}

impl RemoveTarget {
    pub fn parse(args: &[String], tag: Option<&str>) -> Result<RemoveTarget> {
        let usage = |m: &str| Failure::new(Exit::Usage, m.to_string());
        match (args, tag) {
            ([program], None) => Ok(RemoveTarget::Program { iface: None, program: program.clone() }),
            ([iface, program], None) => {
                Ok(RemoveTarget::Program { iface: Some(iface.clone()), program: program.clone() })
            }
            ([], None) => Err(usage("remove needs a program id (xdpctl status lists them), or --tag T")),
            ([], Some(tag)) => Ok(RemoveTarget::Tag { iface: None, tag: tag.to_string() }),
            ([iface], Some(tag)) => Ok(RemoveTarget::Tag { iface: Some(iface.clone()), tag: tag.to_string() }),
            (_, _) => Err(usage("remove takes [IFACE] PROGRAM-ID, or [IFACE] --tag T; not both a program and --tag")),
        }
    }
}

pub async fn remove(client: &Client, out: &mut Output, target: &RemoveTarget) -> Result<()> {
    let (iface, link) = match target {
        RemoveTarget::Program { iface: Some(i), .. } | RemoveTarget::Tag { iface: Some(i), .. } => {
            (Some(i.as_str()), Some(client.link_path(i).await?))
        }
        _ => (None, None),
    };
    let known = programs(client, link.as_ref().map(|l| l.as_str())).await?;
    let chosen: Vec<&Known> = match target {
        RemoveTarget::Program { program, .. } => {
            let found = match (program.parse::<u64>(), program.starts_with('/')) {
                (Ok(id), _) => known.iter().find(|k| k.id == id),
                (Err(_), true) => known.iter().find(|k| k.path == *program),
                (Err(_), false) => {
                    return Err(Failure::new(
                        Exit::Usage,
                        format!("'{program}' is not a program id or object path; xdpctl status lists them"),
                    ))
                }
            };
            let Some(found) = found else {
                let place = iface.map_or_else(|| "there is".to_string(), |i| format!("{i} has"));
                return Err(Failure::new(
                    Exit::NotFound,
                    format!(
                        "cannot remove program {program}: {place} no such program; xdpctl status lists the programs"
                    ),
                ));
            };
            vec![found]
        }
        RemoveTarget::Tag { tag, .. } => {
            let found: Vec<&Known> = known.iter().filter(|k| k.tag == *tag).collect();
            if found.is_empty() {
                let place = iface.map_or_else(String::new, |i| format!(" on {i}"));
                return Err(Failure::new(
                    Exit::NotFound,
                    format!("no program has the tag '{tag}'{place}; xdpctl status shows every program's tag"),
                ));
            }
            found
        }
    };
    let names = link_names(client).await?;
    let mut removed = Vec::new();
    for program in chosen {
        let link_name = names.get(&program.link).cloned().unwrap_or_else(|| program.link.clone());
        let path = OwnedObjectPath::try_from(program.path.clone())
            .map_err(|e| Failure::new(Exit::Failure, format!("the service named an invalid path: {e}")))?;
        let proxy = client.program(&path).await?;
        let id_text = program.id.to_string();
        let doing = Doing::Remove { iface: &link_name, program: &id_text };
        client.call::<_, ()>(proxy.inner(), "Remove", &(), &doing).await?;
        if out.json {
            removed.push(
                json!({ "interface": link_name, "removed": program.path, "id": program.id, "name": program.name }),
            );
        } else {
            out.line(&format!("removed {} (program {}) from {link_name}", program.name, program.id))?;
        }
    }
    if out.json {
        // One program: the object as before; by tag: all of them.
        match (target, removed.len()) {
            (RemoveTarget::Program { .. }, 1) => out.json_line(&removed[0]),
            _ => out.json_line(&json!({ "removed": removed })),
        }
    } else {
        Ok(())
    }
}

/// Link object path to interface name.
pub async fn link_names(client: &Client) -> Result<HashMap<String, String>> {
    let objects = client.managed_objects().await?;
    Ok(objects
        .iter()
        .filter_map(|(path, ifaces)| {
            ifaces
                .iter()
                .find(|(i, _)| i.as_str() == LINK_IFACE)
                .map(|(_, p)| (path.to_string(), props::string(p, "Name")))
        })
        .collect())
}

pub async fn reclaim(client: &Client, out: &mut Output, iface: &str) -> Result<()> {
    let link_path = client.link_path(iface).await?;
    let link = client.link(&link_path).await?;
    client.call::<_, ()>(link.inner(), "Reclaim", &(), &Doing::Reclaim { iface }).await?;
    let kernel_id = link.kernel_program_id().await.unwrap_or(0);
    if out.json {
        out.json_line(&json!({ "interface": iface, "kernel_program_id": kernel_id }))
    } else {
        out.line(&format!("reclaimed {iface}: chain program {kernel_id} attached again"))
    }
}

pub async fn hold(client: &Client, out: &mut Output, iface: &str, on: bool) -> Result<()> {
    let link_path = client.link_path(iface).await?;
    let link = client.link(&link_path).await?;
    client.call::<_, ()>(link.inner(), "SetHold", &(on,), &Doing::Hold { iface }).await?;
    let kernel_id = link.kernel_program_id().await.unwrap_or(0);
    if out.json {
        return out.json_line(&json!({ "interface": iface, "hold": on, "kernel_program_id": kernel_id }));
    }
    if on {
        out.line(&format!(
            "{iface} is held: program {kernel_id} stays attached; changes are replacements through the link"
        ))
    } else {
        out.line(&format!("{iface} is not held: removing its last program detaches it"))
    }
}

pub async fn counting(client: &Client, out: &mut Output, iface: &str, on: bool) -> Result<()> {
    let link_path = client.link_path(iface).await?;
    let link = client.link(&link_path).await?;
    client.call::<_, ()>(link.inner(), "SetCounting", &(on,), &Doing::Counting { iface }).await?;
    if out.json {
        out.json_line(&json!({ "interface": iface, "counting": on }))
    } else {
        let what = if on { "on: xdpctl status shows every program's verdicts" } else { "off (the counts are kept)" };
        out.line(&format!("verdict counting on {iface} is {what}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Mode;

    #[test]
    fn only_given_options_are_sent() {
        let mut opts = ProgramOptions {
            program: None,
            priority: None,
            proceed_on: None,
            mode: None,
            tag: None,
            persist: false,
            snapshot: false,
            force: false,
            expected_generation: None,
            fresh_maps: false,
            dry_run: false,
        };
        assert!(options(&opts, false).is_empty());
        opts.priority = Some(-5);
        opts.proceed_on = Some(vec!["none".into()]);
        opts.mode = Some(Mode::Generic);
        opts.tag = Some("t".into());
        opts.force = true;
        let map = options(&opts, true);
        assert_eq!(map["priority"], Variant::from(-5i32));
        assert_eq!(map["proceed-on"], Variant::from(Vec::<String>::new()));
        assert_eq!(map["mode"], Variant::from("generic"));
        assert_eq!(map["replace"], Variant::from(true));
        assert_eq!(map["force"], Variant::from(true));
        assert!(!map.contains_key("persist"));
    }

    #[test]
    fn remove_takes_an_id_or_a_tag() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let program = |i: Option<&str>, p: &str| RemoveTarget::Program { iface: i.map(Into::into), program: p.into() };
        assert_eq!(RemoveTarget::parse(&s(&["3"]), None).ok(), Some(program(None, "3")));
        assert_eq!(RemoveTarget::parse(&s(&["eth0", "3"]), None).ok(), Some(program(Some("eth0"), "3")));
        assert_eq!(
            RemoveTarget::parse(&s(&[]), Some("t")).ok(),
            Some(RemoveTarget::Tag { iface: None, tag: "t".into() })
        );
        assert!(RemoveTarget::parse(&s(&[]), None).is_err());
        assert!(RemoveTarget::parse(&s(&["eth0", "3"]), Some("t")).is_err());
    }
}
