//! A container's persistent record: what it was created as and where it stands, in
//! `containers/<id>/container.json`, written atomically so a crash leaves one version.

use std::path::Path;

use covey_runtime::ContainerConfig;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Exited,
}

impl Status {
    pub fn docker(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Exited => "exited",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub name: String,
    /// The image as the user named it, and its ID.
    pub image: String,
    pub image_id: String,
    pub config: ContainerConfig,
    /// The command the container runs (entrypoint and arguments merged).
    pub command: Vec<String>,
    pub created: String,
    pub status: Status,
    pub pid: Option<i32>,
    pub exit_code: i32,
    /// Killed by the kernel's OOM killer on its last run.
    #[serde(default)]
    pub oom_killed: bool,
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub finished_at: Option<String>,
    pub auto_remove: bool,
    /// Stdin kept open for attached clients (-i).
    #[serde(default)]
    pub open_stdin: bool,
    pub stop_signal: String,
    pub stop_timeout: u64,
    /// The `docker run` request as given, for `inspect`'s Config and HostConfig.
    #[serde(default)]
    pub request: serde_json::Value,
}

impl Record {
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let tmp = dir.join("container.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(&tmp, dir.join("container.json"))
    }

    pub fn load(dir: &Path) -> std::io::Result<Self> {
        let bytes = std::fs::read(dir.join("container.json"))?;
        serde_json::from_slice(&bytes).map_err(std::io::Error::other)
    }
}

pub fn now() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}
