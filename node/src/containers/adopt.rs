//! Containers a previous daemon left running. They kept running: their parent is the
//! runtime helper that made them, which outlived that daemon, kept their pipes (handed
//! over to this daemon, which reads on) and reaps them. An exit while no daemon was there
//! is in the container's exit file; one after is pushed by that helper, watched since this
//! daemon started (`helper::take_over`). If that helper cannot be watched (another
//! protocol version) or is gone, the container's pidfd says when it ends and its exit
//! file, if anyone recorded it, what the code was; else it is unknown (255, as Docker).

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use covey_runtime::helper::pidfd_open;
use tokio::io::unix::AsyncFd;

use super::{Container, Containers};

/// Docker's code for an exit it could not observe.
const UNKNOWN_EXIT: i32 = 255;
/// How long to wait, once an adopted container has ended, for its exit to be pushed or
/// recorded: its helper reaps at once, so this runs out only when no helper is left.
const RECORD_GRACE: Duration = Duration::from_secs(5);

pub fn adopt(containers: Arc<Containers>, c: Arc<Container>, pipes: Option<Vec<OwnedFd>>) {
    let r = c.snapshot();
    let Some(pid) = r.pid else { return };
    let recorded = containers
        .runtime
        .recorded_exit(&r.id)
        .filter(|e| e.pid == pid);
    // The pid may have been reused since: it must still be in the container's cgroup.
    let ours = recorded.is_none()
        && std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .is_ok_and(|cg| cg.contains(&format!("/covey/{}", r.id)));
    let pidfd = if ours { pidfd_open(pid) } else { None };
    tokio::spawn(async move {
        if let Some(p) = pipes {
            // What it printed while no daemon read is still in them, even if it has ended.
            // The order they were kept in: a pty's master alone, or stdout then stderr.
            let outputs = p
                .into_iter()
                .zip([super::logs::Stream::Stdout, super::logs::Stream::Stderr])
                .collect();
            containers.read_output(&c, outputs).await;
        }
        let (code, error, at) = match recorded {
            Some(e) => (e.code, None, Some(e.at)),
            None => ended(&containers, &r.id, pid, pidfd).await,
        };
        tracing::info!(container = %r.id, pid, code, "adopted container exited");
        let at = at.map(|t| humantime::format_rfc3339_nanos(t).to_string());
        containers.exited(&r.id, code, error, at).await;
    });
}

/// Waits for an adopted container to end; its code and, if it came from the exit file,
/// when it ended.
async fn ended(
    containers: &Containers,
    id: &str,
    pid: i32,
    pidfd: Option<OwnedFd>,
) -> (i32, Option<String>, Option<std::time::SystemTime>) {
    let rx = containers.reaper.watch(pid, id);
    // Pushed by its helper; never, if nobody will push it.
    let pushed = async move {
        match rx.await {
            Ok(code) => code,
            Err(_) => std::future::pending().await,
        }
    };
    let mut pushed = std::pin::pin!(pushed);
    // SAFETY: the OwnedFd moves into the AsyncFd, which owns it (open, the same
    // description) until it is dropped.
    if let Some(afd) = pidfd.and_then(|fd| unsafe { AsyncFd::register(fd) }.ok()) {
        tokio::select! {
            code = &mut pushed => return (code, None, None),
            // Readable once the process has exited.
            _ = afd.readable() => {}
        }
    }
    let deadline = Instant::now() + RECORD_GRACE;
    loop {
        if let Some(e) = containers
            .runtime
            .recorded_exit(id)
            .filter(|e| e.pid == pid)
        {
            return (e.code, None, Some(e.at));
        }
        if Instant::now() > deadline {
            let lost = "exit status unknown: no runtime helper saw the container end";
            return (UNKNOWN_EXIT, Some(lost.into()), None);
        }
        tokio::select! {
            code = &mut pushed => return (code, None, None),
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
}
