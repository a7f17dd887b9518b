//! The agent: what every node runs once in a swarm. For now it reports to the leader's
//! dispatcher on the cluster's period, following the leader and failing over to another
//! manager when its own goes, and passes on what the dispatcher says; running tasks
//! comes with services.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::manager::ca::Role;
use crate::manager::objects::NodeDescription;
use crate::manager::rpc::{Request, Response};
use crate::transport::Transport;

/// How long one heartbeat may take: twice the period, so a dead manager is given up on
/// well within the dispatcher's grace of three periods, and at least 2 s for slow links.
fn call_timeout(period: Duration) -> Duration {
    (period * 2).clamp(Duration::from_secs(2), Duration::from_secs(10))
}

/// What the agent learns from the dispatcher, for the node to act on.
#[derive(Debug)]
pub enum Report {
    /// The managers' addresses changed.
    Managers(Vec<String>),
    /// A heartbeat was taken; the node should have this role.
    DesiredRole(Role),
}

pub fn start(
    transport: Transport,
    description: NodeDescription,
    managers: Vec<String>,
    reports: mpsc::Sender<Report>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(heartbeats(transport, description, managers, reports))
}

async fn heartbeats(
    transport: Transport,
    description: NodeDescription,
    mut managers: Vec<String>,
    reports: mpsc::Sender<Report>,
) {
    let mut leader: Option<String> = None;
    let mut period = Duration::from_secs(5);
    let body = match serde_json::to_vec(&Request::Heartbeat { description }) {
        Ok(body) => body,
        Err(e) => {
            tracing::error!("agent: encoding a heartbeat: {e}");
            return;
        }
    };
    loop {
        let mut targets: Vec<String> = leader.iter().cloned().collect();
        targets.extend(
            managers
                .iter()
                .filter(|m| Some(*m) != leader.as_ref())
                .cloned(),
        );
        let mut reported = false;
        let mut redirects = 0;
        let mut i = 0;
        while i < targets.len() && !reported {
            let target = targets[i].clone();
            i += 1;
            let Ok(addr) = target.parse::<SocketAddr>() else {
                continue;
            };
            let reply = transport
                .call(
                    addr,
                    Role::Manager.server_name(),
                    body.clone(),
                    call_timeout(period),
                )
                .await;
            let reply = match reply.map(|b| serde_json::from_slice::<Response>(&b)) {
                Ok(Ok(reply)) => reply,
                Ok(Err(e)) => {
                    tracing::debug!(manager = %target, "agent: unreadable reply: {e}");
                    continue;
                }
                Err(e) => {
                    tracing::debug!(manager = %target, "agent: heartbeat failed: {e}");
                    continue;
                }
            };
            match reply {
                Response::Heartbeat {
                    period_secs,
                    managers: list,
                    desired_role,
                } => {
                    reported = true;
                    leader = Some(target);
                    period = Duration::from_secs(period_secs.max(1));
                    if !list.is_empty() && list != managers {
                        managers = list;
                        let _ = reports.try_send(Report::Managers(managers.clone()));
                    }
                    let _ = reports.try_send(Report::DesiredRole(desired_role));
                }
                Response::NotLeader { leader: Some(l) } if redirects < 3 => {
                    redirects += 1;
                    targets.insert(i, l);
                }
                Response::Error { message, .. } => {
                    tracing::warn!(manager = %target, "agent: heartbeat refused: {message}");
                }
                _ => {}
            }
        }
        if !reported {
            leader = None;
            tracing::debug!("agent: no manager took the heartbeat; trying again");
        }
        let wait = if reported {
            period
        } else {
            Duration::from_secs(1)
        };
        tokio::time::sleep(wait).await;
    }
}
