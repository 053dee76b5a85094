//! The D-Bus service end to end: a private system bus activates the built
//! xdpd inside a test network namespace; busctl and a zbus client drive it;
//! real traffic crosses a veth pair.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use futures_util::StreamExt;
use xdpd_client::{LinkProxy, ManagerProxy, ProgramProxy};
use xdpd_tests::memfd_with;
use xdpd_tests::netns::VethPair;
use zbus::{MatchRule, Message, MessageStream, OwnedObjectPath, Variant};

use xdpd_tests::service::Service as Fixture;

fn object(name: &str) -> String {
    xdpd_bpf::object_path(name).display().to_string()
}

/// Parses busctl's `o "/path"` reply.
fn object_path(reply: &str) -> OwnedObjectPath {
    let path = reply.trim().trim_start_matches("o ").trim_matches('"');
    OwnedObjectPath::try_from(path.to_string()).unwrap()
}

/// Every signal the service emits, in order.
async fn signals(conn: &zbus::Connection) -> MessageStream {
    let rule = MatchRule::builder().msg_type(zbus::message::Type::Signal).sender("org.xdp.Manager1").build().unwrap();
    MessageStream::for_match_rule(rule, conn, std::num::NonZeroUsize::new(256)).await.unwrap()
}

/// The next `n` signals as "Interface.Member" strings, with their message.
async fn next_signals(stream: &mut MessageStream, n: usize) -> Vec<(String, Message)> {
    let mut out = Vec::new();
    while out.len() < n {
        let msg = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("timed out waiting for a signal")
            .unwrap()
            .unwrap();
        let h = msg.header();
        let name = format!("{}.{}", h.interface().unwrap().rsplit('.').next().unwrap(), h.member().unwrap());
        out.push((name, msg));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activation_and_introspection_match_the_contract() {
    let f = Fixture::new("introspect").await;
    // The first call activates the service.
    let (ok, xml, err) = f.bus.busctl(&["introspect", "--xml-interface", "org.xdp.Manager1", "/org/xdp/Manager1"]);
    assert!(ok, "{err}\n{}", f.bus.log());
    contract::assert_matches(&xml, "org.xdp.Manager1");
    let xml = f.busctl(&["introspect", "--xml-interface", "org.xdp.Manager1", &f.link_path()]);
    contract::assert_matches(&xml, "org.xdp.Manager1.Link");
    let reply = f.call_link("AddProgramFromPath", "ssa{sv}", &[&object("udp"), "udp_count", "0"]).unwrap();
    let xml = f.busctl(&["introspect", "--xml-interface", "org.xdp.Manager1", object_path(&reply).as_str()]);
    contract::assert_matches(&xml, "org.xdp.Manager1.Program");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busctl_end_to_end_with_signals_and_traffic() {
    let f = Fixture::new("e2e").await;
    let manager = ManagerProxy::new(&f.conn).await.unwrap();
    assert_eq!(manager.get_link_by_name(&f.pair.dev_b).await.unwrap().as_str(), f.link_path());
    let mut stream = signals(&f.conn).await;

    let drop = f.call_link("AddProgramFromPath", "ssa{sv}", &[&object("udp"), "udp_drop", "1", "priority", "i", "10"]);
    let drop = object_path(&drop.unwrap());
    let count = f.call_link(
        "AddProgramFromPath",
        "ssa{sv}",
        &[&object("udp"), "udp_count", "2", "priority", "i", "20", "tag", "s", "counter"],
    );
    let count = object_path(&count.unwrap());

    let path = f.link_path();
    let get =
        |object: &str, iface: &str, prop: &str| f.busctl(&["get-property", "org.xdp.Manager1", object, iface, prop]);
    assert_eq!(get(&path, "org.xdp.Manager1.Link", "Generation").trim(), "t 2");
    assert_eq!(
        get(&path, "org.xdp.Manager1.Link", "Programs").trim(),
        format!("ao 2 \"{}\" \"{}\"", drop.as_str(), count.as_str())
    );
    assert_eq!(get(&path, "org.xdp.Manager1.Link", "Mode").trim(), "s \"native\"");
    assert_eq!(get(count.as_str(), "org.xdp.Manager1.Program", "Name").trim(), "s \"udp_count\"");
    assert_eq!(get(count.as_str(), "org.xdp.Manager1.Program", "Tag").trim(), "s \"counter\"");
    assert_eq!(get(count.as_str(), "org.xdp.Manager1.Program", "Priority").trim(), "i 20");
    assert_eq!(get(count.as_str(), "org.xdp.Manager1.Program", "Owner").trim(), "u 0");
    assert_eq!(get(drop.as_str(), "org.xdp.Manager1.Program", "ProceedOn").trim(), "as 1 \"pass\"");
    let kernel_id = get(&path, "org.xdp.Manager1.Link", "KernelProgramId");
    assert_ne!(kernel_id.trim(), "u 0");

    // Signals of both additions, in order.
    let seen = next_signals(&mut stream, 6).await;
    let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "ObjectManager.InterfacesAdded",
            "Properties.PropertiesChanged",
            "Link.ChainChanged",
            "ObjectManager.InterfacesAdded",
            "Properties.PropertiesChanged",
            "Link.ChainChanged"
        ]
    );
    let (generation, programs): (u64, Vec<OwnedObjectPath>) = seen[5].1.body().deserialize().unwrap();
    assert_eq!((generation, programs), (2, vec![drop.clone(), count.clone()]));

    // Real traffic: 9999 dropped, 9998 counted and delivered.
    assert_eq!(f.traffic(9999, 50), 0);
    assert_eq!(f.traffic(9998, 50), 50);

    // GetMaps hands out working descriptors: the counter's map holds 50.
    let counter = f.program(&count).await;
    let maps = counter.get_maps().await.unwrap();
    let packets = maps.get("packets").expect("packets map");
    let value = xdpd_tests::map_lookup(packets.as_fd(), 0, 8);
    assert_eq!(u64::from_ne_bytes(value.try_into().unwrap()), 50);

    // A program configured through its map: block port 7777 by writing it.
    let link = f.link().await;
    let blocker = link
        .add_program(
            zbus::Fd::from(std::fs::File::open(object("udp")).unwrap().as_fd()),
            "port_block",
            HashMap::from([("priority", Variant::from(5i32))]),
        )
        .await
        .unwrap();
    assert_eq!(f.traffic(7777, 20), 20);
    let maps = f.program(&blocker).await.get_maps().await.unwrap();
    xdpd_tests::map_update(maps["blocked_port"].as_fd(), 0, &7777u32.to_ne_bytes());
    assert_eq!(f.traffic(7777, 20), 0, "the program follows its map");

    // Remove through busctl: objects and signals follow.
    let _ = next_signals(&mut stream, 3).await;
    f.busctl(&["call", "org.xdp.Manager1", drop.as_str(), "org.xdp.Manager1.Program", "Remove"]);
    let seen = next_signals(&mut stream, 3).await;
    let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["ObjectManager.InterfacesRemoved", "Properties.PropertiesChanged", "Link.ChainChanged"]);
    let (generation, programs): (u64, Vec<OwnedObjectPath>) = seen[2].1.body().deserialize().unwrap();
    assert_eq!((generation, programs), (4, vec![blocker.clone(), count.clone()]));
    assert_eq!(f.traffic(9999, 20), 20, "the dropping program is gone");
    assert_eq!(link.generation().await.unwrap(), 4);
}

