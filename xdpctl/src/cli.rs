//! The command line: every subcommand, option and help text. The long help
//! (`--help`) is written to be read like a man page; `-h` stays short.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const ABOUT: &str = "Share the XDP hook of network interfaces through xdpd";

const LONG_ABOUT: &str = "\
xdpctl is the command line of xdpd (the D-Bus service org.xdp.Manager1), which lets several \
applications share the XDP hook of a network interface. Each program added to an interface \
joins that interface's chain; xdpd links the whole chain into one BPF program (into segments \
joined by tail calls where programs cannot share one: root's and a user's, GPL and not, more \
than 64 maps) and swaps it in atomically.

Programs run in ascending priority (ties in the order they were added). A program's result in \
its proceed-on set lets the next program run; any other result is the packet's verdict. When \
every program proceeded, the verdict is XDP_PASS.

Reading (status, maps listing, watch) needs no privileges. Changing a chain needs the polkit \
authorizations org.xdp.manager1.add-program, org.xdp.manager1.remove-program or \
org.xdp.manager1.manage (root always has them). By default xdpctl allows the service to ask \
for a password through polkit (and starts a text agent when run from a terminal); \
--no-ask-password fails instead.";

const EXIT_STATUS: &str = "\
EXIT STATUS:
  0  Success.
  1  Any other failure (a kernel call failed, an unexpected reply).
  2  Usage error: bad command line, or an option the service refused as invalid (InvalidArgs).
  3  No such interface, program or map.
  4  Access denied, or authorization needs a password but --no-ask-password was given.
  5  The object was refused: unreadable, not a usable XDP ELF object, rejected by the kernel
     verifier, or over a limit (object size, programs per interface).
  6  Conflict or busy: the chain changed meanwhile, the request contradicts the chain (another
     mode, nothing to reclaim), or a program attached by someone else holds the interface;
     for status: a chain the service records does not run (detached or replaced behind its
     back; xdpctl reclaim IFACE puts it back).
  7  The service is unreachable: no connection to the bus, or org.xdp.Manager1 cannot be started.
  10  apply --dry-run: the chains differ from the file (something would change).

Errors are printed on standard error as one line starting with \"xdpctl: \" saying what went \
wrong and what to do; a verifier rejection is followed by the verifier's log.

ENVIRONMENT:
  DBUS_SYSTEM_BUS_ADDRESS  the system bus to use when --address is not given.

EXAMPLES:
  xdpctl status
  xdpctl add eth0 /usr/lib/myapp/filter.o --program drop_bad --priority 10 --tag myapp
  xdpctl replace eth0 /usr/lib/myapp/filter.o --program drop_bad --tag myapp
  xdpctl maps eth0 3 counters
  xdpctl remove 3
  xdpctl remove --tag myapp
  xdpctl apply --dry-run /etc/xdpd/chains.toml
  xdpctl -n pod1 add eth0 /usr/lib/myapp/filter.o --tag myapp
  xdpctl watch --json";

#[derive(Debug, Parser)]
#[command(
    name = "xdpctl",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_long_help = EXIT_STATUS,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone)]
