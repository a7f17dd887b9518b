//! Autolock on three managers: a restarted manager's keys and store are sealed on its
//! disk, it takes no part in the swarm until unlocked with the right key, a rotated key
//! takes over from the old one, and turning autolock off puts the keys back in the clear.

use std::path::{Path, PathBuf};
use std::time::Duration;

use covey_tests::swarm::{eventually, Swarm};
use covey_tests::{files_under, stderr, Daemon};

const SEALED: &[u8] = b"covey-locked-v1\n";
const MARKER: &str = "autolock-marker-5f3a9c";

fn certs(node: &Daemon) -> PathBuf {
    node.data().join("swarm/certificates")
}

/// The key files a manager keeps, each sealed or not as `sealed` says.
fn keys_sealed(node: &Daemon, sealed: bool) -> bool {
    [
        "swarm-node.key",
        "swarm-data.key",
        "swarm-raft.key",
        "../worker/node.key",
    ]
    .iter()
    .all(|f| std::fs::read(certs(node).join(f)).is_ok_and(|b| b.starts_with(SEALED) == sealed))
}

fn contains(path: &Path, needle: &[u8]) -> bool {
    std::fs::read(path).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
}

fn local_state(node: &Daemon) -> String {
    node.docker_ok(&["info", "--format", "{{.Swarm.LocalNodeState}}"])
        .trim()
        .to_string()
}

fn key_from(out: &str) -> String {
    out.split_whitespace()
        .find(|w| w.starts_with("SWMKEY-1-"))
        .unwrap_or_else(|| panic!("no unlock key in: {out}"))
        .to_string()
}

fn unlock(node: &Daemon, key: &str) -> std::process::Output {
    node.docker_with_input(&["swarm", "unlock"], format!("{key}\n").as_bytes())
}

fn reachable_everywhere(swarm: &Swarm, what: &str) {
    eventually(what, Duration::from_secs(60), || {
        let nodes = swarm.nodes(1)?;
        (nodes.len() == 3
            && nodes.iter().all(|n| {
                n["Status"]["State"] == "ready" && n["ManagerStatus"]["Reachability"] == "reachable"
            }))
        .then_some(())
    });
}

