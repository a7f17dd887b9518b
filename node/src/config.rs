//! The daemon's configuration: dockerd's flags where they mean the same, over a TOML file.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;

pub const DEFAULT_CONFIG_FILE: &str = "/etc/covey/covey.toml";
pub const DEFAULT_DATA_ROOT: &str = "/var/lib/covey";
pub const DEFAULT_EXEC_ROOT: &str = "/run/covey";
pub const DEFAULT_HOST: &str = "unix:///run/covey/covey.sock";
/// dockerd's port for the API over TLS.
pub const DEFAULT_TLS_PORT: u16 = 2376;

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
    pub tlsverify: Option<bool>,
    pub tlscacert: Option<PathBuf>,
    pub tlscert: Option<PathBuf>,
    pub tlskey: Option<PathBuf>,
    pub overlay_path: Option<OverlayPath>,
    /// A built-in board by name (`pi4`), instead of the one the device tree names.
    pub board: Option<String>,
    /// A board file, instead of a built-in board.
    pub board_file: Option<PathBuf>,
    /// Engine labels, `KEY=VALUE` (dockerd's `labels`), shown in `node inspect` and
    /// matched by `engine.labels.KEY` constraints.
    #[serde(default)]
    pub labels: Vec<String>,
    pub metrics_addr: Option<String>,
}

/// How the node carries overlay networks between nodes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OverlayPath {
    /// Kernel VXLAN where the kernel has it, else QUIC.
    #[default]
    Auto,
    /// QUIC for every network, as if the kernel had no VXLAN.
    Quic,
}

/// The settings the daemon runs with, after flags are laid over the file.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    /// The unix socket the API is served on, always: the covey CLI and the node's own
    /// tools speak to it.
    pub socket: PathBuf,
    /// Where the API is also served over TCP, only ever with TLS client certificates.
    pub tcp: Option<TcpHost>,
    pub insecure_registries: Vec<String>,
    pub debug: bool,
    pub overlay_path: OverlayPath,
    /// How the node's board is found.
    pub board: crate::board::Choice,
    /// The node's engine labels (the board's `covey.board` is added at start).
    pub labels: BTreeMap<String, String>,
    /// Where Prometheus metrics (every node) and the dashboard (managers) are served,
    /// over plain HTTP; none unless asked for.
    pub metrics_addr: Option<SocketAddr>,
}

/// The API over TCP: the address, and the files that make it TLS with client
/// certificates signed by `ca` (dockerd's `--tlsverify`).
#[derive(Debug, Clone)]
pub struct TcpHost {
    pub addr: SocketAddr,
    pub tls: TlsFiles,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The CA that client certificates must be signed by.
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// What was given on the command line.
#[derive(Debug, Default, Clone)]
pub struct Flags {
    pub config_file: Option<PathBuf>,
    pub data_root: Option<PathBuf>,
    pub exec_root: Option<PathBuf>,
    /// `-H`, as many as given (one unix socket, one TCP address).
    pub hosts: Vec<String>,
    pub insecure_registries: Vec<String>,
    pub debug: bool,
    pub tlsverify: bool,
    pub tlscacert: Option<PathBuf>,
    pub tlscert: Option<PathBuf>,
    pub tlskey: Option<PathBuf>,
    pub overlay_path: Option<OverlayPath>,
    pub board: Option<String>,
    pub board_file: Option<PathBuf>,
    /// `--label`, added to the file's.
    pub labels: Vec<String>,
    pub metrics_addr: Option<String>,
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
        let hosts = match flags.hosts.is_empty() {
            true => file.hosts,
            false => flags.hosts,
        };
        let mut socket = None;
        let mut tcp = None;
        for host in &hosts {
            match host.strip_prefix("tcp://") {
                Some(addr) if tcp.is_none() => tcp = Some(tcp_addr(addr)?),
                None if socket.is_none() => socket = Some(unix_socket_path(host)?),
                _ => bail!(
                    "covey serves one unix socket and one TCP address; {host:?} is one too many"
                ),
            }
        }
        let socket = socket.unwrap_or_else(|| exec_root.join("covey.sock"));
        let tls = TlsFlags {
            verify: flags.tlsverify || file.tlsverify.unwrap_or(false),
            ca: flags.tlscacert.or(file.tlscacert),
            cert: flags.tlscert.or(file.tlscert),
            key: flags.tlskey.or(file.tlskey),
        };
        let tcp = match tcp {
            Some(addr) => Some(TcpHost {
                addr,
                tls: tls.files(addr)?,
            }),
            None => None,
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
        let board = board_choice(
            (flags.board, flags.board_file),
            (file.board, file.board_file),
        )?;
        let mut labels = BTreeMap::new();
        for raw in file.labels.iter().chain(&flags.labels) {
            let (key, value) = engine_label(raw)?;
            labels.insert(key, value);
        }
        let metrics_addr = match flags.metrics_addr.or(file.metrics_addr) {
            Some(raw) => Some(metrics_addr(&raw)?),
            None => None,
        };
        Ok(Self {
            data_root,
            exec_root,
            socket,
            tcp,
            insecure_registries: insecure,
            debug: flags.debug || file.debug.unwrap_or(false),
            overlay_path: flags.overlay_path.or(file.overlay_path).unwrap_or_default(),
            board,
            labels,
            metrics_addr,
        })
    }
}

/// The board the flags name, else the file's, else detection; a board and a board file
/// given together are refused.
fn board_choice(
    flags: (Option<String>, Option<PathBuf>),
    file: (Option<String>, Option<PathBuf>),
) -> anyhow::Result<crate::board::Choice> {
    use crate::board::Choice;
    let pick = |(name, path): (Option<String>, Option<PathBuf>), what: &str| match (name, path) {
        (Some(_), Some(_)) => bail!("{what} name both a board and a board file: give one"),
        (Some(name), None) => Ok(Some(Choice::Named(name))),
        (None, Some(path)) => Ok(Some(Choice::File(path))),
        (None, None) => Ok(None),
    };
    let flags = pick(flags, "the flags")?;
    let file = pick(file, "the config file's board and board-file")?;
    Ok(flags.or(file).unwrap_or_default())
}

/// An engine label, `KEY=VALUE` or `KEY` (an empty value), as dockerd's `--label`.
/// `covey.` keys are covey's own (the board), so not a user's to set.
pub fn engine_label(raw: &str) -> anyhow::Result<(String, String)> {
    let (key, value) = raw.split_once('=').unwrap_or((raw, ""));
    let key = key.trim();
    if key.is_empty() || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!("invalid label {raw:?}: expected KEY=VALUE, the key without spaces");
    }
    if value.chars().any(char::is_control) {
        bail!("invalid label {raw:?}: the value has a control character");
    }
    if key.starts_with("covey.") {
        bail!("invalid label {raw:?}: keys under covey. are covey's own (covey.board comes from the board)");
    }
    Ok((key.to_string(), value.to_string()))
}