fn error_name(e: &zbus::Error) -> String {
    match e {
        zbus::Error::MethodError(name, _, _) => name.to_string(),
        zbus::Error::FDO(e) => zbus::DBusError::name(&**e).to_string(),
        other => format!("{other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn descriptors_from_a_rust_client() {
    let f = Fixture::new("fds").await;
    let link = f.link().await;
    let none = HashMap::new;

    let memfd = memfd_with(&xdpd_bpf::object_bytes("udp"));
    let p = link.add_program(zbus::Fd::from(memfd.as_fd()), "udp_count", none()).await.unwrap();
    assert_eq!(f.program(&p).await.name().await.unwrap(), "udp_count");
    let generation = link.generation().await.unwrap();

    let dir = std::env::temp_dir().join(format!("xdpd-fds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("fifo");
    let cpath = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: creating and opening our own FIFO without blocking.
    let fifo_fd = unsafe {
        libc::mkfifo(cpath.as_ptr(), 0o600);
        OwnedFd::from_raw_fd(libc::open(cpath.as_ptr(), libc::O_RDWR | libc::O_NONBLOCK))
    };
    let (sock, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    let directory = std::fs::File::open(&dir).unwrap();
    let zero = std::fs::File::open("/dev/zero").unwrap();
    let huge = memfd_with(b"");
    // SAFETY: growing our memfd (sparse) past the service's 16 MiB cap.
    assert_eq!(unsafe { libc::ftruncate(huge.as_raw_fd(), 64 << 20) }, 0);
    let garbage = memfd_with(b"not an object");

    let cases: Vec<(&str, std::os::fd::BorrowedFd<'_>, &str)> = vec![
        ("fifo", fifo_fd.as_fd(), "org.xdp.Manager1.Error.InvalidObject"),
        ("socket", sock.as_fd(), "org.xdp.Manager1.Error.InvalidObject"),
        ("directory", directory.as_fd(), "org.xdp.Manager1.Error.InvalidObject"),
        ("/dev/zero", zero.as_fd(), "org.xdp.Manager1.Error.InvalidObject"),
        ("huge", huge.as_fd(), "org.xdp.Manager1.Error.LimitExceeded"),
        ("garbage", garbage.as_fd(), "org.xdp.Manager1.Error.InvalidObject"),
    ];
    for (what, fd, expected) in cases {
        let err = link.add_program(zbus::Fd::from(fd), "", none()).await.unwrap_err();
        assert_eq!(error_name(&err), expected, "{what}: {err}");
    }
    assert_eq!(link.generation().await.unwrap(), generation, "refused requests changed the chain");
    assert_eq!(link.programs().await.unwrap(), vec![p]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_calls_get_precise_errors_and_change_nothing() {
    let f = Fixture::new("badcalls").await;
    let udp = object("udp");
    let unverifiable = object("unverifiable");
    let first = f.call_link("AddProgramFromPath", "ssa{sv}", &[&udp, "udp_count", "0"]).unwrap();
    let link = f.link().await;
    let generation = link.generation().await.unwrap();

    let opt = |k: &'static str, v: Variant<'static>| HashMap::from([(k, v)]);
    let actions = Variant::from(vec!["maybe"]);
    let cases: Vec<(&str, &str, HashMap<&str, Variant<'_>>, &str)> = vec![
        (udp.as_str(), "udp_drop", opt("bogus", Variant::from(true)), "org.freedesktop.DBus.Error.InvalidArgs"),
        (udp.as_str(), "udp_drop", opt("priority", Variant::from("high")), "org.freedesktop.DBus.Error.InvalidArgs"),
        (udp.as_str(), "udp_drop", opt("priority", Variant::from(7u32)), "org.freedesktop.DBus.Error.InvalidArgs"),
        (udp.as_str(), "udp_drop", opt("mode", Variant::from("turbo")), "org.freedesktop.DBus.Error.InvalidArgs"),
        (udp.as_str(), "udp_drop", opt("proceed-on", actions), "org.freedesktop.DBus.Error.InvalidArgs"),
        (udp.as_str(), "udp_drop", opt("replace", Variant::from(true)), "org.freedesktop.DBus.Error.InvalidArgs"),
        ("relative.o", "", HashMap::new(), "org.freedesktop.DBus.Error.InvalidArgs"),
        ("/nonexistent.o", "", HashMap::new(), "org.xdp.Manager1.Error.InvalidObject"),
        (udp.as_str(), "nope", HashMap::new(), "org.xdp.Manager1.Error.InvalidObject"),
        (unverifiable.as_str(), "", HashMap::new(), "org.xdp.Manager1.Error.VerifierRejected"),
        (udp.as_str(), "udp_drop", opt("expected-generation", Variant::from(99u64)), "org.xdp.Manager1.Error.Conflict"),
        (udp.as_str(), "udp_drop", opt("mode", Variant::from("generic")), "org.xdp.Manager1.Error.Conflict"),
    ];
    for (path, program, options, expected) in cases {
        let err = link.add_program_from_path(path, program, options).await.expect_err("must fail");
        assert_eq!(error_name(&err), expected, "{path} {program}: {err}");
    }
    let err = link.add_program_from_path(&unverifiable, "", HashMap::new()).await.unwrap_err();
    assert!(err.to_string().contains("outside of the packet"), "the verifier's words reach the caller: {err}");
    // A wrong signature.
    let err = f
        .conn
        .call_method(
            Some("org.xdp.Manager1"),
            f.link_path(),
            Some("org.xdp.Manager1.Link"),
            "AddProgramFromPath",
            &(udp.as_str(), "udp_drop"),
        )
        .await
        .unwrap_err();
    assert!(error_name(&err).starts_with("org.freedesktop.DBus.Error."), "{err}");

    let manager = ManagerProxy::new(&f.conn).await.unwrap();
    let err = manager.get_link_by_name("nope0").await.unwrap_err();
    assert_eq!(error_name(&err), "org.xdp.Manager1.Error.NoSuchLink");
    let err = manager.get_link_by_index(99999).await.unwrap_err();
    assert_eq!(error_name(&err), "org.xdp.Manager1.Error.NoSuchLink");
    let missing = OwnedObjectPath::try_from(format!("{}/program/999999", f.link_path())).unwrap();
    let err = f.program(&missing).await.remove().await.unwrap_err();
    assert_eq!(error_name(&err), "org.freedesktop.DBus.Error.UnknownObject");

    // Not root: denied before anything is read.
    let (ok, _, err) = f.bus.busctl_as(
        Some(65534),
        &[
            "call",
            "org.xdp.Manager1",
            &f.link_path(),
            "org.xdp.Manager1.Link",
            "AddProgramFromPath",
            "ssa{sv}",
            &udp,
            "udp_drop",
            "0",
        ],
    );
    assert!(!ok && err.contains("Access denied") || err.contains("AccessDenied"), "{err}");
    let (ok, _, err) = f.bus.busctl_as(
        Some(65534),
        &["call", "org.xdp.Manager1", object_path(&first).as_str(), "org.xdp.Manager1.Program", "Remove"],
    );
    assert!(!ok && (err.contains("Access denied") || err.contains("AccessDenied")), "{err}");
    // Reading is open to everyone.
    let (ok, out, _) = f.bus.busctl_as(
        Some(65534),
        &["get-property", "org.xdp.Manager1", &f.link_path(), "org.xdp.Manager1.Link", "Generation"],
    );
    assert!(ok && out.trim() == format!("t {generation}"), "{out}");

    assert_eq!(link.generation().await.unwrap(), generation, "refused requests changed the chain");
    assert_eq!(link.programs().await.unwrap(), vec![object_path(&first)]);
    assert!(f.bus.service_pid().is_some(), "the service is still up");
}

fn ip_in(ns: &str, args: &[&str]) {
    let out = std::process::Command::new("ip").args(["-n", ns]).args(args).output().unwrap();
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interfaces_that_come_and_go_are_followed() {
    let f = Fixture::new("ifaces").await;
    let manager = ManagerProxy::new(&f.conn).await.unwrap();
    manager.version().await.unwrap(); // activate
    let mut stream = signals(&f.conn).await;

    ip_in(&f.pair.ns_b, &["link", "add", "xa0", "type", "veth", "peer", "name", "xa1"]);
    let added = next_signals(&mut stream, 2).await;
    assert!(
        added.iter().all(|(n, _)| n == "ObjectManager.InterfacesAdded"),
        "{:?}",
        added.iter().map(|s| &s.0).collect::<Vec<_>>()
    );
    let xa0 = manager.get_link_by_name("xa0").await.unwrap();

    ip_in(&f.pair.ns_b, &["link", "set", "xa0", "name", "xb0"]);
    let renamed = next_signals(&mut stream, 1).await;
    assert_eq!(renamed[0].0, "Properties.PropertiesChanged");
    assert_eq!(renamed[0].1.header().path().unwrap().as_str(), xa0.as_str());
    assert_eq!(manager.get_link_by_name("xb0").await.unwrap(), xa0);
    assert!(manager.get_link_by_name("xa0").await.is_err());

    ip_in(&f.pair.ns_b, &["link", "del", "xb0"]);
    let removed = next_signals(&mut stream, 2).await;
    assert!(removed.iter().all(|(n, _)| n == "ObjectManager.InterfacesRemoved"));
    assert!(manager.get_link_by_name("xb0").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_on_two_interfaces() {
    let f = Fixture::new("concurrent").await;
    ip_in(&f.pair.ns_b, &["link", "add", "xc0", "type", "veth", "peer", "name", "xc1"]);
    ip_in(&f.pair.ns_b, &["link", "set", "xc0", "up"]);
    ip_in(&f.pair.ns_b, &["link", "set", "xc1", "up"]);
    let manager = ManagerProxy::new(&f.conn).await.unwrap();
    let second = loop {
        match manager.get_link_by_name("xc0").await {
            Ok(p) => break p,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let links = [OwnedObjectPath::try_from(f.link_path()).unwrap(), second];
    let mut tasks = Vec::new();
    for client in 0..4 {
        for link in links.clone() {
            let address = f.bus.address.clone();
            tasks.push(tokio::spawn(async move {
                let conn = zbus::connection::Builder::address(address.as_str()).build().await.unwrap();
                let proxy = LinkProxy::builder(&conn).path(link).build().await.unwrap();
                let mut kept = None;
                for round in 0..4 {
                    let opts = HashMap::from([("priority", Variant::from(client * 10 + round))]);
                    let p = proxy.add_program_from_path(&object("basic"), "xdp_pass", opts).await.unwrap();
                    if round < 3 {
                        ProgramProxy::builder(&conn).path(p).build().await.unwrap().remove().await.unwrap();
                    } else {
                        kept = Some(p);
                    }
                }
                kept.unwrap()
            }));
        }
    }
    let mut kept = Vec::new();
    for t in tasks {
        kept.push(t.await.unwrap());
    }
    for link in &links {
        let proxy = LinkProxy::builder(&f.conn).path(link.clone()).build().await.unwrap();
        assert_eq!(proxy.generation().await.unwrap(), 4 * 7, "every change counted once");
        let programs = proxy.programs().await.unwrap();
        assert_eq!(programs.len(), 4);
        let mut expected: Vec<_> = kept.iter().filter(|p| p.as_str().starts_with(link.as_str())).cloned().collect();
        expected.sort_by_key(|p| p.as_str().to_string());
        let mut got = programs.clone();
        got.sort_by_key(|p| p.as_str().to_string());
        assert_eq!(got, expected);
    }
}

/// Compares the live introspection of one interface with dbus-interfaces/<name>.xml,
/// ignoring documentation.
mod contract {
    /// Members (and named arguments) of the org.xdp interfaces without an
    /// org.gtk.GDBus.DocString annotation.
    pub fn undocumented(xml: &str) -> Vec<String> {
        let mut reader = Reader::from_str(xml);
        let (mut open, mut missing): (Vec<(String, bool)>, Vec<String>) = (Vec::new(), Vec::new());
        let mut ours = false;
        loop {
            match reader.read_event() {
                Ok(Event::Start(e)) => {
                    let tag = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                    if tag == "interface" {
                        ours = attr(&e, "name").starts_with("org.xdp.");
                    }
                    open.push((format!("{tag} {}", attr(&e, "name")), false));
                }
                Ok(Event::Empty(e)) => {
                    let tag = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                    if tag == "annotation" && attr(&e, "name") == "org.gtk.GDBus.DocString" {
                        if let Some(last) = open.last_mut() {
                            last.1 = true;
                        }
                    } else if ours && matches!(tag.as_str(), "method" | "signal" | "property")
                        || ours && tag == "arg" && !attr(&e, "name").is_empty()
                    {
                        missing.push(format!("{tag} {}", attr(&e, "name")));
                    }
                }
                Ok(Event::End(_)) => {
                    if let Some((element, documented)) = open.pop() {
                        let kind = element.split(' ').next().unwrap_or("");
                        let named = !element.ends_with(' ');
                        if ours
                            && !documented
                            && named
                            && matches!(kind, "interface" | "method" | "signal" | "property" | "arg")
                        {
                            missing.push(element);
                        }
                    }
                }
                Ok(Event::Eof) | Err(_) => break,
                Ok(_) => {}
            }
        }
        missing
    }

    use quick_xml::events::Event;
    use quick_xml::Reader;

    fn attr(e: &quick_xml::events::BytesStart<'_>, name: &str) -> String {
        e.attributes()
            .filter_map(Result::ok)
            .find(|a| a.key.as_ref() == name.as_bytes())
            .map(|a| String::from_utf8_lossy(&a.value).into_owned())
            .unwrap_or_default()
    }

    /// The interface's members as comparable lines.
    pub fn shape(xml: &str, interface: &str) -> Vec<String> {
        let mut reader = Reader::from_str(xml);
        let (mut inside, mut out, mut member) = (false, Vec::new(), String::new());
        loop {
            match reader.read_event() {
                Ok(Event::Start(e)) | Ok(Event::Empty(e)) => {
                    let tag = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                    match tag.as_str() {
                        "interface" => inside = attr(&e, "name") == interface,
                        _ if !inside => {}
                        "method" | "signal" | "property" => {
                            member = format!("{tag} {}", attr(&e, "name"));
                            let detail = if tag == "property" {
                                format!(" {} {}", attr(&e, "type"), attr(&e, "access"))
                            } else {
                                String::new()
                            };
                            out.push(format!("{member}{detail}"));
                        }
                        "arg" => out.push(format!(
                            "  {member} arg {} {} {}",
                            attr(&e, "name"),
                            attr(&e, "type"),
                            attr(&e, "direction").replace("in", "")
                        )),
                        "annotation" if attr(&e, "name") != "org.gtk.GDBus.DocString" => {
                            out.push(format!("  {member} {}={}", attr(&e, "name"), attr(&e, "value")))
                        }
                        _ => {}
                    }
                }
                Ok(Event::End(e)) if e.name().as_ref() == b"interface" => inside = false,
                Ok(Event::Eof) => break,
                Err(e) => panic!("bad XML: {e}"),
                _ => {}
            }
        }
        out.sort();
        out
    }

    pub fn assert_matches(live: &str, interface: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../dbus-interfaces/{interface}.xml"));
        let file = std::fs::read_to_string(&path).expect("interface file");
        let (live, documented) = (shape(live, interface), shape(&file, interface));
        assert!(!live.is_empty(), "the service does not implement {interface}");
        assert_eq!(live, documented, "live {interface} differs from {}", path.display());
    }
}

#[test]
fn paths_are_opened_with_the_callers_file_system_identity() {
    xdpd_tests::require_root();
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("xdpd-openas-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let private = dir.join("private.o");
    let public = dir.join("public.o");
    std::fs::write(&private, b"x").unwrap();
    std::fs::write(&public, b"x").unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o644)).unwrap();

    let nobody = xdpd::caller::Caller { unique_name: ":1.0".into(), uid: 65534, gids: vec![65534], pid: None };
    let root = xdpd::caller::Caller { uid: 0, gids: vec![0], ..nobody.clone() };
    let err = xdpd::intake::open_as(&nobody, &private).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
    assert!(xdpd::intake::open_as(&nobody, &public).is_ok());
    assert!(xdpd::intake::open_as(&root, &private).is_ok());
    // The service's own thread keeps its identity.
    assert!(std::fs::File::open(&private).is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Everything a client sees of a program.
async fn program_state(p: &ProgramProxy<'_>) -> String {
    format!(
        "{} {} {} {:?} {} {} {} {} {:?}",
        p.id().await.unwrap(),
        p.name().await.unwrap(),
        p.priority().await.unwrap(),
        p.proceed_on().await.unwrap(),
        p.tag().await.unwrap(),
        p.owner().await.unwrap(),
        p.sha256().await.unwrap(),
        p.loaded_at().await.unwrap(),
        {
            let mut ids: Vec<_> = p.map_ids().await.unwrap().into_iter().collect();
            ids.sort();
            ids
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_exit_and_reactivation_keep_the_chain_and_the_objects() {
    let f = Fixture::with_idle_timeout("idle", 2).await;
    let link = f.link().await;
    let opts = |prio: i32| HashMap::from([("priority", Variant::from(prio)), ("tag", Variant::from("idle-test"))]);
    link.add_program_from_path(&object("udp"), "udp_drop", opts(10)).await.unwrap();
    let counter = link.add_program_from_path(&object("udp"), "udp_count", opts(20)).await.unwrap();
    assert_eq!(f.traffic(9998, 30), 30);

    let programs = link.programs().await.unwrap();
    let mut before = Vec::new();
    for p in &programs {
        before.push(program_state(&f.program(p).await).await);
    }
    let (kernel_id, generation) = (link.kernel_program_id().await.unwrap(), link.generation().await.unwrap());
    assert_eq!(link.mode().await.unwrap(), "native");

    let pid = f.bus.service_pid().expect("service running");
    assert!(f.bus.wait_service_gone(pid, Duration::from_secs(15)), "the service did not exit when idle");

    // Nobody home, and the chain still filters and counts.
    let attached = VethPair::run_in(&f.pair.ns_b, || xdpd::kernel::hook::attached(f.ifindex).unwrap());
    assert_eq!(attached.native, kernel_id);
    assert_eq!(f.traffic(9999, 20), 0);
    assert_eq!(f.traffic(9998, 20), 20);

    // The next call activates it again: same objects, same program, same counts.
    assert_eq!(link.programs().await.unwrap(), programs);
    let new_pid = f.bus.service_pid().expect("service activated again");
    assert_ne!(new_pid, pid);
    let mut after = Vec::new();
    for p in &programs {
        after.push(program_state(&f.program(p).await).await);
    }
    assert_eq!(after, before);
    assert_eq!(link.kernel_program_id().await.unwrap(), kernel_id, "adopted, not relinked");
    assert_eq!(link.generation().await.unwrap(), generation);
    assert_eq!(link.mode().await.unwrap(), "native");
    let maps = f.program(&counter).await.get_maps().await.unwrap();
    let value = xdpd_tests::map_lookup(maps["packets"].as_fd(), 0, 8);
    assert_eq!(u64::from_ne_bytes(value.try_into().unwrap()), 50, "the counter kept counting across the restart");

    // And it still changes the chain as before.
    let p = link.add_program_from_path(&object("basic"), "xdp_pass", HashMap::new()).await.unwrap();
    assert_eq!(link.generation().await.unwrap(), generation + 1);
    f.program(&p).await.remove().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdict_counting_through_dbus() {
    let f = Fixture::new("counting").await;
    let link = f.link().await;
    let dropper = link.add_program_from_path(&object("udp"), "udp_drop", HashMap::new()).await.unwrap();
    let program = f.program(&dropper).await;
    assert!(link.counting().await.unwrap(), "on by default");
    assert_eq!(f.traffic(9999, 30), 0);
    assert_eq!(f.traffic(9998, 20), 20);
    let stats = program.stats().await.unwrap();
    assert_eq!(stats.get("drop"), Some(&30), "{stats:?}");
    assert!(stats.get("pass").is_some_and(|&n| n >= 20), "{stats:?}");
    let bytes = program.bytes().await.unwrap();
    let dropped = bytes.get("drop").copied().unwrap_or(0);
    assert!(dropped % 30 == 0 && dropped / 30 >= 42, "30 equal UDP frames: {bytes:?}");

    // Off: a relink, announced like any change; counts are kept and stop.
    let generation = link.generation().await.unwrap();
    link.set_counting(false).await.unwrap();
    assert!(!link.counting().await.unwrap());
    assert_eq!(link.generation().await.unwrap(), generation + 1);
    assert_eq!(f.traffic(9999, 5), 0);
    assert_eq!(program.stats().await.unwrap().get("drop"), Some(&30), "kept while off");
    // On again: they go on from there, also across another program's arrival.
    link.set_counting(true).await.unwrap();
    let other = link.add_program_from_path(&object("basic"), "xdp_pass", HashMap::new()).await.unwrap();
    assert_eq!(f.traffic(9999, 7), 0);
    assert_eq!(program.stats().await.unwrap().get("drop"), Some(&37));
    assert_eq!(program.bytes().await.unwrap().get("drop"), Some(&(dropped / 30 * 37)));
    f.program(&other).await.remove().await.unwrap();
}

/// `Linking` says how each program runs: inlined, called, or not linked
/// behind a program that ends the chain; it follows every change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linking_says_how_each_program_runs() {
    xdpd_tests::require_root();
    let fx = Fixture::new("linking").await;
    let link = fx.link().await;
    let first = link.add_program_from_path(&object("basic"), "xdp_pass", HashMap::new()).await.unwrap();
    let linking = link.linking().await.unwrap();
    assert_eq!(linking.get(&first).map(String::as_str), Some("inline"), "{linking:?}");
    // A program that proceeds on nothing ends the chain: the one after it never runs.
    let ender = HashMap::from([("priority", Variant::from(60i32)), ("proceed-on", Variant::from(Vec::<&str>::new()))]);
    let ends = link.add_program_from_path(&object("basic"), "xdp_pass", ender).await.unwrap();
    let after = HashMap::from([("priority", Variant::from(70i32))]);
    let never = link.add_program_from_path(&object("basic"), "xdp_drop", after).await.unwrap();
    let linking = link.linking().await.unwrap();
    assert_eq!(linking.len(), 3, "{linking:?}");
    assert_eq!(linking[&ends], "inline", "{linking:?}");
    assert_eq!(linking[&never], "not-linked", "{linking:?}");
    fx.program(&ends).await.remove().await.unwrap();
    assert_eq!(link.linking().await.unwrap()[&never], "inline");
}

/// The events administrators look for carry a stable MESSAGE_ID (journald's
/// field; on stderr a `message_id` field): program added, removed, refused by
/// the verifier, and a foreign program.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_carry_their_message_ids() {
    xdpd_tests::require_root();
    let fx = Fixture::new("message-ids").await;
    let link = fx.link().await;
    let p = link.add_program_from_path(&object("basic"), "xdp_pass", HashMap::new()).await.unwrap();
    fx.program(&p).await.remove().await.unwrap();
    link.add_program_from_path(&object("unverifiable"), "", HashMap::new()).await.unwrap_err();
    let log = fx.bus.log();
    for (event, id) in [
        ("program added", xdpd::log::message_id::PROGRAM_ADDED),
        ("program removed", xdpd::log::message_id::PROGRAM_REMOVED),
        ("the verifier refused", xdpd::log::message_id::PROGRAM_REJECTED),
    ] {
        assert!(
            log.lines().any(|l| l.contains(event) && l.contains(&format!("message_id=\"{id}\""))),
            "no {event:?} line with MESSAGE_ID {id}:\n{log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_are_configured_before_loading_through_dbus() {
    let f = Fixture::with_idle_timeout("skelcfg", 2).await;
    let link = f.link().await;
    let globals = HashMap::from([
        ("enabled".to_string(), "true".to_string()),
        ("mode".to_string(), "2".to_string()),
        ("drop_port".to_string(), "9999".to_string()),
    ]);
    let sizes = HashMap::from([("flows".to_string(), 1024u32)]);
    let opts =
        HashMap::from([("globals", Variant::from(globals.clone())), ("map-sizes", Variant::from(sizes.clone()))]);
    let path = link.add_program_from_path(&object("skelconfig"), "configured", opts).await.unwrap();
    let program = f.program(&path).await;
    assert_eq!(program.globals().await.unwrap(), globals);
    assert_eq!(program.map_sizes().await.unwrap(), sizes);
    // The configured port is dropped, others pass: the program runs as configured.
    assert_eq!(f.traffic(9999, 20), 0);
    assert_eq!(f.traffic(9998, 20), 20);

    // What the object cannot take is refused, named, and changes nothing.
    let generation = link.generation().await.unwrap();
    let bad = |name: &str, value: &str| {
        let globals = HashMap::from([(name.to_string(), value.to_string())]);
        HashMap::from([("globals", Variant::from(globals))])
    };
    for (opts, needle) in [
        (bad("drop_port", "65536"), "variable 'drop_port': 65536 is out of range for u16"),
        (bad("no_such", "1"), "no variable 'no_such'"),
        (HashMap::from([("map-sizes", Variant::from(HashMap::from([("nope".to_string(), 8u32)])))]), "no map 'nope'"),
        (HashMap::from([("globals", Variant::from(HashMap::from([("x".to_string(), 1u32)])))]), "a{ss}"),
    ] {
        let err = link.add_program_from_path(&object("skelconfig"), "configured", opts).await.unwrap_err();
        assert_eq!(error_name(&err), "org.freedesktop.DBus.Error.InvalidArgs", "{err}");
        assert!(err.to_string().contains(needle), "expected '{needle}' in: {err}");
    }
    assert_eq!(link.generation().await.unwrap(), generation);
    assert_eq!(link.programs().await.unwrap(), vec![path.clone()]);

    // A memfd names no file: the caller names the object, and its maps are named as libbpf names them.
    let memfd = memfd_with(&xdpd_bpf::object_bytes("skelconfig"));
    let named = HashMap::from([("object-name", Variant::from("myskel"))]);
    let p = link.add_program(zbus::Fd::from(memfd.as_fd()), "configured", named).await.unwrap();
    let mut maps: Vec<String> = f.program(&p).await.map_ids().await.unwrap().into_keys().collect();
    maps.sort();
    assert_eq!(maps, ["flows", "myskel.bss", "myskel.data", "myskel.rodata"]);
    f.program(&p).await.remove().await.unwrap();
    let bad = HashMap::from([("object-name", Variant::from("../x"))]);
    let err = link.add_program(zbus::Fd::from(memfd.as_fd()), "configured", bad).await.unwrap_err();
    assert!(err.to_string().contains("option 'object-name' must be 1 to 64 letters"), "{err}");

    // The record keeps the configuration: after an idle exit it is still shown.
    let pid = f.bus.service_pid().expect("service running");
    assert!(f.bus.wait_service_gone(pid, Duration::from_secs(15)), "the service did not exit when idle");
    assert_eq!(f.program(&path).await.globals().await.unwrap(), globals);
    assert_eq!(f.traffic(9999, 10), 0);
}

/// `busctl tree` and `busctl introspect` print no warnings, an object's
/// introspection names its children without inlining them (it does not grow
/// with the programs below it), and every member carries its documentation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_is_clean_small_and_documented() {
    let f = Fixture::new("introspect-clean").await;
    let introspect = |path: &str| -> String {
        let (ok, out, err) =
            f.bus.busctl(&["call", "org.xdp.Manager1", path, "org.freedesktop.DBus.Introspectable", "Introspect"]);
        assert!(ok && err.is_empty(), "{path}: {err}");
        out
    };
    let mut sizes = Vec::new();
    for count in [1u32, 20] {
        while f
            .busctl(&["get-property", "org.xdp.Manager1", &f.link_path(), "org.xdp.Manager1.Link", "Programs"])
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0)
            < count
        {
            f.call_link("AddProgramFromPath", "ssa{sv}", &[&object("udp"), "udp_count", "0"]).unwrap();
        }
        let (ok, tree, err) = f.bus.busctl(&["tree", "org.xdp.Manager1"]);
        assert!(ok && err.is_empty(), "busctl tree warned:\n{err}");
        assert_eq!(tree.matches("/program/").count(), count as usize, "{tree}");
        sizes.push(["/", "/org/xdp/Manager1", &f.link_path()].map(|p| introspect(p).len()));
    }
    // gdbus walks the same tree without complaint.
    let gdbus = std::process::Command::new("gdbus")
        .args(["introspect", "--address", &f.bus.address, "--dest", "org.xdp.Manager1", "--object-path", "/"])
        .arg("--recurse")
        .output()
        .expect("run gdbus (libglib2.0-bin)");
    let (out, err) = (String::from_utf8_lossy(&gdbus.stdout), String::from_utf8_lossy(&gdbus.stderr));
    assert!(gdbus.status.success() && err.is_empty(), "gdbus introspect: {err}");
    assert_eq!(out.matches("interface org.xdp.Manager1.Program").count(), 20, "{out}");
    // Children are named, not inlined: 19 more programs add a few bytes each.
    for (one, twenty) in sizes[0].iter().zip(sizes[1].iter()) {
        assert!(*twenty < one + 19 * 64, "introspection grew from {one} to {twenty} bytes");
    }
    let programs = f.busctl(&["get-property", "org.xdp.Manager1", &f.link_path(), "org.xdp.Manager1.Link", "Programs"]);
    let program = programs.split('"').nth(1).unwrap().to_string();
    for path in ["/org/xdp/Manager1", f.link_path().as_str(), program.as_str()] {
        let (ok, out, err) = f.bus.busctl(&["introspect", "org.xdp.Manager1", path]);
        assert!(ok && err.is_empty(), "busctl introspect {path} warned: {err}\n{out}");
        // Every member of ours (and each of its named arguments) is documented.
        let xml = introspect(path);
        let xml = xml.trim().trim_start_matches("s ").trim_matches('"').replace("\\\"", "\"");
        let undocumented = contract::undocumented(&xml);
        assert!(undocumented.is_empty(), "{path}: no DocString on {undocumented:?}");
    }
}

/// ChangeChain: several adds and a removal as one change (one generation,
/// one ChainChanged); a failing part, or a malformed change, changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_chain_makes_several_changes_as_one() {
    let f = Fixture::new("change-chain").await;
    let link = f.link().await;
    let file = |name: &str| std::fs::File::open(object(name)).unwrap();
    let opts = |tag: &str, priority: i32| -> HashMap<&str, Variant<'_>> {
        HashMap::from([("tag", Variant::from(tag.to_string())), ("priority", Variant::from(priority))])
    };
    let (udp, count) = (file("udp"), file("proto_count"));
    let first = link.add_program(zbus::Fd::from(udp.as_fd()), "udp_count", opts("a", 10)).await.unwrap();
    let first_id = xdpd_tests::faults::id_of(&first);
    let generation = link.generation().await.unwrap();
    let mut stream = signals(&f.conn).await;

    let add = vec![
        (zbus::Fd::from(count.as_fd()), "proto_count", opts("b", 20)),
        (zbus::Fd::from(udp.as_fd()), "udp_count", opts("c", 30)),
    ];
    let paths = link.change_chain(add, vec![first_id], HashMap::new()).await.unwrap();
    assert_eq!(paths.len(), 2);
    let mut seen = Vec::new();
    loop {
        let (name, msg) = next_signals(&mut stream, 1).await.remove(0);
        let done = name == "Link.ChainChanged";
        if done {
            let (g, programs): (u64, Vec<OwnedObjectPath>) = msg.body().deserialize().unwrap();
            assert_eq!((g, programs), (generation + 1, paths.clone()), "one step, the new programs in order");
        }
        seen.push(name);
        if done {
            break;
        }
    }
    let count_of = |n: &str| seen.iter().filter(|s| *s == n).count();
    assert_eq!(
        (count_of("ObjectManager.InterfacesAdded"), count_of("ObjectManager.InterfacesRemoved")),
        (2, 1),
        "{seen:?}"
    );
    assert_eq!(count_of("Link.ChainChanged"), 1, "{seen:?}");
    assert_eq!(link.programs().await.unwrap(), paths);

    // A part that cannot load fails the whole change, named by its index.
    let junk = memfd_with(b"not an ELF object");
    let add = vec![
        (zbus::Fd::from(udp.as_fd()), "udp_count", opts("d", 5)),
        (zbus::Fd::from(junk.as_fd()), "", opts("e", 6)),
    ];
    let removed = xdpd_tests::faults::id_of(&paths[0]);
    let err = link.change_chain(add, vec![removed], HashMap::new()).await.unwrap_err().to_string();
    assert!(err.contains("InvalidObject") && err.contains("program 1 of the change"), "{err}");
    type Part<'a> = (zbus::Fd<'a>, &'a str, HashMap<&'a str, Variant<'a>>);
    let malformed: Vec<(Vec<Part<'_>>, Vec<u64>, &str)> = vec![
        (vec![], vec![], "InvalidArgs"),
        (vec![], vec![removed, removed], "InvalidArgs"),
        (vec![], vec![999_999], "NoSuchProgram"),
        (
            vec![(zbus::Fd::from(udp.as_fd()), "udp_count", HashMap::from([("mode", Variant::from("generic"))]))],
            vec![],
            "InvalidArgs",
        ),
        // The same object, function and tag twice in one change.
        (
            vec![
                (zbus::Fd::from(udp.as_fd()), "udp_count", opts("x", 1)),
                (zbus::Fd::from(udp.as_fd()), "udp_count", opts("x", 2)),
            ],
            vec![],
            "InvalidArgs",
        ),
    ];
    for (add, remove, expected) in malformed {
        let err = link.change_chain(add, remove, HashMap::new()).await.unwrap_err().to_string();
        assert!(err.contains(expected), "{err}");
    }
    // Two new programs sharing a map pinned by name: each would create its own.
    let pinned = file("tenant_pinned");
    let add = vec![
        (zbus::Fd::from(pinned.as_fd()), "pinned_verdict", opts("p1", 40)),
        (zbus::Fd::from(pinned.as_fd()), "pinned_verdict2", opts("p2", 41)),
    ];
    let err = link.change_chain(add, vec![], HashMap::new()).await.unwrap_err().to_string();
    assert!(err.contains("InvalidArgs") && err.contains("separate changes"), "{err}");
    // A generation that is not the chain's: Conflict, after every object was read.
    let stale = HashMap::from([("expected-generation", Variant::from(generation))]);
    let add = vec![(zbus::Fd::from(udp.as_fd()), "udp_count", opts("f", 7))];
    let err = link.change_chain(add, vec![], stale).await.unwrap_err().to_string();
    assert!(err.contains("Conflict") && err.contains("generation"), "{err}");
    assert_eq!(link.generation().await.unwrap(), generation + 1, "refused changes changed the generation");
    assert_eq!(link.programs().await.unwrap(), paths, "refused changes changed the chain");

    // A replacement in a change carries the replaced program's maps, as replace does.
    let old = f.program(&paths[1]).await;
    let old_maps = old.map_ids().await.unwrap();
    let mut replace = opts("c", 35);
    replace.insert("replace", Variant::from(true));
    let current = HashMap::from([("expected-generation", Variant::from(generation + 1))]);
    let add = vec![(zbus::Fd::from(udp.as_fd()), "udp_count", replace)];
    let new = link.change_chain(add, vec![], current).await.unwrap();
    let new = f.program(&new[0]).await;
    assert_eq!(new.map_ids().await.unwrap(), old_maps, "the same kernel maps");
    assert!(!new.carried_maps().await.unwrap().is_empty());
    assert_eq!(link.programs().await.unwrap().len(), 2);
}
