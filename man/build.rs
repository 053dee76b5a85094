//! Generates, into OUT_DIR, without running any built binary:
//! - `man/xdpctl.8` and one `man/xdpctl-COMMAND.8` per command, from xdpctl's clap definition;
//! - `man/xdpd.8`, from the service's clap definition (`service/src/config.rs`);
//! - `man/org.xdp.Manager1.5`, from the contract (`dbus-interfaces/*.xml`);
//! - `completions/xdpctl.bash` and `completions/_xdpctl`, as `xdpctl completions` prints them.

use std::fs;
use std::path::{Path, PathBuf};

use clap::CommandFactory;

#[allow(dead_code)]
#[path = "../xdpctl/src/cli.rs"]
mod cli;

#[allow(dead_code)]
#[path = "../xdpctl/src/docs.rs"]
mod docs;

/// What `service/src/config.rs` refers to as `crate::engine::object`.
mod engine {
    pub mod object {
        /// Checked against service/src/engine/object.rs below.
        pub const DEFAULT_MAX_OBJECT_SIZE: usize = 16 << 20;
    }
}

#[allow(dead_code)]
#[path = "../service/src/config.rs"]
mod config;

/// What xdpd(8) says beyond its options.
const XDPD_EXTRA: &str = "\
FILES:
  /usr/libexec/xdpd                                   the service (started by D-Bus activation)
  /usr/lib/systemd/system/xdpd.service                its unit
  /usr/share/dbus-1/system-services/org.xdp.Manager1.service   its D-Bus activation file
  /usr/share/dbus-1/system.d/org.xdp.Manager1.conf    its bus policy
  /usr/share/dbus-1/interfaces/org.xdp.Manager1*.xml  the D-Bus contract
  /usr/share/polkit-1/actions/org.xdp.manager1.policy its polkit actions
  /var/lib/xdpd                                       its record of programs
  /sys/fs/bpf/xdpd                                    pinned links and maps of the chains

NOTES:
xdpd is not started by hand: the first call to org.xdp.Manager1 starts it, and it exits when idle \
(--idle-timeout) while the chains stay attached. Use xdpctl(8) to see and change the chains, and \
journalctl -u xdpd for its log.";

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("..");
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    for input in [
        "xdpctl/src/cli.rs",
        "xdpctl/src/docs.rs",
        "service/src/config.rs",
        "service/src/engine/object.rs",
        "dbus-interfaces",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(input).display());
    }
    let object_rs = fs::read_to_string(root.join("service/src/engine/object.rs"))?;
    if !object_rs.contains("pub const DEFAULT_MAX_OBJECT_SIZE: usize = 16 << 20;") {
        return Err("service/src/engine/object.rs changed DEFAULT_MAX_OBJECT_SIZE: update man/build.rs".into());
    }

    let man = out.join("man");
    let completions = out.join("completions");
    // Afresh: a page of a command that is gone must not stay behind.
    let _ = fs::remove_dir_all(&man);
    fs::create_dir_all(&man)?;
    fs::create_dir_all(&completions)?;

    // xdpctl(8) and a page per command (as git and systemd do).
    let mut xdpctl = cli::Cli::command().disable_help_subcommand(true);
    xdpctl.build();
    let commands: Vec<String> = xdpctl
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| format!("xdpctl\\-{}(8)", s.get_name()))
        .collect();
    let see_also = format!("xdpd(8), org.xdp.Manager1(5), {}", commands.join(", "));
    write_page(&man.join("xdpctl.8"), xdpctl.clone(), "8", &see_also)?;
    for sub in xdpctl.get_subcommands().filter(|s| !s.is_hide_set()) {
        // clap names are &'static str; the build script lives that long anyway.
        let name: &'static str = Box::leak(format!("xdpctl-{}", sub.get_name()).into_boxed_str());
        let page = sub.clone().name(name).bin_name(format!("xdpctl {}", sub.get_name()));
        write_page(&man.join(format!("{name}.8")), page, "8", "xdpctl(8), xdpd(8), org.xdp.Manager1(5)")?;
    }
    // Config's about comes from the package description, which here is this crate's.
    let service_toml = fs::read_to_string(root.join("service/Cargo.toml"))?;
    let about = service_toml
        .lines()
        .find_map(|l| l.strip_prefix("description = \"").and_then(|d| d.strip_suffix('"')))
        .ok_or("no description in service/Cargo.toml")?;
    let about: &'static str = Box::leak(about.to_string().into_boxed_str());
    let xdpd = config::Config::command().about(about).after_long_help(XDPD_EXTRA);
    write_page(&man.join("xdpd.8"), xdpd, "8", "xdpctl(8), org.xdp.Manager1(5), systemd.exec(5), polkit(8)")?;
    fs::write(man.join("org.xdp.Manager1.5"), interface_page(&root.join("dbus-interfaces"))?)?;

    fs::write(completions.join("xdpctl.bash"), docs::completion(&mut cli::Cli::command(), cli::ShellKind::Bash))?;
    fs::write(completions.join("_xdpctl"), docs::completion(&mut cli::Cli::command(), cli::ShellKind::Zsh))?;
    Ok(())
}

