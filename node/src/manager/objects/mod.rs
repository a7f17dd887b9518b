//! The cluster's objects, after swarmkit's `api/objects.proto`: what the store holds and
//! Raft replicates. Configs and secrets join these with their issue; the store's tables
//! are already named for them.

mod cluster;
pub mod network;
mod node;
pub mod service;
mod task;

pub use cluster::{Cluster, ClusterSpec, JoinTokens};
pub use network::{Attachment, Network, NetworkSpec};
pub use node::{
    Availability, ManagerStatus, Node, NodeDescription, NodeSpec, NodeState, NodeStatus,
};
pub use service::{Service, ServiceMode, ServiceSpec, TaskSpec};
pub use task::{Task, TaskState, TaskStatus};
