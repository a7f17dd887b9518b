//! The cluster issue's figures, covey against Docker Swarm in the same run (a benchmark,
//! never a test; `bench/cluster.sh` runs it as root):
//!
//! 1. a 3-manager + 1-worker swarm of each, every node in its own network namespace
//!    ([`Net`]), formed through each engine's own CLI;
//! 2. store commit latency (sequential label updates through the leader, each CLI call
//!    timed, beside a no-op read as the CLI+API overhead) and throughput (8 concurrent
//!    writers), on a clean link and at 100 ms delay / 10% loss;
//! 3. time from a SIGKILLed leader to a new one, seen by a surviving manager;
//! 4. idle RSS of a manager's and a worker's whole daemon process tree;
//! 5. bytes written to disk per hour by idle daemons (`write_bytes` in /proc, over a
//!    window, extrapolated).
//!
//! Docker is Debian's docker.io: one dockerd, with a containerd of its own, per node. If
//! it cannot run here the table says why and still shows covey's figures. Everything
//! started is killed and removed on the way out, failure or not; a crashed run's leftovers
//! are removed by the next run before it starts.
//!
//! Settings (environment): BENCH_WRITES (100), BENCH_THROUGHPUT_SECS (10),
//! BENCH_FAILOVER_TRIALS (3), BENCH_IDLE_SETTLE (30 s), BENCH_IDLE_WINDOW (60 s),
//! BENCH_PHASE_CAP (90 s: a latency run stops there however few writes it made).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use covey_tests::cluster::{netns_command, Net};
use covey_tests::{covey_bin, Daemon, DOCKER_CLI};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

const MANAGERS: usize = 3;
const NODES: usize = 4;
/// Node 4 is the worker, and the node whose labels every write changes.
const WORKER: usize = 4;
const WRITERS: usize = 8;
/// How often a surviving manager is asked for the leader after a kill.
const POLL: Duration = Duration::from_millis(100);
/// Every Docker node's directories, under one fixed path so that a run that crashed (or
/// was interrupted) is cleaned up by the next one.
const DOCKER_DIR: &str = "/tmp/covey-bench-docker";
const DOCKERD: &str = "/usr/sbin/dockerd";
const CONTAINERD: &str = "/usr/bin/containerd";

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bench/cluster: {e:#}");
            ExitCode::FAILURE
        }
    }
}

struct Config {
    writes: usize,
    throughput: Duration,
    trials: usize,
    settle: Duration,
    window: Duration,
    phase_cap: Duration,
}

impl Config {
    fn from_env() -> anyhow::Result<Config> {
        fn var(name: &str, default: u64) -> anyhow::Result<u64> {
            match std::env::var(name) {
                Ok(v) => v
                    .parse()
                    .with_context(|| format!("{name}={v:?}: a whole number expected")),
                Err(_) => Ok(default),
            }
        }
        let cfg = Config {
            writes: usize::try_from(var("BENCH_WRITES", 100)?)?,
            throughput: Duration::from_secs(var("BENCH_THROUGHPUT_SECS", 10)?),
            trials: usize::try_from(var("BENCH_FAILOVER_TRIALS", 3)?)?,
            settle: Duration::from_secs(var("BENCH_IDLE_SETTLE", 30)?),
            window: Duration::from_secs(var("BENCH_IDLE_WINDOW", 60)?),
            phase_cap: Duration::from_secs(var("BENCH_PHASE_CAP", 90)?),
        };
        ensure!(
            cfg.writes > 0 && cfg.window > Duration::ZERO,
            "BENCH_WRITES and BENCH_IDLE_WINDOW must be above 0"
        );
        Ok(cfg)
    }
}

fn run() -> anyhow::Result<ExitCode> {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this too, without
    // it: a benchmark of several minutes is not a test, so it does nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("bench/cluster: a benchmark, run by `cargo bench` (bench/cluster.sh); skipped");
        return Ok(ExitCode::SUCCESS);
    }
    ensure!(
        nix::unistd::geteuid().is_root(),
        "run as root: namespaces, nftables and daemons"
    );
    let cfg = Config::from_env()?;
    // Fails early (and clearly) if COVEY_BIN is not built.
    let covey = covey_bin();
    println!(
        "bench/cluster: {MANAGERS} managers + {} worker, each node in its own network \
         namespace; covey {} against Docker Swarm ({})",
        NODES - MANAGERS,
        covey.display(),
        docker_version().unwrap_or_else(|e| format!("unavailable: {e:#}")),
    );
    // Other work on this small machine skews every figure: say how busy it was.
    println!("load average at the start: {}", loadavg());
    let mut figures = [Figures::default(), Figures::default()];
    let covey = bench_engine(Engine::Covey, &cfg, &mut figures[0]);
    let docker = match docker_preflight() {
        Ok(()) => bench_engine(Engine::Docker, &cfg, &mut figures[1]),
        Err(e) => {
            figures[1].error = Some(format!("{e:#}"));
            None
        }
    };
    let clusters: Vec<(&Cluster, &mut Figures)> = [covey.as_ref(), docker.as_ref()]
        .into_iter()
        .zip(figures.iter_mut())
        .filter_map(|(c, f)| Some((c?, f)))
        .collect();
    if !clusters.is_empty() {
        idle(&cfg, clusters);
    }
    print_table(&cfg, &figures);
    println!("load average at the end: {}", loadavg());
    println!("\ntearing down");
    drop(docker);
    drop(covey);
    Ok(if figures[0].error.is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Engine {
    Covey,
    Docker,
}

impl Engine {
    fn name(self) -> &'static str {
        match self {
            Engine::Covey => "covey",
            Engine::Docker => "docker",
        }
    }

    /// The [`Net`] prefix, also the covey daemons' temporary directories' prefix.
    fn prefix(self) -> &'static str {
        match self {
            Engine::Covey => "cbcov",
            Engine::Docker => "cbdock",
        }
    }
}

