//! A private network for multi-node tests: several `covey daemon`s on this one machine,
//! each in its own network namespace.
//!
//! # Topology
//!
//! ```text
//!            <prefix>-sw: br0 10.77.0.1/24
//!            |          |          |      (ports n1, n2, n3: veths)
//!   <prefix>-n1      <prefix>-n2      <prefix>-n3
//!   eth0 10.77.0.11  eth0 10.77.0.12  eth0 10.77.0.13
//! ```
//!
//! A "switch" namespace holds a bridge, `br0`; each node's namespace holds one end of a
//! veth, `eth0`, whose other end, `n<i>`, sits in the switch namespace attached to the
//! bridge. Every namespace has `lo` up.
//!
//! Nothing lives in the root namespace: no bridge, no veth, no route, no firewall rule.
//! So tests running at once never see each other's links or collide on an interface name,
//! they can all use the same subnet, 10.77.0.0/24, and the host's own networking is never
//! touched. The bridge holds an address, so a service run inside the switch namespace (a
//! registry, say) is reachable from every node.
//!
//! # Running things in a node
//!
//! Through `nsenter --net=/run/netns/<ns>`, never `ip netns exec`: the latter also
//! remounts /sys for the namespace, which hides /sys/fs/cgroup from a daemon that
//! creates containers. The filesystem is shared, so a daemon's unix socket and data root
//! stay reachable from the root namespace: the covey and docker CLIs run there as usual
//! ([`crate::Daemon::start_in_netns`]).
//!
//! # Faults
//!
//! - Loss ([`Net::set_loss`]): an nftables table in the node's namespace that drops a
//!   share of packets at random on `eth0`, in and out, each way on its own; between a lossy
//!   node and a clean one a round trip is lost with about `1-(1-P)^2`. (This kernel has no
//!   netem.) [`Net::set_send_loss`] drops on the way out only: with it on every node,
//!   each way between two nodes loses `P`, as on one lossy link.
//! - Delay ([`Net::set_delay`]): the ports leave the bridge and are joined instead by a
//!   userspace switch in this process that holds every frame for the delay (see
//!   `switch.rs`); a round trip then takes at least twice the delay.
//!
//! Everything is named after the test's prefix and removed on drop, processes still in the
//! namespaces first; `Net::new` first removes what a crashed run with the same prefix left.

mod netns;
mod switch;

use std::ffi::OsStr;
use std::net::Ipv4Addr;
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, ensure, Context};

pub use netns::command as netns_command;

/// The switch-side port of node `i`.
fn port(i: usize) -> String {
    format!("n{i}")
}

/// The veth pair that joins the bridge to the userspace switch while a delay is set: `up0`
/// on the bridge, `up1` a port of the userspace switch.
const UPLINK: [&str; 2] = ["up0", "up1"];

/// The nftables table that holds a node's loss rules.
const LOSS_TABLE: &str = "covey_loss";

/// The last octet of the address (and MAC) of the bridge; node `i` has `i + 10`.
const SWITCH_HOST: u8 = 1;

fn host(i: usize) -> u8 {
    u8::try_from(i + 10).expect("at most 200 nodes")
}

/// Locally administered MACs, fixed so that the bridge's never changes as ports come and
/// go (it would otherwise follow its lowest port's) and nodes' ARP caches stay right.
fn mac(host: u8) -> String {
    format!("02:77:00:00:00:{host:02x}")
}

/// A private L2 network of `nodes` namespaces; removed on drop.
pub struct Net {
    prefix: String,
    nodes: usize,
    /// The userspace switch, while a delay is set.
    switch: Option<switch::Switch>,
    /// Whether the offloads are off, which the first delay sees to.
    offloads_off: bool,
}

impl Net {
    /// Namespaces `<prefix>-sw` and `<prefix>-n1` to `<prefix>-n<nodes>`, wired as the
    /// module documentation shows. `prefix` is at most 8 characters, lowercase letters,
    /// digits and dashes, and different for tests that run at once.
    pub fn new(prefix: &str, nodes: usize) -> anyhow::Result<Net> {
        ensure!(
            (1..=8).contains(&prefix.len())
                && prefix
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "network prefix {prefix:?}: 1 to 8 lowercase letters, digits or dashes"
        );
        ensure!((1..=200).contains(&nodes), "{nodes} nodes: 1 to 200");
        remove_namespaces(prefix).context("removing a previous run's namespaces")?;
        let net = Net {
            prefix: prefix.to_string(),
            nodes,
            switch: None,
            offloads_off: false,
        };
        // On failure `net` is dropped, which removes whatever was made.
        net.build()
            .with_context(|| format!("building network {prefix}"))?;
        Ok(net)
    }

