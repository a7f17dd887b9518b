//! Flags made into the Engine API `ServiceSpec` that `service create` sends. The spec
//! stays JSON (see `update`: an update writes back every field the daemon sent).

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use super::flags::{
    bad, check_labels, env_key, expand_env, kv_map, normalize_cap, parse_config, parse_cpus,
    parse_each, parse_i64, parse_memory, parse_mount, parse_nanos, parse_network, parse_pref,
    parse_publish, parse_secret, parse_u64, shell_words, CommonArgs, CreateArgs,
};

/// Swarm's restart policy when none was given: what a first restart flag starts from.
const DEFAULT_RESTART_DELAY: i64 = 5_000_000_000;

/// `v[key]`, making `v` an object first if it is not one (a spec from the daemon is
/// peer input: a field of the wrong type is replaced, never a panic).
pub fn field<'a>(v: &'a mut Value, key: &str) -> &'a mut Value {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    &mut v[key]
}

/// `v[path[0]][path[1]]...`, each step made an object as `field` does.
pub fn at<'a>(mut v: &'a mut Value, path: &[&str]) -> &'a mut Value {
    for key in path {
        v = field(v, key);
    }
    v
}

/// The strings of a JSON array (anything else: none).
pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The spec `service create` sends.
pub fn create_spec(a: &CreateArgs) -> anyhow::Result<Value> {
    check_labels("-l, --label", &a.labels)?;
    check_labels("--container-label", &a.container_labels)?;
    let mut spec = json!({
        "Labels": kv_map(&a.labels),
        "TaskTemplate": {"ContainerSpec": {"Image": a.image}},
        "Mode": create_mode(&a.mode, &a.common)?,
    });
    if let Some(name) = &a.name {
        spec["Name"] = json!(name);
    }
    let cs = at(&mut spec, &["TaskTemplate", "ContainerSpec"]);
    if !a.args.is_empty() {
        cs["Args"] = json!(a.args);
    }
    if !a.container_labels.is_empty() {
        cs["Labels"] = json!(kv_map(&a.container_labels));
    }
    if !a.configs.is_empty() {
        let configs = parse_each(&a.configs, "--config", parse_config)?;
        cs["Configs"] = json!(configs);
    }
    if !a.secrets.is_empty() {
        let secrets = parse_each(&a.secrets, "--secret", parse_secret)?;
        cs["Secrets"] = json!(secrets);
    }
    if !a.env.is_empty() {
        // A later value for a key replaces an earlier one, in the later one's place.
        let mut env: Vec<String> = Vec::new();
        for e in a.env.iter().map(|e| expand_env(e)) {
            env.retain(|x| env_key(x) != env_key(&e));
            env.push(e);
        }
        cs["Env"] = json!(env);
    }
    if !a.mounts.is_empty() {
        let mounts = parse_each(&a.mounts, "--mount", parse_mount)?;
        cs["Mounts"] = json!(mounts);
    }
    if !a.sysctls.is_empty() {
        cs["Sysctls"] = json!(kv_map(&a.sysctls));
    }
    let (add, drop) = effective_caps(&a.common.cap_add, &a.common.cap_drop);
    if !add.is_empty() {
        cs["CapabilityAdd"] = json!(add);
    }
    if !drop.is_empty() {
        cs["CapabilityDrop"] = json!(drop);
    }
    let task = at(&mut spec, &["TaskTemplate"]);
    if !a.constraints.is_empty() {
        *at(task, &["Placement", "Constraints"]) = json!(a.constraints);
    }
    if !a.placement_prefs.is_empty() {
        let prefs = parse_each(&a.placement_prefs, "--placement-pref", parse_pref)?;
        *at(task, &["Placement", "Preferences"]) = json!(prefs);
    }
    if !a.networks.is_empty() {
        let mut nets = parse_each(&a.networks, "--network", parse_network)?;
        // Sorted by target, as docker sends them.
        nets.sort_by(|x, y| x["Target"].as_str().cmp(&y["Target"].as_str()));
        task["Networks"] = json!(nets);
    }
    if !a.publish.is_empty() {
        let ports = parse_each(&a.publish, "-p, --publish", parse_publish)?;
        spec["EndpointSpec"] = json!({"Ports": ports});
    }
    if let Some(mode) = &a.endpoint_mode {
        spec["EndpointSpec"]["Mode"] = json!(mode);
    }
    apply_common(&mut spec, &a.common)?;
    Ok(spec)
}

