//! Standard output: text or one JSON document per line, flushed after every
//! write so `watch` reaches pipes line by line.

use std::io::Write;

use serde::Serialize;

use crate::error::{Exit, Failure, Result};

pub struct Output {
    pub json: bool,
    stdout: std::io::Stdout,
}

impl Output {
    pub fn new(json: bool) -> Output {
        Output { json, stdout: std::io::stdout() }
    }

    pub fn text(&mut self, text: &str) -> Result<()> {
        let mut lock = self.stdout.lock();
        let result = lock.write_all(text.as_bytes()).and_then(|()| lock.flush());
        result.map_err(write_failed)
    }

    pub fn line(&mut self, line: &str) -> Result<()> {
        self.text(&format!("{line}\n"))
    }

    pub fn json_line<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        let line = serde_json::to_string(value)
            .map_err(|e| Failure::new(Exit::Failure, format!("cannot encode JSON output: {e}")))?;
        self.line(&line)
    }
}

fn write_failed(e: std::io::Error) -> Failure {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        // The reader went away (e.g. `xdpctl watch | head -3`): nothing left to do.
        std::process::exit(0);
    }
    Failure::new(Exit::Failure, format!("cannot write to standard output: {e}"))
}

/// The current time as RFC 3339 in UTC with milliseconds, e.g. 2026-11-30T15:43:23.123Z.
pub fn utc_now() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    utc(now.as_secs(), now.subsec_millis())
}

fn utc(secs: u64, millis: u32) -> String {
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(super::utc(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(super::utc(1_796_053_403, 7), "2026-11-30T15:43:23.007Z");
        assert_eq!(super::utc(951_782_400, 0), "2000-02-29T00:00:00.000Z");
    }
}
