//! The covey binary a board gets: given, or this one if it runs on the board's CPU, or a
//! cross build in `target/<triple>/release/`; checked by its ELF header either way.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::ProvisionError;
use crate::board::Target;

/// `given`, else the running executable when `running_arch` is the board's, else the
/// release build for the board's target under `workdir`.
pub fn choose(
    given: Option<&Path>,
    target: Target,
    running_arch: &str,
    workdir: &Path,
) -> Result<PathBuf, ProvisionError> {
    if let Some(path) = given {
        return Ok(path.to_path_buf());
    }
    if running_arch == target.arch() {
        return std::env::current_exe().map_err(|source| ProvisionError::Io {
            context: "finding this covey binary".into(),
            source,
        });
    }
    let built = workdir
        .join("target")
        .join(target.triple())
        .join("release/covey");
    if built.is_file() {
        return Ok(built);
    }
    Err(ProvisionError::Binary {
        path: built,
        problem: format!(
            "not built, and this covey runs on {running_arch}, not the board's {}: build it (cargo build --release --target {}) or give --binary",
            target.arch(),
            target.triple()
        ),
    })
}

/// Refuses a file that is not an ELF executable for `target`'s CPU.
pub fn check(path: &Path, target: Target) -> Result<u64, ProvisionError> {
    let fail = |problem: String| ProvisionError::Binary {
        path: path.to_path_buf(),
        problem,
    };
    let mut file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
    let len = file.metadata().map_err(|e| fail(e.to_string()))?.len();
    let mut header = [0u8; 20];
    file.read_exact(&mut header)
        .map_err(|_| fail("too short to be a program".into()))?;
    let found = elf_machine(&header).ok_or_else(|| fail("not an ELF program".into()))?;
    let wanted = match target {
        Target::Aarch64 => Machine::Aarch64,
        Target::Armv7 => Machine::Arm,
        Target::X86_64 => Machine::X86_64,
    };
    if found != wanted {
        return Err(fail(format!(
            "it is a program for {found}; the board runs {} ({})",
            target.arch(),
            target.triple()
        )));
    }
    Ok(len)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Machine {
    Aarch64,
    Arm,
    X86_64,
    Other(u16),
}

impl std::fmt::Display for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Machine::Aarch64 => f.write_str("aarch64"),
            Machine::Arm => f.write_str("32-bit arm"),
            Machine::X86_64 => f.write_str("x86_64"),
            Machine::Other(n) => write!(f, "ELF machine {n}"),
        }
    }
}

/// The CPU an ELF header names, little-endian programs only (as every board's are).
fn elf_machine(h: &[u8; 20]) -> Option<Machine> {
    if h[..4] != *b"\x7fELF" || h[5] != 1 {
        return None;
    }
    let class = h[4];
    Some(match (u16::from_le_bytes([h[18], h[19]]), class) {
        (183, 2) => Machine::Aarch64,
        (40, 1) => Machine::Arm,
        (62, 2) => Machine::X86_64,
        (other, _) => Machine::Other(other),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_binary_is_chosen_and_checked_for_its_own_cpu() {
        let here = Target::X86_64;
        if std::env::consts::ARCH != here.arch() {
            return;
        }
        let me = choose(None, here, "x86_64", Path::new("/nonexistent")).expect("this one");
        assert_eq!(me, std::env::current_exe().expect("exe"));
        assert!(check(&me, Target::X86_64).expect("an x86_64 program") > 0);
        let e = check(&me, Target::Aarch64).unwrap_err().to_string();
        assert!(
            e.contains("for x86_64;") && e.contains("aarch64-unknown-linux-gnu"),
            "{e}"
        );
        let e = choose(None, Target::Aarch64, "x86_64", Path::new("/nonexistent"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/nonexistent/target/aarch64-unknown-linux-gnu/release/covey")
                && e.contains("--binary"),
            "{e}"
        );
    }

    #[test]
    fn headers() {
        let mut h = [0u8; 20];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2;
        h[5] = 1;
        h[18] = 183;
        assert_eq!(elf_machine(&h), Some(Machine::Aarch64));
        h[4] = 1;
        h[18] = 40;
        assert_eq!(elf_machine(&h), Some(Machine::Arm));
        h[5] = 2;
        assert_eq!(elf_machine(&h), None, "big-endian");
        assert_eq!(elf_machine(&[0u8; 20]), None);
    }
}
