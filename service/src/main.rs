//! The xdpd daemon.

use clap::Parser;
use tracing_subscriber::prelude::*;
use tracing_subscriber::EnvFilter;

use xdpd::config::Config;

fn init_logging(config: &Config) {
    let filter = EnvFilter::try_from_env("XDPD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // Under systemd (INVOCATION_ID is set) log to journald, else to stderr.
    let under_systemd = std::env::var_os("INVOCATION_ID").is_some();
    if under_systemd && !config.log_stderr {
        if let Ok(journald) = tracing_journald::layer() {
            tracing_subscriber::registry().with(filter).with(journald.with_syslog_identifier("xdpd".into())).init();
            return;
        }
    }
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .init();
}

fn main() -> std::process::ExitCode {
    let config = Config::parse();
    init_logging(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(xdpd::service::run(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}
