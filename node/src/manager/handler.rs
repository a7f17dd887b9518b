//! The manager's side of the transport: checks who calls and what they may ask.

use std::sync::Arc;

use base64::Engine as _;

use super::ca::{JoinToken, Role, DEFAULT_CERT_VALIDITY};
use super::dispatcher::tasks::LONG_POLL;

/// How long a follower's fetch of remote logs waits for lines.
const REMOTE_FETCH: std::time::Duration = std::time::Duration::from_secs(5);
use super::objects::{Availability, ManagerStatus, Node, NodeSpec, NodeState, NodeStatus};
use super::raft::{raft_id, Forward, Member, Message};
use super::rpc::{Joined, RemoteLogs, Request, Response};
use super::store::{Action, Error, ErrorKind};
use super::Manager;
use crate::transport::{BoxFuture, Handler, Peer};

/// Serves the transport for whichever manager runs now: connections outlive a manager
/// restarted in place (`--force-new-cluster`, promotion).
pub struct ManagerHandler {
    current: std::sync::RwLock<Option<Arc<Manager>>>,
}

impl ManagerHandler {
    pub fn new(manager: Arc<Manager>) -> Self {
        ManagerHandler {
            current: std::sync::RwLock::new(Some(manager)),
        }
    }

    /// Serve another manager from now on, or none (the node was demoted).
    pub fn replace(&self, manager: Option<Arc<Manager>>) {
        if let Ok(mut current) = self.current.write() {
            *current = manager;
        }
    }

    fn manager(&self) -> Option<Arc<Manager>> {
        self.current.read().ok().and_then(|m| m.clone())
    }
}

fn refuse(kind: ErrorKind, message: impl Into<String>) -> Response {
    Response::Error {
        message: message.into(),
        kind,
    }
}

impl From<Error> for Response {
    fn from(e: Error) -> Self {
        refuse(e.kind(), e.to_string())
    }
}

impl Handler for ManagerHandler {
    fn request(&self, peer: Peer, body: Vec<u8>) -> BoxFuture<Vec<u8>> {
        let manager = self.manager();
        Box::pin(async move {
            let response = match (manager, serde_json::from_slice::<Request>(&body)) {
                (None, _) => refuse(ErrorKind::Unavailable, "this node is no longer a manager"),
                (Some(manager), Ok(request)) => manager.serve(peer, request).await,
                (_, Err(e)) => refuse(ErrorKind::Internal, format!("unreadable request: {e}")),
            };
            serde_json::to_vec(&response).unwrap_or_default()
        })
    }

    fn raft(&self, peer: Peer, message: Message) {
        // A manager speaks for itself only: its certificate's node id is its Raft id.
        let Some(cert) = peer.cert.filter(|c| c.role == Role::Manager) else {
            return;
        };
        if raft_id(&cert.node_id) != message.from {
            tracing::warn!(node = %cert.node_id, from = message.from, "raft message under another id dropped");
            return;
        }
        if let Some(manager) = self.manager() {
            manager.raft.step(message);
        }
    }
}

