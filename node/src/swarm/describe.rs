//! What a node says of itself: hostname, platform, resources, engine labels, as
//! `node inspect` shows.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::board::{Board, Flash};
use crate::manager::objects::NodeDescription;

/// The engine label that names the node's board.
pub const BOARD_LABEL: &str = "covey.board";

/// What the node is beyond its hardware: its board's settings and its engine labels.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    /// The daemon's labels, and `covey.board`.
    pub engine_labels: BTreeMap<String, String>,
    /// Kept for the node itself, so not offered to tasks.
    pub reserved_nano_cpus: i64,
    pub reserved_memory: i64,
    pub flash: Flash,
}

impl Profile {
    pub fn new(board: Option<&Board>, labels: BTreeMap<String, String>) -> Profile {
        let mut engine_labels = labels;
        let Some(board) = board else {
            return Profile {
                engine_labels,
                ..Profile::default()
            };
        };
        engine_labels.insert(BOARD_LABEL.into(), board.name.clone());
        Profile {
            engine_labels,
            reserved_nano_cpus: (board.reserved.cpus * 1e9) as i64,
            reserved_memory: i64::try_from(board.reserved.memory).unwrap_or(i64::MAX),
            flash: board.flash.clone(),
        }
    }

    /// How often a manager's store is flushed: the board's flash setting.
    pub fn store_flush(&self) -> Duration {
        self.flash.store_flush_interval
    }
}

/// `vxlan`: whether the node carries overlays on kernel VXLAN (`Networking::vxlan`).
/// Resources are what tasks may have: the machine's less the profile's reservation.
pub fn describe(vxlan: bool, profile: &Profile) -> NodeDescription {
    let hostname = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get() as i64)
        .unwrap_or(1);
    let nano_cpus = cpus * 1_000_000_000;
    let memory = memory_bytes().unwrap_or(0);
    NodeDescription {
        hostname,
        os: "linux".into(),
        architecture: std::env::consts::ARCH.into(),
        engine_version: crate::VERSION.into(),
        nano_cpus: (nano_cpus - profile.reserved_nano_cpus).max(0),
        memory_bytes: (memory - profile.reserved_memory).max(0),
        vxlan,
        engine_labels: profile.engine_labels.clone(),
    }
}

fn memory_bytes() -> Option<i64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    meminfo_bytes(&meminfo, "MemTotal").and_then(|b| i64::try_from(b).ok())
}

/// A /proc/meminfo line's value (`MemTotal:  8000 kB`) in bytes.
pub(crate) fn meminfo_bytes(meminfo: &str, key: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| {
        l.strip_prefix(key)
            .is_some_and(|rest| rest.starts_with(':'))
    })?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo() {
        let text = "MemTotal:        8000 kB\nMemFree:  10 kB\nMemAvailable:    6000 kB\n";
        assert_eq!(meminfo_bytes(text, "MemTotal"), Some(8000 * 1024));
        assert_eq!(meminfo_bytes(text, "MemAvailable"), Some(6000 * 1024));
        assert_eq!(meminfo_bytes(text, "Mem"), None);
    }

    #[test]
    fn a_board_reserves_and_labels() {
        let plain = describe(true, &Profile::default());
        assert!(plain.engine_labels.is_empty());
        let pi4 = crate::board::named("pi4").expect("pi4");
        let labels = BTreeMap::from([("zone".to_string(), "east".to_string())]);
        let profile = Profile::new(Some(&pi4), labels);
        let d = describe(true, &profile);
        assert_eq!(
            d.engine_labels.get(BOARD_LABEL).map(String::as_str),
            Some("pi4")
        );
        assert_eq!(
            d.engine_labels.get("zone").map(String::as_str),
            Some("east")
        );
        assert_eq!(d.nano_cpus, plain.nano_cpus - 250_000_000);
        assert_eq!(d.memory_bytes, plain.memory_bytes - (256 << 20));
        assert_eq!(profile.store_flush(), Duration::from_secs(30));
    }
}