pub struct Global {
    /// Print JSON instead of text (watch: one JSON object per line)
    #[arg(
        short = 'j',
        long,
        global = true,
        help_heading = "Global options",
        long_help = "Print JSON instead of text: one JSON object for status, maps, add, replace, remove, \
                     reclaim and top (one view); for watch one object per line, the first being \
                     {\"event\":\"ready\"}. metrics prints its text formats only. \
                     Member names are snake_case in every command's output and stable: new members \
                     may appear, existing ones keep their name and meaning."
    )]
    pub json: bool,

    /// Connect to this D-Bus address instead of the system bus
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "ADDR",
        long_help = "Connect to this D-Bus address (e.g. unix:path=/run/dbus/system_bus_socket) \
                     instead of the system bus. Without it, DBUS_SYSTEM_BUS_ADDRESS is honoured."
    )]
    pub address: Option<String>,

    /// Never ask for a password: fail when authorization needs one
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        long_help = "Do not allow the service to ask for a password (polkit's interactive \
                     authorization) and do not start a polkit text agent: a change that would need \
                     authentication fails with exit status 4 instead. Use it in scripts."
    )]
    pub no_ask_password: bool,

    /// Act on the interfaces of network namespace NAME, PID or PATH (like ip -n)
    #[arg(
        short = 'n',
        long,
        help_heading = "Global options",
        value_name = "NAME|PID|PATH",
        long_help = "Act on the interfaces of another network namespace: NAME, its name under \
                     /run/netns (as ip netns shows it, like ip -n NAME); PID (all digits), the \
                     namespace of that process, which the service is asked to follow \
                     (FollowNetnsOfProcess: needs org.xdp.manager1.follow-netns, and the process must \
                     run as you unless you are root); PATH (with a slash), a namespace file such as \
                     /proc/PID/ns/net or a container runtime's bind mount, sent to the service to \
                     follow (FollowNetnsByDescriptor, same authorization). Given \
                     before the command, as with ip (after it, -n is the command's own: add's \
                     --program, apply's --dry-run). IFACE arguments name \
                     interfaces of that namespace; status, export and remove --tag see only its \
                     interfaces. Without it, IFACE is an interface of the service's own namespace, \
                     export writes the service's own namespace, and status shows every namespace \
                     the service follows, grouped by namespace (NETNS column; #INODE for one \
                     without a name)."
    )]
    pub netns: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the chains of all interfaces, or of one
    #[command(
        long_about = "Shows, per interface, the attach mode, the kernel id of the linked chain \
                      program and the programs of the chain in run order: position, priority, \
                      function name, proceed-on actions, owner (user name, or uid when it has \
                      none), tag and program id (the id remove, replace and maps take). \
                      Interfaces without programs are shown with \"no programs\". When \
                      something else runs than the chain the service records, a line says what \
                      and what to do: a chain detached behind the service's back (xdpctl reclaim \
                      attaches it again), a chain replaced by someone else's program (xdpctl \
                      reclaim takes the interface back), or someone else's program on an \
                      interface without a chain (xdpctl add --force takes it over). A chain that \
                      does not run is also said on standard error and makes the exit status 6.\n\n\
                      With --json, prints one JSON object {\"interfaces\": [...]}; each \
                      interface's \"state\" is none, running, detached, replaced or foreign.",
        after_long_help = concat!("EXAMPLES:\n  xdpctl status\n  xdpctl status eth0\n  \
                           xdpctl status --json | jq '.interfaces[].programs[].name'", "\n\nSee xdpctl --help for the exit statuses.")
    )]
    #[command(visible_aliases = ["list", "show"])]
    Status {
        /// Only this network interface
        #[arg(value_name = "IFACE")]
        iface: Option<String>,
    },

    /// Add an XDP program to an interface's chain
    #[command(
        long_about = "Adds a program of the ELF object OBJECT to the chain of IFACE and prints \
                      the new program's id and object path. xdpctl opens OBJECT itself and hands \
                      the service the open descriptor, so the service never reads a file you \
                      could not read. OBJECT \"-\" reads the object from standard input (at most \
                      16 MiB, the service's default cap) into a memory file and passes that, for \
                      callers that cannot pass descriptors (Cockpit's page); the service checks \
                      it like any other.\n\n\
                      Priority and proceed-on default to the object's libxdp metadata \
                      (XDP_RUN_CONFIG), else 50 and \"pass\". Needs the polkit authorization \
                      org.xdp.manager1.add-program; --force and --mode also need \
                      org.xdp.manager1.manage.",
        after_long_help = concat!("EXAMPLES:\n  xdpctl add eth0 filter.o\n  \
                           xdpctl add eth0 filter.o --program drop_bad --priority 10 --tag myapp\n  \
                           xdpctl add eth0 counter.o --proceed-on pass,drop --persist\n  \
                           xdpctl add eth0 filter.o --mode generic --force\n  \
                           ssh host cat filter.o | xdpctl add eth0 -", "\n\nSee xdpctl --help for the exit statuses.")
    )]
    Add(AddArgs),

    /// Add a program, or replace the program you added with the same tag
    #[command(
        long_about = "Like add, but atomically replaces your program with the same --tag on IFACE \
                      (the new program gets a new id and takes the old one's place among equal \
                      priorities), or adds it when there is none. --tag is required.\n\n\
                      The new program keeps the state of the old one: it takes over its maps of \
                      the same name and definition (not its read-only data), and xdpctl says which \
                      (\"maps carried over\"). --fresh-maps starts it with empty maps instead.",
        after_long_help = concat!("EXAMPLES:\n  xdpctl replace eth0 filter-v2.o --program drop_bad --tag myapp\n  \
                           xdpctl replace eth0 filter-v3.o --tag myapp --fresh-maps", "\n\nSee xdpctl --help for the exit statuses."),
        mut_arg("tag", |a| a.required(true))
    )]
    Replace(ReplaceArgs),

    /// Remove a program (by id, or by --tag) from its chain
    #[command(
        visible_alias = "rm",
        long_about = "Removes the program PROGRAM-ID (its id as shown by status, or its full object \
                      path) from its chain; removing the last program detaches the chain. Program \
                      ids are unique across interfaces, so IFACE is optional; when given, the \
                      program must be on IFACE.\n\n\
                      With --tag, removes every program with that tag (on IFACE only, when given) \
                      instead; it fails with exit status 3 when there is none.\n\n\
                      Removing your own program needs org.xdp.manager1.remove-program, anyone \
                      else's org.xdp.manager1.manage.",
        after_long_help = concat!("EXAMPLES:\n  xdpctl remove 3\n  xdpctl remove eth0 3\n  \
                           xdpctl remove --tag myapp\n  xdpctl remove eth0 --tag myapp\n  \
                           xdpctl remove /org/xdp/Manager1/link/2/program/3", "\n\nSee xdpctl --help for the exit statuses.")
    )]
    Remove {
        /// [IFACE] PROGRAM-ID, or [IFACE] with --tag
        #[arg(value_name = "IFACE|PROGRAM-ID", num_args = 0..=2)]
        args: Vec<String>,
        /// Remove the programs with this tag instead of one by id
        #[arg(short = 't', long, value_name = "T")]
        tag: Option<String>,
    },

    /// List a program's maps, or dump one map's entries
    #[command(
        long_about = "Without MAP, lists the maps of program PROGRAM on IFACE: their names (as in \
                      the object; .data, .rodata and .bss with libbpf's names) and kernel map ids \
                      (bpftool map show id N). Anyone may do that.\n\n\
                      With MAP, dumps the entries of that map: key => value in hex, each followed \
                      by its value as a little-endian integer in parentheses when it is 4 or 8 \
                      bytes long; per-CPU maps show one value per CPU; keys of longest-prefix-match \
                      tries show as address/length. This fetches the map's \
                      descriptor from the service, which needs you to own the program or hold \
                      org.xdp.manager1.manage.\n\n\
                      --set and --delete change the map before the dump (all deletions first, then \
                      the updates, each in the order given), the way the program's application \
                      would. KEY and VALUE are each one of: an unsigned integer (decimal or 0x...) \
                      written in host byte order in the map's key or value size (1, 2, 4 or 8 \
                      bytes); hex:BYTES, exactly as many bytes as the size; an IPv4 or IPv6 \
                      address (network byte order), with /LEN for a longest-prefix-match trie key \
                      (a 4-byte host-order prefix length followed by the address; without /LEN \
                      the whole address). A per-CPU map gets VALUE on every CPU.",
        after_long_help = concat!("EXAMPLES:\n  xdpctl maps eth0 3\n  xdpctl maps eth0 3 packets\n  \
                           xdpctl maps eth0 3 packets --json\n  \
                           xdpctl maps eth0 4 blocked_ports --set 22=0 --set 9000=0\n  \
                           xdpctl maps eth0 4 blocked_ports --delete 22\n  \
                           xdpctl maps eth0 5 blocklist --set 192.0.2.0/24=0", "\n\nSee xdpctl --help for the exit statuses.")
    )]
    Maps {
        /// Network interface name (as ip link shows it)
        #[arg(value_name = "IFACE")]
        iface: String,
        /// Program id, or the program's object path
        #[arg(value_name = "PROGRAM-ID")]
        program: String,
        /// Dump this map's entries
        #[arg(value_name = "MAP")]
        map: Option<String>,
        /// Set KEY to VALUE in MAP before the dump (repeatable)
        #[arg(long = "set", value_name = "KEY=VALUE", requires = "map")]
        set: Vec<String>,
        /// Delete KEY from MAP before the dump (repeatable)
        #[arg(long = "delete", value_name = "KEY", requires = "map")]
        delete: Vec<String>,
    },

    /// Print the service's change events as they happen
    #[command(
        long_about = "Subscribes to the signals of org.xdp.Manager1 and prints one line per event \
                      as it happens: program-added, program-removed, link-added, link-removed, \
                      link-changed (properties of an interface changed), chain-changed and \
                      foreign-program (someone replaced or removed a chain behind the service's \
                      back). Output is flushed after every line. Runs until killed, or until \
                      --count events were printed.\n\n\
                      With --json, each event is one JSON object on its own line, with an \
                      \"event\" member naming it. Before any event, watch prints \
                      {\"event\":\"ready\"} once it is subscribed: every change made after that \
                      line appeared is reported. (Without --json, a note on standard error says \
                      the same.) The ready line is not counted by --count.\n\n\
                      Every line starts with the time it was received (RFC 3339, UTC); every JSON \
                      event has \"time\" (the same), \"path\" (the object it is about) and \
                      \"interface\" (the interface's name, when known). Member names are snake_case, \
                      as in status --json, also for the properties in link-changed. program-added adds id, name, priority, \
                      proceed_on, tag and owner; program-removed id; link-added index; \
                      link-changed changed (the new property values, e.g. generation, kernel_program_id) and invalidated; \
                      chain-changed generation and programs (object paths in run order); \
                      foreign-program id (the kernel id of the program now attached, 0 if none).",
        after_long_help = concat!("EXAMPLES:\n  xdpctl watch\n  xdpctl watch --json --count 3", "\n\nSee xdpctl --help for the exit statuses.")
    )]
    Watch {
        /// Exit after printing N events
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },

    /// Show how the chain of an interface is linked, against the kernel's limits
    #[command(
        long_about = "Shows the running chain of IFACE as the service linked it: the programs in run \
                      order, how each runs (inline: spliced into the dispatcher; call: a BPF-to-BPF \
                      call; not-linked: an earlier program ends the chain), each program's own \
                      instructions and the maps it took over when it replaced another, and per \
                      loaded program (segment) its instructions against the kernel's limit (4096 \
                      when a user's program is in the chain, else 1000000), its maps against 64, \
                      the instructions the verifier processed against 1000000, and how long the \
                      verification took. add --dry-run and replace --dry-run show the same for the \
                      chain a change would produce. Needs no privileges.",
        after_long_help = concat!("EXAMPLES:\n  xdpctl explain eth0\n  xdpctl add eth0 filter.o --dry-run\n  xdpctl explain eth0 --json", "\n\nSee xdpctl --help for the exit statuses.")
    )]
    Explain {
        /// Network interface name (as ip link shows it)
        #[arg(value_name = "IFACE")]
        iface: String,
    },

    /// Take an interface back from a program attached behind the service's back
    #[command(
        long_about = "Attaches the chain of IFACE again after someone detached or replaced it \
                      behind the service's back, evicting the foreign program. Needs \
                      org.xdp.manager1.manage. Fails with exit status 6 when IFACE has no chain.",
        after_long_help = concat!("EXAMPLES:\n  xdpctl reclaim eth0", "\n\nSee xdpctl --help for the exit statuses.")
    )]
    Reclaim {
        /// Network interface name (as ip link shows it)
        #[arg(value_name = "IFACE")]
        iface: String,
    },

    /// Live view of every program's packet and verdict rates, like top
    #[command(
        long_about = "Shows, refreshed every --interval seconds like top(1), one row per program \
                      of every chain (or of IFACE): its interface (name and index), position, \
                      name and id; the packets and bytes per second it saw; the rate of each \
                      verdict it gave (drop, pass, tx, redirect, aborted, other: results of 5 \
                      and more; a packet it let proceed counts under the action it proceeded on); \
                      and SHARE, the part of the packets entering the chain that reached it. \
                      Rates come from the verdict counters (on by default, see xdpctl counting) \
                      read twice an interval apart; a program added meanwhile shows from the next \
                      view. Runs until interrupted (Ctrl-C), or until --count views were shown.\n\n\
                      --once prints one view without clearing the screen and exits, for scripts. \
                      With --json, prints one JSON object {\"interval_s\": ..., \"programs\": [...]} \
                      with pps, bps, rates (by verdict) and share (0 to 1) per program, and exits. \
                      Reading the counters keeps the service from exiting when idle.",
        after_long_help = concat!("EXAMPLES:\n  xdpctl top\n  xdpctl top eth0 --interval 5\n  \
                           xdpctl top --once\n  xdpctl top --json | jq '.programs[] | {name, pps}'", "\n\nSee xdpctl --help for the exit statuses.")
    )]
    Top {
        /// Network interface name (as ip link shows it); all interfaces if omitted
        #[arg(value_name = "IFACE")]
        iface: Option<String>,
        /// Seconds between views (0.1 to 3600)
        #[arg(long, short = 'i', value_name = "SECONDS", default_value_t = 1.0)]
        interval: f64,
        /// Print one view and exit
        #[arg(long)]
        once: bool,
        /// Exit after N views
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },

    /// Every program's verdict counts as OpenMetrics text, for Prometheus
    #[command(
        long_about = "Prints the chains and every program's verdict counters in the OpenMetrics \
                      text format (ending in \"# EOF\"), or with --prometheus in the Prometheus \
                      text format 0.0.4 that node_exporter's textfile collector reads. One \
                      consistent snapshot. Metric and label names are stable:\n\n\
                      xdpd_program_packets_total and xdpd_program_bytes_total (counters), labels \
                      interface, ifindex, id (the program's id), program (its name), tag, owner \
                      (uid) and verdict (aborted, drop, pass, tx, redirect, other); a packet a \
                      program let proceed counts under the action it proceeded on. Programs whose \
                      chain never counted have no samples.\n\n\
                      xdpd_chain_programs, xdpd_chain_generation and xdpd_chain_counting (1 or 0) \
                      (gauges), labels interface and ifindex.",
        after_long_help = concat!("EXAMPLES:\n  xdpctl metrics\n  \
                           xdpctl metrics --prometheus > /var/lib/prometheus/node-exporter/xdpd.prom.$$ && \\\n    \
                           mv /var/lib/prometheus/node-exporter/xdpd.prom.$$ /var/lib/prometheus/node-exporter/xdpd.prom", "\n\nSee xdpctl --help for the exit statuses.")
    )]
    Metrics {
        /// Network interface name (as ip link shows it); all interfaces if omitted
        #[arg(value_name = "IFACE")]
        iface: Option<String>,
        /// Prometheus text format 0.0.4 instead of OpenMetrics
        #[arg(long)]
        prometheus: bool,
    },

    /// Keep a pass-through program attached when an interface has no programs
    #[command(
        long_about = "Holds the XDP hook of IFACE (on) or lets it go (off). While held, removing the \
                      last program swaps a pass-through program (every packet passes) in through \
                      xdpd's link instead of detaching, and an interface without programs gets one \
                      attached now, so after its first attach the interface only ever sees \
                      replacements. Use it on NICs whose drivers reconfigure the device when the \
                      first XDP program is attached or the last one detached (mlx5, ixgbe: 1-20 s \
                      without link): hold them once, and adding or removing programs never costs \
                      link again. While no program runs, the pass-through (two instructions) runs on \
                      every packet and keeps the driver in XDP mode. The hold survives restarts and reboots. \
                      Letting go detaches a held interface without programs. Needs \
                      org.xdp.manager1.manage.",
        after_long_help = concat!("EXAMPLES:\n  xdpctl hold eth0 on\n  xdpctl status eth0\n  xdpctl hold eth0 off", "\n\nSee xdpctl --help for the exit statuses.")
    )]
    Hold {
        /// Network interface name (as ip link shows it)
        #[arg(value_name = "IFACE")]
        iface: String,
        /// on or off
        #[arg(value_enum, value_name = "STATE")]
        state: OnOff,
    },

    /// Count every program's verdicts on an interface, or stop counting
    #[command(
        long_about = "Switches per-program verdict counting on IFACE on or off. While it is on, \
                      the chain counts each program's results (aborted, drop, pass, tx, redirect, \
                      other; packets and bytes) and xdpctl status shows them in a VERDICTS column. \
                      Counting is on by default: it costs a fraction of a nanosecond per program per \
                      packet. Switching relinks the chain atomically; counts are kept while it is \
                      off. Needs org.xdp.manager1.manage.",
        after_long_help = concat!("EXAMPLES:\n  xdpctl counting eth0 off\n  xdpctl status eth0\n  xdpctl counting eth0 on", "\n\nSee xdpctl --help for the exit statuses.")
    )]
    Counting {
        /// Network interface name (as ip link shows it)
        #[arg(value_name = "IFACE")]
        iface: String,
        /// on or off
        #[arg(value_enum, value_name = "STATE")]
        state: OnOff,
    },

    /// Make the chains match a declaration file (TOML)
    #[command(
        long_about = "Reads FILE, a declaration of chains (see xdpctl export for the format), and \
                      changes the chains of the interfaces it names until they match it: programs \
                      declared but missing are added, programs whose priority, proceed-on or \
                      options differ are replaced, and map contents are written. A program is \
                      \"the same\" when its tag, its object's sha256 and its function name are; a \
                      declared program therefore needs a tag. Applying the same file again changes \
                      nothing (the chains keep their generation).\n\n\
                      Programs on those interfaces that the file does not declare (other \
                      applications', also when they run as the same user) are left alone unless \
                      --prune is given: then they are removed (others' programs need \
                      org.xdp.manager1.manage). A fleet that removes a program from its file \
                      therefore applies with --prune. Every change of an interface carries the \
                      generation read before the first one (expected-generation), so a concurrent \
                      change makes apply fail with exit status 6 instead of mixing both.\n\n\
                      --dry-run prints what would change, one line per change (+ add, ~ replace, \
                      - remove, = write map), and exits 0 when nothing would change, 10 when \
                      something would.",
        after_long_help = concat!("FILE FORMAT:\n  [[interface]]\n  name = \"eth0\"\n\n  \
                           [[interface.program]]\n  object = \"/usr/share/xdpd/examples/port_block.o\"\n  \
                           function = \"port_block\"   # optional when the object has one program\n  \
                           tag = \"edge\"\n  priority = 20\n  proceed_on = [\"pass\"]\n  persist = true\n\n  \
                           [interface.program.maps.blocked_ports]\n  22 = \"0\"          # KEY = VALUE as xdpctl maps --set takes them\n\n\
                           EXAMPLES:\n  xdpctl apply /etc/xdpd/chains.toml\n  xdpctl apply --dry-run chains.toml\n  \
                           xdpctl apply --prune chains.toml\n  xdpctl export eth0 > chains.toml", "\n\nSee xdpctl --help for the exit statuses.")
    )]
    Apply {
        /// Declaration file (TOML)
        #[arg(value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
        file: PathBuf,
        /// Print the changes, change nothing; exit 10 if there would be any
        #[arg(short = 'n', long)]
        dry_run: bool,
        /// Also remove programs the file does not declare on its interfaces
        #[arg(long)]
        prune: bool,
        /// Only this interface of the file
        #[arg(long, value_name = "IFACE")]
        only: Option<String>,
    },

    /// Print the chains as a declaration file for apply
    #[command(
        long_about = "Prints the chains of all interfaces (or of IFACE) in the format apply reads. \
                      The service keeps no object paths (objects are handed over as descriptors): \
                      export names each program's object by finding a file with the same sha256 in \
                      the directories given with --objects (default /usr/share/xdpd/examples), \
                      else writes object = \"sha256:HEX\" for you to fill in. Map contents and the \
                      persist and snapshot options are not exported (the service does not show \
                      them); add them by hand.",
        after_long_help = concat!("EXAMPLES:\n  xdpctl export > chains.toml\n  xdpctl export eth0 --objects /usr/lib/myapp", "\n\nSee xdpctl --help for the exit statuses.")
    )]
    Export {
        /// Only this network interface
        #[arg(value_name = "IFACE")]
        iface: Option<String>,
        /// Find objects by their sha256 in DIR (repeatable; default /usr/share/xdpd/examples)
        #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
        objects: Vec<PathBuf>,
    },

    /// Print a shell completion script
    #[command(
        hide = true,
        long_about = "Prints the completion script for SHELL on standard output.",
        after_long_help = concat!("EXAMPLES:\n  xdpctl completions bash > /usr/share/bash-completion/completions/xdpctl\n  \
                           xdpctl completions zsh > /usr/share/zsh/vendor-completions/_xdpctl", "\n\nSee xdpctl --help for the exit statuses.")
    )]
    Completions {
        #[arg(value_enum, value_name = "SHELL")]
        shell: ShellKind,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ShellKind {
    Bash,
    Zsh,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// The driver's hook (xdp-loader and ip: native, drv, xdpdrv)
    #[value(aliases = ["drv", "xdpdrv"])]
    Native,
    /// The generic hook in the network stack (xdp-loader: skb; ip: xdpgeneric)
    #[value(aliases = ["skb", "xdpgeneric"])]
    Generic,
    /// Offloaded to the NIC (xdp-loader: hw; ip: xdpoffload)
    #[value(aliases = ["hw", "xdpoffload"])]
    Offload,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Native => "native",
            Mode::Generic => "generic",
            Mode::Offload => "offload",
        }
    }
}

