//! The daemon's events, what `docker events` shows: local ones (containers, images) from
//! this node's own stores, and, on managers, swarm ones translated from the store's watch
//! stream (`cluster`). One bus per daemon keeps the last [`HISTORY`] events, so that a
//! client asking `--since` gets them replayed before the live ones.
//!
//! **Invariant:** this module knows Docker's event vocabulary (types, actions, attribute
//! names) but not its JSON: `api::events` writes that.

pub mod cluster;
mod local;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::broadcast;

pub use local::{container_event, image_event};

/// Events kept for replay: dockerd keeps 256; a swarm's task events come in bursts.
pub const HISTORY: usize = 1024;
/// Live events a subscriber may fall behind by before it misses some.
const LIVE: usize = 256;

/// What an event is about: Docker's event types, and covey's `task`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    Container,
    Image,
    Node,
    Service,
    /// The swarm's overlay networks.
    Network,
    /// A task's state changes (covey's own: Docker has no task events), so that why a
    /// task failed is seen as it happens.
    Task,
}

impl Type {
    pub fn as_str(self) -> &'static str {
        match self {
            Type::Container => "container",
            Type::Image => "image",
            Type::Node => "node",
            Type::Service => "service",
            Type::Network => "network",
            Type::Task => "task",
        }
    }

    /// Cluster objects are `swarm`-scoped, every manager reports them; the rest are this
    /// node's own.
    pub fn scope(self) -> &'static str {
        match self {
            Type::Container | Type::Image => "local",
            Type::Node | Type::Service | Type::Network | Type::Task => "swarm",
        }
    }
}

/// One event, as Docker's `events.Message` holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub kind: Type,
    pub action: &'static str,
    pub actor: String,
    pub attributes: BTreeMap<String, String>,
    /// Nanoseconds since the epoch, set when published.
    pub time_nano: i64,
}

impl Event {
    pub fn new(kind: Type, action: &'static str, actor: impl Into<String>) -> Self {
        Event {
            kind,
            action,
            actor: actor.into(),
            attributes: BTreeMap::new(),
            time_nano: 0,
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.attributes.insert(key.to_string(), value.into());
        self
    }

    pub fn attribute(&self, key: &str) -> &str {
        self.attributes.get(key).map_or("", String::as_str)
    }
}

/// The bus: publish from anywhere, subscribe with the history.
pub struct Events {
    /// The history and the last time given, under one lock with publishing, so that a
    /// subscriber's history and live stream neither miss nor repeat an event.
    inner: Mutex<Inner>,
    live: broadcast::Sender<Arc<Event>>,
    capacity: usize,
}

struct Inner {
    history: VecDeque<Arc<Event>>,
    last_nano: i64,
}

impl Default for Events {
    fn default() -> Self {
        Events::new(HISTORY)
    }
}

impl Events {
    pub fn new(capacity: usize) -> Self {
        Events {
            inner: Mutex::new(Inner {
                history: VecDeque::with_capacity(capacity.min(64)),
                last_nano: 0,
            }),
            live: broadcast::channel(LIVE).0,
            capacity,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stamps `event` with the time now (strictly after the previous one, so that the
    /// history is in time order and `since` and `until` cut it where they should) and
    /// sends it to every subscriber.
    pub fn publish(&self, mut event: Event) {
        let mut inner = self.lock();
        event.time_nano = now_nanos().max(inner.last_nano + 1);
        inner.last_nano = event.time_nano;
        let event = Arc::new(event);
        if inner.history.len() == self.capacity {
            inner.history.pop_front();
        }
        inner.history.push_back(event.clone());
        // No subscriber is not an error.
        let _ = self.live.send(event);
    }

    /// The events kept so far, oldest first, and those published from now on.
    pub fn subscribe(&self) -> (Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>) {
        let inner = self.lock();
        (
            inner.history.iter().cloned().collect(),
            self.live.subscribe(),
        )
    }
}

pub fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_is_bounded_ordered_and_joins_the_live_stream() {
        let bus = Events::new(3);
        for i in 0..5 {
            bus.publish(Event::new(Type::Container, "start", format!("c{i}")));
        }
        let (history, mut live) = bus.subscribe();
        let ids: Vec<&str> = history.iter().map(|e| e.actor.as_str()).collect();
        assert_eq!(ids, ["c2", "c3", "c4"]);
        assert!(history.windows(2).all(|w| w[0].time_nano < w[1].time_nano));
        bus.publish(Event::new(Type::Image, "pull", "busybox:latest"));
        let next = live.try_recv().expect("the live event");
        assert_eq!(next.actor, "busybox:latest");
        assert!(next.time_nano > history[2].time_nano);
        assert!(live.try_recv().is_err(), "nothing twice");
    }
}
