//! The runtime's errors. Messages name what was wrong, for the API to pass on.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("invalid container id {0:?}: use 1-128 letters, digits, '_', '-' or '.', starting with a letter or digit")]
    InvalidId(String),
    #[error("no command specified: the image has no Entrypoint or Cmd, and none was given")]
    NoCommand,
    #[error("unable to find user {user}: {reason}")]
    User { user: String, reason: String },
    #[error("invalid capability {0:?}")]
    Capability(String),
    #[error("sysctl {0:?} is not allowed in a container: only namespaced ones (net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*) are")]
    Sysctl(String),
    #[error("invalid mount target {0:?}: it must be an absolute path without '..'")]
    MountTarget(String),
    #[error("invalid {what}: {value}")]
    Resource { what: &'static str, value: String },
    #[error("cannot set {what}: this kernel has no {controller} cgroup controller; {hint}")]
    ControllerMissing {
        controller: &'static str,
        what: &'static str,
        hint: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("building the OCI spec: {0}")]
    Spec(#[from] Box<oci_spec::OciSpecError>),
    #[error("container {id}: {source}")]
    Container {
        id: String,
        source: Box<libcontainer::error::LibcontainerError>,
    },
    #[error("no such container: {0}")]
    NotFound(String),
    /// The helper's own report of a failed create (its error, as text).
    #[error("{0}")]
    Helper(String),
}

impl From<oci_spec::OciSpecError> for RuntimeError {
    fn from(e: oci_spec::OciSpecError) -> Self {
        RuntimeError::Spec(Box::new(e))
    }
}

impl RuntimeError {
    /// Whether the caller asked for something impossible, as opposed to a local failure.
    pub fn is_invalid_input(&self) -> bool {
        !matches!(
            self,
            RuntimeError::Io { .. } | RuntimeError::Container { .. } | RuntimeError::Spec(_)
        )
    }
}
