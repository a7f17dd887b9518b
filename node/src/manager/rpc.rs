//! What nodes say to managers over the transport: JSON in Request and Response frames.

use serde::{Deserialize, Serialize};

use super::ca::Role;
use super::objects::{NodeDescription, Task, TaskStatus};
use super::raft::{Forward, Member};
use super::store::ErrorKind;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum Request {
    /// A node asks in, with its token and a certificate request. The only call an
    /// anonymous peer may make.
    Join {
        token: String,
        /// The request's DER, base64.
        csr: String,
        description: NodeDescription,
        /// Where managers reach the node (used when it joins as a manager).
        advertise_addr: String,
        /// Set by a node whose certificate expired while it was away: it rejoins under
        /// its own id, keeping its state.
        #[serde(default)]
        node_id: Option<String>,
    },
    /// Every node, on the cluster's heartbeat period, to the leader's dispatcher.
    Heartbeat { description: NodeDescription },
    /// A node renews its certificate before it expires.
    Renew { csr: String },
    /// A node asks the leader's dispatcher for its tasks. Answered at once if they differ
    /// from `known` (the digest of the set the node has), else when they change or after
    /// a while (a long poll).
    Assignments { known: Option<String> },
    /// A node asks for its network map once it differs from `known` (its digest), else
    /// when it changes or after a while (a long poll).
    NetworkMap { known: Option<String> },
    /// A node reports what became of its tasks.
    TaskStatus { updates: Vec<StatusUpdate> },
    /// A node asks which log subscriptions it should serve (a long poll, answered when
    /// they differ from the `active` ones it serves).
    LogSubscriptions { active: Vec<u64> },
    /// A node sends lines of its tasks' logs for a subscription; `done` once it has sent
    /// all it will (not following).
    PublishLogs {
        subscription: u64,
        messages: Vec<LogMessage>,
        done: bool,
    },
    /// Managers only: a follower hands the leader a write or a membership change.
    Forward(Forward),
    /// Managers only: `service logs` asked of a follower, served by the leader's broker.
    RemoteLogs(RemoteLogs),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Response {
    Joined(Box<Joined>),
    Heartbeat {
        /// When to report next.
        period_secs: u64,
        /// Every manager's address, to fail over to when this one goes.
        managers: Vec<String>,
        /// The role the node's certificate should have (promotion, demotion).
        desired_role: Role,
    },
    /// A new certificate, for the role the node should have now (which changes it on
    /// promotion and demotion).
    Renewed {
        cert_pem: String,
        role: Role,
        members: Vec<Member>,
        /// Managers only: the cluster data key (base64), which seals secrets.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data_key: Option<String>,
        /// Managers of an autolocked swarm: the unlock key, to seal their keys with.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unlock_key: Option<String>,
    },
    /// Every task the node should know of, and the digest that names this set.
    LogSubscriptions {
        subscriptions: Vec<LogSubscription>,
    },
    /// Lines of a remote log subscription, the nodes that sent all theirs, and whether it
    /// ended.
    LogEvents {
        id: u64,
        lines: Vec<LogMessage>,
        done: Vec<String>,
        closed: bool,
    },
    Assignments {
        digest: String,
        tasks: Vec<Task>,
    },
    NetworkMap {
        digest: String,
        map: Box<crate::network::map::NetworkMap>,
    },
    Done,
    /// Only the leader takes heartbeats: ask it instead.
    NotLeader {
        leader: Option<String>,
    },
    Error {
        message: String,
        kind: ErrorKind,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Joined {
    pub cluster_id: String,
    pub node_id: String,
    pub role: Role,
    pub cert_pem: String,
    pub ca_pem: String,
    /// Raft's members, so a joining manager can reach its peers before it applies a thing.
    pub members: Vec<Member>,
    /// Managers only: the cluster data key (base64), which seals secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_key: Option<String>,
    /// Managers of an autolocked swarm: the unlock key, so that the new manager's keys
    /// are sealed from the first write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unlock_key: Option<String>,
}

/// One task's observed status, from the node that runs it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StatusUpdate {
    pub task_id: String,
    pub status: TaskStatus,
}

/// Logs the leader's log broker wants from one node: which of its tasks' containers, and
/// how (`docker service logs`' options).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LogSubscription {
    pub id: u64,
    /// Task id and container name, for each of the node's tasks.
    pub tasks: Vec<(String, String)>,
    pub follow: bool,
    pub tail: Option<usize>,
    pub timestamps: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// One line of a task's log.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LogMessage {
    pub task_id: String,
    pub stderr: bool,
    pub line: String,
}

/// A follower's `service logs`, through the leader's log broker.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum RemoteLogs {
    /// Per node, its tasks' ids and container names; answered with the id (`LogEvents`).
    Subscribe {
        tasks: std::collections::HashMap<String, Vec<(String, String)>>,
        template: LogSubscription,
    },
    /// What arrived since the last fetch (a long poll).
    Fetch {
        id: u64,
    },
    Cancel {
        id: u64,
    },
}
