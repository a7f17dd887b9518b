//! Overlay networks and the routing mesh on a swarm of real daemons, each node in its own
//! network namespace: tasks on one overlay reach each other across nodes, tasks on another
//! overlay cannot, and a published port answers on every node.

use std::collections::BTreeSet;
use std::time::Duration;

use covey_tests::overlay::*;
use covey_tests::services::*;
use covey_tests::swarm::eventually;
use covey_tests::{stderr, stdout};

#[test]
fn overlays_connect_tasks_across_nodes_and_the_mesh_answers_everywhere() {
    let (swarm, _registry, image) = swarm("ovl", 3);
    let node1 = swarm.node(1);
    node1.covey_ok(&["network", "create", "-d", "overlay", "backend"]);
    node1.covey_ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--subnet",
        "10.99.0.0/24",
        "other",
    ]);

    // Two web tasks on the workers, published through the mesh; clients on the manager.
    node1.covey_ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--network",
        "backend",
        "--replicas",
        "2",
        "--replicas-max-per-node",
        "1",
        "--constraint",
        "node.role==worker",
        "-p",
        "8080:80",
        &image,
        "sh",
        "-c",
        WEB,
    ]);
    for (name, network) in [("client", "backend"), ("outsider", "other")] {
        node1.covey_ok(&[
            "service",
            "create",
            "-d",
            "--name",
            name,
            "--network",
            network,
            "--constraint",
            "node.role==manager",
            &image,
            "sleep",
            "1d",
        ]);
    }
    wait_running(&swarm, "web", 2);
    wait_running(&swarm, "client", 1);
    wait_running(&swarm, "outsider", 1);
    let ls = node1.covey_ok(&["service", "ls"]);
    assert!(ls.contains("*:8080->80/tcp"), "{ls}");

    // Across nodes on one overlay: the client on node 1 reaches both web tasks.
    let webs = addresses(&swarm, "web", "backend");
    assert_eq!(webs.len(), 2, "{webs:?}");
    assert!(webs.iter().all(|a| a.starts_with("10.0.")), "{webs:?}");
    let client = container_of(&swarm, 1, "client");
    let mut hosts = BTreeSet::new();
    for web in &webs {
        let got = eventually(
            &format!("the client reaching {web}"),
            Duration::from_secs(20),
            || fetch_from(&swarm, 1, &client, web, 80),
        );
        hosts.insert(got);
    }
    assert_eq!(hosts.len(), 2, "two tasks answered: {hosts:?}");

    // Service discovery: the name is the VIP, tasks.NAME every task.
    let vip = vip_of(&swarm, "web", "backend");
    let names = |container: &str, name: &str| {
        let out = node1.docker(&["exec", container, "busybox", "nslookup", name]);
        stdout(&out)
    };
    eventually(
        "web's name resolving to its VIP",
        Duration::from_secs(20),
        || {
            names(&client, "web")
                .contains(&format!("Address: {vip}"))
                .then_some(())
        },
    );
    let all = names(&client, "tasks.web");
    assert!(
        webs.iter().all(|w| all.contains(&format!("Address: {w}"))),
        "{all}"
    );
    // The VIP, by name, spreads requests over both tasks.
    eventually("web through its VIP", Duration::from_secs(20), || {
        fetch_from(&swarm, 1, &client, "web", 80)
    });
    let mut by_vip = BTreeSet::new();
    for _ in 0..6 {
        by_vip.insert(fetch_from(&swarm, 1, &client, "web", 80).expect("web through its VIP"));
    }
    assert_eq!(by_vip, hosts, "both tasks answer on the VIP");

    // Another overlay is another network: no route from it to backend's tasks.
    let outsider = container_of(&swarm, 1, "outsider");
    let out_addr = addresses(&swarm, "outsider", "other");
    assert!(out_addr[0].starts_with("10.99.0."), "{out_addr:?}");
    assert_eq!(
        fetch_from(&swarm, 1, &outsider, &webs[0], 80),
        None,
        "a task on another overlay reached backend"
    );
    let hidden = names(&outsider, "web");
    assert!(
        !hidden.contains(&vip),
        "web is visible from another overlay: {hidden}"
    );

    // The routing mesh: node 1 runs no web task, yet answers on 8080, from both tasks.
    let node1_ip = swarm.net.node_ip(1).to_string();
    let mut seen = BTreeSet::new();
    eventually(
        "the mesh answering on node 1 from both tasks",
        Duration::from_secs(30),
        || {
            if let Some(host) = fetch_on_node(&swarm, 2, &node1_ip, 8080) {
                seen.insert(host);
            }
            (seen == hosts).then_some(())
        },
    );
    // Every node answers, also one that runs a task.
    for i in 2..=3 {
        let ip = swarm.net.node_ip(i).to_string();
        let got = eventually("the mesh on a worker", Duration::from_secs(20), || {
            fetch_on_node(&swarm, 1, &ip, 8080)
        });
        assert!(hosts.contains(&got), "{got} is not one of {hosts:?}");
    }

    // A task that goes stops taking traffic: scaled to one, the VIP only ever leads to
    // the task left, and no request fails.
    node1.covey_ok(&["service", "scale", "-d", "web=1"]);
    wait_running(&swarm, "web", 1);
    let left = eventually("one web address left", Duration::from_secs(20), || {
        let a = addresses(&swarm, "web", "backend");
        (a.len() == 1).then(|| a[0].clone())
    });
    let left_host = fetch_from(&swarm, 1, &client, &left, 80).expect("the task left");
    eventually(
        "the VIP leading to the task left only",
        Duration::from_secs(20),
        || {
            (0..4)
                .all(|_| fetch_from(&swarm, 1, &client, "web", 80).as_ref() == Some(&left_host))
                .then_some(())
        },
    );

    // A network in use cannot go; once its services have, it can.
    let err = node1.covey_err(&["network", "rm", "backend"]);
    assert!(
        err.contains("network backend is in use by service"),
        "{err}"
    );
    node1.covey_ok(&["service", "rm", "web", "client"]);
    eventually("the mesh dropping 8080", Duration::from_secs(30), || {
        fetch_on_node(&swarm, 2, &node1_ip, 8080)
            .is_none()
            .then_some(())
    });
    eventually("backend removed", Duration::from_secs(30), || {
        let out = node1.covey(&["network", "rm", "backend"]);
        out.status.success().then_some(()).or_else(|| {
            eprintln!("{}", stderr(&out));
            None
        })
    });
}

