//! The dispatcher, on the leader: takes every node's heartbeats and marks a node Down
//! when they stop, after swarmkit's. Heartbeats live in memory; only a change of a
//! node's state or address is written, so an idle cluster writes nothing. Its other
//! halves hand nodes their tasks and take back their status ([`tasks`]), and tell them
//! of their networks ([`networks`]), each as a long poll ([`Dispatcher::long_poll`]).

pub mod networks;
pub mod tasks;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

use super::objects::{Cluster, Node, NodeDescription, NodeState};
use super::raft::RaftStatus;
use super::store::{Action, Change, Error, ErrorKind, Store};

/// Heartbeats missed before a node is Down: swarmkit's grace multiplier.
const GRACE_PERIODS: u32 = 3;

pub struct Dispatcher {
    store: Store,
    /// When each node last reported to this manager, while it leads.
    seen: Mutex<HashMap<String, Instant>>,
    /// Opens secrets for the assignments of the nodes whose tasks use them.
    data_key: Option<Arc<crate::seal::Key>>,
}

impl Dispatcher {
    pub fn new(store: Store, data_key: Option<Arc<crate::seal::Key>>) -> Self {
        Dispatcher {
            store,
            seen: Mutex::new(HashMap::new()),
            data_key,
        }
    }

    /// A long poll over the store: what `current` reads (with its digest) as soon as its
    /// digest differs from `known`, read again after each change `relevant` says may
    /// matter, or as it is after [`tasks::LONG_POLL`].
    async fn long_poll<T>(
        &self,
        known: Option<&str>,
        relevant: impl Fn(&Change) -> bool,
        current: impl Fn() -> Result<(String, T), Error>,
    ) -> Result<(String, T), Error> {
        // Subscribed before reading, so a change between the two is not missed.
        let mut events = self.store.watch();
        let deadline = tokio::time::Instant::now() + tasks::LONG_POLL;
        loop {
            let (digest, value) = current()?;
            if known != Some(digest.as_str()) {
                return Ok((digest, value));
            }
            loop {
                match tokio::time::timeout_at(deadline, events.recv()).await {
                    Err(_) => return Ok((digest, value)),
                    Ok(Ok(event)) => {
                        if event.reset || event.changes.iter().any(&relevant) {
                            break;
                        }
                    }
                    Ok(Err(RecvError::Lagged(_))) => break,
                    Ok(Err(RecvError::Closed)) => {
                        return Err(Error::Unavailable("the store is closing".into()))
                    }
                }
            }
        }
    }

    /// Whether `node_id` reported within the last two periods (known on the leader only).
    pub fn recently_seen(&self, node_id: &str) -> bool {
        let window = self.period() * 2;
        self.seen
            .lock()
            .ok()
            .and_then(|s| s.get(node_id).copied())
            .is_some_and(|t| t.elapsed() < window)
    }

    /// The cluster's heartbeat period.
    pub fn period(&self) -> Duration {
        let secs = self
            .store
            .list::<Cluster>()
            .ok()
            .and_then(|c| c.first().map(|c| c.spec.heartbeat_period_secs))
            .unwrap_or(5);
        Duration::from_secs(secs.max(1))
    }

    /// A heartbeat from `node_id`, seen coming from `ip`.
    pub async fn heartbeat(
        &self,
        node_id: &str,
        ip: IpAddr,
        description: &NodeDescription,
    ) -> Result<Node, Error> {
        if let Ok(mut seen) = self.seen.lock() {
            seen.insert(node_id.to_string(), Instant::now());
        }
        // An update may race with another write of the node: read again and retry.
        for _ in 0..5 {
            let mut node = self
                .store
                .get::<Node>(node_id)?
                .ok_or_else(|| Error::NotFound {
                    kind: super::store::Kind::Node,
                    id: node_id.to_string(),
                })?;
            let addr = ip.to_string();
            if node.status.state == NodeState::Ready
                && node.status.addr == addr
                && node.description == *description
            {
                return Ok(node);
            }
            node.status.state = NodeState::Ready;
            node.status.message.clear();
            node.status.addr = addr;
            node.description = description.clone();
            match self.store.propose(vec![Action::update(&node)?]).await {
                Ok(()) => return Ok(node),
                Err(e) if e.kind() == ErrorKind::Conflict => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Unavailable(format!(
            "node {node_id} keeps changing; try again"
        )))
    }

    /// Marks nodes Down whose heartbeats stopped, while this manager leads.
    pub async fn run(&self, mut status: watch::Receiver<RaftStatus>) {
        let mut leading = false;
        loop {
            let is_leader = status.borrow().is_leader;
            if is_leader && !leading {
                // A new leader has heard from nobody yet: everyone gets a full grace.
                let now = Instant::now();
                if let (Ok(nodes), Ok(mut seen)) = (self.store.list::<Node>(), self.seen.lock()) {
                    seen.clear();
                    for node in nodes {
                        seen.insert(node.id, now);
                    }
                }
            }
            leading = is_leader;
            if leading {
                if let Err(e) = self.mark_down().await {
                    tracing::warn!("dispatcher: {e}");
                }
            }
            tokio::select! {
                changed = status.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    async fn mark_down(&self) -> Result<(), Error> {
        let grace = self.period() * GRACE_PERIODS + Duration::from_millis(500) * GRACE_PERIODS;
        let now = Instant::now();
        let mut actions = Vec::new();
        for mut node in self.store.list::<Node>()? {
            let last = self.seen.lock().ok().and_then(|s| s.get(&node.id).copied());
            let Some(last) = last else {
                // New since this manager took the lead: its grace starts now.
                if let Ok(mut seen) = self.seen.lock() {
                    seen.insert(node.id.clone(), now);
                }
                continue;
            };
            if now.duration_since(last) > grace && node.status.state != NodeState::Down {
                tracing::info!(node = %node.id, "no heartbeat within {grace:?}: marking the node down");
                node.status.state = NodeState::Down;
                node.status.message = "heartbeat failure".into();
                actions.push(Action::update(&node)?);
            }
        }
        if actions.is_empty() {
            return Ok(());
        }
        let down = actions.len();
        match self.store.propose(actions).await {
            Ok(()) => {
                crate::metrics::nodes_marked_down(down);
                Ok(())
            }
            // A node's heartbeat wrote in between: the next round sees it.
            Err(e) if e.kind() == ErrorKind::Conflict => Ok(()),
            other => other,
        }
    }
}
