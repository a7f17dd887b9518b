//! The multi-node network harness itself: nodes reach each other, loss and delay do what
//! they say and clear, a daemon runs inside a node, and nothing is left behind.

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use covey_tests::cluster::{netns_command, Net};
use covey_tests::{stdout, Daemon};

/// What a ping run reported.
#[derive(Debug)]
struct Ping {
    sent: u32,
    received: u32,
    /// The fastest round trip, in milliseconds, if any reply came.
    min_ms: Option<f64>,
    output: String,
}

impl Ping {
    fn loss_percent(&self) -> f64 {
        100.0 * f64::from(self.sent - self.received) / f64::from(self.sent)
    }
}

/// Pings `to` from node `from` `count` times, `interval` seconds apart, waiting a second
/// for late replies. iputils' ping if there is one, else busybox's.
fn ping(net: &Net, from: usize, to: Ipv4Addr, count: u32, interval: &str) -> Ping {
    let have_ping = Command::new("which")
        .arg("ping")
        .output()
        .is_ok_and(|o| o.status.success());
    let mut cmd = if have_ping {
        net.command(from, "ping")
    } else {
        let mut c = net.command(from, "busybox");
        c.arg("ping");
        c
    };
    let out = cmd
        .args(["-q", "-c", &count.to_string(), "-i", interval, "-W", "1"])
        .arg(to.to_string())
        .output()
        .expect("running ping");
    let output = format!("{}{}", stdout(&out), covey_tests::stderr(&out));
    // "N packets transmitted, M (packets) received, ..." from either ping.
    let counts = output
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("no summary from ping:\n{output}"));
    let numbers: Vec<u32> = counts
        .split(',')
        .filter_map(|part| part.split_whitespace().next()?.parse().ok())
        .collect();
    // "round-trip min/avg/max = a/b/c ms" (busybox) or "rtt min/avg/max/mdev = ..." (iputils).
    let min_ms = output
        .lines()
        .find(|l| l.contains("min/avg/max"))
        .and_then(|l| l.split("= ").nth(1)?.split('/').next()?.parse().ok());
    Ping {
        sent: numbers[0],
        received: numbers[1],
        min_ms,
        output,
    }
}

#[test]
fn nodes_reach_each_other_and_the_switch() {
    let net = Net::new("cn-ping", 3).unwrap();
    for from in 1..=3 {
        let mut targets: Vec<Ipv4Addr> = (1..=3)
            .filter(|&to| to != from)
            .map(|to| net.node_ip(to))
            .collect();
        targets.push(net.switch_ip());
        for to in targets {
            let p = ping(&net, from, to, 3, "0.05");
            assert_eq!((p.sent, p.received), (3, 3), "node {from} to {to}: {p:?}");
        }
    }
}

#[test]
fn loss_drops_packets_until_cleared() {
    let net = Net::new("cn-loss", 2).unwrap();
    net.set_loss(1, 40).unwrap();
    // Node 1 drops 40% of requests in and 40% of replies out: about 64% of round trips
    // are lost, and 200 of them land between 15% and 85% but for a 6-sigma fluke.
    let p = ping(&net, 2, net.node_ip(1), 200, "0.01");
    assert_eq!(p.sent, 200, "{p:?}");
    assert!(
        (15.0..=85.0).contains(&p.loss_percent()),
        "40% loss each way lost {}% of pings: {}",
        p.loss_percent(),
        p.output
    );
    net.clear_loss(1).unwrap();
    let p = ping(&net, 2, net.node_ip(1), 100, "0.01");
    assert_eq!((p.sent, p.received), (100, 100), "after clear_loss: {p:?}");
    // Clearing twice is harmless.
    net.clear_loss(1).unwrap();

    // On the way out only: 40% of the replies, and about 40% of round trips, are lost.
    net.set_send_loss(1, 40).unwrap();
    let p = ping(&net, 2, net.node_ip(1), 200, "0.01");
    assert!(
        (10.0..=70.0).contains(&p.loss_percent()),
        "40% loss out lost {}% of pings: {}",
        p.loss_percent(),
        p.output
    );
    net.clear_loss(1).unwrap();
}

#[test]
fn delay_holds_every_frame_until_cleared() {
    let mut net = Net::new("cn-delay", 2).unwrap();
    net.set_delay(Duration::from_millis(100)).unwrap();
    for to in [net.node_ip(2), net.switch_ip()] {
        let p = ping(&net, 1, to, 3, "0.2");
        assert_eq!(p.received, 3, "to {to} through the delay: {p:?}");
        let min = p.min_ms.unwrap();
        assert!(min >= 200.0, "RTT to {to} {min} ms with 100 ms each way");
    }
    // Full-size TCP segments cross intact: the offloads are off, so the userspace switch
    // reads no super-frames and the checksums are filled in.
    assert_tcp_transfer(&net, 1, 2);

    net.clear_delay().unwrap();
    for to in [net.node_ip(2), net.switch_ip()] {
        let p = ping(&net, 1, to, 5, "0.05");
        assert_eq!(p.received, 5, "to {to} after clear_delay: {p:?}");
        let min = p.min_ms.unwrap();
        assert!(min < 50.0, "RTT to {to} still {min} ms after clear_delay");
    }
    assert_tcp_transfer(&net, 1, 2);
}

