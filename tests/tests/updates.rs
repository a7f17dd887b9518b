//! Rolling updates on a swarm of real daemons: batches one at a time with their delay,
//! start-first keeping the service up, and a failing update paused or rolled back.

use std::time::{Duration, SystemTime};

use covey_tests::services::*;
use covey_tests::stderr;
use covey_tests::swarm::{eventually, Swarm};
use serde_json::Value;

/// The service as `service inspect` gives it.
fn inspect(swarm: &Swarm, service: &str) -> Value {
    let out = swarm.node(1).covey_ok(&["service", "inspect", service]);
    let v: Value = serde_json::from_str(&out).expect("inspect's JSON");
    v[0].clone()
}

fn update_state(swarm: &Swarm, service: &str) -> String {
    inspect(swarm, service)["UpdateStatus"]["State"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Waits until the service's update reaches `state`; fails at once on one it cannot
/// leave for it.
fn wait_state(swarm: &Swarm, service: &str, state: &str) {
    eventually(
        &format!("{service}'s update {state}"),
        Duration::from_secs(90),
        || {
            let now = update_state(swarm, service);
            assert!(
                !(now == "paused" && state != "paused"),
                "{service}'s update paused: {}",
                inspect(swarm, service)["UpdateStatus"]
            );
            (now == state).then_some(())
        },
    );
}

fn time(v: &Value) -> SystemTime {
    v.as_str()
        .and_then(|s| humantime::parse_rfc3339_weak(s).ok())
        .unwrap_or_else(|| panic!("a time: {v}"))
}

fn secs_between(earlier: SystemTime, later: SystemTime) -> i64 {
    match later.duration_since(earlier) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// Whether the task runs the spec with `env` set.
fn has_env(task: &Value, env: &str) -> bool {
    task["Spec"]["ContainerSpec"]["Env"]
        .as_array()
        .is_some_and(|e| e.iter().any(|v| v == env))
}

/// Creates service `name` of `replicas` sleeping tasks (stopped in 1 s: sleep, as PID 1,
/// ignores SIGTERM), with `flags`; waits until they run.
fn create(swarm: &Swarm, image: &str, name: &str, replicas: usize, flags: &[&str]) {
    let replicas_arg = replicas.to_string();
    let mut args = vec![
        "service",
        "create",
        "-d",
        "--name",
        name,
        "--replicas",
        &replicas_arg,
        "--stop-grace-period",
        "1s",
    ];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[image, "sleep", "1d"]);
    swarm.node(1).covey_ok(&args);
    wait_running(swarm, name, replicas);
}

#[test]
fn an_update_replaces_tasks_one_at_a_time_with_its_delay() {
    let (swarm, _registry, image) = swarm("updseq", 2);
    create(
        &swarm,
        &image,
        "seq",
        3,
        &[
            "--update-parallelism",
            "1",
            "--update-delay",
            "3s",
            "--update-monitor",
            "1s",
        ],
    );
    let pretty = swarm
        .node(1)
        .covey_ok(&["service", "inspect", "--pretty", "seq"]);
    assert!(
        pretty.contains("UpdateConfig:\n Parallelism:\t1\n Delay:\t\t3s\n On failure:\tpause\n Monitoring Period: 1s"),
        "{pretty}"
    );
    let out = swarm
        .node(1)
        .covey_ok(&["service", "update", "--env-add", "V=2", "seq"]);
    assert!(out.contains("converged"), "{out}");
    wait_state(&swarm, "seq", "completed");
    let status = &inspect(&swarm, "seq")["UpdateStatus"];
    assert_eq!(status["Message"], "update completed", "{status}");
    assert!(
        time(&status["CompletedAt"]) >= time(&status["StartedAt"]),
        "{status}"
    );

    // From the tasks' history: for each slot in the order the update took them, the old
    // task stopped before its replacement was made, and the next slot's old task only
    // stopped once the replacement had run its monitor (1 s) and the delay (3 s), and
    // then its own stop (1 s).
    let all = tasks(&swarm, "seq");
    let mut slots: Vec<(SystemTime, SystemTime, SystemTime)> = (1..=3)
        .map(|slot| {
            let of_slot: Vec<&Value> = all.iter().filter(|t| t["Slot"] == slot).collect();
            let old = of_slot
                .iter()
                .find(|t| !has_env(t, "V=2"))
                .unwrap_or_else(|| panic!("slot {slot}'s old task in {all:?}"));
            let new = of_slot
                .iter()
                .find(|t| has_env(t, "V=2") && t["Status"]["State"] == "running")
                .unwrap_or_else(|| panic!("slot {slot}'s new task in {all:?}"));
            assert_eq!(old["Status"]["State"], "shutdown", "{old}");
            (
                time(&old["Status"]["Timestamp"]),
                time(&new["CreatedAt"]),
                time(&new["Status"]["Timestamp"]),
            )
        })
        .collect();
    slots.sort_by_key(|(stopped, ..)| *stopped);
    for (stopped, created, started) in &slots {
        assert!(
            secs_between(*stopped, *created) >= 0,
            "a replacement made before its old task stopped: {slots:?}"
        );
        assert!(secs_between(*created, *started) >= 0, "{slots:?}");
    }
    for pair in slots.windows(2) {
        let (started, next_stopped) = (pair[0].2, pair[1].0);
        // Whole seconds on both sides: 5 s, less one for the rounding (with no delay,
        // 2 s and a part).
        assert!(
            secs_between(started, next_stopped) >= 4,
            "the next slot stopped {} s after the last one ran: {slots:?}",
            secs_between(started, next_stopped)
        );
    }
}

#[test]
fn a_failing_update_rolls_back_on_its_own() {
    let (swarm, _registry, image) = swarm("updrbk", 1);
    create(
        &swarm,
        &image,
        "rbk",
        2,
        &[
            "--update-failure-action",
            "rollback",
            "--update-monitor",
            "2s",
            "--rollback-monitor",
            "1s",
        ],
    );
    let before: Vec<String> = tasks(&swarm, "rbk")
        .iter()
        .filter_map(|t| t["ID"].as_str().map(str::to_string))
        .collect();
    // The new spec's tasks exit 1 at once.
    swarm
        .node(1)
        .covey_ok(&["service", "update", "-d", "--entrypoint", "false", "rbk"]);
    wait_state(&swarm, "rbk", "rollback_completed");
    let service = inspect(&swarm, "rbk");
    let message = service["UpdateStatus"]["Message"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(message, "rollback completed", "{service}");
    assert!(
        service["Spec"]["TaskTemplate"]["ContainerSpec"]["Command"].is_null(),
        "the spec before the update: {service}"
    );
    wait_running(&swarm, "rbk", 2);
    let running: Vec<Value> = tasks(&swarm, "rbk")
        .into_iter()
        .filter(|t| t["DesiredState"] == "running" && t["Status"]["State"] == "running")
        .collect();
    assert!(
        running
            .iter()
            .all(|t| t["Spec"]["ContainerSpec"]["Command"].is_null()),
        "{running:?}"
    );
    // The update stopped at its first slot: the other slot's task never changed.
    assert!(
        running
            .iter()
            .any(|t| before.iter().any(|id| t["ID"] == id.as_str())),
        "a task the update never reached was replaced: {running:?}"
    );
}

#[test]
fn start_first_keeps_the_replicas_running_throughout() {
    let (swarm, _registry, image) = swarm("updstf", 2);
    create(&swarm, &image, "stf", 2, &[]);
    // The stock docker CLI sends its UpdateConfig in the spec.
    let out = swarm.node(1).docker(&[
        "service",
        "update",
        "-d",
        "--update-order",
        "start-first",
        "--update-delay",
        "1s",
        "--update-monitor",
        "1s",
        "--env-add",
        "V=2",
        "stf",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let config = &inspect(&swarm, "stf")["Spec"]["UpdateConfig"];
    assert_eq!(config["Order"], "start-first", "{config}");
    assert_eq!(config["Delay"], 1_000_000_000i64, "{config}");
    let mut fewest = usize::MAX;
    let mut polls = 0;
    eventually("stf's update completed", Duration::from_secs(90), || {
        let all = tasks(&swarm, "stf");
        let running = all
            .iter()
            .filter(|t| t["Status"]["State"] == "running")
            .count();
        fewest = fewest.min(running);
        polls += 1;
        let done = all
            .iter()
            .filter(|t| t["Status"]["State"] == "running" && has_env(t, "V=2"))
            .count()
            == 2;
        (done && update_state(&swarm, "stf") == "completed").then_some(())
    });
    assert!(polls > 3, "the update was over before it could be watched");
    assert!(fewest >= 2, "{fewest} tasks running at one point");
}

#[test]
fn a_failing_update_pauses() {
    let (swarm, _registry, image) = swarm("updpse", 1);
    create(
        &swarm,
        &image,
        "pse",
        2,
        &["--update-failure-action", "pause", "--update-monitor", "2s"],
    );
    let err = swarm
        .node(1)
        .covey_err(&["service", "update", "--entrypoint", "false", "pse"]);
    assert!(err.contains("service update paused"), "{err}");
    assert_eq!(update_state(&swarm, "pse"), "paused");
    let message = inspect(&swarm, "pse")["UpdateStatus"]["Message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        message.starts_with("update paused due to failure or early termination of task"),
        "{message}"
    );
    // Paused: the slot the update did not reach keeps its old task.
    std::thread::sleep(Duration::from_secs(3));
    let old_running = tasks(&swarm, "pse")
        .iter()
        .filter(|t| {
            t["Status"]["State"] == "running"
                && t["DesiredState"] == "running"
                && t["Spec"]["ContainerSpec"]["Command"].is_null()
        })
        .count();
    assert_eq!(old_running, 1);
    let pretty = swarm
        .node(1)
        .covey_ok(&["service", "inspect", "--pretty", "pse"]);
    assert!(
        pretty.contains("UpdateStatus:\n State:\t\tpaused"),
        "{pretty}"
    );
}
