//! Figures and the table.

use std::time::Duration;

use covey_tests::bench::sorted;

use super::{Config, Figures, CONDITIONS, POLL, WRITERS};

pub(super) fn ms(d: &[Duration]) -> Vec<f64> {
    d.iter().map(|d| d.as_secs_f64() * 1000.0).collect()
}

/// Nearest rank.
pub(super) fn p95(v: &[f64]) -> Option<f64> {
    let v = sorted(v);
    let rank = (v.len() as f64 * 0.95).ceil() as usize;
    v.get(rank.max(1) - 1).copied()
}

pub(super) fn fmt_ms(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.1} ms"))
}

pub(super) fn fmt_bytes(b: f64) -> String {
    const MB: f64 = 1024.0 * 1024.0;
    if b >= MB {
        format!("{:.1} MB", b / MB)
    } else {
        format!("{:.0} kB", b / 1024.0)
    }
}

pub(super) fn fmt_bytes_per_hour(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |b| format!("{}/h", fmt_bytes(b)))
}

pub(super) enum Unit {
    Ms,
    PerS,
    Mb,
    BytesPerHour,
}

impl Unit {
    fn fmt(&self, v: Option<f64>) -> String {
        match self {
            Unit::Ms => fmt_ms(v),
            Unit::PerS => v.map_or("n/a".into(), |v| format!("{v:.1}/s")),
            Unit::Mb => v.map_or("n/a".into(), |v| format!("{v:.1} MB")),
            Unit::BytesPerHour => fmt_bytes_per_hour(v),
        }
    }
}

pub(super) fn print_table(cfg: &Config, f: &[Figures; 2]) {
    let mut rows: Vec<(String, [Option<f64>; 2], Unit, &str)> = Vec::new();
    let both = |get: &dyn Fn(&Figures) -> Option<f64>| [get(&f[0]), get(&f[1])];
    for (c, condition) in CONDITIONS.iter().enumerate() {
        rows.push((
            format!("commit latency, median ({condition})"),
            both(&|x| x.write_median_ms[c]),
            Unit::Ms,
            "",
        ));
        rows.push((
            format!("commit latency, p95 ({condition})"),
            both(&|x| x.write_p95_ms[c]),
            Unit::Ms,
            "",
        ));
        rows.push((
            format!("  CLI+API overhead: no-op read, median ({condition})"),
            both(&|x| x.read_ms[c]),
            Unit::Ms,
            "",
        ));
        rows.push((
            format!("commits/s, {WRITERS} writers ({condition})"),
            both(&|x| x.commits_per_s[c]),
            Unit::PerS,
            "",
        ));
    }
    rows.push((
        format!("leader kill to new leader (median of {})", cfg.trials),
        both(&|x| x.failover_ms),
        Unit::Ms,
        "",
    ));
    let roles = ["manager (leader)", "manager (follower)", "worker"];
    let rss_goals = ["30 MB", "30 MB", "15 MB"];
    for (r, role) in roles.iter().enumerate() {
        rows.push((
            format!("idle RSS, {role}"),
            both(&|x| x.rss_mb[r]),
            Unit::Mb,
            rss_goals[r],
        ));
    }
    for (r, role) in roles.iter().enumerate() {
        rows.push((
            format!("idle PSS, {role}"),
            both(&|x| x.pss_mb[r]),
            Unit::Mb,
            rss_goals[r],
        ));
    }
    for (r, role) in roles.iter().enumerate() {
        rows.push((
            format!("idle disk writes, {role}"),
            both(&|x| x.disk_per_hour[r]),
            Unit::BytesPerHour,
            if r == 2 { "under 1 MB/h" } else { "" },
        ));
    }

    let header = ["figure", "covey", "docker swarm", "ratio", "goal"];
    let table: Vec<[String; 5]> = rows
        .iter()
        .map(|(label, v, unit, goal)| {
            let ratio = match v {
                [Some(c), Some(d)] if *d != 0.0 => format!("{:.2}", c / d),
                // Nothing at all from docker (its idle disk writes, say).
                [Some(c), Some(_)] if *c == 0.0 => "1.00".into(),
                [Some(_), Some(_)] => "inf".into(),
                _ => "n/a".into(),
            };
            [
                label.clone(),
                unit.fmt(v[0]),
                unit.fmt(v[1]),
                ratio,
                goal.to_string(),
            ]
        })
        .collect();
    let mut width = header.map(str::len);
    for row in &table {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: [&str; 5]| {
        let mut s = format!("{:<w$}", cells[0], w = width[0]);
        for (k, cell) in cells.iter().enumerate().skip(1) {
            s.push_str(&format!("  {:>w$}", cell, w = width[k]));
        }
        println!("{}", s.trim_end());
    };
    println!("\n== results (ratio = covey / docker swarm; lower is better except commits/s)");
    line(header);
    for row in &table {
        line([&row[0], &row[1], &row[2], &row[3], &row[4]]);
    }
    println!(
        "\nnotes:\n\
         - commit latency: {w} sequential `node update --label-add` of the worker through the \
         leader's CLI, each call timed (the CLI reads the node, then writes it); the no-op read \
         is a `node inspect` of the same node: write minus read is the store's part.\n\
         - commits/s: {WRITERS} CLI processes at once on this {cores}-core machine, each \
         changing its own label on the same node; an out-of-sequence refusal is retried and \
         not counted.\n\
         - degraded link: a one-way delay of 100 ms on every frame (200 ms round trips) and \
         10% of the packets each manager sends dropped on its way out: 10% of the packets \
         between two managers are lost each way, about 19% of round trips (1-0.9^2); the \
         worker's link is delayed, not lossy.\n\
         - failover: SIGKILL of the leader's daemon (docker: dockerd and its containerd), then a \
         `node inspect` on a surviving manager every {poll} ms until it names another leader; \
         the killed node is restarted and rejoins between trials. Clean link.\n\
         - idle PSS: the same trees' proportional set size: a page shared by several \
         processes is divided among them. Here that includes the other nodes' daemons of the \
         same engine on this machine, so it is lower than on a board running one node; RSS is \
         the upper bound.\n\
         - idle RSS: VmRSS summed over the daemon's process tree (covey: daemon and runtime \
         helper; docker: dockerd and containerd, each node its own), {settle} s after the last \
         activity. (A standalone dockerd+containerd idles at about 161 MB here.)\n\
         - idle disk writes: write_bytes of /proc/PID/io over the same trees during a {win} s \
         idle window, times 3600/{win}: an extrapolation, not an hour's measurement. Both \
         engines log at info level to a file on the same disk, which counts.",
        w = cfg.writes,
        cores = std::thread::available_parallelism().map_or(0, |n| n.get()),
        poll = POLL.as_millis(),
        settle = cfg.settle.as_secs(),
        win = cfg.window.as_secs(),
    );
    for (k, name) in ["covey", "docker swarm"].iter().enumerate() {
        if let Some(e) = &f[k].error {
            let what = if k == 1 && f[1].write_median_ms[0].is_none() {
                "DOCKER SWARM COULD NOT RUN HERE; its figures are missing"
            } else {
                "figures stopped early"
            };
            println!("\n{name}: {what}:\n{e}");
        }
    }
}
