//! What `covey provision` puts on the boot partition, made and checked before anything is
//! written: every value a user gives lands in a data file (never in the script's text),
//! checked so the file that holds it means what it says.

use super::{ProvisionError, Request, Wifi};

/// The binary's name on the boot partition.
pub const BINARY: &str = "covey";
/// Every file provision may write (beside cmdline.txt), so that a second run takes away
/// what the first wrote and this one does not. In the partition's root: fatfs 0.3 makes
/// subdirectories that fsck.fat calls damaged (long-name entries for `.` and `..`).
pub const NAMES: &[&str] = &[
    BINARY,
    "covey-firstboot.sh",
    "covey.service",
    "covey-join.service",
    "covey.toml",
    "covey-join.env",
    "covey-board.toml",
    "covey-hostname",
    "covey-wifi.nmconnection",
    "covey-authorized_keys",
    "covey-journald.conf",
];
/// Where the boot partition is mounted on Raspberry Pi OS bookworm and later.
const BOOT_MOUNT: &str = "/boot/firmware";
/// Raspberry Pi firmware reads one line of cmdline.txt; Linux on arm64 takes 2048 bytes.
const CMDLINE_MAX: usize = 2048;

const FIRSTBOOT: &str = include_str!("firstboot.sh");
const JOIN_UNIT: &str = include_str!("covey-join.service");
const DAEMON_UNIT: &str = include_str!("../../systemd/covey.service");

/// The first-boot step on the kernel command line, as Raspberry Pi Imager adds its own:
/// systemd runs the script instead of the normal boot, then reboots (success or not: the
/// script takes these words off first, so a failure cannot loop).
fn first_boot_words() -> [String; 4] {
    [
        format!("systemd.run={BOOT_MOUNT}/covey-firstboot.sh"),
        "systemd.run_success_action=reboot".into(),
        "systemd.run_failure_action=reboot".into(),
        "systemd.unit=kernel-command-line.target".into(),
    ]
}

/// One file for the boot partition.
pub struct File {
    pub name: &'static str,
    pub data: Vec<u8>,
}

/// Everything but the binary, which is streamed from its file.
pub fn files(req: &Request) -> Result<Vec<File>, ProvisionError> {
    let mut files = vec![
        File {
            name: "covey-firstboot.sh",
            data: FIRSTBOOT.into(),
        },
        File {
            name: "covey.service",
            data: DAEMON_UNIT.into(),
        },
        File {
            name: "covey-join.service",
            data: JOIN_UNIT.into(),
        },
        File {
            name: "covey.toml",
            data: covey_toml(req)?.into(),
        },
        File {
            name: "covey-join.env",
            data: join_env(&req.join_token, &req.manager)?.into(),
        },
    ];
    if let Some(text) = &req.board_file {
        files.push(File {
            name: "covey-board.toml",
            data: text.clone().into(),
        });
    }
    if let Some(cap) = req.board.flash.journal_max_size {
        files.push(File {
            name: "covey-journald.conf",
            data: journald_conf(cap).into(),
        });
    }
    if let Some(template) = &req.hostname_template {
        check_hostname_template(template)?;
        files.push(File {
            name: "covey-hostname",
            data: format!("{template}\n").into(),
        });
    }
    if let Some(wifi) = &req.wifi {
        files.push(File {
            name: "covey-wifi.nmconnection",
            data: nmconnection(wifi)?.into(),
        });
    }
    if !req.ssh_keys.is_empty() {
        files.push(File {
            name: "covey-authorized_keys",
            data: authorized_keys(&req.ssh_keys)?.into(),
        });
    }
    Ok(files)
}

fn input(field: &'static str, problem: impl Into<String>) -> ProvisionError {
    ProvisionError::Input {
        field,
        problem: problem.into(),
    }
}

/// The daemon's configuration on the Pi: its board and its engine labels.
fn covey_toml(req: &Request) -> Result<String, ProvisionError> {
    let mut out = String::from("# Written by covey provision.\n");
    match &req.board_file {
        Some(_) => out.push_str("board-file = \"/etc/covey/board.toml\"\n"),
        None => out.push_str(&format!("board = {}\n", toml_string(&req.board.name))),
    }
    let mut labels = Vec::new();
    for raw in &req.labels {
        let (key, value) =
            crate::config::engine_label(raw).map_err(|e| input("--label", e.to_string()))?;
        labels.push(toml_string(&format!("{key}={value}")));
    }
    if !labels.is_empty() {
        out.push_str(&format!("labels = [{}]\n", labels.join(", ")));
    }
    Ok(out)
}

