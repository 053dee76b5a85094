//! A bounded, deterministic run of the fuzz targets of `fuzz/` (the same
//! functions cargo-fuzz drives): a few thousand inputs mutated from seeds by a
//! small built-in mutator with a fixed seed, so it runs in CI on stable Rust.
//! The long, coverage-guided run is described in fuzz/README.md. Inputs that
//! once failed live in fuzz/regressions/<target>/ and are replayed first.
//!
//! Before each input the test writes it to a file (printed at the start), so
//! a crash in C code underneath (libbpf, libelf), which no catch_unwind can
//! report, still leaves the input behind.

#[path = "../../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod targets;

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Instant;

use targets::Mutator;
use zbus::Variant;

/// Inputs per run; `XDPD_FUZZ_ITERATIONS=N` multiplies them by N and
/// `XDPD_FUZZ_SEED` changes the mutator's seed (for longer runs by hand).
const OBJECT_INPUTS: usize = 5000;
const OPTION_INPUTS: usize = 20_000;

fn iterations(base: usize) -> usize {
    base * std::env::var("XDPD_FUZZ_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(1)
}

fn seed(base: u64) -> u64 {
    base ^ std::env::var("XDPD_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn regressions(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions").join(target);
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(Result::ok).map(|e| (e.path(), std::fs::read(e.path()).unwrap())).collect())
        .unwrap_or_default();
    out.sort();
    out
}

/// Runs `target` on every input, keeping the current one in a file; a panic
/// fails the test naming that file.
fn run(name: &str, mut target: impl FnMut(&[u8]), inputs: impl Iterator<Item = Vec<u8>>) -> usize {
    let last = std::env::temp_dir().join(format!("xdpd-fuzz-smoke-{name}-{}.input", std::process::id()));
    eprintln!("{name}: the input being tried is kept in {}", last.display());
    let started = Instant::now();
    let mut count = 0;
    for input in inputs {
        std::fs::write(&last, &input).unwrap();
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| target(&input))) {
            let kept = std::env::temp_dir().join(format!("xdpd-fuzz-{name}-crash-{count}.input"));
            std::fs::copy(&last, &kept).unwrap();
            let what =
                panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
            panic!(
                "{name}: input {count} ({} bytes) made the target panic: {}\nkept in {} (add it to fuzz/regressions/{name}/)",
                input.len(),
                what.unwrap_or_default(),
                kept.display()
            );
        }
        count += 1;
    }
    let _ = std::fs::remove_file(&last);
    eprintln!("{name}: {count} inputs in {:?}", started.elapsed());
    count
}

/// Every compiled BPF object, each behind every function-choice byte.
fn object_seeds() -> Vec<Vec<u8>> {
    let mut objects: Vec<PathBuf> = std::fs::read_dir(xdpd_bpf::OBJECT_DIR)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "o"))
        // Hundreds of MiB of maps each: for the limit tests, not for thousands of loads.
        .filter(|p| !p.to_string_lossy().contains("bigmap") && !p.to_string_lossy().contains("midmap"))
        .collect();
    objects.sort();
    assert!(objects.len() >= 10, "compiled test objects in {}", xdpd_bpf::OBJECT_DIR);
    let mut seeds = Vec::new();
    for path in objects {
        let bytes = std::fs::read(&path).unwrap();
        for choice in 0..targets::FUNCTIONS.len() as u8 {
            seeds.push([&[choice][..], &bytes].concat());
        }
    }
    seeds
}

#[test]
fn object_intake_survives_mutated_objects() {
    let replayed = run("object_intake", targets::object_intake, regressions("object_intake").into_iter().map(|r| r.1));
    eprintln!("object_intake: {replayed} regression inputs replayed");
    let mut seeds = object_seeds();
    run("object_intake", targets::object_intake, seeds.clone().into_iter());
    // Mutate the seeds that name a function their object has (the others stop at the name).
    seeds.retain(|s| targets::object_intake_outcome(s) != "invalid-object");
    assert!(seeds.len() >= 10, "{} seeds get past the ELF checks", seeds.len());
    let mut m = Mutator::new(seed(0x000b_1ec7));
    let inputs = std::iter::from_fn(|| {
        let seed = &seeds[m.below(seeds.len())];
        let other = &seeds[m.below(seeds.len())];
        // Keep the function-choice byte most of the time: the object is what is being fuzzed.
        let mut input = if m.below(4) == 0 { m.mutate(&seed[1..], &other[1..]) } else { m.mutate_in_place(&seed[1..]) };
        input.insert(0, if m.below(8) == 0 { m.next_u64() as u8 } else { seed[0] });
        Some(input)
    });
    let mut outcomes: HashMap<&str, usize> = HashMap::new();
    let record = |input: &[u8]| *outcomes.entry(targets::object_intake_outcome(input)).or_default() += 1;
    let n = run("object_intake", record, inputs.take(iterations(OBJECT_INPUTS)));
    assert_eq!(n, iterations(OBJECT_INPUTS));
    // How deep the inputs got: some must reach the verifier and some must load, or
    // the mutations only ever exercise the ELF checks.
    eprintln!("object_intake outcomes of the mutated inputs: {outcomes:?}");
    // SAFETY: geteuid has no failure mode.
    if unsafe { libc::geteuid() } == 0 {
        assert!(outcomes.get("loaded").copied().unwrap_or(0) > n / 10, "{outcomes:?}");
        assert!(outcomes.get("verifier").copied().unwrap_or(0) > 0, "{outcomes:?}");
    }
}

