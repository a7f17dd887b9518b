//! The executor: one task's life on this node, after swarmkit's `agent/exec`: pull its
//! image, make its container, start it, wait for it, stop it when told, through the
//! node's own container store (so `docker ps` shows task containers). Each step is
//! reported as Swarm's task states.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use covey_images::reference::Reference;
use covey_images::ImageService;
use covey_runtime::{ContainerConfig, Mount, NetworkMode, Resources};
use tokio::sync::watch;

use super::health;
use super::reporter::Reporter;
use super::Contact;
use crate::containers::{ContainerError, Containers, CreateRequest, Status};
use crate::manager::objects::service::{FileReference, TaskSpec};
use crate::manager::objects::task::TaskFile;
use crate::manager::objects::{Task, TaskState, TaskStatus};
use crate::manager::store::now_secs;
use crate::network::Networking;
use crate::volumes::Volumes;

/// What a task's controller needs of the node.
#[derive(Clone)]
pub struct Executor {
    pub containers: Arc<Containers>,
    pub images: Arc<ImageService>,
    /// One pull per image at a time: the tasks of a new service all want the same image
    /// at once, and the first pull serves them all.
    pub pulling: Arc<std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    pub network: Arc<Networking>,
    /// The node's named volumes, made on a mount's first use.
    pub volumes: Arc<Volumes>,
    /// Where tasks' configs are written as files (`<exec-root>/configs`, tmpfs on most
    /// systems), one directory per task.
    pub files: PathBuf,
    /// Where tasks' secrets are written (`<exec-root>/secrets`), one directory per task:
    /// a tmpfs the daemon mounts itself, so a secret is never on the node's disk.
    pub secrets: PathBuf,
}

impl Executor {
    pub fn new(
        containers: Arc<Containers>,
        images: Arc<ImageService>,
        network: Arc<Networking>,
        volumes: Arc<Volumes>,
        files: PathBuf,
        secrets: PathBuf,
    ) -> Self {
        Executor {
            containers,
            images,
            pulling: Arc::default(),
            network,
            volumes,
            files,
            secrets,
        }
    }
}

/// How a running task's wait ended.
enum Outcome {
    Exited(i32),
    /// Told to stop, or unassigned.
    Changed,
    /// Its health check failed too often; its container was stopped.
    Unhealthy,
}

/// Aborts a spawned task when dropped: a health monitor ends with its wait.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How long a task on an overlay keeps running after it is told to stop, for the
/// network maps without it to reach every node.
const DRAIN: Duration = Duration::from_secs(1);

/// Swarm's default grace between the stop signal and SIGKILL.
const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// The container a task runs in: `web.1.<task id>`, `web.<node id>.<task id>`, as Swarm.
pub fn container_name(task: &Task) -> String {
    format!("{}.{}", task.name(), task.id)
}

/// Drives one task until it is removed from the node's assignments (`None` on `task`).
pub async fn control(
    exec: Executor,
    reporter: Arc<Reporter>,
    contact: Arc<Contact>,
    mut task: watch::Receiver<Option<Task>>,
) {
    let Some(first) = task.borrow_and_update().clone() else {
        return;
    };
    let name = container_name(&first);
    let mut ctl = Controller {
        exec,
        reporter,
        name,
        observed: first.status.state,
        id: first.id.clone(),
        contact,
        local_restarts: 0,
        restarting: false,
    };
    ctl.run(&mut task).await;
    // Removed from the assignments: the container goes with it.
    ctl.remove().await;
}

struct Controller {
    exec: Executor,
    reporter: Arc<Reporter>,
    id: String,
    name: String,
    /// The furthest state reported, here or by an earlier run of the agent.
    observed: TaskState,
    contact: Arc<Contact>,
    /// Restarts made while no manager could be reached.
    local_restarts: u64,
    /// The next bring-up starts the ended container again rather than reporting it.
    restarting: bool,
}

impl Controller {
    fn report(&mut self, state: TaskState, message: &str, err: &str, exit: Option<(i32, i32)>) {
        // States only move forward, and one already known (here, or by the manager from
        // an earlier run of this agent) is not said again.
        if state <= self.observed {
            return;
        }
        self.observed = state;
        let (pid, exit_code) = exit.unwrap_or((0, 0));
        let container_id = self
            .exec
            .containers
            .get(&self.name)
            .map(|c| c.snapshot().id)
            .unwrap_or_default();
        self.reporter.report(
            &self.id,
            TaskStatus {
                state,
                timestamp: now_secs(),
                message: message.into(),
                err: err.into(),
                container_id,
                pid,
                exit_code,
            },
        );
    }