/// `--mode` with `--replicas` and `--max-concurrent`, as docker's `ToServiceMode`.
fn create_mode(mode: &str, c: &CommonArgs) -> anyhow::Result<Value> {
    let replicas = c
        .replicas
        .as_deref()
        .map(|r| parse_u64("--replicas", r))
        .transpose()?;
    let concurrent = c
        .max_concurrent
        .as_deref()
        .map(|r| parse_u64("--max-concurrent", r))
        .transpose()?;
    let max_per_node = max_per_node(c)?.unwrap_or(0);
    let no_replicas = || match replicas {
        Some(_) => {
            anyhow::bail!("replicas can only be used with replicated or replicated-job mode")
        }
        None => Ok(()),
    };
    let no_concurrent = || match concurrent {
        Some(_) => anyhow::bail!("max-concurrent can only be used with replicated-job mode"),
        None => Ok(()),
    };
    let no_max_per_node = || match max_per_node {
        0 => Ok(()),
        _ => anyhow::bail!(
            "replicas-max-per-node can only be used with replicated or replicated-job mode"
        ),
    };
    Ok(match mode {
        "replicated" => {
            no_concurrent()?;
            json!({"Replicated": {"Replicas": replicas.unwrap_or(1)}})
        }
        "global" => {
            no_replicas()?;
            no_max_per_node()?;
            no_concurrent()?;
            json!({"Global": {}})
        }
        "replicated-job" => json!({"ReplicatedJob": {
            "MaxConcurrent": concurrent.or(replicas).unwrap_or(1),
            "TotalCompletions": replicas.unwrap_or(1),
        }}),
        "global-job" => {
            no_max_per_node()?;
            no_concurrent()?;
            no_replicas()?;
            json!({"GlobalJob": {}})
        }
        other => anyhow::bail!("unknown mode: {other}, only replicated and global supported"),
    })
}

fn max_per_node(c: &CommonArgs) -> anyhow::Result<Option<u64>> {
    c.replicas_max_per_node
        .as_deref()
        .map(|r| parse_u64("--replicas-max-per-node", r))
        .transpose()
}

/// Capabilities to add and drop, as docker's `EffectiveCapAddCapDrop`: normalised,
/// `ALL` alone, adding winning over dropping, sorted.
fn effective_caps(add: &[String], drop: &[String]) -> (Vec<String>, Vec<String>) {
    let norm = |l: &[String]| -> BTreeSet<String> {
        let s: BTreeSet<String> = l.iter().map(|c| normalize_cap(c)).collect();
        if s.contains("ALL") {
            BTreeSet::from(["ALL".to_string()])
        } else {
            s
        }
    };
    let (add, drop) = (norm(add), norm(drop));
    let drop = drop
        .iter()
        .filter(|c| !add.contains(*c) && *c != "RESET")
        .cloned()
        .collect();
    let add = add.into_iter().filter(|c| c != "RESET").collect();
    (add, drop)
}

