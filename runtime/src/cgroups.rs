//! Checks, before a container is made, that the kernel has the cgroup controllers its
//! limits need, so that a missing one is named with its fix instead of failing deep in
//! libcontainer. Raspberry Pi kernels often boot without the memory controller.

use std::path::Path;

use crate::config::Resources;
use crate::error::RuntimeError;

pub const ROOT: &str = "/sys/fs/cgroup";

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
