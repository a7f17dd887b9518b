//! A swarm of real daemons for tests, each node in its own network namespace.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cluster::Net;
use crate::Daemon;

/// A test's nodes: the network and one daemon per node.
pub struct Swarm {
    pub daemons: Vec<Daemon>,
    pub net: Net,
}

impl Swarm {
    pub fn start(prefix: &str, nodes: usize) -> Swarm {
        Swarm::start_with(prefix, nodes, |_| Vec::new())
    }

    /// As `start`, each daemon with the arguments `args` gives for the network.
    pub fn start_with(prefix: &str, nodes: usize, args: impl Fn(&Net) -> Vec<String>) -> Swarm {
        Swarm::start_with_each(prefix, nodes, |net, _| args(net))
    }

    /// As [`Swarm::start_with`], with daemon arguments for each node `i` (1-based).
    pub fn start_with_each(
        prefix: &str,
        nodes: usize,
        args: impl Fn(&Net, usize) -> Vec<String>,
    ) -> Swarm {
        let net = Net::new(prefix, nodes).expect("making the network");
        let daemons = (1..=nodes)
            .map(|i| {
                let args = args(&net, i);
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                Daemon::start_in_netns(prefix, &net.node_ns(i), &args).expect("starting a daemon")
            })
            .collect();
        Swarm { daemons, net }
    }

    pub fn node(&self, i: usize) -> &Daemon {
        &self.daemons[i - 1]
    }

    pub fn addr(&self, i: usize) -> String {
        self.net.node_ip(i).to_string()
    }

    /// Node 1 makes the swarm (with a 1 s heartbeat, so Down comes fast).
    pub fn init(&self) {
        self.init_with_heartbeat("1s");
    }

    pub fn init_with_heartbeat(&self, period: &str) {
        self.node(1).covey_ok(&[
            "swarm",
            "init",
            "--advertise-addr",
            &self.addr(1),
            "--dispatcher-heartbeat",
            period,
        ]);
    }

    pub fn token(&self, manager: usize, role: &str) -> String {
        self.node(manager)
            .covey_ok(&["swarm", "join-token", "-q", role])
            .trim()
            .to_string()
    }

    pub fn join(&self, i: usize, role: &str, via: usize) {
        let token = self.token(via, role);
        let out = self.node(i).covey_ok(&[
            "swarm",
            "join",
            "--token",
            &token,
            "--advertise-addr",
            &self.addr(i),
            &self.addr(via),
        ]);
        assert!(
            out.contains(&format!("joined a swarm as a {role}")),
            "{out}"
        );
    }

    pub fn nodes(&self, via: usize) -> Option<Vec<Value>> {
        let out = self.node(via).covey(&["node", "ls", "-q"]);
        if !out.status.success() {
            return None;
        }
        let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        let mut args = vec!["node", "inspect"];
        args.extend(ids.iter().map(String::as_str));
        let out = self.node(via).covey(&args);
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// The leader's node index as `via` sees it.
    pub fn leader(&self, via: usize) -> Option<usize> {
        let nodes = self.nodes(via)?;
        let leader = nodes
            .iter()
            .find(|n| n["ManagerStatus"]["Leader"].as_bool() == Some(true))?;
        let addr = leader["ManagerStatus"]["Addr"].as_str()?.to_string();
        (1..=self.daemons.len()).find(|i| addr.starts_with(&format!("{}:", self.addr(*i))))
    }

    /// A write to the store through manager `via`: a label on node `on`.
    pub fn write(&self, via: usize, on: usize, label: &str) -> bool {
        let Some(id) = self.id_of(via, on) else {
            return false;
        };
        let out = self
            .node(via)
            .covey(&["node", "update", "--label-add", label, &id]);
        if !out.status.success() {
            eprintln!(
                "write {label} through node {via} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        out.status.success()
    }

    pub fn id_of(&self, via: usize, on: usize) -> Option<String> {
        let addr = self.addr(on);
        self.nodes(via)?
            .iter()
            .find(|n| n["Status"]["Addr"].as_str() == Some(addr.as_str()))
            .and_then(|n| n["ID"].as_str().map(str::to_string))
    }
}

pub fn eventually<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

impl Drop for Swarm {
    /// A failed test shows what each daemon logged (the tail, without the chatter of
    /// image pulls and Raft), since their data roots go with the test.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for (i, daemon) in self.daemons.iter().enumerate() {
            let log = daemon.log();
            let lines: Vec<&str> = log
                .lines()
                .filter(|l| !l.contains("covey_images") && !l.contains("covey::raft"))
                .collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            eprintln!("== node {} log (tail):\n{}", i + 1, tail.join("\n"));
        }
    }
}
