//! The commands that change a chain: add, replace, remove, reclaim. Each is
//! one authorized call (with ALLOW_INTERACTIVE_AUTH unless --no-ask-password).

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::path::Path;

use serde_json::json;
use zbus::{OwnedObjectPath, Variant};

use crate::bus::{program_id, program_path, Client};
use crate::cli::ProgramOptions;
use crate::error::{Doing, Exit, Failure, Result};
use crate::output::Output;

/// The `a{sv}` options of AddProgram; only what the user gave, so the
/// service's defaults (the object's metadata) apply to the rest.
fn options(opts: &ProgramOptions, replace: bool) -> HashMap<&'static str, Variant<'static>> {
    let mut map = HashMap::new();
    if let Some(priority) = opts.priority {
        map.insert("priority", Variant::from(priority));
    }
    if let Some(actions) = &opts.proceed_on {
        // "none" is the empty set: the program ends the chain.
        let actions: Vec<String> = actions.iter().filter(|a| a.as_str() != "none").cloned().collect();
        map.insert("proceed-on", Variant::from(actions));
    }
    if let Some(mode) = opts.mode {
        map.insert("mode", Variant::from(mode.name()));
    }
    if let Some(tag) = &opts.tag {
        map.insert("tag", Variant::from(tag.clone()));
    }
    if let Some(generation) = opts.expected_generation {
        map.insert("expected-generation", Variant::from(generation));
    }
    for (name, set) in
        [("replace", replace), ("persist", opts.persist), ("snapshot", opts.snapshot), ("force", opts.force)]
    {
        if set {
            map.insert(name, Variant::from(true));
        }
    }
    map
}

pub async fn add(
    client: &Client,
    out: &mut Output,
    iface: &str,
    object: &Path,
    opts: &ProgramOptions,
    replace: bool,
) -> Result<()> {
    let object_name = object.display().to_string();
    if opts.proceed_on.as_ref().is_some_and(|a| a.len() > 1 && a.iter().any(|a| a == "none")) {
        return Err(Failure::new(
            Exit::Usage,
            "--proceed-on none cannot be combined with actions; give one or the other",
        ));
    }
    // Opened here, with the user's own rights; the service reads the descriptor.
    // "-" is standard input, copied into a memfd (for callers that cannot pass a
    // descriptor, e.g. Cockpit's bridge): the service still checks everything.
    let file = if object.as_os_str() == "-" {
        stdin_memfd()?
    } else {
        std::fs::File::open(object).map_err(|e| {
            Failure::new(Exit::Invalid, format!("cannot open {object_name}: {e}; give a readable XDP ELF object file"))
        })?
    };
    let link_path = client.link_path(iface).await?;
    let link = client.link(&link_path).await?;
    let program = opts.program.clone().unwrap_or_default();
    let body = (zbus::Fd::from(file.as_fd()), program.as_str(), options(opts, replace));
    let doing = Doing::Add { iface, object: &object_name };
    let path: OwnedObjectPath = client.call(link.inner(), "AddProgram", &body, &doing).await?;
    // The function name the service chose when --program was not given; decoration only.
    let name = match client.program(&path).await {
        Ok(proxy) => proxy.name().await.unwrap_or(program),
        Err(_) => program,
    };
    let id = program_id(path.as_str()).unwrap_or_default();
    if out.json {
        out.json_line(&json!({ "interface": iface, "id": id, "path": path.as_str(), "name": name }))
    } else {
        let verb = if replace { "added or replaced" } else { "added" };
        out.line(&format!("{verb} {name} on {iface}: program {id} ({})", path.as_str()))
    }
}

/// The service's default object size cap (xdpd --max-object-size): reading
/// stops one byte past it, so an endless stdin cannot fill memory.
const STDIN_MAX_OBJECT_SIZE: u64 = 16 << 20;

