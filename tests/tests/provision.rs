//! `covey provision` on a small two-partition image built here as Raspberry Pi OS's are
//! (MBR, FAT32 boot, ext4 root; with Debian's sfdisk, mkfs.vfat and mke2fs, no loop
//! mounts), read back with mtools and checked with fsck; and its refusals, each leaving
//! the image as it was.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use covey_tests::{covey_bin, stderr, stdout, workspace};

const SECTOR: u64 = 512;
const BOOT_START: u64 = 2048;
const BOOT_SECTORS: u64 = 98_304;
const ROOT_START: u64 = BOOT_START + BOOT_SECTORS;
const IMAGE_SECTORS: u64 = 196_608;
/// A syntactically valid worker token (a real one comes from `swarm join-token`).
const TOKEN: &str =
    "SWMTKN-1-00000000000000000000000000000000000000000000000001-abcdefghijklmnopqrstuvwxy";
const FRESH_CMDLINE: &str = "console=serial0,115200 console=tty1 root=PARTUUID=2ab63b31-02 rootfstype=ext4 fsck.repair=yes rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot\n";

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("running a tool");
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        stdout(&out),
        stderr(&out)
    );
    out
}

/// mtools' view of the image's boot partition: `mtools("mtype", img, &["::/x"])`.
fn mtools(tool: &str, img: &Path, args: &[&str]) -> Output {
    let at = format!("{}@@{}", img.display(), BOOT_START * SECTOR);
    Command::new(tool)
        .env("MTOOLS_SKIP_CHECK", "1")
        .arg("-i")
        .arg(at)
        .args(args)
        .output()
        .expect("running mtools")
}

fn boot_file(img: &Path, path: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("file");
    let copied = mtools(
        "mcopy",
        img,
        &[&format!("::{path}"), &out.display().to_string()],
    );
    assert!(copied.status.success(), "{path}: {}", stderr(&copied));
    std::fs::read(out).expect("reading the copy")
}

fn boot_text(img: &Path, path: &str) -> String {
    String::from_utf8(boot_file(img, path)).expect("text")
}

/// A Raspberry Pi OS-shaped image: a 48 MiB FAT32 boot partition holding cmdline.txt and
/// config.txt, then an ext4 root partition.
fn make_image(dir: &Path) -> PathBuf {
    let img = dir.join("raspios.img");
    run(Command::new("truncate")
        .arg("-s")
        .arg((IMAGE_SECTORS * SECTOR).to_string())
        .arg(&img));
    let mut sfdisk = Command::new("sfdisk")
        .arg("-q")
        .arg(&img)
        .stdin(Stdio::piped())
        .spawn()
        .expect("sfdisk");
    let table = format!(
        "label: dos\nstart={BOOT_START}, size={BOOT_SECTORS}, type=c\nstart={ROOT_START}, type=83\n"
    );
    std::io::Write::write_all(sfdisk.stdin.as_mut().expect("stdin"), table.as_bytes())
        .expect("the table");
    drop(sfdisk.stdin.take());
    assert!(sfdisk.wait().expect("sfdisk").success());
    run(Command::new("mkfs.vfat")
        .args(["-F", "32", "-s", "1", "-n", "bootfs", "--offset"])
        .arg(BOOT_START.to_string())
        .arg(&img)
        .arg((BOOT_SECTORS * SECTOR / 1024).to_string()));
    run(Command::new("mke2fs")
        .args(["-q", "-t", "ext4", "-L", "rootfs", "-E"])
        .arg(format!("offset={}", ROOT_START * SECTOR))
        .arg(&img)
        .arg(format!("{}k", (IMAGE_SECTORS - ROOT_START) * SECTOR / 1024)));
    for (name, text) in [
        ("cmdline.txt", FRESH_CMDLINE),
        ("config.txt", "[all]\ndtparam=audio=on\n"),
    ] {
        let file = dir.join(name);
        std::fs::write(&file, text).expect("writing");
        let copied = mtools(
            "mcopy",
            &img,
            &[&file.display().to_string(), &format!("::{name}")],
        );
        assert!(copied.status.success(), "{}", stderr(&copied));
    }
    img
}

