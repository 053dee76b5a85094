//! Fuzz targets of xdpd as plain functions, shared by the libFuzzer targets
//! (`fuzz_targets/`, run with `cargo +nightly fuzz run <target>`) and by the
//! bounded smoke run in the test suite (`tests/tests/fuzz_smoke.rs`), which
//! includes this file and feeds it mutated inputs from [`Mutator`].
//!
//! Each target must never panic, whatever the bytes; a panic (or a crash in
//! the C code underneath) is a finding. Each also checks what it can of the
//! result (an oracle), so a wrong answer counts as a finding too.

use std::collections::HashMap;

use zbus::{OwnedVariant, Variant};

/// Size cap the object target passes to the intake (the service's default is 16 MiB).
pub const MAX_OBJECT: usize = 1 << 20;

/// Function names the object target asks for, chosen by the input's first byte.
pub const FUNCTIONS: [Option<&str>; 6] =
    [None, Some("xdp_pass"), Some("udp_count"), Some("probe"), Some(""), Some("no_such_function")];

/// Object intake: `data[0]` picks a function name from [`FUNCTIONS`], the rest
/// is the object. Reading it back through a memfd must give the same bytes;
/// loading must give an error or an XDP program with instructions.
/// Without root (no BPF), loading stops at the kernel with an error, after
/// the ELF, BTF and run-config layers have seen the bytes.
pub fn object_intake(data: &[u8]) {
    object_intake_outcome(data);
}

/// [`object_intake`], saying how far the input got: "empty", "loaded", or
/// the kind of refusal ("invalid-object", "verifier", "kernel", "limit", ...).
pub fn object_intake_outcome(data: &[u8]) -> &'static str {
    use xdpd::engine::Error;
    let Some((&choice, object)) = data.split_first() else { return "empty" };
    let function = FUNCTIONS[choice as usize % FUNCTIONS.len()];
    check_read_back(object);
    match xdpd::engine::object::load(object, function, MAX_OBJECT) {
        Ok(program) => {
            assert!(program.insn_count() > 0, "a loaded program without instructions");
            // Without a name asked for, the name may be "": a symbol with an empty name makes
            // such a program (found by fuzzing, kept in regressions/); harmless, as "" also
            // asks for the only XDP program when the program is restored.
            if let Some(f) = function.filter(|f| !f.is_empty()) {
                assert_eq!(program.name, f, "loaded another function than the one asked for");
            }
            // Any section libbpf does not know loads as XDP, as libxdp loads it (legacy
            // names such as "prog"; a mutated name too); sections libbpf knows as another
            // type are refused (engine_intake tests that).
            for other in ["tc", "kprobe", "tracepoint", "socket", "cgroup", "lsm", "fentry", "perf_event"] {
                assert!(!program.section.starts_with(other), "loaded a program of section {}", program.section);
            }
            "loaded"
        }
        Err(e) => {
            // Every refusal has a message a caller can act on.
            assert!(!e.to_string().is_empty());
            match e {
                Error::InvalidObject(_) => "invalid-object",
                Error::VerifierRejected { .. } => "verifier",
                Error::Kernel(_) => "kernel",
                Error::LimitExceeded(_) => "limit",
                _ => "other",
            }
        }
    }
}

