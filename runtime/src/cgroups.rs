//! Checks, before a container is made, that the kernel has the cgroup controllers its
//! limits need, so that a missing one is named with its fix instead of failing deep in
//! libcontainer. Raspberry Pi kernels often boot without the memory controller. And
//! what a container's cgroup has used, for the daemon's metrics.

use std::path::{Path, PathBuf};

use crate::config::Resources;
use crate::error::RuntimeError;

pub const ROOT: &str = "/sys/fs/cgroup";
/// The cgroup covey's containers go under, each in `covey/<id>` (the spec's cgroups path).
pub const PARENT: &str = "covey";

/// Container `id`'s cgroup directory under `base`: the v2 root, or a v1 controller's.
pub fn dir(base: &Path, id: &str) -> PathBuf {
    base.join(PARENT).join(id)
}

/// The controllers `resources` need that the hierarchy at `root` lacks.
pub fn check(root: &Path, resources: &Resources) -> Result<(), RuntimeError> {
    let mut needed = Vec::new();
    if resources.memory_bytes.is_some() {
        needed.push(("memory", "a memory limit (-m)"));
    }
    if resources.cpus.is_some() || resources.cpu_shares.is_some() {
        needed.push(("cpu", "a CPU limit (--cpus, --cpu-shares)"));
    }
    if resources.pids_limit.is_some() {
        needed.push(("pids", "a pids limit (--pids-limit)"));
    }
    if needed.is_empty() {
        return Ok(());
    }
    let available = available(root);
    for (controller, what) in needed {
        if !available.iter().any(|a| a == controller) {
            return Err(RuntimeError::ControllerMissing {
                controller,
                what,
                hint: hint(controller),
            });
        }
    }
    Ok(())
}

/// The controllers the hierarchy at `root` has: cgroup v2's `cgroup.controllers`, or on
/// v1 one directory per controller (perhaps combined, as `cpu,cpuacct`).
pub fn available(root: &Path) -> Vec<String> {
    match std::fs::read_to_string(root.join("cgroup.controllers")) {
        Ok(v2) => v2.split_whitespace().map(str::to_string).collect(),
        Err(_) => std::fs::read_dir(root)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.path().is_dir())
                    .flat_map(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .split(',')
                            .map(str::to_string)
                            .collect::<Vec<_>>()
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// 2 on a unified hierarchy, else 1.
pub fn version(root: &Path) -> u8 {
    match root.join("cgroup.controllers").exists() {
        true => 2,
        false => 1,
    }
}

/// What a container's cgroup has used so far.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Usage {
    /// CPU time of all its processes.
    pub cpu_seconds: f64,
    /// Memory in use less inactive page cache (the working set, as `docker stats`
    /// shows it); none without the memory controller.
    pub memory_bytes: Option<u64>,
}

/// The usage of container `id`'s cgroup (`covey/<id>`, as the spec names it) under
/// `root`: v2's `cpu.stat` and `memory.current`, or v1's `cpuacct` and `memory`
/// controllers. None when it has no cgroup (it does not run) or no CPU accounting.
pub fn usage(root: &Path, id: &str) -> Option<Usage> {
    crate::container::check_id(id).ok()?;
    let read = |path: PathBuf| std::fs::read_to_string(path).ok();
    let (cpu_seconds, memory, stat) = match version(root) {
        2 => {
            let dir = dir(root, id);
            let usec = field(&read(dir.join("cpu.stat"))?, "usage_usec")?;
            let memory = read(dir.join("memory.current"));
            (usec as f64 / 1e6, memory, read(dir.join("memory.stat")))
        }
        _ => {
            // Combined as `cpu,cpuacct` where the distribution has no `cpuacct` link.
            let nanos = ["cpuacct", "cpu,cpuacct"]
                .iter()
                .find_map(|c| read(dir(&root.join(c), id).join("cpuacct.usage")))?;
            let nanos: u64 = nanos.trim().parse().ok()?;
            let dir = dir(&root.join("memory"), id);
            let memory = read(dir.join("memory.usage_in_bytes"));
            (nanos as f64 / 1e9, memory, read(dir.join("memory.stat")))
        }
    };
    let memory_bytes = memory.and_then(|m| m.trim().parse::<u64>().ok()).map(|m| {
        let inactive = stat
            .as_deref()
            .and_then(|s| field(s, "total_inactive_file").or_else(|| field(s, "inactive_file")));
        m.saturating_sub(inactive.unwrap_or(0))
    });
    Some(Usage {
        cpu_seconds,
        memory_bytes,
    })
}

/// The value of `key` in a cgroup file of `key value` lines (`cpu.stat`, `memory.stat`).
fn field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
}

