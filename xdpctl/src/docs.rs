//! Shell completions (and the man page, in the packaging build script, which
//! includes this file and `cli.rs`): clap's scripts, with network interface
//! names completed where a command takes IFACE.

use clap::Command;

use crate::cli::ShellKind;

/// The subcommands whose first positional argument is a network interface.
const IFACE_FIRST: [&str; 13] = [
    "status", "list", "show", "add", "replace", "remove", "rm", "maps", "reclaim", "counting", "export", "top",
    "metrics",
];

/// Appended to clap's bash script: completes interface names (from
/// /sys/class/net) in IFACE's place, and defers to clap's function elsewhere.
const BASH_IFACES: &str = r#"
_xdpctl_ifaces() {
    local cur=${COMP_WORDS[COMP_CWORD]} sub="" pos=0 i w
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        case "$w" in
            --address) ((i++)) ;;
            -*) ;;
            *) if [ -z "$sub" ]; then sub=$w; else ((pos++)); fi ;;
        esac
    done
    case "$sub" in
        @SUBCOMMANDS@)
            if [ "$pos" = 0 ] && [[ "$cur" != -* ]]; then
                COMPREPLY=($(compgen -W "$(ls /sys/class/net 2>/dev/null)" -- "$cur"))
                return 0
            fi ;;
    esac
    _xdpctl "$@"
}
complete -F _xdpctl_ifaces -o bashdefault -o default xdpctl
"#;

/// The completion script of `shell` for `command` (the xdpctl command line).
pub fn completion(command: &mut Command, shell: ShellKind) -> String {
    let mut buf = Vec::new();
    let generator = match shell {
        ShellKind::Bash => clap_complete::Shell::Bash,
        ShellKind::Zsh => clap_complete::Shell::Zsh,
    };
    clap_complete::generate(generator, command, "xdpctl", &mut buf);
    let script = String::from_utf8_lossy(&buf).into_owned();
    match shell {
        ShellKind::Bash => script + &BASH_IFACES.replace("@SUBCOMMANDS@", &IFACE_FIRST.join("|")),
        // clap describes IFACE as ':iface -- HELP:_default'; zsh's own
        // _net_interfaces completes the names of network interfaces.
        ShellKind::Zsh => {
            script
                .lines()
                .map(|line| {
                    let is_iface =
                        line.trim_start().starts_with("':iface -- ") || line.trim_start().starts_with("'::iface -- ");
                    if is_iface {
                        line.replacen(":_default'", ":_net_interfaces'", 1)
                    } else {
                        line.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
                + "\n"
        }
    }
}
