//! An attached run on a hijacked connection, as `docker run -it` and `docker exec -it`
//! have it: the run's output to this process's stdout and stderr (raw with a terminal,
//! else in Docker's multiplexed frames), this process's stdin to the run (`-i`), and with
//! a terminal (`-t`) the local terminal in raw mode and its size passed on.

use std::io::{Read, Write};
use std::os::fd::AsFd;

use anyhow::Context;
use hyper::Method;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::client::Client;

pub struct Session {
    /// The run has a terminal: its output is raw, not multiplexed.
    pub tty: bool,
    /// Send this process's stdin to the run.
    pub stdin: bool,
    /// Where the terminal's size goes (`/exec/<id>/resize`), with a terminal.
    pub resize: Option<String>,
}

impl Session {
    /// Runs the session until the run's output ends.
    pub async fn run(
        self,
        client: &Client,
        stream: impl AsyncRead + AsyncWrite + Send + 'static,
    ) -> anyhow::Result<()> {
        let (rd, mut wr) = tokio::io::split(stream);
        // Raw mode only when both ends are terminals: keys then go to the run as typed
        // (^C included, which the run's terminal turns into SIGINT), and echo comes from
        // the run's terminal, not this one.
        let _raw = if self.tty && self.stdin {
            RawMode::enter()
        } else {
            None
        };
        if let Some(path) = &self.resize {
            resize(client, path).await;
            watch_size(client.clone(), path.clone());
        }
        if self.stdin {
            tokio::spawn(async move {
                let mut input = stdin_chunks();
                while let Some(chunk) = input.recv().await {
                    if wr.write_all(&chunk).await.is_err() || wr.flush().await.is_err() {
                        return;
                    }
                }
                // End of input: half-close, so the run's stdin sees end of file (without
                // a terminal) while its output still comes.
                let _ = wr.shutdown().await;
            });
        }
        if self.tty {
            copy_raw(rd).await
        } else {
            demux(rd).await
        }
    }
}

/// This process's stdin in chunks, read on a thread of its own: a blocking read in the
/// async runtime would hold its shutdown until the next key press.
fn stdin_chunks() -> tokio::sync::mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 4096];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

async fn copy_raw(mut rd: impl AsyncRead + Unpin) -> anyhow::Result<()> {
    let mut buf = vec![0u8; 8192];
    loop {
        let n = rd
            .read(&mut buf)
            .await
            .context("reading the run's output")?;
        if n == 0 {
            return Ok(());
        }
        let mut out = std::io::stdout().lock();
        out.write_all(&buf[..n])?;
        out.flush()?;
    }
}

/// Docker's multiplexed frames to this process's stdout and stderr.
pub async fn demux(r: impl AsyncRead + Unpin) -> anyhow::Result<()> {
    demux_with(r, |data| data.to_vec()).await
}

/// As [`demux`], each frame's bytes passed through `rewrite` first.
pub async fn demux_with(
    mut r: impl AsyncRead + Unpin,
    rewrite: impl Fn(&[u8]) -> Vec<u8>,
) -> anyhow::Result<()> {
    let mut header = [0u8; 8];
    loop {
        match r.read_exact(&mut header).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e).context("reading the container's output"),
        }
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let mut data = vec![0u8; len.min(1 << 20)];
        r.read_exact(&mut data)
            .await
            .context("reading the container's output")?;
        let data = rewrite(&data);
        let written = if header[0] == 2 {
            std::io::stderr().write_all(&data)
        } else {
            let mut out = std::io::stdout().lock();
            out.write_all(&data).and_then(|()| out.flush())
        };
        match written {
            // The reader went (`| head`): that is the end, not an error.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            other => other?,
        }
    }
}

/// An answer's body in Docker's multiplexed frames (`logs` of a container or a service)
/// to this process's stdout and stderr.
pub async fn demux_response(resp: hyper::Response<hyper::body::Incoming>) -> anyhow::Result<()> {
    demux_response_with(resp, |data| data.to_vec()).await
}

/// As [`demux_response`], each frame's bytes passed through `rewrite` first.
pub async fn demux_response_with(
    resp: hyper::Response<hyper::body::Incoming>,
    rewrite: impl Fn(&[u8]) -> Vec<u8>,
) -> anyhow::Result<()> {
    let body = http_body_util::BodyStream::new(resp.into_body());
    demux_with(
        tokio_util::io::StreamReader::new(futures_util::TryStreamExt::map_ok(
            futures_util::TryStreamExt::map_err(body, std::io::Error::other),
            |f: hyper::body::Frame<bytes::Bytes>| f.into_data().unwrap_or_default(),
        )),
        rewrite,
    )
    .await
}

/// The local terminal's size (rows, columns), if stdout or stdin is one.
pub fn size() -> Option<(u16, u16)> {
    let ws_of = |fd: std::os::fd::BorrowedFd<'_>| {
        let mut ws = nix::libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ writes a winsize into the one given, which outlives the call.
        let r = unsafe {
            nix::libc::ioctl(
                std::os::fd::AsRawFd::as_raw_fd(&fd),
                nix::libc::TIOCGWINSZ,
                &mut ws,
            )
        };
        (r == 0 && ws.ws_row > 0).then_some((ws.ws_row, ws.ws_col))
    };
    ws_of(std::io::stdout().as_fd()).or_else(|| ws_of(std::io::stdin().as_fd()))
}

async fn resize(client: &Client, path: &str) {
    if let Some((h, w)) = size() {
        // A terminal left at the daemon's default size is a nuisance, not a failure.
        if let Err(e) = client
            .send(
                Method::POST,
                &format!("{path}?h={h}&w={w}"),
                Client::empty(),
            )
            .await
        {
            tracing::debug!("resizing the run's terminal: {e:#}");
        }
    }
}

/// Passes on every change of the local terminal's size (SIGWINCH).
fn watch_size(client: Client, path: String) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut winch) = signal(SignalKind::window_change()) else {
        return;
    };
    tokio::spawn(async move {
        while winch.recv().await.is_some() {
            resize(&client, &path).await;
        }
    });
}

/// The local terminal in raw mode, restored on drop.
struct RawMode {
    saved: nix::sys::termios::Termios,
}

impl RawMode {
    /// `None` if stdin is no terminal.
    fn enter() -> Option<Self> {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        let stdin = std::io::stdin();
        let saved = tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).ok()?;
        Some(Self { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        use nix::sys::termios::{tcsetattr, SetArg};
        let _ = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
    }
}
