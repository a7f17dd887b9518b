//! Boards: what covey knows of each board it supports (`board-configs/`, built into the
//! binary), read from TOML and checked field by field, so a bad file is refused naming
//! the field. `detect` finds the board a node runs on.

mod detect;
mod parse;

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

pub use detect::{check_host, detect_in, read_model, resolve, Choice, Resolved, Source};

/// One supported board, as its file says.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Board {
    /// Short, as `--board` and the `covey.board` engine label give it: `pi4`.
    pub name: String,
    /// For people: `Raspberry Pi 4 Model B`.
    pub description: String,
    /// Substrings of the device tree's model that name this board.
    #[serde(default)]
    pub models: Vec<String>,
    /// The board of a machine of this board's CPU that no device tree names (x86_64).
    #[serde(default)]
    pub fallback: bool,
    /// How `covey provision` customises an image for it; none: it does not.
    pub provision: Option<ImageKind>,
    /// What users should know: free text, one point each.
    #[serde(default)]
    pub quirks: Vec<String>,
    pub platform: Platform,
    pub kernel: Kernel,
    pub reserved: Reserved,
    pub flash: Flash,
}

/// The OS images `covey provision` knows how to customise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageKind {
    /// Raspberry Pi OS (bookworm or later): MBR, a FAT boot partition with cmdline.txt
    /// (mounted at /boot/firmware), then ext4.
    Raspios,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Platform {
    /// What covey is built for on this board.
    pub target: Target,
    /// The OCI platform variant tasks' images are pulled for (`v7`, `v8`); none on x86_64.
    pub variant: Option<String>,
}

/// The Rust targets covey is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Target {
    #[serde(rename = "aarch64-unknown-linux-gnu")]
    Aarch64,
    #[serde(rename = "armv7-unknown-linux-gnueabihf")]
    Armv7,
    #[serde(rename = "x86_64-unknown-linux-gnu")]
    X86_64,
}

impl Target {
    pub fn triple(self) -> &'static str {
        match self {
            Target::Aarch64 => "aarch64-unknown-linux-gnu",
            Target::Armv7 => "armv7-unknown-linux-gnueabihf",
            Target::X86_64 => "x86_64-unknown-linux-gnu",
        }
    }

    /// Rust's name of the CPU (`std::env::consts::ARCH`), which a binary runs as.
    pub fn arch(self) -> &'static str {
        match self {
            Target::Aarch64 => "aarch64",
            Target::Armv7 => "arm",
            Target::X86_64 => "x86_64",
        }
    }

    /// The OCI architecture of images for it.
    pub fn oci_arch(self) -> &'static str {
        match self {
            Target::Aarch64 => "arm64",
            Target::Armv7 => "arm",
            Target::X86_64 => "amd64",
        }
    }

    /// The variants an image of this architecture may be built for.
    fn variants(self) -> &'static [&'static str] {
        match self {
            Target::Aarch64 => &["v8"],
            Target::Armv7 => &["v7"],
            Target::X86_64 => &[],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Kernel {
    /// Words the kernel command line needs (on Raspberry Pi OS, in cmdline.txt).
    #[serde(default)]
    pub cmdline: Vec<String>,
    /// The cgroup controllers tasks' limits need; the daemon warns at start of any missing.
    #[serde(default)]
    pub cgroup_controllers: Vec<String>,
}

/// What the node keeps for itself (the OS, the daemon): the scheduler places tasks'
/// reservations on the rest.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Reserved {
    pub cpus: f64,
    #[serde(deserialize_with = "parse::size")]
    pub memory: u64,
}

/// Settings that spare the board's flash.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Flash {
    /// How often a manager's store writes out what Raft has not already synced.
    #[serde(deserialize_with = "parse::duration")]
    pub store_flush_interval: Duration,
    /// A container's log is rotated past this (one older file is kept).
    #[serde(deserialize_with = "parse::size")]
    pub log_max_size: u64,
    /// The cap on the system journal (the daemon's own log goes there), which `covey
    /// provision` sets; journald rotates its files by size under it.
    #[serde(default, deserialize_with = "parse::opt_size")]
    pub journal_max_size: Option<u64>,
}

impl Default for Flash {
    /// A node with no board: what suits disks and SSDs.
    fn default() -> Self {
        Flash {
            store_flush_interval: Duration::from_secs(5),
            log_max_size: 10 << 20,
            journal_max_size: None,
        }
    }
}

/// A board file that cannot be used, naming the file and what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    #[error("board file {origin}: {field}: {problem}")]
    Invalid {
        origin: String,
        /// The field's path: `reserved.memory`, `platform.target`.
        field: String,
        problem: String,
    },
    #[error("reading board file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("unknown board {name:?}: covey knows {}", known.join(", "))]
    Unknown { name: String, known: Vec<String> },
}

/// The boards covey ships, by file name. Built in, so that a node needs nothing else.
const BUILTIN: &[(&str, &str)] = &[
    (
        "pi-zero-2w.toml",
        include_str!("../../../board-configs/pi-zero-2w.toml"),
    ),
    (
        "pi3b-plus.toml",
        include_str!("../../../board-configs/pi3b-plus.toml"),
    ),
    ("pi4.toml", include_str!("../../../board-configs/pi4.toml")),
    ("pi5.toml", include_str!("../../../board-configs/pi5.toml")),
    ("cm4.toml", include_str!("../../../board-configs/cm4.toml")),
    (
        "orin-nano.toml",
        include_str!("../../../board-configs/orin-nano.toml"),
    ),
    (
        "x86-64.toml",
        include_str!("../../../board-configs/x86-64.toml"),
    ),
];

