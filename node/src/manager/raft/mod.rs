//! Raft among managers, on raft-rs (TiKV's port of etcd/raft, which swarmkit builds on),
//! with the log in sled ([`storage`]) and the store's state machine as what it applies.
//!
//! One task owns the Raft state ([`node`]); everything else talks to it through the
//! [`Raft`] handle: proposals, messages from peers, membership changes. Messages to peers
//! go through a [`Network`] (QUIC in the daemon, channels in tests), one queue per peer,
//! so a slow peer never holds up the others.

mod logger;
mod node;
pub mod storage;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

pub use node::{Raft, RaftConfig, RaftStatus};
pub use raft::eraftpb::Message;

use crate::manager::store::{Error, Proposal};

/// A manager in Raft: its Raft id, node id and the address its peers reach it on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub raft_id: u64,
    pub node_id: String,
    pub addr: String,
}

/// What a follower hands to the leader: only the leader proposes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Forward {
    Propose(Proposal),
    AddMember(Member),
    RemoveMember(u64),
}

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// How Raft reaches its peers.
pub trait Network: Send + Sync + 'static {
    /// Delivers `messages` to `to`, in order. An error marks the peer unreachable.
    fn send(&self, to: &Member, messages: Vec<Message>) -> BoxFuture<Result<(), String>>;
    /// Hands a request to the leader and waits for its outcome.
    fn forward(&self, leader: &Member, request: Forward) -> BoxFuture<Result<(), Error>>;
}

/// The Raft id a node's id maps to: stable, so that a member is recognised by either.
pub fn raft_id(node_id: &str) -> u64 {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(node_id.as_bytes());
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    // 0 means "none" to raft-rs.
    u64::from_be_bytes(id).max(1)
}
