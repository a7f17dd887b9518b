//! The node's membership of a swarm, after swarmkit's `node/`: `swarm init`, `join` and
//! `leave`, and at boot, starting the manager and the agent from what is on disk.

mod addr;
pub(crate) mod describe;
pub mod lock;
mod roles;
mod state;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use base64::Engine as _;
use tokio::sync::Mutex;

use crate::agent::executor::Executor;
use crate::agent::Worker;
use crate::manager::ca::{self, JoinToken, Role, RootCa, DEFAULT_CERT_VALIDITY};
use crate::manager::objects::{
    Availability, Cluster, ClusterSpec, JoinTokens, ManagerStatus, Network, Node, NodeDescription,
    NodeSpec, NodeState, NodeStatus,
};
use crate::manager::raft::{raft_id, Forward, Member};
use crate::manager::rpc::{Request, Response};
use crate::manager::store::Action;
use crate::manager::{Manager, ManagerConfig, ManagerHandler};
use crate::transport::{tls, Transport};

pub use addr::{host_of, DEFAULT_PORT};
pub use describe::{describe, Profile, BOARD_LABEL};
use state::Paths;
pub use state::SwarmState;

/// A node in a swarm, while it is one.
pub struct Active {
    pub state: SwarmState,
    pub transport: Transport,
    pub manager: Option<Arc<Manager>>,
    agent: tokio::task::JoinHandle<()>,
    /// The node's tasks (none in tests that run no containers).
    worker: Option<Arc<Worker>>,
    /// A manager's parts that outlive the manager restarted in place: the database
    /// (sled allows one opener) and what serves the transport.
    db: Option<sled::Db>,
    handler: Option<Arc<ManagerHandler>>,
    /// A manager's keys at rest following the swarm's autolock setting.
    lock_follower: Option<tokio::task::JoinHandle<()>>,
}

impl Active {
    fn new(state: SwarmState, transport: Transport, agent: Agent) -> Self {
        Active {
            state,
            transport,
            manager: None,
            agent: agent.0,
            worker: agent.1,
            db: None,
            handler: None,
            lock_follower: None,
        }
    }

    fn stop_manager(&mut self) {
        if let Some(old) = self.manager.take() {
            old.stop();
        }
        if let Some(follower) = self.lock_follower.take() {
            follower.abort();
        }
    }
}

pub struct Swarm {
    paths: Arc<Paths>,
    /// One membership change at a time; held across init, join and leave.
    active: Mutex<Option<Active>>,
    /// A manager's state while its keys are sealed and nobody unlocked them since it
    /// started: nothing of the swarm runs here until `swarm unlock`. Taken after
    /// `active` where both are held.
    locked: Mutex<Option<SwarmState>>,
    /// The agent's reports, to the task that acts on them (`roles`).
    reports: tokio::sync::mpsc::Sender<crate::agent::Report>,
    /// What runs tasks on this node (none in tests that run no containers).
    executor: Option<Executor>,
    /// The daemon's events, where this node's manager reports the store's changes.
    events: Arc<crate::events::Events>,
    /// What the node says of itself beyond its hardware, and its board's flash settings.
    profile: Profile,
}

/// A started agent, and its worker if the node runs tasks.
type Agent = (tokio::task::JoinHandle<()>, Option<Arc<Worker>>);

pub struct InitOptions {
    pub listen_addr: Option<String>,
    pub advertise_addr: Option<String>,
    pub force_new_cluster: bool,
    pub spec: Option<ClusterSpec>,
}

pub struct JoinOptions {
    pub token: String,
    pub remote_addrs: Vec<String>,
    pub listen_addr: Option<String>,
    pub advertise_addr: Option<String>,
}

const NOT_IN_SWARM: &str =
    "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.";
const ALREADY_IN_SWARM: &str = "This node is already part of a swarm. Use \"docker swarm leave\" to leave this swarm and join another one.";
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

