//! The node's data plane for overlay networks: namespaces, bridges, VXLAN and veths
//! (`overlay`), the routing mesh (`mesh`), made from the tasks' attachments and the
//! network map the leader sends (`map`). The manager side (addresses) is
//! `manager/allocator`.

pub mod dns;
mod lb;
mod links;
pub mod map;
mod mesh;
mod netns;
mod nft;
mod overlay;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::Mutex;

use crate::containers::reaper::Reaper;
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

/// A node's networking: where its namespaces live, the last map it applied, and its
/// tasks on overlays.
pub struct Networking {
    root: PathBuf,
    map: Mutex<NetworkMap>,
    resolver: Arc<dns::Resolver>,
    tasks: Mutex<HashMap<String, TaskNet>>,
    reaper: Arc<Reaper>,
}

/// A task on overlays: its namespace, its networks, and its resolver's serving tasks.
struct TaskNet {
    ns: PathBuf,
    networks: Vec<String>,
    dns: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for TaskNet {
    fn drop(&mut self) {
        for t in &self.dns {
            t.abort();
        }
    }
}

impl Networking {
    pub fn new(exec_root: &Path, reaper: Arc<Reaper>) -> Networking {
        Networking {
            root: exec_root.join("netns"),
            map: Mutex::default(),
            resolver: Arc::new(dns::Resolver::from_host()),
            tasks: Mutex::default(),
            reaper,
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
        let mut tasks = self.tasks.lock().await;
        if !tasks.contains_key(&task.id) {
            let networks: Vec<String> = task
                .networks
                .iter()
                .filter(|a| !a.ingress)
                .map(|a| a.network_id.clone())
                .collect();
            let dns = dns::serve(self.resolver.clone(), &ns, networks.clone()).await?;
            nft::apply_in(
                &self.reaper,
                Some(&ns),
                &lb::ruleset(&map.services, &networks),
            )
            .await?;
            tasks.insert(
                task.id.clone(),
                TaskNet {
                    ns: ns.clone(),
                    networks,
                    dns,
                },
            );
        }
        Ok(Some(ns))
    }

    /// Drops `task_id`'s namespace (its container is gone), and with it its interfaces
    /// and its resolver.
    pub async fn detach(&self, task_id: &str) {
        self.tasks.lock().await.remove(task_id);
        netns::remove(&self.task_ns(task_id));
    }

    /// Takes down all of the node's swarm networking (it left the swarm): namespaces,
    /// its end of the mesh and the mesh's rules.
    pub async fn reset(&self) {
        let mut applied = self.map.lock().await;
        self.tasks.lock().await.clear();
        if let Ok(entries) = std::fs::read_dir(&self.root) {
            for e in entries.flatten() {
                netns::remove(&e.path());
            }
        }
        if applied.ingress.is_some() {
            if let Err(e) = mesh::disconnect(&self.reaper).await {
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
            mesh::publish(&self.reaper, &map.published).await?;
        }
        if applied.services != map.services {
            if let Ok(mut records) = self.resolver.records.write() {
                *records = dns::Records::from_services(&map.services);
            }
            for t in self.tasks.lock().await.values() {
                let rules = lb::ruleset(&map.services, &t.networks);
                nft::apply_in(&self.reaper, Some(&t.ns), &rules).await?;
            }
        }
        *applied = map;
        Ok(())
    }
}
