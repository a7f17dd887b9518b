//! The orchestrators, on the leader, after swarmkit's `manager/orchestrator`: they make
//! each service's tasks match its spec. One per mode ([`replicated`], [`global`], and
//! their jobs), sharing the [`restart`] supervisor (a task that ended is replaced per
//! the service's restart policy) and the task reaper ([`reaper`]: history and the tasks
//! of removed services). They only make tasks and set desired states; the scheduler
//! places tasks, and agents report what became of them.

mod global;
mod reaper;
mod replicated;
mod restart;
mod update;

use std::collections::HashMap;
use std::time::Instant;

use super::ca::new_id;
use super::objects::{
    Availability, Cluster, Node, NodeState, Service, ServiceMode, Task, TaskState, TaskStatus,
};
use super::store::{now_secs, Action, Error, Meta, Store};

/// What the orchestrators read in one round: the whole of the store's services, tasks
/// and nodes, so that a round decides from one consistent view.
pub struct World {
    pub services: HashMap<String, Service>,
    pub tasks: Vec<Task>,
    pub nodes: HashMap<String, Node>,
    /// Ended tasks kept per slot (`task_history_retention_limit`).
    pub history: usize,
    /// Seconds since the epoch when read: the time the updater writes.
    pub clock: u64,
}

impl World {
    /// The store's services and tasks, with `nodes` as the round read them.
    pub fn read(store: &Store, nodes: &[Node]) -> Result<World, Error> {
        let history = store
            .list::<Cluster>()?
            .first()
            .map(|c| c.spec.task_history_retention_limit as usize)
            .unwrap_or(5);
        Ok(World {
            services: store
                .list::<Service>()?
                .into_iter()
                .map(|s| (s.id.clone(), s))
                .collect(),
            tasks: store.list::<Task>()?,
            nodes: nodes.iter().map(|n| (n.id.clone(), n.clone())).collect(),
            history,
            clock: now_secs(),
        })
    }

    /// Whether tasks on `node_id` should keep running there: the node exists, is not
    /// Down, and is not drained.
    pub fn node_keeps_tasks(&self, node_id: &str) -> bool {
        self.nodes.get(node_id).is_some_and(|n| {
            n.status.state != NodeState::Down && n.spec.availability != Availability::Drain
        })
    }

    pub fn node_is_down(&self, node_id: &str) -> bool {
        self.nodes
            .get(node_id)
            .is_some_and(|n| n.status.state == NodeState::Down)
    }
}

/// The changes one round decides, keyed by task so that two decisions on one task
/// become one update.
#[derive(Default)]
pub struct Plan {
    updates: HashMap<String, Task>,
    creates: Vec<Task>,
    deletes: Vec<String>,
    /// Services whose update status (or, rolled back, spec) the updater changed.
    services: Vec<Service>,
}

impl Plan {
    /// Tells `task` to stop (or go away, with `Remove`), unless it already is.
    pub fn set_desired(&mut self, task: &Task, desired: TaskState) {
        let current = self.updates.get(&task.id).unwrap_or(task);
        if current.desired_state >= desired {
            return;
        }
        let mut task = current.clone();
        task.desired_state = desired;
        self.updates.insert(task.id.clone(), task);
    }

    /// The desired state `task` will have once this plan is applied.
    pub fn desired(&self, task: &Task) -> TaskState {
        self.updates
            .get(&task.id)
            .map_or(task.desired_state, |t| t.desired_state)
    }

    pub fn create(&mut self, task: Task) {
        self.creates.push(task);
    }

    pub fn delete(&mut self, task: &Task) {
        self.updates.remove(&task.id);
        self.deletes.push(task.id.clone());
    }

    pub fn update_service(&mut self, service: Service) {
        self.services.push(service);
    }

    pub fn is_empty(&self) -> bool {
        self.updates.is_empty()
            && self.creates.is_empty()
            && self.deletes.is_empty()
            && self.services.is_empty()
    }

    pub fn into_actions(self) -> Result<Vec<Action>, Error> {
        let mut actions = Vec::new();
        for task in self.creates {
            actions.push(Action::create(&task)?);
        }
        for task in self.updates.into_values() {
            actions.push(Action::update(&task)?);
        }
        for id in self.deletes {
            actions.push(Action::delete::<Task>(&id));
        }
        // Last: should a service have changed since the round read it, its write is
        // refused as stale and the round runs again on what it is now.
        for service in self.services {
            actions.push(Action::update(&service)?);
        }
        Ok(actions)
    }
}

/// A new task of `service`: for `slot` (replicated) or for `node_id` (global).
pub fn new_task(service: &Service, slot: u64, node_id: &str) -> Task {
    Task {
        id: new_id(),
        meta: Meta::default(),
        service_id: service.id.clone(),
        slot,
        node_id: node_id.to_string(),
        spec_version: service.spec_version,
        spec: service.spec.task_template.clone(),
        service_name: service.spec.name.clone(),
        job: service.spec.mode.is_job(),
        desired_state: TaskState::Running,
        status: TaskStatus {
            state: TaskState::New,
            timestamp: now_secs(),
            message: "created".into(),
            ..Default::default()
        },
        networks: Vec::new(),
        endpoint: Default::default(),
        configs: Vec::new(),
        secrets: Vec::new(),
    }
}

/// The orchestrators' memory between rounds, all safe to lose with the leadership: when
/// replacements of ended tasks are due, and the updater's monitoring.
#[derive(Default)]
pub struct Orchestrator {
    restarts: restart::Supervisor,
    updater: update::Updater,
}

impl Orchestrator {
    /// One round over every service: the changes it needs, and when a round is next due
    /// for a restart delay to end.
    pub fn plan(&mut self, world: &World, now: Instant) -> (Plan, Option<Instant>) {
        let mut plan = Plan::default();
        let mut by_service: HashMap<&str, Vec<&Task>> = HashMap::new();
        for task in &world.tasks {
            by_service.entry(&task.service_id).or_default().push(task);
        }
        for service in world.services.values() {
            let tasks = by_service.remove(service.id.as_str()).unwrap_or_default();
            match &service.spec.mode {
                ServiceMode::Replicated { replicas } => {
                    replicated::reconcile(world, service, &tasks, *replicas, self, &mut plan, now)
                }
                ServiceMode::ReplicatedJob {
                    max_concurrent,
                    total_completions,
                } => replicated::reconcile_job(
                    world,
                    service,
                    &tasks,
                    (*max_concurrent).max(1),
                    total_completions.unwrap_or(*max_concurrent).max(1),
                    &mut self.restarts,
                    &mut plan,
                    now,
                ),
                ServiceMode::Global {} | ServiceMode::GlobalJob {} => {
                    global::reconcile(world, service, &tasks, self, &mut plan, now)
                }
            }
            reaper::prune_history(world, &tasks, &mut plan);
        }
        // What is left belongs to services that are gone.
        reaper::reap(world, by_service, &mut plan);
        self.restarts.forget_missing(&world.tasks);
        let next = [
            self.restarts.next_due(),
            self.updater.end_round(&world.tasks),
        ]
        .into_iter()
        .flatten()
        .min();
        (plan, next)
    }
}

/// Runs rounds and commits their plans.
pub async fn round(
    orchestrator: &mut Orchestrator,
    store: &Store,
    nodes: &[Node],
) -> Result<Option<Instant>, Error> {
    let world = World::read(store, nodes)?;
    let (plan, next) = orchestrator.plan(&world, Instant::now());
    if !plan.is_empty() {
        super::propose_chunked(store, plan.into_actions()?).await?;
    }
    Ok(next)
}

#[cfg(test)]
mod tests;
