//! What runs on the leader only, in one loop: the orchestrators decide the tasks, the
//! allocator gives them addresses, then the scheduler places them. A round runs on every change of the store's services,
//! tasks, nodes or cluster, when a restart delay ends, and on a slow tick as a backstop.

use std::time::Duration;

use tokio::sync::{broadcast::error::RecvError, watch};

use super::allocator;
use super::objects::Node;
use super::orchestrator::{self, Orchestrator};
use super::raft::RaftStatus;
use super::scheduler;
use super::store::{Kind, Store};

/// How long changes are gathered before a round: a burst of task updates becomes one.
const SETTLE: Duration = Duration::from_millis(10);
const TICK: Duration = Duration::from_secs(5);

pub async fn run(store: Store, mut status: watch::Receiver<RaftStatus>) {
    let mut events = store.watch();
    let mut orchestrator = Orchestrator::default();
    loop {
        if !status.borrow_and_update().is_leader {
            // A new leader starts from what the store says, with fresh timers.
            orchestrator = Orchestrator::default();
            if status.changed().await.is_err() {
                return;
            }
            continue;
        }
        // One view of the nodes for the whole round: the scheduler must not act on a node
        // state the orchestrators have not seen (a node back up, whose replaced tasks
        // they would drop first).
        let nodes = match store.list::<Node>() {
            Ok(nodes) => nodes,
            Err(e) => {
                tracing::warn!("leader: reading nodes: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let next = match orchestrator::round(&mut orchestrator, &store, &nodes).await {
            Ok(next) => next,
            Err(e) => {
                tracing::warn!("orchestrator: {e}");
                Some(std::time::Instant::now() + Duration::from_millis(500))
            }
        };
        if let Err(e) = allocator::round(&store).await {
            tracing::warn!("allocator: {e}");
        }
        if let Err(e) = scheduler::leader::round(&store, &nodes).await {
            tracing::warn!("scheduler: {e}");
        }
        let wake = next
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + TICK)
            .min(tokio::time::Instant::now() + TICK);
        tokio::select! {
            changed = status.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep_until(wake) => {}
            _ = relevant_change(&mut events) => {
                tokio::time::sleep(SETTLE).await;
                while events.try_recv().is_ok() {}
            }
        }
    }
}

/// Waits for a change that may call for a round.
async fn relevant_change(events: &mut tokio::sync::broadcast::Receiver<super::store::Event>) {
    loop {
        match events.recv().await {
            Ok(event) => {
                if event.reset
                    || event.changes.iter().any(|c| {
                        matches!(
                            c.kind,
                            Kind::Service | Kind::Task | Kind::Node | Kind::Cluster | Kind::Network
                        )
                    })
                {
                    return;
                }
            }
            Err(RecvError::Lagged(_)) => return,
            Err(RecvError::Closed) => return std::future::pending().await,
        }
    }
}
