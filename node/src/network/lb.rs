//! Virtual IPs, balanced inside each task's own namespace as Docker does with IPVS: an
//! nftables DNAT of a service's VIP to one of its running tasks, round robin (`numgen`),
//! since edge kernels often lack IPVS. Only the VIPs of the task's own networks.

use std::fmt::Write as _;

use super::map::ServiceRecord;

const TABLE: &str = "covey-lb";

/// The nft script for a task on `networks`: its table made (if missing), dropped and made
/// again in one transaction.
pub fn ruleset(services: &[ServiceRecord], networks: &[String]) -> String {
    let mut rules = String::new();
    for s in services {
        for vip in s.vips.iter().filter(|v| networks.contains(&v.network)) {
            let backends: Vec<String> = s
                .tasks
                .iter()
                .filter_map(|t| t.iter().find(|a| a.network == vip.network))
                .enumerate()
                .map(|(i, a)| format!("{i} : {}", a.addr))
                .collect();
            if backends.is_empty() {
                continue;
            }
            let _ = writeln!(
                rules,
                "    ip daddr {} dnat to numgen inc mod {} map {{ {} }}",
                vip.addr,
                backends.len(),
                backends.join(", ")
            );
        }
    }
    super::nft::replace_table(TABLE, &[("output", super::nft::OUTPUT, &rules)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::map::NetAddr;

    #[test]
    fn a_vip_leads_to_its_tasks_on_the_same_network() {
        let at = |network: &str, addr: &str| NetAddr {
            network: network.into(),
            addr: addr.parse().unwrap(),
        };
        let web = ServiceRecord {
            name: "web".into(),
            aliases: Vec::new(),
            vips: vec![at("front", "10.0.1.2"), at("back", "10.0.2.2")],
            tasks: vec![
                vec![at("front", "10.0.1.5"), at("back", "10.0.2.5")],
                vec![at("front", "10.0.1.6")],
            ],
        };
        let script = ruleset(&[web], &["front".to_string()]);
        assert!(script.contains(
            "ip daddr 10.0.1.2 dnat to numgen inc mod 2 map { 0 : 10.0.1.5, 1 : 10.0.1.6 }"
        ));
        assert!(!script.contains("10.0.2.2"), "{script}");
    }
}