impl Manager {
    async fn serve(&self, peer: Peer, request: Request) -> Response {
        let Some(cert) = peer.cert.clone() else {
            return match request {
                Request::Join {
                    token,
                    csr,
                    description,
                    advertise_addr,
                    node_id,
                } => match node_id {
                    Some(id) => self.rejoin(&token, &csr, &id, peer).await,
                    None => {
                        self.join(&token, &csr, description, &advertise_addr, peer)
                            .await
                    }
                }
                .unwrap_or_else(|r| r),
                _ => refuse(
                    ErrorKind::Conflict,
                    "this call needs a node certificate: join the swarm first",
                ),
            };
        };
        if cert.cluster_id != self.cluster_id {
            return refuse(
                ErrorKind::Conflict,
                "this certificate is from another cluster",
            );
        }
        match request {
            Request::Join { .. } => {
                refuse(ErrorKind::Conflict, "this node is already part of a swarm")
            }
            Request::Heartbeat { description } => {
                if let Some(redirect) = self.unless_leader() {
                    return redirect;
                }
                match self
                    .dispatcher
                    .heartbeat(&cert.node_id, peer.addr.ip(), &description)
                    .await
                {
                    Ok(node) => Response::Heartbeat {
                        period_secs: self.dispatcher.period().as_secs(),
                        managers: self.manager_addrs(),
                        desired_role: node.spec.desired_role,
                    },
                    Err(e) => e.into(),
                }
            }
            Request::Renew { csr } => self.renew(&csr, &cert.node_id).await,
            Request::Assignments { known } => {
                if let Some(redirect) = self.unless_leader() {
                    return redirect;
                }
                match self
                    .dispatcher
                    .assignments(&cert.node_id, known.as_deref())
                    .await
                {
                    Ok((digest, tasks)) => Response::Assignments { digest, tasks },
                    Err(e) => e.into(),
                }
            }
            Request::NetworkMap { known } => {
                if let Some(redirect) = self.unless_leader() {
                    return redirect;
                }
                match self
                    .dispatcher
                    .network_map(&cert.node_id, known.as_deref())
                    .await
                {
                    Ok((digest, map)) => Response::NetworkMap {
                        digest,
                        map: Box::new(map),
                    },
                    Err(e) => e.into(),
                }
            }
            Request::LogSubscriptions { active } => {
                if let Some(redirect) = self.unless_leader() {
                    return redirect;
                }
                let subscriptions = self
                    .logs
                    .subscriptions_for(&cert.node_id, &active, LONG_POLL)
                    .await;
                Response::LogSubscriptions { subscriptions }
            }
            Request::PublishLogs {
                subscription,
                messages,
                done,
            } => match self
                .logs
                .publish(&cert.node_id, subscription, messages, done)
                .await
            {
                Ok(()) => Response::Done,
                Err(e) => e.into(),
            },
            Request::TaskStatus { updates } => {
                if let Some(redirect) = self.unless_leader() {
                    return redirect;
                }
                match self.dispatcher.update_status(&cert.node_id, &updates).await {
                    Ok(()) => Response::Done,
                    Err(e) => e.into(),
                }
            }
            Request::RemoteLogs(remote) => {
                if cert.role != Role::Manager {
                    return refuse(ErrorKind::Conflict, "only managers may ask for remote logs");
                }
                if let Some(redirect) = self.unless_leader() {
                    return redirect;
                }
                match remote {
                    RemoteLogs::Subscribe { tasks, template } => Response::LogEvents {
                        id: self.logs.subscribe_remote(tasks, template),
                        lines: Vec::new(),
                        done: Vec::new(),
                        closed: false,
                    },
                    RemoteLogs::Fetch { id } => {
                        let (lines, done, closed) = self.logs.fetch(id, REMOTE_FETCH).await;
                        Response::LogEvents {
                            id,
                            lines,
                            done,
                            closed,
                        }
                    }
                    RemoteLogs::Cancel { id } => {
                        self.logs.cancel(id);
                        Response::Done
                    }
                }
            }
            Request::Forward(forward) => {
                if cert.role != Role::Manager {
                    return refuse(
                        ErrorKind::Conflict,
                        "only managers may forward to the leader",
                    );
                }
                match self.raft.submit(forward).await {
                    Ok(()) => Response::Done,
                    Err(e) => e.into(),
                }
            }
        }
    }

    /// The dispatcher runs on the leader only: anyone else points the node at it.
    fn unless_leader(&self) -> Option<Response> {
        (!self.raft.status().is_leader).then(|| Response::NotLeader {
            leader: self.raft.leader().map(|m| m.addr),
        })
    }

    /// Sorted: nodes keep the list on disk only when it changes, and a map's order would
    /// change it on every heartbeat.
    fn manager_addrs(&self) -> Vec<String> {
        let mut addrs: Vec<String> = self
            .raft
            .members()
            .map(|m| m.into_iter().map(|m| m.addr).collect())
            .unwrap_or_default();
        addrs.sort();
        addrs
    }

    fn sign(&self, csr_b64: &str, node_id: &str, role: Role) -> Result<String, Response> {
        let csr = base64::engine::general_purpose::STANDARD
            .decode(csr_b64)
            .map_err(|e| {
                refuse(
                    ErrorKind::Conflict,
                    format!("invalid certificate request: {e}"),
                )
            })?;
        let validity = self
            .cluster()
            .map(|c| std::time::Duration::from_secs(c.spec.node_cert_expiry_secs))
            .unwrap_or(DEFAULT_CERT_VALIDITY);
        self.ca()
            .map_err(Response::from)?
            .sign_csr(&csr, node_id, role, &self.cluster_id, validity)
            .map_err(|e| refuse(ErrorKind::Conflict, e.to_string()))
    }

    /// The cluster data key for a node of `role`: managers only, whose certificate the
    /// answer's channel (mutual TLS, or a join pinned to the CA) already vouches for.
    fn data_key_for(&self, role: Role) -> Option<String> {
        use base64::Engine as _;
        let key = self.data_key.as_ref().filter(|_| role == Role::Manager)?;
        Some(base64::engine::general_purpose::STANDARD.encode(key.bytes()))
    }

    /// The swarm's unlock key for a node of `role`, if autolocked: managers only, as the
    /// data key.
    fn unlock_key_for(&self, role: Role) -> Option<String> {
        if role != Role::Manager {
            return None;
        }
        self.store
            .get::<crate::manager::objects::Cluster>(&self.cluster_id)
            .ok()
            .flatten()
            .and_then(|c| c.unlock_key)
    }

    /// A node's new certificate carries the role the store says it should have.
    async fn renew(&self, csr: &str, node_id: &str) -> Response {
        let node = match self.store.get::<Node>(node_id) {
            Ok(Some(node)) => node,
            Ok(None) => {
                return refuse(
                    ErrorKind::NotFound,
                    format!("node {node_id} is not in the swarm"),
                )
            }
            Err(e) => return e.into(),
        };
        let role = node.spec.desired_role;
        match self.sign(csr, node_id, role) {
            Ok(cert_pem) => Response::Renewed {
                cert_pem,
                role,
                members: self.raft.members().unwrap_or_default(),
                data_key: self.data_key_for(role),
                unlock_key: self.unlock_key_for(role),
            },
            Err(r) => r,
        }
    }

