//! Container logs: stdout and stderr read from the container's pipes into
//! `container.log`, one JSON object a line (`log`, `stream`, `time`) as Docker's json-file
//! driver, rotated by size to `container.log.1`. Buffered and flushed, never synced per
//! line: these devices write to SD cards. Live output also goes to attached clients.

use std::io::{BufRead, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio::sync::broadcast;

/// A line longer than this is written in pieces, as Docker does at 16 kB.
const MAX_LINE: usize = 16 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// What attached clients receive.
#[derive(Clone, Debug)]
pub enum Output {
    Data(Stream, Bytes),
    /// Both streams reached their end: the run is over.
    End,
}

#[derive(Serialize, Deserialize)]
pub struct Entry {
    pub log: String,
    pub stream: Stream,
    pub time: String,
}

/// The log file of one container, shared by its two pumps.
pub struct LogFile {
    path: PathBuf,
    max_bytes: u64,
    /// The open file, shared by a container's two pumps.
    out: Mutex<Option<std::io::BufWriter<std::fs::File>>>,
}

impl LogFile {
    /// Rotated past `max_bytes` (the board's flash setting); one older file is kept.
    pub fn with_limit(dir: &Path, max_bytes: u64) -> Self {
        Self {
            path: dir.join("container.log"),
            max_bytes,
            out: Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write(&self, stream: Stream, line: &[u8]) {
        let entry = Entry {
            log: String::from_utf8_lossy(line).into_owned(),
            stream,
            time: humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string(),
        };
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let result = (|| -> std::io::Result<()> {
            if out.is_none() {
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?;
                *out = Some(std::io::BufWriter::new(f));
            }
            if let Some(w) = out.as_mut() {
                serde_json::to_writer(&mut *w, &entry)?;
                w.write_all(b"\n")?;
                w.flush()?;
                if w.get_ref().metadata()?.len() > self.max_bytes {
                    *out = None;
                    std::fs::rename(&self.path, self.path.with_extension("log.1"))?;
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            tracing::warn!(path = %self.path.display(), "writing the container log: {e}");
        }
    }
}

/// Reads one of a container's pipes to its end, line by line into the log and live to
/// `live`. Returns when the container (and everything holding its pipe) is done.
pub async fn pump(fd: OwnedFd, stream: Stream, log: Arc<LogFile>, live: broadcast::Sender<Output>) {
    let mut pipe = match reader(fd) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("container output: {e}");
            return;
        }
    };
    let mut buf = vec![0u8; 8192];
    let mut line: Vec<u8> = Vec::new();
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let _ = live.send(Output::Data(stream, Bytes::copy_from_slice(&buf[..n])));
        let mut done = Vec::new();
        for &b in &buf[..n] {
            line.push(b);
            if b == b'\n' || line.len() >= MAX_LINE {
                done.push(std::mem::take(&mut line));
            }
        }
        if !done.is_empty() {
            write_lines(&log, stream, done).await;
        }
    }
    if !line.is_empty() {
        write_lines(&log, stream, vec![line]).await;
    }
}

/// Reads one of an exec's pipes (or its pty's master) to its end, live to `live` only
/// (exec output is not logged).
pub async fn relay(fd: OwnedFd, stream: Stream, live: broadcast::Sender<Output>) {
    // Through `reader`: tokio's checked `from_owned_fd` refuses a pty master (no FIFO), and
    // a relay that ended at once dropped a terminal exec's output unread.
    let mut pipe = match reader(fd) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("exec output: {e}");
            return;
        }
    };
    let mut buf = vec![0u8; 8192];
    while let Ok(n) = pipe.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let _ = live.send(Output::Data(stream, Bytes::copy_from_slice(&buf[..n])));
    }
}

/// An async reader of a pipe or a pty master (a pty is no FIFO, which tokio's pipe type
/// checks for; it polls like one). A pty master reads EIO once the container's side is
/// closed, which ends the reading as end of file does.
pub fn reader(fd: OwnedFd) -> std::io::Result<tokio::net::unix::pipe::Receiver> {
    set_nonblocking(&fd)?;
    tokio::net::unix::pipe::Receiver::from_owned_fd_unchecked(fd)
}

/// The writing side of the same: a stdin pipe or a pty master.
pub fn writer(fd: OwnedFd) -> std::io::Result<tokio::net::unix::pipe::Sender> {
    set_nonblocking(&fd)?;
    tokio::net::unix::pipe::Sender::from_owned_fd_unchecked(fd)
}

