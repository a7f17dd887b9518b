//! The cluster's objects, after swarmkit's `api/objects.proto`: what the store holds and
//! Raft replicates. Services, tasks, networks, configs and secrets join these with the
//! services issue; the store's tables are already named for them.

mod cluster;
mod node;

pub use cluster::{Cluster, ClusterSpec, JoinTokens};
pub use node::{
    Availability, ManagerStatus, Node, NodeDescription, NodeSpec, NodeState, NodeStatus,
};
