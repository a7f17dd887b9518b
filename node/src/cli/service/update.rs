//! `service update`'s flags applied to the `ServiceSpec` read from the daemon. The spec
//! stays JSON: every field the daemon sent is written back, including those covey's
//! CLI does not know.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::flags::{
    check_labels, env_key, expand_env, kv_map, normalize_cap, parse_each, parse_mount,
    parse_network, parse_pref, parse_publish, parse_secret, parse_u64, shell_words, CommonArgs,
    UpdateArgs,
};
use super::spec::{apply_common, at, field, strings};

/// `service update`'s flags applied to the spec read from the daemon.
pub fn apply_update(spec: &mut Value, a: &UpdateArgs) -> anyhow::Result<()> {
    check_labels("--label-add", &a.label_add)?;
    check_labels("--container-label-add", &a.container_label_add)?;
    if !a.label_add.is_empty() || !a.label_rm.is_empty() {
        update_map(field(spec, "Labels"), &a.label_add, &a.label_rm);
    }

    let cs = at(spec, &["TaskTemplate", "ContainerSpec"]);
    if !a.container_label_add.is_empty() || !a.container_label_rm.is_empty() {
        update_map(
            field(cs, "Labels"),
            &a.container_label_add,
            &a.container_label_rm,
        );
    }
    if let Some(image) = &a.image {
        cs["Image"] = json!(image);
    }
    if let Some(args) = &a.args {
        cs["Args"] = json!(shell_words("--args", args)?);
    }
    if !a.env_add.is_empty() || !a.env_rm.is_empty() {
        let mut env = strings(&cs["Env"]);
        env.retain(|e| !a.env_rm.iter().any(|k| k == env_key(e)));
        for e in a.env_add.iter().map(|e| expand_env(e)) {
            match env.iter_mut().find(|x| env_key(x) == env_key(&e)) {
                Some(x) => *x = e,
                None => env.push(e),
            }
        }
        cs["Env"] = json!(env);
    }
    if !a.mount_add.is_empty() || !a.mount_rm.is_empty() {
        update_mounts(field(cs, "Mounts"), &a.mount_add, &a.mount_rm)?;
    }
    if !a.sysctl_add.is_empty() || !a.sysctl_rm.is_empty() {
        update_map(field(cs, "Sysctls"), &a.sysctl_add, &a.sysctl_rm);
    }
    if !a.common.cap_add.is_empty() || !a.common.cap_drop.is_empty() {
        update_caps(cs, &a.common.cap_add, &a.common.cap_drop);
    }
    if !a.secret_add.is_empty() || !a.secret_rm.is_empty() {
        let add = parse_each(&a.secret_add, "--secret-add", parse_secret)?;
        let secrets = field(cs, "Secrets");
        let mut list: Vec<Value> = secrets.as_array().cloned().unwrap_or_default();
        // Named by name or id; one added again replaces the one given before.
        list.retain(|s| {
            let named = |n: &str| s["SecretName"] == n || s["SecretID"] == n;
            !a.secret_rm.iter().any(|r| named(r))
                && !add
                    .iter()
                    .any(|n| named(n["SecretName"].as_str().unwrap_or_default()))
        });
        list.extend(add);
        *secrets = json!(list);
    }

    let task = at(spec, &["TaskTemplate"]);
    if !a.constraint_add.is_empty() || !a.constraint_rm.is_empty() {
        let c = at(task, &["Placement", "Constraints"]);
        let mut list = strings(c);
        list.extend(a.constraint_add.iter().cloned());
        list.retain(|x| !a.constraint_rm.contains(x));
        // Sorted, as docker does, so that the result is predictable.
        list.sort();
        *c = json!(list);
    }
    if !a.placement_pref_add.is_empty() || !a.placement_pref_rm.is_empty() {
        let rm = parse_each(&a.placement_pref_rm, "--placement-pref-rm", parse_pref)?;
        let add = parse_each(&a.placement_pref_add, "--placement-pref-add", parse_pref)?;
        let prefs = at(task, &["Placement", "Preferences"]);
        let mut list: Vec<Value> = prefs.as_array().cloned().unwrap_or_default();
        list.retain(|p| {
            !rm.iter()
                .any(|r| r["Spread"]["SpreadDescriptor"] == p["Spread"]["SpreadDescriptor"])
        });
        list.extend(add);
        *prefs = json!(list);
    }
    if !a.network_add.is_empty() || !a.network_rm.is_empty() {
        let add = parse_each(&a.network_add, "--network-add", parse_network)?;
        let nets = field(task, "Networks");
        let mut list: Vec<Value> = nets.as_array().cloned().unwrap_or_default();
        list.retain(|n| {
            !a.network_rm
                .iter()
                .any(|r| n["Target"].as_str() == Some(r.as_str()))
        });
        for n in add {
            if list.iter().any(|x| x["Target"] == n["Target"]) {
                anyhow::bail!(
                    "service is already attached to network {}",
                    n["Target"].as_str().unwrap_or_default()
                );
            }
            list.push(n);
        }
        list.sort_by(|x, y| x["Target"].as_str().cmp(&y["Target"].as_str()));
        *nets = json!(list);
    }
    if a.force {
        let n = task["ForceUpdate"].as_u64().unwrap_or(0);
        task["ForceUpdate"] = json!(n.saturating_add(1));
    }

    if !a.publish_add.is_empty() || !a.publish_rm.is_empty() {
        let add = parse_each(&a.publish_add, "--publish-add", parse_publish)?;
        let ports = at(spec, &["EndpointSpec", "Ports"]);
        let mut list: Vec<Value> = ports.as_array().cloned().unwrap_or_default();
        list.retain(|p| {
            let target = p["TargetPort"].as_u64().map(|t| t.to_string());
            !a.publish_rm.iter().any(|r| {
                let r = r.split_once('/').map_or(r.as_str(), |(port, _)| port);
                target.as_deref() == Some(r)
            })
        });
        list.retain(|p| {
            !add.iter()
                .any(|n| n["PublishedPort"] == p["PublishedPort"] && n["Protocol"] == p["Protocol"])
        });
        list.extend(add);
        *ports = json!(list);
    }

    update_mode(field(spec, "Mode"), &a.common)?;
    apply_common(spec, &a.common)
}

