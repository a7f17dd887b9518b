//! Docker's progress updaters, pure: from a service and its tasks, which progress lines
//! to show and whether the service has converged.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde_json::Value;

/// No per-task lines beyond this many tasks, as docker.
const MAX_BARS: u64 = 20;
/// The length of the longest state shown ("preparing"), to which states are padded.
const STATE_WIDTH: usize = 9;

/// Swarm's task states in order (docker's `numberedStates`); 0: not one shown.
fn rank(state: &str) -> i64 {
    match state {
        "new" => 1,
        "allocated" => 2,
        "pending" => 3,
        "assigned" => 4,
        "accepted" => 5,
        "preparing" => 6,
        "ready" => 7,
        "starting" => 8,
        "running" => 9,
        "complete" => 10,
        "shutdown" => 11,
        "failed" => 12,
        "rejected" => 13,
        _ => 0,
    }
}

fn terminal(state: &str) -> bool {
    rank(state) > rank("running")
}

/// One line of progress: `id: action [bar]`; an empty id is a plain message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub id: String,
    pub action: String,
    /// (current, total) for a bar.
    pub bar: Option<(i64, i64)>,
}

impl Line {
    pub fn new(id: impl Into<String>, action: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            action: action.into(),
            bar: None,
        }
    }

    fn with_bar(mut self, current: i64, total: i64) -> Self {
        self.bar = Some((current, total));
        self
    }
}

/// What progress needs of a task.
#[derive(Clone, Debug, Default)]
pub struct TaskView {
    pub slot: u64,
    pub node: String,
    pub desired: String,
    pub state: String,
    pub err: String,
    pub iteration: Option<u64>,
}

impl TaskView {
    pub fn from_json(t: &Value) -> Self {
        let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
        Self {
            slot: t["Slot"].as_u64().unwrap_or(0),
            node: s(&t["NodeID"]),
            desired: s(&t["DesiredState"]),
            state: s(&t["Status"]["State"]),
            err: s(&t["Status"]["Err"]),
            iteration: t["JobIteration"]["Index"].as_u64(),
        }
    }
}

/// A task's error on one line of at most 75 characters, as docker's `truncError`.
fn trunc_error(e: &str) -> String {
    let e = e.replace('\n', " ");
    if e.chars().count() > 75 {
        e.chars().take(74).collect::<String>() + "…"
    } else {
        e
    }
}

/// A task's line: its error if it has one, else its state with a bar out of `total`.
fn task_line(id: String, t: &TaskView, total: i64) -> Line {
    if !t.err.is_empty() {
        return Line::new(id, trunc_error(&t.err));
    }
    Line::new(id, format!("{:<STATE_WIDTH$}", t.state)).with_bar(rank(&t.state), total)
}

fn overall(running: u64, total: u64, rollback: bool) -> Line {
    let what = if rollback {
        format!("rolling back update: {running} out of {total} tasks")
    } else {
        format!("{running} out of {total} tasks")
    };
    Line::new("overall progress", what)
}

/// Per key (slot or node), the task that stands for it: the one with the lowest desired
/// state (the current one, not one being replaced), then the lowest observed state.
fn pick<K: Ord>(
    tasks: &[TaskView],
    key: impl Fn(&TaskView) -> Option<K>,
) -> BTreeMap<K, &TaskView> {
    let mut by: BTreeMap<K, &TaskView> = BTreeMap::new();
    for t in tasks {
        if rank(&t.desired) == 0 || rank(&t.state) == 0 {
            continue;
        }
        let Some(k) = key(t) else { continue };
        let better = match by.get(&k) {
            None => true,
            Some(cur) => {
                (rank(&t.desired), rank(&t.state)) < (rank(&cur.desired), rank(&cur.state))
            }
        };
        if better {
            by.insert(k, t);
        }
    }
    by
}

/// Docker's progress updaters, one per service mode.
pub enum Tracker {
    Replicated {
        initialized: bool,
        done: bool,
        /// Slots in the order first seen, numbered from 1 for display.
        slots: HashMap<u64, u64>,
    },
    Global {
        initialized: bool,
        done: bool,
    },
    ReplicatedJob {
        initialized: bool,
        slots: HashMap<u64, u64>,
    },
    GlobalJob {
        /// The nodes the job runs on, fixed when first seen (nodes that join later are
        /// not waited for).
        nodes: Option<BTreeSet<String>>,
    },
}