/// Every built-in board. Each is checked by the unit tests, so an error here is a bug
/// in a shipped file, reported as any bad file would be.
pub fn builtin() -> Result<Vec<Board>, BoardError> {
    BUILTIN
        .iter()
        .map(|(file, text)| Board::parse(text, file))
        .collect()
}

/// A built-in board by name.
pub fn named(name: &str) -> Result<Board, BoardError> {
    let boards = builtin()?;
    let known = boards.iter().map(|b| b.name.clone()).collect();
    boards
        .into_iter()
        .find(|b| b.name == name)
        .ok_or_else(|| BoardError::Unknown {
            name: name.to_string(),
            known,
        })
}

impl Board {
    /// Reads a board file from `text`; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Board, BoardError> {
        let board = parse::toml::<Board>(text, origin)?;
        board
            .check()
            .map_err(|(field, problem)| BoardError::Invalid {
                origin: origin.to_string(),
                field: field.to_string(),
                problem,
            })?;
        Ok(board)
    }

    /// A board file on disk.
    pub fn from_file(path: &std::path::Path) -> Result<Board, BoardError> {
        let text = std::fs::read_to_string(path).map_err(|source| BoardError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Board::parse(&text, &path.display().to_string())
    }

    /// What serde cannot say: names, ranges, and fields that must agree.
    fn check(&self) -> Result<(), (&'static str, String)> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 32
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !name_ok {
            return Err((
                "name",
                format!(
                    "{:?} is not a board name: 1 to 32 of a-z, 0-9 and '-'",
                    self.name
                ),
            ));
        }
        if self.description.trim().is_empty() {
            return Err(("description", "empty".into()));
        }
        if self.models.iter().any(|m| m.trim().is_empty()) {
            return Err(("models", "an empty model would match every board".into()));
        }
        if self.models.is_empty() && !self.fallback {
            return Err((
                "models",
                "no model names this board, and it is no fallback: it could only be named".into(),
            ));
        }
        if self.quirks.iter().any(|q| q.trim().is_empty()) {
            return Err(("quirks", "an empty quirk".into()));
        }
        let target = self.platform.target;
        match (&self.platform.variant, target.variants()) {
            (Some(v), allowed) if !allowed.contains(&v.as_str()) => {
                let expected = match allowed {
                    [] => "none".to_string(),
                    some => some.join(" or "),
                };
                return Err((
                    "platform.variant",
                    format!(
                        "{v:?} is no variant of {}: expected {expected}",
                        target.triple()
                    ),
                ));
            }
            (None, [one, ..]) => {
                return Err((
                    "platform.variant",
                    format!("missing: {} needs {one:?}", target.triple()),
                ))
            }
            _ => {}
        }
        if let Some(word) = self
            .kernel
            .cmdline
            .iter()
            .find(|w| w.is_empty() || w.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err((
                "kernel.cmdline",
                format!("{word:?} is not one word of a kernel command line"),
            ));
        }
        const CONTROLLERS: &[&str] = &["cpu", "cpuset", "memory", "pids", "io", "hugetlb"];
        if let Some(c) = self
            .kernel
            .cgroup_controllers
            .iter()
            .find(|c| !CONTROLLERS.contains(&c.as_str()))
        {
            return Err((
                "kernel.cgroup-controllers",
                format!(
                    "unknown controller {c:?}: expected {}",
                    CONTROLLERS.join(", ")
                ),
            ));
        }
        if !(0.0..=64.0).contains(&self.reserved.cpus) {
            return Err((
                "reserved.cpus",
                format!("{} is out of range: 0 to 64", self.reserved.cpus),
            ));
        }
        if self.reserved.memory > 64 << 30 {
            return Err(("reserved.memory", "more than 64 GiB".into()));
        }
        let flush = self.flash.store_flush_interval;
        if flush < Duration::from_secs(1) || flush > Duration::from_secs(600) {
            return Err((
                "flash.store-flush-interval",
                format!("{flush:?} is out of range: 1s to 10m"),
            ));
        }
        if !(64 << 10..=1 << 30).contains(&self.flash.log_max_size) {
            return Err((
                "flash.log-max-size",
                format!(
                    "{} bytes is out of range: 64KiB to 1GiB",
                    self.flash.log_max_size
                ),
            ));
        }
        if let Some(cap) = self.flash.journal_max_size {
            if self.provision.is_none() {
                return Err((
                    "flash.journal-max-size",
                    "only covey provision applies it, and this board has no `provision`".into(),
                ));
            }
            if !(1 << 20..=16 << 30).contains(&cap) {
                return Err((
                    "flash.journal-max-size",
                    format!("{cap} bytes is out of range: 1MiB to 16GiB"),
                ));
            }
        }
        Ok(())
    }

    /// The OCI platform of this board's tasks: `linux/arm/v7`.
    pub fn oci_platform(&self) -> covey_images::platform::Platform {
        covey_images::platform::Platform::new(
            "linux",
            self.platform.target.oci_arch(),
            self.platform.variant.as_deref(),
        )
    }
}

#[cfg(test)]
mod tests;
