//! What a node keeps of its swarm membership on disk, under `<data-root>/swarm/`:
//! `state.json`, the certificates (named as dockerd names them), and, on managers,
//! the Raft and store database `raft/`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::manager::ca::Role;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SwarmState {
    pub cluster_id: String,
    pub node_id: String,
    pub role: Role,
    pub listen_addr: String,
    pub advertise_addr: String,
    /// Managers' addresses, as last heard: where to go when the current one fails.
    pub managers: Vec<String>,
}

pub struct Paths {
    pub dir: PathBuf,
}

impl Paths {
    pub fn new(data_root: &Path) -> Self {
        Paths {
            dir: data_root.join("swarm"),
        }
    }
    pub fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    pub fn certs(&self) -> PathBuf {
        self.dir.join("certificates")
    }
    pub fn node_cert(&self) -> PathBuf {
        self.certs().join("swarm-node.crt")
    }
    pub fn node_key(&self) -> PathBuf {
        self.certs().join("swarm-node.key")
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.certs().join("swarm-root-ca.crt")
    }
    pub fn db(&self) -> PathBuf {
        self.dir.join("raft")
    }

    pub fn load(&self) -> anyhow::Result<Option<SwarmState>> {
        let path = self.state();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .with_context(|| format!("reading {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    pub fn save(&self, state: &SwarmState) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec_pretty(state)?;
        write_atomic(&self.state(), &bytes, 0o600)
    }

    pub fn save_certs(&self, cert_pem: &str, key_pem: &str, ca_pem: &str) -> anyhow::Result<()> {
        std::fs::create_dir_all(self.certs())
            .with_context(|| format!("creating {}", self.certs().display()))?;
        write_atomic(&self.node_key(), key_pem.as_bytes(), 0o600)?;
        write_atomic(&self.node_cert(), cert_pem.as_bytes(), 0o644)?;
        write_atomic(&self.ca_cert(), ca_pem.as_bytes(), 0o644)
    }

    pub fn load_certs(&self) -> anyhow::Result<(String, String, String)> {
        let read = |p: PathBuf| {
            std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
        };
        Ok((
            read(self.node_cert())?,
            read(self.node_key())?,
            read(self.ca_cert())?,
        ))
    }
}

/// Write, sync, rename: a crash leaves the old file or the new one, never half of one.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = path.parent().context("a path without a parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}
