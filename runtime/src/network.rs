//! The runtime's part of networking: a container in a namespace of its own gets a working
//! loopback (a new network namespace starts with `lo` down), as Docker's `none` network.

use std::os::fd::AsRawFd;
use std::path::PathBuf;

use nix::sched::{setns, CloneFlags};

use crate::error::RuntimeError;

/// Brings `lo` up in the network namespace of process `pid`. Runs on a thread of its own,
/// which ends after: `setns` changes only the calling thread, and no thread of the caller's
/// pools may be left in a container's namespace.
pub fn loopback_up(pid: i32) -> Result<(), RuntimeError> {
    let ns_path = PathBuf::from(format!("/proc/{pid}/ns/net"));
    let io = |source: std::io::Error| RuntimeError::Io {
        path: ns_path.clone(),
        source,
    };
    let ns = std::fs::File::open(&ns_path).map_err(io)?;
    let worker = std::thread::spawn(move || -> std::io::Result<()> {
        setns(&ns, CloneFlags::CLONE_NEWNET)?;
        set_up(b"lo")
    });
    match worker.join() {
        Ok(result) => result.map_err(io),
        Err(_) => Err(io(std::io::Error::other("the loopback thread panicked"))),
    }
}

/// SIOCGIFFLAGS then SIOCSIFFLAGS with IFF_UP, on the current thread's namespace.
fn set_up(name: &[u8]) -> std::io::Result<()> {
    use nix::libc;
    // SAFETY: a plain socket call; the descriptor is owned by `sock` and closed on drop.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `sock` is a new descriptor nothing else owns.
    let sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(sock) };
    // SAFETY: ifreq is plain data; zeroed is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(name) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: the ioctls read and write `ifr`, a properly sized ifreq that outlives them.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
