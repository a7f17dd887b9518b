//! Extended attributes, which nix 0.29 lacks.

use super::*;

// nix 0.29 has no xattr calls, so these go to libc (through nix's re-export).
pub(super) fn lsetxattr(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    let (path, name) = (
        CString::new(path.as_os_str().as_bytes())?,
        CString::new(name)?,
    );
    // SAFETY: both strings are NUL-terminated and outlive the call; value is a valid slice.
    let rc = unsafe {
        nix::libc::lsetxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

pub(super) fn lgetxattr(path: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    let (path, name) = (
        CString::new(path.as_os_str().as_bytes())?,
        CString::new(name)?,
    );
    let mut buf = vec![0u8; 4096];
    // SAFETY: both strings are NUL-terminated and outlive the call; buf is writable for its length.
    let n = unsafe {
        nix::libc::lgetxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n >= 0 {
        buf.truncate(n.unsigned_abs());
        return Ok(Some(buf));
    }
    match io::Error::last_os_error() {
        e if e.raw_os_error() == Some(nix::libc::ENODATA) => Ok(None),
        e => Err(e),
    }
}
