//! Command-line configuration of the daemon.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// xdpd: share the XDP hook of network interfaces between many applications.
///
/// xdpd links the XDP programs that applications hand it into one BPF program
/// per interface and attaches it atomically. It is a D-Bus system service
/// (org.xdp.Manager1), normally started by D-Bus activation through systemd,
/// and at boot when xdpd.service is enabled (to restore persistent chains);
/// use xdpctl, busctl or gdbus to talk to it.
#[derive(Debug, Clone, Parser)]
#[command(name = "xdpd", version, about, long_about)]
pub struct Config {
    /// Directory for the service's record of programs (owners, options, objects).
    #[arg(long, value_name = "DIR", default_value = "/var/lib/xdpd")]
    pub state_dir: PathBuf,

    /// Directory in bpffs where links and maps are pinned.
    #[arg(long, value_name = "DIR", default_value = "/sys/fs/bpf/xdpd")]
    pub bpffs_root: PathBuf,

    /// Exit after this many seconds without requests (0: never). Chains stay
    /// attached; the next call starts the service again through D-Bus activation.
    /// Not while a persistent program waits for its interface to appear.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub idle_timeout: u64,

    /// Largest object accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = crate::engine::object::DEFAULT_MAX_OBJECT_SIZE)]
    pub max_object_size: usize,

    /// Most programs one interface may run.
    #[arg(long, value_name = "N", default_value_t = 128)]
    pub max_programs_per_link: usize,

    /// Most programs on all interfaces together (root's included): bounds the
    /// largest reply, which must fit one D-Bus message (the system bus drops a
    /// sender of more than 32 MiB; each program adds about 7 KiB to the
    /// introspection of the root).
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub max_programs: usize,

    /// Most programs one user may have on all interfaces together (root: no limit).
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub max_programs_per_uid: usize,

    /// Most kernel memory the maps of one user's programs may take, in bytes,
    /// estimated from the maps' definitions (root: no limit).
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 20)]
    pub max_map_memory_per_uid: u64,

    /// Most map memory one user's programs with `snapshot` may keep, in bytes
    /// (a snapshot is written when the service stops; root: no limit).
    #[arg(long, value_name = "BYTES", default_value_t = 16 << 20)]
    pub max_snapshot_bytes_per_uid: u64,

    /// Most requests one client (bus connection) may have in flight at once.
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub max_requests_per_client: usize,

    /// Directory of named network namespaces to follow (as `ip netns` and
    /// container runtimes make them): the interfaces of each are managed like
    /// the service's own.
    #[arg(long, value_name = "DIR", default_value = "/run/netns")]
    pub netns_dir: PathBuf,

    /// Connect to this bus address instead of the system bus (for tests).
    #[arg(long, value_name = "ADDRESS")]
    pub bus_address: Option<String>,

    /// Log to stderr even when journald is available.
    #[arg(long)]
    pub log_stderr: bool,
}

impl Config {
    pub fn idle_timeout(&self) -> Option<Duration> {
        (self.idle_timeout > 0).then(|| Duration::from_secs(self.idle_timeout))
    }
}
