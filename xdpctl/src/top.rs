//! `xdpctl top`: a live view of every chain's programs, refreshed like
//! top(1): per program the packets per second, the rate of each verdict, and
//! the share of the chain's packets that reached it. Rates come from two
//! snapshots of the counters (GetManagedObjects) an interval apart.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::bus::Client;
use crate::error::{Exit, Failure, Result};
use crate::metrics::VERDICTS;
use crate::output::Output;
use crate::status::{self, LinkStatus};
use crate::table::Table;

/// How `top` runs.
pub struct Options {
    pub iface: Option<String>,
    pub interval: Duration,
    /// Print one view (no screen clearing) and exit.
    pub once: bool,
    /// Exit after this many views.
    pub count: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct ProgramRates {
    pub interface: String,
    pub ifindex: i32,
    pub position: usize,
    pub id: u64,
    pub name: String,
    pub tag: String,
    /// Packets per second the program saw (all verdicts).
    pub pps: f64,
    /// Bytes per second.
    pub bps: f64,
    /// Packets per second by verdict (aborted, drop, pass, tx, redirect, other).
    pub rates: HashMap<String, f64>,
    /// Share of the packets entering the chain that reached the program (0..1).
    pub share: f64,
}

#[derive(Serialize)]
struct TopJson<'a> {
    interval_s: f64,
    programs: &'a [ProgramRates],
}

fn total(counts: &std::collections::BTreeMap<String, u64>) -> u64 {
    counts.values().sum()
}

/// Rates between two snapshots taken `secs` apart; programs that were not in
/// the first snapshot (just added) have no rate yet and are left out.
pub fn rates(before: &[LinkStatus], after: &[LinkStatus], secs: f64) -> Vec<ProgramRates> {
    let old: HashMap<(&str, u64), _> =
        before.iter().flat_map(|l| l.programs.iter().map(move |p| ((l.path.as_str(), p.id), p))).collect();
    let mut out = Vec::new();
    for link in after {
        let mut chain_pps = None;
        for p in &link.programs {
            let Some(o) = old.get(&(link.path.as_str(), p.id)) else { continue };
            let rate = |new: u64, old: u64| new.saturating_sub(old) as f64 / secs;
            let pps = rate(total(&p.stats), total(&o.stats));
            let rates = VERDICTS
                .iter()
                .map(|v| {
                    (v.to_string(), rate(p.stats.get(*v).copied().unwrap_or(0), o.stats.get(*v).copied().unwrap_or(0)))
                })
                .collect();
            // Every packet entering the chain reaches its first program.
            let entering = *chain_pps.get_or_insert(pps);
            out.push(ProgramRates {
                interface: link.name.clone(),
                ifindex: link.index,
                position: p.position,
                id: p.id,
                name: p.name.clone(),
                tag: p.tag.clone(),
                pps,
                bps: rate(total(&p.bytes), total(&o.bytes)),
                rates,
                share: if entering > 0.0 { pps / entering } else { 0.0 },
            });
        }
    }
    out
}

/// A rate as top shows it: 0, 12.5, 3.4k, 1.2M.
fn human(x: f64) -> String {
    match x {
        x if x >= 1e9 => format!("{:.1}G", x / 1e9),
        x if x >= 1e6 => format!("{:.1}M", x / 1e6),
        x if x >= 1e4 => format!("{:.1}k", x / 1e3),
        x if x == x.trunc() => format!("{x:.0}"),
        x => format!("{x:.1}"),
    }
}

pub fn render(programs: &[ProgramRates]) -> String {
    let mut table = Table::new(vec![
        "INTERFACE",
        "IFINDEX",
        "POS",
        "PROGRAM",
        "ID",
        "PPS",
        "BPS",
        "DROP/s",
        "PASS/s",
        "TX/s",
        "REDIRECT/s",
        "ABORTED/s",
        "OTHER/s",
        "SHARE",
    ]);
    for p in programs {
        let r = |v: &str| human(p.rates.get(v).copied().unwrap_or(0.0));
        table.row(vec![
            p.interface.clone(),
            p.ifindex.to_string(),
            p.position.to_string(),
            p.name.clone(),
            p.id.to_string(),
            human(p.pps),
            human(p.bps),
            r("drop"),
            r("pass"),
            r("tx"),
            r("redirect"),
            r("aborted"),
            r("other"),
            format!("{:.1}%", p.share * 100.0),
        ]);
    }
    table.render()
}

pub async fn run(client: &Client, out: &mut Output, options: &Options) -> Result<()> {
    if options.interval < Duration::from_millis(100) || options.interval > Duration::from_secs(3600) {
        return Err(Failure::new(Exit::Usage, "--interval must be between 0.1 and 3600 seconds"));
    }
    let once = options.once || out.json;
    let mut before = status::collect(client, options.iface.as_deref()).await?;
    let mut taken = Instant::now();
    let mut shown = 0u64;
    loop {
        tokio::time::sleep(options.interval).await;
        let after = status::collect(client, options.iface.as_deref()).await?;
        let now = Instant::now();
        let programs = rates(&before, &after, now.duration_since(taken).as_secs_f64());
        if out.json {
            let interval_s = now.duration_since(taken).as_secs_f64();
            return out.json_line(&TopJson { interval_s, programs: &programs });
        }
        let title =
            format!("xdpctl top - {} - every {:.1} s\n\n", crate::output::utc_now(), options.interval.as_secs_f64());
        // Home and clear the screen, as top does; --once prints the view alone.
        let clear = if once { "" } else { "\x1b[H\x1b[2J" };
        out.text(&format!("{clear}{title}{}", render(&programs)))?;
        shown += 1;
        if once || options.count.is_some_and(|n| shown >= n) {
            return Ok(());
        }
        (before, taken) = (after, now);
    }
}

#[cfg(test)]
mod tests {
    use super::human;

    #[test]
    fn rates_read_like_top() {
        assert_eq!(human(0.0), "0");
        assert_eq!(human(12.5), "12.5");
        assert_eq!(human(34_000.0), "34.0k");
        assert_eq!(human(1_200_000.0), "1.2M");
    }
}
