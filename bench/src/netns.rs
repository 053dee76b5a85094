//! Many network namespaces: N named namespaces with a veth pair (two
//! interfaces) each, followed by the service (`--netns-dir`), next to its
//! own namespace with the same two interfaces — start-up to the first
//! `xdpctl status`, the service's CPU while idle, and AddProgram in a
//! followed namespace against the service's own.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use xdpd_client::{LinkProxy, ManagerProxy};
use xdpd_tests::bus::{xdpctl_binary, TestBus};
use xdpd_tests::netns::Followed;
use zbus::Variant;

use crate::table::{percentile, Table};

/// How long the idle CPU is measured.
const IDLE: Duration = Duration::from_secs(30);
/// AddProgram calls timed per kind.
const ADDS: usize = 20;

/// `count` named namespaces `xdpd-nsb-<prefix>-<pid>-<i>`, each with a veth pair `a`/`b`; deleted on drop.
struct Namespaces(Vec<String>);

impl Namespaces {
    fn new(prefix: &str, count: usize) -> Namespaces {
        let mut all = Namespaces(Vec::new());
        for i in 0..count {
            let name = format!("xdpd-nsb-{prefix}-{}-{i}", std::process::id());
            let _ = Command::new("ip").args(["netns", "del", &name]).stderr(Stdio::null()).status();
            run("ip", &["netns", "add", &name]);
            all.0.push(name.clone());
            run("ip", &["-n", &name, "link", "add", "name", "a", "type", "veth", "peer", "name", "b"]);
        }
        all
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(out.status.success(), "{program} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn xdpctl(bus: &TestBus, args: &[&str]) -> String {
    run(xdpctl_binary().to_str().unwrap_or_default(), &[&["--address", bus.address.as_str()], args].concat())
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
    fields.get(11..13).map_or(0, |f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Times of AddProgram (`xdp_pass` of `basic`), the first program of each
/// interface `(namespace, name)` ("" : the service's own namespace), in ms, sorted.
async fn adds(conn: &zbus::Connection, targets: &[(String, String)]) -> Vec<f64> {
    let manager = ManagerProxy::new(conn).await.expect("manager");
    let object = xdpd_bpf::object_path("basic").display().to_string();
    let mut times = Vec::new();
    for (ns, dev) in targets {
        let path = manager.get_link_in_netns(ns, dev).await.expect("link");
        let link = LinkProxy::builder(conn).path(path).build().await.expect("link proxy");
        let options = std::collections::HashMap::from([("mode", Variant::from("generic"))]);
        let start = Instant::now();
        link.add_program_from_path(&object, "xdp_pass", options).await.expect("AddProgram");
        times.push(ms(start.elapsed()));
    }
    times.sort_by(f64::total_cmp);
    times
}

/// One row: `count` followed namespaces.
fn measure(count: usize, table: &mut Table) {
    let own = Namespaces::new("own", 1);
    // The service's own namespace gets ADDS more pairs (oN/pN) for the comparison.
    for i in 0..ADDS {
        let (o, p) = (format!("o{i}"), format!("p{i}"));
        run("ip", &["-n", &own.0[0], "link", "add", "name", &o, "type", "veth", "peer", "name", &p]);
    }
    let namespaces = Namespaces::new("f", count);
    let bus = TestBus::start(&format!("netns-bench-{count}"), &own.0[0], 0);
    let dir = bus.dir.join("netns");
    let _followed: Vec<Followed> =
        namespaces.0.iter().enumerate().map(|(i, ns)| Followed::new(&dir, &format!("ns{i}"), ns)).collect();
    let start = Instant::now();
    let status = xdpctl(&bus, &["status"]);
    let first = start.elapsed();
    let shown = status.lines().filter(|l| l.starts_with("ns")).count();
    assert_eq!(shown, count * 3, "every namespace's a, b and lo in the first status");
    let pid = bus.service_pid().expect("the service runs");
    std::thread::sleep(Duration::from_secs(3));
    let before = cpu_ticks(pid);
    std::thread::sleep(IDLE);
    let used = cpu_ticks(pid).saturating_sub(before);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let idle = used as f64 / hz / IDLE.as_secs_f64() * 100.0;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (followed, own_ns) = rt.block_on(async {
        let conn = bus.connect().await;
        let followed: Vec<_> = (0..ADDS.min(count)).map(|i| (format!("ns{i}"), "a".to_string())).collect();
        let own: Vec<_> = (0..ADDS).map(|i| (String::new(), format!("o{i}"))).collect();
        (adds(&conn, &followed).await, adds(&conn, &own).await)
    });
    let p = |t: &[f64], q: f64| format!("{:.1}", percentile(t, q));
    table.row(vec![
        count.to_string(),
        (count * 2).to_string(),
        format!("{:.0}", ms(first)),
        format!("{idle:.2}"),
        p(&followed, 0.5),
        p(&followed, 0.9),
        p(&own_ns, 0.5),
    ]);
}

pub fn run_all(counts: &[usize]) -> Table {
    let mut table = Table::new(
        "netns",
        format!(
            "many network namespaces: N named namespaces with a veth pair each (and lo), followed through \
             --netns-dir; idle CPU over {} s; AddProgram of basic.o's xdp_pass in generic mode, {ADDS} calls \
             (the first program of an interface, attached: followed, interface a of {ADDS} namespaces, attached \
             from a thread in the namespace; own, {ADDS} interfaces of the service's own namespace)",
            IDLE.as_secs()
        ),
        &[
            "namespaces",
            "veth interfaces",
            "start-up + first status ms",
            "idle CPU % of a core",
            "AddProgram, followed namespace, p50 ms",
            "p90 ms",
            "AddProgram, own namespace, p50 ms",
        ],
    );
    for &count in counts {
        measure(count, &mut table);
    }
    table
}