#[test]
fn tasks_reach_out_and_host_mode_ports_answer_where_tasks_run() {
    let (swarm, registry, image) = swarm("ovlhost", 2);
    let node1 = swarm.node(1);
    node1.covey_ok(&["network", "create", "-d", "overlay", "apps"]);
    // A task on an overlay reaches beyond it: the registry on the nodes' own network.
    node1.covey_ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "out",
        "--network",
        "apps",
        "--constraint",
        "node.role==manager",
        &image,
        "sleep",
        "1d",
    ]);
    // A host-mode port, on no overlay at all: only the worker running it answers.
    node1.covey_ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "hosty",
        "--publish",
        "mode=host,published=8090,target=80",
        "--constraint",
        "node.role==worker",
        &image,
        "sh",
        "-c",
        WEB,
    ]);
    wait_running(&swarm, "out", 1);
    wait_running(&swarm, "hosty", 1);
    let out = container_of(&swarm, 1, "out");
    let host = registry.host();
    let (ip, port) = host.rsplit_once(':').expect("registry host:port");
    let port: u16 = port.parse().expect("registry port");
    eventually(
        "the registry from an overlay task",
        Duration::from_secs(20),
        || fetch_from(&swarm, 1, &out, ip, port),
    );

    let worker = swarm.net.node_ip(2).to_string();
    let manager = swarm.net.node_ip(1).to_string();
    let hosty = container_of(&swarm, 2, "hosty");
    let got = eventually(
        "the host-mode port on the worker",
        Duration::from_secs(20),
        || fetch_on_node(&swarm, 1, &worker, 8090),
    );
    let hostname = stdout(&swarm.node(2).docker(&["exec", &hosty, "hostname"]));
    assert_eq!(got, hostname.trim(), "answered by another than the task");
    assert_eq!(
        fetch_on_node(&swarm, 2, &manager, 8090),
        None,
        "a node with no task of the service answered its host-mode port"
    );
}

#[test]
fn after_a_power_cut_with_no_manager_tasks_find_their_overlay_peers_again() {
    let (mut swarm, _registry, image) = swarm("ovboot", 3);
    let node1 = swarm.node(1);
    node1.covey_ok(&["network", "create", "-d", "overlay", "edge"]);
    node1.covey_ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "peer",
        "--mode",
        "global",
        "--network",
        "edge",
        "--constraint",
        "node.role==worker",
        &image,
        "sh",
        "-c",
        WEB,
    ]);
    wait_running(&swarm, "peer", 2);
    let on3 = container_of(&swarm, 3, "peer");
    let host3 = stdout(&swarm.node(3).docker(&["exec", &on3, "hostname"]))
        .trim()
        .to_string();
    let addrs = addresses(&swarm, "peer", "edge");
    assert_eq!(addrs.len(), 2, "{addrs:?}");
    let on2 = container_of(&swarm, 2, "peer");
    eventually(
        "node 2 reaching node 3's task",
        Duration::from_secs(20),
        || {
            addrs
                .iter()
                .find(|a| fetch_from(&swarm, 2, &on2, a, 80).as_deref() == Some(host3.as_str()))
        },
    );

    // The manager goes; then node 2 loses power: its daemon, helper and containers die,
    // and what lived in /run (the overlay's namespaces and devices) is gone.
    swarm.daemons[0].crash();
    let pids: Vec<String> = containers_on(&swarm, 2, "peer")
        .iter()
        .map(|c| pid_of(&swarm, 2, c))
        .collect();
    let victims = power_cut(&mut swarm, 2, pids);
    let netns = swarm.node(2).root.path().join("run/netns");
    for entry in std::fs::read_dir(&netns)
        .expect("node 2's namespaces")
        .flatten()
    {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(entry.path())
            .status();
        let _ = std::fs::remove_file(entry.path());
    }

    // Back up with no manager: its task runs again and reaches node 3's, by address and
    // through the service's name, from the network map it kept.
    swarm.daemons[1].start_again().expect("restarting node 2");
    let again = eventually(
        "node 2's task running again, offline",
        Duration::from_secs(60),
        || {
            containers_on(&swarm, 2, "peer").into_iter().find(|c| {
                let pid = pid_of(&swarm, 2, c);
                pid != "0" && !pid.is_empty() && !victims.contains(&pid)
            })
        },
    );
    eventually(
        "node 2's restarted task reaching node 3's, offline",
        Duration::from_secs(30),
        || {
            addrs
                .iter()
                .find(|a| fetch_from(&swarm, 2, &again, a, 80).as_deref() == Some(host3.as_str()))
        },
    );
    eventually(
        "the service's name, offline",
        Duration::from_secs(30),
        || fetch_from(&swarm, 2, &again, "peer", 80),
    );
}
