//! The scheduler's placement logic, after swarmkit's `manager/scheduler`: which node each
//! pending task goes to. Pure: it does no IO. The leader's loop builds a [`Scheduler`]
//! from the store's nodes and tasks, asks it to place the pending tasks, and proposes
//! the answers; the scheduler records each placement so that later answers see it.
//!
//! A node takes a task only if it passes every filter, in Swarm's order (`filter`):
//! ready and active; enough unreserved CPU and memory; the placement constraints
//! (`constraint`); one of the image's platforms (`platform`); under the service's max
//! replicas per node. Among the nodes that pass, placement preferences spread tasks
//! evenly over label values (`spread`), then the node with the fewest live tasks of the
//! service wins, then the one with the fewest live tasks in all, then the lowest id.
//!
//! Cost: tasks of one service and spec are placed as a group, over one pass of the
//! nodes (O(nodes)), then O(log nodes) per task.

mod constraint;
mod filter;
pub mod leader;
mod node;
mod platform;
mod spread;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use self::filter::{reservations, Failures, Requirements};
use self::node::NodeInfo;
use self::spread::{spread_labels, NodeKey, Tree};
use crate::manager::objects::{Node, Task};

pub use self::constraint::{ConstraintError, Problem};

/// Parses constraints, for the API to refuse bad ones at `service create`: the error
/// names the constraint and what is wrong with it.
pub fn validate_constraints(constraints: &[String]) -> Result<(), String> {
    constraint::parse_all(constraints)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Whether `node` satisfies `constraints` (which the API checked when the service was
/// made; one that does not parse matches nothing): the global orchestrator's test of
/// which nodes get a task.
pub fn constraints_match(constraints: &[String], node: &Node) -> bool {
    let info = NodeInfo::new(node);
    constraint::parse_all(constraints).is_ok_and(|all| all.iter().all(|c| c.matches(&info)))
}

pub struct Scheduler {
    /// Sorted by id, so that a node's index is its place in id order.
    nodes: Vec<NodeInfo>,
    by_id: HashMap<String, u32>,
    /// Service ids as small numbers, indexing `of_service`.
    services: HashMap<String, u32>,
    /// Per service: its live tasks on each node that has any.
    of_service: Vec<HashMap<u32, u32>>,
    /// Every task that holds a place, so that none counts twice and a place can be given
    /// back.
    holding: HashMap<String, Held>,
}

#[derive(Debug, Clone, Copy)]
struct Held {
    node: u32,
    service: u32,
    cpus: i64,
    memory: i64,
}

impl Scheduler {
    /// From every node and every task that holds a place: a live task
    /// (`Task::is_live`) with a node_id counts toward its node's total, its service's
    /// count on that node and the node's reserved resources. Tasks on unknown nodes and
    /// repeated task ids count once or not at all.
    pub fn new(nodes: &[Node], tasks: &[Task]) -> Self {
        let mut sorted: Vec<&Node> = nodes.iter().collect();
        sorted.sort_by(|a, b| a.id.cmp(&b.id));
        sorted.dedup_by(|a, b| a.id == b.id);
        let mut s = Scheduler {
            by_id: sorted
                .iter()
                .enumerate()
                .map(|(i, n)| (n.id.clone(), i as u32))
                .collect(),
            nodes: sorted.into_iter().map(NodeInfo::new).collect(),
            services: HashMap::new(),
            of_service: Vec::new(),
            holding: HashMap::with_capacity(tasks.len()),
        };
        for task in tasks {
            if task.node_id.is_empty() || !task.is_live() || s.holding.contains_key(&task.id) {
                continue;
            }
            // A task on a node that is gone holds nothing anywhere.
            if let Some(&node) = s.by_id.get(&task.node_id) {
                let service = s.service(&task.service_id);
                s.hold(task, node, service);
            }
        }
        s
    }

    /// Chooses a node for an unplaced task (node_id empty) and records the placement, so
    /// the next call sees it. Err: why no node fits, in Swarm's words, e.g. "no suitable
    /// node (scheduling constraints not satisfied on 3 nodes; insufficient resources on
    /// 1 node)". A task that already holds a place gets its node again; one with a
    /// node_id is checked there, as by [`Scheduler::check`].
    pub fn place(&mut self, task: &Task) -> Result<String, String> {
        self.place_all(std::slice::from_ref(task))
            .pop()
            .map_or_else(|| Err("no task to place".to_string()), |(_, r)| r)
    }

    /// Places many pending tasks of possibly many services at once: tasks of one
    /// service with the same placement and reservations are placed as a group, over
    /// one pass of the nodes. Returns, in the order given, each task's id with its node
    /// or why none fits. Tasks that come with a node_id are checked first, then groups
    /// are placed in the order their first task appears.
    pub fn place_all(&mut self, tasks: &[Task]) -> Vec<(String, Result<String, String>)> {
        let mut results: Vec<Option<Result<String, String>>> = vec![None; tasks.len()];
        // (first task, members); looked up by service and spec version, then compared,
        // since what filters read may differ even then (swarmkit trusts the version).
        let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
        let mut by_spec: HashMap<(&str, u64), Vec<usize>> = HashMap::new();
        for (i, task) in tasks.iter().enumerate() {
            if !task.node_id.is_empty() {
                results[i] = Some(
                    self.check(task, &task.node_id)
                        .map(|()| task.node_id.clone()),
                );
                continue;
            }
            if let Some(held) = self.holding.get(&task.id) {
                results[i] = Some(Ok(self.nodes[held.node as usize].id.clone()));
                continue;
            }
            if !task.is_live() {
                results[i] = Some(Err(not_live(task)));
                continue;
            }
            let candidates = by_spec
                .entry((task.service_id.as_str(), task.spec_version))
                .or_default();
            match candidates
                .iter()
                .find(|&&g| same_needs(&tasks[groups[g].0], task))
            {
                Some(&g) => groups[g].1.push(i),
                None => {
                    candidates.push(groups.len());
                    groups.push((i, vec![i]));
                }
            }
        }
        for (first, members) in &groups {
            self.place_group(&tasks[*first], members, tasks, &mut results);
        }
        tasks
            .iter()
            .zip(results)
            .map(|(t, r)| {
                let r = r.unwrap_or_else(|| Err("the scheduler skipped this task".to_string()));
                (t.id.clone(), r)
            })
            .collect()
    }

    /// For a task whose node is already chosen (global services): whether it may run
    /// there (same filters), recording it if so. Err, as swarmkit words it for a
    /// preassigned task, e.g. "scheduling constraints not satisfied on 1 node".
    pub fn check(&mut self, task: &Task, node_id: &str) -> Result<(), String> {
        let node = *self
            .by_id
            .get(node_id)
            .ok_or_else(|| format!("node {node_id} not found"))?;
        if let Some(held) = self.holding.get(&task.id) {
            return if held.node == node {
                Ok(())
            } else {
                let on = &self.nodes[held.node as usize].id;
                Err(format!(
                    "task {} already holds a place on node {on}",
                    task.id
                ))
            };
        }
        if !task.is_live() {
            return Err(not_live(task));
        }
        let needs = Requirements::new(task).map_err(|e| e.to_string())?;
        let service = self.service(&task.service_id);
        needs
            .check(&self.nodes[node as usize], self.count(service, node))
            .map_err(|r| r.explain(1))?;
        self.hold(task, node, service);
        Ok(())
    }

    /// Gives back the place a task holds, e.g. when the proposal that assigned it
    /// failed. Whether it held one.
    pub fn release(&mut self, task_id: &str) -> bool {
        let Some(held) = self.holding.remove(task_id) else {
            return false;
        };
        let node = &mut self.nodes[held.node as usize];
        node.tasks = node.tasks.saturating_sub(1);
        node.free_cpus = node.free_cpus.saturating_add(held.cpus);
        node.free_memory = node.free_memory.saturating_add(held.memory);
        let counts = &mut self.of_service[held.service as usize];
        if let Some(c) = counts.get_mut(&held.node) {
            *c -= 1;
            if *c == 0 {
                counts.remove(&held.node);
            }
        }
        true
    }

    /// Places a group of tasks that ask the same of nodes, over one tree.
    fn place_group(
        &mut self,
        first: &Task,
        members: &[usize],
        tasks: &[Task],
        results: &mut [Option<Result<String, String>>],
    ) {
        let needs = match Requirements::new(first) {
            Ok(needs) => needs,
            Err(e) => {
                for &i in members {
                    results[i] = Some(Err(e.to_string()));
                }
                return;
            }
        };
        let service = self.service(&first.service_id);
        let counts: Vec<u32> = (0..self.nodes.len() as u32)
            .map(|n| self.count(service, n))
            .collect();
        let keys: Vec<Option<NodeKey>> = self
            .nodes
            .iter()
            .zip(&counts)
            .enumerate()
            .map(|(n, (node, &c))| {
                needs
                    .check(node, c)
                    .ok()
                    .map(|()| (c, node.tasks, n as u32))
            })
            .collect();
        let labels = spread_labels(&first.spec.placement.preferences);
        let mut tree = Tree::build(&labels, &self.nodes, &counts, &keys);
        drop((counts, keys));
        let mut failure: Option<String> = None;
        for &i in members {
            let task = &tasks[i];
            // The same task twice in one batch holds one place.
            if let Some(held) = self.holding.get(&task.id) {
                results[i] = Some(Ok(self.nodes[held.node as usize].id.clone()));
                continue;
            }
            let picked = tree.pick(|n| {
                self.hold(task, n, service);
                let c = self.count(service, n);
                let node = &self.nodes[n as usize];
                needs.check(node, c).ok().map(|()| (c, node.tasks, n))
            });
            results[i] = Some(match picked {
                Some(n) => Ok(self.nodes[n as usize].id.clone()),
                None => Err(failure
                    .get_or_insert_with(|| self.no_suitable_node(&needs, service))
                    .clone()),
            });
        }
    }

    /// Why no node takes the task now: every node through the filters.
    fn no_suitable_node(&self, needs: &Requirements, service: u32) -> String {
        let mut failures = Failures::default();
        for (n, node) in self.nodes.iter().enumerate() {
            if let Err(refusal) = needs.check(node, self.count(service, n as u32)) {
                failures.add(refusal);
            }
        }
        failures.no_suitable_node()
    }

    fn service(&mut self, id: &str) -> u32 {
        if let Some(&s) = self.services.get(id) {
            return s;
        }
        let s = self.of_service.len() as u32;
        self.services.insert(id.to_string(), s);
        self.of_service.push(HashMap::new());
        s
    }

    fn count(&self, service: u32, node: u32) -> u32 {
        self.of_service[service as usize]
            .get(&node)
            .copied()
            .unwrap_or(0)
    }

    fn hold(&mut self, task: &Task, node: u32, service: u32) {
        let (cpus, memory) = reservations(task);
        let info = &mut self.nodes[node as usize];
        info.tasks += 1;
        info.free_cpus = info.free_cpus.saturating_sub(cpus);
        info.free_memory = info.free_memory.saturating_sub(memory);
        *self.of_service[service as usize].entry(node).or_insert(0) += 1;
        self.holding.insert(
            task.id.clone(),
            Held {
                node,
                service,
                cpus,
                memory,
            },
        );
    }
}

/// Whether two tasks of one service ask the same of every node.
fn same_needs(a: &Task, b: &Task) -> bool {
    a.spec.placement == b.spec.placement && reservations(a) == reservations(b)
}

fn not_live(task: &Task) -> String {
    format!(
        "task {} is not to run (desired state {}, state {}): nothing to place",
        task.id,
        task.desired_state.as_str(),
        task.status.state.as_str()
    )
}
