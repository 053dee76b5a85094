//! A polkit text agent for interactive authorization, started the way
//! systemctl does: only when a password could be typed (standard input is a
//! terminal), only for non-root callers (root is never asked), and only for
//! calls that may need it. Without an agent, ALLOW_INTERACTIVE_AUTH would make
//! polkit wait for an agent that never comes.

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Agent {
    child: Child,
}

impl Agent {
    /// Starts `pkttyagent` and waits until it has registered, if it makes sense
    /// here; `None` otherwise (no terminal, root, no pkttyagent).
    pub fn start() -> Option<Agent> {
        // SAFETY: isatty and geteuid have no preconditions.
        let (tty, root) = unsafe { (libc::isatty(libc::STDIN_FILENO) == 1, libc::geteuid() == 0) };
        if !tty || root {
            return None;
        }
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills two descriptors we own from here on.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return None;
        }
        // SAFETY: both descriptors were just created and are owned by nobody else.
        let (read_end, write_end) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let notify = write_end.as_raw_fd();
        let mut command = Command::new("pkttyagent");
        command.args(["--notify-fd", &notify.to_string(), "--fallback"]).stdout(Stdio::null());
        // SAFETY: between fork and exec only the async-signal-safe fcntl runs: the
        // agent inherits the notification pipe's write end.
        unsafe {
            command.pre_exec(move || {
                if libc::fcntl(notify, libc::F_SETFD, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().ok()?;
        drop(write_end);
        // The agent closes its end once it is registered (or dies); bounded wait.
        let mut pipe = std::fs::File::from(read_end);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut byte = [0u8; 1];
            let _ = pipe.read(&mut byte);
            let _ = tx.send(());
        });
        let _ = rx.recv_timeout(Duration::from_secs(5));
        Some(Agent { child })
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // SAFETY: signalling the agent we started, by its pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}