/// `--replicas` and `--max-concurrent` on an existing service, as docker's
/// `updateReplicas`.
fn update_mode(mode: &mut Value, c: &CommonArgs) -> anyhow::Result<()> {
    if let Some(r) = &c.replicas {
        let n = parse_u64("--replicas", r)?;
        match mode.get_mut("Replicated") {
            Some(rep) => *field(rep, "Replicas") = json!(n),
            None => anyhow::bail!("replicas can only be used with replicated mode"),
        }
    }
    if let Some(m) = &c.max_concurrent {
        let n = parse_u64("--max-concurrent", m)?;
        match mode.get_mut("ReplicatedJob") {
            Some(job) => *field(job, "MaxConcurrent") = json!(n),
            None => anyhow::bail!("max-concurrent can only be used with replicated-job mode"),
        }
    }
    Ok(())
}

/// A string map (labels, sysctls): keys removed, then pairs added.
fn update_map(v: &mut Value, add: &[String], rm: &[String]) {
    let mut map: BTreeMap<String, Value> = v
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    for k in rm {
        // `--sysctl-rm` takes `key=value` too; only the key counts.
        map.remove(k.split_once('=').map_or(k.as_str(), |(k, _)| k));
    }
    for (k, val) in kv_map(add) {
        map.insert(k, json!(val));
    }
    *v = json!(map);
}

/// Mounts added (replacing any on the same target), then removed by target; sorted by
/// source then target, as docker's `updateMounts`.
fn update_mounts(v: &mut Value, add: &[String], rm: &[String]) -> anyhow::Result<()> {
    let mut by_target: BTreeMap<String, Value> = BTreeMap::new();
    for m in add {
        let m = parse_mount("--mount-add", m)?;
        let target = m["Target"].as_str().unwrap_or_default().to_string();
        if by_target.insert(target, m).is_some() {
            anyhow::bail!("duplicate mount target");
        }
    }
    for m in v.as_array().cloned().unwrap_or_default() {
        let target = m["Target"].as_str().unwrap_or_default().to_string();
        by_target.entry(target).or_insert(m);
    }
    let mut mounts: Vec<Value> = by_target
        .into_iter()
        .filter(|(t, _)| !rm.contains(t))
        .map(|(_, m)| m)
        .collect();
    mounts.sort_by(|a, b| {
        (a["Source"].as_str(), a["Target"].as_str())
            .cmp(&(b["Source"].as_str(), b["Target"].as_str()))
    });
    *v = json!(mounts);
    Ok(())
}

