//! Images through the daemon with the covey CLI: pulls from a real registry (single- and
//! multi-platform), listing, inspecting, removing, loading, and bad input.

use covey_tests::{fixtures, Daemon, Registry};

#[test]
fn pull_single_and_multi_platform() {
    let reg = Registry::start("pull").unwrap();
    let busybox = reg.push("busybox", "busybox").unwrap();
    let multi = reg.push("multiarch", "multi").unwrap();
    let node = Daemon::start("pull", &[]).unwrap();

    let out = node.covey_ok(&["image", "pull", &busybox]);
    assert!(out.contains(&busybox), "{out}");
    let ls = node.covey_ok(&["image", "ls"]);
    assert!(
        ls.contains(&format!("{}/busybox", reg.host())) && ls.contains("latest"),
        "{ls}"
    );

    // This machine is amd64: that is what an index resolves to unless asked otherwise.
    node.covey_ok(&["image", "pull", &multi]);
    let arch = |name: &str| {
        let v: serde_json::Value =
            serde_json::from_str(&node.covey_ok(&["image", "inspect", name])).unwrap();
        v[0]["Architecture"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(arch(&multi), "amd64");
    node.covey_ok(&["image", "pull", "--platform", "linux/arm64", &multi]);
    assert_eq!(arch(&multi), "arm64");
    // The unpacked arm64 busybox is an aarch64 ELF (e_machine 183), not the host's.
    let v: serde_json::Value =
        serde_json::from_str(&node.covey_ok(&["image", "inspect", &multi])).unwrap();
    let diff = v[0]["RootFS"]["Layers"][0]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let elf = std::fs::read(
        node.data()
            .join("images/layers/sha256")
            .join(diff)
            .join("bin/busybox"),
    )
    .unwrap();
    assert_eq!(u16::from_le_bytes([elf[18], elf[19]]), 183);

    let err = node.covey_err(&["image", "pull", "--platform", "linux/riscv64", &multi]);
    assert!(
        err.contains("linux/riscv64") && err.contains("linux/arm64") && err.contains("linux/amd64"),
        "{err}"
    );

    let json: serde_json::Value =
        serde_json::from_str(&node.covey_ok(&["image", "ls", "--format", "json"])).unwrap();
    assert_eq!(json.as_array().map(|a| a.len()), Some(2), "{json}");
}

#[test]
fn remove_and_prune_free_the_store() {
    let reg = Registry::start("rm").unwrap();
    let layers = reg.push("layers", "layers").unwrap();
    let node = Daemon::start("rm", &[]).unwrap();
    node.covey_ok(&["image", "pull", &layers]);
    let blobs = node.data().join("images/blobs/sha256");
    assert_eq!(
        std::fs::read_dir(&blobs).unwrap().count(),
        6,
        "index-less image: manifest, config, 4 layers"
    );

    let out = node.covey_ok(&["image", "rm", &layers]);
    assert!(
        out.contains("Untagged:") && out.contains("Deleted: sha256:"),
        "{out}"
    );
    assert_eq!(std::fs::read_dir(&blobs).unwrap().count(), 0);
    let unpacked = std::fs::read_dir(node.data().join("images/layers/sha256"))
        .unwrap()
        .count();
    assert_eq!(unpacked, 0);
    assert!(node.covey_ok(&["image", "ls", "-q"]).trim().is_empty());

    let err = node.covey_err(&["image", "rm", "nothing-here"]);
    assert!(err.contains("No such image: nothing-here"), "{err}");
    node.covey_ok(&["image", "prune", "--force"]);
}

#[test]
fn load_saved_tarball_and_oci_layout() {
    let node = Daemon::start("load", &[]).unwrap();
    let saved = fixtures().join("busybox-save.tar");
    let out = node.covey_ok(&["image", "load", "-i", saved.to_str().unwrap()]);
    assert_eq!(out.trim(), "Loaded image: covey-test/saved:latest");
    assert!(node.covey_ok(&["image", "ls"]).contains("covey-test/saved"));

    // An OCI layout whose only name is a tag loads as an image without a name.
    let tar = node.root.path().join("layout.tar");
    let ok = std::process::Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(fixtures().join("oci/layers"))
        .arg(".")
        .status()
        .unwrap();
    assert!(ok.success());
    let out = node.covey_ok(&["image", "load", "-i", tar.to_str().unwrap()]);
    assert!(out.starts_with("Loaded image ID: sha256:"), "{out}");
    assert!(node.covey_ok(&["image", "ls"]).contains("<none>"));

    let junk = node.root.path().join("junk.tar");
    std::fs::write(&junk, b"this is not a tar archive at all, not even close").unwrap();
    let err = node.covey_err(&["image", "load", "-i", junk.to_str().unwrap()]);
    assert!(err.contains("Error response from daemon"), "{err}");
}

#[test]
fn bad_input_is_named() {
    let node = Daemon::start("bad", &[]).unwrap();
    let err = node.covey_err(&["image", "pull", "Upper/Case"]);
    assert!(err.contains("must be lowercase"), "{err}");
    let err = node.covey_err(&["image", "pull", "--platform", "linux", "busybox"]);
    assert!(err.contains("invalid platform"), "{err}");
    let reg = Registry::start("bad").unwrap();
    let err = node.covey_err(&["image", "pull", &format!("{}/does-not-exist", reg.host())]);
    assert!(err.contains("No such image"), "{err}");

    // The CLI names a daemon it cannot reach.
    let out = std::process::Command::new(covey_tests::covey_bin())
        .args(["-H", "unix:///nonexistent/covey.sock", "image", "ls"])
        .output()
        .unwrap();
    assert!(covey_tests::stderr(&out).contains("Is the covey daemon running?"));

    // A config file with a typo is refused by name, and a second daemon on one data root too.
    let cfg = node.root.path().join("covey.toml");
    std::fs::write(&cfg, "data-rot = \"/x\"\n").unwrap();
    let out = std::process::Command::new(covey_tests::covey_bin())
        .args(["daemon", "--config-file", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        covey_tests::stderr(&out).contains("data-rot"),
        "{}",
        covey_tests::stderr(&out)
    );
    let out = std::process::Command::new(covey_tests::covey_bin())
        .args([
            "daemon",
            "--data-root",
            node.data().to_str().unwrap(),
            "-H",
            "unix:///tmp/covey-bad-second.sock",
        ])
        .output()
        .unwrap();
    assert!(
        covey_tests::stderr(&out).contains("another covey daemon"),
        "{}",
        covey_tests::stderr(&out)
    );
}
