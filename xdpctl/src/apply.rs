//! `xdpctl apply FILE` and `xdpctl export`: chains declared in a TOML file.
//!
//! A declared program is identified by its tag, the sha256 of its object and
//! its function name. Apply compares each declared interface's chain with the
//! file and makes only the changes that close the difference, so applying the
//! same file twice changes nothing (the generation stays). An interface's
//! adds, replaces and removals go in one ChangeChain call: atomic per
//! interface, checked against the generation apply read (expected-generation),
//! so a concurrent change is refused instead of mixed in. Map contents are
//! written after the chain changed.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use zbus::OwnedObjectPath;

use xdpd_client::ChainReport;

use crate::bus::Client;
use crate::change::options;
use crate::cli::{parse_action, Mode, ProgramOptions};
use crate::error::{classify, Doing, Exit, Failure, Result};
use crate::output::Output;
use crate::props;

const LINK_IFACE: &str = "org.xdp.Manager1.Link";
const PROGRAM_IFACE: &str = "org.xdp.Manager1.Program";
/// The most programs one ChangeChain call adds (the service's limit).
const MAX_ADDS: usize = 16;

/// The file: `[[interface]]` tables, each with `[[interface.program]]` tables.
#[derive(Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Declaration {
    #[serde(default, rename = "interface")]
    pub interfaces: Vec<InterfaceDecl>,
}

#[derive(Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InterfaceDecl {
    pub name: String,
    /// Attach mode, used only when the chain is empty (as add's --mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, rename = "program")]
    pub programs: Vec<ProgramDecl>,
}

#[derive(Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProgramDecl {
    /// Path of the ELF object (relative paths are relative to the file).
    pub object: String,
    /// Function name; optional when the object has one XDP program.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    pub tag: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// Actions; [] (or ["none"]) ends the chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proceed_on: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub persist: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub snapshot: bool,
    /// Global variables set before loading (as add's --set NAME=VALUE).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub globals: BTreeMap<String, String>,
    /// Maps' max_entries set before loading (as add's --map-size MAP=N).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub map_sizes: BTreeMap<String, u32>,
    /// Map name → key → value, each as `xdpctl maps --set KEY=VALUE` takes them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub maps: BTreeMap<String, BTreeMap<String, toml::Value>>,
}

pub struct Options {
    pub dry_run: bool,
    pub prune: bool,
    pub only: Option<String>,
}

/// A program of a chain, as the service shows it.
#[derive(Debug, Clone)]
struct Existing {
    path: String,
    id: u64,
    name: String,
    tag: String,
    sha256: String,
    priority: i32,
    proceed_on: Vec<String>,
    owner: u32,
    globals: BTreeMap<String, String>,
    map_sizes: BTreeMap<String, u32>,
}

/// One step of making a chain match.
#[derive(Debug)]
enum Change {
    Add { decl: usize },
    Replace { decl: usize, old: Existing, why: String },
    Remove { old: Existing, why: &'static str },
    Map { decl: usize, map: String, key: String, value: String },
}

fn proceed_set(actions: &[String]) -> Result<Vec<String>> {
    let mut set = Vec::new();
    for a in actions {
        let a = parse_action(a).map_err(|e| Failure::new(Exit::Usage, e))?;
        if a != "none" && !set.contains(&a) {
            set.push(a);
        }
    }
    set.sort();
    Ok(set)
}

fn value_text(v: &toml::Value) -> Result<String> {
    match v {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(n) if *n >= 0 => Ok(n.to_string()),
        other => Err(Failure::new(
            Exit::Usage,
            format!("map value {other} is neither a string nor an unsigned integer (see xdpctl maps --help)"),
        )),
    }
}

/// The declared programs of one interface, with their objects read.
struct Declared<'a> {
    decl: &'a ProgramDecl,
    path: PathBuf,
    sha256: String,
}

fn read_declaration(file: &Path) -> Result<Declaration> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Failure::new(Exit::Usage, format!("cannot read {}: {e}", file.display())))?;
    toml::from_str(&text).map_err(|e| {
        Failure::new(Exit::Usage, format!("{} is not a valid declaration: {}", file.display(), e.to_string().trim()))
    })
}

