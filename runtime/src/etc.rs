//! Each container's own `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf`, written in its
//! state directory and bind-mounted in, as Docker does, so the image's files stay untouched.

use std::path::{Path, PathBuf};

use crate::config::{ContainerConfig, NetworkMode};
use crate::error::RuntimeError;

pub struct EtcFiles {
    pub hostname: PathBuf,
    pub hosts: PathBuf,
    pub resolv_conf: PathBuf,
}

pub fn write(dir: &Path, hostname: &str, cfg: &ContainerConfig) -> Result<EtcFiles, RuntimeError> {
    let files = EtcFiles {
        hostname: dir.join("hostname"),
        hosts: dir.join("hosts"),
        resolv_conf: dir.join("resolv.conf"),
    };
    let host_file = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let mut hosts = if cfg.network == NetworkMode::Host {
        host_file("/etc/hosts")
    } else {
        format!("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n")
    };
    for (name, addr) in &cfg.extra_hosts {
        hosts.push_str(&format!("{addr}\t{name}\n"));
    }
    let resolv = if !cfg.dns.is_empty() {
        cfg.dns
            .iter()
            .map(|d| format!("nameserver {d}\n"))
            .collect()
    } else if cfg.network == NetworkMode::Host {
        host_file("/etc/resolv.conf")
    } else {
        // A loopback resolver of the host is unreachable from another namespace.
        host_file("/etc/resolv.conf")
            .lines()
            .filter(|l| {
                !(l.starts_with("nameserver") && (l.contains(" 127.") || l.contains(" ::1")))
            })
            .map(|l| format!("{l}\n"))
            .collect()
    };
    for (path, text) in [
        (&files.hostname, format!("{hostname}\n")),
        (&files.hosts, hosts),
        (&files.resolv_conf, resolv),
    ] {
        std::fs::write(path, text).map_err(|source| RuntimeError::Io {
            path: path.clone(),
            source,
        })?;
    }
    Ok(files)
}
