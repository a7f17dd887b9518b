//! Services on a swarm of real daemons, each node in its own network namespace, pulling
//! busybox from a registry on the network's switch and running real containers.

use std::time::Duration;

use covey_tests::services::*;
use covey_tests::stderr;
use covey_tests::swarm::{eventually, Swarm};
use serde_json::Value;

/// A running container's pid on node `i` ("0" when it is not running).
fn node_id(swarm: &Swarm, i: usize) -> String {
    swarm.id_of(1, i).expect("node id")
}

#[test]
fn replicated_services_spread_scale_restart_and_go() {
    let (swarm, _registry, image) = swarm("svcrep", 3);
    let out = sleepers(&swarm, &image, "web", 3);
    assert!(out.contains("converged"), "{out}");
    let spread = wait_running(&swarm, "web", 3);
    assert_eq!(spread.len(), 3, "3 replicas on 3 nodes: {spread:?}");

    let ls = swarm.node(1).covey_ok(&["service", "ls"]);
    let row = ls.lines().find(|l| l.contains(" web ")).unwrap_or_default();
    assert!(row.contains("replicated") && row.contains("3/3"), "{ls}");

    // The docker CLI's task listings: whole IDs with --no-trunc, and one node's tasks.
    let docker = |args: &[&str]| {
        let out = swarm.node(1).docker(args);
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let ps = docker(&["service", "ps", "--no-trunc", "web"]);
    for task in tasks(&swarm, "web") {
        let id = task["ID"].as_str().expect("a task id");
        assert!(id.len() == 25 && ps.contains(id), "{id} in {ps}");
    }
    let worker = node_id(&swarm, 2);
    let on_worker = docker(&[
        "node",
        "ps",
        "--format",
        "{{.Name}} {{.CurrentState}}",
        &worker,
    ]);
    assert!(
        on_worker.lines().count() == 1
            && on_worker.starts_with("web.")
            && on_worker.contains("Running"),
        "{on_worker}"
    );
    let on_manager = docker(&["node", "ps", "--format", "{{.Name}}"]);
    assert_eq!(on_manager.lines().count(), 1, "{on_manager}");
    let covey_ps = swarm.node(1).covey_ok(&["node", "ps", &worker]);
    assert!(
        covey_ps.lines().count() == 2
            && covey_ps.lines().nth(1).is_some_and(|l| l.contains(" web.")),
        "{covey_ps}"
    );
    let covey_json: Vec<Value> = serde_json::from_str(
        &swarm
            .node(1)
            .covey_ok(&["node", "ps", "--format", "json", "self"]),
    )
    .expect("covey node ps --format json");
    assert_eq!(covey_json.len(), 1, "{covey_json:?}");
    assert!(swarm
        .node(1)
        .covey_err(&["node", "ps", "nowhere"])
        .contains("nowhere"));

    swarm.node(1).covey_ok(&["service", "scale", "-d", "web=5"]);
    let spread = wait_running(&swarm, "web", 5);
    assert!(
        spread.values().all(|n| *n <= 2),
        "5 over 3 nodes: {spread:?}"
    );
    swarm.node(1).covey_ok(&["service", "scale", "-d", "web=2"]);
    wait_running(&swarm, "web", 2);
    eventually(
        "scaled-down containers gone",
        Duration::from_secs(30),
        || {
            let n: usize = (1..=3).map(|i| containers_on(&swarm, i, "web").len()).sum();
            (n == 2).then_some(())
        },
    );

    // A spec change replaces the tasks, one at a time, and waits for them.
    let out = swarm
        .node(1)
        .covey_ok(&["service", "update", "--env-add", "COLOUR=blue", "web"]);
    assert!(out.contains("converged"), "{out}");
    let renewed = tasks(&swarm, "web")
        .into_iter()
        .filter(|t| t["DesiredState"] == "running" && t["Status"]["State"] == "running")
        .filter(|t| t["Spec"]["ContainerSpec"]["Env"][0] == "COLOUR=blue")
        .count();
    assert_eq!(renewed, 2);
    eventually(
        "the old tasks' containers gone",
        Duration::from_secs(30),
        || {
            let n: usize = (1..=3).map(|i| containers_on(&swarm, i, "web").len()).sum();
            (n == 2).then_some(())
        },
    );

    // Rolled back: the spec before the update, its tasks replaced again.
    let out = swarm.node(1).covey_ok(&["service", "rollback", "web"]);
    assert!(out.contains("converged"), "{out}");
    let env = swarm.node(1).covey_ok(&["service", "inspect", "web"]);
    let env: Value = serde_json::from_str(&env).expect("inspect");
    assert!(
        env[0]["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"].is_null(),
        "{env}"
    );
    assert_eq!(running_on(&swarm, "web").len(), 2);

    // A container killed behind the orchestrator's back is replaced in its slot.
    let (node, name) = (1..=3)
        .find_map(|i| containers_on(&swarm, i, "web").pop().map(|n| (i, n)))
        .expect("a web container");
    swarm.node(node).covey_ok(&["container", "kill", &name]);
    eventually(
        "a failed task and its replacement",
        Duration::from_secs(30),
        || {
            let all = tasks(&swarm, "web");
            let failed = all.iter().any(|t| {
                t["Status"]["State"] == "failed"
                    && t["Status"]["Err"]
                        .as_str()
                        .is_some_and(|e| e.contains("non-zero exit"))
            });
            (failed && running_on(&swarm, "web").len() == 2).then_some(())
        },
    );

    // Logs come from every node that ran a task, each line named after its task.
    swarm.node(1).covey_ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "talk",
        "--replicas",
        "2",
        &image,
        "sh",
        "-c",
        "echo hello from $(hostname); sleep 1d",
    ]);
    wait_running(&swarm, "talk", 2);
    let err = swarm.node(1).covey_err(&["service", "rollback", "talk"]);
    assert!(err.contains("does not have a previous spec"), "{err}");
    let logs = eventually("both tasks' logs", Duration::from_secs(20), || {
        let out = swarm.node(1).covey_ok(&["service", "logs", "talk"]);
        (out.lines().filter(|l| l.contains("| hello from")).count() == 2).then_some(out)
    });
    for slot in ["talk.1.", "talk.2."] {
        assert!(logs.lines().any(|l| l.starts_with(slot)), "{logs}");
    }
    let one = tasks(&swarm, "talk")[0]["ID"]
        .as_str()
        .expect("a task id")
        .to_string();
    let out = swarm.node(1).covey_ok(&["service", "logs", &one]);
    assert_eq!(
        out.lines().filter(|l| l.contains("| hello from")).count(),
        1,
        "{out}"
    );
    let docker = swarm.node(1).docker(&["service", "logs", "talk"]);
    let docker = String::from_utf8_lossy(&docker.stdout);
    assert_eq!(
        docker
            .lines()
            .filter(|l| l.contains("| hello from"))
            .count(),
        2,
        "docker service logs: {docker}"
    );
    swarm.node(1).covey_ok(&["service", "rm", "talk"]);

    // The docker CLI pins the image's digest (asking the daemon's distribution endpoint)
    // and records its platforms; the task runs from the pinned image.
    let out = swarm.node(1).docker(&[
        "service", "create", "-d", "--name", "pinned", &image, "sleep", "1d",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("could not be accessed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_running(&swarm, "pinned", 1);
    let spec = swarm.node(1).covey_ok(&["service", "inspect", "pinned"]);
    assert!(
        spec.contains("@sha256:") && spec.contains("amd64"),
        "{spec}"
    );
    swarm.node(1).covey_ok(&["service", "rm", "pinned"]);

    // Removed: no container of it is left on any node.
    swarm.node(1).covey_ok(&["service", "rm", "web"]);
    eventually("web's containers gone", Duration::from_secs(30), || {
        (1..=3)
            .all(|i| {
                container_names(&swarm, i, true)
                    .iter()
                    .all(|n| !n.starts_with("web."))
            })
            .then_some(())
    });
    let err = swarm.node(1).covey_err(&["service", "inspect", "web"]);
    assert!(err.contains("no such service: web"), "{err}");
}

#[test]
fn constraints_global_services_and_node_availability() {
    let (swarm, registry, image) = swarm("svcplace", 3);
    let (n2, n3) = (node_id(&swarm, 2), node_id(&swarm, 3));
    swarm
        .node(1)
        .covey_ok(&["node", "update", "--label-add", "zone=east", &n3]);

    // Labels, roles and the architecture constrain placement.
    swarm.node(1).covey_ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "east",
        "--replicas",
        "2",
        "--constraint",
        "node.labels.zone==east",
        &image,
        "sleep",
        "1d",
    ]);
    let on = wait_running(&swarm, "east", 2);
    assert_eq!(on.keys().collect::<Vec<_>>(), vec![&n3], "{on:?}");
    let arch = std::env::consts::ARCH;
    swarm.node(1).covey_ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "workers",
        "--replicas",
        "2",
        "--constraint",
        "node.role!=manager",
        "--constraint",
        &format!("node.platform.arch=={arch}"),
        &image,
        "sleep",
        "1d",
    ]);
    let on = wait_running(&swarm, "workers", 2);
    assert!(!on.contains_key(&node_id(&swarm, 1)), "{on:?}");

    // Nothing fits: pending, and `service ps` says why.
    swarm.node(1).covey_ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "nowhere",
        "--constraint",
        "node.labels.zone==mars",
        &image,
        "sleep",
        "1d",
    ]);
    eventually("the pending task's reason", Duration::from_secs(20), || {
        let ps = swarm
            .node(1)
            .covey_ok(&["service", "ps", "--no-trunc", "nowhere"]);
        (ps.contains("Pending") && ps.contains("no suitable node")).then_some(ps)
    });

    // Only where the image's platform runs: an arm64-only image finds no node here.
    let arm = registry
        .push_with("multiarch", "armonly", &["--override-arch", "arm64"])
        .expect("pushing an arm64 image");
    swarm
        .node(1)
        .covey_ok(&["service", "create", "-d", "--name", "arm", &arm, "true"]);
    eventually("the arm task's reason", Duration::from_secs(20), || {
        let ps = swarm
            .node(1)
            .covey_ok(&["service", "ps", "--no-trunc", "arm"]);
        (ps.contains("Pending") && ps.contains("platform")).then_some(ps)
    });
    let inspect = swarm.node(1).covey_ok(&["service", "inspect", "arm"]);
    assert!(inspect.contains("arm64"), "{inspect}");

    // Global: one task on every node.
    swarm.node(1).covey_ok(&[
        "service", "create", "-d", "--name", "agent", "--mode", "global", &image, "sleep", "1d",
    ]);
    let on = wait_running(&swarm, "agent", 3);
    assert!(on.values().all(|n| *n == 1), "{on:?}");

    // Drain: node 2's tasks leave it; pause: node 2 takes no new ones; active: back.
    swarm
        .node(1)
        .covey_ok(&["node", "update", "--availability", "drain", &n2]);
    eventually("node 2 drained", Duration::from_secs(30), || {
        let on = running_on(&swarm, "workers");
        (on.len() == 2 && on.iter().all(|n| *n == n3)).then_some(())
    });
    wait_running(&swarm, "agent", 2);
    eventually(
        "node 2's global task stopped",
        Duration::from_secs(30),
        || containers_on(&swarm, 2, "agent").is_empty().then_some(()),
    );
    swarm
        .node(1)
        .covey_ok(&["node", "update", "--availability", "pause", &n2]);
    swarm
        .node(1)
        .covey_ok(&["service", "scale", "-d", "workers=4"]);
    let on = wait_running(&swarm, "workers", 4);
    assert!(
        !on.contains_key(&n2),
        "a paused node took new tasks: {on:?}"
    );
    swarm
        .node(1)
        .covey_ok(&["node", "update", "--availability", "active", &n2]);
    wait_running(&swarm, "agent", 3);
}

