use std::collections::{BTreeMap, HashMap};

use super::*;
use crate::manager::ca::Role;
use crate::manager::objects::service::{PlacementPreference, Platform, Reservations, SpreadOver};
use crate::manager::objects::{Availability, NodeState, TaskState, TaskStatus};
use crate::manager::store::Meta;

const GIB: i64 = 1 << 30;
const CPU: i64 = 1_000_000_000;

fn node(id: &str) -> Node {
    Node::for_tests(id)
}

fn labelled(id: &str, labels: &[(&str, &str)]) -> Node {
    let mut n = node(id);
    n.spec.labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    n
}

fn task(id: &str, service: &str) -> Task {
    Task {
        id: id.into(),
        meta: Meta::default(),
        service_id: service.into(),
        slot: 1,
        node_id: String::new(),
        spec_version: 1,
        spec: Default::default(),
        service_name: service.into(),
        job: false,
        desired_state: TaskState::Running,
        status: TaskStatus {
            state: TaskState::Pending,
            ..Default::default()
        },
        networks: Vec::new(),
        endpoint: Default::default(),
        configs: Vec::new(),
        secrets: Vec::new(),
    }
}

fn tasks(service: &str, n: usize, edit: impl Fn(&mut Task)) -> Vec<Task> {
    (0..n)
        .map(|i| {
            let mut t = task(&format!("{service}-{i}"), service);
            t.slot = i as u64 + 1;
            edit(&mut t);
            t
        })
        .collect()
}

fn constrained(constraints: &[&str]) -> impl Fn(&mut Task) {
    let constraints: Vec<String> = constraints.iter().map(|c| c.to_string()).collect();
    move |t| t.spec.placement.constraints = constraints.clone()
}

fn reserving(cpus: i64, memory: i64) -> impl Fn(&mut Task) {
    move |t| {
        t.spec.resources.reservations = Some(Reservations {
            nano_cpus: cpus,
            memory_bytes: memory,
        })
    }
}

fn spread(labels: &[&str]) -> impl Fn(&mut Task) {
    let preferences: Vec<PlacementPreference> = labels
        .iter()
        .map(|l| PlacementPreference {
            spread: Some(SpreadOver {
                spread_descriptor: format!("node.labels.{l}"),
            }),
        })
        .collect();
    move |t| t.spec.placement.preferences = preferences.clone()
}

/// How many of the results landed on each node; panics on a refusal.
fn per_node(results: &[(String, Result<String, String>)]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for (id, r) in results {
        match r {
            Ok(n) => *counts.entry(n.clone()).or_insert(0) += 1,
            Err(e) => panic!("{id} not placed: {e}"),
        }
    }
    counts
}

fn errors(results: &[(String, Result<String, String>)]) -> Vec<String> {
    results
        .iter()
        .filter_map(|(_, r)| r.clone().err())
        .collect()
}

#[test]
fn spreads_replicas_evenly_over_three_nodes() {
    let mut s = Scheduler::new(&[node("a"), node("b"), node("c")], &[]);
    let placed = per_node(&s.place_all(&tasks("web", 7, |_| {})));
    let mut got: Vec<usize> = placed.values().copied().collect();
    got.sort();
    assert_eq!(got, vec![2, 2, 3]);
    // The next one goes to one of the two nodes holding 2.
    let next = s.place(&task("web-7", "web")).expect("placed");
    assert_ne!(placed[&next], 3);
}

#[test]
fn fewest_of_the_service_first_then_fewest_in_all() {
    let mut running = task("old-db", "db");
    running.node_id = "a".into();
    running.status.state = TaskState::Running;
    let mut old_web = task("old-web", "web");
    old_web.node_id = "b".into();
    // A finished task holds nothing.
    let mut done = task("done", "web");
    done.node_id = "c".into();
    done.status.state = TaskState::Complete;
    let mut s = Scheduler::new(
        &[node("a"), node("b"), node("c")],
        &[running, old_web, done],
    );
    // a: 1 db; b: 1 web; c: none. A web task avoids b; between a and c, c is emptier.
    assert_eq!(s.place(&task("w1", "web")), Ok("c".into()));
    // Web tasks: a 0, b 1, c 1: a.
    assert_eq!(s.place(&task("w2", "web")), Ok("a".into()));
    // All hold one web task; a, b and c hold 2, 1, 1 in all: b, the lower id of the two.
    assert_eq!(s.place(&task("w3", "web")), Ok("b".into()));
}

