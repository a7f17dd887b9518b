//! The task that owns Raft: ticks, steps messages, persists, sends, applies.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use protobuf::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeType, EntryType, Message, MessageType};
use raft::{RawNode, SnapshotStatus, StateRole};
use tokio::sync::{mpsc, oneshot, watch};

use super::storage::LogStore;
use super::{Forward, Member, Network};
use crate::manager::store::{now_secs, Action, Error, Proposal, Proposer, RawBatch, StateMachine};

/// Raft's timing. Ticks are short so that a lost leader is noticed soon, the election
/// timeout long enough that a link with 300 ms of delay and retransmissions does not
/// start needless elections; pre-vote keeps a cut-off node from disrupting the others
/// when it comes back.
#[derive(Clone, Debug)]
pub struct RaftConfig {
    pub id: u64,
    pub tick: Duration,
    pub heartbeat_tick: usize,
    pub election_tick: usize,
    /// Entries kept in the log after a compaction, for followers slightly behind
    /// (swarmkit's LogEntriesForSlowFollowers).
    pub keep_entries: u64,
    /// Entries applied between compactions.
    pub snapshot_interval: u64,
    /// How long a proposal may wait for its commit.
    pub propose_timeout: Duration,
}

impl RaftConfig {
    pub fn new(id: u64) -> Self {
        RaftConfig {
            id,
            tick: Duration::from_millis(100),
            heartbeat_tick: 3,
            election_tick: 30,
            keep_entries: 500,
            snapshot_interval: 10_000,
            propose_timeout: Duration::from_secs(20),
        }
    }
}

/// What this manager knows of Raft now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RaftStatus {
    pub id: u64,
    /// The leader's Raft id, 0 while there is none.
    pub leader: u64,
    pub term: u64,
    pub is_leader: bool,
    /// On the leader: members it has not heard from within an election timeout.
    pub unreachable: BTreeSet<u64>,
    /// This node was removed from Raft (demoted or removed), as far as it has applied.
    pub removed: bool,
    /// Raft's voters as this manager applied them.
    pub voters: BTreeSet<u64>,
}

enum Command {
    Step(Message),
    Propose(Proposal, oneshot::Sender<Result<(), Error>>),
    ChangeMember(ConfChange, u64, oneshot::Sender<Result<(), Error>>),
    Unreachable(u64),
    SnapshotSent(u64, bool),
    Campaign,
}

/// A handle on the Raft task: cheap to clone.
#[derive(Clone)]
pub struct Raft {
    id: u64,
    /// Bounded: a flood of peer messages waits here instead of growing memory.
    commands: mpsc::Sender<Command>,
    status: watch::Receiver<RaftStatus>,
    machine: StateMachine,
    net: Arc<dyn Network>,
    timeout: Duration,
    /// The members as the Raft task knows them (applied, or given at start), to find
    /// the leader's address.
    members: Members,
    /// How far the log is committed and applied: apart from `status`, whose watchers
    /// would otherwise wake at every entry.
    progress: Arc<Progress>,
}

/// The Raft task's commit and applied indexes, for the metrics.
#[derive(Default)]
struct Progress {
    commit: AtomicU64,
    applied: AtomicU64,
}

type Members = Arc<std::sync::RwLock<HashMap<u64, Member>>>;

fn member_key(id: u64) -> String {
    format!("r/member/{id:016x}")
}

fn unavailable(what: impl std::fmt::Display) -> Error {
    Error::Unavailable(what.to_string())
}

