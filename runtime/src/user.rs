//! Resolving `docker run --user` (`name`, `uid`, `name:group`, `uid:gid`) against the
//! image's own `/etc/passwd` and `/etc/group`. The files are the image's, so they are
//! hostile: read through `openat2(RESOLVE_IN_ROOT)` so no symlink leads out of the rootfs,
//! and bounded in size.

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

use crate::error::RuntimeError;

const MAX_DB_BYTES: u64 = 4 << 20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups the user is a member of in `/etc/group`.
    pub additional_gids: Vec<u32>,
    /// `$HOME` from `/etc/passwd`, `/` if the user has no entry.
    pub home: String,
}

/// Resolves `spec` ("" is root) in the rootfs at `rootfs`.
pub fn resolve(rootfs: &Path, spec: &str) -> Result<ResolvedUser, RuntimeError> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user = if user.is_empty() { "0" } else { user };
    let passwd = read_db(rootfs, "etc/passwd")?;
    let groups = read_db(rootfs, "etc/group")?;
    let entry = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 7)
        .find(|f| f[0] == user || (user.parse::<u32>().is_ok() && f[2] == user));
    let (uid, mut gid, name, home) = match (&entry, user.parse::<u32>()) {
        (Some(f), _) => (
            parse_id(f[2], "uid", spec)?,
            parse_id(f[3], "gid", spec)?,
            f[0].to_string(),
            f[5].to_string(),
        ),
        (None, Ok(uid)) => (uid, uid, String::new(), "/".to_string()),
        (None, Err(_)) => {
            return Err(RuntimeError::User {
                user: spec.into(),
                reason: format!("no matching entries in passwd file for user {user:?}"),
            })
        }
    };
    if let Some(g) = group.filter(|g| !g.is_empty()) {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => groups
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 3 && f[0] == g)
                .map(|f| parse_id(f[2], "gid", spec))
                .transpose()?
                .ok_or_else(|| RuntimeError::User {
                    user: spec.into(),
                    reason: format!("no matching entries in group file for group {g:?}"),
                })?,
        };
    }
    let additional_gids = if name.is_empty() {
        Vec::new()
    } else {
        groups
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .filter(|f| f.len() >= 4 && f[3].split(',').any(|m| m == name))
            .filter_map(|f| f[2].parse::<u32>().ok())
            .filter(|g| *g != gid)
            .collect()
    };
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
        home: if home.is_empty() { "/".into() } else { home },
    })
}

fn parse_id(s: &str, what: &str, spec: &str) -> Result<u32, RuntimeError> {
    s.parse().map_err(|_| RuntimeError::User {
        user: spec.into(),
        reason: format!("the image's {what} {s:?} is not a number"),
    })
}

/// The file's text, or "" if the image has none.
fn read_db(rootfs: &Path, rel: &str) -> Result<String, RuntimeError> {
    let io = |source| RuntimeError::Io {
        path: rootfs.join(rel),
        source,
    };
    let root = std::fs::File::open(rootfs).map_err(io)?;
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC)
        .mode(Mode::empty())
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = match openat2(std::os::fd::AsRawFd::as_raw_fd(&root), rel, how) {
        Ok(fd) => fd,
        Err(nix::Error::ENOENT) => return Ok(String::new()),
        Err(e) => return Err(io(e.into())),
    };
    // SAFETY: openat2 returned a new descriptor that nothing else owns.
    let file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let mut bytes = Vec::new();
    file.take(MAX_DB_BYTES)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rootfs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\nnogroup:x:65534:\napp:x:1000:\nvideo:x:44:app\n",
        )
        .unwrap();
        dir
    }

    #[test]
    fn resolves_names_numbers_and_groups() {
        let r = rootfs();
        let u = resolve(r.path(), "").unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (0, 0, "/root"));
        let u = resolve(r.path(), "app").unwrap();
        assert_eq!(
            (u.uid, u.gid, u.additional_gids.clone()),
            (1000, 1000, vec![44])
        );
        assert_eq!(u.home, "/home/app");
        let u = resolve(r.path(), "nobody:video").unwrap();
        assert_eq!((u.uid, u.gid), (65534, 44));
        let u = resolve(r.path(), "4242:4343").unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (4242, 4343, "/"));
        let u = resolve(r.path(), "1000").unwrap();
        assert_eq!(u.home, "/home/app");
    }

    #[test]
    fn unknown_names_are_errors() {
        let r = rootfs();
        let e = resolve(r.path(), "ghost").unwrap_err().to_string();
        assert!(e.contains("ghost") && e.contains("passwd"), "{e}");
        let e = resolve(r.path(), "app:ghosts").unwrap_err().to_string();
        assert!(e.contains("ghosts") && e.contains("group"), "{e}");
    }

    #[test]
    fn passwd_symlink_cannot_leave_the_rootfs() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("passwd"), "evil:x:0:0::/:/bin/sh\n").unwrap();
        let r = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(r.path().join("etc")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("passwd"), r.path().join("etc/passwd"))
            .unwrap();
        // Resolved inside the rootfs, the absolute link names a file that is not there.
        assert!(resolve(r.path(), "evil").is_err());
    }
}