#[test]
fn a_stopped_workers_tasks_move_and_no_slot_runs_twice() {
    let (mut swarm, _registry, image) = swarm("svcdown", 3);
    swarm.node(1).covey_ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "app",
        "--replicas",
        "4",
        "--constraint",
        "node.role==worker",
        &image,
        "sleep",
        "1d",
    ]);
    let on = wait_running(&swarm, "app", 4);
    assert_eq!(on.len(), 2, "{on:?}");
    // Node 3's daemon stops; its containers keep running, unseen.
    swarm.daemons[2].stop();
    let n3 = node_id(&swarm, 3);
    eventually(
        "node 3's tasks moved to node 2",
        Duration::from_secs(60),
        || {
            let on = running_on(&swarm, "app");
            (on.len() == 4 && on.iter().all(|n| *n != n3)).then_some(())
        },
    );
    // Back: its old tasks are shut down, so each slot runs once.
    swarm.daemons[2].start_again().expect("restarting node 3");
    eventually(
        "node 3's stale containers stopped",
        Duration::from_secs(60),
        || containers_on(&swarm, 3, "app").is_empty().then_some(()),
    );
    assert_eq!(containers_on(&swarm, 2, "app").len(), 4);
    let mut slots: Vec<u64> = tasks(&swarm, "app")
        .iter()
        .filter(|t| t["DesiredState"] == "running")
        .filter_map(|t| t["Slot"].as_u64())
        .collect();
    slots.sort();
    assert_eq!(slots, vec![1, 2, 3, 4]);
}