fn existing_programs(objects: &zbus::fdo::ManagedObjects, link: &str) -> (u64, Vec<Existing>) {
    let Some(link_props) = objects
        .iter()
        .find(|(p, _)| p.as_str() == link)
        .and_then(|(_, i)| i.iter().find(|(n, _)| n.as_str() == LINK_IFACE))
        .map(|(_, p)| p)
    else {
        return (0, Vec::new());
    };
    let generation = props::u64_of(link_props, "Generation");
    let mut programs = Vec::new();
    for path in props::strings(link_props, "Programs") {
        let Some(p) = objects
            .iter()
            .find(|(o, _)| o.as_str() == path)
            .and_then(|(_, i)| i.iter().find(|(n, _)| n.as_str() == PROGRAM_IFACE))
            .map(|(_, p)| p)
        else {
            continue;
        };
        let mut proceed_on = props::strings(p, "ProceedOn");
        proceed_on.sort();
        programs.push(Existing {
            path: path.clone(),
            id: props::u64_of(p, "Id"),
            name: props::string(p, "Name"),
            tag: props::string(p, "Tag"),
            sha256: props::string(p, "Sha256"),
            priority: props::i32_of(p, "Priority"),
            proceed_on,
            owner: props::u32_of(p, "Owner"),
            globals: props::string_map(p, "Globals"),
            map_sizes: props::counts(p, "MapSizes").into_iter().map(|(k, v)| (k, v as u32)).collect(),
        });
    }
    (generation, programs)
}

/// What differs between a declared program and the one that has its key.
fn difference(d: &Declared<'_>, e: &Existing) -> Result<Option<String>> {
    if e.sha256 != d.sha256 {
        return Ok(Some("another object".into()));
    }
    if d.decl.function.as_ref().is_some_and(|f| *f != e.name) {
        return Ok(Some(format!("function {} instead of {}", d.decl.function.as_deref().unwrap_or(""), e.name)));
    }
    if let Some(p) = d.decl.priority.filter(|p| *p != e.priority) {
        return Ok(Some(format!("priority {p} instead of {}", e.priority)));
    }
    if let Some(actions) = &d.decl.proceed_on {
        let want = proceed_set(actions)?;
        if want != e.proceed_on {
            let show = |s: &[String]| if s.is_empty() { "none".to_string() } else { s.join(",") };
            return Ok(Some(format!("proceed-on {} instead of {}", show(&want), show(&e.proceed_on))));
        }
    }
    if d.decl.globals != e.globals {
        return Ok(Some("other globals".into()));
    }
    if d.decl.map_sizes != e.map_sizes {
        return Ok(Some("other map sizes".into()));
    }
    Ok(None)
}