impl Tracker {
    pub fn new(service: &Value) -> anyhow::Result<Self> {
        let mode = &service["Spec"]["Mode"];
        let has = |k: &str| mode.get(k).is_some_and(|m| !m.is_null());
        Ok(if has("Replicated") {
            Tracker::Replicated {
                initialized: false,
                done: false,
                slots: HashMap::new(),
            }
        } else if has("Global") {
            Tracker::Global {
                initialized: false,
                done: false,
            }
        } else if has("ReplicatedJob") {
            Tracker::ReplicatedJob {
                initialized: false,
                slots: HashMap::new(),
            }
        } else if has("GlobalJob") {
            Tracker::GlobalJob { nodes: None }
        } else {
            anyhow::bail!("unrecognized service mode")
        })
    }

    pub fn is_job(&self) -> bool {
        matches!(
            self,
            Tracker::ReplicatedJob { .. } | Tracker::GlobalJob { .. }
        )
    }

    /// The lines to show for this look at the service, and whether it has converged.
    pub fn update(
        &mut self,
        service: &Value,
        tasks: &[TaskView],
        active_nodes: &HashSet<String>,
        rollback: bool,
        out: &mut Vec<Line>,
    ) -> bool {
        let mode = &service["Spec"]["Mode"];
        let active = |t: &TaskView| t.node.is_empty() || active_nodes.contains(&t.node);
        match self {
            Tracker::Replicated {
                initialized,
                done,
                slots,
            } => {
                let replicas = mode["Replicated"]["Replicas"].as_u64().unwrap_or(1);
                if !*initialized {
                    out.push(overall(0, replicas, rollback));
                    if replicas <= MAX_BARS {
                        for i in 1..=replicas {
                            out.push(Line::new(format!("{i}/{replicas}"), " "));
                        }
                    }
                    *initialized = true;
                }
                // Tasks on nodes that are down will be replaced: not counted.
                let by_slot = pick(tasks, |t| active(t).then_some(t.slot));
                if *done
                    && by_slot
                        .values()
                        .any(|t| !terminal(&t.desired) && t.state != "running")
                {
                    *done = false;
                }
                let mut running = 0;
                for (slot, t) in &by_slot {
                    let live = !terminal(&t.desired);
                    if live && t.state == "running" {
                        running += 1;
                    }
                    // Numbers go to slots as they appear, in slot order within a look,
                    // and stay: a slot's line does not move.
                    if live && !slots.contains_key(slot) {
                        let n = slots.len() as u64 + 1;
                        slots.insert(*slot, n);
                    }
                    let Some(&n) = slots.get(slot) else { continue };
                    if *done || replicas > MAX_BARS || n > replicas {
                        continue;
                    }
                    if !t.err.is_empty() || (live && !terminal(&t.state)) {
                        out.push(task_line(format!("{n}/{replicas}"), t, 9));
                    }
                }
                if !*done {
                    out.push(overall(running, replicas, rollback));
                    *done = running == replicas;
                }
                running == replicas
            }
            Tracker::Global { initialized, done } => {
                // The nodes the service runs on: those with a task meant to run (the
                // orchestrator makes them all at once), and up.
                let by_node = pick(tasks, |t| {
                    (!t.node.is_empty() && active(t)).then(|| t.node.clone())
                });
                let by_node: BTreeMap<&String, &&TaskView> = by_node
                    .iter()
                    .filter(|(_, t)| !terminal(&t.desired))
                    .collect();
                let count = by_node.len() as u64;
                if !*initialized {
                    if count == 0 {
                        out.push(Line::new("overall progress", "waiting for new tasks"));
                        return false;
                    }
                    out.push(overall(0, count, rollback));
                    *initialized = true;
                }
                if *done && by_node.values().any(|t| t.state != "running") {
                    *done = false;
                }
                let running = by_node.values().filter(|t| t.state == "running").count() as u64;
                if !*done && count <= MAX_BARS {
                    for (node, t) in &by_node {
                        if !t.err.is_empty() || !terminal(&t.state) {
                            let id: String = node.chars().take(12).collect();
                            out.push(task_line(id, t, 9));
                        }
                    }
                }
                if !*done {
                    out.push(overall(running, count, rollback));
                    *done = running == count;
                }
                running == count
            }
            Tracker::ReplicatedJob { initialized, slots } => {
                let job = &mode["ReplicatedJob"];
                let total = job["TotalCompletions"].as_u64().unwrap_or(1);
                let concurrent = job["MaxConcurrent"].as_u64().unwrap_or(1);
                if !*initialized {
                    out.extend(job_overall(0, 0, total, Some(concurrent)));
                    if total <= MAX_BARS {
                        for i in 1..=total {
                            out.push(Line::new(format!("{i}/{total}"), " "));
                        }
                    }
                    *initialized = true;
                }
                let iteration = service["JobStatus"]["JobIteration"]["Index"].as_u64();
                let by_slot = pick_job(tasks, iteration, |t| Some(t.slot));
                let (mut active_tasks, mut complete) = (0, 0);
                for (slot, t) in &by_slot {
                    if !slots.contains_key(slot) {
                        let n = slots.len() as u64 + 1;
                        slots.insert(*slot, n);
                    }
                    if let Some(&n) = slots.get(slot) {
                        if total <= MAX_BARS && n <= total {
                            out.push(task_line(format!("{n}/{total}"), t, 10));
                        }
                    }
                    if rank(&t.state) < rank("complete") {
                        active_tasks += 1;
                    }
                    if t.state == "complete" {
                        complete += 1;
                    }
                }
                out.extend(job_overall(active_tasks, complete, total, Some(concurrent)));
                complete >= total
            }
            Tracker::GlobalJob { nodes } => {
                let iteration = service["JobStatus"]["JobIteration"]["Index"].as_u64();
                let nodes = match nodes {
                    Some(n) => n,
                    None => {
                        if tasks.is_empty() && !active_nodes.is_empty() {
                            out.push(Line::new("job progress", "waiting for tasks"));
                            return false;
                        }
                        let set: BTreeSet<String> = tasks
                            .iter()
                            .filter(|t| in_iteration(t, iteration))
                            .map(|t| t.node.clone())
                            .collect();
                        out.extend(job_overall(0, 0, set.len() as u64, None));
                        nodes.insert(set)
                    }
                };
                let total = nodes.len() as u64;
                let by_node = pick_job(tasks, iteration, |t| {
                    nodes.contains(&t.node).then(|| t.node.clone())
                });
                let mut complete = 0;
                for (node, t) in &by_node {
                    if total <= MAX_BARS {
                        out.push(task_line(node.clone(), t, 10));
                    }
                    if t.state == "complete" {
                        complete += 1;
                    }
                }
                out.extend(job_overall(0, complete, total, None));
                complete >= total
            }
        }
    }
}

