//! `org.freedesktop.DBus.Introspectable` on every node of the service, in
//! place of zbus's own: an object's XML names its children as empty `<node
//! name="…"/>` elements instead of inlining their whole subtree (zbus's XML
//! grew by ~7 KiB per program and made busctl warn), and every member of the
//! contract carries its `org.gtk.GDBus.DocString` annotation. The members
//! themselves come from the code (zbus's generated XML); only their
//! documentation comes from the contract files in `dbus-interfaces/`.

use std::collections::HashMap;
use std::sync::OnceLock;

use quick_xml::events::{BytesEnd, BytesStart, Event};
use quick_xml::{Reader, Writer};
use zbus::message::Header;
use zbus::object_server::Interface;
use zbus::{fdo, interface, ObjectServer};

use super::link::LinkIface;
use super::manager::Manager;
use super::objects::Objects;
use super::program::ProgramIface;
use super::MANAGER_PATH;

const DOC: &str = "org.gtk.GDBus.DocString";

/// The contract files, the source of every member's documentation.
const CONTRACTS: [&str; 3] = [
    include_str!("../../../dbus-interfaces/org.xdp.Manager1.xml"),
    include_str!("../../../dbus-interfaces/org.xdp.Manager1.Link.xml"),
    include_str!("../../../dbus-interfaces/org.xdp.Manager1.Program.xml"),
];

const HEADER: &str = r#"<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">
"#;

/// The standard interfaces every node has (zbus serves them).
const STANDARD: &str = r#"  <interface name="org.freedesktop.DBus.Peer">
    <method name="Ping"/>
    <method name="GetMachineId">
      <arg name="machine_uuid" type="s" direction="out"/>
    </method>
  </interface>
  <interface name="org.freedesktop.DBus.Introspectable">
    <method name="Introspect">
      <arg name="xml_data" type="s" direction="out"/>
    </method>
  </interface>
  <interface name="org.freedesktop.DBus.Properties">
    <method name="Get">
      <arg name="interface_name" type="s" direction="in"/>
      <arg name="property_name" type="s" direction="in"/>
      <arg name="value" type="v" direction="out"/>
    </method>
    <method name="GetAll">
      <arg name="interface_name" type="s" direction="in"/>
      <arg name="props" type="a{sv}" direction="out"/>
    </method>
    <method name="Set">
      <arg name="interface_name" type="s" direction="in"/>
      <arg name="property_name" type="s" direction="in"/>
      <arg name="value" type="v" direction="in"/>
    </method>
    <signal name="PropertiesChanged">
      <arg name="interface_name" type="s"/>
      <arg name="changed_properties" type="a{sv}"/>
      <arg name="invalidated_properties" type="as"/>
    </signal>
  </interface>
"#;

const OBJECT_MANAGER: &str = r#"  <interface name="org.freedesktop.DBus.ObjectManager">
    <method name="GetManagedObjects">
      <arg name="object_paths_interfaces_and_properties" type="a{oa{sa{sv}}}" direction="out"/>
    </method>
    <signal name="InterfacesAdded">
      <arg name="object_path" type="o"/>
      <arg name="interfaces_and_properties" type="a{sa{sv}}"/>
    </signal>
    <signal name="InterfacesRemoved">
      <arg name="object_path" type="o"/>
      <arg name="interfaces" type="as"/>
    </signal>
  </interface>
"#;

/// Where a documentation string belongs: interface, member ("method Name",
/// "property Name", "signal Name"; "" for the interface), argument ("arg name"; "" for none).
type DocKey = (String, String, String);

/// Every DocString annotation of the contract files.
fn contract_docs() -> &'static HashMap<DocKey, String> {
    static DOCS: OnceLock<HashMap<DocKey, String>> = OnceLock::new();
    DOCS.get_or_init(|| {
        let mut docs = HashMap::new();
        for xml in CONTRACTS {
            collect_docs(xml, &mut docs);
        }
        docs
    })
}

