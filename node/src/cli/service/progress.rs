//! Waiting for a service to converge, with docker's progress lines (`overall progress: 2
//! out of 3 tasks`, `1/3: running   [=====>]`, `verify: Service ... converged`).
//!
//! `tracker` says which lines to show and whether the service has converged. `Screen`
//! draws them: in place on a terminal; elsewhere each line once, when it changes (docker
//! repeats them every 200 ms, which makes logs and tests unreadable). `wait` polls the
//! daemon.

use std::collections::{HashMap, HashSet};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::Context;
use hyper::Method;
use serde_json::{json, Value};

use super::super::client::{escape, Client, DaemonError};
use super::super::session;
use super::tracker::{Line, TaskView, Tracker};

/// How long a service must stay converged before it is called so. Docker waits 5 s
/// (its update monitor), long enough for health checks to fail a fresh task; covey's
/// tasks with a health check only count as running once a check has passed, so 1 s
/// suffices, and commands return sooner.
const MONITOR: Duration = Duration::from_secs(1);
const POLL: Duration = Duration::from_millis(200);

/// A bar as docker draws it: 50 characters, on terminals wider than 110 columns.
fn bar(current: i64, total: i64) -> String {
    if total <= 0 {
        return String::new();
    }
    let pct = ((current as f64 / total as f64 * 100.0) as i64 / 2).clamp(0, 50) as usize;
    format!("[{}>{}] ", "=".repeat(pct), " ".repeat(50 - pct))
}

/// Where progress lines go.
pub struct Screen {
    tty: bool,
    quiet: bool,
    /// Bars only on a terminal wide enough for them, as docker.
    bars: bool,
    /// On a terminal: each id's row, counted from the first.
    rows: HashMap<String, usize>,
    /// Elsewhere: what was last printed for each id.
    last: HashMap<String, String>,
}

impl Screen {
    pub fn new(quiet: bool) -> Self {
        let tty = std::io::stdout().is_terminal();
        let width = session::size().map_or(200, |(_, cols)| cols as usize);
        Self {
            tty,
            quiet,
            bars: width > 110,
            rows: HashMap::new(),
            last: HashMap::new(),
        }
    }

    /// A screen that is not a terminal, whatever stdout is.
    #[cfg(test)]
    pub fn not_a_terminal() -> Self {
        Self {
            tty: false,
            quiet: false,
            bars: true,
            rows: HashMap::new(),
            last: HashMap::new(),
        }
    }

    /// The text for `line` (terminal escapes aside).
    pub fn text(&self, line: &Line, with_bar: bool) -> String {
        let bar = match line.bar {
            Some((cur, total)) if with_bar => bar(cur, total),
            _ => String::new(),
        };
        if line.id.is_empty() {
            line.action.clone()
        } else {
            format!("{}: {} {bar}", line.id, line.action)
        }
    }

    /// What `show` prints when stdout is not a terminal, if anything.
    pub fn plain(&mut self, line: &Line) -> Option<String> {
        if line.id.is_empty() {
            return Some(line.action.clone());
        }
        if line.action.trim().is_empty() {
            return None;
        }
        let text = self.text(line, false).trim_end().to_string();
        if self.last.get(&line.id) == Some(&text) {
            return None;
        }
        self.last.insert(line.id.clone(), text.clone());
        Some(text)
    }

    pub fn show(&mut self, line: &Line) {
        if self.quiet {
            return;
        }
        let mut out = std::io::stdout().lock();
        if !self.tty {
            if let Some(text) = self.plain(line) {
                let _ = writeln!(out, "{text}");
            }
            return;
        }
        // Docker's terminal drawing: each id keeps a row; the cursor rests below the
        // last one; a row is rewritten by going up to it and back.
        if line.id.is_empty() {
            self.rows.clear();
            let _ = writeln!(out, "{}", line.action);
        } else {
            let n = self.rows.len();
            let row = *self.rows.entry(line.id.clone()).or_insert(n);
            if row == n {
                let _ = writeln!(out);
            }
            let up = self.rows.len() - row;
            let text = self.text(line, self.bars);
            let _ = write!(out, "\x1b[{up}A\x1b[2K\r{text}\r\x1b[{up}B");
        }
        let _ = out.flush();
    }
}

/// The tasks of a service, asking only for those of its current spec (docker's
/// `_up-to-date` filter) unless the daemon refused that filter once.
async fn tasks(client: &Client, id: &str, up_to_date: &mut bool) -> anyhow::Result<Vec<Value>> {
    let query = |up_to_date: bool| {
        let mut f = json!({"service": [id]});
        if up_to_date {
            f["_up-to-date"] = json!(["true"]);
        }
        format!("/tasks?filters={}", escape(&f.to_string()))
    };
    if *up_to_date {
        match client.json(Method::GET, &query(true)).await {
            Err(e) if DaemonError::is_bad_request(&e) => *up_to_date = false,
            other => return other,
        }
    }
    client.json(Method::GET, &query(false)).await
}

