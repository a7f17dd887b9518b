//! Exits of containers and execs, by pid, to whoever watches them. The runtime helpers
//! are their parents and push their exits (`deliver`); the daemon is also a child
//! subreaper, so that if its own helper dies, the helper's children pass to the daemon and
//! their exits come here on SIGCHLD. An exit that comes before anyone watches (a container
//! that fails at once) is kept for a while.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// Exits nobody has asked about yet are dropped after this long: the processes of a
/// previous daemon (its execs), or of runs whose start failed.
const KEEP_UNCLAIMED: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct Reaper {
    /// Watchers by pid, and exits that came before their watcher.
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    waiters: HashMap<i32, oneshot::Sender<i32>>,
    /// By pid: the container it ran in, if known, the code, and when it came. The container
    /// tells a kept exit from that of a later process given the same pid.
    early: HashMap<i32, (Option<String>, i32, Instant)>,
}

impl Reaper {
    /// Becomes the subreaper and reaps on every SIGCHLD until the runtime ends. Where the
    /// system refuses a subreaper (qemu's user emulation does), the daemon still reaps its
    /// own children, and a dead helper's containers pass to init instead.
    pub fn start(self: &std::sync::Arc<Self>) -> std::io::Result<()> {
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            tracing::warn!("not the containers' subreaper ({e}): if a runtime helper dies, its containers pass to init");
        }
        let mut sigchld = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child())?;
        let me = self.clone();
        tokio::spawn(async move {
            // A tick as well: signals coalesce, and one may come between two waitpid loops.
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = sigchld.recv() => {}
                    _ = tick.tick() => {}
                }
                me.reap_all();
            }
        });
        Ok(())
    }

    fn reap_all(&self) {
        loop {
            let Some((pid, code)) = covey_runtime::reap_any() else {
                return;
            };
            self.deliver(pid, None, code);
        }
    }

    /// The exit of `pid`, which ran in container `container` if known (a helper says; an
    /// orphan the daemon reaped itself does not).
    pub(super) fn deliver(&self, pid: i32, container: Option<String>, code: i32) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match s.waiters.remove(&pid) {
            Some(tx) => {
                let _ = tx.send(code);
            }
            None => {
                let now = Instant::now();
                s.early
                    .retain(|_, (_, _, at)| now.duration_since(*at) < KEEP_UNCLAIMED);
                s.early.insert(pid, (container, code, now));
            }
        }
    }

    /// The exit code of `pid`, a process of container `container` (128+signal if killed),
    /// when it comes.
    pub fn watch(&self, pid: i32, container: &str) -> oneshot::Receiver<i32> {
        let (tx, rx) = oneshot::channel();
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match s.early.remove(&pid) {
            Some((c, code, _)) if c.as_deref().is_none_or(|c| c == container) => {
                let _ = tx.send(code);
            }
            _ => {
                s.waiters.insert(pid, tx);
            }
        }
        rx
    }
}
