//! `service create` and `service update` flags, as `docker service` has them, and the
//! parsing of their values. Values are taken as strings and parsed here, not by clap, so
//! that a bad one is refused in docker's words: `invalid argument "x" for "--replicas"
//! flag: ...`.

use std::collections::BTreeMap;

use anyhow::anyhow;
use clap::Args;
use serde_json::{json, Value};

/// Flags `create` and `update` share, with the same names.
#[derive(Args, Default)]
pub struct CommonArgs {
    /// Exit immediately instead of waiting for the service to converge.
    #[arg(short, long)]
    pub detach: bool,
    /// Suppress progress output.
    #[arg(short, long)]
    pub quiet: bool,
    /// Working directory inside the container.
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>]).
    #[arg(short, long)]
    pub user: Option<String>,
    /// Container hostname.
    #[arg(long)]
    pub hostname: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image.
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Add Linux capabilities.
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities.
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// Limit CPUs.
    #[arg(long)]
    pub limit_cpu: Option<String>,
    /// Limit Memory.
    #[arg(long)]
    pub limit_memory: Option<String>,
    /// Limit maximum number of processes (default 0 = unlimited).
    #[arg(long)]
    pub limit_pids: Option<String>,
    /// Reserve CPUs.
    #[arg(long)]
    pub reserve_cpu: Option<String>,
    /// Reserve Memory.
    #[arg(long)]
    pub reserve_memory: Option<String>,
    /// Time to wait before force killing a container (ns|us|ms|s|m|h).
    #[arg(long)]
    pub stop_grace_period: Option<String>,
    /// Signal to stop the container.
    #[arg(long)]
    pub stop_signal: Option<String>,
    /// Number of tasks.
    #[arg(long)]
    pub replicas: Option<String>,
    /// Number of job tasks to run concurrently (default equal to --replicas).
    #[arg(long)]
    pub max_concurrent: Option<String>,
    /// Maximum number of tasks per node (default 0 = unlimited).
    #[arg(long = "replicas-max-per-node")]
    pub replicas_max_per_node: Option<String>,
    /// Restart when condition is met ("none", "on-failure", "any").
    #[arg(long)]
    pub restart_condition: Option<String>,
    /// Command run to check health (in a shell).
    #[arg(long)]
    pub health_cmd: Option<String>,
    /// Time between health checks (ms|s|m|h).
    #[arg(long)]
    pub health_interval: Option<String>,
    /// Longest a health check may run (ms|s|m|h).
    #[arg(long)]
    pub health_timeout: Option<String>,
    /// Consecutive failures needed to report unhealthy.
    #[arg(long)]
    pub health_retries: Option<String>,
    /// Start period for the container to initialize before failures count (ms|s|m|h).
    #[arg(long)]
    pub health_start_period: Option<String>,
    /// Disable any container-specified HEALTHCHECK.
    #[arg(long)]
    pub no_healthcheck: bool,
    /// Delay between restart attempts (ns|us|ms|s|m|h).
    #[arg(long)]
    pub restart_delay: Option<String>,
    /// Maximum number of restarts before giving up.
    #[arg(long)]
    pub restart_max_attempts: Option<String>,
    /// Window used to evaluate the restart policy (ns|us|ms|s|m|h).
    #[arg(long)]
    pub restart_window: Option<String>,
    /// Mount the container's root filesystem as read only.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub read_only: Option<bool>,
    /// Do not query the registry to resolve image digest and supported platforms.
    #[arg(long)]
    pub no_resolve_image: bool,
    #[command(flatten)]
    pub rollout: super::rollout::RolloutArgs,
}

