use std::time::Duration;

use super::*;

fn err(text: &str) -> String {
    match Board::parse(text, "test.toml") {
        Ok(b) => panic!("parsed: {b:?}"),
        Err(e) => e.to_string(),
    }
}

/// A valid file whose `from` line is replaced by `to` (which must be there).
fn edited(from: &str, to: &str) -> String {
    let base = BUILTIN
        .iter()
        .find(|(f, _)| *f == "pi4.toml")
        .map(|(_, t)| *t)
        .expect("pi4.toml");
    assert!(base.contains(from), "{from:?} not in pi4.toml");
    base.replacen(from, to, 1)
}

#[test]
fn every_shipped_file_parses_and_is_named_after_its_file() {
    let boards = builtin().expect("the shipped boards parse");
    assert_eq!(boards.len(), BUILTIN.len());
    for (board, (file, _)) in boards.iter().zip(BUILTIN) {
        assert_eq!(format!("{}.toml", board.name), *file);
    }
    let names: Vec<&str> = boards.iter().map(|b| b.name.as_str()).collect();
    for wanted in [
        "pi-zero-2w",
        "pi3b-plus",
        "pi4",
        "pi5",
        "cm4",
        "orin-nano",
        "x86-64",
    ] {
        assert!(names.contains(&wanted), "{wanted} in {names:?}");
    }
    let pi4 = named("pi4").expect("pi4");
    assert_eq!(pi4.platform.target, Target::Aarch64);
    assert_eq!(pi4.platform.variant.as_deref(), Some("v8"));
    assert_eq!(pi4.kernel.cmdline, ["cgroup_enable=memory"]);
    assert_eq!(pi4.reserved.memory, 256 << 20);
    assert_eq!(pi4.flash.store_flush_interval, Duration::from_secs(30));
    assert_eq!(pi4.provision, Some(ImageKind::Raspios));
    let zero = named("pi-zero-2w").expect("zero");
    assert_eq!(zero.oci_platform().to_string(), "linux/arm/v7");
    assert_eq!(
        named("x86-64").expect("x86").oci_platform().to_string(),
        "linux/amd64"
    );
    assert!(named("orin-nano").expect("orin").provision.is_none());
    // The bundled repository's files must be the ones the binary carries.
    for (file, text) in BUILTIN {
        let on_disk = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../board-configs")
                .join(file),
        )
        .expect("board-configs/ file");
        assert_eq!(&on_disk, text);
    }
}

#[test]
fn unknown_board_lists_the_known_ones() {
    let e = named("pi9").unwrap_err().to_string();
    assert!(
        e.contains("unknown board \"pi9\"") && e.contains("pi4") && e.contains("cm4"),
        "{e}"
    );
}

#[test]
fn detection_by_model_then_fallback() {
    let boards = builtin().expect("boards");
    let found =
        |model: Option<&str>, arch: &str| detect_in(&boards, model, arch).map(|b| b.name.as_str());
    for (model, board) in [
        ("Raspberry Pi Zero 2 W Rev 1.0", "pi-zero-2w"),
        ("Raspberry Pi 3 Model B Plus Rev 1.3", "pi3b-plus"),
        ("Raspberry Pi 4 Model B Rev 1.4", "pi4"),
        ("Raspberry Pi 5 Model B Rev 1.0", "pi5"),
        ("Raspberry Pi Compute Module 4 Rev 1.0", "cm4"),
        ("NVIDIA Jetson Orin Nano Developer Kit", "orin-nano"),
        (
            "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super",
            "orin-nano",
        ),
    ] {
        assert_eq!(found(Some(model), "aarch64"), Some(board), "{model}");
    }
    // Not one of ours: a Pi 3 Model B (no Plus), a Pi 400.
    assert_eq!(
        found(Some("Raspberry Pi 3 Model B Rev 1.2"), "aarch64"),
        None
    );
    assert_eq!(found(Some("Raspberry Pi 400 Rev 1.0"), "aarch64"), None);
    assert_eq!(found(None, "x86_64"), Some("x86-64"));
    assert_eq!(
        found(Some("QEMU Virtual Machine"), "x86_64"),
        Some("x86-64")
    );
    assert_eq!(found(None, "aarch64"), None);
    // No string of one board is in another's: a model never names two.
    for a in &boards {
        for b in boards.iter().filter(|b| b.name != a.name) {
            for p in &a.models {
                assert!(
                    !b.models.iter().any(|q| q.contains(p.as_str())),
                    "{p} in {}",
                    b.name
                );
            }
        }
    }
}

