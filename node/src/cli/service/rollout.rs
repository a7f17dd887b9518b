//! The `--update-*` and `--rollback-*` flags of `service create` and `update`, made into
//! the spec's `UpdateConfig` and `RollbackConfig` as the docker CLI makes them, and those
//! settings as `inspect --pretty` prints them.

use std::fmt::Write;

use clap::Args;
use serde_json::{json, Value};

use super::flags::{bad, parse_nanos, parse_u64};
use super::spec::field;
use crate::units::format_duration;

#[derive(Args, Default)]
pub struct RolloutArgs {
    /// Maximum number of tasks updated simultaneously (0 to update all at once).
    #[arg(long)]
    pub update_parallelism: Option<String>,
    /// Delay between updates (ns|us|ms|s|m|h).
    #[arg(long)]
    pub update_delay: Option<String>,
    /// Action on update failure ("pause", "continue", "rollback").
    #[arg(long)]
    pub update_failure_action: Option<String>,
    /// Duration after each task update to monitor for failure (ns|us|ms|s|m|h).
    #[arg(long)]
    pub update_monitor: Option<String>,
    /// Failure rate to tolerate during an update.
    #[arg(long)]
    pub update_max_failure_ratio: Option<String>,
    /// Update order ("start-first", "stop-first").
    #[arg(long)]
    pub update_order: Option<String>,
    /// Maximum number of tasks rolled back simultaneously (0 to roll back all at once).
    #[arg(long)]
    pub rollback_parallelism: Option<String>,
    /// Delay between task rollbacks (ns|us|ms|s|m|h).
    #[arg(long)]
    pub rollback_delay: Option<String>,
    /// Action on rollback failure ("pause", "continue").
    #[arg(long)]
    pub rollback_failure_action: Option<String>,
    /// Duration after each task rollback to monitor for failure (ns|us|ms|s|m|h).
    #[arg(long)]
    pub rollback_monitor: Option<String>,
    /// Failure rate to tolerate during a rollback.
    #[arg(long)]
    pub rollback_max_failure_ratio: Option<String>,
    /// Rollback order ("start-first", "stop-first").
    #[arg(long)]
    pub rollback_order: Option<String>,
}

/// One of the two configs' flags, by the prefix they share.
struct Flags<'a> {
    prefix: &'static str,
    parallelism: &'a Option<String>,
    delay: &'a Option<String>,
    failure_action: &'a Option<String>,
    monitor: &'a Option<String>,
    max_failure_ratio: &'a Option<String>,
    order: &'a Option<String>,
    actions: &'static [&'static str],
}

/// Sets the configs from the flags given; a config first given a flag starts from
/// Swarm's defaults, as the docker CLI's does.
pub fn apply(spec: &mut Value, a: &RolloutArgs) -> anyhow::Result<()> {
    let update = Flags {
        prefix: "update",
        parallelism: &a.update_parallelism,
        delay: &a.update_delay,
        failure_action: &a.update_failure_action,
        monitor: &a.update_monitor,
        max_failure_ratio: &a.update_max_failure_ratio,
        order: &a.update_order,
        actions: &["pause", "continue", "rollback"],
    };
    let rollback = Flags {
        prefix: "rollback",
        parallelism: &a.rollback_parallelism,
        delay: &a.rollback_delay,
        failure_action: &a.rollback_failure_action,
        monitor: &a.rollback_monitor,
        max_failure_ratio: &a.rollback_max_failure_ratio,
        order: &a.rollback_order,
        actions: &["pause", "continue"],
    };
    apply_one(field(spec, "UpdateConfig"), &update)?;
    apply_one(field(spec, "RollbackConfig"), &rollback)?;
    for key in ["UpdateConfig", "RollbackConfig"] {
        if spec[key].is_null() {
            if let Some(s) = spec.as_object_mut() {
                s.remove(key);
            }
        }
    }
    Ok(())
}

fn apply_one(config: &mut Value, f: &Flags) -> anyhow::Result<()> {
    let given = [
        f.parallelism,
        f.delay,
        f.failure_action,
        f.monitor,
        f.max_failure_ratio,
        f.order,
    ]
    .iter()
    .any(|v| v.is_some());
    if !given {
        return Ok(());
    }
    if !config.is_object() {
        *config = json!({
            "Parallelism": 1,
            "FailureAction": "pause",
            "Monitor": 5_000_000_000i64,
            "MaxFailureRatio": 0,
            "Order": "stop-first",
        });
    }
    let flag = |name: &str| format!("--{}-{name}", f.prefix);
    if let Some(v) = f.parallelism {
        config["Parallelism"] = json!(parse_u64(&flag("parallelism"), v)?);
    }
    if let Some(v) = f.delay {
        config["Delay"] = json!(parse_nanos(&flag("delay"), v)?);
    }
    if let Some(v) = f.monitor {
        config["Monitor"] = json!(parse_nanos(&flag("monitor"), v)?);
    }
    if let Some(v) = f.failure_action {
        if !f.actions.contains(&v.as_str()) {
            let names: Vec<String> = f.actions.iter().map(|a| format!("{a:?}")).collect();
            return Err(bad(
                &flag("failure-action"),
                v,
                format!("must be one of {}", names.join(", ")),
            ));
        }
        config["FailureAction"] = json!(v);
    }
    if let Some(v) = f.max_failure_ratio {
        let ratio: f64 = v.parse().map_err(|_| {
            bad(
                &flag("max-failure-ratio"),
                v,
                format!("strconv.ParseFloat: parsing {v:?}: invalid syntax"),
            )
        })?;
        config["MaxFailureRatio"] = json!(ratio);
    }
    if let Some(v) = f.order {
        if !matches!(v.as_str(), "start-first" | "stop-first") {
            return Err(bad(
                &flag("order"),
                v,
                "must be one of \"start-first\", \"stop-first\"",
            ));
        }
        config["Order"] = json!(v);
    }
    Ok(())
}

