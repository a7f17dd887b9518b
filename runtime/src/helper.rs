//! The runtime helper: one single-threaded process, started by the daemon at boot, that
//! makes containers (and execs) for it. libcontainer clones without glibc's fork handlers,
//! which is safe only in a process with one thread; the daemon has many.
//!
//! **The helper is its containers' parent.** It builds them as its own children, reaps
//! them (a pidfd each, in its poll loop), records each container's exit in its bundle
//! (`Runtime::record_exit`) and tells the daemons that watch. It outlives its daemon: after
//! an upgrade or a crash it goes on reaping the containers it made, so a restarted daemon
//! still learns their exit codes, whether they ended while no daemon was there (the file)
//! or after (a pushed exit). It also keeps a copy of each running container's stdout and
//! stderr pipes, so that they keep a reader and no container dies of SIGPIPE, and hands
//! them to the next daemon. It exits once it has no daemon of its own, no children and no
//! pipes left to hand over. If it dies first, its children pass to its parent: the daemon
//! that started it, a child subreaper, if that one still runs.
//!
//! Wire: `SOCK_SEQPACKET` (message boundaries kept); one JSON message a request or reply,
//! descriptors as `SCM_RIGHTS`.
//! - fd 3, from the daemon that started it: create, exec, keep, forget; one reply each.
//! - fd 4, to the same daemon: exits, pushed.
//! - `<socket-dir>/<pid>.sock`, for later daemons: `hello` (each side's protocol
//!   version), `handover` (every kept pipe, then `done`) and, if the versions match,
//!   `watch` (exits pushed from then on, as on fd 4). `hello` and `handover` never change;
//!   a daemon of another version learns exits from the file.

use std::collections::HashMap;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::SystemTime;

use nix::sys::socket::{
    accept, bind, connect, listen, recvmsg, sendmsg, setsockopt, socket, socketpair, sockopt,
    AddressFamily, Backlog, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType,
    UnixAddr,
};
use serde::{Deserialize, Serialize};

use crate::container::{ExecSpec, Exit, Runtime, Stdio};
use crate::error::RuntimeError;

const MAX_MESSAGE: usize = 64 * 1024;
/// Requests from the daemon that started the helper, in the helper.
pub const HELPER_FD: RawFd = 3;
/// Exits pushed to that daemon, in the helper.
pub const EVENTS_FD: RawFd = 4;
/// The version of the parts of the protocol that may change (all but `hello` and
/// `handover`). A daemon watches only helpers of its own version.
pub const PROTOCOL: u32 = 1;

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
    /// From a later daemon: its protocol version; the helper answers with its own.
    Hello {
        version: u32,
    },
    /// From a later daemon: every kept pipe, then `Done`.
    Handover,
    /// From a later daemon: push exits on this connection from now on.
    Watch,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "lowercase")]
enum Reply {
    Created { pid: i32 },
    Failed { message: String },
    Ok,
    Kept { id: String },
    Done,
    Hello { version: u32 },
    Exited(Exited),
}

/// A process the helper made ended: a container's init, or an exec in container `id`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Exited {
    pub id: String,
    pub pid: i32,
    /// The exit status, or 128 + the signal that killed it.
    pub code: i32,
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

/// A process the helper made and will reap.
struct Made {
    /// The container it is (its init) or runs in (an exec).
    id: String,
    /// Where to record the exit: the runtime root, for a container's init; none for an exec.
    init_of: Option<PathBuf>,
    /// Turns readable when the process exits; without one (pidfd_open failed), a sweep
    /// once a second reaps it.
    pidfd: Option<OwnedFd>,
}

/// A container's pipes, kept for a next daemon.
struct Kept {
    fds: Vec<OwnedFd>,
    /// A later daemon has taken them (and keeps them with its own helper).
    handed: bool,
}

/// A later daemon's connection, on the helper's socket.
struct Peer {
    sock: OwnedFd,
    watching: bool,
}

struct Served {
    /// The daemon that started the helper; `None` once it has gone.
    daemon: Option<OwnedFd>,
    /// Daemons that want exits pushed: the starting daemon's fd 4, and later daemons.
    watchers: Vec<OwnedFd>,
    listener: Option<Listener>,
    peers: Vec<Peer>,
    made: HashMap<i32, Made>,
    kept: HashMap<String, Kept>,
}

