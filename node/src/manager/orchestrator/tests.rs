use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::*;
use crate::manager::objects::service::{RestartCondition, RestartPolicy};
use crate::manager::objects::ServiceSpec;

fn node(id: &str) -> Node {
    Node::for_tests(id)
}

fn service(mode: ServiceMode) -> Service {
    Service {
        id: "svc".into(),
        meta: Meta::default(),
        spec: ServiceSpec {
            name: "web".into(),
            mode,
            ..Default::default()
        },
        previous_spec: None,
        spec_version: 1,
        endpoint: Default::default(),
    }
}

struct Sim {
    world: World,
    orchestrator: Orchestrator,
    now: Instant,
    clock: u64,
}

impl Sim {
    fn new(service: Service, nodes: &[&str]) -> Sim {
        Sim {
            world: World {
                services: HashMap::from([(service.id.clone(), service)]),
                tasks: Vec::new(),
                nodes: nodes.iter().map(|n| (n.to_string(), node(n))).collect(),
                history: 5,
            },
            orchestrator: Orchestrator::default(),
            now: Instant::now(),
            clock: 1,
        }
    }

    /// One round, applied as the store would.
    fn round(&mut self) {
        let (plan, _) = self.orchestrator.plan(&self.world, self.now);
        for mut task in plan.creates {
            self.clock += 1;
            task.meta.created_at = self.clock;
            self.world.tasks.push(task);
        }
        for (id, task) in plan.updates {
            if let Some(t) = self.world.tasks.iter_mut().find(|t| t.id == id) {
                *t = task;
            }
        }
        self.world.tasks.retain(|t| !plan.deletes.contains(&t.id));
    }

    /// Places every unplaced task on `node` and reports it running.
    fn run_all_on(&mut self, node: &str) {
        for t in &mut self.world.tasks {
            if t.desired_state <= TaskState::Running && t.status.state < TaskState::Running {
                if t.node_id.is_empty() {
                    t.node_id = node.into();
                }
                t.status.state = TaskState::Running;
            }
        }
    }

    fn live(&self) -> Vec<&Task> {
        self.world
            .tasks
            .iter()
            .filter(|t| t.desired_state <= TaskState::Running)
            .collect()
    }

    fn set_replicas(&mut self, n: u64) {
        if let Some(s) = self.world.services.get_mut("svc") {
            s.spec.mode = ServiceMode::Replicated { replicas: n };
        }
    }
}

#[test]
fn replicas_fill_their_slots_and_scaling_down_stops_the_highest() {
    let mut sim = Sim::new(service(ServiceMode::Replicated { replicas: 3 }), &["a"]);
    sim.round();
    let mut slots: Vec<u64> = sim.live().iter().map(|t| t.slot).collect();
    slots.sort();
    assert_eq!(slots, vec![1, 2, 3]);
    sim.round();
    assert_eq!(sim.world.tasks.len(), 3, "a second round changes nothing");
    sim.run_all_on("a");
    sim.set_replicas(1);
    sim.round();
    let live: Vec<u64> = sim.live().iter().map(|t| t.slot).collect();
    assert_eq!(live, vec![1]);
}

/// One replica running on node a, which then went down (and one round since); the
/// replica's task id.
fn one_replica_whose_node_went_down() -> (Sim, String) {
    let mut sim = Sim::new(
        service(ServiceMode::Replicated { replicas: 1 }),
        &["a", "b"],
    );
    sim.round();
    sim.run_all_on("a");
    let original = sim.world.tasks[0].id.clone();
    sim.world.nodes.get_mut("a").unwrap().status.state = NodeState::Down;
    sim.round();
    (sim, original)
}

#[test]
fn a_task_on_a_down_node_is_replaced_and_kept_if_its_node_returns_first() {
    let (mut sim, original) = one_replica_whose_node_went_down();
    assert_eq!(
        sim.live().len(),
        2,
        "a replacement, and the original left as it is"
    );
    // Back before its replacement found a node: the replacement goes, not the original.
    sim.world.nodes.get_mut("a").unwrap().status.state = NodeState::Ready;
    sim.round();
    let live = sim.live();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].id, original);
    assert!(
        sim.world.tasks.iter().all(|t| t.id == original),
        "the unplaced one is deleted"
    );
}

#[test]
fn a_returning_node_with_a_replaced_task_stops_it() {
    let (mut sim, original) = one_replica_whose_node_went_down();
    sim.run_all_on("b");
    sim.world.nodes.get_mut("a").unwrap().status.state = NodeState::Ready;
    sim.round();
    let live = sim.live();
    assert_eq!(live.len(), 1, "one task per slot");
    assert_ne!(live[0].id, original);
    assert_eq!(live[0].node_id, "b");
}

