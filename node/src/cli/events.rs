//! `covey events`: the daemon's events as they happen, as `docker events` prints them;
//! `--since` and `--until` take what docker's do (a duration back from now, a date, or
//! seconds since the epoch), sent as seconds since the epoch.

use std::time::{SystemTime, UNIX_EPOCH};

use clap::Args;
use hyper::Method;
use serde_json::Value;

use super::client::{escape, Client};
use super::filters;
use super::output::Format;

#[derive(Args)]
pub struct EventsArgs {
    /// Show events since this time (10m, 2024-05-01T10:00:00Z, or seconds since the epoch).
    #[arg(long)]
    since: Option<String>,
    /// Stop at this time; one in the past replays what was kept and ends.
    #[arg(long)]
    until: Option<String>,
    /// Only matching events (type=, event=, container=, image=, service=, node=, task=,
    /// label=, scope=).
    #[arg(short, long = "filter")]
    filters: Vec<String>,
    /// table: one line per event, as docker prints them; json: one object per line.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub async fn run(args: EventsArgs, client: &Client) -> anyhow::Result<()> {
    let now = SystemTime::now();
    let mut query = Vec::new();
    if let Some(since) = &args.since {
        query.push(format!("since={}", escape(&timestamp(since, now)?)));
    }
    if let Some(until) = &args.until {
        query.push(format!("until={}", escape(&timestamp(until, now)?)));
    }
    if let Some(filters) = filters::query(&args.filters)? {
        query.push(format!("filters={filters}"));
    }
    let path = match query.is_empty() {
        true => "/events".to_string(),
        false => format!("/events?{}", query.join("&")),
    };
    let resp = client.send(Method::GET, &path, Client::empty()).await?;
    Client::json_lines(resp, |event| {
        match args.format {
            Format::Json => println!("{event}"),
            Format::Table => println!("{}", pretty(&event)),
        }
        Ok(())
    })
    .await
}

/// What the docker CLI sends for `--since` and `--until` (its `GetTimestamp`): a
/// duration is that long before now, a date is its time, and seconds pass as they are.
fn timestamp(value: &str, now: SystemTime) -> anyhow::Result<String> {
    let since_epoch = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap_or_default();
    if value != "0" {
        if let Ok(back) = humantime::parse_duration(value) {
            let at = now.checked_sub(back).unwrap_or(UNIX_EPOCH);
            return Ok(since_epoch(at).as_secs().to_string());
        }
    }
    if let Ok(at) = humantime::parse_rfc3339_weak(value) {
        let d = since_epoch(at);
        return Ok(format!("{}.{:09}", d.as_secs(), d.subsec_nanos()));
    }
    let (secs, frac) = value.split_once('.').unwrap_or((value, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    anyhow::ensure!(
        !secs.is_empty() && digits(secs) && digits(frac),
        "failed to parse value as time or duration: {value:?}"
    );
    Ok(value.to_string())
}

/// `2024-05-01T10:00:00.000000000Z service update <id> (name=web, replicas.new=3, ...)`.
fn pretty(event: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let nanos = event["timeNano"].as_u64().unwrap_or(0);
    let at = UNIX_EPOCH + std::time::Duration::from_nanos(nanos);
    let mut line = format!(
        "{} {} {} {}",
        humantime::format_rfc3339_nanos(at),
        s(&event["Type"]),
        s(&event["Action"]),
        s(&event["Actor"]["ID"])
    );
    if let Some(attributes) = event["Actor"]["Attributes"].as_object() {
        if !attributes.is_empty() {
            // A JSON object's keys come sorted, as docker prints them.
            let pairs: Vec<String> = attributes
                .iter()
                .map(|(k, v)| format!("{k}={}", s(v)))
                .collect();
            line.push_str(&format!(" ({})", pairs.join(", ")));
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn times_are_sent_as_docker_sends_them() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(timestamp("10m", now).unwrap(), "999400");
        assert_eq!(timestamp("1h30m", now).unwrap(), "994600");
        assert_eq!(timestamp("0", now).unwrap(), "0");
        assert_eq!(timestamp("1700000000.5", now).unwrap(), "1700000000.5");
        assert_eq!(
            timestamp("1970-01-02T00:00:00Z", now).unwrap(),
            "86400.000000000"
        );
        assert!(timestamp("yesterday", now).is_err());
    }

    #[test]
    fn events_print_as_docker_prints_them() {
        let event = serde_json::json!({
            "Type": "service", "Action": "update",
            "Actor": {"ID": "svc1", "Attributes": {"replicas.old": "1", "name": "web", "replicas.new": "3"}},
            "timeNano": 1_700_000_000_000_000_001u64
        });
        assert_eq!(
            pretty(&event),
            "2023-11-14T22:13:20.000000001Z service update svc1 (name=web, replicas.new=3, replicas.old=1)"
        );
    }
}