/// One engine's figures; `None` where it was not measured.
#[derive(Default)]
struct Figures {
    /// Median of the no-op read (`node inspect`), per link condition (clean, degraded).
    read_ms: [Option<f64>; 2],
    write_median_ms: [Option<f64>; 2],
    write_p95_ms: [Option<f64>; 2],
    commits_per_s: [Option<f64>; 2],
    failover_ms: Option<f64>,
    /// Idle RSS in MB: the leader, the larger of the two followers, the worker.
    rss_mb: [Option<f64>; 3],
    pss_mb: [Option<f64>; 3],
    /// Idle disk writes in bytes an hour, same order.
    disk_per_hour: [Option<f64>; 3],
    /// Why the figures stop where they do.
    error: Option<String>,
}

/// What ran a phase under: the table's two link conditions.
const CONDITIONS: [&str; 2] = ["clean link", "100 ms delay, 10% loss"];

/// Runs the active phases on `engine`; returns the swarm, still formed, for the idle
/// phase (which runs for both engines at once), or `None` if it never formed.
fn bench_engine(engine: Engine, cfg: &Config, figures: &mut Figures) -> Option<Cluster> {
    let name = engine.name();
    println!("\n== {name}: forming the swarm");
    let t0 = Instant::now();
    let mut cluster = match Cluster::start(engine).and_then(|mut c| {
        c.form()?;
        Ok(c)
    }) {
        Ok(c) => c,
        Err(e) => {
            let e = format!("{name} swarm did not form: {e:#}");
            println!("{e}");
            figures.error = Some(e);
            return None;
        }
    };
    println!(
        "{name}: formed in {:.1} s; leader n{}",
        t0.elapsed().as_secs_f64(),
        cluster.leader_any().unwrap_or(0)
    );
    if let Err(e) = active_phases(&mut cluster, cfg, figures) {
        let e = format!("{name}: {e:#}\n{}", cluster.log_tails());
        println!("{e}");
        figures.error = Some(e);
        // A phase that failed under the degraded link left it so: the idle phase needs
        // it clean.
        let _ = cluster.net.clear_delay();
        for i in 1..=MANAGERS {
            let _ = cluster.net.clear_loss(i);
        }
    }
    Some(cluster)
}

fn active_phases(cl: &mut Cluster, cfg: &Config, f: &mut Figures) -> anyhow::Result<()> {
    let name = cl.engine.name();
    for (c, condition) in CONDITIONS.iter().enumerate() {
        if c == 1 {
            cl.net.set_delay(Duration::from_millis(100))?;
            for i in 1..=MANAGERS {
                cl.net.set_loss(i, 10)?;
            }
        }
        println!("== {name}, {condition}: {} sequential writes", cfg.writes);
        let lat = latency(cl, cfg)?;
        let reads = ms(&lat.reads);
        let writes = ms(&lat.writes);
        f.read_ms[c] = median(&reads);
        f.write_median_ms[c] = median(&writes);
        f.write_p95_ms[c] = p95(&writes);
        println!(
            "{name}, {condition}: write median {} p95 {} ({} done, {} failed, {} out-of-sequence \
             retried, in {:.1} s); no-op read (node inspect) median {}; write net of it {}",
            fmt_ms(f.write_median_ms[c]),
            fmt_ms(f.write_p95_ms[c]),
            lat.writes.len(),
            lat.failed,
            lat.conflicts,
            lat.elapsed.as_secs_f64(),
            fmt_ms(f.read_ms[c]),
            fmt_ms(f.write_median_ms[c].zip(f.read_ms[c]).map(|(w, r)| w - r)),
        );
        if let Some(e) = &lat.last_error {
            println!("  last failed write: {e}");
        }
        println!(
            "== {name}, {condition}: {WRITERS} concurrent writers for {} s",
            cfg.throughput.as_secs()
        );
        let tp = throughput(cl, cfg)?;
        let rate = tp.commits as f64 / tp.elapsed.as_secs_f64();
        f.commits_per_s[c] = Some(rate);
        println!(
            "{name}, {condition}: {} commits in {:.1} s = {rate:.1}/s ({} out-of-sequence \
             retried, {} other errors)",
            tp.commits,
            tp.elapsed.as_secs_f64(),
            tp.conflicts,
            tp.errors,
        );
        if let Some(e) = &tp.last_error {
            println!("  last error: {e}");
        }
    }
    cl.net.clear_delay()?;
    for i in 1..=MANAGERS {
        cl.net.clear_loss(i)?;
    }
    cl.wait_healthy(Duration::from_secs(90))
        .context("the swarm after the link was healed")?;

    println!("== {name}: leader failover, {} trials", cfg.trials);
    let mut times = Vec::new();
    for trial in 1..=cfg.trials {
        let (killed, t) = kill_leader(cl).with_context(|| format!("failover trial {trial}"))?;
        println!("{name}: trial {trial}: n{killed} killed, a new leader after {t:.0} ms");
        times.push(t);
        f.failover_ms = median(&times);
        cl.nodes[killed - 1]
            .restart()
            .with_context(|| format!("failover trial {trial}: restarting n{killed}"))?;
        cl.wait_healthy(Duration::from_secs(120))
            .with_context(|| format!("failover trial {trial}: n{killed} rejoining"))?;
    }
    Ok(())
}