fn hint(controller: &str) -> String {
    match controller {
        "memory" => "add `cgroup_enable=memory cgroup_memory=1` to the kernel command line (cmdline.txt on a Raspberry Pi: /boot/firmware/cmdline.txt) and reboot".into(),
        other => format!("enable the {other} controller in the kernel (cgroup_enable={other} on the kernel command line) and reboot"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Resources {
        Resources {
            memory_bytes: Some(64 << 20),
            cpus: Some(1.0),
            pids_limit: Some(10),
            cpu_shares: None,
        }
    }

    #[test]
    fn v1_tree_without_memory_names_the_fix() {
        let root = tempfile::tempdir().unwrap();
        for d in ["cpu,cpuacct", "pids", "devices"] {
            std::fs::create_dir(root.path().join(d)).unwrap();
        }
        let err = check(root.path(), &limits()).unwrap_err().to_string();
        assert!(
            err.contains("memory")
                && err.contains("cgroup_enable=memory")
                && err.contains("cmdline.txt"),
            "{err}"
        );
        std::fs::create_dir(root.path().join("memory")).unwrap();
        assert!(check(root.path(), &limits()).is_ok());
        assert!(check(tempfile::tempdir().unwrap().path(), &Resources::default()).is_ok());
    }

    fn write(root: &Path, rel: &str, text: &str) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn usage_v2_and_v1() {
        let v2 = tempfile::tempdir().unwrap();
        let root = v2.path();
        write(root, "cgroup.controllers", "cpu memory\n");
        write(
            root,
            "covey/c1/cpu.stat",
            "usage_usec 2500000\nuser_usec 2000000\n",
        );
        write(root, "covey/c1/memory.current", "10485760\n");
        write(
            root,
            "covey/c1/memory.stat",
            "anon 1\ninactive_file 4194304\n",
        );
        let u = usage(root, "c1").unwrap();
        assert_eq!(u.cpu_seconds, 2.5);
        assert_eq!(u.memory_bytes, Some(6 << 20));
        assert_eq!(usage(root, "gone"), None);
        assert_eq!(usage(root, "../etc"), None, "ids are not paths");

        let v1 = tempfile::tempdir().unwrap();
        let root = v1.path();
        write(root, "cpu,cpuacct/covey/c2/cpuacct.usage", "1500000000\n");
        let u = usage(root, "c2").unwrap();
        assert_eq!(u.cpu_seconds, 1.5);
        assert_eq!(u.memory_bytes, None, "no memory controller");
        write(root, "memory/covey/c2/memory.usage_in_bytes", "3000\n");
        write(
            root,
            "memory/covey/c2/memory.stat",
            "cache 9\ntotal_inactive_file 1000\n",
        );
        assert_eq!(usage(root, "c2").unwrap().memory_bytes, Some(2000));
    }

    #[test]
    fn v2_controllers_file() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(
            root.path().join("cgroup.controllers"),
            "cpuset cpu io memory\n",
        )
        .unwrap();
        let err = check(root.path(), &limits()).unwrap_err().to_string();
        assert!(err.contains("pids"), "{err}");
        std::fs::write(
            root.path().join("cgroup.controllers"),
            "cpuset cpu io memory pids\n",
        )
        .unwrap();
        assert!(check(root.path(), &limits()).is_ok());
    }
}
