//! explain, and the dry runs of add and replace: a chain as the service
//! reports it (Link.Explain, Link.PlanAddProgram): the programs in run order
//! and how each is linked, and per loaded program its instructions and maps
//! against the kernel's limits, what the verifier processed and how long it took.

use serde_json::{json, Value};
use xdpd_client::{ChainReport, SegmentReport};

use crate::error::{Doing, Result};
use crate::output::Output;
use crate::table::Table;

/// `xdpctl explain IFACE`: the running chain.
pub async fn run(client: &crate::bus::Client, out: &mut Output, iface: &str) -> Result<()> {
    let link_path = client.link_path(iface).await?;
    let link = client.link(&link_path).await?;
    let report: ChainReport = client.call(link.inner(), "Explain", &(), &Doing::Lookup(iface)).await?;
    print(out, iface, &report, false)
}

fn segment_json(s: &SegmentReport) -> Value {
    json!({
        "members": s.members,
        "instructions": s.instructions,
        "instruction_limit": s.instruction_limit,
        "maps": s.maps,
        "map_limit": s.map_limit,
        "verified_instructions": s.verified_instructions,
        "verified_limit": s.verified_limit,
        "verify_usec": s.verify_usec,
    })
}

fn to_json(iface: &str, report: &ChainReport, dry_run: bool) -> Value {
    let members: Vec<Value> = report
        .members
        .iter()
        .map(|m| {
            json!({
                "id": m.id, "path": m.path.as_str(), "name": m.name, "tag": m.tag, "priority": m.priority,
                "linking": m.linking, "instructions": m.instructions, "carried_maps": m.carried_maps,
            })
        })
        .collect();
    let segments: Vec<Value> = report.segments.iter().map(segment_json).collect();
    json!({ "interface": iface, "dry_run": dry_run, "generation": report.generation, "programs": members, "segments": segments })
}

/// One line per loaded program: its numbers against the kernel's limits.
fn segment_line(index: usize, s: &SegmentReport) -> String {
    let insns =
        if s.instructions == 0 { "? (adopted after a restart)".to_string() } else { s.instructions.to_string() };
    let time = if s.verify_usec == 0 { String::new() } else { format!(" in {:.1} ms", s.verify_usec as f64 / 1000.0) };
    format!(
        "segment {}: {} programs, {insns} of {} instructions, {} of {} maps, verified {} of {} instructions{time}",
        index + 1,
        s.members.len(),
        s.instruction_limit,
        s.maps,
        s.map_limit,
        s.verified_instructions,
        s.verified_limit,
    )
}

/// Prints `report`: a dry run's (the chain a change would produce) or the running chain's.
pub fn print(out: &mut Output, iface: &str, report: &ChainReport, dry_run: bool) -> Result<()> {
    if out.json {
        return out.json_line(&to_json(iface, report, dry_run));
    }
    if report.members.is_empty() {
        let Some(s) = report.segments.first() else {
            return out.line(&format!("{iface}: no chain runs (generation {})", report.generation));
        };
        out.line(&format!("{iface}: held, no programs: a pass-through runs (generation {})", report.generation))?;
        return out.line(&segment_line(0, s));
    }
    let what = if dry_run {
        format!("{iface}: the chain would be (dry run from generation {}; nothing was changed):", report.generation)
    } else {
        format!("{iface}: chain at generation {}:", report.generation)
    };
    out.line(&what)?;
    let mut table = Table::new(vec!["POS", "PRIO", "PROGRAM", "TAG", "ID", "LINKING", "INSNS", "CARRIED-MAPS"]);
    for (pos, m) in report.members.iter().enumerate() {
        let id = if m.id == 0 { "new".to_string() } else { m.id.to_string() };
        let linking = if m.linking.is_empty() { "?".to_string() } else { m.linking.clone() };
        let carried = if m.carried_maps.is_empty() { "-".to_string() } else { m.carried_maps.join(",") };
        let cells = [(pos + 1).to_string(), m.priority.to_string(), m.name.clone(), m.tag.clone(), id, linking];
        table.row(cells.into_iter().chain([m.instructions.to_string(), carried]).collect());
    }
    out.text(&table.render())?;
    for (i, s) in report.segments.iter().enumerate() {
        out.line(&segment_line(i, s))?;
    }
    Ok(())
}