#[test]
fn constraints_on_labels_role_hostname_and_arch() {
    let mut manager = labelled("m1", &[("zone", "East")]);
    manager.role = Role::Manager;
    let mut arm = labelled("pi", &[("zone", "west")]);
    arm.description.architecture = "aarch64".into();
    let mut armv7 = node("pi7");
    armv7.description.architecture = "armv7l".into();
    let nodes = [manager, arm, armv7, labelled("w1", &[("zone", "east")])];
    let mut s = Scheduler::new(&nodes, &[]);
    let mut on = |c: &[&str]| -> BTreeMap<String, usize> {
        let batch = tasks(&format!("svc{}", c.join(",")), 4, constrained(c));
        per_node(&s.place_all(&batch))
    };
    // Label values compare case-insensitively; label names do not.
    let east = on(&["node.labels.zone==east"]);
    assert_eq!(east.keys().collect::<Vec<_>>(), ["m1", "w1"]);
    assert_eq!(
        on(&["node.role==manager"]).keys().collect::<Vec<_>>(),
        ["m1"]
    );
    assert_eq!(
        on(&[" node.role != manager ", "node.labels.zone!=west"])
            .keys()
            .collect::<Vec<_>>(),
        ["pi7", "w1"]
    );
    assert_eq!(
        on(&["node.hostname==HOST-pi"]).keys().collect::<Vec<_>>(),
        ["pi"]
    );
    assert_eq!(on(&["node.id==w1"]).keys().collect::<Vec<_>>(), ["w1"]);
    // Nodes report uname's names, users write either.
    assert_eq!(
        on(&["node.platform.arch==amd64"])
            .keys()
            .collect::<Vec<_>>(),
        ["m1", "w1"]
    );
    assert_eq!(
        on(&["node.platform.arch==x86_64"])
            .keys()
            .collect::<Vec<_>>(),
        ["m1", "w1"]
    );
    assert_eq!(
        on(&["node.platform.arch==arm64"])
            .keys()
            .collect::<Vec<_>>(),
        ["pi"]
    );
    assert_eq!(
        on(&["node.platform.arch==arm"]).keys().collect::<Vec<_>>(),
        ["pi7"]
    );
    assert_eq!(
        on(&["node.platform.os==Linux", "node.platform.arch!=x86_64"])
            .keys()
            .collect::<Vec<_>>(),
        ["pi", "pi7"]
    );
}

#[test]
fn label_names_are_case_sensitive_and_missing_labels_fail_equality() {
    let nodes = [labelled("a", &[("zone", "east")]), node("b")];
    let mut s = Scheduler::new(&nodes, &[]);
    let r = s.place(&tasks("x", 1, constrained(&["node.labels.Zone==east"]))[0]);
    assert_eq!(
        r,
        Err("no suitable node (scheduling constraints not satisfied on 2 nodes)".into())
    );
    // b has no zone label at all: != holds there.
    let r = s.place(&tasks("y", 1, constrained(&["node.labels.zone!=east"]))[0]);
    assert_eq!(r, Ok("b".into()));
}

#[test]
fn engine_labels_name_the_board() {
    let mut pi = node("pi");
    pi.description
        .engine_labels
        .insert("covey.board".into(), "pi4".into());
    let nodes = [pi, node("box")];
    let mut s = Scheduler::new(&nodes, &[]);
    let placed = tasks("x", 3, constrained(&["engine.labels.covey.board==PI4"]));
    for t in &placed {
        assert_eq!(s.place(t), Ok("pi".into()));
    }
    let r = s.place(&tasks("y", 1, constrained(&["engine.labels.covey.board!=pi4"]))[0]);
    assert_eq!(r, Ok("box".into()));
    // node.labels are not engine labels.
    let r = s.place(&tasks("z", 1, constrained(&["node.labels.covey.board==pi4"]))[0]);
    assert!(r.is_err(), "{r:?}");
}

#[test]
fn drained_paused_and_down_nodes_take_nothing() {
    let mut drained = node("a");
    drained.spec.availability = Availability::Drain;
    let mut paused = node("b");
    paused.spec.availability = Availability::Pause;
    let mut down = node("c");
    down.status.state = NodeState::Down;
    let mut s = Scheduler::new(&[drained, paused, down.clone()], &[]);
    assert_eq!(
        s.place(&task("t", "web")),
        Err("no suitable node (3 nodes not available for new tasks)".into())
    );
    let mut s = Scheduler::new(&[down, node("d")], &[]);
    assert_eq!(per_node(&s.place_all(&tasks("web", 3, |_| {})))["d"], 3);
    let mut s = Scheduler::new(&[], &[]);
    assert_eq!(s.place(&task("t", "web")), Err("no suitable node".into()));
}

