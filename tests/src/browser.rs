//! Headless Chromium (Debian's `chromium`) driven over the DevTools protocol on a pipe
//! (`--remote-debugging-pipe`: commands in on fd 3, answers and events out on fd 4, each
//! a JSON message ended by a NUL), so that a test reads a page as its script left it,
//! without a websocket client. The browser and its helpers are one process group, ended
//! on drop.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::Engine as _;
use serde_json::{json, Value};

/// How long one protocol command may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Browser {
    child: Child,
    commands: File,
    answers: Receiver<Value>,
    next_id: u64,
    /// The page's session (one tab, attached in flat mode).
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium with a fresh profile and one blank tab. `launcher` makes the
    /// command that runs the program it is given (say, inside a node's namespace).
    pub fn launch(launcher: impl FnOnce(&str) -> Command) -> anyhow::Result<Browser> {
        let profile = tempfile::Builder::new()
            .prefix("covey-chromium-")
            .tempdir()?;
        let (to_browser_read, to_browser_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let (from_browser_read, from_browser_write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let mut cmd = launcher("chromium");
        cmd.args([
            "--headless",
            // Tests run as root, where Chromium's sandbox cannot start.
            "--no-sandbox",
            "--disable-gpu",
            "--remote-debugging-pipe",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--hide-scrollbars",
            "--window-size=1280,900",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
        let (child_in, child_out) = (to_browser_read.as_raw_fd(), from_browser_write.as_raw_fd());
        // SAFETY: between fork and exec only fcntl and dup2 run, which are
        // async-signal-safe. The ends are first copied above fd 10 so that placing them at
        // 3 and 4 cannot overwrite one with the other; the copies (and 3, 4) are made
        // without close-on-exec.
        unsafe {
            cmd.pre_exec(move || {
                use nix::fcntl::{fcntl, FcntlArg};
                let input = fcntl(child_in, FcntlArg::F_DUPFD(10))?;
                let output = fcntl(child_out, FcntlArg::F_DUPFD(10))?;
                nix::unistd::dup2(input, 3)?;
                nix::unistd::dup2(output, 4)?;
                Ok(())
            });
        }
        let child = cmd.spawn().context("starting chromium")?;
        // The browser's ends are its own now: once it exits, reads here end.
        drop((to_browser_read, from_browser_write));
        let answers = read_messages(from_browser_read);
        let mut browser = Browser {
            child,
            commands: File::from(to_browser_write),
            answers,
            next_id: 0,
            session: String::new(),
            _profile: profile,
        };
        let target = browser.call("Target.createTarget", json!({"url": "about:blank"}))?;
        let target = target["targetId"]
            .as_str()
            .context("no target id")?
            .to_string();
        let attached = browser.call(
            "Target.attachToTarget",
            json!({"targetId": target, "flatten": true}),
        )?;
        browser.session = attached["sessionId"]
            .as_str()
            .context("no session id")?
            .to_string();
        Ok(browser)
    }

    /// Sends one command (to the page once attached) and waits for its answer.
    fn call(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            message["sessionId"] = json!(self.session);
        }
        let mut bytes = serde_json::to_vec(&message)?;
        bytes.push(0);
        self.commands
            .write_all(&bytes)
            .with_context(|| format!("sending {method} to chromium"))?;
        let deadline = Instant::now() + CALL_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let answer = match self.answers.recv_timeout(left) {
                Ok(answer) => answer,
                Err(RecvTimeoutError::Timeout) => bail!("chromium did not answer {method}"),
                Err(RecvTimeoutError::Disconnected) => bail!("chromium exited during {method}"),
            };
            if answer["id"] != id {
                continue; // an event, or an answer to another session
            }
            if let Some(error) = answer.get("error") {
                bail!("{method}: {error}");
            }
            return Ok(answer["result"].clone());
        }
    }

    /// Opens `url` and waits until its document has loaded.
    pub fn navigate(&mut self, url: &str) -> anyhow::Result<()> {
        let answer = self.call("Page.navigate", json!({"url": url}))?;
        if let Some(error) = answer["errorText"].as_str() {
            bail!("opening {url}: {error}");
        }
        self.wait_for(
            &format!("{url} loaded"),
            "document.readyState === 'complete'",
            Duration::from_secs(20),
        )?;
        Ok(())
    }

    /// The value of `expression`, evaluated in the page (promises awaited).
    pub fn eval(&mut self, expression: &str) -> anyhow::Result<Value> {
        let answer = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        )?;
        if let Some(exception) = answer.get("exceptionDetails") {
            bail!("{expression}: {exception}");
        }
        Ok(answer["result"]["value"].clone())
    }

    /// Evaluates `expression` until it is truthy (not null, false, 0 or ""); its value.
    /// A page between two documents is asked again.
    pub fn wait_for(
        &mut self,
        what: &str,
        expression: &str,
        timeout: Duration,
    ) -> anyhow::Result<Value> {
        let deadline = Instant::now() + timeout;
        let mut last = Value::Null;
        while Instant::now() < deadline {
            match self.eval(expression) {
                Ok(v) if truthy(&v) => return Ok(v),
                Ok(v) => last = v,
                Err(e) => last = json!(e.to_string()),
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bail!("{what}: not within {timeout:?} (last: {last})")
    }

    /// A PNG of the page as shown, into `path`.
    pub fn screenshot(&mut self, path: &Path) -> anyhow::Result<()> {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}))?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().context("no screenshot data")?)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}

/// The browser's messages, one JSON value each, on a channel; it closes when the
/// browser does.
fn read_messages(from_browser: OwnedFd) -> Receiver<Value> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut input = File::from(from_browser);
        let mut pending = Vec::new();
        let mut chunk = [0u8; 64 * 1024];
        loop {
            let n = match input.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            pending.extend_from_slice(&chunk[..n]);
            while let Some(end) = pending.iter().position(|b| *b == 0) {
                let message: Vec<u8> = pending.drain(..=end).collect();
                if let Ok(value) = serde_json::from_slice(&message[..end]) {
                    if tx.send(value).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.session.clear();
        let _ = self.call("Browser.close", json!({}));
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return; // it closed its helpers itself
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Still there (so its pid is still its group's): the renderer and its helpers are
        // in that group.
        let group = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}
