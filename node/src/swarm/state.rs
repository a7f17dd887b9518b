//! What a node keeps of its swarm membership on disk, under `<data-root>/swarm/`:
//! `state.json`, the certificates (named as dockerd names them), and, on managers,
//! the cluster data key and the store key beside them and the Raft and store database
//! `raft/`. Every file that holds a key goes through the [`Vault`], which seals it while
//! the swarm is autolocked.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::lock::{self, Vault};
use crate::manager::ca::Role;
use crate::seal::Key;

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
    pub vault: Vault,
}

impl Paths {
    pub fn new(data_root: &Path) -> Self {
        Paths {
            dir: data_root.join("swarm"),
            vault: Vault::default(),
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
    /// Managers only: the cluster data key, which seals secrets in the store.
    pub fn data_key(&self) -> PathBuf {
        self.certs().join("swarm-data.key")
    }
    /// Managers only: this manager's own key for the store at rest (swarmkit's raft DEK).
    pub fn db_key(&self) -> PathBuf {
        self.certs().join("swarm-raft.key")
    }
    /// The worker's key, which seals its tasks' secrets for a restart with no manager.
    pub fn worker_key(&self) -> PathBuf {
        self.dir.join("worker").join("node.key")
    }

    /// Every file that holds a key: what autolock seals.
    pub fn key_files(&self) -> Vec<PathBuf> {
        vec![
            self.node_key(),
            self.data_key(),
            self.db_key(),
            self.worker_key(),
        ]
    }

    /// True if the node's keys are sealed and no unlock key was given yet.
    pub fn locked(&self) -> anyhow::Result<bool> {
        Ok(self.vault.unlock_key().is_none() && lock::is_sealed(&self.node_key())?)
    }

    fn load_key(&self, path: &Path) -> anyhow::Result<Option<Key>> {
        match self.vault.read(path)? {
            Some(bytes) => Ok(Some(Key::from_bytes(&bytes).map_err(|_| {
                crate::seal::SealError::BadKey(path.display().to_string())
            })?)),
            None => Ok(None),
        }
    }

    pub fn save_key(&self, path: &Path, key: &Key) -> anyhow::Result<()> {
        self.vault
            .write(path, key.bytes(), 0o600)
            .with_context(|| format!("writing {}", path.display()))
    }

    /// The key at `path`, made there first if there is none.
    pub fn load_or_create_key(&self, path: &Path) -> anyhow::Result<Key> {
        if let Some(key) = self.load_key(path)? {
            return Ok(key);
        }
        let key = Key::generate()?;
        self.save_key(path, &key)?;
        Ok(key)
    }

    /// Seals the key files with the unlock key a manager sent (an autolocked swarm's new
    /// manager), before anything else is written; nothing if none was sent.
    pub fn adopt_unlock_key(&self, unlock_key: Option<&str>) -> anyhow::Result<()> {
        let Some(text) = unlock_key else {
            return Ok(());
        };
        let key = lock::parse_unlock_key(text).context("the unlock key the manager sent")?;
        self.vault.rekey(&self.key_files(), Some(key))?;
        Ok(())
    }

    /// The cluster data key kept here, if this node has one.
    pub fn load_data_key(&self) -> anyhow::Result<Option<Key>> {
        self.load_key(&self.data_key())
            .context("reading the cluster data key")
    }

    /// Keeps the data key a manager was given (base64), unless this one is kept already.
    pub fn save_data_key(&self, encoded: Option<&str>) -> anyhow::Result<()> {
        use base64::Engine as _;
        let Some(encoded) = encoded else {
            return Ok(());
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .context("the cluster data key the manager sent")?;
        let key = Key::from_bytes(&bytes)?;
        if self
            .load_data_key()?
            .is_some_and(|k| k.bytes() == key.bytes())
        {
            return Ok(());
        }
        self.save_key(&self.data_key(), &key)
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
        self.vault
            .write(&self.node_key(), key_pem.as_bytes(), 0o600)
            .context("writing the node's key")?;
        write_atomic(&self.node_cert(), cert_pem.as_bytes(), 0o644)?;
        write_atomic(&self.ca_cert(), ca_pem.as_bytes(), 0o644)
    }

    /// The node's certificate (PEM), without its key: what the heartbeat-paced role
    /// checks read, with no need to open a sealed key.
    pub fn load_cert(&self) -> anyhow::Result<String> {
        read_pem(self.node_cert())
    }

    /// The swarm's CA certificate (PEM).
    pub fn load_ca(&self) -> anyhow::Result<String> {
        read_pem(self.ca_cert())
    }

    pub fn load_certs(&self) -> anyhow::Result<(String, String, String)> {
        let key = self
            .vault
            .read(&self.node_key())
            .context("reading the node's key")?
            .with_context(|| format!("{} is missing", self.node_key().display()))?;
        let key = String::from_utf8(key).context("the node's key is not PEM")?;
        Ok((self.load_cert()?, key, self.load_ca()?))
    }
}

fn read_pem(path: PathBuf) -> anyhow::Result<String> {
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    crate::seal::write_private(path, bytes, mode)
        .with_context(|| format!("writing {}", path.display()))
}
