//! The decision tree for one group of identical tasks, after swarmkit's: each level is a
//! placement preference (`spread: node.labels.zone`), each branch one value of that label
//! (nodes without it form the branch ""), and each leaf holds the nodes that passed the
//! filters, best first.
//!
//! Swarmkit splits a batch among branches by arithmetic and retries when a branch has
//! no room. Here tasks go one at a time to the branch holding the fewest tasks of the
//! service at every level, which evens branches out in the same way and finds a full
//! branch simply by its leaf running out of nodes. Each pick costs O(depth × log fan-out
//! + log nodes).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::node::NodeInfo;

const NODE_LABELS: &str = "node.labels.";

/// How good a node is for the next task, smallest best: fewest live tasks of the
/// service, then fewest live tasks in all, then its place in node id order.
pub(super) type NodeKey = (u32, u32, u32);

/// The label names to spread over, outermost first. Descriptors other than
/// `node.labels.<name>` are skipped, as swarmkit does.
pub(super) fn spread_labels(
    prefs: &[crate::manager::objects::service::PlacementPreference],
) -> Vec<String> {
    prefs
        .iter()
        .filter_map(|p| p.spread.as_ref())
        .filter_map(|s| {
            let d = s.spread_descriptor.trim();
            let prefix = d.get(..NODE_LABELS.len())?;
            (prefix.eq_ignore_ascii_case(NODE_LABELS) && d.len() > NODE_LABELS.len())
                .then(|| d[NODE_LABELS.len()..].to_string())
        })
        .collect()
}

enum Branch {
    /// Children by (tasks of the service below, order of the label value, child).
    Inner(BinaryHeap<Reverse<(u64, u32, u32)>>),
    Leaf(BinaryHeap<Reverse<NodeKey>>),
}

pub(super) struct Tree {
    branches: Vec<Branch>,
}

struct Building<'a> {
    value: &'a str,
    depth: usize,
    tasks: u64,
    children: Vec<u32>,
    nodes: Vec<Reverse<NodeKey>>,
}

impl Tree {
    /// `of_service[i]` is how many live tasks of the service node `i` runs; `key[i]` is
    /// node `i`'s key if it passed the filters. Every node counts towards its branch's
    /// tasks, eligible or not, so a branch is judged by what already runs there.
    pub(super) fn build(
        labels: &[String],
        nodes: &[NodeInfo],
        of_service: &[u32],
        keys: &[Option<NodeKey>],
    ) -> Tree {
        let mut building = vec![Building {
            value: "",
            depth: 0,
            tasks: 0,
            children: Vec::new(),
            nodes: Vec::new(),
        }];
        let mut index: HashMap<(u32, &str), u32> = HashMap::new();
        for (i, node) in nodes.iter().enumerate() {
            let tasks = u64::from(of_service[i]);
            let mut at = 0u32;
            building[0].tasks += tasks;
            for (depth, label) in labels.iter().enumerate() {
                let value = node.labels.get(label).map_or("", String::as_str);
                let next = *index.entry((at, value)).or_insert_with(|| {
                    let id = building.len() as u32;
                    building.push(Building {
                        value,
                        depth: depth + 1,
                        tasks: 0,
                        children: Vec::new(),
                        nodes: Vec::new(),
                    });
                    building[at as usize].children.push(id);
                    id
                });
                at = next;
                building[at as usize].tasks += tasks;
            }
            if let Some(key) = keys[i] {
                building[at as usize].nodes.push(Reverse(key));
            }
        }
        // Children always come after their parent, so going backwards every child is
        // finished (and known to be empty or not) before its parent.
        let mut branches: Vec<Option<Branch>> = Vec::with_capacity(building.len());
        branches.resize_with(building.len(), || None);
        let mut live = vec![false; building.len()];
        for b in (0..building.len()).rev() {
            let branch = if building[b].depth == labels.len() {
                let nodes = std::mem::take(&mut building[b].nodes);
                live[b] = !nodes.is_empty();
                Branch::Leaf(BinaryHeap::from(nodes))
            } else {
                let mut children = std::mem::take(&mut building[b].children);
                // Equal counts go to label values in order: deterministic placements.
                children
                    .sort_by(|&x, &y| building[x as usize].value.cmp(building[y as usize].value));
                let heap = children
                    .iter()
                    .enumerate()
                    .filter(|&(_, &c)| live[c as usize])
                    .map(|(order, &c)| Reverse((building[c as usize].tasks, order as u32, c)))
                    .collect::<BinaryHeap<_>>();
                live[b] = !heap.is_empty();
                Branch::Inner(heap)
            };
            branches[b] = Some(branch);
        }
        Tree {
            branches: branches.into_iter().flatten().collect(),
        }
    }

    /// Takes the best node for the next task: down the emptiest branch at each level,
    /// then the leaf's best node. `place` records the task there and gives the node's
    /// new key if it can take yet another, `None` if a filter now refuses it (resources,
    /// max replicas). `None` if no node is left.
    pub(super) fn pick(&mut self, place: impl FnOnce(u32) -> Option<NodeKey>) -> Option<u32> {
        let mut path = Vec::new();
        let mut at = 0usize;
        while let Branch::Inner(heap) = &self.branches[at] {
            let Reverse((_, _, child)) = *heap.peek()?;
            path.push(at);
            at = child as usize;
        }
        let Branch::Leaf(heap) = &mut self.branches[at] else {
            return None;
        };
        let Reverse((_, _, node)) = heap.pop()?;
        if let Some(key) = place(node) {
            heap.push(Reverse(key));
        }
        let mut emptied = heap.is_empty();
        // Each branch on the path took the task: count it, and drop the child that ran
        // out of nodes.
        for &b in path.iter().rev() {
            if let Branch::Inner(heap) = &mut self.branches[b] {
                if let Some(Reverse((tasks, order, child))) = heap.pop() {
                    if !emptied {
                        heap.push(Reverse((tasks + 1, order, child)));
                    }
                }
                emptied = heap.is_empty();
            }
        }
        Some(node)
    }
}
