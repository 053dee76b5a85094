//! The typed proxies of xdpd-client (`client/src/lib.rs`) against the contract
//! (`dbus-interfaces/*.xml`). A proxy cannot be introspected, so its source is
//! read as text: every `#[proxy(interface = "...")] pub trait` block, and in
//! it every method, `#[zbus(property)]` and `#[zbus(signal)]` item. Each must
//! name a member of that interface in the XML (snake_case to PascalCase, or
//! the item's `name = "..."`), with the same D-Bus signature (arguments in,
//! results out, property type, signal arguments), and every member of the
//! XML must have its item. The check needs neither root nor a bus.

use std::collections::BTreeMap;
use std::path::PathBuf;

use quick_xml::events::Event;
use quick_xml::Reader;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Method,
    Property,
    Signal,
}

/// A member: its kind and D-Bus name.
type Key = (Kind, String);

/// A member's signatures: (arguments in, results out) of a method; (type, "")
/// of a property; (arguments, "") of a signal.
type Sigs = (String, String);

type Members = BTreeMap<Key, Sigs>;

fn repo_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

// --- the XML side ---------------------------------------------------------------

fn attr(e: &quick_xml::events::BytesStart<'_>, name: &str) -> Option<String> {
    e.attributes()
        .filter_map(Result::ok)
        .find(|a| a.key.as_ref() == name.as_bytes())
        .map(|a| String::from_utf8_lossy(&a.value).into_owned())
}

/// Every interface of one introspection document with its members.
fn xml_interfaces(xml: &str) -> BTreeMap<String, Members> {
    let mut reader = Reader::from_str(xml);
    let mut out: BTreeMap<String, Members> = BTreeMap::new();
    let mut interface = String::new();
    let mut member: Option<Key> = None;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => {
                let name = attr(&e, "name").unwrap_or_default();
                match e.name().as_ref() {
                    b"interface" => {
                        interface = name;
                        out.entry(interface.clone()).or_default();
                    }
                    tag @ (b"method" | b"signal" | b"property") => {
                        let kind = match tag {
                            b"method" => Kind::Method,
                            b"signal" => Kind::Signal,
                            _ => Kind::Property,
                        };
                        let ty =
                            if kind == Kind::Property { attr(&e, "type").unwrap_or_default() } else { String::new() };
                        out.entry(interface.clone()).or_default().insert((kind, name.clone()), (ty, String::new()));
                        member = Some((kind, name));
                    }
                    b"arg" => {
                        let Some(key) = member.clone() else { continue };
                        let ty = attr(&e, "type").unwrap_or_default();
                        // Method arguments are "in" unless said otherwise; signal arguments are all out.
                        let out_arg = key.0 == Kind::Method && attr(&e, "direction").as_deref() == Some("out");
                        let sigs = out.entry(interface.clone()).or_default().get_mut(&key).expect("member recorded");
                        if out_arg {
                            sigs.1.push_str(&ty);
                        } else {
                            sigs.0.push_str(&ty);
                        }
                    }
                    _ => {}
                }
            }
            Ok(Event::End(e)) if matches!(e.name().as_ref(), b"method" | b"signal" | b"property") => member = None,
            Ok(Event::Eof) => break,
            Err(e) => panic!("bad XML: {e}"),
            _ => {}
        }
    }
    out
}

/// The interfaces of every `dbus-interfaces/*.xml`.
fn contract() -> BTreeMap<String, Members> {
    let mut all = BTreeMap::new();
    let dir = repo_file("dbus-interfaces");
    for entry in std::fs::read_dir(&dir).expect("read dbus-interfaces/") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "xml") {
            let xml = std::fs::read_to_string(&path).expect("read XML");
            all.extend(xml_interfaces(&xml));
        }
    }
    all
}

// --- the Rust side --------------------------------------------------------------

/// `text` without `//` comments (outside string literals).
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut in_string = false;
        let mut prev = '\0';
        let mut end = line.len();
        for (i, c) in line.char_indices() {
            match c {
                '"' if prev != '\\' => in_string = !in_string,
                '/' if !in_string && prev == '/' => {
                    end = i - 1;
                    break;
                }
                _ => {}
            }
            prev = c;
        }
        out.push_str(&line[..end]);
        out.push('\n');
    }
    out
}

