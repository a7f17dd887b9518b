//! What the daemon counts as it runs. One set per process, since a daemon is one node:
//! a global rather than a handle passed down, so that Raft, the dispatcher, the agent
//! and the orchestrators each add to their figure without carrying the metrics in their
//! constructors. Counters start at zero with the daemon, as Prometheus expects.

use std::sync::LazyLock;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Unit;

use super::scrape::{Labels, Scrape};

pub struct Instruments {
    /// From submit to applied, on the manager that submitted (a follower's include the
    /// hop to the leader).
    pub raft_proposals: Histogram,
    pub raft_leader_changes: Counter,
    pub heartbeat_failures: Counter,
    pub heartbeat_timeouts: Counter,
    pub task_restarts: Family<Labels, Counter>,
}

static INSTRUMENTS: LazyLock<Instruments> = LazyLock::new(|| Instruments {
    // 1 ms to 16 s: a commit on a LAN to one over a lossy link with retransmissions.
    raft_proposals: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
    raft_leader_changes: Counter::default(),
    heartbeat_failures: Counter::default(),
    heartbeat_timeouts: Counter::default(),
    task_restarts: Family::default(),
});

pub fn get() -> &'static Instruments {
    &INSTRUMENTS
}

/// Adds the instruments, as they stand, to a scrape.
pub fn register(scrape: &mut Scrape) {
    let i = get();
    let registry = scrape.registry();
    registry.register_with_unit(
        "covey_raft_proposal_duration",
        "Raft proposals from submit to applied on this manager",
        Unit::Seconds,
        i.raft_proposals.clone(),
    );
    for (name, help, counter) in [
        (
            "covey_raft_leader_changes",
            "Times this manager learned of a new Raft leader",
            &i.raft_leader_changes,
        ),
        (
            "covey_agent_heartbeat_failures",
            "Heartbeats of this node that no manager took",
            &i.heartbeat_failures,
        ),
        (
            "covey_dispatcher_heartbeat_timeouts",
            "Nodes this manager, leading, marked down for missed heartbeats",
            &i.heartbeat_timeouts,
        ),
    ] {
        registry.register(name, help, counter.clone());
    }
    registry.register(
        "covey_service_task_restarts",
        "Ended tasks this manager, leading, restarted by their service's restart policy",
        i.task_restarts.clone(),
    );
}
