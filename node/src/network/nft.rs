//! nftables, through Debian's `nft` (package nftables): one script per change, applied
//! as one transaction. There is no well-kept crate for nftables' netlink protocol; the
//! tool is on every Debian and Raspberry Pi OS install that has nftables.

use tokio::io::AsyncWriteExt as _;

use super::Error;

pub async fn apply(script: &str) -> Result<(), Error> {
    let mut child = tokio::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| {
            Error::Nft(format!(
                "running nft (is the nftables package installed?): {e}"
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .await
            .map_err(|e| Error::Nft(format!("writing to nft: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| Error::Nft(format!("waiting for nft: {e}")))?;
    if !out.status.success() {
        return Err(Error::Nft(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(())
}