/// The index just after the bracket closing the one at `open` (any of `([{<`).
fn matching(text: &str, open: usize) -> usize {
    let bytes = text.as_bytes();
    let (o, c) = match bytes[open] {
        b'(' => (b'(', b')'),
        b'[' => (b'[', b']'),
        b'{' => (b'{', b'}'),
        b'<' => (b'<', b'>'),
        other => panic!("no bracket at {open}: {}", other as char),
    };
    let mut depth = 0;
    for (i, &b) in bytes.iter().enumerate().skip(open) {
        if b == o {
            depth += 1;
        } else if b == c && !(c == b'>' && i > 0 && bytes[i - 1] == b'-') {
            depth -= 1;
            if depth == 0 {
                return i + 1;
            }
        }
    }
    panic!("unbalanced {} at {open}", o as char)
}

/// Splits at commas outside any brackets.
fn split_top(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' | '[' | '{' | '<' => depth += 1,
            ')' | ']' | '}' | '>' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(text[start..i].trim().to_string());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(text[start..].trim().to_string());
    parts.retain(|p| !p.is_empty());
    parts
}

/// The D-Bus signature of a Rust type as zbus encodes it.
fn signature(ty: &str) -> Result<String, String> {
    let mut ty = ty.trim();
    if let Some(rest) = ty.strip_prefix('&') {
        ty = rest.trim_start();
        if ty.starts_with('\'') {
            ty = ty.split_once(' ').map_or("", |(_, t)| t).trim();
        }
    }
    if ty == "()" {
        return Ok(String::new());
    }
    // A slice `[T]` (behind the `&` stripped above) is an array, like `Vec<T>`.
    if let Some(item) = ty.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        return Ok(format!("a{}", signature(item)?));
    }
    if ty.starts_with('(') {
        let inner = &ty[1..ty.len() - 1];
        let parts: Result<Vec<String>, String> = split_top(inner).iter().map(|t| signature(t)).collect();
        return Ok(format!("({})", parts?.concat()));
    }
    let (base, args) = match ty.find('<') {
        Some(open) => {
            let close = matching(ty, open);
            let args: Vec<String> = split_top(&ty[open + 1..close - 1]);
            (&ty[..open], args.into_iter().filter(|a| !a.starts_with('\'')).collect::<Vec<_>>())
        }
        None => (ty, Vec::new()),
    };
    let name = base.rsplit("::").next().unwrap_or(base).trim();
    Ok(match (name, args.as_slice()) {
        ("str" | "String" | "OwnedStr", []) => "s".into(),
        ("ObjectPath" | "OwnedObjectPath", []) => "o".into(),
        ("Signature" | "OwnedSignature", []) => "g".into(),
        ("bool", []) => "b".into(),
        ("u8", []) => "y".into(),
        ("i16", []) => "n".into(),
        ("u16", []) => "q".into(),
        ("i32", []) => "i".into(),
        ("u32", []) => "u".into(),
        ("i64", []) => "x".into(),
        ("u64", []) => "t".into(),
        ("f64", []) => "d".into(),
        ("Fd" | "OwnedFd", []) => "h".into(),
        ("Value" | "Variant" | "OwnedValue", []) => "v".into(),
        // The client's report structs travel as dictionaries (zbus signature = "dict").
        ("ChainReport", []) => "a{sv}".into(),
        ("Vec", [item]) => format!("a{}", signature(item)?),
        ("HashMap" | "BTreeMap", [key, value]) => format!("a{{{}{}}}", signature(key)?, signature(value)?),
        _ => return Err(format!("no D-Bus signature known for the Rust type '{ty}': teach signature() in this test")),
    })
}

/// The results of a method returning `ty`: a tuple is several out arguments.
fn out_signature(ty: &str) -> Result<String, String> {
    let ty = ty.trim();
    if ty.starts_with('(') && ty != "()" {
        let parts: Result<Vec<String>, String> = split_top(&ty[1..ty.len() - 1]).iter().map(|t| signature(t)).collect();
        return Ok(parts?.concat());
    }
    signature(ty)
}

/// `get_link_by_name` → `GetLinkByName`.
fn pascal(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next().map_or(String::new(), |f| f.to_uppercase().chain(c).collect())
        })
        .collect()
}

