//! The verdict counters as xdpctl shows them: `metrics` parsed by the
//! Prometheus project's own Python parsers (OpenMetrics and text 0.0.4), and
//! `top` driven in a real terminal (tmux) showing rates rise under traffic,
//! with `--once` and `--json` for scripts. Traffic is real (a veth pair).

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use xdpd_tests::bus::{xdpctl_binary, TestBus};
use xdpd_tests::netns::{send_paced, VethPair};

/// Ethernet 14 + IPv4 20 + UDP 8 + the 8-byte payload `send_paced` sends.
const FRAME: u64 = 50;
const DROPPED_PORT: u16 = 9999;

struct Fixture {
    bus: TestBus,
    pair: VethPair,
}

impl Fixture {
    fn new(name: &str) -> Fixture {
        let pair = VethPair::new();
        let bus = TestBus::start(name, &pair.ns_b, 0);
        Fixture { bus, pair }
    }

    fn xdpctl(&self, args: &[&str]) -> String {
        let out = Command::new(xdpctl_binary())
            .arg("--address")
            .arg(&self.bus.address)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run xdpctl");
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "xdpctl {args:?}: {stdout}{stderr}\n--- bus log ---\n{}", self.bus.log());
        stdout.into_owned()
    }

    /// The udp object's dropper (port 9999) first, a passing program second.
    fn two_programs(&self) {
        let udp = xdpd_bpf::object_path("udp").display().to_string();
        let basic = xdpd_bpf::object_path("basic").display().to_string();
        let dev = self.pair.dev_b.as_str();
        self.xdpctl(&["add", dev, &udp, "--program", "udp_drop", "--priority", "10", "--tag", "edge"]);
        self.xdpctl(&["add", dev, &basic, "--program", "xdp_pass", "--priority", "20"]);
    }

    fn send(&self, count: u64) {
        let to = std::net::SocketAddrV4::new(self.pair.addr_b, DROPPED_PORT);
        VethPair::run_in(&self.pair.ns_a, || {
            let sock = std::net::UdpSocket::bind("0.0.0.0:0").expect("bind");
            send_paced(&sock, to, count);
        });
    }
}