#[derive(Args)]
pub struct CreateArgs {
    /// Service name.
    #[arg(long)]
    pub name: Option<String>,
    /// Service mode ("replicated", "global", "replicated-job", "global-job").
    #[arg(long, default_value = "replicated")]
    pub mode: String,
    /// Service labels.
    #[arg(short = 'l', long = "label")]
    pub labels: Vec<String>,
    /// Container labels.
    #[arg(long = "container-label")]
    pub container_labels: Vec<String>,
    /// Set environment variables.
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// Attach a filesystem mount to the service.
    #[arg(long = "mount")]
    pub mounts: Vec<String>,
    /// Placement constraints.
    #[arg(long = "constraint")]
    pub constraints: Vec<String>,
    /// Add a placement preference.
    #[arg(long = "placement-pref")]
    pub placement_prefs: Vec<String>,
    /// Network attachments.
    #[arg(long = "network")]
    pub networks: Vec<String>,
    /// Publish a port as a node port.
    #[arg(short, long = "publish")]
    pub publish: Vec<String>,
    /// Give the tasks a config as a file (`name`, or
    /// `source=name,target=/path,uid=0,gid=0,mode=0444`).
    #[arg(long = "config")]
    pub configs: Vec<String>,
    /// Give the tasks a secret as a file (`name`, or
    /// `source=name,target=name,uid=0,gid=0,mode=0444`; under `/run/secrets/`).
    #[arg(long = "secret")]
    pub secrets: Vec<String>,
    /// How the service is reached: vip (one virtual IP per network) or dnsrr (DNS round
    /// robin over its tasks).
    #[arg(long = "endpoint-mode", value_parser = ["vip", "dnsrr"])]
    pub endpoint_mode: Option<String>,
    /// Sysctl options.
    #[arg(long = "sysctl")]
    pub sysctls: Vec<String>,
    #[command(flatten)]
    pub common: CommonArgs,
    pub image: String,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

#[derive(Args)]
pub struct UpdateArgs {
    /// Service image tag.
    #[arg(long)]
    pub image: Option<String>,
    /// Service command args.
    #[arg(long)]
    pub args: Option<String>,
    /// Force update even if no changes require it.
    #[arg(long)]
    pub force: bool,
    /// Add or update an environment variable.
    #[arg(long = "env-add")]
    pub env_add: Vec<String>,
    /// Remove an environment variable.
    #[arg(long = "env-rm")]
    pub env_rm: Vec<String>,
    /// Add or update a service label.
    #[arg(long = "label-add")]
    pub label_add: Vec<String>,
    /// Remove a label by its key.
    #[arg(long = "label-rm")]
    pub label_rm: Vec<String>,
    /// Add or update a container label.
    #[arg(long = "container-label-add")]
    pub container_label_add: Vec<String>,
    /// Remove a container label by its key.
    #[arg(long = "container-label-rm")]
    pub container_label_rm: Vec<String>,
    /// Add or update a placement constraint.
    #[arg(long = "constraint-add")]
    pub constraint_add: Vec<String>,
    /// Remove a constraint.
    #[arg(long = "constraint-rm")]
    pub constraint_rm: Vec<String>,
    /// Add a placement preference.
    #[arg(long = "placement-pref-add")]
    pub placement_pref_add: Vec<String>,
    /// Remove a placement preference.
    #[arg(long = "placement-pref-rm")]
    pub placement_pref_rm: Vec<String>,
    /// Add or update a mount on a service.
    #[arg(long = "mount-add")]
    pub mount_add: Vec<String>,
    /// Remove a mount by its target path.
    #[arg(long = "mount-rm")]
    pub mount_rm: Vec<String>,
    /// Add a network.
    #[arg(long = "network-add")]
    pub network_add: Vec<String>,
    /// Remove a network.
    #[arg(long = "network-rm")]
    pub network_rm: Vec<String>,
    /// Add or update a published port.
    #[arg(long = "publish-add")]
    pub publish_add: Vec<String>,
    /// Remove a published port by its target port.
    #[arg(long = "publish-rm")]
    pub publish_rm: Vec<String>,
    /// Add or update a Sysctl option.
    #[arg(long = "sysctl-add")]
    pub sysctl_add: Vec<String>,
    /// Remove a Sysctl option.
    #[arg(long = "sysctl-rm")]
    pub sysctl_rm: Vec<String>,
    /// Add or update a secret on a service.
    #[arg(long = "secret-add")]
    pub secret_add: Vec<String>,
    /// Remove a secret.
    #[arg(long = "secret-rm")]
    pub secret_rm: Vec<String>,
    #[command(flatten)]
    pub common: CommonArgs,
    pub service: String,
}

/// A flag's value refused, in pflag's words.
pub fn bad(flag: &str, value: &str, why: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("invalid argument \"{value}\" for \"{flag}\" flag: {why}")
}

pub fn parse_u64(flag: &str, v: &str) -> anyhow::Result<u64> {
    v.parse::<u64>().map_err(|e| {
        let why = match e.kind() {
            std::num::IntErrorKind::PosOverflow => "value out of range",
            _ => "invalid syntax",
        };
        bad(
            flag,
            v,
            format!("strconv.ParseUint: parsing \"{v}\": {why}"),
        )
    })
}

pub fn parse_i64(flag: &str, v: &str) -> anyhow::Result<i64> {
    v.parse::<i64>().map_err(|e| {
        let why = match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                "value out of range"
            }
            _ => "invalid syntax",
        };
        bad(flag, v, format!("strconv.ParseInt: parsing \"{v}\": {why}"))
    })
}