#[test]
fn restarts_follow_the_policy() {
    let mut svc = service(ServiceMode::Replicated { replicas: 1 });
    svc.spec.task_template.restart_policy = Some(RestartPolicy {
        condition: Some(RestartCondition::OnFailure),
        delay: Some(1_000_000_000),
        max_attempts: Some(2),
        window: None,
    });
    let mut sim = Sim::new(svc, &["a"]);
    sim.round();
    let mut made = 1;
    for attempt in 0..4 {
        sim.run_all_on("a");
        for t in &mut sim.world.tasks {
            if t.desired_state == TaskState::Running {
                t.status.state = TaskState::Failed;
            }
        }
        sim.round();
        assert_eq!(sim.world.tasks.len(), made, "no restart before the delay");
        sim.now += Duration::from_secs(2);
        sim.round();
        if attempt < 2 {
            made += 1;
        }
        assert_eq!(sim.world.tasks.len(), made, "attempt {attempt}");
    }
    // A completed task is not restarted on-failure.
    let mut sim = Sim::new(service(ServiceMode::Replicated { replicas: 1 }), &["a"]);
    if let Some(s) = sim.world.services.get_mut("svc") {
        s.spec.task_template.restart_policy = Some(RestartPolicy {
            condition: Some(RestartCondition::OnFailure),
            ..Default::default()
        });
    }
    sim.round();
    sim.world.tasks[0].status.state = TaskState::Complete;
    sim.now += Duration::from_secs(60);
    sim.round();
    sim.round();
    assert_eq!(sim.world.tasks.len(), 1);
}

#[test]
fn global_services_run_once_per_node_that_takes_tasks() {
    let mut sim = Sim::new(service(ServiceMode::Global {}), &["a", "b", "c"]);
    sim.world.nodes.get_mut("c").unwrap().spec.availability = Availability::Drain;
    sim.round();
    let mut on: Vec<&str> = sim.live().iter().map(|t| t.node_id.as_str()).collect();
    on.sort();
    assert_eq!(on, vec!["a", "b"]);
    sim.world.nodes.insert("d".into(), node("d"));
    sim.world.nodes.get_mut("a").unwrap().spec.availability = Availability::Drain;
    sim.round();
    let mut on: Vec<&str> = sim.live().iter().map(|t| t.node_id.as_str()).collect();
    on.sort();
    assert_eq!(on, vec!["b", "d"], "a drained, d joined");
}

#[test]
fn jobs_run_to_their_completions() {
    let mut sim = Sim::new(
        service(ServiceMode::ReplicatedJob {
            max_concurrent: 2,
            total_completions: Some(3),
        }),
        &["a"],
    );
    sim.round();
    assert_eq!(sim.live().len(), 2, "two at a time");
    for t in &mut sim.world.tasks {
        t.node_id = "a".into();
        t.status.state = TaskState::Complete;
    }
    sim.round();
    let running = sim
        .world
        .tasks
        .iter()
        .filter(|t| t.status.state != TaskState::Complete)
        .count();
    assert_eq!(running, 1, "one more makes three");
    for t in &mut sim.world.tasks {
        t.node_id = "a".into();
        t.status.state = TaskState::Complete;
    }
    sim.round();
    assert_eq!(sim.world.tasks.len(), 3, "done");
}

#[test]
fn history_is_bounded_and_removed_services_tasks_go() {
    let mut svc = service(ServiceMode::Replicated { replicas: 1 });
    svc.spec.task_template.restart_policy = Some(RestartPolicy {
        delay: Some(0),
        ..Default::default()
    });
    let mut sim = Sim::new(svc, &["a"]);
    sim.world.history = 2;
    for _ in 0..6 {
        sim.round();
        sim.run_all_on("a");
        for t in &mut sim.world.tasks {
            t.status.state = TaskState::Failed;
        }
    }
    sim.round();
    assert!(
        sim.world.tasks.len() <= 3,
        "{} tasks kept",
        sim.world.tasks.len()
    );
    sim.world.services.clear();
    sim.round();
    assert!(
        sim.world.tasks.is_empty(),
        "ended tasks of a removed service are deleted"
    );
}

#[test]
fn a_new_spec_replaces_tasks_one_at_a_time() {
    let mut sim = Sim::new(service(ServiceMode::Replicated { replicas: 3 }), &["a"]);
    sim.round();
    sim.run_all_on("a");
    if let Some(s) = sim.world.services.get_mut("svc") {
        s.spec_version = 2;
    }
    let new_ones = |sim: &Sim| sim.live().iter().filter(|t| t.spec_version == 2).count();
    sim.round();
    assert_eq!(new_ones(&sim), 1, "one slot at a time");
    assert_eq!(sim.live().len(), 3, "the other two keep running meanwhile");
    sim.round();
    assert_eq!(new_ones(&sim), 1, "the next waits for the first to run");
    sim.run_all_on("a");
    sim.round();
    assert_eq!(new_ones(&sim), 2);
    sim.run_all_on("a");
    sim.round();
    sim.run_all_on("a");
    sim.round();
    assert_eq!(new_ones(&sim), 3);
    assert_eq!(sim.live().len(), 3);
}
