//! Compiles every `*.bpf.c` under `bpf/` (examples) and `bpf/test/` (test programs)
//! into BPF objects in OUT_DIR, so no prebuilt object is ever committed.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("objects");
    std::fs::create_dir_all(&out).expect("create OUT_DIR/objects");
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());

    println!("cargo:rerun-if-env-changed=CLANG");
    println!("cargo:rerun-if-changed=include");
    for dir in [manifest.clone(), manifest.join("test")] {
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut sources: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("read bpf source dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with(".bpf.c"))
            .collect();
        sources.sort();
        for src in sources {
            println!("cargo:rerun-if-changed={}", src.display());
            compile(&clang, &manifest, &src, &out);
        }
    }
    println!("cargo:rustc-env=XDPD_BPF_OBJECTS={}", out.display());
}

fn compile(clang: &str, manifest: &Path, src: &Path, out: &Path) {
    let name = src.file_name().and_then(|n| n.to_str()).expect("utf-8 file name");
    let obj = out.join(name.replace(".bpf.c", ".o"));
    let multiarch = format!("/usr/include/{}-linux-gnu", std::env::consts::ARCH);
    let status = Command::new(clang)
        .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
        .arg(format!("-I{}", manifest.join("include").display()))
        .arg(format!("-I{multiarch}"))
        .arg("-c")
        .arg(src)
        .arg("-o")
        .arg(&obj)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {clang} (install clang): {e}"));
    assert!(status.success(), "clang failed on {}", src.display());
}
