//! Unpacking image layers. A layer comes from the network, so every entry is treated as
//! hostile: nothing may be written outside `dest`, and memory and disk use are bounded.

use std::cell::Cell;
use std::ffi::{CString, OsStr};
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{
    lchown, DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt,
};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use nix::fcntl::OFlag;
use nix::sys::stat::{makedev, mknod, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};
use tar::EntryType;

use crate::digest::{Digest, HashingReader};

/// Bytes of headers (PAX records, GNU long names) the tar crate may buffer in memory for one
/// entry; it reads those whole, so they need their own bound.
const HEADER_ALLOWANCE: u64 = 4 << 20;
/// Bytes accepted after the tar's end marker (record padding); anything longer is not a layer.
const TRAILER_ALLOWANCE: u64 = 1 << 20;
/// Bytes of directory paths remembered to restore their mtimes at the end.
const DIR_PATHS_ALLOWANCE: u64 = 64 << 20;
const COPY_BUF: usize = 64 * 1024;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

#[derive(Debug, Clone)]
pub struct UnpackLimits {
    /// Total bytes of entry contents.
    pub max_bytes: u64,
    pub max_entries: u64,
}

impl Default for UnpackLimits {
    fn default() -> Self {
        Self {
            max_bytes: 8 << 30,
            max_entries: 1_000_000,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Unpacked {
    /// sha256 of the uncompressed tar stream, as listed in the image config's `diff_ids`.
    pub diff_id: Digest,
    /// Bytes of entry contents.
    pub bytes: u64,
    pub entries: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("reading layer: {0}")]
    Read(#[source] io::Error),
    #[error("layer stream is corrupt after entry {after:?}: {source}")]
    Corrupt { after: String, source: io::Error },
    #[error("entry {path:?}: bad header: {reason}")]
    BadHeader { path: String, reason: String },
    #[error("entry {path:?}: {reason}")]
    BadPath { path: String, reason: &'static str },
    #[error("entry {path:?}: parent {parent:?} {reason}")]
    BadParent {
        path: String,
        parent: String,
        reason: &'static str,
    },
    #[error("symlink {path:?} -> {target:?} climbs above the layer root")]
    SymlinkEscapes { path: String, target: String },
    #[error("link {path:?} -> {target:?}: {reason}")]
    BadLinkTarget {
        path: String,
        target: String,
        reason: &'static str,
    },
    #[error("hardlink {path:?} points to {target:?} which is not in this layer")]
    HardlinkMissing { path: String, target: String },
    #[error("entry {path:?} is a device node")]
    DeviceNode { path: String },
    #[error("entry {path:?} has unsupported type {kind}")]
    Unsupported { path: String, kind: String },
    #[error("entry {path:?}: layer exceeds the limit of {limit} bytes of file content")]
    TooLarge { path: String, limit: u64 },
    #[error("entry {path:?}: layer exceeds the limit of {limit} entries")]
    TooManyEntries { path: String, limit: u64 },
    #[error("entry {path:?}: layer has more than {limit} bytes of directory paths")]
    TooManyDirs { path: String, limit: u64 },
    #[error("more than {limit} bytes of tar headers after entry {after:?}")]
    HeadersTooLarge { after: String, limit: u64 },
    #[error("more than {limit} bytes of data after the end of the tar")]
    TrailingData { limit: u64 },
    #[error("entry {path:?} is truncated: expected {expected} bytes, got {got}")]
    Truncated {
        path: String,
        expected: u64,
        got: u64,
    },
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

impl UnpackError {
    /// a problem with the layer's content (hostile or corrupt), as opposed to local I/O
    pub fn is_bad_content(&self) -> bool {
        !matches!(self, UnpackError::Read(_) | UnpackError::Io { .. })
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> UnpackError + 'a {
    move |source| UnpackError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

mod apply;
mod stream;
#[cfg(test)]
mod tests;
mod xattr;

pub use apply::apply_layer_dir;
use stream::{Allowance, Source, Watch, ZstdFrames};
use xattr::lsetxattr;

/// Decompresses `reader` (gzip, zstd, or plain tar, chosen by sniffing the magic bytes, not
/// trusting any media type) and unpacks the layer tar into `dest` (an existing empty
/// directory), turning OCI whiteouts into overlayfs whiteouts. Returns the diff_id: sha256 of
/// the whole uncompressed stream, including the padding after the tar's end (bounded too).
///
/// On error `dest` holds a partial layer; the caller should remove it.
pub fn unpack_layer(
    reader: impl Read,
    dest: &Path,
    limits: &UnpackLimits,
) -> Result<Unpacked, UnpackError> {
    let watch = Rc::new(Watch::default());
    let mut source = Source {
        inner: reader,
        watch: watch.clone(),
    };
    let mut magic = [0u8; 4];
    let mut got = 0;
    while got < magic.len() {
        match source.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(UnpackError::Read(e)),
        }
    }
    let magic = &magic[..got];
    let stream = BufReader::with_capacity(COPY_BUF, io::Cursor::new(magic.to_vec()).chain(source));
    let decoded: Box<dyn Read> = if magic.starts_with(&GZIP_MAGIC) {
        Box::new(flate2::bufread::MultiGzDecoder::new(stream))
    } else if magic == ZSTD_MAGIC {
        Box::new(ZstdFrames {
            src: stream,
            dec: FrameDecoder::new(),
            in_frame: false,
        })
    } else {
        Box::new(stream)
    };
    watch.checkpoint(HEADER_ALLOWANCE);
    let mut archive = tar::Archive::new(Allowance {
        inner: HashingReader::new(decoded),
        watch: watch.clone(),
    });
    let mut state = State {
        dest,
        limits,
        bytes: 0,
        entries: 0,
        dirs: Vec::new(),
        dir_bytes: 0,
        buf: vec![0; COPY_BUF],
    };
    let mut last = String::from("(start of layer)");
    for entry in archive.entries().map_err(|e| watch.classify(e, &last))? {
        let mut entry = entry.map_err(|e| watch.classify(e, &last))?;
        // The tar crate reads at most this entry's padded data and the next entry's headers.
        let padded = entry.size().saturating_add(511) & !511;
        watch.checkpoint(padded.saturating_add(HEADER_ALLOWANCE));
        last = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        state.entry(&mut entry, &last, &watch)?;
    }
    state.restore_dir_mtimes()?;

    watch.checkpoint(TRAILER_ALLOWANCE);
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| match watch.tripped.get() {
        true => UnpackError::TrailingData {
            limit: TRAILER_ALLOWANCE,
        },
        false => watch.classify(e, &last),
    })?;
    let (diff_id, _) = rest.inner.finish();
    Ok(Unpacked {
        diff_id,
        bytes: state.bytes,
        entries: state.entries,
    })
}

struct State<'a> {
    dest: &'a Path,
    limits: &'a UnpackLimits,
    bytes: u64,
    entries: u64,
    /// Directory mtimes are set last: creating their children would bump them.
    dirs: Vec<(PathBuf, i64)>,
    dir_bytes: u64,
    buf: Vec<u8>,
}

impl State<'_> {
    fn entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<R>,
        shown: &str,
        watch: &Watch,
    ) -> Result<(), UnpackError> {
        let path = || shown.to_string();
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(UnpackError::TooManyEntries {
                path: path(),
                limit: self.limits.max_entries,
            });
        }
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            return Ok(());
        }
        let size = entry.size();
        let remaining = self.limits.max_bytes.saturating_sub(self.bytes);
        if size > remaining {
            return Err(UnpackError::TooLarge {
                path: path(),
                limit: self.limits.max_bytes,
            });
        }
        let rel = match normalize(&entry.path_bytes()) {
            Ok(Some(rel)) => rel,
            Ok(None) => return Ok(()), // the layer root itself
            Err(reason) => {
                return Err(UnpackError::BadPath {
                    path: path(),
                    reason,
                })
            }
        };
        check_parents(self.dest, &rel, true, shown)?;
        let full = self.dest.join(&rel);
        let name = rel.file_name().map(OsStr::as_bytes).unwrap_or_default();
        if let Some(hidden) = name.strip_prefix(b".wh.") {
            return whiteout(&full, hidden, shown);
        }
        if !matches!(kind, EntryType::Regular | EntryType::Continuous) {
            // Data of other entry types is skipped, not written, but still bounded.
            self.bytes += size;
        }

        match kind {
            EntryType::Regular | EntryType::Continuous => {
                remove_existing(&full)?;
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(OFlag::O_NOFOLLOW.bits())
                    .open(&full)
                    .map_err(io_err("creating", &full))?;
                let mut written = 0u64;
                loop {
                    let n = match entry.read(&mut self.buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(watch.classify(e, shown)),
                    };
                    written += n as u64;
                    if written > remaining {
                        return Err(UnpackError::TooLarge {
                            path: path(),
                            limit: self.limits.max_bytes,
                        });
                    }
                    file.write_all(&self.buf[..n])
                        .map_err(io_err("writing", &full))?;
                }
                if written != size {
                    return Err(UnpackError::Truncated {
                        path: path(),
                        expected: size,
                        got: written,
                    });
                }
                self.bytes += written;
            }
            EntryType::Directory => {
                if !fs::symlink_metadata(&full).is_ok_and(|m| m.is_dir()) {
                    remove_existing(&full)?;
                    DirBuilder::new()
                        .mode(0o755)
                        .create(&full)
                        .map_err(io_err("creating", &full))?;
                }
                self.dir_bytes += rel.as_os_str().len() as u64 + 32;
                if self.dir_bytes > DIR_PATHS_ALLOWANCE {
                    return Err(UnpackError::TooManyDirs {
                        path: path(),
                        limit: DIR_PATHS_ALLOWANCE,
                    });
                }
                self.dirs
                    .push((rel.clone(), header_num(entry.header().mtime(), shown)?));
            }
            EntryType::Symlink => {
                let target = link_name(entry, shown)?;
                if symlink_escapes(&rel, &target) {
                    let target = String::from_utf8_lossy(&target).into_owned();
                    return Err(UnpackError::SymlinkEscapes {
                        path: path(),
                        target,
                    });
                }
                remove_existing(&full)?;
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), &full)
                    .map_err(io_err("creating symlink", &full))?;
            }
            EntryType::Link => return self.hardlink(entry, &rel, shown),
            EntryType::Char | EntryType::Block => {
                return Err(UnpackError::DeviceNode { path: path() })
            }
            EntryType::Fifo => {
                remove_existing(&full)?;
                nix::unistd::mkfifo(&full, Mode::from_bits_truncate(0o600))
                    .map_err(|e| io_err("creating fifo", &full)(e.into()))?;
            }
            other => {
                return Err(UnpackError::Unsupported {
                    path: path(),
                    kind: format!("{:?}", char::from(other.as_byte())),
                })
            }
        }
        apply_metadata(entry, &full, kind, shown)
    }

    fn hardlink<R: Read>(
        &mut self,
        entry: &tar::Entry<R>,
        rel: &Path,
        shown: &str,
    ) -> Result<(), UnpackError> {
        let raw = link_name(entry, shown)?;
        let target_shown = String::from_utf8_lossy(&raw).into_owned();
        let bad = |reason| UnpackError::BadLinkTarget {
            path: shown.to_string(),
            target: target_shown.clone(),
            reason,
        };
        let target = match normalize(&raw) {
            Ok(Some(t)) => t,
            Ok(None) => return Err(bad("target is the layer root")),
            Err(reason) => return Err(bad(reason)),
        };
        if target == rel {
            return Ok(());
        }
        let missing = || UnpackError::HardlinkMissing {
            path: shown.to_string(),
            target: target_shown.clone(),
        };
        if !check_parents(
            self.dest,
            &target,
            false,
            &format!("{shown} -> {target_shown}"),
        )? {
            return Err(missing());
        }
        let target_full = self.dest.join(&target);
        match fs::symlink_metadata(&target_full) {
            Ok(m) if m.is_dir() => return Err(bad("target is a directory")),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(missing()),
            Err(e) => return Err(io_err("inspecting", &target_full)(e)),
        }
        let full = self.dest.join(rel);
        remove_existing(&full)?;
        // std's hard_link is linkat without AT_SYMLINK_FOLLOW: a symlink target is linked itself.
        fs::hard_link(&target_full, &full).map_err(io_err("creating hardlink", &full))
    }

    fn restore_dir_mtimes(&mut self) -> Result<(), UnpackError> {
        for (rel, mtime) in std::mem::take(&mut self.dirs) {
            // A later entry may have replaced the dir or one of its parents (perhaps by a
            // symlink); skip those rather than follow anything.
            let full = self.dest.join(&rel);
            let intact = check_parents(self.dest, &rel, false, "").unwrap_or(false)
                && fs::symlink_metadata(&full).is_ok_and(|m| m.is_dir());
            if intact {
                set_mtime(&full, mtime, 0)?;
            }
        }
        Ok(())
    }
}

