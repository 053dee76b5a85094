//! xdpctl: the command line of xdpd (org.xdp.Manager1).
//!
//! Each module is one concern: `cli` the command line and its help, `bus`
//! the connection and objects, `error` exit statuses and hints, and one
//! module per command (`status`, `change`, `maps`, `watch`).

mod agent;
mod apply;
mod bpf;
mod bus;
mod change;
mod cli;
mod docs;
mod error;
mod explain;
mod maps;
mod metrics;
mod output;
mod props;
mod status;
mod table;
mod top;
mod users;
mod watch;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::cli::{Cli, Command, ShellKind};
use crate::error::{Exit, Failure, Result};
use crate::output::Output;

fn main() -> ExitCode {
    // clap exits by itself: 2 on usage errors, 0 for --help and --version.
    let cli = Cli::parse();
    if let Command::Completions { shell } = cli.command {
        return completions(shell);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return report(Failure::new(Exit::Failure, format!("cannot start the async runtime: {e}"))),
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => report(failure),
    }
}

fn report(failure: Failure) -> ExitCode {
    // An empty message is a status without an error (apply --dry-run: changes pending).
    if !failure.message.is_empty() {
        eprintln!("{failure}");
    }
    ExitCode::from(failure.exit as u8)
}

fn completions(shell: ShellKind) -> ExitCode {
    let script = docs::completion(&mut Cli::command(), shell);
    match std::io::Write::write_all(&mut std::io::stdout(), script.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(Failure::new(Exit::Failure, format!("cannot write to standard output: {e}"))),
    }
}

async fn run(cli: Cli) -> Result<()> {
    // Usage errors before any connection.
    let remove_target = match &cli.command {
        Command::Remove { args, tag } => Some(change::RemoveTarget::parse(args, tag.as_deref())?),
        _ => None,
    };
    let client = bus::connect(&cli.global).await?;
    let mut out = Output::new(cli.global.json);
    match &cli.command {
        Command::Status { iface } => status::run(&client, &mut out, iface.as_deref()).await,
        Command::Add(a) => change::add(&client, &mut out, &a.iface, &a.object, &a.options, a.replace).await,
        Command::Replace(a) => change::add(&client, &mut out, &a.iface, &a.object, &a.options, true).await,
        Command::Remove { .. } => match &remove_target {
            Some(target) => change::remove(&client, &mut out, target).await,
            None => Ok(()),
        },
        Command::Apply { file, dry_run, prune, only } => {
            let options = apply::Options { dry_run: *dry_run, prune: *prune, only: only.clone() };
            apply::apply(&client, &mut out, file, &options).await
        }
        Command::Export { iface, objects } => {
            let search = if objects.is_empty() {
                vec![std::path::PathBuf::from("/usr/share/xdpd/examples")]
            } else {
                objects.clone()
            };
            apply::export(&client, &mut out, iface.as_deref(), &search).await
        }
        Command::Reclaim { iface } => change::reclaim(&client, &mut out, iface).await,
        Command::Explain { iface } => explain::run(&client, &mut out, iface).await,
        Command::Hold { iface, state } => change::hold(&client, &mut out, iface, *state == cli::OnOff::On).await,
        Command::Counting { iface, state } => {
            change::counting(&client, &mut out, iface, *state == cli::OnOff::On).await
        }
        Command::Maps { iface, program, map, set, delete } => {
            let edits = maps::Edits::parse(set, delete)?;
            maps::run(&client, &mut out, iface, program, map.as_deref(), &edits).await
        }
        Command::Watch { count } => watch::run(&client, &mut out, *count).await,
        Command::Top { iface, interval, once, count } => {
            let interval = std::time::Duration::try_from_secs_f64(*interval)
                .map_err(|_| Failure::new(Exit::Usage, "--interval must be between 0.1 and 3600 seconds"))?;
            let options = top::Options { iface: iface.clone(), interval, once: *once, count: *count };
            top::run(&client, &mut out, &options).await
        }
        Command::Metrics { iface, prometheus } => {
            let format = if *prometheus { metrics::Format::Prometheus } else { metrics::Format::OpenMetrics };
            metrics::run(&client, &mut out, iface.as_deref(), format).await
        }
        Command::Completions { .. } => Ok(()),
    }
}
