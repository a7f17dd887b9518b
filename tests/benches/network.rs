//! The networking issue's figures (a benchmark, never a test; `bench/network.sh` runs it
//! as root): throughput and round-trip time between two tasks on an overlay network on
//! two nodes, over both of covey's paths (kernel VXLAN, and QUIC datagrams: an
//! `--opt encrypted` network), against the same between the two nodes' own namespaces
//! over the bare veth pairs and bridge that join them, in one run; and the latency of a
//! name lookup from a task through its resolver at 127.0.0.11.
//!
//! Layout: the test harness's two-node [`Net`] (each node a network namespace with a veth
//! to a bridge), a covey swarm on it with a registry holding busybox, an overlay network,
//! and one `sleep` task on each node. iperf3 (Debian's) and busybox ping run inside the
//! tasks' own network namespaces (what the containers use: `<exec-root>/netns/task-<id>`)
//! for the overlay, and in the nodes' namespaces for the reference. The lookups are UDP
//! queries sent from the task's namespace, one at a time.
//!
//! Settings (environment): BENCH_SECONDS (5, per iperf3 run), BENCH_LOOKUPS (2000).

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use covey_tests::bench::{env_u64, median, sorted};
use covey_tests::services::{swarm, tasks, wait_running};
use covey_tests::swarm::Swarm;
use serde_json::Value;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let seconds = env_u64("BENCH_SECONDS", 5)?;
    let lookups = env_u64("BENCH_LOOKUPS", 2000)? as usize;
    let (swarm, _registry, image) = swarm("netbench", 2);
    let node1 = swarm.node(1);
    node1.covey_ok(&["network", "create", "-d", "overlay", "bench"]);
    node1.covey_ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--opt",
        "encrypted",
        "sealed",
    ]);
    for (name, i, network) in [
        ("a", 1, "bench"),
        ("b", 2, "bench"),
        ("c", 1, "sealed"),
        ("d", 2, "sealed"),
    ] {
        let id = swarm.id_of(1, i).context("node id")?;
        node1.covey_ok(&[
            "service",
            "create",
            "-d",
            "--name",
            name,
            "--network",
            network,
            "--constraint",
            &format!("node.id=={id}"),
            &image,
            "sleep",
            "1d",
        ]);
    }
    for name in ["a", "b", "c", "d"] {
        wait_running(&swarm, name, 1);
    }
    let (ns_a, _) = task_netns(&swarm, "a", 1)?;
    let (ns_b, addr_b) = task_netns(&swarm, "b", 2)?;
    let (ns_c, _) = task_netns(&swarm, "c", 1)?;
    let (ns_d, addr_d) = task_netns(&swarm, "d", 2)?;
    let underlay_b = swarm.net.node_ip(2).to_string();
    let node_ns = |i: usize| PathBuf::from(format!("/run/netns/{}", swarm.net.node_ns(i)));

    println!(
        "covey networking, 2 nodes (network namespaces on one machine), {seconds} s per iperf3 run"
    );
    println!(
        "{:<34} {:>14} {:>14} {:>14} {:>7} {:>7}",
        "", "VXLAN", "QUIC", "bare veth", "VXLAN/", "QUIC/"
    );
    let vxlan = iperf(&ns_a, &ns_b, &addr_b, seconds)?;
    let quic = iperf(&ns_c, &ns_d, &addr_d, seconds)?;
    let bare = iperf(&node_ns(1), &node_ns(2), &underlay_b, seconds)?;
    println!(
        "{:<34} {:>9.2} Gb/s {:>9.2} Gb/s {:>9.2} Gb/s {:>7.2} {:>7.2}",
        "TCP throughput (iperf3)",
        vxlan / 1e9,
        quic / 1e9,
        bare / 1e9,
        vxlan / bare,
        quic / bare
    );
    let vxlan_rtt = ping(&ns_a, &addr_b)?;
    let quic_rtt = ping(&ns_c, &addr_d)?;
    let bare_rtt = ping(&node_ns(1), &underlay_b)?;
    println!(
        "{:<34} {:>11.1} µs {:>11.1} µs {:>11.1} µs {:>7.2} {:>7.2}",
        "round trip (ping, average of 200)",
        vxlan_rtt,
        quic_rtt,
        bare_rtt,
        vxlan_rtt / bare_rtt,
        quic_rtt / bare_rtt
    );
    println!(
        "{:<34} {:>11.1} µs {:>11.1} µs",
        "added latency (one way)",
        (vxlan_rtt - bare_rtt) / 2.0,
        (quic_rtt - bare_rtt) / 2.0
    );
    let (med, p99) = lookup_latency(&ns_a, "b", lookups)?;
    println!(
        "{:<34} {:>11.1} µs   (p99 {:.1} µs, {lookups} lookups of a service name)",
        "DNS lookup from a task (median)", med, p99
    );
    Ok(())
}