/// Sequential writes' and no-op reads' wall times, as the CLI's caller sees them.
struct Latency {
    writes: Vec<Duration>,
    reads: Vec<Duration>,
    failed: usize,
    conflicts: usize,
    elapsed: Duration,
    last_error: Option<String>,
}

fn latency(cl: &Cluster, cfg: &Config) -> anyhow::Result<Latency> {
    let mut leader = cl.leader_any().context("no leader before the writes")?;
    let worker = cl.id(WORKER);
    let mut lat = Latency {
        writes: Vec::new(),
        reads: Vec::new(),
        failed: 0,
        conflicts: 0,
        elapsed: Duration::ZERO,
        last_error: None,
    };
    let start = Instant::now();
    let mut i = 0;
    while lat.writes.len() < cfg.writes && start.elapsed() < cfg.phase_cap {
        // The overhead of a CLI call that reaches the API and the store and changes
        // nothing, taken between the writes so that both see the same conditions.
        let (t, out) = cl.cli(leader).timed(&["node", "inspect", worker])?;
        if out.status.success() {
            lat.reads.push(t);
        }
        let label = format!("bench={i}");
        i += 1;
        let (t, out) = cl
            .cli(leader)
            .timed(&["node", "update", "--label-add", &label, worker])?;
        if out.status.success() {
            lat.writes.push(t);
            continue;
        }
        let err = stderr_line(&out);
        // The CLI reads the node then writes it at that version: a change in between (the
        // node's own status, say) is refused, and a real client reads again and retries.
        if err.contains("out of sequence") {
            lat.conflicts += 1;
        } else {
            lat.failed += 1;
            lat.last_error = Some(err);
            // The leader may have changed under the loss.
            std::thread::sleep(Duration::from_millis(200));
            leader = cl.leader_any().unwrap_or(leader);
        }
    }
    lat.elapsed = start.elapsed();
    ensure!(
        !lat.writes.is_empty(),
        "no write succeeded in {:.0} s: {}",
        lat.elapsed.as_secs_f64(),
        lat.last_error.as_deref().unwrap_or("")
    );
    Ok(lat)
}

struct Throughput {
    commits: usize,
    conflicts: usize,
    errors: usize,
    elapsed: Duration,
    last_error: Option<String>,
}

/// `WRITERS` threads, each updating its own label key on the worker node through the
/// leader's CLI, until the time is up; only successful updates count.
fn throughput(cl: &Cluster, cfg: &Config) -> anyhow::Result<Throughput> {
    let leader = cl.leader_any().context("no leader before the writers")?;
    let cli = cl.cli(leader);
    let worker = cl.id(WORKER).to_string();
    let start = Instant::now();
    let deadline = start + cfg.throughput;
    let per_writer: Vec<anyhow::Result<Throughput>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (cli, worker) = (cli.clone(), worker.clone());
                s.spawn(move || -> anyhow::Result<Throughput> {
                    let mut t = Throughput {
                        commits: 0,
                        conflicts: 0,
                        errors: 0,
                        elapsed: Duration::ZERO,
                        last_error: None,
                    };
                    let mut k = 0;
                    while Instant::now() < deadline {
                        let label = format!("w{w}={k}");
                        k += 1;
                        let out = cli.run(&["node", "update", "--label-add", &label, &worker])?;
                        if out.status.success() {
                            t.commits += 1;
                            continue;
                        }
                        let err = stderr_line(&out);
                        // Another writer changed the node since this CLI read it: the
                        // next call reads it again.
                        if err.contains("out of sequence") {
                            t.conflicts += 1;
                        } else {
                            t.errors += 1;
                            t.last_error = Some(err);
                            // Not a hot loop on a leader that is gone.
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                    Ok(t)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a writer thread panicked")))
            })
            .collect()
    });
    // Until the last call in flight at the deadline returned.
    let mut total = Throughput {
        commits: 0,
        conflicts: 0,
        errors: 0,
        elapsed: start.elapsed(),
        last_error: None,
    };
    for t in per_writer {
        let t = t?;
        total.commits += t.commits;
        total.conflicts += t.conflicts;
        total.errors += t.errors;
        total.last_error = t.last_error.or(total.last_error);
    }
    Ok(total)
}