/// Docker's tri-state update of capabilities: dropping one the service added only
/// forgets the addition, and adding one it dropped only forgets the drop; `RESET`
/// clears a list first.
fn update_caps(cs: &mut Value, add: &[String], drop: &[String]) {
    let set = |l: &[String]| -> BTreeSet<String> { l.iter().map(|c| normalize_cap(c)).collect() };
    let mut cap_add = set(&strings(&cs["CapabilityAdd"]));
    let mut cap_drop = set(&strings(&cs["CapabilityDrop"]));
    let mut to_add = set(add);
    let mut to_drop = set(drop);
    if to_add.remove("RESET") {
        cap_add.clear();
    }
    if to_drop.remove("RESET") {
        cap_drop.clear();
    }
    for c in &to_drop {
        if !to_add.contains(c) && !cap_add.remove(c) {
            cap_drop.insert(c.clone());
        }
    }
    for c in to_add {
        if !cap_drop.remove(&c) {
            cap_add.insert(c);
        }
    }
    cs["CapabilityAdd"] = json!(cap_add);
    cs["CapabilityDrop"] = json!(cap_drop);
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Update {
        #[command(flatten)]
        a: UpdateArgs,
    }

    fn update(spec: &Value, args: &[&str]) -> anyhow::Result<Value> {
        let u = Update::try_parse_from(std::iter::once("update").chain(args.iter().copied()))?;
        let mut spec = spec.clone();
        apply_update(&mut spec, &u.a)?;
        Ok(spec)
    }

    fn existing() -> Value {
        json!({
            "Name": "web",
            "Labels": {"a": "1", "b": "2"},
            "TaskTemplate": {
                "ContainerSpec": {
                    "Image": "nginx:1.25@sha256:abc",
                    "Env": ["A=1", "B=2"],
                    "CapabilityAdd": ["CAP_NET_ADMIN"],
                    "Mounts": [{"Type": "volume", "Source": "data", "Target": "/data"}],
                    "Init": true,
                },
                "Placement": {"Constraints": ["node.role==worker"]},
                "ForceUpdate": 2,
                "LogDriver": {"Name": "json-file"},
            },
            "Mode": {"Replicated": {"Replicas": 1}},
            "EndpointSpec": {"Mode": "vip"},
        })
    }

    #[test]
    fn update_changes_only_what_is_asked() {
        let spec = update(
            &existing(),
            &["--image", "nginx:1.26", "--replicas", "3", "web"],
        )
        .unwrap();
        let mut want = existing();
        want["TaskTemplate"]["ContainerSpec"]["Image"] = json!("nginx:1.26");
        want["Mode"]["Replicated"]["Replicas"] = json!(3);
        assert_eq!(spec, want);
    }

    #[test]
    fn update_lists_and_maps() {
        let spec = update(
            &existing(),
            &[
                "--env-add",
                "B=3",
                "--env-add",
                "C=4",
                "--env-rm",
                "A",
                "--label-add",
                "c=3",
                "--label-rm",
                "a",
                "--constraint-add",
                "node.labels.zone==a",
                "--constraint-rm",
                "node.role==worker",
                "--args",
                "sleep 1d",
                "--force",
                "--cap-drop",
                "net_admin",
                "--cap-drop",
                "kill",
                "--mount-add",
                "type=tmpfs,target=/tmp",
                "--mount-rm",
                "/data",
                "--network-add",
                "backend",
                "--restart-max-attempts",
                "5",
                "--limit-memory",
                "128m",
                "web",
            ],
        )
        .unwrap();
        let cs = &spec["TaskTemplate"]["ContainerSpec"];
        assert_eq!(cs["Env"], json!(["B=3", "C=4"]));
        assert_eq!(spec["Labels"], json!({"b": "2", "c": "3"}));
        assert_eq!(
            spec["TaskTemplate"]["Placement"]["Constraints"],
            json!(["node.labels.zone==a"])
        );
        assert_eq!(cs["Args"], json!(["sleep", "1d"]));
        assert_eq!(spec["TaskTemplate"]["ForceUpdate"], 3);
        // Dropping what was added only forgets the addition.
        assert_eq!(cs["CapabilityAdd"], json!([]));
        assert_eq!(cs["CapabilityDrop"], json!(["CAP_KILL"]));
        assert_eq!(cs["Mounts"], json!([{"Type": "tmpfs", "Target": "/tmp"}]));
        assert_eq!(
            spec["TaskTemplate"]["Networks"],
            json!([{"Target": "backend"}])
        );
        assert_eq!(
            spec["TaskTemplate"]["RestartPolicy"],
            json!({"Condition": "any", "Delay": 5_000_000_000i64, "MaxAttempts": 5})
        );
        assert_eq!(
            spec["TaskTemplate"]["Resources"],
            json!({"Limits": {"MemoryBytes": 128i64 << 20}})
        );
        // What the CLI does not know is sent back as it came.
        assert_eq!(cs["Init"], true);
        assert_eq!(
            spec["TaskTemplate"]["LogDriver"],
            json!({"Name": "json-file"})
        );
    }

    #[test]
    fn update_refuses_what_the_mode_cannot_take() {
        let mut global = existing();
        global["Mode"] = json!({"Global": {}});
        assert_eq!(
            update(&global, &["--replicas", "2", "web"])
                .unwrap_err()
                .to_string(),
            "replicas can only be used with replicated mode"
        );
        assert!(update(&existing(), &["--max-concurrent", "2", "web"]).is_err());
    }

    #[test]
    fn update_survives_a_spec_of_the_wrong_shape() {
        let spec = json!({"TaskTemplate": 5, "Labels": "x", "Mode": {"Replicated": 7}});
        let spec = update(
            &spec,
            &[
                "--image",
                "busybox",
                "--label-add",
                "a=1",
                "--replicas",
                "2",
                "x",
            ],
        )
        .unwrap();
        assert_eq!(spec["TaskTemplate"]["ContainerSpec"]["Image"], "busybox");
        assert_eq!(spec["Labels"], json!({"a": "1"}));
        assert_eq!(spec["Mode"]["Replicated"]["Replicas"], 2);
    }
}
