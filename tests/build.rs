//! Compiles the compatibility suite's vendored XDP programs
//! (`compat/<project>/**.c`, see compat/SOURCES.md) into BPF objects in
//! OUT_DIR, unchanged, with the include directories their projects use.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Include directories of each project, relative to its directory (besides
/// the source's own directory and `compat/include`).
const INCLUDES: &[(&str, &[&str])] = &[
    ("xdp-tools", &["headers"]),
    ("bpf-examples", &["headers", "../xdp-tools/headers"]),
    ("katran", &[".", "katran/lib/linux_includes"]),
    ("cilium-ebpf", &["examples/headers"]),
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "c") {
            out.push(path);
        }
    }
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let compat = manifest.join("compat");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("compat");
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    let multiarch = format!("/usr/include/{}-linux-gnu", std::env::consts::ARCH);
    println!("cargo:rerun-if-env-changed=CLANG");
    println!("cargo:rerun-if-changed={}", compat.display());
    let mut all = Vec::new();
    sources(&compat, &mut all);
    all.sort();
    for src in all {
        println!("cargo:rerun-if-changed={}", src.display());
        let rel = src.strip_prefix(&compat).expect("under compat/");
        let project = rel.components().next().and_then(|c| c.as_os_str().to_str()).expect("a project directory");
        let obj = out.join(rel).with_extension("o");
        std::fs::create_dir_all(obj.parent().expect("a directory")).expect("create the object directory");
        let mut cmd = Command::new(&clang);
        cmd.args(["-O2", "-g", "-target", "bpf", "-w"]).arg(format!("-I{}", compat.join("include").display()));
        for (_, dirs) in INCLUDES.iter().filter(|(p, _)| *p == project) {
            for d in *dirs {
                cmd.arg(format!("-I{}", compat.join(project).join(d).display()));
            }
        }
        let status = cmd
            .arg(format!("-I{multiarch}"))
            .arg("-c")
            .arg(&src)
            .arg("-o")
            .arg(&obj)
            .status()
            .unwrap_or_else(|e| panic!("cannot run {clang} (install clang): {e}"));
        assert!(status.success(), "clang failed on {}", src.display());
    }
    println!("cargo:rustc-env=XDPD_COMPAT_OBJECTS={}", out.display());
}
