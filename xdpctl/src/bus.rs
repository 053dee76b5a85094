//! The connection to the bus and the objects of the service: proxies without
//! property caches (xdpctl reads each value once), lookups of interfaces and
//! programs, and method calls carrying ALLOW_INTERACTIVE_AUTH when the user
//! may be asked for a password.

use std::sync::Mutex;

use xdpd_client::{LinkProxy, ManagerProxy, ProgramProxy, BUS_NAME, MANAGER_PATH};
use zbus::fdo::{ManagedObjects, ObjectManagerProxy};
use zbus::proxy::{CacheProperties, MethodFlags};
use zbus::{Connection, OwnedObjectPath};

use crate::agent::Agent;
use crate::cli::Global;
use crate::error::{classify, Doing, Exit, Failure, Result};

pub struct Client {
    pub conn: Connection,
    interactive: bool,
    /// The network namespace IFACE arguments are in (-n); None: the service's own.
    pub netns: Option<Netns>,
    /// The polkit agent, started before the first call that may need it.
    agent: Mutex<Option<Agent>>,
}

pub async fn connect(global: &Global) -> Result<Client> {
    let (builder, bus) = match &global.address {
        Some(address) => (zbus::connection::Builder::address(address.as_str()), address.clone()),
        // Builder::system() honours DBUS_SYSTEM_BUS_ADDRESS.
        None => (zbus::connection::Builder::system(), "the system bus".to_string()),
    };
    let conn = builder.build().await.map_err(|e| classify(e, &Doing::Connect(&bus)))?;
    let netns = global.netns.as_deref().map(Netns::parse);
    Ok(Client { conn, interactive: !global.no_ask_password, netns, agent: Mutex::new(None) })
}

impl Client {
    /// Whether the user may be asked (for a password, or to confirm).
    pub fn interactive(&self) -> bool {
        self.interactive
    }

    pub async fn manager(&self) -> Result<ManagerProxy<'static>> {
        ManagerProxy::builder(&self.conn)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(|e| classify(e, &Doing::Read))
    }

    pub async fn object_manager(&self) -> Result<ObjectManagerProxy<'static>> {
        ObjectManagerProxy::builder(&self.conn)
            .destination(BUS_NAME)
            .path(MANAGER_PATH)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(|e| classify(e, &Doing::Read))
    }

    /// Every object of the service with all its properties, in one call.
    pub async fn managed_objects(&self) -> Result<ManagedObjects> {
        let om = self.object_manager().await?;
        om.get_managed_objects().await.map_err(|e| classify(e.into(), &Doing::Read))
    }

    /// The link object of interface `iface` (in the namespace of -n, if given).
    pub async fn link_path(&self, iface: &str) -> Result<OwnedObjectPath> {
        let manager = self.manager().await?;
        let found = match &self.netns {
            Some(Netns::Name(netns)) => manager.get_link_in_netns(netns, iface).await,
            Some(_) => {
                let inode = self.netns_inode().await?.unwrap_or_default();
                manager.get_link_in_netns_by_inode(inode, iface).await
            }
            None => manager.get_link_by_name(iface).await,
        };
        found.map_err(|e| classify(e, &Doing::Lookup(iface)))
    }

    /// The inode of the namespace -n gives by a process (which the service is
    /// asked to follow) or a path; None for a name or without -n.
    pub async fn netns_inode(&self) -> Result<Option<u64>> {
        match &self.netns {
            Some(Netns::Pid(pid)) => {
                let manager = self.manager().await?;
                let doing = Doing::Lookup("the network namespace of the process");
                self.call(manager.inner(), "FollowNetnsOfProcess", &(*pid,), &doing).await.map(Some)
            }
            Some(Netns::Path(path)) => {
                let file = std::fs::File::open(path).map_err(|e| {
                    Failure::new(Exit::NotFound, format!("cannot open the network namespace {}: {e}", path.display()))
                })?;
                let manager = self.manager().await?;
                let doing = Doing::Lookup("the network namespace");
                let fd = zbus::Fd::from(std::os::fd::AsFd::as_fd(&file));
                self.call(manager.inner(), "FollowNetnsByDescriptor", &(fd,), &doing).await.map(Some)
            }
            _ => Ok(None),
        }
    }

    pub async fn link(&self, path: &OwnedObjectPath) -> Result<LinkProxy<'static>> {
        LinkProxy::builder(&self.conn)
            .path(path.clone())
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(|e| classify(e, &Doing::Read))
    }

    pub async fn program(&self, path: &OwnedObjectPath) -> Result<ProgramProxy<'static>> {
        ProgramProxy::builder(&self.conn)
            .path(path.clone())
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(|e| classify(e, &Doing::Read))
    }

    /// Calls `method` of `proxy` with ALLOW_INTERACTIVE_AUTH unless --no-ask-password.
    pub async fn call<B, R>(&self, proxy: &zbus::Proxy<'_>, method: &str, body: &B, doing: &Doing<'_>) -> Result<R>
    where
        B: serde::Serialize + zbus::DynamicType,
        R: for<'d> zbus::wire::DynamicDeserialize<'d>,
    {
        let flags = if self.interactive {
            if let Ok(mut agent) = self.agent.lock() {
                if agent.is_none() {
                    *agent = Agent::start();
                }
            }
            MethodFlags::ALLOW_INTERACTIVE_AUTH
        } else {
            MethodFlags::empty()
        };
        let reply: Option<R> = proxy.call_with_flags(method, flags, body).await.map_err(|e| classify(e, doing))?;
        reply.ok_or_else(|| Failure::new(Exit::Failure, format!("{method}: the service sent no reply")))
    }
}

