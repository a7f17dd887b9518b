//! The dashboard (`--metrics-addr` on a manager) of a 3-node swarm, a manager and two
//! workers, in headless Chromium: a visitor without the token is refused, and once
//! logged in the page shows the nodes and a service's tasks per node, and follows a
//! worker going down without a reload; a new token logs it out. A screenshot is kept as
//! `target/test-artifacts/dashboard.png`.

use std::time::Duration;

use covey_tests::browser::Browser;
use covey_tests::prometheus::{get, metrics_addr};
use covey_tests::services::{running_on, sleepers, swarm_with, wait_running};
use serde_json::{json, Value};

const PORT: u16 = 9323;

/// Fills the login form with `token` and sends it.
fn log_in(browser: &mut Browser, token: &str) {
    let script = format!(
        "document.querySelector('input[name=token]').value = {}; \
         document.querySelector('#login').submit(); true",
        json!(token)
    );
    browser.eval(&script).expect("submitting the login form");
}

/// The page's nodes, `[id, state]` by row, and the running tasks' chips, `[task, node,
/// node of the group it is drawn in]`.
fn drawn(browser: &mut Browser) -> (Vec<Value>, Vec<Value>) {
    let nodes = browser
        .eval("[...document.querySelectorAll('#nodes tbody tr')].map(r => [r.dataset.node, r.dataset.state])")
        .expect("reading the nodes");
    let tasks = browser
        .eval(
            "[...document.querySelectorAll('#services tr[data-service=web] .task[data-state=running]')]\
             .map(t => [t.dataset.task, t.dataset.node, t.closest('.where').dataset.node])",
        )
        .expect("reading the tasks");
    let list = |v: Value| v.as_array().cloned().unwrap_or_default();
    (list(nodes), list(tasks))
}

