use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::manager::store::{object, Kind, Meta};

/// The cluster: one per swarm, made by `swarm init`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Cluster {
    pub id: String,
    pub meta: Meta,
    pub spec: ClusterSpec,
    /// The root CA's certificate and key, in PEM. Only managers hold the store, so only
    /// managers hold the key, as in swarmkit.
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    pub join_tokens: JoinTokens,
    /// While autolocked: the key that seals each manager's keys at rest, as users see it
    /// (`SWMKEY-1-…`). In the store only, which those keys seal in turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unlock_key: Option<String>,
    /// What logs a browser in to the managers' dashboard (`--metrics-addr`). Empty in a
    /// cluster made before the dashboard, until rotated.
    #[serde(default)]
    pub dashboard_token: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClusterSpec {
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// How often nodes report to a dispatcher (Swarm's default: 5 s).
    pub heartbeat_period_secs: u64,
    /// How long node certificates are valid (Swarm's default: 90 days).
    pub node_cert_expiry_secs: u64,
    /// Committed entries between store snapshots (after which the Raft log is compacted).
    pub snapshot_interval: u64,
    /// Old tasks kept per slot (Swarm's default: 5).
    pub task_history_retention_limit: u64,
    /// Seal managers' keys at rest with an unlock key kept off the device.
    #[serde(default)]
    pub autolock_managers: bool,
}

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec {
            name: "default".into(),
            labels: BTreeMap::new(),
            heartbeat_period_secs: 5,
            node_cert_expiry_secs: 90 * 24 * 3600,
            snapshot_interval: 10_000,
            task_history_retention_limit: 5,
            autolock_managers: false,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct JoinTokens {
    pub worker: String,
    pub manager: String,
}

object!(Cluster, Kind::Cluster);