    async fn run(&mut self, rx: &mut watch::Receiver<Option<Task>>) {
        loop {
            let Some(task) = rx.borrow_and_update().clone() else {
                return;
            };
            if task.desired_state > TaskState::Running {
                self.shut_down(&task).await;
            } else if !self.observed.is_terminal() {
                match self.bring_up(&task).await {
                    Err((state, err)) => self.report(state, "", &err, None),
                    Ok(false) => {}
                    Ok(true) => {
                        // Running: wait for it to end or for the manager to say stop.
                        match self.wait_or_change(&task, rx).await {
                            Outcome::Exited(code) => self.exited(code),
                            Outcome::Changed => continue,
                            Outcome::Unhealthy => {
                                self.report(
                                    TaskState::Failed,
                                    "",
                                    "task: unhealthy container",
                                    None,
                                );
                            }
                        }
                    }
                }
                if self.restart_offline(&task, rx).await {
                    continue;
                }
            }
            if self.observed.is_terminal() {
                // Ended: its addresses are free for other tasks now, so its interfaces and
                // resolver go (made again if it restarts here).
                self.exec.network.detach(&self.id).await;
            }
            // Nothing to do till the task changes.
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Pulls, creates and starts, reporting each step: true once running, false if it had
    /// already ended (and that was reported). Err: the terminal state and why.
    async fn bring_up(&mut self, task: &Task) -> Result<bool, (TaskState, String)> {
        let existing = self.exec.containers.get(&self.name).ok();
        if let Some(c) = &existing {
            let record = c.snapshot();
            if record.status == Status::Running {
                // Adopted after a daemon restart: its resolver and rules come back.
                self.connect(task).await?;
                self.report(
                    TaskState::Running,
                    "started",
                    "",
                    Some((record.pid.unwrap_or(0), 0)),
                );
                return Ok(true);
            }
            let again = std::mem::take(&mut self.restarting);
            if record.status == Status::Exited && !again && !started_before_boot(&record.started_at)
            {
                // It ended while this agent was away: that is its outcome.
                self.exited(record.exit_code);
                return Ok(false);
            }
            // Made but not started, stopped by a reboot, or restarted here: start it below.
        }
        if self.observed < TaskState::Accepted {
            self.report(TaskState::Accepted, "accepted", "", None);
        }
        if existing.is_none() {
            self.report(TaskState::Preparing, "preparing", "", None);
            let image = &task.spec.container_spec.image;
            self.pull(image)
                .await
                .map_err(|e| (TaskState::Rejected, e))?;
            let volumes = &self.exec.volumes;
            let mut config = container_config(&task.spec, &|name| {
                volumes.ensure(name).map_err(|e| e.to_string())
            })
            .map_err(|e| (TaskState::Rejected, e))?;
            config.mounts.extend(self.write_files(task)?);
            if let Some(path) = self.connect(task).await? {
                config.network = NetworkMode::Path { path };
                config.dns = vec![crate::network::dns::ADDRESS.to_string()];
            }
            let request = CreateRequest {
                open_stdin: false,
                name: Some(self.name.clone()),
                image: image.clone(),
                config,
                auto_remove: false,
                stop_signal: task.spec.container_spec.stop_signal.clone(),
                stop_timeout: Some(grace(&task.spec).as_secs()),
                request: serde_json::json!({ "Labels": labels(task) }),
            };
            self.exec
                .containers
                .create(request)
                .await
                .map_err(|e| (TaskState::Rejected, e.to_string()))?;
        }
        if existing.is_some() {
            // After a reboot the task's namespace and files are gone: made again at the
            // same paths.
            self.write_files(task)?;
            self.connect(task).await?;
        }
        self.report(TaskState::Starting, "starting", "", None);
        match self.exec.containers.start(&self.name).await {
            Ok(()) | Err(ContainerError::NotModified(..)) => {}
            Err(e) => return Err((TaskState::Failed, e.to_string())),
        }
        let pid = self
            .exec
            .containers
            .get(&self.name)
            .ok()
            .and_then(|c| c.snapshot().pid)
            .unwrap_or(0);
        // With a health check, it runs once a check passes (see `wait_or_change`).
        if self.health_check(task).is_none() {
            self.report(TaskState::Running, "started", "", Some((pid, 0)));
        }
        Ok(true)
    }

    /// The task's health check: its spec's over its image's.
    fn health_check(&self, task: &Task) -> Option<health::Check> {
        let images = &self.exec.images;
        let config: Option<serde_json::Value> = images
            .get(&task.spec.container_spec.image)
            .and_then(|image| images.config(&image))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        health::Check::of_task(&task.spec, config.as_ref())
    }

    /// The image, pulled if this node lacks it.
    async fn pull(&self, image: &str) -> Result<(), String> {
        if self.exec.images.get(image).is_ok() {
            return Ok(());
        }
        let lock = {
            let mut pulling = self.exec.pulling.lock().unwrap_or_else(|p| p.into_inner());
            pulling.entry(image.to_string()).or_default().clone()
        };
        let _one_at_a_time = lock.lock().await;
        if self.exec.images.get(image).is_ok() {
            return Ok(());
        }
        let reference: Reference = image
            .parse()
            .map_err(|e| format!("invalid image reference {image:?}: {e}"))?;
        let quiet = |_| {};
        match self.exec.images.pull(&reference, None, None, &quiet).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == covey_images::ErrorKind::NotFound => {
                Err(format!("No such image: {image}"))
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Waits for the container to exit (its code) or for the task to change (None).
    /// Waits for the container to end, for the manager to say stop, or for its health
    /// check to fail (it is then stopped); a first passing check reports it running.
    async fn wait_or_change(
        &mut self,
        task: &Task,
        rx: &mut watch::Receiver<Option<Task>>,
    ) -> Outcome {
        let containers = self.exec.containers.clone();
        let name = self.name.clone();
        let wait = containers.wait(&name, "not-running");
        tokio::pin!(wait);
        let (health_tx, mut health) = tokio::sync::mpsc::channel(2);
        let monitor = self.health_check(task).map(|check| {
            tokio::spawn(health::monitor(
                containers.clone(),
                name.clone(),
                check,
                health_tx,
            ))
        });
        let _stop_monitor = monitor.map(AbortOnDrop);
        loop {
            tokio::select! {
                code = &mut wait => return Outcome::Exited(code.unwrap_or(-1)),
                changed = rx.changed() => {
                    if changed.is_err() {
                        return Outcome::Changed;
                    }
                    let stop = rx.borrow().as_ref().is_none_or(|t| t.desired_state > TaskState::Running);
                    if stop {
                        return Outcome::Changed;
                    }
                }
                Some(h) = health.recv() => match h {
                    health::Health::Healthy => {
                        let pid = containers.get(&name).ok().and_then(|c| c.snapshot().pid).unwrap_or(0);
                        self.report(TaskState::Running, "started", "", Some((pid, 0)));
                    }
                    health::Health::Unhealthy => {
                        if let Err(e) = containers.stop(&name, Some(grace(&task.spec).as_secs())).await {
                            tracing::warn!(task = %self.id, "stopping an unhealthy container: {e}");
                        }
                        return Outcome::Unhealthy;
                    }
                },
            }
        }
    }

    fn exited(&mut self, code: i32) {
        let (pid, oom) = self
            .exec
            .containers
            .get(&self.name)
            .map(|c| {
                let r = c.snapshot();
                (r.pid.unwrap_or(0), r.oom_killed)
            })
            .unwrap_or((0, false));
        if code == 0 {
            self.report(TaskState::Complete, "finished", "", Some((pid, 0)));
        } else {
            let err = if oom {
                format!("task: non-zero exit ({code}): OOM killed")
            } else {
                format!("task: non-zero exit ({code})")
            };
            self.report(TaskState::Failed, "started", &err, Some((pid, code)));
        }
    }

    /// The task ended while no manager can be reached, so none will replace it: the
    /// agent restarts it in place per its policy (delay, attempts). Its new status takes
    /// the place of the ended one not yet reported, so the managers, once back, see it
    /// running and restart nothing. True if it is to be brought up again.
    async fn restart_offline(
        &mut self,
        task: &Task,
        rx: &mut watch::Receiver<Option<Task>>,
    ) -> bool {
        if !self.contact.offline() || !self.policy_allows_restart(task) {
            return false;
        }
        let delay = task.spec.restart_delay();
        tracing::info!(task = %self.id, "no manager reachable: restarting the task here in {delay:?}");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = rx.changed() => return false,
        }
        if !self.contact.offline() {
            return false;
        }
        self.local_restarts += 1;
        self.observed = TaskState::Accepted;
        self.restarting = true;
        true
    }

    fn policy_allows_restart(&self, task: &Task) -> bool {
        use crate::manager::objects::service::RestartCondition;
        let completed = self.observed == TaskState::Complete;
        let allowed = match task.spec.restart_condition() {
            RestartCondition::None => false,
            RestartCondition::OnFailure => !completed,
            // A job that completed is done.
            RestartCondition::Any => !(completed && task.job),
        };
        let max = task
            .spec
            .restart_policy
            .as_ref()
            .and_then(|p| p.max_attempts)
            .unwrap_or(0);
        allowed && (max == 0 || self.local_restarts < max)
    }

    /// Told to stop: stops the container with the task's grace, then reports Shutdown
    /// (unless it had already ended, which stays its outcome).
    async fn shut_down(&mut self, task: &Task) {
        if self.observed.is_terminal() {
            return;
        }
        if let Ok(c) = self.exec.containers.get(&self.name) {
            if c.snapshot().status == Status::Running {
                if !task.networks.is_empty() {
                    // Every node's map dropped the task from names, VIPs and the mesh when
                    // its desired state changed; let that reach them before it stops.
                    tokio::time::sleep(DRAIN).await;
                }
                let grace = grace(&task.spec).as_secs();
                if let Err(e) = self.exec.containers.stop(&self.name, Some(grace)).await {
                    tracing::warn!(task = %self.id, "stopping: {e}");
                }
            }
        }
        self.report(TaskState::Shutdown, "shutdown", "", None);
    }

    async fn remove(&mut self) {
        if self.exec.containers.get(&self.name).is_ok() {
            if let Err(e) = self.exec.containers.remove(&self.name, true).await {
                tracing::warn!(task = %self.id, "removing its container: {e}");
            }
        }
        self.exec.network.detach(&self.id).await;
        for root in [&self.exec.files, &self.exec.secrets] {
            let _ = std::fs::remove_dir_all(root.join(&self.id));
        }
    }

    /// Writes `task`'s configs and secrets as files, owned and moded as asked, and
    /// returns the read-only bind mounts that give them to its container.
    fn write_files(&self, task: &Task) -> Result<Vec<Mount>, (TaskState, String)> {
        // One the dispatcher could not give (gone, or a secret that did not open): the
        // task is refused rather than run without it, as Swarm's agent does.
        let spec = &task.spec.container_spec;
        let missing = missing(&spec.configs, &task.configs)
            .map(|id| format!("config {id} not found"))
            .or_else(|| {
                missing(&spec.secrets, &task.secrets).map(|id| format!("secret {id} not found"))
            });
        if let Some(why) = missing {
            return Err((TaskState::Rejected, why));
        }
        let mut mounts = write_files(&self.exec.files.join(&task.id), &task.configs)
            .map_err(|e| (TaskState::Rejected, format!("writing its configs ({e})")))?;
        let secrets = write_files(&self.exec.secrets.join(&task.id), &task.secrets)
            .map_err(|e| (TaskState::Rejected, format!("writing its secrets ({e})")))?;
        mounts.extend(secrets);
        Ok(mounts)
    }

    /// The task's network namespace, connected to its overlay networks (none if it has
    /// none). A node that cannot connect it rejects the task, as Swarm's does.
    async fn connect(
        &self,
        task: &Task,
    ) -> Result<Option<std::path::PathBuf>, (TaskState, String)> {
        self.exec.network.attach(task).await.map_err(|e| {
            (
                TaskState::Rejected,
                format!("connecting to its networks: {e}"),
            )
        })
    }
}

/// The first of `refs` (given as a file) that `given` lacks.
fn missing<'a, R: FileReference>(refs: &'a [R], given: &[TaskFile]) -> Option<&'a str> {
    refs.iter()
        .filter(|r| r.file().is_some())
        .map(|r| r.id())
        .find(|id| !given.iter().any(|f| f.id == *id))
}

/// Writes `files` into `dir` (made 0700 if there are any), and returns the read-only
/// bind mounts of each at its target. Err: what failed, and why.
fn write_files(dir: &std::path::Path, files: &[TaskFile]) -> Result<Vec<Mount>, String> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    let mut mounts = Vec::new();
    for (i, f) in files.iter().enumerate() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("directory: {e}"))?;
        // By place as well as id: one task may be given the same one at two targets.
        let path = dir.join(format!("{i}-{}", f.id));
        let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", f.target);
        std::fs::write(&path, &f.data).map_err(|e| fail(&e))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(f.mode & 0o7777))
            .map_err(|e| fail(&e))?;
        nix::unistd::chown(
            &path,
            Some(nix::unistd::Uid::from_raw(f.uid)),
            Some(nix::unistd::Gid::from_raw(f.gid)),
        )
        .map_err(|e| fail(&e))?;
        mounts.push(Mount::Bind {
            source: path,
            target: f.target.clone(),
            read_only: true,
        });
    }
    Ok(mounts)
}