fn header_num<T: TryFrom<u64>>(value: io::Result<u64>, shown: &str) -> Result<T, UnpackError> {
    let bad = |reason: String| UnpackError::BadHeader {
        path: shown.to_string(),
        reason,
    };
    let value = value.map_err(|e| bad(e.to_string()))?;
    T::try_from(value).map_err(|_| bad(format!("value {value} out of range")))
}

fn link_name<R: Read>(entry: &tar::Entry<R>, shown: &str) -> Result<Vec<u8>, UnpackError> {
    match entry.link_name_bytes() {
        Some(t) if !t.is_empty() => Ok(t.into_owned()),
        _ => Err(UnpackError::BadLinkTarget {
            path: shown.to_string(),
            target: String::new(),
            reason: "no target",
        }),
    }
}

/// An archive path made relative: `None` for the root, an error for anything that could
/// leave it.
fn normalize(raw: &[u8]) -> Result<Option<PathBuf>, &'static str> {
    if raw.first() == Some(&b'/') {
        return Err("absolute path");
    }
    if raw.contains(&0) {
        return Err("path contains a NUL byte");
    }
    let mut rel = PathBuf::new();
    for part in raw.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err("path contains '..'"),
            _ => rel.push(OsStr::from_bytes(part)),
        }
    }
    Ok((!rel.as_os_str().is_empty()).then_some(rel))
}

