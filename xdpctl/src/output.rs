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
