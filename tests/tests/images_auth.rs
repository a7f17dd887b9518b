//! Registries that require credentials: from the daemon's docker config file, and from the
//! docker CLI's own login, sent with each request.

use covey_tests::{stderr, stdout, write_docker_config, Daemon, Registry};

const CREDS: &str = "edge:s3cret-pi";

#[test]
fn credentials_from_the_docker_config_file() {
    let reg = Registry::start_with("auth-file", Some(CREDS)).unwrap();
    let image = reg.push("busybox", "private/busybox").unwrap();

    let anonymous = Daemon::start("auth-none", &[]).unwrap();
    let err = anonymous.covey_err(&["image", "pull", &image]);
    assert!(err.contains("unauthorized"), "{err}");

    let config = tempfile::tempdir().unwrap();
    write_docker_config(config.path(), &reg.host(), CREDS).unwrap();
    let node = Daemon::start_env("auth-file", &[], &[("DOCKER_CONFIG", config.path())]).unwrap();
    node.covey_ok(&["image", "pull", &image]);
    assert!(node.covey_ok(&["image", "ls"]).contains("private/busybox"));

    write_docker_config(config.path(), &reg.host(), "edge:wrong").unwrap();
    let wrong = Daemon::start_env("auth-wrong", &[], &[("DOCKER_CONFIG", config.path())]).unwrap();
    let err = wrong.covey_err(&["image", "pull", &image]);
    assert!(err.contains("unauthorized"), "{err}");
}

#[test]
fn credentials_from_the_docker_cli() {
    let reg = Registry::start_with("auth-cli", Some(CREDS)).unwrap();
    let image = reg.push("busybox", "private/busybox").unwrap();
    let node = Daemon::start("auth-cli", &[]).unwrap();
    // The harness points the docker CLI's DOCKER_CONFIG here; the daemon has no config.
    write_docker_config(&node.root.path().join("docker-config"), &reg.host(), CREDS).unwrap();
    let out = node.docker(&["pull", &image]);
    assert!(out.status.success(), "{}\n{}", stderr(&out), node.log());
    assert!(
        stdout(&out).contains("Downloaded newer image"),
        "{}",
        stdout(&out)
    );
}