fn set_nonblocking(fd: &OwnedFd) -> std::io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = OFlag::from_bits_truncate(fcntl(
        std::os::fd::AsRawFd::as_raw_fd(fd),
        FcntlArg::F_GETFL,
    )?);
    fcntl(
        std::os::fd::AsRawFd::as_raw_fd(fd),
        FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK),
    )?;
    Ok(())
}

/// One blocking write per read from the pipe, not per line.
async fn write_lines(log: &Arc<LogFile>, stream: Stream, lines: Vec<Vec<u8>>) {
    let f = log.clone();
    let _ = tokio::task::spawn_blocking(move || {
        for l in lines {
            f.write(stream, &l);
        }
    })
    .await;
}

/// Options of `docker logs`.
#[derive(Clone, Debug, Default)]
pub struct ReadOptions {
    pub stdout: bool,
    pub stderr: bool,
    pub timestamps: bool,
    /// Only the last N lines; `None` for all.
    pub tail: Option<usize>,
}

/// The entries of a container's log files, oldest first, filtered and tailed.
pub fn read(path: &Path, opts: &ReadOptions) -> Vec<(Stream, String)> {
    let mut entries = Vec::new();
    for p in [path.with_extension("log.1"), path.to_path_buf()] {
        let Ok(f) = std::fs::File::open(&p) else {
            continue;
        };
        for line in std::io::BufReader::new(f).lines().map_while(Result::ok) {
            if let Ok(e) = serde_json::from_str::<Entry>(&line) {
                entries.push(e);
            }
        }
    }
    let wanted =
        |s: Stream| (s == Stream::Stdout && opts.stdout) || (s == Stream::Stderr && opts.stderr);
    let mut out: Vec<(Stream, String)> = entries
        .into_iter()
        .filter(|e| wanted(e.stream))
        .map(|e| {
            (
                e.stream,
                if opts.timestamps {
                    format!("{} {}", e.time, e.log)
                } else {
                    e.log
                },
            )
        })
        .collect();
    if let Some(n) = opts.tail {
        let skip = out.len().saturating_sub(n);
        out.drain(..skip);
    }
    out
}

/// Docker's multiplexed stream frame: stream byte, three zeros, big-endian length.
pub fn frame(stream: Stream, data: &[u8]) -> Bytes {
    let mut v = Vec::with_capacity(8 + data.len());
    v.push(match stream {
        Stream::Stdout => 1,
        Stream::Stderr => 2,
    });
    v.extend_from_slice(&[0, 0, 0]);
    v.extend_from_slice(&(data.len() as u32).to_be_bytes());
    v.extend_from_slice(data);
    Bytes::from(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_reads_across_files() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogFile::with_limit(dir.path(), 4096);
        for i in 0..200 {
            log.write(
                if i % 2 == 0 {
                    Stream::Stdout
                } else {
                    Stream::Stderr
                },
                format!("line {i}\n").as_bytes(),
            );
        }
        let current = std::fs::metadata(dir.path().join("container.log"))
            .unwrap()
            .len();
        let older = std::fs::metadata(dir.path().join("container.log.1"))
            .unwrap()
            .len();
        assert!(
            current <= 4096 + 200 && older <= 4096 + 200,
            "{current} {older}"
        );
        let all = read(
            log.path(),
            &ReadOptions {
                stdout: true,
                stderr: true,
                ..Default::default()
            },
        );
        // Only one older file is kept: the newest lines survive, in order.
        let n: Vec<u32> = all
            .iter()
            .filter_map(|(_, l)| l.trim().strip_prefix("line ")?.parse().ok())
            .collect();
        assert_eq!(n.last(), Some(&199));
        assert!(n.windows(2).all(|w| w[1] == w[0] + 1));
        let tail = read(
            log.path(),
            &ReadOptions {
                stdout: true,
                stderr: false,
                tail: Some(2),
                ..Default::default()
            },
        );
        assert_eq!(
            tail.iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>(),
            vec!["line 196\n", "line 198\n"]
        );
        assert_eq!(
            frame(Stream::Stderr, b"ab")[..],
            [2, 0, 0, 0, 0, 0, 0, 2, b'a', b'b']
        );
    }
}
