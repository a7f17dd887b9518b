//! The stock docker CLI (Debian's docker.io, its client only) against a covey swarm: the
//! commands a Swarm user types for networks, configs and stacks, their output, and their
//! errors for bad input.

use std::time::Duration;

use covey_tests::services::*;
use covey_tests::stderr;
use covey_tests::swarm::eventually;

#[test]
fn networks_configs_and_stacks_through_the_docker_cli() {
    let (swarm, _registry, image) = swarm("dkcli", 1);
    let node = swarm.node(1);
    let ok = |args: &[&str]| node.docker_ok(args);
    let err = |args: &[&str]| node.docker_err(args);

    // Networks.
    ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--subnet",
        "10.44.0.0/24",
        "--label",
        "team=a",
        "backend",
    ]);
    let ls = ok(&[
        "network",
        "ls",
        "--filter",
        "driver=overlay",
        "--format",
        "{{.Name}} {{.Scope}}",
    ]);
    assert!(
        ls.contains("backend swarm") && ls.contains("ingress swarm"),
        "{ls}"
    );
    let subnet = ok(&[
        "network",
        "inspect",
        "backend",
        "--format",
        "{{(index .IPAM.Config 0).Subnet}} {{.Labels.team}}",
    ]);
    assert_eq!(subnet.trim(), "10.44.0.0/24 a");
    let e = err(&["network", "create", "-d", "overlay", "backend"]);
    assert!(e.contains("already exists"), "{e}");
    let e = err(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--subnet",
        "10.44.0.128/25",
        "clash",
    ]);
    assert!(e.contains("overlaps"), "{e}");
    let e = err(&["network", "inspect", "nosuch"]);
    assert!(e.contains("nosuch"), "{e}");

    // Services: errors as Swarm users know them.
    let e = err(&[
        "service",
        "create",
        "--name",
        "x",
        "--replicas",
        "two",
        &image,
    ]);
    assert!(e.contains("invalid argument"), "{e}");
    ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "api",
        "--network",
        "backend",
        &image,
        "sleep",
        "1d",
    ]);
    let e = err(&[
        "service", "create", "-d", "--name", "api", &image, "sleep", "1d",
    ]);
    assert!(e.contains("already exists"), "{e}");
    let e = err(&["service", "inspect", "nosuch"]);
    assert!(e.contains("nosuch"), "{e}");
    let e = err(&[
        "service",
        "create",
        "-d",
        "--name",
        "lost",
        "--network",
        "nosuch",
        &image,
    ]);
    assert!(e.contains("nosuch"), "{e}");
    let e = err(&["network", "rm", "backend"]);
    assert!(e.contains("in use by service api"), "{e}");

    // Configs.
    let id = node.docker_with_input(
        &["config", "create", "--label", "env=test", "app.conf", "-"],
        b"listen 80\n",
    );
    assert!(id.status.success(), "{}", stderr(&id));
    let ls = ok(&["config", "ls", "--format", "{{.Name}}"]);
    assert_eq!(ls.trim(), "app.conf");
    let data = ok(&[
        "config",
        "inspect",
        "app.conf",
        "--format",
        "{{json .Spec.Data}} {{.Spec.Labels.env}}",
    ]);
    // "listen 80\n" in base64.
    assert_eq!(data.trim(), "\"bGlzdGVuIDgwCg==\" test");
    let e = node.docker_with_input(&["config", "create", "app.conf", "-"], b"again\n");
    assert!(stderr(&e).contains("already exists"), "{}", stderr(&e));
    // A task gets it as a file, where, owned and moded as asked; in use, it stays.
    ok(&[
        "service",
        "create",
        "-d",
        "--name",
        "cfg",
        "--config",
        "source=app.conf,target=/etc/app.conf,uid=1000,gid=100,mode=0440",
        &image,
        "sleep",
        "1d",
    ]);
    wait_running(&swarm, "cfg", 1);
    let ctr = eventually("cfg's container", Duration::from_secs(20), || {
        containers_on(&swarm, 1, "cfg").into_iter().next()
    });
    let file = ok(&[
        "exec",
        &ctr,
        "sh",
        "-c",
        "stat -c '%a %u %g' /etc/app.conf; cat /etc/app.conf",
    ]);
    assert_eq!(file, "440 1000 100\nlisten 80\n");
    let e = err(&["config", "rm", "app.conf"]);
    assert!(e.contains("in use by the following service: cfg"), "{e}");
    let e = err(&[
        "service", "create", "-d", "--name", "nocfg", "--config", "nosuch", &image,
    ]);
    assert!(e.contains("nosuch"), "{e}");
    // The covey CLI's flag does the same.
    node.covey_ok(&[
        "service", "create", "-d", "--name", "cfg2", "--config", "app.conf", &image, "sleep", "1d",
    ]);
    wait_running(&swarm, "cfg2", 1);
    let ctr2 = eventually("cfg2's container", Duration::from_secs(20), || {
        containers_on(&swarm, 1, "cfg2").into_iter().next()
    });
    assert_eq!(ok(&["exec", &ctr2, "cat", "/app.conf"]), "listen 80\n");
    ok(&["service", "rm", "cfg", "cfg2"]);
    eventually("app.conf free again", Duration::from_secs(30), || {
        node.docker(&["config", "rm", "app.conf"])
            .status
            .success()
            .then_some(())
    });
    assert_eq!(ok(&["config", "ls", "-q"]).trim(), "");

    // A stack: its network, its services, published through the mesh; then gone.
    let dir = tempfile::tempdir().expect("a temp dir");
    let compose = dir.path().join("compose.yml");
    std::fs::write(
        &compose,
        format!(
            "version: \"3.8\"\nservices:\n  web:\n    image: {image}\n    command: [\"sleep\", \"1d\"]\n    ports:\n      - \"8099:80\"\n    deploy:\n      replicas: 2\n  worker:\n    image: {image}\n    command: [\"sleep\", \"1d\"]\n"
        ),
    )
    .expect("writing the compose file");
    let compose = compose.to_string_lossy().to_string();
    ok(&["stack", "deploy", "-c", &compose, "demo"]);
    let stacks = ok(&["stack", "ls", "--format", "{{.Name}} {{.Services}}"]);
    assert_eq!(stacks.trim(), "demo 2");
    let services = ok(&[
        "stack",
        "services",
        "demo",
        "--format",
        "{{.Name}} {{.Ports}}",
    ]);
    assert!(services.contains("demo_web *:8099->80/tcp"), "{services}");
    assert!(services.contains("demo_worker"), "{services}");
    assert!(ok(&["network", "ls", "--format", "{{.Name}}"]).contains("demo_default"));
    wait_running(&swarm, "demo_web", 2);
    eventually("the stack's tasks listed", Duration::from_secs(20), || {
        let ps = ok(&[
            "stack",
            "ps",
            "demo",
            "--format",
            "{{.Name}} {{.CurrentState}}",
        ]);
        let running = ps.lines().filter(|l| l.contains("Running")).count();
        (running == 3 && !ps.contains("api")).then_some(())
    });
    ok(&["stack", "rm", "demo"]);
    eventually("the stack gone", Duration::from_secs(30), || {
        let ls = ok(&["stack", "ls", "--format", "{{.Name}}"]);
        let nets = ok(&["network", "ls", "--format", "{{.Name}}"]);
        (ls.trim().is_empty() && !nets.contains("demo_default")).then_some(())
    });

    // A malformed compose file is the CLI's own error, and nothing is made.
    std::fs::write(
        dir.path().join("bad.yml"),
        "services:\n  web:\n    image: [broken\n",
    )
    .expect("writing");
    let e = err(&[
        "stack",
        "deploy",
        "-c",
        &dir.path().join("bad.yml").to_string_lossy(),
        "bad",
    ]);
    assert!(e.contains("yaml"), "{e}");
    let stacks = ok(&["stack", "ls", "--format", "{{.Name}}"]);
    assert!(!stacks.contains("bad"), "{stacks}");
}