#[test]
fn resources_run_out_and_say_so() {
    let mut big = labelled("big", &[("tier", "gold")]);
    big.description.nano_cpus = 2 * CPU;
    let others: Vec<Node> = ["x", "y", "z"].iter().map(|id| node(id)).collect();
    let mut nodes = others;
    nodes.push(big);
    // A live task already reserves half a CPU on big.
    let mut holding = tasks("old", 1, reserving(CPU / 2, 0)).remove(0);
    holding.node_id = "big".into();
    holding.status.state = TaskState::Running;
    let mut s = Scheduler::new(&nodes, &[holding]);
    let gold = tasks("gold", 4, |t: &mut Task| {
        constrained(&["node.labels.tier==gold"])(t);
        reserving(CPU / 2, GIB)(t);
    });
    // 1.5 CPUs left: three take half a CPU each, the fourth finds no room.
    let results = s.place_all(&gold[..3]);
    assert!(results.iter().all(|(_, r)| r.as_deref() == Ok("big")));
    let more = s.place(&gold[3]);
    assert_eq!(
        more,
        Err("no suitable node (scheduling constraints not satisfied on 3 nodes; insufficient resources on 1 node)".into())
    );
    // Memory counts too, and a task reserving nothing still fits.
    let mut s = Scheduler::new(&[node("m")], &[]);
    let hungry = s.place_all(&tasks("hungry", 3, reserving(0, 3 * GIB)));
    assert_eq!(
        errors(&hungry),
        ["no suitable node (insufficient resources on 1 node)"]
    );
    assert_eq!(s.place(&task("light", "light")), Ok("m".into()));
    // Giving back a place frees what it reserved.
    assert!(s.release("hungry-0"));
    assert!(!s.release("hungry-0"));
    assert_eq!(
        s.place(&tasks("hungry", 3, reserving(0, 3 * GIB))[2]),
        Ok("m".into())
    );
}

#[test]
fn max_replicas_per_node() {
    let mut s = Scheduler::new(&[node("a"), node("b")], &[]);
    let capped = |t: &mut Task| t.spec.placement.max_replicas = 2;
    let results = s.place_all(&tasks("web", 5, capped));
    assert_eq!(results.iter().filter(|(_, r)| r.is_ok()).count(), 4);
    assert_eq!(
        errors(&results),
        ["no suitable node (max replicas per node limit exceed)"]
    );
    // Another service is not limited by web's tasks.
    assert!(s.place(&tasks("api", 1, capped)[0]).is_ok());
}

#[test]
fn platforms_of_the_image() {
    let mut pi = node("pi");
    pi.description.architecture = "aarch64".into();
    let mut s = Scheduler::new(&[node("pc"), pi], &[]);
    let arm64_only = |t: &mut Task| {
        t.spec.placement.platforms = vec![Platform {
            architecture: "arm64".into(),
            os: "linux".into(),
        }]
    };
    assert_eq!(
        per_node(&s.place_all(&tasks("a", 3, arm64_only))),
        BTreeMap::from([("pi".to_string(), 3)])
    );
    let windows = |t: &mut Task| {
        t.spec.placement.platforms = vec![Platform {
            architecture: "amd64".into(),
            os: "windows".into(),
        }]
    };
    assert_eq!(
        s.place(&tasks("w", 1, windows)[0]),
        Err("no suitable node (unsupported platform on 2 nodes)".into())
    );
}

#[test]
fn spread_over_zones_with_uneven_node_counts() {
    let nodes = [
        labelled("a1", &[("zone", "a")]),
        labelled("b1", &[("zone", "b")]),
        labelled("b2", &[("zone", "b")]),
        labelled("b3", &[("zone", "b")]),
    ];
    let mut s = Scheduler::new(&nodes, &[]);
    let placed = per_node(&s.place_all(&tasks("web", 4, spread(&["zone"]))));
    assert_eq!(placed["a1"], 2);
    assert_eq!(placed.values().sum::<usize>(), 4);
    // Without the preference the lone node in a gets a quarter.
    let mut s = Scheduler::new(&nodes, &[]);
    assert_eq!(per_node(&s.place_all(&tasks("web", 4, |_| {})))["a1"], 1);
}

