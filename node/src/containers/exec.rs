//! `docker exec`: processes run in a running container. An exec instance is created, then
//! started (its output streams to the client that started it, not to the container's log),
//! then inspected for its exit code, as the Engine API has it.

use std::sync::Arc;

use covey_runtime::ExecSpec;
use tokio::sync::{broadcast, watch};

use super::logs::{self, Output, Stream};
use super::{ContainerError, Containers, RunIo};

/// What `POST /containers/{id}/exec` asks for.
pub struct ExecRequest {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub tty: bool,
    /// Keep stdin open for the client that starts it (-i).
    pub open_stdin: bool,
}

pub struct Exec {
    pub id: String,
    pub container: String,
    pub args: Vec<String>,
    spec: ExecSpec,
    pub open_stdin: bool,
    /// Where the client's input goes, once the process has started.
    pub stdin: super::StdinSlot,
    /// Pid while running, then the exit code.
    pub state: watch::Sender<ExecState>,
    live: broadcast::Sender<Output>,
}

impl Exec {
    /// Whether it runs with a terminal.
    pub fn spec_tty(&self) -> bool {
        self.spec.tty
    }

    /// The pty's master once the process has one; `None` if it ends (or cannot start)
    /// first, or after a few seconds.
    pub async fn terminal(&self) -> Option<Arc<std::os::fd::OwnedFd>> {
        let mut slot = self.stdin.subscribe();
        let mut state = self.state.subscribe();
        let wait = async {
            tokio::select! {
                t = slot.wait_for(Option::is_some) => t.ok().and_then(|t| t.clone()),
                _ = state.wait_for(|s| matches!(s, ExecState::Exited(_))) => None,
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), wait)
            .await
            .ok()
            .flatten()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecState {
    Created,
    Running(i32),
    Exited(i32),
}

impl Containers {
    pub async fn create_exec(
        &self,
        container: &str,
        req: ExecRequest,
    ) -> Result<String, ContainerError> {
        let (_, r) = self.running(container)?;
        if req.args.first().is_none_or(|a| a.is_empty()) {
            return Err(ContainerError::InvalidInput(
                "no command specified for exec".into(),
            ));
        }
        let rootfs = self.images.snapshot(&r.id)?.rootfs;
        let user_spec = req
            .user
            .or_else(|| r.config.user.clone())
            .unwrap_or_else(|| r.config.image.user.clone());
        let user = covey_runtime::user::resolve(&rootfs, &user_spec)?;
        let hostname = r
            .config
            .hostname
            .clone()
            .unwrap_or_else(|| r.id.chars().take(12).collect());
        let mut env = covey_runtime::spec::environment(&r.config, &hostname, &user.home);
        env.extend(req.env);
        let cwd = req
            .working_dir
            .or_else(|| r.config.working_dir.clone())
            .or_else(|| Some(r.config.image.working_dir.clone()))
            .filter(|w| !w.is_empty());
        let id = super::names::new_id().map_err(ContainerError::internal)?;
        let exec = Exec {
            id: id.clone(),
            container: r.id.clone(),
            args: req.args.clone(),
            spec: ExecSpec {
                args: req.args,
                env,
                cwd,
                uid: user.uid,
                gid: user.gid,
                tty: req.tty,
            },
            open_stdin: req.open_stdin,
            stdin: Arc::new(watch::channel(None).0),
            state: watch::channel(ExecState::Created).0,
            live: broadcast::channel(1024).0,
        };
        self.execs().insert(id.clone(), Arc::new(exec));
        Ok(id)
    }

    /// Runs `args` in `container` to its end, as a health check does: its exit code, or
    /// `None` if it did not end within `timeout`. Its record does not outlive it (probes
    /// run every few seconds for months).
    pub async fn probe(
        self: &Arc<Self>,
        container: &str,
        args: Vec<String>,
        timeout: std::time::Duration,
    ) -> Result<Option<i32>, ContainerError> {
        let request = ExecRequest {
            args,
            env: Vec::new(),
            user: None,
            working_dir: None,
            tty: false,
            open_stdin: false,
        };
        let id = self.create_exec(container, request).await?;
        let exec = self.exec(&id)?;
        let mut state = exec.state.subscribe();
        let outcome = async {
            self.start_exec(&id).await?;
            let ended = state
                .wait_for(|s| matches!(s, ExecState::Exited(_)))
                .await
                .map(|s| *s);
            Ok::<_, ContainerError>(match ended {
                Ok(ExecState::Exited(code)) => Some(code),
                _ => None,
            })
        };
        let result = tokio::time::timeout(timeout, outcome).await;
        self.execs().remove(&id);
        match result {
            Ok(r) => r,
            Err(_) => Ok(None),
        }
    }

    pub fn exec(&self, id: &str) -> Result<Arc<Exec>, ContainerError> {
        self.execs()
            .get(id)
            .cloned()
            .ok_or_else(|| ContainerError::NotFound(format!("exec instance {id}")))
    }

    /// Starts an exec instance. The receiver is subscribed before the process starts, so
    /// it sees all the output, then `End` once the exit code is recorded (the client reads
    /// the code when its stream ends). A process that cannot start reports why on its
    /// stderr and exits 127 (no such command) or 126, as with dockerd.
    pub async fn start_exec(
        self: &Arc<Self>,
        id: &str,
    ) -> Result<broadcast::Receiver<Output>, ContainerError> {
        let exec = self.exec(id)?;
        if *exec.state.borrow() != ExecState::Created {
            return Err(ContainerError::Conflict(format!(
                "exec instance {id} has already been started"
            )));
        }
        exec.state.send_replace(ExecState::Running(0));
        let rx = exec.live.subscribe();
        let tty = exec.spec.tty;
        let RunIo {
            console,
            mut outputs,
            stdio,
            mut stdin,
        } = RunIo::new(&self.runtime_root, &exec.id, tty, exec.open_stdin)?;
        let me = self.clone();
        tokio::spawn(async move {
            let e2 = exec.clone();
            let helper = me.clone();
            let console_path = console.as_ref().map(|c| c.path().to_path_buf());
            let made = tokio::task::spawn_blocking(move || {
                helper.helper.exec(
                    &helper.runtime_root,
                    &e2.container,
                    &e2.spec,
                    stdio,
                    console_path.as_deref(),
                )
            })
            .await;
            let made = match (made, console) {
                (Ok(Ok(pid)), Some(console)) => match console.master().await {
                    Ok(master) => {
                        stdin = master.try_clone().ok();
                        outputs = vec![(master, Stream::Stdout)];
                        Ok(Ok(pid))
                    }
                    Err(e) => Ok(Err(e)),
                },
                (made, _) => made,
            };
            exec.stdin.send_replace(stdin.map(Arc::new));
            let live = exec.live.clone();
            let code = match made {
                Ok(Ok(pid)) => {
                    exec.state.send_replace(ExecState::Running(pid));
                    let exited = me.reaper.watch(pid, &exec.container);
                    let relays = outputs
                        .into_iter()
                        .map(|(fd, stream)| logs::relay(fd, stream, live.clone()));
                    let (_, code) = tokio::join!(futures_util::future::join_all(relays), exited);
                    code.unwrap_or(255)
                }
                Ok(Err(e)) => {
                    let msg = e.to_string();
                    let _ = live.send(Output::Data(Stream::Stderr, format!("{msg}\n").into()));
                    if msg.contains("not found") {
                        127
                    } else {
                        126
                    }
                }
                Err(e) => {
                    let _ = live.send(Output::Data(Stream::Stderr, format!("{e}\n").into()));
                    126
                }
            };
            exec.stdin.send_replace(None);
            exec.state.send_replace(ExecState::Exited(code));
            let _ = live.send(Output::End);
        });
        Ok(rx)
    }

    fn execs(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Arc<Exec>>> {
        self.execs.lock().unwrap_or_else(|p| p.into_inner())
    }
}
