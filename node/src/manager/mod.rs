//! The manager: what runs on manager nodes, after swarmkit's `manager/`.
//! - [`store`]: the cluster's objects in sled, changed only by committed Raft entries.
//! - [`raft`]: Raft among managers (raft-rs), its log in sled.
//! - [`objects`]: the typed objects the store holds.
//! - [`ca`]: the cluster's root CA, node certificates and join tokens.
//! - [`dispatcher`]: heartbeats from every node, their assignments and task status, on
//!   the leader.
//! - [`orchestrator`] and [`scheduler`]: tasks made for each service and placed on nodes,
//!   on the leader (`leader` runs their rounds).
//! - `role_manager`: Raft membership following promotions and demotions, on the leader.
//! - [`rpc`] and `handler`: what nodes ask of managers over the transport, and who may.

pub mod allocator;
pub mod ca;
pub mod dispatcher;
mod handler;
mod leader;
pub mod logbroker;
mod network;
pub mod objects;
pub mod orchestrator;
pub mod raft;
mod role_manager;
pub mod rpc;
pub mod scheduler;
pub mod store;

use std::sync::Arc;

use self::ca::RootCa;
use self::dispatcher::Dispatcher;
use self::objects::Cluster;
use self::raft::storage::LogStore;
use self::raft::{Member, Raft, RaftConfig};
use self::store::{Action, Error, StateMachine, Store};
use crate::transport::Transport;

pub use handler::ManagerHandler;
pub use network::QuicNetwork;

/// A running manager: its store, Raft, CA and dispatcher.
pub struct Manager {
    pub node_id: String,
    pub cluster_id: String,
    pub store: Store,
    pub raft: Raft,
    pub dispatcher: Arc<Dispatcher>,
    /// Service logs, from the nodes that run the tasks to `service logs`.
    pub logs: Arc<logbroker::LogBroker>,
    /// To reach the leader (a follower's `service logs`).
    pub transport: Transport,
    /// The cluster data key, which seals secrets in the store: made at `swarm init`,
    /// given to managers as they join or are promoted. None on a manager of a cluster
    /// made before there were secrets, until a manager that has one renews it.
    pub data_key: Option<Arc<crate::seal::Key>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// What a manager starts from.
pub struct ManagerConfig {
    pub node_id: String,
    pub cluster_id: String,
    pub db: sled::Db,
    /// This manager's own key for the store at rest (swarmkit's raft DEK).
    pub db_key: crate::seal::Key,
    pub transport: Transport,
    /// Members known before any is applied (a joining manager's view).
    pub peers: Vec<Member>,
    /// Make a new cluster: this node its only voter.
    pub bootstrap: bool,
    /// Recover a cluster that lost quorum: this node becomes its only voter.
    pub force_new_cluster: bool,
    /// Where the store's changes are reported as swarm events (`docker events`).
    pub events: Arc<crate::events::Events>,
    pub data_key: Option<crate::seal::Key>,
}

impl Manager {
    pub async fn start(config: ManagerConfig) -> Result<Arc<Manager>, Error> {
        let machine = StateMachine::open(&config.db, Arc::new(config.db_key))?;
        // Before Raft applies anything: a new swarm's first node is an event too.
        let watch = machine.watch();
        let log = LogStore::open(&config.db, machine.clone())?;
        let raft_id = raft::raft_id(&config.node_id);
        let raft_err = |e: ::raft::Error| Error::Unavailable(format!("raft storage: {e}"));
        if config.bootstrap {
            log.bootstrap(raft_id).map_err(raft_err)?;
        }
        if config.force_new_cluster {
            log.force_new_cluster(raft_id).map_err(raft_err)?;
        }
        // The only voter (a one-manager swarm, common on a small fleet) needs nobody's
        // vote: it leads at once after a restart, not an election timeout later.
        let sole_voter = log
            .conf_state()
            .map(|cs| cs.voters == [raft_id])
            .unwrap_or(false);
        let net = Arc::new(QuicNetwork::new(config.transport.clone()));
        let (raft, raft_task) = Raft::start(
            RaftConfig::new(raft_id),
            log,
            machine.clone(),
            net,
            config.peers,
        )?;
        let store = Store::new(machine, Arc::new(raft.clone()));
        let data_key = config.data_key.map(Arc::new);
        let dispatcher = Arc::new(Dispatcher::new(store.clone(), data_key.clone()));
        let mut tasks = vec![
            raft_task,
            tokio::spawn(crate::events::cluster::run(
                store.clone(),
                watch,
                config.events.clone(),
            )),
        ];
        let d = dispatcher.clone();
        let status = raft.watch_status();
        tasks.push(tokio::spawn(async move { d.run(status).await }));
        let roles = role_manager::RoleManager::new(store.clone(), raft.clone());
        let status = raft.watch_status();
        tasks.push(tokio::spawn(async move { roles.run(status).await }));
        tasks.push(tokio::spawn(leader::run(
            store.clone(),
            raft.watch_status(),
        )));
        if config.bootstrap || config.force_new_cluster || sole_voter {
            raft.campaign().await;
        }
        Ok(Arc::new(Manager {
            node_id: config.node_id,
            cluster_id: config.cluster_id,
            store,
            raft,
            dispatcher,
            logs: Arc::default(),
            transport: config.transport,
            data_key,
            tasks,
        }))
    }

    /// The cluster object, as applied here.
    pub fn cluster(&self) -> Result<Cluster, Error> {
        self.store
            .get::<Cluster>(&self.cluster_id)?
            .ok_or_else(|| Error::Unavailable("the cluster object is not applied here yet".into()))
    }

    /// The CA, key included, from the cluster object: every manager holds it once it
    /// has applied the cluster's first entries.
    pub fn ca(&self) -> Result<RootCa, Error> {
        let cluster = self.cluster()?;
        RootCa::from_pem(&cluster.ca_cert_pem, Some(&cluster.ca_key_pem))
            .map_err(|e| Error::Unavailable(format!("the cluster's CA: {e}")))
    }

    /// Waits until this manager knows a leader (or `timeout` passes).
    pub async fn wait_for_leader(&self, timeout: std::time::Duration) -> bool {
        let mut status = self.raft.watch_status();
        tokio::time::timeout(timeout, async {
            while status.borrow_and_update().leader == 0 {
                if status.changed().await.is_err() {
                    return false;
                }
            }
            true
        })
        .await
        .unwrap_or(false)
    }

    /// Waits until this manager has applied the cluster and knows a leader: a new
    /// manager is ready to serve once caught up.
    pub async fn wait_caught_up(&self, timeout: std::time::Duration) -> bool {
        tokio::time::timeout(timeout, async {
            while self.cluster().is_err() || self.raft.status().leader == 0 {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        })
        .await
        .is_ok()
    }

    pub fn stop(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Actions per Raft entry when a change is large (scaling to thousands of tasks): each
/// entry stays small enough to replicate over a slow link.
const ACTIONS_PER_ENTRY: usize = 256;

/// Commits `actions` in entries of at most [`ACTIONS_PER_ENTRY`]; each entry is its own
/// transaction.
pub async fn propose_chunked(store: &Store, mut actions: Vec<Action>) -> Result<(), Error> {
    while !actions.is_empty() {
        let rest = actions.split_off(actions.len().min(ACTIONS_PER_ENTRY));
        store.propose(actions).await?;
        actions = rest;
    }
    Ok(())
}

impl Drop for Manager {
    fn drop(&mut self) {
        self.stop();
    }
}