/// `UpdateConfig:` and `RollbackConfig:` as docker's pretty template prints them.
pub fn render(o: &mut String, spec: &Value) {
    for (key, title, order) in [
        ("UpdateConfig", "UpdateConfig", " Update order:      "),
        ("RollbackConfig", "RollbackConfig", " Rollback order:    "),
    ] {
        let c = &spec[key];
        if !c.is_object() {
            continue;
        }
        let _ = writeln!(
            o,
            "{title}:\n Parallelism:\t{}",
            c["Parallelism"].as_u64().unwrap_or(0)
        );
        if let Some(d) = c["Delay"].as_i64().filter(|d| *d > 0) {
            let _ = writeln!(o, " Delay:\t\t{}", format_duration(d));
        }
        let _ = writeln!(
            o,
            " On failure:\t{}",
            c["FailureAction"].as_str().unwrap_or("pause")
        );
        if let Some(m) = c["Monitor"].as_i64().filter(|m| *m > 0) {
            let _ = writeln!(o, " Monitoring Period: {}", format_duration(m));
        }
        let _ = writeln!(
            o,
            " Max failure ratio: {}",
            c["MaxFailureRatio"].as_f64().unwrap_or(0.0)
        );
        let _ = writeln!(o, "{order}{}", c["Order"].as_str().unwrap_or("stop-first"));
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        a: RolloutArgs,
    }

    fn spec(args: &[&str]) -> anyhow::Result<Value> {
        let c = Cmd::try_parse_from(std::iter::once("x").chain(args.iter().copied()))?;
        let mut spec = json!({"Name": "web"});
        apply(&mut spec, &c.a)?;
        Ok(spec)
    }

    #[test]
    fn flags_make_the_configs_from_swarms_defaults() {
        assert_eq!(spec(&[]).unwrap(), json!({"Name": "web"}));
        let s = spec(&[
            "--update-delay",
            "1m30s",
            "--update-order",
            "start-first",
            "--update-failure-action",
            "rollback",
            "--update-max-failure-ratio",
            "0.25",
            "--rollback-parallelism",
            "0",
            "--rollback-monitor",
            "1s",
        ])
        .unwrap();
        assert_eq!(
            s["UpdateConfig"],
            json!({"Parallelism": 1, "Delay": 90_000_000_000i64, "FailureAction": "rollback",
                   "Monitor": 5_000_000_000i64, "MaxFailureRatio": 0.25, "Order": "start-first"})
        );
        assert_eq!(s["RollbackConfig"]["Parallelism"], 0);
        assert_eq!(s["RollbackConfig"]["Monitor"], 1_000_000_000i64);
    }

    #[test]
    fn bad_values_are_refused_in_dockers_words() {
        let err = |args: &[&str]| spec(args).unwrap_err().to_string();
        assert_eq!(
            err(&["--update-delay", "soon"]),
            "invalid argument \"soon\" for \"--update-delay\" flag: time: invalid duration \"soon\""
        );
        assert!(err(&["--rollback-failure-action", "rollback"]).contains("\"pause\", \"continue\""));
        assert!(err(&["--update-order", "sideways"]).contains("--update-order"));
        assert!(err(&["--update-max-failure-ratio", "x"]).contains("ParseFloat"));
        assert!(err(&["--update-parallelism=-1"]).contains("--update-parallelism"));
    }

    #[test]
    fn pretty_shows_the_configs_as_docker_does() {
        let mut o = String::new();
        render(
            &mut o,
            &json!({"UpdateConfig": {"Parallelism": 2, "Delay": 10_000_000_000i64, "FailureAction": "pause",
                     "Monitor": 5_000_000_000i64, "MaxFailureRatio": 0, "Order": "stop-first"},
                    "RollbackConfig": {"Parallelism": 1, "FailureAction": "continue", "Monitor": 0,
                     "MaxFailureRatio": 0.5, "Order": "start-first"}}),
        );
        assert_eq!(
            o,
            "UpdateConfig:\n Parallelism:\t2\n Delay:\t\t10s\n On failure:\tpause\n Monitoring Period: 5s\n Max failure ratio: 0\n Update order:      stop-first\nRollbackConfig:\n Parallelism:\t1\n On failure:\tcontinue\n Max failure ratio: 0.5\n Rollback order:    start-first\n"
        );
    }
}
