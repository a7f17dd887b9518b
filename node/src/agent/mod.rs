//! The agent: what every node runs once in a swarm, after swarmkit's `agent/`. It reports
//! to the leader's dispatcher on the cluster's period, following the leader and failing
//! over to another manager when its own goes, and passes on what the dispatcher says;
//! and, on a node that runs tasks, it takes the node's assignments ([`worker`]), runs
//! each task ([`executor`]) and reports their status ([`reporter`]).

pub mod executor;
mod health;
mod logs;
pub mod memfs;
mod reporter;
pub mod worker;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::manager::ca::Role;
use crate::manager::dispatcher::tasks::LONG_POLL;
use crate::manager::objects::NodeDescription;
use crate::manager::rpc::{Request, Response};
use crate::transport::Transport;

pub use worker::Worker;

/// How long one heartbeat may take: twice the period, so a dead manager is given up on
/// well within the dispatcher's grace of three periods, and at least 2 s for slow links.
fn call_timeout(period: Duration) -> Duration {
    (period * 2).clamp(Duration::from_secs(2), Duration::from_secs(10))
}

/// What the agent learns from the dispatcher, for the node to act on.
#[derive(Debug)]
pub enum Report {
    /// The managers' addresses changed.
    Managers(Vec<String>),
    /// A heartbeat was taken; the node should have this role.
    DesiredRole(Role),
}

/// When a manager last answered this node: an agent cut off from every manager acts
/// on its own (restarts its tasks itself).
pub struct Contact {
    last: Mutex<Option<Instant>>,
    period_ms: AtomicU64,
}

impl Default for Contact {
    fn default() -> Self {
        Contact {
            last: Mutex::new(None),
            period_ms: AtomicU64::new(5000),
        }
    }
}

impl Contact {
    fn touch(&self) {
        if let Ok(mut last) = self.last.lock() {
            *last = Some(Instant::now());
        }
    }

    fn set_period(&self, period: Duration) {
        self.period_ms
            .store(period.as_millis() as u64, Ordering::Relaxed);
    }

    /// No manager answered within the dispatcher's grace (three heartbeat periods), or
    /// none has since the agent started.
    pub fn offline(&self) -> bool {
        let grace = Duration::from_millis(self.period_ms.load(Ordering::Relaxed) * 3);
        self.last
            .lock()
            .map(|last| last.is_none_or(|t| t.elapsed() > grace))
            .unwrap_or(true)
    }
}

/// The managers this node knows and which of them leads: every call the agent makes
/// goes to the leader, and fails over to the others.
#[derive(Clone)]
pub struct Managers {
    transport: Transport,
    book: Arc<Mutex<Book>>,
    contact: Arc<Contact>,
}

struct Book {
    leader: Option<String>,
    all: Vec<String>,
}

impl Managers {
    fn new(transport: Transport, all: Vec<String>, contact: Arc<Contact>) -> Self {
        Managers {
            transport,
            book: Arc::new(Mutex::new(Book { leader: None, all })),
            contact,
        }
    }

    fn set_all(&self, all: Vec<String>) {
        if let Ok(mut book) = self.book.lock() {
            book.all = all;
        }
    }

    /// Calls the leader: the one last seen leading first, then the others, following
    /// their redirects. Err: no manager answered.
    pub async fn call_leader(
        &self,
        request: &Request,
        timeout: Duration,
    ) -> Result<Response, String> {
        let body = serde_json::to_vec(request).map_err(|e| e.to_string())?;
        let mut targets: Vec<String> = match self.book.lock() {
            Ok(book) => book
                .leader
                .iter()
                .cloned()
                .chain(
                    book.all
                        .iter()
                        .filter(|m| Some(*m) != book.leader.as_ref())
                        .cloned(),
                )
                .collect(),
            Err(_) => return Err("agent state poisoned".into()),
        };
        let mut redirects = 0;
        let mut i = 0;
        let mut last_error = String::from("no manager known");
        while i < targets.len() {
            let target = targets[i].clone();
            i += 1;
            let Ok(addr) = target.parse::<SocketAddr>() else {
                continue;
            };
            let reply = self
                .transport
                .call(addr, Role::Manager.server_name(), body.clone(), timeout)
                .await
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Response>(&b).map_err(|e| e.to_string()));
            match reply {
                Ok(Response::NotLeader { leader: Some(l) }) if redirects < 3 => {
                    redirects += 1;
                    targets.insert(i, l);
                }
                Ok(Response::NotLeader { .. }) => last_error = format!("{target}: not the leader"),
                Ok(reply) => {
                    self.contact.touch();
                    if let Ok(mut book) = self.book.lock() {
                        book.leader = Some(target);
                    }
                    return Ok(reply);
                }
                Err(e) => last_error = format!("{target}: {e}"),
            }
        }
        if let Ok(mut book) = self.book.lock() {
            book.leader = None;
        }
        Err(last_error)
    }
}

