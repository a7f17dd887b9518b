//! What callers ask a container to be: the image's defaults and the caller's overrides, as
//! `docker run` takes them. Plain data; `spec` turns it into an OCI runtime spec.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The parts of an image's config that shape its containers.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImageDefaults {
    #[serde(default)]
    pub entrypoint: Vec<String>,
    #[serde(default)]
    pub cmd: Vec<String>,
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub working_dir: String,
    #[serde(default)]
    pub user: String,
}

impl ImageDefaults {
    /// Reads them from an image config's JSON (its `config` object), ignoring what is not
    /// there: images omit most fields.
    pub fn from_image_config(config: &serde_json::Value) -> Self {
        let c = config.get("config").unwrap_or(&serde_json::Value::Null);
        let strings = |k: &str| -> Vec<String> {
            c.get(k)
                .and_then(|v| v.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let string = |k: &str| {
            c.get(k)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        Self {
            entrypoint: strings("Entrypoint"),
            cmd: strings("Cmd"),
            env: strings("Env"),
            working_dir: string("WorkingDir"),
            user: string("User"),
        }
    }
}

/// One mount into the container.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Mount {
    /// A host path (a named volume is a host directory the caller made).
    Bind {
        source: PathBuf,
        target: String,
        read_only: bool,
    },
    Tmpfs {
        target: String,
        size_bytes: Option<u64>,
        mode: Option<u32>,
    },
}

/// Kernel-enforced limits (`docker run -m`, `--cpus`, `--cpu-shares`, `--pids-limit`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Resources {
    pub memory_bytes: Option<i64>,
    /// CPUs, as `--cpus`: 1.5 is a quota of 150 ms every 100 ms.
    pub cpus: Option<f64>,
    pub cpu_shares: Option<u64>,
    pub pids_limit: Option<i64>,
}

/// Where the container's network lives.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum NetworkMode {
    /// A new namespace with only loopback: the default until networking exists.
    #[default]
    None,
    /// The host's own network namespace.
    Host,
    /// A namespace the networking layer made, by its path (`/run/netns/...`).
    Path { path: PathBuf },
}

/// A container as the caller wants it; empty fields take the image's or Docker's default.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ContainerConfig {
    pub image: ImageDefaults,
    /// `--entrypoint`: replaces the image's, and drops its Cmd.
    pub entrypoint: Option<Vec<String>>,
    /// The command after the image name.
    pub args: Vec<String>,
    /// `-e KEY=VALUE`, over the image's.
    pub env: Vec<String>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    /// Defaults to the first 12 characters of the container's ID, as Docker.
    pub hostname: Option<String>,
    pub mounts: Vec<Mount>,
    pub read_only_rootfs: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub sysctls: BTreeMap<String, String>,
    pub resources: Resources,
    pub network: NetworkMode,
    /// Extra `/etc/hosts` lines (`--add-host`), as `name` → address.
    pub extra_hosts: Vec<(String, String)>,
    /// Resolvers for `/etc/resolv.conf`; the host's when empty.
    pub dns: Vec<String>,
    /// A terminal (`-t`): the container's stdio is a pty whose master the caller gets
    /// through a console socket.
    #[serde(default)]
    pub tty: bool,
}
