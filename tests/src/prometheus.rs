//! A node's `/metrics` read as Prometheus reads it: fetched inside the node's namespace,
//! and parsed by the Prometheus project's own OpenMetrics parser (its Python client,
//! Debian's python3-prometheus-client), which is strict: a line it cannot read, a
//! missing `# EOF`, a counter without `_total` fail the test.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{bail, Context};
use serde_json::Value;

use crate::cluster::Net;

/// Debian's interpreter, where Debian's python3-prometheus-client is installed.
const PYTHON: &str = "/usr/bin/python3";

const PARSE: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
families = [
    {"name": f.name, "type": f.type, "unit": f.unit,
     "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in f.samples]}
    for f in text_string_to_metric_families(sys.stdin.read())
]
print(json.dumps(families))
"#;

#[derive(Clone, Debug)]
pub struct Family {
    pub name: String,
    pub kind: String,
    pub unit: String,
    pub samples: Vec<Sample>,
}

#[derive(Clone, Debug)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Daemon arguments (for `services::swarm_with`) that serve metrics, and the dashboard
/// on managers, on `port` of every address of the node.
pub fn metrics_addr(port: u16) -> impl Fn(usize) -> Vec<String> {
    move |_| vec!["--metrics-addr".to_string(), format!("0.0.0.0:{port}")]
}

/// `GET url` from inside node `i`: the status code and the body.
pub fn get(net: &Net, i: usize, url: &str, headers: &[&str]) -> anyhow::Result<(u16, String)> {
    let mut curl = Command::new("curl");
    curl.args(["-s", "--max-time", "10", "-w", "\n%{http_code}"]);
    for h in headers {
        curl.args(["-H", h]);
    }
    let out = net.exec(i, curl.arg(url))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').context("no status from curl")?;
    let code = code
        .trim()
        .parse()
        .with_context(|| format!("curl {url}: {}", String::from_utf8_lossy(&out.stderr)))?;
    Ok((code, body.to_string()))
}

/// Node `i`'s metrics at `url`, parsed.
pub fn scrape(net: &Net, i: usize, url: &str) -> anyhow::Result<Vec<Family>> {
    let (code, body) = get(net, i, url, &[])?;
    if code != 200 {
        bail!("{url} answered {code}: {body}");
    }
    parse(&body)
}

/// The OpenMetrics text `text`, as Prometheus' parser reads it.
pub fn parse(text: &str) -> anyhow::Result<Vec<Family>> {
    let mut child = Command::new(PYTHON)
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running the Prometheus parser (python3-prometheus-client)")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(text.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "Prometheus' parser refused the metrics: {}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let families: Vec<Value> = serde_json::from_slice(&out.stdout)?;
    Ok(families
        .iter()
        .map(|f| Family {
            name: str_of(&f["name"]),
            kind: str_of(&f["type"]),
            unit: str_of(&f["unit"]),
            samples: f["samples"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| Sample {
                    name: str_of(&s["name"]),
                    labels: s["labels"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), str_of(v)))
                        .collect(),
                    value: s["value"].as_f64().unwrap_or(f64::NAN),
                })
                .collect(),
        })
        .collect())
}

fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// The samples named `name` whose labels include `labels`.
pub fn samples<'a>(
    families: &'a [Family],
    name: &'a str,
    labels: &'a [(&str, &str)],
) -> impl Iterator<Item = &'a Sample> + 'a {
    families.iter().flat_map(|f| &f.samples).filter(move |s| {
        s.name == name
            && labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
    })
}

/// The one sample named `name` with `labels`, if there is one.
pub fn value(families: &[Family], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = samples(families, name, labels);
    let first = found.next()?.value;
    found.next().is_none().then_some(first)
}
