//! Interfaces of other network namespaces: the named ones an xdpd follows
//! (`--netns-dir`, /run/netns in production) have Link objects, chains, pins
//! and records like the service's own; traffic through those chains; a
//! namespace deleted and made again; a restart of the service.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use xdpd_client::{LinkProxy, ManagerProxy};
use xdpd_tests::netns::{attached_in, Followed, VethPair};
use xdpd_tests::service::{link_proxy, Service as Fixture};
use zbus::{OwnedObjectPath, Variant};

fn object(name: &str) -> String {
    xdpd_bpf::object_path(name).display().to_string()
}

fn opts(priority: i32) -> HashMap<&'static str, Variant<'static>> {
    HashMap::from([("priority", Variant::from(priority))])
}

async fn manager(f: &Fixture) -> ManagerProxy<'static> {
    ManagerProxy::new(&f.conn).await.expect("manager proxy")
}

/// The link of `dev` in followed namespace `netns`, once the service follows it.
async fn link_in(f: &Fixture, netns: &str, dev: &str) -> (OwnedObjectPath, LinkProxy<'static>) {
    let manager = manager(f).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match manager.get_link_in_netns(netns, dev).await {
            Ok(path) => return (path.clone(), link_proxy(&f.conn, path.as_str()).await),
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{dev} in {netns} never appeared: {e}\n{}", f.bus.log()),
        }
    }
}

/// Waits until namespace `netns` is no longer followed.
async fn wait_gone(f: &Fixture, netns: &str, dev: &str) -> zbus::Error {
    let manager = manager(f).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match manager.get_link_in_netns(netns, dev).await {
            Err(e) => return e,
            Ok(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            Ok(path) => panic!("{path} is still there"),
        }
    }
}

