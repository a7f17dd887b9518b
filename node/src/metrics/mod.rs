//! The daemon's Prometheus metrics, in the OpenMetrics text format (Prometheus' own
//! client library encodes them), served on `--metrics-addr` by `dashboard`.
//! - `instruments`: what the daemon counts as it runs (Raft proposals and leader changes,
//!   heartbeats missed, tasks restarted), added to from where it happens.
//! - `host`: the node's CPU, memory and disk, and the daemon's own process, from /proc.
//! - `cluster`: on managers, the swarm as the store holds it (nodes, services' tasks)
//!   and Raft; on every node, QUIC's figures per peer.
//! - `scrape`: one scrape's registry, the instruments and the figures read now.
//!
//! Names follow Prometheus' conventions: `covey_` and the subsystem, base units
//! (seconds, bytes) in the name, `_total` on counters; the process' own figures are the
//! standard `process_*` ones.
//!
//! **Invariant:** only this module names prometheus-client's types; the rest of the
//! daemon calls the functions below.

mod cluster;
mod host;
mod instruments;
mod scrape;

use std::time::Duration;

use crate::daemon::Node;

pub use scrape::CONTENT_TYPE;

/// Everything there is to say now, as the body of a `/metrics` answer.
pub async fn render(node: &Node) -> String {
    let mut scrape = scrape::Scrape::new();
    instruments::register(&mut scrape);
    host::read(&mut scrape, &node.config.data_root);
    host::containers(&mut scrape, &node.containers);
    let active = node
        .swarm
        .with_active(|active| active.map(|a| (a.transport.clone(), a.manager.clone())))
        .await;
    if let Some((transport, manager)) = active {
        cluster::peers(&mut scrape, &transport);
        if let Some(manager) = manager {
            cluster::manager(&mut scrape, &manager);
        }
    }
    scrape.finish()
}

/// A Raft proposal (or membership change) applied, `elapsed` after it was submitted.
pub fn raft_proposal_applied(elapsed: Duration) {
    instruments::get()
        .raft_proposals
        .observe(elapsed.as_secs_f64());
}

/// This manager learned of a new leader.
pub fn raft_leader_changed() {
    instruments::get().raft_leader_changes.inc();
}

/// No manager took this node's heartbeat.
pub fn heartbeat_failed() {
    instruments::get().heartbeat_failures.inc();
}

/// The leader's dispatcher marked `n` nodes Down, their heartbeats missed.
pub fn nodes_marked_down(n: usize) {
    instruments::get().heartbeat_timeouts.inc_by(n as u64);
}

/// The leader's restart supervisor replaces an ended task of `service`.
pub fn task_restarted(service: &str) {
    instruments::get()
        .task_restarts
        .get_or_create(&vec![("service", service.to_string())])
        .inc();
}
