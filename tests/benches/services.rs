//! The services issue's figures, covey against Docker Swarm in the same run (a benchmark,
//! never a test; `bench/services.sh` runs it as root): the time from `service create -d`
//! to 1, 10 and 30 replicas running.
//!
//! Layout: one [`Net`] of two nodes; n1 a single-node covey swarm, n2 a single-node
//! Docker Swarm (Debian's docker.io: a dockerd with a containerd of its own); a registry
//! (Debian's docker-registry) on the network's switch holds the busybox fixture, and both
//! engines pull it from there. The image is pulled on both before the timed trials, so
//! that they measure orchestration and container start; one extra trial per engine then
//! starts 30 replicas without it.
//!
//! Each trial runs the engine's CLI, `service create -d --no-resolve-image --replicas N
//! IMAGE sleep 1d`, and polls the Engine API's `/tasks` (served by both, through the same
//! client here) at a fixed cadence until N tasks run; then `service rm`, and the next trial
//! waits for every container to be gone. Trials alternate between the engines, so both see
//! the same machine.
//!
//! Everything started is stopped and removed on the way out, failure or not; a crashed
//! run's leftovers are removed by the next run before it starts.
//!
//! Settings (environment): BENCH_TRIALS (5 per replica count), BENCH_TIMEOUT (120 s for a
//! trial's tasks to run, or its containers to go), BENCH_SETTLE_MS (1000, between trials).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use covey_tests::bench::{
    api_get, loadavg, log_tail, median, remove_tree, sweep_covey_dirs, url_escape, Cli,
    RemoveOnDrop,
};
use covey_tests::cluster::Net;
use covey_tests::dockerd::{docker_preflight, docker_version, DockerNode};
use covey_tests::{covey_bin, free_port, Daemon, Registry};
use serde_json::{json, Value};

/// The network's prefix, also the covey daemon's and the registry's directories'.
const PREFIX: &str = "svbench";
const COVEY_NODE: usize = 1;
const DOCKER_NODE: usize = 2;
/// The Docker node's directory, at a fixed path so that a crashed run's is removed by the
/// next one.
const DOCKER_DIR: &str = "/tmp/covey-bench-services-docker";
const REPLICAS: [usize; 3] = [1, 10, 30];
/// The replica count of the trial without the image.
const COLD_REPLICAS: usize = 30;
/// How often a trial asks for the tasks.
const POLL: Duration = Duration::from_millis(20);
/// docker.io 20.10's API version; covey serves every version's prefix from 1.24.
const API: &str = "/v1.41";
/// The goal: covey this many times faster than Swarm.
const GOAL: f64 = 10.0;

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bench/services: {e:#}");
            ExitCode::FAILURE
        }
    }
}

struct Config {
    trials: usize,
    timeout: Duration,
    settle: Duration,
}

impl Config {
    fn from_env() -> anyhow::Result<Config> {
        use covey_tests::bench::env_u64 as var;
        let cfg = Config {
            trials: usize::try_from(var("BENCH_TRIALS", 5)?)?,
            timeout: Duration::from_secs(var("BENCH_TIMEOUT", 120)?),
            settle: Duration::from_millis(var("BENCH_SETTLE_MS", 1000)?),
        };
        ensure!(cfg.trials > 0, "BENCH_TRIALS must be above 0");
        Ok(cfg)
    }
}