/// A Go duration in nanoseconds.
pub fn parse_nanos(flag: &str, v: &str) -> anyhow::Result<i64> {
    crate::units::parse_duration(v).map_err(|e| bad(flag, v, e))
}

pub fn parse_memory(flag: &str, v: &str) -> anyhow::Result<i64> {
    crate::units::parse_bytes(v).map_err(|e| bad(flag, v, e))
}

/// A decimal number of CPUs as NanoCPUs, exactly (docker refuses what does not fit in
/// whole nanoCPUs rather than round it).
pub fn parse_cpus(flag: &str, v: &str) -> anyhow::Result<i64> {
    let unparsable = || bad(flag, v, format!("failed to parse {v} as a rational number"));
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(unparsable());
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > 9 {
        return Err(bad(flag, v, "value is too precise"));
    }
    let whole: i64 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| unparsable())?
    };
    let part: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().map_err(|_| unparsable())?
    };
    whole
        .checked_mul(1_000_000_000)
        .and_then(|w| w.checked_add(part))
        .ok_or_else(unparsable)
}

/// `key=value` (or a bare `key`, an empty value) pairs as a map, as docker's
/// `ConvertKVStringsToMap`.
pub fn kv_map(items: &[String]) -> BTreeMap<String, String> {
    items
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (kv.clone(), String::new()),
        })
        .collect()
}

/// A label's key must not be blank.
pub fn check_labels(flag: &str, labels: &[String]) -> anyhow::Result<()> {
    for l in labels {
        let key = l.split_once('=').map_or(l.as_str(), |(k, _)| k);
        if key.trim().is_empty() {
            return Err(bad(flag, l, format!("invalid label '{l}': empty name")));
        }
    }
    Ok(())
}

/// `KEY=VALUE`, or `KEY` alone taking this process's value if it has one, as docker's
/// `ValidateEnv`.
pub fn expand_env(e: &str) -> String {
    if e.contains('=') {
        return e.to_string();
    }
    match std::env::var(e) {
        Ok(v) => format!("{e}={v}"),
        Err(_) => e.to_string(),
    }
}

/// The key of a `KEY=VALUE` environment entry.
pub fn env_key(e: &str) -> &str {
    e.split_once('=').map_or(e, |(k, _)| k)
}

/// A capability as the Engine API names it: upper case with `CAP_` (but `ALL`, `RESET`).
pub fn normalize_cap(c: &str) -> String {
    let c = c.trim().to_ascii_uppercase();
    if c == "ALL" || c == "RESET" || c.starts_with("CAP_") {
        c
    } else {
        format!("CAP_{c}")
    }
}

