//! Swarm events from the store's watch stream, on every manager (each applies the same
//! entries), as dockerd makes them from swarmkit's watch (`daemon/events.go`): nodes and
//! services created, updated (with what changed as `<attribute>.old` and `.new`) and
//! removed, networks likewise (by name only, as dockerd); and covey's task events, a
//! task's state changes with its error.
//!
//! The store's changes carry the new value only, so the translator keeps what it last
//! saw of each object: small for nodes and services, two states for a task. An event's
//! time is when this manager applied the change (dockerd takes the object's `UpdatedAt`;
//! covey's store keeps whole seconds, too coarse to order a burst of events).

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::broadcast;

use super::{Event, Events, Type};
use crate::manager::objects::{Network, Node, Service, ServiceMode, Task, TaskState};
use crate::manager::store::{self, Change, Kind, Op, Store};

/// What was last seen of the store's objects.
#[derive(Default)]
pub struct Translator {
    nodes: HashMap<String, Node>,
    services: HashMap<String, ServiceSeen>,
    tasks: HashMap<String, TaskSeen>,
}

#[derive(Clone)]
struct ServiceSeen {
    image: String,
    replicas: Option<u64>,
}

impl ServiceSeen {
    fn of(s: &Service) -> Self {
        ServiceSeen {
            image: s.spec.task_template.container_spec.image.clone(),
            replicas: match s.spec.mode {
                ServiceMode::Replicated { replicas } => Some(replicas),
                _ => None,
            },
        }
    }
}

#[derive(Clone, Copy)]
struct TaskSeen {
    state: TaskState,
    desired: TaskState,
}

impl TaskSeen {
    fn of(t: &Task) -> Self {
        TaskSeen {
            state: t.status.state,
            desired: t.desired_state,
        }
    }
}

fn action(op: Op) -> &'static str {
    match op {
        Op::Created => "create",
        Op::Updated => "update",
        Op::Deleted => "remove",
    }
}

/// Adds `<key>.old` and `<key>.new` when the value changed, as dockerd does.
fn changed(event: Event, key: &str, old: &str, new: &str) -> Event {
    if old == new {
        return event;
    }
    event
        .with(&format!("{key}.old"), old)
        .with(&format!("{key}.new"), new)
}

impl Translator {
    /// What the store holds now.
    pub fn seed(store: &Store) -> Result<Self, store::Error> {
        Ok(Translator {
            nodes: store
                .list::<Node>()?
                .into_iter()
                .map(|n| (n.id.clone(), n))
                .collect(),
            services: store
                .list::<Service>()?
                .iter()
                .map(|s| (s.id.clone(), ServiceSeen::of(s)))
                .collect(),
            tasks: store
                .list::<Task>()?
                .iter()
                .map(|t| (t.id.clone(), TaskSeen::of(t)))
                .collect(),
        })
    }

    /// The event for one change, if it makes one.
    pub fn translate(&mut self, change: &Change) -> Option<Event> {
        match change.kind {
            Kind::Node => self.node(change.op, change.decode()?),
            Kind::Service => self.service(change.op, change.decode()?),
            Kind::Task => self.task(change.op, change.decode()?),
            Kind::Network => {
                let network: Network = change.decode()?;
                let event = Event::new(Type::Network, action(change.op), network.id);
                Some(event.with("name", network.spec.name))
            }
            _ => None,
        }
    }

    fn node(&mut self, op: Op, node: Node) -> Option<Event> {
        let name = if node.spec.name.is_empty() {
            node.description.hostname.clone()
        } else {
            node.spec.name.clone()
        };
        let mut event = Event::new(Type::Node, action(op), node.id.clone()).with("name", name);
        if op == Op::Deleted {
            self.nodes.remove(&node.id);
            return Some(event);
        }
        if let (Op::Updated, Some(old)) = (op, self.nodes.get(&node.id)) {
            event = changed(
                event,
                "availability",
                old.spec.availability.as_str(),
                node.spec.availability.as_str(),
            );
            event = changed(event, "role", &old.role.to_string(), &node.role.to_string());
            event = changed(
                event,
                "state",
                old.status.state.as_str(),
                node.status.state.as_str(),
            );
        }
        self.nodes.insert(node.id.clone(), node);
        Some(event)
    }

