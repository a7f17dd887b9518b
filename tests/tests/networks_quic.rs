//! The overlay's QUIC data path on a swarm of real daemons, each node in its own network
//! namespace: a node told to act as if its kernel had no VXLAN still carries every
//! overlay it is on (over QUIC, for every node of those networks), and an encrypted
//! network's traffic cannot be read on the wire while a plain VXLAN network's can.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use covey_tests::overlay::*;
use covey_tests::services::*;
use covey_tests::stdout;
use covey_tests::swarm::{eventually, Swarm};
use serde_json::Value;

/// What each web task serves: a marker to look for on the wire, then its hostname.
const MARKER: &str = "COVEY-CLEAR-TEXT-MARKER";
const MARKED_WEB: &str = "mkdir -p /www && (echo COVEY-CLEAR-TEXT-MARKER; hostname) > /www/index.html && exec httpd -f -p 80 -h /www";

/// A packet capture of UDP on node `i`'s underlay (`eth0`), running until [`Capture::stop`].
struct Capture {
    child: Child,
    file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Capture {
    fn start(swarm: &Swarm, i: usize) -> Capture {
        let dir = tempfile::tempdir().expect("a directory for the capture");
        let file = dir.path().join("eth0.pcap");
        let child = swarm
            .net
            .command(i, "tcpdump")
            // Immediate mode: else packets wait in the kernel for a block to fill, and those
            // still waiting when tcpdump is stopped are lost.
            .args([
                "--immediate-mode",
                "-i",
                "eth0",
                "-n",
                "-U",
                "-s",
                "0",
                "-w",
            ])
            .arg(&file)
            .arg("udp")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting tcpdump");
        // -U writes the file's header at once: then it is capturing.
        eventually("tcpdump capturing", Duration::from_secs(10), || {
            std::fs::metadata(&file).ok().filter(|m| m.len() > 0)
        });
        Capture {
            child,
            file,
            _dir: dir,
        }
    }

    /// Stops the capture: the bytes captured, and how many packets went to or from the
    /// QUIC data path's port.
    fn stop(mut self) -> (Vec<u8>, usize) {
        std::thread::sleep(Duration::from_millis(500));
        let _ = std::process::Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let bytes = std::fs::read(&self.file).expect("reading the capture");
        let read = std::process::Command::new("tcpdump")
            .args(["-n", "-r"])
            .arg(&self.file)
            .arg("udp port 4790")
            .output()
            .expect("reading the capture with tcpdump");
        let quic = stdout(&read).lines().count();
        (bytes, quic)
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Every running task of `service` on `network`, fetched from its container on node
/// `from`: the hostnames that answered, each page checked for the marker.
fn fetch_all(swarm: &Swarm, from: usize, service: &str, network: &str) -> BTreeSet<String> {
    let container = container_of(swarm, from, service);
    let mut hosts = BTreeSet::new();
    for addr in addresses(swarm, service, network) {
        let page = eventually(
            &format!("{service} on node {from} reaching {addr}"),
            Duration::from_secs(30),
            || fetch_from(swarm, from, &container, &addr, 80),
        );
        assert!(page.starts_with(MARKER), "{page}");
        hosts.insert(page.lines().last().unwrap_or_default().to_string());
    }
    hosts
}

/// The interfaces in network `name`'s sandbox on node `i`.
fn sandbox_links(swarm: &Swarm, i: usize, name: &str) -> String {
    let net: Value =
        serde_json::from_str(&swarm.node(1).covey_ok(&["network", "inspect", name])).unwrap();
    let vni = net[0]["Options"]["com.docker.network.driver.overlay.vxlanid_list"]
        .as_str()
        .expect("a VNI")
        .to_string();
    let sandbox = swarm
        .node(i)
        .root
        .path()
        .join(format!("run/netns/ov-{vni}"));
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net={}", sandbox.display()))
        .args(["ip", "-o", "link"])
        .output()
        .expect("nsenter");
    stdout(&out)
}

#[test]
fn the_quic_path_carries_overlays_where_vxlan_is_missing_and_encrypts_them() {
    // Node 3 acts as a node whose kernel has no VXLAN.
    let (swarm, _registry, image) = swarm_with("ovquic", 3, 3, |i| match i {
        3 => vec!["--overlay-path".into(), "quic".into()],
        _ => Vec::new(),
    });
    let node1 = swarm.node(1);
    for i in 1..=3 {
        let id = swarm.id_of(1, i).expect("node id");
        node1.covey_ok(&["node", "update", "--label-add", &format!("n={i}"), &id]);
    }
    node1.covey_ok(&["network", "create", "-d", "overlay", "plain"]);
    node1.covey_ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--opt",
        "encrypted",
        "secret",
    ]);
    node1.covey_ok(&["network", "create", "-d", "overlay", "mixed"]);
    // On nodes 1 and 2 (both with VXLAN): plain and secret; on all three: mixed, which
    // also publishes a port through the routing mesh (ingress, on every node).
    for (name, network, constraint, port) in [
        ("pw", "plain", "node.labels.n!=3", None),
        ("sw", "secret", "node.labels.n!=3", None),
        ("mw", "mixed", "node.labels.n!=0", Some("8090:80")),
    ] {
        let publish = port.map(|p| vec!["-p", p]).unwrap_or_default();
        node1.covey_ok(
            &[
                &["service", "create", "-d"][..],
                &publish,
                &[
                    "--name",
                    name,
                    "--mode",
                    "global",
                    "--network",
                    network,
                    "--constraint",
                    constraint,
                    &image,
                    "sh",
                    "-c",
                    MARKED_WEB,
                ],
            ]
            .concat(),
        );
    }
    wait_running(&swarm, "pw", 2);
    wait_running(&swarm, "sw", 2);
    wait_running(&swarm, "mw", 3);

    // Plain, between two VXLAN nodes: kernel VXLAN, whose payload is in the clear.
    let capture = Capture::start(&swarm, 2);
    assert_eq!(fetch_all(&swarm, 1, "pw", "plain").len(), 2);
    // (QUIC packets there may be: the mesh's keep-alives.)
    let (bytes, _) = capture.stop();
    assert!(
        contains(&bytes, MARKER),
        "the plain overlay's page was not on the wire"
    );
    assert!(sandbox_links(&swarm, 1, "plain").contains("vx-"));

    // Encrypted, between the same nodes: QUIC, and the page is nowhere on the wire.
    let capture = Capture::start(&swarm, 2);
    assert_eq!(fetch_all(&swarm, 1, "sw", "secret").len(), 2);
    let (bytes, quic) = capture.stop();
    assert!(quic > 0, "the encrypted overlay did not go over QUIC");
    assert!(
        !contains(&bytes, MARKER),
        "the encrypted overlay's page was readable on the wire"
    );
    let links = sandbox_links(&swarm, 1, "secret");
    assert!(links.contains("tq-") && !links.contains("vx-"), "{links}");

    // Mixed: node 3 has no VXLAN, so the whole network goes over QUIC, both ways.
    let from1 = fetch_all(&swarm, 1, "mw", "mixed");
    let from3 = fetch_all(&swarm, 3, "mw", "mixed");
    assert_eq!(from1.len(), 3, "{from1:?}");
    assert_eq!(from1, from3);
    for i in [1, 3] {
        let links = sandbox_links(&swarm, i, "mixed");
        assert!(
            links.contains("tq-") && !links.contains("vx-"),
            "node {i}: {links}"
        );
    }
    // The service's VIP, by name, from node 3 spreads over the tasks on all three nodes.
    let mw3 = container_of(&swarm, 3, "mw");
    let mut by_vip = BTreeSet::new();
    eventually(
        "mw's VIP from node 3 reaching every task",
        Duration::from_secs(30),
        || {
            let page = fetch_from(&swarm, 3, &mw3, "mw", 80)?;
            by_vip.insert(page.lines().last().unwrap_or_default().to_string());
            (by_vip == from1).then_some(())
        },
    );
    // The routing mesh (ingress, over QUIC as node 3 is on it): node 1 answers on the
    // published port from the tasks on every node.
    let node3_ip = swarm.net.node_ip(3).to_string();
    let mut seen = BTreeSet::new();
    eventually(
        "the mesh on node 3 reaching every task",
        Duration::from_secs(30),
        || {
            let page = fetch_on_node(&swarm, 1, &node3_ip, 8090)?;
            seen.insert(page.lines().last().unwrap_or_default().to_string());
            (seen == from1).then_some(())
        },
    );
}
