//! `covey provision --write DEVICE`: the image copied onto an SD card (or any disk), only
//! once someone typed the device's name, or gave `--yes`.

use std::io::{BufRead, Read, Write};
use std::path::Path;

use super::ProvisionError;

/// Copies happen in pieces this big: an SD card writes them at its own pace.
const CHUNK: usize = 4 << 20;

fn refuse(device: &Path, problem: impl Into<String>) -> ProvisionError {
    ProvisionError::Image {
        path: device.to_path_buf(),
        problem: problem.into(),
    }
}

/// Whether `device` may be overwritten: `yes`, or the device's path typed back on
/// `input` when `interactive`. Refused without asking when no one can answer.
pub fn confirm(
    device: &Path,
    yes: bool,
    interactive: bool,
    input: &mut dyn BufRead,
    prompt: &mut dyn Write,
) -> Result<(), ProvisionError> {
    if yes {
        return Ok(());
    }
    if !interactive {
        return Err(refuse(
            device,
            "not overwritten: confirm by typing its name at a terminal, or give --yes",
        ));
    }
    let name = device.display().to_string();
    let _ = write!(
        prompt,
        "Everything on {name} will be overwritten. Type {name} to go on: "
    );
    let _ = prompt.flush();
    let mut answer = String::new();
    input
        .read_line(&mut answer)
        .map_err(|e| refuse(device, format!("reading the answer: {e}")))?;
    if answer.trim() != name {
        return Err(refuse(
            device,
            "not overwritten: the name typed was not its name",
        ));
    }
    Ok(())
}

/// Refuses a device with a file system of it mounted (`/proc/mounts`' sources name it or
/// its partitions: `/dev/sdb1` for `/dev/sdb`, `/dev/mmcblk0p1` for `/dev/mmcblk0`).
pub fn check_unmounted(device: &Path, mounts: &str) -> Result<(), ProvisionError> {
    let name = device.display().to_string();
    let mounted = mounts.lines().find_map(|line| {
        let source = line.split_whitespace().next()?;
        let rest = source.strip_prefix(&name)?;
        let partition = rest.is_empty()
            || rest.bytes().all(|b| b.is_ascii_digit())
            || rest
                .strip_prefix('p')
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
        partition.then(|| source.to_string())
    });
    match mounted {
        Some(source) => Err(refuse(
            device,
            format!("{source} is mounted: unmount it first"),
        )),
        None => Ok(()),
    }
}

/// Copies `image` onto `device` whole and syncs it.
pub fn copy(image: &Path, device: &Path) -> Result<u64, ProvisionError> {
    let io = |what: &str, e: std::io::Error| ProvisionError::Io {
        context: format!("{what} {}", device.display()),
        source: e,
    };
    let mut src = std::fs::File::open(image).map_err(|e| io("reading the image for", e))?;
    let len = src
        .metadata()
        .map_err(|e| io("reading the image for", e))?
        .len();
    // Not created: a device that is not there is a mistyped name, not a new file.
    let mut dst = std::fs::File::options()
        .write(true)
        .open(device)
        .map_err(|e| io("opening", e))?;
    if dst
        .metadata()
        .map(|m| m.file_type().is_file())
        .unwrap_or(false)
    {
        dst.set_len(0).map_err(|e| io("truncating", e))?;
    } else {
        let room = std::io::Seek::seek(&mut dst, std::io::SeekFrom::End(0))
            .map_err(|e| io("sizing", e))?;
        if room < len {
            return Err(refuse(
                device,
                format!("it holds {room} bytes; the image is {len}"),
            ));
        }
        std::io::Seek::seek(&mut dst, std::io::SeekFrom::Start(0))
            .map_err(|e| io("rewinding", e))?;
    }
    let mut buf = vec![0u8; CHUNK];
    let mut copied = 0u64;
    loop {
        let n = src
            .read(&mut buf)
            .map_err(|e| io("reading the image for", e))?;
        if n == 0 {
            break;
        }
        dst.write_all(&buf[..n]).map_err(|e| io("writing", e))?;
        copied += n as u64;
    }
    dst.sync_all().map_err(|e| io("syncing", e))?;
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmation() {
        let dev = Path::new("/dev/sdz");
        let mut out = Vec::new();
        assert!(confirm(dev, true, false, &mut &b""[..], &mut out).is_ok());
        let e = confirm(dev, false, false, &mut &b"/dev/sdz\n"[..], &mut out).unwrap_err();
        assert!(e.to_string().contains("--yes"), "{e}");
        assert!(out.is_empty(), "no prompt without a terminal");
        let e = confirm(dev, false, true, &mut &b"y\n"[..], &mut out).unwrap_err();
        assert!(e.to_string().contains("not its name"), "{e}");
        assert!(String::from_utf8_lossy(&out).contains("Type /dev/sdz to go on"));
        assert!(confirm(dev, false, true, &mut &b"/dev/sdz\n"[..], &mut out).is_ok());
    }

    #[test]
    fn mounted_devices_are_refused() {
        let mounts = "/dev/sdb1 /media/boot vfat rw 0 0\n/dev/mmcblk0p2 / ext4 rw 0 0\n";
        assert!(check_unmounted(Path::new("/dev/sdb"), mounts).is_err());
        assert!(check_unmounted(Path::new("/dev/mmcblk0"), mounts).is_err());
        assert!(check_unmounted(Path::new("/dev/sdc"), mounts).is_ok());
        // /dev/sd is no prefix of /dev/sdb1's device.
        assert!(check_unmounted(Path::new("/dev/sd"), mounts).is_ok());
    }
}
