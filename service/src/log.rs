//! Logging: journald under systemd, stderr otherwise — and no caller can
//! forge a line of the service's own.
//!
//! Strings a caller chooses (function names, tags, paths) are logged as quoted,
//! escaped fields (`program = ?function`), and the front door refuses control
//! characters in names and tags. As a second wall, the stderr writer turns
//! every line break inside one event into `\n`, so one event is always one
//! line whatever it carries. journald keeps each event as one entry anyway.

use std::io::Write;

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;
use tracing_subscriber::EnvFilter;

/// `MESSAGE_ID`s of the events administrators look for (`journalctl
/// MESSAGE_ID=…`); stable across versions, documented in README ("Logs").
pub mod message_id {
    /// A program joined a chain (fields: CALLER, INTERFACE, PROGRAM, ID, CHAIN_PRIORITY, REPLACED).
    pub const PROGRAM_ADDED: &str = "b386d02cb94242ae855a39fc1d309fb3";
    /// A program left a chain (fields: CALLER, INTERFACE, ID).
    pub const PROGRAM_REMOVED: &str = "60a34a5bc81b4320a3d4ee01f3a5caa3";
    /// A foreign XDP program holds an interface, or the chain was detached or
    /// replaced behind the service's back (fields: INTERFACE, IFINDEX, FOREIGN).
    pub const FOREIGN_PROGRAM: &str = "d8719263a5a942b9b7f901e51a88e1c6";
    /// The verifier refused a program, alone or in its chain (fields: CALLER, INTERFACE, PROGRAM).
    pub const PROGRAM_REJECTED: &str = "5e384861154846fa9d50bd27409befbf";
}

/// Starts logging: `XDPD_LOG` filters (default `info`); journald when started
/// by systemd (INVOCATION_ID set) unless `to_stderr`.
pub fn init(to_stderr: bool) {
    let filter = EnvFilter::try_from_env("XDPD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let under_systemd = std::env::var_os("INVOCATION_ID").is_some();
    if under_systemd && !to_stderr {
        if let Ok(journald) = tracing_journald::layer() {
            // Fields unprefixed, so MESSAGE_ID is journald's own; no field of
            // ours is named like a field journald interprets (PRIORITY, ...).
            let journald = journald.with_syslog_identifier("xdpd".into()).with_field_prefix(None);
            tracing_subscriber::registry().with(filter).with(journald).init();
            return;
        }
    }
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_ansi(false).with_writer(OneLinePerEvent))
        .init();
}

/// Stderr, one line per event: the fmt layer writes each event whole, so every
/// line break but the last is escaped.
#[derive(Clone, Copy)]
pub struct OneLinePerEvent;

impl<'a> MakeWriter<'a> for OneLinePerEvent {
    type Writer = EventWriter;

    fn make_writer(&'a self) -> EventWriter {
        EventWriter
    }
}

/// The writer of one event.
pub struct EventWriter;

impl Write for EventWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::io::stderr().lock().write_all(&one_line(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// `event` with every `\n` and `\r` escaped, but a final `\n` kept.
pub fn one_line(event: &[u8]) -> Vec<u8> {
    let (body, end) = match event.strip_suffix(b"\n") {
        Some(body) => (body, &b"\n"[..]),
        None => (event, &b""[..]),
    };
    let mut out = Vec::with_capacity(event.len() + 8);
    for &b in body {
        match b {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
    out.extend_from_slice(end);
    out
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn an_event_stays_one_line() {
        assert_eq!(one_line(b"a\nINFO program added caller=uid 0\n"), b"a\\nINFO program added caller=uid 0\n");
        assert_eq!(one_line(b"x\ry"), b"x\\ry");
        assert_eq!(one_line(b"plain\n"), b"plain\n");
    }
}