#[test]
fn spread_counts_running_tasks_and_gives_unlabelled_nodes_their_own_branch() {
    let nodes = [
        labelled("a1", &[("zone", "a")]),
        labelled("a2", &[("zone", "a")]),
        labelled("b1", &[("zone", "b")]),
        node("n1"),
        node("n2"),
    ];
    // Zone a already runs 2 web tasks.
    let running: Vec<Task> = ["a1", "a2"]
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut t = task(&format!("old{i}"), "web");
            t.node_id = n.to_string();
            t.status.state = TaskState::Running;
            t
        })
        .collect();
    let mut s = Scheduler::new(&nodes, &running);
    let placed = per_node(&s.place_all(&tasks("web", 4, spread(&["zone"]))));
    // 6 in all over three branches (a, b, unlabelled): 2 each.
    assert_eq!(
        placed.get("a1").copied().unwrap_or(0) + placed.get("a2").copied().unwrap_or(0),
        0
    );
    assert_eq!(placed["b1"], 2);
    assert_eq!(placed["n1"] + placed["n2"], 2);
}

#[test]
fn nested_spread_and_full_branches() {
    let nodes = [
        labelled("a-r1", &[("zone", "a"), ("rack", "1")]),
        labelled("a-r2", &[("zone", "a"), ("rack", "2")]),
        labelled("b-r1", &[("zone", "b"), ("rack", "1")]),
        labelled("b-r1b", &[("zone", "b"), ("rack", "1")]),
    ];
    let mut s = Scheduler::new(&nodes, &[]);
    let placed = per_node(&s.place_all(&tasks("web", 8, spread(&["zone", "rack"]))));
    // 4 per zone; zone a splits 2/2 over its racks, zone b's single rack takes all 4.
    assert_eq!(placed["a-r1"], 2);
    assert_eq!(placed["a-r2"], 2);
    assert_eq!(placed["b-r1"] + placed["b-r1b"], 4);
    // When a zone fills up (here at 2 per node), the rest goes to the others.
    let nodes = [
        labelled("a1", &[("zone", "a")]),
        labelled("b1", &[("zone", "b")]),
        labelled("b2", &[("zone", "b")]),
        labelled("b3", &[("zone", "b")]),
    ];
    let mut s = Scheduler::new(&nodes, &[]);
    let results = s.place_all(&tasks("api", 9, |t: &mut Task| {
        spread(&["zone"])(t);
        t.spec.placement.max_replicas = 2;
    }));
    let placed = per_node(&results[..8]);
    assert_eq!(placed["a1"], 2);
    assert_eq!(placed["b1"] + placed["b2"] + placed["b3"], 6);
    assert_eq!(
        results[8].1,
        Err("no suitable node (max replicas per node limit exceed)".into())
    );
}

#[test]
fn global_tasks_are_checked_on_their_node() {
    let mut drained = node("d");
    drained.spec.availability = Availability::Drain;
    let nodes = [
        node("a"),
        labelled("b", &[("gpu", "yes")]),
        node("c"),
        drained,
    ];
    let mut s = Scheduler::new(&nodes, &[]);
    let mut global = |node: &str, constraints: &[&str]| {
        let mut t = task(&format!("g.{node}.{}", constraints.len()), "global");
        t.slot = 0;
        t.node_id = node.into();
        t.spec.placement.constraints = constraints.iter().map(|c| c.to_string()).collect();
        t.spec.placement.max_replicas = 1;
        s.check(&t, node)
    };
    assert_eq!(global("a", &[]), Ok(()));
    assert_eq!(
        global("a", &[]),
        Ok(()),
        "the same task again holds one place"
    );
    assert_eq!(
        global("d", &[]),
        Err("1 node not available for new tasks".into())
    );
    assert_eq!(
        global("a", &["node.labels.gpu==yes"]),
        Err("scheduling constraints not satisfied on 1 node".into())
    );
    assert_eq!(global("b", &["node.labels.gpu==yes"]), Ok(()));
    // The check recorded its task: a second one of the service is over the limit.
    assert_eq!(
        global("b", &["node.labels.gpu==yes", "node.id==b"]),
        Err("max replicas per node limit exceed".into())
    );
    assert_eq!(global("zz", &[]), Err("node zz not found".into()));
    // Recorded global tasks count towards the nodes' totals: c, the only one without
    // a task, wins.
    assert_eq!(s.place(&task("r", "other")), Ok("c".into()));
    // place_all checks tasks that come with a node.
    let mut preset = task("g.c", "global");
    preset.node_id = "c".into();
    let mut bad = task("g.d", "global");
    bad.node_id = "d".into();
    let results = s.place_all(&[preset, bad]);
    assert_eq!(results[0].1, Ok("c".into()));
    assert_eq!(
        results[1].1,
        Err("1 node not available for new tasks".into())
    );
}

