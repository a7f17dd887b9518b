//! Named network namespaces through iproute2: running `ip`, entering a namespace, and
//! removing namespaces together with whatever still runs in them.

use std::ffi::OsStr;
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// Where `ip netns add` binds a namespace, and what `nsenter --net=` opens.
pub fn path(ns: &str) -> String {
    format!("/run/netns/{ns}")
}

/// A command that runs `program` inside namespace `ns`. It goes through `nsenter`, which
/// execs `program` in place (the child's pid is the program's), and leaves the mounts
/// alone: `ip netns exec` remounts /sys, which hides /sys/fs/cgroup from a daemon.
pub fn command(ns: &str, program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net={}", path(ns)))
        .arg("--")
        .arg(program);
    cmd
}

/// `cmd`'s program, arguments, environment and directory, run inside `ns` by
/// [`command`]. (An `env_clear` on `cmd` is not visible through `Command`'s getters and is
/// lost; stdio is `Command::output`'s.)
pub fn wrap(ns: &str, cmd: &Command) -> Command {
    let mut wrapped = command(ns, cmd.get_program());
    wrapped.args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => wrapped.env(k, v),
            None => wrapped.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        wrapped.current_dir(dir);
    }
    wrapped
}

/// Runs `cmd` with `input` on its stdin, failing unless it succeeds; returns stdout.
pub fn run(cmd: &mut Command, input: &str) -> anyhow::Result<String> {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    check(&what, input, out)
}

fn check(what: &str, input: &str, out: Output) -> anyhow::Result<String> {
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}{}{input}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            if input.is_empty() { "" } else { "\ninput:\n" },
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `ip` with `args`; returns its stdout.
pub fn ip(args: &[&str]) -> anyhow::Result<String> {
    run(Command::new("ip").args(args), "")
}

/// Runs `ip -n ns -batch -` over `lines`, one `ip` command (without the `ip`) a line.
pub fn ip_batch(ns: &str, lines: &[String]) -> anyhow::Result<()> {
    run(
        Command::new("ip").args(["-n", ns, "-batch", "-"]),
        &lines.join("\n"),
    )
    .map(drop)
}

/// The names `ip netns list` shows.
pub fn list() -> anyhow::Result<Vec<String>> {
    // A line is `name` or `name (id: N)`.
    Ok(ip(&["netns", "list"])?
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect())
}

/// Kills every process inside `ns` (SIGKILL), waits for them to go, then deletes `ns`.
/// Without the kill, `ip netns del` would only unbind the name while the namespace, its
/// veths and its processes lived on.
pub fn remove(ns: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // A zombie has no namespace left, so it is not listed: a killed child of this
        // process does not keep the loop waiting for a `wait` that belongs to its owner.
        let pids: Vec<i32> = ip(&["netns", "pids", ns])?
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if pids.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            bail!("processes {pids:?} in netns {ns} survived SIGKILL for 10 s");
        }
        for pid in pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    ip(&["netns", "del", ns]).map(drop)
}

/// Runs `f` on a new thread that has entered namespace `ns`. A socket `f` creates stays
/// in `ns` for its whole life, whichever thread uses it later.
pub fn within<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let file = std::fs::File::open(path(ns)).with_context(|| format!("opening {}", path(ns)))?;
    let ns = ns.to_string();
    std::thread::spawn(move || {
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
            .with_context(|| format!("setns into {ns}"))?;
        f()
    })
    .join()
    .map_err(|_| anyhow::anyhow!("a thread inside netns panicked"))?
}