    fn build(&self) -> anyhow::Result<()> {
        let sw = self.switch_ns();
        {
            // The first `ip netns add` of a boot mounts /run/netns; two at once can race.
            static ADD: Mutex<()> = Mutex::new(());
            let _serial = ADD.lock().unwrap_or_else(|e| e.into_inner());
            netns::ip(&["netns", "add", &sw])?;
            for i in 1..=self.nodes {
                netns::ip(&["netns", "add", &self.node_ns(i)])?;
            }
        }
        // The switch namespace answers ARP for 10.77.0.1 on the bridge only, not on a port
        // taken off it for a delay; and it keeps IPv6 chatter off the ports.
        netns::run(
            netns_command(&sw, "sysctl").args([
                "-q",
                "-w",
                "net.ipv4.conf.all.arp_ignore=1",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ]),
            "",
        )?;
        let mut lines = vec![
            "link set lo up".to_string(),
            format!("link add br0 address {} type bridge", mac(SWITCH_HOST)),
            format!("addr add {}/24 dev br0", self.switch_ip()),
            "link set br0 up".to_string(),
            // Down (and so no bridge port) until a delay is set.
            format!("link add {} type veth peer name {}", UPLINK[0], UPLINK[1]),
            format!("link set {} master br0 up", UPLINK[0]),
        ];
        for i in 1..=self.nodes {
            lines.push(format!(
                "link add {} type veth peer name eth0 address {} netns {}",
                port(i),
                mac(host(i)),
                self.node_ns(i)
            ));
            lines.push(format!("link set {} master br0 up", port(i)));
        }
        netns::ip_batch(&sw, &lines)?;
        for i in 1..=self.nodes {
            netns::ip_batch(
                &self.node_ns(i),
                &[
                    "link set lo up".to_string(),
                    format!("addr add {}/24 dev eth0", self.node_ip(i)),
                    "link set eth0 up".to_string(),
                ],
            )?;
        }
        Ok(())
    }

    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// The namespace of node `i`, from 1.
    pub fn node_ns(&self, i: usize) -> String {
        self.check(i);
        format!("{}-n{i}", self.prefix)
    }

    /// Node `i`'s address on `eth0`: 10.77.0.(i + 10).
    pub fn node_ip(&self, i: usize) -> Ipv4Addr {
        self.check(i);
        Ipv4Addr::new(10, 77, 0, host(i))
    }

    /// The namespace holding the bridge.
    pub fn switch_ns(&self) -> String {
        format!("{}-sw", self.prefix)
    }

