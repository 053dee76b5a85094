//! Segmented chains through the service: a non-root user's program and
//! root's program written for the privileged verifier share one interface,
//! added over D-Bus in both orders, and both see every packet of real
//! traffic; the shipped examples can be added by a user.

use std::collections::HashMap;
use std::os::fd::AsFd;

use xdpd_client::LinkProxy;
use xdpd_tests::memfd_with;
use xdpd_tests::polkit::{connect_as, Polkit};
use xdpd_tests::service::{link_proxy, program_proxy, Service as Fixture};
use zbus::{OwnedObjectPath, Variant};

/// alice may add and remove her own programs.
const RULES: &str = r#"
polkit.addRule(function(action, subject) {
    if (action.id.indexOf("org.xdp.manager1.") != 0)
        return polkit.Result.NOT_HANDLED;
    if (subject.user == "xdpd-alice" &&
        (action.id == "org.xdp.manager1.add-program" || action.id == "org.xdp.manager1.remove-program"))
        return polkit.Result.YES;
    return polkit.Result.NOT_HANDLED;
});
"#;

async fn add(link: &LinkProxy<'_>, object: &str, function: &str, priority: i32) -> zbus::Result<OwnedObjectPath> {
    let file = memfd_with(&xdpd_bpf::object_bytes(object));
    let options = HashMap::from([("priority", Variant::from(priority))]);
    link.add_program(zbus::Fd::from(file.as_fd()), function, options).await
}

