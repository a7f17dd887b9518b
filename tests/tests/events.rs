//! `docker events` and `covey events` against a swarm of real daemons: a service's life
//! (create, update, remove) replayed from the history in order, the same followed live,
//! filtered as dockerd filters, with the tasks' state changes, their containers' and the
//! image pulled alongside.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use covey_tests::services;
use covey_tests::swarm::eventually;
use covey_tests::{Daemon, DOCKER_CLI};
use serde_json::Value;

fn now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970");
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

/// `docker events --format '{{json .}}'` with `args` (bounded by --until, so it ends).
fn docker_events(node: &Daemon, args: &[&str]) -> Vec<Value> {
    let out = Command::new("timeout")
        .arg("30")
        .arg(DOCKER_CLI)
        .arg("events")
        .args(args)
        .args(["--format", "{{json .}}"])
        .env("DOCKER_HOST", node.host())
        .env("DOCKER_CONFIG", node.root.path().join("docker-config"))
        .output()
        .expect("running docker events");
    assert!(
        out.status.success(),
        "docker events {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    lines(&String::from_utf8_lossy(&out.stdout))
}

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn actions<'a>(events: impl IntoIterator<Item = &'a Value>) -> Vec<&'a str> {
    events
        .into_iter()
        .map(|e| e["Action"].as_str().unwrap_or_default())
        .collect()
}

fn attr<'a>(e: &'a Value, key: &str) -> &'a str {
    e["Actor"]["Attributes"][key].as_str().unwrap_or_default()
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["Type"] == kind).collect()
}

fn position(events: &[Value], what: &str, test: impl Fn(&Value) -> bool) -> usize {
    events
        .iter()
        .position(test)
        .unwrap_or_else(|| panic!("no {what} in {events:#?}"))
}

/// Distinct tasks of `service` that some event saw running, from the history.
fn tasks_running(node: &Daemon, since: &str, service: &str) -> usize {
    let events = docker_events(
        node,
        &[
            "--since",
            since,
            "--until",
            &now(),
            "--filter",
            "type=task",
            "--filter",
            &format!("service={service}"),
        ],
    );
    let mut ids: Vec<&str> = events
        .iter()
        .filter(|e| attr(e, "state") == "running")
        .filter_map(|e| e["Actor"]["ID"].as_str())
        .collect();
    ids.sort();
    ids.dedup();
    ids.len()
}