#[test]
fn host_checks_name_the_fix() {
    let pi4 = named("pi4").expect("pi4");
    let all: Vec<String> = ["cpu", "memory", "pids"].map(String::from).to_vec();
    let cmdline = "console=tty1 root=PARTUUID=1-02 cgroup_disable=memory cgroup_enable=memory";
    assert!(check_host(&pi4, cmdline, &all).is_empty());
    let problems = check_host(
        &pi4,
        "console=tty1 rootwait",
        &["cpu".into(), "pids".into()],
    );
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].contains("lacks cgroup_enable=memory"),
        "{}",
        problems[0]
    );
    assert!(
        problems[1].contains("\"memory\" is missing"),
        "{}",
        problems[1]
    );
}

#[test]
fn malformed_files_name_the_field() {
    let cases = [
        (
            edited("memory = \"256MiB\"", "memory = \"lots\""),
            "reserved.memory",
            "invalid size \"lots\"",
        ),
        (
            edited("memory = \"256MiB\"", "memory = true"),
            "reserved.memory",
            "a size",
        ),
        (
            edited("cpus = 0.25", "cpus = \"a quarter\""),
            "reserved.cpus",
            "invalid type",
        ),
        (
            edited("cpus = 0.25", "cpus = 99.0"),
            "reserved.cpus",
            "out of range",
        ),
        (
            edited(
                "target = \"aarch64-unknown-linux-gnu\"",
                "target = \"aarch64-apple-darwin\"",
            ),
            "platform.target",
            "unknown variant",
        ),
        (
            edited("variant = \"v8\"", "variant = \"v7\""),
            "platform.variant",
            "no variant",
        ),
        (
            edited("variant = \"v8\"\n", ""),
            "platform.variant",
            "missing",
        ),
        (
            edited(
                "store-flush-interval = \"30s\"",
                "store-flush-interval = \"soon\"",
            ),
            "flash.store-flush-interval",
            "invalid duration",
        ),
        (
            edited("log-max-size = \"8MiB\"", "log-max-size = \"8KiB\""),
            "flash.log-max-size",
            "out of range",
        ),
        (
            edited(
                "journal-max-size = \"64MiB\"",
                "journal-max-size = \"64KiB\"",
            ),
            "flash.journal-max-size",
            "out of range",
        ),
        (
            edited("provision = \"raspios\"\n", ""),
            "flash.journal-max-size",
            "has no `provision`",
        ),
        (
            edited("log-max-size", "log-max-sise"),
            "flash.log-max-sise",
            "unknown field `log-max-sise`",
        ),
        (
            edited("name = \"pi4\"", "name = \"Pi 4\""),
            "name",
            "not a board name",
        ),
        (
            edited("provision = \"raspios\"", "provision = \"ubuntu\""),
            "provision",
            "unknown variant",
        ),
        (
            edited(
                "[\"cgroup_enable=memory\"]",
                "[\"cgroup_enable=memory quiet\"]",
            ),
            "kernel.cmdline",
            "not one word",
        ),
        (
            edited("[\"cpu\", \"memory\", \"pids\"]", "[\"cpu\", \"memroy\"]"),
            "kernel.cgroup-controllers",
            "unknown controller \"memroy\"",
        ),
        (
            edited("models = [\"Raspberry Pi 4 Model B\"]", "models = [\"\"]"),
            "models",
            "empty model",
        ),
        (
            edited("[reserved]", "[reserve]"),
            "reserve",
            "unknown field `reserve`",
        ),
        (
            edited("[reserved]\ncpus = 0.25\nmemory = \"256MiB\"\n", ""),
            "(top level)",
            "missing field `reserved`",
        ),
        (
            edited("cpus = 0.25\n", ""),
            "reserved",
            "missing field `cpus`",
        ),
        ("name = \"x\"\n[[oops".to_string(), "(syntax)", "line 2"),
    ];
    for (text, field, problem) in cases {
        let e = err(&text);
        assert!(
            e.starts_with(&format!("board file test.toml: {field}: ")),
            "{field}: {e}"
        );
        assert!(e.contains(problem), "{problem:?} in {e}");
    }
    // A missing section is named too.
    let e = err(&edited("[flash]", "[flashy]"));
    assert!(e.contains("unknown field `flashy`"), "{e}");
}

#[test]
fn a_board_file_on_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("mine.toml");
    std::fs::write(&path, edited("name = \"pi4\"", "name = \"my-pi\"")).expect("write");
    let resolved = resolve(&Choice::File(path.clone()))
        .expect("resolves")
        .expect("a board");
    assert_eq!(resolved.board.name, "my-pi");
    assert_eq!(resolved.source, Source::File(path));
    let missing = dir.path().join("none.toml");
    let e = Board::from_file(&missing).unwrap_err().to_string();
    assert!(e.contains("none.toml"), "{e}");
}
