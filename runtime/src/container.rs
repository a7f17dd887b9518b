//! The container lifecycle through libcontainer: create, start, kill, delete, state.
//!
//! **Fork safety.** libcontainer clones with a raw `clone3`, which skips glibc's fork
//! handlers: a clone taken while another thread holds a malloc lock can deadlock the child.
//! So these calls are blocking and are for a process with one busy thread. The daemon makes
//! them from a single-threaded helper process (`helper`); tests serialise them.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::{Container, ContainerStatus};
use libcontainer::signal::Signal;
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::workload::default::DefaultExecutor;
use nix::unistd::Pid;
use oci_spec::runtime::Spec;

use crate::cgroups;
use crate::error::RuntimeError;

/// Where a container's stdio go; `None` is /dev/null.
#[derive(Default)]
pub struct Stdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

/// A process to run in a running container (`docker exec`).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ExecSpec {
    pub args: Vec<String>,
    /// KEY=VALUE, replacing the container's for the keys given.
    pub env: Vec<String>,
    pub cwd: Option<String>,
    pub uid: u32,
    pub gid: u32,
    /// A terminal (`exec -t`); its master comes back through the console socket.
    #[serde(default)]
    pub tty: bool,
}

/// How a container's init ended, as its parent (the runtime helper) saw it. Kept as
/// `exit.json` in the container's bundle directory, where a daemon that was not there to
/// hear of it finds it: this file, not the helper's protocol, is the contract between a
/// helper and daemons of other versions.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Exit {
    pub pid: i32,
    /// The exit status, or 128 + the signal that killed it.
    pub code: i32,
    pub at: std::time::SystemTime,
}

/// A container's state as libcontainer keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct State {
    pub status: Status,
    pub pid: Option<i32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Creating,
    Created,
    Running,
    Stopped,
    Paused,
}

pub struct Runtime {
    /// libcontainer's state directories, one per container.
    state_root: PathBuf,
    /// OCI bundles (`config.json`), one per container.
    bundles: PathBuf,
}

/// Removes `covey/<id>` under each cgroup v1 controller, or under the v2 root; only empty
/// ones go (rmdir refuses the others).
fn remove_cgroups(root: &Path, id: &str) {
    let mut dirs = vec![cgroups::dir(root, id)];
    if let Ok(entries) = std::fs::read_dir(root) {
        dirs.extend(entries.flatten().map(|e| cgroups::dir(&e.path(), id)));
    }
    for d in dirs {
        if d.is_dir() {
            if let Err(e) = std::fs::remove_dir(&d) {
                tracing::debug!(cgroup = %d.display(), "not removed: {e}");
            }
        }
    }
}

/// IDs become directory names and cgroup paths: keep them plain.
pub fn check_id(id: &str) -> Result<(), RuntimeError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id.as_bytes()[0].is_ascii_alphanumeric()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(RuntimeError::InvalidId(id.into()))
    }
}

impl Runtime {
    pub fn new(root: &Path) -> Result<Self, RuntimeError> {
        let (state_root, bundles) = (root.join("state"), root.join("bundles"));
        for d in [&state_root, &bundles] {
            std::fs::create_dir_all(d).map_err(|source| RuntimeError::Io {
                path: d.clone(),
                source,
            })?;
        }
        Ok(Self {
            state_root,
            bundles,
        })
    }

    /// A directory for the container's own files (its `/etc` files), kept until delete.
    pub fn container_dir(&self, id: &str) -> Result<PathBuf, RuntimeError> {
        check_id(id)?;
        let dir = self.bundles.join(id);
        std::fs::create_dir_all(&dir).map_err(|source| RuntimeError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(dir)
    }

    fn err(id: &str) -> impl FnOnce(libcontainer::error::LibcontainerError) -> RuntimeError + '_ {
        move |source| RuntimeError::Container {
            id: id.to_string(),
            source: Box::new(source),
        }
    }

    /// Writes the container's OCI bundle (`config.json`), for `create` to build from.
    pub fn write_bundle(&self, id: &str, spec: &Spec) -> Result<(), RuntimeError> {
        let config = self.container_dir(id)?.join("config.json");
        Ok(spec.save(&config)?)
    }

    /// Creates the container: its namespaces, cgroup and root filesystem, with its init
    /// waiting to exec the command. Returns the init's pid, a child of the caller, which
    /// reaps it (the helper does, for the daemon).
    pub fn create(&self, id: &str, spec: &Spec, stdio: Stdio) -> Result<i32, RuntimeError> {
        self.write_bundle(id, spec)?;
        self.create_from_bundle(id, stdio, None)
    }

