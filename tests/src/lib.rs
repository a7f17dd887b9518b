//! The harness for covey's end-to-end tests: real registries, real daemons, real files.
//!
//! Everything a test starts is owned by a value whose `Drop` stops and removes it, so a
//! failing test leaves nothing running. Names carry the test's own prefix.
//!
//! The `covey` binary is the workspace's `target/debug/covey` (or `$COVEY_BIN`); the
//! README's test command builds it before the tests run.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

pub mod bench;
pub mod browser;
pub mod cluster;
pub mod dockerd;
pub mod overlay;
pub mod prometheus;
pub mod services;
pub mod swarm;

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

pub fn covey_bin() -> PathBuf {
    let bin = std::env::var_os("COVEY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/debug/covey"));
    assert!(
        bin.is_file(),
        "{} is missing: build it first with `cargo build -p covey`",
        bin.display()
    );
    bin
}

/// The test images, built once per test process by the project's fixture script.
pub fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = workspace().join("target/fixtures");
        // Test binaries run in parallel: one builds, the others wait for it.
        std::fs::create_dir_all(workspace().join("target")).expect("creating target/");
        let lock_file = std::fs::File::create(workspace().join("target/fixtures.lock"))
            .expect("creating the fixtures lock");
        let _lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .expect("locking fixtures");
        // Rebuilt whenever the script changes, so a stale target/ cannot hide a fixture.
        let script = workspace().join("tests/fixtures/build-images.py");
        let stamp =
            covey_images::Digest::of(&std::fs::read(&script).expect("reading build-images.py"))
                .to_string();
        if std::fs::read_to_string(dir.join(".stamp")).ok().as_deref() == Some(stamp.as_str()) {
            return dir;
        }
        let out = Command::new("python3")
            .arg(&script)
            .arg(&dir)
            .output()
            .expect("running build-images.py");
        assert!(
            out.status.success(),
            "build-images.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

/// A free TCP port on loopback. The registry script refuses a taken port, so a race
/// here fails loudly rather than silently.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding a loopback port")
}

/// How a registry checks credentials.
#[derive(Clone, Copy, Debug)]
pub enum Auth {
    /// HTTP basic auth against an htpasswd file.
    Basic,
    /// Bearer tokens from a token server that takes basic credentials, as Docker Hub.
    Token,
}

impl Auth {
    fn as_arg(self) -> &'static str {
        match self {
            Auth::Basic => "basic",
            Auth::Token => "token",
        }
    }
}

/// Debian's docker-registry on 127.0.0.1, with its own storage; stopped on drop.
pub struct Registry {
    dir: tempfile::TempDir,
    pub port: u16,
    /// `user:password` when the registry requires basic auth.
    creds: Option<String>,
    /// The network namespace it runs in (a [`cluster::Net`]'s switch), and the address
    /// nodes reach it on there.
    netns: Option<(String, std::net::Ipv4Addr)>,
}

impl Registry {
    pub fn start(prefix: &str) -> anyhow::Result<Self> {
        Self::start_with(prefix, None)
    }

    /// A registry that requires `user:password`, checked by the registry itself (basic
    /// auth) or by a token server (`Auth::Token`, Docker Hub's flow).
    pub fn start_with(prefix: &str, auth: Option<(&str, Auth)>) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("covey-{prefix}-registry-"))
            .tempdir()?;
        let port = free_port();
        let (d, p) = (dir.path().display().to_string(), port.to_string());
        let mut args = vec!["start", &d, &p];
        if let Some((creds, mode)) = auth {
            args.extend([creds, mode.as_arg()]);
        }
        run_script(None, &args)?;
        Ok(Self {
            dir,
            port,
            creds: auth.map(|(c, _)| c.to_string()),
            netns: None,
        })
    }

    /// A registry in `net`'s switch namespace, which every node of the network reaches
    /// at the switch's address on `port` (give the daemons `--insecure-registry` for
    /// [`host`](Registry::host)).
    pub fn start_on_port(prefix: &str, net: &cluster::Net, port: u16) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("covey-{prefix}-registry-"))
            .tempdir()?;
        let netns = Some((net.switch_ns(), net.switch_ip()));
        let (d, p) = (dir.path().display().to_string(), port.to_string());
        run_script(netns.as_ref(), &["start", &d, &p])?;
        Ok(Self {
            dir,
            port,
            creds: None,
            netns,
        })
    }

    pub fn host(&self) -> String {
        match &self.netns {
            Some((_, ip)) => format!("{ip}:{}", self.port),
            None => format!("127.0.0.1:{}", self.port),
        }
    }

    /// Pushes the fixture layout `oci/<layout>` as `<name>:latest`; returns the reference.
    pub fn push(&self, layout: &str, name: &str) -> anyhow::Result<String> {
        self.push_with(layout, name, &[])
    }

    /// As `push`, with extra skopeo arguments (`--format v2s2` for Docker schema 2).
    pub fn push_with(&self, layout: &str, name: &str, skopeo: &[&str]) -> anyhow::Result<String> {
        let src = fixtures().join("oci").join(layout);
        let reference = format!("{name}:latest");
        let (dir, port, src) = (
            self.dir.path().display().to_string(),
            self.port.to_string(),
            src.display().to_string(),
        );
        let mut args = vec!["push", &dir, &port, &src, &reference];
        if let Some(c) = &self.creds {
            args.extend(["--dest-creds", c]);
        }
        args.extend_from_slice(skopeo);
        run_script(self.netns.as_ref(), &args)?;
        Ok(format!("{}/{reference}", self.host()))
    }

    /// Where the registry keeps a blob's bytes, for tests that tamper with them.
    pub fn blob_path(&self, hex: &str) -> PathBuf {
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = run_script(
            self.netns.as_ref(),
            &["stop", &self.dir.path().display().to_string()],
        );
    }
}

