//! The filters a node must pass to take a task, in swarmkit's order, and how a failure
//! is explained. Tasks of one service and spec ask the same of every node, so what they
//! ask is worked out once (`Requirements`) and checked against each node.

use super::constraint::{self, Constraint, ConstraintError};
use super::node::NodeInfo;
use super::platform::Wanted;
use crate::manager::objects::Task;

/// Why a node cannot take a task: the first filter it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    NotAvailable = 0,
    Resources = 1,
    Constraints = 2,
    Platform = 3,
    MaxReplicas = 4,
}

const FILTERS: usize = 5;

impl Refusal {
    const ALL: [Refusal; FILTERS] = [
        Refusal::NotAvailable,
        Refusal::Resources,
        Refusal::Constraints,
        Refusal::Platform,
        Refusal::MaxReplicas,
    ];

    /// Swarm's words for this failure on `nodes` nodes, as `service ps` shows them.
    pub(super) fn explain(self, nodes: usize) -> String {
        let on = if nodes == 1 {
            "1 node".to_string()
        } else {
            format!("{nodes} nodes")
        };
        match self {
            Refusal::NotAvailable => format!("{on} not available for new tasks"),
            Refusal::Resources => format!("insufficient resources on {on}"),
            Refusal::Constraints => format!("scheduling constraints not satisfied on {on}"),
            Refusal::Platform => format!("unsupported platform on {on}"),
            // Swarm's wording, kept so that what users search for matches.
            Refusal::MaxReplicas => "max replicas per node limit exceed".to_string(),
        }
    }
}

/// How many nodes each filter turned away.
#[derive(Debug, Default)]
pub(super) struct Failures([usize; FILTERS]);

impl Failures {
    pub(super) fn add(&mut self, refusal: Refusal) {
        self.0[refusal as usize] += 1;
    }

    /// `no suitable node (…)`: the filters that failed, most nodes first, ties in
    /// filter order.
    pub(super) fn no_suitable_node(&self) -> String {
        let mut failed: Vec<(usize, Refusal)> = Refusal::ALL
            .iter()
            .map(|&r| (self.0[r as usize], r))
            .filter(|&(n, _)| n > 0)
            .collect();
        failed.sort_by_key(|&(n, _)| std::cmp::Reverse(n));
        if failed.is_empty() {
            return "no suitable node".to_string();
        }
        let why: Vec<String> = failed.iter().map(|&(n, r)| r.explain(n)).collect();
        format!("no suitable node ({})", why.join("; "))
    }
}

/// What a task asks of a node.
#[derive(Debug)]
pub(super) struct Requirements {
    cpus: i64,
    memory: i64,
    constraints: Vec<Constraint>,
    platforms: Vec<Wanted>,
    max_replicas: u64,
}

impl Requirements {
    pub(super) fn new(task: &Task) -> Result<Requirements, ConstraintError> {
        let (cpus, memory) = reservations(task);
        let placement = &task.spec.placement;
        Ok(Requirements {
            cpus,
            memory,
            constraints: constraint::parse_all(&placement.constraints)?,
            platforms: placement.platforms.iter().map(Wanted::new).collect(),
            max_replicas: placement.max_replicas,
        })
    }

    /// Whether `node`, which already runs `of_service` live tasks of the task's service,
    /// may take one more.
    pub(super) fn check(&self, node: &NodeInfo, of_service: u32) -> Result<(), Refusal> {
        if !node.open {
            return Err(Refusal::NotAvailable);
        }
        // As swarmkit, a task that reserves nothing fits even an overcommitted node.
        let reserves = self.cpus > 0 || self.memory > 0;
        if reserves && (self.cpus > node.free_cpus || self.memory > node.free_memory) {
            return Err(Refusal::Resources);
        }
        if !self.constraints.iter().all(|c| c.matches(node)) {
            return Err(Refusal::Constraints);
        }
        if !self.platforms.is_empty()
            && !self
                .platforms
                .iter()
                .any(|p| p.runs_on(&node.os, &node.arch))
        {
            return Err(Refusal::Platform);
        }
        if self.max_replicas > 0 && u64::from(of_service) >= self.max_replicas {
            return Err(Refusal::MaxReplicas);
        }
        Ok(())
    }
}

/// The CPU (nanoCPUs) and memory a task reserves; negative values count as none.
pub(super) fn reservations(task: &Task) -> (i64, i64) {
    task.spec
        .resources
        .reservations
        .as_ref()
        .map_or((0, 0), |r| (r.nano_cpus.max(0), r.memory_bytes.max(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explanations_sort_by_count_then_filter_order() {
        let mut f = Failures::default();
        assert_eq!(f.no_suitable_node(), "no suitable node");
        f.add(Refusal::Resources);
        f.add(Refusal::Constraints);
        f.add(Refusal::Constraints);
        f.add(Refusal::Constraints);
        assert_eq!(
            f.no_suitable_node(),
            "no suitable node (scheduling constraints not satisfied on 3 nodes; insufficient resources on 1 node)"
        );
        f.add(Refusal::NotAvailable);
        assert!(f
            .no_suitable_node()
            .ends_with("; 1 node not available for new tasks; insufficient resources on 1 node)"));
    }
}
