//! The objects the service exports, kept by the service itself: the tree that
//! Introspect names children from, and `org.freedesktop.DBus.ObjectManager`
//! at the manager (GetManagedObjects, InterfacesAdded, InterfacesRemoved).
//!
//! zbus's `object-manager` feature stays off: with it, zbus would announce
//! every node's Introspectable swap (see [`super::introspect`]) as an
//! interface removed and added. Exporting through [`Objects`] announces each
//! object exactly once.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use zbus::object_server::{Interface, SignalEmitter};
use zbus::{fdo, interface, Connection, ObjectServer, OwnedObjectPath, OwnedVariant};

use super::introspect::Introspection;
use super::link::LinkIface;
use super::program::ProgramIface;
use super::MANAGER_PATH;

const INTROSPECTABLE: &str = "org.freedesktop.DBus.Introspectable";
const OBJECT_MANAGER: &str = "org.freedesktop.DBus.ObjectManager";

type Properties = HashMap<String, OwnedVariant>;

/// Every exported object: path → its interface's name.
pub struct Objects {
    connection: Connection,
    paths: Mutex<BTreeMap<String, String>>,
    /// One swap of Introspectables at a time: two exports below one new
    /// node would otherwise each remove the other's.
    swapping: tokio::sync::Mutex<()>,
}

impl Objects {
    pub fn new(connection: Connection) -> Arc<Objects> {
        Arc::new(Objects { connection, paths: Mutex::new(BTreeMap::new()), swapping: tokio::sync::Mutex::new(()) })
    }

    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    fn paths(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        self.paths.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The names of the nodes right below `path` (objects and the nodes leading to them).
    pub fn children(&self, path: &str) -> Vec<String> {
        children_of(self.paths().keys().map(String::as_str), path)
    }

    /// Exports `iface` at `path`, gives the node and the nodes above it our
    /// Introspectable, and announces the object with InterfacesAdded.
    pub async fn export<I: Interface>(self: &Arc<Self>, path: OwnedObjectPath, iface: I) -> zbus::Result<()> {
        let server = self.connection.object_server();
        if server.at(&path, iface).await?.is_some() {
            return Err(zbus::Error::Failure(format!("{path} is already exported")));
        }
        self.paths().insert(path.to_string(), I::name().to_string());
        self.own_introspection(server, &path).await;
        if path.as_str() == MANAGER_PATH {
            return Ok(());
        }
        let properties = properties(server, &self.connection, &path, I::name().as_str()).await.unwrap_or_default();
        let added = HashMap::from([(I::name().to_string(), properties)]);
        self.announce("InterfacesAdded", &(path.as_ref(), added)).await
    }

    /// Removes the object at `path` and announces it with InterfacesRemoved.
    pub async fn unexport<I: Interface>(&self, path: OwnedObjectPath) -> zbus::Result<()> {
        self.paths().remove(path.as_str());
        self.connection.object_server().remove::<I, _>(&path).await?;
        self.announce("InterfacesRemoved", &(path.as_ref(), vec![I::name().to_string()])).await
    }

    async fn announce<B: serde::Serialize + zbus::zvariant::DynamicType>(
        &self,
        member: &str,
        body: &B,
    ) -> zbus::Result<()> {
        self.connection.emit_signal(None::<&str>, MANAGER_PATH, OBJECT_MANAGER, member, body).await
    }

    /// zbus puts its own Introspectable on every node it creates; ours
    /// replaces it on `path` and every node above it that does not have ours yet.
    async fn own_introspection(self: &Arc<Self>, server: &ObjectServer, path: &str) {
        let mut node = String::new();
        let mut nodes = vec!["/".to_string()];
        for part in path.split('/').filter(|p| !p.is_empty()) {
            node = format!("{node}/{part}");
            nodes.push(node.clone());
        }
        let _one_at_a_time = self.swapping.lock().await;
        for node in nodes {
            if server.interface::<_, Introspection>(node.as_str()).await.is_ok() {
                continue;
            }
            // Between the two calls the node has no Introspectable for a moment;
            // it keeps its other interfaces and its children.
            let name = zbus::names::InterfaceName::from_static_str_unchecked(INTROSPECTABLE);
            let _ = server.remove_named(node.as_str(), name).await;
            let _ = server.at(node.as_str(), Introspection { objects: self.clone() }).await;
        }
    }
}

/// The names of the nodes right below `path`, given every object's path.
fn children_of<'a>(paths: impl Iterator<Item = &'a str>, path: &str) -> Vec<String> {
    let prefix = if path == "/" { "/".to_string() } else { format!("{path}/") };
    let children: std::collections::BTreeSet<&str> = paths
        .filter_map(|p| p.strip_prefix(prefix.as_str()))
        .filter_map(|rest| rest.split('/').next())
        .filter(|child| !child.is_empty())
        .collect();
    children.into_iter().map(str::to_string).collect()
}