pub fn start(
    transport: Transport,
    description: NodeDescription,
    managers: Vec<String>,
    reports: mpsc::Sender<Report>,
    worker: Option<Arc<Worker>>,
) -> tokio::task::JoinHandle<()> {
    let contact = worker
        .as_ref()
        .map(|w| w.contact.clone())
        .unwrap_or_default();
    let managers = Managers::new(transport, managers, contact);
    tokio::spawn(async move {
        let beats = heartbeats(managers.clone(), description, reports);
        match worker {
            Some(worker) => {
                tokio::join!(
                    beats,
                    assignments(managers.clone(), worker.clone()),
                    network_map(managers.clone(), worker.clone()),
                    worker.reporter.run(managers.clone()),
                    logs::serve(managers.clone(), worker.containers())
                );
            }
            None => beats.await,
        }
    })
}

async fn heartbeats(
    managers: Managers,
    description: NodeDescription,
    reports: mpsc::Sender<Report>,
) {
    let mut period = Duration::from_secs(5);
    let request = Request::Heartbeat { description };
    let mut known = Vec::new();
    loop {
        let wait = match managers.call_leader(&request, call_timeout(period)).await {
            Ok(Response::Heartbeat {
                period_secs,
                managers: list,
                desired_role,
            }) => {
                period = Duration::from_secs(period_secs.max(1));
                managers.contact.set_period(period);
                if !list.is_empty() && list != known {
                    known = list.clone();
                    managers.set_all(list.clone());
                    let _ = reports.try_send(Report::Managers(list));
                }
                let _ = reports.try_send(Report::DesiredRole(desired_role));
                period
            }
            Ok(Response::Error { message, .. }) => {
                tracing::warn!("agent: heartbeat refused: {message}");
                crate::metrics::heartbeat_failed();
                Duration::from_secs(1)
            }
            other => {
                tracing::debug!("agent: no manager took the heartbeat ({other:?}); trying again");
                crate::metrics::heartbeat_failed();
                Duration::from_secs(1)
            }
        };
        tokio::time::sleep(wait).await;
    }
}

/// Takes the node's assignments from the dispatcher, a long poll at a time.
async fn assignments(managers: Managers, worker: Arc<Worker>) {
    let mut known: Option<String> = None;
    loop {
        let request = Request::Assignments {
            known: known.clone(),
        };
        match managers
            .call_leader(&request, LONG_POLL + Duration::from_secs(10))
            .await
        {
            Ok(Response::Assignments { digest, tasks }) => {
                worker.assign(tasks);
                known = Some(digest);
            }
            other => {
                tracing::debug!("agent: assignments: {other:?}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Takes the node's network map from the dispatcher, a long poll at a time, and makes the
/// node's data plane match it. One it could not apply is asked for again. Starts from the
/// map kept at the last change, so that with no manager to ask the node's tasks still
/// reach their peers.
async fn network_map(managers: Managers, worker: Arc<Worker>) {
    let networking = worker.networking();
    if let Some(saved) = worker.saved_network_map() {
        if let Err(e) = networking.apply(saved).await {
            tracing::warn!("agent: the saved network map: {e}");
        }
    }
    let mut known: Option<String> = None;
    loop {
        let request = Request::NetworkMap {
            known: known.clone(),
        };
        match managers
            .call_leader(&request, LONG_POLL + Duration::from_secs(10))
            .await
        {
            Ok(Response::NetworkMap { digest, map }) => {
                match networking.apply((*map).clone()).await {
                    Ok(()) => {
                        // The poll also answers, unchanged, when it times out: not a write.
                        if known.as_deref() != Some(digest.as_str()) {
                            worker.save_network_map(&map);
                        }
                        known = Some(digest);
                    }
                    Err(e) => {
                        tracing::warn!("agent: network map: {e}");
                        known = None;
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
            other => {
                tracing::debug!("agent: network map: {other:?}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