fn attr(e: &BytesStart<'_>, name: &str) -> String {
    e.attributes()
        .filter_map(Result::ok)
        .find(|a| a.key.as_ref() == name.as_bytes())
        .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
        .unwrap_or_default()
}

/// Tracks where in an introspection document the reader is.
#[derive(Default)]
struct Place {
    interface: String,
    member: String,
    arg: String,
}

impl Place {
    /// Enters element `e`; an element closed at once (`Empty`) is left by the caller.
    fn enter(&mut self, e: &BytesStart<'_>) {
        match e.name().as_ref() {
            b"interface" => (self.interface, self.member, self.arg) = (attr(e, "name"), String::new(), String::new()),
            tag @ (b"method" | b"signal" | b"property") => {
                self.member = format!("{} {}", String::from_utf8_lossy(tag), attr(e, "name"));
                self.arg.clear();
            }
            // Unnamed arguments (zbus's unnamed results) match no documentation.
            b"arg" => self.arg = format!("arg {}", attr(e, "name")),
            _ => {}
        }
    }

    fn leave(&mut self, tag: &[u8]) {
        match tag {
            b"interface" => (self.interface, self.member, self.arg) = Default::default(),
            b"method" | b"signal" | b"property" => (self.member, self.arg) = Default::default(),
            b"arg" => self.arg.clear(),
            _ => {}
        }
    }

    fn key(&self) -> DocKey {
        (self.interface.clone(), self.member.clone(), self.arg.clone())
    }
}

fn collect_docs(xml: &str, docs: &mut HashMap<DocKey, String>) {
    let mut reader = Reader::from_str(xml);
    let mut place = Place::default();
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => place.enter(&e),
            Ok(Event::Empty(e)) if e.name().as_ref() == b"annotation" => {
                if attr(&e, "name") == DOC {
                    docs.insert(place.key(), attr(&e, "value"));
                }
            }
            Ok(Event::End(e)) => place.leave(e.name().as_ref()),
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

fn doc_annotation(doc: &str) -> Event<'_> {
    Event::Empty(BytesStart::new("annotation").with_attributes([("name", DOC), ("value", doc)]))
}

/// zbus's XML of one interface (`generated`), without its comments, with the
/// contract's DocString after each element that has one.
pub fn documented(generated: &str, docs: &HashMap<DocKey, String>) -> String {
    let mut reader = Reader::from_str(generated);
    reader.config_mut().trim_text(true);
    let mut writer = Writer::new_with_indent(Vec::new(), b' ', 2);
    let mut place = Place::default();
    loop {
        let event = match reader.read_event() {
            Ok(Event::Eof) | Err(_) => break,
            Ok(Event::Comment(_)) | Ok(Event::Text(_)) => continue,
            Ok(event) => event,
        };
        let (start, empty) = match &event {
            Event::Start(e) => (Some(e.clone()), false),
            Event::Empty(e) => (Some(e.clone()), true),
            _ => (None, false),
        };
        let Some(start) = start else {
            if let Event::End(e) = &event {
                place.leave(e.name().as_ref());
            }
            let _ = writer.write_event(event);
            continue;
        };
        place.enter(&start);
        let doc = docs.get(&place.key()).filter(|_| start.name().as_ref() != b"annotation");
        match doc {
            Some(doc) => {
                let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
                let _ = writer.write_event(Event::Start(start));
                let _ = writer.write_event(doc_annotation(doc));
                if empty {
                    let _ = writer.write_event(Event::End(BytesEnd::new(name.clone())));
                    place.leave(name.as_bytes());
                }
            }
            None => {
                if empty {
                    place.leave(start.name().as_ref());
                }
                let _ = writer.write_event(event);
            }
        }
    }
    String::from_utf8_lossy(&writer.into_inner()).into_owned()
}

