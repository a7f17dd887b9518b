//! What a node says of itself: hostname, platform, resources, as `node inspect` shows.

use crate::manager::objects::NodeDescription;

/// `vxlan`: whether the node carries overlays on kernel VXLAN (`Networking::vxlan`).
pub fn describe(vxlan: bool) -> NodeDescription {
    let hostname = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get() as i64)
        .unwrap_or(1);
    NodeDescription {
        hostname,
        os: "linux".into(),
        architecture: std::env::consts::ARCH.into(),
        engine_version: crate::VERSION.into(),
        nano_cpus: cpus * 1_000_000_000,
        memory_bytes: memory_bytes().unwrap_or(0),
        vxlan,
    }
}

fn memory_bytes() -> Option<i64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