/// Shell words, as docker's `--entrypoint` and `--args` split them (shlex): blanks
/// separate words, quotes group them, a backslash escapes outside single quotes.
pub fn shell_words(flag: &str, s: &str) -> anyhow::Result<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(bad(flag, s, "EOF found when expecting closing quote")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c) => word.push(c),
                            None => return Err(bad(flag, s, "EOF found after escape character")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(bad(flag, s, "EOF found when expecting closing quote")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err(bad(flag, s, "EOF found after escape character")),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// `--mount type=bind,source=/a,target=/b,readonly` as an Engine API `Mount`.
pub fn parse_mount(flag: &str, v: &str) -> anyhow::Result<Value> {
    let v = v.trim();
    if v.is_empty() {
        return Err(bad(flag, v, "value is empty"));
    }
    let mut m = json!({"Type": "volume"});
    for field in v.split(',') {
        let (key, val) = match field.split_once('=') {
            Some((k, val)) => (k.to_ascii_lowercase(), Some(val)),
            None => (field.to_ascii_lowercase(), None),
        };
        let flag_bool = |val: Option<&str>| {
            match val {
            None | Some("1") | Some("true") => Ok(true),
            Some("0") | Some("false") => Ok(false),
            Some(x) => Err(bad(
                flag,
                v,
                format!("invalid value for '{key}': invalid boolean value (\"{x}\"): must be one of \"true\", \"1\", \"false\", or \"0\" (default \"true\")"),
            )),
        }
        };
        if val.is_none() && !matches!(key.as_str(), "readonly" | "ro" | "volume-nocopy") {
            return Err(bad(
                flag,
                v,
                format!("invalid field '{field}' must be a key=value pair"),
            ));
        }
        if val.is_some_and(|x| x.trim().is_empty()) {
            return Err(bad(
                flag,
                v,
                format!("invalid value for '{key}': value is empty"),
            ));
        }
        let val_str = val.unwrap_or_default();
        match key.as_str() {
            "type" => m["Type"] = json!(val_str.to_ascii_lowercase()),
            "source" | "src" => m["Source"] = json!(val_str),
            "target" | "dst" | "destination" => m["Target"] = json!(val_str),
            "readonly" | "ro" => m["ReadOnly"] = json!(flag_bool(val)?),
            "bind-propagation" => {
                m["BindOptions"]["Propagation"] = json!(val_str.to_ascii_lowercase())
            }
            "volume-nocopy" => m["VolumeOptions"]["NoCopy"] = json!(flag_bool(val)?),
            "tmpfs-size" => {
                let size = crate::units::parse_bytes(val_str)
                    .map_err(|_| bad(flag, v, format!("invalid value for {key}: {val_str}")))?;
                m["TmpfsOptions"]["SizeBytes"] = json!(size);
            }
            "tmpfs-mode" => {
                let mode = u32::from_str_radix(val_str, 8)
                    .map_err(|_| bad(flag, v, format!("invalid value for {key}: {val_str}")))?;
                m["TmpfsOptions"]["Mode"] = json!(mode);
            }
            _ => return Err(bad(flag, v, format!("unknown option '{key}' in '{field}'"))),
        }
    }
    let kind = m["Type"].as_str().unwrap_or_default().to_string();
    if !matches!(kind.as_str(), "bind" | "volume" | "tmpfs") {
        return Err(bad(
            flag,
            v,
            format!("mount type '{kind}' is not supported (bind, volume or tmpfs)"),
        ));
    }
    for (opt, only) in [
        ("BindOptions", "bind"),
        ("VolumeOptions", "volume"),
        ("TmpfsOptions", "tmpfs"),
    ] {
        if !m[opt].is_null() && kind != only {
            let prefix = only;
            return Err(bad(
                flag,
                v,
                format!("cannot mix '{prefix}-*' options with mount type '{kind}'"),
            ));
        }
    }
    if m["Target"].as_str().unwrap_or_default().is_empty() {
        return Err(bad(flag, v, "target is required"));
    }
    Ok(m)
}

/// `--placement-pref spread=node.labels.zone`.
pub fn parse_pref(flag: &str, v: &str) -> anyhow::Result<Value> {
    match v.split_once('=') {
        Some(("spread", arg)) => Ok(json!({"Spread": {"SpreadDescriptor": arg}})),
        Some((strategy, _)) if !strategy.is_empty() => Err(bad(
            flag,
            v,
            format!("unsupported placement preference {strategy} (only spread is supported)"),
        )),
        _ => Err(bad(
            flag,
            v,
            "placement preference must be of the format \"<strategy>=<arg>\"",
        )),
    }
}

/// `--network name` or `--network name=web,alias=www`.
pub fn parse_network(flag: &str, v: &str) -> anyhow::Result<Value> {
    if !v.contains('=') {
        return Ok(json!({"Target": v}));
    }
    let mut net = json!({});
    let mut aliases = Vec::new();
    for field in v.split(',') {
        match field.split_once('=') {
            Some(("name", n)) => net["Target"] = json!(n),
            Some(("alias", a)) => aliases.push(a.to_string()),
            Some(("driver-opt", o)) => {
                let (k, val) = o.split_once('=').unwrap_or((o, ""));
                net["DriverOpts"][k] = json!(val);
            }
            _ => return Err(bad(flag, v, format!("invalid field key {field}"))),
        }
    }
    if net["Target"].as_str().unwrap_or_default().is_empty() {
        return Err(bad(flag, v, "network name/id is not specified"));
    }
    if !aliases.is_empty() {
        net["Aliases"] = json!(aliases);
    }
    Ok(net)
}

/// Each value of a repeated flag, parsed by `parse` (given the flag, for its errors).
pub fn parse_each<T>(
    values: &[String],
    flag: &str,
    parse: fn(&str, &str) -> anyhow::Result<T>,
) -> anyhow::Result<Vec<T>> {
    values.iter().map(|v| parse(flag, v)).collect()
}

/// `--config name` or `--config source=name,target=/etc/app.conf,uid=0,gid=0,mode=0440`.
pub fn parse_config(flag: &str, v: &str) -> anyhow::Result<Value> {
    parse_file_ref(flag, v, "ConfigName")
}

/// `--secret name` or `--secret source=name,target=db.pass,uid=0,gid=0,mode=0400` (a
/// relative target is under `/run/secrets/`).
pub fn parse_secret(flag: &str, v: &str) -> anyhow::Result<Value> {
    parse_file_ref(flag, v, "SecretName")
}

/// A config or secret reference given as a file (`name_key`: whose name it is).
fn parse_file_ref(flag: &str, v: &str, name_key: &str) -> anyhow::Result<Value> {
    let mut source = String::new();
    let mut file = json!({"UID": "0", "GID": "0", "Mode": 0o444});
    if !v.contains('=') {
        source = v.to_string();
    } else {
        for field in v.split(',') {
            match field.split_once('=') {
                Some(("source" | "src", s)) => source = s.to_string(),
                Some(("target", t)) => file["Name"] = json!(t),
                Some(("uid", u)) => file["UID"] = json!(u),
                Some(("gid", g)) => file["GID"] = json!(g),
                Some(("mode", m)) => {
                    let mode = u32::from_str_radix(m, 8)
                        .map_err(|_| bad(flag, v, format!("invalid mode {m:?}: octal expected")))?;
                    file["Mode"] = json!(mode);
                }
                _ => return Err(bad(flag, v, format!("invalid field key {field}"))),
            }
        }
    }
    if source.is_empty() {
        return Err(bad(flag, v, "source is required"));
    }
    if file.get("Name").is_none() {
        file["Name"] = json!(source);
    }
    Ok(json!({name_key: source, "File": file}))
}

/// `-p [PUBLISHED:]TARGET[/PROTOCOL]` or `-p published=8080,target=80,protocol=udp,mode=host`.
pub fn parse_publish(flag: &str, v: &str) -> anyhow::Result<Value> {
    let port = |p: &str| {
        p.parse::<u16>()
            .map_err(|_| bad(flag, v, format!("invalid port: {p}")))
    };
    let mut out = json!({"Protocol": "tcp", "PublishMode": "ingress"});
    if v.contains('=') {
        for field in v.split(',') {
            match field.split_once('=') {
                Some(("published", p)) => out["PublishedPort"] = json!(port(p)?),
                Some(("target", p)) => out["TargetPort"] = json!(port(p)?),
                Some(("protocol", p)) if matches!(p, "tcp" | "udp" | "sctp") => {
                    out["Protocol"] = json!(p)
                }
                Some(("mode", m)) if matches!(m, "ingress" | "host") => {
                    out["PublishMode"] = json!(m)
                }
                _ => return Err(bad(flag, v, format!("invalid field: {field}"))),
            }
        }
        if out["TargetPort"].is_null() {
            return Err(bad(flag, v, "missing mandatory field 'target'"));
        }
        return Ok(out);
    }
    let (ports, proto) = v.split_once('/').unwrap_or((v, "tcp"));
    if !matches!(proto, "tcp" | "udp" | "sctp") {
        return Err(bad(flag, v, format!("invalid proto: {proto}")));
    }
    out["Protocol"] = json!(proto);
    match ports.split_once(':') {
        Some((published, target)) => {
            out["PublishedPort"] = json!(port(published)?);
            out["TargetPort"] = json!(port(target)?);
        }
        None => out["TargetPort"] = json!(port(ports)?),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_refused_in_docker_words() {
        assert_eq!(parse_u64("--replicas", "3").unwrap(), 3);
        assert_eq!(
            parse_u64("--replicas", "x").unwrap_err().to_string(),
            "invalid argument \"x\" for \"--replicas\" flag: strconv.ParseUint: parsing \"x\": invalid syntax"
        );
        assert!(parse_u64("--replicas", "-1").is_err());
        assert_eq!(parse_i64("--limit-pids", "100").unwrap(), 100);
        assert_eq!(
            parse_nanos("--restart-delay", "1m30s").unwrap(),
            90_000_000_000
        );
        assert_eq!(
            parse_nanos("--restart-delay", "soon").unwrap_err().to_string(),
            "invalid argument \"soon\" for \"--restart-delay\" flag: time: invalid duration \"soon\""
        );
        assert_eq!(parse_memory("--reserve-memory", "64M").unwrap(), 64 << 20);
    }

    #[test]
    fn cpus_are_exact() {
        assert_eq!(parse_cpus("--limit-cpu", "1.5").unwrap(), 1_500_000_000);
        assert_eq!(parse_cpus("--limit-cpu", "0.25").unwrap(), 250_000_000);
        assert_eq!(parse_cpus("--limit-cpu", "2").unwrap(), 2_000_000_000);
        assert_eq!(parse_cpus("--limit-cpu", ".5").unwrap(), 500_000_000);
        assert_eq!(
            parse_cpus("--limit-cpu", "1.0000000000").unwrap(),
            1_000_000_000
        );
        assert!(parse_cpus("--limit-cpu", "0.0000000001")
            .unwrap_err()
            .to_string()
            .ends_with("value is too precise"));
        assert!(parse_cpus("--limit-cpu", "one").is_err());
        assert!(parse_cpus("--limit-cpu", ".").is_err());
        assert!(parse_cpus("--limit-cpu", "-1").is_err());
    }

    #[test]
    fn shell_words_as_shlex() {
        assert_eq!(
            shell_words("--args", "sh -c 'echo hi; sleep 1'").unwrap(),
            ["sh", "-c", "echo hi; sleep 1"]
        );
        assert_eq!(
            shell_words("--args", r#"a "b c" d\ e"#).unwrap(),
            ["a", "b c", "d e"]
        );
        assert_eq!(shell_words("--args", "  ").unwrap(), Vec::<String>::new());
        assert_eq!(shell_words("--args", "''").unwrap(), [""]);
        assert!(shell_words("--args", "'open").is_err());
    }

    #[test]
    fn mounts() {
        let m = parse_mount("--mount", "type=bind,source=/a,target=/b,readonly").unwrap();
        assert_eq!(
            m,
            json!({"Type": "bind", "Source": "/a", "Target": "/b", "ReadOnly": true})
        );
        let m = parse_mount("--mount", "src=data,dst=/data").unwrap();
        assert_eq!(
            m,
            json!({"Type": "volume", "Source": "data", "Target": "/data"})
        );
        let m = parse_mount("--mount", "type=tmpfs,target=/t,tmpfs-size=64m").unwrap();
        assert_eq!(m["TmpfsOptions"]["SizeBytes"], 64 << 20);
        assert!(parse_mount("--mount", "type=bind,source=/a")
            .unwrap_err()
            .to_string()
            .ends_with("target is required"));
        assert!(parse_mount("--mount", "type=nfs,target=/a").is_err());
        assert!(parse_mount("--mount", "type=volume,target=/a,tmpfs-size=1m").is_err());
        assert!(parse_mount("--mount", "target=/a,bogus=1").is_err());
        assert!(parse_mount("--mount", "target=/a,ro=maybe").is_err());
    }

    #[test]
    fn configs_as_files() {
        assert_eq!(
            parse_config("--config", "app.conf").unwrap(),
            json!({"ConfigName": "app.conf", "File": {"Name": "app.conf", "UID": "0", "GID": "0", "Mode": 0o444}})
        );
        assert_eq!(
            parse_config(
                "--config",
                "source=app,target=/etc/app.conf,uid=1000,mode=0440"
            )
            .unwrap(),
            json!({"ConfigName": "app", "File": {"Name": "/etc/app.conf", "UID": "1000", "GID": "0", "Mode": 0o440}})
        );
        assert!(parse_config("--config", "target=/x").is_err());
        assert_eq!(
            parse_secret("--secret", "source=db,target=pass,mode=0400").unwrap(),
            json!({"SecretName": "db", "File": {"Name": "pass", "UID": "0", "GID": "0", "Mode": 0o400}})
        );
        assert!(parse_config("--config", "source=a,mode=rw").is_err());
    }

    #[test]
    fn prefs_networks_ports() {
        assert_eq!(
            parse_pref("--placement-pref", "spread=node.labels.zone").unwrap(),
            json!({"Spread": {"SpreadDescriptor": "node.labels.zone"}})
        );
        assert!(parse_pref("--placement-pref", "pack=x").is_err());
        assert!(parse_pref("--placement-pref", "spread").is_err());
        assert_eq!(
            parse_network("--network", "backend").unwrap(),
            json!({"Target": "backend"})
        );
        assert_eq!(
            parse_network("--network", "name=backend,alias=db").unwrap(),
            json!({"Target": "backend", "Aliases": ["db"]})
        );
        assert_eq!(
            parse_publish("--publish", "8080:80").unwrap(),
            json!({"Protocol": "tcp", "PublishMode": "ingress", "PublishedPort": 8080, "TargetPort": 80})
        );
        assert_eq!(
            parse_publish("--publish", "published=53,target=53,protocol=udp,mode=host").unwrap(),
            json!({"Protocol": "udp", "PublishMode": "host", "PublishedPort": 53, "TargetPort": 53})
        );
        assert!(parse_publish("--publish", "80/icmp").is_err());
        assert!(parse_publish("--publish", "x:80").is_err());
    }

    #[test]
    fn small_things() {
        assert_eq!(normalize_cap("net_admin"), "CAP_NET_ADMIN");
        assert_eq!(normalize_cap("CAP_CHOWN"), "CAP_CHOWN");
        assert_eq!(normalize_cap("all"), "ALL");
        let m = kv_map(&["a=1".into(), "b".into(), "c=x=y".into()]);
        assert_eq!(m["a"], "1");
        assert_eq!(m["b"], "");
        assert_eq!(m["c"], "x=y");
        assert!(check_labels("--label", &["=x".into()]).is_err());
        assert_eq!(env_key("A=1"), "A");
        assert_eq!(expand_env("A=1"), "A=1");
    }
}
