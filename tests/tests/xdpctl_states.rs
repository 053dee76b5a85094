//! What `xdpctl status` and `xdpctl reclaim` say when something else runs
//! than the chain the service records (issue #12 item 9): someone else's
//! program on an interface the service never managed, the chain's link
//! detached behind the service's back, the chain replaced. Each state is a
//! golden transcript in tests/golden/xdpctl/ (UPDATE_GOLDEN=1 rewrites them),
//! with the kernel ids that vary from run to run replaced by names.

use std::os::fd::AsFd;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use xdpd_tests::bus::{xdpctl_binary, TestBus};
use xdpd_tests::netns::VethPair;

/// How long the service may take to notice (it looks every 2 s); a bound, not a measurement.
const NOTICE: Duration = Duration::from_secs(30);

struct Fixture {
    bus: TestBus,
    pair: VethPair,
    ifindex: u32,
    /// Kernel ids → the names the transcripts show instead.
    ids: Vec<(u32, &'static str)>,
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Fixture {
    fn new(name: &str) -> Fixture {
        let pair = VethPair::new();
        let bus = TestBus::start(name, &pair.ns_b, 0);
        let ifindex = VethPair::ifindex(&pair.ns_b, &pair.dev_b);
        Fixture { bus, pair, ifindex, ids: Vec::new() }
    }

    fn run(&self, args: &[&str]) -> Run {
        let out = Command::new(xdpctl_binary())
            .arg("--address")
            .arg(&self.bus.address)
            .args(args)
            .env("COLUMNS", "200")
            .output()
            .expect("run xdpctl");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The interface's status as JSON, whatever the exit status.
    fn state(&self) -> Value {
        let r = self.run(&["--json", "status", &self.pair.dev_b]);
        let all: Value =
            serde_json::from_str(r.stdout.trim()).unwrap_or_else(|e| panic!("no JSON ({e}): {}", r.stdout));
        all["interfaces"][0].clone()
    }

    /// Waits until the service shows `state` for the interface; returns the status.
    fn wait_for(&self, state: &str) -> Value {
        let start = Instant::now();
        loop {
            let link = self.state();
            if link["state"] == state {
                return link;
            }
            assert!(start.elapsed() < NOTICE, "the service did not show {state} within {NOTICE:?}: {link}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `xdpctl ARGS` as a transcript, kernel ids replaced by their names.
    fn transcript(&self, args: &[&str]) -> String {
        let r = self.run(args);
        let mut text = format!(
            "$ xdpctl {}\nexit {}\n--- stdout ---\n{}--- stderr ---\n{}",
            args.join(" "),
            r.code,
            r.stdout,
            r.stderr
        );
        for (id, name) in &self.ids {
            text = replace_number(&text, *id, name);
        }
        text
    }

    /// Someone else attaches a program with netlink (native mode); returns its id.
    fn attach_foreign(&self) -> u32 {
        VethPair::run_in(&self.pair.ns_b, || {
            let object = libbpf_rs::ObjectBuilder::default()
                .open_file(xdpd_bpf::object_path("basic"))
                .and_then(|o| o.load())
                .expect("load basic.o");
            let prog = object.progs().find(|p| p.name() == "xdp_pass").expect("xdp_pass");
            // SAFETY: plain libbpf call; XDP_FLAGS_DRV_MODE = 4. The attachment outlives the descriptor.
            let ret = unsafe {
                libbpf_sys::bpf_xdp_attach(
                    self.ifindex as i32,
                    std::os::fd::AsRawFd::as_raw_fd(&prog.as_fd()),
                    4,
                    std::ptr::null(),
                )
            };
            assert_eq!(ret, 0, "attach the foreign program");
            xdpd::kernel::hook::attached(self.ifindex).expect("attached").native
        })
    }
}

/// `text` with every whole number `id` (not part of a longer one) replaced by `name`.
fn replace_number(text: &str, id: u32, name: &str) -> String {
    let (id, mut out, mut digits) = (id.to_string(), String::new(), String::new());
    for c in text.chars().chain(std::iter::once('\n')) {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        out.push_str(if digits == id { name } else { &digits });
        digits.clear();
        out.push(c);
    }
    out.pop();
    out
}

fn check(transcripts: &[(&str, String)]) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/xdpctl");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut wrong = Vec::new();
    for (name, transcript) in transcripts {
        let path = dir.join(format!("{name}.txt"));
        if update {
            std::fs::write(&path, transcript).expect("write golden");
            continue;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if &expected != transcript {
            wrong.push(format!("{name}:\n--- expected ---\n{expected}\n--- got ---\n{transcript}"));
        }
    }
    assert!(wrong.is_empty(), "transcripts differ (UPDATE_GOLDEN=1 rewrites them):\n{}", wrong.join("\n"));
}

#[test]
fn status_and_reclaim_say_what_runs_and_what_to_do() {
    let mut f = Fixture::new("ctl-states");
    let dev = f.pair.dev_b.clone();
    let mut transcripts = Vec::new();

    // An interface the service never managed, with someone else's program:
    // status says so (exit 0: nothing of the service's is broken) and points
    // at add --force, and so does reclaim, which has nothing to take back.
    let foreign = f.attach_foreign();
    f.ids.push((foreign, "$FOREIGN"));
    f.wait_for("foreign");
    transcripts.push(("status-foreign", f.transcript(&["status", &dev])));
    transcripts.push(("reclaim-foreign", f.transcript(&["reclaim", &dev])));

    // Taken over with --force, then its link detached behind the service's back:
    // no mode (nothing runs), what happened and what to do; exit 6.
    let object = xdpd_bpf::object_path("basic").display().to_string();
    let added = f.run(&["add", &dev, &object, "-p", "xdp_pass", "--force", "--tag", "mine"]);
    assert_eq!(added.code, 0, "{}{}", added.stdout, added.stderr);
    let chain = f.wait_for("running")["kernel_program_id"].as_u64().unwrap_or(0) as u32;
    f.ids.insert(0, (chain, "$CHAIN"));
    let pin = f.bus.pins.0.join("xdpd").join(f.ifindex.to_string()).join("link");
    let out = Command::new("bpftool").args(["link", "detach", "pinned"]).arg(&pin).output().expect("bpftool");
    assert!(out.status.success(), "bpftool: {}", String::from_utf8_lossy(&out.stderr));
    let link = f.wait_for("detached");
    assert_eq!(link["mode"], "", "a detached chain runs in no mode: {link}");
    transcripts.push(("status-detached", f.transcript(&["status", &dev])));

    // Someone else's program in its place: replaced; reclaim takes the interface back.
    let replacement = f.attach_foreign();
    f.ids.push((replacement, "$FOREIGN"));
    f.wait_for("replaced");
    transcripts.push(("status-replaced", f.transcript(&["status", &dev])));
    transcripts.push(("reclaim-replaced", f.transcript(&["reclaim", &dev])));
    let link = f.wait_for("running");
    assert_eq!(link["kernel_program_id"].as_u64(), Some(u64::from(chain)), "the same chain runs again");
    let r = f.run(&["status", &dev]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""), "{}", r.stdout);
    check(&transcripts);
}
