//! Containers through the daemon, with the stock docker CLI and the covey CLI: run, ps,
//! logs, stop, rm; exit codes; limits in the cgroup; bad input; nothing left behind;
//! containers that outlive a daemon restart.

use std::path::Path;
use std::process::Output;

use covey_tests::{fixtures, stderr, stdout, Daemon};

fn node(prefix: &str) -> Daemon {
    let node = Daemon::start(prefix, &[]).unwrap();
    let saved = fixtures().join("busybox-save.tar");
    node.covey_ok(&["image", "load", "-i", saved.to_str().unwrap()]);
    node
}

fn ok(node: &Daemon, o: Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}\n{}\ndaemon log:\n{}",
        stdout(&o),
        stderr(&o),
        node.log()
    );
    stdout(&o)
}

/// No cgroup, mount or process of container `id` is left.
fn nothing_left(id: &str, pid: Option<i32>) {
    assert!(
        !Path::new(&format!("/sys/fs/cgroup/memory/covey/{id}")).exists(),
        "cgroup left for {id}"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&format!("/snapshots/{id}/")),
        "mount left for {id}"
    );
    if let Some(pid) = pid {
        // Gone, not even a zombie: its parent, the runtime helper, reaped it.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(stat.is_empty(), "process {pid} left: {stat}");
    }
}

fn inspect(node: &Daemon, name: &str) -> serde_json::Value {
    let v: serde_json::Value =
        serde_json::from_str(&node.covey_ok(&["container", "inspect", name])).unwrap();
    v[0].clone()
}