fn grace(spec: &TaskSpec) -> Duration {
    spec.container_spec
        .stop_grace_period
        .filter(|n| *n >= 0)
        .map(|n| Duration::from_nanos(n as u64))
        .unwrap_or(DEFAULT_GRACE)
}

/// Swarm's labels on a task's container, which `docker ps --filter` and tools rely on.
fn labels(task: &Task) -> serde_json::Value {
    let mut labels: serde_json::Map<String, serde_json::Value> = task
        .spec
        .container_spec
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone().into()))
        .collect();
    for (k, v) in [
        ("com.docker.swarm.service.id", task.service_id.clone()),
        ("com.docker.swarm.service.name", task.service_name.clone()),
        ("com.docker.swarm.task.id", task.id.clone()),
        (
            "com.docker.swarm.task.name",
            format!("{}.{}", task.name(), task.id),
        ),
        ("com.docker.swarm.node.id", task.node_id.clone()),
    ] {
        labels.insert(k.into(), v.into());
    }
    labels.into()
}

/// Whether a container's last start was before this boot: it was stopped by a reboot,
/// not by itself, so an agent with no manager to ask brings it back.
fn started_before_boot(started_at: &Option<String>) -> bool {
    let Some(started) = started_at
        .as_deref()
        .and_then(|s| humantime::parse_rfc3339(s).ok())
    else {
        return false;
    };
    boot_time().is_some_and(|boot| started < boot)
}