impl Swarm {
    /// Opens what is on disk and, if the node is in a swarm, starts its parts.
    pub async fn open(
        data_root: &std::path::Path,
        executor: Option<Executor>,
        events: Arc<crate::events::Events>,
        profile: Profile,
    ) -> anyhow::Result<Arc<Swarm>> {
        // Reports come every heartbeat; a few queued are plenty.
        let (reports, receiver) = tokio::sync::mpsc::channel(16);
        let swarm = Arc::new(Swarm {
            paths: Arc::new(Paths::new(data_root)),
            active: Mutex::new(None),
            locked: Mutex::new(None),
            reports,
            executor,
            events,
            profile,
        });
        tokio::spawn(roles::act_on_reports(Arc::downgrade(&swarm), receiver));
        if let Some(state) = swarm.paths.load()? {
            if swarm.paths.locked()? {
                tracing::warn!(
                    "this manager's keys are locked: it takes no part in the swarm until `covey swarm unlock`"
                );
                *swarm.locked.lock().await = Some(state);
            } else {
                let active = swarm.resume(state, false).await?;
                *swarm.active.lock().await = Some(active);
            }
        }
        Ok(swarm)
    }

    /// True while the node waits for `swarm unlock`.
    pub async fn is_locked(&self) -> bool {
        self.locked.lock().await.is_some()
    }

    /// `swarm unlock`: the unlock key opens this manager's keys, and its parts start.
    pub async fn unlock(&self, key: &str) -> anyhow::Result<()> {
        let key = lock::parse_unlock_key(key)?;
        let mut active = self.active.lock().await;
        let mut locked = self.locked.lock().await;
        let Some(state) = locked.clone() else {
            bail!("swarm is not locked");
        };
        self.paths.vault.unlock(&self.paths.node_key(), key)?;
        match self.resume(state, false).await {
            Ok(started) => {
                *active = Some(started);
                *locked = None;
                tracing::info!("unlocked: this manager rejoins the swarm");
                Ok(())
            }
            Err(e) => {
                self.paths.vault.forget();
                Err(e)
            }
        }
    }

    /// The error for a membership change while locked, if the node is.
    async fn refuse_if_locked(&self) -> anyhow::Result<()> {
        if self.is_locked().await {
            return Err(lock::LockError::Locked.into());
        }
        Ok(())
    }

    /// The node's part in the swarm now, for the API.
    pub async fn with_active<T>(&self, f: impl FnOnce(Option<&Active>) -> T) -> T {
        f(self.active.lock().await.as_ref())
    }

    /// The running manager, or the error Docker gives on a node that is not one.
    pub async fn manager(&self) -> anyhow::Result<Arc<Manager>> {
        self.refuse_if_locked().await?;
        self.active
            .lock()
            .await
            .as_ref()
            .and_then(|a| a.manager.clone())
            .context(NOT_IN_SWARM)
    }

    /// Starts a node's parts from its state on disk.
    async fn resume(&self, state: SwarmState, force_new_cluster: bool) -> anyhow::Result<Active> {
        let (cert_pem, key_pem, ca_pem) = self.paths.load_certs()?;
        let ca = RootCa::from_pem(&ca_pem, None).context("reading the swarm's CA")?;
        let identity = tls::Identity::from_pem(&cert_pem, &key_pem)?;
        let listen = addr::parse_listen(&state.listen_addr)?;
        let server = match state.role {
            Role::Manager => Some(tls::server_config(ca.cert_der(), &identity)?),
            Role::Worker => None,
        };
        let transport = Transport::bind(
            listen,
            server,
            tls::client_config(ca.cert_der(), Some(&identity))?,
        )
        .with_context(|| format!("listening on {listen}"))?;
        let agent = self.start_agent(&state, &transport);
        let mut active = Active::new(state, transport, agent);
        if active.state.role == Role::Manager {
            self.start_manager(&mut active, Vec::new(), false, force_new_cluster)
                .await?;
        }
        tracing::info!(node = %active.state.node_id, role = %active.state.role, "in swarm {}", active.state.cluster_id);
        Ok(active)
    }

