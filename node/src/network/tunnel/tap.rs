//! A TAP device: the overlay bridge's port to the QUIC data path. Ethernet frames the
//! bridge sends out of it are read here, and frames from peers are written into it.
//!
//! Not persistent: the device lives as long as its descriptor, so a daemon that goes takes
//! its TAP devices with it, and the next one makes them afresh.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::sched::{setns, CloneFlags};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::network::Error;

nix::ioctl_write_ptr_bad!(tun_set_iff, libc::TUNSETIFF, libc::ifreq);

pub struct Tap {
    fd: AsyncFd<OwnedFd>,
}

impl Tap {
    /// Makes TAP device `name` in the namespace at `ns`. The descriptor is opened from a
    /// thread that entered the namespace and then ends: the device belongs to the
    /// namespace it was made in.
    pub async fn create_in(ns: &Path, name: &str) -> Result<Tap, Error> {
        if name.len() >= libc::IFNAMSIZ {
            return Err(Error::Io(format!("interface name {name} is too long")));
        }
        let (ns, name) = (ns.to_path_buf(), name.to_string());
        let fd = std::thread::spawn(move || -> Result<OwnedFd, Error> {
            let file = std::fs::File::open(&ns)
                .map_err(|e| Error::Io(format!("opening {}: {e}", ns.display())))?;
            setns(&file, CloneFlags::CLONE_NEWNET)
                .map_err(|e| Error::Io(format!("entering {}: {e}", ns.display())))?;
            open_tap(&name).map_err(|e| Error::Io(format!("making TAP device {name}: {e}")))
        })
        .join()
        .map_err(|_| Error::Io("the TAP thread panicked".into()))??;
        // SAFETY: the OwnedFd stays inside the AsyncFd, open, until both are dropped.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(|e| Error::Io(format!("polling a TAP device: {e}")))?;
        Ok(Tap { fd })
    }

    /// The next frame the bridge sends out of the device, into `buf`: its length.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut ready = self.fd.readable().await?;
            match ready.try_io(|fd| {
                let n = nix::unistd::read(fd.get_ref().as_raw_fd(), buf)?;
                Ok(n)
            }) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    /// Hands `frame` to the bridge. A full queue drops it, as a busy switch port would:
    /// the overlay's own transport (TCP) recovers, and the sender never waits.
    pub fn send(&self, frame: &[u8]) {
        if let Err(e) = nix::unistd::write(self.fd.get_ref(), frame) {
            if e != nix::errno::Errno::EAGAIN {
                tracing::debug!("writing a frame to a TAP device: {e}");
            }
        }
    }
}

/// Opens /dev/net/tun as TAP device `name`, without packet information, non-blocking.
fn open_tap(name: &str) -> io::Result<OwnedFd> {
    let raw = nix::fcntl::open(
        "/dev/net/tun",
        nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    // SAFETY: `open` just returned this descriptor, and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    req.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: `req` is a valid ifreq that lives across the call; TUNSETIFF reads it.
    unsafe { tun_set_iff(fd.as_raw_fd(), &req) }?;
    Ok(fd)
}
