//! Registries that require credentials, checked by the registry (basic auth) or by a token
//! server (Docker Hub's bearer flow): credentials from the daemon's docker config file, and
//! from the docker CLI's own login, sent with each request.

use covey_tests::{stderr, stdout, write_docker_config, Auth, Daemon, Registry};

const CREDS: &str = "edge:s3cret-pi";

fn from_the_docker_config_file(auth: Auth) {
    let prefix = format!("auth-file-{auth:?}");
    let reg = Registry::start_with(&prefix, Some((CREDS, auth))).unwrap();
    let image = reg.push("busybox", "private/busybox").unwrap();

    let anonymous = Daemon::start(&prefix, &[]).unwrap();
    let err = anonymous.covey_err(&["image", "pull", &image]);
    assert!(err.contains("unauthorized"), "{err}");

    let config = tempfile::tempdir().unwrap();
    write_docker_config(config.path(), &reg.host(), CREDS).unwrap();
    let node = Daemon::start_env(&prefix, &[], &[("DOCKER_CONFIG", config.path())]).unwrap();
    node.covey_ok(&["image", "pull", &image]);
    assert!(node.covey_ok(&["image", "ls"]).contains("private/busybox"));

    write_docker_config(config.path(), &reg.host(), "edge:wrong").unwrap();
    let wrong = Daemon::start_env(&prefix, &[], &[("DOCKER_CONFIG", config.path())]).unwrap();
    let err = wrong.covey_err(&["image", "pull", &image]);
    assert!(err.contains("unauthorized"), "{err}");
}

fn from_the_docker_cli(auth: Auth) {
    let prefix = format!("auth-cli-{auth:?}");
    let reg = Registry::start_with(&prefix, Some((CREDS, auth))).unwrap();
    let image = reg.push("busybox", "private/busybox").unwrap();
    let node = Daemon::start(&prefix, &[]).unwrap();
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

#[test]
fn basic_auth_credentials_from_the_docker_config_file() {
    from_the_docker_config_file(Auth::Basic);
}

#[test]
fn bearer_token_credentials_from_the_docker_config_file() {
    from_the_docker_config_file(Auth::Token);
}

#[test]
fn basic_auth_credentials_from_the_docker_cli() {
    from_the_docker_cli(Auth::Basic);
}

#[test]
fn bearer_token_credentials_from_the_docker_cli() {
    from_the_docker_cli(Auth::Token);
}
