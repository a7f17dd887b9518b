//! Network namespaces kept by a bind mount of their nsfs file under the exec root (as
//! `ip netns` does under /run/netns, but per daemon, so that several nodes can share a
//! machine in tests), and netlink work done inside one.

use std::future::Future;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use rtnetlink::Handle;

use super::Error;

pub type NetlinkFuture<T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send>>;

/// Whether `path` holds a namespace (a mount of an nsfs file: statfs says nsfs).
pub fn exists(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
}

/// Makes a new network namespace kept at `path`, with loopback up; one already there is
/// kept as it is.
pub async fn create(path: &Path) -> Result<(), Error> {
    if exists(path) {
        return Ok(());
    }
    let io = |what: &str, e: std::io::Error| Error::Io(format!("{what} {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io("creating", e))?;
    }
    std::fs::File::create(path).map_err(|e| io("creating", e))?;
    let target = path.to_path_buf();
    // A thread of its own: unshare moves only the calling thread, which then ends, and the
    // bind mount keeps the namespace.
    let made = std::thread::spawn(move || -> nix::Result<()> {
        unshare(CloneFlags::CLONE_NEWNET)?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    })
    .join()
    .map_err(|_| Error::Io("the namespace thread panicked".into()))?;
    if let Err(e) = made {
        let _ = std::fs::remove_file(path);
        return Err(io("making a network namespace at", e.into()));
    }
    run_in(Some(path.to_path_buf()), |handle| {
        Box::pin(async move { super::links::up(&handle, "lo").await })
    })
    .await
}

/// Unmounts and removes a namespace: it goes once no process is left in it, and its
/// interfaces with it (a veth's other end too).
pub fn remove(path: &Path) {
    if exists(path) {
        if let Err(e) = umount2(path, MntFlags::MNT_DETACH) {
            tracing::warn!("unmounting {}: {e}", path.display());
        }
    }
    let _ = std::fs::remove_file(path);
}

/// Runs `work` with a netlink handle inside the namespace at `ns` (the daemon's own when
/// `None`), on a thread of its own that ends after: no thread of the daemon's pools is
/// ever left in another namespace.
pub async fn run_in<T, F>(ns: Option<PathBuf>, work: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce(Handle) -> NetlinkFuture<T> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let result = (|| {
            if let Some(ns) = &ns {
                let file = std::fs::File::open(ns)
                    .map_err(|e| Error::Io(format!("opening {}: {e}", ns.display())))?;
                setns(&file, CloneFlags::CLONE_NEWNET)
                    .map_err(|e| Error::Io(format!("entering {}: {e}", ns.display())))?;
            }
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Error::Io(format!("a runtime for netlink: {e}")))?;
            rt.block_on(async move {
                let (conn, handle, _) = rtnetlink::new_connection()
                    .map_err(|e| Error::Io(format!("a netlink socket: {e}")))?;
                let conn = tokio::spawn(conn);
                let out = work(handle).await;
                conn.abort();
                out
            })
        })();
        let _ = tx.send(result);
    });
    rx.await
        .map_err(|_| Error::Io("the netlink thread ended early".into()))?
}

/// Turns on each of `keys` under /proc/sys/net (`ipv4/ip_forward`), in the daemon's own
/// namespace.
pub fn enable(keys: &[String]) -> Result<(), Error> {
    for key in keys {
        std::fs::write(format!("/proc/sys/net/{key}"), "1")
            .map_err(|e| Error::Io(format!("setting net/{key}: {e}")))?;
    }
    Ok(())
}

/// An open namespace file, to move interfaces into it by descriptor.
pub fn open(path: &Path) -> Result<std::fs::File, Error> {
    std::fs::File::open(path).map_err(|e| Error::Io(format!("opening {}: {e}", path.display())))
}

pub fn raw(file: &std::fs::File) -> i32 {
    file.as_raw_fd()
}