/// A page: clap_mangen's sections, then the text clap shows after the long
/// help (EXIT STATUS, EXAMPLES, ...) as sections of their own, and SEE ALSO.
fn write_page(path: &Path, command: clap::Command, section: &'static str, see_also: &str) -> Result<()> {
    let extra = command.get_after_long_help().map(|t| t.to_string());
    let has_subcommands = command.get_subcommands().next().is_some();
    let man = clap_mangen::Man::new(command).section(section).manual("xdpd").source("xdpd");
    let mut buf = Vec::new();
    man.render_title(&mut buf)?;
    man.render_name_section(&mut buf)?;
    man.render_synopsis_section(&mut buf)?;
    man.render_description_section(&mut buf)?;
    man.render_options_section(&mut buf)?;
    if has_subcommands {
        man.render_subcommands_section(&mut buf)?;
    }
    let mut page = String::from_utf8(buf)?;
    if let Some(extra) = extra {
        page.push_str(&sections(&extra));
    }
    page.push_str(&format!(".SH \"SEE ALSO\"\n{see_also}\n"));
    fs::write(path, page)?;
    Ok(())
}

/// clap's after-help text in roff: "HEADING:" lines become sections, indented
/// lines keep their layout, other lines are filled paragraphs.
fn sections(text: &str) -> String {
    let mut out = String::new();
    let mut verbatim = false;
    for line in text.lines() {
        let indented = line.starts_with(' ');
        if indented != verbatim {
            out.push_str(if indented { ".nf\n" } else { ".fi\n" });
            verbatim = indented;
        }
        if !indented
            && line.ends_with(':')
            && line.chars().any(|c| c.is_ascii_uppercase())
            && line == line.to_uppercase()
        {
            out.push_str(&format!(".SH {}\n", roff(line.trim_end_matches(':'))));
        } else if line.is_empty() {
            out.push_str(if verbatim { "\n" } else { ".PP\n" });
        } else {
            out.push_str(&roff(line));
            out.push('\n');
        }
    }
    if verbatim {
        out.push_str(".fi\n");
    }
    out
}

/// roff text: backslashes and leading dots or quotes made harmless.
fn roff(text: &str) -> String {
    let text = text.replace('\\', "\\e").replace('-', "\\-");
    text.lines()
        .map(|l| if l.starts_with('.') || l.starts_with('\'') { format!("\\&{l}") } else { l.to_string() })
        .collect::<Vec<_>>()
        .join("\n")
}

fn attr(e: &quick_xml::events::BytesStart<'_>, name: &str) -> String {
    e.attributes()
        .filter_map(|a| a.ok())
        .find(|a| a.key.as_ref() == name.as_bytes())
        .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
        .unwrap_or_default()
}

