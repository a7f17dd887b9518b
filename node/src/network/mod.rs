//! The node's data plane for overlay networks: namespaces, bridges, VXLAN and veths
//! (`overlay`), the routing mesh (`mesh`), made from the tasks' attachments and the
//! network map the leader sends (`map`). The manager side (addresses) is
//! `manager/allocator`.

mod links;
pub mod map;
mod mesh;
mod netns;
mod nft;
mod overlay;

use std::path::{Path, PathBuf};

use tokio::sync::Mutex;

use crate::manager::objects::Task;
use map::NetworkMap;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Io(String),
    #[error("netlink: {0}")]
    Netlink(String),
    #[error("nftables: {0}")]
    Nft(String),
}

/// A node's networking: where its namespaces live, and the last map it applied.
pub struct Networking {
    root: PathBuf,
    map: Mutex<NetworkMap>,
}

impl Networking {
    pub fn new(exec_root: &Path) -> Networking {
        Networking {
            root: exec_root.join("netns"),
            map: Mutex::default(),
        }
    }

    fn task_ns(&self, task_id: &str) -> PathBuf {
        self.root.join(format!("task-{task_id}"))
    }

    /// The namespace for `task`'s container, connected to its networks; `None` for a task
    /// on no overlay network. Safe to call again (after a restart): what exists is kept.
    pub async fn attach(&self, task: &Task) -> Result<Option<PathBuf>, Error> {
        if task.networks.is_empty() {
            return Ok(None);
        }
        let ns = self.task_ns(&task.id);
        netns::create(&ns).await?;
        let key: String = task.id.chars().take(10).collect();
        overlay::attach(&self.root, &ns, &key, &task.networks).await?;
        // A network new on this node floods to its peers from the start.
        let map = self.map.lock().await;
        for a in &task.networks {
            if let Some(peers) = map.peers.iter().find(|p| p.vni == a.vni) {
                overlay::set_peers(&self.root, a.vni, peers.nodes.clone()).await?;
            }
        }
        Ok(Some(ns))
    }

    /// Drops `task_id`'s namespace (its container is gone), and with it its interfaces.
    pub fn detach(&self, task_id: &str) {
        netns::remove(&self.task_ns(task_id));
    }

    /// Takes down all of the node's swarm networking (it left the swarm): namespaces,
    /// its end of the mesh and the mesh's rules.
    pub async fn reset(&self) {
        let mut applied = self.map.lock().await;
        if let Ok(entries) = std::fs::read_dir(&self.root) {
            for e in entries.flatten() {
                netns::remove(&e.path());
            }
        }
        if applied.ingress.is_some() {
            if let Err(e) = mesh::disconnect().await {
                tracing::warn!("leaving the routing mesh: {e}");
            }
        }
        *applied = NetworkMap::default();
    }

    /// Makes the node match `map`: its VXLAN peers, its end of the routing mesh, and the
    /// mesh's published ports.
    pub async fn apply(&self, map: NetworkMap) -> Result<(), Error> {
        let mut applied = self.map.lock().await;
        if let Some(ingress) = &map.ingress {
            mesh::connect(&self.root, ingress).await?;
        }
        for p in &map.peers {
            overlay::set_peers(&self.root, p.vni, p.nodes.clone()).await?;
        }
        if map.ingress.is_some()
            && (applied.published != map.published || applied.ingress.is_none())
        {
            mesh::publish(&map.published).await?;
        }
        *applied = map;
        Ok(())
    }
}
