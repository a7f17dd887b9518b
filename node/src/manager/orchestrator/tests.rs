use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::*;
use crate::manager::objects::service::{RestartCondition, RestartPolicy};
use crate::manager::objects::update::{
    FailureAction, UpdateConfig, UpdateOrder, UpdateState, UpdateStatus,
};
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
        previous_spec_version: None,
        update_status: None,
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
                clock: 1,
            },
            orchestrator: Orchestrator::default(),
            now: Instant::now(),
            clock: 1,
        }
    }

    /// One round, applied as the store would.
    fn round(&mut self) {
        self.world.clock = self.clock;
        let (plan, _) = self.orchestrator.plan(&self.world, self.now);
        for service in plan.services {
            self.world.services.insert(service.id.clone(), service);
        }
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

    /// Tasks told to stop report that they did.
    fn stop_told(&mut self) {
        for t in &mut self.world.tasks {
            if t.desired_state > TaskState::Running && !t.status.state.is_terminal() {
                t.status.state = TaskState::Shutdown;
            }
        }
    }

    /// Time passes, for the leader's timers and the managers' clocks alike.
    fn advance(&mut self, secs: u64) {
        self.now += Duration::from_secs(secs);
        self.clock += secs;
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

/// A service of `replicas` running on node a (and b, if asked), with `config` for
/// its updates.
fn running(replicas: u64, nodes: &[&str], config: UpdateConfig) -> Sim {
    let mut svc = service(ServiceMode::Replicated { replicas });
    svc.spec.update_config = Some(config);
    svc.spec.rollback_config = Some(UpdateConfig {
        parallelism: Some(0),
        monitor: Some(0),
        ..Default::default()
    });
    let mut sim = Sim::new(svc, nodes);
    sim.round();
    sim.run_all_on(nodes[0]);
    sim.round();
    sim
}

impl Sim {
    /// A change of what tasks run, as the API makes it.
    fn update_spec(&mut self, env: &str) {
        let clock = self.clock;
        if let Some(s) = self.world.services.get_mut("svc") {
            let mut spec = s.spec.clone();
            spec.task_template.container_spec.env = Some(vec![env.into()]);
            let version = s.next_spec_version(true);
            s.previous_spec = Some(std::mem::replace(&mut s.spec, spec));
            s.previous_spec_version = Some(std::mem::replace(&mut s.spec_version, version));
            s.update_status = Some(UpdateStatus::new(
                UpdateState::Updating,
                clock,
                "update in progress",
            ));
        }
    }

    fn svc(&self) -> &Service {
        &self.world.services["svc"]
    }

    fn state(&self) -> Option<UpdateState> {
        self.svc().update_status.as_ref().map(|s| s.state)
    }

    /// Live tasks of the service's current spec, and of older ones.
    fn new_and_old(&self) -> (usize, usize) {
        let version = self.svc().spec_version;
        let live = self.live();
        let new = live.iter().filter(|t| t.spec_version == version).count();
        (new, live.len() - new)
    }

    /// Tasks running and wanted running.
    fn serving(&self) -> usize {
        self.live()
            .iter()
            .filter(|t| t.status.state == TaskState::Running)
            .count()
    }

    /// `n` rounds, each followed by the agents doing as told on node a and `secs`
    /// passing.
    fn cycle(&mut self, n: usize, secs: u64) {
        for _ in 0..n {
            self.round();
            self.stop_told();
            self.run_all_on("a");
            self.advance(secs);
        }
    }

    /// An update whose first new task fails soon after it ran, and the round that
    /// sees it.
    fn fail_first_batch(&mut self) {
        self.update_spec("V=2");
        self.round();
        self.stop_told();
        self.round();
        self.run_all_on("a");
        self.advance(1);
        self.fail_new();
        self.round();
    }

    fn fail_new(&mut self) {
        let version = self.svc().spec_version;
        for t in &mut self.world.tasks {
            if t.spec_version == version && t.status.state == TaskState::Running {
                t.status.state = TaskState::Failed;
            }
        }
    }
}

fn secs(n: i64) -> Option<i64> {
    Some(n * 1_000_000_000)
}

#[test]
fn stop_first_updates_one_slot_at_a_time_after_monitor_and_delay() {
    let mut sim = running(
        3,
        &["a"],
        UpdateConfig {
            parallelism: Some(1),
            delay: secs(3),
            monitor: secs(2),
            ..Default::default()
        },
    );
    sim.update_spec("V=2");
    sim.round();
    assert_eq!(sim.new_and_old(), (0, 2), "one old task told to stop first");
    sim.round();
    assert_eq!(
        sim.new_and_old(),
        (0, 2),
        "its replacement waits until it stopped"
    );
    sim.stop_told();
    sim.round();
    assert_eq!(sim.new_and_old(), (1, 2));
    sim.run_all_on("a");
    sim.round();
    sim.advance(1);
    sim.round();
    assert_eq!(sim.new_and_old(), (1, 2), "monitored for 2 s");
    sim.advance(1);
    sim.round();
    assert_eq!(sim.new_and_old(), (1, 2), "then a delay of 3 s");
    sim.advance(2);
    sim.round();
    assert_eq!(sim.new_and_old(), (1, 2), "still in the delay");
    sim.advance(1);
    sim.round();
    assert_eq!(sim.new_and_old(), (1, 1), "the second batch");
    for _ in 0..8 {
        sim.cycle(1, 3);
        assert!(sim.live().len() >= 2, "never more than one slot down");
    }
    sim.round();
    assert_eq!(sim.new_and_old(), (3, 0));
    assert_eq!(sim.state(), Some(UpdateState::Completed));
    let status = sim.svc().update_status.clone().unwrap();
    assert!(status.completed_at.is_some());
}

#[test]
fn start_first_runs_the_new_task_before_the_old_one_stops() {
    let mut sim = running(
        2,
        &["a"],
        UpdateConfig {
            order: Some(UpdateOrder::StartFirst),
            monitor: secs(1),
            ..Default::default()
        },
    );
    sim.update_spec("V=2");
    for _ in 0..6 {
        sim.round();
        assert!(sim.serving() >= 2, "{} serving", sim.serving());
        sim.run_all_on("a");
        sim.stop_told();
        sim.advance(1);
    }
    sim.round();
    assert_eq!(sim.new_and_old(), (2, 0));
    assert_eq!(sim.state(), Some(UpdateState::Completed));
}

#[test]
fn a_failed_update_pauses_and_a_later_update_resumes() {
    let mut sim = running(
        3,
        &["a"],
        UpdateConfig {
            monitor: secs(5),
            ..Default::default()
        },
    );
    sim.fail_first_batch();
    assert_eq!(sim.state(), Some(UpdateState::Paused));
    let message = &sim.svc().update_status.as_ref().unwrap().message;
    assert!(
        message.starts_with("update paused due to failure"),
        "{message}"
    );
    sim.cycle(4, 10);
    assert_eq!(sim.new_and_old().1, 2, "no more old tasks replaced");
    // `service update` with no change to the tasks clears the status: the update goes on.
    sim.world.services.get_mut("svc").unwrap().update_status = None;
    sim.cycle(10, 6);
    sim.round();
    assert_eq!(sim.new_and_old(), (3, 0));
    assert_eq!(sim.state(), Some(UpdateState::Completed));
}

#[test]
fn a_failed_update_rolls_back_to_the_previous_spec_on_its_own() {
    let mut sim = running(
        3,
        &["a"],
        UpdateConfig {
            failure_action: Some(FailureAction::Rollback),
            monitor: secs(5),
            ..Default::default()
        },
    );
    let first = sim.svc().spec_version;
    let originals: Vec<String> = sim.live().iter().map(|t| t.id.clone()).collect();
    sim.fail_first_batch();
    assert_eq!(sim.state(), Some(UpdateState::RollbackStarted));
    assert_eq!(
        sim.svc().spec_version,
        first,
        "the old spec, its version with it"
    );
    assert!(sim.svc().spec.task_template.container_spec.env.is_none());
    assert!(sim.svc().previous_spec.is_none());
    sim.cycle(4, 1);
    sim.round();
    assert_eq!(sim.new_and_old(), (3, 0));
    let kept = sim
        .live()
        .iter()
        .filter(|t| originals.contains(&t.id))
        .count();
    assert_eq!(kept, 2, "the tasks the update never reached keep running");
    assert_eq!(sim.state(), Some(UpdateState::RollbackCompleted));
}

#[test]
fn a_slot_whose_node_went_down_counts_against_parallelism() {
    let mut sim = running(
        3,
        &["a", "b"],
        UpdateConfig {
            monitor: secs(1),
            ..Default::default()
        },
    );
    sim.update_spec("V=2");
    sim.round();
    sim.stop_told();
    sim.round();
    sim.run_all_on("b");
    sim.round();
    // Slot 1's new task runs on b, which goes down within its monitoring period: it
    // still reads running, but is no replacement.
    sim.world.nodes.get_mut("b").unwrap().status.state = NodeState::Down;
    sim.advance(2);
    sim.round();
    let version = sim.svc().spec_version;
    let refilled = sim
        .live()
        .iter()
        .filter(|t| t.spec_version == version && t.node_id.is_empty())
        .count();
    assert_eq!(refilled, 1, "slot 1 refilled");
    let old = |sim: &Sim| {
        sim.live()
            .iter()
            .filter(|t| t.spec_version != version)
            .count()
    };
    assert_eq!(old(&sim), 2, "no second slot taken down meanwhile");
    sim.run_all_on("a");
    sim.round();
    sim.advance(2);
    sim.round();
    assert_eq!(
        old(&sim),
        1,
        "the next batch once the refilled slot is done"
    );
    assert_eq!(sim.state(), Some(UpdateState::Updating));
}

#[test]
fn global_services_update_node_by_node() {
    let mut svc = service(ServiceMode::Global {});
    svc.spec.update_config = Some(UpdateConfig {
        monitor: secs(1),
        ..Default::default()
    });
    let mut sim = Sim::new(svc, &["a", "b", "c"]);
    sim.round();
    for t in &mut sim.world.tasks {
        t.status.state = TaskState::Running;
    }
    sim.update_spec("V=2");
    let mut most_down = 0;
    for _ in 0..12 {
        sim.round();
        most_down = most_down.max(3 - sim.serving());
        sim.stop_told();
        for t in &mut sim.world.tasks {
            if t.desired_state == TaskState::Running {
                t.status.state = TaskState::Running;
            }
        }
        sim.advance(1);
    }
    assert_eq!(most_down, 1, "one node at a time");
    assert_eq!(sim.new_and_old(), (3, 0));
    let mut on: Vec<&str> = sim.live().iter().map(|t| t.node_id.as_str()).collect();
    on.sort();
    assert_eq!(on, vec!["a", "b", "c"]);
    assert_eq!(sim.state(), Some(UpdateState::Completed));
}
