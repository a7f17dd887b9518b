//! The node's data plane for overlay networks: namespaces, bridges, VXLAN and veths
//! (`overlay`), the QUIC data path (`tunnel`), the routing mesh (`mesh`), made from the
//! tasks' attachments and the network map the leader sends (`map`). The manager side
//! (addresses) is `manager/allocator`.

pub mod dns;
mod gateway;
mod lb;
mod links;
pub mod map;
mod mesh;
mod netns;
mod nft;
mod overlay;
pub mod tunnel;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::Mutex;

use crate::config::OverlayPath;
use crate::containers::reaper::Reaper;
use crate::manager::objects::service::{PortConfig, PublishMode};
use crate::manager::objects::{Attachment, Task};
use crate::transport::tls;
use ipnet::Ipv4Net;
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
    /// Held while namespaces and links are made or taken down: two tasks of one network
    /// starting at once would both make its sandbox. Taken before `map` and `tasks`.
    plumbing: Mutex<()>,
    /// Whether this node carries overlays on kernel VXLAN ([`Networking::probe`]); if
    /// not, its networks go over QUIC, on every node of them.
    vxlan: AtomicBool,
    overlay_path: OverlayPath,
    tunnel: tunnel::Tunnel,
}

/// A task with a namespace of its own: its networks, its address on the gateway bridge,
/// its host-mode ports, and its resolver's serving tasks.
struct TaskNet {
    ns: PathBuf,
    networks: Vec<String>,
    gateway: Ipv4Net,
    host_ports: Vec<PortConfig>,
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
    pub fn new(exec_root: &Path, reaper: Arc<Reaper>, overlay_path: OverlayPath) -> Networking {
        Networking {
            root: exec_root.join("netns"),
            map: Mutex::default(),
            resolver: Arc::new(dns::Resolver::from_host()),
            tasks: Mutex::default(),
            reaper,
            plumbing: Mutex::default(),
            vxlan: AtomicBool::new(overlay_path == OverlayPath::Auto),
            overlay_path,
            tunnel: tunnel::Tunnel::default(),
        }
    }

    /// Finds out whether the kernel has VXLAN (unless told to go without).
    pub async fn probe(&self) {
        if self.overlay_path == OverlayPath::Quic {
            tracing::info!("overlay networks reach this node over QUIC, as configured");
            return;
        }
        let has = match overlay::kernel_has_vxlan(&self.root.join("probe")).await {
            Ok(has) => has,
            Err(e) => {
                tracing::warn!("could not tell whether the kernel has VXLAN ({e}): using QUIC");
                false
            }
        };
        if !has {
            tracing::info!("the kernel has no VXLAN: overlay networks reach this node over QUIC");
        }
        self.vxlan.store(has, Ordering::Relaxed);
    }

    pub fn vxlan(&self) -> bool {
        self.vxlan.load(Ordering::Relaxed)
    }

    /// Gives the QUIC data path the node's certificate (when it joins, and after each
    /// renewal).
    pub fn set_identity(&self, ca_der: &[u8], identity: &tls::Identity) -> Result<(), Error> {
        self.tunnel.set_identity(ca_der, identity)
    }

    /// The MTU of this node's interfaces on network `a`: QUIC's where the network surely
    /// goes over QUIC (encrypted, or this node has no VXLAN).
    fn mtu(&self, a: &Attachment) -> u32 {
        if a.encrypted || !self.vxlan() {
            overlay::QUIC_MTU
        } else {
            overlay::MTU
        }
    }

    fn task_ns(&self, task_id: &str) -> PathBuf {
        self.root.join(format!("task-{task_id}"))
    }