pub async fn apply(client: &Client, out: &mut Output, file: &Path, opts: &Options) -> Result<()> {
    let declaration = read_declaration(file)?;
    let base = file.parent().unwrap_or(Path::new("."));
    // SAFETY: geteuid has no failure mode.
    let me = unsafe { libc::geteuid() };
    let mut any_change = false;
    let mut report = Vec::new();
    let mut seen = Vec::new();
    for iface in &declaration.interfaces {
        if opts.only.as_ref().is_some_and(|o| *o != iface.name) {
            continue;
        }
        if seen.contains(&&iface.name) {
            return Err(Failure::new(
                Exit::Usage,
                format!("{} declares interface {} twice", file.display(), iface.name),
            ));
        }
        seen.push(&iface.name);
        let mut declared = Vec::new();
        for decl in &iface.programs {
            if decl.tag.is_empty() {
                return Err(Failure::new(
                    Exit::Usage,
                    format!(
                        "{}: a program on {} has no tag; apply finds programs by their tag",
                        file.display(),
                        iface.name
                    ),
                ));
            }
            if iface.programs.iter().filter(|p| p.tag == decl.tag).count() > 1 {
                return Err(Failure::new(
                    Exit::Usage,
                    format!(
                        "{}: the tag '{}' is used twice on {}; tags name programs",
                        file.display(),
                        decl.tag,
                        iface.name
                    ),
                ));
            }
            if decl.object.starts_with("sha256:") {
                return Err(Failure::new(
                    Exit::Usage,
                    format!(
                        "{}: the object of tag '{}' on {} is only known by its {} (export found no file with it): \
                         give its path (xdpctl export --objects DIR finds it in DIR)",
                        file.display(),
                        decl.tag,
                        iface.name,
                        decl.object
                    ),
                ));
            }
            let path = base.join(&decl.object);
            let bytes = std::fs::read(&path).map_err(|e| {
                Failure::new(
                    Exit::Invalid,
                    format!("cannot read {}: {e}; give a readable XDP ELF object", path.display()),
                )
            })?;
            let sha256 = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
            declared.push(Declared { decl, path, sha256 });
        }
        let changed = apply_interface(client, out, iface, &declared, me, opts, &mut report).await?;
        any_change |= changed;
    }
    if let Some(only) = &opts.only {
        if !seen.contains(&only) {
            return Err(Failure::new(Exit::NotFound, format!("{} declares no interface {only}", file.display())));
        }
    }
    if out.json {
        out.json_line(&json!({ "dry_run": opts.dry_run, "changed": any_change, "interfaces": report }))?;
    }
    if opts.dry_run && any_change {
        return Err(Failure::new(Exit::WouldChange, ""));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn apply_interface(
    client: &Client,
    out: &mut Output,
    iface: &InterfaceDecl,
    declared: &[Declared<'_>],
    me: u32,
    opts: &Options,
    report: &mut Vec<serde_json::Value>,
) -> Result<bool> {
    let name = iface.name.as_str();
    let link_path = client.link_path(name).await?;
    let objects = client.managed_objects().await?;
    let (generation, existing) = existing_programs(&objects, link_path.as_str());
    let mut changes = Vec::new();
    let mut claimed: Vec<u64> = Vec::new();
    for (i, d) in declared.iter().enumerate() {
        let same_tag: Vec<&Existing> = existing.iter().filter(|e| e.tag == d.decl.tag).collect();
        // The same program: tag, object and function; then whether it is as declared.
        let same =
            same_tag.iter().find(|e| e.sha256 == d.sha256 && d.decl.function.as_ref().is_none_or(|f| *f == e.name));
        let mine = same_tag.iter().find(|e| e.owner == me);
        match (same, mine) {
            (Some(e), _) => {
                claimed.push(e.id);
                if let Some(why) = difference(d, e)? {
                    changes.push(Change::Replace { decl: i, old: (*e).clone(), why });
                }
            }
            (None, Some(e)) => {
                claimed.push(e.id);
                let why = difference(d, e)?.unwrap_or_else(|| "another object".into());
                changes.push(Change::Replace { decl: i, old: (*e).clone(), why });
            }
            (None, None) => changes.push(Change::Add { decl: i }),
        }
    }
    for e in &existing {
        if claimed.contains(&e.id) {
            continue;
        }
        // Others' programs, and yours that the file does not name (several
        // applications may run as the same user, root above all), stay unless --prune.
        if opts.prune {
            changes.push(Change::Remove { old: e.clone(), why: "not declared (--prune)" });
        }
    }
    // Map contents: compared with the program in place (a new one has none).
    let mut unchanged_paths: HashMap<usize, String> = HashMap::new();
    for (i, d) in declared.iter().enumerate() {
        if d.decl.maps.is_empty() {
            continue;
        }
        let rewritten =
            changes.iter().any(|c| matches!(c, Change::Add { decl } | Change::Replace { decl, .. } if *decl == i));
        if rewritten {
            for (map, entries) in &d.decl.maps {
                for (key, value) in entries {
                    changes.push(Change::Map {
                        decl: i,
                        map: map.clone(),
                        key: key.clone(),
                        value: value_text(value)?,
                    });
                }
            }
            continue;
        }
        let Some(e) = existing.iter().find(|e| e.tag == d.decl.tag && e.sha256 == d.sha256 && claimed.contains(&e.id))
        else {
            continue;
        };
        unchanged_paths.insert(i, e.path.clone());
        let fds = get_maps(client, &e.path, name).await?;
        for (map, entries) in &d.decl.maps {
            let fd = map_fd(&fds, map, &d.decl.tag)?;
            for (key, value) in entries {
                let value = value_text(value)?;
                if crate::maps::set_entry(fd.as_fd(), map, key, &value, false)? {
                    changes.push(Change::Map { decl: i, map: map.clone(), key: key.clone(), value });
                }
            }
        }
    }

    let describe = |c: &Change| -> String {
        match c {
            Change::Add { decl } => {
                let d = &declared[*decl];
                format!("+ {name}: add {} (tag {}) from {}", function_of(d), d.decl.tag, d.path.display())
            }
            Change::Replace { decl, old, why } => {
                let d = &declared[*decl];
                format!("~ {name}: replace {} (program {}, tag {}): {why}", old.name, old.id, d.decl.tag)
            }
            Change::Remove { old, why } => {
                let tag = if old.tag.is_empty() { "no tag".to_string() } else { format!("tag {}", old.tag) };
                format!("- {name}: remove {} (program {}, {tag}): {why}", old.name, old.id)
            }
            Change::Map { decl, map, key, value } => {
                format!("= {name}: set {map}[{key}] = {value} of tag {}", declared[*decl].decl.tag)
            }
        }
    };
    let lines: Vec<String> = changes.iter().map(describe).collect();
    if !out.json {
        if lines.is_empty() {
            out.line(&format!("{name}: up to date (generation {generation})"))?;
        }
        for line in &lines {
            out.line(line)?;
        }
    }
    // The chain's changes as one ChangeChain call (checked against the
    // generation read above, so a concurrent change is refused), then maps.
    let chain = chain_change(declared, &changes)?;
    if chain.parts.len() > MAX_ADDS {
        return Err(Failure::new(
            Exit::Usage,
            format!(
                "{name}: the file adds or replaces {} programs; at most {MAX_ADDS} go in one change (one descriptor \
                 each, and the system bus carries 16 in a message): declare the others in a second file",
                chain.parts.len()
            ),
        ));
    }
    let touches = !chain.parts.is_empty() || !chain.remove.is_empty();
    let mode = mode_of(iface)?.filter(|_| existing.is_empty());
    let doing = Doing::Change { iface: name };
    if opts.dry_run || changes.is_empty() {
        let mut entry = json!({ "interface": name, "changes": lines, "generation": generation });
        if opts.dry_run && touches {
            // The service links and verifies the chain the change would make (PlanChangeChain).
            let link = client.link(&link_path).await?;
            let plan: ChainReport =
                client.call(link.inner(), "PlanChangeChain", &chain.body(generation, mode), &doing).await?;
            let verified: u32 = plan.segments.iter().map(|s| s.verified_instructions).sum();
            if !out.json {
                out.line(&format!(
                    "{name}: the new chain verifies: {} programs in {} segment(s), {verified} instructions verified",
                    plan.members.len(),
                    plan.segments.len()
                ))?;
            }
            entry["plan"] = json!({
                "programs": plan.members.len(), "segments": plan.segments.len(), "verified_instructions": verified
            });
        }
        report.push(entry);
        return Ok(!changes.is_empty());
    }
    let link = client.link(&link_path).await?;
    let mut new_paths: HashMap<usize, String> = unchanged_paths;
    if touches {
        let paths: Vec<OwnedObjectPath> =
            client.call(link.inner(), "ChangeChain", &chain.body(generation, mode), &doing).await?;
        for ((decl, ..), path) in chain.parts.iter().zip(paths) {
            new_paths.insert(*decl, path.to_string());
        }
    }
    let mut fds_of: HashMap<usize, HashMap<String, zbus::OwnedFd>> = HashMap::new();
    for change in &changes {
        let Change::Map { decl, map, key, value } = change else { continue };
        if !fds_of.contains_key(decl) {
            let Some(path) = new_paths.get(decl) else { continue };
            fds_of.insert(*decl, get_maps(client, path, name).await?);
        }
        let Some(fds) = fds_of.get(decl) else { continue };
        let fd = map_fd(fds, map, &declared[*decl].decl.tag)?;
        crate::maps::set_entry(fd.as_fd(), map, key, value, true)?;
    }
    let now = link.generation().await.map_err(|e| classify(e, &Doing::Read))?;
    if !out.json {
        out.line(&format!("{name}: generation {generation} -> {now}"))?;
    }
    report.push(json!({ "interface": name, "changes": lines, "generation": now }));
    Ok(true)
}

fn function_of(d: &Declared<'_>) -> String {
    d.decl.function.clone().unwrap_or_else(|| "its program".into())
}

fn mode_of(iface: &InterfaceDecl) -> Result<Option<Mode>> {
    use clap::ValueEnum;
    match &iface.mode {
        None => Ok(None),
        Some(m) => Mode::from_str(m, true).map(Some).map_err(|_| {
            Failure::new(Exit::Usage, format!("mode '{m}' of {} is not native, generic or offload", iface.name))
        }),
    }
}

async fn get_maps(client: &Client, path: &str, iface: &str) -> Result<HashMap<String, zbus::OwnedFd>> {
    let path = OwnedObjectPath::try_from(path.to_string())
        .map_err(|e| Failure::new(Exit::Failure, format!("the service named an invalid path: {e}")))?;
    let proxy = client.program(&path).await?;
    let id = crate::bus::program_id(path.as_str()).unwrap_or_default().to_string();
    client.call(proxy.inner(), "GetMaps", &(), &Doing::GetMaps { iface, program: &id }).await
}

fn map_fd<'a>(fds: &'a HashMap<String, zbus::OwnedFd>, map: &str, tag: &str) -> Result<&'a zbus::OwnedFd> {
    fds.get(map).ok_or_else(|| {
        let mut names: Vec<&str> = fds.keys().map(String::as_str).collect();
        names.sort_unstable();
        Failure::new(
            Exit::NotFound,
            format!("the program tagged {tag} has no map '{map}'; its maps are: {}", names.join(", ")),
        )
    })
}

/// `xdpctl export`: the chains as a declaration. Objects are found by their
/// sha256 among the files of `search` (directories); otherwise the object is
/// written as "sha256:HEX" for the user to fill in.
pub async fn export(client: &Client, out: &mut Output, iface: Option<&str>, search: &[PathBuf]) -> Result<()> {
    let only = match iface {
        Some(name) => Some(client.link_path(name).await?),
        None => None,
    };
    let inode = client.netns_inode().await?;
    let objects = client.managed_objects().await?;
    let mut by_sha: HashMap<String, String> = HashMap::new();
    for dir in search {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        let mut paths: Vec<PathBuf> =
            entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
        paths.sort();
        for path in paths {
            if let Ok(bytes) = std::fs::read(&path) {
                let sha: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
                by_sha.entry(sha).or_insert_with(|| path.display().to_string());
            }
        }
    }
    let mut links: Vec<(i32, String, String)> = objects
        .iter()
        .filter(|(p, _)| only.as_ref().is_none_or(|o| o == *p))
        .filter_map(|(p, i)| {
            let l = i.iter().find(|(n, _)| n.as_str() == LINK_IFACE).map(|(_, l)| l)?;
            // One namespace's interfaces (the service's own, or -n's): names are per namespace.
            crate::bus::in_namespace(&client.netns, inode, p.as_str(), l)
                .then(|| (props::i32_of(l, "Index"), props::string(l, "Name"), p.to_string()))
        })
        .collect();
    links.sort();
    let mut declaration = Declaration::default();
    for (_, name, path) in links {
        let (_, existing) = existing_programs(&objects, &path);
        if existing.is_empty() && only.is_none() {
            continue;
        }
        let programs = existing
            .into_iter()
            .map(|e| ProgramDecl {
                object: by_sha.get(&e.sha256).cloned().unwrap_or_else(|| format!("sha256:{}", e.sha256)),
                function: Some(e.name),
                tag: e.tag,
                priority: Some(e.priority),
                proceed_on: Some(e.proceed_on),
                persist: false,
                snapshot: false,
                globals: e.globals,
                map_sizes: e.map_sizes,
                maps: BTreeMap::new(),
            })
            .collect();
        declaration.interfaces.push(InterfaceDecl { name, mode: None, programs });
    }
    if out.json {
        return out.json_line(&declaration);
    }
    let text = toml::to_string(&declaration)
        .map_err(|e| Failure::new(Exit::Failure, format!("cannot write the declaration: {e}")))?;
    out.text(&text)
}

/// The chain part of an interface's changes: the programs to add (declaration
/// index, its opened object, function, options) and the ids to remove.
struct ChainChange {
    parts: Vec<(usize, std::fs::File, String, HashMap<&'static str, zbus::Variant<'static>>)>,
    remove: Vec<u64>,
}

/// ChangeChain's (and PlanChangeChain's) arguments.
type ChangeBody<'a> = (
    Vec<(zbus::Fd<'a>, &'a str, HashMap<&'static str, zbus::Variant<'static>>)>,
    Vec<u64>,
    HashMap<&'static str, zbus::Variant<'static>>,
);

