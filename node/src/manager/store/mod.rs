//! The store: the cluster's objects in sled, changed only by committed Raft entries.
//!
//! Reads are local (a follower's may trail the leader by the entries in flight). Writes are
//! a list of [`Action`]s handed to a [`Proposer`] (Raft, or a fake in tests), which returns
//! once they are committed and applied here, or refused. Every applied proposal becomes one
//! [`Event`] on the watch stream, as swarmkit's store emits one per transaction.
//!
//! **Architecture invariant:** the store knows nothing of Raft's log or messages: it is
//! the state machine that Raft applies entries to, and the reader everyone else uses.

mod action;
mod error;
mod machine;
mod object;
#[cfg(test)]
pub(crate) mod testing;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::broadcast;

pub use action::{Action, Change, Event, Op, Proposal};
pub use error::{Error, ErrorKind};
pub use machine::{RawBatch, StateMachine};
pub(crate) use object::object;
pub use object::{now_secs, Kind, Meta, Object};

/// How writes reach the store: through Raft in a cluster.
pub trait Proposer: Send + Sync {
    /// Returns once `actions` are committed and applied on this manager, or with the
    /// reason they were refused (an object changed since it was read, a lost leader...).
    fn propose(
        &self,
        actions: Vec<Action>,
    ) -> Pin<Box<dyn Future<Output = Result<(), Error>> + Send + '_>>;
}

/// The manager's handle on the store: local reads, proposed writes, watches.
#[derive(Clone)]
pub struct Store {
    machine: StateMachine,
    proposer: Arc<dyn Proposer>,
}

impl Store {
    pub fn new(machine: StateMachine, proposer: Arc<dyn Proposer>) -> Self {
        Store { machine, proposer }
    }

    pub fn machine(&self) -> &StateMachine {
        &self.machine
    }

    pub fn get<T: Object>(&self, id: &str) -> Result<Option<T>, Error> {
        self.machine.get(id)
    }

    pub fn list<T: Object>(&self) -> Result<Vec<T>, Error> {
        self.machine.list()
    }

    /// Commits `actions` as one transaction: all of them apply, or none.
    pub async fn propose(&self, actions: Vec<Action>) -> Result<(), Error> {
        if actions.is_empty() {
            return Ok(());
        }
        self.proposer.propose(actions).await
    }

    /// Changes from now on. A receiver that falls behind gets `Lagged` and should re-read
    /// what it watches.
    pub fn watch(&self) -> broadcast::Receiver<Event> {
        self.machine.watch()
    }
}