fn run() -> anyhow::Result<ExitCode> {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this too, without
    // it: a benchmark of minutes is not a test, so it does nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("bench/services: a benchmark, run by `cargo bench` (bench/services.sh); skipped");
        return Ok(ExitCode::SUCCESS);
    }
    ensure!(
        nix::unistd::geteuid().is_root(),
        "run as root: namespaces, daemons and containers"
    );
    let cfg = Config::from_env()?;
    println!(
        "bench/services: time from `service create -d` to N replicas running, covey {} \
         against Docker Swarm ({}), each a single-node swarm in its own network namespace",
        covey_bin().display(),
        docker_version().unwrap_or_else(|e| format!("unavailable: {e:#}")),
    );
    println!("load average at the start: {}", loadavg());

    let bench = Bench::start()?;
    let mut figures: Vec<Figures> = bench.engines.iter().map(|_| Figures::default()).collect();
    for (e, f) in bench.engines.iter().zip(figures.iter_mut()) {
        if let Err(err) = e.prepare(&bench.image, &cfg) {
            f.fail(e, err);
        }
    }
    if let Some(err) = &bench.docker_error {
        figures.push(Figures {
            error: Some(err.clone()),
            ..Figures::default()
        });
    }

    println!(
        "\n== {} trials per replica count, the engines alternating",
        cfg.trials
    );
    for (k, &n) in REPLICAS.iter().enumerate() {
        for t in 1..=cfg.trials {
            for (e, f) in bench.engines.iter().zip(figures.iter_mut()) {
                if f.error.is_some() {
                    continue;
                }
                std::thread::sleep(cfg.settle);
                match e.trial(&format!("r{n}-t{t}"), n, &bench.image, &cfg) {
                    Ok(tr) => {
                        println!(
                            "{}: {n} replicas, trial {t}: create returned after {}, all \
                             running after {} ({} polls)",
                            e.name,
                            fmt_ms(tr.created_ms),
                            fmt_ms(tr.running_ms),
                            tr.polls
                        );
                        f.runs[k].push(tr.running_ms);
                    }
                    Err(err) => f.fail(e, err.context(format!("{n} replicas, trial {t}"))),
                }
            }
        }
    }

    println!("\n== {COLD_REPLICAS} replicas without the image: removed first, the tasks pull it");
    for (e, f) in bench.engines.iter().zip(figures.iter_mut()) {
        if f.error.is_some() {
            continue;
        }
        std::thread::sleep(cfg.settle);
        let cold = e
            .cli
            .ok(&["image", "rm", &bench.image])
            .and_then(|_| e.trial("cold", COLD_REPLICAS, &bench.image, &cfg));
        match cold {
            Ok(tr) => {
                println!(
                    "{}: {COLD_REPLICAS} replicas, image not present: create returned after \
                     {}, all running after {}",
                    e.name,
                    fmt_ms(tr.created_ms),
                    fmt_ms(tr.running_ms)
                );
                f.cold_ms = Some(tr.running_ms);
            }
            Err(err) => f.fail(e, err.context("the trial without the image")),
        }
    }

    print_table(&cfg, &figures);
    println!("load average at the end: {}", loadavg());
    println!("\ntearing down");
    let covey_failed = figures[0].error.is_some();
    drop(bench);
    Ok(if covey_failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// One engine's figures, in milliseconds.
#[derive(Default)]
struct Figures {
    /// Per replica count (as [`REPLICAS`]), each trial's time to all running.
    runs: [Vec<f64>; 3],
    cold_ms: Option<f64>,
    /// Why the figures stop where they do.
    error: Option<String>,
}

impl Figures {
    fn fail(&mut self, e: &Engine, err: anyhow::Error) {
        let err = format!("{}: {err:#}\n{}", e.name, e.log_tail());
        println!("{err}");
        self.error = Some(err);
    }
}

struct Trial {
    created_ms: f64,
    running_ms: f64,
    polls: u32,
}

/// The network, the registry and the engines. Fields drop in order: the engines first
/// (after `Drop` removed their services), then the registry, then the network (which
/// kills whatever still runs in its namespaces).
struct Bench {
    engines: Vec<Engine>,
    /// Why Docker is not among the engines, if it is not.
    docker_error: Option<String>,
    image: String,
    _registry: Registry,
    _docker_dir: RemoveOnDrop,
    _net: Net,
}

impl Bench {
    fn start() -> anyhow::Result<Bench> {
        // First, since it kills what a previous run left in its namespaces: their files
        // can then go.
        let net = Net::new(PREFIX, 2).context("making the network")?;
        sweep_covey_dirs(PREFIX);
        remove_tree(Path::new(DOCKER_DIR));
        let docker_dir = RemoveOnDrop(PathBuf::from(DOCKER_DIR));
        // The port is chosen before the daemons start, so that they can trust it.
        let port = free_port();
        let registry_host = format!("{}:{port}", net.switch_ip());
        let insecure = ["--insecure-registry", registry_host.as_str()];
        let registry =
            Registry::start_on_port(PREFIX, &net, port).context("starting the registry")?;
        let image = registry
            .push("busybox", "busybox")
            .context("pushing busybox")?;
        println!("registry on the switch: {image}");
        let mut bench = Bench {
            engines: Vec::new(),
            docker_error: None,
            image,
            _registry: registry,
            _docker_dir: docker_dir,
            _net: net,
        };
        let daemon = Daemon::start_in_netns(PREFIX, &bench._net.node_ns(COVEY_NODE), &insecure)
            .context("starting the covey daemon")?;
        bench.engines.push(Engine {
            name: "covey",
            cli: Cli::covey(&daemon),
            socket: daemon.socket.clone(),
            ip: bench._net.node_ip(COVEY_NODE).to_string(),
            node: Node::Covey(daemon),
        });
        let docker = docker_preflight().and_then(|()| {
            DockerNode::start_with(
                &bench._net.node_ns(DOCKER_NODE),
                Path::new(DOCKER_DIR).join("n2"),
                &insecure,
            )
        });
        match docker {
            Ok(d) => bench.engines.push(Engine {
                name: "docker swarm",
                cli: d.cli(),
                socket: d.socket(),
                ip: bench._net.node_ip(DOCKER_NODE).to_string(),
                node: Node::Docker(d),
            }),
            Err(e) => {
                let e = format!("docker swarm: could not start: {e:#}");
                println!("{e}");
                bench.docker_error = Some(e);
            }
        }
        Ok(bench)
    }
}

impl Drop for Bench {
    /// Services go before their daemons: a covey daemon leaves its containers running
    /// when it stops, and a dockerd's would be killed outright.
    fn drop(&mut self) {
        for e in &self.engines {
            let services = e.cli.ok(&["service", "ls", "-q"]).unwrap_or_default();
            let services: Vec<&str> = services.split_whitespace().collect();
            if services.is_empty() {
                continue;
            }
            let mut args = vec!["service", "rm"];
            args.extend(&services);
            if let Err(err) = e
                .cli
                .ok(&args)
                .and_then(|_| e.wait_no_containers(Duration::from_secs(60)))
            {
                eprintln!("{}: removing the services: {err:#}", e.name);
            }
        }
    }
}

enum Node {
    Covey(Daemon),
    Docker(DockerNode),
}

/// One engine's single-node swarm.
struct Engine {
    name: &'static str,
    node: Node,
    cli: Cli,
    socket: PathBuf,
    /// The node's address, which the swarm advertises.
    ip: String,
}

impl Engine {
    /// Makes the swarm, pulls the image (timed, for the record) and runs a trial that is
    /// not counted: the first service of a swarm pays for what later ones reuse.
    fn prepare(&self, image: &str, cfg: &Config) -> anyhow::Result<()> {
        println!("\n== {}: swarm init, pull, warm-up", self.name);
        self.cli
            .ok(&["swarm", "init", "--advertise-addr", &self.ip])
            .context("swarm init")?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let nodes = self.get("/nodes").unwrap_or_default();
            let ready = nodes
                .as_array()
                .is_some_and(|n| n.len() == 1 && n.iter().all(|n| n["Status"]["State"] == "ready"));
            if ready {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "the node is not ready 30 s after swarm init: {nodes}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let t0 = Instant::now();
        self.cli.ok(&["image", "pull", image]).context("pulling")?;
        println!(
            "{}: busybox pulled in {}",
            self.name,
            fmt_ms(t0.elapsed().as_secs_f64() * 1000.0)
        );
        let tr = self.trial("warmup", 1, image, cfg).context("warm-up")?;
        println!(
            "{}: warm-up (not counted): 1 replica running after {}",
            self.name,
            fmt_ms(tr.running_ms)
        );
        Ok(())
    }

    /// Creates `service` with `n` replicas, times it to all running, removes it.
    fn trial(&self, service: &str, n: usize, image: &str, cfg: &Config) -> anyhow::Result<Trial> {
        let replicas = n.to_string();
        let args = [
            "service",
            "create",
            "-d",
            "--no-resolve-image",
            "--name",
            service,
            "--replicas",
            &replicas,
            image,
            "sleep",
            "1d",
        ];
        // From the moment the CLI is started, as a person typing it would count.
        let t0 = Instant::now();
        self.cli.ok(&args)?;
        let created = Instant::now();
        let mut polls = 0u32;
        let running = loop {
            let tasks = self.tasks(service)?;
            polls += 1;
            if running(&tasks) >= n {
                break t0.elapsed();
            }
            if t0.elapsed() > cfg.timeout {
                bail!(
                    "{service}: not all {n} tasks running after {} s: {}",
                    cfg.timeout.as_secs(),
                    summary(&tasks)
                );
            }
            // A fixed cadence: a poll that took longer than the period is followed at once.
            if let Some(wait) = (created + POLL * polls).checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        };
        let trial = Trial {
            created_ms: (created - t0).as_secs_f64() * 1000.0,
            running_ms: running.as_secs_f64() * 1000.0,
            polls,
        };
        self.cli
            .ok(&["service", "rm", service])
            .context("service rm")?;
        self.wait_no_containers(cfg.timeout)
            .with_context(|| format!("after removing {service}"))?;
        Ok(trial)
    }

    /// GET `path` (without the version) on the engine's API: its JSON.
    fn get(&self, path: &str) -> anyhow::Result<Value> {
        let (status, body) = api_get(&self.socket, &format!("{API}{path}"))?;
        ensure!(
            status == 200,
            "GET {path}: {status} {}",
            String::from_utf8_lossy(&body).trim()
        );
        serde_json::from_slice(&body).with_context(|| format!("GET {path}: not JSON"))
    }

    fn tasks(&self, service: &str) -> anyhow::Result<Vec<Value>> {
        let filters = json!({ "service": { service: true } }).to_string();
        let tasks = self.get(&format!("/tasks?filters={}", url_escape(&filters)))?;
        Ok(tasks.as_array().cloned().unwrap_or_default())
    }

    /// Until no container is left, running or not.
    fn wait_no_containers(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = self
                .get("/containers/json?all=1")?
                .as_array()
                .map_or(0, Vec::len);
            if left == 0 {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "{left} containers still there {} s later",
                timeout.as_secs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_tail(&self) -> String {
        match &self.node {
            Node::Covey(d) => log_tail(&d.root.path().join("daemon.log")),
            Node::Docker(d) => d.log_tail(),
        }
    }
}

/// How many tasks run and should.
fn running(tasks: &[Value]) -> usize {
    tasks
        .iter()
        .filter(|t| t["Status"]["State"] == "running" && t["DesiredState"] == "running")
        .count()
}

/// "3 running, 7 preparing; last error: …": what a trial that timed out saw.
fn summary(tasks: &[Value]) -> String {
    let mut states: Vec<(String, usize)> = Vec::new();
    for t in tasks {
        let s = t["Status"]["State"].as_str().unwrap_or("?").to_string();
        match states.iter_mut().find(|(k, _)| *k == s) {
            Some((_, n)) => *n += 1,
            None => states.push((s, 1)),
        }
    }
    let mut out = states
        .iter()
        .map(|(s, n)| format!("{n} {s}"))
        .collect::<Vec<_>>()
        .join(", ");
    if out.is_empty() {
        out = "no tasks".into();
    }
    if let Some(err) = tasks
        .iter()
        .filter_map(|t| t["Status"]["Err"].as_str())
        .find(|e| !e.is_empty())
    {
        out.push_str(&format!("; an error: {err}"));
    }
    out
}

fn fmt_ms(ms: f64) -> String {
    if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.2} s", ms / 1000.0)
    }
}

/// "52 ms (48 ms-60 ms)": the median and the range.
fn fmt_runs(v: &[f64]) -> String {
    let (Some(m), Some(lo), Some(hi)) = (
        median(v),
        v.iter().copied().reduce(f64::min),
        v.iter().copied().reduce(f64::max),
    ) else {
        return "n/a".into();
    };
    format!("{} ({}-{})", fmt_ms(m), fmt_ms(lo), fmt_ms(hi))
}

fn print_table(cfg: &Config, f: &[Figures]) {
    let none = Figures::default();
    let (covey, docker) = (&f[0], f.get(1).unwrap_or(&none));
    let header = [
        "replicas",
        "covey",
        "docker swarm",
        "swarm/covey",
        "10x goal",
    ]
    .map(String::from);
    let mut rows = vec![header];
    for (k, n) in REPLICAS.iter().enumerate() {
        let ratio = median(&docker.runs[k])
            .zip(median(&covey.runs[k]))
            .map(|(d, c)| d / c);
        rows.push([
            n.to_string(),
            fmt_runs(&covey.runs[k]),
            fmt_runs(&docker.runs[k]),
            ratio.map_or("n/a".into(), |r| format!("{r:.1}x")),
            ratio.map_or("n/a".into(), |r| {
                if r >= GOAL { "met" } else { "NOT met" }.into()
            }),
        ]);
    }
    let mut width = [0; 5];
    for row in &rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    println!(
        "\n== results: time from `service create -d` to N tasks running, busybox pre-pulled \
         on both (median (min-max) of {} trials)",
        cfg.trials
    );
    for row in &rows {
        let mut line = format!("{:<w$}", row[0], w = width[0]);
        for (k, cell) in row.iter().enumerate().skip(1) {
            line.push_str(&format!("  {:>w$}", cell, w = width[k]));
        }
        println!("{}", line.trim_end());
    }
    let cold = |x: &Figures| x.cold_ms.map_or("n/a".into(), fmt_ms);
    println!(
        "\n{COLD_REPLICAS} replicas, image NOT pre-pulled (removed first; the tasks pull it from \
         the registry): covey {}; docker swarm {} (one trial each)",
        cold(covey),
        cold(docker)
    );
    println!(
        "\nnotes:\n\
         - each engine a single-node swarm (the manager runs the tasks) in its own network \
         namespace; both pull busybox from the same registry (Debian's docker-registry) on the \
         network's switch, over plain HTTP (--insecure-registry).\n\
         - a trial: `service create -d --no-resolve-image --replicas N IMAGE sleep 1d` through \
         the engine's own CLI, timed from the CLI's start to the first poll that sees N tasks \
         with state and desired state running. Polls: GET {API}/tasks?filters={{service}} over \
         the engine's unix socket, the same client for both, one connection each, every {poll} \
         ms from the CLI's return. Then `service rm`, and the next trial starts once no \
         container is left and {settle} ms have passed.\n\
         - pre-pulled: `image pull` on both before the trials, and one 1-replica warm-up per \
         engine, not counted. Docker's agent still asks the registry for the manifest before \
         each task (its default; DOCKER_SERVICE_PREFER_OFFLINE_IMAGE unset); covey uses the \
         image it has. Each engine as it runs by default.\n\
         - the engines alternate trial by trial on this {cores}-core machine; the other idles.",
        poll = POLL.as_millis(),
        settle = cfg.settle.as_millis(),
        cores = std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    for (name, x) in [("covey", covey), ("docker swarm", docker)] {
        if let Some(e) = &x.error {
            println!("\n{name}: FIGURES STOPPED EARLY:\n{e}");
        }
    }
}