    /// Starts (or restarts in place) the node's manager; the transport then serves it.
    async fn start_manager(
        &self,
        active: &mut Active,
        peers: Vec<Member>,
        bootstrap: bool,
        force_new_cluster: bool,
    ) -> anyhow::Result<Arc<Manager>> {
        active.stop_manager();
        let db = match &active.db {
            Some(db) => db.clone(),
            None => {
                let path = self.paths.db();
                let db = sled::Config::new()
                    .path(&path)
                    // sled's own periodic flush; Raft syncs what must be durable itself,
                    // so a board on flash batches the rest for longer.
                    .flush_every_ms(Some(
                        u64::try_from(self.profile.store_flush().as_millis())
                            .unwrap_or(u64::MAX)
                            .max(1),
                    ))
                    // The cluster's state is small; sled's default cache is 1 GiB.
                    .cache_capacity(8 << 20)
                    .open()
                    .with_context(|| format!("opening {}", path.display()))?;
                active.db = Some(db.clone());
                db
            }
        };
        let manager = Manager::start(ManagerConfig {
            node_id: active.state.node_id.clone(),
            cluster_id: active.state.cluster_id.clone(),
            db,
            db_key: self
                .paths
                .load_or_create_key(&self.paths.db_key())
                .context("the store's key")?,
            transport: active.transport.clone(),
            peers,
            bootstrap,
            force_new_cluster,
            events: self.events.clone(),
            data_key: self.paths.load_data_key()?,
        })
        .await?;
        match &active.handler {
            Some(handler) => handler.replace(Some(manager.clone())),
            None => {
                let handler = Arc::new(ManagerHandler::new(manager.clone()));
                active.transport.serve(handler.clone());
                active.handler = Some(handler);
            }
        }
        active.lock_follower = Some(tokio::spawn(follow_lock(
            self.paths.clone(),
            manager.clone(),
        )));
        active.manager = Some(manager.clone());
        Ok(manager)
    }

    fn start_agent(&self, state: &SwarmState, transport: &Transport) -> Agent {
        if let Err(e) = self.certify_data_path() {
            tracing::warn!("overlay networks over QUIC will not work on this node: {e:#}");
        }
        let key = self
            .paths
            .load_or_create_key(&self.paths.worker_key())
            .inspect_err(|e| {
                tracing::warn!("agent: the node key: {e:#}; secrets will not be kept for a restart")
            })
            .ok();
        let worker = self
            .executor
            .clone()
            .map(|exec| Worker::start(exec, &self.paths.dir.join("worker"), key));
        let agent = crate::agent::start(
            transport.clone(),
            self.describe(),
            state.managers.clone(),
            self.reports.clone(),
            worker.clone(),
        );
        (agent, worker)
    }

    /// The node's engine labels, reservation and flash settings.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// What the node says of itself in its heartbeats.
    fn describe(&self) -> NodeDescription {
        describe(
            self.executor.as_ref().is_none_or(|e| e.network.vxlan()),
            &self.profile,
        )
    }

    /// Gives the overlay's QUIC data path the node's certificate, as saved.
    fn certify_data_path(&self) -> anyhow::Result<()> {
        let Some(exec) = &self.executor else {
            return Ok(());
        };
        let (cert_pem, key_pem, ca_pem) = self.paths.load_certs()?;
        let ca = RootCa::from_pem(&ca_pem, None)?;
        let identity = tls::Identity::from_pem(&cert_pem, &key_pem)?;
        exec.network.set_identity(ca.cert_der(), &identity)?;
        Ok(())
    }