/// The flags `create` and `update` share, each applied only if given.
pub(super) fn apply_common(spec: &mut Value, c: &CommonArgs) -> anyhow::Result<()> {
    let cs = at(spec, &["TaskTemplate", "ContainerSpec"]);
    let mut set = |key: &str, v: &Option<String>| {
        if let Some(v) = v {
            cs[key] = json!(v);
        }
    };
    set("Dir", &c.workdir);
    set("User", &c.user);
    set("Hostname", &c.hostname);
    set("StopSignal", &c.stop_signal);
    if let Some(e) = &c.entrypoint {
        cs["Command"] = json!(shell_words("--entrypoint", e)?);
    }
    if let Some(g) = &c.stop_grace_period {
        cs["StopGracePeriod"] = json!(parse_nanos("--stop-grace-period", g)?);
    }
    if let Some(r) = c.read_only {
        cs["ReadOnly"] = json!(r);
    }
    if c.no_healthcheck {
        cs["Healthcheck"] = json!({"Test": ["NONE"]});
    } else {
        let hc = &mut cs["Healthcheck"];
        if let Some(cmd) = &c.health_cmd {
            hc["Test"] = json!(["CMD-SHELL", cmd]);
        }
        for (flag, key, v) in [
            ("--health-interval", "Interval", &c.health_interval),
            ("--health-timeout", "Timeout", &c.health_timeout),
            (
                "--health-start-period",
                "StartPeriod",
                &c.health_start_period,
            ),
        ] {
            if let Some(v) = v {
                hc[key] = json!(parse_nanos(flag, v)?);
            }
        }
        if let Some(r) = &c.health_retries {
            hc["Retries"] = json!(parse_u64("--health-retries", r)?);
        }
        if hc.is_null() {
            if let Some(cs) = cs.as_object_mut() {
                cs.remove("Healthcheck");
            }
        }
    }

    let task = at(spec, &["TaskTemplate"]);
    if let Some(v) = &c.limit_cpu {
        *at(task, &["Resources", "Limits", "NanoCPUs"]) = json!(parse_cpus("--limit-cpu", v)?);
    }
    if let Some(v) = &c.limit_memory {
        *at(task, &["Resources", "Limits", "MemoryBytes"]) =
            json!(parse_memory("--limit-memory", v)?);
    }
    if let Some(v) = &c.limit_pids {
        *at(task, &["Resources", "Limits", "Pids"]) = json!(parse_i64("--limit-pids", v)?);
    }
    if let Some(v) = &c.reserve_cpu {
        *at(task, &["Resources", "Reservations", "NanoCPUs"]) =
            json!(parse_cpus("--reserve-cpu", v)?);
    }
    if let Some(v) = &c.reserve_memory {
        *at(task, &["Resources", "Reservations", "MemoryBytes"]) =
            json!(parse_memory("--reserve-memory", v)?);
    }

    let restart_given = c.restart_condition.is_some()
        || c.restart_delay.is_some()
        || c.restart_max_attempts.is_some()
        || c.restart_window.is_some();
    if restart_given {
        let policy = field(task, "RestartPolicy");
        if !policy.is_object() {
            *policy = json!({
                "Condition": "any",
                "Delay": DEFAULT_RESTART_DELAY,
                "MaxAttempts": 0,
            });
        }
        if let Some(cond) = &c.restart_condition {
            if !matches!(cond.as_str(), "none" | "on-failure" | "any") {
                return Err(bad(
                    "--restart-condition",
                    cond,
                    "must be one of \"none\", \"on-failure\" or \"any\"",
                ));
            }
            policy["Condition"] = json!(cond);
        }
        if let Some(d) = &c.restart_delay {
            policy["Delay"] = json!(parse_nanos("--restart-delay", d)?);
        }
        if let Some(n) = &c.restart_max_attempts {
            policy["MaxAttempts"] = json!(parse_u64("--restart-max-attempts", n)?);
        }
        if let Some(w) = &c.restart_window {
            policy["Window"] = json!(parse_nanos("--restart-window", w)?);
        }
    }
    if let Some(n) = max_per_node(c)? {
        *at(task, &["Placement", "MaxReplicas"]) = json!(n);
    }
    super::rollout::apply(spec, &c.rollout)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Create {
        #[command(flatten)]
        a: CreateArgs,
    }

    fn create(args: &[&str]) -> anyhow::Result<Value> {
        let c = Create::try_parse_from(std::iter::once("create").chain(args.iter().copied()))?;
        create_spec(&c.a)
    }

    #[test]
    fn a_bare_create() {
        assert_eq!(
            create(&["busybox"]).unwrap(),
            json!({
                "Labels": {},
                "TaskTemplate": {"ContainerSpec": {"Image": "busybox"}},
                "Mode": {"Replicated": {"Replicas": 1}},
            })
        );
    }

    #[test]
    fn every_create_flag() {
        let spec = create(&[
            "--name",
            "web",
            "--replicas",
            "3",
            "-e",
            "A=1",
            "--env",
            "B=2",
            "-e",
            "A=3",
            "--label",
            "tier=front",
            "--container-label",
            "c=1",
            "-u",
            "nobody",
            "-w",
            "/srv",
            "--hostname",
            "h",
            "--entrypoint",
            "sh -c",
            "--restart-condition",
            "on-failure",
            "--restart-delay",
            "1m30s",
            "--restart-max-attempts",
            "3",
            "--restart-window",
            "2s",
            "--reserve-cpu",
            "0.5",
            "--reserve-memory",
            "64M",
            "--limit-cpu",
            "1.5",
            "--limit-memory",
            "1g",
            "--limit-pids",
            "100",
            "--constraint",
            "node.role==worker",
            "--constraint",
            "node.labels.zone==a",
            "--placement-pref",
            "spread=node.labels.zone",
            "--replicas-max-per-node",
            "2",
            "--stop-signal",
            "SIGINT",
            "--stop-grace-period",
            "30s",
            "--mount",
            "type=bind,source=/a,target=/b,readonly",
            "--network",
            "backend",
            "--read-only",
            "--cap-add",
            "net_admin",
            "--cap-drop",
            "chown",
            "--sysctl",
            "net.core.somaxconn=1024",
            "-d",
            "--no-resolve-image",
            "nginx:1.25",
            "echo",
            "-n",
            "hi",
        ])
        .unwrap();
        assert_eq!(
            spec,
            json!({
                "Name": "web",
                "Labels": {"tier": "front"},
                "TaskTemplate": {
                    "ContainerSpec": {
                        "Image": "nginx:1.25",
                        "Args": ["echo", "-n", "hi"],
                        "Labels": {"c": "1"},
                        "Env": ["B=2", "A=3"],
                        "Mounts": [{"Type": "bind", "Source": "/a", "Target": "/b", "ReadOnly": true}],
                        "Sysctls": {"net.core.somaxconn": "1024"},
                        "CapabilityAdd": ["CAP_NET_ADMIN"],
                        "CapabilityDrop": ["CAP_CHOWN"],
                        "Dir": "/srv",
                        "User": "nobody",
                        "Hostname": "h",
                        "StopSignal": "SIGINT",
                        "Command": ["sh", "-c"],
                        "StopGracePeriod": 30_000_000_000i64,
                        "ReadOnly": true,
                    },
                    "Placement": {
                        "Constraints": ["node.role==worker", "node.labels.zone==a"],
                        "Preferences": [{"Spread": {"SpreadDescriptor": "node.labels.zone"}}],
                        "MaxReplicas": 2,
                    },
                    "Networks": [{"Target": "backend"}],
                    "Resources": {
                        "Limits": {"NanoCPUs": 1_500_000_000i64, "MemoryBytes": 1i64 << 30, "Pids": 100},
                        "Reservations": {"NanoCPUs": 500_000_000, "MemoryBytes": 64i64 << 20},
                    },
                    "RestartPolicy": {
                        "Condition": "on-failure",
                        "Delay": 90_000_000_000i64,
                        "MaxAttempts": 3,
                        "Window": 2_000_000_000i64,
                    },
                },
                "Mode": {"Replicated": {"Replicas": 3}},
            })
        );
    }

    #[test]
    fn modes() {
        let mode = |args: &[&str]| {
            let mut all = args.to_vec();
            all.push("busybox");
            create(&all).map(|s| s["Mode"].clone())
        };
        assert_eq!(mode(&["--mode", "global"]).unwrap(), json!({"Global": {}}));
        assert_eq!(
            mode(&["--mode", "global-job"]).unwrap(),
            json!({"GlobalJob": {}})
        );
        assert_eq!(
            mode(&["--mode", "replicated-job", "--replicas", "5"]).unwrap(),
            json!({"ReplicatedJob": {"MaxConcurrent": 5, "TotalCompletions": 5}})
        );
        assert_eq!(
            mode(&[
                "--mode",
                "replicated-job",
                "--replicas",
                "5",
                "--max-concurrent",
                "2"
            ])
            .unwrap(),
            json!({"ReplicatedJob": {"MaxConcurrent": 2, "TotalCompletions": 5}})
        );
        assert_eq!(
            mode(&["--mode", "global", "--replicas", "2"])
                .unwrap_err()
                .to_string(),
            "replicas can only be used with replicated or replicated-job mode"
        );
        assert!(mode(&["--max-concurrent", "2"]).is_err());
        assert!(mode(&["--mode", "global", "--replicas-max-per-node", "1"]).is_err());
        assert_eq!(
            mode(&["--mode", "sideways"]).unwrap_err().to_string(),
            "unknown mode: sideways, only replicated and global supported"
        );
        assert_eq!(
            mode(&["--replicas", "x"]).unwrap_err().to_string(),
            "invalid argument \"x\" for \"--replicas\" flag: strconv.ParseUint: parsing \"x\": invalid syntax"
        );
    }

    #[test]
    fn bad_values_name_their_flag() {
        let err = |args: &[&str]| {
            let mut all = args.to_vec();
            all.push("busybox");
            create(&all).unwrap_err().to_string()
        };
        assert_eq!(
            err(&["--restart-condition", "sometimes"]),
            "invalid argument \"sometimes\" for \"--restart-condition\" flag: must be one of \"none\", \"on-failure\" or \"any\""
        );
        assert!(err(&["--reserve-memory", "lots"])
            .starts_with("invalid argument \"lots\" for \"--reserve-memory\" flag"));
        assert!(err(&["--limit-cpu", "x"])
            .starts_with("invalid argument \"x\" for \"--limit-cpu\" flag"));
        assert!(
            err(&["--stop-grace-period", "5"]).ends_with("time: missing unit in duration \"5\"")
        );
        assert!(err(&["--placement-pref", "pack=x"]).contains("only spread is supported"));
    }

    #[test]
    fn a_restart_flag_starts_from_swarms_defaults() {
        let spec = create(&["--restart-condition", "none", "busybox"]).unwrap();
        assert_eq!(
            spec["TaskTemplate"]["RestartPolicy"],
            json!({"Condition": "none", "Delay": 5_000_000_000i64, "MaxAttempts": 0})
        );
    }

    #[test]
    fn caps_as_docker_settles_them() {
        let spec = create(&[
            "--cap-add",
            "ALL",
            "--cap-add",
            "chown",
            "--cap-drop",
            "ALL",
            "x",
        ])
        .unwrap();
        let cs = &spec["TaskTemplate"]["ContainerSpec"];
        assert_eq!(cs["CapabilityAdd"], json!(["ALL"]));
        assert!(cs["CapabilityDrop"].is_null());
        let spec = create(&[
            "--cap-add",
            "chown",
            "--cap-drop",
            "chown",
            "--cap-drop",
            "kill",
            "x",
        ])
        .unwrap();
        let cs = &spec["TaskTemplate"]["ContainerSpec"];
        assert_eq!(cs["CapabilityAdd"], json!(["CAP_CHOWN"]));
        assert_eq!(cs["CapabilityDrop"], json!(["CAP_KILL"]));
    }
}
