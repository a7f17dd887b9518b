//! The cluster's objects, after swarmkit's `api/objects.proto`: what the store holds and
//! Raft replicates. Networks, configs and secrets join these with their issues; the
//! store's tables are already named for them.

mod cluster;
mod node;
pub mod service;
mod task;

pub use cluster::{Cluster, ClusterSpec, JoinTokens};
pub use node::{
    Availability, ManagerStatus, Node, NodeDescription, NodeSpec, NodeState, NodeStatus,
};
pub use service::{Service, ServiceMode, ServiceSpec, TaskSpec};
pub use task::{Task, TaskState, TaskStatus};
