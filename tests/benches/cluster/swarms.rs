//! The swarms: one node per network namespace, a covey daemon or a Docker node each.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use covey_tests::bench::{log_tail, remove_tree, sweep_covey_dirs, Cli, RemoveOnDrop};
use covey_tests::cluster::Net;
use covey_tests::dockerd::DockerNode;
use covey_tests::Daemon;
use serde_json::Value;

use super::procfs::{proc_field, process_name, process_tree, rss_kb, write_bytes};
use super::{Engine, Sample, DOCKER_DIR, MANAGERS, NODES};

/// The network and one node per namespace. Fields drop in order: the daemons first, then
/// the network (which kills whatever still runs in its namespaces).
pub(super) struct Cluster {
    pub(super) nodes: Vec<Node>,
    /// Docker's directory, removed once its nodes have removed theirs.
    pub(super) _dir: Option<RemoveOnDrop>,
    pub(super) net: Net,
    pub(super) engine: Engine,
    /// Node IDs by index from 1 (`ids[0]` unused), once formed.
    pub(super) ids: Vec<String>,
}

impl Cluster {
    pub(super) fn start(engine: Engine) -> anyhow::Result<Cluster> {
        // First, since it kills what a previous run left in its namespaces: their files
        // can then go.
        let net = Net::new(engine.prefix(), NODES).context("making the network")?;
        let mut nodes = Vec::new();
        let mut dir = None;
        match engine {
            Engine::Covey => {
                sweep_covey_dirs(engine.prefix());
                for i in 1..=NODES {
                    let d = Daemon::start_in_netns(engine.prefix(), &net.node_ns(i), &[])
                        .with_context(|| format!("starting covey on n{i}"))?;
                    nodes.push(Node::Covey(d));
                }
            }
            Engine::Docker => {
                remove_tree(Path::new(DOCKER_DIR));
                dir = Some(RemoveOnDrop(PathBuf::from(DOCKER_DIR)));
                for i in 1..=NODES {
                    let dir = Path::new(DOCKER_DIR).join(format!("n{i}"));
                    let d = DockerNode::start(&net.node_ns(i), dir)
                        .with_context(|| format!("starting dockerd on n{i}"))?;
                    nodes.push(Node::Docker(d));
                }
            }
        }
        Ok(Cluster {
            nodes,
            _dir: dir,
            net,
            engine,
            ids: Vec::new(),
        })
    }

    pub(super) fn ip(&self, i: usize) -> String {
        self.net.node_ip(i).to_string()
    }

    pub(super) fn cli(&self, i: usize) -> Cli {
        self.nodes[i - 1].cli()
    }

    pub(super) fn id(&self, i: usize) -> &str {
        &self.ids[i]
    }

    /// `swarm init` on node 1; the other managers, then the worker, join through it.
    pub(super) fn form(&mut self) -> anyhow::Result<()> {
        let run = |i: usize, args: &[&str]| {
            self.cli(i)
                .ok(args)
                .map_err(|e| anyhow::anyhow!("n{i}: {e:#}\n{}", self.nodes[i - 1].log_tail()))
        };
        run(1, &["swarm", "init", "--advertise-addr", &self.ip(1)])?;
        let manager = run(1, &["swarm", "join-token", "-q", "manager"])?;
        let worker = run(1, &["swarm", "join-token", "-q", "worker"])?;
        for i in 2..=NODES {
            let token = if i <= MANAGERS { &manager } else { &worker };
            run(
                i,
                &[
                    "swarm",
                    "join",
                    "--token",
                    token.trim(),
                    "--advertise-addr",
                    &self.ip(i),
                    &self.ip(1),
                ],
            )?;
        }
        self.wait_healthy(Duration::from_secs(90))?;
        let nodes = self.inspect_all(1).context("listing the nodes")?;
        let mut ids = vec![String::new(); NODES + 1];
        for n in &nodes {
            let addr = n["Status"]["Addr"].as_str().unwrap_or_default();
            let i = self
                .index_of(addr)
                .context("a node with an unknown address")?;
            ids[i] = n["ID"].as_str().unwrap_or_default().to_string();
        }
        ensure!(ids[1..].iter().all(|id| !id.is_empty()), "nodes: {nodes:?}");
        self.ids = ids;
        Ok(())
    }

    /// The node whose address `addr` (IP, or IP:port) is.
    pub(super) fn index_of(&self, addr: &str) -> Option<usize> {
        let ip = addr.split(':').next()?;
        (1..=NODES).find(|&i| self.ip(i) == ip)
    }

    /// Every node as manager `via` sees it (`node ls -q`, then `node inspect`).
    pub(super) fn inspect_all(&self, via: usize) -> Option<Vec<Value>> {
        let cli = self.cli(via);
        let out = cli.run(&["node", "ls", "-q"]).ok()?;
        if !out.status.success() {
            return None;
        }
        let mut args = vec!["node", "inspect"];
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        args.extend(text.split_whitespace());
        inspect(&cli, &args)
    }

