//! The manager: what runs on manager nodes, after swarmkit's `manager/`.
//! - [`store`]: the cluster's objects in sled, changed only by committed Raft entries.
//! - [`raft`]: Raft among managers (raft-rs), its log in sled.
//! - [`objects`]: the typed objects the store holds.
//! - [`ca`]: the cluster's root CA, node certificates and join tokens.

pub mod ca;
pub mod objects;
pub mod raft;
pub mod store;