/// The u64 at key 0 of the program's map `name`, read through its kernel id.
async fn count(conn: &zbus::Connection, program: &OwnedObjectPath, name: &str) -> u64 {
    let id = program_proxy(conn, program).await.map_ids().await.unwrap()[name];
    let map = xdpd::kernel::bpf::map_fd_by_id(id).unwrap();
    u64::from_ne_bytes(xdpd_tests::map_lookup(map.as_fd(), 0, 8).try_into().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roots_privileged_program_and_a_users_program_share_an_interface_in_both_orders() {
    xdpd_tests::require_root();
    let fx = Fixture::new("seg-owners").await;
    let _polkit = Polkit::start(&fx.bus, RULES);
    let alice = connect_as(&fx.bus, "xdpd-alice").await;
    let alice_link = link_proxy(&alice, &fx.link_path()).await;
    let root_link = fx.link().await;

    // Written for privileged loaders: a user cannot add it, and the refusal is the program's own.
    let before = root_link.generation().await.unwrap();
    let refused = add(&alice_link, "segments", "seg_priv_count", 10).await.unwrap_err();
    let message = refused.to_string();
    assert!(message.contains("VerifierRejected") && message.contains("leaks addr"), "{message}");
    assert_eq!(root_link.generation().await.unwrap(), before, "nothing changed");

    for root_first in [true, false] {
        let (root_prio, user_prio) = if root_first { (10, 20) } else { (20, 10) };
        let mine = if root_first {
            let r = add(&root_link, "segments", "seg_priv_count", root_prio).await.unwrap();
            (r, add(&alice_link, "udp", "udp_count", user_prio).await.unwrap())
        } else {
            let a = add(&alice_link, "udp", "udp_count", user_prio).await.unwrap();
            (add(&root_link, "segments", "seg_priv_count", root_prio).await.unwrap(), a)
        };
        let (root_prog, user_prog) = mine;
        // Explain: two segments, each against its own limits.
        let report = root_link.explain().await.unwrap();
        let limits: Vec<u32> = report.segments.iter().map(|s| s.instruction_limit).collect();
        assert_eq!(limits, if root_first { [1_000_000, 4096] } else { [4096, 1_000_000] });
        assert_eq!(fx.traffic(9998, 200), 200, "the receiver got every packet");
        assert_eq!(count(&fx.conn, &root_prog, "priv_packets").await, 200, "root's program ran on every packet");
        assert_eq!(count(&alice, &user_prog, "packets").await, 200, "the user's program ran on every packet");
        assert_eq!(root_link.kernel_program_id().await.unwrap(), fx.attached().native.max(fx.attached().generic));
        program_proxy(&fx.conn, &root_prog).await.remove().await.unwrap();
        program_proxy(&alice, &user_prog).await.remove().await.unwrap();
    }
    assert!(!fx.pins().join(fx.ifindex.to_string()).join("segments").exists(), "no array left pinned");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_adds_the_shipped_examples_next_to_roots_programs() {
    xdpd_tests::require_root();
    let fx = Fixture::new("seg-examples").await;
    let _polkit = Polkit::start(&fx.bus, RULES);
    let alice = connect_as(&fx.bus, "xdpd-alice").await;
    let alice_link = link_proxy(&alice, &fx.link_path()).await;
    let root_link = fx.link().await;
    let root_prog = add(&root_link, "port_block", "port_block", 5).await.unwrap();
    let mut users = Vec::new();
    for name in ["ip_blocklist", "port_block", "proto_count"] {
        users.push(add(&alice_link, name, name, 50).await.unwrap_or_else(|e| panic!("a user adds {name}: {e}")));
    }
    assert_eq!(root_link.programs().await.unwrap().len(), 4);
    assert_eq!(fx.traffic(9998, 100), 100, "nothing blocked: every packet passes both segments");
    for p in users {
        program_proxy(&alice, &p).await.remove().await.unwrap();
    }
    program_proxy(&fx.conn, &root_prog).await.remove().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segmented_chain_runs_whole_across_idle_exit_and_is_adopted() {
    xdpd_tests::require_root();
    let fx = Fixture::with_idle_timeout("seg-idle", 2).await;
    let mut polkit = Polkit::start(&fx.bus, RULES);
    let alice = connect_as(&fx.bus, "xdpd-alice").await;
    let alice_link = link_proxy(&alice, &fx.link_path()).await;
    let root_link = fx.link().await;
    let root_prog = add(&root_link, "segments", "seg_priv_count", 10).await.unwrap();
    let user_prog = add(&alice_link, "udp", "udp_count", 20).await.unwrap();
    assert_eq!(fx.traffic(9998, 50), 50);
    let (kernel_id, generation) = (root_link.kernel_program_id().await.unwrap(), root_link.generation().await.unwrap());
    let array_pin = fx.pins().join(fx.ifindex.to_string()).join("segments");
    assert!(array_pin.exists(), "the segmented chain's array is pinned");
    drop((alice_link, alice));
    polkit.stop();

    let pid = fx.bus.service_pid().expect("service running");
    assert!(fx.bus.wait_service_gone(pid, std::time::Duration::from_secs(15)), "the service did not exit when idle");
    // Nobody home: both segments still see every packet.
    assert_eq!(fx.traffic(9998, 50), 50);

    // Activated again: adopted as it runs, with both counts.
    assert_eq!(root_link.kernel_program_id().await.unwrap(), kernel_id, "adopted, not relinked");
    assert_eq!(root_link.generation().await.unwrap(), generation);
    assert_eq!(count(&fx.conn, &root_prog, "priv_packets").await, 100, "root's segment ran throughout");
    assert_eq!(count(&fx.conn, &user_prog, "packets").await, 100, "the user's segment ran throughout");
    assert!(array_pin.exists());

    // A change after the adoption swaps in a whole new version.
    let extra = add(&root_link, "basic", "xdp_pass", 30).await.unwrap();
    assert_ne!(root_link.kernel_program_id().await.unwrap(), kernel_id);
    assert_eq!(fx.traffic(9998, 50), 50);
    assert_eq!(count(&fx.conn, &user_prog, "packets").await, 150, "the user's segment runs in the new version");
    for p in [extra, root_prog, user_prog] {
        program_proxy(&fx.conn, &p).await.remove().await.unwrap();
    }
    assert!(!array_pin.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_of_one_segment_is_recorded_and_adopted_across_idle_exit() {
    xdpd_tests::require_root();
    let fx = Fixture::with_idle_timeout("seg-one-idle", 2).await;
    let mut polkit = Polkit::start(&fx.bus, RULES);
    let alice = connect_as(&fx.bus, "xdpd-alice").await;
    let alice_link = link_proxy(&alice, &fx.link_path()).await;
    let root_link = fx.link().await;
    let root_prog = add(&root_link, "segments", "seg_priv_count", 10).await.unwrap();
    let user_prog = add(&alice_link, "udp", "udp_count", 20).await.unwrap();
    let kernel_id = root_link.kernel_program_id().await.unwrap();
    // Alice's second program joins her segment: only it is linked again, put into the running array.
    let extra = add(&alice_link, "basic", "xdp_pass", 30).await.unwrap();
    assert_eq!(root_link.kernel_program_id().await.unwrap(), kernel_id, "the hook runs the same first segment");
    let generation = root_link.generation().await.unwrap();
    let report = root_link.explain().await.unwrap();
    assert_eq!((report.segments.len(), report.members.len()), (2, 3));
    assert_eq!(fx.traffic(9998, 50), 50);
    drop((alice_link, alice));
    polkit.stop();

    let pid = fx.bus.service_pid().expect("service running");
    assert!(fx.bus.wait_service_gone(pid, std::time::Duration::from_secs(15)), "the service did not exit when idle");
    assert_eq!(fx.traffic(9998, 50), 50);
    // Activated again: the record names the new segment, found in the running array: adopted as it runs.
    assert_eq!(root_link.kernel_program_id().await.unwrap(), kernel_id, "adopted, not relinked");
    assert_eq!(root_link.generation().await.unwrap(), generation);
    assert_eq!(count(&fx.conn, &root_prog, "priv_packets").await, 100, "root's segment ran throughout");
    assert_eq!(count(&fx.conn, &user_prog, "packets").await, 100, "the user's segment ran throughout");
    for p in [extra, root_prog, user_prog] {
        program_proxy(&fx.conn, &p).await.remove().await.unwrap();
    }
}
