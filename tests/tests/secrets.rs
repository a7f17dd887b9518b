//! Secrets on a swarm of real daemons: given only to the nodes whose tasks use them, as
//! files in memory with the owner and mode asked, never on any node's disk in the clear
//! (the managers' store and Raft log, the workers' saved assignments); and the stock
//! docker CLI's `secret` commands.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use covey_tests::services::*;
use covey_tests::swarm::{eventually, Swarm};
use covey_tests::{files_under, stderr, stdout};

/// Distinctive, so that a match can only be the secret itself.
const PLAIN: &str = "covey-plaintext-Qx7rT9wLm2";

/// Files under `dir` (not following links) holding `needle`.
fn holding(dir: &Path, needle: &str) -> Vec<String> {
    let out = Command::new("grep")
        .args(["-r", "-l", "-a", "-F", "-e", needle])
        .arg(dir)
        .output()
        .expect("running grep");
    assert!(out.status.code() != Some(2), "grep: {}", stderr(&out));
    stdout(&out).lines().map(str::to_string).collect()
}

/// Node `i`'s directory of tasks' secrets, and whether it is a tmpfs.
fn secrets_dir(swarm: &Swarm, i: usize) -> (std::path::PathBuf, bool) {
    let dir = swarm.node(i).root.path().join("run/secrets");
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let tmpfs = mounts.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 2 && Path::new(f[1]) == dir && f[2] == "tmpfs"
    });
    (dir, tmpfs)
}

#[test]
fn a_secret_reaches_only_its_node_and_no_disk() {
    let (swarm, _registry, image) = swarm("secnode", 3);
    let node = swarm.node(1);
    let src = tempfile::tempdir().expect("a temp dir");
    let file = src.path().join("db.pass");
    std::fs::write(&file, format!("{PLAIN}\n")).expect("writing the secret's file");
    let id = node.covey_ok(&[
        "secret",
        "create",
        "--label",
        "team=db",
        "db.pass",
        &file.to_string_lossy(),
    ]);
    assert_eq!(id.trim().len(), 25, "{id}");
    let inspect = node.covey_ok(&["secret", "inspect", "db.pass"]);
    let v: serde_json::Value = serde_json::from_str(&inspect).expect("inspect's JSON");
    assert_eq!(v[0]["Spec"]["Labels"]["team"], "db", "{inspect}");
    assert!(
        !inspect.contains("Data"),
        "inspect shows no data: {inspect}"
    );
    let e = node.covey_err(&["secret", "create", "db.pass", &file.to_string_lossy()]);
    assert!(e.contains("already exists"), "{e}");

    // One task, on node 3 only: the secret at its target, owned and moded as asked, and
    // at the default target with the default mode.
    let id3 = swarm.id_of(1, 3).expect("node 3's id");
    node.covey_ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "db",
        "--constraint",
        &format!("node.id=={id3}"),
        "--secret",
        "source=db.pass,target=/etc/db/pass,uid=1000,gid=100,mode=0400",
        "--secret",
        "db.pass",
        "--stop-grace-period",
        "1s",
        &image,
        "sleep",
        "1d",
    ]);
    wait_running(&swarm, "db", 1);
    let ctr = eventually("db's container", Duration::from_secs(20), || {
        containers_on(&swarm, 3, "db").into_iter().next()
    });
    let seen = swarm.node(3).covey_ok(&[
        "container",
        "exec",
        &ctr,
        "sh",
        "-c",
        "stat -c '%a %u %g' /etc/db/pass /run/secrets/db.pass; cat /etc/db/pass",
    ]);
    assert_eq!(seen, format!("400 1000 100\n444 0 0\n{PLAIN}\n"));

    // In memory on node 3, and on no other node at all.
    let (dir3, tmpfs) = secrets_dir(&swarm, 3);
    assert!(tmpfs, "{} is a tmpfs", dir3.display());
    assert_eq!(holding(&dir3, PLAIN).len(), 2, "one file per target");
    for i in [1, 2] {
        let (dir, tmpfs) = secrets_dir(&swarm, i);
        assert!(tmpfs, "{} is a tmpfs", dir.display());
        assert!(
            files_under(&dir).is_empty(),
            "node {i}: {:?}",
            files_under(&dir)
        );
    }

    // Nowhere on any node's disk, in the clear or in base64 (as JSON would carry it):
    // the manager's store and Raft log, the workers' saved assignments.
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{PLAIN}\n"));
    let worker_file = swarm.node(3).data().join("swarm/worker/tasks.json");
    let saved = std::fs::read_to_string(&worker_file).expect("node 3's saved tasks");
    assert!(
        saved.contains("\"secrets\""),
        "the secrets are saved, sealed: {saved}"
    );
    // The control: the store's rows are sealed too, but their keys (kinds and ids) are
    // in the clear, and the same search finds a new config's id in the database.
    let control = src.path().join("control");
    std::fs::write(&control, "covey-control-Vb3kP8").expect("writing the control");
    let id = node.covey_ok(&["config", "create", "control", &control.to_string_lossy()]);
    let row = format!("o/config/{}", id.trim());
    eventually(
        "the config's row on the manager's disk",
        Duration::from_secs(20),
        || (!holding(&node.data(), &row).is_empty()).then_some(()),
    );
    for i in 1..=3 {
        let data = swarm.node(i).data();
        for needle in [PLAIN, &b64[..20]] {
            let found = holding(&data, needle);
            assert!(found.is_empty(), "node {i} holds {needle:?} in {found:?}");
        }
    }
    assert!(swarm.node(1).data().join("swarm/raft").is_dir());

    // In use, it stays; once its service is gone, so are its files, and it can go.
    let e = node.covey_err(&["secret", "rm", "db.pass"]);
    assert!(
        e.contains("secret 'db.pass' is in use by the following service: db"),
        "{e}"
    );
    node.covey_ok(&["service", "rm", "db"]);
    eventually("db's secret files gone", Duration::from_secs(30), || {
        files_under(&dir3).is_empty().then_some(())
    });
    eventually("db.pass free again", Duration::from_secs(30), || {
        node.covey(&["secret", "rm", "db.pass"])
            .status
            .success()
            .then_some(())
    });
    assert_eq!(node.covey_ok(&["secret", "ls", "-q"]).trim(), "");

    // The cluster data key: on the manager only, private; a promoted node gets the same
    // one and seals secrets the others can open; demoted, it drops it.
    let key_of = |i: usize| {
        swarm
            .node(i)
            .data()
            .join("swarm/certificates/swarm-data.key")
    };
    let key = std::fs::read(key_of(1)).expect("the manager's data key");
    assert_eq!(key.len(), 32);
    let mode = std::fs::metadata(key_of(1))
        .expect("its metadata")
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    assert!(
        !key_of(2).exists() && !key_of(3).exists(),
        "workers hold no key"
    );
    let id2 = swarm.id_of(1, 2).expect("node 2's id");
    node.covey_ok(&["node", "promote", &id2]);
    eventually("node 2 managing", Duration::from_secs(40), || {
        swarm
            .node(2)
            .covey(&["secret", "ls"])
            .status
            .success()
            .then_some(())
    });
    assert_eq!(std::fs::read(key_of(2)).ok(), Some(key));
    swarm
        .node(2)
        .covey_ok(&["secret", "create", "via2", &file.to_string_lossy()]);
    node.covey_ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "two",
        "--constraint",
        &format!("node.id=={id3}"),
        "--secret",
        "via2",
        &image,
        "sleep",
        "1d",
    ]);
    wait_running(&swarm, "two", 1);
    let ctr = eventually("two's container", Duration::from_secs(20), || {
        containers_on(&swarm, 3, "two").into_iter().next()
    });
    let seen = swarm
        .node(3)
        .covey_ok(&["container", "exec", &ctr, "cat", "/run/secrets/via2"]);
    assert_eq!(seen, format!("{PLAIN}\n"));
    node.covey_ok(&["node", "demote", &id2]);
    eventually("node 2's key gone", Duration::from_secs(40), || {
        (!key_of(2).exists()).then_some(())
    });
}

