//! Raft among in-process managers joined by channels: elections, commits, leader loss,
//! partitions and catching up by snapshot, fast and without a network.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::storage::LogStore;
use super::{BoxFuture, Forward, Member, Message, Network, Raft, RaftConfig};
use crate::manager::store::testing::Thing;
use crate::manager::store::{Action, Error, Proposer, StateMachine};

#[derive(Default)]
struct Wires {
    nodes: HashMap<u64, Raft>,
    /// Nodes cut off from everyone.
    isolated: HashSet<u64>,
}

#[derive(Clone, Default)]
struct ChannelNet {
    wires: Arc<Mutex<Wires>>,
    from: u64,
}

impl ChannelNet {
    fn target(&self, to: u64) -> Result<Raft, String> {
        let wires = self.wires.lock().map_err(|_| "poisoned".to_string())?;
        if wires.isolated.contains(&to) || wires.isolated.contains(&self.from) {
            return Err("partitioned".into());
        }
        wires.nodes.get(&to).cloned().ok_or_else(|| "down".into())
    }
}

impl Network for ChannelNet {
    fn send(&self, to: &Member, messages: Vec<Message>) -> BoxFuture<Result<(), String>> {
        let target = self.target(to.raft_id);
        Box::pin(async move {
            let target = target?;
            for m in messages {
                target.step(m);
            }
            Ok(())
        })
    }

    fn forward(&self, leader: &Member, request: Forward) -> BoxFuture<Result<(), Error>> {
        let target = self.target(leader.raft_id);
        Box::pin(async move { target.map_err(Error::Unavailable)?.submit(request).await })
    }
}

struct Manager {
    raft: Raft,
    machine: StateMachine,
    _dir: tempfile::TempDir,
}

fn config(id: u64) -> RaftConfig {
    RaftConfig {
        tick: Duration::from_millis(10),
        heartbeat_tick: 2,
        election_tick: 10,
        keep_entries: 3,
        snapshot_interval: 10,
        propose_timeout: Duration::from_secs(3),
        ..RaftConfig::new(id)
    }
}

fn member(id: u64) -> Member {
    Member {
        raft_id: id,
        node_id: format!("node{id}"),
        addr: format!("10.0.0.{id}:2377"),
    }
}

fn start(wires: &Arc<Mutex<Wires>>, id: u64, bootstrap: bool, peers: Vec<Member>) -> Manager {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = sled::open(dir.path()).expect("sled");
    let machine = StateMachine::open(
        &db,
        std::sync::Arc::new(crate::seal::Key::generate().expect("key")),
    )
    .expect("machine");
    let log = LogStore::open(&db, machine.clone()).expect("log");
    if bootstrap {
        log.bootstrap(id).expect("bootstrap");
    }
    let net = ChannelNet {
        wires: wires.clone(),
        from: id,
    };
    let (raft, _task) =
        Raft::start(config(id), log, machine.clone(), Arc::new(net), peers).expect("start");
    wires.lock().expect("wires").nodes.insert(id, raft.clone());
    Manager {
        raft,
        machine,
        _dir: dir,
    }
}

async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    for _ in 0..500 {
        if let Some(v) = check() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn write(raft: &Raft, id: &str) -> Result<(), Error> {
    raft.propose(vec![Action::create(&Thing::new(id, 1))?])
        .await
}

/// Node 1 makes a cluster of its own and leads it.
async fn first(wires: &Arc<Mutex<Wires>>) -> Manager {
    let first = start(wires, 1, true, Vec::new());
    first.raft.campaign().await;
    eventually("node 1 to lead", || {
        first.raft.status().is_leader.then_some(())
    })
    .await;
    first
        .raft
        .submit(Forward::AddMember(member(1)))
        .await
        .expect("adding itself");
    first
}

/// Node 1 makes the cluster, 2 and 3 join through it.
async fn three(wires: &Arc<Mutex<Wires>>) -> Vec<Manager> {
    let mut managers = vec![first(wires).await];
    for id in [2, 3] {
        let peers = managers[0].raft.members().expect("members");
        managers.push(start(wires, id, false, peers));
        managers[0]
            .raft
            .submit(Forward::AddMember(member(id)))
            .await
            .expect("adding a member");
    }
    managers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_managers_elect_commit_and_survive_losing_the_leader() {
    let wires = Arc::new(Mutex::new(Wires::default()));
    let managers = three(&wires).await;
    write(&managers[2].raft, "via-a-follower")
        .await
        .expect("forwarded write");
    for m in &managers {
        eventually("the write everywhere", || {
            m.machine.get::<Thing>("via-a-follower").ok().flatten()
        })
        .await;
    }

    // Cut the leader off: the others elect one of themselves and keep committing.
    wires.lock().expect("wires").isolated.insert(1);
    let new_leader = eventually("a new leader", || {
        managers[1..]
            .iter()
            .find(|m| m.raft.status().is_leader)
            .map(|m| m.raft.id())
    })
    .await;
    assert_ne!(new_leader, 1);
    let writer = &managers[if new_leader == 2 { 2 } else { 1 }].raft;
    write(writer, "after-the-loss")
        .await
        .expect("write with a new leader");

    // The cut-off one commits nothing, and with check-quorum stops believing it leads.
    assert!(write(&managers[0].raft, "minority").await.is_err());
    eventually("the old leader to step down", || {
        (!managers[0].raft.status().is_leader).then_some(())
    })
    .await;
    assert!(managers[1]
        .machine
        .get::<Thing>("minority")
        .expect("get")
        .is_none());

    // Healed, it catches up and never became a second leader of a later term.
    wires.lock().expect("wires").isolated.clear();
    eventually("the old leader catching up", || {
        managers[0]
            .machine
            .get::<Thing>("after-the-loss")
            .ok()
            .flatten()
    })
    .await;
    let leaders = managers
        .iter()
        .filter(|m| m.raft.status().is_leader)
        .count();
    assert!(leaders <= 1, "two leaders at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_member_catches_up_from_a_snapshot_and_removal_stops_it() {
    let wires = Arc::new(Mutex::new(Wires::default()));
    let first = first(&wires).await;
    for i in 0..40 {
        write(&first.raft, &format!("t{i}")).await.expect("write");
    }
    // The log was compacted past its start: the newcomer must get a snapshot.
    assert!(first.machine.applied().expect("applied") > 40);
    let late = start(&wires, 2, false, first.raft.members().expect("members"));
    first
        .raft
        .submit(Forward::AddMember(member(2)))
        .await
        .expect("add");
    eventually("the snapshot applied", || {
        (late.machine.list::<Thing>().ok()?.len() == 40).then_some(())
    })
    .await;
    write(&late.raft, "after")
        .await
        .expect("write through the newcomer");

    first
        .raft
        .submit(Forward::RemoveMember(2))
        .await
        .expect("remove");
    eventually("the removed member to stop", || {
        late.raft.status().removed.then_some(())
    })
    .await;
    assert_eq!(first.raft.members().expect("members").len(), 1);
}