/// Packets to the dropped port from the other namespace until dropped.
struct Traffic {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Traffic {
    fn start(f: &Fixture) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, ns, to) =
            (stop.clone(), f.pair.ns_a.clone(), std::net::SocketAddrV4::new(f.pair.addr_b, DROPPED_PORT));
        let thread = std::thread::spawn(move || {
            VethPair::run_in(&ns, || {
                let sock = std::net::UdpSocket::bind("0.0.0.0:0").expect("bind");
                while !flag.load(Ordering::Relaxed) {
                    send_paced(&sock, to, 64);
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        });
        Traffic { stop, thread: Some(thread) }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Parses exposition text with prometheus_client (Debian's python3-prometheus-client)
/// and returns every sample as [name, labels, value].
fn parse(text: &str, openmetrics: bool) -> Vec<Value> {
    let parser = if openmetrics { "prometheus_client.openmetrics.parser" } else { "prometheus_client.parser" };
    let script = format!(
        "import sys, json, {parser} as p\n\
         out = []\n\
         for family in p.text_string_to_metric_families(sys.stdin.read()):\n\
         \x20   for s in family.samples:\n\
         \x20       out.append([s.name, s.labels, s.value, family.type])\n\
         print(json.dumps(out))\n"
    );
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (apt-get install python3-prometheus-client)");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), text.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("python3");
    assert!(out.status.success(), "the parser refused:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice::<Vec<Value>>(&out.stdout).expect("parser output")
}

fn sample(samples: &[Value], name: &str, program: &str, verdict: &str) -> f64 {
    let found = samples
        .iter()
        .find(|s| s[0] == name && s[1]["program"] == program && s[1].get("verdict").is_none_or(|v| v == verdict));
    found.and_then(|s| s[2].as_f64()).unwrap_or_else(|| panic!("no {name} for {program}/{verdict}: {samples:?}"))
}

#[test]
fn metrics_are_exact_and_parse_as_openmetrics_and_prometheus_text() {
    let f = Fixture::new("xdpctl-metrics");
    f.two_programs();
    f.send(25);
    std::thread::sleep(Duration::from_millis(150));
    let dev = f.pair.dev_b.as_str();
    for (args, openmetrics) in [(vec!["metrics"], true), (vec!["metrics", dev, "--prometheus"], false)] {
        let text = f.xdpctl(&args);
        assert_eq!(text.ends_with("# EOF\n"), openmetrics, "{text}");
        let samples = parse(&text, openmetrics);
        let packets = sample(&samples, "xdpd_program_packets_total", "udp_drop", "drop");
        assert_eq!(packets, 25.0, "{text}");
        assert_eq!(sample(&samples, "xdpd_program_bytes_total", "udp_drop", "drop"), (25 * FRAME) as f64);
        assert_eq!(sample(&samples, "xdpd_program_packets_total", "xdp_pass", "drop"), 0.0);
        let labels = &samples.iter().find(|s| s[0] == "xdpd_program_packets_total").expect("a sample")[1];
        for label in ["interface", "ifindex", "netns", "id", "program", "tag", "owner", "verdict"] {
            assert!(labels.get(label).is_some(), "label {label} missing: {labels}");
        }
        assert_eq!(labels["interface"], dev);
        assert_eq!(labels["netns"], "", "the service's own namespace");
        assert_eq!(labels["tag"], "edge");
        let chain = |name: &str| {
            let s = samples.iter().find(|s| s[0] == name && s[1]["interface"] == dev);
            s.and_then(|s| s[2].as_f64()).unwrap_or_else(|| panic!("no {name} for {dev}: {text}"))
        };
        assert_eq!(chain("xdpd_chain_programs"), 2.0);
        assert_eq!(chain("xdpd_chain_counting"), 1.0);
    }
    // The counts go on: a second scrape sees the packets since.
    f.send(5);
    std::thread::sleep(Duration::from_millis(150));
    let samples = parse(&f.xdpctl(&["metrics"]), true);
    assert_eq!(sample(&samples, "xdpd_program_packets_total", "udp_drop", "drop"), 30.0);
}

#[test]
fn top_once_and_json_show_rates_and_shares() {
    let f = Fixture::new("xdpctl-top-once");
    f.two_programs();
    let quiet: Value = serde_json::from_str(&f.xdpctl(&["--json", "top", "--interval", "0.5"])).expect("JSON");
    let dropper = |v: &Value| v["programs"].as_array().expect("programs")[0].clone();
    assert_eq!(dropper(&quiet)["name"], "udp_drop");
    let _traffic = Traffic::start(&f);
    std::thread::sleep(Duration::from_millis(300));
    let busy: Value = serde_json::from_str(&f.xdpctl(&["--json", "top", "--interval", "1"])).expect("JSON");
    let programs = busy["programs"].as_array().expect("programs");
    assert!(programs[0]["rates"]["drop"].as_f64().unwrap() > 100.0, "{busy}");
    assert!(programs[0]["bps"].as_f64().unwrap() > 100.0 * FRAME as f64, "{busy}");
    assert_eq!(programs[0]["share"], 1.0, "every packet reaches the first program: {busy}");
    assert!(programs[1]["share"].as_f64().unwrap() < 0.5, "the dropped ones never reach the second: {busy}");
    let once = f.xdpctl(&["top", f.pair.dev_b.as_str(), "--once", "--interval", "0.5"]);
    assert!(!once.contains('\x1b'), "--once does not clear the screen: {once:?}");
    let row = once.lines().find(|l| l.contains("udp_drop")).unwrap_or_else(|| panic!("{once}"));
    let drop_rate = row.split_whitespace().nth(7).expect("DROP/s");
    assert_ne!(drop_rate, "0", "{once}");
}

/// What a view shows: udp_drop's drop rate (if its row is there) and the title.
type Screen = (Option<String>, String);

/// A tmux server of our own, killed on drop.
struct Tmux(String);

impl Tmux {
    fn cmd(&self, args: &[&str]) -> String {
        let out = Command::new("tmux").arg("-L").arg(&self.0).args(args).output().expect("tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The drop rate of udp_drop on the screen, and the title (it has the time).
    fn screen(&self) -> Screen {
        let screen = self.cmd(&["capture-pane", "-p", "-t", "top"]);
        let rate =
            screen.lines().find(|l| l.contains("udp_drop")).and_then(|l| l.split_whitespace().nth(7)).map(String::from);
        let title = screen.lines().find(|l| l.starts_with("xdpctl top")).unwrap_or_default().to_string();
        (rate, title)
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.cmd(&["kill-server"]);
    }
}

#[test]
fn top_in_a_terminal_refreshes_and_rates_rise_under_traffic() {
    let f = Fixture::new("xdpctl-top-tmux");
    f.two_programs();
    let tmux = Tmux(format!("xdpd-test-top-{}", std::process::id()));
    let command = format!("{} --address '{}' top --interval 0.5", xdpctl_binary().display(), f.bus.address);
    tmux.cmd(&["new-session", "-d", "-s", "top", "-x", "200", "-y", "40", &command]);
    let wait = |what: &str, done: &dyn Fn(&Screen) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let screen = tmux.screen();
            if done(&screen) {
                return screen;
            }
            assert!(Instant::now() < deadline, "{what}: {}", tmux.cmd(&["capture-pane", "-p", "-t", "top"]));
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let quiet = wait("a first view without traffic", &|(rate, _)| rate.as_deref() == Some("0"));
    let _traffic = Traffic::start(&f);
    let busy = wait("a drop rate once packets flow", &|(rate, _)| rate.as_deref().is_some_and(|r| r != "0"));
    assert_ne!(quiet.1, busy.1, "the view was refreshed (a new time in its title)");
    let later = wait("the next view", &|(_, title)| *title != busy.1);
    assert!(later.0.is_some_and(|r| r != "0"), "rates go on while traffic flows");
}