/// The actions of a proceed-on set; "none" stands for the empty set.
pub const ACTIONS: [&str; 6] = ["aborted", "drop", "pass", "tx", "redirect", "none"];

/// One action of a proceed-on list, as given: "pass", "PASS" or "XDP_PASS"
/// (libxdp's and the kernel's spelling) all mean pass.
pub fn parse_action(text: &str) -> std::result::Result<String, String> {
    let lower = text.trim().to_ascii_lowercase();
    let action = lower.strip_prefix("xdp_").unwrap_or(&lower);
    if ACTIONS.contains(&action) {
        Ok(action.to_string())
    } else {
        Err(format!(
            "'{text}' is not an action; use one of aborted, drop, pass, tx, redirect (or XDP_PASS etc.), or none"
        ))
    }
}

#[derive(Debug, Args, Clone)]
pub struct ProgramOptions {
    /// Function name of the program in OBJECT (default: its only XDP program)
    #[arg(short = 'p', long, visible_alias = "prog-name", short_alias = 'n', value_name = "NAME")]
    pub program: Option<String>,

    /// Lower runs first (default: the object's metadata, else 50)
    #[arg(short = 'P', long, visible_alias = "prio", value_name = "N", allow_negative_numbers = true)]
    pub priority: Option<i32>,

