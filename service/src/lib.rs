//! xdpd: share the XDP hook of a network interface between many applications.
//!
//! Every application hands over its own XDP program; [`engine`] links all the
//! programs of an interface into one BPF program in userspace and swaps it in
//! atomically through [`kernel`]'s pinned `bpf_link`. The daemon puts the
//! engine behind the D-Bus contract `org.xdp.Manager1` ([`dbus`]), with one
//! owner task per interface ([`links`]).

pub mod activity;
pub mod auth;
pub mod caller;
pub mod config;
pub mod dbus;
pub mod engine;
pub mod interfaces;
pub mod kernel;
pub mod limits;
pub mod links;
pub mod service;
pub mod state;