    /// `swarm init`: a new cluster with this node its first manager.
    pub async fn init(&self, options: InitOptions) -> anyhow::Result<String> {
        let mut active = self.active.lock().await;
        self.refuse_if_locked().await?;
        if options.force_new_cluster {
            let Some(current) = active.as_mut() else {
                bail!("--force-new-cluster needs the state of a manager of an existing swarm, and this node has none");
            };
            if current.state.role != Role::Manager {
                bail!("--force-new-cluster must run on a manager");
            }
            self.start_manager(current, Vec::new(), false, true).await?;
            tracing::warn!("forced a new cluster: this manager is now its only member");
            return Ok(current.state.node_id.clone());
        }
        if active.is_some() {
            bail!(ALREADY_IN_SWARM);
        }
        let listen = addr::parse_listen(options.listen_addr.as_deref().unwrap_or("0.0.0.0:2377"))?;
        let cluster_id = ca::new_id();
        let node_id = ca::new_id();
        let root = RootCa::generate(&cluster_id)?;
        let keys = root.issue(&node_id, Role::Manager, &cluster_id, DEFAULT_CERT_VALIDITY)?;
        let key_pem = root.key_pem().context("a new CA without its key")?;
        let spec = options.spec.unwrap_or_default();
        // Locked from the start: no key of this manager is ever on disk in the clear.
        let unlock_key = if spec.autolock_managers {
            let key = lock::new_unlock_key()?;
            self.paths.vault.rekey(&[], Some(key.clone()))?;
            Some(lock::format_unlock_key(&key))
        } else {
            None
        };
        self.paths
            .save_certs(&keys.cert_pem, &keys.key_pem, &root.cert_pem())?;
        // The key that seals the cluster's secrets: on managers' disks only, never in
        // the store it protects.
        self.paths
            .save_key(&self.paths.data_key(), &crate::seal::Key::generate()?)?;
        let identity = tls::Identity::from_pem(&keys.cert_pem, &keys.key_pem)?;
        let transport = Transport::bind(
            listen,
            Some(tls::server_config(root.cert_der(), &identity)?),
            tls::client_config(root.cert_der(), Some(&identity))?,
        )
        .with_context(|| format!("listening on {listen}"))?;
        // Port 0 (tests) means the port the system chose.
        let listen = transport.local_addr()?;
        let advertise = addr::advertise(options.advertise_addr.as_deref(), listen, None)?;
        let state = SwarmState {
            cluster_id: cluster_id.clone(),
            node_id: node_id.clone(),
            role: Role::Manager,
            listen_addr: listen.to_string(),
            advertise_addr: advertise.clone(),
            managers: vec![advertise.clone()],
        };
        let agent = self.start_agent(&state, &transport);
        let mut started = Active::new(state, transport, agent);
        let manager = match self
            .start_manager(&mut started, Vec::new(), true, false)
            .await
        {
            Ok(manager) => manager,
            Err(e) => {
                stop(started).await;
                return Err(e);
            }
        };
        if !manager.wait_for_leader(Duration::from_secs(10)).await {
            bail!("the new cluster elected no leader");
        }
        let cluster = Cluster {
            id: cluster_id.clone(),
            meta: Default::default(),
            spec,
            ca_cert_pem: root.cert_pem(),
            ca_key_pem: key_pem,
            join_tokens: JoinTokens {
                worker: JoinToken::generate(&root).to_string(),
                manager: JoinToken::generate(&root).to_string(),
            },
            unlock_key,
            dashboard_token: ca::new_dashboard_token(),
        };
        let member = Member {
            raft_id: raft_id(&node_id),
            node_id: node_id.clone(),
            addr: advertise.clone(),
        };
        let node = Node {
            id: node_id.clone(),
            meta: Default::default(),
            spec: NodeSpec {
                name: String::new(),
                desired_role: Role::Manager,
                availability: Availability::Active,
                labels: Default::default(),
            },
            role: Role::Manager,
            description: self.describe(),
            status: NodeStatus {
                state: NodeState::Ready,
                message: String::new(),
                addr: addr::host_of(&advertise),
            },
            manager_status: Some(ManagerStatus {
                raft_id: member.raft_id,
                addr: advertise.clone(),
            }),
            attachments: Vec::new(),
        };
        // Swarm makes the routing mesh's network with the cluster.
        let ingress = Network::ingress(crate::manager::ca::new_id());
        manager
            .store
            .propose(vec![
                Action::create(&cluster)?,
                Action::create(&node)?,
                Action::create(&ingress)?,
            ])
            .await?;
        manager.raft.submit(Forward::AddMember(member)).await?;
        self.paths.save(&started.state)?;
        tracing::info!(cluster = %cluster_id, node = %node_id, "swarm initialized");
        *active = Some(started);
        Ok(node_id)
    }