fn error_name(e: &zbus::Error) -> String {
    match e {
        zbus::Error::MethodError(name, _, _) => name.to_string(),
        zbus::Error::FDO(e) => zbus::DBusError::name(e.as_ref()).to_string(),
        other => other.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_named_namespaces_each_with_its_own_chain_and_traffic() {
    let f = Fixture::new("netns-three").await;
    let pairs: Vec<VethPair> = (0..3).map(|_| VethPair::new()).collect();
    let dir = f.bus.dir.join("netns");
    let followed: Vec<Followed> =
        pairs.iter().enumerate().map(|(i, p)| Followed::new(&dir, &format!("pod.{i}"), &p.ns_b)).collect();

    let mut links = Vec::new();
    for (i, (pair, ns)) in pairs.iter().zip(&followed).enumerate() {
        let name = format!("pod.{i}");
        let (path, link) = link_in(&f, &name, &pair.dev_b).await;
        let ifindex = VethPair::ifindex(&pair.ns_b, &pair.dev_b);
        assert_eq!(path.as_str(), format!("/org/xdp/Manager1/netns/{}/link/{ifindex}", ns.inode()));
        assert_eq!(link.netns().await.unwrap(), name);
        assert_eq!(link.netns_inode().await.unwrap(), ns.inode());
        assert_eq!(link.index().await.unwrap(), ifindex as i32);
        assert_eq!(link.name().await.unwrap(), pair.dev_b);
        links.push(link);
    }
    // The service's own namespace: the paths and answers of before.
    let own = manager(&f).await.get_link_by_name(&f.pair.dev_b).await.unwrap();
    assert_eq!(own.as_str(), f.link_path());
    assert_eq!(manager(&f).await.get_link_in_netns("", &f.pair.dev_b).await.unwrap(), own);
    let own_inode = f.link().await.netns_inode().await.unwrap();
    assert_ne!(own_inode, 0);
    assert_eq!(f.link().await.netns().await.unwrap(), "");
    let err = manager(&f).await.get_link_in_netns("nowhere", "veth-b").await.unwrap_err();
    assert_eq!(error_name(&err), "org.xdp.Manager1.Error.NoSuchLink");

    // Add: each namespace gets its chain; traffic goes through it there.
    let mut drops = Vec::new();
    for (link, pair) in links.iter().zip(&pairs) {
        let mut tagged = opts(10);
        tagged.insert("tag", Variant::from("edge"));
        drops.push(link.add_program_from_path(&object("udp"), "udp_drop", tagged).await.unwrap());
        link.add_program_from_path(&object("udp"), "udp_count", opts(20)).await.unwrap();
        let kernel = link.kernel_program_id().await.unwrap();
        assert_ne!(kernel, 0);
        assert_eq!(attached_in(&pair.ns_b, &pair.dev_b).native, kernel);
        assert_eq!(pair.traffic(9999, 20), 0, "dropped inside {}", pair.ns_b);
        assert_eq!(pair.traffic(9998, 20), 20);
        assert!(drops.last().unwrap().as_str().starts_with(link.inner().path().as_str()));
    }
    assert_eq!(f.link().await.programs().await.unwrap(), Vec::<OwnedObjectPath>::new(), "own namespace untouched");
    assert_eq!(f.traffic(9999, 20), 20);

    // Replace in the second, remove in the third; the first stays as it is.
    let mut replace = opts(10);
    replace.insert("tag", Variant::from("edge"));
    replace.insert("replace", Variant::from(true));
    links[1].add_program_from_path(&object("udp"), "udp_count", replace).await.unwrap();
    let program = xdpd_tests::service::program_proxy(&f.conn, &drops[2]).await;
    program.remove().await.unwrap();
    assert_eq!(pairs[0].traffic(9999, 20), 0);
    assert_eq!(pairs[1].traffic(9999, 20), 20, "replaced");
    assert_eq!(pairs[2].traffic(9999, 20), 20, "removed");
    assert_eq!(links[1].programs().await.unwrap().len(), 2);
    assert_eq!(links[2].programs().await.unwrap().len(), 1);

    // The object tree shows them, without a warning from busctl.
    let (ok, tree, err) = f.bus.busctl(&["tree", "org.xdp.Manager1"]);
    assert!(ok && err.is_empty(), "busctl tree warned:\n{err}");
    for ns in &followed {
        assert!(tree.contains(&format!("/org/xdp/Manager1/netns/{}/link/", ns.inode())), "{tree}");
    }

    // Pins and records live per namespace.
    let pins = f.pins().join("netns");
    for i in 0..3 {
        assert!(pins.join(format!("pod%2E{i}")).is_dir(), "pins of pod.{i}");
        let records = f.bus.dir.join("state/links/netns").join(format!("pod%2E{i}"));
        assert_eq!(std::fs::read_dir(&records).unwrap().count(), 1, "record of pod.{i}");
    }

    // An interface moved (with its chain) to a namespace the service does not
    // follow: nobody takes the chain, so it is detached and its pins go.
    let (a, b) = (&pairs[0].ns_a, &pairs[0].ns_b);
    assert_ne!(attached_in(b, "veth-b").native, 0);
    let out = std::process::Command::new("ip").args(["-n", b, "link", "set", "veth-b", "netns", a]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_gone(&f, "pod.0", "veth-b").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while attached_in(a, "veth-b").native != 0 {
        assert!(Instant::now() < deadline, "the chain that moved away still runs\n{}", f.bus.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    let moving = f.pins().join("moving");
    assert!(!moving.exists() || std::fs::read_dir(&moving).unwrap().count() == 0, "its pins are gone");
    drop(followed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_namespace_takes_its_chains_and_a_new_one_of_that_name_gets_persistent_programs_back() {
    // Exits after 2 s idle, unless persistent programs wait for their namespace.
    let f = Fixture::with_idle_timeout("netns-gone", 2).await;
    let first = VethPair::new();
    let dir = f.bus.dir.join("netns");
    let ns = Followed::new(&dir, "pod", &first.ns_b);
    let (_, link) = link_in(&f, "pod", &first.dev_b).await;
    let mut persist = opts(10);
    persist.insert("persist", Variant::from(true));
    let dropper = link.add_program_from_path(&object("udp"), "udp_drop", persist).await.unwrap();
    link.add_program_from_path(&object("udp"), "udp_count", opts(20)).await.unwrap();
    assert_eq!(first.traffic(9999, 20), 0);

    // A restart adopts the chain as it runs.
    let kernel = link.kernel_program_id().await.unwrap();
    let generation = link.generation().await.unwrap();
    f.bus.stop_service();
    let (_, link) = link_in(&f, "pod", &first.dev_b).await;
    assert_eq!(link.kernel_program_id().await.unwrap(), kernel);
    assert_eq!(link.generation().await.unwrap(), generation);
    assert_eq!(link.programs().await.unwrap().len(), 2);
    assert_eq!(first.traffic(9999, 20), 0, "still dropping after the restart");

    // The namespace goes (from the service's view: its name does).
    drop(ns);
    let err = wait_gone(&f, "pod", &first.dev_b).await;
    assert_eq!(error_name(&err), "org.xdp.Manager1.Error.NoSuchLink");
    assert!(xdpd_tests::service::program_proxy(&f.conn, &dropper).await.name().await.is_err());
    let deadline = Instant::now() + Duration::from_secs(5);
    while attached_in(&first.ns_b, &first.dev_b).native != 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(attached_in(&first.ns_b, &first.dev_b).native, 0, "its chain is detached");
    assert!(!f.pins().join("netns/pod").exists(), "its pins are gone");
    let records: Vec<_> = std::fs::read_dir(f.bus.dir.join("state/links/netns/pod")).unwrap().collect();
    assert_eq!(records.len(), 1, "the record of the persistent program stays");
    let pid = f.bus.service_pid().expect("running");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(f.bus.service_pid(), Some(pid), "no idle exit while a persistent program waits for its namespace");

    // A namespace of that name again (a container restarted): the persistent program comes back.
    let second = VethPair::new();
    let ns = Followed::new(&dir, "pod", &second.ns_b);
    let (path, link) = link_in(&f, "pod", &second.dev_b).await;
    assert!(path.as_str().starts_with(&format!("/org/xdp/Manager1/netns/{}/", ns.inode())));
    let programs = link.programs().await.unwrap();
    assert_eq!(programs.len(), 1, "only the persistent program");
    let program = xdpd_tests::service::program_proxy(&f.conn, &programs[0]).await;
    assert_eq!(program.name().await.unwrap(), "udp_drop");
    assert_eq!(second.traffic(9999, 20), 0, "dropping in the new namespace");
    assert_eq!(second.traffic(9998, 20), 20);
    drop(ns);
    wait_gone(&f, "pod", &second.dev_b).await;
}

/// Runs xdpctl against the fixture's bus; (exit code, stdout, stderr).
fn xdpctl(f: &Fixture, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(xdpd_tests::bus::xdpctl_binary())
        .arg("--address")
        .arg(&f.bus.address)
        .args(args)
        .output()
        .expect("run xdpctl");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xdpctl_acts_in_a_namespace_with_n_and_status_groups_by_namespace() {
    let f = Fixture::new("netns-ctl").await;
    let pairs: Vec<VethPair> = (0..2).map(|_| VethPair::new()).collect();
    let dir = f.bus.dir.join("netns");
    let _followed: Vec<Followed> =
        pairs.iter().enumerate().map(|(i, p)| Followed::new(&dir, &format!("ctl{i}"), &p.ns_b)).collect();
    link_in(&f, "ctl0", "veth-b").await;
    link_in(&f, "ctl1", "veth-b").await;

    let udp = object("udp");
    let (code, out, err) = xdpctl(&f, &["-n", "ctl1", "add", "veth-b", &udp, "-n", "udp_drop", "--tag", "edge"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(pairs[1].traffic(9999, 20), 0, "added in ctl1");
    assert_eq!(pairs[0].traffic(9999, 20), 20, "not in ctl0");
    assert_eq!(f.traffic(9999, 20), 20, "not in the service's own namespace");
    let (code, out, err) = xdpctl(&f, &["-n", "ctl1", "explain", "veth-b", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("/org/xdp/Manager1/netns/"), "the report names the namespace's program paths: {out}");

    // status: every namespace, grouped (the service's own first), with a NETNS column.
    let (code, out, err) = xdpctl(&f, &["status"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("NETNS  INTERFACE"), "{out}");
    let netns_of: Vec<&str> = lines[1..].iter().filter_map(|l| l.split_whitespace().next()).collect();
    let first_other = netns_of.iter().position(|n| *n != "-").expect("other namespaces shown");
    assert!(netns_of[..first_other].iter().all(|n| *n == "-"), "own namespace first: {out}");
    assert!(out.lines().any(|l| l.starts_with("ctl0 ") && l.contains("veth-b") && l.contains("no programs")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("ctl1 ") && l.contains("udp_drop") && l.contains("edge")), "{out}");

    // Metrics name the namespace too.
    let (code, out, err) = xdpctl(&f, &["metrics"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines().any(|l| l.starts_with("xdpd_program_packets_total{")
            && l.contains("netns=\"ctl1\"")
            && l.contains("udp_drop")),
        "{out}"
    );

    // -n: only that namespace; JSON says which namespace.
    let (code, out, _) = xdpctl(&f, &["-n", "ctl1", "status", "--json"]);
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let interfaces = json["interfaces"].as_array().unwrap();
    assert!(interfaces.iter().all(|i| i["netns"] == "ctl1"), "{out}");
    assert!(interfaces.iter().any(|i| i["name"] == "veth-b" && i["netns_inode"].as_u64().unwrap() > 0));

    // -n scopes what names programs (remove --tag) and export to that namespace.
    let (code, _, err) = xdpctl(&f, &["-n", "ctl0", "add", "veth-b", &udp, "-n", "udp_drop", "--tag", "edge"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = xdpctl(&f, &["-n", "ctl0", "export"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.matches("name = \"veth-b\"").count(), 1, "{out}");
    let (_, out, _) = xdpctl(&f, &["export"]);
    assert!(!out.contains("udp_drop"), "the service's own namespace has none: {out}");
    let (code, _, err) = xdpctl(&f, &["-n", "ctl1", "remove", "--tag", "edge"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(pairs[1].traffic(9999, 20), 20, "removed");
    assert_eq!(pairs[0].traffic(9999, 20), 0, "the other namespace's program of that tag stays");
    let (code, _, err) = xdpctl(&f, &["-n", "nowhere", "status", "veth-b"]);
    assert_eq!(code, 3, "no such namespace: {err}");
    assert!(err.contains("nowhere"), "{err}");

    // By a process (the service is asked to follow its namespace) and by a path.
    let unshared = xdpd_tests::netns::Unshared::new(None);
    let pid = unshared.pid().to_string();
    let (code, out, err) = xdpctl(&f, &["-n", &pid, "status"]);
    assert_eq!(code, 0, "{err}");
    let group = format!("#{}", unshared.inode());
    assert!(out.lines().skip(1).all(|l| l.starts_with(&group)), "only that namespace: {out}");
    assert!(out.lines().any(|l| l.contains(" lo ") && l.contains("no programs")), "{out}");
    let path = unshared.ns_path().display().to_string();
    let (code, _, err) = xdpctl(&f, &["-n", &path, "add", "lo", &udp, "-n", "udp_count", "-m", "skb"]);
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = xdpctl(&f, &["status"]);
    assert!(out.lines().any(|l| l.starts_with(&group) && l.contains("udp_count")), "{out}");
    // By a descriptor (xdpctl sends the file): found again by its bind mount, or by a process in it.
    let ns_a = format!("/run/netns/{}", pairs[0].ns_a);
    let (code, out, err) = xdpctl(&f, &["-n", &ns_a, "status", "veth-a"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().any(|l| l.contains("veth-a") && l.starts_with('#')), "{out}");
    let other = xdpd_tests::netns::Unshared::new(None);
    let (code, out, err) = xdpctl(&f, &["-n", &other.ns_path().display().to_string(), "status"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().any(|l| l.starts_with(&format!("#{}", other.inode())) && l.contains(" lo ")), "{out}");
    let (code, _, err) = xdpctl(&f, &["-n", "/proc/self/status", "status"]);
    assert_eq!(code, 2, "not a namespace: {err}");
    assert!(err.contains("not a network namespace"), "{err}");
}

const RULES: &str = r#"
polkit.addRule(function(action, subject) {
    if (subject.user != "xdpd-alice") return polkit.Result.NOT_HANDLED;
    if (action.id == "org.xdp.manager1.follow-netns") return polkit.Result.YES;
    // Alice may add programs in namespace "src" only: the namespace is a detail.
    if (action.id == "org.xdp.manager1.add-program" && action.lookup("netns") == "src")
        return polkit.Result.YES;
    return polkit.Result.NO;
});
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_designated_by_a_process_an_interface_moved_into_one_and_a_caller_who_cannot_see_it() {
    let f = Fixture::new("netns-pid").await;
    let _polkit = xdpd_tests::polkit::Polkit::start(&f.bus, RULES);
    let alice = xdpd_tests::polkit::connect_as(&f.bus, "xdpd-alice").await;
    let alice_manager = ManagerProxy::new(&alice).await.unwrap();
    let pair = VethPair::new();
    let _src = Followed::new(&f.bus.dir.join("netns"), "src", &pair.ns_b);
    let (src_path, _) = link_in(&f, "src", &pair.dev_b).await;

    // Polkit sees the namespace: alice may add in "src", not in the service's own.
    let alice_src = link_proxy(&alice, src_path.as_str()).await;
    alice_src.add_program_from_path(&object("udp"), "udp_count", opts(20)).await.unwrap();
    let alice_own = link_proxy(&alice, &f.link_path()).await;
    let err = alice_own.add_program_from_path(&object("udp"), "udp_count", opts(20)).await.unwrap_err();
    assert_eq!(error_name(&err), "org.freedesktop.DBus.Error.AccessDenied");

    // A namespace alice cannot see (root's process): refused although polkit says yes; nothing followed.
    let mut roots = xdpd_tests::netns::Unshared::new(None);
    let err = alice_manager.follow_netns_of_process(roots.pid()).await.unwrap_err();
    assert_eq!(error_name(&err), "org.freedesktop.DBus.Error.AccessDenied", "{err}");
    assert!(err.to_string().contains("another user"), "{err}");
    let err = manager(&f).await.get_link_in_netns_by_inode(roots.inode(), "lo").await.unwrap_err();
    assert_eq!(error_name(&err), "org.xdp.Manager1.Error.NoSuchLink");
    let err = alice_manager.follow_netns_of_process(u32::MAX).await.unwrap_err();
    assert_eq!(error_name(&err), "org.freedesktop.DBus.Error.InvalidArgs");

    // Her own (unshare -rn as alice): followed.
    let hers = xdpd_tests::netns::Unshared::new(Some(xdpd_tests::polkit::uid("xdpd-alice")));
    assert_eq!(alice_manager.follow_netns_of_process(hers.pid()).await.unwrap(), hers.inode());
    let lo = manager(&f).await.get_link_in_netns_by_inode(hers.inode(), "lo").await.unwrap();
    assert_eq!(lo.as_str(), format!("/org/xdp/Manager1/netns/{}/link/1", hers.inode()));
    let lo = link_proxy(&f.conn, lo.as_str()).await;
    assert_eq!((lo.netns().await.unwrap(), lo.netns_inode().await.unwrap()), (String::new(), hers.inode()));

    // Root may designate any; the interface moved from "src" into it is followed there.
    let inode = manager(&f).await.follow_netns_of_process(roots.pid()).await.unwrap();
    assert_eq!(inode, roots.inode());
    assert_eq!(manager(&f).await.follow_netns_of_process(roots.pid()).await.unwrap(), inode, "idempotent");
    let src_link = link_proxy(&f.conn, src_path.as_str()).await;
    let kernel_before = src_link.kernel_program_id().await.unwrap();
    assert_ne!(kernel_before, 0);
    let out = std::process::Command::new("ip")
        .args(["-n", &pair.ns_b, "link", "set", &pair.dev_b, "netns", &roots.pid().to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_gone(&f, "src", &pair.dev_b).await;
    let moved = wait_link_by_inode(&f, inode, &pair.dev_b).await;
    assert!(moved.as_str().starts_with(&format!("/org/xdp/Manager1/netns/{inode}/link/")));
    roots.ip(&["addr", "add", &format!("{}/24", pair.addr_b), "dev", &pair.dev_b]);
    roots.ip(&["link", "set", &pair.dev_b, "up"]);
    let link = link_proxy(&f.conn, moved.as_str()).await;
    // Its chain came along, running as it ran (the kernel keeps XDP attached across a move).
    // (When the new namespace saw it first, it shows it again once the chain was handed over.)
    let deadline = Instant::now() + Duration::from_secs(10);
    while link.kernel_program_id().await.ok() != Some(kernel_before) {
        assert!(Instant::now() < deadline, "the chain did not come along\n{}", f.bus.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let programs = link.programs().await.unwrap();
    assert_eq!(programs.len(), 1, "alice's program moved with the interface");
    let alices = xdpd_tests::service::program_proxy(&f.conn, &programs[0]).await;
    assert_eq!(alices.owner().await.unwrap(), xdpd_tests::polkit::uid("xdpd-alice"));
    assert!(!f.pins().join("netns/src").join(VethPair::ifindex(&pair.ns_a, &pair.dev_a).to_string()).exists());
    link.add_program_from_path(&object("udp"), "udp_drop", opts(10)).await.unwrap();
    assert_eq!(link.programs().await.unwrap().len(), 2);
    let traffic = |port: u16| {
        let rx = roots.run_in(|| xdpd_tests::netns::udp_receiver(port));
        let tx = VethPair::run_in(&pair.ns_a, || std::net::UdpSocket::bind("0.0.0.0:0").unwrap());
        xdpd_tests::netns::send_paced(&tx, std::net::SocketAddrV4::new(pair.addr_b, port), 20);
        std::thread::sleep(Duration::from_millis(300));
        xdpd_tests::netns::drain(&rx)
    };
    // The first datagrams may wait for ARP: what counts is what the chain lets through.
    assert!(traffic(9998) > 0, "UDP to 9998 passes");
    assert_eq!(traffic(9998), 20);
    assert_eq!(traffic(9999), 0, "dropped inside the designated namespace");
    let pins = f.pins().join(format!("netns/%23{inode}"));
    assert!(pins.is_dir());

    // A restart follows the designated namespaces again (their processes live): the chain is adopted.
    let kernel = link.kernel_program_id().await.unwrap();
    f.bus.stop_service();
    let again = wait_link_by_inode(&f, inode, &pair.dev_b).await;
    assert_eq!(again, moved);
    assert_eq!(link.kernel_program_id().await.unwrap(), kernel, "adopted as it runs");
    assert_eq!(traffic(9999), 0, "still dropping after the restart");
    wait_link_by_inode(&f, hers.inode(), "lo").await;

    // The process goes, and its namespace with it: the links, pins and records go.
    roots.kill();
    let deadline = Instant::now() + Duration::from_secs(10);
    while manager(&f).await.get_link_in_netns_by_inode(inode, &pair.dev_b).await.is_ok() {
        assert!(Instant::now() < deadline, "the designated namespace's link stays");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(link.name().await.is_err(), "the link object is gone");
    assert!(!pins.exists(), "its pins are gone");
    assert!(!f.bus.dir.join(format!("state/links/netns/%23{inode}")).exists(), "its records are gone");
}

async fn wait_link_by_inode(f: &Fixture, inode: u64, dev: &str) -> OwnedObjectPath {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match manager(f).await.get_link_in_netns_by_inode(inode, dev).await {
            Ok(path) => return path,
            Err(e) if Instant::now() > deadline => panic!("{dev} never appeared in {inode}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
