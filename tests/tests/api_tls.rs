//! The API over TCP, opted into as with dockerd (`-H tcp://… --tlsverify`): the stock
//! docker CLI with a client certificate the daemon's CA signed is served; a client with
//! no certificate, or one another CA signed, is refused; and without the TLS flags the
//! daemon will not listen on TCP at all.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use covey_tests::{stderr, stdout, Daemon, DOCKER_CLI};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A CA that writes certificates it signed into `dir`.
struct Ca {
    dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new(dir: &Path, name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        let dir = dir.join(name);
        std::fs::create_dir_all(&dir).expect("CA dir");
        std::fs::write(dir.join("ca.pem"), cert.pem()).expect("ca.pem");
        Ca {
            dir,
            issuer: Issuer::new(params, key),
        }
    }

    /// `<name>-cert.pem` and `<name>-key.pem`, for the given names and purpose.
    fn issue(
        &self,
        name: &str,
        sans: &[&str],
        purpose: ExtendedKeyUsagePurpose,
    ) -> (PathBuf, PathBuf) {
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(sans).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![purpose];
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("certificate");
        let (cert_path, key_path) = (
            self.dir.join(format!("{name}-cert.pem")),
            self.dir.join(format!("{name}-key.pem")),
        );
        std::fs::write(&cert_path, cert.pem()).expect("cert");
        std::fs::write(&key_path, key.serialize_pem()).expect("key");
        (cert_path, key_path)
    }

    fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The docker CLI over TCP with TLS, `cert` and `key` its client identity.
fn docker_tls(dir: &Path, host: &str, ca: &Path, cert: &Path, key: &Path, args: &[&str]) -> Output {
    Command::new(DOCKER_CLI)
        .args([
            "--tlsverify",
            "--tlscacert",
            s(ca),
            "--tlscert",
            s(cert),
            "--tlskey",
            s(key),
        ])
        .args(["-H", host])
        .args(args)
        .env_remove("DOCKER_HOST")
        .env("DOCKER_CONFIG", dir.join("docker-config"))
        .output()
        .expect("running the docker CLI")
}

#[test]
fn the_api_over_tcp_serves_only_certified_clients() {
    let dir = tempfile::Builder::new()
        .prefix("covey-tls-")
        .tempdir()
        .expect("tempdir");
    let ca = Ca::new(dir.path(), "fleet");
    let (server_cert, server_key) = ca.issue(
        "server",
        &["127.0.0.1", "localhost"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (client_cert, client_key) = ca.issue("admin", &[], ExtendedKeyUsagePurpose::ClientAuth);
    let port = covey_tests::free_port();
    let host = format!("tcp://127.0.0.1:{port}");
    let node = Daemon::start(
        "tls",
        &[
            "-H",
            &host,
            "--tlsverify",
            "--tlscacert",
            s(&ca.ca()),
            "--tlscert",
            s(&server_cert),
            "--tlskey",
            s(&server_key),
        ],
    )
    .expect("starting a daemon with TCP");

    let out = docker_tls(
        dir.path(),
        &host,
        &ca.ca(),
        &client_cert,
        &client_key,
        &[
            "info",
            "--format",
            "{{.ServerVersion}} {{.Swarm.LocalNodeState}}",
        ],
    );
    assert!(out.status.success(), "{}\n{}", stderr(&out), node.log());
    assert_eq!(
        stdout(&out).trim(),
        format!("{} inactive", env!("CARGO_PKG_VERSION"))
    );
    // The unix socket is served as well: the covey CLI speaks to it.
    node.covey_ok(&["version"]);

    // No certificate: the handshake fails, nothing is answered.
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert", s(&ca.ca())])
        .arg(format!("https://127.0.0.1:{port}/_ping"))
        .output()
        .expect("running curl");
    assert!(
        !out.status.success() && !stdout(&out).contains("OK"),
        "a client without a certificate was served: {}",
        stdout(&out)
    );

    // A certificate another CA signed (the server still verifies as ours).
    let rogue = Ca::new(dir.path(), "rogue");
    let (rogue_cert, rogue_key) = rogue.issue("intruder", &[], ExtendedKeyUsagePurpose::ClientAuth);
    let out = docker_tls(
        dir.path(),
        &host,
        &ca.ca(),
        &rogue_cert,
        &rogue_key,
        &["info"],
    );
    assert!(
        !out.status.success(),
        "a client another CA certified was served: {}",
        stdout(&out)
    );
    assert!(
        node.log().contains("API client refused"),
        "the refusals are logged: {}",
        node.log()
    );
}

#[test]
fn tcp_without_client_certificates_is_refused() {
    let port = covey_tests::free_port();
    let host = format!("tcp://127.0.0.1:{port}");
    let err = match Daemon::start("notls", &["-H", &host]) {
        Ok(_) => panic!("the daemon listened on plaintext TCP"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains("without TLS client certificates") && err.contains("--tlsverify"),
        "{err}"
    );
}