/// `name = "X"` in an attribute, if any.
fn explicit_name(attr: &str) -> Option<String> {
    let at = attr.find("name")?;
    let rest = attr[at + 4..].trim_start().strip_prefix('=')?.trim_start().strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_string())
}

/// One proxy item: `fn name(&self, args) -> zbus::Result<R>;` with its attributes.
fn proxy_item(attrs: &[String], item: &str) -> Result<(Key, Sigs), String> {
    let zbus: Vec<&String> = attrs.iter().filter(|a| a.starts_with("zbus(")).collect();
    let has = |word: &str| zbus.iter().any(|a| a.split(|c: char| !c.is_alphanumeric() && c != '_').any(|w| w == word));
    let kind = if has("property") {
        Kind::Property
    } else if has("signal") {
        Kind::Signal
    } else {
        Kind::Method
    };
    let rest = item.trim().strip_prefix("fn ").ok_or_else(|| format!("not a fn: {item}"))?;
    let open = rest.find('(').ok_or_else(|| format!("no arguments: {item}"))?;
    let fn_name = rest[..open].trim();
    let close = matching(rest, open);
    let params: Vec<String> = split_top(&rest[open + 1..close - 1])
        .into_iter()
        .filter(|p| !p.ends_with("self"))
        .map(|p| p.split_once(':').map(|(_, t)| t.trim().to_string()).unwrap_or(p))
        .collect();
    let ret = rest[close..].trim().strip_prefix("->").map(str::trim).unwrap_or("()");
    // zbus::Result<R>, zbus::fdo::Result<R>, Result<R>: R.
    let ret = match ret.find('<') {
        Some(open) if ret[..open].ends_with("Result") => &ret[open + 1..matching(ret, open) - 1],
        _ => ret,
    };
    let ins: Result<Vec<String>, String> = params.iter().map(|p| signature(p)).collect();
    let ins = ins.map_err(|e| format!("{fn_name}: {e}"))?.concat();
    let name = zbus.iter().find_map(|a| explicit_name(a)).unwrap_or_else(|| pascal(fn_name));
    let sigs = match kind {
        Kind::Method => (ins, out_signature(ret).map_err(|e| format!("{fn_name}: {e}"))?),
        Kind::Property => (signature(ret).map_err(|e| format!("{fn_name}: {e}"))?, String::new()),
        Kind::Signal => (ins, String::new()),
    };
    Ok(((kind, name), sigs))
}

/// Every `#[proxy(interface = "...")]` trait of `source` with its items.
fn proxies(source: &str) -> Result<BTreeMap<String, Members>, String> {
    let text = strip_comments(source);
    let mut out = BTreeMap::new();
    let mut from = 0;
    while let Some(at) = text[from..].find("#[proxy(") {
        let attr_start = from + at + 1;
        let attr_end = matching(&text, attr_start);
        let attr = &text[attr_start..attr_end];
        let interface = attr
            .split("interface")
            .nth(1)
            .and_then(|r| r.split('"').nth(1))
            .ok_or_else(|| format!("a #[proxy] without interface: {attr}"))?
            .to_string();
        let trait_at = attr_end + text[attr_end..].find("trait ").ok_or("a #[proxy] without a trait")?;
        let open = trait_at + text[trait_at..].find('{').ok_or("a trait without a body")?;
        let close = matching(&text, open);
        let body = &text[open + 1..close - 1];
        let mut members = Members::new();
        let mut attrs: Vec<String> = Vec::new();
        let mut i = 0;
        while i < body.len() {
            let rest = &body[i..];
            if rest.starts_with("#[") {
                let end = matching(body, i + 1);
                attrs.push(body[i + 2..end - 1].trim().to_string());
                i = end;
            } else if rest.starts_with("fn ") {
                let end = i + rest.find(';').ok_or("a proxy fn without ';'")?;
                let (key, sigs) = proxy_item(&attrs, &body[i..end])?;
                if members.insert(key.clone(), sigs).is_some() {
                    return Err(format!("{interface}: {key:?} twice"));
                }
                attrs.clear();
                i = end + 1;
            } else {
                i += rest.chars().next().map_or(1, char::len_utf8);
            }
        }
        if out.insert(interface.clone(), members).is_some() {
            return Err(format!("two proxies of {interface}"));
        }
        from = close;
    }
    Ok(out)
}

