//! The runtime helper: one single-threaded process, started by the daemon at boot, that
//! makes containers for it. libcontainer clones without glibc's fork handlers, which is
//! safe only in a process with one thread; the daemon has many. Building `as_sibling`, the
//! helper makes each container's init a child of the daemon, which reaps it.
//!
//! Wire: a `SOCK_SEQPACKET` socket pair (message boundaries kept); a request is one JSON
//! message with the container's stdio as `SCM_RIGHTS`; a reply is one JSON message.
//! Only `create` comes here: start, kill, state and delete do not clone.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Mutex;

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use serde::{Deserialize, Serialize};

use crate::container::{ExecSpec, Runtime, Stdio};
use crate::error::RuntimeError;

const MAX_MESSAGE: usize = 64 * 1024;
/// The helper's end of the socket pair, in the helper.
pub const HELPER_FD: RawFd = 3;

#[derive(Serialize, Deserialize)]
struct Request {
    root: PathBuf,
    id: String,
    /// Which of stdin, stdout, stderr come as descriptors, in that order.
    stdio: [bool; 3],
    /// A process to run in the container; none to create the container itself.
    #[serde(default)]
    exec: Option<ExecSpec>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Reply {
    Created { pid: i32 },
    Failed { message: String },
}

fn io(path: &str) -> impl FnOnce(nix::Error) -> RuntimeError + '_ {
    move |e| RuntimeError::Io {
        path: PathBuf::from(path),
        source: e.into(),
    }
}

/// The helper's loop: serves requests on `HELPER_FD` until the daemon closes its end.
/// Called by the binary before any thread is started.
pub fn serve() -> Result<(), RuntimeError> {
    // SAFETY: the daemon passes the socket as fd 3 and nothing else in this process owns it.
    let sock = unsafe { OwnedFd::from_raw_fd(HELPER_FD) };
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let mut cmsg = nix::cmsg_space!([RawFd; 3]);
        let (len, fds) = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let msg = recvmsg::<()>(
                sock.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_CMSG_CLOEXEC,
            )
            .map_err(io("runtime helper socket"))?;
            let mut fds: Vec<OwnedFd> = Vec::new();
            for c in msg.cmsgs().map_err(io("runtime helper socket"))? {
                if let ControlMessageOwned::ScmRights(raw) = c {
                    // SAFETY: descriptors received by SCM_RIGHTS are new and ours alone.
                    fds.extend(
                        raw.into_iter()
                            .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                    );
                }
            }
            (msg.bytes, fds)
        };
        if len == 0 {
            return Ok(()); // the daemon is gone
        }
        let reply = match serde_json::from_slice::<Request>(&buf[..len]) {
            Ok(req) => handle(req, fds),
            Err(e) => Reply::Failed {
                message: format!("malformed request: {e}"),
            },
        };
        let bytes = serde_json::to_vec(&reply).unwrap_or_default();
        sendmsg::<()>(
            sock.as_raw_fd(),
            &[IoSlice::new(&bytes)],
            &[],
            MsgFlags::empty(),
            None,
        )
        .map_err(io("runtime helper socket"))?;
    }
}

fn handle(req: Request, fds: Vec<OwnedFd>) -> Reply {
    let mut fds = fds.into_iter();
    let mut take = |wanted: bool| if wanted { fds.next() } else { None };
    let stdio = Stdio {
        stdin: take(req.stdio[0]),
        stdout: take(req.stdio[1]),
        stderr: take(req.stdio[2]),
    };
    let made = Runtime::new(&req.root).and_then(|rt| match &req.exec {
        Some(spec) => rt.exec(&req.id, spec, stdio, true),
        None => rt.create_from_bundle(&req.id, stdio, true),
    });
    match made {
        Ok(pid) => Reply::Created { pid },
        Err(e) => Reply::Failed {
            message: e.to_string(),
        },
    }
}

/// The daemon's side: the helper process and its socket. One request at a time.
pub struct Helper {
    sock: Mutex<OwnedFd>,
    child: Mutex<Child>,
}

