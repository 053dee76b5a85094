//! `xdpctl metrics`: the chains and every program's verdict counts as
//! OpenMetrics text (or the Prometheus text format 0.0.4 that node_exporter's
//! textfile collector reads), from one GetManagedObjects snapshot. The metric
//! and label names are a stable interface (README, "Metrics").

use std::fmt::Write;

use crate::bus::Client;
use crate::error::Result;
use crate::output::Output;
use crate::status::{self, LinkStatus, ProgramStatus};

/// Verdict label values, in the order the service counts them.
pub const VERDICTS: [&str; 6] = ["aborted", "drop", "pass", "tx", "redirect", "other"];

/// Which text format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 (`application/openmetrics-text`), ending in `# EOF`.
    OpenMetrics,
    /// Prometheus text format 0.0.4 (node_exporter's textfile collector).
    Prometheus,
}

/// One metric family: name (without `_total`), type, help.
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
}

const PACKETS: Family = Family {
    name: "xdpd_program_packets",
    kind: "counter",
    help: "Packets a program gave each verdict (a packet it let proceed counts under the action it proceeded on)",
};
const BYTES: Family = Family {
    name: "xdpd_program_bytes",
    kind: "counter",
    help: "Bytes of the packets counted in xdpd_program_packets",
};
const PROGRAMS: Family = Family { name: "xdpd_chain_programs", kind: "gauge", help: "Programs in the chain" };
const GENERATION: Family =
    Family { name: "xdpd_chain_generation", kind: "gauge", help: "Generation of the chain (+1 on every change)" };
const COUNTING: Family =
    Family { name: "xdpd_chain_counting", kind: "gauge", help: "1 while the chain counts verdicts, else 0" };

pub async fn run(client: &Client, out: &mut Output, iface: Option<&str>, format: Format) -> Result<()> {
    let links = status::collect(client, iface).await?;
    out.text(&render(&links, format))
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n")
}

/// The interface's labels; `netns` is "" for the service's own namespace,
/// the name of a named one, `#INODE` of one without a name (as status's NETNS).
fn link_labels(link: &LinkStatus) -> String {
    format!("interface=\"{}\",ifindex=\"{}\",netns=\"{}\"", escape(&link.name), link.index, escape(&link.group))
}

fn program_labels(link: &LinkStatus, p: &ProgramStatus) -> String {
    format!(
        "{},id=\"{}\",program=\"{}\",tag=\"{}\",owner=\"{}\"",
        link_labels(link),
        p.id,
        escape(&p.name),
        escape(&p.tag),
        p.owner
    )
}

fn header(text: &mut String, family: &Family, format: Format) {
    let name = match (format, family.kind) {
        (Format::Prometheus, "counter") => format!("{}_total", family.name),
        _ => family.name.to_string(),
    };
    let _ = writeln!(text, "# TYPE {name} {}", family.kind);
    let _ = writeln!(text, "# HELP {name} {}", family.help);
}

fn counters(text: &mut String, links: &[LinkStatus], family: &Family, format: Format) {
    header(text, family, format);
    for link in links {
        for p in &link.programs {
            let counts = if family.name == BYTES.name { &p.bytes } else { &p.stats };
            if counts.is_empty() {
                continue; // counting never was on
            }
            let labels = program_labels(link, p);
            for verdict in VERDICTS {
                let n = counts.get(verdict).copied().unwrap_or(0);
                let _ = writeln!(text, "{}_total{{{labels},verdict=\"{verdict}\"}} {n}", family.name);
            }
        }
    }
}

fn gauge(text: &mut String, links: &[LinkStatus], family: &Family, format: Format, value: fn(&LinkStatus) -> u64) {
    header(text, family, format);
    for link in links {
        let _ = writeln!(text, "{}{{{}}} {}", family.name, link_labels(link), value(link));
    }
}

/// The whole exposition.
pub fn render(links: &[LinkStatus], format: Format) -> String {
    let mut text = String::new();
    counters(&mut text, links, &PACKETS, format);
    counters(&mut text, links, &BYTES, format);
    gauge(&mut text, links, &PROGRAMS, format, |l| l.programs.len() as u64);
    gauge(&mut text, links, &GENERATION, format, |l| l.generation);
    gauge(&mut text, links, &COUNTING, format, |l| u64::from(l.counting));
    if format == Format::OpenMetrics {
        text.push_str("# EOF\n");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