    /// `swarm join`: a certificate from a manager, whose CA the token pins.
    pub async fn join(&self, options: JoinOptions) -> anyhow::Result<()> {
        let mut active = self.active.lock().await;
        self.refuse_if_locked().await?;
        let token: JoinToken = options.token.trim().parse()?;
        let remote = options
            .remote_addrs
            .first()
            .context("swarm join needs the address of a manager")?;
        let remote = addr::parse_remote(remote)?;
        if let Some(current) = active.as_ref() {
            // Only a node whose certificate expired while it was away joins again.
            let cert_pem = self.paths.load_cert()?;
            let cert = ca::NodeCertificate::from_pem(&cert_pem)?;
            if std::time::SystemTime::now() < cert.not_after {
                bail!(ALREADY_IN_SWARM);
            }
            return self.rejoin(current, &token, remote).await;
        }
        let listen = addr::parse_listen(options.listen_addr.as_deref().unwrap_or("0.0.0.0:2377"))?;
        let advertise = addr::advertise(options.advertise_addr.as_deref(), listen, Some(remote))?;
        let (key_pem, csr) = ca::new_csr()?;
        let join_config = tls::join_client_config(token.ca_digest())?;
        let transport = Transport::bind(listen, None, join_config.clone())
            .with_context(|| format!("listening on {listen}"))?;
        let request = Request::Join {
            token: token.to_string(),
            csr: base64::engine::general_purpose::STANDARD.encode(csr),
            description: self.describe(),
            advertise_addr: advertise.clone(),
            node_id: None,
        };
        let answer = async {
            let (reply, _chain) = transport
                .call_once(
                    remote,
                    join_config,
                    Role::Manager.server_name(),
                    serde_json::to_vec(&request)?,
                    JOIN_TIMEOUT,
                )
                .await
                .with_context(|| format!("reaching the manager at {remote}"))?;
            match serde_json::from_slice::<Response>(&reply)
                .context("an unreadable answer from the manager")?
            {
                Response::Joined(joined) => Ok(joined),
                Response::Error { message, .. } => bail!("{message}"),
                other => bail!("the manager answered {other:?}"),
            }
        };
        let joined = match answer.await {
            Ok(joined) => joined,
            Err(e) => {
                // Free the port at once, so that the user can try again.
                transport.close().await;
                return Err(e);
            }
        };
        // The token pinned the CA that signed the manager's certificate; the CA we keep
        // must be that same one.
        let root = RootCa::from_pem(&joined.ca_pem, None)?;
        if root.digest().as_bytes() != token.ca_digest().as_bytes() {
            bail!("the manager sent a CA that does not match the join token");
        }
        self.paths.adopt_unlock_key(joined.unlock_key.as_deref())?;
        self.paths
            .save_certs(&joined.cert_pem, &key_pem, &joined.ca_pem)?;
        let identity = tls::Identity::from_pem(&joined.cert_pem, &key_pem)?;
        transport.set_client_config(tls::client_config(root.cert_der(), Some(&identity))?);
        let mut managers: Vec<String> = joined.members.iter().map(|m| m.addr.clone()).collect();
        if managers.is_empty() {
            managers.push(remote.to_string());
        }
        let state = SwarmState {
            cluster_id: joined.cluster_id,
            node_id: joined.node_id,
            role: joined.role,
            listen_addr: listen.to_string(),
            advertise_addr: advertise,
            managers,
        };
        if joined.role == Role::Manager {
            transport.set_server_config(Some(tls::server_config(root.cert_der(), &identity)?));
            self.paths.save_data_key(joined.data_key.as_deref())?;
        }
        self.paths.save(&state)?;
        let agent = self.start_agent(&state, &transport);
        let mut started = Active::new(state, transport, agent);
        if joined.role == Role::Manager {
            let manager = self
                .start_manager(&mut started, joined.members, false, false)
                .await?;
            // As with Swarm, a manager has joined once it serves: caught up with the log.
            if !manager.wait_caught_up(JOIN_TIMEOUT).await {
                tracing::warn!(
                    "joined, but not caught up with the swarm's state after {JOIN_TIMEOUT:?}"
                );
            }
        }
        tracing::info!(node = %started.state.node_id, role = %started.state.role, "joined swarm {}", started.state.cluster_id);
        *active = Some(started);
        Ok(())
    }