/// The properties of interface `name` at `path`, as GetAll returns them.
async fn properties(server: &ObjectServer, connection: &Connection, path: &str, name: &str) -> Option<Properties> {
    async fn of<I: Interface>(server: &ObjectServer, connection: &Connection, path: &str) -> Option<Properties> {
        let iface = server.interface::<_, I>(path).await.ok()?;
        let emitter: SignalEmitter<'_> = iface.signal_emitter().clone();
        let guard = iface.get().await;
        guard.get_all(server, connection, None, &emitter).await.ok()
    }
    if name == ProgramIface::name().as_str() {
        of::<ProgramIface>(server, connection, path).await
    } else if name == LinkIface::name().as_str() {
        of::<LinkIface>(server, connection, path).await
    } else {
        None
    }
}

/// `org.freedesktop.DBus.ObjectManager` at the manager: links and programs.
pub struct ObjectManager {
    pub objects: Arc<Objects>,
}

#[interface(name = "org.freedesktop.DBus.ObjectManager", introspection_docs = false)]
impl ObjectManager {
    /// Every link and program object with its properties.
    async fn get_managed_objects(
        &self,
        #[zbus(object_server)] server: &ObjectServer,
        #[zbus(connection)] connection: &Connection,
    ) -> fdo::Result<HashMap<OwnedObjectPath, HashMap<String, Properties>>> {
        let below = format!("{MANAGER_PATH}/");
        let exported: Vec<(String, String)> = self
            .objects
            .paths()
            .iter()
            .filter(|(path, _)| path.starts_with(&below))
            .map(|(path, name)| (path.clone(), name.clone()))
            .collect();
        let mut managed = HashMap::new();
        for (path, name) in exported {
            // An object removed meanwhile is simply not listed.
            let (Some(properties), Ok(path)) =
                (properties(server, connection, &path, &name).await, OwnedObjectPath::try_from(path))
            else {
                continue;
            };
            managed.insert(path, HashMap::from([(name, properties)]));
        }
        Ok(managed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_are_the_next_path_elements() {
        let paths = [
            "/org/xdp/Manager1",
            "/org/xdp/Manager1/link/2",
            "/org/xdp/Manager1/link/2/program/7",
            "/org/xdp/Manager1/link/12",
        ];
        let children = |path: &str| children_of(paths.iter().copied(), path);
        assert_eq!(children("/"), ["org"]);
        assert_eq!(children("/org/xdp"), ["Manager1"]);
        assert_eq!(children("/org/xdp/Manager1"), ["link"]);
        assert_eq!(children("/org/xdp/Manager1/link"), ["12", "2"]);
        assert_eq!(children("/org/xdp/Manager1/link/2"), ["program"]);
        assert!(children("/org/xdp/Manager1/link/2/program/7").is_empty());
        assert!(children("/org/xdp/Manager1/link/2/prog").is_empty());
    }
}