/// org.xdp.Manager1(5): every interface of the contract with its methods,
/// properties and signals and their documentation, and the errors.
fn interface_page(dir: &Path) -> Result<String> {
    use quick_xml::events::Event;
    let mut files: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        .collect();
    // org.xdp.Manager1.xml (the entry point) first, then Link, then Program.
    files.sort_by_key(|p| (p.as_os_str().len(), p.clone()));
    let mut page = String::from(
        ".TH org.xdp.Manager1 5 \"\" xdpd \"xdpd\"\n\
         .SH NAME\norg.xdp.Manager1 \\- the D\\-Bus interfaces of xdpd\n\
         .SH DESCRIPTION\nxdpd(8) owns the name \\fBorg.xdp.Manager1\\fR on the system bus. \
         \\fB/org/xdp/Manager1\\fR implements \\fBorg.xdp.Manager1\\fR and \
         \\fBorg.freedesktop.DBus.ObjectManager\\fR; each network interface is an object \
         \\fB/org/xdp/Manager1/link/\\fIIFINDEX\\fR implementing \\fBorg.xdp.Manager1.Link\\fR, and each \
         program in its chain an object \\fB.../program/\\fIID\\fR implementing \\fBorg.xdp.Manager1.Program\\fR. \
         The introspection XML is installed in /usr/share/dbus\\-1/interfaces/.\n",
    );
    let mut errors = String::new();
    for file in files {
        let xml = fs::read_to_string(&file)?;
        let mut reader = quick_xml::Reader::from_str(&xml);
        // (kind, name, signature pieces, doc) of the member being read.
        let mut member: Option<(String, String, Vec<String>, String)> = None;
        let mut in_arg = false;
        loop {
            let event = reader.read_event()?;
            let empty = matches!(event, Event::Empty(_));
            match event {
                Event::Comment(c) => {
                    let text = String::from_utf8_lossy(&c).into_owned();
                    if let Some(at) = text.find("Errors of every interface") {
                        errors.push_str(&text[at..]);
                    }
                }
                Event::Start(e) | Event::Empty(e) => {
                    let name = attr(&e, "name");
                    match e.name().as_ref() {
                        b"interface" => page.push_str(&format!(".SH INTERFACE {}\n", roff(&name))),
                        tag @ (b"method" | b"signal" | b"property") => {
                            let kind = String::from_utf8_lossy(tag).into_owned();
                            let mut sig = Vec::new();
                            if kind == "property" {
                                sig.push(format!("{} ({})", attr(&e, "type"), attr(&e, "access")));
                            }
                            member = Some((kind, name, sig, String::new()));
                        }
                        b"arg" => {
                            in_arg = true;
                            if let Some((kind, _, sig, _)) = member.as_mut() {
                                let dir = attr(&e, "direction");
                                let dir = if kind == "method" && dir.is_empty() { "in".into() } else { dir };
                                let dir = if dir.is_empty() { String::new() } else { format!("{dir} ") };
                                sig.push(format!("{dir}{} {}", attr(&e, "type"), name));
                            }
                        }
                        b"annotation" if name == "org.gtk.GDBus.DocString" && !in_arg => {
                            let doc = attr(&e, "value");
                            match member.as_mut() {
                                Some((_, _, _, d)) => *d = doc,
                                None => page.push_str(&format!("{}\n", roff(&doc))),
                            }
                        }
                        _ => {}
                    }
                    // An empty <arg/> has no end tag.
                    if empty && e.name().as_ref() == b"arg" {
                        in_arg = false;
                    }
                }
                Event::End(e) => match e.name().as_ref() {
                    b"arg" => in_arg = false,
                    b"method" | b"signal" | b"property" => {
                        if let Some((kind, name, sig, doc)) = member.take() {
                            let sig = if kind == "property" { sig.join("") } else { format!("({})", sig.join(", ")) };
                            page.push_str(&format!(
                                ".TP\n\\fB{}\\fR {} \\fI{}\\fR\n{}\n",
                                roff(&name),
                                kind,
                                roff(&sig),
                                roff(&doc)
                            ));
                        }
                    }
                    _ => {}
                },
                Event::Eof => break,
                _ => {}
            }
        }
    }
    if !errors.is_empty() {
        page.push_str(".SH ERRORS\n.nf\n");
        page.push_str(&roff(errors.trim_end()));
        page.push_str("\n.fi\n");
    }
    page.push_str(
        ".SH EXAMPLES\n.nf\nbusctl tree org.xdp.Manager1\n\
         busctl call org.xdp.Manager1 /org/xdp/Manager1 org.xdp.Manager1 GetLinkByName s eth0\n.fi\n\
         .SH SEE ALSO\nxdpd(8), xdpctl(8), busctl(1), gdbus(1)\n",
    );
    Ok(page)
}
