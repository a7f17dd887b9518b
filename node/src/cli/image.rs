//! `covey image`: pull, ls, rm, load, inspect, prune.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use futures_util::TryStreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::Method;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::Value;

use super::client::{escape, Client};
use super::output::{self, Format};
use crate::units::{ago, human_size};

#[derive(Subcommand)]
pub enum ImageCommand {
    /// Download an image from a registry.
    Pull {
        /// Platform to pull (os/arch[/variant]) instead of this node's.
        #[arg(long)]
        platform: Option<String>,
        /// Print only the image's name when done.
        #[arg(short, long)]
        quiet: bool,
        name: String,
    },
    /// List images.
    #[command(alias = "list")]
    Ls {
        /// Only show image IDs.
        #[arg(short, long)]
        quiet: bool,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Remove images.
    #[command(alias = "remove")]
    Rm {
        /// Remove the image even if several names refer to it.
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Load images from a `docker save` tarball or a tar of an OCI layout.
    Load {
        /// The archive to read (default: standard input).
        #[arg(short, long)]
        input: Option<PathBuf>,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show images' details as JSON.
    Inspect {
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Remove images with no name and blobs no image uses.
    Prune {
        /// Do not ask for confirmation.
        #[arg(short, long)]
        force: bool,
    },
}

pub async fn run(cmd: ImageCommand, client: &Client) -> anyhow::Result<()> {
    match cmd {
        ImageCommand::Pull {
            platform,
            quiet,
            name,
        } => pull(client, &name, platform.as_deref(), quiet).await,
        ImageCommand::Ls { quiet, format } => ls(client, quiet, format).await,
        ImageCommand::Rm { force, images } => rm(client, &images, force).await,
        ImageCommand::Load { input, quiet } => load(client, input, quiet).await,
        ImageCommand::Inspect { images } => inspect(client, &images).await,
        ImageCommand::Prune { force } => prune(client, force).await,
    }
}

async fn pull(
    client: &Client,
    name: &str,
    platform: Option<&str>,
    quiet: bool,
) -> anyhow::Result<()> {
    let reference = pull_image(client, name, platform, quiet).await?;
    println!("{reference}");
    Ok(())
}

/// Pulls `name` through the daemon, showing progress on stderr unless `quiet`.
pub(super) async fn pull_image(
    client: &Client,
    name: &str,
    platform: Option<&str>,
    quiet: bool,
) -> anyhow::Result<covey_images::Reference> {
    // Parse here too, so a bad name is named before the daemon is asked.
    let reference: covey_images::Reference = name.parse()?;
    let mut path = format!("/images/create?fromImage={}", escape(&reference.name()));
    match (reference.tag(), reference.digest()) {
        (_, Some(d)) => path.push_str(&format!("&tag={}", escape(&d.to_string()))),
        (Some(t), None) => path.push_str(&format!("&tag={}", escape(t))),
        (None, None) => {}
    }
    if let Some(p) = platform {
        path.push_str(&format!("&platform={}", escape(p)));
    }
    let resp = client.send(Method::POST, &path, Client::empty()).await?;
    let mut view = PullView::new(quiet);
    Client::json_lines(resp, |msg| view.show(&msg)).await?;
    view.finish();
    Ok(reference)
}

/// Pull progress: one bar per layer on a terminal, plain lines otherwise.
struct PullView {
    quiet: bool,
    bars: Option<MultiProgress>,
    layers: HashMap<String, ProgressBar>,
}

impl PullView {
    fn new(quiet: bool) -> Self {
        let bars = (!quiet && std::io::stderr().is_terminal()).then(MultiProgress::new);
        Self {
            quiet,
            bars,
            layers: HashMap::new(),
        }
    }

    fn show(&mut self, msg: &Value) -> anyhow::Result<()> {
        if let Some(err) = msg.get("error").and_then(|e| e.as_str()) {
            self.finish();
            anyhow::bail!("{err}");
        }
        let status = msg
            .get("status")
            .and_then(|s| s.as_str())
            .unwrap_or_default();
        let id = msg.get("id").and_then(|s| s.as_str());
        if self.quiet {
            return Ok(());
        }
        let (Some(bars), Some(id)) = (&self.bars, id) else {
            if status != "Downloading" && status != "Extracting" {
                match id {
                    Some(id) => eprintln!("{id}: {status}"),
                    None => eprintln!("{status}"),
                }
            }
            return Ok(());
        };
        if status.starts_with("Pulling from") {
            let _ = bars.println(format!("{id}: {status}"));
            return Ok(());
        }
        let bar = self.layers.entry(id.to_string()).or_insert_with(|| {
            let style = ProgressStyle::with_template(
                "{prefix}: {msg:<18} {wide_bar} {bytes}/{total_bytes}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            let bar = bars.add(ProgressBar::new(0).with_style(style));
            bar.set_prefix(id.to_string());
            bar
        });
        if let Some(detail) = msg.get("progressDetail") {
            if let (Some(c), Some(t)) = (
                detail.get("current").and_then(Value::as_u64),
                detail.get("total").and_then(Value::as_u64),
            ) {
                bar.set_length(t);
                bar.set_position(c);
            }
        }
        bar.set_message(status.to_string());
        if status == "Pull complete" || status == "Already exists" {
            bar.finish();
        }
        Ok(())
    }

    fn finish(&mut self) {
        for bar in self.layers.values() {
            bar.finish();
        }
    }
}

async fn ls(client: &Client, quiet: bool, format: Format) -> anyhow::Result<()> {
    let images: Vec<Value> = client.json(Method::GET, "/images/json").await?;
    if format == Format::Json {
        print!("{}", output::json(&images)?);
        return Ok(());
    }
    let str_of = |v: &Value, k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_string()
    };
    if quiet {
        for img in &images {
            println!("{}", short_id(&str_of(img, "Id")));
        }
        return Ok(());
    }
    let mut rows = Vec::new();
    for img in &images {
        let id = short_id(&str_of(img, "Id"));
        let created = ago(img.get("Created").and_then(Value::as_i64).unwrap_or(0));
        let size = human_size(img.get("Size").and_then(Value::as_u64).unwrap_or(0));
        let tags: Vec<String> = img
            .get("RepoTags")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if tags.is_empty() {
            rows.push(vec![
                "<none>".into(),
                "<none>".into(),
                id.clone(),
                created.clone(),
                size.clone(),
            ]);
        }
        for t in tags {
            let (repo, tag) = t
                .rsplit_once(':')
                .map(|(r, t)| (r.to_string(), t.to_string()))
                .unwrap_or((t, "<none>".into()));
            rows.push(vec![repo, tag, id.clone(), created.clone(), size.clone()]);
        }
    }
    print!(
        "{}",
        output::table(&["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], &rows)
    );
    Ok(())
}

fn short_id(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}

/// Path escaping that keeps the `/`, `:` and `@` of image names readable.
fn path_escape(name: &str) -> String {
    name.split('/')
        .map(escape)
        .collect::<Vec<_>>()
        .join("/")
        .replace("%3A", ":")
        .replace("%40", "@")
}

async fn rm(client: &Client, images: &[String], force: bool) -> anyhow::Result<()> {
    let mut failed = Vec::new();
    for name in images {
        let path = format!(
            "/images/{}?force={}",
            path_escape(name),
            if force { 1 } else { 0 }
        );
        match client.json::<Vec<Value>>(Method::DELETE, &path).await {
            Ok(actions) => {
                for a in actions {
                    if let Some(u) = a.get("Untagged").and_then(Value::as_str) {
                        println!("Untagged: {u}");
                    }
                    if let Some(d) = a.get("Deleted").and_then(Value::as_str) {
                        println!("Deleted: {d}");
                    }
                }
            }
            Err(e) => failed.push(format!("{e:#}")),
        }
    }
    if !failed.is_empty() {
        anyhow::bail!("{}", failed.join("\n"));
    }
    Ok(())
}

async fn load(client: &Client, input: Option<PathBuf>, quiet: bool) -> anyhow::Result<()> {
    let reader: Box<dyn tokio::io::AsyncRead + Send + Unpin> = match &input {
        Some(path) => Box::new(
            tokio::fs::File::open(path)
                .await
                .with_context(|| format!("opening {}", path.display()))?,
        ),
        None => {
            anyhow::ensure!(
                !std::io::stdin().is_terminal(),
                "requested load from stdin, but stdin is empty; use -i FILE"
            );
            Box::new(tokio::io::stdin())
        }
    };
    let stream = tokio_util::io::ReaderStream::new(reader).map_ok(Frame::data);
    let body = StreamBody::new(stream).boxed_unsync();
    let resp = client
        .send(Method::POST, "/images/load?quiet=1", body)
        .await?;
    Client::json_lines(resp, |msg| {
        if let Some(err) = msg.get("error").and_then(Value::as_str) {
            anyhow::bail!("{err}");
        }
        if let Some(s) = msg.get("stream").and_then(Value::as_str) {
            if !quiet || s.starts_with("Loaded") {
                print!("{s}");
            }
        }
        Ok(())
    })
    .await
}

async fn inspect(client: &Client, images: &[String]) -> anyhow::Result<()> {
    let mut out = Vec::new();
    let mut failed = Vec::new();
    for name in images {
        match client
            .json::<Value>(Method::GET, &format!("/images/{}/json", path_escape(name)))
            .await
        {
            Ok(v) => out.push(v),
            Err(e) => failed.push(format!("{e:#}")),
        }
    }
    print!("{}", output::json(&out)?);
    if !failed.is_empty() {
        anyhow::bail!("{}", failed.join("\n"));
    }
    Ok(())
}

async fn prune(client: &Client, force: bool) -> anyhow::Result<()> {
    if !force
        && !output::confirm(
            "WARNING! This will remove all dangling images.\nAre you sure you want to continue? [y/N] ",
        )
    {
        return Ok(());
    }
    let report: Value = client.json(Method::POST, "/images/prune").await?;
    if let Some(deleted) = report.get("ImagesDeleted").and_then(Value::as_array) {
        if !deleted.is_empty() {
            println!("Deleted Images:");
        }
        for d in deleted {
            if let Some(id) = d.get("Deleted").and_then(Value::as_str) {
                println!("deleted: {id}");
            }
        }
    }
    let reclaimed = report
        .get("SpaceReclaimed")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    println!("\nTotal reclaimed space: {}", human_size(reclaimed));
    Ok(())
}