/// The namespace of `service`'s task on node `i`, and the task's overlay address.
fn task_netns(swarm: &Swarm, service: &str, i: usize) -> anyhow::Result<(PathBuf, String)> {
    let task = tasks(swarm, service)
        .into_iter()
        .find(|t| t["Status"]["State"] == "running")
        .context("a running task")?;
    let id = task["ID"].as_str().context("task id")?.to_string();
    let full: Value = serde_json::from_slice(&swarm.node(1).docker(&["inspect", &id]).stdout)?;
    let addr = full[0]["NetworksAttachments"][0]["Addresses"][0]
        .as_str()
        .and_then(|a| a.split('/').next())
        .context("the task's address")?
        .to_string();
    let full_id = full[0]["ID"].as_str().context("full task id")?;
    let ns = swarm
        .node(i)
        .root
        .path()
        .join("run/netns")
        .join(format!("task-{full_id}"));
    if !ns.exists() {
        bail!("no namespace at {}", ns.display());
    }
    Ok((ns, addr))
}

fn in_ns(ns: &Path, program: &str) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net={}", ns.display())).arg(program);
    cmd
}

/// Bits per second from a client in `client` to a server in `server` at `addr`.
fn iperf(client: &Path, server: &Path, addr: &str, seconds: u64) -> anyhow::Result<f64> {
    let mut srv = in_ns(server, "iperf3")
        .args(["-s", "-1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting iperf3 (apt install iperf3)")?;
    std::thread::sleep(Duration::from_millis(500));
    let out = in_ns(client, "iperf3")
        .args(["-c", addr, "-J", "-t", &seconds.to_string()])
        .output()?;
    let _ = srv.kill();
    let _ = srv.wait();
    let v: Value = serde_json::from_slice(&out.stdout).context("iperf3's JSON")?;
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .with_context(|| format!("iperf3: {}", String::from_utf8_lossy(&out.stdout)))
}

/// The average round trip in µs of 200 pings.
fn ping(from: &Path, addr: &str) -> anyhow::Result<f64> {
    let out = in_ns(from, "busybox")
        .args(["ping", "-q", "-c", "200", "-i", "0.01", addr])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "round-trip min/avg/max = 0.061/0.085/0.210 ms"
    let avg = text
        .lines()
        .find_map(|l| l.strip_prefix("round-trip min/avg/max = "))
        .and_then(|r| r.split('/').nth(1))
        .and_then(|a| a.parse::<f64>().ok())
        .with_context(|| format!("ping: {text}"))?;
    Ok(avg * 1000.0)
}

/// Median and 99th percentile, in µs, of `n` A queries for `name` sent one at a time to
/// 127.0.0.11 from the namespace at `ns`.
fn lookup_latency(ns: &Path, name: &str, n: usize) -> anyhow::Result<(f64, f64)> {
    let file = std::fs::File::open(ns)?;
    let query = query_for(name);
    let ns_name = ns.display().to_string();
    let times = std::thread::spawn(move || -> anyhow::Result<Vec<f64>> {
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)?;
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.connect("127.0.0.11:53")?;
        socket.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut buf = [0u8; 512];
        let mut times = Vec::with_capacity(n);
        for _ in 0..n {
            let start = Instant::now();
            socket.send(&query)?;
            let len = socket
                .recv(&mut buf)
                .with_context(|| format!("no answer from 127.0.0.11 in {ns_name}"))?;
            times.push(start.elapsed().as_secs_f64() * 1e6);
            // One answer (ANCOUNT 1) for a service's name: its VIP.
            if len < 12 || u16::from_be_bytes([buf[6], buf[7]]) != 1 {
                bail!("the lookup did not answer with one address");
            }
        }
        Ok(times)
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the lookup thread panicked"))??;
    let s = sorted(&times);
    let p99 = s[(s.len() * 99 / 100).min(s.len() - 1)];
    Ok((median(&times).unwrap_or_default(), p99))
}

/// A DNS query for the A record of `name`, id 0x1234, recursion desired.
fn query_for(name: &str) -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}
