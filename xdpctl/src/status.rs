//! `xdpctl status`: every interface's chain from one GetManagedObjects call,
//! so the table is a consistent snapshot rather than many separate reads.

use serde::Serialize;

use crate::bus::Client;
use crate::error::{Exit, Failure, Result};
use crate::output::Output;
use crate::props::{self, Props};
use crate::table::Table;
use crate::users::Names;

const LINK_IFACE: &str = "org.xdp.Manager1.Link";
const PROGRAM_IFACE: &str = "org.xdp.Manager1.Program";

#[derive(Debug, Serialize)]
pub struct LinkStatus {
    pub name: String,
    pub index: i32,
    /// The named network namespace of the interface; "" for the service's own.
    pub netns: String,
    /// The inode of the interface's network namespace.
    pub netns_inode: u64,
    /// What the NETNS column shows: "" for the service's own namespace, the
    /// name of a named one, `#INODE` of one without a name.
    #[serde(skip)]
    pub group: String,
    pub path: String,
    /// native, generic or offload while a chain is attached; empty otherwise.
    pub mode: String,
    pub generation: u64,
    /// Kernel id of the attached chain program, 0 if none.
    pub kernel_program_id: u32,
    /// Kernel id of a program attached by someone else, 0 if none.
    pub foreign_program_id: u32,
    /// Whether every program's verdicts are counted (xdpctl counting IFACE on).
    pub counting: bool,
    /// Whether the hook is held: a pass-through program stays attached without programs (xdpctl hold IFACE on).
    pub hold: bool,
    /// What runs: "none", "running", "detached" (the chain's link was detached
    /// behind the service's back), "replaced" (a foreign program runs instead
    /// of the chain), "foreign" (no chain; someone else's program runs).
    pub state: &'static str,
    pub programs: Vec<ProgramStatus>,
}

impl LinkStatus {
    fn state_of(programs: usize, kernel_program_id: u32, foreign_program_id: u32) -> &'static str {
        match (programs > 0, kernel_program_id != 0, foreign_program_id != 0) {
            (false, _, false) => "none",
            (false, _, true) => "foreign",
            (true, true, _) => "running",
            (true, false, false) => "detached",
            (true, false, true) => "replaced",
        }
    }

    /// What is the case and what to do, when something other than the chain
    /// the service records runs (or nothing does).
    pub fn problem(&self) -> Option<String> {
        let foreign = self.foreign_program_id;
        // How xdpctl names the interface in a command line.
        let name =
            &if self.group.is_empty() { self.name.clone() } else { format!("{} (-n {})", self.name, self.group) };
        match self.state {
            "detached" => Some(format!(
                "the chain of {name} was detached behind the service's back: its programs do not run \
                 (xdpctl reclaim {name} attaches it again)"
            )),
            "replaced" => Some(format!(
                "foreign program {foreign} replaced the chain of {name} behind the service's back: its programs \
                 do not run (xdpctl reclaim {name} takes the interface back)"
            )),
            "foreign" => Some(format!(
                "foreign program {foreign} runs on {name}, attached by someone else; the service does not manage \
                 it (xdpctl add {name} OBJECT --force takes the interface over)"
            )),
            "running" if foreign != 0 => Some(format!(
                "foreign program {foreign} is attached to {name} besides the chain, by someone else \
                 (xdpctl reclaim {name} removes it)"
            )),
            _ => None,
        }
    }

    /// Whether the chain the service records does not run.
    pub fn broken(&self) -> bool {
        matches!(self.state, "detached" | "replaced")
    }
}

#[derive(Debug, Serialize)]
pub struct ProgramStatus {
    /// 1-based place in the run order.
    pub position: usize,
    pub id: u64,
    pub path: String,
    pub name: String,
    pub priority: i32,
    pub proceed_on: Vec<String>,
    /// False when an earlier program ends the chain (empty proceed-on).
    pub linked: bool,
    pub owner: u32,
    pub owner_name: Option<String>,
    pub tag: String,
    pub sha256: String,
    /// Microseconds since the epoch.
    pub loaded_at: u64,
    /// Verdict counts (aborted, drop, pass, tx, redirect, other) while counting is or was on.
    pub stats: std::collections::BTreeMap<String, u64>,
    /// Bytes of the packets counted in `stats`, by the same verdict names.
    pub bytes: std::collections::BTreeMap<String, u64>,
}

#[derive(Serialize)]
struct StatusJson<'a> {
    interfaces: &'a [LinkStatus],
}

