//! The node's own figures: CPU time, memory and the data root's filesystem, the
//! containers and what each task's cgroup uses, and the daemon's process, read from
//! /proc, statvfs and the cgroup tree at each scrape. The parsers are pure.

use std::path::Path;

use prometheus_client::registry::Unit;

use super::scrape::{describe, Labels, Scrape};
use crate::containers::{Containers, Status};
use crate::swarm::describe::meminfo_bytes;

/// /proc/stat's CPU columns, in its order.
const CPU_MODES: [&str; 8] = [
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
];

pub fn read(scrape: &mut Scrape, data_root: &Path) {
    let hz = clock_ticks();
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    scrape.counters(
        describe(
            "covey_node_cpu",
            "CPU time the node spent in each mode, all CPUs together",
            Some(Unit::Seconds),
        ),
        cpu_ticks(&stat)
            .into_iter()
            .map(|(mode, ticks)| (vec![("mode", mode.to_string())], ticks as f64 / hz)),
    );
    scrape.gauge(
        describe("covey_node_cpus", "CPUs the node has online", None),
        cpu_count(&stat) as f64,
    );
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    for (key, name, help) in [
        ("MemTotal", "covey_node_memory_total", "The node's memory"),
        (
            "MemAvailable",
            "covey_node_memory_available",
            "Memory the node can give without swapping",
        ),
    ] {
        if let Some(bytes) = meminfo_bytes(&meminfo, key) {
            scrape.gauge(describe(name, help, Some(Unit::Bytes)), bytes as f64);
        }
    }
    if let Ok(fs) = nix::sys::statvfs::statvfs(data_root) {
        let block = fs.fragment_size() as f64;
        for (name, help, blocks) in [
            (
                "covey_node_filesystem_size",
                "Size of the filesystem holding the data root",
                fs.blocks(),
            ),
            (
                "covey_node_filesystem_available",
                "Space left to the daemon on the filesystem holding the data root",
                fs.blocks_available(),
            ),
        ] {
            let labels = vec![("path", data_root.display().to_string())];
            scrape.gauges(
                describe(name, help, Some(Unit::Bytes)),
                [(labels, blocks as f64 * block)],
            );
        }
    }
    process(scrape, hz, &stat);
}

/// The daemon's own process, under the standard `process_` names.
fn process(scrape: &mut Scrape, hz: f64, proc_stat: &str) {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    if let Some(pages) = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<u64>().ok())
    {
        scrape.gauge(
            describe(
                "process_resident_memory",
                "Resident memory of the covey daemon",
                Some(Unit::Bytes),
            ),
            (pages * page_size()) as f64,
        );
    }
    let own = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    if let Some(times) = process_times(&own) {
        scrape.counter(
            describe(
                "process_cpu",
                "CPU time of the covey daemon, user and system",
                Some(Unit::Seconds),
            ),
            (times.utime + times.stime) as f64 / hz,
        );
        if let Some(boot) = boot_time(proc_stat) {
            scrape.gauge(
                describe(
                    "process_start_time",
                    "When the covey daemon started, since the Unix epoch",
                    Some(Unit::Seconds),
                ),
                boot as f64 + times.start as f64 / hz,
            );
        }
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        scrape.gauge(
            describe(
                "process_open_fds",
                "Open file descriptors of the covey daemon",
                None,
            ),
            fds.count() as f64,
        );
    }
}

