//! The daemon's configuration: dockerd's flags where they mean the same, over a TOML file.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;

pub const DEFAULT_CONFIG_FILE: &str = "/etc/covey/covey.toml";
pub const DEFAULT_DATA_ROOT: &str = "/var/lib/covey";
pub const DEFAULT_EXEC_ROOT: &str = "/run/covey";
pub const DEFAULT_HOST: &str = "unix:///run/covey/covey.sock";

/// `/etc/covey/covey.toml`. Unknown keys are refused, so a typo is not silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    pub data_root: Option<PathBuf>,
    pub exec_root: Option<PathBuf>,
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub insecure_registries: Vec<String>,
    pub debug: Option<bool>,
}

/// The settings the daemon runs with, after flags are laid over the file.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    /// The unix socket the API is served on.
    pub socket: PathBuf,
    pub insecure_registries: Vec<String>,
    pub debug: bool,
}

/// What was given on the command line.
#[derive(Debug, Default, Clone)]
pub struct Flags {
    pub config_file: Option<PathBuf>,
    pub data_root: Option<PathBuf>,
    pub exec_root: Option<PathBuf>,
    pub host: Option<String>,
    pub insecure_registries: Vec<String>,
    pub debug: bool,
}

impl DaemonConfig {
    pub fn resolve(flags: Flags) -> anyhow::Result<Self> {
        let file = match &flags.config_file {
            Some(path) => read_file(path)?,
            None if Path::new(DEFAULT_CONFIG_FILE).exists() => {
                read_file(Path::new(DEFAULT_CONFIG_FILE))?
            }
            None => FileConfig::default(),
        };
        let data_root = flags
            .data_root
            .or(file.data_root)
            .unwrap_or_else(|| DEFAULT_DATA_ROOT.into());
        let exec_root = flags
            .exec_root
            .or(file.exec_root)
            .unwrap_or_else(|| DEFAULT_EXEC_ROOT.into());
        if file.hosts.len() > 1 {
            bail!(
                "covey serves one API socket; the config file lists {} hosts",
                file.hosts.len()
            );
        }
        let host = flags.host.or_else(|| file.hosts.into_iter().next());
        let socket = match host {
            Some(h) => unix_socket_path(&h)?,
            None => exec_root.join("covey.sock"),
        };
        let mut insecure = file.insecure_registries;
        insecure.extend(flags.insecure_registries);
        for r in &insecure {
            if r.is_empty() || r.contains('/') && !r.contains("://") {
                bail!("invalid insecure registry {r:?}: expected HOST[:PORT]");
            }
        }
        let insecure = insecure
            .into_iter()
            .map(|r| {
                r.trim_start_matches("http://")
                    .trim_start_matches("https://")
                    .trim_end_matches('/')
                    .to_string()
            })
            .collect();
        Ok(Self {
            data_root,
            exec_root,
            socket,
            insecure_registries: insecure,
            debug: flags.debug || file.debug.unwrap_or(false),
        })
    }
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

/// `unix:///path` (or a bare path) to the path; other schemes are refused by name.
pub fn unix_socket_path(host: &str) -> anyhow::Result<PathBuf> {
    if let Some(path) = host.strip_prefix("unix://") {
        if path.is_empty() {
            bail!("invalid host {host:?}: no socket path");
        }
        return Ok(PathBuf::from(path));
    }
    if host.starts_with('/') {
        return Ok(PathBuf::from(host));
    }
    if let Some((scheme, _)) = host.split_once("://") {
        bail!("unsupported host {host:?}: covey serves its API on unix sockets only (got {scheme}://)");
    }
    bail!("invalid host {host:?}: expected unix:///path/to/socket")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_and_bad_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("covey.toml");
        std::fs::write(
            &file,
            "data-root = \"/a\"\ninsecure-registries = [\"reg:5000\"]\n",
        )
        .unwrap();
        let flags = Flags {
            config_file: Some(file.clone()),
            exec_root: Some("/e".into()),
            insecure_registries: vec!["http://other:1/".into()],
            ..Default::default()
        };
        let c = DaemonConfig::resolve(flags).unwrap();
        assert_eq!(c.data_root, PathBuf::from("/a"));
        assert_eq!(c.socket, PathBuf::from("/e/covey.sock"));
        assert_eq!(c.insecure_registries, vec!["reg:5000", "other:1"]);

        std::fs::write(&file, "data_roott = 1\n").unwrap();
        let err = DaemonConfig::resolve(Flags {
            config_file: Some(file),
            ..Default::default()
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("data_roott"), "{err:#}");
    }

    #[test]
    fn hosts() {
        assert_eq!(
            unix_socket_path("unix:///x/y.sock").unwrap(),
            PathBuf::from("/x/y.sock")
        );
        assert!(unix_socket_path("tcp://1.2.3.4:2375")
            .unwrap_err()
            .to_string()
            .contains("unix sockets only"));
        assert!(unix_socket_path("nonsense").is_err());
    }
}
