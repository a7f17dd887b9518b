//! The tmpfs that holds tasks' secrets on a node (`<exec-root>/secrets`): the daemon
//! mounts it itself rather than trust that the exec root is in memory, so a secret's
//! plaintext never reaches the node's disk (Swarm's `agent/secrets` keeps them in memory
//! too). Left mounted when the daemon stops: running containers still bind its files.

use std::path::Path;

use nix::mount::{mount, MsFlags};
use nix::sys::statfs::{statfs, TMPFS_MAGIC};

/// Makes `dir` a tmpfs readable by root only, unless it is one already.
pub fn ensure_tmpfs(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    if statfs(dir).map_err(std::io::Error::from)?.filesystem_type() == TMPFS_MAGIC {
        return Ok(());
    }
    mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=0700"),
    )
    .map_err(std::io::Error::from)?;
    // Private: a mount made under a shared one would otherwise appear in its peers.
    mount(
        None::<&str>,
        dir,
        None::<&str>,
        MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(std::io::Error::from)
}