impl ChainChange {
    /// The call's arguments: the parts, the removals, the generation apply
    /// read (a concurrent change is refused) and the mode of a first attach.
    fn body(&self, generation: u64, mode: Option<Mode>) -> ChangeBody<'_> {
        let mut options = HashMap::from([("expected-generation", zbus::Variant::from(generation))]);
        if let Some(mode) = mode {
            options.insert("mode", zbus::Variant::from(mode.name()));
        }
        let add = self
            .parts
            .iter()
            .map(|(_, file, function, part)| (zbus::Fd::from(file.as_fd()), function.as_str(), part.clone()))
            .collect();
        (add, self.remove.clone(), options)
    }
}

fn chain_change(declared: &[Declared<'_>], changes: &[Change]) -> Result<ChainChange> {
    let mut chain = ChainChange { parts: Vec::new(), remove: Vec::new() };
    for change in changes {
        match change {
            Change::Add { decl } | Change::Replace { decl, .. } => {
                let d = &declared[*decl];
                let opts = ProgramOptions {
                    program: d.decl.function.clone(),
                    priority: d.decl.priority,
                    proceed_on: d.decl.proceed_on.as_ref().map(|a| proceed_set(a)).transpose()?.map(|set| {
                        if set.is_empty() {
                            vec!["none".to_string()]
                        } else {
                            set
                        }
                    }),
                    mode: None,
                    tag: Some(d.decl.tag.clone()),
                    persist: d.decl.persist,
                    snapshot: d.decl.snapshot,
                    force: false,
                    expected_generation: None,
                    globals: d.decl.globals.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                    map_sizes: d.decl.map_sizes.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                    object_name: None,
                    fresh_maps: false,
                    dry_run: false,
                };
                let file = std::fs::File::open(&d.path)
                    .map_err(|e| Failure::new(Exit::Invalid, format!("cannot open {}: {e}", d.path.display())))?;
                let replace = matches!(change, Change::Replace { .. });
                let function = d.decl.function.clone().unwrap_or_default();
                chain.parts.push((*decl, file, function, options(&opts, replace)));
            }
            Change::Remove { old, .. } => chain.remove.push(old.id),
            Change::Map { .. } => {}
        }
    }
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declarations_read_and_write_the_same() {
        let text = r#"
[[interface]]
name = "eth0"

[[interface.program]]
object = "/usr/share/xdpd/examples/port_block.o"
function = "port_block"
tag = "edge"
priority = 20
proceed_on = ["pass"]

[interface.program.maps.blocked_ports]
22 = "0"
"#;
        let d: Declaration = toml::from_str(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.interfaces[0].programs[0].maps["blocked_ports"]["22"], toml::Value::String("0".into()));
        let again: Declaration =
            toml::from_str(&toml::to_string(&d).unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again, d);
        assert!(toml::from_str::<Declaration>("[[interface]]\nname = \"x\"\nprio = 3\n").is_err());
        assert_eq!(
            proceed_set(&["XDP_PASS".into(), "drop".into(), "none".into()]).ok(),
            Some(vec!["drop".into(), "pass".into()])
        );
    }
}