fn run_script(netns: Option<&(String, std::net::Ipv4Addr)>, args: &[&str]) -> anyhow::Result<()> {
    let script = workspace().join("tests/fixtures/registry");
    let mut cmd = match netns {
        // In the namespace, the script's own probes and pushes use its loopback.
        Some((ns, _)) => {
            let mut cmd = cluster::netns_command(ns, &script);
            cmd.env("REGISTRY_LISTEN", "0.0.0.0");
            cmd
        }
        None => Command::new(&script),
    };
    let out = cmd
        .args(args)
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "registry {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// A `covey daemon` with its own data root and socket; stopped (SIGTERM) on drop.
pub struct Daemon {
    child: Option<Child>,
    pub root: tempfile::TempDir,
    pub socket: PathBuf,
    args: Vec<String>,
    env: Vec<(String, PathBuf)>,
    /// The network namespace the daemon runs in, if not the test's own.
    netns: Option<String>,
}

impl Daemon {
    pub fn start(prefix: &str, extra: &[&str]) -> anyhow::Result<Self> {
        Self::start_env(prefix, extra, &[])
    }

    /// As `start`, with extra environment for the daemon (`DOCKER_CONFIG`, say).
    pub fn start_env(prefix: &str, extra: &[&str], env: &[(&str, &Path)]) -> anyhow::Result<Self> {
        Self::launch(prefix, extra, env, None)
    }

    /// As `start`, inside network namespace `ns` (a [`cluster::Net`] node's). Its socket
    /// and data root are on the shared filesystem, so the CLIs reach it from here as usual.
    /// Declare the `Net` before the daemon, so that the daemon is dropped first.
    pub fn start_in_netns(prefix: &str, ns: &str, extra: &[&str]) -> anyhow::Result<Self> {
        Self::launch(prefix, extra, &[], Some(ns))
    }

    fn launch(
        prefix: &str,
        extra: &[&str],
        env: &[(&str, &Path)],
        netns: Option<&str>,
    ) -> anyhow::Result<Self> {
        let root = tempfile::Builder::new()
            .prefix(&format!("covey-{prefix}-node-"))
            .tempdir()?;
        let socket = root.path().join("run/covey.sock");
        let mut daemon = Self {
            child: None,
            socket,
            args: extra.iter().map(|s| s.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_path_buf()))
                .collect(),
            netns: netns.map(str::to_string),
            root,
        };
        daemon.spawn()?;
        Ok(daemon)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        // A daemon killed outright leaves its socket: readiness is a new one.
        let _ = std::fs::remove_file(&self.socket);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.path().join("daemon.log"))?;
        let mut cmd = match &self.netns {
            Some(ns) => cluster::netns_command(ns, covey_bin()),
            None => Command::new(covey_bin()),
        };
        let child = cmd
            .arg("daemon")
            .arg("--data-root")
            .arg(self.root.path().join("data"))
            .arg("--exec-root")
            .arg(self.root.path().join("run"))
            .args(&self.args)
            .env("COVEY_LOG", "info,covey_images=debug,libcgroups=error")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting covey daemon")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.socket.exists() {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!("covey daemon exited with {status}: {}", self.log());
            }
            if Instant::now() > deadline {
                bail!(
                    "covey daemon did not create its socket in 20 s: {}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Stops the daemon (SIGTERM) and starts it again on the same data: what an upgrade
    /// or a crash and a systemd restart look like.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.spawn()
    }

    /// The daemon's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the daemon outright (SIGKILL), as a crash or the OOM killer would; `start_again`
    /// brings it back on the same data.
    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the daemon again after `stop` or `crash`.
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        self.spawn()
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    pub fn data(&self) -> PathBuf {
        self.root.path().join("data")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("daemon.log")).unwrap_or_default()
    }

    /// Runs the covey CLI against this daemon.
    pub fn covey(&self, args: &[&str]) -> Output {
        Command::new(covey_bin())
            .arg("-H")
            .arg(self.host())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running covey")
    }

    /// Runs the covey CLI and returns its stdout, failing the test (with both outputs
    /// and the daemon's log) if it fails.
    pub fn covey_ok(&self, args: &[&str]) -> String {
        self.succeeded("covey", args, self.covey(args))
    }

    /// Runs the covey CLI expecting failure; returns stderr.
    pub fn covey_err(&self, args: &[&str]) -> String {
        failed("covey", args, self.covey(args))
    }

    /// As [`Daemon::covey_ok`], with the docker CLI.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        self.succeeded("docker", args, self.docker(args))
    }

    /// As [`Daemon::covey_err`], with the docker CLI.
    pub fn docker_err(&self, args: &[&str]) -> String {
        failed("docker", args, self.docker(args))
    }

    fn succeeded(&self, cli: &str, args: &[&str], out: Output) -> String {
        assert!(
            out.status.success(),
            "{cli} {args:?} failed:\nstdout: {}\nstderr: {}\ndaemon log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs Debian's docker CLI (client only) against this daemon.
    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new(DOCKER_CLI)
            .args(args)
            .env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", self.root.path().join("docker-config"))
            .stdin(Stdio::null())
            .output()
            .expect("running the docker CLI")
    }

    /// Runs Debian's docker CLI with `input` on its stdin.
    pub fn docker_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        let mut cmd = Command::new(DOCKER_CLI);
        cmd.args(args);
        self.run_with_input(cmd, input)
    }

    /// Runs `cmd` with this daemon as DOCKER_HOST and `input` on its stdin.
    pub fn run_with_input(&self, mut cmd: Command, input: &[u8]) -> Output {
        use std::io::Write;
        let mut child = cmd
            .env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", self.root.path().join("docker-config"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning a client");
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(input);
        }
        child.wait_with_output().expect("waiting for a client")
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // The daemon leaves containers running when it stops, by design: a test removes
        // its own, so nothing outlives it. A swarm node leaves first, so that its agent
        // makes no more (bounded: a manager without quorum waits on Raft).
        if self.child.is_some() {
            let _ = Command::new("timeout")
                .arg("10")
                .arg(covey_bin())
                .arg("-H")
                .arg(self.host())
                .args(["swarm", "leave", "--force"])
                .output();
        }
        let ids = self.covey(&["container", "ls", "-aq"]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = self.covey(&["container", "rm", "-f", id]);
        }
        self.stop();
        unmount_under(self.root.path());
    }
}

