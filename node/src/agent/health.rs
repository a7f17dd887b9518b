//! Health checks, as Docker's: a command run in the task's container every interval; the
//! task counts as running once one passes, and fails as unhealthy after `retries` in a row
//! fail (those within the start period aside).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::containers::Containers;
use crate::manager::objects::service::{HealthConfig, Nanos};
use crate::manager::objects::TaskSpec;

/// Docker's defaults.
const INTERVAL: Duration = Duration::from_secs(30);
const TIMEOUT: Duration = Duration::from_secs(30);
const RETRIES: u64 = 3;

#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    pub args: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub start_period: Duration,
    pub retries: u64,
}

#[derive(Debug, PartialEq)]
pub enum Health {
    Healthy,
    Unhealthy,
}

fn nanos(n: Nanos, default: Duration) -> Duration {
    if n > 0 {
        Duration::from_nanos(n as u64)
    } else {
        default
    }
}

impl Check {
    /// The task's check, if it has one (`NONE` and an empty test have none).
    pub fn of(spec: &TaskSpec) -> Option<Check> {
        Check::from_config(spec.container_spec.healthcheck.as_ref()?)
    }

    /// The check a task runs: its spec's over its image's `HEALTHCHECK` (the image's
    /// `config` object, as `ImageService::config` holds it), as Docker merges them: a
    /// test given replaces the image's (`NONE` turns it off), and each setting given
    /// replaces the image's.
    pub fn of_task(spec: &TaskSpec, image_config: Option<&serde_json::Value>) -> Option<Check> {
        let image: Option<HealthConfig> = image_config
            .and_then(|c| c.get("config")?.get("Healthcheck"))
            .and_then(|h| serde_json::from_value(h.clone()).ok());
        let Some(mut merged) = image else {
            return Check::of(spec);
        };
        if let Some(h) = &spec.container_spec.healthcheck {
            if !h.test.is_empty() {
                merged.test = h.test.clone();
            }
            for (mine, theirs) in [
                (&mut merged.interval, h.interval),
                (&mut merged.timeout, h.timeout),
                (&mut merged.start_period, h.start_period),
            ] {
                if theirs > 0 {
                    *mine = theirs;
                }
            }
            if h.retries > 0 {
                merged.retries = h.retries;
            }
        }
        Check::from_config(&merged)
    }

    fn from_config(h: &HealthConfig) -> Option<Check> {
        let args = match h.test.split_first() {
            Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => rest.to_vec(),
            Some((kind, [cmd])) if kind == "CMD-SHELL" => {
                vec!["/bin/sh".into(), "-c".into(), cmd.clone()]
            }
            _ => return None,
        };
        Some(Check {
            args,
            interval: nanos(h.interval, INTERVAL),
            timeout: nanos(h.timeout, TIMEOUT),
            start_period: nanos(h.start_period, Duration::ZERO),
            retries: if h.retries > 0 { h.retries } else { RETRIES },
        })
    }
}

/// Checks container `name` until told of its health's end: `Healthy` once (the first
/// check that passes), then `Unhealthy` once, and no more.
pub async fn monitor(
    containers: Arc<Containers>,
    name: String,
    check: Check,
    tx: mpsc::Sender<Health>,
) {
    let started = Instant::now();
    let mut failures = 0;
    let mut healthy = false;
    loop {
        tokio::time::sleep(check.interval).await;
        let result = containers
            .probe(&name, check.args.clone(), check.timeout)
            .await;
        let passed = matches!(result, Ok(Some(0)));
        if !passed {
            tracing::debug!(container = %name, "health check failed: {result:?}");
        }
        if passed {
            failures = 0;
            if !healthy {
                healthy = true;
                if tx.send(Health::Healthy).await.is_err() {
                    return;
                }
            }
        } else if healthy || started.elapsed() >= check.start_period {
            failures += 1;
            if failures >= check.retries {
                let _ = tx.send(Health::Unhealthy).await;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(test: &[&str], interval: Nanos, retries: u64) -> TaskSpec {
        let mut s = TaskSpec::default();
        s.container_spec.healthcheck = Some(HealthConfig {
            test: test.iter().map(|t| t.to_string()).collect(),
            interval,
            retries,
            ..Default::default()
        });
        s
    }

    #[test]
    fn tests_become_commands_with_dockers_defaults() {
        let c = Check::of(&spec(&["CMD-SHELL", "wget -q localhost"], 0, 0)).unwrap();
        assert_eq!(c.args, ["/bin/sh", "-c", "wget -q localhost"]);
        assert_eq!(
            (c.interval, c.timeout, c.retries),
            (INTERVAL, TIMEOUT, RETRIES)
        );
        let c = Check::of(&spec(&["CMD", "true"], 1_000_000_000, 5)).unwrap();
        assert_eq!(c.args, ["true"]);
        assert_eq!((c.interval, c.retries), (Duration::from_secs(1), 5));
        assert_eq!(Check::of(&spec(&["NONE"], 0, 0)), None);
        assert_eq!(Check::of(&spec(&[], 0, 0)), None);
        assert_eq!(Check::of(&TaskSpec::default()), None);
    }

    #[test]
    fn the_images_check_is_the_default_and_the_spec_overrides_it() {
        let image = serde_json::json!({"config": {"Healthcheck": {
            "Test": ["CMD-SHELL", "test -e /tmp/ready"],
            "Interval": 1_000_000_000u64,
            "Retries": 2,
        }}});
        let c = Check::of_task(&TaskSpec::default(), Some(&image)).unwrap();
        assert_eq!(c.args, ["/bin/sh", "-c", "test -e /tmp/ready"]);
        assert_eq!((c.interval, c.retries), (Duration::from_secs(1), 2));
        // A setting from the spec replaces the image's; the test stays the image's.
        let c = Check::of_task(&spec(&[], 0, 7), Some(&image)).unwrap();
        assert_eq!(
            (c.args.len(), c.interval, c.retries),
            (3, Duration::from_secs(1), 7)
        );
        // --no-healthcheck.
        assert_eq!(Check::of_task(&spec(&["NONE"], 0, 0), Some(&image)), None);
        // An image without one: the spec's alone.
        let plain = serde_json::json!({"config": {"Cmd": ["sh"]}});
        assert_eq!(Check::of_task(&TaskSpec::default(), Some(&plain)), None);
    }
}