/// A mixed cluster and a batch of several services, some of which run out of room.
fn fleet() -> (Vec<Node>, Vec<Task>) {
    let nodes: Vec<Node> = (0..12)
        .map(|i| {
            let zone = ["a", "b", "b", "c"][i % 4];
            let mut n = labelled(&format!("n{i:02}"), &[("zone", zone)]);
            if i % 3 == 0 {
                n.description.architecture = "aarch64".into();
            }
            n
        })
        .collect();
    let mut batch = tasks("spread", 30, spread(&["zone"]));
    batch.extend(tasks(
        "arm",
        10,
        constrained(&["node.platform.arch==arm64"]),
    ));
    batch.extend(tasks("big", 40, reserving(CPU, 0)));
    batch.extend(tasks("capped", 30, |t: &mut Task| {
        t.spec.placement.max_replicas = 2
    }));
    (nodes, batch)
}

#[test]
fn place_all_decides_as_repeated_place() {
    let (nodes, batch) = fleet();
    let mut together = Scheduler::new(&nodes, &[]);
    let all = together.place_all(&batch);
    let mut one_by_one = Scheduler::new(&nodes, &[]);
    let each: Vec<_> = batch
        .iter()
        .map(|t| (t.id.clone(), one_by_one.place(t)))
        .collect();
    assert_eq!(all, each);
    // 12 nodes of 4 CPUs hold 48 one-CPU tasks but other services came first: all 40 fit;
    // capped holds at most 24.
    assert_eq!(errors(&all).len(), 6);
    assert!(errors(&all)
        .iter()
        .all(|e| e == "no suitable node (max replicas per node limit exceed)"));

    // Interleaved, the outcome per service is the same even if ties break differently.
    let mut mixed = batch.clone();
    mixed.sort_by_key(|t| t.slot);
    let mut one_by_one = Scheduler::new(&nodes, &[]);
    let outcome = |results: Vec<(String, Result<String, String>)>| {
        let mut by_service: HashMap<String, (usize, usize)> = HashMap::new();
        for (id, r) in results {
            let service = id.split('-').next().unwrap_or_default().to_string();
            let e = by_service.entry(service).or_default();
            if r.is_ok() {
                e.0 += 1
            } else {
                e.1 += 1
            }
        }
        by_service
    };
    let each = mixed
        .iter()
        .map(|t| (t.id.clone(), one_by_one.place(t)))
        .collect();
    assert_eq!(outcome(all), outcome(each));
}

#[test]
fn bad_constraints_are_refused_by_name() {
    assert_eq!(
        validate_constraints(&["node.role==worker".into(), "node.labels.zone=east".into()]),
        Err(r#"invalid constraint "node.labels.zone=east": expected == or !="#.into())
    );
    assert_eq!(
        validate_constraints(&[" node.labels.zone == east ".into(), "NODE.ID!=x".into()]),
        Ok(())
    );
    // One stored anyway fails its tasks with the same words.
    let mut s = Scheduler::new(&[node("a")], &[]);
    let r = s.place(&tasks("x", 1, constrained(&["node.zone==a"]))[0]);
    assert_eq!(
        r.expect_err("refused"),
        r#"invalid constraint "node.zone==a": unknown key "node.zone": expected node.id, node.hostname, node.role, node.platform.os, node.platform.arch, node.labels.<name> or engine.labels.<name>"#
    );
}

#[test]
fn tasks_not_meant_to_run_are_not_placed() {
    let mut s = Scheduler::new(&[node("a")], &[]);
    let mut t = task("t", "web");
    t.desired_state = TaskState::Shutdown;
    let e = s.place(&t).expect_err("refused");
    assert!(e.contains("desired state shutdown"), "{e}");
    assert_eq!(s.place(&task("u", "web")), Ok("a".into()));
    // A task placed once gets the same answer, holding one place.
    assert_eq!(s.place(&task("u", "web")), Ok("a".into()));
    assert_eq!(s.nodes[0].tasks, 1);
}
