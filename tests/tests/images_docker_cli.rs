//! The stock docker CLI (Debian's docker.io, client only) is a client of covey's API.

use covey_tests::{fixtures, stderr, stdout, Daemon, Registry};

#[test]
fn docker_cli_pulls_lists_loads_and_removes() {
    let reg = Registry::start("docker").unwrap();
    let busybox = reg.push("busybox", "busybox").unwrap();
    let node = Daemon::start("docker", &[]).unwrap();

    let out = node.docker(&[
        "version",
        "--format",
        "{{.Server.Version}} {{.Server.APIVersion}}",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        format!("{} 1.43", env!("CARGO_PKG_VERSION"))
    );

    let out = node.docker(&["pull", &busybox]);
    assert!(out.status.success(), "{}\n{}", stderr(&out), node.log());
    let text = stdout(&out);
    assert!(
        text.contains("Pull complete") && text.contains("Status: Downloaded newer image"),
        "{text}"
    );
    let out = node.docker(&["pull", &busybox]);
    assert!(
        stdout(&out).contains("Image is up to date"),
        "{}",
        stdout(&out)
    );

    let out = node.docker(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}"]);
    assert_eq!(
        stdout(&out).trim(),
        format!("{}/busybox:latest 1.98MB", reg.host())
    );
    let out = node.docker(&[
        "image",
        "inspect",
        "--format",
        "{{.Os}}/{{.Architecture}}",
        &busybox,
    ]);
    assert_eq!(stdout(&out).trim(), "linux/amd64");

    let out = node.docker(&[
        "load",
        "-i",
        fixtures().join("busybox-save.tar").to_str().unwrap(),
    ]);
    assert_eq!(
        stdout(&out).trim(),
        "Loaded image: covey-test/saved:latest",
        "{}",
        stderr(&out)
    );

    let out = node.docker(&["rmi", "covey-test/saved"]);
    assert_eq!(stdout(&out).trim(), "Untagged: covey-test/saved:latest");
    let out = node.docker(&["rmi", &busybox]);
    assert!(
        stdout(&out).contains("Deleted: sha256:"),
        "{}",
        stdout(&out)
    );

    let out = node.docker(&["rmi", "nope"]);
    assert!(
        !out.status.success() && stderr(&out).contains("No such image: nope"),
        "{}",
        stderr(&out)
    );
    let out = node.docker(&["pull", &format!("{}/nope", reg.host())]);
    assert!(
        stderr(&out).contains("Error response from daemon: No such image"),
        "{}",
        stderr(&out)
    );
    let out = node.docker(&["service", "ls"]);
    assert!(
        !out.status.success() && stderr(&out).contains("not a swarm manager"),
        "{}",
        stderr(&out)
    );
    // Volumes work now (`tests/volumes.rs`); `docker system df` is not served.
    let out = node.docker(&["system", "df"]);
    assert!(
        !out.status.success() && stderr(&out).contains("not supported by covey"),
        "{}",
        stderr(&out)
    );
}
