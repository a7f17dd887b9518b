//! `covey provision`: makes a Raspberry Pi OS image (or SD card) join the swarm on its
//! first boot. Needs no daemon and no root: it edits the image's files from userspace.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::board::Board;
use crate::provision::{self, Request, Wifi};

#[derive(Args)]
pub struct ProvisionArgs {
    /// The board the image is for (pi-zero-2w, pi3b-plus, pi4, pi5, cm4).
    #[arg(
        long,
        value_name = "NAME",
        required_unless_present = "board_file",
        conflicts_with = "board_file"
    )]
    board: Option<String>,
    /// A board file (TOML, as in board-configs/) instead of a built-in board; it is
    /// written onto the image too, for the node's daemon.
    #[arg(long, value_name = "PATH")]
    board_file: Option<PathBuf>,
    /// The Raspberry Pi OS image (.img, uncompressed) or SD card device to write into.
    #[arg(long, value_name = "PATH")]
    image: PathBuf,
    /// The swarm's worker or manager join token (`covey swarm join-token -q worker`).
    #[arg(
        long,
        env = "COVEY_JOIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    join_token: String,
    /// A manager's address, IP[:PORT], which the node joins through.
    #[arg(long, value_name = "ADDR")]
    manager: String,
    /// The node's host name; {serial} is the last 8 hex digits of the Pi's serial number.
    #[arg(long, value_name = "TEMPLATE")]
    hostname_template: Option<String>,
    /// A WPA2 wifi network to join (NetworkManager), with --wifi-password and --wifi-country.
    #[arg(long, value_name = "SSID", requires_all = ["wifi_password", "wifi_country"])]
    wifi_ssid: Option<String>,
    #[arg(
        long,
        env = "COVEY_WIFI_PASSWORD",
        hide_env_values = true,
        value_name = "PASSPHRASE",
        requires = "wifi_ssid"
    )]
    wifi_password: Option<String>,
    /// The wifi country, ISO 3166 in capitals (GB, DE, US): the radio stays off without it.
    #[arg(long, value_name = "CC", requires = "wifi_ssid")]
    wifi_country: Option<String>,
    /// An OpenSSH public key file, for root's logins over SSH (which it turns on).
    #[arg(long = "ssh-key", value_name = "FILE")]
    ssh_keys: Vec<PathBuf>,
    /// An engine label for the node, KEY=VALUE (constraints: engine.labels.KEY==VALUE).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// The covey binary to install; by default this one if the board runs its CPU, else
    /// target/<triple>/release/covey.
    #[arg(long, value_name = "PATH")]
    binary: Option<PathBuf>,
    /// Copy the image onto this device (an SD card) and provision the device, leaving
    /// the image as it was; asks for the device's name to be typed first.
    #[arg(long, value_name = "DEVICE")]
    write: Option<PathBuf>,
    /// With --write: do not ask.
    #[arg(long, requires = "write")]
    yes: bool,
}

pub fn run(args: &ProvisionArgs) -> anyhow::Result<()> {
    let (board, board_file) = match (&args.board, &args.board_file) {
        (_, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading board file {}", path.display()))?;
            (
                Board::parse(&text, &path.display().to_string())?,
                Some(text),
            )
        }
        (Some(name), None) => (crate::board::named(name)?, None),
        (None, None) => anyhow::bail!("give --board or --board-file"),
    };
    let workdir = std::env::current_dir().context("finding the current directory")?;
    let binary = provision::binary::choose(
        args.binary.as_deref(),
        board.platform.target,
        std::env::consts::ARCH,
        &workdir,
    )?;
    let mut ssh_keys = Vec::new();
    for path in &args.ssh_keys {
        ssh_keys.push(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the SSH key {}", path.display()))?,
        );
    }
    let wifi = match (&args.wifi_ssid, &args.wifi_password, &args.wifi_country) {
        (Some(ssid), Some(password), Some(country)) => Some(Wifi {
            ssid: ssid.clone(),
            password: password.clone(),
            country: country.clone(),
        }),
        _ => None,
    };
    let req = Request {
        board,
        board_file,
        image: args.image.clone(),
        join_token: args.join_token.clone(),
        manager: args.manager.clone(),
        hostname_template: args.hostname_template.clone(),
        wifi,
        ssh_keys,
        labels: args.labels.clone(),
    };
    let target = match &args.write {
        None => args.image.clone(),
        Some(device) => {
            write_device(&req, &binary, device, args.yes)?;
            device.clone()
        }
    };
    let report = provision::provision(&req, &binary, &target)?;
    println!(
        "{}: covey for {} ({}) on the boot partition:",
        target.display(),
        req.board.description,
        req.board.name
    );
    for (path, len) in &report.files {
        println!("  {path} ({})", crate::units::human_size(*len));
    }
    println!("  cmdline.txt: {}", report.cmdline.trim_end());
    println!(
        "On its first boot the node installs covey, then joins {}.",
        req.manager
    );
    Ok(())
}

/// Everything checked on the image first; then, once confirmed, the image copied whole.
fn write_device(
    req: &Request,
    binary: &std::path::Path,
    device: &std::path::Path,
    yes: bool,
) -> anyhow::Result<()> {
    let same = |a: &std::path::Path, b: &std::path::Path| matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b);
    if same(&req.image, device) {
        anyhow::bail!("--write names the image itself: drop --write to edit it in place");
    }
    provision::check(req, binary)?;
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    provision::write::check_unmounted(device, &mounts)?;
    let stdin = std::io::stdin();
    provision::write::confirm(
        device,
        yes,
        stdin.is_terminal(),
        &mut stdin.lock(),
        &mut std::io::stderr(),
    )?;
    let copied = provision::write::copy(&req.image, device)?;
    eprintln!(
        "{}: {} copied from {}",
        device.display(),
        crate::units::human_size(copied),
        req.image.display()
    );
    Ok(())
}
