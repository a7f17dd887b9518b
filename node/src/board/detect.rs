//! Which board this node is: named (`--board`, `--board-file`, covey.toml), or found from
//! the device tree's model, or the fallback for the CPU (x86_64).

use std::path::{Path, PathBuf};

use super::{Board, BoardError};

/// Where the device tree's model is; the first is a link to the second on most kernels.
const MODEL_FILES: &[&str] = &[
    "/proc/device-tree/model",
    "/sys/firmware/devicetree/base/model",
];

/// How the daemon is told its board.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Choice {
    /// Found from the device tree, or the CPU's fallback.
    #[default]
    Detect,
    /// A built-in board by name.
    Named(String),
    /// A board file.
    File(PathBuf),
}

/// How the board was known, for the log and `node inspect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The device tree's model, which matched.
    Model(String),
    /// No model matched; the board for this CPU.
    Fallback,
    Named,
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Resolved {
    pub board: Board,
    pub source: Source,
}

/// The board `choice` gives: named ones must exist and parse; detection may find none.
pub fn resolve(choice: &Choice) -> Result<Option<Resolved>, BoardError> {
    match choice {
        Choice::Named(name) => Ok(Some(Resolved {
            board: super::named(name)?,
            source: Source::Named,
        })),
        Choice::File(path) => Ok(Some(Resolved {
            board: Board::from_file(path)?,
            source: Source::File(path.clone()),
        })),
        Choice::Detect => {
            let boards = super::builtin()?;
            let model = read_model();
            Ok(
                detect_in(&boards, model.as_deref(), std::env::consts::ARCH).map(|board| {
                    let source = match &model {
                        Some(m) if board.models.iter().any(|p| m.contains(p.as_str())) => {
                            Source::Model(m.clone())
                        }
                        _ => Source::Fallback,
                    };
                    Resolved {
                        board: board.clone(),
                        source,
                    }
                }),
            )
        }
    }
}

/// The device tree's model (`Raspberry Pi 4 Model B Rev 1.4`), if the kernel has one.
pub fn read_model() -> Option<String> {
    MODEL_FILES.iter().find_map(|f| model_from(Path::new(f)))
}

fn model_from(path: &Path) -> Option<String> {
    let raw = std::fs::read(path).ok()?;
    // A device tree string ends in NUL.
    let text = String::from_utf8_lossy(&raw);
    let model = text.trim_end_matches('\0').trim();
    (!model.is_empty()).then(|| model.to_string())
}

/// The board whose model string is in `model` (the longest match, should two boards'
/// strings both be in it); else the fallback board of the CPU `arch` (Rust's name).
pub fn detect_in<'a>(boards: &'a [Board], model: Option<&str>, arch: &str) -> Option<&'a Board> {
    let by_model = model.and_then(|m| {
        boards
            .iter()
            .filter_map(|b| {
                b.models
                    .iter()
                    .filter(|p| m.contains(p.as_str()))
                    .map(|p| p.len())
                    .max()
                    .map(|len| (len, b))
            })
            .max_by_key(|(len, _)| *len)
            .map(|(_, b)| b)
    });
    by_model.or_else(|| {
        boards
            .iter()
            .find(|b| b.fallback && b.platform.target.arch() == arch)
    })
}

/// What this host lacks of what `board` needs, each with its fix: the kernel command
/// line's words (`cmdline`, as `/proc/cmdline` has it) and the cgroup controllers
/// (`available`, as the runtime finds them).
pub fn check_host(board: &Board, cmdline: &str, available: &[String]) -> Vec<String> {
    let words: Vec<&str> = cmdline.split_whitespace().collect();
    let missing_words: Vec<&str> = board
        .kernel
        .cmdline
        .iter()
        .map(String::as_str)
        .filter(|w| !words.contains(w))
        .collect();
    let mut problems = Vec::new();
    if !missing_words.is_empty() {
        problems.push(format!(
            "the {} kernel command line lacks {}: add it (on Raspberry Pi OS, to /boot/firmware/cmdline.txt) and reboot",
            board.description,
            missing_words.join(" ")
        ));
    }
    for c in &board.kernel.cgroup_controllers {
        if !available.iter().any(|a| a == c) {
            problems.push(format!(
                "the cgroup controller {c:?} is missing: tasks' limits that need it will be refused"
            ));
        }
    }
    problems
}