/// The chains of all interfaces (or of `iface` only), ordered by index.
pub async fn collect(client: &Client, iface: Option<&str>) -> Result<Vec<LinkStatus>> {
    // The lookup first: a precise "no such interface" before anything else.
    let only = match iface {
        Some(name) => Some(client.link_path(name).await?),
        None => None,
    };
    let only_inode = client.netns_inode().await?;
    let objects = client.managed_objects().await?;
    let mut names = Names::default();
    let mut links = Vec::new();
    for (path, interfaces) in &objects {
        if only.as_ref().is_some_and(|p| p != path) {
            continue;
        }
        let Some(link) = interfaces.iter().find(|(name, _)| name.as_str() == LINK_IFACE).map(|(_, p)| p) else {
            continue;
        };
        let (netns, netns_inode) = (props::string(link, "Netns"), props::u64_of(link, "NetnsInode"));
        let shown = match (&client.netns, only_inode) {
            (Some(crate::bus::Netns::Name(name)), _) => *name == netns,
            (Some(_), inode) => inode == Some(netns_inode),
            (None, _) => true,
        };
        if !shown {
            continue;
        }
        let mut programs = Vec::new();
        let mut linked = true;
        for (i, program_path) in props::strings(link, "Programs").iter().enumerate() {
            let Some(program) = objects
                .iter()
                .find(|(p, _)| p.as_str() == program_path)
                .and_then(|(_, ifaces)| ifaces.iter().find(|(n, _)| n.as_str() == PROGRAM_IFACE))
                .map(|(_, p)| p)
            else {
                continue;
            };
            let status = program_status(i + 1, program_path, program, linked, &mut names);
            linked &= !status.proceed_on.is_empty();
            programs.push(status);
        }
        let (kernel_program_id, foreign_program_id) =
            (props::u32_of(link, "KernelProgramId"), props::u32_of(link, "ForeignProgramId"));
        links.push(LinkStatus {
            state: LinkStatus::state_of(programs.len(), kernel_program_id, foreign_program_id),
            name: props::string(link, "Name"),
            index: props::i32_of(link, "Index"),
            group: group_of(path.as_str(), &netns, netns_inode),
            netns,
            netns_inode,
            path: path.to_string(),
            mode: props::string(link, "Mode"),
            generation: props::u64_of(link, "Generation"),
            kernel_program_id,
            foreign_program_id,
            counting: props::bool_of(link, "Counting"),
            hold: props::bool_of(link, "Hold"),
            programs,
        });
    }
    // Grouped by namespace, the service's own first.
    links.sort_by(|a, b| (&a.group, a.index).cmp(&(&b.group, b.index)));
    Ok(links)
}

/// The NETNS column of a link at `path`: "" for the service's own namespace.
fn group_of(path: &str, netns: &str, inode: u64) -> String {
    match (path.contains("/netns/"), netns.is_empty()) {
        (false, _) => String::new(),
        (true, false) => netns.to_string(),
        (true, true) => format!("#{inode}"),
    }
}

fn program_status(position: usize, path: &str, p: &Props, linked: bool, names: &mut Names) -> ProgramStatus {
    let owner = props::u32_of(p, "Owner");
    ProgramStatus {
        position,
        id: props::u64_of(p, "Id"),
        path: path.to_string(),
        name: props::string(p, "Name"),
        priority: props::i32_of(p, "Priority"),
        proceed_on: props::strings(p, "ProceedOn"),
        linked,
        owner,
        owner_name: names.get(owner),
        tag: props::string(p, "Tag"),
        sha256: props::string(p, "Sha256"),
        loaded_at: props::u64_of(p, "LoadedAt"),
        stats: props::counts(p, "Stats"),
        bytes: props::counts(p, "Bytes"),
    }
}

fn dash(s: &str) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s.to_string()
    }
}

fn id_or_dash(id: u32) -> String {
    if id == 0 {
        "-".into()
    } else {
        id.to_string()
    }
}

/// "pass=10 drop=3": the non-zero verdict counts of a program.
fn verdicts(stats: &std::collections::BTreeMap<String, u64>) -> String {
    let counted: Vec<String> = stats.iter().filter(|(_, &n)| n > 0).map(|(k, n)| format!("{k}={n}")).collect();
    if counted.is_empty() {
        "-".into()
    } else {
        counted.join(" ")
    }
}