fn boot_time() -> Option<SystemTime> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let secs: u64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

/// A task's container spec in the runtime's terms; `volume` gives a named volume's host
/// directory (the executor makes it if missing). Err: what in the spec is wrong.
pub fn container_config(
    spec: &TaskSpec,
    volume: &dyn Fn(&str) -> Result<std::path::PathBuf, String>,
) -> Result<ContainerConfig, String> {
    let c = &spec.container_spec;
    let mut mounts = Vec::new();
    for m in &c.mounts {
        match m.kind.as_str() {
            "bind" => {
                if !m.source.starts_with('/') {
                    return Err(format!(
                        "invalid mount source {:?}: a bind mount needs an absolute path",
                        m.source
                    ));
                }
                mounts.push(Mount::Bind {
                    source: m.source.clone().into(),
                    target: m.target.clone(),
                    read_only: m.read_only,
                });
            }
            "volume" => {
                if let Some(driver) = m.extra.get("VolumeOptions").and_then(|o| {
                    o.get("DriverConfig")?
                        .get("Name")?
                        .as_str()
                        .filter(|d| *d != "local")
                }) {
                    return Err(format!(
                        "volume driver {driver:?} is not supported by covey: only local volumes"
                    ));
                }
                // No source: an anonymous volume, this container's own.
                let name = match m.source.as_str() {
                    "" => crate::volumes::anonymous_name(),
                    n => n.to_string(),
                };
                let source = volume(&name)?;
                mounts.push(Mount::Bind {
                    source,
                    target: m.target.clone(),
                    read_only: m.read_only,
                });
            }
            "tmpfs" => mounts.push(Mount::Tmpfs {
                target: m.target.clone(),
                size_bytes: None,
                mode: None,
            }),
            other => {
                return Err(format!(
                    "mounts of type {other:?} are not supported by covey yet"
                ))
            }
        }
    }
    let limits = spec.resources.limits.clone().unwrap_or_default();
    let network = if spec.networks.iter().any(|n| n.target == "host") {
        NetworkMode::Host
    } else {
        NetworkMode::None
    };
    Ok(ContainerConfig {
        entrypoint: c.command.clone().filter(|v| !v.is_empty()),
        args: c.args.clone().unwrap_or_default(),
        env: c.env.clone().unwrap_or_default(),
        user: c.user.clone().filter(|u| !u.is_empty()),
        working_dir: c.dir.clone().filter(|d| !d.is_empty()),
        hostname: c.hostname.clone().filter(|h| !h.is_empty()),
        mounts,
        read_only_rootfs: c.read_only.unwrap_or(false),
        cap_add: c.cap_add.clone().unwrap_or_default(),
        cap_drop: c.cap_drop.clone().unwrap_or_default(),
        sysctls: c.sysctls.clone().unwrap_or_default(),
        resources: Resources {
            memory_bytes: (limits.memory_bytes > 0).then_some(limits.memory_bytes),
            cpus: (limits.nano_cpus > 0).then(|| limits.nano_cpus as f64 / 1e9),
            cpu_shares: None,
            pids_limit: (limits.pids > 0).then_some(limits.pids),
        },
        network,
        ..Default::default()
    })
}