#[test]
fn events_follow_a_services_life() {
    let begin = now();
    let (swarm, _registry, image) = services::swarm("events", 1);
    let node = swarm.node(1);
    let ok = |args: &[&str]| {
        let out = node.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };

    // Followed live from before the service exists.
    let mut live = Command::new(DOCKER_CLI)
        .args([
            "events",
            "--filter",
            "type=service",
            "--format",
            "{{json .}}",
        ])
        .env("DOCKER_HOST", node.host())
        .env("DOCKER_CONFIG", node.root.path().join("docker-config"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker events");
    let stdout = live.stdout.take().expect("its stdout");
    let (tx, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // dockerd sends the response's head at once; a client that has it is subscribed.
    std::thread::sleep(Duration::from_millis(500));

    ok(&[
        "service", "create", "-d", "--name", "ev", &image, "sleep", "1d",
    ]);
    eventually("ev running", Duration::from_secs(60), || {
        (tasks_running(node, &begin, "ev") == 1).then_some(())
    });
    ok(&["service", "update", "-d", "--replicas", "2", "ev"]);
    eventually("two of ev running", Duration::from_secs(60), || {
        (tasks_running(node, &begin, "ev") == 2).then_some(())
    });
    ok(&["service", "rm", "ev"]);
    let until = now();

    let all = docker_events(node, &["--since", &begin, "--until", &until]);
    assert!(
        all.windows(2)
            .all(|w| w[0]["timeNano"].as_i64() < w[1]["timeNano"].as_i64()),
        "events are in time order"
    );
    let services = of_type(&all, "service");
    assert_eq!(
        actions(services.iter().copied()),
        ["create", "update", "remove"],
        "{services:#?}"
    );
    assert!(services
        .iter()
        .all(|e| attr(e, "name") == "ev" && e["scope"] == "swarm"));
    assert_eq!(
        (
            attr(services[1], "replicas.old"),
            attr(services[1], "replicas.new")
        ),
        ("1", "2")
    );
    let node_created = of_type(&all, "node");
    assert!(
        node_created.iter().any(|e| e["Action"] == "create"),
        "swarm init's node: {node_created:#?}"
    );
    assert!(
        of_type(&all, "image")
            .iter()
            .any(|e| e["Action"] == "pull" && attr(e, "name").ends_with("/busybox")),
        "the agent's pull: {all:#?}"
    );
    // A service's life in order: created, its task made and run, its container started
    // (local, with Swarm's labels), scaled, removed.
    let created = position(&all, "service create", |e| e["Type"] == "service");
    let task = position(&all, "task create", |e| {
        e["Type"] == "task" && e["Action"] == "create" && attr(e, "service.name") == "ev"
    });
    let started = position(&all, "container start", |e| {
        e["Type"] == "container"
            && e["Action"] == "start"
            && attr(e, "com.docker.swarm.service.name") == "ev"
    });
    let updated = position(&all, "service update", |e| {
        e["Type"] == "service" && e["Action"] == "update"
    });
    let removed = position(&all, "service remove", |e| {
        e["Type"] == "service" && e["Action"] == "remove"
    });
    assert!(
        created < task && task < started && started < updated && updated < removed,
        "{created} {task} {started} {updated} {removed}"
    );
    assert_eq!(all[started]["scope"], "local");
    assert_eq!(
        all[started]["status"], "start",
        "the fields older clients read"
    );

    // Filtered as dockerd filters: by type, and by name across types.
    let replay = |filters: &[&str]| {
        let mut args = vec!["--since", &begin, "--until", &until];
        for f in filters {
            args.extend(["--filter", f]);
        }
        docker_events(node, &args)
    };
    let filtered = replay(&["type=service"]);
    assert_eq!(filtered.len(), 3, "{filtered:#?}");
    let by_service = replay(&["service=ev", "event=create"]);
    // As dockerd's, names match by prefix whatever the type: the service, its task and
    // its container (`ev.1.<task>`) alike.
    let types: Vec<&str> = by_service
        .iter()
        .filter_map(|e| e["Type"].as_str())
        .collect();
    assert!(
        by_service.iter().all(|e| e["Action"] == "create")
            && ["service", "task", "container"]
                .iter()
                .all(|t| types.contains(t)),
        "{by_service:#?}"
    );

    // The live stream saw the same, as it happened.
    let mut got = Vec::new();
    eventually("three live service events", Duration::from_secs(10), || {
        got.extend(seen.try_iter());
        (got.len() >= 3).then_some(())
    });
    let _ = live.kill();
    let _ = live.wait();
    assert_eq!(
        actions(&lines(&got.join("\n"))),
        ["create", "update", "remove"]
    );

    // covey's CLI: the same, as JSON lines and as docker prints them.
    let covey_events = |more: &[&str]| {
        let mut args = vec!["events", "--since", &begin, "--until", &until];
        args.extend(["--filter", "type=service"]);
        args.extend(more);
        node.covey_ok(&args)
    };
    let json = covey_events(&["--format", "json"]);
    assert_eq!(actions(&lines(&json)), ["create", "update", "remove"]);
    let table = covey_events(&["--filter", "event=update"]);
    assert!(
        table
            .trim()
            .ends_with("(name=ev, replicas.new=2, replicas.old=1)")
            && table.contains(" service update "),
        "{table}"
    );
}

#[test]
fn a_failing_tasks_events_carry_its_error() {
    let (swarm, _registry, image) = services::swarm("evfail", 1);
    let node = swarm.node(1);
    let begin = now();
    let out = node.docker(&[
        "service",
        "create",
        "-d",
        "--name",
        "broken",
        "--restart-condition",
        "none",
        &image,
        "/no/such/program",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let failed = eventually("the task failed", Duration::from_secs(60), || {
        docker_events(
            node,
            &[
                "--since",
                &begin,
                "--until",
                &now(),
                "--filter",
                "type=task",
                "--filter",
                "service=broken",
            ],
        )
        .into_iter()
        .find(|e| attr(e, "state") == "failed")
    });
    assert!(!attr(&failed, "error").is_empty(), "{failed:#}");
    assert_eq!(attr(&failed, "service.name"), "broken");
    assert!(!attr(&failed, "node.id").is_empty(), "{failed:#}");
    assert_eq!(failed["scope"], "swarm");
    node.covey_ok(&["service", "rm", "broken"]);
}