/// Every difference between the proxies and the contract, one line each.
fn differences(proxies: &BTreeMap<String, Members>, contract: &BTreeMap<String, Members>) -> Vec<String> {
    let mut diffs = Vec::new();
    for (interface, members) in contract.iter().filter(|(name, _)| name.starts_with("org.xdp.")) {
        let Some(proxy) = proxies.get(interface) else {
            diffs.push(format!("{interface}: no #[proxy(interface = \"{interface}\")] trait"));
            continue;
        };
        for ((kind, name), sigs) in members {
            match proxy.get(&(*kind, name.clone())) {
                None => diffs.push(format!("{interface}: {kind:?} {name} has no proxy item")),
                Some(got) if got != sigs => diffs.push(format!(
                    "{interface}: {kind:?} {name}: the contract says {sigs:?}, the proxy {got:?} (in, out)"
                )),
                Some(_) => {}
            }
        }
        for (kind, name) in proxy.keys() {
            if !members.contains_key(&(*kind, name.clone())) {
                diffs.push(format!("{interface}: the proxy's {kind:?} {name} is not in the contract"));
            }
        }
    }
    for interface in proxies.keys() {
        if !contract.contains_key(interface) {
            diffs.push(format!("a proxy of {interface}, which no XML file describes"));
        }
    }
    diffs
}

fn client_source() -> String {
    std::fs::read_to_string(repo_file("client/src/lib.rs")).expect("read client/src/lib.rs")
}

#[test]
fn proxies_match_the_contract() {
    let contract = contract();
    let proxies = proxies(&client_source()).unwrap_or_else(|e| panic!("cannot read the proxies: {e}"));
    let xdp: Vec<&String> = contract.keys().filter(|k| k.starts_with("org.xdp.")).collect();
    assert!(xdp.len() >= 3, "the contract has interfaces {xdp:?}");
    assert!(proxies.values().all(|m| !m.is_empty()), "a proxy without items: {proxies:?}");
    let diffs = differences(&proxies, &contract);
    assert!(diffs.is_empty(), "client/src/lib.rs and dbus-interfaces/ disagree:\n  {}", diffs.join("\n  "));
}

/// The check notices drift: a member dropped, renamed, retyped or invented in
/// the proxies is reported.
#[test]
fn drift_is_noticed() {
    let contract = contract();
    let source = client_source();
    let changed = |from: &str, to: &str| {
        assert!(source.contains(from), "client/src/lib.rs no longer has '{from}': update this test");
        let proxies = proxies(&source.replacen(from, to, 1)).expect("parse changed proxies");
        differences(&proxies, &contract).join("\n")
    };
    let diffs = changed("fn reclaim(&self) -> zbus::Result<()>;", "");
    assert!(diffs.contains("Method Reclaim has no proxy item"), "{diffs}");
    let diffs = changed("fn index(&self) -> zbus::Result<i32>;", "fn index(&self) -> zbus::Result<u32>;");
    assert!(diffs.contains("Property Index") && diffs.contains("\"u\""), "{diffs}");
    let diffs = changed("fn get_link_by_index(&self, index: i32)", "fn get_link_by_index(&self, index: u32)");
    assert!(diffs.contains("Method GetLinkByIndex"), "{diffs}");
    let diffs = changed("fn chain_changed(&self, generation: u64,", "fn chain_changed(&self, generation: u32,");
    assert!(diffs.contains("Signal ChainChanged"), "{diffs}");
    let diffs = changed("fn remove(&self) -> zbus::Result<()>;", "fn remove_all(&self) -> zbus::Result<()>;");
    assert!(
        diffs.contains("Method Remove has no proxy item") && diffs.contains("Method RemoveAll is not in"),
        "{diffs}"
    );
    let diffs = changed("fn remove(&self)", "#[zbus(name = \"Remove\")]\n    fn drop_it(&self)");
    assert!(diffs.is_empty(), "an explicit name counts: {diffs}");
}