/// The arm64 busybox that scripts/install-deps caches: an aarch64 program, for a Pi.
fn arm64_program(dir: &Path) -> PathBuf {
    let cache = Path::new("/var/cache/covey-fixtures");
    let deb = std::fs::read_dir(cache)
        .expect("the fixtures cache (scripts/install-deps)")
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("busybox-static_") && n.ends_with("_arm64.deb"))
        })
        .expect("busybox-static arm64 .deb (scripts/install-deps)");
    let root = dir.join("arm64");
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&root));
    root.join("bin/busybox")
}

fn provision(args: &[&str]) -> Output {
    Command::new(covey_bin())
        .arg("provision")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("covey provision")
}

/// The image's bytes, to show a refusal changed nothing.
fn digest(path: &Path) -> covey_images::Digest {
    covey_images::Digest::of(&std::fs::read(path).expect("reading the image"))
}

/// The bytes of the image outside its boot partition.
fn outside_boot(img: &Path) -> Vec<u8> {
    let mut all = std::fs::read(img).expect("reading the image");
    let (a, b) = (
        (BOOT_START * SECTOR) as usize,
        (ROOT_START * SECTOR) as usize,
    );
    all.drain(a..b);
    all
}

#[test]
fn provision_writes_covey_onto_the_boot_partition() {
    let dir = tempfile::tempdir().expect("tempdir");
    let img = make_image(dir.path());
    let program = arm64_program(dir.path());
    let key = dir.path().join("id_ed25519.pub");
    std::fs::write(
        &key,
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample me@laptop\n",
    )
    .expect("key");
    let before = outside_boot(&img);
    let img_arg = img.display().to_string();
    let args = [
        "--board",
        "pi4",
        "--image",
        &img_arg,
        "--join-token",
        TOKEN,
        "--manager",
        "10.0.0.1:2377",
        "--hostname-template",
        "pi-{serial}",
        "--wifi-ssid",
        "fleet",
        "--wifi-password",
        "correct horse battery",
        "--wifi-country",
        "GB",
        "--ssh-key",
        &key.display().to_string(),
        "--label",
        "zone=east",
        "--binary",
        &program.display().to_string(),
    ];
    let out = provision(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("covey-firstboot.sh"),
        "{}",
        stdout(&out)
    );

    // The binary, byte for byte; the units and script as the repository has them.
    assert_eq!(
        boot_file(&img, "/covey"),
        std::fs::read(&program).expect("program")
    );
    let repo = |p: &str| std::fs::read_to_string(workspace().join(p)).expect(p);
    assert_eq!(
        boot_text(&img, "/covey.service"),
        repo("node/systemd/covey.service")
    );
    assert_eq!(
        boot_text(&img, "/covey-firstboot.sh"),
        repo("node/src/provision/firstboot.sh")
    );
    assert_eq!(
        boot_text(&img, "/covey-join.service"),
        repo("node/src/provision/covey-join.service")
    );
    assert_eq!(
        boot_text(&img, "/covey.toml"),
        "# Written by covey provision.\nboard = \"pi4\"\nlabels = [\"zone=east\"]\n"
    );
    assert_eq!(
        boot_text(&img, "/covey-join.env"),
        format!("COVEY_JOIN_TOKEN={TOKEN}\nCOVEY_MANAGER=10.0.0.1:2377\n")
    );
    assert_eq!(boot_text(&img, "/covey-hostname"), "pi-{serial}\n");
    assert!(
        boot_text(&img, "/covey-journald.conf").ends_with("[Journal]\nSystemMaxUse=67108864\n"),
        "pi4 caps the journal at 64MiB"
    );
    let wifi = boot_text(&img, "/covey-wifi.nmconnection");
    for line in [
        "type=wifi",
        "ssid=fleet",
        "key-mgmt=wpa-psk",
        "psk=correct horse battery",
    ] {
        assert!(wifi.lines().any(|l| l == line), "{line} in {wifi}");
    }
    assert_eq!(
        boot_text(&img, "/covey-authorized_keys"),
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample me@laptop\n"
    );
    let cmdline = boot_text(&img, "/cmdline.txt");
    assert_eq!(
        cmdline,
        format!(
            "{} cgroup_enable=memory cfg80211.ieee80211_regdom=GB \
             systemd.run=/boot/firmware/covey-firstboot.sh systemd.run_success_action=reboot \
             systemd.run_failure_action=reboot systemd.unit=kernel-command-line.target\n",
            FRESH_CMDLINE.trim_end()
        )
    );
    assert_eq!(boot_text(&img, "/config.txt"), "[all]\ndtparam=audio=on\n");
    // Nothing outside the boot partition moved, and the FAT is consistent.
    assert!(
        outside_boot(&img) == before,
        "bytes outside the boot partition changed"
    );
    let part = dir.path().join("boot.part");
    run(Command::new("dd")
        .arg(format!("if={}", img.display()))
        .arg(format!("of={}", part.display()))
        .arg("bs=512")
        .arg(format!("skip={BOOT_START}"))
        .arg(format!("count={BOOT_SECTORS}"))
        .arg("status=none"));
    run(Command::new("fsck.vfat").arg("-n").arg(&part));

    // Again, without wifi: the words are not repeated, the old network file is gone.
    let without_wifi: Vec<&str> = args
        .iter()
        .copied()
        .enumerate()
        .filter(|(i, _)| !(10..16).contains(i))
        .map(|(_, a)| a)
        .collect();
    assert!(!without_wifi.contains(&"--wifi-ssid"));
    let again = provision(&without_wifi);
    assert!(again.status.success(), "{}", stderr(&again));
    let listing = stdout(&mtools("mdir", &img, &["-b", "::/"]));
    assert!(!listing.contains("wifi.nmconnection"), "{listing}");
    assert!(listing.contains("covey-join.env"), "{listing}");
    let cmdline = boot_text(&img, "/cmdline.txt");
    assert_eq!(
        cmdline.matches("cgroup_enable=memory").count(),
        1,
        "{cmdline}"
    );
    assert_eq!(cmdline.matches("systemd.run=").count(), 1, "{cmdline}");
    assert!(
        cmdline.contains("cfg80211.ieee80211_regdom=GB"),
        "kept: {cmdline}"
    );
}