fn option_seeds() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let maps: Vec<HashMap<&str, Variant<'_>>> = vec![
        HashMap::new(),
        HashMap::from([("priority", Variant::from(10i32)), ("tag", Variant::from("app"))]),
        HashMap::from([("proceed-on", Variant::from(vec!["pass", "drop"])), ("mode", Variant::from("generic"))]),
        HashMap::from([("replace", Variant::from(true)), ("tag", Variant::from("x"))]),
        HashMap::from([("expected-generation", Variant::from(7u64)), ("persist", Variant::from(true))]),
        HashMap::from([("force", Variant::from(false)), ("priority", Variant::from(i32::MIN))]),
        HashMap::from([("priority", Variant::Variant(Box::new(Variant::from(3i32))))]),
        HashMap::from([("bogus", Variant::from(1u8))]),
    ];
    let wire: Vec<Vec<u8>> = maps.iter().map(targets::encode_options).collect();
    assert!(wire.iter().all(|s| targets::wire_options(s).is_some()), "the seeds decode");
    // Seeds for the structured builder: raw bytes.
    let raw = (0u8..32).map(|i| (0..64).map(|j| i.wrapping_mul(31).wrapping_add(j)).collect()).collect();
    (wire, raw)
}

#[test]
fn option_parsing_survives_mutated_dictionaries() {
    run("options", targets::options, regressions("options").into_iter().map(|r| r.1));
    let (wire, raw) = option_seeds();
    run("options", targets::options, wire.iter().chain(&raw).cloned());
    let mut m = Mutator::new(seed(0x0917_1025));
    let inputs: Vec<Vec<u8>> = (0..iterations(OPTION_INPUTS))
        .map(|_| {
            // Mostly wire data: one broken length and it no longer decodes.
            let pool = if m.below(4) == 0 { &raw } else { &wire };
            let (seed, other) = (&pool[m.below(pool.len())], &pool[m.below(pool.len())]);
            m.mutate(seed, other)
        })
        .collect();
    // Some mutated wire data must still decode, or the wire half fuzzes nothing.
    let decoded = inputs.iter().filter(|i| targets::wire_options(i).is_some_and(|m| !m.is_empty())).count();
    assert!(decoded > iterations(OPTION_INPUTS) / 50, "only {decoded} mutated inputs decode as a{{sv}}");
    assert_eq!(run("options", targets::options, inputs.into_iter()), iterations(OPTION_INPUTS));
}

/// The wire seeds decode to what was encoded; with `XDPD_FUZZ_WRITE_SEEDS=DIR`
/// they are also written there (fuzz/seed.sh uses this for the cargo-fuzz corpus).
#[test]
fn option_seeds_round_trip() {
    let (wire, _) = option_seeds();
    for (i, bytes) in wire.iter().enumerate() {
        let map = targets::wire_options(bytes).expect("a seed decodes");
        let borrowed: HashMap<&str, Variant<'_>> =
            map.iter().map(|(k, v)| (k.as_str(), Variant::try_clone(v).expect("no descriptors"))).collect();
        let again = targets::wire_options(&targets::encode_options(&borrowed)).expect("decodes again");
        assert_eq!(again, map, "seed {i} round trip");
        if let Some(dir) = std::env::var_os("XDPD_FUZZ_WRITE_SEEDS") {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(Path::new(&dir).join(format!("wire-{i}")), bytes).unwrap();
        }
    }
}

