//! The cluster's objects, after swarmkit's `api/objects.proto`: what the store holds and
//! Raft replicates.

mod cluster;
pub mod config;
pub mod network;
mod node;
pub mod secret;
pub mod service;
pub mod task;
pub mod update;

pub use cluster::{Cluster, ClusterSpec, JoinTokens};
pub use config::{Config, ConfigSpec};
pub use network::{Attachment, Network, NetworkSpec};
pub use node::{
    Availability, ManagerStatus, Node, NodeDescription, NodeSpec, NodeState, NodeStatus,
};
pub use secret::{Secret, SecretSpec};
pub use service::{Service, ServiceMode, ServiceSpec, TaskSpec};
pub use task::{Task, TaskState, TaskStatus};