    /// `create` from a bundle already written.
    pub fn create_from_bundle(
        &self,
        id: &str,
        stdio: Stdio,
        console_socket: Option<&Path>,
    ) -> Result<i32, RuntimeError> {
        let bundle = self.container_dir(id)?;
        // A new run: the last one's exit must not be taken for its own.
        self.clear_exit(id);
        let container = self
            .builder(id, stdio)?
            .with_console_socket(console_socket)
            .as_init(&bundle)
            .with_systemd(false)
            .with_detach(true)
            .build()
            .map_err(Self::err(id))?;
        container
            .pid()
            .map(Pid::as_raw)
            .ok_or_else(|| RuntimeError::NotFound(id.into()))
    }

    /// libcontainer's builder for `id`, with our state root and the given stdio.
    fn builder(&self, id: &str, stdio: Stdio) -> Result<ContainerBuilder, RuntimeError> {
        let mut builder = ContainerBuilder::new(id.to_string(), SyscallType::default())
            .with_root_path(&self.state_root)
            .map_err(Self::err(id))?
            .with_executor(DefaultExecutor {});
        if let Some(fd) = stdio.stdin {
            builder = builder.with_stdin(fd);
        }
        if let Some(fd) = stdio.stdout {
            builder = builder.with_stdout(fd);
        }
        if let Some(fd) = stdio.stderr {
            builder = builder.with_stderr(fd);
        }
        Ok(builder)
    }

