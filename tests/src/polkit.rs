//! A real polkitd on a test bus: run in a private mount namespace where the
//! project's .policy file and the test's rules are bind-mounted over polkit's
//! directories, so the host's polkit configuration is never touched.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use crate::bus::TestBus;

/// Users and groups the authorization tests act as (created once, kept:
/// system accounts without home or shell).
pub const USERS: &[&str] = &["xdpd-alice", "xdpd-bob", "xdpd-carol", "xdpd-dave", "xdpd-admin"];
pub const ADMIN_GROUP: &str = "xdpd-admins";

pub fn ensure_test_users() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let exists = |kind: &str, name: &str| {
            Command::new("getent").args([kind, name]).output().is_ok_and(|o| o.status.success())
        };
        if !exists("group", ADMIN_GROUP) {
            assert!(Command::new("groupadd").args(["-r", ADMIN_GROUP]).status().is_ok_and(|s| s.success()));
        }
        for user in USERS {
            if !exists("passwd", user) {
                let mut cmd = Command::new("useradd");
                cmd.args(["-r", "-M", "-s", "/usr/sbin/nologin"]);
                if *user == "xdpd-admin" {
                    cmd.args(["-G", ADMIN_GROUP]);
                }
                assert!(cmd.arg(user).status().is_ok_and(|s| s.success()), "useradd {user}");
            }
        }
    });
}

pub fn uid(user: &str) -> u32 {
    let out = Command::new("id").args(["-u", user]).output().expect("id");
    String::from_utf8_lossy(&out.stdout).trim().parse().expect("uid")
}

pub struct Polkit {
    child: Child,
    dir: PathBuf,
}

fn repo_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

impl Polkit {
    /// Starts polkitd on `bus` with the project's actions and `rules` (JavaScript).
    pub fn start(bus: &TestBus, rules: &str) -> Polkit {
        ensure_test_users();
        let dir = bus.dir.join("polkit");
        for sub in ["actions", "rules.d", "empty"] {
            std::fs::create_dir_all(dir.join(sub)).expect("polkit dirs");
        }
        std::fs::copy(repo_file("polkit/org.xdp.manager1.policy"), dir.join("actions/org.xdp.manager1.policy"))
            .expect("copy .policy");
        std::fs::write(dir.join("rules.d/50-xdpd-test.rules"), rules).expect("rules");
        let script = format!(
            "set -e; mount --bind {d}/actions /usr/share/polkit-1/actions; \
             mount --bind {d}/rules.d /etc/polkit-1/rules.d; \
             mount --bind {d}/empty /usr/share/polkit-1/rules.d; \
             exec /usr/lib/polkit-1/polkitd --no-debug",
            d = dir.display()
        );
        let log = std::fs::File::create(dir.join("polkitd.log")).expect("polkit log");
        let child = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", &script])
            .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start polkitd");
        let polkit = Polkit { child, dir };
        let start = Instant::now();
        loop {
            let (ok, out, _) = bus.busctl(&["--no-pager", "list", "--no-legend"]);
            if ok && out.contains("org.freedesktop.PolicyKit1") {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(15), "polkitd did not start: {}", polkit.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        polkit
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("polkitd.log")).unwrap_or_default()
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Polkit {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("--- polkitd log ---\n{}", self.log());
        }
    }
}

/// A zbus connection whose peer credentials are `user`'s: the socket is
/// connected on a thread that switched (only itself, with raw syscalls) to
/// the user's uid and gid, which is what the bus records for the connection.
pub async fn connect_as(bus: &TestBus, user: &str) -> zbus::Connection {
    let uid = self::uid(user);
    let out = std::process::Command::new("id").args(["-g", user]).output().expect("id -g");
    let gid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().expect("gid");
    let socket = bus.address.strip_prefix("unix:path=").expect("a unix:path address").to_string();
    let stream = std::thread::spawn(move || {
        let groups = [gid];
        // SAFETY: per-thread credential changes (raw syscalls, not glibc's process-wide
        // wrappers); the thread ends right after connecting.
        unsafe {
            assert_eq!(libc::syscall(libc::SYS_setgroups, 1usize, groups.as_ptr()), 0);
            assert_eq!(libc::syscall(libc::SYS_setresgid, gid, gid, gid), 0);
            assert_eq!(libc::syscall(libc::SYS_setresuid, uid, uid, uid), 0);
        }
        std::os::unix::net::UnixStream::connect(socket)
    })
    .join()
    .expect("connecting thread")
    .expect("connect to the bus socket");
    zbus::connection::Builder::unix_stream(stream).user_id(uid).build().await.expect("authenticate as the test user")
}