    /// Actions on which the chain continues after this program
    #[arg(
        long,
        visible_alias = "actions",
        value_name = "LIST",
        value_delimiter = ',',
        value_parser = parse_action,
        long_help = "Comma-separated actions (aborted, drop, pass, tx, redirect; XDP_PASS and PASS \
                     are accepted too) on which the chain continues after this program; any other \
                     result is the verdict. \"none\" makes the program end the chain: every program \
                     after it stops running, so xdpctl asks first (or needs --force). Default: the \
                     object's metadata, else pass."
    )]
    pub proceed_on: Option<Vec<String>>,

    /// Attach mode, only for the first program of the interface
    #[arg(
        short = 'm',
        long,
        value_enum,
        ignore_case = true,
        value_name = "MODE",
        long_help = "Attach mode of the chain: native (also drv), generic (also skb) or offload \
                     (also hw). Only for the first program of the interface (later ones must agree); \
                     default native, falling back to generic. Needs org.xdp.manager1.manage."
    )]
    pub mode: Option<Mode>,

    /// Your application's name for itself (replace finds your program by it)
    #[arg(short = 't', long, value_name = "T")]
    pub tag: Option<String>,

    /// Keep the program across reboots
    #[arg(long)]
    pub persist: bool,

    /// With --persist: after a reboot, restore the maps saved when the service last stopped
    #[arg(long, requires = "persist")]
    pub snapshot: bool,

    /// Take the interface over from a program attached by someone else
    #[arg(
        short = 'f',
        long,
        long_help = "Take the interface over from an XDP program attached by someone else \
                     (otherwise the request fails with exit status 6), and confirm \
                     --proceed-on none without asking. Needs org.xdp.manager1.manage."
    )]
    pub force: bool,

    /// Fail unless the chain is at this generation (see status --json)
    #[arg(long, value_name = "G")]
    pub expected_generation: Option<u64>,

    /// With replace: start the new program with its own empty maps
    #[arg(
        long,
        long_help = "With replace (or add --replace): the new program starts with its own, empty \
                     maps. Without it, the new program takes over the replaced program's maps of \
                     the same name, type, key and value size, max_entries and flags (the same \
                     kernel maps, contents kept, so a block list keeps blocking through the swap), \
                     and the replacement fails with exit status 6 naming the first map of that \
                     name that differs."
    )]
    pub fresh_maps: bool,

    /// Link and verify the chain the change would produce and show it; change nothing
    #[arg(
        long,
        long_help = "Dry run: the service reads and verifies the object, links and verifies the chain \
                     the change would produce (replacing and carrying maps over as it would) and \
                     xdpctl shows it as explain shows a running chain: the programs in run order, \
                     how each is linked, instructions and maps against the kernel's limits, the \
                     instructions the verifier processed and how long it took. Nothing is attached \
                     or recorded. A change the service would refuse fails the same way, with the \
                     same exit status."
    )]
    pub dry_run: bool,

    /// Set a global variable before loading (repeatable)
    #[arg(
        long = "set",
        value_name = "NAME=VALUE",
        value_parser = parse_global,
        long_help = "Set the global variable NAME (of .rodata, .data or .bss: a `const volatile` \
                     configuration variable of a libbpf skeleton program) to VALUE before the object \
                     is loaded: decimal, 0x hexadecimal, true or false, checked against the \
                     variable's type. Repeatable. The Program object shows it (Globals)."
    )]
    pub globals: Vec<(String, String)>,

    /// Set a map's max_entries before loading (repeatable)
    #[arg(long = "map-size", value_name = "MAP=N", value_parser = parse_map_size)]
    pub map_sizes: Vec<(String, u32)>,

    /// The object's name, for its map names (<NAME>.bss), when OBJECT is "-"
    #[arg(long, value_name = "NAME")]
    pub object_name: Option<String>,
}

