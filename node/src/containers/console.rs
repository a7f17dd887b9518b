//! A container's terminal: libcontainer's init makes a pty and sends its master over a
//! console socket, which the daemon listens on for the container's start.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use covey_runtime::RuntimeError;

pub struct Console {
    path: PathBuf,
    listener: tokio::net::UnixListener,
}

impl Console {
    pub fn listen(runtime_root: &Path, id: &str) -> Result<Self, super::ContainerError> {
        let dir = runtime_root.join("console");
        std::fs::create_dir_all(&dir).map_err(super::ContainerError::internal)?;
        let path = dir.join(format!("{}.sock", &id[..id.len().min(32)]));
        let _ = std::fs::remove_file(&path);
        let listener =
            tokio::net::UnixListener::bind(&path).map_err(super::ContainerError::internal)?;
        Ok(Self { path, listener })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pty master, once the container's init has sent it.
    pub async fn master(self) -> Result<OwnedFd, RuntimeError> {
        let err = |m: String| RuntimeError::Io {
            path: self.path.clone(),
            source: std::io::Error::other(m),
        };
        let accepted = tokio::time::timeout(Duration::from_secs(10), self.listener.accept()).await;
        let (stream, _) = accepted
            .map_err(|_| err("no terminal from the container".into()))?
            .map_err(|e| err(e.to_string()))?;
        let stream = stream.into_std().map_err(|e| err(e.to_string()))?;
        stream
            .set_nonblocking(false)
            .map_err(|e| err(e.to_string()))?;
        let fd = tokio::task::spawn_blocking(move || -> Result<OwnedFd, String> {
            use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
            let mut buf = [0u8; 64];
            let mut iov = [std::io::IoSliceMut::new(&mut buf)];
            let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
            let msg = recvmsg::<()>(
                stream.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_CMSG_CLOEXEC,
            )
            .map_err(|e| e.to_string())?;
            for c in msg.cmsgs().map_err(|e| e.to_string())? {
                if let ControlMessageOwned::ScmRights(fds) = c {
                    if let Some(fd) = fds.first() {
                        // SAFETY: received by SCM_RIGHTS: a new descriptor that is ours.
                        return Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(*fd) });
                    }
                }
            }
            Err("the container sent no terminal".into())
        })
        .await
        .map_err(|e| err(e.to_string()))?
        .map_err(err);
        let _ = std::fs::remove_file(&self.path);
        fd
    }
}

/// Sets the terminal's size (`docker run -it` sends the client's).
pub fn resize(master: &OwnedFd, rows: u16, cols: u16) -> std::io::Result<()> {
    let ws = nix::libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize that outlives the call.
    if unsafe { nix::libc::ioctl(master.as_raw_fd(), nix::libc::TIOCSWINSZ, &ws) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