/// The object read through a memfd (as AddProgram does) comes back byte for byte.
fn check_read_back(object: &[u8]) {
    use std::io::Write;
    use std::os::fd::{AsFd, FromRawFd};
    // SAFETY: memfd_create with a static name; the result is checked and owned at once.
    let fd = unsafe { libc::memfd_create(c"fuzz".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return;
    }
    // SAFETY: a fresh descriptor we own.
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    if file.write_all(object).is_err() {
        return;
    }
    match xdpd::engine::object::read_fd(file.as_fd(), MAX_OBJECT) {
        Ok(bytes) => assert!(bytes == object, "read_fd gave {} bytes of {}", bytes.len(), object.len()),
        Err(e) => assert!(object.len() > MAX_OBJECT, "read_fd refused {} bytes: {e}", object.len()),
    }
}

/// Option parsing: the bytes become an `a{sv}` twice, once decoded as D-Bus
/// wire data (what a caller can put on the bus) and once built value by value
/// from the bytes (names and types the wire decoding would rarely hit).
pub fn options(data: &[u8]) {
    if let Some(map) = wire_options(data) {
        check_options(&map);
    }
    check_options(&Builder { data, at: 0 }.options());
}

/// Decodes `data` as a little-endian D-Bus `a{sv}`.
pub fn wire_options(data: &[u8]) -> Option<HashMap<String, OwnedVariant>> {
    use zbus::wire::serialized::{Context, Data};
    let bytes = Data::new(data, Context::new(zbus::wire::Endian::Little, 0));
    bytes.deserialize::<HashMap<String, OwnedVariant>>().ok().map(|(map, _)| map)
}

/// Encodes `map` as a little-endian D-Bus `a{sv}` (for seeds).
pub fn encode_options(map: &HashMap<&str, Variant<'_>>) -> Vec<u8> {
    use zbus::wire::serialized::Context;
    zbus::wire::to_bytes(Context::new(zbus::wire::Endian::Little, 0), map).map(|d| d.to_vec()).unwrap_or_default()
}

/// What `parse` must say about `map`: either InvalidArgs, or a request that
/// respects every rule of the contract.
pub fn check_options(map: &HashMap<String, OwnedVariant>) {
    use xdpd::dbus::options::{parse, OPTIONS};
    match parse(map) {
        Ok(request) => {
            for (name, value) in map {
                let expected = OPTIONS.iter().find(|(n, _)| n == name);
                let expected = expected.unwrap_or_else(|| panic!("accepted the unknown option '{name}'")).1;
                let inner = match &**value {
                    Variant::Variant(inner) => &**inner,
                    other => other,
                };
                let got = inner.value_signature().to_string();
                assert_eq!(got, expected, "accepted option '{name}' of type '{got}'");
            }
            assert!(!request.replace || !request.tag.is_empty(), "accepted replace without a tag");
            assert!(request.tag.len() <= 256, "accepted a tag of {} bytes", request.tag.len());
            assert!(!request.tag.chars().any(char::is_control), "accepted a tag with control characters");
            assert_eq!(request.priority.is_some(), map.contains_key("priority"));
            assert_eq!(request.expected_generation.is_some(), map.contains_key("expected-generation"));
        }
        Err(e) => assert_eq!(e.name(), "org.freedesktop.DBus.Error.InvalidArgs", "{e}"),
    }
}

/// Builds option dictionaries from bytes: names mostly from the contract,
/// values of many types, nested variants, long and odd strings.
struct Builder<'a> {
    data: &'a [u8],
    at: usize,
}

const NAMES: [&str; 12] = [
    "priority",
    "proceed-on",
    "mode",
    "tag",
    "replace",
    "expected-generation",
    "persist",
    "force",
    "",
    "Priority",
    "priority ",
    "bogus",
];
const WORDS: [&str; 12] =
    ["aborted", "drop", "pass", "tx", "redirect", "native", "generic", "offload", "PASS", "", "a\nb", "\u{0}"];

impl Builder<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }

    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        std::array::from_fn(|_| self.byte())
    }

    fn string(&mut self) -> String {
        match self.byte() % 4 {
            0 => WORDS[self.byte() as usize % WORDS.len()].to_string(),
            1 => {
                let n = self.byte() as usize;
                (0..n).map(|_| char::from(self.byte())).collect()
            }
            2 => "t".repeat(250 + self.byte() as usize % 12),
            _ => {
                let n = self.byte() as usize % 8;
                let s: Vec<u8> = (0..n).map(|_| self.byte()).collect();
                String::from_utf8_lossy(&s).into_owned()
            }
        }
    }

    fn value(&mut self, depth: u32) -> Variant<'static> {
        match self.byte() % 14 {
            0 => Variant::from(i32::from_le_bytes(self.bytes())),
            1 => Variant::from(u32::from_le_bytes(self.bytes())),
            2 => Variant::from(i64::from_le_bytes(self.bytes())),
            3 => Variant::from(u64::from_le_bytes(self.bytes())),
            4 => Variant::from(self.byte() & 1 == 1),
            5 => Variant::from(self.string()),
            6 => {
                let n = self.byte() as usize % 7;
                Variant::from((0..n).map(|_| self.string()).collect::<Vec<String>>())
            }
            7 => {
                let n = self.byte() as usize % 4;
                Variant::from((0..n).map(|_| i32::from(self.byte())).collect::<Vec<i32>>())
            }
            8 => Variant::from(self.byte()),
            9 => Variant::from(f64::from(self.byte())),
            10 => Variant::from(i16::from_le_bytes(self.bytes())),
            11 if depth < 3 => Variant::Variant(Box::new(self.value(depth + 1))),
            12 => Variant::from(zbus::ObjectPath::from_static_str_unchecked("/org/xdp/Manager1")),
            _ => Variant::from((i32::from(self.byte()), self.string())),
        }
    }

    fn options(&mut self) -> HashMap<String, OwnedVariant> {
        let n = self.byte() % 6;
        let mut map = HashMap::new();
        for _ in 0..n {
            let name = match self.byte() % 8 {
                0 => self.string(),
                _ => NAMES[self.byte() as usize % NAMES.len()].to_string(),
            };
            if let Ok(value) = OwnedVariant::try_from(self.value(0)) {
                map.insert(name, value);
            }
        }
        map
    }
}

