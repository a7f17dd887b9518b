use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Error, Kind, Object};

/// One change asked of the store. Updates carry the version the caller read, so a change
/// made in between is refused rather than overwritten.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Action {
    Create {
        kind: Kind,
        id: String,
        value: Value,
    },
    Update {
        kind: Kind,
        id: String,
        version: u64,
        value: Value,
    },
    Delete {
        kind: Kind,
        id: String,
    },
}

impl Action {
    pub fn create<T: Object>(object: &T) -> Result<Self, Error> {
        Ok(Action::Create {
            kind: T::KIND,
            id: object.id().to_string(),
            value: serde_json::to_value(object).map_err(Error::Codec)?,
        })
    }

    pub fn update<T: Object>(object: &T) -> Result<Self, Error> {
        Ok(Action::Update {
            kind: T::KIND,
            id: object.id().to_string(),
            version: object.meta().version,
            value: serde_json::to_value(object).map_err(Error::Codec)?,
        })
    }

    pub fn delete<T: Object>(id: &str) -> Self {
        Action::Delete {
            kind: T::KIND,
            id: id.to_string(),
        }
    }
}

/// What a Raft entry carries: a transaction, with the id its proposer waits on and the
/// proposer's clock, so that every manager applies the same timestamps.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Proposal {
    pub id: u64,
    pub at: u64,
    pub actions: Vec<Action>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Created,
    Updated,
    Deleted,
}

/// One object's change in an applied transaction; `value` is the new state (the last one
/// for a deletion).
#[derive(Clone, Debug)]
pub struct Change {
    pub kind: Kind,
    pub id: String,
    pub op: Op,
    pub value: Value,
}

impl Change {
    pub fn decode<T: Object>(&self) -> Option<T> {
        if self.kind != T::KIND {
            return None;
        }
        serde_json::from_value(self.value.clone()).ok()
    }
}

/// One applied transaction, at its Raft index.
#[derive(Clone, Debug)]
pub struct Event {
    pub index: u64,
    pub changes: Vec<Change>,
    /// The whole state was replaced by a snapshot: watchers re-read what they watch.
    pub reset: bool,
}