/// Kills the leader and times how long until a surviving manager names another one;
/// returns the killed node and the time in milliseconds.
fn kill_leader(cl: &mut Cluster) -> anyhow::Result<(usize, f64)> {
    let old = cl
        .wait_healthy(Duration::from_secs(60))
        .context("the swarm before the kill")?;
    let survivor = (1..=MANAGERS)
        .find(|&i| i != old)
        .context("no other manager")?;
    let deadline = Duration::from_secs(90);
    let t0 = Instant::now();
    cl.nodes[old - 1].kill();
    let mut polls = 0u32;
    let took = loop {
        if cl
            .leader_known(survivor)
            .is_some_and(|new| new != old && new <= MANAGERS)
        {
            break t0.elapsed();
        }
        ensure!(
            t0.elapsed() < deadline,
            "no new leader {} s after n{old} was killed",
            deadline.as_secs()
        );
        // A fixed cadence: a poll that took longer than the period is followed at once.
        polls += 1;
        let next = t0 + POLL * polls;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    };
    Ok((old, took.as_secs_f64() * 1000.0))
}

/// Per node, what its daemon's process tree used while idle.
struct NodeIdle {
    rss_kb: u64,
    /// Proportional set size: shared pages (the binary, mapped by the daemon and its
    /// runtime helper alike) counted once across the processes that share them.
    pss_kb: u64,
    processes: usize,
    write_bytes: u64,
    /// Each process's share of `write_bytes`, by name.
    by_process: Vec<(String, u64)>,
    log_growth: u64,
}

/// Both engines' swarms idle at once: they are idle, so they do not disturb each other,
/// and the bench stays short.
fn idle(cfg: &Config, clusters: Vec<(&Cluster, &mut Figures)>) {
    println!(
        "\n== idle: {} s to settle, then RSS, then disk writes over {} s",
        cfg.settle.as_secs(),
        cfg.window.as_secs()
    );
    // Which manager leads is asked before the window, so the question is no activity in it.
    let leaders: Vec<Option<usize>> = clusters.iter().map(|(c, _)| c.leader_any()).collect();
    std::thread::sleep(cfg.settle);
    let before: Vec<Vec<Sample>> = clusters.iter().map(|(c, _)| c.sample()).collect();
    std::thread::sleep(cfg.window);
    let after: Vec<Vec<Sample>> = clusters.iter().map(|(c, _)| c.sample()).collect();
    let per_hour = 3600.0 / cfg.window.as_secs_f64();
    for (k, (cl, f)) in clusters.into_iter().enumerate() {
        let name = cl.engine.name();
        let Some(leader) = leaders[k] else {
            println!("{name}: no leader before the idle window; idle figures skipped");
            f.error.get_or_insert_with(|| "no leader when idle".into());
            continue;
        };
        if cl.leader_any() != Some(leader) {
            println!("{name}: NOTE the leader changed during the idle window");
        }
        let nodes: Vec<NodeIdle> = (0..NODES)
            .map(|n| idle_of(&before[k][n], &after[k][n]))
            .collect();
        for (n, node) in nodes.iter().enumerate() {
            let i = n + 1;
            let role = match i {
                _ if i == leader => "manager, leader",
                WORKER => "worker",
                _ => "manager, follower",
            };
            if node.processes == 0 {
                println!("{name} n{i} ({role}): not running");
                continue;
            }
            let mut by_process = node.by_process.clone();
            by_process.sort();
            println!(
                "{name} n{i} ({role}): RSS {:.1} MB (PSS {:.1} MB) in {} processes; disk \
                 writes {} ({} in {} s: {}), of which its log file grew {}",
                node.rss_kb as f64 / 1024.0,
                node.pss_kb as f64 / 1024.0,
                node.processes,
                fmt_bytes_per_hour(Some(node.write_bytes as f64 * per_hour)),
                fmt_bytes(node.write_bytes as f64),
                cfg.window.as_secs(),
                by_process
                    .iter()
                    .map(|(p, b)| format!("{p} {}", fmt_bytes(*b as f64)))
                    .collect::<Vec<_>>()
                    .join(", "),
                fmt_bytes(node.log_growth as f64),
            );
        }
        let running = |n: &&NodeIdle| n.processes > 0;
        let followers: Vec<&NodeIdle> = (1..=MANAGERS)
            .filter(|&i| i != leader)
            .map(|i| &nodes[i - 1])
            .filter(running)
            .collect();
        let pick = |get: &dyn Fn(&NodeIdle) -> f64| {
            [
                Some(&nodes[leader - 1]).filter(running).map(get),
                followers.iter().map(|n| get(n)).reduce(f64::max),
                Some(&nodes[WORKER - 1]).filter(running).map(get),
            ]
        };
        f.rss_mb = pick(&|n| n.rss_kb as f64 / 1024.0);
        f.pss_mb = pick(&|n| n.pss_kb as f64 / 1024.0);
        f.disk_per_hour = pick(&|n| n.write_bytes as f64 * per_hour);
    }
}