pub fn render(links: &[LinkStatus]) -> String {
    // The verdict column only when some link counts, or counted.
    let with_stats = links.iter().any(|l| l.counting || l.programs.iter().any(|p| !p.stats.is_empty()));
    // The namespace column only when some interface is in another namespace.
    let with_netns = links.iter().any(|l| !l.group.is_empty());
    let mut header = vec!["INTERFACE", "MODE", "CHAIN", "POS", "PRIO", "PROGRAM", "PROCEED-ON", "OWNER", "TAG", "ID"];
    if with_netns {
        header.insert(0, "NETNS");
    }
    if with_stats {
        header.push("VERDICTS");
    }
    let mut table = Table::new(header);
    let mut unlinked = false;
    for link in links {
        let (mode, chain) = (dash(&link.mode), id_or_dash(link.kernel_program_id));
        let lead = |mut row: Vec<String>| {
            if with_netns {
                row.insert(0, dash(&link.group));
            }
            row
        };
        if link.programs.is_empty() {
            let note = if link.hold { "no programs (held: a pass-through runs)" } else { "no programs" };
            table.row(lead(vec![link.name.clone(), mode.clone(), chain.clone(), note.into()]));
        }
        for p in &link.programs {
            unlinked |= !p.linked;
            let proceed = if p.proceed_on.is_empty() { "none".to_string() } else { p.proceed_on.join(",") };
            let mut row = vec![
                link.name.clone(),
                mode.clone(),
                chain.clone(),
                format!("{}{}", p.position, if p.linked { "" } else { "*" }),
                p.priority.to_string(),
                p.name.clone(),
                proceed,
                p.owner_name.clone().unwrap_or_else(|| p.owner.to_string()),
                dash(&p.tag),
                p.id.to_string(),
            ];
            if with_stats {
                row.push(verdicts(&p.stats));
            }
            table.row(lead(row));
        }
        if let Some(problem) = link.problem() {
            table.row(lead(vec![link.name.clone(), mode, chain, problem]));
        }
    }
    let mut out = table.render();
    if unlinked {
        out.push_str("* not linked: an earlier program ends the chain (its proceed-on is none)\n");
    }
    out
}

/// Prints the chains; fails with the conflict status (6) when a chain the
/// service records does not run, after saying so for each such interface.
pub async fn run(client: &Client, out: &mut Output, iface: Option<&str>) -> Result<()> {
    let links = collect(client, iface).await?;
    if out.json {
        out.json_line(&StatusJson { interfaces: &links })?;
    } else {
        out.text(&render(&links))?;
    }
    let broken: Vec<String> = links.iter().filter(|l| l.broken()).filter_map(|l| l.problem()).collect();
    if broken.is_empty() {
        return Ok(());
    }
    Err(Failure::new(Exit::Conflict, broken.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program(position: usize, id: u64, name: &str, priority: i32, proceed_on: &[&str], tag: &str) -> ProgramStatus {
        ProgramStatus {
            position,
            id,
            path: format!("/org/xdp/Manager1/link/2/program/{id}"),
            name: name.into(),
            priority,
            proceed_on: proceed_on.iter().map(|s| s.to_string()).collect(),
            linked: position < 3,
            owner: if id == 12 { 1000 } else { 0 },
            owner_name: if id == 12 { None } else { Some("root".into()) },
            tag: tag.into(),
            sha256: String::new(),
            loaded_at: 0,
            stats: Default::default(),
            bytes: Default::default(),
        }
    }

    /// The table as people read it: a golden transcript, with a wide (CJK) tag,
    /// an owner without a name, an unlinked program and an interface without programs.
    #[test]
    fn the_table_reads_as_written_here() {
        let links = vec![
            LinkStatus {
                name: "lo".into(),
                index: 1,
                netns: String::new(),
                netns_inode: 4026531840,
                group: String::new(),
                path: "/org/xdp/Manager1/link/1".into(),
                mode: String::new(),
                generation: 0,
                kernel_program_id: 0,
                foreign_program_id: 0,
                counting: false,
                hold: false,
                state: "none",
                programs: vec![],
            },
            LinkStatus {
                name: "eth0".into(),
                index: 2,
                netns: String::new(),
                netns_inode: 4026531840,
                group: String::new(),
                path: "/org/xdp/Manager1/link/2".into(),
                mode: "native".into(),
                generation: 5,
                kernel_program_id: 731,
                foreign_program_id: 0,
                counting: false,
                hold: false,
                state: "running",
                programs: vec![
                    program(1, 3, "ip_blocklist", 10, &["pass"], "防火墙"),
                    program(2, 12, "port_block", 20, &[], "edge"),
                    program(3, 4, "proto_count", 90, &["pass", "drop"], ""),
                ],
            },
        ];
        let expected = "\
INTERFACE  MODE    CHAIN  POS  PRIO  PROGRAM       PROCEED-ON  OWNER  TAG     ID
lo         -       -      no programs
eth0       native  731    1    10    ip_blocklist  pass        root   防火墙  3
eth0       native  731    2    20    port_block    none        1000   edge    12
eth0       native  731    3*   90    proto_count   pass,drop   root   -       4
* not linked: an earlier program ends the chain (its proceed-on is none)
";
        assert_eq!(render(&links), expected);
    }
}