/// `NAME=VALUE` of --set.
pub fn parse_global(text: &str) -> std::result::Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() && !value.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => Err(format!("'{text}' is not NAME=VALUE")),
    }
}

/// `MAP=N` of --map-size.
pub fn parse_map_size(text: &str) -> std::result::Result<(String, u32), String> {
    let (name, n) = parse_global(text).map_err(|_| format!("'{text}' is not MAP=N"))?;
    let n = n.parse::<u32>().map_err(|_| format!("'{text}': N must be a number of entries from 1 to 4294967295"))?;
    Ok((name, n))
}

#[derive(Debug, Args, Clone)]
pub struct AddArgs {
    /// Network interface name (as ip link shows it)
    #[arg(value_name = "IFACE")]
    pub iface: String,

    /// ELF object file holding the program ("-": read it from standard input)
    #[arg(value_name = "OBJECT", value_hint = clap::ValueHint::FilePath)]
    pub object: PathBuf,

    #[command(flatten)]
    pub options: ProgramOptions,

    /// Replace your program with the same --tag (as the replace command does)
    #[arg(long, requires = "tag")]
    pub replace: bool,
}

#[derive(Debug, Args, Clone)]
pub struct ReplaceArgs {
    /// Network interface name (as ip link shows it)
    #[arg(value_name = "IFACE")]
    pub iface: String,

    /// ELF object file holding the program ("-": read it from standard input)
    #[arg(value_name = "OBJECT", value_hint = clap::ValueHint::FilePath)]
    pub object: PathBuf,

    #[command(flatten)]
    pub options: ProgramOptions,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