/// The helper's main: serves the daemon on `HELPER_FD`, and later daemons on a socket in
/// `socket_dir`, until nothing is left for it to do. Called before any thread is started.
pub fn serve(socket_dir: Option<&Path>) -> Result<(), RuntimeError> {
    reset_signals();
    // Its own session: a ^C or hangup meant for the daemon's terminal must not end the
    // helper, whose children are the containers.
    let _ = nix::unistd::setsid();
    raise_nofile();
    // SAFETY: the daemon passes the socket as fd 3 and nothing else in this process owns it.
    let daemon = unsafe { OwnedFd::from_raw_fd(HELPER_FD) };
    let mut s = Served {
        daemon: Some(daemon),
        watchers: Vec::new(),
        listener: None,
        peers: Vec::new(),
        made: HashMap::new(),
        kept: HashMap::new(),
    };
    // fd 4 is there when the daemon wants exits pushed (it always does; a check, not trust).
    if nix::fcntl::fcntl(EVENTS_FD, nix::fcntl::FcntlArg::F_GETFD).is_ok() {
        // SAFETY: as fd 3: passed by the daemon, owned by nothing else here.
        s.watchers.push(unsafe { OwnedFd::from_raw_fd(EVENTS_FD) });
    }
    if let Some(dir) = socket_dir {
        s.listener = Some(listen_in(dir)?);
    }
    s.run();
    if let Some(l) = &s.listener {
        // Only if the name is still ours: a helper started later may have taken it.
        let there = std::fs::metadata(&l.path).ok();
        if there.is_some_and(|m| (m.dev(), m.ino()) == l.inode) {
            let _ = std::fs::remove_file(&l.path);
        }
    }
    Ok(())
}

/// The helper's socket for later daemons.
struct Listener {
    fd: OwnedFd,
    path: PathBuf,
    /// The socket file's device and inode, to tell it from another's of the same name.
    inode: (u64, u64),
}

fn listen_in(dir: &Path) -> Result<Listener, RuntimeError> {
    let path = dir.join(format!("{}.sock", std::process::id()));
    let err = |source: std::io::Error| RuntimeError::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    let _ = std::fs::remove_file(&path);
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| err(e.into()))?;
    let addr = UnixAddr::new(&path).map_err(|e| err(e.into()))?;
    bind(fd.as_raw_fd(), &addr).map_err(|e| err(e.into()))?;
    listen(&fd, Backlog::new(8).unwrap_or(Backlog::MAXCONN)).map_err(|e| err(e.into()))?;
    let m = std::fs::metadata(&path).map_err(err)?;
    Ok(Listener {
        fd,
        inode: (m.dev(), m.ino()),
        path,
    })
}

impl Served {
    fn run(&mut self) {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        while self.daemon.is_some() || !self.made.is_empty() || !self.kept.is_empty() {
            let ready: Vec<bool> = {
                let mut fds: Vec<PollFd<'_>> = self
                    .daemon
                    .iter()
                    .chain(self.listener.iter().map(|l| &l.fd))
                    .chain(self.peers.iter().map(|p| &p.sock))
                    .chain(self.made.values().flat_map(|m| &m.pidfd))
                    .map(|fd| PollFd::new(fd.as_fd(), PollFlags::POLLIN))
                    .collect();
                // A child without a pidfd is reaped by a sweep once a second; otherwise the
                // helper sleeps until something happens (a device's idle power).
                let timeout = if self.made.values().any(|m| m.pidfd.is_none()) {
                    PollTimeout::from(1000u16)
                } else {
                    PollTimeout::NONE
                };
                match poll(&mut fds, timeout) {
                    Ok(_) => fds
                        .iter()
                        .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                        .collect(),
                    Err(_) => vec![false; fds.len()],
                }
            };
            let mut ready = ready.into_iter();
            if self.daemon.is_some() && ready.next() == Some(true) {
                self.serve_daemon();
            }
            if self.listener.is_some() && ready.next() == Some(true) {
                self.accept_peer();
            }
            let peers: Vec<bool> = ready.by_ref().take(self.peers.len()).collect();
            for (i, r) in peers.into_iter().enumerate().rev() {
                if r {
                    self.serve_peer(i);
                }
            }
            self.reap();
        }
    }