/// A small deterministic mutator (xorshift64*) for the smoke run: bit flips,
/// interesting bytes and integers at random offsets (ELF and BTF headers are
/// offsets and sizes), truncation, duplicated, deleted and spliced chunks.
pub struct Mutator(u64);

impl Mutator {
    pub fn new(seed: u64) -> Mutator {
        Mutator(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// A copy of `input` with 1 or 2 changes that keep its length and layout
    /// (a flipped bit, an interesting byte or integer, a few random bytes):
    /// what gets a structured format like ELF past its first checks.
    pub fn mutate_in_place(&mut self, input: &[u8]) -> Vec<u8> {
        let mut out = input.to_vec();
        if out.len() < 8 {
            return self.mutate(input, &[]);
        }
        for _ in 0..1 + self.below(2) {
            let len = out.len();
            match self.below(4) {
                0 => {
                    let at = self.below(len);
                    out[at] ^= 1 << self.below(8);
                }
                1 => {
                    let at = self.below(len);
                    out[at] = [0u8, 1, 0x7f, 0x80, 0xff][self.below(5)];
                }
                2 => {
                    let width = [2, 4, 8][self.below(3)];
                    let at = self.below(len - width + 1);
                    let value = [0u64, 1, 0xffff, 0x7fff_ffff, 0xffff_ffff, u64::MAX, len as u64][self.below(7)];
                    out[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
                }
                _ => {
                    let at = self.below(len);
                    let n = (1 + self.below(8)).min(len - at);
                    for b in &mut out[at..at + n] {
                        *b = self.next_u64() as u8;
                    }
                }
            }
        }
        out
    }

    /// A mutated copy of `input` (1 to 4 mutations), `other` for splicing.
    pub fn mutate(&mut self, input: &[u8], other: &[u8]) -> Vec<u8> {
        const INTERESTING: [u64; 12] =
            [0, 1, 2, 0x7f, 0x80, 0xff, 0x7fff, 0xffff, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, u64::MAX];
        let mut out = input.to_vec();
        for _ in 0..1 + self.below(4) {
            let len = out.len();
            match self.below(8) {
                0 if len > 0 => {
                    let at = self.below(len);
                    out[at] ^= 1 << self.below(8);
                }
                1 if len > 0 => {
                    let at = self.below(len);
                    out[at] = INTERESTING[self.below(6)] as u8;
                }
                2 if len >= 8 => {
                    let width = [2, 4, 8][self.below(3)];
                    let at = self.below(len - width + 1);
                    let value = match self.below(3) {
                        0 => INTERESTING[self.below(INTERESTING.len())],
                        1 => len as u64 + self.below(64) as u64,
                        _ => self.next_u64(),
                    };
                    out[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
                }
                3 => out.truncate(self.below(len + 1)),
                4 if len > 0 => {
                    let start = self.below(len);
                    let end = start + self.below((len - start).min(256) + 1);
                    let chunk = out[start..end].to_vec();
                    let at = self.below(len + 1);
                    out.splice(at..at, chunk);
                }
                5 if len > 0 => {
                    let start = self.below(len);
                    let end = start + self.below((len - start).min(256) + 1);
                    out.drain(start..end);
                }
                6 if !other.is_empty() => {
                    let start = self.below(other.len());
                    let end = start + self.below((other.len() - start).min(512) + 1);
                    let at = self.below(len + 1);
                    out.splice(at..at.min(len).max(at), other[start..end].iter().copied());
                }
                _ if len > 0 => {
                    // A run of random bytes somewhere.
                    let at = self.below(len);
                    let n = self.below(16).min(len - at);
                    for b in &mut out[at..at + n] {
                        *b = self.next_u64() as u8;
                    }
                }
                _ => out.push(self.next_u64() as u8),
            }
        }
        out
    }
}
