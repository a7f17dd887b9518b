//! The worker: the node's assigned tasks, each driven by its own controller (see
//! [`executor`](super::executor)), after swarmkit's `agent/worker`. The set is kept on
//! disk, so that after a reboot with no manager reachable the node brings its tasks
//! back up by itself.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::executor::{self, Executor};
use super::reporter::Reporter;
use super::Contact;
use crate::manager::objects::task::TaskFile;
use crate::manager::objects::{Task, TaskState};
use crate::network::map::NetworkMap;
use crate::seal::{Key, Sealed};

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
    /// The node's own key (`node.key`, 0600), which seals the tasks' secrets in the file:
    /// none if it could not be made, and then secrets are not saved.
    key: Option<Key>,
}

/// `tasks.json`: the assignments, their secrets taken out and sealed together.
#[derive(Serialize, Deserialize)]
struct Saved {
    tasks: Vec<Task>,
    /// Each task's secrets (task id → files), as JSON sealed under the node's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secrets: Option<Sealed>,
}

/// What the file held before secrets (a bare list), or holds now.
#[derive(Deserialize)]
#[serde(untagged)]
enum OnDisk {
    Saved(Saved),
    Bare(Vec<Task>),
}

/// The context the secrets in `tasks.json` are sealed for.
const SEALED_FOR: &str = "covey tasks.json secrets";

/// The set as the file keeps it: no secret in the clear.
fn seal_tasks(key: Option<&Key>, tasks: &[Task]) -> std::io::Result<Saved> {
    let mut tasks = tasks.to_vec();
    let secrets: BTreeMap<String, Vec<TaskFile>> = tasks
        .iter_mut()
        .filter(|t| !t.secrets.is_empty())
        .map(|t| (t.id.clone(), std::mem::take(&mut t.secrets)))
        .collect();
    let secrets = match (key, secrets.is_empty()) {
        (_, true) | (None, _) => None,
        (Some(key), false) => {
            let plain = serde_json::to_vec(&secrets).map_err(std::io::Error::other)?;
            Some(
                key.seal(&plain, SEALED_FOR)
                    .map_err(std::io::Error::other)?,
            )
        }
    };
    Ok(Saved { tasks, secrets })
}

/// The tasks read back, their secrets opened (left out, logged, if they do not).
fn unseal_tasks(key: Option<&Key>, saved: OnDisk) -> Vec<Task> {
    let (mut tasks, sealed) = match saved {
        OnDisk::Saved(s) => (s.tasks, s.secrets),
        OnDisk::Bare(tasks) => (tasks, None),
    };
    let Some(sealed) = sealed else {
        return tasks;
    };
    let opened = key
        .ok_or_else(|| "no node key".to_string())
        .and_then(|k| k.open(&sealed, SEALED_FOR).map_err(|e| e.to_string()))
        .and_then(|plain| serde_json::from_slice(&plain).map_err(|e| e.to_string()));
    match opened {
        Ok::<BTreeMap<String, Vec<TaskFile>>, _>(mut secrets) => {
            for t in &mut tasks {
                t.secrets = secrets.remove(&t.id).unwrap_or_default();
            }
        }
        Err(e) => tracing::warn!("agent: the saved tasks' secrets: {e}"),
    }
    tasks
}

struct Controller {
    task: watch::Sender<Option<Task>>,
    done: tokio::task::JoinHandle<()>,
}

impl Worker {
    /// Starts the worker, and the tasks it was last assigned. `key` seals their secrets in
    /// the saved assignments (none: secrets are not saved).
    pub fn start(exec: Executor, dir: &Path, key: Option<Key>) -> Arc<Worker> {
        let file = dir.join("tasks.json");
        let worker = Arc::new(Worker {
            exec,
            reporter: Arc::new(Reporter::default()),
            contact: Arc::new(Contact::default()),
            file,
            map_file: dir.join("network-map.json"),
            controllers: Mutex::new(HashMap::new()),
            saved: Mutex::new(Vec::new()),
            key,
        });
        match std::fs::read(&worker.file) {
            Ok(bytes) => match serde_json::from_slice::<OnDisk>(&bytes) {
                Ok(saved) => {
                    let tasks = unseal_tasks(worker.key.as_ref(), saved);
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
        match seal_tasks(self.key.as_ref(), tasks).and_then(|s| write_atomic(&self.file, &s)) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::objects::TaskStatus;

    fn task(id: &str, secret: &[u8]) -> Task {
        Task {
            id: id.into(),
            meta: Default::default(),
            service_id: "svc".into(),
            slot: 1,
            node_id: "n1".into(),
            spec_version: 1,
            spec: Default::default(),
            service_name: "svc".into(),
            job: false,
            desired_state: TaskState::Running,
            status: TaskStatus::default(),
            networks: Vec::new(),
            endpoint: Default::default(),
            configs: Vec::new(),
            secrets: vec![TaskFile {
                id: "s1".into(),
                target: "/run/secrets/db".into(),
                uid: 0,
                gid: 0,
                mode: 0o400,
                data: secret.to_vec(),
            }],
        }
    }

    #[test]
    fn saved_tasks_hold_no_secret_in_the_clear_and_read_back_whole() {
        let key = Key::generate().unwrap();
        let tasks = vec![task("t1", b"pa55w0rd-one"), task("t2", b"pa55w0rd-two")];
        let file = serde_json::to_string(&seal_tasks(Some(&key), &tasks).unwrap()).unwrap();
        assert!(!file.contains("pa55w0rd"), "{file}");
        // Nor in base64, as the task's JSON would carry it.
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(b"pa55w0rd-one");
        assert!(!file.contains(&b64[..12]), "{file}");
        let read = unseal_tasks(Some(&key), serde_json::from_str(&file).unwrap());
        assert_eq!(read[0].secrets, tasks[0].secrets);
        assert_eq!(read[1].secrets, tasks[1].secrets);
        // Another node's key opens nothing: the tasks come back without their secrets.
        let other = Key::generate().unwrap();
        let read = unseal_tasks(Some(&other), serde_json::from_str(&file).unwrap());
        assert_eq!(read.len(), 2);
        assert!(read.iter().all(|t| t.secrets.is_empty()));
    }

    #[test]
    fn without_a_key_secrets_are_not_saved_and_old_files_still_read() {
        let file = serde_json::to_string(&seal_tasks(None, &[task("t1", b"x")]).unwrap()).unwrap();
        let read = unseal_tasks(None, serde_json::from_str(&file).unwrap());
        assert_eq!(read.len(), 1);
        assert!(read[0].secrets.is_empty());
        // A file from before secrets: a bare list of tasks.
        let mut old = task("t1", b"");
        old.secrets.clear();
        let bare = serde_json::to_string(&vec![old]).unwrap();
        let read = unseal_tasks(None, serde_json::from_str(&bare).unwrap());
        assert_eq!(read[0].id, "t1");
    }
}
