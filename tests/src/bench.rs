//! What the benchmarks in `tests/benches` share: an engine's CLI, the Engine API over a
//! unix socket, cleanup of what a run leaves behind, and the statistics of the tables.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::{covey_bin, Daemon};

/// A CLI bound to one daemon's socket (covey's or docker's); cheap to clone into threads.
#[derive(Clone)]
pub struct Cli {
    pub program: PathBuf,
    /// The `-H` argument: `unix:///…/x.sock`.
    pub host: String,
    pub env: Vec<(String, PathBuf)>,
}

impl Cli {
    /// The covey CLI against `daemon`.
    pub fn covey(daemon: &Daemon) -> Cli {
        Cli {
            program: covey_bin(),
            host: daemon.host(),
            env: Vec::new(),
        }
    }

    pub fn run(&self, args: &[&str]) -> anyhow::Result<Output> {
        Command::new(&self.program)
            .arg("-H")
            .arg(&self.host)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {}", self.program.display()))
    }

    pub fn timed(&self, args: &[&str]) -> anyhow::Result<(Duration, Output)> {
        let t0 = Instant::now();
        let out = self.run(args)?;
        Ok((t0.elapsed(), out))
    }

    /// Stdout of a call that must succeed.
    pub fn ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.run(args)?;
        ensure!(
            out.status.success(),
            "{} {}: {}",
            self.program.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// A benchmark setting from the environment: a whole number, or `default` when unset.
pub fn env_u64(name: &str, default: u64) -> anyhow::Result<u64> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .with_context(|| format!("{name}={v:?}: a whole number expected")),
        Err(_) => Ok(default),
    }
}

pub fn stderr_line(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

/// `GET path` on the Engine API at unix socket `socket`, one connection per request (as
/// the CLIs do): the status and the body. Served alike by dockerd and covey, so a poll
/// costs both engines the same on the client's side.
pub fn api_get(socket: &Path, path: &str) -> anyhow::Result<(u16, Vec<u8>)> {
    let mut s = UnixStream::connect(socket)
        .with_context(|| format!("connecting to {}", socket.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .with_context(|| format!("reading the answer to GET {path}"))?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("an HTTP answer without a header end")?;
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("an HTTP answer without a status: {head:?}"))?;
    let body = &raw[split + 4..];
    let chunked = head
        .lines()
        .any(|l| l.starts_with("transfer-encoding:") && l.contains("chunked"));
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Ok((status, body))
}

/// The body of a chunked transfer encoding (Go's server uses it for larger answers).
fn dechunk(mut rest: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("a chunk without a size line")?;
        let size = std::str::from_utf8(&rest[..eol])?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .with_context(|| format!("chunk size {size:?}"))?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        ensure!(rest.len() >= size + 2, "a chunk cut short");
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// `s` for a URL's query: everything but the unreserved characters percent-encoded.
pub fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A directory removed (with whatever is mounted below it) on drop.
pub struct RemoveOnDrop(pub PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        remove_tree(&self.0);
    }
}

/// SIGKILLs every process in namespace `ns` until none is left (10 s at most).
pub fn kill_netns(ns: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() else {
            return;
        };
        let pids: Vec<i32> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if pids.is_empty() {
            return;
        }
        for pid in pids {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Unmounts everything at or below `dir` (deepest first, repeatedly, for stacked
/// mounts), then removes it.
pub fn remove_tree(dir: &Path) {
    for _ in 0..10 {
        let mut mounts: Vec<PathBuf> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .map(|m| PathBuf::from(m.replace("\\040", " ")))
            .filter(|m| m.starts_with(dir))
            .collect();
        if mounts.is_empty() {
            break;
        }
        mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
        for m in mounts {
            if let Err(e) = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH) {
                eprintln!("unmounting {}: {e}", m.display());
            }
        }
    }
    if let Err(e) = std::fs::remove_dir_all(dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            eprintln!("removing {}: {e}", dir.display());
        }
    }
}

/// Removes the data roots an interrupted run's covey daemons left (a finished run's are
/// removed by their `TempDir`s).
pub fn sweep_covey_dirs(prefix: &str) {
    let tmp = std::env::temp_dir();
    let ours = format!("covey-{prefix}-node-");
    for e in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
        if e.file_name().to_string_lossy().starts_with(&ours) {
            remove_tree(&e.path());
        }
    }
}

/// The last lines of a log file, named.
pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(15)..].join("\n");
    format!("{}:\n{tail}", path.display())
}

/// The 1, 5 and 15 minute load averages: other work on a small machine skews every
/// figure, so a table says how busy it was.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

pub fn sorted(v: &[f64]) -> Vec<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

pub fn median(v: &[f64]) -> Option<f64> {
    let v = sorted(v);
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[n / 2]),
        n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_joined() {
        let body = dechunk(b"4\r\n[1,2\r\n2;x=y\r\n,3\r\n1\r\n]\r\n0\r\n\r\n").unwrap();
        assert_eq!(body, b"[1,2,3]");
        assert!(dechunk(b"9\r\nshort\r\n").is_err());
    }

    #[test]
    fn queries_are_escaped_and_medians_taken() {
        assert_eq!(url_escape(r#"{"a":1}"#), "%7B%22a%22%3A1%7D");
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }
}