    /// A node asks in: the token names its role; it gets an id and a certificate, and a
    /// manager becomes a Raft member.
    /// The role a presented token grants, if it is one of the swarm's.
    fn token_role(&self, token: &str, peer: &Peer) -> Result<Role, Response> {
        let cluster = self.cluster().map_err(Response::from)?;
        let presented: JoinToken = token
            .parse()
            .map_err(|e: super::ca::Error| refuse(ErrorKind::Conflict, e.to_string()))?;
        let tokens = [
            (
                Role::Worker,
                cluster.join_tokens.worker.parse::<JoinToken>(),
            ),
            (
                Role::Manager,
                cluster.join_tokens.manager.parse::<JoinToken>(),
            ),
        ];
        tokens
            .into_iter()
            .find_map(|(role, t)| t.ok().filter(|t| t.matches(&presented)).map(|_| role))
            .ok_or_else(|| {
                tracing::warn!(from = %peer.addr, "join refused: the token is not valid");
                refuse(
                    ErrorKind::Conflict,
                    "invalid join token: it does not match this swarm's tokens (was it rotated?)",
                )
            })
    }

    /// A node back after its certificate expired: a new one for its own id, if the token
    /// grants its role and the node is not up (so a token cannot take over a live node).
    async fn rejoin(
        &self,
        token: &str,
        csr: &str,
        node_id: &str,
        peer: Peer,
    ) -> Result<Response, Response> {
        let role = self.token_role(token, &peer)?;
        let node = self
            .store
            .get::<Node>(node_id)
            .map_err(Response::from)?
            .ok_or_else(|| {
                refuse(
                    ErrorKind::NotFound,
                    format!(
                        "node {node_id} is no longer in the swarm: leave, then join as a new node"
                    ),
                )
            })?;
        if node.spec.desired_role != role {
            return Err(refuse(
                ErrorKind::Conflict,
                format!(
                    "node {node_id} is a {}: rejoin with the {} token",
                    node.spec.desired_role, node.spec.desired_role
                ),
            ));
        }
        if self.dispatcher.recently_seen(node_id) {
            return Err(refuse(
                ErrorKind::Conflict,
                format!("node {node_id} is up: it cannot be rejoined under its id"),
            ));
        }
        let cert_pem = self.sign(csr, node_id, role)?;
        let cluster = self.cluster().map_err(Response::from)?;
        tracing::info!(node = %node_id, %role, from = %peer.addr, "node rejoined");
        Ok(Response::Joined(Box::new(Joined {
            cluster_id: self.cluster_id.clone(),
            node_id: node_id.to_string(),
            role,
            cert_pem,
            ca_pem: cluster.ca_cert_pem,
            members: self.raft.members().map_err(Response::from)?,
            data_key: self.data_key_for(role),
            unlock_key: self.unlock_key_for(role),
        })))
    }

    async fn join(
        &self,
        token: &str,
        csr: &str,
        description: super::objects::NodeDescription,
        advertise_addr: &str,
        peer: Peer,
    ) -> Result<Response, Response> {
        let cluster = self.cluster().map_err(Response::from)?;
        let role = self.token_role(token, &peer)?;
        let node_id = super::ca::new_id();
        let cert_pem = self.sign(csr, &node_id, role)?;
        let manager_status = match role {
            Role::Manager => {
                let addr = if advertise_addr.is_empty() {
                    format!("{}:{}", peer.addr.ip(), crate::swarm::DEFAULT_PORT)
                } else {
                    advertise_addr.to_string()
                };
                Some(ManagerStatus {
                    raft_id: raft_id(&node_id),
                    addr,
                })
            }
            Role::Worker => None,
        };
        let node = Node {
            id: node_id.clone(),
            meta: Default::default(),
            spec: NodeSpec {
                name: String::new(),
                desired_role: role,
                availability: Availability::Active,
                labels: Default::default(),
            },
            role,
            description,
            status: NodeStatus {
                state: NodeState::Unknown,
                message: String::new(),
                addr: peer.addr.ip().to_string(),
            },
            manager_status: manager_status.clone(),
            attachments: Vec::new(),
        };
        let create = Action::create(&node).map_err(Response::from)?;
        self.store
            .propose(vec![create])
            .await
            .map_err(Response::from)?;
        if let Some(status) = manager_status {
            let member = Member {
                raft_id: status.raft_id,
                node_id: node_id.clone(),
                addr: status.addr,
            };
            self.raft
                .submit(Forward::AddMember(member))
                .await
                .map_err(Response::from)?;
        }
        tracing::info!(node = %node_id, %role, from = %peer.addr, "node joined");
        Ok(Response::Joined(Box::new(Joined {
            cluster_id: self.cluster_id.clone(),
            node_id,
            role,
            cert_pem,
            ca_pem: cluster.ca_cert_pem.clone(),
            members: self.raft.members().map_err(Response::from)?,
            data_key: self.data_key_for(role),
            unlock_key: self.unlock_key_for(role),
        })))
    }
}
