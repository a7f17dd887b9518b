//! Registry credentials from `~/.docker/config.json`, as the docker CLI stores them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

/// Credentials for one registry.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Credentials {
    Anonymous,
    Basic {
        username: String,
        password: String,
    },
    /// An OAuth2 refresh or identity token, sent as the password in the token exchange.
    IdentityToken(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets, not even in debug logs.
        match self {
            Credentials::Anonymous => write!(f, "Anonymous"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, ****)"),
            Credentials::IdentityToken(_) => write!(f, "IdentityToken(****)"),
        }
    }
}

#[derive(Deserialize, Default)]
struct ConfigFile {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default, rename = "identitytoken")]
    identity_token: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid docker config JSON: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: the auth entry for {registry} is not base64 of user:password")]
    BadAuth { path: PathBuf, registry: String },
}

/// The docker config file the CLI would read: `$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json`.
pub fn default_docker_config() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// Looks up `registry` in a docker config file. A missing file means anonymous access.
pub fn lookup(path: &Path, registry: &str) -> Result<Credentials, AuthError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Credentials::Anonymous),
        Err(source) => {
            return Err(AuthError::Read {
                path: path.into(),
                source,
            })
        }
    };
    let file: ConfigFile = serde_json::from_slice(&bytes).map_err(|source| AuthError::Parse {
        path: path.into(),
        source,
    })?;
    let Some(entry) = file
        .auths
        .iter()
        .find(|(key, _)| key_matches(key, registry))
        .map(|(_, v)| v)
    else {
        return Ok(Credentials::Anonymous);
    };
    if let Some(token) = entry.identity_token.as_ref().filter(|t| !t.is_empty()) {
        return Ok(Credentials::IdentityToken(token.clone()));
    }
    if let Some(auth) = entry.auth.as_ref().filter(|a| !a.is_empty()) {
        let bad = || AuthError::BadAuth {
            path: path.into(),
            registry: registry.into(),
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| bad())?;
        let text = String::from_utf8(decoded).map_err(|_| bad())?;
        let (u, p) = text.split_once(':').ok_or_else(bad)?;
        return Ok(Credentials::Basic {
            username: u.into(),
            password: p.into(),
        });
    }
    match (&entry.username, &entry.password) {
        (Some(u), Some(p)) => Ok(Credentials::Basic {
            username: u.clone(),
            password: p.clone(),
        }),
        _ => Ok(Credentials::Anonymous),
    }
}

/// Docker keys Docker Hub as `https://index.docker.io/v1/` and others by host, with or
/// without a scheme and path.
fn key_matches(key: &str, registry: &str) -> bool {
    let host = key
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default();
    let hub = |h: &str| matches!(h, "docker.io" | "index.docker.io" | "registry-1.docker.io");
    host == registry || (hub(host) && hub(registry))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_docker_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNz"},
                "reg.example:5000":{"username":"a","password":"b"},
                "bad.example":{"auth":"!!!"}}}"#,
        )
        .unwrap();
        let basic = |u: &str, p: &str| Credentials::Basic {
            username: u.into(),
            password: p.into(),
        };
        assert_eq!(lookup(&path, "docker.io").unwrap(), basic("user", "pass"));
        assert_eq!(lookup(&path, "reg.example:5000").unwrap(), basic("a", "b"));
        assert_eq!(
            lookup(&path, "other.example").unwrap(),
            Credentials::Anonymous
        );
        assert!(matches!(
            lookup(&path, "bad.example"),
            Err(AuthError::BadAuth { .. })
        ));
        assert_eq!(
            lookup(&dir.path().join("none"), "x").unwrap(),
            Credentials::Anonymous
        );
        assert!(!format!("{:?}", basic("u", "secret")).contains("secret"));
    }
}