#[test]
fn an_isolated_worker_that_reboots_brings_its_tasks_back() {
    let (mut swarm, _registry, image) = swarm("svciso", 3);
    let n3 = node_id(&swarm, 3);
    swarm
        .node(1)
        .covey_ok(&["node", "update", "--label-add", "site=three", &n3]);
    swarm.node(1).covey_ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "pinned",
        "--replicas",
        "2",
        "--restart-delay",
        "1s",
        "--constraint",
        "node.labels.site==three",
        &image,
        "sleep",
        "1d",
    ]);
    wait_running(&swarm, "pinned", 2);
    let before = containers_on(&swarm, 3, "pinned");
    assert_eq!(before.len(), 2, "{before:?}");

    // Cut off from every manager, then a power cut: the daemon, its runtime helper and
    // every container die at once.
    let pids: Vec<String> = before.iter().map(|c| pid_of(&swarm, 3, c)).collect();
    swarm.net.set_loss(3, 100).expect("cutting node 3 off");
    let victims = power_cut(&mut swarm, 3, pids);

    // Back up with no manager reachable: it brings its last assigned tasks back itself.
    swarm.daemons[2].start_again().expect("restarting node 3");
    eventually(
        "node 3's tasks running again, offline",
        Duration::from_secs(60),
        || {
            let now = containers_on(&swarm, 3, "pinned");
            let fresh = now.iter().all(|c| {
                let pid = pid_of(&swarm, 3, c);
                pid != "0" && !victims.contains(&pid)
            });
            (now.len() == 2 && fresh).then_some(())
        },
    );
    let restarted = containers_on(&swarm, 3, "pinned");

    // Managers back: the same tasks go on, with no restart.
    swarm.net.clear_loss(3).expect("healing");
    eventually("node 3 ready again", Duration::from_secs(60), || {
        swarm
            .nodes(1)?
            .iter()
            .any(|n| n["ID"] == n3.as_str() && n["Status"]["State"] == "ready")
            .then_some(())
    });
    wait_running(&swarm, "pinned", 2);
    std::thread::sleep(Duration::from_secs(5));
    let mut after = containers_on(&swarm, 3, "pinned");
    let mut restarted = restarted;
    after.sort();
    restarted.sort();
    assert_eq!(
        after,
        restarted,
        "tasks were restarted once the managers came back; node 3: {}\nmanager: {}",
        swarm.node(3).log(),
        swarm.node(1).log()
    );
    assert_eq!(running_on(&swarm, "pinned").len(), 2);
}

