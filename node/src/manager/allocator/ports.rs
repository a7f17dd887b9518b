//! Published ports of the routing mesh: every node answers on them, so each (protocol,
//! port) belongs to one service in the whole cluster. Host-mode ports are the nodes' own
//! business and are not allocated here.

use std::collections::HashMap;

use crate::manager::objects::service::{PortConfig, Protocol, PublishMode};

/// Swarm's range for ports a service publishes without naming one.
pub const DYNAMIC: std::ops::RangeInclusive<u32> = 30000..=32767;

/// Which service holds each published ingress port.
#[derive(Default)]
pub struct Ports {
    owners: HashMap<(Protocol, u32), String>,
}

impl Ports {
    pub fn reserve(&mut self, service_id: &str, ports: &[PortConfig]) {
        for p in ports.iter().filter(|p| is_mesh(p)) {
            self.owners
                .entry((p.protocol, p.published_port))
                .or_insert_with(|| service_id.to_string());
        }
    }

    /// The service other than `service_id` that holds `port`, if any.
    pub fn owner(&self, service_id: &str, port: &PortConfig) -> Option<&str> {
        self.owners
            .get(&(port.protocol, port.published_port))
            .map(String::as_str)
            .filter(|o| *o != service_id)
    }

    /// The ports `spec` asks for, with those it left at 0 given one: the one it had before
    /// (`had`) for the same target, or the lowest free one of [`DYNAMIC`].
    pub fn allocate(
        &mut self,
        service_id: &str,
        spec: &[PortConfig],
        had: &[PortConfig],
    ) -> Result<Vec<PortConfig>, String> {
        let mut out = Vec::with_capacity(spec.len());
        for port in spec {
            let mut port = port.clone();
            if port.publish_mode == PublishMode::Ingress && port.published_port == 0 {
                let before = had.iter().find(|h| {
                    is_mesh(h) && h.protocol == port.protocol && h.target_port == port.target_port
                });
                port.published_port = match before {
                    Some(h) if self.owner(service_id, h).is_none() => h.published_port,
                    _ => DYNAMIC
                        .clone()
                        .find(|p| !self.owners.contains_key(&(port.protocol, *p)))
                        .ok_or("no free port left in 30000-32767")?,
                };
            }
            if is_mesh(&port) {
                if let Some(owner) = self.owner(service_id, &port) {
                    return Err(format!(
                        "port '{}' is already in use by service '{owner}'",
                        port.published_port
                    ));
                }
                self.owners
                    .insert((port.protocol, port.published_port), service_id.into());
            }
            out.push(port);
        }
        Ok(out)
    }
}

fn is_mesh(p: &PortConfig) -> bool {
    p.publish_mode == PublishMode::Ingress && p.published_port != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(target: u32, published: u32) -> PortConfig {
        PortConfig {
            target_port: target,
            published_port: published,
            ..Default::default()
        }
    }

    #[test]
    fn ports_are_kept_given_and_refused_when_taken() {
        let mut ports = Ports::default();
        ports.reserve("a", &[port(80, 8080)]);
        let got = ports
            .allocate("b", &[port(80, 0), port(443, 0)], &[])
            .unwrap();
        assert_eq!(got[0].published_port, 30000);
        assert_eq!(got[1].published_port, 30001);
        // The same service keeps its dynamic port across updates.
        let again = ports.allocate("b", &[port(80, 0)], &got).unwrap();
        assert_eq!(again[0].published_port, 30000);
        let err = ports.allocate("c", &[port(80, 8080)], &[]).unwrap_err();
        assert_eq!(err, "port '8080' is already in use by service 'a'");
        // UDP is another port.
        let mut udp = port(53, 8080);
        udp.protocol = Protocol::Udp;
        assert!(ports.allocate("c", &[udp], &[]).is_ok());
    }
}