/// The TLS settings as given, before they are checked.
struct TlsFlags {
    verify: bool,
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

impl TlsFlags {
    /// The files TCP needs. Anyone who reaches a plaintext (or certificate-less) API port
    /// owns the node, so covey has no such mode: all four settings or no TCP.
    fn files(self, addr: SocketAddr) -> anyhow::Result<TlsFiles> {
        match self {
            TlsFlags {
                verify: true,
                ca: Some(ca),
                cert: Some(cert),
                key: Some(key),
            } => Ok(TlsFiles { ca, cert, key }),
            _ => bail!(
                "refusing to serve the API on tcp://{addr} without TLS client certificates: \
                 give --tlsverify with --tlscacert, --tlscert and --tlskey (covey has no plaintext TCP)"
            ),
        }
    }
}

/// A TCP host's address: `IP:PORT`, `:PORT` (all interfaces), `IP` (port 2376), or a name.
fn tcp_addr(raw: &str) -> anyhow::Result<SocketAddr> {
    let addr = raw.trim_end_matches('/');
    if let Ok(a) = addr.parse::<SocketAddr>() {
        return Ok(a);
    }
    if addr.is_empty() {
        return Ok(SocketAddr::new(
            Ipv4Addr::UNSPECIFIED.into(),
            DEFAULT_TLS_PORT,
        ));
    }
    if let Some(port) = addr.strip_prefix(':') {
        let port = port
            .parse()
            .with_context(|| format!("invalid host tcp://{raw}: bad port"))?;
        return Ok(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port));
    }
    let bare = addr.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, DEFAULT_TLS_PORT));
    }
    let named = match addr.contains(':') {
        true => addr.to_socket_addrs(),
        false => (addr, DEFAULT_TLS_PORT).to_socket_addrs(),
    };
    named.ok().and_then(|mut all| all.next()).with_context(|| {
        format!("invalid host tcp://{raw}: expected IP:PORT or a name that resolves")
    })
}

