//! Swarms of real daemons, each node in its own network namespace: init and join with
//! tokens, Raft elections among managers, lost leaders, partitions and lossy links.

use std::time::Duration;

use covey_tests::swarm::{eventually, Swarm};
use covey_tests::Daemon;

#[test]
fn three_managers_and_a_worker_join_elect_and_survive_a_lost_leader() {
    lose_the_leader("swm3", 3);
}

#[test]
fn five_managers_and_a_worker_survive_a_lost_leader() {
    lose_the_leader("swm5", 5);
}

/// `managers` managers (each joining through the previous one) and one worker.
fn lose_the_leader(prefix: &str, managers: usize) {
    let worker = managers + 1;
    let swarm = Swarm::start(prefix, worker);
    swarm.init();
    for i in 2..=managers {
        swarm.join(i, "manager", i - 1);
    }
    swarm.join(worker, "worker", 1);

    let nodes = eventually("every node ready", Duration::from_secs(40), || {
        let nodes = swarm.nodes(1)?;
        let ready = nodes
            .iter()
            .filter(|n| n["Status"]["State"] == "ready")
            .count();
        (ready == worker).then_some(nodes)
    });
    let count = nodes
        .iter()
        .filter(|n| n["ManagerStatus"].is_object())
        .count();
    assert_eq!(count, managers);
    let table = swarm.node(2).covey_ok(&["node", "ls"]);
    assert!(
        table.contains("MANAGER STATUS") && table.contains("Leader"),
        "{table}"
    );
    assert_eq!(table.matches("Reachable").count(), managers - 1, "{table}");

    // A worker has no control plane.
    let refused = swarm.node(worker).covey(&["node", "ls"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not a swarm manager"));

    // Kill the leader: the other two elect one of themselves and writes go on.
    let leader = swarm.leader(1).expect("a leader");
    let mut swarm = swarm;
    swarm.daemons[leader - 1].crash();
    let survivor = (1..=managers).find(|i| *i != leader).expect("a survivor");
    let new_leader = eventually("a new leader", Duration::from_secs(40), || {
        swarm.leader(survivor).filter(|l| *l != leader)
    });
    assert!(
        swarm.write(new_leader, worker, "after=kill"),
        "a write after the leader was lost"
    );
    eventually(
        "the old leader marked down",
        Duration::from_secs(30),
        || {
            let nodes = swarm.nodes(survivor)?;
            let addr = swarm.addr(leader);
            nodes
                .iter()
                .any(|n| n["Status"]["Addr"] == addr.as_str() && n["Status"]["State"] == "down")
                .then_some(())
        },
    );

    // The worker's heartbeats failed over to the new leader.
    eventually(
        "the worker ready under the new leader",
        Duration::from_secs(30),
        || {
            let addr = swarm.addr(worker);
            swarm
                .nodes(new_leader)?
                .iter()
                .any(|n| n["Status"]["Addr"] == addr.as_str() && n["Status"]["State"] == "ready")
                .then_some(())
        },
    );

    // It comes back from its own disk, follows, and catches up.
    swarm.daemons[leader - 1].restart().expect("restarting");
    eventually(
        "the restarted manager caught up",
        Duration::from_secs(40),
        || {
            let nodes = swarm.nodes(leader)?;
            nodes
                .iter()
                .any(|n| n["Spec"]["Labels"]["after"] == "kill")
                .then_some(())
        },
    );
    let leaders: Vec<usize> = (1..=managers).filter_map(|i| swarm.leader(i)).collect();
    assert!(
        leaders.windows(2).all(|w| w[0] == w[1]),
        "managers disagree on the leader: {leaders:?}"
    );
}

#[test]
fn tokens_are_checked_and_rotation_retires_the_old_one() {
    let swarm = Swarm::start("swtok", 3);
    swarm.init();
    let worker = swarm.token(1, "worker");
    assert!(worker.starts_with("SWMTKN-1-"), "{worker}");

    // The right CA, the wrong secret.
    let mut forged = worker.clone();
    let last = forged.pop().expect("a token");
    forged.push(if last == 'a' { 'b' } else { 'a' });
    let out = swarm
        .node(2)
        .covey(&["swarm", "join", "--token", &forged, &swarm.addr(1)]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.contains("invalid join token"), "{err}");

    // Garbage is refused before anything is sent.
    let out = swarm
        .node(2)
        .covey(&["swarm", "join", "--token", "SWMTKN-1-nope", &swarm.addr(1)]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid join token"));

    // Rotated: the old token stops working, the new one works.
    swarm
        .node(1)
        .covey_ok(&["swarm", "join-token", "--rotate", "worker"]);
    let out = swarm
        .node(2)
        .covey(&["swarm", "join", "--token", &worker, &swarm.addr(1)]);
    assert!(!out.status.success(), "a rotated-away token was accepted");
    swarm.join(2, "worker", 1);

    // A token for another swarm's CA: the manager's certificate does not match it.
    let other = Swarm::start("swtok2", 1);
    other.init();
    let foreign = other.token(1, "worker");
    let out = swarm
        .node(3)
        .covey(&["swarm", "join", "--token", &foreign, &swarm.addr(1)]);
    assert!(
        !out.status.success(),
        "a token of another swarm was accepted"
    );
}

#[test]
fn a_minority_commits_nothing_and_lossy_links_still_commit() {
    let swarm = Swarm::start("swpart", 3);
    // Swarm's default period: a node is Down after about 16 s without a heartbeat.
    swarm.init_with_heartbeat("5s");
    swarm.join(2, "manager", 1);
    swarm.join(3, "manager", 1);
    eventually("3 ready managers", Duration::from_secs(30), || {
        let nodes = swarm.nodes(1)?;
        (nodes
            .iter()
            .filter(|n| n["Status"]["State"] == "ready")
            .count()
            == 3)
            .then_some(())
    });

    // Cut node 3 off entirely: it cannot commit, the other two can.
    swarm.net.set_loss(3, 100).expect("cutting node 3 off");
    assert!(
        !swarm.write(3, 3, "minority=yes"),
        "a cut-off manager committed"
    );
    assert!(swarm.write(1, 1, "majority=yes") || swarm.write(2, 1, "majority=yes"));
    swarm.net.clear_loss(3).expect("healing");
    eventually("node 3 catching up", Duration::from_secs(40), || {
        swarm
            .nodes(3)?
            .iter()
            .any(|n| n["Spec"]["Labels"]["majority"] == "yes")
            .then_some(())
    });
    assert!(!swarm
        .nodes(1)
        .expect("nodes")
        .iter()
        .any(|n| n["Spec"]["Labels"]["minority"] == "yes"));

    // 30% loss between every two managers, each way: still a leader, still commits.
    for i in 1..=3 {
        swarm.net.set_send_loss(i, 30).expect("loss");
    }
    let mut committed = 0;
    for n in 0..10 {
        let via = swarm.leader(1).or_else(|| swarm.leader(2)).unwrap_or(1);
        if swarm.write(via, 1, &format!("lossy{n}=1")) {
            committed += 1;
        }
    }
    assert!(
        committed >= 9,
        "only {committed} of 10 writes committed at 30% loss"
    );

    // And with 300 ms of delay each way on top: still commits, and no node goes Down.
    let mut swarm = swarm;
    swarm
        .net
        .set_delay(Duration::from_millis(300))
        .expect("delay");
    let mut committed = 0;
    for n in 0..10 {
        let via = swarm.leader(1).or_else(|| swarm.leader(2)).unwrap_or(1);
        if swarm.write(via, 1, &format!("slow{n}=1")) {
            committed += 1;
        }
    }
    assert!(
        committed >= 9,
        "only {committed} of 10 writes committed at 30% loss and 300 ms"
    );
    let nodes = eventually("a view of the nodes", Duration::from_secs(30), || {
        swarm.nodes(1)
    });
    assert!(
        nodes.iter().all(|n| n["Status"]["State"] == "ready"),
        "a node was marked down on a slow link: {nodes:?}"
    );
}

#[test]
fn a_swarm_that_lost_quorum_is_recovered_with_force_new_cluster() {
    let swarm = Swarm::start("swfnc", 3);
    swarm.init();
    swarm.join(2, "manager", 1);
    swarm.join(3, "manager", 1);
    eventually(
        "a write with three managers",
        Duration::from_secs(30),
        || swarm.write(1, 1, "kept=yes").then_some(()),
    );
    let mut swarm = swarm;
    swarm.daemons[1].crash();
    swarm.daemons[2].crash();
    // One manager of three is no quorum: it commits nothing.
    assert!(
        !swarm.write(1, 1, "lost=yes"),
        "a write without quorum committed"
    );

    swarm
        .node(1)
        .covey_ok(&["swarm", "init", "--force-new-cluster"]);
    eventually("node 1 leading alone", Duration::from_secs(30), || {
        (swarm.leader(1) == Some(1)).then_some(())
    });
    assert!(
        swarm.write(1, 1, "after=recovery"),
        "a write after recovery"
    );
    let nodes = swarm.nodes(1).expect("nodes");
    let me = nodes
        .iter()
        .find(|n| n["ManagerStatus"]["Leader"] == true)
        .expect("the leader");
    assert_eq!(me["Spec"]["Labels"]["kept"], "yes", "state kept: {me}");
    let gone = nodes
        .iter()
        .filter(|n| n["ManagerStatus"]["Reachability"] == "unreachable")
        .count();
    assert_eq!(gone, 2, "the lost managers show unreachable");
}

#[test]
fn promote_demote_and_remove_nodes() {
    let swarm = Swarm::start("swrole", 3);
    swarm.init();
    swarm.join(2, "worker", 1);
    swarm.join(3, "worker", 1);
    let id2 = eventually("node 2 known", Duration::from_secs(20), || {
        swarm.id_of(1, 2)
    });
    let id3 = eventually("node 3 known", Duration::from_secs(20), || {
        swarm.id_of(1, 3)
    });

    // The last manager cannot be demoted.
    let id1 = swarm.id_of(1, 1).expect("node 1");
    let out = swarm.node(1).covey(&["node", "demote", &id1]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("last manager"));

    // Promoted, node 2 gets a manager's certificate, joins Raft and serves the API.
    swarm.node(1).covey_ok(&["node", "promote", &id2]);
    eventually("node 2 managing", Duration::from_secs(40), || {
        let nodes = swarm.nodes(2)?;
        let managers = nodes
            .iter()
            .filter(|n| n["ManagerStatus"].is_object())
            .count();
        (managers == 2).then_some(())
    });
    assert!(
        swarm.write(2, 3, "via=two"),
        "a write through the promoted manager"
    );

    // Demote the leader itself: node 2 carries on alone.
    swarm.node(2).covey_ok(&["node", "demote", &id1]);
    eventually(
        "node 1 a worker, node 2 leading",
        Duration::from_secs(60),
        || {
            let out = swarm.node(1).covey(&["node", "ls"]);
            (!out.status.success() && swarm.leader(2) == Some(2)).then_some(())
        },
    );
    let nodes = swarm.nodes(2).expect("nodes");
    let managers = nodes
        .iter()
        .filter(|n| n["ManagerStatus"].is_object())
        .count();
    assert_eq!(managers, 1, "{nodes:?}");
    assert!(swarm.write(2, 3, "after=demotion"));

    // A manager is not removed; a worker that is up needs --force; one that left, not.
    let out = swarm.node(2).covey(&["node", "rm", &id2]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be demoted"));
    let out = swarm.node(2).covey(&["node", "rm", &id3]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not down"));
    swarm.node(3).covey_ok(&["swarm", "leave"]);
    eventually("node 3 down", Duration::from_secs(30), || {
        swarm
            .nodes(2)?
            .iter()
            .any(|n| n["ID"] == id3.as_str() && n["Status"]["State"] == "down")
            .then_some(())
    });
    swarm.node(2).covey_ok(&["node", "rm", &id3]);
    let left = swarm.nodes(2).expect("nodes");
    assert!(!left.iter().any(|n| n["ID"] == id3.as_str()));
}

#[test]
fn the_docker_cli_drives_a_swarm() {
    let swarm = Swarm::start("swdock", 2);
    let manager = swarm.node(1);
    let ok = |d: &Daemon, args: &[&str]| -> String {
        let out = d.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let init = ok(
        manager,
        &["swarm", "init", "--advertise-addr", &swarm.addr(1)],
    );
    assert!(init.contains("Swarm initialized: current node ("), "{init}");
    let token = ok(manager, &["swarm", "join-token", "-q", "worker"]);
    ok(
        swarm.node(2),
        &["swarm", "join", "--token", token.trim(), &swarm.addr(1)],
    );
    let info = ok(
        swarm.node(2),
        &[
            "info",
            "--format",
            "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}",
        ],
    );
    assert_eq!(info.trim(), "active false");
    let ls = eventually("two ready nodes", Duration::from_secs(20), || {
        let ls = ok(manager, &["node", "ls"]);
        (ls.matches("Ready").count() == 2).then_some(ls)
    });
    assert!(ls.contains("Leader") && ls.contains(" *"), "{ls}");
    let worker = swarm.id_of(1, 2).expect("the worker's id");
    ok(
        manager,
        &[
            "node",
            "update",
            "--availability",
            "drain",
            "--label-add",
            "zone=a",
            &worker,
        ],
    );
    let spec = ok(
        manager,
        &[
            "node",
            "inspect",
            &worker,
            "--format",
            "{{.Spec.Availability}} {{.Spec.Labels.zone}}",
        ],
    );
    assert_eq!(spec.trim(), "drain a");
    // covey's human form of a node is docker's, to the byte.
    let pretty = manager.covey_ok(&["node", "inspect", "--pretty", &worker]);
    assert_eq!(
        pretty,
        ok(manager, &["node", "inspect", "--pretty", &worker]),
        "covey node inspect --pretty against docker's"
    );
    let listed: Vec<serde_json::Value> =
        serde_json::from_str(&manager.covey_ok(&["node", "ls", "--format", "json"]))
            .expect("covey node ls --format json");
    assert_eq!(listed.len(), 2, "{listed:?}");

    // Promoted, the worker becomes a reachable manager; demoted, a worker again.
    let role = |what: &str, want: &str| {
        let format = "{{.Spec.Role}} {{with .ManagerStatus}}{{.Reachability}}{{end}}";
        eventually(what, Duration::from_secs(30), || {
            let status = ok(manager, &["node", "inspect", &worker, "--format", format]);
            (status.trim() == want).then_some(())
        });
    };
    ok(manager, &["node", "promote", &worker]);
    role("the promoted node reachable", "manager reachable");
    assert_eq!(
        ok(
            manager,
            &["info", "--format", "{{.Swarm.Managers}} {{.Swarm.Nodes}}"]
        )
        .trim(),
        "2 2"
    );
    ok(manager, &["node", "demote", &worker]);
    role("the demoted node a worker", "worker");
    eventually(
        "the demoted node stepped down",
        Duration::from_secs(30),
        || {
            let info = ok(
                swarm.node(2),
                &["info", "--format", "{{.Swarm.ControlAvailable}}"],
            );
            (info.trim() == "false").then_some(())
        },
    );
    // No service yet: the header, no task.
    let ps = ok(manager, &["node", "ps", "self"]);
    assert!(ps.starts_with("ID ") && ps.lines().count() == 1, "{ps}");

    ok(
        manager,
        &[
            "swarm",
            "update",
            "--task-history-limit",
            "2",
            "--dispatcher-heartbeat",
            "2s",
        ],
    );
    let settings = ok(
        manager,
        &[
            "info",
            "--format",
            "{{.Swarm.Cluster.Spec.Orchestration.TaskHistoryRetentionLimit}} {{.Swarm.Cluster.Spec.Dispatcher.HeartbeatPeriod}}",
        ],
    );
    assert_eq!(settings.trim(), "2 2s");
    // Autolock through the docker CLI: the key it prints is the one unlock-key shows, and
    // a new one after a rotation. (tests/autolock.rs restarts locked managers.)
    let out = ok(manager, &["swarm", "update", "--autolock=true"]);
    let key = out
        .split_whitespace()
        .find(|w| w.starts_with("SWMKEY-1-"))
        .unwrap_or_else(|| panic!("no unlock key printed: {out}"))
        .to_string();
    assert_eq!(ok(manager, &["swarm", "unlock-key", "-q"]).trim(), key);
    let rotated = ok(manager, &["swarm", "unlock-key", "--rotate", "-q"]);
    assert!(
        rotated.starts_with("SWMKEY-1-") && rotated.trim() != key,
        "{rotated}"
    );
    ok(manager, &["swarm", "update", "--autolock=false"]);
    let out = manager.docker(&["swarm", "unlock-key"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("no unlock key is set"),
        "{err}"
    );
    let out = manager.docker(&["swarm", "unlock-key", "--rotate"]);
    assert!(!out.status.success());
    let counts = ok(
        manager,
        &[
            "info",
            "--format",
            "{{.Containers}} {{.Images}} {{.ServerVersion}}",
        ],
    );
    assert_eq!(counts.trim(), format!("0 0 {}", env!("CARGO_PKG_VERSION")));
    let out = manager.docker(&["swarm", "leave"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("Use `--force`"));
    let out = swarm.node(2).docker(&["node", "ls"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a swarm manager"));
}