    /// The namespace for `task`'s container, connected to its networks and to the gateway
    /// bridge (its way out, and where its host-mode ports lead); `None` for a task on no
    /// overlay and with no host-mode port. Safe to call again (after a restart): what
    /// exists is kept.
    pub async fn attach(&self, task: &Task) -> Result<Option<PathBuf>, Error> {
        let host_ports: Vec<PortConfig> = task
            .endpoint
            .ports
            .iter()
            .filter(|p| p.publish_mode == PublishMode::Host && p.published_port != 0)
            .cloned()
            .collect();
        if task.networks.is_empty() && host_ports.is_empty() {
            return Ok(None);
        }
        let _plumbing = self.plumbing.lock().await;
        let ns = self.task_ns(&task.id);
        netns::create(&ns).await?;
        let key: String = task.id.chars().take(10).collect();
        overlay::attach(&self.root, &ns, &key, &task.networks, |a| self.mtu(a)).await?;
        // A network new on this node floods to its peers from the start.
        let map = self.map.lock().await;
        for a in &task.networks {
            if let Some(peers) = map.peers.iter().find(|p| p.vni == a.vni) {
                overlay::set_peers(&self.root, &self.tunnel, peers).await?;
            }
        }
        let mut tasks = self.tasks.lock().await;
        if tasks.contains_key(&task.id) {
            return Ok(Some(ns));
        }
        gateway::ensure(&self.reaper).await?;
        let eth = format!("eth{}", task.networks.len());
        let address = match gateway::address_of(&ns, &eth).await? {
            Some(a) => a,
            None => {
                let a = free_gateway_address(&task.id, &tasks)
                    .ok_or_else(|| Error::Io("the gateway bridge has no address left".into()))?;
                gateway::attach(&ns, &key, &eth, a).await?;
                a
            }
        };
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
        let has_host_ports = !host_ports.is_empty();
        tasks.insert(
            task.id.clone(),
            TaskNet {
                ns: ns.clone(),
                networks,
                gateway: address,
                host_ports,
                dns,
            },
        );
        if has_host_ports {
            self.publish_host_ports(&tasks).await?;
        }
        Ok(Some(ns))
    }

    /// The node's host-mode ports, each to its task's address on the gateway bridge.
    async fn publish_host_ports(&self, tasks: &HashMap<String, TaskNet>) -> Result<(), Error> {
        let ports: Vec<(PortConfig, Ipv4Addr)> = tasks
            .values()
            .flat_map(|t| t.host_ports.iter().map(|p| (p.clone(), t.gateway.addr())))
            .collect();
        nft::apply_in(&self.reaper, None, &mesh::host_ruleset(&ports)).await
    }

    /// Drops `task_id`'s namespace (its container is gone), and with it its interfaces
    /// and its resolver.
    pub async fn detach(&self, task_id: &str) {
        let _plumbing = self.plumbing.lock().await;
        let mut tasks = self.tasks.lock().await;
        if let Some(gone) = tasks.remove(task_id) {
            if !gone.host_ports.is_empty() {
                if let Err(e) = self.publish_host_ports(&tasks).await {
                    tracing::warn!("unpublishing task {task_id}'s host ports: {e}");
                }
            }
        }
        netns::remove(&self.task_ns(task_id));
    }

    /// Takes down all of the node's swarm networking (it left the swarm): namespaces,
    /// its end of the mesh and the mesh's rules.
    pub async fn reset(&self) {
        let _plumbing = self.plumbing.lock().await;
        let mut applied = self.map.lock().await;
        self.tasks.lock().await.clear();
        // Before the namespaces go: a TAP device's descriptor holds its namespace.
        self.tunnel.close();
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
        if let Err(e) = gateway::remove(&self.reaper).await {
            tracing::warn!("removing the gateway bridge: {e}");
        }
        if let Err(e) = self.publish_host_ports(&HashMap::new()).await {
            tracing::warn!("removing host-mode ports: {e}");
        }
        *applied = NetworkMap::default();
    }

    /// Makes the node match `map`: its VXLAN peers, its end of the routing mesh, and the
    /// mesh's published ports.
    pub async fn apply(&self, map: NetworkMap) -> Result<(), Error> {
        let _plumbing = self.plumbing.lock().await;
        let mut applied = self.map.lock().await;
        // Only what changed since the last map: each step is netlink or nft work. (A
        // network's sandbox made later gets its peers when its first task attaches.)
        if let Some(ingress) = map
            .ingress
            .as_ref()
            .filter(|i| applied.ingress.as_ref() != Some(i))
        {
            mesh::connect(&self.root, ingress, self.mtu(ingress)).await?;
        }
        for p in map.peers.iter().filter(|p| !applied.peers.contains(p)) {
            overlay::set_peers(&self.root, &self.tunnel, p).await?;
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

/// An address on the gateway bridge for `task_id` that no other task here has: from a hash
/// of its id, so that a task tends to keep one across restarts, then the next free.
fn free_gateway_address(task_id: &str, tasks: &HashMap<String, TaskNet>) -> Option<Ipv4Net> {
    use std::hash::{Hash, Hasher};
    let subnet = gateway::subnet();
    let hosts: Vec<Ipv4Addr> = subnet.hosts().filter(|a| *a != gateway::GATEWAY).collect();
    let used: std::collections::HashSet<Ipv4Addr> =
        tasks.values().map(|t| t.gateway.addr()).collect();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    task_id.hash(&mut hasher);
    let start = (hasher.finish() as usize) % hosts.len().max(1);
    (0..hosts.len())
        .map(|i| hosts[(start + i) % hosts.len()])
        .find(|a| !used.contains(a))
        .and_then(|a| Ipv4Net::new(a, subnet.prefix_len()).ok())
}
