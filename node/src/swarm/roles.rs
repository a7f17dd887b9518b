//! Acting on what the agent hears: keeping the list of managers, renewing the node's
//! certificate before it expires, and changing role when promoted or demoted.

use std::sync::Weak;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use base64::Engine as _;
use tokio::sync::mpsc;

use super::{Active, Swarm};
use crate::agent::Report;
use crate::manager::ca::{self, JoinToken, NodeCertificate, Role, RootCa};
use crate::manager::raft::{raft_id, Forward, Member};
use crate::manager::rpc::{Request, Response};
use crate::transport::tls;

const CALL_TIMEOUT: Duration = Duration::from_secs(20);

pub async fn act_on_reports(swarm: Weak<Swarm>, mut reports: mpsc::Receiver<Report>) {
    while let Some(report) = reports.recv().await {
        let Some(swarm) = swarm.upgrade() else {
            return;
        };
        let mut active = swarm.active.lock().await;
        let Some(current) = active.as_mut() else {
            continue;
        };
        let result = match report {
            Report::Managers(managers) => {
                current.state.managers = managers;
                swarm.paths.save(&current.state)
            }
            Report::DesiredRole(role) => swarm.follow(current, role).await,
        };
        if let Err(e) = result {
            tracing::warn!("{e:#}");
        }
    }
}

impl Swarm {
    /// Renews the certificate when it is due or the role must change, then takes on
    /// the role it now carries.
    async fn follow(&self, active: &mut Active, desired: Role) -> anyhow::Result<()> {
        let cert_pem = self.paths.load_cert()?;
        let cert = NodeCertificate::from_pem(&cert_pem)?;
        if desired == active.state.role && !cert.needs_renewal(SystemTime::now()) {
            // A promotion whose request to join Raft got lost: ask again (adding a
            // member twice changes nothing).
            let orphaned = active.manager.as_ref().is_some_and(|m| {
                m.raft.status().leader == 0
                    && m.raft.members().map(|m| m.is_empty()).unwrap_or(true)
            });
            if orphaned {
                return self.ask_to_join(active).await;
            }
            return Ok(());
        }
        let (role, members) = self.renew(active).await?;
        match (active.state.role, role) {
            (Role::Worker, Role::Manager) => self.promote(active, members).await,
            (Role::Manager, Role::Worker) => self.demote(active).await,
            _ => Ok(()),
        }
    }

    /// A new certificate from a manager, for the role the swarm says this node has.
    async fn renew(&self, active: &mut Active) -> anyhow::Result<(Role, Vec<Member>)> {
        let (key_pem, csr) = ca::new_csr()?;
        let request = Request::Renew {
            csr: base64::engine::general_purpose::STANDARD.encode(csr),
        };
        match ask_managers(active, &request).await? {
            Response::Renewed {
                cert_pem,
                role,
                members,
                data_key,
                unlock_key,
            } => {
                self.paths.adopt_unlock_key(unlock_key.as_deref())?;
                self.install_certificate(active, &cert_pem, &key_pem, role)?;
                if role == Role::Manager {
                    self.paths.save_data_key(data_key.as_deref())?;
                }
                tracing::info!(%role, "certificate renewed");
                Ok((role, members))
            }
            other => bail!("renewing the certificate: the manager answered {other:?}"),
        }
    }

    /// Keeps a new certificate and uses it from now on, as client and, on a manager, as
    /// server.
    pub(super) fn install_certificate(
        &self,
        active: &Active,
        cert_pem: &str,
        key_pem: &str,
        role: Role,
    ) -> anyhow::Result<()> {
        let ca_pem = self.paths.load_ca()?;
        self.paths.save_certs(cert_pem, key_pem, &ca_pem)?;
        let root = RootCa::from_pem(&ca_pem, None)?;
        let identity = tls::Identity::from_pem(cert_pem, key_pem)?;
        active
            .transport
            .set_client_config(tls::client_config(root.cert_der(), Some(&identity))?);
        let server = match role {
            Role::Manager => Some(tls::server_config(root.cert_der(), &identity)?),
            Role::Worker => None,
        };
        active.transport.set_server_config(server);
        self.certify_data_path()
    }

