//! xdpd: share the XDP hook of a network interface between many applications.
//!
//! Every application hands over its own XDP program; [`engine`] links all the
//! programs of an interface into one BPF program in userspace and swaps it in
//! atomically through [`kernel`]'s pinned `bpf_link`.

pub mod engine;
pub mod kernel;