/// Nodes that are not down.
async fn active_nodes(client: &Client) -> anyhow::Result<HashSet<String>> {
    let nodes: Vec<Value> = client.json(Method::GET, "/nodes").await?;
    Ok(nodes
        .iter()
        .filter(|n| n["Status"]["State"].as_str() != Some("down"))
        .filter_map(|n| n["ID"].as_str().map(str::to_string))
        .collect())
}

/// Shows progress until service `id` converges (printed as `shown`, what the user named
/// it), as docker's `ServiceProgress`. Ctrl-C stops waiting, not the service.
pub async fn wait(client: &Client, id: &str, shown: &str, quiet: bool) -> anyhow::Result<()> {
    let mut screen = Screen::new(quiet);
    let mut tracker: Option<Tracker> = None;
    let mut converged = false;
    let mut converged_at: Option<Instant> = None;
    let mut rollback = false;
    let mut message: Option<Line> = None;
    let mut up_to_date = true;
    let path = format!("/services/{}", escape(id));
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        let service: Value = client.json(Method::GET, &path).await?;
        let monitor = service["Spec"]["UpdateConfig"]["Monitor"]
            .as_u64()
            .filter(|n| *n > 0)
            .map_or(MONITOR, Duration::from_nanos);
        let tracker = match &mut tracker {
            Some(t) => t,
            None => tracker.insert(Tracker::new(&service)?),
        };
        let update = &service["UpdateStatus"];
        let update_message = update["Message"].as_str().unwrap_or_default();
        match update["State"].as_str().unwrap_or_default() {
            "updating" => rollback = false,
            "completed" if !converged => return Ok(()),
            "paused" => anyhow::bail!("service update paused: {update_message}"),
            "rollback_started" => {
                if !rollback && !update_message.is_empty() {
                    screen.show(&Line::new("rollback", update_message));
                }
                rollback = true;
            }
            "rollback_paused" => anyhow::bail!("service rollback paused: {update_message}"),
            "rollback_completed" => {
                if !converged {
                    message = Some(Line::new("rollback", update_message));
                }
                rollback = true;
            }
            _ => {}
        }
        if let Some(at) = converged_at.filter(|_| converged) {
            if at.elapsed() >= monitor {
                screen.show(&Line::new("verify", format!("Service {shown} converged")));
                if let Some(m) = &message {
                    screen.show(m);
                }
                return Ok(());
            }
        }

        let tasks: Vec<TaskView> = tasks(client, id, &mut up_to_date)
            .await?
            .iter()
            .map(TaskView::from_json)
            .collect();
        let active = active_nodes(client).await?;
        let mut lines = Vec::new();
        converged = tracker.update(&service, &tasks, &active, rollback, &mut lines);
        for l in &lines {
            screen.show(l);
        }
        if converged {
            // A job stays done once done: nothing to verify.
            if tracker.is_job() {
                screen.show(&Line::new("", "job complete"));
                return Ok(());
            }
            let at = *converged_at.get_or_insert_with(Instant::now);
            if let Some(left) = monitor.checked_sub(at.elapsed()) {
                screen.show(&Line::new(
                    "verify",
                    format!(
                        "Waiting {} seconds to verify that tasks are stable...",
                        left.as_secs() + 1
                    ),
                ));
            }
        } else {
            if converged_at.is_some() {
                screen.show(&Line::new("verify", "Detected task failure"));
            }
            converged_at = None;
        }

        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            r = &mut interrupted => {
                r.context("waiting for Ctrl-C")?;
                if !converged {
                    screen.show(&Line::new("", "Operation continuing in background."));
                    screen.show(&Line::new(
                        "",
                        format!("Use `covey service ps {shown}` to check progress."),
                    ));
                }
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars() {
        assert_eq!(bar(0, 0), "");
        assert_eq!(bar(0, 9), format!("[>{}] ", " ".repeat(50)));
        assert_eq!(bar(10, 10), format!("[{}>] ", "=".repeat(50)));
    }

    #[test]
    fn lines_are_printed_once_when_not_on_a_terminal() {
        let mut s = Screen::not_a_terminal();
        let l = |id: &str, action: &str| Line::new(id, action);
        assert_eq!(s.plain(&l("1/1", " ")), None);
        assert_eq!(
            s.plain(&l("1/1", "preparing")),
            Some("1/1: preparing".into())
        );
        assert_eq!(s.plain(&l("1/1", "preparing")), None);
        assert_eq!(s.plain(&l("1/1", "running  ")), Some("1/1: running".into()));
        assert_eq!(s.plain(&l("", "job complete")), Some("job complete".into()));
    }
}