fn idle_of(before: &Sample, after: &Sample) -> NodeIdle {
    // A process's counter only grows; one that started in the window counts from zero.
    let by_process: Vec<(String, u64)> = after
        .write_bytes
        .iter()
        .map(|(pid, b)| {
            let name = after.names.get(pid).cloned().unwrap_or_default();
            (
                name,
                b.saturating_sub(before.write_bytes.get(pid).copied().unwrap_or(0)),
            )
        })
        .collect();
    NodeIdle {
        rss_kb: before.rss_kb,
        pss_kb: before.pss_kb,
        processes: before.write_bytes.len(),
        write_bytes: by_process.iter().map(|(_, b)| b).sum(),
        by_process,
        log_growth: after.log_bytes.saturating_sub(before.log_bytes),
    }
}

/// A node's daemon process tree at one moment.
struct Sample {
    rss_kb: u64,
    pss_kb: u64,
    write_bytes: HashMap<i32, u64>,
    /// What each process runs: its command line's first two words.
    names: HashMap<i32, String>,
    log_bytes: u64,
}

// ---------------------------------------------------------------------------------------
// The swarms

/// The network and one node per namespace. Fields drop in order: the daemons first, then
/// the network (which kills whatever still runs in its namespaces).
struct Cluster {
    nodes: Vec<Node>,
    /// Docker's directory, removed once its nodes have removed theirs.
    _dir: Option<RemoveOnDrop>,
    net: Net,
    engine: Engine,
    /// Node IDs by index from 1 (`ids[0]` unused), once formed.
    ids: Vec<String>,
}