    fn serve_daemon(&mut self) {
        let Some(sock) = self.daemon.as_ref().map(AsRawFd::as_raw_fd) else {
            return;
        };
        let (req, fds) = match recv::<Request>(sock) {
            Ok(Some(r)) => r,
            // The daemon is gone (an upgrade, a crash): later daemons come on the socket.
            Ok(None) | Err(_) => {
                self.daemon = None;
                return;
            }
        };
        let reply = match req {
            Request::Create {
                root,
                id,
                stdio,
                console,
            } => {
                let made = Runtime::new(&root).and_then(|rt| {
                    rt.create_from_bundle(&id, take(stdio, fds), console.as_deref())
                });
                self.track(made, id, Some(root))
            }
            Request::Exec {
                root,
                id,
                stdio,
                spec,
                console,
            } => {
                let made = Runtime::new(&root)
                    .and_then(|rt| rt.exec(&id, &spec, take(stdio, fds), console.as_deref()));
                self.track(made, id, None)
            }
            Request::Keep { id } => {
                self.kept.insert(id, Kept { fds, handed: false });
                Reply::Ok
            }
            Request::Forget { id } => {
                self.kept.remove(&id);
                Reply::Ok
            }
            Request::Hello { .. } | Request::Handover | Request::Watch => Reply::Failed {
                message: "hello, handover and watch are for the helper's socket".into(),
            },
        };
        if send(sock, &reply, &[]).is_err() {
            self.daemon = None;
        }
    }

    /// Tracks a process just made, so that it is reaped; the reply for its daemon.
    fn track(
        &mut self,
        made: Result<i32, RuntimeError>,
        id: String,
        init_of: Option<PathBuf>,
    ) -> Reply {
        match made {
            Ok(pid) => {
                let pidfd = pidfd_open(pid);
                if pidfd.is_none() {
                    tracing::warn!(pid, "no pidfd for a process just made: reaped by the sweep");
                }
                self.made.insert(pid, Made { id, init_of, pidfd });
                Reply::Created { pid }
            }
            Err(e) => Reply::Failed {
                message: e.to_string(),
            },
        }
    }

    fn accept_peer(&mut self) {
        let Some(l) = &self.listener else {
            return;
        };
        if let Ok(raw) = accept(l.fd.as_raw_fd()) {
            // SAFETY: accept returned a new descriptor, ours alone.
            let sock = unsafe { OwnedFd::from_raw_fd(raw) };
            let _ = nix::fcntl::fcntl(
                sock.as_raw_fd(),
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            );
            self.peers.push(Peer {
                sock,
                watching: false,
            });
        }
    }

    fn serve_peer(&mut self, i: usize) {
        let sock = self.peers[i].sock.as_raw_fd();
        let req = match recv::<Request>(sock) {
            Ok(Some((req, _))) => req,
            Ok(None) | Err(_) => {
                self.peers.remove(i);
                return;
            }
        };
        let sent = match req {
            Request::Hello { .. } => send(sock, &Reply::Hello { version: PROTOCOL }, &[]),
            Request::Handover => self.hand_over(sock),
            Request::Watch => {
                self.peers[i].watching = true;
                send(sock, &Reply::Ok, &[])
            }
            _ => send(
                sock,
                &Reply::Failed {
                    message: "only hello, handover and watch are served here".into(),
                },
                &[],
            ),
        };
        if sent.is_err() {
            self.peers.remove(i);
        } else if self.peers[i].watching {
            // Watching: its socket moves to the watchers, where exits go.
            let p = self.peers.remove(i);
            self.watchers.push(p.sock);
        }
    }

    /// Every kept pipe to a later daemon, which keeps them with its own helper from now
    /// on. Those of containers that have ended are then dropped: the pipes are needed only
    /// for the output still in them, which that daemon now reads.
    fn hand_over(&mut self, sock: RawFd) -> nix::Result<()> {
        for (id, k) in &mut self.kept {
            let raw: Vec<RawFd> = k.fds.iter().map(AsRawFd::as_raw_fd).collect();
            send(sock, &Reply::Kept { id: id.clone() }, &raw)?;
            k.handed = true;
        }
        send(sock, &Reply::Done, &[])?;
        let live: Vec<&str> = self
            .made
            .values()
            .filter(|m| m.init_of.is_some())
            .map(|m| m.id.as_str())
            .collect();
        let ended: Vec<String> = self
            .kept
            .keys()
            .filter(|id| !live.contains(&id.as_str()))
            .cloned()
            .collect();
        for id in ended {
            self.kept.remove(&id);
        }
        Ok(())
    }

