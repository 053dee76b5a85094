//! Fault injection: the record, the kernel and the D-Bus view agree after a
//! full state directory, damaged records, deleted pins, kills and reboots;
//! nothing acknowledged is lost, and ids and generations never come back.

use std::collections::HashMap;
use std::os::fd::AsFd;

use zbus::Variant;

use xdpd_tests::faults::*;
use xdpd_tests::service::Service as Fixture;

fn object(name: &str) -> String {
    xdpd_bpf::object_path(name).display().to_string()
}

fn opts(priority: i32) -> HashMap<&'static str, Variant<'static>> {
    HashMap::from([("priority", Variant::from(priority))])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_state_directory_refuses_every_change_and_changes_nothing() {
    let f = Fixture::new("fault-full").await;
    let tmpfs = TinyStateDir::mount(&f, "1m");
    let link = f.link().await;
    let dropper = link.add_program_from_path(&object("udp"), "udp_drop", opts(10)).await.unwrap();
    link.add_program_from_path(&object("basic"), "xdp_pass", opts(20)).await.unwrap();
    let before = view(&link).await;
    let filler = tmpfs.fill();

    let err = link.add_program_from_path(&object("globaldata"), "global_data", opts(30)).await.unwrap_err();
    assert_not_durable(err);
    let err = link.add_program_from_path(&object("udp"), "udp_count", opts(30)).await.unwrap_err();
    assert_not_durable(err);
    assert_not_durable(f.program(&dropper).await.remove().await.unwrap_err());
    assert_not_durable(link.set_counting(false).await.unwrap_err());
    assert!(link.counting().await.unwrap(), "still counting (the default)");
    assert_eq!(view(&link).await, before, "nothing changed");
    assert_eq!(f.attached().native, before.0, "the kernel runs what it ran");
    assert_eq!(recorded(&f), before.2, "the record names what runs");
    assert_eq!(f.traffic(9999, 10), 0, "the dropper still drops");

    // Space again, and a restart: exactly what was acknowledged, adopted as it runs.
    std::fs::remove_file(filler).unwrap();
    f.bus.stop_service();
    assert_eq!(view(&link).await, before);
    assert_eq!(objects(&f), 2, "no object of a refused request is left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_are_collected_when_no_record_names_them() {
    let f = Fixture::new("fault-gc").await;
    let link = f.link().await;
    let keep = link.add_program_from_path(&object("udp"), "udp_drop", opts(10)).await.unwrap();
    for _ in 0..3 {
        let p = link.add_program_from_path(&object("basic"), "xdp_pass", opts(20)).await.unwrap();
        assert_eq!(objects(&f), 2);
        f.program(&p).await.remove().await.unwrap();
        assert_eq!(objects(&f), 1, "a removed program's object goes at once");
    }
    // A replacement drops the replaced object; the same object on another member stays.
    let tagged = HashMap::from([("tag", Variant::from("app")), ("priority", Variant::from(30))]);
    link.add_program_from_path(&object("basic"), "xdp_pass", tagged.clone()).await.unwrap();
    let mut replace = tagged;
    replace.insert("replace", Variant::from(true));
    link.add_program_from_path(&object("udp"), "udp_count", replace).await.unwrap();
    assert_eq!(objects(&f), 1, "only udp.o is named by a record");
    f.program(&keep).await.remove().await.unwrap();
    assert_eq!(objects(&f), 1, "still named by the replacement");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_and_generations_never_come_back() {
    let f = Fixture::new("fault-ids").await;
    let link = f.link().await;
    let first = link.add_program_from_path(&object("basic"), "xdp_pass", opts(10)).await.unwrap();
    f.program(&first).await.remove().await.unwrap();
    let generation = link.generation().await.unwrap();
    assert!(recorded(&f).is_empty(), "an empty chain has no record");

    // A restart: the removed id and the generation reached stay handed out.
    f.bus.stop_service();
    let second = link.add_program_from_path(&object("basic"), "xdp_pass", opts(10)).await.unwrap();
    assert!(id_of(&second) > id_of(&first), "{second:?} after {first:?}");
    let after_restart = link.generation().await.unwrap();
    assert!(after_restart > generation, "generation {after_restart} after {generation}");

    // A reboot (bpffs emptied, state kept): the same.
    f.bus.stop_service();
    reboot(&f);
    assert!(link.generation().await.unwrap() >= after_restart, "Generation never decreases");
    let third = link.add_program_from_path(&object("basic"), "xdp_pass", opts(10)).await.unwrap();
    assert!(id_of(&third) > id_of(&second));
    assert!(link.generation().await.unwrap() > after_restart);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_data_survives_an_idle_exit() {
    let f = Fixture::with_idle_timeout("fault-global", 2).await;
    let link = f.link().await;
    let p = link.add_program_from_path(&object("globaldata"), "global_data", opts(10)).await.unwrap();
    f.traffic(9000, 20);
    let runs = u64::from_ne_bytes(map_value(&f, &p, ".bss", 8).await.try_into().unwrap());
    assert!(runs >= 20, "bss_runs {runs}");
    let pins = f.pins().join(f.ifindex.to_string()).join("prog").join(id_of(&p).to_string());
    let pinned: Vec<String> =
        std::fs::read_dir(&pins).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(pinned.iter().any(|n| n.ends_with("-bss")) && pinned.iter().any(|n| n.ends_with("-data")), "{pinned:?}");

    // MapIds names the maps as libbpf does for the same file: `<object>.data` etc.
    let mut shown: Vec<String> = f.program(&p).await.map_ids().await.unwrap().into_keys().collect();
    shown.sort();
    assert_eq!(shown, libbpf_map_names("globaldata"));

    let pid = f.bus.service_pid().expect("running");
    assert!(f.bus.wait_service_gone(pid, std::time::Duration::from_secs(15)), "no idle exit");
    f.traffic(9000, 10);
    let again = u64::from_ne_bytes(map_value(&f, &p, ".bss", 8).await.try_into().unwrap());
    assert!(again >= runs + 10, "the member kept its .bss: {again} after {runs}");
    let seed = u32::from_ne_bytes(map_value(&f, &p, ".data", 4).await.try_into().unwrap());
    assert_ne!(seed, 7, "the member kept its .data");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_chain_without_a_readable_record_is_shown_and_removable() {
    let f = Fixture::new("fault-records").await;
    let link = f.link().await;
    for how in ["truncated", "corrupt", "missing", "older"] {
        link.add_program_from_path(&object("udp"), "udp_drop", opts(10)).await.unwrap();
        link.add_program_from_path(&object("basic"), "xdp_pass", opts(20)).await.unwrap();
        let (kernel, generation, _) = view(&link).await;
        f.bus.stop_service();
        damage_record(&f, how);

        // After the restart the chain still runs, and the API shows it.
        let programs = link.programs().await.unwrap();
        assert_eq!(programs.len(), 1, "{how}: one program stands for the unexplained chain");
        let shown = f.program(&programs[0]).await;
        assert_eq!(shown.tag().await.unwrap(), "unexplained", "{how}");
        assert_eq!(shown.owner().await.unwrap(), 0, "{how}: an administrator's to remove");
        assert_eq!(link.kernel_program_id().await.unwrap(), kernel, "{how}");
        assert_eq!(f.attached().native, kernel, "{how}");
        assert!(link.generation().await.unwrap() >= generation, "{how}: Generation never decreases");
        assert_eq!(f.traffic(9999, 10), 0, "{how}: it still drops");
        let err = link.add_program_from_path(&object("basic"), "xdp_pass", opts(30)).await.unwrap_err();
        assert!(err.to_string().contains("Conflict"), "{how}: {err}");

        // Removing it detaches it; the interface is free again.
        shown.remove().await.unwrap();
        assert_eq!(view(&link).await.0, 0, "{how}");
        assert_eq!(f.attached().native, 0, "{how}");
        assert!(link.programs().await.unwrap().is_empty(), "{how}");
        assert_eq!(f.traffic(9999, 10), 10, "{how}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_pins_keep_the_data_path_whole() {
    let f = Fixture::new("fault-pins").await;
    let link = f.link().await;
    let persist = HashMap::from([("priority", Variant::from(10)), ("persist", Variant::from(true))]);
    let counter = link.add_program_from_path(&object("udp"), "udp_count", persist).await.unwrap();
    let blocker = link.add_program_from_path(&object("udp"), "port_block", opts(5)).await.unwrap();
    assert_eq!(f.traffic(9998, 20), 20);
    let (kernel, generation, programs) = view(&link).await;

    // Map pins deleted while the service is away: the adopted chain's maps are the truth.
    f.bus.stop_service();
    remove_pins(&f.pins().join(f.ifindex.to_string()).join("prog"));
    assert_eq!(view(&link).await, (kernel, generation, programs.clone()), "adopted as it runs");
    let count = u64::from_ne_bytes(map_value(&f, &counter, "packets", 8).await.try_into().unwrap());
    assert_eq!(count, 20, "MapIds/GetMaps name the maps the running program uses");
    let maps = f.program(&blocker).await.get_maps().await.unwrap();
    xdpd_tests::map_update(maps["blocked_port"].as_fd(), 0, &7777u32.to_ne_bytes());
    assert_eq!(f.traffic(7777, 10), 0, "a write through GetMaps reaches the packets");
    assert!(
        f.pins().join(f.ifindex.to_string()).join("prog").join(id_of(&counter).to_string()).exists(),
        "pinned again"
    );

    // The link pin deleted while the service is away: the chain is gone from the
    // kernel, so only what persists comes back, relinked, and the record says so.
    f.bus.stop_service();
    std::fs::remove_file(f.link_pin()).unwrap();
    let start = std::time::Instant::now();
    while f.attached().native != 0 {
        assert!(start.elapsed() < std::time::Duration::from_secs(5), "the link outlived its pin");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let (kernel, after, programs) = view(&link).await;
    assert_eq!(programs, vec![id_of(&counter)]);
    assert_ne!(kernel, 0);
    assert_eq!(f.attached().native, kernel);
    assert!(after > generation);
    assert_eq!(recorded(&f), programs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_keep_every_iterable_map_type_and_refuse_the_others() {
    let f = Fixture::new("fault-snap").await;
    let link = f.link().await;
    let kept = |prio: i32| {
        HashMap::from([
            ("priority", Variant::from(prio)),
            ("persist", Variant::from(true)),
            ("snapshot", Variant::from(true)),
        ])
    };
    let err = link.add_program_from_path(&object("tailcall"), "tail_entry", kept(50)).await.unwrap_err();
    assert!(err.to_string().contains("InvalidArgs") && err.to_string().contains("jump_table"), "{err}");

    let counter = link.add_program_from_path(&object("proto_count"), "proto_count", kept(90)).await.unwrap();
    assert_eq!(f.traffic(9000, 20), 20);
    let counted = udp_packets(f.program(&counter).await.get_maps().await.unwrap()["packets"].as_fd());
    assert!(counted >= 20, "{counted}");
    let blocker = link.add_program_from_path(&object("ip_blocklist"), "ip_blocklist", kept(10)).await.unwrap();
    let prefix = std::net::Ipv4Addr::from(u32::from(f.pair.addr_a) & 0xffff_ff00);
    let maps = f.program(&blocker).await.get_maps().await.unwrap();
    blocklist(maps["blocklist"].as_fd(), prefix, 24, true).expect("prefix added");
    assert_eq!(f.traffic(9000, 10), 0, "the sender's prefix is blocked");
    let dropped = blocklist(maps["blocklist"].as_fd(), prefix, 24, false).expect("prefix");
    assert!(dropped >= 10);

    // A reboot: the maps come back from the snapshots saved at the stop.
    f.bus.stop_service();
    reboot(&f);
    assert_eq!(link.programs().await.unwrap(), vec![blocker.clone(), counter.clone()]);
    assert_ne!(f.attached().native, 0);
    let maps = f.program(&blocker).await.get_maps().await.unwrap();
    assert_eq!(blocklist(maps["blocklist"].as_fd(), prefix, 24, false), Some(dropped), "the LPM trie came back");
    assert_eq!(f.traffic(9000, 10), 0, "and blocks again");
    let restored = udp_packets(f.program(&counter).await.get_maps().await.unwrap()["packets"].as_fd());
    assert_eq!(restored, counted, "the per-CPU array came back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_survive_idle_exit_and_restart_and_a_polling_client_keeps_the_service_up() {
    let f = Fixture::with_idle_timeout("fault-counts", 2).await;
    let link = f.link().await;
    let dropper = link.add_program_from_path(&object("udp"), "udp_drop", opts(10)).await.unwrap();
    link.set_counting(true).await.unwrap();
    assert_eq!(f.traffic(9999, 20), 0);
    let program = f.program(&dropper).await;
    assert_eq!(program.stats().await.unwrap().get("drop"), Some(&20));
    let (kernel, generation, programs) = view(&link).await;

    // A client reading Stats every half second keeps the service up.
    let pid = f.bus.service_pid().expect("running");
    for _ in 0..8 {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        program.stats().await.unwrap();
    }
    assert_eq!(f.bus.service_pid(), Some(pid), "reading Stats is activity");

    // Idle exit, packets while nobody is home, re-activation: counts went on, chain adopted.
    assert!(f.bus.wait_service_gone(pid, std::time::Duration::from_secs(15)), "no idle exit");
    assert_eq!(f.traffic(9999, 10), 0);
    assert_eq!(program.stats().await.unwrap().get("drop"), Some(&30), "counts survive the exit");
    assert_eq!(view(&link).await, (kernel, generation, programs.clone()), "same KernelProgramId, same Generation");

    // The counter table's pin lost: the restart relinks, and says so with ChainChanged.
    let mut changes = signals(&f.conn).await;
    f.bus.stop_service();
    std::fs::remove_file(f.pins().join(f.ifindex.to_string()).join("stats")).unwrap();
    let (relinked, after, _) = view(&link).await;
    assert_ne!(relinked, kernel);
    assert!(after > generation);
    assert_eq!(next_chain_changed(&mut changes).await, after, "ChainChanged after a relink");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_every_step_of_a_change_leaves_one_truth() {
    let f = Fixture::new("fault-steps").await;
    let link = f.link().await;
    link.add_program_from_path(&object("udp"), "udp_drop", opts(10)).await.unwrap();
    let mut highest = 0;
    for (change, step) in [
        ("add", "stored"),
        ("add", "pinned"),
        ("add", "prepared"),
        ("add", "swapped"),
        ("add", "committed"),
        ("remove", "prepared"),
        ("remove", "swapped"),
        ("remove", "committed"),
    ] {
        let what = format!("{change} killed at {step}");
        if change == "remove" {
            link.add_program_from_path(&object("basic"), "xdp_pass", opts(20)).await.unwrap();
        }
        let before = assert_agree(&f, &link, &what).await;
        highest = highest.max(*before.2.iter().max().unwrap_or(&0));
        f.bus.stop_service();
        crash_at(&f, Some(step));
        let last = *before.2.last().unwrap();
        let result = match change {
            "add" => link.add_program_from_path(&object("basic"), "xdp_pass", opts(20)).await.map(drop),
            _ => f.program(&format!("{}/program/{last}", f.link_path()).try_into().unwrap()).await.remove().await,
        };
        assert!(result.is_err(), "{what}: the service should have died");
        crash_at(&f, None);
        let after = assert_agree(&f, &link, &what).await;
        assert!(after.1 >= before.1, "{what}: Generation went back");
        assert_eq!(f.traffic(9999, 10), 0, "{what}: the dropper still runs");
        let expected = match (change, step) {
            ("add", "committed") => before.2.len() + 1,
            ("remove", "committed") => before.2.len() - 1,
            _ => before.2.len(),
        };
        assert_eq!(after.2.len(), expected, "{what}: acknowledged or not, all or nothing");
        // The next id is above everything handed out, also to a change that died.
        let next = link.add_program_from_path(&object("basic"), "xdp_pass", opts(30)).await.unwrap();
        assert!(id_of(&next) > highest, "{what}: id {} after {highest}", id_of(&next));
        highest = id_of(&next);
        f.program(&next).await.remove().await.unwrap();
        for extra in view(&link).await.2.into_iter().filter(|id| !before.2.contains(id) || change == "remove") {
            if extra != before.2[0] {
                f.program(&format!("{}/program/{extra}", f.link_path()).try_into().unwrap())
                    .await
                    .remove()
                    .await
                    .unwrap();
            }
        }
    }
}