    /// The bridge's address, 10.77.0.1, for a service run in the switch namespace.
    pub fn switch_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, 0, SWITCH_HOST)
    }

    fn check(&self, i: usize) {
        assert!(
            (1..=self.nodes).contains(&i),
            "node {i} of a {}-node network",
            self.nodes
        );
    }

    /// A command running `program` in node `i` (see [`netns_command`]), to add arguments,
    /// environment and stdio to, and to spawn or run.
    pub fn command(&self, i: usize, program: impl AsRef<OsStr>) -> Command {
        netns_command(&self.node_ns(i), program)
    }

    /// Runs `cmd` (its program, arguments, environment and directory) in node `i` and
    /// returns its output, whatever its exit status.
    pub fn exec(&self, i: usize, cmd: &mut Command) -> anyhow::Result<Output> {
        netns::wrap(&self.node_ns(i), cmd)
            .output()
            .with_context(|| format!("running {cmd:?} in {}", self.node_ns(i)))
    }

    /// Drops `percent` of the packets node `i` receives on `eth0`, and, on its own,
    /// `percent` of those it sends. Replaces an earlier loss.
    ///
    /// A sender inside node `i` sees a dropped packet as a failed send (EPERM), as a
    /// firewall drop on output does: QUIC and TCP carry on, but busybox `ping` gives up,
    /// so ping a lossy node from another one.
    pub fn set_loss(&self, i: usize, percent: u32) -> anyhow::Result<()> {
        self.loss(i, percent, true)
    }

    /// Drops `percent` of the packets node `i` sends (and forwards) out of `eth0`, and
    /// nothing it receives: when every node has it, each way between any two of them
    /// loses `percent`, as on one lossy link (with [`Net::set_loss`] on both ends, a
    /// packet would cross two drops). Replaces an earlier loss.
    pub fn set_send_loss(&self, i: usize, percent: u32) -> anyhow::Result<()> {
        self.loss(i, percent, false)
    }

    fn loss(&self, i: usize, percent: u32, inbound: bool) -> anyhow::Result<()> {
        ensure!(percent <= 100, "loss of {percent}%");
        // nftables' numgen compares against 0-99: a total cut is a plain drop.
        let drop = |dir: &str| match percent {
            100 => format!("{dir}name \"eth0\" drop"),
            p => format!("{dir}name \"eth0\" numgen random mod 100 < {p} drop"),
        };
        let in_ = if inbound { drop("iif") } else { String::new() };
        let out = drop("oif");
        // Forwarded packets (to and from containers behind the node) cross the link too.
        let script = format!(
            "add table inet {LOSS_TABLE}\n\
             delete table inet {LOSS_TABLE}\n\
             table inet {LOSS_TABLE} {{\n\
             chain input {{ type filter hook input priority -300; {in_}; }}\n\
             chain forward {{ type filter hook forward priority -300; {in_}; {out}; }}\n\
             chain output {{ type filter hook output priority -300; {out}; }}\n\
             }}\n",
        );
        self.nft(i, &script)
    }

    /// Ends node `i`'s loss, if any.
    pub fn clear_loss(&self, i: usize) -> anyhow::Result<()> {
        self.nft(
            i,
            &format!("add table inet {LOSS_TABLE}\ndelete table inet {LOSS_TABLE}\n"),
        )
    }

    fn nft(&self, i: usize, script: &str) -> anyhow::Result<()> {
        netns::run(self.command(i, "nft").args(["-f", "-"]), script).map(drop)
    }

    /// Holds every frame between nodes (and between a node and the switch namespace) for
    /// `delay`, one way; a later call just changes the delay.
    pub fn set_delay(&mut self, delay: Duration) -> anyhow::Result<()> {
        if let Some(switch) = &self.switch {
            switch.set_delay(delay);
            return Ok(());
        }
        self.offloads_off()?;
        let sw = self.switch_ns();
        let mut lines: Vec<String> = (1..=self.nodes)
            .map(|i| format!("link set {} nomaster", port(i)))
            .collect();
        lines.push(format!("link set {} up", UPLINK[1]));
        netns::ip_batch(&sw, &lines)?;
        let mut ports: Vec<String> = (1..=self.nodes).map(port).collect();
        ports.push(UPLINK[1].to_string());
        self.switch = Some(switch::Switch::start(&sw, &ports, delay)?);
        Ok(())
    }

    /// Puts the ports back on the bridge. Frames the userspace switch still held are lost.
    pub fn clear_delay(&mut self) -> anyhow::Result<()> {
        if self.switch.take().is_none() {
            return Ok(());
        }
        // The uplink goes down first, so the bridge forgets the MACs it learnt behind it.
        let mut lines = vec![format!("link set {} down", UPLINK[1])];
        lines.extend((1..=self.nodes).map(|i| format!("link set {} master br0", port(i))));
        netns::ip_batch(&self.switch_ns(), &lines)
    }

    /// Turns the offloads off on both ends of every veth whose frames reach the userspace
    /// switch. They stay off afterwards.
    fn offloads_off(&mut self) -> anyhow::Result<()> {
        if self.offloads_off {
            return Ok(());
        }
        if Command::new("ethtool").arg("--version").output().is_err() {
            bail!(
                "ethtool is missing (scripts/install-deps installs it): the userspace switch \
                 needs the veths' offloads off, or it reads frames it cannot send"
            );
        }
        let sw = self.switch_ns();
        let off = [
            "gro", "off", "gso", "off", "tso", "off", "tx", "off", "rx", "off",
        ];
        let mut ends: Vec<(String, String)> = (1..=self.nodes)
            .flat_map(|i| [(self.node_ns(i), "eth0".to_string()), (sw.clone(), port(i))])
            .collect();
        ends.extend(UPLINK.map(|u| (sw.clone(), u.to_string())));
        for (ns, dev) in ends {
            netns::run(
                netns_command(&ns, "ethtool").arg("-K").arg(dev).args(off),
                "",
            )?;
        }
        self.offloads_off = true;
        Ok(())
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.switch.take();
        if let Err(e) = remove_namespaces(&self.prefix) {
            eprintln!("removing network {}: {e:#}", self.prefix);
        }
    }
}

/// Removes every namespace named as a `Net` with `prefix` names them, killing what runs
/// in them first.
fn remove_namespaces(prefix: &str) -> anyhow::Result<()> {
    let ours = |name: &str| {
        name == format!("{prefix}-sw")
            || name
                .strip_prefix(&format!("{prefix}-n"))
                .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
    };
    let mut first_err = None;
    for ns in netns::list()?.into_iter().filter(|n| ours(n)) {
        if let Err(e) = netns::remove(&ns) {
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}