    fn service(&mut self, op: Op, service: Service) -> Option<Event> {
        let mut event = Event::new(Type::Service, action(op), service.id.clone())
            .with("name", service.spec.name.clone());
        if op == Op::Deleted {
            self.services.remove(&service.id);
            return Some(event);
        }
        let seen = ServiceSeen::of(&service);
        if let (Op::Updated, Some(old)) = (op, self.services.get(&service.id)) {
            event = changed(event, "image", &old.image, &seen.image);
            if let (Some(old), Some(new)) = (old.replicas, seen.replicas) {
                event = changed(event, "replicas", &old.to_string(), &new.to_string());
            }
        }
        self.services.insert(service.id.clone(), seen);
        Some(event)
    }

    /// A task's event: on creation, removal, and when its observed or desired state
    /// changes (not for each status message on the way).
    fn task(&mut self, op: Op, task: Task) -> Option<Event> {
        let seen = TaskSeen::of(&task);
        let old = match op {
            Op::Deleted => self.tasks.remove(&task.id),
            _ => self.tasks.insert(task.id.clone(), seen),
        };
        if let (Op::Updated, Some(old)) = (op, old) {
            if old.state == seen.state && old.desired == seen.desired {
                return None;
            }
        }
        let name = match task.slot {
            0 => format!("{}.{}", task.service_name, task.node_id),
            slot => format!("{}.{slot}", task.service_name),
        };
        let mut event = Event::new(Type::Task, action(op), task.id.clone())
            .with("name", name)
            .with("service.id", task.service_id.clone())
            .with("service.name", task.service_name.clone())
            .with("node.id", task.node_id.clone())
            .with("state", task.status.state.as_str())
            .with("desiredstate", task.desired_state.as_str());
        if let (Op::Updated, Some(old)) = (op, old) {
            if old.state != seen.state {
                event = event.with("state.old", old.state.as_str());
            }
            if old.desired != seen.desired {
                event = event.with("desiredstate.old", old.desired.as_str());
            }
        }
        if !task.status.message.is_empty() {
            event = event.with("message", task.status.message.clone());
        }
        if !task.status.err.is_empty() {
            event = event.with("error", task.status.err.clone());
        }
        if matches!(task.status.state, TaskState::Complete | TaskState::Failed) {
            event = event.with("exitCode", task.status.exit_code.to_string());
        }
        Some(event)
    }
}

