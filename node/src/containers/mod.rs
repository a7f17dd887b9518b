//! Containers on this node, as the Engine API's container endpoints see them: create
//! (configuration and a root filesystem), start (a process, through the runtime helper),
//! stop, kill, wait, remove, logs and attach. Records persist under
//! `<data-root>/containers/<id>/`; runtime state lives under `<exec-root>/runtime/`.

mod adopt;
pub mod console;
pub mod exec;
pub mod logs;
pub mod names;
pub mod reaper;
pub mod record;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use covey_images::ImageService;
use covey_runtime::helper::Helper;
use covey_runtime::{spec, ContainerConfig, ImageDefaults, Runtime, RuntimeError, Stdio};
use nix::sys::signal::Signal;
use tokio::sync::{broadcast, watch};

use crate::events::{container_event, Events};
use logs::{LogFile, Output, Stream};
use reaper::Reaper;
pub use record::{Record, Status};

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("No such container: {0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("Container {0} is not running")]
    NotRunning(String),
    #[error("container {0} is already {1}")]
    NotModified(String, &'static str),
    #[error("{0}")]
    InvalidInput(String),
    #[error(transparent)]
    Image(#[from] covey_images::Error),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("{0}")]
    Internal(String),
}

impl ContainerError {
    fn internal(e: impl std::fmt::Display) -> Self {
        ContainerError::Internal(e.to_string())
    }
}

/// Where a run's input goes (a stdin pipe or a pty master), once it has started.
pub type StdinSlot = Arc<watch::Sender<Option<Arc<std::os::fd::OwnedFd>>>>;

/// What `docker create` asks for, in covey's terms.
pub struct CreateRequest {
    /// Keep stdin open for attached clients (-i).
    pub open_stdin: bool,
    pub name: Option<String>,
    pub image: String,
    pub config: ContainerConfig,
    pub auto_remove: bool,
    pub stop_signal: Option<String>,
    pub stop_timeout: Option<u64>,
    pub request: serde_json::Value,
}

/// One container: its record and what its users wait on.
pub struct Container {
    pub record: Mutex<Record>,
    dir: PathBuf,
    log: Arc<LogFile>,
    /// Live output of the current run, for attached clients.
    live: broadcast::Sender<Output>,
    /// How many times it exited, and the last exit code.
    exits: watch::Sender<(u64, i32)>,
    removed: watch::Sender<bool>,
    /// True while a run's output is still being read into the log.
    pumping: watch::Sender<bool>,
    /// Where attached input goes: the stdin pipe or the pty master of the current run;
    /// none without -i or -t, or before the run starts (clients attach before it does).
    pub stdin: StdinSlot,
    /// Lifecycle operations on one container happen one at a time.
    op: tokio::sync::Mutex<()>,
}

impl Container {
    fn new(record: Record, dir: PathBuf, log_max_bytes: u64) -> Self {
        let code = record.exit_code;
        Self {
            log: Arc::new(LogFile::with_limit(&dir, log_max_bytes)),
            record: Mutex::new(record),
            dir,
            live: broadcast::channel(1024).0,
            exits: watch::channel((0, code)).0,
            removed: watch::channel(false).0,
            pumping: watch::channel(false).0,
            stdin: Arc::new(watch::channel(None).0),
            op: tokio::sync::Mutex::new(()),
        }
    }

    pub fn snapshot(&self) -> Record {
        self.record
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn update(&self, f: impl FnOnce(&mut Record)) {
        let mut r = self.record.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut r);
        if let Err(e) = r.save(&self.dir) {
            tracing::warn!(container = %r.id, "saving the container record: {e}");
        }
    }

    pub fn log_path(&self) -> &Path {
        self.log.path()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Output> {
        self.live.subscribe()
    }

    /// Whether the container is stopped and all it printed is in its log.
    pub fn quiet(&self) -> bool {
        self.snapshot().status != Status::Running && !*self.pumping.borrow()
    }
}

pub struct Containers {
    dir: PathBuf,
    runtime_root: PathBuf,
    /// Shared with blocking tasks, which take clones.
    runtime: Arc<Runtime>,
    helper: Helper,
    images: Arc<ImageService>,
    reaper: Arc<Reaper>,
    table: Mutex<HashMap<String, Arc<Container>>>,
    /// Exec instances, kept (like dockerd) for inspection after they end.
    execs: Mutex<HashMap<String, Arc<exec::Exec>>>,
    /// Where create, start, kill, die, stop and destroy are reported.
    events: Arc<Events>,
    /// A container's log is rotated past this (the board's flash setting).
    log_max_bytes: u64,
}

impl Containers {
    /// Exits of the daemon's children by pid: a command the daemon runs must wait for its
    /// exit here, since the subreaper reaps every child.
    pub fn reaper(&self) -> Arc<Reaper> {
        self.reaper.clone()
    }

    /// Opens the container store, starts the runtime helper and the reaper, and takes
    /// back the containers a previous daemon left.
    pub async fn open(
        data_root: &Path,
        exec_root: &Path,
        images: Arc<ImageService>,
        events: Arc<Events>,
        log_max_bytes: u64,
    ) -> anyhow::Result<Arc<Self>> {
        use anyhow::Context;
        let dir = data_root.join("containers");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let runtime_root = exec_root.join("runtime");
        let runtime = Arc::new(Runtime::new(&runtime_root)?);
        let reaper = Arc::new(Reaper::default());
        reaper.start().context("watching for exits (SIGCHLD)")?;
        let exe =
            std::env::current_exe().context("finding the covey binary for the runtime helper")?;
        // Exits pushed by the helpers, ours and earlier daemons', go where the reaper's go.
        let deliver = {
            let reaper = reaper.clone();
            move |e: covey_runtime::helper::Exited| reaper.deliver(e.pid, Some(e.id), e.code)
        };
        // The helpers earlier daemons left (parents of the containers they made): the pipes
        // they kept, and their containers' exits from now on; watched before the records
        // are read, so that an exit is either in its file by then or pushed after. Then a
        // helper of our own, for the containers we make.
        let helpers = exec_root.join("helpers");
        let (helpers_dir, on_exit) = (helpers.clone(), deliver.clone());
        let pipes = tokio::task::spawn_blocking(move || {
            covey_runtime::helper::take_over(&helpers_dir, on_exit)
        })
        .await
        .unwrap_or_default();
        let helpers_arg = helpers.display().to_string();
        let helper = Helper::spawn(
            &exe,
            &["runtime-helper", "--socket-dir", &helpers_arg],
            deliver,
        )
        .context("starting the runtime helper")?;
        let me = Arc::new(Self {
            dir,
            runtime_root,
            runtime,
            helper,
            images,
            reaper,
            table: Mutex::new(HashMap::new()),
            execs: Mutex::new(HashMap::new()),
            events,
            log_max_bytes,
        });
        me.load_records(pipes);
        me.sweep().await;
        Ok(me)
    }

    fn load_records(self: &Arc<Self>, mut pipes: HashMap<String, Vec<std::os::fd::OwnedFd>>) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            match Record::load(&e.path()) {
                Ok(r) => {
                    let c = Arc::new(Container::new(r.clone(), e.path(), self.log_max_bytes));
                    self.table().insert(r.id.clone(), c.clone());
                    if r.status == Status::Running {
                        adopt::adopt(self.clone(), c, pipes.remove(&r.id));
                    }
                }
                Err(err) => {
                    tracing::warn!(dir = %e.path().display(), "unreadable container record: {err}")
                }
            }
        }
    }

    /// Removes what a crash left without a record: runtime state, bundles and cgroups of
    /// containers that never got one, and their root filesystems (which hold mounts).
    async fn sweep(&self) {
        let known: std::collections::HashSet<String> = self.table().keys().cloned().collect();
        let rt = self.runtime.clone();
        let orphans: Vec<String> = rt
            .known()
            .into_iter()
            .filter(|id| !known.contains(id))
            .collect();
        for id in &orphans {
            tracing::info!(container = %id, "removing runtime state left without a container record");
        }
        let _ = tokio::task::spawn_blocking(move || {
            for id in orphans {
                let _ = rt.cleanup(&id);
                let _ = rt.remove_bundle(&id);
            }
        })
        .await;
        for id in self.images.snapshot_ids().unwrap_or_default() {
            if !known.contains(&id) {
                tracing::info!(container = %id, "removing a root filesystem left without a container record");
                if let Err(e) = self.images.remove_snapshot(&id).await {
                    tracing::warn!(container = %id, "removing the orphaned root filesystem: {e}");
                }
            }
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Container>>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Finds a container by ID, name or unique ID prefix, as the docker CLI names them.
    pub fn get(&self, name: &str) -> Result<Arc<Container>, ContainerError> {
        let table = self.table();
        if let Some(c) = table.get(name) {
            return Ok(c.clone());
        }
        let bare = name.trim_start_matches('/');
        if let Some(c) = table.values().find(|c| c.snapshot().name == bare) {
            return Ok(c.clone());
        }
        let mut by_prefix = table
            .iter()
            .filter(|(id, _)| !name.is_empty() && id.starts_with(name));
        match (by_prefix.next(), by_prefix.next()) {
            (Some((_, c)), None) => Ok(c.clone()),
            _ => Err(ContainerError::NotFound(name.to_string())),
        }
    }

    pub fn list(&self, all: bool) -> Vec<Record> {
        let mut v: Vec<Record> = self
            .table()
            .values()
            .map(|c| c.snapshot())
            .filter(|r| all || r.status == Status::Running)
            .collect();
        v.sort_by(|a, b| b.created.cmp(&a.created));
        v
    }

    pub async fn create(&self, mut req: CreateRequest) -> Result<String, ContainerError> {
        let image = self.images.get(&req.image)?;
        let image_config: serde_json::Value =
            serde_json::from_slice(&self.images.config(&image)?).unwrap_or(serde_json::Value::Null);
        req.config.image = ImageDefaults::from_image_config(&image_config);
        let command = spec::command(&req.config)?;
        let id = names::new_id().map_err(ContainerError::internal)?;
        let name = {
            let table = self.table();
            let taken = |n: &str| table.values().any(|c| c.snapshot().name == n);
            match req.name.as_deref().map(|n| n.trim_start_matches('/')) {
                Some(n) if !names::valid(n) => {
                    return Err(ContainerError::InvalidInput(format!(
                        "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                    )))
                }
                Some(n) if taken(n) => {
                    return Err(ContainerError::Conflict(format!(
                        "Conflict. The container name \"/{n}\" is already in use. You have to remove (or rename) that container to be able to reuse that name."
                    )))
                }
                Some(n) => n.to_string(),
                None => names::generate(taken),
            }
        };
        let dir = self.dir.join(&id);
        std::fs::create_dir_all(&dir).map_err(ContainerError::internal)?;
        let made = self
            .prepare(&id, &image.id.to_string(), &req.config, &dir)
            .await;
        if let Err(e) = made {
            let _ = self.images.remove_snapshot(&id).await;
            let _ = self.runtime.remove_bundle(&id);
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        let stop_signal = req
            .stop_signal
            .clone()
            .or_else(|| {
                image_config
                    .pointer("/config/StopSignal")
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| "SIGTERM".into());
        parse_signal(&stop_signal)?;
        let record = Record {
            id: id.clone(),
            name,
            image: req.image,
            image_id: image.id.to_string(),
            config: req.config,
            command,
            created: record::now(),
            status: Status::Created,
            pid: None,
            exit_code: 0,
            oom_killed: false,
            error: String::new(),
            started_at: None,
            finished_at: None,
            auto_remove: req.auto_remove,
            open_stdin: req.open_stdin,
            stop_signal,
            stop_timeout: req.stop_timeout.unwrap_or(10),
            request: req.request,
        };
        record.save(&dir).map_err(ContainerError::internal)?;
        self.events.publish(container_event(&record, "create"));
        self.table().insert(
            id.clone(),
            Arc::new(Container::new(record, dir, self.log_max_bytes)),
        );
        Ok(id)
    }

    /// The root filesystem, the `/etc` files and the OCI bundle of a new container.
    async fn prepare(
        &self,
        id: &str,
        image_id: &str,
        config: &ContainerConfig,
        dir: &Path,
    ) -> Result<(), ContainerError> {
        let snap = self.images.prepare_snapshot(id, image_id).await?;
        let hostname = config
            .hostname
            .clone()
            .unwrap_or_else(|| id.chars().take(12).collect());
        let etc = covey_runtime::etc::write(dir, &hostname, config)?;
        let spec = spec::build(id, config, &snap.rootfs, &etc)?;
        self.runtime.write_bundle(id, &spec)?;
        Ok(())
    }

    pub async fn start(self: &Arc<Self>, name: &str) -> Result<(), ContainerError> {
        let c = self.get(name)?;
        let _op = c.op.lock().await;
        let r = c.snapshot();
        if r.status == Status::Running {
            return Err(ContainerError::NotModified(r.id, "started"));
        }
        let id = r.id.clone();
        let tty = r.config.tty;
        let RunIo {
            console,
            mut outputs,
            stdio,
            mut stdin,
        } = RunIo::new(&self.runtime_root, &id, tty, r.open_stdin)?;
        let me = self.clone();
        let id2 = id.clone();
        let console_path = console.as_ref().map(|c| c.path().to_path_buf());
        let made = tokio::task::spawn_blocking(move || {
            if me.runtime.exists(&id2) {
                // The previous run's process side: gone, but still recorded.
                me.runtime.delete(&id2, true)?;
            }
            me.helper
                .create(&me.runtime_root, &id2, stdio, console_path.as_deref())
        })
        .await
        .map_err(ContainerError::internal)?;
        let pid = match made {
            Ok(pid) => pid,
            Err(e) => return Err(self.start_failed(&c, e).await),
        };
        let exited = self.reaper.watch(pid, &id);
        if let Some(console) = console {
            match console.master().await {
                Ok(master) => {
                    stdin = Some(master.try_clone().map_err(ContainerError::internal)?);
                    outputs = vec![(master, Stream::Stdout)];
                }
                Err(e) => return Err(self.start_failed(&c, e).await),
            }
        }
        c.stdin.send_replace(stdin.map(Arc::new));
        if r.config.network == covey_runtime::NetworkMode::None {
            // Created, not yet started: the command will find loopback up.
            let up =
                tokio::task::spawn_blocking(move || covey_runtime::network::loopback_up(pid)).await;
            if let Ok(Err(e)) = up {
                tracing::warn!(container = %id, "bringing loopback up: {e}");
            }
        }
        self.read_output(&c, outputs).await;
        let me = self.clone();
        let id2 = id.clone();
        let started = tokio::task::spawn_blocking(move || me.runtime.start(&id2))
            .await
            .map_err(ContainerError::internal)?;
        if let Err(e) = started {
            return Err(self.start_failed(&c, e).await);
        }
        c.update(|r| {
            r.status = Status::Running;
            r.pid = Some(pid);
            r.error.clear();
            r.started_at = Some(record::now());
            r.finished_at = None;
            r.oom_killed = false;
        });
        self.events.publish(container_event(&c.snapshot(), "start"));
        let me = self.clone();
        tokio::spawn(async move {
            let code = exited.await.unwrap_or(255);
            me.exited(&id, code, None, None).await;
        });
        Ok(())
    }

    /// Reads a run's stdout and stderr into the log and to attached clients, and has the
    /// helper keep copies of the pipes, so that they outlive this daemon if it goes first.
    async fn read_output(
        self: &Arc<Self>,
        c: &Arc<Container>,
        outputs: Vec<(std::os::fd::OwnedFd, Stream)>,
    ) {
        let id = c.snapshot().id;
        match outputs
            .iter()
            .map(|(fd, _)| fd.try_clone())
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(copies) => {
                let me = self.clone();
                let id = id.clone();
                let kept = tokio::task::spawn_blocking(move || me.helper.keep(&id, &copies)).await;
                if let Ok(Err(e)) = kept {
                    tracing::warn!("the runtime helper cannot keep the container's pipes: {e}");
                }
            }
            Err(_) => {
                tracing::warn!(container = %id, "cannot copy the container's pipes for the helper")
            }
        }
        let live = c.live.clone();
        let log = c.log.clone();
        let pumping = c.pumping.clone();
        pumping.send_replace(true);
        tokio::spawn(async move {
            let pumps = outputs
                .into_iter()
                .map(|(fd, stream)| logs::pump(fd, stream, log.clone(), live.clone()));
            futures_util::future::join_all(pumps).await;
            pumping.send_replace(false);
            let _ = live.send(Output::End);
        });
    }

    /// Cleans up after a start that failed, and removes the container if it asked to be
    /// removed when done, as dockerd does.
    async fn start_failed(self: &Arc<Self>, c: &Arc<Container>, e: RuntimeError) -> ContainerError {
        let (id, me) = (c.snapshot().id, self.clone());
        let id2 = id.clone();
        let _ = tokio::task::spawn_blocking(move || {
            // The helper may already keep this run's pipes.
            let _ = me.helper.forget(&id2);
            me.runtime.cleanup(&id2)
        })
        .await;
        c.update(|r| r.error = e.to_string());
        if c.snapshot().auto_remove {
            if let Err(err) = self.remove(&id, true).await {
                tracing::warn!(container = %id, "auto-remove after a failed start: {err}");
            }
        }
        e.into()
    }

    /// Records an exit, wakes the waiters, and removes the container if it asked to be.
    /// `finished_at` is now unless the exit came from its record (while the daemon was down).
    async fn exited(
        self: &Arc<Self>,
        id: &str,
        code: i32,
        error: Option<String>,
        finished_at: Option<String>,
    ) {
        let Ok(c) = self.get(id) else { return };
        let oom = self.runtime.oom_killed(id);
        let (me, id2) = (self.clone(), id.to_string());
        let _ = tokio::task::spawn_blocking(move || me.helper.forget(&id2)).await;
        c.update(|r| {
            r.status = Status::Exited;
            r.oom_killed = oom;
            r.pid = None;
            r.exit_code = code;
            r.finished_at = Some(finished_at.unwrap_or_else(record::now));
            if let Some(e) = error {
                r.error = e;
            }
        });
        let r = c.snapshot();
        if oom {
            self.events.publish(container_event(&r, "oom"));
        }
        self.events
            .publish(container_event(&r, "die").with("exitCode", code.to_string()));
        c.exits.send_modify(|(n, last)| {
            *n += 1;
            *last = code;
        });
        if c.snapshot().auto_remove {
            if let Err(e) = self.remove(id, true).await {
                tracing::warn!(container = %id, "auto-remove: {e}");
            }
        }
    }

    /// The container and its record, if it is running.
    fn running(&self, name: &str) -> Result<(Arc<Container>, Record), ContainerError> {
        let c = self.get(name)?;
        let r = c.snapshot();
        if r.status != Status::Running {
            return Err(ContainerError::NotRunning(r.id));
        }
        Ok((c, r))
    }

    pub async fn kill(&self, name: &str, signal: &str) -> Result<(), ContainerError> {
        let (_, r) = self.running(name)?;
        let sig = parse_signal(signal)?;
        self.signal(&r.id, sig, sig == Signal::SIGKILL).await
    }

    async fn signal(&self, id: &str, sig: Signal, all: bool) -> Result<(), ContainerError> {
        let (id, rt) = (id.to_string(), self.runtime.clone());
        let id2 = id.clone();
        tokio::task::spawn_blocking(move || rt.kill(&id2, sig, all))
            .await
            .map_err(ContainerError::internal)??;
        if let Ok(c) = self.get(&id) {
            let event =
                container_event(&c.snapshot(), "kill").with("signal", (sig as i32).to_string());
            self.events.publish(event);
        }
        Ok(())
    }

    /// The stop signal, then after `timeout` seconds SIGKILL, as `docker stop`.
    pub async fn stop(&self, name: &str, timeout: Option<u64>) -> Result<(), ContainerError> {
        let c = self.get(name)?;
        let r = c.snapshot();
        if r.status != Status::Running {
            return Err(ContainerError::NotModified(r.id, "stopped"));
        }
        let mut exits = c.exits.subscribe();
        let before = exits.borrow().0;
        let sig = parse_signal(&r.stop_signal)?;
        let _ = self.signal(&r.id, sig, false).await;
        let t = Duration::from_secs(timeout.unwrap_or(r.stop_timeout));
        let wait = exits.wait_for(|(n, _)| *n > before);
        if tokio::time::timeout(t, wait).await.is_err() {
            tracing::info!(container = %r.id, "did not stop after {}s: killing it", t.as_secs());
            self.signal(&r.id, Signal::SIGKILL, true).await?;
            let _ = tokio::time::timeout(
                Duration::from_secs(10),
                exits.wait_for(|(n, _)| *n > before),
            )
            .await;
        }
        self.events.publish(container_event(&c.snapshot(), "stop"));
        Ok(())
    }

    /// Waits as `docker wait --condition`: `not-running` (the default), `next-exit` or
    /// `removed`. Returns the exit code.
    pub async fn wait(&self, name: &str, condition: &str) -> Result<i32, ContainerError> {
        let c = self.get(name)?;
        let mut exits = c.exits.subscribe();
        let (before, last) = *exits.borrow();
        match condition {
            "" | "not-running" if c.snapshot().status != Status::Running => Ok(last),
            "" | "not-running" | "next-exit" => {
                let r = exits
                    .wait_for(|(n, _)| *n > before)
                    .await
                    .map_err(ContainerError::internal)?;
                Ok(r.1)
            }
            "removed" => {
                let mut removed = c.removed.subscribe();
                let _ = removed.wait_for(|r| *r).await;
                Ok(c.exits.borrow().1)
            }
            other => Err(ContainerError::InvalidInput(format!(
                "invalid condition: {other:?}: expected not-running, next-exit or removed"
            ))),
        }
    }

    pub async fn remove(&self, name: &str, force: bool) -> Result<(), ContainerError> {
        let c = self.get(name)?;
        let r = c.snapshot();
        if r.status == Status::Running {
            if !force {
                return Err(ContainerError::Conflict(format!(
                    "You cannot remove a running container {}. Stop the container before attempting removal or force remove",
                    r.id
                )));
            }
            let mut exits = c.exits.subscribe();
            let before = exits.borrow().0;
            self.signal(&r.id, Signal::SIGKILL, true).await?;
            let _ = tokio::time::timeout(
                Duration::from_secs(10),
                exits.wait_for(|(n, _)| *n > before),
            )
            .await;
        }
        let (id, rt) = (r.id.clone(), self.runtime.clone());
        tokio::task::spawn_blocking(move || {
            rt.cleanup(&id)?;
            rt.remove_bundle(&id)
        })
        .await
        .map_err(ContainerError::internal)??;
        match self.images.remove_snapshot(&r.id).await {
            Err(e) if e.kind() != covey_images::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        let _ = std::fs::remove_dir_all(&c.dir);
        self.table().remove(&r.id);
        self.events.publish(container_event(&r, "destroy"));
        c.removed.send_replace(true);
        Ok(())
    }
}

pub use console::resize as resize_terminal;

/// A run's stdio as the daemon holds it: a pty (its master comes back through the console
/// socket), or pipes, with one for stdin if asked (-i). For containers and execs alike.
pub(crate) struct RunIo {
    pub console: Option<console::Console>,
    /// The read ends of the output pipes; filled with the pty's master when it comes.
    pub outputs: Vec<(std::os::fd::OwnedFd, Stream)>,
    /// What the run itself gets.
    pub stdio: Stdio,
    /// The write end of the stdin pipe (or, later, the pty's master).
    pub stdin: Option<std::os::fd::OwnedFd>,
}

impl RunIo {
    pub fn new(
        runtime_root: &Path,
        id: &str,
        tty: bool,
        open_stdin: bool,
    ) -> Result<Self, ContainerError> {
        if tty {
            let console = console::Console::listen(runtime_root, id)?;
            return Ok(Self {
                console: Some(console),
                outputs: Vec::new(),
                stdio: Stdio::default(),
                stdin: None,
            });
        }
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let mut io = Self {
            console: None,
            outputs: vec![(out_r, Stream::Stdout), (err_r, Stream::Stderr)],
            stdio: Stdio {
                stdin: None,
                stdout: Some(out_w),
                stderr: Some(err_w),
            },
            stdin: None,
        };
        if open_stdin {
            let (in_r, in_w) = pipe()?;
            io.stdio.stdin = Some(in_r);
            io.stdin = Some(in_w);
        }
        Ok(io)
    }
}

fn pipe() -> Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd), ContainerError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(ContainerError::internal)
}

/// `SIGTERM`, `TERM`, `term` or `15`.
pub fn parse_signal(s: &str) -> Result<Signal, ContainerError> {
    let bad = || ContainerError::InvalidInput(format!("Invalid signal: {s}"));
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad());
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    name.parse::<Signal>().map_err(|_| bad())
}
