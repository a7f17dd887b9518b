//! `--metrics-addr` on a swarm of real daemons, a manager and a worker: what each node
//! serves parses with Prometheus' own OpenMetrics parser, is named by Prometheus'
//! conventions, and its figures move as a service's tasks start, restart and stop.

use std::time::Duration;

use covey_tests::prometheus::{metrics_addr, samples, scrape, value, Family};
use covey_tests::services::{sleepers, swarm_with, wait_running};
use covey_tests::swarm::{eventually, Swarm};

const PORT: u16 = 9323;

fn metrics(swarm: &Swarm, i: usize) -> Vec<Family> {
    let url = format!("http://{}:{PORT}/metrics", swarm.addr(i));
    scrape(&swarm.net, i, &url).unwrap_or_else(|e| panic!("node {i}'s metrics: {e:#}"))
}

/// Prometheus' naming conventions, beyond what its parser enforces (`_total` on
/// counters, a unit at the end of its family's name).
fn check_names(families: &[Family]) {
    assert!(!families.is_empty());
    for f in families {
        let name = &f.name;
        assert!(
            name.starts_with("covey_") || name.starts_with("process_"),
            "{name}: covey's own figures are covey_*, the process' process_*"
        );
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{name}: snake case"
        );
        for unit in ["seconds", "bytes"] {
            if name.ends_with(&format!("_{unit}")) {
                assert_eq!(f.unit, unit, "{name} declares its unit");
            }
        }
        assert!(
            !name.contains("milli") && !name.contains("kilo") && !name.contains("mega"),
            "{name}: base units"
        );
    }
}

fn sum(families: &[Family], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples(families, name, labels).map(|s| s.value).sum()
}

/// The figure `name{labels}` on node `i`, once `want` holds for it.
fn wait_value(swarm: &Swarm, i: usize, name: &str, labels: &[(&str, &str)], want: f64) {
    eventually(
        &format!("{name}{labels:?} = {want} on node {i}"),
        Duration::from_secs(60),
        || (value(&metrics(swarm, i), name, labels) == Some(want)).then_some(()),
    );
}

#[test]
fn metrics_parse_and_follow_tasks() {
    let (swarm, _registry, image) = swarm_with("metrics", 2, 2, metrics_addr(PORT));
    let (manager, worker) = (metrics(&swarm, 1), metrics(&swarm, 2));
    for families in [&manager, &worker] {
        check_names(families);
        for name in [
            "covey_node_cpus",
            "covey_node_memory_total_bytes",
            "covey_node_memory_available_bytes",
            "process_resident_memory_bytes",
            "process_cpu_seconds_total",
        ] {
            let v = value(families, name, &[]).unwrap_or_else(|| panic!("no {name}"));
            assert!(v > 0.0, "{name} = {v}");
        }
        assert!(
            sum(
                families,
                "covey_node_cpu_seconds_total",
                &[("mode", "idle")]
            ) > 0.0
        );
        assert!(sum(families, "covey_node_filesystem_available_bytes", &[]) > 0.0);
        assert_eq!(
            value(families, "covey_containers", &[("state", "running")]),
            Some(0.0)
        );
    }
    // The control plane: Raft on the manager only; QUIC from the worker to it.
    assert_eq!(value(&manager, "covey_raft_leader", &[]), Some(1.0));
    assert!(value(&manager, "covey_raft_term", &[]).unwrap_or(0.0) >= 1.0);
    assert!(value(&manager, "covey_raft_commit_index", &[]).unwrap_or(0.0) >= 1.0);
    assert!(value(&manager, "covey_raft_leader_changes_total", &[]).unwrap_or(0.0) >= 1.0);
    assert!(
        value(&manager, "covey_raft_proposal_duration_seconds_count", &[]).unwrap_or(0.0) >= 1.0
    );
    assert_eq!(
        sum(&manager, "covey_cluster_nodes", &[("state", "ready")]),
        2.0
    );
    assert!(samples(&worker, "covey_raft_term", &[]).next().is_none());
    let to_manager = format!("{}:2377", swarm.addr(1));
    assert!(value(&worker, "covey_quic_rtt_seconds", &[("peer", &to_manager)]).is_some());
    assert!(
        value(
            &worker,
            "covey_quic_sent_packets_total",
            &[("peer", &to_manager)]
        )
        .unwrap_or(0.0)
            > 0.0
    );
    assert!(value(
        &worker,
        "covey_quic_lost_packets_total",
        &[("peer", &to_manager)]
    )
    .is_some());

    // Tasks start: the service's figures, the containers, a cgroup figure per task.
    sleepers(&swarm, &image, "web", 4);
    wait_running(&swarm, "web", 4);
    wait_value(
        &swarm,
        1,
        "covey_service_tasks_running",
        &[("service", "web")],
        4.0,
    );
    let manager = metrics(&swarm, 1);
    assert_eq!(
        value(
            &manager,
            "covey_service_tasks_desired",
            &[("service", "web")]
        ),
        Some(4.0)
    );
    let both = [manager, metrics(&swarm, 2)];
    let running: f64 = both
        .iter()
        .map(|f| sum(f, "covey_containers", &[("state", "running")]))
        .sum();
    assert_eq!(running, 4.0, "4 task containers between the two nodes");
    let tasks: usize = both
        .iter()
        .map(|f| samples(f, "covey_task_cpu_seconds_total", &[("service", "web")]).count())
        .sum();
    assert_eq!(tasks, 4, "a CPU figure per running task");
    for f in &both {
        for s in samples(f, "covey_task_cpu_seconds_total", &[("service", "web")]) {
            assert!(s.labels["task"].starts_with("web."), "{s:?}");
        }
    }

    // A task that keeps failing is restarted, and the leader counts it.
    swarm.node(1).covey_ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "crash",
        "--restart-delay",
        "1s",
        &image,
        "sh",
        "-c",
        "sleep 1; exit 3",
    ]);
    eventually(
        "the crash service restarted",
        Duration::from_secs(60),
        || {
            let restarts = value(
                &metrics(&swarm, 1),
                "covey_service_task_restarts_total",
                &[("service", "crash")],
            );
            (restarts.unwrap_or(0.0) >= 1.0).then_some(())
        },
    );
    swarm.node(1).covey_ok(&["service", "rm", "crash"]);

    // Tasks stop: the figures follow down.
    swarm.node(1).covey_ok(&["service", "scale", "web=0"]);
    wait_value(
        &swarm,
        1,
        "covey_service_tasks_running",
        &[("service", "web")],
        0.0,
    );
    eventually(
        "no task containers running",
        Duration::from_secs(60),
        || {
            let both = [metrics(&swarm, 1), metrics(&swarm, 2)];
            let running: f64 = both
                .iter()
                .map(|f| sum(f, "covey_containers", &[("state", "running")]))
                .sum();
            let tasks = both
                .iter()
                .map(|f| samples(f, "covey_task_cpu_seconds_total", &[]).count())
                .sum::<usize>();
            (running == 0.0 && tasks == 0).then_some(())
        },
    );
    assert_eq!(
        value(
            &metrics(&swarm, 1),
            "covey_service_tasks_desired",
            &[("service", "web")]
        ),
        Some(0.0)
    );
}