/// `--metrics-addr`: `IP:PORT`, or `:PORT` for every interface.
fn metrics_addr(raw: &str) -> anyhow::Result<SocketAddr> {
    let parsed = match raw.strip_prefix(':') {
        Some(port) => port
            .parse()
            .ok()
            .map(|p| SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), p)),
        None => raw.parse().ok(),
    };
    parsed.with_context(|| {
        format!("invalid metrics address {raw:?}: expected IP:PORT or :PORT (e.g. 0.0.0.0:9323)")
    })
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
        bail!("unsupported host {host:?}: covey speaks to its daemon on a unix socket (got {scheme}://); over TCP, use the docker CLI with --tlsverify");
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
        assert_eq!(c.board, crate::board::Choice::Detect);

        std::fs::write(
            &file,
            "board = \"pi4\"\nlabels = [\"zone=east\", \"gpu\"]\n",
        )
        .unwrap();
        let c = DaemonConfig::resolve(Flags {
            config_file: Some(file.clone()),
            labels: vec!["zone=west".into()],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.board, crate::board::Choice::Named("pi4".into()));
        let labels: Vec<_> = c.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(labels, ["gpu=", "zone=west"], "the flag's value wins");
        let c = DaemonConfig::resolve(Flags {
            config_file: Some(file.clone()),
            board_file: Some("/b.toml".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.board, crate::board::Choice::File("/b.toml".into()));
        for bad in ["covey.board=pi5", "=x", "a b=c"] {
            let err = DaemonConfig::resolve(Flags {
                config_file: Some(file.clone()),
                labels: vec![bad.into()],
                ..Default::default()
            })
            .unwrap_err();
            assert!(format!("{err:#}").contains(bad), "{err:#}");
        }

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
            .contains("unix socket"));
        assert!(unix_socket_path("nonsense").is_err());
    }

    fn with_hosts(hosts: &[&str], tls: bool) -> anyhow::Result<DaemonConfig> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("covey.toml");
        std::fs::write(&file, "").unwrap();
        DaemonConfig::resolve(Flags {
            config_file: Some(file),
            exec_root: Some("/e".into()),
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            tlsverify: tls,
            tlscacert: tls.then(|| "ca.pem".into()),
            tlscert: tls.then(|| "cert.pem".into()),
            tlskey: tls.then(|| "key.pem".into()),
            ..Default::default()
        })
    }

    #[test]
    fn tcp_only_with_client_certificates() {
        let c = with_hosts(&["tcp://127.0.0.1:2376"], true).unwrap();
        let tcp = c.tcp.expect("a TCP host");
        assert_eq!(tcp.addr, "127.0.0.1:2376".parse().unwrap());
        assert_eq!(tcp.tls.ca, PathBuf::from("ca.pem"));
        assert_eq!(c.socket, PathBuf::from("/e/covey.sock"), "the socket stays");
        let err = with_hosts(&["tcp://0.0.0.0:2375"], false).unwrap_err();
        assert!(format!("{err:#}").contains("--tlsverify"), "{err:#}");
        let c = with_hosts(&["unix:///s.sock", "tcp://:2377"], true).unwrap();
        assert_eq!(c.socket, PathBuf::from("/s.sock"));
        assert_eq!(c.tcp.unwrap().addr.port(), 2377);
        assert!(with_hosts(&["tcp://:1", "tcp://:2"], true).is_err());
        assert!(with_hosts(&["unix:///a", "unix:///b"], true).is_err());
    }

    #[test]
    fn metrics_addresses() {
        assert_eq!(
            metrics_addr("127.0.0.1:9323").unwrap(),
            "127.0.0.1:9323".parse().unwrap()
        );
        assert_eq!(
            metrics_addr(":9323").unwrap(),
            "0.0.0.0:9323".parse().unwrap()
        );
        let err = metrics_addr("localhost").unwrap_err().to_string();
        assert!(
            err.contains("\"localhost\"") && err.contains("IP:PORT"),
            "{err}"
        );
        assert!(metrics_addr(":x").is_err());
        // covey.toml's key, which the flag overrides.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("covey.toml");
        std::fs::write(&file, "metrics-addr = \":9323\"\n").unwrap();
        let flags = Flags {
            config_file: Some(file),
            ..Default::default()
        };
        let c = DaemonConfig::resolve(flags.clone()).unwrap();
        assert_eq!(c.metrics_addr, Some("0.0.0.0:9323".parse().unwrap()));
        let c = DaemonConfig::resolve(Flags {
            metrics_addr: Some("127.0.0.1:1".into()),
            ..flags
        })
        .unwrap();
        assert_eq!(c.metrics_addr, Some("127.0.0.1:1".parse().unwrap()));
    }

    #[test]
    fn tcp_addresses() {
        assert_eq!(tcp_addr("").unwrap(), "0.0.0.0:2376".parse().unwrap());
        assert_eq!(
            tcp_addr("10.0.0.1").unwrap(),
            "10.0.0.1:2376".parse().unwrap()
        );
        assert_eq!(tcp_addr("[::1]:99").unwrap(), "[::1]:99".parse().unwrap());
        assert_eq!(tcp_addr("[::1]").unwrap(), "[::1]:2376".parse().unwrap());
        assert_eq!(tcp_addr("localhost:2376").unwrap().port(), 2376);
        assert!(tcp_addr(":nope").is_err());
    }
}