    /// The leader's index as manager `via` sees it, asking for the known IDs in one call:
    /// what the failover poll does.
    pub(super) fn leader_known(&self, via: usize) -> Option<usize> {
        let mut args = vec!["node", "inspect"];
        args.extend(self.ids[1..].iter().map(String::as_str));
        self.leader_in(&inspect(&self.cli(via), &args)?)
    }

    pub(super) fn leader_in(&self, nodes: &[Value]) -> Option<usize> {
        let leader = nodes
            .iter()
            .find(|n| n["ManagerStatus"]["Leader"].as_bool() == Some(true))?;
        self.index_of(leader["ManagerStatus"]["Addr"].as_str()?)
    }

    /// The leader as the first manager that answers sees it.
    pub(super) fn leader_any(&self) -> Option<usize> {
        (1..=MANAGERS).find_map(|via| self.leader_in(&self.inspect_all(via)?))
    }

    /// Waits until every node is ready, every manager reachable, and all managers name
    /// the same leader; returns it.
    pub(super) fn wait_healthy(&self, timeout: Duration) -> anyhow::Result<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.healthy() {
                Ok(leader) => return Ok(leader),
                Err(e) => e,
            };
            if Instant::now() > deadline {
                bail!(
                    "swarm not whole after {} s: {last:#}\n{}",
                    timeout.as_secs(),
                    self.log_tails()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    pub(super) fn healthy(&self) -> anyhow::Result<usize> {
        let mut leaders = Vec::new();
        for via in 1..=MANAGERS {
            let nodes = self
                .inspect_all(via)
                .with_context(|| format!("n{via} does not list the nodes"))?;
            let ready = nodes
                .iter()
                .filter(|n| n["Status"]["State"] == "ready")
                .count();
            let reachable = nodes
                .iter()
                .filter(|n| n["ManagerStatus"]["Reachability"] == "reachable")
                .count();
            ensure!(
                nodes.len() == NODES && ready == NODES && reachable == MANAGERS,
                "n{via} sees {} nodes, {ready} ready, {reachable} managers reachable",
                nodes.len()
            );
            leaders.push(
                self.leader_in(&nodes)
                    .with_context(|| format!("n{via} knows no leader"))?,
            );
        }
        ensure!(
            leaders.windows(2).all(|w| w[0] == w[1]),
            "managers disagree on the leader: {leaders:?}"
        );
        Ok(leaders[0])
    }

    pub(super) fn sample(&self) -> Vec<Sample> {
        self.nodes.iter().map(Node::sample).collect()
    }

    pub(super) fn log_tails(&self) -> String {
        self.nodes
            .iter()
            .enumerate()
            .map(|(n, node)| format!("--- n{} log (last lines):\n{}", n + 1, node.log_tail()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

pub(super) fn inspect(cli: &Cli, args: &[&str]) -> Option<Vec<Value>> {
    let out = cli.run(args).ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// One node's daemon.
pub(super) enum Node {
    Covey(Daemon),
    Docker(DockerNode),
}

impl Node {
    pub(super) fn cli(&self) -> Cli {
        match self {
            Node::Covey(d) => Cli::covey(d),
            Node::Docker(d) => d.cli(),
        }
    }

    /// SIGKILL, as a crash or a power cut: for Docker both dockerd and its containerd.
    pub(super) fn kill(&mut self) {
        match self {
            Node::Covey(d) => d.crash(),
            Node::Docker(d) => d.kill(),
        }
    }

    pub(super) fn restart(&mut self) -> anyhow::Result<()> {
        match self {
            Node::Covey(d) => d.restart(),
            Node::Docker(d) => d.spawn(),
        }
    }

    /// The pids whose process trees make this node's daemon.
    pub(super) fn roots(&self) -> Vec<i32> {
        let pids = match self {
            Node::Covey(d) => d.pid().into_iter().collect(),
            Node::Docker(d) => d.pids(),
        };
        pids.into_iter()
            .filter_map(|p| i32::try_from(p).ok())
            .collect()
    }

    pub(super) fn logs(&self) -> Vec<PathBuf> {
        match self {
            Node::Covey(d) => vec![d.root.path().join("daemon.log")],
            Node::Docker(d) => d.logs(),
        }
    }

    pub(super) fn log_tail(&self) -> String {
        self.logs()
            .iter()
            .map(|p| log_tail(p))
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub(super) fn sample(&self) -> Sample {
        let pids = process_tree(&self.roots());
        Sample {
            rss_kb: pids.iter().filter_map(|&p| rss_kb(p)).sum(),
            pss_kb: pids
                .iter()
                .filter_map(|&p| proc_field(p, "smaps_rollup", "Pss:"))
                .sum(),
            write_bytes: pids
                .iter()
                .filter_map(|&p| Some((p, write_bytes(p)?)))
                .collect(),
            names: pids.iter().map(|&p| (p, process_name(p))).collect(),
            log_bytes: self
                .logs()
                .iter()
                .filter_map(|p| std::fs::metadata(p).ok())
                .map(|m| m.len())
                .sum(),
        }
    }
}
