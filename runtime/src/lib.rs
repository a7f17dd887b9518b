//! covey-runtime: OCI containers run in-process through youki's libcontainer. Knows
//! nothing of clusters or images: it takes a root filesystem and a container config.
//!
//! # Layout
//! - [`config`]: what a container should be (image defaults, `docker run` overrides).
//! - [`spec`]: that config made into an OCI runtime spec with Docker's defaults
//!   ([`defaults`]), the user resolved in the image ([`user`]), and the container's own
//!   `/etc` files ([`etc`]).
//! - [`container`]: the lifecycle through libcontainer.
//! - [`seccomp`]: the default seccomp profile.
//! - [`cgroups`]: the controllers a container's limits need, checked up front, and what
//!   a container's cgroup has used.
//! - [`network`]: loopback up in a container's own network namespace.
//! - [`helper`]: the single-threaded process that makes containers for the daemon.
//!
//! Architecture invariant: the only crate that names libcontainer types.

pub mod cgroups;
pub mod config;
pub mod container;
pub mod defaults;
mod error;
pub mod etc;
pub mod helper;
pub mod network;
pub mod seccomp;
pub mod spec;
pub mod user;

pub use config::{ContainerConfig, ImageDefaults, Mount, NetworkMode, Resources};
pub use container::{reap_any, ExecSpec, Exit, Runtime, State, Status, Stdio};
pub use error::RuntimeError;