/// Whether `target`, resolved lexically from the directory of the link at `rel` (absolute
/// targets from the layer root, as inside a container), climbs above the root.
fn symlink_escapes(rel: &Path, target: &[u8]) -> bool {
    let mut depth = match target.first() {
        Some(b'/') => 0,
        _ => rel.components().count().saturating_sub(1),
    };
    for part in target.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." if depth == 0 => return true,
            b".." => depth -= 1,
            _ => depth += 1,
        }
    }
    false
}

/// Checks with lstat that every parent of `rel` under `dest` is a real directory, creating
/// missing ones (0755) if `create`; otherwise returns `Ok(false)` when one is missing.
fn check_parents(dest: &Path, rel: &Path, create: bool, shown: &str) -> Result<bool, UnpackError> {
    let Some(parents) = rel.parent() else {
        return Ok(true);
    };
    let mut full = dest.to_path_buf();
    let mut so_far = PathBuf::new();
    for part in parents.components() {
        full.push(part);
        so_far.push(part);
        let bad = |reason| UnpackError::BadParent {
            path: shown.to_string(),
            parent: so_far.to_string_lossy().into_owned(),
            reason,
        };
        match fs::symlink_metadata(&full) {
            Ok(m) if m.file_type().is_symlink() => return Err(bad("is a symlink")),
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(bad("is not a directory")),
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                DirBuilder::new()
                    .mode(0o755)
                    .create(&full)
                    .map_err(io_err("creating", &full))?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_err("inspecting", &full)(e)),
        }
    }
    Ok(true)
}

