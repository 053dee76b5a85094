//! A held hook (issue #20): with Hold on, an interface keeps a pass-through
//! program attached through xdpd's link when its last program goes, gets one
//! when it has none, and every later change is a replacement through the
//! same link: the interface never sees an attach or a detach again (which
//! costs some NICs 1-20 s of link). The hold survives a restart.

use std::collections::HashMap;
use std::os::fd::AsFd;

use xdpd_tests::service::Service as Fixture;

fn object(name: &str) -> String {
    xdpd_bpf::object_path(name).display().to_string()
}

/// The kernel id of the link pinned for the interface; None without a pin.
fn link_id(f: &Fixture) -> Option<u32> {
    let pin = std::ffi::CString::new(f.link_pin().to_str()?).ok()?;
    let fd = xdpd::kernel::bpf::obj_get(&pin).ok()?;
    xdpd::kernel::bpf::link_info(fd.as_fd()).ok().map(|info| info.id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_interface_only_ever_sees_replacements() {
    let f = Fixture::new("hold").await;
    let link = f.link().await;
    const PORT: u16 = 9999; // udp_drop drops it
    assert!(!link.hold().await.unwrap());
    assert_eq!((link.kernel_program_id().await.unwrap(), link_id(&f)), (0, None));

    // Held: a pass-through program is attached now, through xdpd's link.
    let generation = link.generation().await.unwrap();
    link.set_hold(true).await.unwrap();
    assert!(link.hold().await.unwrap());
    assert_eq!(link.generation().await.unwrap(), generation + 1);
    let pass = link.kernel_program_id().await.unwrap();
    assert_ne!(pass, 0);
    assert_eq!(f.attached().native, pass, "attached natively");
    let held_link = link_id(&f).expect("a pinned link");
    assert!(link.programs().await.unwrap().is_empty());
    assert_eq!(f.traffic(PORT, 10), 10, "the pass-through passes everything");

    // Adding is a replacement through the same link.
    let dropper = link.add_program_from_path(&object("udp"), "udp_drop", HashMap::new()).await.unwrap();
    let chain = link.kernel_program_id().await.unwrap();
    assert!(chain != 0 && chain != pass);
    assert_eq!(link_id(&f), Some(held_link), "the same link: a replacement, not an attach");
    assert_eq!(f.attached().native, chain);
    assert_eq!(f.traffic(PORT, 10), 0);

    // Removing the last program swaps a pass-through in through the same link.
    f.program(&dropper).await.remove().await.unwrap();
    assert!(link.programs().await.unwrap().is_empty());
    let pass = link.kernel_program_id().await.unwrap();
    assert!(pass != 0 && pass != chain, "a pass-through runs, not nothing");
    assert_eq!(link_id(&f), Some(held_link), "no detach");
    assert_eq!(f.attached().native, pass);
    assert_eq!(f.traffic(PORT, 10), 10);

    // A restart brings the hold back with the pass-through as it runs; nothing unexplained.
    f.bus.stop_service();
    assert!(link.hold().await.unwrap());
    assert!(link.programs().await.unwrap().is_empty(), "no 'unexplained' program");
    assert_eq!(link.kernel_program_id().await.unwrap(), pass);
    assert_eq!(link_id(&f), Some(held_link));
    let again = link.add_program_from_path(&object("udp"), "udp_drop", HashMap::new()).await.unwrap();
    assert_eq!(link_id(&f), Some(held_link), "still a replacement after the restart");
    assert_eq!(f.traffic(PORT, 10), 0);

    // Let go: the held interface keeps its program; without programs it is detached.
    link.set_hold(false).await.unwrap();
    assert_eq!(link_id(&f), Some(held_link));
    f.program(&again).await.remove().await.unwrap();
    assert_eq!(link.kernel_program_id().await.unwrap(), 0, "not held: the last removal detaches");
    assert_eq!((f.attached().native, link_id(&f)), (0, None));
    assert_eq!(f.traffic(PORT, 10), 10);

    // Held and let go with no program: attached, then detached.
    link.set_hold(true).await.unwrap();
    assert_ne!(link.kernel_program_id().await.unwrap(), 0);
    link.set_hold(false).await.unwrap();
    assert_eq!((link.kernel_program_id().await.unwrap(), f.attached().native, link_id(&f)), (0, 0, None));
    let record = f.bus.dir.join(format!("state/links/{}.json", f.ifindex));
    assert!(!record.exists(), "nothing to record for an interface without programs or hold");

    // A reboot (links and pins gone, records kept): a held interface gets its pass-through again.
    link.set_hold(true).await.unwrap();
    assert!(record.exists(), "the hold is recorded");
    f.bus.stop_service();
    xdpd_tests::faults::reboot(&f);
    assert_eq!(f.attached().native, 0);
    assert!(link.hold().await.unwrap(), "the hold survives the reboot");
    let pass = link.kernel_program_id().await.unwrap();
    assert!(pass != 0 && f.attached().native == pass, "attached again at start");
    assert!(link.programs().await.unwrap().is_empty());
    assert!(link_id(&f).is_some());
}