/// Real third-party objects on this machine (xdp-tools' programs, installed
/// by .ci/run), as further seeds for the sandboxed intake.
fn third_party_objects() -> Vec<Vec<u8>> {
    let dir = Path::new("/usr/lib/x86_64-linux-gnu/bpf");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "o")).collect()
        })
        .unwrap_or_default();
    paths.sort();
    paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// The object target's function names, and one that calls a kfunc (the
/// regression that crashed libbpf picks it).
const SANDBOX_FUNCTIONS: [Option<&str>; 7] =
    [None, Some("xdp_pass"), Some("udp_count"), Some("probe"), Some(""), Some("no_such_function"), Some("kfunc")];

/// The whole intake path as the service runs it: mutated real objects go to
/// a sandboxed child (the built xdpd as `xdpd __intake`). Whatever the child
/// does — refuse, crash in libbpf, run out of time — this process, standing
/// for the service, gets an answer and never crashes. `XDPD_FUZZ_SECONDS=600`
/// turns it into the ten-minute run of the closing notes.
#[test]
fn sandboxed_intake_survives_mutated_real_objects() {
    use xdpd::engine::sandbox::{Job, Sandbox};
    xdpd_tests::require_root();
    let sandbox = Sandbox::new(xdpd_tests::bus::xdpd_binary()).with_timeout(std::time::Duration::from_secs(20));
    let outcomes: std::cell::RefCell<HashMap<String, usize>> = Default::default();
    let mut intake = |input: &[u8]| {
        let Some((&choice, object)) = input.split_first() else { return };
        let function = SANDBOX_FUNCTIONS[choice as usize % SANDBOX_FUNCTIONS.len()].map(str::to_string);
        let job = Job {
            function,
            max_size: targets::MAX_OBJECT,
            maps_dir: None,
            shared_dir: None,
            user: choice & 0x80 != 0,
            map_budget: None,
            object_name: None,
            config: Default::default(),
            ifindex: None,
        };
        let outcome = match sandbox.load(object, &job) {
            Ok(p) => {
                assert!(
                    p.insn_count() > 0 && p.section.starts_with("xdp"),
                    "loaded {} of section {}",
                    p.name,
                    p.section
                );
                "loaded".to_string()
            }
            Err(xdpd::engine::Error::InvalidObject(m)) if m.contains("crashed libbpf") => {
                "crashed-in-child".to_string()
            }
            Err(xdpd::engine::Error::InvalidObject(m)) if m.contains("longer than") => "timed-out-in-child".to_string(),
            Err(xdpd::engine::Error::InvalidObject(_)) => "invalid-object".to_string(),
            Err(xdpd::engine::Error::VerifierRejected { .. }) => "verifier".to_string(),
            Err(xdpd::engine::Error::LimitExceeded(_)) => "limit".to_string(),
            Err(xdpd::engine::Error::Kernel(_)) => "kernel".to_string(),
            Err(_) => "other".to_string(),
        };
        *outcomes.borrow_mut().entry(outcome).or_default() += 1;
    };
    let regressions = regressions("sandboxed_intake");
    assert!(!regressions.is_empty(), "fuzz/regressions/sandboxed_intake holds the object that crashed libbpf");
    run("sandboxed_intake", &mut intake, regressions.into_iter().map(|r| r.1));
    assert!(outcomes.borrow().contains_key("crashed-in-child"), "the regression crashes only the child: {outcomes:?}");

    let mut seeds: Vec<Vec<u8>> = third_party_objects().into_iter().map(|o| [&[0u8][..], &o].concat()).collect();
    let third_party = seeds.len();
    seeds.extend(object_seeds().into_iter().filter(|s| targets::object_intake_outcome(s) != "invalid-object"));
    let seconds: u64 = std::env::var("XDPD_FUZZ_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let deadline = Instant::now() + std::time::Duration::from_secs(seconds);
    let budget = if seconds > 0 { usize::MAX } else { iterations(300) };
    let mut m = Mutator::new(seed(0x5a4d_b0c5));
    let inputs = std::iter::from_fn(|| {
        if seconds > 0 && Instant::now() > deadline {
            return None;
        }
        let seed = &seeds[m.below(seeds.len())];
        let mut input = m.mutate_in_place(&seed[1..]);
        input.insert(0, if m.below(8) == 0 { m.next_u64() as u8 } else { seed[0] });
        Some(input)
    });
    let n = run("sandboxed_intake", &mut intake, inputs.take(budget));
    eprintln!(
        "sandboxed_intake: {n} mutated inputs from {} seeds ({third_party} third-party): {:?}",
        seeds.len(),
        outcomes.borrow()
    );
    assert!(outcomes.borrow().get("loaded").copied().unwrap_or(0) > 0, "{outcomes:?}");
}
