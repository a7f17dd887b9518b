//! `GET /events`: the daemon's events as a stream of JSON objects (Docker's
//! `events.Message`), one per line. With `since` or `until`, the kept history is replayed
//! first; the stream then follows live events until `until` passes or the client goes.
//! An `until` already past replays and ends, as dockerd does.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::containers::async_stream;
use super::error::ApiError;
use super::filters::Filters;
use crate::daemon::Node;
use crate::events::{now_nanos, Event, Type};

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct EventsQuery {
    since: Option<String>,
    until: Option<String>,
    filters: Option<String>,
}

pub async fn events(
    State(node): State<Arc<Node>>,
    Query(q): Query<EventsQuery>,
) -> Result<Response, ApiError> {
    let since = q.since.as_deref().map(parse_time).transpose()?;
    let until = q.until.as_deref().map(parse_time).transpose()?;
    if let (Some(s), Some(u)) = (since, until) {
        if u < s {
            return Err(ApiError::bad_request(format!(
                "`since` time ({}) cannot be after `until` time ({})",
                q.since.unwrap_or_default(),
                q.until.unwrap_or_default()
            )));
        }
    }
    let filter = EventFilter::parse(q.filters.as_deref())?;
    let (history, mut live) = node.events.subscribe();
    let from = since.unwrap_or(0);
    // As dockerd: no history without a time bound; `until` alone replays all of it.
    let replay: Vec<Arc<Event>> = if since.is_none() && until.is_none() {
        Vec::new()
    } else {
        history
            .into_iter()
            .filter(|e| e.time_nano >= from && until.is_none_or(|u| e.time_nano <= u))
            .filter(|e| filter.matches(e))
            .collect()
    };
    let now = now_nanos();
    let only_past = until.is_some_and(|u| u <= now);
    let deadline = until.map(|u| {
        let left = u64::try_from(u.saturating_sub(now)).unwrap_or(0);
        tokio::time::Instant::now() + Duration::from_nanos(left)
    });
    let lines = async_stream(move |tx| async move {
        for event in replay {
            if tx.send(line(&event)).await.is_err() {
                return;
            }
        }
        if only_past {
            return;
        }
        let ends = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(ends);
        loop {
            let next = tokio::select! {
                _ = &mut ends => return,
                // The client went: nothing will read what comes next.
                _ = tx.closed() => return,
                next = live.recv() => next,
            };
            match next {
                Ok(event) if event.time_nano >= from && filter.matches(&event) => {
                    if tx.send(line(&event)).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!("an events client fell behind and missed {n} events");
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        Body::from_stream(lines),
    )
        .into_response())
}

/// One event as Docker's `events.Message`, newline-terminated. Containers and images
/// also carry the fields older clients read (`status`, `id`, `from`), as dockerd's do.
fn line(event: &Event) -> bytes::Bytes {
    let mut message = json!({
        "Type": event.kind.as_str(),
        "Action": event.action,
        "Actor": { "ID": event.actor, "Attributes": event.attributes },
        "scope": event.kind.scope(),
        "time": event.time_nano.div_euclid(1_000_000_000),
        "timeNano": event.time_nano,
    });
    if matches!(event.kind, Type::Container | Type::Image) {
        message["status"] = event.action.into();
        message["id"] = event.actor.clone().into();
    }
    if event.kind == Type::Container {
        message["from"] = event.attribute("image").into();
    }
    let mut bytes = serde_json::to_vec(&message).unwrap_or_default();
    bytes.push(b'\n');
    bytes.into()
}

/// A time as clients send it, in nanoseconds since the epoch: seconds with an optional
/// fraction (`1700000000.123456789`, what the docker CLI sends, having turned durations
/// and dates into that), or RFC 3339 for clients that send dates.
fn parse_time(raw: &str) -> Result<i64, ApiError> {
    let bad = || {
        ApiError::bad_request(format!(
            "invalid time {raw:?}: expected seconds since the epoch or RFC 3339"
        ))
    };
    let (secs, frac) = raw.split_once('.').unwrap_or((raw, ""));
    if !secs.is_empty() && secs.bytes().all(|b| b.is_ascii_digit()) {
        if !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let secs: i64 = secs.parse().map_err(|_| bad())?;
        // "1.5" is one and a half seconds: the fraction scaled by its digits.
        let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
        let nanos: i64 = digits.parse().map_err(|_| bad())?;
        return secs
            .checked_mul(1_000_000_000)
            .and_then(|s| s.checked_add(nanos))
            .ok_or_else(bad);
    }
    let at = humantime::parse_rfc3339_weak(raw).map_err(|_| bad())?;
    let since_epoch = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| bad())?;
    i64::try_from(since_epoch.as_nanos()).map_err(|_| bad())
}

/// Docker's event filters (`daemon/events/filter.go`): every key given must match. Names
/// (container, node, service...) match an event's actor ID or `name` by prefix, whatever
/// its type, so `container=web` shows only that container's events; covey's task events
/// also match `service` and `node` by the task's service and node.
struct EventFilter(Filters);

const KEYS: &[&str] = &[
    "config",
    "container",
    "daemon",
    "event",
    "image",
    "label",
    "network",
    "node",
    "plugin",
    "scope",
    "secret",
    "service",
    "task",
    "type",
    "volume",
];

/// Keys that name an event's actor, and nothing more.
const NAMES: &[&str] = &[
    "config",
    "container",
    "daemon",
    "network",
    "plugin",
    "secret",
    "task",
    "volume",
];

impl EventFilter {
    fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        Ok(EventFilter(Filters::parse(raw, KEYS)?))
    }

    fn matches(&self, e: &Event) -> bool {
        let f = &self.0;
        let name = e.attribute("name");
        let named = |v: &str| e.actor.starts_with(v) || name.starts_with(v);
        let task_of = |key: &str, v: &str| e.kind == Type::Task && e.attribute(key).starts_with(v);
        f.any("type", |v| v == e.kind.as_str())
            && f.any("event", |v| v == e.action)
            && f.any("scope", |v| v == e.kind.scope())
            && NAMES.iter().all(|key| f.any(key, named))
            && f.any("node", |v| named(v) || task_of("node.id", v))
            && f.any("service", |v| {
                named(v) || task_of("service.id", v) || task_of("service.name", v)
            })
            && f.any("image", |v| image_matches(e, v))
            && f.labels(&e.attributes)
    }
}

/// An image filter matches an image event's ID or name, or a container event's image,
/// each also without its tag, as dockerd's `matchImage`.
fn image_matches(e: &Event, wanted: &str) -> bool {
    let name = match e.kind {
        Type::Image => e.attribute("name"),
        _ => e.attribute("image"),
    };
    [e.actor.as_str(), name]
        .into_iter()
        .filter(|s| !s.is_empty())
        .any(|s| s == wanted || untagged(s) == wanted)
}

fn untagged(image: &str) -> String {
    match image.parse::<covey_images::Reference>() {
        Ok(r) => r.familiar_name(),
        Err(_) => image.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(raw: &str) -> EventFilter {
        EventFilter::parse(Some(raw)).expect("a filter")
    }

    #[test]
    fn times_parse_as_the_docker_cli_sends_them() {
        assert_eq!(parse_time("1700000000").unwrap(), 1_700_000_000_000_000_000);
        assert_eq!(
            parse_time("1700000000.000000042").unwrap(),
            1_700_000_000_000_000_042
        );
        assert_eq!(parse_time("1.5").unwrap(), 1_500_000_000);
        assert_eq!(parse_time("1970-01-01T00:00:02Z").unwrap(), 2_000_000_000);
        for bad in ["", "soon", "1.x", "-5"] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn filters_match_as_dockerd_matches() {
        let start = Event::new(Type::Container, "start", "abc123")
            .with("name", "web.1.xyz")
            .with("image", "busybox:latest")
            .with("com.docker.swarm.service.name", "web");
        let created = Event::new(Type::Service, "create", "svc9").with("name", "web");
        let task = Event::new(Type::Task, "update", "t1")
            .with("name", "web.1")
            .with("service.id", "svc9")
            .with("service.name", "web")
            .with("node.id", "node7");

        assert!(filter(r#"{"type":["service"]}"#).matches(&created));
        assert!(!filter(r#"{"type":["service"]}"#).matches(&start));
        assert!(filter(r#"{"type":{"container":true}}"#).matches(&start));
        assert!(filter(r#"{"event":["start"],"scope":["local"]}"#).matches(&start));
        assert!(!filter(r#"{"scope":["swarm"]}"#).matches(&start));
        // Names by prefix of ID or name, whatever the event's type.
        assert!(filter(r#"{"container":["abc"]}"#).matches(&start));
        assert!(!filter(r#"{"container":["abc"]}"#).matches(&created));
        assert!(filter(r#"{"service":["svc9"]}"#).matches(&created));
        assert!(
            filter(r#"{"service":["svc9"]}"#).matches(&task),
            "a task's service"
        );
        assert!(filter(r#"{"node":["node7"]}"#).matches(&task));
        assert!(!filter(r#"{"node":["node7"]}"#).matches(&created));
        // Images with or without their tag.
        assert!(filter(r#"{"image":["busybox"]}"#).matches(&start));
        assert!(filter(r#"{"image":["busybox:latest"]}"#).matches(&start));
        assert!(!filter(r#"{"image":["nginx"]}"#).matches(&start));
        assert!(filter(r#"{"label":["com.docker.swarm.service.name=web"]}"#).matches(&start));
        assert!(!filter(r#"{"label":["com.docker.swarm.service.name=db"]}"#).matches(&start));
        assert!(EventFilter::parse(Some(r#"{"colour":["red"]}"#)).is_err());
    }

    #[test]
    fn messages_are_dockers() {
        let mut e = Event::new(Type::Container, "die", "abc").with("image", "busybox");
        e.time_nano = 1_700_000_000_123_456_789;
        let v: serde_json::Value = serde_json::from_slice(&line(&e)).expect("json");
        assert_eq!(v["Type"], "container");
        assert_eq!(v["Actor"]["ID"], "abc");
        assert_eq!(v["scope"], "local");
        assert_eq!(v["time"], 1_700_000_000);
        assert_eq!(v["timeNano"], 1_700_000_000_123_456_789i64);
        assert_eq!(
            (v["status"].as_str(), v["from"].as_str()),
            (Some("die"), Some("busybox"))
        );
        let s = Event::new(Type::Service, "remove", "svc");
        let v: serde_json::Value = serde_json::from_slice(&line(&s)).expect("json");
        assert_eq!(v["scope"], "swarm");
        assert!(v.get("status").is_none());
    }
}
