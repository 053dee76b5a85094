//! Many interfaces: the service in a network namespace with N veth
//! interfaces (N/2 pairs) — start-up to the first `xdpctl status`, the
//! service's CPU while idle, and how long it takes to notice that someone
//! detached its chain's link (`bpftool link detach`).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use xdpd_tests::bus::{xdpctl_binary, TestBus};
use xdpd_tests::netns::VethPair;

use crate::table::{percentile, Table};

/// How long the idle CPU is measured.
const IDLE: Duration = Duration::from_secs(30);
const DETACHES: usize = 5;

/// A network namespace with `count` veth interfaces; deleted (with them) on drop.
struct Namespace(String);

impl Namespace {
    fn new(count: usize) -> Namespace {
        let ns = Namespace(format!("xdpd-scale-{}-{count}", std::process::id()));
        let _ = Command::new("ip").args(["netns", "del", &ns.0]).stderr(Stdio::null()).status();
        run("ip", &["netns", "add", &ns.0]);
        let batch: String = (0..count / 2).map(|i| format!("link add s{i}a type veth peer name s{i}b\n")).collect();
        let file = std::env::temp_dir().join(format!("{}.batch", ns.0));
        std::fs::write(&file, batch).expect("batch file");
        let ok = Command::new("ip").args(["-n", &ns.0, "-batch"]).arg(&file).status().is_ok_and(|s| s.success());
        let _ = std::fs::remove_file(&file);
        assert!(ok, "creating {count} veth interfaces failed");
        ns
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(out.status.success(), "{program} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

fn xdpctl(bus: &TestBus, args: &[&str]) {
    run(xdpctl_binary().to_str().unwrap_or_default(), &[&["--address", bus.address.as_str()], args].concat());
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
    fields.get(11..13).map_or(0, |f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Times of `bpftool link detach` of the chain's link on `dev` until ForeignProgramDetected, in ms.
fn detaches(bus: &TestBus, ns: &str, dev: &str) -> Vec<f64> {
    let ifindex = VethPair::ifindex(ns, dev);
    let pin = bus.pins.0.join("xdpd").join(ifindex.to_string()).join("link");
    let pin = pin.to_str().unwrap_or_default().to_string();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let mut times = Vec::new();
    rt.block_on(async {
        let conn = bus.connect().await;
        let rule = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .member("ForeignProgramDetected")
            .build()
            .expect("rule");
        let mut stream =
            zbus::MessageStream::for_match_rule(rule, &conn, std::num::NonZeroUsize::new(64)).await.expect("subscribe");
        for _ in 0..DETACHES {
            let start = Instant::now();
            run("bpftool", &["link", "detach", "pinned", &pin]);
            match tokio::time::timeout(Duration::from_secs(30), stream.next()).await {
                Ok(Some(Ok(_))) => times.push(ms(start.elapsed())),
                _ => eprintln!("no ForeignProgramDetected within 30 s"),
            }
            xdpctl(bus, &["reclaim", dev]);
        }
    });
    times.sort_by(f64::total_cmp);
    times
}

/// One row: `count` interfaces.
fn measure(count: usize, table: &mut Table) {
    let ns = Namespace::new(count);
    let bus = TestBus::start(&format!("scale-{count}"), &ns.0, 0);
    let start = Instant::now();
    xdpctl(&bus, &["status"]);
    let first = start.elapsed();
    let start = Instant::now();
    xdpctl(&bus, &["status"]);
    let second = start.elapsed();
    let object = xdpd_bpf::object_path("basic").display().to_string();
    // Native mode on veth: attaching and detaching change the device's
    // features, which sends a link event. Generic mode sends none: the
    // detach is seen by the periodic dump.
    xdpctl(&bus, &["add", "s0a", &object, "-p", "xdp_pass"]);
    xdpctl(&bus, &["add", "s1a", &object, "-p", "xdp_pass", "-m", "skb"]);
    let pid = bus.service_pid().expect("the service runs");
    // Let the start-up's work (and the add's) settle before measuring idleness.
    std::thread::sleep(Duration::from_secs(3));
    let before = cpu_ticks(pid);
    std::thread::sleep(IDLE);
    let used = cpu_ticks(pid).saturating_sub(before);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let idle = used as f64 / hz / IDLE.as_secs_f64() * 100.0;
    let native = detaches(&bus, &ns.0, "s0a");
    let generic = detaches(&bus, &ns.0, "s1a");
    let p50_max = |t: &[f64]| format!("{:.0} / {:.0}", percentile(t, 0.5), t.last().copied().unwrap_or(0.0));
    table.row(vec![
        count.to_string(),
        format!("{:.0}", ms(first)),
        format!("{:.0}", ms(second)),
        format!("{idle:.2}"),
        p50_max(&native),
        p50_max(&generic),
    ]);
}

pub fn run_all(counts: &[usize]) -> Table {
    let mut table = Table::new(
        "scale",
        format!(
            "many interfaces: N veth interfaces in one namespace, chains on two (native, generic); idle CPU \
             over {} s; detach = bpftool link detach until ForeignProgramDetected, {DETACHES} times each",
            IDLE.as_secs()
        ),
        &[
            "interfaces",
            "start-up + first status ms",
            "second status ms",
            "idle CPU % of a core",
            "notice a detach, native (link event) p50 / max ms",
            "notice a detach, generic (no event) p50 / max ms",
        ],
    );
    for &count in counts {
        measure(count, &mut table);
    }
    table
}