impl Cluster {
    fn start(engine: Engine) -> anyhow::Result<Cluster> {
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

    fn ip(&self, i: usize) -> String {
        self.net.node_ip(i).to_string()
    }

    fn cli(&self, i: usize) -> Cli {
        self.nodes[i - 1].cli()
    }

    fn id(&self, i: usize) -> &str {
        &self.ids[i]
    }

    /// `swarm init` on node 1; the other managers, then the worker, join through it.
    fn form(&mut self) -> anyhow::Result<()> {
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
    fn index_of(&self, addr: &str) -> Option<usize> {
        let ip = addr.split(':').next()?;
        (1..=NODES).find(|&i| self.ip(i) == ip)
    }

    /// Every node as manager `via` sees it (`node ls -q`, then `node inspect`).
    fn inspect_all(&self, via: usize) -> Option<Vec<Value>> {
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
    fn leader_known(&self, via: usize) -> Option<usize> {
        let mut args = vec!["node", "inspect"];
        args.extend(self.ids[1..].iter().map(String::as_str));
        self.leader_in(&inspect(&self.cli(via), &args)?)
    }

    fn leader_in(&self, nodes: &[Value]) -> Option<usize> {
        let leader = nodes
            .iter()
            .find(|n| n["ManagerStatus"]["Leader"].as_bool() == Some(true))?;
        self.index_of(leader["ManagerStatus"]["Addr"].as_str()?)
    }

    /// The leader as the first manager that answers sees it.
    fn leader_any(&self) -> Option<usize> {
        (1..=MANAGERS).find_map(|via| self.leader_in(&self.inspect_all(via)?))
    }

    /// Waits until every node is ready, every manager reachable, and all managers name
    /// the same leader; returns it.
    fn wait_healthy(&self, timeout: Duration) -> anyhow::Result<usize> {
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

    fn healthy(&self) -> anyhow::Result<usize> {
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

    fn sample(&self) -> Vec<Sample> {
        self.nodes.iter().map(Node::sample).collect()
    }

    fn log_tails(&self) -> String {
        self.nodes
            .iter()
            .enumerate()
            .map(|(n, node)| format!("--- n{} log (last lines):\n{}", n + 1, node.log_tail()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn inspect(cli: &Cli, args: &[&str]) -> Option<Vec<Value>> {
    let out = cli.run(args).ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// One node's daemon.
enum Node {
    Covey(Daemon),
    Docker(DockerNode),
}

impl Node {
    fn cli(&self) -> Cli {
        match self {
            Node::Covey(d) => Cli {
                program: covey_bin(),
                host: d.host(),
                env: Vec::new(),
            },
            Node::Docker(d) => Cli {
                program: PathBuf::from(DOCKER_CLI),
                host: format!("unix://{}", d.socket().display()),
                // Its own config directory: nothing is read from or written to ~/.docker.
                env: vec![("DOCKER_CONFIG".into(), d.dir.join("docker-config"))],
            },
        }
    }

    /// SIGKILL, as a crash or a power cut: for Docker both dockerd and its containerd.
    fn kill(&mut self) {
        match self {
            Node::Covey(d) => d.crash(),
            Node::Docker(d) => d.kill(),
        }
    }

    fn restart(&mut self) -> anyhow::Result<()> {
        match self {
            Node::Covey(d) => d.restart(),
            Node::Docker(d) => d.spawn(),
        }
    }

    /// The pids whose process trees make this node's daemon.
    fn roots(&self) -> Vec<i32> {
        let pids = match self {
            Node::Covey(d) => vec![d.pid()],
            Node::Docker(d) => vec![
                d.dockerd.as_ref().map(Child::id),
                d.containerd.as_ref().map(Child::id),
            ],
        };
        pids.into_iter()
            .flatten()
            .filter_map(|p| i32::try_from(p).ok())
            .collect()
    }

    fn logs(&self) -> Vec<PathBuf> {
        match self {
            Node::Covey(d) => vec![d.root.path().join("daemon.log")],
            Node::Docker(d) => vec![d.dir.join("dockerd.log"), d.dir.join("containerd.log")],
        }
    }

    fn log_tail(&self) -> String {
        self.logs()
            .iter()
            .map(|p| log_tail(p))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn sample(&self) -> Sample {
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

/// The last lines of a log file, named.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(15)..].join("\n");
    format!("{}:\n{tail}", path.display())
}

/// A CLI bound to one daemon's socket; cheap to clone into writer threads.
#[derive(Clone)]
struct Cli {
    program: PathBuf,
    host: String,
    env: Vec<(String, PathBuf)>,
}

impl Cli {
    fn run(&self, args: &[&str]) -> anyhow::Result<Output> {
        Command::new(&self.program)
            .arg("-H")
            .arg(&self.host)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {}", self.program.display()))
    }

    fn timed(&self, args: &[&str]) -> anyhow::Result<(Duration, Output)> {
        let t0 = Instant::now();
        let out = self.run(args)?;
        Ok((t0.elapsed(), out))
    }

    /// Stdout of a call that must succeed.
    fn ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.run(args)?;
        ensure!(
            out.status.success(),
            "{} {}: {}",
            self.program.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

fn stderr_line(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

// ---------------------------------------------------------------------------------------
// Docker nodes

/// One Docker Swarm node: a containerd and a dockerd of its own, in namespace `ns`, with
/// every directory and socket under `dir`. Killed, unmounted and removed on drop.
struct DockerNode {
    ns: String,
    dir: PathBuf,
    containerd: Option<Child>,
    dockerd: Option<Child>,
}

impl DockerNode {
    fn start(ns: &str, dir: PathBuf) -> anyhow::Result<DockerNode> {
        std::fs::create_dir_all(dir.join("containerd"))
            .with_context(|| format!("creating {}", dir.display()))?;
        let mut node = DockerNode {
            ns: ns.to_string(),
            dir,
            containerd: None,
            dockerd: None,
        };
        // On failure `node` drops, which kills and removes what was started.
        node.spawn()?;
        Ok(node)
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    fn containerd_socket(&self) -> PathBuf {
        self.dir.join("containerd/containerd.sock")
    }

    /// Starts containerd, then dockerd on it; returns once the API answers.
    ///
    /// dockerd would start a containerd itself, but not when it finds one on the system's
    /// default socket (/run/containerd/containerd.sock): then all four nodes would share
    /// it. So each node gets its own, with its own root, state, sockets and config,
    /// configured as the one dockerd starts (no CRI plugin).
    fn spawn(&mut self) -> anyhow::Result<()> {
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

    fn log_tail(&self) -> String {
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
    fn kill(&mut self) {
        for child in [self.dockerd.take(), self.containerd.take()]
            .into_iter()
            .flatten()
        {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for DockerNode {
    fn drop(&mut self) {
        self.kill();
        // Anything else either started in the node's namespace (a shim, a helper).
        kill_netns(&self.ns);
        // dockerd mounts below its roots (its data root on itself, network namespaces
        // under the exec root) and leaves them when killed.
        remove_tree(&self.dir);
    }
}

/// A directory removed (with whatever is mounted below it) on drop.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        remove_tree(&self.0);
    }
}

/// SIGKILLs every process in namespace `ns` until none is left (10 s at most).
fn kill_netns(ns: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() else {
            return;
        };
        let pids: Vec<i32> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if pids.is_empty() {
            return;
        }
        for pid in pids {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Unmounts everything at or below `dir` (deepest first, repeatedly, for stacked
/// mounts), then removes it.
fn remove_tree(dir: &Path) {
    for _ in 0..10 {
        let mut mounts: Vec<PathBuf> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .map(|m| PathBuf::from(m.replace("\\040", " ")))
            .filter(|m| m.starts_with(dir))
            .collect();
        if mounts.is_empty() {
            break;
        }
        mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
        for m in mounts {
            if let Err(e) = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH) {
                eprintln!("unmounting {}: {e}", m.display());
            }
        }
    }
    if let Err(e) = std::fs::remove_dir_all(dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            eprintln!("removing {}: {e}", dir.display());
        }
    }
}

/// Removes the data roots an interrupted run's covey daemons left (a finished run's are
/// removed by their `TempDir`s).
fn sweep_covey_dirs(prefix: &str) {
    let tmp = std::env::temp_dir();
    let ours = format!("covey-{prefix}-node-");
    for e in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
        if e.file_name().to_string_lossy().starts_with(&ours) {
            remove_tree(&e.path());
        }
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn docker_preflight() -> anyhow::Result<()> {
    for bin in [DOCKERD, CONTAINERD, DOCKER_CLI] {
        ensure!(
            Path::new(bin).is_file(),
            "{bin} is missing (scripts/install-deps installs docker.io)"
        );
    }
    Ok(())
}

fn docker_version() -> anyhow::Result<String> {
    let out = Command::new(DOCKERD).arg("--version").output()?;
    ensure!(out.status.success(), "dockerd --version failed");
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

// ---------------------------------------------------------------------------------------
// /proc

/// `roots` and all their descendants that are alive.
fn process_tree(roots: &[i32]) -> Vec<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if let Some(ppid) = ppid(pid) {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut out = Vec::new();
    let mut stack: Vec<i32> = roots
        .iter()
        .copied()
        .filter(|p| Path::new(&format!("/proc/{p}")).exists())
        .collect();
    while let Some(p) = stack.pop() {
        out.push(p);
        stack.extend(children.get(&p).into_iter().flatten());
    }
    out
}

/// "covey daemon", "covey runtime-helper", "dockerd", "containerd": the program and its
/// subcommand, if any, enough to tell a node's processes apart.
fn process_name(pid: i32) -> String {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let mut args = cmdline
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned());
    let program = args.next().unwrap_or_default();
    let mut name = program.rsplit('/').next().unwrap_or_default().to_string();
    if let Some(sub) = args.next().filter(|a| !a.is_empty() && !a.starts_with('-')) {
        name = format!("{name} {sub}");
    }
    name
}

fn ppid(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn proc_field(pid: i32, file: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn rss_kb(pid: i32) -> Option<u64> {
    proc_field(pid, "status", "VmRSS:")
}

/// Bytes this process caused to be sent to storage (all its threads, live and dead).
fn write_bytes(pid: i32) -> Option<u64> {
    proc_field(pid, "io", "write_bytes:")
}

// ---------------------------------------------------------------------------------------
// Figures and the table

fn ms(d: &[Duration]) -> Vec<f64> {
    d.iter().map(|d| d.as_secs_f64() * 1000.0).collect()
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

fn median(v: &[f64]) -> Option<f64> {
    let v = sorted(v);
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[n / 2]),
        n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// Nearest rank.
fn p95(v: &[f64]) -> Option<f64> {
    let v = sorted(v);
    let rank = (v.len() as f64 * 0.95).ceil() as usize;
    v.get(rank.max(1) - 1).copied()
}

fn fmt_ms(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.1} ms"))
}

fn fmt_bytes(b: f64) -> String {
    const MB: f64 = 1024.0 * 1024.0;
    if b >= MB {
        format!("{:.1} MB", b / MB)
    } else {
        format!("{:.0} kB", b / 1024.0)
    }
}

fn fmt_bytes_per_hour(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |b| format!("{}/h", fmt_bytes(b)))
}

enum Unit {
    Ms,
    PerS,
    Mb,
    BytesPerHour,
}

impl Unit {
    fn fmt(&self, v: Option<f64>) -> String {
        match self {
            Unit::Ms => fmt_ms(v),
            Unit::PerS => v.map_or("n/a".into(), |v| format!("{v:.1}/s")),
            Unit::Mb => v.map_or("n/a".into(), |v| format!("{v:.1} MB")),
            Unit::BytesPerHour => fmt_bytes_per_hour(v),
        }
    }
}

fn print_table(cfg: &Config, f: &[Figures; 2]) {
    let mut rows: Vec<(String, [Option<f64>; 2], Unit, &str)> = Vec::new();
    let both = |get: &dyn Fn(&Figures) -> Option<f64>| [get(&f[0]), get(&f[1])];
    for (c, condition) in CONDITIONS.iter().enumerate() {
        rows.push((
            format!("commit latency, median ({condition})"),
            both(&|x| x.write_median_ms[c]),
            Unit::Ms,
            "",
        ));
        rows.push((
            format!("commit latency, p95 ({condition})"),
            both(&|x| x.write_p95_ms[c]),
            Unit::Ms,
            "",
        ));
        rows.push((
            format!("  CLI+API overhead: no-op read, median ({condition})"),
            both(&|x| x.read_ms[c]),
            Unit::Ms,
            "",
        ));
        rows.push((
            format!("commits/s, {WRITERS} writers ({condition})"),
            both(&|x| x.commits_per_s[c]),
            Unit::PerS,
            "",
        ));
    }
    rows.push((
        format!("leader kill to new leader (median of {})", cfg.trials),
        both(&|x| x.failover_ms),
        Unit::Ms,
        "",
    ));
    let roles = ["manager (leader)", "manager (follower)", "worker"];
    let rss_goals = ["30 MB", "30 MB", "15 MB"];
    for (r, role) in roles.iter().enumerate() {
        rows.push((
            format!("idle RSS, {role}"),
            both(&|x| x.rss_mb[r]),
            Unit::Mb,
            rss_goals[r],
        ));
    }
    for (r, role) in roles.iter().enumerate() {
        rows.push((
            format!("idle PSS, {role}"),
            both(&|x| x.pss_mb[r]),
            Unit::Mb,
            rss_goals[r],
        ));
    }
    for (r, role) in roles.iter().enumerate() {
        rows.push((
            format!("idle disk writes, {role}"),
            both(&|x| x.disk_per_hour[r]),
            Unit::BytesPerHour,
            if r == 2 { "under 1 MB/h" } else { "" },
        ));
    }

    let header = ["figure", "covey", "docker swarm", "ratio", "goal"];
    let table: Vec<[String; 5]> = rows
        .iter()
        .map(|(label, v, unit, goal)| {
            let ratio = match v {
                [Some(c), Some(d)] if *d != 0.0 => format!("{:.2}", c / d),
                // Nothing at all from docker (its idle disk writes, say).
                [Some(c), Some(_)] if *c == 0.0 => "1.00".into(),
                [Some(_), Some(_)] => "inf".into(),
                _ => "n/a".into(),
            };
            [
                label.clone(),
                unit.fmt(v[0]),
                unit.fmt(v[1]),
                ratio,
                goal.to_string(),
            ]
        })
        .collect();
    let mut width = header.map(str::len);
    for row in &table {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: [&str; 5]| {
        let mut s = format!("{:<w$}", cells[0], w = width[0]);
        for (k, cell) in cells.iter().enumerate().skip(1) {
            s.push_str(&format!("  {:>w$}", cell, w = width[k]));
        }
        println!("{}", s.trim_end());
    };
    println!("\n== results (ratio = covey / docker swarm; lower is better except commits/s)");
    line(header);
    for row in &table {
        line([&row[0], &row[1], &row[2], &row[3], &row[4]]);
    }
    println!(
        "\nnotes:\n\
         - commit latency: {w} sequential `node update --label-add` of the worker through the \
         leader's CLI, each call timed (the CLI reads the node, then writes it); the no-op read \
         is a `node inspect` of the same node: write minus read is the store's part.\n\
         - commits/s: {WRITERS} CLI processes at once on this {cores}-core machine, each \
         changing its own label on the same node; an out-of-sequence refusal is retried and \
         not counted.\n\
         - degraded link: a one-way delay of 100 ms on every frame (200 ms round trips) and \
         10% loss on each manager's link, each way, at both ends: about 19% of the packets \
         between two managers are lost (1-0.9^2), about 34% of round trips; the worker's link is \
         delayed, not lossy.\n\
         - failover: SIGKILL of the leader's daemon (docker: dockerd and its containerd), then a \
         `node inspect` on a surviving manager every {poll} ms until it names another leader; \
         the killed node is restarted and rejoins between trials. Clean link.\n\
         - idle PSS: the same trees' proportional set size: a page shared by several \
         processes is divided among them. Here that includes the other nodes' daemons of the \
         same engine on this machine, so it is lower than on a board running one node; RSS is \
         the upper bound.\n\
         - idle RSS: VmRSS summed over the daemon's process tree (covey: daemon and runtime \
         helper; docker: dockerd and containerd, each node its own), {settle} s after the last \
         activity. (A standalone dockerd+containerd idles at about 161 MB here.)\n\
         - idle disk writes: write_bytes of /proc/PID/io over the same trees during a {win} s \
         idle window, times 3600/{win}: an extrapolation, not an hour's measurement. Both \
         engines log at info level to a file on the same disk, which counts.",
        w = cfg.writes,
        cores = std::thread::available_parallelism().map_or(0, |n| n.get()),
        poll = POLL.as_millis(),
        settle = cfg.settle.as_secs(),
        win = cfg.window.as_secs(),
    );
    for (k, name) in ["covey", "docker swarm"].iter().enumerate() {
        if let Some(e) = &f[k].error {
            let what = if k == 1 && f[1].write_median_ms[0].is_none() {
                "DOCKER SWARM COULD NOT RUN HERE; its figures are missing"
            } else {
                "figures stopped early"
            };
            println!("\n{name}: {what}:\n{e}");
        }
    }
}