#[test]
fn a_global_service_reaches_a_node_that_joins_later_and_jobs_complete() {
    let (swarm, _registry, image) = swarm_of("svcglob", 3, 2);
    swarm.node(1).covey_ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "everywhere",
        "--mode",
        "global",
        &image,
        "sleep",
        "1d",
    ]);
    wait_running(&swarm, "everywhere", 2);
    swarm.join(3, "worker", 1);
    let on = wait_running(&swarm, "everywhere", 3);
    assert!(on.contains_key(&node_id(&swarm, 3)), "{on:?}");

    // Bad input is refused, naming what was wrong, and leaves what is stored alone.
    let err =
        swarm
            .node(1)
            .covey_err(&["service", "create", "--name", "everywhere", &image, "true"]);
    assert!(err.contains("already exists"), "{err}");
    let err = swarm.node(1).covey_err(&[
        "service",
        "create",
        "--name",
        "bad",
        "--constraint",
        "node.labels.zone=east",
        &image,
    ]);
    assert!(
        err.contains("node.labels.zone=east") && err.contains("=="),
        "{err}"
    );
    let err = swarm.node(1).covey_err(&[
        "service",
        "create",
        "--name",
        "bad",
        "--mount",
        "type=bind,source=relative,target=/x",
        &image,
    ]);
    assert!(err.contains("relative"), "{err}");
    let err = swarm
        .node(1)
        .covey_err(&["service", "create", "--name", "bad", "not a reference!"]);
    assert!(err.contains("not a reference!"), "{err}");
    let err = swarm
        .node(1)
        .covey_err(&["service", "scale", "everywhere=3"]);
    assert!(err.contains("replicated"), "{err}");
    let err = swarm.node(1).covey_err(&["service", "scale", "nosuch=3"]);
    assert!(err.contains("nosuch"), "{err}");
    let ls = swarm.node(1).covey_ok(&["service", "ls"]);
    assert!(!ls.contains(" bad "), "{ls}");
    assert_eq!(running_on(&swarm, "everywhere").len(), 3);

    // A replicated job: three completions, two at a time; then nothing more runs.
    swarm.node(1).covey_ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "batch",
        "--mode",
        "replicated-job",
        "--replicas",
        "3",
        "--max-concurrent",
        "2",
        &image,
        "sh",
        "-c",
        "echo done on $(hostname); sleep 1",
    ]);
    eventually("three completions", Duration::from_secs(60), || {
        let done = tasks(&swarm, "batch")
            .iter()
            .filter(|t| t["Status"]["State"] == "complete")
            .count();
        (done == 3).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(tasks(&swarm, "batch").len(), 3, "a finished job ran again");

    // Logs asked of a manager that does not lead come through the leader.
    let n2 = node_id(&swarm, 2);
    swarm.node(1).covey_ok(&["node", "promote", &n2]);
    let logs = eventually(
        "the job's logs through a follower",
        Duration::from_secs(60),
        || {
            let out = swarm.node(2).covey(&["service", "logs", "batch"]);
            let out = String::from_utf8_lossy(&out.stdout).into_owned();
            (out.lines().filter(|l| l.contains("| done on")).count() == 3).then_some(out)
        },
    );
    assert!(logs.lines().all(|l| l.starts_with("batch.")), "{logs}");
}

#[test]
fn health_checks_decide_when_a_task_runs_and_replace_unhealthy_ones() {
    let (swarm, registry, image) = swarm("svchlth", 1);
    let node = swarm.node(1);
    // Healthy once its file exists: starting until then (failures within the start
    // period do not count), running after.
    let out = node.docker(&[
        "service",
        "create",
        "-d",
        "--name",
        "healthy",
        "--health-cmd",
        "test -f /tmp/ok",
        "--health-interval",
        "500ms",
        "--health-retries",
        "2",
        "--health-start-period",
        "10s",
        &image,
        "sh",
        "-c",
        "sleep 2; touch /tmp/ok; exec sleep 1d",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    eventually(
        "healthy's task starting, not yet running",
        Duration::from_secs(20),
        || {
            tasks(&swarm, "healthy")
                .iter()
                .any(|t| t["Status"]["State"] == "starting")
                .then_some(())
        },
    );
    wait_running(&swarm, "healthy", 1);

    // Never healthy: failed as unhealthy, and replaced.
    node.covey_ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "sick",
        "--health-cmd",
        "false",
        "--health-interval",
        "300ms",
        "--health-retries",
        "2",
        "--restart-delay",
        "500ms",
        &image,
        "sleep",
        "1d",
    ]);
    eventually(
        "sick's tasks failing as unhealthy, and replaced",
        Duration::from_secs(40),
        || {
            let all = tasks(&swarm, "sick");
            let failed = all
                .iter()
                .filter(|t| {
                    t["Status"]["State"] == "failed"
                        && t["Status"]["Err"] == "task: unhealthy container"
                })
                .count();
            (failed >= 2).then_some(())
        },
    );
    assert!(
        running_on(&swarm, "sick").is_empty(),
        "an unhealthy task counted as running"
    );
    let inspect = node.covey_ok(&["service", "inspect", "sick"]);
    assert!(inspect.contains("\"Healthcheck\""), "{inspect}");

    // The image's HEALTHCHECK (healthy once /tmp/ready exists) when the spec has none;
    // --no-healthcheck turns it off.
    let checked = registry
        .push("healthy", "healthy")
        .expect("pushing healthy");
    // Ready after 4 s; the image allows 8 failed checks a second apart.
    let slow_ready = "sleep 4; touch /tmp/ready; exec sleep 1d";
    for (name, flags) in [("imgcheck", vec![]), ("nocheck", vec!["--no-healthcheck"])] {
        node.covey_ok(
            &[
                &["service", "create", "-d", "--name", name][..],
                &flags,
                &[&checked, "sh", "-c", slow_ready],
            ]
            .concat(),
        );
    }
    wait_running(&swarm, "nocheck", 1);
    let states: Vec<String> = tasks(&swarm, "imgcheck")
        .iter()
        .map(|t| {
            t["Status"]["State"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert!(
        states.iter().all(|s| s != "running"),
        "running before the image's check passed: {states:?}"
    );
    wait_running(&swarm, "imgcheck", 1);
}
