//! The man pages and completions man/build.rs generates at build time: they
//! exist, name every option of the binaries they describe (so they follow the
//! clap definitions), render with man -l without warnings, and the bash
//! completion completes interface names. Needs neither root nor a bus.

use std::process::Command;

use clap::CommandFactory;

fn page(name: &str) -> String {
    let path = xdpd_man::generated(&format!("man/{name}"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn long_options(command: &clap::Command) -> Vec<String> {
    command.get_arguments().filter(|a| !a.is_hide_set()).filter_map(|a| a.get_long()).map(String::from).collect()
}

#[test]
fn xdpd_page_follows_the_service_options() {
    let text = page("xdpd.8");
    let options = long_options(&xdpd::config::Config::command());
    assert!(options.len() >= 5, "{options:?}");
    for option in options {
        assert!(text.contains(&format!("\\-\\-{}", option.replace('-', "\\-"))), "xdpd.8 lacks --{option}");
    }
    assert!(text.contains(".SH FILES") && text.contains("/var/lib/xdpd"), "{text}");
}

#[test]
fn xdpctl_pages_name_every_command() {
    let main = page("xdpctl.8");
    for command in [
        "status", "add", "replace", "remove", "maps", "watch", "reclaim", "counting", "top", "metrics", "apply",
        "export", "explain",
    ] {
        assert!(main.contains(&format!("xdpctl\\-{command}")), "xdpctl.8 lacks {command}");
        let sub = page(&format!("xdpctl-{command}.8"));
        assert!(sub.contains(".SH EXAMPLES"), "xdpctl-{command}.8 has no examples");
    }
    assert!(main.contains(".SH EXIT STATUS"), "{main}");
    let contract = page("org.xdp.Manager1.5");
    for member in ["GetLinkByName", "AddProgram", "ChainChanged", "Stats", "NoSuchLink"] {
        assert!(contract.contains(member), "org.xdp.Manager1.5 lacks {member}");
    }
}

#[test]
fn pages_render_without_warnings() {
    if Command::new("man").arg("--version").output().is_err() {
        panic!("man is not installed (apt-get install man-db)");
    }
    let dir = xdpd_man::generated("man");
    let mut pages = 0;
    for entry in std::fs::read_dir(&dir).expect("man dir") {
        let path = entry.expect("entry").path();
        let out = Command::new("man")
            .args(["--warnings", "-l"])
            .arg(&path)
            .env("MANWIDTH", "80")
            .env("LC_ALL", "C.UTF-8")
            .output()
            .expect("run man");
        let warnings = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && warnings.is_empty(), "{}: {warnings}", path.display());
        assert!(String::from_utf8_lossy(&out.stdout).lines().count() > 10, "{} is nearly empty", path.display());
        pages += 1;
    }
    assert!(pages >= 13, "{pages} pages");
}

#[test]
fn completions_complete_interface_names() {
    let bash = std::fs::read_to_string(xdpd_man::generated("completions/xdpctl.bash")).expect("bash completion");
    assert!(bash.contains("complete -F _xdpctl_ifaces") && bash.contains("/sys/class/net"), "{bash}");
    let zsh = std::fs::read_to_string(xdpd_man::generated("completions/_xdpctl")).expect("zsh completion");
    assert!(zsh.starts_with("#compdef xdpctl") && zsh.contains(":_net_interfaces'"), "{zsh}");
    // bash really completes: "xdpctl status l<TAB>" offers lo (every namespace has it).
    let script = format!(
        "{bash}\nCOMP_WORDS=(xdpctl status l); COMP_CWORD=2; _xdpctl_ifaces xdpctl l status; printf '%s\\n' \"${{COMPREPLY[@]}}\""
    );
    let out = Command::new("bash").arg("-c").arg(&script).output().expect("run bash");
    let offered = String::from_utf8_lossy(&out.stdout);
    assert!(offered.lines().any(|l| l == "lo"), "offered: {offered:?} {}", String::from_utf8_lossy(&out.stderr));
    // ... and options elsewhere: "xdpctl add eth0 x.o --pri<TAB>".
    let script = format!(
        "{bash}\nCOMP_WORDS=(xdpctl add eth0 x.o --pri); COMP_CWORD=4; _xdpctl_ifaces xdpctl --pri x.o; printf '%s\\n' \"${{COMPREPLY[@]}}\""
    );
    let out = Command::new("bash").arg("-c").arg(&script).output().expect("run bash");
    let offered = String::from_utf8_lossy(&out.stdout);
    assert!(
        offered.lines().any(|l| l == "--priority"),
        "offered: {offered:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
