//! The objects the store holds, after swarmkit's: one kind per table, each with the same
//! metadata. A value is stored as JSON under `<kind>/<id>`.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The tables of the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Cluster,
    Node,
    Service,
    Task,
    Network,
    Config,
    Secret,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Cluster,
        Kind::Node,
        Kind::Service,
        Kind::Task,
        Kind::Network,
        Kind::Config,
        Kind::Secret,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Cluster => "cluster",
            Kind::Node => "node",
            Kind::Service => "service",
            Kind::Task => "task",
            Kind::Network => "network",
            Kind::Config => "config",
            Kind::Secret => "secret",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What every object carries: its version (the Raft index of the entry that last wrote
/// it, as swarmkit's `Meta.Version`) and when it was made and last changed. The store
/// sets these while applying a committed entry, so every manager holds the same values.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub version: u64,
    /// Seconds since the epoch, from the proposing manager's clock.
    pub created_at: u64,
    pub updated_at: u64,
}

/// A typed object of one table.
pub trait Object: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    const KIND: Kind;
    fn id(&self) -> &str;
    fn meta(&self) -> &Meta;
    fn meta_mut(&mut self) -> &mut Meta;
}

/// Implements [`Object`] for a type whose `id: String` and `meta: Meta` fields say it.
macro_rules! object {
    ($type:ty, $kind:expr) => {
        impl $crate::manager::store::Object for $type {
            const KIND: $crate::manager::store::Kind = $kind;
            fn id(&self) -> &str {
                &self.id
            }
            fn meta(&self) -> &$crate::manager::store::Meta {
                &self.meta
            }
            fn meta_mut(&mut self) -> &mut $crate::manager::store::Meta {
                &mut self.meta
            }
        }
    };
}
pub(crate) use object;

/// Seconds since the epoch, for [`Meta`] timestamps.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