#[test]
fn dashboard_shows_the_swarm_and_follows_it() {
    let (mut swarm, _registry, image) = swarm_with("dash", 3, 3, metrics_addr(PORT));
    sleepers(&swarm, &image, "web", 3);
    wait_running(&swarm, "web", 3);
    let ids: Vec<String> = (1..=3)
        .map(|i| swarm.id_of(1, i).expect("a node id"))
        .collect();
    swarm
        .node(1)
        .covey_ok(&["node", "update", "--label-add", "zone=east", &ids[1]]);
    let token = swarm
        .node(1)
        .covey_ok(&["swarm", "dashboard-token", "-q"])
        .trim()
        .to_string();
    assert!(token.starts_with("CVYDSH-1-"), "{token}");
    let base = format!("http://{}:{PORT}", swarm.addr(1));

    // Without the token, nothing but the login form; a worker serves no dashboard.
    let overview = format!("{base}/api/overview");
    let status = |i: usize, url: &str, headers: &[&str]| {
        get(&swarm.net, i, url, headers).unwrap_or_else(|e| panic!("GET {url}: {e:#}"))
    };
    assert_eq!(status(1, &overview, &[]).0, 401);
    assert_eq!(
        status(1, &overview, &["Authorization: Bearer CVYDSH-1-wrong"]).0,
        401
    );
    assert_eq!(
        status(1, &overview, &[&format!("Authorization: Bearer {token}")]).0,
        200
    );
    let (code, body) = status(2, &format!("http://{}:{PORT}/", swarm.addr(2)), &[]);
    assert!(
        code == 503 && body.contains("not a swarm manager"),
        "{code}: {body}"
    );

    let mut browser = Browser::launch(|program| swarm.net.command(1, program)).expect("chromium");
    browser
        .navigate(&format!("{base}/"))
        .expect("opening the dashboard");
    assert_eq!(
        browser.eval("location.pathname").unwrap(),
        "/login",
        "sent to log in"
    );
    log_in(&mut browser, "CVYDSH-1-wrong");
    browser
        .wait_for(
            "a wrong token refused",
            "document.querySelector('#error')?.textContent",
            Duration::from_secs(20),
        )
        .expect("the login form says why");
    assert_eq!(browser.eval("location.pathname").unwrap(), "/login");

    // Logged in: the three nodes, ready, and the service's tasks where they run.
    log_in(&mut browser, &token);
    browser
        .wait_for(
            "the dashboard drawn",
            "location.pathname === '/' && \
             document.querySelectorAll('#nodes tbody tr[data-state=ready]').length === 3 && \
             document.querySelectorAll('#services tr[data-service=web] .task[data-state=running]').length === 3",
            Duration::from_secs(30),
        )
        .expect("the nodes and the service's tasks on the page");
    let (nodes, tasks) = drawn(&mut browser);
    let mut shown: Vec<&str> = nodes.iter().filter_map(|n| n[0].as_str()).collect();
    shown.sort();
    let mut expected: Vec<&str> = ids.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(shown, expected, "{nodes:?}");
    let mut on: Vec<&str> = tasks.iter().filter_map(|t| t[1].as_str()).collect();
    on.sort();
    let mut running = running_on(&swarm, "web");
    running.sort();
    assert_eq!(
        on, running,
        "each task drawn on the node it runs on: {tasks:?}"
    );
    assert!(
        tasks.iter().all(|t| t[1] == t[2]),
        "grouped by node: {tasks:?}"
    );
    // Each node's platform, its board as the node found it (`covey.board`), its labels.
    let rows = browser
        .eval(
            "[...document.querySelectorAll('#nodes tbody tr')]\
             .map(r => [r.dataset.node, r.cells[5].textContent, r.cells[6].textContent, r.cells[7].textContent])",
        )
        .unwrap();
    let inspected = swarm.nodes(1).expect("node inspect");
    for row in rows.as_array().expect("rows") {
        let node = inspected
            .iter()
            .find(|n| n["ID"] == row[0])
            .unwrap_or_else(|| panic!("{row} inspected"));
        let board = node["Description"]["Engine"]["Labels"]["covey.board"].as_str();
        assert!(board.is_some_and(|b| !b.is_empty()), "{node}");
        assert_eq!(row[2].as_str(), board, "the board column: {row}");
        let arch = node["Description"]["Platform"]["Architecture"]
            .as_str()
            .unwrap_or("?");
        assert_eq!(
            row[1],
            format!("linux/{arch}"),
            "the platform column: {row}"
        );
        let labels = if row[0] == ids[1].as_str() {
            "zone=east"
        } else {
            ""
        };
        assert_eq!(row[3], labels, "the labels column: {row}");
    }

    // A worker goes down: the page, not reloaded, shows it.
    browser.eval("window.coveyTestMark = 'same page'").unwrap();
    swarm.daemons[2].stop();
    browser
        .wait_for(
            "node 3 down on the page",
            &format!(
                "document.querySelector('#nodes tr[data-node=\"{}\"]')?.dataset.state === 'down'",
                ids[2]
            ),
            Duration::from_secs(60),
        )
        .expect("the page follows the swarm");
    assert_eq!(
        browser.eval("window.coveyTestMark").unwrap(),
        "same page",
        "no reload"
    );
    // Its task is replaced on the nodes left, which the page shows too.
    browser
        .wait_for(
            "web's tasks moved off node 3",
            &format!(
                "[...document.querySelectorAll('#services tr[data-service=web] .task[data-state=running]')]\
                 .filter(t => t.dataset.node !== '{}').length === 3",
                ids[2]
            ),
            Duration::from_secs(60),
        )
        .expect("the replacement task on the page");
    assert!(
        browser
            .eval("document.querySelector('#events').textContent.includes('state: ready → down')")
            .unwrap()
            .as_bool()
            .unwrap_or(false),
        "the node's change among the events, as it changed"
    );
    let shot = covey_tests::workspace().join("target/test-artifacts/dashboard.png");
    browser.screenshot(&shot).expect("a screenshot");
    eprintln!("dashboard screenshot: {}", shot.display());

    // A new token: the old one no longer opens anything, and the browser is logged out.
    let rotated = swarm
        .node(1)
        .covey_ok(&["swarm", "dashboard-token", "--rotate", "-q"])
        .trim()
        .to_string();
    assert_ne!(rotated, token);
    let bearer = |t: &str| format!("Authorization: Bearer {t}");
    assert_eq!(status(1, &overview, &[&bearer(&token)]).0, 401);
    assert_eq!(status(1, &overview, &[&bearer(&rotated)]).0, 200);
    browser
        .wait_for(
            "the browser sent back to log in",
            "location.pathname === '/login'",
            Duration::from_secs(30),
        )
        .expect("the old session ended");
}
