//! What /proc says of the daemons' process trees.

use std::collections::HashMap;
use std::path::Path;

/// `roots` and all their descendants that are alive.
pub(super) fn process_tree(roots: &[i32]) -> Vec<i32> {
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
pub(super) fn process_name(pid: i32) -> String {
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

pub(super) fn ppid(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

pub(super) fn proc_field(pid: i32, file: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

pub(super) fn rss_kb(pid: i32) -> Option<u64> {
    proc_field(pid, "status", "VmRSS:")
}

/// Bytes this process caused to be sent to storage (all its threads, live and dead).
pub(super) fn write_bytes(pid: i32) -> Option<u64> {
    proc_field(pid, "io", "write_bytes:")
}
