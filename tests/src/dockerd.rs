//! Docker Swarm nodes for the benchmarks that measure covey against it: Debian's
//! docker.io, one dockerd with a containerd of its own per node, in a [`Net`] node's
//! namespace, every file under one directory.
//!
//! [`Net`]: crate::cluster::Net

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::bench::{kill_netns, log_tail, remove_tree, Cli};
use crate::cluster::netns_command;
use crate::DOCKER_CLI;

pub const DOCKERD: &str = "/usr/sbin/dockerd";
pub const CONTAINERD: &str = "/usr/bin/containerd";

/// Why Docker cannot run here, if a binary is missing.
pub fn docker_preflight() -> anyhow::Result<()> {
    for bin in [DOCKERD, CONTAINERD, DOCKER_CLI] {
        ensure!(
            Path::new(bin).is_file(),
            "{bin} is missing (scripts/install-deps installs docker.io)"
        );
    }
    Ok(())
}

pub fn docker_version() -> anyhow::Result<String> {
    let out = Command::new(DOCKERD).arg("--version").output()?;
    ensure!(out.status.success(), "dockerd --version failed");
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// One Docker Swarm node: a containerd and a dockerd of its own, in namespace `ns`, with
/// every directory and socket under `dir`. Killed, unmounted and removed on drop, with
/// any container it left running.
pub struct DockerNode {
    ns: String,
    dir: PathBuf,
    /// dockerd's arguments beyond those every node has (`--insecure-registry`, say).
    extra: Vec<String>,
    containerd: Option<Child>,
    dockerd: Option<Child>,
}

impl DockerNode {
    pub fn start(ns: &str, dir: PathBuf) -> anyhow::Result<DockerNode> {
        DockerNode::start_with(ns, dir, &[])
    }

    /// As `start`, with extra arguments for dockerd.
    pub fn start_with(ns: &str, dir: PathBuf, extra: &[&str]) -> anyhow::Result<DockerNode> {
        std::fs::create_dir_all(dir.join("containerd"))
            .with_context(|| format!("creating {}", dir.display()))?;
        let mut node = DockerNode {
            ns: ns.to_string(),
            dir,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            containerd: None,
            dockerd: None,
        };
        // A crashed run's containers would still be in this node's cgroup.
        node.kill_containers();
        // On failure `node` drops, which kills and removes what was started.
        node.spawn()?;
        Ok(node)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    fn containerd_socket(&self) -> PathBuf {
        self.dir.join("containerd/containerd.sock")
    }

    /// The docker CLI against this node.
    pub fn cli(&self) -> Cli {
        Cli {
            program: PathBuf::from(DOCKER_CLI),
            host: format!("unix://{}", self.socket().display()),
            // Its own config directory: nothing is read from or written to ~/.docker.
            env: vec![("DOCKER_CONFIG".into(), self.dir.join("docker-config"))],
        }
    }

    /// The cgroup (below each hierarchy's root) that holds this node's containers: its
    /// own, so that what it leaves is found and killed without touching anyone else's.
    fn cgroup(&self) -> String {
        format!("covey-bench-{}", self.ns)
    }

    /// Starts containerd, then dockerd on it; returns once the API answers.
    ///
    /// dockerd would start a containerd itself, but not when it finds one on the system's
    /// default socket (/run/containerd/containerd.sock): then all nodes would share it.
    /// So each node gets its own, with its own root, state, sockets and config,
    /// configured as the one dockerd starts (no CRI plugin).
    pub fn spawn(&mut self) -> anyhow::Result<()> {
        let d = self.dir.display().to_string();
        let config = self.dir.join("containerd/config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\n\
                 root = \"{d}/containerd/root\"\n\
                 state = \"{d}/containerd/state\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{d}/containerd/containerd.sock\"\n\
                 [debug]\n  address = \"{d}/containerd/debug.sock\"\n  level = \"info\"\n\
                 [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{d}/containerd/opt\"\n\
                 [plugins.\"io.containerd.runtime.v1.linux\"]\n  runtime_root = \"{d}/runc\"\n"
            ),
        )
        .with_context(|| format!("writing {}", config.display()))?;
        let _ = std::fs::remove_file(self.containerd_socket());
        let _ = std::fs::remove_file(self.socket());
        let log = |name: &str| {
            File::options()
                .create(true)
                .append(true)
                .open(self.dir.join(name))
                .with_context(|| format!("opening {name}"))
        };
        let (cd_log, dd_log) = (log("containerd.log")?, log("dockerd.log")?);
        self.containerd = Some(
            netns_command(&self.ns, CONTAINERD)
                .arg("--config")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(cd_log.try_clone()?)
                .stderr(cd_log)
                .spawn()
                .context("starting containerd")?,
        );
        self.wait_for("containerd", |n| Ok(n.containerd_socket().exists()))?;
        self.dockerd = Some(
            netns_command(&self.ns, DOCKERD)
                .arg("--data-root")
                .arg(self.dir.join("data"))
                .arg("--exec-root")
                .arg(self.dir.join("exec"))
                .arg("--pidfile")
                .arg(self.dir.join("docker.pid"))
                .arg("-H")
                .arg(format!("unix://{}", self.socket().display()))
                .arg("--containerd")
                .arg(self.containerd_socket())
                // The node's network is the harness's: dockerd leaves it alone.
                .args(["--iptables=false", "--ip-masq=false", "--bridge=none"])
                .arg("--cgroup-parent")
                .arg(format!("/{}", self.cgroup()))
                .args(&self.extra)
                .stdin(Stdio::null())
                .stdout(dd_log.try_clone()?)
                .stderr(dd_log)
                .spawn()
                .context("starting dockerd")?,
        );
        // The socket appears before the daemon is done starting: wait for an answer.
        self.wait_for("dockerd", |n| {
            Ok(n.socket().exists()
                && Command::new(DOCKER_CLI)
                    .arg("-H")
                    .arg(format!("unix://{}", n.socket().display()))
                    .arg("version")
                    .env("DOCKER_CONFIG", n.dir.join("docker-config"))
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .context("running the docker CLI")?
                    .success())
        })
    }

    fn wait_for(
        &mut self,
        what: &str,
        ready: impl Fn(&DockerNode) -> anyhow::Result<bool>,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if ready(self)? {
                return Ok(());
            }
            // The logs go with the directory when this node drops: the error carries them.
            let exited = [&mut self.containerd, &mut self.dockerd]
                .into_iter()
                .flatten()
                .find_map(|child| child.try_wait().ok().flatten());
            if let Some(status) = exited {
                bail!("{what} exited with {status}:\n{}", self.log_tail());
            }
            ensure!(
                Instant::now() < deadline,
                "{what} not ready after 30 s:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The pids of dockerd and containerd, while they run.
    pub fn pids(&self) -> Vec<u32> {
        [&self.dockerd, &self.containerd]
            .into_iter()
            .flatten()
            .map(Child::id)
            .collect()
    }

    pub fn logs(&self) -> Vec<PathBuf> {
        vec![
            self.dir.join("dockerd.log"),
            self.dir.join("containerd.log"),
        ]
    }

    pub fn log_tail(&self) -> String {
        [
            self.dir.join("containerd.log"),
            self.dir.join("dockerd.log"),
        ]
        .iter()
        .map(|p| log_tail(p))
        .collect::<Vec<_>>()
        .join("\n")
    }

    /// SIGKILLs dockerd and containerd and reaps them.
    pub fn kill(&mut self) {
        for child in [self.dockerd.take(), self.containerd.take()]
            .into_iter()
            .flatten()
        {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGKILLs every process in this node's container cgroups (its containers run in
    /// namespaces of their own, which `kill_netns` does not reach), then removes the
    /// cgroups, in every hierarchy (cgroup v1's several, or v2's one).
    fn kill_containers(&self) {
        let root = Path::new("/sys/fs/cgroup");
        let mut tops = vec![root.join(self.cgroup())];
        tops.extend(
            std::fs::read_dir(root)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path().join(self.cgroup())),
        );
        tops.retain(|t| t.is_dir());
        if tops.is_empty() {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let dirs: Vec<PathBuf> = tops.iter().flat_map(|t| dirs_under(t)).collect();
            let pids: Vec<i32> = dirs
                .iter()
                .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
                .flat_map(|s| {
                    s.split_whitespace()
                        .filter_map(|p| p.parse().ok())
                        .collect::<Vec<i32>>()
                })
                .collect();
            if pids.is_empty() || Instant::now() > deadline {
                break;
            }
            for pid in pids {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Deepest first: a cgroup goes only once it has no children.
        let mut dirs: Vec<PathBuf> = tops.iter().flat_map(|t| dirs_under(t)).collect();
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in dirs {
            if let Err(e) = std::fs::remove_dir(&d) {
                eprintln!("removing cgroup {}: {e}", d.display());
            }
        }
    }
}

impl Drop for DockerNode {
    fn drop(&mut self) {
        // The daemons first, so that nothing restarts a container killed next.
        self.kill();
        self.kill_containers();
        // Anything else either started in the node's namespace (a shim, a helper).
        kill_netns(&self.ns);
        // dockerd mounts below its roots (its data root on itself, network namespaces
        // under the exec root, containers' root filesystems) and leaves them when killed.
        remove_tree(&self.dir);
    }
}

/// `dir` and every directory below it.
fn dirs_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        let children: Vec<PathBuf> = std::fs::read_dir(&out[i])
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect();
        out.extend(children);
        i += 1;
    }
    out
}
