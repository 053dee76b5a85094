//! Start-up and life cycle of the daemon: connect to the bus, export the
//! objects, take the name, and exit on a signal or when idle.

use std::sync::Arc;
use std::time::Duration;

use zbus::connection::Builder;

use crate::activity::Activity;
use crate::config::Config;
use crate::dbus::manager::Manager;
use crate::dbus::objects::{ObjectManager, Objects};
use crate::dbus::publisher::Publisher;
use crate::dbus::{BUS_NAME, MANAGER_PATH};
use crate::engine::sandbox::Sandbox;
use crate::iface::{watch, Registry};
use crate::intake::Intake;
use crate::kernel::bpffs::Bpffs;
use crate::limits::{Limits, UidLimits};
use crate::request::Front;
use crate::state::Store;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn bus(config: &Config) -> Result<Builder<'static>, BoxError> {
    if let Some(address) = &config.bus_address {
        return Ok(Builder::address(address.as_str()));
    }
    // Started by D-Bus activation: talk to the bus that started us.
    if std::env::var("DBUS_STARTER_BUS_TYPE").as_deref() == Ok("system") {
        if let Ok(address) = std::env::var("DBUS_STARTER_ADDRESS") {
            return Ok(Builder::address(address.as_str()));
        }
    }
    Ok(Builder::system())
}

fn features() -> Vec<String> {
    vec!["bpf-link".into(), "frags".into()]
}

const AWAIT_CHECK: Duration = Duration::from_secs(5);

/// Whether persistent programs wait for an interface to appear (then the
/// service does not exit idle: nothing else would restore them when it does).
fn awaiting(links: &Registry, until: &mut Option<std::time::Instant>) -> bool {
    let now = std::time::Instant::now();
    if until.is_some_and(|t| now < t) {
        return true;
    }
    let awaited = links.awaited();
    if awaited.is_empty() {
        *until = None;
        return false;
    }
    if until.is_none() {
        tracing::info!(interfaces = ?awaited, "idle, but staying: persistent programs wait for these interfaces to appear");
    }
    *until = Some(now + AWAIT_CHECK);
    true
}

/// Holds an exclusive lock on the directory `dir` itself (bpffs holds no
/// plain files) while the returned handle lives.
fn lock_directory(dir: &std::path::Path) -> Result<std::fs::File, BoxError> {
    let handle = std::fs::File::open(dir).map_err(|e| format!("cannot open {}: {e}", dir.display()))?;
    match handle.try_lock() {
        Ok(()) => Ok(handle),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(format!("another xdpd uses {}; only one may run", dir.display()).into())
        }
        Err(std::fs::TryLockError::Error(e)) => Err(format!("cannot lock {}: {e}", dir.display()).into()),
    }
}

/// Opens what only one instance may hold: the bpffs root's lock and the
/// state directory (with its own lock), cleaned of leftovers.
fn open_state(config: &Config) -> Result<(std::fs::File, Arc<Store>), BoxError> {
    std::fs::create_dir_all(&config.bpffs_root)
        .map_err(|e| format!("cannot create {} (is bpffs mounted?): {e}", config.bpffs_root.display()))?;
    // One instance per bpffs root too: another's start-up would take our pins for leftovers.
    let bpffs_lock = lock_directory(&config.bpffs_root)?;
    let store = Arc::new(
        Store::open(&config.state_dir)
            .map_err(|e| format!("cannot use the state directory {}: {e}", config.state_dir.display()))?,
    );
    // Objects no record refers to are leftovers of requests that failed.
    store.collect_garbage();
    // Program ids go on above every id ever handed out, also of removed programs.
    crate::engine::reserve_member_ids(store.high_water().next_program_id.saturating_sub(1));
    Ok((bpffs_lock, store))
}

/// What the D-Bus side is built from: the front door, the shared limits, the
/// publisher (with the intake) and the activity the idle exit watches.
struct FrontDoor {
    objects: Arc<Objects>,
    front: Arc<Front>,
    limits: Arc<Limits>,
    publisher: Arc<Publisher>,
    activity: Activity,
}

