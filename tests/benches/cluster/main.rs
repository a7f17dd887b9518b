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

mod procfs;
mod swarms;
mod table;

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use covey_tests::bench::{loadavg, median, stderr_line};
use covey_tests::covey_bin;
use covey_tests::dockerd::{docker_preflight, docker_version};

use swarms::Cluster;
use table::{fmt_bytes, fmt_bytes_per_hour, fmt_ms, ms, p95, print_table};

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
        use covey_tests::bench::env_u64 as var;
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
                cl.net.set_send_loss(i, 10)?;
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