    /// Reaps every child that has ended; records and announces the exits of those it made.
    fn reap(&mut self) {
        loop {
            let Some((pid, code)) = crate::container::reap_any() else {
                return;
            };
            let Some(made) = self.made.remove(&pid) else {
                continue;
            };
            if let Some(root) = &made.init_of {
                let exit = Exit {
                    pid,
                    code,
                    at: SystemTime::now(),
                };
                // Before it is announced: a daemon that connects in between finds the file.
                if let Err(e) = Runtime::new(root).and_then(|rt| rt.record_exit(&made.id, &exit)) {
                    tracing::warn!(container = %made.id, "recording the exit: {e}");
                }
                // The pipes stay until a daemon has them: its own (which forgets them once
                // it has read them out) or a later one (which took them over).
                if self.daemon.is_none() && self.kept.get(&made.id).is_some_and(|k| k.handed) {
                    self.kept.remove(&made.id);
                }
            }
            let msg = Reply::Exited(Exited {
                id: made.id,
                pid,
                code,
            });
            self.watchers
                .retain(|w| send(w.as_raw_fd(), &msg, &[]).is_ok());
        }
    }
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

/// A pidfd for `pid`, which turns readable when it exits. (nix 0.29 has no wrapper.)
pub fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: a plain syscall; on success it returns a new descriptor we then own.
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: see above.
    Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Containers get default signal dispositions and an empty mask, as under Docker: the
/// daemon's (Rust ignores SIGPIPE; a shell that started it may ignore SIGINT) would pass on
/// through exec, and `yes | head` would never end. (So the helper learns of its children's
/// ends through pidfds, not a blocked SIGCHLD, whose mask they would inherit.)
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

/// Three descriptors a container (a pidfd and two pipes): the soft limit of 1024 would cap
/// a node at a few hundred. Containers get their own limit from their spec.
fn raise_nofile() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// Takes over from the helpers earlier daemons left in `socket_dir`: their kept pipes (by
/// container), and from those of this protocol version every exit from now on, into
/// `on_exit` (from a thread per helper). Sockets nobody listens on any more are removed.
pub fn take_over(
    socket_dir: &Path,
    on_exit: impl Fn(Exited) + Clone + Send + 'static,
) -> HashMap<String, Vec<OwnedFd>> {
    let mut out = HashMap::new();
    let Ok(entries) = std::fs::read_dir(socket_dir) else {
        return out;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "sock") {
            continue;
        }
        match take_over_one(&path) {
            Ok((pipes, watch)) => {
                for (id, fds) in pipes {
                    // Two helpers may both hold a container's pipes (the one that made it
                    // and the next daemon's): copies of the same pipes.
                    out.entry(id).or_insert(fds);
                }
                if let Some(sock) = watch {
                    let on_exit = on_exit.clone();
                    std::thread::spawn(move || watch_exits(sock, on_exit));
                }
            }
            Err(Gone) => {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    out
}

/// A helper socket with no helper behind it (or one that stopped answering).
struct Gone;

type Handed = (HashMap<String, Vec<OwnedFd>>, Option<OwnedFd>);

fn take_over_one(path: &Path) -> Result<Handed, Gone> {
    let sock = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|_| Gone)?;
    let addr = UnixAddr::new(path).map_err(|_| Gone)?;
    connect(sock.as_raw_fd(), &addr).map_err(|_| Gone)?;
    // A helper answers at once; one that does not must not hold the daemon's start.
    let patience = nix::sys::time::TimeVal::new(5, 0);
    let _ = setsockopt(&sock, sockopt::ReceiveTimeout, &patience);
    let fd = sock.as_raw_fd();
    send(fd, &Request::Hello { version: PROTOCOL }, &[]).map_err(|_| Gone)?;
    let version = match recv::<Reply>(fd) {
        Ok(Some((Reply::Hello { version }, _))) => version,
        _ => return Err(Gone),
    };
    send(fd, &Request::Handover, &[]).map_err(|_| Gone)?;
    let mut pipes = HashMap::new();
    loop {
        match recv::<Reply>(fd) {
            Ok(Some((Reply::Kept { id }, fds))) => {
                pipes.insert(id, fds);
            }
            Ok(Some((Reply::Done, _))) => break,
            // Keep what came: the helper counts them as handed over.
            _ => return Ok((pipes, None)),
        }
    }
    if version != PROTOCOL {
        tracing::info!(
            helper = %path.display(),
            version,
            "a runtime helper of another version: its containers' exits come from their exit files"
        );
        return Ok((pipes, None));
    }
    // No answer: it had only pipes of ended containers, and went once it had handed them.
    if send(fd, &Request::Watch, &[]).is_err() {
        return Ok((pipes, None));
    }
    match recv::<Reply>(fd) {
        Ok(Some((Reply::Ok, _))) => {}
        _ => return Ok((pipes, None)),
    }
    let forever = nix::sys::time::TimeVal::new(0, 0);
    let _ = setsockopt(&sock, sockopt::ReceiveTimeout, &forever);
    Ok((pipes, Some(sock)))
}

/// Passes on the exits a helper pushes until it goes.
fn watch_exits(sock: OwnedFd, on_exit: impl Fn(Exited)) {
    while let Ok(Some((msg, _))) = recv::<Reply>(sock.as_raw_fd()) {
        if let Reply::Exited(e) = msg {
            on_exit(e);
        }
    }
}

/// The daemon's side: the helper process and its socket. One request at a time.
pub struct Helper {
    sock: Mutex<OwnedFd>,
    child: Mutex<Child>,
}

impl Helper {
    /// Starts `exe` (the covey binary) with `args` (its hidden helper command) as the
    /// helper, with its end of the request socket as fd 3 and of the exit socket as fd 4;
    /// the exits it pushes go to `on_exit`, from a thread of their own.
    pub fn spawn(
        exe: &Path,
        args: &[&str],
        on_exit: impl Fn(Exited) + Send + 'static,
    ) -> Result<Self, RuntimeError> {
        let pair = || {
            socketpair(
                AddressFamily::Unix,
                SockType::SeqPacket,
                None,
                SockFlag::SOCK_CLOEXEC,
            )
            .map_err(io("socketpair"))
        };
        let (ours, theirs) = pair()?;
        let (exits, their_exits) = pair()?;
        let (req_raw, ev_raw) = (theirs.as_raw_fd(), their_exits.as_raw_fd());
        let mut cmd = Command::new(exe);
        cmd.args(args);
        // SAFETY: between fork and exec only fcntl, dup2 and close run, all
        // async-signal-safe.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                use nix::libc::{close, dup2, fcntl, F_DUPFD};
                // Out of the way first: either may already sit on 3 or 4.
                let a = fcntl(req_raw, F_DUPFD, 10);
                let b = fcntl(ev_raw, F_DUPFD, 10);
                // dup2 leaves the copies without close-on-exec, as the helper needs.
                let ok = a >= 0 && b >= 0 && dup2(a, HELPER_FD) >= 0 && dup2(b, EVENTS_FD) >= 0;
                close(a);
                close(b);
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
        drop((theirs, their_exits));
        std::thread::spawn(move || watch_exits(exits, on_exit));
        Ok(Self {
            sock: Mutex::new(ours),
            child: Mutex::new(child),
        })
    }

    /// The helper's pid.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn json(v: &impl Serialize) -> String {
        serde_json::to_string(v).unwrap()
    }

    /// `hello` and `handover` are how daemons and helpers of different versions meet, and
    /// the exit file is what they share after: their shapes must never change.
    #[test]
    fn the_parts_between_versions_keep_their_shape() {
        assert_eq!(
            json(&Request::Hello { version: 7 }),
            r#"{"op":"hello","version":7}"#
        );
        assert_eq!(json(&Request::Handover), r#"{"op":"handover"}"#);
        assert_eq!(
            json(&Reply::Hello { version: 7 }),
            r#"{"reply":"hello","version":7}"#
        );
        assert_eq!(
            json(&Reply::Kept { id: "c1".into() }),
            r#"{"reply":"kept","id":"c1"}"#
        );
        assert_eq!(json(&Reply::Done), r#"{"reply":"done"}"#);
        let exit = Exit {
            pid: 42,
            code: 7,
            at: SystemTime::UNIX_EPOCH + std::time::Duration::new(5, 6),
        };
        assert_eq!(
            json(&exit),
            r#"{"pid":42,"code":7,"at":{"secs_since_epoch":5,"nanos_since_epoch":6}}"#
        );
        assert_eq!(
            json(&Reply::Exited(Exited {
                id: "c1".into(),
                pid: 42,
                code: 7
            })),
            r#"{"reply":"exited","id":"c1","pid":42,"code":7}"#
        );
    }
}
