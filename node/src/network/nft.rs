//! nftables, through Debian's `nft` (package nftables): one script per change, applied
//! as one transaction. There is no well-kept crate for nftables' netlink protocol; the
//! tool is on every Debian and Raspberry Pi OS install that has nftables.

use std::io::{Read as _, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};

use super::Error;
use crate::containers::reaper::Reaper;

/// NAT chains' hooks, as covey's tables use them.
pub const PREROUTING: &str = "type nat hook prerouting priority dstnat; policy accept;";
pub const OUTPUT: &str = "type nat hook output priority -100; policy accept;";
pub const POSTROUTING: &str = "type nat hook postrouting priority srcnat; policy accept;";

/// A script that drops table `name` (made first if missing, so the drop cannot fail).
pub fn drop_table(name: &str) -> String {
    format!("table ip {name} {{}}\ndelete table ip {name}\n")
}

/// A script that replaces table `name` with `chains` (name, hook, rules: each rule a
/// line of its own, indented), in one transaction: no packet sees half the rules.
pub fn replace_table(name: &str, chains: &[(&str, &str, &str)]) -> String {
    let mut script = drop_table(name);
    script.push_str(&format!("table ip {name} {{\n"));
    for (chain, hook, rules) in chains {
        script.push_str(&format!("  chain {chain} {{\n    {hook}\n{rules}  }}\n"));
    }
    script.push_str("}\n");
    script
}

/// Applies `script` in the namespace at `ns` (the daemon's own when `None`). The daemon
/// is a subreaper that reaps every child, so the exit comes from `reaper`, not `wait`.
pub async fn apply_in(reaper: &Reaper, ns: Option<&Path>, script: &str) -> Result<(), Error> {
    let nft = |e: std::io::Error| {
        Error::Nft(format!(
            "running nft (is the nftables package installed?): {e}"
        ))
    };
    let mut cmd = Command::new("nft");
    cmd.args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(ns) = ns {
        let file = super::netns::open(ns)?;
        // SAFETY: between fork and exec the child only calls setns, which is
        // async-signal-safe, on a descriptor it inherited.
        unsafe {
            cmd.pre_exec(move || {
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(std::io::Error::from)
            });
        }
    }
    let mut child = cmd.spawn().map_err(nft)?;
    let exit = reaper.watch(child.id() as i32, "");
    let (stdin, stderr) = (child.stdin.take(), child.stderr.take());
    let script = script.to_string();
    let errors = tokio::task::spawn_blocking(move || {
        if let Some(mut stdin) = stdin {
            let _ = stdin.write_all(script.as_bytes());
        }
        let mut text = String::new();
        if let Some(mut stderr) = stderr {
            let _ = stderr.read_to_string(&mut text);
        }
        text
    })
    .await
    .unwrap_or_default();
    match exit.await {
        Ok(0) => Ok(()),
        Ok(code) => Err(Error::Nft(format!("nft exited {code}: {}", errors.trim()))),
        Err(_) => Err(Error::Nft("nft's exit was never seen".into())),
    }
}