    /// `swarm leave`: a manager that would take quorum with it, or the last one, needs
    /// `force`, as in Swarm.
    pub async fn leave(&self, force: bool) -> anyhow::Result<()> {
        let mut active = self.active.lock().await;
        let mut locked = self.locked.lock().await;
        if locked.is_some() {
            if !force {
                bail!("this manager is locked: unlock it with `swarm unlock` first, or leave with --force, which loses its state and keys");
            }
            std::fs::remove_dir_all(&self.paths.dir)
                .with_context(|| format!("removing {}", self.paths.dir.display()))?;
            *locked = None;
            tracing::info!("left the swarm while locked");
            return Ok(());
        }
        drop(locked);
        let Some(current) = active.take() else {
            bail!("This node is not part of a swarm");
        };
        if let Some(manager) = &current.manager {
            let members = manager.raft.members().unwrap_or_default().len();
            let unreachable = manager.raft.status().unreachable.len();
            let left = members.saturating_sub(1);
            let reachable_after = left.saturating_sub(unreachable);
            if !force {
                let message = if left == 0 {
                    "You are attempting to leave the swarm on a node that is participating as a manager. Removing the last manager erases all current state of the swarm. Use `--force` to ignore this message.".to_string()
                } else if reachable_after < left / 2 + 1 {
                    format!("You are attempting to leave the swarm on a node that is participating as a manager. Removing this node leaves {reachable_after} managers out of {members}. Without a Raft quorum your swarm will be inaccessible. The only way to restore a swarm that has lost consensus is to reinitialize it with `--force-new-cluster`. Use `--force` to suppress this message.")
                } else {
                    String::new()
                };
                if !message.is_empty() {
                    *active = Some(current);
                    bail!(message);
                }
            }
            if left > 0 {
                let id = manager.raft.id();
                if let Err(e) = manager.raft.submit(Forward::RemoveMember(id)).await {
                    tracing::warn!("leaving raft: {e}");
                }
            }
        }
        let node_id = current.state.node_id.clone();
        // Swarm removes a node's task containers when it leaves; the agent stops first,
        // so that no assignment arrives meanwhile.
        current.agent.abort();
        if let Some(worker) = &current.worker {
            worker.leave().await;
        }
        stop(current).await;
        std::fs::remove_dir_all(&self.paths.dir)
            .with_context(|| format!("removing {}", self.paths.dir.display()))?;
        tracing::info!(node = %node_id, "left the swarm");
        Ok(())
    }

    /// Stops the node's swarm parts (the daemon is stopping); its state stays on disk.
    pub async fn shutdown(&self) {
        if let Some(current) = self.active.lock().await.take() {
            stop(current).await;
        }
    }
}

/// Keeps this manager's keys at rest as the swarm's autolock setting says: sealed with
/// its unlock key, or in the clear; again each time the cluster object changes.
async fn follow_lock(paths: Arc<Paths>, manager: Arc<Manager>) {
    use crate::manager::store::Kind;
    let mut changes = manager.store.watch();
    loop {
        if let Ok(cluster) = manager.cluster() {
            let rekeyed = cluster
                .unlock_key
                .as_deref()
                .map(lock::parse_unlock_key)
                .transpose()
                .and_then(|key| paths.vault.rekey(&paths.key_files(), key));
            match rekeyed {
                Ok(true) if cluster.unlock_key.is_some() => {
                    tracing::info!(
                        "autolock: this manager's keys are sealed with the swarm's unlock key"
                    )
                }
                Ok(true) => {
                    tracing::info!("autolock is off: this manager's keys are kept in the clear")
                }
                Ok(false) => {}
                Err(e) => tracing::warn!("autolock: rekeying this manager's keys: {e}"),
            }
        }
        loop {
            match changes.recv().await {
                Ok(event)
                    if event.reset || event.changes.iter().any(|c| c.kind == Kind::Cluster) =>
                {
                    break
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}

async fn stop(mut active: Active) {
    active.agent.abort();
    active.stop_manager();
    active.transport.close().await;
    if let Some(db) = &active.db {
        let _ = db.flush_async().await;
    }
}
