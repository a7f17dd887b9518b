//! The runtime helper: one single-threaded process, started by the daemon at boot, that
//! makes containers (and execs) for it. libcontainer clones without glibc's fork handlers,
//! which is safe only in a process with one thread; the daemon has many. Building
//! `as_sibling`, the helper makes each container's init a child of the daemon, which reaps
//! it.
//!
//! The helper also keeps a copy of each running container's stdout and stderr pipes. When
//! the daemon goes (an upgrade, a crash), the helper stays, so the pipes keep a reader and
//! no container dies of SIGPIPE; it hands them to the next daemon over its keep socket in
//! the exec root, and exits.
//!
//! Wire: `SOCK_SEQPACKET` (message boundaries kept); one JSON message a request or reply,
//! descriptors as `SCM_RIGHTS`.

use std::collections::HashMap;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
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
#[serde(tag = "op", rename_all = "lowercase")]
enum Request {
    /// Create container `id` from its bundle; stdio says which of stdin, stdout, stderr
    /// come as descriptors, in that order.
    Create {
        root: PathBuf,
        id: String,
        stdio: [bool; 3],
        /// Where to send the pty master, for a container with a terminal.
        #[serde(default)]
        console: Option<PathBuf>,
    },
    Exec {
        root: PathBuf,
        id: String,
        stdio: [bool; 3],
        spec: ExecSpec,
        #[serde(default)]
        console: Option<PathBuf>,
    },
    /// Keep the descriptors that come with it (the container's pipes' read ends).
    Keep {
        id: String,
    },
    Forget {
        id: String,
    },
    /// From the next daemon, on the keep socket: every kept pipe, then `Done`.
    Handover,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "lowercase")]
enum Reply {
    Created { pid: i32 },
    Failed { message: String },
    Ok,
    Kept { id: String },
    Done,
}

fn io(what: &str) -> impl FnOnce(nix::Error) -> RuntimeError + '_ {
    move |e| RuntimeError::Io {
        path: PathBuf::from(what),
        source: e.into(),
    }
}