#[test]
fn secrets_through_the_docker_cli() {
    let (swarm, _registry, image) = swarm("secdkr", 1);
    let node = swarm.node(1);
    let ok = |args: &[&str]| node.docker_ok(args);
    let err = |args: &[&str]| node.docker_err(args);
    let created = node.docker_with_input(&["secret", "create", "app.key", "-"], b"k3y-Material\n");
    assert!(created.status.success(), "{}", stderr(&created));
    assert_eq!(
        ok(&["secret", "ls", "--format", "{{.Name}}"]).trim(),
        "app.key"
    );
    let spec = ok(&["secret", "inspect", "app.key", "--format", "{{json .Spec}}"]);
    assert!(spec.contains("\"Name\":\"app.key\""), "{spec}");
    assert!(!spec.contains("Data") && !spec.contains("k3y"), "{spec}");
    let e = err(&["secret", "create", "big", "/dev/null"]);
    assert!(e.contains("larger than 0"), "{e}");

    ok(&[
        "service", "create", "-d", "--name", "app", "--secret", "app.key", &image, "sleep", "1d",
    ]);
    wait_running(&swarm, "app", 1);
    let ctr = eventually("app's container", Duration::from_secs(20), || {
        containers_on(&swarm, 1, "app").into_iter().next()
    });
    assert_eq!(
        ok(&["exec", &ctr, "cat", "/run/secrets/app.key"]),
        "k3y-Material\n"
    );
    let e = err(&["secret", "rm", "app.key"]);
    assert!(e.contains("in use by the following service: app"), "{e}");
    let e = err(&[
        "service", "create", "-d", "--name", "nosec", "--secret", "nosuch", &image,
    ]);
    assert!(e.contains("nosuch"), "{e}");
    ok(&["service", "rm", "app"]);
    eventually("app.key free again", Duration::from_secs(30), || {
        node.docker(&["secret", "rm", "app.key"])
            .status
            .success()
            .then_some(())
    });
    assert_eq!(ok(&["secret", "ls", "-q"]).trim(), "");
}