/// The node's containers by state, and each running task's cgroup usage.
pub fn containers(scrape: &mut Scrape, containers: &Containers) {
    let records = containers.list(true);
    scrape.gauges(
        describe("covey_containers", "Containers on this node by state", None),
        [Status::Created, Status::Running, Status::Exited].map(|state| {
            let n = records.iter().filter(|r| r.status == state).count();
            (vec![("state", state.docker().to_string())], n as f64)
        }),
    );
    let mut cpu = Vec::new();
    let mut memory = Vec::new();
    let root = Path::new(covey_runtime::cgroups::ROOT);
    for record in records.iter().filter(|r| r.status == Status::Running) {
        let Some(labels) = task_labels(&record.request) else {
            continue;
        };
        let Some(usage) = covey_runtime::cgroups::usage(root, &record.id) else {
            continue;
        };
        cpu.push((labels.clone(), usage.cpu_seconds));
        if let Some(bytes) = usage.memory_bytes {
            memory.push((labels, bytes as f64));
        }
    }
    scrape.counters(
        describe(
            "covey_task_cpu",
            "CPU time of a running task's container (its cgroup)",
            Some(Unit::Seconds),
        ),
        cpu,
    );
    scrape.gauges(
        describe(
            "covey_task_memory",
            "Memory of a running task's container less inactive page cache (its cgroup)",
            Some(Unit::Bytes),
        ),
        memory,
    );
}

/// A task container's service and task name, from the labels the agent gave it; none
/// for a container started by hand.
fn task_labels(request: &serde_json::Value) -> Option<Labels> {
    let labels = &request["Labels"];
    let service = labels["com.docker.swarm.service.name"].as_str()?;
    let task = labels["com.docker.swarm.task.name"].as_str()?;
    Some(vec![
        ("service", service.to_string()),
        ("task", task.to_string()),
    ])
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf reads a constant of the system; no memory is passed.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

fn page_size() -> u64 {
    // SAFETY: as in clock_ticks.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096)
}

/// The ticks of the aggregate `cpu` line of /proc/stat, by mode.
fn cpu_ticks(stat: &str) -> Vec<(&'static str, u64)> {
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return Vec::new();
    };
    CPU_MODES
        .iter()
        .zip(line.split_whitespace().skip(1))
        .filter_map(|(mode, v)| Some((*mode, v.parse().ok()?)))
        .collect()
}

fn cpu_count(stat: &str) -> usize {
    stat.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count()
}

fn boot_time(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

struct ProcessTimes {
    utime: u64,
    stime: u64,
    /// Ticks after boot.
    start: u64,
}

/// /proc/self/stat's times. The command name, in parentheses, may hold spaces and
/// parentheses itself: fields are counted from the last `)`.
fn process_times(stat: &str) -> Option<ProcessTimes> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After the name: state is field 3; utime 14, stime 15, starttime 22.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(ProcessTimes {
        utime: field(14)?,
        stime: field(15)?,
        start: field(22)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  100 2 30 4000 5 0 6 0 0 0\ncpu0 50 1 15 2000 2 0 3 0 0 0\ncpu1 50 1 15 2000 3 0 3 0 0 0\nintr 1\nbtime 1700000000\n";

    #[test]
    fn proc_stat() {
        let ticks = cpu_ticks(STAT);
        assert_eq!(ticks.len(), 8);
        assert_eq!(ticks[0], ("user", 100));
        assert_eq!(ticks[3], ("idle", 4000));
        assert_eq!(cpu_count(STAT), 2);
        assert_eq!(boot_time(STAT), Some(1_700_000_000));
        assert!(cpu_ticks("").is_empty());
    }

    #[test]
    fn own_stat_with_an_awkward_name() {
        let stat =
            "42 (co) vey (x)) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 1234 1000 200";
        let t = process_times(stat).unwrap();
        assert_eq!((t.utime, t.stime, t.start), (250, 50, 1234));
        assert!(process_times("garbage").is_none());
    }

    #[test]
    fn task_labels_only_for_task_containers() {
        let task = serde_json::json!({"Labels": {
            "com.docker.swarm.service.name": "web",
            "com.docker.swarm.task.name": "web.1.abc",
        }});
        assert_eq!(
            task_labels(&task),
            Some(vec![
                ("service", "web".to_string()),
                ("task", "web.1.abc".to_string())
            ])
        );
        assert_eq!(task_labels(&serde_json::json!({"Labels": {}})), None);
    }
}