/// Whether a task belongs to the job's current run (a task or service that does not say
/// is taken to).
fn in_iteration(t: &TaskView, iteration: Option<u64>) -> bool {
    match (t.iteration, iteration) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

/// A job's tasks per key: the one with the lowest observed state.
fn pick_job<K: Ord>(
    tasks: &[TaskView],
    iteration: Option<u64>,
    key: impl Fn(&TaskView) -> Option<K>,
) -> BTreeMap<K, &TaskView> {
    let mut by: BTreeMap<K, &TaskView> = BTreeMap::new();
    for t in tasks {
        if !in_iteration(t, iteration) || rank(&t.desired) == 0 || rank(&t.state) == 0 {
            continue;
        }
        let Some(k) = key(t) else { continue };
        if by
            .get(&k)
            .is_none_or(|cur| rank(&t.state) < rank(&cur.state))
        {
            by.insert(k, t);
        }
    }
    by
}

/// A job's overall lines: completions with a bar, and (replicated jobs) the tasks active
/// out of those that may be.
fn job_overall(active: u64, complete: u64, total: u64, concurrent: Option<u64>) -> Vec<Line> {
    let digits = total.to_string().len();
    let mut out = vec![Line::new(
        "job progress",
        format!("{complete:>digits$} out of {total} complete"),
    )
    .with_bar(complete as i64, total as i64)];
    if let Some(concurrent) = concurrent {
        let may = total.saturating_sub(complete).min(concurrent);
        let w = concurrent.to_string().len();
        out.push(Line::new(
            "active tasks",
            format!("{active:>w$} out of {may:>w$} tasks"),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::progress::Screen;
    use super::*;

    fn task(slot: u64, node: &str, desired: &str, state: &str) -> TaskView {
        TaskView {
            slot,
            node: node.into(),
            desired: desired.into(),
            state: state.into(),
            ..Default::default()
        }
    }

    fn replicated(n: u64) -> Value {
        json!({"Spec": {"Mode": {"Replicated": {"Replicas": n}}}})
    }

    fn nodes(ids: &[&str]) -> HashSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    /// The lines as a screen that is not a terminal prints them.
    fn printed(lines: &[Line], screen: &mut Screen) -> Vec<String> {
        lines.iter().filter_map(|l| screen.plain(l)).collect()
    }

    fn plain_screen() -> Screen {
        Screen::not_a_terminal()
    }

    #[test]
    fn replicated_progress() {
        let svc = replicated(3);
        let mut t = Tracker::new(&svc).unwrap();
        let mut screen = plain_screen();
        let active = nodes(&["n1", "n2"]);
        let mut out = Vec::new();
        let tasks = [
            task(1, "n1", "running", "running"),
            task(2, "n2", "running", "preparing"),
            task(3, "", "running", "pending"),
        ];
        assert!(!t.update(&svc, &tasks, &active, false, &mut out));
        assert_eq!(
            printed(&out, &mut screen),
            [
                "overall progress: 0 out of 3 tasks",
                "1/3: running",
                "2/3: preparing",
                "3/3: pending",
                "overall progress: 1 out of 3 tasks",
            ]
        );
        // The terminal form pads states and draws bars.
        assert_eq!(
            screen.text(&out[4], true),
            format!("1/3: running   [{}>] ", "=".repeat(50))
        );
        assert_eq!(
            screen.text(&out[5], true),
            format!("2/3: preparing [{}>{}] ", "=".repeat(33), " ".repeat(17))
        );

        let tasks = [
            task(1, "n1", "running", "running"),
            task(2, "n2", "running", "running"),
            task(3, "n1", "running", "running"),
            // A task being replaced does not stand for its slot.
            task(3, "n2", "shutdown", "failed"),
        ];
        out.clear();
        assert!(t.update(&svc, &tasks, &active, false, &mut out));
        assert_eq!(
            printed(&out, &mut screen),
            [
                "2/3: running",
                "3/3: running",
                "overall progress: 3 out of 3 tasks"
            ]
        );
        // Converged: nothing more to say while it stays so.
        out.clear();
        assert!(t.update(&svc, &tasks, &active, false, &mut out));
        assert!(out.is_empty());
    }

    #[test]
    fn a_failing_task_shows_its_error_and_is_not_counted() {
        let svc = replicated(1);
        let mut t = Tracker::new(&svc).unwrap();
        let mut out = Vec::new();
        let mut failed = task(1, "n1", "running", "rejected");
        failed.err = "No such image: foo:latest".into();
        assert!(!t.update(&svc, &[failed], &nodes(&["n1"]), false, &mut out));
        // The second "0 out of 1" is no change: not printed again.
        assert_eq!(
            printed(&out, &mut plain_screen()),
            [
                "overall progress: 0 out of 1 tasks",
                "1/1: No such image: foo:latest",
            ]
        );
    }

    #[test]
    fn tasks_on_down_nodes_and_surplus_slots() {
        let svc = replicated(1);
        let mut t = Tracker::new(&svc).unwrap();
        let mut out = Vec::new();
        let tasks = [
            task(1, "gone", "running", "running"),
            task(2, "n1", "running", "running"),
        ];
        // Slot 1's task is on a down node; slot 2 runs: one running, as wanted.
        assert!(t.update(&svc, &tasks, &nodes(&["n1"]), false, &mut out));
        // Scaled down from 2 with both running: not yet converged.
        let tasks = [
            task(1, "n1", "running", "running"),
            task(2, "n1", "running", "running"),
        ];
        let mut t = Tracker::new(&svc).unwrap();
        assert!(!t.update(&svc, &tasks, &nodes(&["n1"]), false, &mut out));
        let zero = replicated(0);
        let mut t = Tracker::new(&zero).unwrap();
        assert!(t.update(&zero, &[], &nodes(&["n1"]), false, &mut out));
    }

    #[test]
    fn global_progress() {
        let svc = json!({"Spec": {"Mode": {"Global": {}}}});
        let mut t = Tracker::new(&svc).unwrap();
        let mut screen = plain_screen();
        let active = nodes(&["node-aaaaaaaaaaaa1", "node-bbbbbbbbbbbb2"]);
        let mut out = Vec::new();
        assert!(!t.update(&svc, &[], &active, false, &mut out));
        assert_eq!(
            printed(&out, &mut screen),
            ["overall progress: waiting for new tasks"]
        );
        let tasks = [
            task(0, "node-aaaaaaaaaaaa1", "running", "running"),
            task(0, "node-bbbbbbbbbbbb2", "running", "starting"),
            // An old task on a node the service left: not waited for.
            task(0, "node-cccccccccccc3", "shutdown", "shutdown"),
        ];
        out.clear();
        assert!(!t.update(&svc, &tasks, &active, false, &mut out));
        assert_eq!(
            printed(&out, &mut screen),
            [
                "overall progress: 0 out of 2 tasks",
                "node-aaaaaaa: running",
                "node-bbbbbbb: starting",
                "overall progress: 1 out of 2 tasks",
            ]
        );
        let tasks = [
            task(0, "node-aaaaaaaaaaaa1", "running", "running"),
            task(0, "node-bbbbbbbbbbbb2", "running", "running"),
        ];
        out.clear();
        assert!(t.update(&svc, &tasks, &active, false, &mut out));
    }

    #[test]
    fn replicated_job_progress() {
        let svc = json!({"Spec": {"Mode": {"ReplicatedJob": {"MaxConcurrent": 2, "TotalCompletions": 3}}}});
        let mut t = Tracker::new(&svc).unwrap();
        assert!(t.is_job());
        let mut screen = plain_screen();
        let mut out = Vec::new();
        let tasks = [
            task(0, "n1", "complete", "complete"),
            task(1, "n1", "complete", "running"),
        ];
        assert!(!t.update(&svc, &tasks, &nodes(&["n1"]), false, &mut out));
        assert_eq!(
            printed(&out, &mut screen),
            [
                "job progress: 0 out of 3 complete",
                "active tasks: 0 out of 2 tasks",
                "1/3: complete",
                "2/3: running",
                "job progress: 1 out of 3 complete",
                "active tasks: 1 out of 2 tasks",
            ]
        );
        let tasks = [
            task(0, "n1", "complete", "complete"),
            task(1, "n1", "complete", "complete"),
            task(2, "n1", "complete", "complete"),
        ];
        out.clear();
        assert!(t.update(&svc, &tasks, &nodes(&["n1"]), false, &mut out));
    }

    #[test]
    fn global_job_progress() {
        let svc = json!({"Spec": {"Mode": {"GlobalJob": {}}}});
        let mut t = Tracker::new(&svc).unwrap();
        let mut out = Vec::new();
        assert!(!t.update(&svc, &[], &nodes(&["n1"]), false, &mut out));
        assert_eq!(out, [Line::new("job progress", "waiting for tasks")]);
        let tasks = [
            task(0, "n1", "complete", "complete"),
            task(0, "n2", "complete", "running"),
        ];
        out.clear();
        assert!(!t.update(&svc, &tasks, &nodes(&["n1", "n2"]), false, &mut out));
        let tasks = [
            task(0, "n1", "complete", "complete"),
            task(0, "n2", "complete", "complete"),
            // A node that joined later is not waited for.
            task(0, "n3", "complete", "pending"),
        ];
        assert!(t.update(&svc, &tasks, &nodes(&["n1", "n2", "n3"]), false, &mut out));
    }

    #[test]
    fn unknown_modes_are_refused() {
        assert!(Tracker::new(&json!({"Spec": {"Mode": {}}})).is_err());
        assert!(Tracker::new(&json!({})).is_err());
    }

    #[test]
    fn errors_fit_a_line() {
        assert_eq!(trunc_error("a\nb"), "a b");
        let long = "x".repeat(80);
        assert_eq!(trunc_error(&long).chars().count(), 75);
        assert!(trunc_error(&long).ends_with('…'));
    }
}
