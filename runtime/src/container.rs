//! The container lifecycle through libcontainer: create, start, kill, delete, state.
//!
//! **Fork safety.** libcontainer clones with a raw `clone3`, which skips glibc's fork
//! handlers: a clone taken while another thread holds a malloc lock can deadlock the child.
//! So these calls are blocking and are for a process with one busy thread. The daemon will
//! make them from a single-threaded helper process (the next step of the runtime issue);
//! tests serialise them.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::{Container, ContainerStatus};
use libcontainer::signal::Signal;
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::workload::default::DefaultExecutor;
use nix::unistd::Pid;
use oci_spec::runtime::Spec;

use crate::error::RuntimeError;

/// Where a container's stdio go; `None` is /dev/null.
#[derive(Default)]
pub struct Stdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
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

    /// Creates the container: its namespaces, cgroup and root filesystem, with its init
    /// waiting to exec the command. Returns the init's pid, a child of the caller.
    pub fn create(&self, id: &str, spec: &Spec, stdio: Stdio) -> Result<i32, RuntimeError> {
        let bundle = self.container_dir(id)?;
        let config = bundle.join("config.json");
        spec.save(&config)?;
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
        let container = builder
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
        self.load(id)?.start().map_err(Self::err(id))
    }

    pub fn kill(&self, id: &str, signal: nix::sys::signal::Signal) -> Result<(), RuntimeError> {
        self.load(id)?
            .kill(Signal::from(signal), true)
            .map_err(Self::err(id))
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

    /// Deletes the container: its cgroup, state and bundle. `force` kills it first.
    pub fn delete(&self, id: &str, force: bool) -> Result<(), RuntimeError> {
        self.load(id)?.delete(force).map_err(Self::err(id))?;
        let bundle = self.bundles.join(id);
        std::fs::remove_dir_all(&bundle).map_err(|source| RuntimeError::Io {
            path: bundle,
            source,
        })
    }
}
