//! The swarm's figures: on managers, the nodes and services as this manager's store
//! holds them and where Raft stands here; on every node, QUIC's view of each peer.
//! Every manager reports the same store, so a dashboard sums nothing across them.

use prometheus_client::registry::Unit;

use super::scrape::{describe, Labels, Scrape};
use crate::manager::ca::Role;
use crate::manager::objects::service::counted_tasks;
use crate::manager::objects::{Node, NodeState, Service, Task};
use crate::manager::Manager;
use crate::transport::endpoint::PeerStats;
use crate::transport::Transport;

/// The connections this node opened, per peer address.
pub fn peers(scrape: &mut Scrape, transport: &Transport) {
    let stats = transport.peer_stats();
    let labels = |p: &PeerStats| vec![("peer", p.addr.to_string())];
    scrape.gauges(
        describe(
            "covey_quic_rtt",
            "Smoothed QUIC round-trip time to a peer this node connected to",
            Some(Unit::Seconds),
        ),
        stats.iter().map(|p| (labels(p), p.rtt.as_secs_f64())),
    );
    scrape.counters(
        describe(
            "covey_quic_sent_packets",
            "QUIC packets sent to a peer on the current connection",
            None,
        ),
        stats.iter().map(|p| (labels(p), p.sent_packets as f64)),
    );
    scrape.counters(
        describe(
            "covey_quic_lost_packets",
            "QUIC packets to a peer declared lost on the current connection",
            None,
        ),
        stats.iter().map(|p| (labels(p), p.lost_packets as f64)),
    );
}

pub fn manager(scrape: &mut Scrape, manager: &Manager) {
    raft(scrape, manager);
    let (Ok(nodes), Ok(services), Ok(tasks)) = (
        manager.store.list::<Node>(),
        manager.store.list::<Service>(),
        manager.store.list::<Task>(),
    ) else {
        // The store is closing: the process figures are still worth a scrape.
        return;
    };
    let mut by_state = Vec::new();
    for role in [Role::Manager, Role::Worker] {
        for state in [
            NodeState::Ready,
            NodeState::Down,
            NodeState::Unknown,
            NodeState::Disconnected,
        ] {
            let n = nodes
                .iter()
                .filter(|n| n.role == role && n.status.state == state)
                .count();
            let labels = vec![("role", role.to_string()), ("state", state.as_str().into())];
            by_state.push((labels, n as f64));
        }
    }
    scrape.gauges(
        describe(
            "covey_cluster_nodes",
            "The swarm's nodes by role and state",
            None,
        ),
        by_state,
    );
    let counted = counted_tasks(&tasks, &nodes);
    let counts: Vec<(Labels, _)> = services
        .iter()
        .map(|s| {
            let counts = s.task_counts(counted.iter().copied());
            (vec![("service", s.spec.name.clone())], counts)
        })
        .collect();
    scrape.gauges(
        describe(
            "covey_service_tasks_desired",
            "Tasks a service should run (replicas, or one per eligible node)",
            None,
        ),
        counts.iter().map(|(l, c)| (l.clone(), c.desired as f64)),
    );
    scrape.gauges(
        describe(
            "covey_service_tasks_running",
            "A service's tasks that run and should, on nodes not down",
            None,
        ),
        counts.into_iter().map(|(l, c)| (l, c.running as f64)),
    );
}

fn raft(scrape: &mut Scrape, manager: &Manager) {
    let status = manager.raft.status();
    let (commit, applied) = manager.raft.commit_and_applied();
    let figures = [
        (
            "covey_raft_term",
            "This manager's Raft term",
            status.term as f64,
        ),
        (
            "covey_raft_commit_index",
            "The highest Raft log index this manager knows committed",
            commit as f64,
        ),
        (
            "covey_raft_applied_index",
            "The highest Raft log index this manager applied to its store",
            applied as f64,
        ),
        (
            "covey_raft_leader",
            "Whether this manager is the Raft leader (1) or not (0)",
            f64::from(u8::from(status.is_leader)),
        ),
        (
            "covey_raft_voters",
            "Raft voters as this manager applied them",
            status.voters.len() as f64,
        ),
        (
            "covey_raft_unreachable_voters",
            "Voters the leader has not heard from within an election timeout (0 elsewhere)",
            status.unreachable.len() as f64,
        ),
    ];
    for (name, help, value) in figures {
        scrape.gauge(describe(name, help, None), value);
    }
}