impl Raft {
    /// Starts Raft on `log`. `peers` are members known before any is applied here (a
    /// joining manager's view of the cluster, from the manager that let it in).
    pub fn start(
        config: RaftConfig,
        log: LogStore,
        machine: StateMachine,
        net: Arc<dyn Network>,
        peers: Vec<Member>,
    ) -> Result<(Raft, tokio::task::JoinHandle<()>), Error> {
        let applied = machine.applied()?;
        let raft_config = raft::Config {
            id: config.id,
            election_tick: config.election_tick,
            heartbeat_tick: config.heartbeat_tick,
            applied,
            pre_vote: true,
            check_quorum: true,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            ..Default::default()
        };
        raft_config
            .validate()
            .map_err(|e| unavailable(format!("raft configuration: {e}")))?;
        let raw = RawNode::new(&raft_config, log.clone(), &super::logger::logger())
            .map_err(|e| unavailable(format!("starting raft: {e}")))?;
        let (commands_tx, commands_rx) = mpsc::channel(1024);
        let (status_tx, status_rx) = watch::channel(RaftStatus {
            id: config.id,
            ..Default::default()
        });
        let mut known: HashMap<u64, Member> = peers.into_iter().map(|m| (m.raft_id, m)).collect();
        known.extend(load_members(&machine)?);
        let members = Arc::new(std::sync::RwLock::new(known));
        let progress = Arc::new(Progress::default());
        let handle = Raft {
            id: config.id,
            commands: commands_tx.clone(),
            status: status_rx,
            machine: machine.clone(),
            net: net.clone(),
            timeout: config.propose_timeout,
            members: members.clone(),
            progress: progress.clone(),
        };
        let node = Node {
            raw,
            log,
            machine,
            net,
            commands: commands_rx,
            commands_tx,
            status: status_tx,
            pending: HashMap::new(),
            peers: HashMap::new(),
            members,
            progress,
            config,
            removed: false,
        };
        let task = tokio::spawn(node.run());
        Ok((handle, task))
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn status(&self) -> RaftStatus {
        self.status.borrow().clone()
    }

    pub fn watch_status(&self) -> watch::Receiver<RaftStatus> {
        self.status.clone()
    }

    /// The highest log index known committed, and the highest applied here.
    pub fn commit_and_applied(&self) -> (u64, u64) {
        (
            self.progress.commit.load(Ordering::Relaxed),
            self.progress.applied.load(Ordering::Relaxed),
        )
    }

    /// The members as applied here.
    pub fn members(&self) -> Result<Vec<Member>, Error> {
        Ok(load_members(&self.machine)?.into_values().collect())
    }

    /// A message from a peer. Dropped when the queue is full: Raft resends.
    pub fn step(&self, message: Message) {
        let _ = self.commands.try_send(Command::Step(message));
    }

    /// Starts an election now rather than after a timeout (a new cluster's first node).
    pub async fn campaign(&self) {
        let _ = self.commands.send(Command::Campaign).await;
    }

    /// Runs `request` on the leader: here if this manager leads, else forwarded.
    pub async fn submit(&self, request: Forward) -> Result<(), Error> {
        let started = Instant::now();
        let work = async {
            // Until there is a leader whose address is known, nothing was sent: waiting
            // out an election is safe, and spares the caller a retry.
            let status = loop {
                let status = self.status();
                if status.removed {
                    return Err(unavailable("this manager was removed from the cluster"));
                }
                if status.is_leader || self.leader().is_some() {
                    break status;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            if !status.is_leader {
                let leader = self
                    .leader()
                    .ok_or_else(|| unavailable("the leader changed; try again"))?;
                return self.net.forward(&leader, request).await;
            }
            let (tx, rx) = oneshot::channel();
            let command = match request {
                Forward::Propose(proposal) => Command::Propose(proposal, tx),
                Forward::AddMember(member) => {
                    let mut cc = ConfChange::default();
                    cc.set_change_type(ConfChangeType::AddNode);
                    cc.node_id = member.raft_id;
                    cc.set_context(serde_json::to_vec(&member).map_err(Error::Codec)?.into());
                    Command::ChangeMember(cc, rand::random(), tx)
                }
                Forward::RemoveMember(id) => {
                    let mut cc = ConfChange::default();
                    cc.set_change_type(ConfChangeType::RemoveNode);
                    cc.node_id = id;
                    Command::ChangeMember(cc, rand::random(), tx)
                }
            };
            self.commands
                .send(command)
                .await
                .map_err(|_| unavailable("raft has stopped"))?;
            rx.await.unwrap_or_else(|_| {
                Err(unavailable(
                    "leadership changed before the change was committed",
                ))
            })
        };
        let result = tokio::time::timeout(self.timeout, work)
            .await
            .unwrap_or_else(|_| {
                Err(unavailable(
                    "timed out waiting for the cluster to commit the change \
                     (is a majority of managers reachable?)",
                ))
            });
        if result.is_ok() {
            crate::metrics::raft_proposal_applied(started.elapsed());
        }
        result
    }

    /// The leader, when there is one and its address is known.
    pub fn leader(&self) -> Option<Member> {
        let leader = self.status.borrow().leader;
        if leader == 0 {
            return None;
        }
        self.members.read().ok()?.get(&leader).cloned()
    }
}

impl Proposer for Raft {
    fn propose(
        &self,
        actions: Vec<Action>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Error>> + Send + '_>> {
        let proposal = Proposal {
            id: rand::random(),
            at: now_secs(),
            actions,
        };
        Box::pin(self.submit(Forward::Propose(proposal)))
    }
}

fn load_members(machine: &StateMachine) -> Result<HashMap<u64, Member>, Error> {
    machine
        .scan_raw(b"r/member/")?
        .into_iter()
        .map(|(_, v)| {
            let m: Member = serde_json::from_slice(&v).map_err(Error::Codec)?;
            Ok((m.raft_id, m))
        })
        .collect()
}

struct Node {
    raw: RawNode<LogStore>,
    log: LogStore,
    machine: StateMachine,
    net: Arc<dyn Network>,
    commands: mpsc::Receiver<Command>,
    /// Given to peer queues, to report what they could not deliver.
    commands_tx: mpsc::Sender<Command>,
    status: watch::Sender<RaftStatus>,
    /// Proposals made here, by id, waiting to be applied.
    pending: HashMap<u64, oneshot::Sender<Result<(), Error>>>,
    /// One outgoing queue per peer, each drained by its own task.
    peers: HashMap<u64, mpsc::Sender<Vec<Message>>>,
    members: Members,
    progress: Arc<Progress>,
    config: RaftConfig,
    /// The last membership change about this node that it applied removed it. Raft goes
    /// on running (a non-voter neither campaigns nor is sent anything): a re-promoted
    /// manager replays its own earlier removal before the entry that added it again.
    removed: bool,
}

impl Node {
    async fn run(mut self) {
        let mut ticker = tokio::time::interval(self.config.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    self.raw.tick();
                }
                command = self.commands.recv() => match command {
                    Some(command) => self.handle(command),
                    None => break,
                },
            }
            // Take what else is queued, so that one ready (one fsync) covers it all.
            while let Ok(command) = self.commands.try_recv() {
                self.handle(command);
            }
            if let Err(e) = self.on_ready() {
                tracing::error!("raft stopped: {e}");
                self.fail_pending("raft stopped");
                break;
            }
            let was_removed = self.status.borrow().removed;
            self.publish_status();
            if self.removed && !was_removed {
                tracing::info!("this node was removed from raft");
                self.fail_pending("this manager was removed from the cluster");
            }
        }
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Step(message) => {
                if let Err(e) = self.raw.step(message) {
                    tracing::debug!("raft message refused: {e}");
                }
            }
            Command::Propose(proposal, reply) => {
                if self.raw.raft.state != StateRole::Leader {
                    let _ = reply.send(Err(unavailable("this manager is no longer the leader")));
                    return;
                }
                let data = match serde_json::to_vec(&proposal) {
                    Ok(data) => data,
                    Err(e) => {
                        let _ = reply.send(Err(Error::Codec(e)));
                        return;
                    }
                };
                match self.raw.propose(Vec::new(), data) {
                    Ok(()) => {
                        self.pending.insert(proposal.id, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(unavailable(format!("proposal dropped: {e}"))));
                    }
                }
            }
            Command::ChangeMember(cc, id, reply) => {
                if self.raw.raft.state != StateRole::Leader {
                    let _ = reply.send(Err(unavailable("this manager is no longer the leader")));
                    return;
                }
                match self.raw.propose_conf_change(id.to_be_bytes().to_vec(), cc) {
                    Ok(()) => {
                        self.pending.insert(id, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(unavailable(format!(
                            "membership change refused (another may be in progress): {e}"
                        ))));
                    }
                }
            }
            Command::Unreachable(id) => self.raw.report_unreachable(id),
            Command::SnapshotSent(id, ok) => {
                let status = if ok {
                    SnapshotStatus::Finish
                } else {
                    SnapshotStatus::Failure
                };
                self.raw.report_snapshot(id, status);
            }
            Command::Campaign => {
                if let Err(e) = self.raw.campaign() {
                    tracing::warn!("campaign failed: {e}");
                }
            }
        }
    }