/// Sends one message; MSG_NOSIGNAL so a peer that went away is an error, not SIGPIPE.
fn send(sock: RawFd, msg: &impl Serialize, fds: &[RawFd]) -> nix::Result<()> {
    let body = serde_json::to_vec(msg).unwrap_or_default();
    let cmsgs = if fds.is_empty() {
        vec![]
    } else {
        vec![ControlMessage::ScmRights(fds)]
    };
    sendmsg::<()>(
        sock,
        &[IoSlice::new(&body)],
        &cmsgs,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map(|_| ())
}

/// Receives one message and its descriptors; `None` at end of stream.
fn recv<T: for<'de> Deserialize<'de>>(
    sock: RawFd,
) -> Result<Option<(T, Vec<OwnedFd>)>, RuntimeError> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut cmsg = nix::cmsg_space!([RawFd; 8]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC)
        .map_err(io("runtime helper socket"))?;
    let mut fds = Vec::new();
    for c in msg.cmsgs().map_err(io("runtime helper socket"))? {
        if let ControlMessageOwned::ScmRights(raw) = c {
            // SAFETY: descriptors received by SCM_RIGHTS are new and ours alone.
            fds.extend(
                raw.into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    let len = msg.bytes;
    if len == 0 {
        return Ok(None);
    }
    let parsed = serde_json::from_slice(&buf[..len]).map_err(|e| {
        RuntimeError::Helper(format!(
            "malformed message on the runtime helper socket: {e}"
        ))
    })?;
    Ok(Some((parsed, fds)))
}

/// The helper's main: serves the daemon on `HELPER_FD` until it goes, then holds the kept
/// pipes for the next daemon on `keep_socket`. Called before any thread is started.
pub fn serve(keep_socket: Option<&Path>) -> Result<(), RuntimeError> {
    reset_signals();
    // Bound now, not when the daemon goes: a next daemon may come at any moment after.
    let listener = match keep_socket {
        Some(p) => {
            let _ = std::fs::remove_file(p);
            Some(UnixListener::bind(p).map_err(|source| RuntimeError::Io {
                path: p.to_path_buf(),
                source,
            })?)
        }
        None => None,
    };
    // SAFETY: the daemon passes the socket as fd 3 and nothing else in this process owns it.
    let sock = unsafe { OwnedFd::from_raw_fd(HELPER_FD) };
    let mut kept: HashMap<String, Vec<OwnedFd>> = HashMap::new();
    while let Some((req, fds)) = recv::<Request>(sock.as_raw_fd())? {
        let reply = match req {
            Request::Create {
                root,
                id,
                stdio,
                console,
            } => made(Runtime::new(&root).and_then(|rt| {
                rt.create_from_bundle(&id, take(stdio, fds), true, console.as_deref())
            })),
            Request::Exec {
                root,
                id,
                stdio,
                spec,
                console,
            } => made(
                Runtime::new(&root)
                    .and_then(|rt| rt.exec(&id, &spec, take(stdio, fds), true, console.as_deref())),
            ),
            Request::Keep { id } => {
                kept.insert(id, fds);
                Reply::Ok
            }
            Request::Forget { id } => {
                kept.remove(&id);
                Reply::Ok
            }
            Request::Handover => Reply::Failed {
                message: "handover is asked on the keep socket".into(),
            },
        };
        if send(sock.as_raw_fd(), &reply, &[]).is_err() {
            break;
        }
    }
    // The daemon is gone.
    let (Some(listener), false) = (listener, kept.is_empty()) else {
        return Ok(());
    };
    let (next, _) = listener.accept().map_err(|source| RuntimeError::Io {
        path: PathBuf::from("keep socket"),
        source,
    })?;
    if let Some((Request::Handover, _)) = recv::<Request>(next.as_raw_fd())? {
        for (id, fds) in &kept {
            let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
            send(next.as_raw_fd(), &Reply::Kept { id: id.clone() }, &raw)
                .map_err(io("keep socket"))?;
        }
        send(next.as_raw_fd(), &Reply::Done, &[]).map_err(io("keep socket"))?;
    }
    if let Some(p) = keep_socket {
        let _ = std::fs::remove_file(p);
    }
    Ok(())
}

fn take(stdio: [bool; 3], fds: Vec<OwnedFd>) -> Stdio {
    let mut fds = fds.into_iter();
    let mut next = |wanted: bool| if wanted { fds.next() } else { None };
    Stdio {
        stdin: next(stdio[0]),
        stdout: next(stdio[1]),
        stderr: next(stdio[2]),
    }
}

fn made(r: Result<i32, RuntimeError>) -> Reply {
    match r {
        Ok(pid) => Reply::Created { pid },
        Err(e) => Reply::Failed {
            message: e.to_string(),
        },
    }
}

/// Containers get default signal dispositions and an empty mask, as under Docker: the
/// daemon's (Rust ignores SIGPIPE; a shell that started it may ignore SIGINT) would pass on
/// through exec, and `yes | head` would never end.
fn reset_signals() {
    use nix::sys::signal::{signal, sigprocmask, SigHandler, SigSet, SigmaskHow, Signal};
    for sig in Signal::iterator() {
        if sig != Signal::SIGKILL && sig != Signal::SIGSTOP {
            // SAFETY: installing SIG_DFL runs no handler code.
            let _ = unsafe { signal(sig, SigHandler::SigDfl) };
        }
    }
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

/// The pipes a previous helper kept, by container, from its keep socket. Empty if there is
/// no previous helper.
pub fn take_over(keep_socket: &Path) -> HashMap<String, Vec<OwnedFd>> {
    let mut out = HashMap::new();
    let Ok(stream) = UnixStream::connect(keep_socket) else {
        let _ = std::fs::remove_file(keep_socket);
        return out;
    };
    if send(stream.as_raw_fd(), &Request::Handover, &[]).is_err() {
        return out;
    }
    while let Ok(Some((reply, fds))) = recv::<Reply>(stream.as_raw_fd()) {
        match reply {
            Reply::Kept { id } => {
                out.insert(id, fds);
            }
            _ => break,
        }
    }
    out
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
    pub fn create(
        &self,
        root: &Path,
        id: &str,
        stdio: Stdio,
        console: Option<&Path>,
    ) -> Result<i32, RuntimeError> {
        let req = Request::Create {
            root: root.to_path_buf(),
            id: id.to_string(),
            stdio: mask(&stdio),
            console: console.map(Path::to_path_buf),
        };
        self.request(&req, &stdio)
    }

    /// Runs `spec` in the running container `id`. Blocking.
    pub fn exec(
        &self,
        root: &Path,
        id: &str,
        spec: &ExecSpec,
        stdio: Stdio,
        console: Option<&Path>,
    ) -> Result<i32, RuntimeError> {
        let req = Request::Exec {
            root: root.to_path_buf(),
            id: id.to_string(),
            stdio: mask(&stdio),
            spec: spec.clone(),
            console: console.map(Path::to_path_buf),
        };
        self.request(&req, &stdio)
    }

    /// Has the helper keep `pipes` (read ends) for container `id`, for a next daemon.
    pub fn keep(&self, id: &str, pipes: &[OwnedFd]) -> Result<(), RuntimeError> {
        let raw: Vec<RawFd> = pipes.iter().map(AsRawFd::as_raw_fd).collect();
        self.call(&Request::Keep { id: id.to_string() }, &raw)
            .map(|_| ())
    }

    pub fn forget(&self, id: &str) -> Result<(), RuntimeError> {
        self.call(&Request::Forget { id: id.to_string() }, &[])
            .map(|_| ())
    }

    fn request(&self, req: &Request, stdio: &Stdio) -> Result<i32, RuntimeError> {
        let fds: Vec<RawFd> = [&stdio.stdin, &stdio.stdout, &stdio.stderr]
            .iter()
            .filter_map(|f| f.as_ref().map(|f| f.as_raw_fd()))
            .collect();
        match self.call(req, &fds)? {
            Reply::Created { pid } => Ok(pid),
            Reply::Failed { message } => Err(RuntimeError::Helper(message)),
            _ => Err(RuntimeError::Helper(
                "unexpected reply from the runtime helper".into(),
            )),
        }
    }

    fn call(&self, req: &Request, fds: &[RawFd]) -> Result<Reply, RuntimeError> {
        let sock = self.sock.lock().unwrap_or_else(|p| p.into_inner());
        send(sock.as_raw_fd(), req, fds).map_err(io("runtime helper socket"))?;
        match recv::<Reply>(sock.as_raw_fd())? {
            Some((reply, _)) => Ok(reply),
            None => Err(RuntimeError::Helper("the runtime helper exited".into())),
        }
    }
}

fn mask(stdio: &Stdio) -> [bool; 3] {
    [
        stdio.stdin.is_some(),
        stdio.stdout.is_some(),
        stdio.stderr.is_some(),
    ]
}