impl Helper {
    /// Starts `exe` (the covey binary) with `args` (its hidden helper command) as the
    /// helper, with its end of the socket pair as fd 3.
    pub fn spawn(exe: &Path, args: &[&str]) -> Result<Self, RuntimeError> {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(io("socketpair"))?;
        let theirs_raw = theirs.as_raw_fd();
        let mut cmd = Command::new(exe);
        cmd.args(args);
        // SAFETY: between fork and exec only dup2 and fcntl run, both async-signal-safe.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                let ok = if theirs_raw == HELPER_FD {
                    // dup2 onto itself would leave close-on-exec set.
                    nix::libc::fcntl(HELPER_FD, nix::libc::F_SETFD, 0) >= 0
                } else {
                    nix::libc::dup2(theirs_raw, HELPER_FD) >= 0
                };
                if ok {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let child = cmd.spawn().map_err(|source| RuntimeError::Io {
            path: exe.to_path_buf(),
            source,
        })?;
        drop(theirs);
        Ok(Self {
            sock: Mutex::new(ours),
            child: Mutex::new(child),
        })
    }

    /// The helper's pid, so the daemon's reaper can tell its exit from a container's.
    pub fn pid(&self) -> u32 {
        self.child.lock().unwrap_or_else(|p| p.into_inner()).id()
    }

    /// Creates container `id` from its bundle under `root`. Blocking.
    pub fn create(&self, root: &Path, id: &str, stdio: Stdio) -> Result<i32, RuntimeError> {
        self.request(root, id, None, stdio)
    }

    /// Runs `spec` in the running container `id`. Blocking.
    pub fn exec(
        &self,
        root: &Path,
        id: &str,
        spec: &ExecSpec,
        stdio: Stdio,
    ) -> Result<i32, RuntimeError> {
        self.request(root, id, Some(spec.clone()), stdio)
    }

    fn request(
        &self,
        root: &Path,
        id: &str,
        exec: Option<ExecSpec>,
        stdio: Stdio,
    ) -> Result<i32, RuntimeError> {
        let req = Request {
            root: root.to_path_buf(),
            id: id.to_string(),
            stdio: [
                stdio.stdin.is_some(),
                stdio.stdout.is_some(),
                stdio.stderr.is_some(),
            ],
            exec,
        };
        let body = serde_json::to_vec(&req).map_err(|e| RuntimeError::Io {
            path: PathBuf::from("runtime helper"),
            source: e.into(),
        })?;
        let fds: Vec<RawFd> = [&stdio.stdin, &stdio.stdout, &stdio.stderr]
            .iter()
            .filter_map(|f| f.as_ref().map(|f| f.as_raw_fd()))
            .collect();
        let sock = self.sock.lock().unwrap_or_else(|p| p.into_inner());
        let cmsgs = if fds.is_empty() {
            vec![]
        } else {
            vec![ControlMessage::ScmRights(&fds)]
        };
        sendmsg::<()>(
            sock.as_raw_fd(),
            &[IoSlice::new(&body)],
            &cmsgs,
            MsgFlags::empty(),
            None,
        )
        .map_err(io("runtime helper socket"))?;
        drop(stdio); // the helper has its own copies now
        let mut buf = vec![0u8; MAX_MESSAGE];
        let len = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            recvmsg::<()>(sock.as_raw_fd(), &mut iov, None, MsgFlags::empty())
                .map_err(io("runtime helper socket"))?
                .bytes
        };
        if len == 0 {
            return Err(RuntimeError::Io {
                path: PathBuf::from("runtime helper"),
                source: std::io::Error::other("the runtime helper exited"),
            });
        }
        match serde_json::from_slice::<Reply>(&buf[..len]) {
            Ok(Reply::Created { pid }) => Ok(pid),
            Ok(Reply::Failed { message }) => Err(RuntimeError::Helper(message)),
            Err(e) => Err(RuntimeError::Helper(format!("malformed reply: {e}"))),
        }
    }
}