/// The documented XML of interface `I` (the same for every object of it).
fn interface_xml<I: Interface>(iface: &I) -> &'static str {
    static CACHE: OnceLock<std::sync::Mutex<HashMap<String, &'static str>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let name = I::name().to_string();
    cache.entry(name).or_insert_with(|| {
        let mut generated = String::new();
        iface.introspect_to_writer(&mut generated, 0);
        Box::leak(documented(&generated, contract_docs()).into_boxed_str())
    })
}

/// Our interface at `path`, if any, as documented XML.
async fn own_interface(server: &ObjectServer, path: &str) -> Option<&'static str> {
    if let Ok(program) = server.interface::<_, ProgramIface>(path).await {
        return Some(interface_xml(&*program.get().await));
    }
    if let Ok(link) = server.interface::<_, LinkIface>(path).await {
        return Some(interface_xml(&*link.get().await));
    }
    if let Ok(manager) = server.interface::<_, Manager>(path).await {
        return Some(interface_xml(&*manager.get().await));
    }
    None
}

fn indented(xml: &str, out: &mut String) {
    for line in xml.lines() {
        out.push_str("  ");
        out.push_str(line);
        out.push('\n');
    }
}

/// Introspectable, registered on every node the service has.
pub struct Introspection {
    pub(super) objects: std::sync::Arc<Objects>,
}

#[interface(name = "org.freedesktop.DBus.Introspectable", introspection_docs = false)]
impl Introspection {
    /// This node: the standard interfaces, ours, and the names of its children.
    async fn introspect(
        &self,
        #[zbus(object_server)] server: &ObjectServer,
        #[zbus(header)] header: Header<'_>,
    ) -> fdo::Result<String> {
        let path = header.path().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into());
        let mut xml = String::from(HEADER);
        xml.push_str("<node>\n");
        xml.push_str(STANDARD);
        if path == MANAGER_PATH {
            xml.push_str(OBJECT_MANAGER);
        }
        if let Some(own) = own_interface(server, &path).await {
            indented(own, &mut xml);
        }
        for child in self.objects.children(&path) {
            xml.push_str(&format!("  <node name=\"{child}\"/>\n"));
        }
        xml.push_str("</node>\n");
        Ok(xml)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GENERATED: &str = r#"<interface name="org.xdp.Manager1.Program">
  <!--
   Removes it.
   -->
  <method name="Remove">
  </method>
  <method name="GetMapsByName">
    <arg name="names" type="as" direction="in"/>
    <arg name="maps" type="a{sh}" direction="out"/>
  </method>
  <property name="Id" type="t" access="read">
    <annotation name="org.freedesktop.DBus.Property.EmitsChangedSignal" value="const"/>
  </property>
  <property name="Undocumented" type="t" access="read"/>
</interface>
"#;

    #[test]
    fn every_documented_element_gets_its_doc_and_comments_go() {
        let xml = documented(GENERATED, contract_docs());
        assert!(!xml.contains("<!--"), "{xml}");
        let mut docs = HashMap::new();
        collect_docs(&format!("<node>{xml}</node>"), &mut docs);
        let program = "org.xdp.Manager1.Program".to_string();
        for (member, arg) in
            [("", ""), ("method Remove", ""), ("method GetMapsByName", "arg names"), ("property Id", "")]
        {
            let key = (program.clone(), member.to_string(), arg.to_string());
            assert_eq!(docs.get(&key), contract_docs().get(&key), "{key:?} in {xml}");
            assert!(docs.contains_key(&key), "{key:?} has no doc in {xml}");
        }
        assert!(!docs.contains_key(&(program.clone(), "property Undocumented".into(), String::new())));
        // The generated annotations stay, once.
        assert_eq!(xml.matches("EmitsChangedSignal").count(), 1, "{xml}");
    }

    #[test]
    fn the_contract_documents_its_interfaces() {
        let docs = contract_docs();
        for interface in ["org.xdp.Manager1", "org.xdp.Manager1.Link", "org.xdp.Manager1.Program"] {
            assert!(docs.contains_key(&(interface.to_string(), String::new(), String::new())), "{interface}");
        }
    }
}