/// Whether the link at `path` (with properties `link`) is in the namespace
/// -n selects (`netns`, whose inode is `inode` when given by process or
/// path), or without -n in the service's own.
pub fn in_namespace(netns: &Option<Netns>, inode: Option<u64>, path: &str, link: &crate::props::Props) -> bool {
    let other = path.contains("/netns/");
    match netns {
        None => !other,
        Some(Netns::Name(name)) => other && crate::props::string(link, "Netns") == *name,
        Some(_) => inode == Some(crate::props::u64_of(link, "NetnsInode")),
    }
}

/// A network namespace as -n names it: by name (under /run/netns), by a
/// process in it (all digits), or by a path (with a slash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Netns {
    Name(String),
    Pid(u32),
    Path(std::path::PathBuf),
}

impl Netns {
    pub fn parse(arg: &str) -> Netns {
        if arg.contains('/') {
            Netns::Path(arg.into())
        } else if let Ok(pid) = arg.parse::<u32>() {
            Netns::Pid(pid)
        } else {
            Netns::Name(arg.to_string())
        }
    }
}

/// The object path of PROGRAM (an id, or a full path) on the link `link`.
pub fn program_path(link: &OwnedObjectPath, iface: &str, program: &str) -> Result<OwnedObjectPath> {
    let prefix = format!("{}/program/", link.as_str());
    let path = if program.starts_with('/') {
        if program.strip_prefix(&prefix).is_none_or(|id| id.parse::<u64>().is_err()) {
            return Err(Failure::new(
                Exit::NotFound,
                format!(
                    "{program} is not a program of {iface} (its programs are {prefix}ID); see xdpctl status {iface}"
                ),
            ));
        }
        program.to_string()
    } else {
        let id: u64 = program.parse().map_err(|_| {
            Failure::new(
                Exit::Usage,
                format!("'{program}' is not a program id or object path; xdpctl status {iface} lists them"),
            )
        })?;
        format!("{prefix}{id}")
    };
    OwnedObjectPath::try_from(path)
        .map_err(|e| Failure::new(Exit::Usage, format!("'{program}' is not a valid object path: {e}")))
}

/// The id at the end of a program's object path.
pub fn program_id(path: &str) -> Option<u64> {
    path.rsplit_once("/program/").and_then(|(_, id)| id.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_named_by_id_or_path() {
        let link = OwnedObjectPath::try_from("/org/xdp/Manager1/link/2").unwrap_or_else(|e| panic!("{e}"));
        let ok = |p: &str| program_path(&link, "eth0", p).map(|p| p.to_string()).map_err(|f| f.exit);
        assert_eq!(ok("3"), Ok("/org/xdp/Manager1/link/2/program/3".into()));
        assert_eq!(ok("/org/xdp/Manager1/link/2/program/7"), Ok("/org/xdp/Manager1/link/2/program/7".into()));
        assert_eq!(ok("/org/xdp/Manager1/link/3/program/7"), Err(Exit::NotFound));
        assert_eq!(ok("abc"), Err(Exit::Usage));
        assert_eq!(program_id("/org/xdp/Manager1/link/2/program/17"), Some(17));
    }

    #[test]
    fn a_namespace_by_name_process_or_path() {
        use super::Netns;
        assert_eq!(Netns::parse("pod1"), Netns::Name("pod1".into()));
        assert_eq!(Netns::parse("4242"), Netns::Pid(4242));
        assert_eq!(Netns::parse("/proc/4242/ns/net"), Netns::Path("/proc/4242/ns/net".into()));
        assert_eq!(Netns::parse("cni-1.2"), Netns::Name("cni-1.2".into()));
    }
}
