//! The copy fallback: an unpacked layer applied onto a root filesystem.

use super::xattr::lgetxattr;
use super::*;

/// Copy fallback for when overlayfs is missing: applies a directory made by [`unpack_layer`]
/// on top of `rootfs`. A 0/0 char device deletes that path in rootfs; a dir with xattr
/// `trusted.overlay.opaque=y` first empties the matching rootfs dir; everything else (files,
/// dirs, symlinks, fifos) is copied preserving mode, owner, mtime and file capabilities.
/// Hardlinks within the layer become separate files.
pub fn apply_layer_dir(layer: &Path, rootfs: &Path) -> Result<(), UnpackError> {
    if is_opaque(layer)? {
        empty_dir(rootfs)?;
    }
    // Iterative, not recursive: a layer can nest deep enough to matter on a small thread stack.
    let mut pending = vec![PathBuf::new()];
    let mut dirs = Vec::new();
    while let Some(parent) = pending.pop() {
        let src_dir = layer.join(&parent);
        for item in fs::read_dir(&src_dir).map_err(io_err("reading", &src_dir))? {
            let rel = parent.join(item.map_err(io_err("reading", &src_dir))?.file_name());
            let (src, dst) = (layer.join(&rel), rootfs.join(&rel));
            let meta = fs::symlink_metadata(&src).map_err(io_err("inspecting", &src))?;
            let ft = meta.file_type();
            if ft.is_char_device() && meta.rdev() == 0 {
                remove_existing(&dst)?;
                continue;
            }
            if ft.is_dir() {
                // An existing real dir merges; anything else (even a symlink to a dir) is
                // replaced, as overlayfs hides a lower non-dir under an upper dir.
                if fs::symlink_metadata(&dst).is_ok_and(|m| m.is_dir()) {
                    if is_opaque(&src)? {
                        empty_dir(&dst)?;
                    }
                } else {
                    remove_existing(&dst)?;
                    DirBuilder::new()
                        .mode(0o755)
                        .create(&dst)
                        .map_err(io_err("creating", &dst))?;
                }
                pending.push(rel.clone());
                dirs.push((dst, meta));
                continue;
            }
            remove_existing(&dst)?;
            if ft.is_file() {
                copy_file(&src, &dst)?;
            } else if ft.is_symlink() {
                let target = fs::read_link(&src).map_err(io_err("reading symlink", &src))?;
                std::os::unix::fs::symlink(target, &dst)
                    .map_err(io_err("creating symlink", &dst))?;
            } else if ft.is_fifo() {
                nix::unistd::mkfifo(&dst, Mode::from_bits_truncate(0o600))
                    .map_err(|e| io_err("creating fifo", &dst)(e.into()))?;
            } else {
                let path = rel.to_string_lossy().into_owned();
                return Err(UnpackError::Unsupported {
                    path,
                    kind: "device or socket".into(),
                });
            }
            copy_metadata(&src, &dst, &meta)?;
        }
    }
    // Children first, so creating them does not bump a parent's restored mtime.
    for (dst, meta) in dirs.iter().rev() {
        copy_metadata(dst, dst, meta)?;
    }
    Ok(())
}

fn is_opaque(dir: &Path) -> Result<bool, UnpackError> {
    let value = lgetxattr(dir, OPAQUE_XATTR).map_err(io_err("reading xattr", dir))?;
    Ok(value.as_deref() == Some(b"y"))
}

fn empty_dir(dir: &Path) -> Result<(), UnpackError> {
    for item in fs::read_dir(dir).map_err(io_err("reading", dir))? {
        remove_existing(&item.map_err(io_err("reading", dir))?.path())?;
    }
    Ok(())
}

fn copy_file(src: &Path, dst: &Path) -> Result<(), UnpackError> {
    let nofollow = OFlag::O_NOFOLLOW.bits();
    let mut from = OpenOptions::new()
        .read(true)
        .custom_flags(nofollow)
        .open(src)
        .map_err(io_err("opening", src))?;
    let mut to: File = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nofollow)
        .open(dst)
        .map_err(io_err("creating", dst))?;
    io::copy(&mut from, &mut to).map_err(io_err("copying to", dst))?;
    Ok(())
}

/// Owner, mode, file capabilities and mtime of `meta` (read from `src`) onto `dst`.
fn copy_metadata(src: &Path, dst: &Path, meta: &fs::Metadata) -> Result<(), UnpackError> {
    lchown(dst, Some(meta.uid()), Some(meta.gid())).map_err(io_err("chown", dst))?;
    if !meta.file_type().is_symlink() {
        fs::set_permissions(dst, fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(io_err("chmod", dst))?;
    }
    if meta.is_file() {
        if let Some(cap) =
            lgetxattr(src, "security.capability").map_err(io_err("reading xattr", src))?
        {
            lsetxattr(dst, "security.capability", &cap).map_err(io_err("setting xattr", dst))?;
        }
    }
    set_mtime(dst, meta.mtime(), meta.mtime_nsec())
}
