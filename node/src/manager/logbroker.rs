//! The log broker, on the leader, after swarmkit's `logbroker`: `service logs` subscribes
//! to the logs of a service's tasks, the nodes that run them learn of the subscription
//! by long poll and publish their lines, and the broker hands them to the subscriber.
//! Nothing is stored: logs stay on the nodes that made them.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::rpc::{LogMessage, LogSubscription};
use super::store::Error;

/// What a subscriber receives.
#[derive(Debug)]
pub enum LogEvent {
    Lines(Vec<LogMessage>),
    /// A node sent all it will.
    NodeDone(String),
}

struct Subscription {
    /// Per node, what it is asked for.
    by_node: HashMap<String, LogSubscription>,
    tx: mpsc::Sender<LogEvent>,
}

#[derive(Default)]
struct Subscriptions {
    next: u64,
    live: HashMap<u64, Subscription>,
}

pub struct LogBroker {
    inner: Mutex<Subscriptions>,
    /// Bumped on every change of the subscriptions, to wake nodes' long polls.
    changed: watch::Sender<u64>,
    /// Subscriptions made for followers' `service logs`, fetched by them, and when each
    /// was last fetched (one not fetched for [`REMOTE_IDLE`] is dropped).
    remote: Mutex<HashMap<u64, (Shared, Instant)>>,
}

/// A follower's subscription, which its fetches take in turn.
type Shared = Arc<tokio::sync::Mutex<Subscribed>>;

/// How long a follower's subscription lives unfetched: its client went, or the follower.
const REMOTE_IDLE: Duration = Duration::from_secs(60);

impl Default for LogBroker {
    fn default() -> Self {
        LogBroker {
            inner: Mutex::new(Subscriptions::default()),
            changed: watch::channel(0).0,
            remote: Mutex::new(HashMap::new()),
        }
    }
}

/// Ends the subscription when the subscriber goes.
pub struct Subscribed {
    broker: Arc<LogBroker>,
    pub id: u64,
    pub events: mpsc::Receiver<LogEvent>,
}

impl Drop for Subscribed {
    fn drop(&mut self) {
        if let Ok(mut inner) = self.broker.inner.lock() {
            inner.live.remove(&self.id);
        }
        self.broker.changed.send_modify(|n| *n += 1);
    }
}

impl LogBroker {
    /// Subscribes to the logs of `tasks` (node → task ids and container names), as the
    /// template says (its id and tasks are filled in here).
    pub fn subscribe(
        self: &Arc<Self>,
        tasks: HashMap<String, Vec<(String, String)>>,
        template: LogSubscription,
    ) -> Subscribed {
        let (tx, events) = mpsc::channel(64);
        let id = {
            let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            inner.next += 1;
            let id = inner.next;
            let by_node = tasks
                .into_iter()
                .map(|(node, tasks)| {
                    let sub = LogSubscription {
                        id,
                        tasks,
                        ..template.clone()
                    };
                    (node, sub)
                })
                .collect();
            inner.live.insert(id, Subscription { by_node, tx });
            id
        };
        self.changed.send_modify(|n| *n += 1);
        Subscribed {
            broker: self.clone(),
            id,
            events,
        }
    }

    /// A subscription on behalf of a follower, which fetches its events; its id.
    pub fn subscribe_remote(
        self: &Arc<Self>,
        tasks: HashMap<String, Vec<(String, String)>>,
        template: LogSubscription,
    ) -> u64 {
        let subscribed = self.subscribe(tasks, template);
        let id = subscribed.id;
        let mut remote = self.remote.lock().unwrap_or_else(|p| p.into_inner());
        remote.retain(|_, (_, used)| used.elapsed() < REMOTE_IDLE);
        remote.insert(
            id,
            (
                Arc::new(tokio::sync::Mutex::new(subscribed)),
                Instant::now(),
            ),
        );
        id
    }

    /// What arrived for follower subscription `id` (waiting up to `wait` for something):
    /// lines, nodes done, and whether it is over (or unknown).
    pub async fn fetch(&self, id: u64, wait: Duration) -> (Vec<LogMessage>, Vec<String>, bool) {
        let subscribed = {
            let mut remote = self.remote.lock().unwrap_or_else(|p| p.into_inner());
            match remote.get_mut(&id) {
                Some((s, used)) => {
                    *used = Instant::now();
                    s.clone()
                }
                None => return (Vec::new(), Vec::new(), true),
            }
        };
        let mut subscribed = subscribed.lock().await;
        let (mut lines, mut done) = (Vec::new(), Vec::new());
        let mut take = |event: LogEvent| match event {
            LogEvent::Lines(l) => lines.extend(l),
            LogEvent::NodeDone(n) => done.push(n),
        };
        match tokio::time::timeout(wait, subscribed.events.recv()).await {
            Ok(Some(event)) => take(event),
            Ok(None) => return (Vec::new(), Vec::new(), true),
            Err(_) => {}
        }
        while let Ok(event) = subscribed.events.try_recv() {
            take(event);
        }
        (lines, done, false)
    }

    pub fn cancel(&self, id: u64) {
        let gone = self
            .remote
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        drop(gone);
    }

    /// The subscriptions `node` should serve, once they differ from `active` (or after
    /// `wait`).
    pub async fn subscriptions_for(
        &self,
        node: &str,
        active: &[u64],
        wait: Duration,
    ) -> Vec<LogSubscription> {
        let mut changed = self.changed.subscribe();
        let active: HashSet<u64> = active.iter().copied().collect();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let now: Vec<LogSubscription> = {
                let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
                inner
                    .live
                    .values()
                    .filter_map(|s| s.by_node.get(node).cloned())
                    .collect()
            };
            let ids: HashSet<u64> = now.iter().map(|s| s.id).collect();
            if ids != active {
                return now;
            }
            changed.borrow_and_update();
            if tokio::time::timeout_at(deadline, changed.changed())
                .await
                .is_err()
            {
                return now;
            }
        }
    }

    /// Lines from `node` for `subscription`. Err: the subscription is gone (its
    /// subscriber left), or was never the node's.
    pub async fn publish(
        &self,
        node: &str,
        subscription: u64,
        messages: Vec<LogMessage>,
        done: bool,
    ) -> Result<(), Error> {
        let tx = {
            let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            let sub = inner
                .live
                .get(&subscription)
                .filter(|s| s.by_node.contains_key(node));
            let Some(sub) = sub else {
                return Err(Error::NotFound {
                    kind: super::store::Kind::Task,
                    id: format!("log subscription {subscription}"),
                });
            };
            // A node speaks for its own tasks only.
            let own: HashSet<&str> = sub.by_node[node]
                .tasks
                .iter()
                .map(|(t, _)| t.as_str())
                .collect();
            if messages.iter().any(|m| !own.contains(m.task_id.as_str())) {
                return Err(Error::Unavailable(format!(
                    "node {node} sent logs of a task it does not run"
                )));
            }
            sub.tx.clone()
        };
        let gone = || Error::Unavailable("the log subscriber left".into());
        if !messages.is_empty() {
            tx.send(LogEvent::Lines(messages))
                .await
                .map_err(|_| gone())?;
        }
        if done {
            tx.send(LogEvent::NodeDone(node.to_string()))
                .await
                .map_err(|_| gone())?;
        }
        Ok(())
    }
}
