//! Containers a previous daemon left running. They kept running (their init was the old
//! daemon's child and passed to the system's init), and their output waited in their pipes,
//! which the runtime helper kept and handed over: this daemon reads them again. It is not
//! their parent, so it cannot collect their exit status: it watches them through a pidfd
//! and records the exit as unknown. Real exit codes across restarts need covey's own init
//! in each container (the runtime issue's next step).

use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Arc;

use tokio::io::unix::AsyncFd;

use super::{Container, Containers};

/// Docker's code for an exit it could not observe.
const UNKNOWN_EXIT: i32 = 255;

pub fn adopt(containers: Arc<Containers>, c: Arc<Container>, pipes: Option<Vec<OwnedFd>>) {
    let r = c.snapshot();
    let Some(pid) = r.pid else { return };
    // The pid may have been reused since: it must still be in the container's cgroup.
    let ours = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .is_ok_and(|cg| cg.contains(&format!("/covey/{}", r.id)));
    let pidfd = if ours { pidfd_open(pid) } else { None };
    tokio::spawn(async move {
        if let (Some(_), Some(p)) = (&pidfd, pipes) {
            // The order they were kept in: a pty's master alone, or stdout then stderr.
            let outputs = p
                .into_iter()
                .zip([super::logs::Stream::Stdout, super::logs::Stream::Stderr])
                .collect();
            containers.read_output(&c, outputs).await;
        }
        let lost =
            "exit status unknown: the container exited while the daemon was restarting".to_string();
        match pidfd {
            // Alive: wait until the pidfd turns readable, which is when the process exits.
            Some(fd) => {
                // SAFETY: the OwnedFd moves into the AsyncFd, which owns it (open, the same
                // description) until it is dropped.
                if let Ok(afd) = unsafe { AsyncFd::register(fd) } {
                    let _ = afd.readable().await;
                }
                tracing::info!(container = %r.id, pid, "adopted container exited");
                containers.exited(&r.id, UNKNOWN_EXIT, Some(lost)).await;
            }
            None => containers.exited(&r.id, UNKNOWN_EXIT, Some(lost)).await,
        }
    });
}

/// A pidfd for `pid` if it is alive. (nix 0.29 has no wrapper for pidfd_open.)
fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: a plain syscall; on success it returns a new descriptor we then own.
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: see above.
    Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}
