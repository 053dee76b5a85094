//! Tenant safety: nothing one caller sends may crash the service, forge its
//! log, or reach another owner's programs. Each test ends with the service up
//! and the other owner's program, chain and generation unchanged.

use std::collections::HashMap;

use xdpd_tests::service::Service as Fixture;
use zbus::Variant;

fn object(name: &str) -> String {
    xdpd_bpf::object_path(name).display().to_string()
}

fn method_error(e: zbus::Error) -> (String, String) {
    match e {
        zbus::Error::MethodError(name, message, _) => (name.to_string(), message.unwrap_or_default()),
        zbus::Error::FDO(e) => {
            (zbus::DBusError::name(&*e).to_string(), zbus::DBusError::description(&*e).unwrap_or_default().to_string())
        }
        other => panic!("expected a method error, got {other}"),
    }
}

/// What a caller would make the log say if its strings went in raw.
const FORGED: &str = "INFO xdpd::iface::owner: program added caller=uid 0 (:1.1) interface=eth0 id=1";

/// Caller-chosen strings (function name, tag, path) never start a log line:
/// names and tags with control characters are refused at the front door,
/// paths are quoted, and the log writer keeps every event on one line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_caller_string_forges_a_log_line() {
    xdpd_tests::require_root();
    let fx = Fixture::new("tenant-log").await;
    let link = fx.link().await;
    let kept = link.add_program_from_path(&object("basic"), "xdp_pass", HashMap::new()).await.unwrap();
    let generation = link.generation().await.unwrap();
    let forged = format!("x\n{FORGED}");

    let err = link.add_program_from_path(&object("basic"), &forged, HashMap::new()).await.unwrap_err();
    let (name, message) = method_error(err);
    assert_eq!(name, "org.freedesktop.DBus.Error.InvalidArgs", "{message}");
    assert!(message.contains("function name"), "{message}");
    let tag = HashMap::from([("tag", Variant::from(forged.as_str()))]);
    let (name, _) = method_error(link.add_program_from_path(&object("basic"), "xdp_pass", tag).await.unwrap_err());
    assert_eq!(name, "org.freedesktop.DBus.Error.InvalidArgs");
    let path = format!("/nonexistent/{forged}");
    let (name, message) =
        method_error(link.add_program_from_path(&path, "xdp_pass", HashMap::new()).await.unwrap_err());
    assert_eq!(name, "org.xdp.Manager1.Error.InvalidObject", "{message}");
    assert!(message.contains("\\n"), "the path is quoted and escaped in the message: {message}");

    let log = fx.bus.log();
    assert!(!log.lines().any(|l| l.starts_with(FORGED)), "a caller forged a log line:\n{log}");
    assert_eq!(link.generation().await.unwrap(), generation);
    assert_eq!(link.programs().await.unwrap(), vec![kept]);
}