    /// Runs `spec` in the running container `id`, in its namespaces and cgroup, with its
    /// capabilities and seccomp profile. Returns the process's pid (a child of the caller,
    /// reaped as the container's init is). Clones: see the module's note.
    pub fn exec(
        &self,
        id: &str,
        spec: &ExecSpec,
        stdio: Stdio,
        console_socket: Option<&Path>,
    ) -> Result<i32, RuntimeError> {
        check_id(id)?;
        if spec.args.first().is_none_or(|a| a.is_empty()) {
            return Err(RuntimeError::NoCommand);
        }
        // With a terminal, libcontainer takes the whole process from a file: the
        // container's own, with this exec's command, environment, directory and user.
        let process_file = if spec.tty {
            Some(self.exec_process_file(id, spec)?)
        } else {
            None
        };
        let env = spec
            .env
            .iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (kv.clone(), String::new()),
            })
            .collect();
        let pid = self
            .builder(id, stdio)?
            .with_console_socket(console_socket)
            .as_tenant()
            .with_container_args(spec.args.clone())
            .with_env(env)
            .with_cwd(spec.cwd.as_ref())
            .with_user(Some(spec.uid))
            .with_group(Some(spec.gid))
            .with_process(process_file.as_ref())
            .with_detach(true)
            .build()
            .map_err(Self::err(id));
        if let Some(f) = &process_file {
            let _ = std::fs::remove_file(f);
        }
        Ok(pid?.as_raw())
    }

    /// The process file for a terminal exec, from the container's own process.
    fn exec_process_file(&self, id: &str, spec: &ExecSpec) -> Result<PathBuf, RuntimeError> {
        let bundle = self.container_dir(id)?;
        let container = Spec::load(bundle.join("config.json"))?;
        let mut process = container
            .process()
            .clone()
            .ok_or_else(|| RuntimeError::NotFound(id.into()))?;
        process.set_args(Some(spec.args.clone()));
        process.set_env(Some(spec.env.clone()));
        if let Some(cwd) = &spec.cwd {
            process.set_cwd(cwd.into());
        }
        let mut user = process.user().clone();
        user.set_uid(spec.uid);
        user.set_gid(spec.gid);
        process.set_user(user);
        process.set_terminal(Some(true));
        let path = bundle.join(format!("exec-{}.json", std::process::id()));
        let json = serde_json::to_vec(&process).map_err(|e| RuntimeError::Io {
            path: path.clone(),
            source: e.into(),
        })?;
        std::fs::write(&path, json).map_err(|source| RuntimeError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }

    fn load(&self, id: &str) -> Result<Container, RuntimeError> {
        check_id(id)?;
        let dir = self.state_root.join(id);
        if !dir.exists() {
            return Err(RuntimeError::NotFound(id.into()));
        }
        Container::load(dir).map_err(Self::err(id))
    }

    /// Runs the command in a created container.
    pub fn start(&self, id: &str) -> Result<(), RuntimeError> {
        // libcontainer's start reaches the container's notify socket by chdir-ing into its
        // state directory, and the working directory is the whole process's: two starts
        // on two threads would connect in each other's directories.
        static CHDIR: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one_at_a_time = CHDIR
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.load(id)?.start().map_err(Self::err(id))
    }

    /// Signals the container's init, or with `all` every process in its cgroup.
    pub fn kill(
        &self,
        id: &str,
        signal: nix::sys::signal::Signal,
        all: bool,
    ) -> Result<(), RuntimeError> {
        self.load(id)?
            .kill(Signal::from(signal), all)
            .map_err(Self::err(id))
    }

    /// Every container this runtime has state or a bundle for, for sweeping what a crash
    /// left.
    pub fn known(&self) -> Vec<String> {
        let mut ids: Vec<String> = [&self.state_root, &self.bundles]
            .iter()
            .filter_map(|d| std::fs::read_dir(d).ok())
            .flat_map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
            })
            .filter(|id| check_id(id).is_ok())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// Whether libcontainer has state for `id` (a container made and not yet deleted).
    pub fn exists(&self, id: &str) -> bool {
        check_id(id).is_ok() && self.state_root.join(id).exists()
    }

    pub fn state(&self, id: &str) -> Result<State, RuntimeError> {
        let mut c = self.load(id)?;
        c.refresh_status().map_err(Self::err(id))?;
        let status = match c.status() {
            ContainerStatus::Creating => Status::Creating,
            ContainerStatus::Created => Status::Created,
            ContainerStatus::Running => Status::Running,
            ContainerStatus::Stopped => Status::Stopped,
            ContainerStatus::Paused => Status::Paused,
        };
        Ok(State {
            status,
            pid: c.pid().map(Pid::as_raw),
        })
    }

    /// Deletes the container's process side: its cgroup and state. The bundle stays, so
    /// that the container can be created again from it. `force` kills it first.
    pub fn delete(&self, id: &str, force: bool) -> Result<(), RuntimeError> {
        self.load(id)?.delete(force).map_err(Self::err(id))
    }

    /// Clears what a failed create may leave: libcontainer's state and the container's
    /// (empty) cgroup directories, which libcontainer does not always remove.
    pub fn cleanup(&self, id: &str) -> Result<(), RuntimeError> {
        if self.exists(id) {
            if let Err(e) = self.delete(id, true) {
                tracing::debug!(container = id, "deleting after a failed create: {e}");
                let dir = self.state_root.join(id);
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
        remove_cgroups(Path::new(cgroups::ROOT), id);
        Ok(())
    }

    /// Whether the kernel's OOM killer killed a process of the container: the counter of
    /// its memory cgroup (v2 `memory.events`, v1 `memory.oom_control`), read before delete.
    pub fn oom_killed(&self, id: &str) -> bool {
        let root = Path::new(cgroups::ROOT);
        let files = [
            cgroups::dir(root, id).join("memory.events"),
            cgroups::dir(&root.join("memory"), id).join("memory.oom_control"),
        ];
        files
            .iter()
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .any(|text| {
                text.lines().any(|l| {
                    l.strip_prefix("oom_kill ")
                        .and_then(|n| n.trim().parse::<u64>().ok())
                        .is_some_and(|n| n > 0)
                })
            })
    }

    fn exit_path(&self, id: &str) -> PathBuf {
        self.bundles.join(id).join("exit.json")
    }

    /// Records how the container's init ended. Written whole (a temporary file renamed),
    /// not synced: the exec root is runtime state (tmpfs on a device), which a daemon's
    /// restart keeps and a reboot, which leaves no container running, does not.
    pub fn record_exit(&self, id: &str, exit: &Exit) -> Result<(), RuntimeError> {
        check_id(id)?;
        let path = self.exit_path(id);
        let tmp = path.with_extension("json.tmp");
        let json = serde_json::to_vec(exit).map_err(|e| RuntimeError::Io {
            path: path.clone(),
            source: e.into(),
        })?;
        std::fs::write(&tmp, json)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|source| RuntimeError::Io { path, source })
    }

    /// The container's last exit as its parent recorded it, if any.
    pub fn recorded_exit(&self, id: &str) -> Option<Exit> {
        check_id(id).ok()?;
        let bytes = std::fs::read(self.exit_path(id)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    pub fn clear_exit(&self, id: &str) {
        if check_id(id).is_ok() {
            let _ = std::fs::remove_file(self.exit_path(id));
        }
    }

    /// Removes the container's bundle, once it is deleted for good.
    pub fn remove_bundle(&self, id: &str) -> Result<(), RuntimeError> {
        check_id(id)?;
        let bundle = self.bundles.join(id);
        match std::fs::remove_dir_all(&bundle) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(RuntimeError::Io {
                path: bundle,
                source: e,
            }),
            _ => Ok(()),
        }
    }
}

/// Reaps one ended child, if any, without waiting: its pid and exit code, a signal as
/// 128 + its number, as a shell reports it. Stopped and continued children are skipped.
pub fn reap_any() -> Option<(i32, i32)> {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    loop {
        match waitpid(nix::unistd::Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => return Some((pid.as_raw(), code)),
            Ok(WaitStatus::Signaled(pid, sig, _)) => return Some((pid.as_raw(), 128 + sig as i32)),
            Ok(WaitStatus::StillAlive) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}