/// A journald drop-in keeping the journal on flash under the board's cap (journald sizes
/// are bytes with binary suffixes; it rotates its files at an eighth of this).
fn journald_conf(cap: u64) -> String {
    format!(
        "# Written by covey provision: the journal on this board's flash stays under this.\n\
         [Journal]\nSystemMaxUse={cap}\n"
    )
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The join's token and manager, for the join unit's `EnvironmentFile` (0600 on the Pi,
/// deleted once it joined): kept off the command line, where `ps` shows it.
fn join_env(token: &str, manager: &str) -> Result<String, ProvisionError> {
    let token = token.trim();
    token
        .parse::<crate::manager::ca::JoinToken>()
        .map_err(|e| input("--join-token", e.to_string()))?;
    let manager_ok = !manager.is_empty()
        && manager.len() <= 255
        && manager
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    if !manager_ok {
        return Err(input(
            "--manager",
            format!("{manager:?} is not an address: expected HOST[:PORT] or IP[:PORT]"),
        ));
    }
    Ok(format!(
        "COVEY_JOIN_TOKEN={token}\nCOVEY_MANAGER={manager}\n"
    ))
}

/// `pi-{serial}`: lower-case letters, digits and '-', with `{serial}` (the last 8 hex
/// digits of the Pi's serial number) where it should go, a valid host name once filled.
pub fn check_hostname_template(template: &str) -> Result<(), ProvisionError> {
    const SERIAL: &str = "{serial}";
    let filled = template.replace(SERIAL, "0123abcd");
    let bad = |problem: &str| input("--hostname-template", format!("{template:?}: {problem}"));
    if filled.contains(['{', '}']) {
        return Err(bad("the only placeholder is {serial}"));
    }
    if filled.is_empty() || filled.len() > 63 {
        return Err(bad("a host name is 1 to 63 characters"));
    }
    if !filled
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(bad("a host name has only a-z, 0-9 and '-'"));
    }
    if filled.starts_with('-') || filled.ends_with('-') {
        return Err(bad("a host name neither starts nor ends with '-'"));
    }
    Ok(())
}

/// A NetworkManager keyfile (Raspberry Pi OS bookworm's network stack) for one WPA2
/// network. GKeyFile treats `\` as an escape and `;` may end a list, so neither is taken.
fn nmconnection(wifi: &Wifi) -> Result<String, ProvisionError> {
    let ssid = &wifi.ssid;
    if ssid.is_empty() || ssid.len() > 32 {
        return Err(input("--wifi-ssid", "an SSID is 1 to 32 bytes"));
    }
    if ssid
        .chars()
        .any(|c| c.is_control() || c == '\\' || c == ';')
        || ssid.trim() != ssid.as_str()
    {
        return Err(input(
            "--wifi-ssid",
            format!("{ssid:?}: covey writes SSIDs without control characters, '\\', ';' or spaces at the ends"),
        ));
    }
    let psk = &wifi.password;
    let hex = psk.len() == 64 && psk.bytes().all(|b| b.is_ascii_hexdigit());
    let passphrase = (8..=63).contains(&psk.len())
        && psk.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'\\')
        && psk.trim() == psk.as_str();
    if !hex && !passphrase {
        return Err(input(
            "--wifi-password",
            "a WPA2 passphrase is 8 to 63 printable ASCII characters (no '\\', no spaces at the ends), or 64 hex digits",
        ));
    }
    check_country(&wifi.country)?;
    let uuid = uuid_v4();
    Ok(format!(
        "[connection]\nid=covey-wifi\nuuid={uuid}\ntype=wifi\nautoconnect=true\n\n\
         [wifi]\nmode=infrastructure\nssid={ssid}\n\n\
         [wifi-security]\nkey-mgmt=wpa-psk\npsk={psk}\n\n\
         [ipv4]\nmethod=auto\n\n[ipv6]\naddr-gen-mode=default\nmethod=auto\n"
    ))
}

fn check_country(country: &str) -> Result<(), ProvisionError> {
    if country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(input(
            "--wifi-country",
            format!("{country:?}: expected an ISO 3166 code in capitals (GB, DE, US)"),
        ))
    }
}

fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Public keys, one a line; a private key or something else is refused.
fn authorized_keys(keys: &[String]) -> Result<String, ProvisionError> {
    const TYPES: &[&str] = &[
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-",
    ];
    let mut out = String::new();
    for text in keys {
        if text.contains("PRIVATE KEY") {
            return Err(input(
                "--ssh-key",
                "that is a private key: give the public one (the .pub file)",
            ));
        }
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            if !TYPES.iter().any(|t| line.starts_with(t)) {
                let shown: String = line.chars().take(24).collect();
                return Err(input(
                    "--ssh-key",
                    format!("{shown:?}... is not an OpenSSH public key (ssh-ed25519, ssh-rsa, ecdsa-sha2-...)"),
                ));
            }
            out.push_str(line);
            out.push('\n');
        }
    }
    if out.is_empty() {
        return Err(input("--ssh-key", "no public key in it"));
    }
    Ok(out)
}

/// cmdline.txt with what the board needs and the first-boot step; what an earlier
/// `covey provision` added is replaced, not repeated. Another first-boot step (Raspberry
/// Pi Imager's firstrun.sh) is refused: systemd runs one.
pub fn cmdline(current: &str, req: &Request) -> Result<String, ProvisionError> {
    let ours = first_boot_words();
    let mut words: Vec<String> = current
        .split_whitespace()
        .filter(|w| !ours.iter().any(|o| o == w))
        .map(str::to_string)
        .collect();
    if let Some(other) = words.iter().find(|w| w.starts_with("systemd.run")) {
        return Err(ProvisionError::Image {
            path: req.image.clone(),
            problem: format!(
                "cmdline.txt already runs a first-boot step ({other}), Raspberry Pi Imager's customisation perhaps: covey provision sets up wifi, SSH and the host name itself, on a fresh image"
            ),
        });
    }
    for need in &req.board.kernel.cmdline {
        if !words.contains(need) {
            words.push(need.clone());
        }
    }
    if let Some(wifi) = &req.wifi {
        // Raspberry Pi OS keeps the radio off until a country is set; Imager sets it here.
        const REGDOM: &str = "cfg80211.ieee80211_regdom=";
        words.retain(|w| !w.starts_with(REGDOM));
        words.push(format!("{REGDOM}{}", wifi.country));
    }
    words.extend(ours);
    let line = words.join(" ");
    if line.len() > CMDLINE_MAX {
        return Err(ProvisionError::Image {
            path: req.image.clone(),
            problem: format!(
                "cmdline.txt would be {} bytes, past the kernel's {CMDLINE_MAX}",
                line.len()
            ),
        });
    }
    Ok(line + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A syntactically valid token (a real one comes from `swarm join-token`).
    pub const TOKEN: &str =
        "SWMTKN-1-00000000000000000000000000000000000000000000000001-abcdefghijklmnopqrstuvwxy";

    fn request() -> Request {
        Request {
            board: crate::board::named("pi4").expect("pi4"),
            board_file: None,
            image: "raspios.img".into(),
            join_token: TOKEN.into(),
            manager: "10.0.0.1:2377".into(),
            hostname_template: Some("pi-{serial}".into()),
            wifi: Some(Wifi {
                ssid: "home net".into(),
                password: "correct horse".into(),
                country: "GB".into(),
            }),
            ssh_keys: vec!["ssh-ed25519 AAAAC3Nza me@laptop\n".into()],
            labels: vec!["zone=east".into(), "gpu".into()],
        }
    }

    fn file<'a>(files: &'a [File], name: &str) -> &'a str {
        let f = files.iter().find(|f| f.name == name).expect(name);
        std::str::from_utf8(&f.data).expect("text")
    }

    #[test]
    fn the_files_say_what_was_asked() {
        let req = request();
        let files = files(&req).expect("valid");
        let toml = file(&files, "covey.toml");
        let parsed: crate::config::FileConfig = toml::from_str(toml).expect("covey.toml parses");
        assert_eq!(parsed.board.as_deref(), Some("pi4"));
        assert_eq!(parsed.labels, ["zone=east", "gpu="]);
        assert_eq!(
            file(&files, "covey-join.env"),
            format!("COVEY_JOIN_TOKEN={TOKEN}\nCOVEY_MANAGER=10.0.0.1:2377\n")
        );
        assert_eq!(file(&files, "covey-hostname"), "pi-{serial}\n");
        let wifi = file(&files, "covey-wifi.nmconnection");
        assert!(
            wifi.contains("\nssid=home net\n") && wifi.contains("\npsk=correct horse\n"),
            "{wifi}"
        );
        assert_eq!(
            file(&files, "covey-authorized_keys"),
            "ssh-ed25519 AAAAC3Nza me@laptop\n"
        );
        // pi4's board file caps the journal at 64MiB.
        assert!(file(&files, "covey-journald.conf").ends_with("[Journal]\nSystemMaxUse=67108864\n"));
        assert!(file(&files, "covey-firstboot.sh").starts_with("#!/bin/sh"));
        assert!(file(&files, "covey.service").contains("ExecStart=/usr/bin/covey daemon"));
        assert!(!files.iter().any(|f| f.name == "covey-board.toml"));
        for f in &files {
            assert!(NAMES.contains(&f.name), "{} is not in NAMES", f.name);
        }
    }

    #[test]
    fn a_board_file_goes_with_the_image() {
        let mut req = request();
        req.board_file = Some("name = \"mine\"\n".into());
        req.labels = vec!["room=\"B\" \\ 2".into()];
        let files = files(&req).expect("valid");
        assert_eq!(file(&files, "covey-board.toml"), "name = \"mine\"\n");
        let parsed: crate::config::FileConfig =
            toml::from_str(file(&files, "covey.toml")).expect("covey.toml parses");
        assert_eq!(parsed.board_file, Some("/etc/covey/board.toml".into()));
        assert_eq!(parsed.board, None);
        assert_eq!(parsed.labels, ["room=\"B\" \\ 2"], "quotes survive");
    }

    #[test]
    fn bad_values_are_refused_by_flag() {
        let refused = |edit: &dyn Fn(&mut Request), want: &str| {
            let mut req = request();
            edit(&mut req);
            let e = files(&req).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains(want), "{want:?} in {e:?}");
        };
        refused(&|r| r.join_token = "SWMTKN-1-abc".into(), "--join-token");
        refused(&|r| r.manager = "10.0.0.1\nX=1".into(), "--manager");
        for template in [
            "Pi_{serial}",
            "pi-{mac}",
            &format!("{}{{serial}}", "a".repeat(60)),
        ] {
            refused(
                &|r| r.hostname_template = Some(template.into()),
                "--hostname-template",
            );
        }
        refused(&|r| r.labels = vec!["covey.board=pi5".into()], "--label");
        refused(
            &|r| r.ssh_keys = vec!["-----BEGIN OPENSSH PRIVATE KEY-----".into()],
            "private key",
        );
        refused(&|r| r.ssh_keys = vec!["hello".into()], "--ssh-key");
        let wifi = |ssid: &str, password: &str, country: &str| {
            let mut req = request();
            req.wifi = Some(Wifi {
                ssid: ssid.into(),
                password: password.into(),
                country: country.into(),
            });
            files(&req).err().map(|e| e.to_string()).unwrap_or_default()
        };
        assert!(wifi("a;b", "password1", "GB").contains("--wifi-ssid"));
        assert!(wifi("net", "short", "GB").contains("--wifi-password"));
        assert!(wifi("net", "pass\\word", "GB").contains("--wifi-password"));
        assert!(wifi("net", "password1", "gb").contains("--wifi-country"));
        assert_eq!(wifi("net", &"a".repeat(64), "DE"), "");
    }

    #[test]
    fn cmdline_gains_the_board_and_first_boot_once() {
        let req = request();
        let fresh = "console=serial0,115200 console=tty1 root=PARTUUID=1234-02 rootfstype=ext4 fsck.repair=yes rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot\n";
        let once = cmdline(fresh, &req).expect("edits");
        assert_eq!(
            once,
            "console=serial0,115200 console=tty1 root=PARTUUID=1234-02 rootfstype=ext4 fsck.repair=yes rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot \
             cgroup_enable=memory cfg80211.ieee80211_regdom=GB \
             systemd.run=/boot/firmware/covey-firstboot.sh systemd.run_success_action=reboot \
             systemd.run_failure_action=reboot systemd.unit=kernel-command-line.target\n"
        );
        assert_eq!(cmdline(&once, &req).expect("again"), once, "idempotent");
        let imager = "root=x systemd.run=/boot/firstrun.sh systemd.run_success_action=reboot";
        let e = cmdline(imager, &req).unwrap_err().to_string();
        assert!(e.contains("systemd.run=/boot/firstrun.sh"), "{e}");
        let long = format!("root=x {}", "y".repeat(2100));
        assert!(cmdline(&long, &req)
            .unwrap_err()
            .to_string()
            .contains("2048"));
    }
}