/// The front door, the intake and the publisher, sharing one set of limits.
fn front_door(config: &Config, connection: &zbus::Connection) -> Result<FrontDoor, BoxError> {
    let activity = Activity::new();
    let per_uid = UidLimits {
        programs: config.max_programs_per_uid,
        map_bytes: config.max_map_memory_per_uid,
        snapshot_bytes: config.max_snapshot_bytes_per_uid,
    };
    let limits = Limits::new(per_uid, config.max_programs, config.max_requests_per_client);
    let front = Front::new(activity.clone(), limits.clone());
    let intake = Intake::new(
        config.max_object_size,
        limits.clone(),
        Bpffs::new(&config.bpffs_root),
        Sandbox::of_this_executable()?,
    );
    let objects = Objects::new(connection.clone());
    let publisher = Publisher::new(objects.clone(), front.clone(), intake);
    Ok(FrontDoor { objects, front, limits, publisher, activity })
}

/// Takes the bus name: never replaceable, never queued, so a second instance
/// is refused (the state directory's lock already stopped one on the same directory).
async fn take_name(connection: &zbus::Connection) -> Result<(), BoxError> {
    let flags = zbus::fdo::RequestNameFlags::DO_NOT_QUEUE;
    match connection.request_name_with_flags(BUS_NAME, flags).await {
        Ok(zbus::fdo::RequestNameReply::PrimaryOwner) => Ok(()),
        Ok(_) | Err(zbus::Error::NameTaken) => {
            Err(format!("{BUS_NAME} is already owned on this bus: another xdpd runs; only one may").into())
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn run(config: Config) -> Result<(), BoxError> {
    let config = Arc::new(config);
    let (_bpffs_lock, store) = open_state(&config)?;
    let connection = bus(&config)?.build().await?;
    let FrontDoor { objects, front, limits, publisher, activity } = front_door(&config, &connection)?;
    let links = Registry::new(config.clone(), store.clone(), limits, publisher);
    // Objects first, name last: a call that activated us finds everything in place.
    objects.export(MANAGER_PATH.try_into()?, Manager { registry: links.clone(), front, features: features() }).await?;
    connection.object_server().at(MANAGER_PATH, ObjectManager { objects: objects.clone() }).await?;
    let watcher = watch::watch(links.clone()).await?;
    take_name(&connection).await?;
    links.announce_relinked().await;
    tracing::info!(
        bpffs = %config.bpffs_root.display(),
        idle_timeout = config.idle_timeout,
        interfaces = links.indexes().len(),
        "xdpd {} ready as {BUS_NAME}", env!("CARGO_PKG_VERSION")
    );

    let stop = serve_until_stop(&config, &activity, &links, &connection).await?;
    // Persistent programs that asked for it keep their maps' contents across a reboot.
    let saved = if stop.is_empty() { Ok(()) } else { links.save_snapshots().await };
    let _ = connection.release_name(BUS_NAME).await;
    watcher.abort();
    saved.map_err(|errors| {
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        format!("{stop}: exiting without saving every snapshot (the previous ones stay): {}", text.join("; ")).into()
    })
}

/// Serves until a signal, the loss of the bus, or an idle exit (which waits
/// while a snapshot cannot be saved); says why it stopped ("" when idle,
/// snapshots saved).
async fn serve_until_stop(
    config: &Config,
    activity: &Activity,
    links: &Registry,
    connection: &zbus::Connection,
) -> Result<&'static str, BoxError> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    // The stream ends when the bus goes away; then there is nobody left to serve.
    let mut bus_messages = zbus::MessageStream::from(connection);
    let disconnected = async move {
        use futures_util::StreamExt;
        while let Some(Ok(_)) = bus_messages.next().await {}
    };
    tokio::pin!(disconnected);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    // While persistent programs wait for interfaces that are not there, stay
    // (looked at again every AWAIT_CHECK, not every tick: it reads the records).
    let mut awaiting_until = None;
    let stop = loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: exiting; chains stay attached"); break "SIGTERM" }
            _ = tokio::signal::ctrl_c() => { tracing::info!("SIGINT: exiting; chains stay attached"); break "SIGINT" }
            _ = &mut disconnected => { tracing::warn!("lost the bus connection: exiting; chains stay attached"); break "bus lost" }
            _ = tick.tick() => {
                let (Some(limit), Some(idle)) = (config.idle_timeout(), activity.idle_for()) else { continue };
                if idle < limit || awaiting(links, &mut awaiting_until) {
                    continue;
                }
                // An idle exit that would lose a snapshot does not happen: stay, and try again later.
                match links.save_snapshots().await {
                    Ok(()) => { tracing::info!("idle for {}s: exiting; chains stay attached", idle.as_secs()); break "" }
                    Err(errors) => {
                        for e in errors {
                            tracing::error!("not exiting when idle: {e}");
                        }
                        drop(activity.begin());
                    }
                }
            }
        }
    };
    Ok(stop)
}
