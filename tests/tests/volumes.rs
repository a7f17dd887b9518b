//! Volumes on a swarm node: a service's named volume made on first use and kept across
//! the task's replacement, read-only and tmpfs mounts, anonymous volumes, `docker run -v`,
//! and `volume ls/inspect/rm/prune` with their refusals, through both CLIs.

use std::time::Duration;

use covey_tests::services::*;
use covey_tests::swarm::eventually;
use covey_tests::{stderr, stdout};
use serde_json::Value;

/// Appends a line to the volume's log at each start, then waits.
const KEEPER: &str = "echo started >> /data/log && exec sleep 1d";

#[test]
fn a_volume_outlives_its_tasks_and_goes_only_when_unused() {
    let (swarm, _registry, image) = swarm("vols", 1);
    let node = swarm.node(1);
    node.covey_ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "keeper",
        "--restart-delay",
        "1s",
        "--mount",
        "type=volume,source=data,target=/data",
        "--mount",
        "type=volume,source=data,target=/ro,readonly",
        "--mount",
        "type=volume,target=/anon",
        "--mount",
        "type=tmpfs,target=/scratch",
        &image,
        "sh",
        "-c",
        KEEPER,
    ]);
    wait_running(&swarm, "keeper", 1);
    let first = eventually("keeper's container", Duration::from_secs(20), || {
        containers_on(&swarm, 1, "keeper").pop()
    });
    let exec = |c: &str, script: &str| node.docker(&["exec", c, "sh", "-c", script]);
    assert_eq!(stdout(&exec(&first, "cat /data/log")).trim(), "started");
    // The same volume, read-only at /ro; a tmpfs at /scratch.
    assert!(
        !exec(&first, "touch /ro/x").status.success(),
        "a read-only mount took a write"
    );
    let mounts = stdout(&exec(&first, "cat /proc/mounts"));
    assert!(
        mounts.lines().any(|l| l.contains(" /scratch tmpfs ")),
        "{mounts}"
    );

    // The volume is on the node, with an anonymous one beside it.
    let ls = node.covey_ok(&["volume", "ls", "-q"]);
    let names: Vec<&str> = ls.lines().collect();
    assert!(names.contains(&"data"), "{ls}");
    let anonymous: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| n.len() == 64 && n.chars().all(|c| c.is_ascii_hexdigit()))
        .collect();
    assert_eq!(anonymous.len(), 1, "{ls}");
    let inspect: Value =
        serde_json::from_slice(&node.docker(&["volume", "inspect", "data"]).stdout).unwrap();
    let mountpoint = inspect[0]["Mountpoint"].as_str().unwrap().to_string();
    assert_eq!(
        std::fs::read_to_string(format!("{mountpoint}/log")).unwrap(),
        "started\n"
    );

    // The task's container dies: its replacement finds what the first one wrote.
    node.covey_ok(&["container", "kill", &first]);
    eventually(
        "the replacement writing to the same volume",
        Duration::from_secs(60),
        || {
            let c = containers_on(&swarm, 1, "keeper")
                .into_iter()
                .find(|c| *c != first)?;
            let log = stdout(&exec(&c, "cat /data/log"));
            (log == "started\nstarted\n").then_some(())
        },
    );

    // In use: refused, saying why; the data stays.
    let out = node.docker(&["volume", "rm", "data"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("volume is in use"),
        "{}",
        stderr(&out)
    );
    assert!(std::path::Path::new(&mountpoint).join("log").exists());
    // Bad names are refused by name, at the API and for a service.
    let out = node.docker(&["volume", "create", "../etc"]);
    assert!(
        stderr(&out).contains("invalid volume name"),
        "{}",
        stderr(&out)
    );
    let err = node.covey_err(&[
        "service",
        "create",
        "--name",
        "bad",
        "--mount",
        "type=volume,source=a/b,target=/x",
        &image,
    ]);
    assert!(err.contains("invalid volume name \"a/b\""), "{err}");

    // `docker run -v NAME:/path` makes a volume too.
    let out = node.docker(&[
        "run",
        "--rm",
        "-v",
        "scratchpad:/x",
        &image,
        "sh",
        "-c",
        "echo hi > /x/f",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pad: Value =
        serde_json::from_slice(&node.docker(&["volume", "inspect", "scratchpad"]).stdout).unwrap();
    let pad = pad[0]["Mountpoint"].as_str().unwrap().to_string();
    assert_eq!(std::fs::read_to_string(format!("{pad}/f")).unwrap(), "hi\n");

    // Once no container uses them: prune takes the anonymous one, rm the named ones.
    node.covey_ok(&["service", "rm", "keeper"]);
    eventually("keeper's containers gone", Duration::from_secs(30), || {
        containers_on(&swarm, 1, "keeper").is_empty().then_some(())
    });
    let pruned = node.covey_ok(&["volume", "prune", "-f"]);
    assert!(pruned.contains(anonymous[0]), "{pruned}");
    node.covey_ok(&["volume", "rm", "data", "scratchpad"]);
    assert!(node.covey_ok(&["volume", "ls", "-q"]).trim().is_empty());
    assert!(!std::path::Path::new(&mountpoint).exists());
    node.covey_ok(&["volume", "rm", "-f", "data"]);
}