/// `out`'s stderr, failing the test if the command succeeded.
fn failed(cli: &str, args: &[&str], out: Output) -> String {
    assert!(
        !out.status.success(),
        "{cli} {args:?} should have failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Unmounts whatever is mounted under `dir`, deepest first: a node that did not leave its
/// swarm keeps its network namespaces mounted (as a daemon restart should find them), and
/// its directory could not be removed.
fn unmount_under(dir: &Path) {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|p| Path::new(p).starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Writes a docker `config.json` holding `user:password` for `registry` into `dir`, as
/// `docker login` would.
pub fn write_docker_config(dir: &Path, registry: &str, creds: &str) -> anyhow::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let mut b64 = Vec::new();
    let mut child = Command::new("base64")
        .arg("-w0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("base64 stdin")?
        .write_all(creds.as_bytes())?;
    b64.extend(child.wait_with_output()?.stdout);
    let auth = String::from_utf8(b64)?;
    let json = serde_json::json!({ "auths": { registry: { "auth": auth } } });
    std::fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&json)?)?;
    Ok(())
}

/// Debian's docker.io client; /usr/local/bin may hold another one.
pub const DOCKER_CLI: &str = "/usr/bin/docker";

/// Files under `dir`, recursively (for "nothing was kept" checks).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
