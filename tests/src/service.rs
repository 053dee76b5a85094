//! A running service to test against: a veth pair, a private bus whose
//! xdpd lives in the receiver's namespace, and a client connection, with
//! the helpers the end-to-end tests share. Fields drop in order: the bus
//! (and the service) first, then the namespaces.

use std::net::{SocketAddrV4, UdpSocket};
use std::time::Duration;

use xdpd_client::{LinkProxy, ProgramProxy};
use zbus::OwnedObjectPath;

use crate::bus::TestBus;
use crate::netns::{drain, send_paced, udp_receiver, VethPair};

pub struct Service {
    pub bus: TestBus,
    pub pair: VethPair,
    pub conn: zbus::Connection,
    pub ifindex: u32,
}

impl Service {
    pub async fn new(name: &str) -> Service {
        Service::with_idle_timeout(name, 0).await
    }

    pub async fn with_idle_timeout(name: &str, seconds: u64) -> Service {
        let pair = VethPair::new();
        let bus = TestBus::start(name, &pair.ns_b, seconds);
        let ifindex = VethPair::ifindex(&pair.ns_b, &pair.dev_b);
        let conn = bus.connect().await;
        Service { bus, pair, conn, ifindex }
    }

    pub fn link_path(&self) -> String {
        format!("/org/xdp/Manager1/link/{}", self.ifindex)
    }

    pub async fn link(&self) -> LinkProxy<'static> {
        link_proxy(&self.conn, &self.link_path()).await
    }

    pub async fn program(&self, path: &OwnedObjectPath) -> ProgramProxy<'static> {
        program_proxy(&self.conn, path).await
    }

    pub fn busctl(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.bus.busctl(args);
        assert!(ok, "busctl {args:?} failed: {err}\n{}", self.bus.log());
        out
    }

    /// busctl call on the link object; returns stdout, or the error text.
    pub fn call_link(&self, method: &str, signature: &str, args: &[&str]) -> Result<String, String> {
        let path = self.link_path();
        let mut all = vec!["call", "org.xdp.Manager1", &path, "org.xdp.Manager1.Link", method, signature];
        all.extend_from_slice(args);
        let (ok, out, err) = self.bus.busctl(&all);
        if ok {
            Ok(out)
        } else {
            Err(err)
        }
    }

    pub fn sender(&self) -> UdpSocket {
        VethPair::run_in(&self.pair.ns_a, || UdpSocket::bind("0.0.0.0:0").unwrap())
    }

    pub fn receiver(&self, port: u16) -> UdpSocket {
        VethPair::run_in(&self.pair.ns_b, || udp_receiver(port))
    }

    /// Sends `count` datagrams to `port`; returns how many arrived.
    pub fn traffic(&self, port: u16, count: u64) -> u64 {
        let rx = self.receiver(port);
        send_paced(&self.sender(), SocketAddrV4::new(self.pair.addr_b, port), count);
        std::thread::sleep(Duration::from_millis(150));
        drain(&rx)
    }

    pub fn pins(&self) -> std::path::PathBuf {
        self.bus.pins.0.join("xdpd")
    }

    pub fn link_pin(&self) -> std::path::PathBuf {
        self.pins().join(self.ifindex.to_string()).join("link")
    }

    pub fn attached(&self) -> xdpd::kernel::hook::Attached {
        VethPair::run_in(&self.pair.ns_b, || xdpd::kernel::hook::attached(self.ifindex).unwrap())
    }
}

/// A Link proxy that always asks the service (no property cache).
pub async fn link_proxy(conn: &zbus::Connection, path: &str) -> LinkProxy<'static> {
    LinkProxy::builder(conn)
        .path(path.to_string())
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .expect("link proxy")
}

/// A Program proxy that always asks the service (no property cache).
pub async fn program_proxy(conn: &zbus::Connection, path: &OwnedObjectPath) -> ProgramProxy<'static> {
    ProgramProxy::builder(conn)
        .path(path.clone())
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await
        .expect("program proxy")
}
