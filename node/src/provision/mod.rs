//! `covey provision`: a Raspberry Pi OS image (or SD card) made to join the swarm on its
//! first boot, with nobody at its keyboard. Everything goes on the image's FAT boot
//! partition, edited from userspace (no loop mount, no root): the covey binary, its
//! systemd units, its covey.toml, and a first-boot script that cmdline.txt runs once (as
//! Raspberry Pi Imager runs its own), which installs them into the root file system.
//! The ext4 root is never written: no well-kept crate writes ext4 safely.
//!
//! Nothing is written until everything checked out: the values given (`payload`), the
//! image's partition table and boot file system, cmdline.txt, and the free space.

pub mod binary;
mod boot;
mod mbr;
pub mod payload;
mod slice;
pub mod write;

use std::path::{Path, PathBuf};

use crate::board::{Board, ImageKind};

/// What to provision.
pub struct Request {
    pub board: Board,
    /// The board file's text, when the board came from one rather than being built in.
    pub board_file: Option<String>,
    /// The image or device to edit (named in errors).
    pub image: PathBuf,
    pub join_token: String,
    /// A manager's address, `IP[:PORT]`.
    pub manager: String,
    /// `pi-{serial}`.
    pub hostname_template: Option<String>,
    pub wifi: Option<Wifi>,
    /// OpenSSH public keys, each a file's text.
    pub ssh_keys: Vec<String>,
    /// Engine labels, `KEY=VALUE`.
    pub labels: Vec<String>,
}

pub struct Wifi {
    pub ssid: String,
    pub password: String,
    /// ISO 3166, in capitals: the radio stays off until one is set.
    pub country: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("{}: {problem}", path.display())]
    Image { path: PathBuf, problem: String },
    #[error("{field}: {problem}")]
    Input {
        field: &'static str,
        problem: String,
    },
    #[error("board {board}: {problem}")]
    Board { board: String, problem: String },
    #[error("the covey binary {}: {problem}", path.display())]
    Binary { path: PathBuf, problem: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

/// What was written, for the user.
#[derive(Debug)]
pub struct Report {
    /// Paths on the boot partition, with their sizes.
    pub files: Vec<(String, u64)>,
    pub cmdline: String,
}

/// What the checks found, for the write that follows.
struct Checked {
    files: Vec<payload::File>,
    binary_len: u64,
    cmdline: String,
}

/// Checks everything `provision` would do to `target` (the request's image, or the device
/// it was copied to), writing nothing.
pub fn check(req: &Request, binary: &Path) -> Result<(), ProvisionError> {
    check_on(req, binary, &req.image).map(|_| ())
}

fn check_on(req: &Request, binary: &Path, target: &Path) -> Result<Checked, ProvisionError> {
    match req.board.provision {
        Some(ImageKind::Raspios) => {}
        None => {
            return Err(ProvisionError::Board {
                board: req.board.name.clone(),
                problem: format!(
                    "covey provision writes Raspberry Pi OS images, which the {} does not run (see its quirks)",
                    req.board.description
                ),
            })
        }
    }
    let files = payload::files(req)?;
    let binary_len = binary::check(binary, req.board.platform.target)?;
    let image = boot::Image::open(target, false)?;
    image.with_fs(|fs| {
        let root = fs.root_dir();
        let current = boot::read_text(&root, "cmdline.txt")
            .map_err(|e| image.fat_error("reading cmdline.txt", e))?
            .ok_or_else(|| ProvisionError::Image {
                path: target.to_path_buf(),
                problem: "no cmdline.txt on its boot partition: is it a Raspberry Pi OS image?"
                    .into(),
            })?;
        let cmdline = payload::cmdline(&current, req)?;
        let replaced = boot::existing(&root, payload::NAMES)
            .map_err(|e| image.fat_error("reading the boot partition's files", e))?;
        let free = boot::free_bytes(fs, &replaced)
            .map_err(|e| image.fat_error("reading the free space", e))?;
        let mut need = 0;
        for len in files
            .iter()
            .map(|f| f.data.len() as u64)
            .chain([binary_len, cmdline.len() as u64])
        {
            need += boot::on_disk(fs, len).map_err(|e| image.fat_error("sizing", e))?;
        }
        if need > free {
            return Err(ProvisionError::Image {
                path: target.to_path_buf(),
                problem: format!(
                    "its boot partition has {} free; covey's files take {}",
                    crate::units::human_size(free),
                    crate::units::human_size(need)
                ),
            });
        }
        Ok(Checked {
            files,
            binary_len,
            cmdline,
        })
    })
}

/// Writes covey onto `target` for `req`'s board, once every check passed.
pub fn provision(req: &Request, binary: &Path, target: &Path) -> Result<Report, ProvisionError> {
    let checked = check_on(req, binary, target)?;
    let mut bin = std::fs::File::open(binary).map_err(|e| ProvisionError::Binary {
        path: binary.to_path_buf(),
        problem: e.to_string(),
    })?;
    let image = boot::Image::open(target, true)?;
    let mut report = Report {
        files: Vec::new(),
        cmdline: checked.cmdline.clone(),
    };
    image.with_fs(|fs| {
        let root = fs.root_dir();
        let fail = |what: &str, e| image.fat_error(what, e);
        // An earlier provision's files go: a file this one does not write must not stay.
        for (name, _) in boot::existing(&root, payload::NAMES).map_err(|e| fail("listing", e))? {
            root.remove(&name)
                .map_err(|e| fail(&format!("removing {name}"), e))?;
        }
        boot::write_file(&root, payload::BINARY, &mut bin)
            .map_err(|e| fail("writing the covey binary", e))?;
        report
            .files
            .push((payload::BINARY.to_string(), checked.binary_len));
        for f in &checked.files {
            boot::write_file(&root, f.name, &mut f.data.as_slice())
                .map_err(|e| fail(&format!("writing {}", f.name), e))?;
            report.files.push((f.name.to_string(), f.data.len() as u64));
        }
        // Last: until cmdline.txt names it, nothing runs what was written.
        boot::write_file(&root, "cmdline.txt", &mut checked.cmdline.as_bytes())
            .map_err(|e| fail("writing cmdline.txt", e))?;
        Ok(())
    })?;
    image.sync()?;
    Ok(report)
}
