//! The worker: the node's assigned tasks, each driven by its own controller (see
//! [`executor`](super::executor)), after swarmkit's `agent/worker`. The set is kept on
//! disk, so that after a reboot with no manager reachable the node brings its tasks
//! back up by itself.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::executor::{self, Executor};
use super::reporter::Reporter;
use super::Contact;
use crate::manager::objects::{Task, TaskState};
use crate::network::map::NetworkMap;

pub struct Worker {
    exec: Executor,
    pub reporter: Arc<Reporter>,
    pub contact: Arc<Contact>,
    /// `tasks.json`: the last assignments.
    file: PathBuf,
    /// `network-map.json`: the last network map, so that after a reboot with no manager
    /// reachable the tasks find their peers, names and VIPs again.
    map_file: PathBuf,
    controllers: Mutex<HashMap<String, Controller>>,
    /// What the file holds, to write it only when the set itself changes (not on every
    /// status report: SD cards wear).
    saved: Mutex<Vec<(String, TaskState, u64)>>,
}

struct Controller {
    task: watch::Sender<Option<Task>>,
    done: tokio::task::JoinHandle<()>,
}

impl Worker {
    /// Starts the worker, and the tasks it was last assigned.
    pub fn start(exec: Executor, dir: &Path) -> Arc<Worker> {
        let file = dir.join("tasks.json");
        let worker = Arc::new(Worker {
            exec,
            reporter: Arc::new(Reporter::default()),
            contact: Arc::new(Contact::default()),
            file,
            map_file: dir.join("network-map.json"),
            controllers: Mutex::new(HashMap::new()),
            saved: Mutex::new(Vec::new()),
        });
        match std::fs::read(&worker.file) {
            Ok(bytes) => match serde_json::from_slice::<Vec<Task>>(&bytes) {
                Ok(tasks) => {
                    tracing::info!(
                        "agent: resuming {} tasks from the last assignments",
                        tasks.len()
                    );
                    worker.assign(tasks);
                }
                Err(e) => tracing::warn!("agent: unreadable {}: {e}", worker.file.display()),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("agent: reading {}: {e}", worker.file.display()),
        }
        worker
    }

    pub fn containers(&self) -> Arc<crate::containers::Containers> {
        self.exec.containers.clone()
    }

    pub fn networking(&self) -> Arc<crate::network::Networking> {
        self.exec.network.clone()
    }

    /// Makes the node's tasks the set given: new ones start, changed ones learn of it,
    /// and ones no longer assigned are stopped and their containers removed.
    pub fn assign(&self, tasks: Vec<Task>) {
        self.save(&tasks);
        let Ok(mut controllers) = self.controllers.lock() else {
            return;
        };
        let mut keep = std::collections::HashSet::new();
        for task in tasks {
            keep.insert(task.id.clone());
            match controllers.get(&task.id) {
                Some(c) => {
                    c.task.send_if_modified(|current| {
                        let changed = current
                            .as_ref()
                            .is_none_or(|t| t.meta.version != task.meta.version);
                        *current = Some(task);
                        changed
                    });
                }
                None => {
                    let id = task.id.clone();
                    let (tx, rx) = watch::channel(Some(task));
                    let done = tokio::spawn(executor::control(
                        self.exec.clone(),
                        self.reporter.clone(),
                        self.contact.clone(),
                        rx,
                    ));
                    controllers.insert(id, Controller { task: tx, done });
                }
            }
        }
        controllers.retain(|id, c| {
            if keep.contains(id) {
                return true;
            }
            c.task.send_replace(None);
            false
        });
    }

    /// The node leaves the swarm: every task stops and its container goes.
    pub async fn leave(&self) {
        let controllers: Vec<Controller> = match self.controllers.lock() {
            Ok(mut c) => c.drain().map(|(_, c)| c).collect(),
            Err(_) => return,
        };
        for c in &controllers {
            c.task.send_replace(None);
        }
        for c in controllers {
            let _ = tokio::time::timeout(Duration::from_secs(30), c.done).await;
        }
        self.exec.network.reset().await;
        let _ = std::fs::remove_file(&self.file);
    }

    fn save(&self, tasks: &[Task]) {
        let mut key: Vec<(String, TaskState, u64)> = tasks
            .iter()
            .map(|t| (t.id.clone(), t.desired_state, t.spec_version))
            .collect();
        key.sort();
        let Ok(mut saved) = self.saved.lock() else {
            return;
        };
        if *saved == key {
            return;
        }
        match write_atomic(&self.file, tasks) {
            Ok(()) => *saved = key,
            Err(e) => tracing::warn!("agent: saving {}: {e}", self.file.display()),
        }
    }

    /// Keeps `map`, applied, for the next start. Called only when the map changed (an
    /// idle cluster's does not).
    pub fn save_network_map(&self, map: &NetworkMap) {
        if let Err(e) = write_atomic(&self.map_file, map) {
            tracing::warn!("agent: saving {}: {e}", self.map_file.display());
        }
    }

    /// The network map last applied, if one was kept.
    pub fn saved_network_map(&self) -> Option<NetworkMap> {
        let bytes = std::fs::read(&self.map_file).ok()?;
        match serde_json::from_slice(&bytes) {
            Ok(map) => Some(map),
            Err(e) => {
                tracing::warn!("agent: unreadable {}: {e}", self.map_file.display());
                None
            }
        }
    }
}

fn write_atomic<T: serde::Serialize + ?Sized>(file: &Path, value: &T) -> std::io::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = file.with_extension("json.tmp");
    let bytes = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        // A power cut must leave the old file or the new one: it is what brings the
        // tasks back up.
        f.sync_all()?;
    }
    std::fs::rename(&tmp, file)
}