/// The arguments of a provision of `img` that would succeed but for what a test changes.
fn base_args(img: &Path, binary: &Path) -> Vec<String> {
    [
        "--image",
        &img.display().to_string(),
        "--join-token",
        TOKEN,
        "--manager",
        "10.0.0.1",
        "--binary",
        &binary.display().to_string(),
    ]
    .map(String::from)
    .to_vec()
}

fn provision_with(extra: &[&str], base: &[String]) -> Output {
    let mut args: Vec<&str> = extra.to_vec();
    args.extend(base.iter().map(String::as_str));
    provision(&args)
}

/// A fresh image, a program for it, the arguments of a provision that would work, and
/// the image's digest before it.
struct Setup {
    dir: tempfile::TempDir,
    img: PathBuf,
    program: PathBuf,
    base: Vec<String>,
    pristine: covey_images::Digest,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let img = make_image(dir.path());
    let program = arm64_program(dir.path());
    let base = base_args(&img, &program);
    let pristine = digest(&img);
    Setup {
        dir,
        img,
        program,
        base,
        pristine,
    }
}

#[test]
fn provision_refuses_bad_input_and_leaves_the_image_alone() {
    let Setup {
        dir,
        img,
        program: _,
        base,
        pristine,
    } = setup();
    let refused = |extra: &[&str], base: &[String], wanted: &[&str]| {
        let out = provision_with(extra, base);
        let err = stderr(&out);
        assert!(!out.status.success(), "{extra:?} succeeded");
        for w in wanted {
            assert!(err.contains(w), "{w:?} in {err}");
        }
        assert_eq!(digest(&img), pristine, "{extra:?} changed the image");
    };

    // A malformed board file is named by its field.
    let board = dir.path().join("bad.toml");
    let pi4 = std::fs::read_to_string(workspace().join("board-configs/pi4.toml")).expect("pi4");
    std::fs::write(
        &board,
        pi4.replace("memory = \"256MiB\"", "memory = \"plenty\""),
    )
    .expect("w");
    refused(
        &["--board-file", &board.display().to_string()],
        &base,
        &["bad.toml", "reserved.memory", "invalid size \"plenty\""],
    );
    std::fs::write(&board, pi4.replace("[flash]", "[flash]\nfsync = false")).expect("w");
    refused(
        &["--board-file", &board.display().to_string()],
        &base,
        &["flash", "unknown field `fsync`"],
    );
    // A board covey does not provision, and one it does not know.
    refused(
        &["--board", "orin-nano"],
        &base,
        &["orin-nano", "Raspberry Pi OS"],
    );
    refused(
        &["--board", "pi9"],
        &base,
        &["unknown board \"pi9\"", "pi4"],
    );
    // A program for another CPU: this x86_64 covey for an arm Pi.
    let x86 = base_args(&img, &covey_bin());
    if std::env::consts::ARCH == "x86_64" {
        refused(
            &["--board", "pi4"],
            &x86,
            &["a program for x86_64", "aarch64"],
        );
    }
    // Values that would not mean what they say on the Pi.
    refused(
        &["--board", "pi4", "--hostname-template", "Pi_{serial}"],
        &base,
        &["--hostname-template"],
    );
    let mut bad_token = base.clone();
    bad_token[3] = "SWMTKN-1-nope".into();
    refused(&["--board", "pi4"], &bad_token, &["--join-token"]);

    // A corrupt table: the MBR's signature gone.
    let mut bytes = std::fs::read(&img).expect("read");
    bytes[510] = 0;
    std::fs::write(&img, &bytes).expect("write");
    let corrupt = digest(&img);
    let out = provision_with(&["--board", "pi4"], &base);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no MBR partition table"),
        "{}",
        stderr(&out)
    );
    assert_eq!(digest(&img), corrupt, "the corrupt image was written");
    // A partition past the image's end.
    bytes[510] = 0x55;
    bytes[446 + 16 + 12..446 + 16 + 16].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(&img, &bytes).expect("write");
    let corrupt = digest(&img);
    let out = provision_with(&["--board", "pi4"], &base);
    assert!(
        stderr(&out).contains("runs past the image's end"),
        "{}",
        stderr(&out)
    );
    assert_eq!(digest(&img), corrupt, "the corrupt image was written");
}

#[test]
fn provision_writes_a_device_only_once_confirmed() {
    let Setup {
        dir,
        img,
        program,
        base,
        pristine,
    } = setup();
    // A file stands in for the SD card.
    let card = dir.path().join("card");
    std::fs::write(&card, b"what was on the card").expect("card");
    let card_arg = card.display().to_string();

    // No terminal to answer and no --yes: refused, nothing written anywhere.
    let out = provision_with(&["--board", "pi4", "--write", &card_arg], &base);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&card).expect("card"), b"what was on the card");
    assert_eq!(digest(&img), pristine);

    let out = provision_with(&["--board", "pi4", "--write", &card_arg, "--yes"], &base);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(digest(&img), pristine, "the image itself stays as it was");
    assert_eq!(
        boot_file(&card, "/covey"),
        std::fs::read(&program).expect("p")
    );
    assert!(
        boot_text(&card, "/cmdline.txt").contains("systemd.run=/boot/firmware/covey-firstboot.sh")
    );
}