/// Removes whatever is at `path`, never following a symlink.
fn remove_existing(path: &Path) -> Result<(), UnpackError> {
    let result = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    result.map_err(io_err("removing", path))
}

/// `full` is the `.wh.` entry's own path; `hidden` is the name after the prefix.
fn whiteout(full: &Path, hidden: &[u8], shown: &str) -> Result<(), UnpackError> {
    let dir = full.parent().unwrap_or(full);
    if hidden == b".wh..opq" {
        return lsetxattr(dir, OPAQUE_XATTR, b"y").map_err(io_err("marking opaque", dir));
    }
    if hidden.starts_with(b".wh.") {
        // Other AUFS metadata; meaningless to overlayfs.
        tracing::debug!(entry = shown, "skipping aufs metadata");
        return Ok(());
    }
    if matches!(hidden, b"" | b"." | b"..") {
        return Err(UnpackError::BadPath {
            path: shown.to_string(),
            reason: "whiteout of an invalid name",
        });
    }
    let target = dir.join(OsStr::from_bytes(hidden));
    remove_existing(&target)?;
    mknod(&target, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))
        .map_err(|e| io_err("creating whiteout", &target)(e.into()))
}

fn apply_metadata<R: Read>(
    entry: &mut tar::Entry<R>,
    full: &Path,
    kind: EntryType,
    shown: &str,
) -> Result<(), UnpackError> {
    let header = entry.header();
    let uid: u32 = header_num(header.uid(), shown)?;
    let gid: u32 = header_num(header.gid(), shown)?;
    let mode: u32 = header_num(header.mode().map(u64::from), shown)?;
    let mtime: i64 = header_num(header.mtime(), shown)?;
    // Order matters: chown clears setuid bits and file capabilities.
    lchown(full, Some(uid), Some(gid)).map_err(io_err("chown", full))?;
    if kind == EntryType::Symlink {
        return set_mtime(full, mtime, 0);
    }
    fs::set_permissions(full, fs::Permissions::from_mode(mode & 0o7777))
        .map_err(io_err("chmod", full))?;
    let mut xattrs = Vec::new();
    if let Some(exts) = entry.pax_extensions().map_err(|e| UnpackError::BadHeader {
        path: shown.to_string(),
        reason: e.to_string(),
    })? {
        for ext in exts.flatten() {
            let Ok(Some(name)) = ext.key().map(|k| k.strip_prefix("SCHILY.xattr.")) else {
                continue;
            };
            // Never trusted.* (overlay's own markers) or other namespaces a layer has no say in.
            if (name.starts_with("user.") || name == "security.capability") && !name.contains('\0')
            {
                xattrs.push((name.to_string(), ext.value_bytes().to_vec()));
            } else {
                tracing::debug!(entry = shown, xattr = name, "ignoring xattr from layer");
            }
        }
    }
    for (name, value) in xattrs {
        lsetxattr(full, &name, &value).map_err(io_err("setting xattr", full))?;
    }
    if kind != EntryType::Directory {
        set_mtime(full, mtime, 0)?;
    }
    Ok(())
}

// time_t is i64 here but i32 on 32-bit ARM, where a time past 2038 is clamped.
#[allow(clippy::useless_conversion)]
fn set_mtime(path: &Path, secs: i64, nsecs: i64) -> Result<(), UnpackError> {
    let secs = nix::libc::time_t::try_from(secs).unwrap_or(if secs < 0 {
        nix::libc::time_t::MIN
    } else {
        nix::libc::time_t::MAX
    });
    // Below a second's worth, so it fits any platform's tv_nsec.
    let mtime = TimeSpec::new(secs, nsecs.clamp(0, 999_999_999) as _);
    utimensat(
        None,
        path,
        &TimeSpec::UTIME_OMIT,
        &mtime,
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(|e| io_err("setting mtime", path)(e.into()))
}
