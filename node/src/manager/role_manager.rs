//! The role manager, on the leader, after swarmkit's: makes Raft's membership and each
//! node's role follow the role users asked for (`node promote`, `node demote`).
//!
//! A promoted node renews its certificate as a manager, starts its Raft and asks to be
//! added; this then records it as a manager. A demoted one is recorded as a worker and
//! removed from Raft, unless that would lose quorum; it renews as a worker and stops
//! its manager on its own.

use std::time::Duration;

use tokio::sync::watch;

use super::ca::Role;
use super::objects::{ManagerStatus, Node};
use super::raft::{raft_id, Forward, Raft, RaftStatus};
use super::store::{Action, Error, Store};

pub struct RoleManager {
    store: Store,
    raft: Raft,
}

impl RoleManager {
    pub fn new(store: Store, raft: Raft) -> Self {
        RoleManager { store, raft }
    }

    pub async fn run(&self, mut status: watch::Receiver<RaftStatus>) {
        let mut events = self.store.watch();
        loop {
            if status.borrow().is_leader {
                if let Err(e) = self.reconcile().await {
                    tracing::debug!("role manager: {e}");
                }
            }
            tokio::select! {
                changed = status.changed() => if changed.is_err() { return },
                _ = events.recv() => {}
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
    }

    async fn reconcile(&self) -> Result<(), Error> {
        let members = self.raft.members()?;
        let status = self.raft.status();
        for mut node in self.store.list::<Node>()? {
            let id = raft_id(&node.id);
            let member = members.iter().find(|m| m.raft_id == id);
            match (node.spec.desired_role, member) {
                (Role::Manager, Some(member))
                    if node.role != Role::Manager || node.manager_status.is_none() =>
                {
                    node.role = Role::Manager;
                    node.manager_status = Some(ManagerStatus {
                        raft_id: id,
                        addr: member.addr.clone(),
                    });
                    self.store.propose(vec![Action::update(&node)?]).await?;
                    tracing::info!(node = %node.id, "node is now a manager");
                }
                (Role::Worker, Some(_)) => {
                    let voters = status.voters.len();
                    let reachable = status
                        .voters
                        .iter()
                        .filter(|v| **v != id && !status.unreachable.contains(v))
                        .count();
                    if voters <= 1 || reachable < (voters - 1) / 2 + 1 {
                        tracing::warn!(node = %node.id, "not demoting yet: it would lose quorum");
                        continue;
                    }
                    node.role = Role::Worker;
                    node.manager_status = None;
                    self.store.propose(vec![Action::update(&node)?]).await?;
                    self.raft.submit(Forward::RemoveMember(id)).await?;
                    tracing::info!(node = %node.id, "node demoted: removed from raft");
                }
                (Role::Worker, None)
                    if node.role == Role::Manager || node.manager_status.is_some() =>
                {
                    node.role = Role::Worker;
                    node.manager_status = None;
                    self.store.propose(vec![Action::update(&node)?]).await?;
                }
                // A promoted node not in Raft yet: it renews and asks to be added.
                _ => {}
            }
        }
        Ok(())
    }
}