/// Publishes the swarm events of every transaction the store applies, until the watch
/// ends (the manager stops). `watch` was taken before the store was first written, so
/// that nothing from the manager's start is missed.
pub async fn run(store: Store, mut watch: broadcast::Receiver<store::Event>, events: Arc<Events>) {
    let seed = |store: &Store| {
        Translator::seed(store).unwrap_or_else(|e| {
            tracing::warn!("reading the store for swarm events: {e}");
            Translator::default()
        })
    };
    let mut translator = seed(&store);
    loop {
        match watch.recv().await {
            // A snapshot replaced everything: what changed in it is not known.
            Ok(applied) if applied.reset => translator = seed(&store),
            Ok(applied) => {
                for change in &applied.changes {
                    if let Some(event) = translator.translate(change) {
                        events.publish(event);
                    }
                }
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(
                    "swarm events fell {n} transactions behind the store; those are not reported"
                );
                translator = seed(&store);
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::objects::Availability;
    use crate::manager::store::Object;
    use serde_json::json;

    /// What `t` makes of `op` applied to `value`.
    fn translate<T: Object>(t: &mut Translator, op: Op, value: &T) -> Option<Event> {
        t.translate(&Change {
            kind: T::KIND,
            id: value.id().into(),
            op,
            value: serde_json::to_value(value).expect("value"),
        })
    }

    fn service(replicas: u64, image: &str) -> Service {
        serde_json::from_value(json!({
            "id": "svc1",
            "meta": {"version": 1, "created_at": 1, "updated_at": 1},
            "spec": {
                "Name": "web",
                "TaskTemplate": {"ContainerSpec": {"Image": image}},
                "Mode": {"Replicated": {"Replicas": replicas}}
            }
        }))
        .expect("a service")
    }

    #[test]
    fn services_report_what_changed() {
        let mut t = Translator::default();
        let created = translate(&mut t, Op::Created, &service(1, "busybox")).expect("an event");
        assert_eq!((created.kind, created.action), (Type::Service, "create"));
        assert_eq!(created.attribute("name"), "web");
        assert!(!created.attributes.contains_key("replicas.new"));

        let scaled = translate(&mut t, Op::Updated, &service(3, "busybox")).expect("an event");
        assert_eq!(scaled.action, "update");
        assert_eq!(
            (
                scaled.attribute("replicas.old"),
                scaled.attribute("replicas.new")
            ),
            ("1", "3")
        );
        assert!(!scaled.attributes.contains_key("image.old"));

        let moved = translate(&mut t, Op::Updated, &service(3, "nginx")).expect("an event");
        assert_eq!(moved.attribute("image.new"), "nginx");
        assert!(!moved.attributes.contains_key("replicas.old"));

        let gone = translate(&mut t, Op::Deleted, &service(3, "nginx")).expect("an event");
        assert_eq!((gone.action, gone.attribute("name")), ("remove", "web"));
        assert_eq!(gone.kind.scope(), "swarm");
    }

    #[test]
    fn networks_are_named() {
        let mut t = Translator::default();
        let network: Network = serde_json::from_value(json!({
            "id": "net1", "meta": {"version": 1, "created_at": 1, "updated_at": 1},
            "spec": {"Name": "backend", "Driver": "overlay"}
        }))
        .expect("a network");
        let created = translate(&mut t, Op::Created, &network).expect("an event");
        assert_eq!(
            (created.kind.as_str(), created.action),
            ("network", "create")
        );
        assert_eq!(created.attribute("name"), "backend");
        assert_eq!(created.kind.scope(), "swarm");
        let removed = translate(&mut t, Op::Deleted, &network).expect("an event");
        assert_eq!(removed.action, "remove");
    }

    #[test]
    fn nodes_report_availability_role_and_state() {
        let mut t = Translator::default();
        let mut node = Node::for_tests("n1");
        translate(&mut t, Op::Created, &node);
        node.spec.availability = Availability::Drain;
        let drained = translate(&mut t, Op::Updated, &node).expect("an event");
        assert_eq!(
            (
                drained.attribute("availability.old"),
                drained.attribute("availability.new")
            ),
            ("active", "drain")
        );
        assert!(!drained.attributes.contains_key("state.old"));
        node.status.state = crate::manager::objects::NodeState::Down;
        let down = translate(&mut t, Op::Updated, &node).expect("an event");
        assert_eq!(
            (down.attribute("state.old"), down.attribute("state.new")),
            ("ready", "down")
        );
        assert!(!down.attributes.contains_key("availability.old"));
        assert_eq!(down.attribute("name"), node.description.hostname);
    }

    #[test]
    fn tasks_report_state_changes_with_their_error_and_nothing_else() {
        let mut t = Translator::default();
        let mut task: Task = serde_json::from_value(json!({
            "id": "t1", "meta": {"version": 1, "created_at": 1, "updated_at": 1},
            "service_id": "svc1", "slot": 2, "node_id": "n1", "spec_version": 1,
            "spec": {"ContainerSpec": {"Image": "busybox"}}, "service_name": "web",
            "desired_state": "running",
            "status": {"state": "new", "timestamp": 1}
        }))
        .expect("a task");
        let created = translate(&mut t, Op::Created, &task).expect("an event");
        assert_eq!(created.attribute("name"), "web.2");
        assert_eq!(created.attribute("service.name"), "web");
        task.status.message = "pulling".into();
        assert!(
            translate(&mut t, Op::Updated, &task).is_none(),
            "a message alone is no event"
        );
        task.status.state = TaskState::Failed;
        task.status.err = "starting container failed: no such file".into();
        task.status.exit_code = 127;
        let failed = translate(&mut t, Op::Updated, &task).expect("an event");
        assert_eq!(
            (failed.attribute("state.old"), failed.attribute("state")),
            ("new", "failed")
        );
        assert_eq!(
            failed.attribute("error"),
            "starting container failed: no such file"
        );
        assert_eq!(failed.attribute("exitCode"), "127");
        assert!(!failed.attributes.contains_key("desiredstate.old"));
        let removed = translate(&mut t, Op::Deleted, &task).expect("an event");
        assert_eq!(removed.action, "remove");
    }
}