    /// `swarm join` on a node whose certificate expired while it was away: a new one
    /// for its own id, with the token; its state stays.
    pub(super) async fn rejoin(
        &self,
        active: &Active,
        token: &JoinToken,
        remote: std::net::SocketAddr,
    ) -> anyhow::Result<()> {
        let ca_pem = self.paths.load_ca()?;
        if RootCa::from_pem(&ca_pem, None)?.digest().as_bytes() != token.ca_digest().as_bytes() {
            bail!(
                "this token is for another swarm than the one this node belongs to: leave it first"
            );
        }
        let (key_pem, csr) = ca::new_csr()?;
        let request = Request::Join {
            token: token.to_string(),
            csr: base64::engine::general_purpose::STANDARD.encode(csr),
            description: self.describe(),
            advertise_addr: active.state.advertise_addr.clone(),
            node_id: Some(active.state.node_id.clone()),
        };
        let (reply, _) = active
            .transport
            .call_once(
                remote,
                tls::join_client_config(token.ca_digest())?,
                Role::Manager.server_name(),
                serde_json::to_vec(&request)?,
                CALL_TIMEOUT,
            )
            .await
            .with_context(|| format!("reaching the manager at {remote}"))?;
        match serde_json::from_slice::<Response>(&reply)
            .context("an unreadable answer from the manager")?
        {
            Response::Joined(joined) => {
                self.paths.adopt_unlock_key(joined.unlock_key.as_deref())?;
                self.install_certificate(active, &joined.cert_pem, &key_pem, joined.role)?;
                if joined.role == Role::Manager {
                    self.paths.save_data_key(joined.data_key.as_deref())?;
                }
                tracing::info!(node = %active.state.node_id, "rejoined the swarm with a new certificate");
                Ok(())
            }
            Response::Error { message, .. } => bail!("{message}"),
            other => bail!("the manager answered {other:?}"),
        }
    }

    /// Promoted: start Raft here and ask the leader to add this manager.
    async fn promote(&self, active: &mut Active, members: Vec<Member>) -> anyhow::Result<()> {
        active.state.role = Role::Manager;
        self.paths.save(&active.state)?;
        self.start_manager(active, members, false, false).await?;
        self.ask_to_join(active).await
    }

    async fn ask_to_join(&self, active: &Active) -> anyhow::Result<()> {
        let member = Member {
            raft_id: raft_id(&active.state.node_id),
            node_id: active.state.node_id.clone(),
            addr: active.state.advertise_addr.clone(),
        };
        match ask_managers(active, &Request::Forward(Forward::AddMember(member))).await {
            Ok(Response::Done) => {
                tracing::info!("promoted: this node is now a manager");
                Ok(())
            }
            Ok(other) => bail!("promoted, but the manager answered {other:?}"),
            Err(e) => Err(e.context(
                "promoted, but not yet added to raft; trying again on the next heartbeat",
            )),
        }
    }

    /// Demoted: stop the manager and drop its copy of the cluster's state.
    async fn demote(&self, active: &mut Active) -> anyhow::Result<()> {
        active.stop_manager();
        if let Some(handler) = &active.handler {
            handler.replace(None);
        }
        if let Some(db) = active.db.take() {
            let _ = db.flush_async().await;
        }
        active.state.role = Role::Worker;
        self.paths.save(&active.state)?;
        let db = self.paths.db();
        std::fs::remove_dir_all(&db).with_context(|| format!("removing {}", db.display()))?;
        // A worker holds no key to the cluster's secrets, nor to a store it no longer has.
        for key in [self.paths.data_key(), self.paths.db_key()] {
            if let Err(e) = std::fs::remove_file(&key) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!("removing {}: {e}", key.display());
                }
            }
        }
        // Workers are never locked: nothing would unlock one after a restart.
        self.paths.vault.rekey(&self.paths.key_files(), None)?;
        tracing::info!("demoted: this node is now a worker");
        Ok(())
    }
}

/// Asks the managers in turn until one answers other than with an error.
async fn ask_managers(active: &Active, request: &Request) -> anyhow::Result<Response> {
    let body = serde_json::to_vec(request)?;
    let mut last = "no manager is known".to_string();
    for addr in &active.state.managers {
        let Ok(addr) = addr.parse() else { continue };
        let reply = active
            .transport
            .call(
                addr,
                Role::Manager.server_name(),
                body.clone(),
                CALL_TIMEOUT,
            )
            .await;
        match reply.map(|b| serde_json::from_slice::<Response>(&b)) {
            Ok(Ok(Response::Error { message, .. })) => last = message,
            Ok(Ok(answer)) => return Ok(answer),
            Ok(Err(e)) => last = format!("an unreadable answer from {addr}: {e}"),
            Err(e) => last = e.to_string(),
        }
    }
    bail!("{last}")
}