/// Sends 1 MiB over TCP from node `from` to node `to` and checks it arrives whole.
fn assert_tcp_transfer(net: &Net, from: usize, to: usize) {
    let server = format!(
        "import hashlib, socket\n\
         s = socket.socket()\n\
         s.settimeout(60)\n\
         s.bind(('{}', 0))\n\
         s.listen()\n\
         print(s.getsockname()[1], flush=True)\n\
         c, _ = s.accept()\n\
         c.settimeout(60)\n\
         h, n = hashlib.sha256(), 0\n\
         while (b := c.recv(65536)):\n    h.update(b)\n    n += len(b)\n\
         print(n, h.hexdigest())\n",
        net.node_ip(to)
    );
    let mut server = net
        .command(to, "python3")
        .args(["-c", &server])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let mut line = || lines.next().and_then(Result::ok);
    // A port of its own: the last transfer's may still be closing.
    let Some(port) = line() else {
        panic!("server: {:?}", server.wait_with_output());
    };
    let client = format!(
        "import hashlib, os, socket\n\
         data = os.urandom(1 << 20)\n\
         c = socket.create_connection(('{}', {port}), timeout=60)\n\
         c.sendall(data)\n\
         c.close()\n\
         print(len(data), hashlib.sha256(data).hexdigest())\n",
        net.node_ip(to)
    );
    let sent = net
        .exec(from, Command::new("python3").args(["-c", &client]))
        .unwrap();
    assert!(sent.status.success(), "client: {sent:?}");
    let received = line();
    let out = server.wait_with_output().unwrap();
    assert!(out.status.success(), "server: {out:?}");
    assert_eq!(
        received.as_deref(),
        Some(stdout(&sent).trim()),
        "bytes received, and their sha256"
    );
}

#[test]
fn daemon_runs_inside_a_node() {
    let net = Net::new("cn-daemon", 1);
    // The prefix is too long: the harness says so rather than make odd names.
    assert!(net.is_err());
    let net = Net::new("cn-dmn", 1).unwrap();
    let daemon = Daemon::start_in_netns("cn-dmn", &net.node_ns(1), &[]).unwrap();
    let version = daemon.covey_ok(&["version"]);
    assert!(version.contains("Server: covey"), "{version}");
    let pid = daemon.pid().unwrap().to_string();
    let out = Command::new("ip")
        .args(["netns", "identify", &pid])
        .output()
        .unwrap();
    assert_eq!(
        stdout(&out).trim(),
        net.node_ns(1),
        "the daemon's namespace"
    );
    // nsenter execs the daemon in place, so the pid the harness signals is the daemon's.
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "covey");
    let addrs = net
        .exec(1, Command::new("ip").args(["-4", "addr"]))
        .unwrap();
    assert!(
        stdout(&addrs).contains("inet 10.77.0.11/24"),
        "{}",
        stdout(&addrs)
    );
    assert!(addrs.status.success());
}

fn namespaces_named(prefix: &str) -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    stdout(&out)
        .lines()
        .filter(|l| l.starts_with(&format!("{prefix}-")))
        .map(str::to_string)
        .collect()
}

#[test]
fn nothing_is_left_behind() {
    // A crashed run's leftovers, with a process still inside: `Net::new` clears them.
    for ns in ["cn-left-sw", "cn-left-n1", "cn-left-n7"] {
        let ok = Command::new("ip").args(["netns", "add", ns]).status();
        assert!(ok.unwrap().success());
    }
    let mut stray = netns_command("cn-left-n7", "sleep")
        .arg("600")
        .spawn()
        .unwrap();
    let mut net = Net::new("cn-left", 2).unwrap();
    assert_eq!(
        stray.wait().unwrap().signal(),
        Some(9),
        "the leftover's process"
    );
    let mut names = namespaces_named("cn-left");
    names.sort();
    assert_eq!(names, ["cn-left-n1", "cn-left-n2", "cn-left-sw"]);

    // Processes started in the nodes, and the userspace switch, go with the Net.
    net.set_delay(Duration::from_millis(10)).unwrap();
    let mut sleeper = net.command(2, "sleep").arg("600").spawn().unwrap();
    drop(net);
    assert_eq!(
        sleeper.wait().unwrap().signal(),
        Some(9),
        "a node's process"
    );
    assert_eq!(namespaces_named("cn-left"), Vec::<String>::new());
}
