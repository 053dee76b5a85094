#!/usr/bin/python3
"""A client of xdpd (org.xdp.Manager1) on GObject introspection (Gio).

Adds an XDP program to an interface's chain, handing the object over as a file
descriptor (Gio.UnixFDList), and follows what the service announces about it:
InterfacesAdded (the new program object), PropertiesChanged (the link's
Generation and Programs) and ChainChanged, in that order. With --remove it then
removes the program again and follows that too.

    python3 xdpd_client.py eth0 /usr/share/xdpd/examples/port_block.o --tag myapp

Uses the system bus (DBUS_SYSTEM_BUS_ADDRESS is honoured). Prints one line per
event; exits 0 once the service announced everything, 1 on an error, 2 when
the events do not come within --timeout seconds.
"""

import argparse
import os
import sys

import gi

gi.require_version("Gio", "2.0")
gi.require_version("GLib", "2.0")
from gi.repository import Gio, GLib  # noqa: E402

BUS_NAME = "org.xdp.Manager1"
MANAGER_PATH = "/org/xdp/Manager1"
LINK_IFACE = "org.xdp.Manager1.Link"
PROGRAM_IFACE = "org.xdp.Manager1.Program"


def proxy(bus, path, interface):
    # No auto-start flags: a call activates the service.
    return Gio.DBusProxy.new_sync(bus, Gio.DBusProxyFlags.NONE, None, BUS_NAME, path, interface, None)


def main():
    parser = argparse.ArgumentParser(description="Add an XDP program through xdpd and follow its signals.")
    parser.add_argument("iface", help="network interface, e.g. eth0")
    parser.add_argument("object", help="XDP ELF object file")
    parser.add_argument("--program", default="", help="function name (default: the object's only program)")
    parser.add_argument("--tag", default="", help="your application's name for itself")
    parser.add_argument("--priority", type=int, help="lower runs first")
    parser.add_argument("--remove", action="store_true", help="remove the program again afterwards")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the signals")
    args = parser.parse_args()

    bus = Gio.bus_get_sync(Gio.BusType.SYSTEM, None)
    loop = GLib.MainLoop()
    seen = []  # the events, in the order they arrived
    state = {"program": None, "expect": [], "failed": None}

    def event(line):
        print(line, flush=True)
        seen.append(line.split(" ", 1)[0])
        if state["expect"] and all(e in seen for e in state["expect"]):
            loop.quit()

    # ObjectManager signals come from /org/xdp/Manager1 for every object below it.
    def on_object_manager(_bus, _sender, _path, _iface, signal, params):
        path = params.unpack()[0]
        if not path.startswith(link_path + "/program/"):
            return
        if signal == "InterfacesAdded" and PROGRAM_IFACE in params.unpack()[1]:
            props = params.unpack()[1][PROGRAM_IFACE]
            event("InterfacesAdded %s name=%s tag=%s priority=%d" % (path, props["Name"], props["Tag"], props["Priority"]))
        elif signal == "InterfacesRemoved":
            event("InterfacesRemoved %s" % path)

    manager = proxy(bus, MANAGER_PATH, BUS_NAME)
    try:
        link_path = manager.call_sync("GetLinkByName", GLib.Variant("(s)", (args.iface,)),
                                      Gio.DBusCallFlags.NONE, -1, None).unpack()[0]
    except GLib.Error as e:
        print("xdpd_client: no interface %s: %s" % (args.iface, Gio.DBusError.get_remote_error(e) or e.message),
              file=sys.stderr)
        return 1
    bus.signal_subscribe(BUS_NAME, "org.freedesktop.DBus.ObjectManager", None, MANAGER_PATH, None,
                         Gio.DBusSignalFlags.NONE, on_object_manager)

    link = proxy(bus, link_path, LINK_IFACE)

    def on_properties_changed(_proxy, changed, _invalidated):
        changed = changed.unpack()
        if "Generation" in changed:
            event("PropertiesChanged Generation=%d Programs=%s" % (changed["Generation"], ",".join(changed.get("Programs", []))))

    def on_signal(_proxy, _sender, signal, params):
        if signal == "ChainChanged":
            generation, programs = params.unpack()
            event("ChainChanged generation=%d programs=%s" % (generation, ",".join(programs)))

    link.connect("g-properties-changed", on_properties_changed)
    link.connect("g-signal", on_signal)

    # The object goes over as a descriptor: the service reads what we could open.
    options = {}
    if args.tag:
        options["tag"] = GLib.Variant("s", args.tag)
    if args.priority is not None:
        options["priority"] = GLib.Variant("i", args.priority)
    fd = os.open(args.object, os.O_RDONLY | os.O_CLOEXEC)
    fds = Gio.UnixFDList.new()
    index = fds.append(fd)
    os.close(fd)  # the list holds its own duplicate
    try:
        result, _ = link.call_with_unix_fd_list_sync(
            "AddProgram", GLib.Variant("(hsa{sv})", (index, args.program, options)),
            Gio.DBusCallFlags.ALLOW_INTERACTIVE_AUTHORIZATION, -1, fds, None)
    except GLib.Error as e:
        print("xdpd_client: cannot add %s: %s: %s" % (args.object, Gio.DBusError.get_remote_error(e),
                                                    Gio.DBusError.strip_remote_error(e) or e.message), file=sys.stderr)
        return 1
    program_path = result.unpack()[0]
    state["program"] = program_path
    print("added %s" % program_path, flush=True)
    state["expect"] = ["InterfacesAdded", "PropertiesChanged", "ChainChanged"]

    def timed_out():
        state["failed"] = "timed out waiting for %s" % ", ".join(e for e in state["expect"] if e not in seen)
        loop.quit()
        return False

    timeout = GLib.timeout_add(int(args.timeout * 1000), timed_out)
    if not all(e in seen for e in state["expect"]):
        loop.run()
    if state["failed"]:
        print("xdpd_client: %s" % state["failed"], file=sys.stderr)
        return 2

    if args.remove:
        seen.clear()
        state["expect"] = ["InterfacesRemoved", "PropertiesChanged", "ChainChanged"]
        program = proxy(bus, program_path, PROGRAM_IFACE)
        print("program %s: id %d, sha256 %s" % (program.get_cached_property("Name").unpack(),
                                                program.get_cached_property("Id").unpack(),
                                                program.get_cached_property("Sha256").unpack()), flush=True)
        program.call_sync("Remove", None, Gio.DBusCallFlags.ALLOW_INTERACTIVE_AUTHORIZATION, -1, None)
        print("removed %s" % program_path, flush=True)
        if not all(e in seen for e in state["expect"]):
            loop.run()
        if state["failed"]:
            print("xdpd_client: %s" % state["failed"], file=sys.stderr)
            return 2
    GLib.source_remove(timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