#[test]
fn a_locked_manager_waits_for_its_key_and_its_disk_gives_nothing_away() {
    let mut swarm = Swarm::start("alock", 3);
    let out = swarm.node(1).covey_ok(&[
        "swarm",
        "init",
        "--autolock",
        "--advertise-addr",
        &swarm.addr(1),
        "--dispatcher-heartbeat",
        "1s",
    ]);
    let key = key_from(&out);
    assert_eq!(
        swarm
            .node(1)
            .covey_ok(&["swarm", "unlock-key", "-q"])
            .trim(),
        key
    );
    // Sealed from the start, on the first manager and on those that join (they get the
    // unlock key with their certificate).
    assert!(keys_sealed(swarm.node(1), true));
    swarm.join(2, "manager", 1);
    assert!(keys_sealed(swarm.node(2), true));
    swarm.join(3, "manager", 1);
    reachable_everywhere(&swarm, "three reachable managers");
    // Something to look for on disk: a label in the store, a secret.
    assert!(swarm.write(1, 2, &format!("note={MARKER}")));
    let secret = swarm.node(1).run_with_input(
        {
            let mut cmd = std::process::Command::new(covey_tests::covey_bin());
            cmd.args(["-H", &swarm.node(1).host(), "secret", "create", "s1", "-"]);
            cmd
        },
        format!("{MARKER}-secret").as_bytes(),
    );
    assert!(secret.status.success(), "{}", stderr(&secret));
    eventually("node 2 has the label", Duration::from_secs(30), || {
        swarm
            .nodes(2)?
            .iter()
            .any(|n| n["Spec"]["Labels"]["note"] == MARKER)
            .then_some(())
    });

    // Restarted: locked. Nothing of the swarm answers, and it is not in the quorum.
    swarm.daemons[1].restart().expect("restarting node 2");
    assert_eq!(local_state(swarm.node(2)), "locked");
    let err = swarm.node(2).covey_err(&["node", "ls"]);
    assert!(
        err.contains("Swarm is encrypted and needs to be unlocked"),
        "{err}"
    );
    eventually("node 2 unreachable", Duration::from_secs(30), || {
        swarm
            .nodes(1)?
            .iter()
            .any(|n| n["ManagerStatus"]["Reachability"] == "unreachable")
            .then_some(())
    });
    // Its disk: no private key, label or secret in the clear anywhere in its state.
    let swarm_dir = swarm.node(2).data().join("swarm");
    for file in files_under(&swarm_dir) {
        for needle in [MARKER.as_bytes(), b"PRIVATE KEY"] {
            assert!(
                !contains(&file, needle),
                "{} holds {:?} in the clear",
                file.display(),
                String::from_utf8_lossy(needle)
            );
        }
    }

    // A wrong key, or something that is no key, is refused by name; the right one unlocks.
    let other = "SWMKEY-1-WuYH/IX284+lRcXuoVf38viIDK3HJEKY13MIHX+tTt8";
    let out = unlock(swarm.node(2), other);
    assert!(
        !out.status.success() && stderr(&out).contains("invalid key"),
        "{}",
        stderr(&out)
    );
    let out = unlock(swarm.node(2), "not-a-key");
    assert!(
        !out.status.success() && stderr(&out).contains("invalid unlock key"),
        "{}",
        stderr(&out)
    );
    assert_eq!(local_state(swarm.node(2)), "locked");
    let out = unlock(swarm.node(2), &key);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(local_state(swarm.node(2)), "active");
    reachable_everywhere(&swarm, "node 2 back in the quorum");
    assert!(eventually(
        "a write through the unlocked manager",
        Duration::from_secs(30),
        || swarm.write(2, 3, "after=unlock").then_some(true)
    ));
    let out = unlock(swarm.node(2), &key);
    assert!(
        stderr(&out).contains("swarm is not locked"),
        "{}",
        stderr(&out)
    );

    // Demoted: a worker is never locked (nothing would unlock it), so its key goes back
    // in the clear; promoted again, its keys are sealed.
    let node_key_sealed = || {
        std::fs::read(certs(swarm.node(3)).join("swarm-node.key"))
            .is_ok_and(|b| b.starts_with(SEALED))
    };
    let id3 = swarm.id_of(1, 3).expect("node 3's id");
    swarm.node(1).covey_ok(&["node", "demote", &id3]);
    eventually("node 3's key in the clear", Duration::from_secs(30), || {
        (!node_key_sealed()).then_some(())
    });
    swarm.node(1).covey_ok(&["node", "promote", &id3]);
    eventually(
        "node 3's keys sealed again",
        Duration::from_secs(30),
        || keys_sealed(swarm.node(3), true).then_some(()),
    );
    reachable_everywhere(&swarm, "node 3 a manager again");

    // Rotated: each manager reseals its keys; the old key no longer unlocks.
    let before = std::fs::read(certs(swarm.node(3)).join("swarm-node.key")).expect("key");
    let out = swarm.node(1).covey_ok(&["swarm", "unlock-key", "--rotate"]);
    let rotated = key_from(&out);
    assert_ne!(rotated, key);
    eventually("node 3 resealed its keys", Duration::from_secs(30), || {
        let now = std::fs::read(certs(swarm.node(3)).join("swarm-node.key")).ok()?;
        (now != before && keys_sealed(swarm.node(3), true)).then_some(())
    });
    swarm.daemons[2].restart().expect("restarting node 3");
    assert_eq!(local_state(swarm.node(3)), "locked");
    let out = unlock(swarm.node(3), &key);
    assert!(!out.status.success(), "the old key still unlocks");
    let out = unlock(swarm.node(3), &rotated);
    assert!(out.status.success(), "{}", stderr(&out));
    reachable_everywhere(&swarm, "node 3 back in the quorum");

    // Off: the keys go back in the clear, and a restart needs no key.
    swarm
        .node(1)
        .covey_ok(&["swarm", "update", "--autolock=false"]);
    eventually(
        "node 3's keys in the clear",
        Duration::from_secs(30),
        || keys_sealed(swarm.node(3), false).then_some(()),
    );
    swarm.daemons[2].restart().expect("restarting node 3");
    assert_eq!(local_state(swarm.node(3)), "active");
    reachable_everywhere(&swarm, "node 3 back without a key");
    let err = swarm.node(1).covey_err(&["swarm", "unlock-key"]);
    assert!(err.contains("no unlock key is set"), "{err}");
}