/// Standard input, read into a memfd (the service reads it from offset 0).
fn stdin_memfd() -> Result<std::fs::File> {
    use std::io::{Read, Write};
    use std::os::fd::FromRawFd;
    let failed =
        |e: std::io::Error| Failure::new(Exit::Failure, format!("cannot copy standard input into a memfd: {e}"));
    // SAFETY: memfd_create with a NUL-terminated name; the descriptor is owned by the File.
    let fd = unsafe { libc::memfd_create(c"xdpctl-stdin".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(failed(std::io::Error::last_os_error()));
    }
    // SAFETY: fd is a fresh descriptor nothing else owns.
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    let mut bytes = Vec::new();
    std::io::stdin().lock().take(STDIN_MAX_OBJECT_SIZE + 1).read_to_end(&mut bytes).map_err(failed)?;
    if bytes.len() as u64 > STDIN_MAX_OBJECT_SIZE {
        return Err(Failure::new(
            Exit::Invalid,
            format!("the object on standard input is larger than {STDIN_MAX_OBJECT_SIZE} bytes; use a smaller object"),
        ));
    }
    if bytes.is_empty() {
        return Err(Failure::new(
            Exit::Invalid,
            "standard input is empty; pipe an XDP ELF object into xdpctl add IFACE -",
        ));
    }
    file.write_all(&bytes).map_err(failed)?;
    Ok(file)
}

pub async fn remove(client: &Client, out: &mut Output, iface: &str, program: &str) -> Result<()> {
    let link_path = client.link_path(iface).await?;
    let path = program_path(&link_path, iface, program)?;
    let proxy = client.program(&path).await?;
    let doing = Doing::Remove { iface, program };
    client.call::<_, ()>(proxy.inner(), "Remove", &(), &doing).await?;
    let id = program_id(path.as_str()).unwrap_or_default();
    if out.json {
        out.json_line(&json!({ "interface": iface, "removed": path.as_str(), "id": id }))
    } else {
        out.line(&format!("removed program {id} from {iface}"))
    }
}

pub async fn reclaim(client: &Client, out: &mut Output, iface: &str) -> Result<()> {
    let link_path = client.link_path(iface).await?;
    let link = client.link(&link_path).await?;
    client.call::<_, ()>(link.inner(), "Reclaim", &(), &Doing::Reclaim { iface }).await?;
    let kernel_id = link.kernel_program_id().await.unwrap_or(0);
    if out.json {
        out.json_line(&json!({ "interface": iface, "kernel_program_id": kernel_id }))
    } else {
        out.line(&format!("reclaimed {iface}: chain program {kernel_id} attached again"))
    }
}

pub async fn counting(client: &Client, out: &mut Output, iface: &str, on: bool) -> Result<()> {
    let link_path = client.link_path(iface).await?;
    let link = client.link(&link_path).await?;
    client.call::<_, ()>(link.inner(), "SetCounting", &(on,), &Doing::Counting { iface }).await?;
    if out.json {
        out.json_line(&json!({ "interface": iface, "counting": on }))
    } else {
        let what = if on { "on: xdpctl status shows every program's verdicts" } else { "off (the counts are kept)" };
        out.line(&format!("verdict counting on {iface} is {what}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Mode;

    #[test]
    fn only_given_options_are_sent() {
        let mut opts = ProgramOptions {
            program: None,
            priority: None,
            proceed_on: None,
            mode: None,
            tag: None,
            persist: false,
            snapshot: false,
            force: false,
            expected_generation: None,
        };
        assert!(options(&opts, false).is_empty());
        opts.priority = Some(-5);
        opts.proceed_on = Some(vec!["none".into()]);
        opts.mode = Some(Mode::Generic);
        opts.tag = Some("t".into());
        opts.force = true;
        let map = options(&opts, true);
        assert_eq!(map["priority"], Variant::from(-5i32));
        assert_eq!(map["proceed-on"], Variant::from(Vec::<String>::new()));
        assert_eq!(map["mode"], Variant::from("generic"));
        assert_eq!(map["replace"], Variant::from(true));
        assert_eq!(map["force"], Variant::from(true));
        assert!(!map.contains_key("persist"));
    }
}
