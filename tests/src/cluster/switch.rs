//! The userspace switch behind [`Net::set_delay`](super::Net::set_delay).
//!
//! Its ports are veths in the switch namespace, taken off the bridge. A thread that has
//! entered that namespace opens one AF_PACKET socket per port; the sockets stay bound
//! there. One thread per port reads frames and queues each with the instant it is due
//! (arrival plus the delay); one forwarding thread sends each frame when due: to the port
//! its destination MAC was last seen behind, or to every other port for a group or
//! unknown destination, as a learning bridge does. A frame is held once, one way.
//!
//! The ports' offloads must be off (`Net::set_delay` sees to it): with them on, a frame
//! read here can be a 64 KiB GSO super-frame, which `send` refuses, or carry a checksum
//! left for the hardware to fill in, which the receiving node then drops.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::errno::Errno;
use nix::libc;
use nix::sys::socket::{
    bind, recvfrom, send, setsockopt, socket, sockopt, AddressFamily, LinkAddr, MsgFlags, SockFlag,
    SockType, SockaddrLike,
};
use nix::sys::time::{TimeVal, TimeValLike};

/// How often a waiting thread checks whether the switch is stopping.
const POLL: Duration = Duration::from_millis(50);

/// A running switch; its threads stop, and its sockets close, on drop.
pub struct Switch {
    /// The one-way delay in nanoseconds, read for every frame as it arrives, so a new
    /// delay applies at once.
    delay: Arc<AtomicU64>,
    /// Set on drop; every thread checks it at least every `POLL`.
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

/// A frame read from `port`, to be forwarded at `due`.
struct Frame {
    port: usize,
    due: Instant,
    data: Vec<u8>,
}

impl Switch {
    /// Switches frames between `ports`, interfaces in namespace `ns`, holding each for
    /// `delay`.
    pub fn start(ns: &str, ports: &[String], delay: Duration) -> anyhow::Result<Self> {
        let names = ports.to_vec();
        let socks: Arc<[OwnedFd]> = super::netns::within(ns, move || {
            names
                .iter()
                .map(|n| open(n))
                .collect::<anyhow::Result<Vec<_>>>()
        })?
        .into();
        let mut switch = Self {
            delay: Arc::new(AtomicU64::new(nanos(delay))),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
        };
        let (tx, rx) = mpsc::channel();
        for port in 0..socks.len() {
            let (socks, delay, stop, tx) = (
                socks.clone(),
                switch.delay.clone(),
                switch.stop.clone(),
                tx.clone(),
            );
            switch.threads.push(
                std::thread::Builder::new()
                    .name(format!("switch-port-{port}"))
                    .spawn(move || receive(&socks[port], port, &delay, &stop, &tx))?,
            );
        }
        drop(tx);
        let stop = switch.stop.clone();
        switch.threads.push(
            std::thread::Builder::new()
                .name("switch-forward".into())
                .spawn(move || forward(&socks, &rx, &stop))?,
        );
        Ok(switch)
    }

    pub fn set_delay(&self, delay: Duration) {
        self.delay.store(nanos(delay), Ordering::Relaxed);
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// An AF_PACKET socket on interface `name` of the current thread's namespace, reading
/// every frame and timing out every `POLL`.
fn open(name: &str) -> anyhow::Result<OwnedFd> {
    let index = nix::net::if_::if_nametoindex(name).with_context(|| format!("no port {name}"))?;
    // Protocol 0 queues nothing until `bind` names the port and the protocol, so no frame
    // from another interface slips in between.
    let sock = socket(
        AddressFamily::Packet,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .context("opening an AF_PACKET socket")?;
    // SAFETY: sockaddr_ll is plain old data, for which all zeroes is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    sll.sll_ifindex = i32::try_from(index)?;
    let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: the pointer is to a live sockaddr_ll of exactly `len` bytes.
    let addr = unsafe { LinkAddr::from_raw(std::ptr::addr_of!(sll).cast(), Some(len)) }
        .context("building a sockaddr_ll")?;
    bind(sock.as_raw_fd(), &addr).with_context(|| format!("binding to port {name}"))?;
    setsockopt(
        &sock,
        sockopt::ReceiveTimeout,
        &TimeVal::milliseconds(POLL.as_millis() as i64),
    )?;
    Ok(sock)
}

/// Reads frames arriving on `sock` and queues them, due after the current delay.
fn receive(
    sock: &OwnedFd,
    port: usize,
    delay: &AtomicU64,
    stop: &AtomicBool,
    queue: &Sender<Frame>,
) {
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        match recvfrom::<LinkAddr>(sock.as_raw_fd(), &mut buf) {
            Ok((len, from)) => {
                // The socket also sees what the switch itself sends out of this port.
                let outgoing = from.is_some_and(|a| a.pkttype() == libc::PACKET_OUTGOING);
                if outgoing || len < 14 {
                    continue;
                }
                let due = Instant::now() + Duration::from_nanos(delay.load(Ordering::Relaxed));
                let frame = Frame {
                    port,
                    due,
                    data: buf[..len].to_vec(),
                };
                if queue.send(frame).is_err() {
                    return;
                }
            }
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(e) => {
                eprintln!("covey-tests switch: reading port {port}: {e}");
                return;
            }
        }
    }
}

/// Sends each queued frame when due, learning where each source MAC sits.
fn forward(socks: &[OwnedFd], queue: &Receiver<Frame>, stop: &AtomicBool) {
    let mut table: HashMap<[u8; 6], usize> = HashMap::new();
    while !stop.load(Ordering::Relaxed) {
        let frame = match queue.recv_timeout(POLL) {
            Ok(frame) => frame,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        loop {
            let now = Instant::now();
            if now >= frame.due {
                break;
            }
            if stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep((frame.due - now).min(POLL));
        }
        let mac = |at: usize| -> [u8; 6] {
            let mut m = [0; 6];
            m.copy_from_slice(&frame.data[at..at + 6]);
            m
        };
        let (dst, src) = (mac(0), mac(6));
        // The low bit of the first octet marks a group (broadcast or multicast) address.
        if src[0] & 1 == 0 {
            table.insert(src, frame.port);
        }
        let known = table.get(&dst).copied().filter(|_| dst[0] & 1 == 0);
        for (port, sock) in socks.iter().enumerate() {
            if port == frame.port || known.is_some_and(|k| k != port) {
                continue;
            }
            if let Err(e) = send(sock.as_raw_fd(), &frame.data, MsgFlags::empty()) {
                eprintln!(
                    "covey-tests switch: sending {} bytes from port {} to port {port}: {e}",
                    frame.data.len(),
                    frame.port
                );
            }
        }
    }
}