#[test]
fn docker_run_prints_output_and_passes_on_the_exit_code() {
    let node = node("run");
    let o = node.docker(&[
        "run",
        "--rm",
        "covey-test/saved",
        "sh",
        "-c",
        "echo hello; echo oops >&2; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}\n{}", stderr(&o), node.log());
    assert_eq!(stdout(&o), "hello\n");
    assert!(stderr(&o).contains("oops"));
    assert_eq!(
        ok(&node, node.docker(&["ps", "-aq"])).trim(),
        "",
        "--rm left the container"
    );

    let o = node.docker(&["run", "covey-test/saved", "true"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(ok(&node, node.docker(&["ps", "-aq"])).lines().count(), 1);
}

#[test]
fn detached_containers_list_log_stop_and_go() {
    let node = node("detached");
    let id = ok(
        &node,
        node.docker(&[
            "run",
            "-d",
            "--name",
            "ticker",
            "covey-test/saved",
            "sh",
            "-c",
            "while true; do echo tick; sleep 0.1; done",
        ]),
    );
    let id = id.trim();
    assert_eq!(id.len(), 64);
    let ps = ok(
        &node,
        node.docker(&["ps", "--format", "{{.Names}} {{.Status}}"]),
    );
    assert!(ps.starts_with("ticker Up"), "{ps}");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let logs = ok(&node, node.docker(&["logs", "ticker"]));
    assert!(
        logs.lines().count() >= 2 && logs.lines().all(|l| l == "tick"),
        "{logs}"
    );
    let pid = inspect(&node, "ticker")["State"]["Pid"]
        .as_i64()
        .map(|p| p as i32);
    ok(&node, node.docker(&["stop", "-t", "1", "ticker"]));
    let ps = ok(
        &node,
        node.docker(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]),
    );
    assert!(ps.starts_with("ticker Exited (137)"), "{ps}");
    // Running containers are not removed without force.
    let sleeper = ok(
        &node,
        node.docker(&["run", "-d", "covey-test/saved", "sleep", "60"]),
    );
    let o = node.docker(&["rm", sleeper.trim()]);
    assert!(
        !o.status.success() && stderr(&o).contains("cannot remove a running container"),
        "{}",
        stderr(&o)
    );
    ok(&node, node.docker(&["rm", "-f", sleeper.trim()]));
    ok(&node, node.docker(&["rm", "ticker"]));
    assert_eq!(ok(&node, node.docker(&["ps", "-aq"])).trim(), "");
    nothing_left(id, pid);
    nothing_left(sleeper.trim(), None);
}

#[test]
fn covey_cli_applies_env_user_and_limits() {
    let node = node("covey-cli");
    let out = node.covey(&[
        "container",
        "run",
        "--rm",
        "-e",
        "GREETING=hi",
        "-u",
        "nobody",
        "-w",
        "/tmp",
        "covey-test/saved",
        "sh",
        "-c",
        "echo $GREETING $(id -u) $(pwd); exit 5",
    ]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hi 65534 /tmp\n");

    let id = node.covey_ok(&[
        "container",
        "run",
        "-d",
        "--name",
        "limited",
        "-m",
        "64m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "40",
        "covey-test/saved",
        "sleep",
        "60",
    ]);
    let id = id.trim();
    let cg = |p: &str| {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{p}"))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    assert_eq!(
        cg(&format!("memory/covey/{id}/memory.limit_in_bytes")),
        (64u64 << 20).to_string()
    );
    assert_eq!(cg(&format!("cpu/covey/{id}/cpu.cfs_quota_us")), "50000");
    assert_eq!(cg(&format!("pids/covey/{id}/pids.max")), "40");
    node.covey_ok(&["container", "kill", "limited"]);
    assert_eq!(
        node.covey_ok(&["container", "wait", "limited"]).trim(),
        "137"
    );
    node.covey_ok(&["container", "rm", "limited"]);
    nothing_left(id, None);
}

#[test]
fn exec_runs_in_the_container_with_its_environment() {
    let node = node("exec");
    node.covey_ok(&[
        "container",
        "run",
        "-d",
        "--name",
        "box",
        "-e",
        "HELLO=world",
        "covey-test/saved",
        "sleep",
        "120",
    ]);
    // The docker CLI: output, exit code, the container's env and pid namespace.
    let o = node.docker(&[
        "exec",
        "box",
        "sh",
        "-c",
        "echo $HELLO; ps -o pid,comm | grep -c sleep; exit 9",
    ]);
    assert_eq!(o.status.code(), Some(9), "{}\n{}", stderr(&o), node.log());
    assert_eq!(stdout(&o), "world\n1\n");
    let o = node.docker(&[
        "exec",
        "-u",
        "nobody",
        "-w",
        "/tmp",
        "box",
        "sh",
        "-c",
        "echo $(id -u) $(pwd)",
    ]);
    assert_eq!(ok(&node, o), "65534 /tmp\n");
    let o = node.docker(&["exec", "box", "/no/such/thing"]);
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    assert!(stdout(&o).contains("/no/such/thing") || stderr(&o).contains("/no/such/thing"));
    // The covey CLI, the same endpoints.
    let o = node.covey(&[
        "container",
        "exec",
        "-e",
        "EXTRA=1",
        "box",
        "sh",
        "-c",
        "echo $HELLO$EXTRA >&2; exit 4",
    ]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert_eq!(stderr(&o), "world1\n");
    // -i: the client's input to the process's stdin, closed when it ends.
    let o = node.docker_with_input(
        &["exec", "-i", "box", "sh", "-c", "cat; exit 6"],
        b"into exec\n",
    );
    assert_eq!(
        (o.status.code(), stdout(&o).as_str()),
        (Some(6), "into exec\n"),
        "{}",
        stderr(&o)
    );
    node.covey_ok(&["container", "rm", "-f", "box"]);
    let o = node.docker(&["exec", "box", "true"]);
    assert!(stderr(&o).contains("No such container"), "{}", stderr(&o));
}

#[test]
fn mounts_loopback_and_pids_limit_hold() {
    let node = node("mounts");
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("greeting"), "from the host").unwrap();
    let bind = format!("{}:/data:ro", host.path().display());
    let script = "cat /data/greeting; echo; touch /data/x 2>/dev/null || echo data-ro; \
                  grep -c ' /scratch tmpfs' /proc/mounts; touch /rootfile 2>/dev/null || echo root-ro; \
                  echo hi > /scratch/ok && cat /scratch/ok; ip addr show lo | grep -c 'inet 127.0.0.1'";
    let o = node.docker(&[
        "run",
        "--rm",
        "-v",
        &bind,
        "--tmpfs",
        "/scratch:size=1m",
        "--read-only",
        "covey-test/saved",
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(ok(&node, o), "from the host\ndata-ro\n1\nroot-ro\nhi\n1\n");

    // 20 background sleeps: under a limit of 8 pids the shell cannot fork them all (ash
    // gives up with "can't fork"); under 100 it can.
    let script = "for i in $(seq 20); do sleep 1 & done; wait";
    let o = node.docker(&[
        "run",
        "--rm",
        "--pids-limit",
        "8",
        "covey-test/saved",
        "sh",
        "-c",
        script,
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("fork"),
        "the pids limit did not hold: {}",
        stderr(&o)
    );
    let o = node.docker(&[
        "run",
        "--rm",
        "--pids-limit",
        "100",
        "covey-test/saved",
        "sh",
        "-c",
        script,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn interactive_containers_take_stdin_and_a_terminal() {
    let node = node("tty");
    // -i: stdin through a pipe, closed when the client's input ends.
    let o = node.docker_with_input(
        &[
            "run",
            "-i",
            "--rm",
            "covey-test/saved",
            "sh",
            "-c",
            "cat; echo done",
        ],
        b"hello through stdin\n",
    );
    assert_eq!(
        (o.status.code(), stdout(&o).as_str()),
        (Some(0), "hello through stdin\ndone\n"),
        "{}",
        stderr(&o)
    );

    // -it: a terminal, as a person at a keyboard has (script gives the client its pty).
    let mut cmd = std::process::Command::new("script");
    cmd.args([
        "-qec",
        &format!(
            "{} run -it --rm covey-test/saved sh",
            covey_tests::DOCKER_CLI
        ),
        "/dev/null",
    ]);
    let o = node.run_with_input(cmd, b"echo $((6*7)) $(tty)\nexit 3\n");
    assert_eq!(o.status.code(), Some(3), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("42 /dev/pts/0"),
        "no answer from the terminal: {out:?}"
    );
    assert_eq!(ok(&node, node.docker(&["ps", "-aq"])).trim(), "");
}

/// Runs `cmdline` (a shell command line) on a terminal of its own, as a person at a
/// keyboard would (script gives it a pty), with `input` typed into it.
fn in_terminal(node: &Daemon, cmdline: &str, input: &[u8]) -> Output {
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-qec", cmdline, "/dev/null"]);
    node.run_with_input(cmd, input)
}

/// A terminal's output as plain lines: without `\r` (a terminal not in raw mode adds one
/// of its own) and without echoed control characters (`^@`: script passes the end of its
/// input on as one, which the run's terminal echoes wherever it lands).
fn plain(out: &str) -> String {
    let mut s = String::new();
    let mut chars = out.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('\r', _) => {}
            ('^', Some('@'..='_')) => {
                chars.next();
            }
            _ => s.push(c),
        }
    }
    s
}

#[test]
fn exec_with_a_terminal() {
    let node = node("exec-tty");
    node.covey_ok(&[
        "container",
        "run",
        "-d",
        "--name",
        "box",
        "covey-test/saved",
        "sleep",
        "120",
    ]);
    let docker = covey_tests::DOCKER_CLI;
    let covey = format!("{} -H {}", covey_tests::covey_bin().display(), node.host());
    // A command on the exec's own terminal: its output, then its exit code.
    for client in [format!("{docker} exec"), format!("{covey} container exec")] {
        for flags in ["-t", "-it"] {
            let o = in_terminal(
                &node,
                &format!("{client} {flags} box sh -c 'tty; echo hi; exit 7'"),
                b"",
            );
            let out = plain(&stdout(&o));
            assert_eq!(
                o.status.code(),
                Some(7),
                "{client} {flags}: {out:?} {}\n{}",
                stderr(&o),
                node.log()
            );
            assert!(
                out.contains("/dev/pts/0\nhi\n"),
                "{client} {flags}: no output from the terminal: {out:?}"
            );
        }
        // An interactive shell: what is typed reaches it, and the terminal has the
        // client's size.
        let o = in_terminal(
            &node,
            &format!("stty rows 30 cols 100; {client} -it box sh"),
            b"echo $((6*7)) $(tty); stty size\nexit 3\n",
        );
        let out = plain(&stdout(&o));
        assert_eq!(o.status.code(), Some(3), "{client}: {out:?} {}", stderr(&o));
        assert!(
            out.contains("42 /dev/pts/0\n30 100\n"),
            "{client}: no answer from the terminal: {out:?}"
        );
    }
    // The covey CLI's run takes -i and -t as well.
    let o = in_terminal(
        &node,
        &format!("{covey} container run --rm -it covey-test/saved sh"),
        b"echo $((6*7)) $(tty)\nexit 5\n",
    );
    assert_eq!(o.status.code(), Some(5), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("42 /dev/pts/0"), "{}", stdout(&o));
    let o = node.run_with_input(
        {
            let mut c = std::process::Command::new(covey_tests::covey_bin());
            c.args([
                "-H",
                &node.host(),
                "container",
                "run",
                "--rm",
                "-i",
                "covey-test/saved",
                "sh",
                "-c",
            ]);
            c.arg("cat; exit 2");
            c
        },
        b"through stdin\n",
    );
    assert_eq!(
        (o.status.code(), stdout(&o).as_str()),
        (Some(2), "through stdin\n"),
        "{}",
        stderr(&o)
    );
    node.covey_ok(&["container", "rm", "-f", "box"]);
    assert_eq!(node.covey_ok(&["container", "ls", "-aq"]).trim(), "");
}

#[test]
fn memory_limit_kills_and_is_reported() {
    let node = node("oom");
    let o = node.covey(&[
        "container",
        "run",
        "--name",
        "hog",
        "-m",
        "16m",
        "covey-test/saved",
        "sh",
        "-c",
        "x=$(head -c 300000000 /dev/zero | tr '\\0' a); echo survived",
    ]);
    assert_eq!(o.status.code(), Some(137), "{}{}", stdout(&o), stderr(&o));
    assert!(!stdout(&o).contains("survived"));
    let state = &inspect(&node, "hog")["State"];
    assert_eq!(state["OOMKilled"], true, "{state}");
    assert_eq!(state["ExitCode"], 137);
    node.covey_ok(&["container", "rm", "hog"]);
}

#[test]
fn bad_input_is_named() {
    let node = node("bad-run");
    let o = node.docker(&["run", "--rm", "-u", "ghost", "covey-test/saved", "true"]);
    assert!(
        !o.status.success() && stderr(&o).contains("ghost"),
        "{}",
        stderr(&o)
    );
    let o = node.docker(&["run", "--rm", "--privileged", "covey-test/saved", "true"]);
    assert!(
        !o.status.success() && stderr(&o).contains("privileged"),
        "{}",
        stderr(&o)
    );
    let o = node.covey(&[
        "container",
        "run",
        "--rm",
        "covey-test/saved",
        "/no/such/command",
    ]);
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    assert!(stderr(&o).contains("/no/such/command"), "{}", stderr(&o));
    let o = node.docker(&["logs", "nobody-here"]);
    assert!(
        stderr(&o).contains("No such container: nobody-here"),
        "{}",
        stderr(&o)
    );
    let o = node.docker(&["run", "--rm", "no-such-image-here"]);
    assert!(!o.status.success(), "{}", stdout(&o));
    let o = node.covey(&["container", "run", "-m", "lots", "covey-test/saved", "true"]);
    assert!(stderr(&o).contains("invalid size"), "{}", stderr(&o));
}

#[test]
fn containers_outlive_a_daemon_restart() {
    let mut node = node("restart");
    let id = node.covey_ok(&[
        "container",
        "run",
        "-d",
        "--name",
        "survivor",
        "covey-test/saved",
        "sh",
        "-c",
        "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.1; done",
    ]);
    let pid = inspect(&node, "survivor")["State"]["Pid"].as_i64().unwrap() as i32;
    std::thread::sleep(std::time::Duration::from_millis(300));
    node.restart().unwrap();
    // Alive: it kept printing while no daemon read its pipes, which the helper held.
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok(),
        "the container died with the daemon"
    );
    let ps = node.covey_ok(&["container", "ls"]);
    assert!(ps.contains("survivor") && ps.contains("Up"), "{ps}");
    // Its log goes on after the restart, with nothing lost in between.
    let count = || {
        node.covey_ok(&["container", "logs", "survivor"])
            .lines()
            .count()
    };
    let before = count();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let after = count();
    assert!(
        after > before,
        "the log did not grow after the restart ({before} then {after} lines)"
    );
    let logs = node.covey_ok(&["container", "logs", "survivor"]);
    let numbers: Vec<u64> = logs
        .lines()
        .filter_map(|l| l.strip_prefix("tick ")?.parse().ok())
        .collect();
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "lines lost across the restart: {numbers:?}"
    );
    node.covey_ok(&["container", "rm", "-f", "survivor"]);
    assert!(node.covey_ok(&["container", "ls", "-aq"]).trim().is_empty());
    nothing_left(id.trim(), Some(pid));
}

/// Whether process `pid` is a zombie: ended, and nobody has reaped it.
fn zombie(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit(") ").next().and_then(|r| r.chars().next()) == Some('Z')
}

#[test]
fn exit_codes_are_learned_across_daemon_restarts() {
    let mut node = node("exit-codes");
    for crash in [false, true] {
        let how = if crash { "SIGKILL" } else { "SIGTERM" };
        let run = |name: &str, extra: &[&str], script: &str| {
            let mut args = vec!["container", "run", "-d", "--name", name];
            args.extend_from_slice(extra);
            args.extend_from_slice(&["covey-test/saved", "sh", "-c", script]);
            node.covey_ok(&args);
            inspect(&node, name)["State"]["Pid"].as_i64().unwrap() as i32
        };
        // Ends once the daemon is back; ends while it is down (after printing); ends
        // while it is down and asked to be removed.
        let after = run("after", &[], "sleep 4; exit 7");
        let during = run("during", &[], "echo before; sleep 1; echo after; exit 9");
        let gone = run("gone", &["--rm"], "sleep 1; exit 3");
        if crash {
            node.crash();
        } else {
            node.stop();
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
        node.start_again().unwrap();
        // Waited on from before it ends: the real code, with the docker CLI and covey's.
        let o = node.docker(&["wait", "after"]);
        assert_eq!(ok(&node, o).trim(), "7", "{how}");
        assert_eq!(
            node.covey_ok(&["container", "wait", "during"]).trim(),
            "9",
            "{how}"
        );
        let state = &inspect(&node, "after")["State"];
        assert_eq!(
            (state["Status"].as_str(), state["ExitCode"].as_i64()),
            (Some("exited"), Some(7)),
            "{how}: {state}"
        );
        let state = &inspect(&node, "during")["State"];
        assert_eq!(state["ExitCode"], 9, "{how}: {state}");
        assert_eq!(state["Error"], "", "{how}: {state}");
        // What it printed while no daemon read its pipes is in its log.
        let logs = node.covey_ok(&["container", "logs", "during"]);
        assert_eq!(logs, "before\nafter\n", "{how}");
        // Removed on adoption, as it asked.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while node.covey_ok(&["container", "ls", "-a"]).contains("gone") {
            assert!(
                std::time::Instant::now() < deadline,
                "{how}: the --rm container was not removed:\n{}",
                node.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        for pid in [after, during, gone] {
            assert!(!zombie(pid), "{how}: container process {pid} left a zombie");
        }
        node.covey_ok(&["container", "rm", "after", "during"]);
    }
    // The helpers of the daemons before have nothing left to reap, and are gone: only the
    // current daemon's remains.
    let helpers = node.root.path().join("run/helpers");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let left = covey_tests::files_under(&helpers);
        if left.len() == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "earlier helpers left: {left:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn a_dead_helper_leaves_its_containers_to_the_daemon() {
    let node = node("helper-dies");
    node.covey_ok(&[
        "container",
        "run",
        "-d",
        "--name",
        "orphan",
        "covey-test/saved",
        "sh",
        "-c",
        "sleep 2; exit 5",
    ]);
    let pid = inspect(&node, "orphan")["State"]["Pid"].as_i64().unwrap() as i32;
    // The daemon's runtime helper, the container's parent: killed.
    let daemon = std::fs::read_to_string(node.root.path().join("run/covey.pid")).unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let helper: i32 = stat
        .rsplit(") ")
        .next()
        .and_then(|r| r.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
        .unwrap();
    let cmdline = std::fs::read(format!("/proc/{helper}/cmdline")).unwrap();
    assert!(
        String::from_utf8_lossy(&cmdline).contains("runtime-helper"),
        "the container's parent is not the helper"
    );
    let status = std::fs::read_to_string(format!("/proc/{helper}/status")).unwrap();
    assert!(
        status.contains(&format!("PPid:\t{}", daemon.trim())),
        "the helper is not the daemon's child"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(helper),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // The container passes to the daemon, a child subreaper, which reaps it itself.
    assert_eq!(
        node.covey_ok(&["container", "wait", "orphan"]).trim(),
        "5",
        "{}",
        node.log()
    );
    assert!(!zombie(pid), "the container's process was not reaped");
    node.covey_ok(&["container", "rm", "orphan"]);
}

#[test]
fn a_restart_sweeps_what_a_crash_left() {
    let mut node = node("sweep");
    let made = node.covey_ok(&[
        "container",
        "run",
        "-d",
        "--name",
        "victim",
        "covey-test/saved",
        "sleep",
        "60",
    ]);
    let made = made.trim().to_string();
    // A crash between making a container and recording it: the record is gone, its
    // runtime state, cgroup and root filesystem are not.
    node.covey_ok(&["container", "kill", "victim"]);
    node.covey_ok(&["container", "wait", "victim"]);
    std::fs::remove_dir_all(node.data().join("containers").join(&made)).unwrap();
    node.restart().unwrap();
    assert!(node.covey_ok(&["container", "ls", "-aq"]).trim().is_empty());
    nothing_left(&made, None);
    assert!(!node
        .root
        .path()
        .join("run/runtime/bundles")
        .join(&made)
        .exists());
}

#[test]
fn signals_are_as_under_docker() {
    let node = node("signals");
    // The container's init starts with no signal ignored (the daemon, a Rust program,
    // ignores SIGPIPE, and an ignored signal would pass through exec).
    node.covey_ok(&[
        "container",
        "run",
        "-d",
        "--name",
        "sigs",
        "covey-test/saved",
        "sleep",
        "60",
    ]);
    let pid = inspect(&node, "sigs")["State"]["Pid"].as_i64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let ignored = status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .unwrap_or(u64::MAX);
    // The 31 standard signals; realtime 32 and 33 are glibc's own, which it manages itself.
    assert_eq!(
        ignored & 0x7fff_ffff,
        0,
        "ignored signals in the container: {ignored:#x}"
    );
    // So `yes` ends when `head` does.
    let o = node.covey(&[
        "container",
        "run",
        "--rm",
        "covey-test/saved",
        "timeout",
        "5",
        "sh",
        "-c",
        "yes | head -n 1",
    ]);
    assert_eq!(
        (o.status.code(), stdout(&o).as_str()),
        (Some(0), "y\n"),
        "{}",
        stderr(&o)
    );
    node.covey_ok(&["container", "rm", "-f", "sigs"]);
}

#[test]
fn containers_started_at_once_all_run() {
    // libcontainer's start changes the working directory of the whole process: starts on
    // several threads at once must not meet in each other's directories.
    let node = node("concurrent");
    let names: Vec<String> = (0..32).map(|i| format!("at-once-{i}")).collect();
    let outputs: Vec<Output> = std::thread::scope(|s| {
        let runs: Vec<_> = names
            .iter()
            .map(|name| {
                let node = &node;
                s.spawn(move || {
                    node.covey(&[
                        "container",
                        "run",
                        "-d",
                        "--name",
                        name,
                        "covey-test/saved",
                        "sleep",
                        "60",
                    ])
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().expect("a run")).collect()
    });
    for out in &outputs {
        assert!(
            out.status.success(),
            "a concurrent run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let running = ok(&node, node.covey(&["container", "ls", "-q"]));
    assert_eq!(running.lines().count(), names.len());
    for name in &names {
        node.covey_ok(&["container", "rm", "-f", name]);
    }
}