#[test]
fn rust_types_become_dbus_signatures() {
    for (ty, sig) in [
        ("&str", "s"),
        ("zbus::Fd<'_>", "h"),
        ("HashMap<&str, Variant<'_>>", "a{sv}"),
        ("HashMap<String, zbus::OwnedFd>", "a{sh}"),
        ("Vec<OwnedObjectPath>", "ao"),
        ("(u32, Vec<String>)", "(uas)"),
        ("()", ""),
    ] {
        assert_eq!(signature(ty).as_deref(), Ok(sig), "{ty}");
    }
    assert_eq!(out_signature("(u32, String)").as_deref(), Ok("us"));
    assert!(signature("MyStruct").is_err());
    assert_eq!(pascal("kernel_program_id"), "KernelProgramId");
    assert_eq!(pascal("sha256"), "Sha256");
}

/// Each property's EmitsChangedSignal annotation in the contract ("true" when absent).
fn emits_changed(xml: &str) -> BTreeMap<(String, String), String> {
    let mut reader = Reader::from_str(xml);
    let mut out = BTreeMap::new();
    let (mut interface, mut property) = (String::new(), None::<String>);
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => match e.name().as_ref() {
                b"interface" => interface = attr(&e, "name").unwrap_or_default(),
                b"property" => {
                    let name = attr(&e, "name").unwrap_or_default();
                    out.insert((interface.clone(), name.clone()), "true".to_string());
                    property = Some(name);
                }
                b"annotation"
                    if attr(&e, "name").as_deref() == Some("org.freedesktop.DBus.Property.EmitsChangedSignal") =>
                {
                    if let Some(p) = &property {
                        out.insert((interface.clone(), p.clone()), attr(&e, "value").unwrap_or_default());
                    }
                }
                _ => {}
            },
            Ok(Event::End(e)) if e.name().as_ref() == b"property" => property = None,
            Ok(Event::Eof) => break,
            Err(e) => panic!("bad XML: {e}"),
            _ => {}
        }
    }
    out
}

/// Each property item's emits_changed_signal in the proxies ("true" when not given).
fn proxy_emits_changed(source: &str) -> BTreeMap<(String, String), String> {
    let text = strip_comments(source);
    let mut out = BTreeMap::new();
    let mut from = 0;
    while let Some(at) = text[from..].find("#[zbus(property") {
        let start = from + at;
        let interface = text[..start]
            .rfind("#[proxy(")
            .and_then(|p| text[p..].split("interface").nth(1))
            .and_then(|r| r.split('"').nth(1))
            .unwrap_or_default()
            .to_string();
        let end = start + text[start..].find(")]").expect("attribute end");
        let attr = &text[start..end];
        let value = attr.split("emits_changed_signal").nth(1).and_then(|r| r.split('"').nth(1)).unwrap_or("true");
        let fn_at = end + text[end..].find("fn ").expect("a property fn");
        let name: String = text[fn_at + 3..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        out.insert((interface, pascal(&name)), value.to_string());
        from = fn_at;
    }
    out
}

/// A property the service never signals must not be cached by the proxies
/// (their default): the proxy says emits_changed_signal = "false" too.
#[test]
fn properties_that_are_never_signalled_are_not_cached() {
    let mut contract = BTreeMap::new();
    for entry in std::fs::read_dir(repo_file("dbus-interfaces")).expect("read dbus-interfaces/") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "xml") {
            contract.extend(emits_changed(&std::fs::read_to_string(&path).expect("read XML")));
        }
    }
    let proxies = proxy_emits_changed(&client_source());
    let uncached: Vec<_> = contract.iter().filter(|(_, v)| *v == "false" || *v == "invalidates").collect();
    assert!(!uncached.is_empty(), "the contract has properties that are not signalled (Stats)");
    for ((interface, name), value) in uncached {
        assert_eq!(
            proxies.get(&(interface.clone(), name.clone())).map(String::as_str),
            Some(value.as_str()),
            "{interface}.{name} is not signalled: its proxy item needs #[zbus(property(emits_changed_signal = \"{value}\"))]"
        );
    }
    // And the check sees a proxy that forgot it.
    let forgot = client_source().replace("#[zbus(property(emits_changed_signal = \"false\"))]", "#[zbus(property)]");
    assert_eq!(
        proxy_emits_changed(&forgot).get(&("org.xdp.Manager1.Program".into(), "Stats".into())).map(String::as_str),
        Some("true")
    );
}
