//! xdpd: share the XDP hook of a network interface between many applications.
//!
//! Every application hands over its own XDP program; [`engine`] links all the
//! programs of an interface into one BPF program in userspace (into segments
//! joined by tail calls where programs cannot share one verifier context) and
//! swaps it in atomically through [`kernel`]'s pinned `bpf_link`. The daemon puts the
//! engine behind the D-Bus contract `org.xdp.Manager1` ([`dbus`]), with one
//! owner task per interface ([`iface`]).
//!
//! The dependency rule (an arrow: "may import"; never the other way):
//!
//! ```text
//! main → service → dbus → {request, intake, iface} → {state, engine} → kernel
//! ```
//!
//! `error`, `caller`, `config`, `program`, `crash` are leaves everyone may use;
//! `auth`, `limits`, `activity` serve `request`; `kernel/` imports nothing
//! from the crate. Nothing below `dbus` imports `dbus`; nothing in `iface`,
//! `state`, `engine` or `kernel` imports zbus. Check with
//! `grep -rn 'zbus\|crate::dbus' service/src/{iface,state,engine,kernel}`.

pub mod activity;
pub mod auth;
pub mod caller;
pub mod config;
pub mod crash;
pub mod dbus;
pub mod engine;
pub mod error;
pub mod iface;
pub mod intake;
pub mod kernel;
pub mod limits;
pub mod log;
pub mod program;
pub mod request;
pub mod service;
pub mod state;