    fn on_ready(&mut self) -> Result<(), Error> {
        if !self.raw.has_ready() {
            return Ok(());
        }
        let was_leader = self.status.borrow().is_leader;
        let mut ready = self.raw.ready();
        if let Some(ss) = ready.ss() {
            if was_leader && ss.raft_state != StateRole::Leader {
                self.fail_pending("leadership was lost before the change was committed");
            }
        }
        self.send(ready.take_messages());
        if !ready.snapshot().is_empty() {
            self.log
                .apply_snapshot(ready.snapshot())
                .map_err(raft_err)?;
            let applied = load_members(&self.machine)?;
            if let Ok(mut members) = self.members.write() {
                members.extend(applied);
            }
            self.peers.clear();
        }
        // Entries, then the hard state (whose commit index may cover them), then what is
        // applied: on disk the applied index never passes the commit index, nor the commit
        // index the log, which raft-rs would refuse to start from.
        self.log.append(ready.entries()).map_err(raft_err)?;
        if let Some(hs) = ready.hs() {
            self.log.set_hard_state(hs).map_err(raft_err)?;
        }
        self.apply(ready.take_committed_entries())?;
        if ready.must_sync() {
            self.log.sync().map_err(raft_err)?;
        }
        self.send(ready.take_persisted_messages());
        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.log.set_commit(commit).map_err(raft_err)?;
        }
        self.send(light.take_messages());
        self.apply(light.take_committed_entries())?;
        self.raw.advance_apply();
        self.maybe_compact()
    }

    fn apply(&mut self, entries: Vec<raft::eraftpb::Entry>) -> Result<(), Error> {
        for entry in entries {
            match entry.get_entry_type() {
                EntryType::EntryNormal if entry.get_data().is_empty() => {
                    self.machine.set_applied(entry.index)?;
                }
                EntryType::EntryNormal => {
                    let proposal: Proposal = match serde_json::from_slice(entry.get_data()) {
                        Ok(p) => p,
                        Err(e) => {
                            tracing::error!(
                                index = entry.index,
                                "skipping an unreadable entry: {e}"
                            );
                            self.machine.set_applied(entry.index)?;
                            continue;
                        }
                    };
                    let result = self.machine.apply(entry.index, &proposal)?;
                    if let Some(reply) = self.pending.remove(&proposal.id) {
                        let _ = reply.send(result);
                    }
                }
                EntryType::EntryConfChange => self.apply_conf_change(&entry)?,
                EntryType::EntryConfChangeV2 => {
                    tracing::warn!(index = entry.index, "ignoring a joint membership change");
                    self.machine.set_applied(entry.index)?;
                }
            }
        }
        Ok(())
    }

    fn apply_conf_change(&mut self, entry: &raft::eraftpb::Entry) -> Result<(), Error> {
        let cc = ConfChange::parse_from_bytes(entry.get_data())
            .map_err(|e| unavailable(format!("unreadable membership change: {e}")))?;
        let mut batch = RawBatch::default();
        let result = match self.raw.apply_conf_change(&cc) {
            Ok(cs) => {
                self.log.set_conf_state(&cs).map_err(raft_err)?;
                match cc.get_change_type() {
                    ConfChangeType::AddNode | ConfChangeType::AddLearnerNode => {
                        match serde_json::from_slice::<Member>(cc.get_context()) {
                            Ok(member) => {
                                batch.insert(
                                    member_key(cc.node_id).as_bytes(),
                                    serde_json::to_vec(&member).map_err(Error::Codec)?,
                                );
                                self.peers.remove(&member.raft_id);
                                if member.raft_id == self.config.id {
                                    self.removed = false;
                                }
                                if let Ok(mut members) = self.members.write() {
                                    members.insert(member.raft_id, member);
                                }
                            }
                            Err(e) => tracing::warn!("a member without an address: {e}"),
                        }
                    }
                    ConfChangeType::RemoveNode => {
                        batch.remove(member_key(cc.node_id).as_bytes());
                        if let Ok(mut members) = self.members.write() {
                            members.remove(&cc.node_id);
                        }
                        self.peers.remove(&cc.node_id);
                        if cc.node_id == self.config.id {
                            self.removed = true;
                        }
                    }
                }
                Ok(())
            }
            Err(e) => Err(Error::Unavailable(format!(
                "membership change refused: {e}"
            ))),
        };
        self.machine.apply_raw(entry.index, batch)?;
        let id = <[u8; 8]>::try_from(entry.get_context()).map(u64::from_be_bytes);
        if let Some(reply) = id.ok().and_then(|id| self.pending.remove(&id)) {
            let _ = reply.send(result);
        }
        Ok(())
    }

    fn maybe_compact(&mut self) -> Result<(), Error> {
        let len = self.log.log_len().map_err(raft_err)?;
        if len <= self.config.snapshot_interval + self.config.keep_entries {
            return Ok(());
        }
        let applied = self.machine.applied()?;
        let upto = applied.saturating_sub(self.config.keep_entries);
        self.log.compact(upto).map_err(raft_err)?;
        tracing::info!(index = upto, "raft log compacted");
        Ok(())
    }

    fn send(&mut self, messages: Vec<Message>) {
        for message in messages {
            let to = message.to;
            let is_snapshot = message.get_msg_type() == MessageType::MsgSnapshot;
            let queue = match self.peer_queue(to) {
                Some(queue) => queue,
                None => {
                    tracing::debug!(to, "no address for raft peer");
                    self.raw.report_unreachable(to);
                    continue;
                }
            };
            if queue.try_send(vec![message]).is_err() {
                self.raw.report_unreachable(to);
                if is_snapshot {
                    self.raw.report_snapshot(to, SnapshotStatus::Failure);
                }
            }
        }
    }

    fn peer_queue(&mut self, to: u64) -> Option<mpsc::Sender<Vec<Message>>> {
        if let Some(queue) = self.peers.get(&to) {
            if !queue.is_closed() {
                return Some(queue.clone());
            }
        }
        let member = self.members.read().ok()?.get(&to)?.clone();
        let (tx, mut rx) = mpsc::channel::<Vec<Message>>(256);
        let net = self.net.clone();
        let report = self.commands_tx.clone();
        tokio::spawn(async move {
            while let Some(mut batch) = rx.recv().await {
                // Send what queued up behind a slow send in one go.
                while let Ok(more) = rx.try_recv() {
                    batch.extend(more);
                    if batch.len() >= 64 {
                        break;
                    }
                }
                let snapshot = batch
                    .iter()
                    .any(|m| m.get_msg_type() == MessageType::MsgSnapshot);
                let result = net.send(&member, batch).await;
                if let Err(e) = &result {
                    tracing::debug!(to = member.raft_id, "raft send failed: {e}");
                    let _ = report.try_send(Command::Unreachable(member.raft_id));
                }
                if snapshot {
                    let _ = report.try_send(Command::SnapshotSent(member.raft_id, result.is_ok()));
                }
            }
        });
        self.peers.insert(to, tx.clone());
        Some(tx)
    }

    fn fail_pending(&mut self, why: &str) {
        for (_, reply) in self.pending.drain() {
            let _ = reply.send(Err(unavailable(why)));
        }
    }

    fn publish_status(&self) {
        let raft = &self.raw.raft;
        let is_leader = raft.state == StateRole::Leader;
        let unreachable = if is_leader {
            raft.prs()
                .iter()
                .filter(|(id, p)| **id != self.config.id && !p.recent_active)
                .map(|(id, _)| *id)
                .collect()
        } else {
            BTreeSet::new()
        };
        let status = RaftStatus {
            id: self.config.id,
            leader: raft.leader_id,
            term: raft.term,
            is_leader,
            unreachable,
            removed: self.removed,
            voters: raft.prs().conf().voters().ids().iter().collect(),
        };
        self.progress
            .commit
            .store(raft.raft_log.committed, Ordering::Relaxed);
        self.progress
            .applied
            .store(raft.raft_log.applied, Ordering::Relaxed);
        if status.leader != 0 && status.leader != self.status.borrow().leader {
            crate::metrics::raft_leader_changed();
        }
        self.status.send_if_modified(|old| {
            if *old == status {
                false
            } else {
                *old = status;
                true
            }
        });
    }
}

fn raft_err(e: raft::Error) -> Error {
    Error::Unavailable(format!("raft storage: {e}"))
}
