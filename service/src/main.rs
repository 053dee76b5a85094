//! The xdpd daemon.

use clap::Parser;

use xdpd::config::Config;

fn main() -> std::process::ExitCode {
    // The service starts itself as a short-lived child to parse a caller's object.
    if std::env::args_os().nth(1).is_some_and(|a| a == xdpd::engine::sandbox::CHILD_ARG) {
        let args: Vec<String> = std::env::args_os().skip(2).map(|a| a.to_string_lossy().into_owned()).collect();
        return xdpd::engine::sandbox::child_main(&args);
    }
    let config = Config::parse();
    xdpd::log::init(config.log_stderr);
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
