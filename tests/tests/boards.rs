//! A node's board: named (`--board pi4`) or detected (this x86_64 machine), reported as
//! the engine label `covey.board` in `node inspect` (covey's and the docker CLI's), its
//! reservation kept out of the node's resources, and matched by `engine.labels.*`
//! constraints.

use covey_tests::services::*;
use serde_json::Value;

/// Node `i` as the manager, node 1, shows it.
fn inspect(swarm: &covey_tests::swarm::Swarm, i: usize) -> Value {
    let id = swarm.id_of(1, i).expect("the node's id");
    let out = swarm.node(1).covey_ok(&["node", "inspect", &id]);
    let all: Value = serde_json::from_str(&out).expect("node inspect's JSON");
    all[0].clone()
}

fn node_id(node: &Value) -> String {
    node["ID"].as_str().expect("an ID").to_string()
}

#[test]
fn the_board_is_an_engine_label_the_scheduler_matches() {
    let (swarm, _registry, image) = swarm_with("boards", 2, 2, |i| match i {
        1 => ["--board", "pi4", "--label", "zone=east"]
            .map(String::from)
            .to_vec(),
        _ => Vec::new(),
    });
    let pi = inspect(&swarm, 1);
    let labels = &pi["Description"]["Engine"]["Labels"];
    assert_eq!(labels["covey.board"], "pi4", "{pi:#}");
    assert_eq!(labels["zone"], "east", "{pi:#}");
    // The machine has whole CPUs: a quarter of one is pi4's reservation.
    let cpus = pi["Description"]["Resources"]["NanoCPUs"]
        .as_i64()
        .expect("NanoCPUs");
    assert_eq!(cpus % 1_000_000_000, 750_000_000, "{pi:#}");
    // The other node found its board itself: no device tree, an x86_64 CPU.
    let other = inspect(&swarm, 2);
    if std::env::consts::ARCH == "x86_64" {
        assert_eq!(
            other["Description"]["Engine"]["Labels"]["covey.board"], "x86-64",
            "{other:#}"
        );
    }
    let pretty = swarm
        .node(1)
        .covey_ok(&["node", "inspect", "--pretty", "self"]);
    assert!(
        pretty.contains("Engine Labels:\n - covey.board=pi4\n - zone=east\n"),
        "{pretty}"
    );
    let docker = swarm
        .node(1)
        .docker_ok(&["node", "inspect", "--pretty", "self"]);
    assert!(docker.contains("covey.board=pi4"), "{docker}");

    let (pi_id, other_id) = (node_id(&pi), node_id(&other));
    swarm.node(1).covey_ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "onpi",
        "--replicas",
        "3",
        "--constraint",
        "engine.labels.covey.board==pi4",
        &image,
        "sleep",
        "1d",
    ]);
    swarm.node(1).covey_ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "offeast",
        "--replicas",
        "2",
        "--constraint",
        "engine.labels.zone!=east",
        &image,
        "sleep",
        "1d",
    ]);
    let onpi = wait_running(&swarm, "onpi", 3);
    assert_eq!(onpi.keys().collect::<Vec<_>>(), [&pi_id], "{onpi:?}");
    let offeast = wait_running(&swarm, "offeast", 2);
    assert_eq!(
        offeast.keys().collect::<Vec<_>>(),
        [&other_id],
        "{offeast:?}"
    );
}
