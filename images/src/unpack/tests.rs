use super::xattr::lgetxattr;
use super::*;
use std::os::unix::fs::symlink;

type Item<'a> = (&'a str, EntryType, &'a [u8], &'a str);

/// Raw names, so that the `..` and absolute paths `tar::Builder` refuses can be written.
fn header(name: &str, kind: EntryType, size: usize, link: &str) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_entry_type(kind);
    h.set_size(size as u64);
    h.set_mode(if kind == EntryType::Directory {
        0o750
    } else {
        0o640
    });
    h.set_uid(1000);
    h.set_gid(1001);
    h.set_mtime(1_600_000_000);
    if matches!(kind, EntryType::Char | EntryType::Block) {
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
    }
    h.set_cksum();
    h
}

fn tar(items: &[Item]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, data, link) in items {
        b.append(&header(name, *kind, data.len(), link), *data)
            .unwrap();
    }
    b.into_inner().unwrap()
}

fn pax(key: &str, value: &str) -> Vec<u8> {
    let body = format!(" {key}={value}\n");
    let mut n = body.len() + 1;
    while n.to_string().len() + body.len() != n {
        n = n.to_string().len() + body.len();
    }
    format!("{n}{body}").into_bytes()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn lstat(p: &Path) -> fs::Metadata {
    fs::symlink_metadata(p).unwrap()
}

const REG: EntryType = EntryType::Regular;
const DIR: EntryType = EntryType::Directory;
const SYM: EntryType = EntryType::Symlink;
const LNK: EntryType = EntryType::Link;

fn sample() -> Vec<u8> {
    let mut t = tar(&[
        ("./", DIR, b"", ""),
        ("./bin/", DIR, b"", ""),
        ("./bin/busybox", REG, b"#!busybox", ""),
        ("./bin/sh", SYM, b"", "busybox"),
        ("./bin/ash", LNK, b"", "./bin/busybox"),
        ("./etc/passwd", REG, b"root:x:0:0", ""),
        ("./x", SYM, b"", "/etc/passwd"),
        ("./fifo", EntryType::Fifo, b"", ""),
    ]);
    t.extend_from_slice(&[0; 9216]); // record padding, as GNU tar writes
    t
}

#[test]
fn plain_gzip_and_zstd_unpack_with_diff_id() {
    let raw = sample();
    let zstd =
        ruzstd::encoding::compress_to_vec(&raw[..], ruzstd::encoding::CompressionLevel::Fastest);
    for stream in [raw.clone(), gzip(&raw), zstd] {
        let tmp = tempfile::tempdir().unwrap();
        let got = unpack_layer(&stream[..], tmp.path(), &UnpackLimits::default()).unwrap();
        assert_eq!(got.diff_id, Digest::of(&raw));
        assert_eq!((got.bytes, got.entries), (19, 8));
        let p = |s: &str| tmp.path().join(s);
        assert_eq!(fs::read(p("bin/busybox")).unwrap(), b"#!busybox");
        assert_eq!(fs::read_link(p("bin/sh")).unwrap(), Path::new("busybox"));
        assert_eq!(fs::read_link(p("x")).unwrap(), Path::new("/etc/passwd"));
        assert_eq!(lstat(&p("bin/ash")).ino(), lstat(&p("bin/busybox")).ino());
        assert!(lstat(&p("fifo")).file_type().is_fifo());
        let m = lstat(&p("bin/busybox"));
        assert_eq!(
            (m.mode() & 0o7777, m.uid(), m.gid(), m.mtime()),
            (0o640, 1000, 1001, 1_600_000_000)
        );
        let d = lstat(&p("bin"));
        assert_eq!((d.mode() & 0o7777, d.mtime()), (0o750, 1_600_000_000));
        assert_eq!(lstat(&p("bin/sh")).uid(), 1000);
    }
}

/// Unpacks `layer`, expecting a refusal that names `entry`, and checks nothing outside
/// `dest` was touched.
fn refused(layer: &[u8], limits: &UnpackLimits, entry: &str) -> UnpackError {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("a/b/dest");
    fs::create_dir_all(&dest).unwrap();
    fs::write(tmp.path().join("a/sentinel"), "keep").unwrap();
    fs::write(tmp.path().join("a/b/x"), "keep").unwrap();
    let err = unpack_layer(layer, &dest, limits).unwrap_err();
    assert!(err.is_bad_content(), "{err}");
    assert!(
        err.to_string().contains(entry),
        "{err:?} does not name {entry}"
    );
    assert_eq!(
        fs::read_to_string(tmp.path().join("a/sentinel")).unwrap(),
        "keep"
    );
    assert_eq!(
        fs::read_to_string(tmp.path().join("a/b/x")).unwrap(),
        "keep"
    );
    assert_eq!(lstat(&tmp.path().join("a/b/x")).nlink(), 1);
    let mut outside: Vec<_> = Vec::new();
    for dir in [
        tmp.path().to_path_buf(),
        tmp.path().join("a"),
        tmp.path().join("a/b"),
    ] {
        outside.extend(fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name()));
    }
    outside.sort();
    assert_eq!(outside, ["a", "b", "dest", "sentinel", "x"]);
    err
}

#[test]
fn attacks_are_refused() {
    let d = UnpackLimits::default();
    refused(&tar(&[("../escape", REG, b"pwn", "")]), &d, "../escape");
    refused(
        &tar(&[("ok/../../escape", REG, b"pwn", "")]),
        &d,
        "ok/../../escape",
    );
    refused(&tar(&[("/abs", REG, b"pwn", "")]), &d, "/abs");
    let e = refused(
        &tar(&[("evil", SYM, b"", "../../.."), ("evil/file", REG, b"x", "")]),
        &d,
        "evil",
    );
    assert!(matches!(e, UnpackError::SymlinkEscapes { .. }));
    refused(&tar(&[("a/b", SYM, b"", "../../etc/passwd")]), &d, "a/b");
    refused(&tar(&[("up", SYM, b"", "/../x")]), &d, "up");
    let inside = tar(&[
        ("sub/", DIR, b"", ""),
        ("ok", SYM, b"", "sub"),
        ("ok/file", REG, b"x", ""),
    ]);
    let e = refused(&inside, &d, "ok/file");
    assert!(e.to_string().contains("parent \"ok\" is a symlink"), "{e}");
    refused(&tar(&[("h", LNK, b"", "../x")]), &d, "h");
    let e = refused(&tar(&[("h", LNK, b"", "/etc/passwd")]), &d, "h");
    assert!(matches!(e, UnpackError::BadLinkTarget { .. }));
    let e = refused(&tar(&[("h", LNK, b"", "etc/passwd")]), &d, "h");
    assert!(e.to_string().contains("which is not in this layer"), "{e}");
    refused(
        &tar(&[
            ("sub/", DIR, b"", ""),
            ("ok", SYM, b"", "sub"),
            ("h", LNK, b"", "ok/f"),
        ]),
        &d,
        "h",
    );
    let e = refused(
        &tar(&[("dev/null", EntryType::Char, b"", "")]),
        &d,
        "dev/null",
    );
    assert!(e.to_string().contains("is a device node"));
    refused(
        &tar(&[("dev/sda", EntryType::Block, b"", "")]),
        &d,
        "dev/sda",
    );
    refused(&tar(&[("sock", EntryType::new(b'V'), b"", "")]), &d, "sock");
    refused(&tar(&[(".wh..", REG, b"", "")]), &d, ".wh..");
    let small = UnpackLimits {
        max_bytes: 4096,
        max_entries: 100,
    };
    let big = vec![7u8; 10_000];
    let e = refused(
        &gzip(&tar(&[("ok", REG, &[1; 4000], ""), ("big", REG, &big, "")])),
        &small,
        "big",
    );
    assert!(e.to_string().contains("4096"), "{e}");
    let few = UnpackLimits {
        max_bytes: 1 << 20,
        max_entries: 3,
    };
    let many: Vec<String> = (0..5).map(|i| format!("f{i}")).collect();
    let items: Vec<Item> = many
        .iter()
        .map(|n| (n.as_str(), REG, &b""[..], ""))
        .collect();
    let e = refused(&tar(&items), &few, "f3");
    assert!(matches!(e, UnpackError::TooManyEntries { limit: 3, .. }));
}

#[test]
fn oversized_headers_and_trailers_are_refused() {
    let huge = vec![b'a'; (HEADER_ALLOWANCE + 1024) as usize];
    let pax_body = [b"99999999 user.x=".as_slice(), &huge].concat();
    let layer = tar(&[
        ("first", REG, b"", ""),
        ("pax", EntryType::XHeader, &pax_body, ""),
        ("f", REG, b"", ""),
    ]);
    let e = refused(&layer, &UnpackLimits::default(), "first");
    assert!(matches!(e, UnpackError::HeadersTooLarge { .. }), "{e}");
    let mut padded = tar(&[("f", REG, b"x", "")]);
    padded.resize(padded.len() + TRAILER_ALLOWANCE as usize + 1, 0);
    let e = refused(&gzip(&padded), &UnpackLimits::default(), "");
    assert!(matches!(e, UnpackError::TrailingData { .. }), "{e}");
}

#[test]
fn corrupt_and_failing_streams() {
    let mut layer = gzip(&sample());
    layer.truncate(layer.len() / 2);
    let tmp = tempfile::tempdir().unwrap();
    let e = unpack_layer(&layer[..], tmp.path(), &UnpackLimits::default()).unwrap_err();
    assert!(e.is_bad_content(), "{e}");
    struct Failing;
    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::other("connection reset"))
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let e = unpack_layer(Failing, tmp.path(), &UnpackLimits::default()).unwrap_err();
    assert!(
        matches!(e, UnpackError::Read(_)) && !e.is_bad_content(),
        "{e}"
    );
}

#[test]
fn later_entries_replace_earlier_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let layer = tar(&[
        ("d/f", REG, b"1", ""),
        ("d", REG, b"file now", ""),
        ("l", SYM, b"", "d"),
        ("l", REG, b"2", ""),
    ]);
    unpack_layer(&layer[..], tmp.path(), &UnpackLimits::default()).unwrap();
    assert_eq!(fs::read(tmp.path().join("d")).unwrap(), b"file now");
    assert_eq!(fs::read(tmp.path().join("l")).unwrap(), b"2");
}

fn xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    lgetxattr(p, name).unwrap()
}

#[test]
fn whiteouts_and_pax_xattrs() {
    let tmp = tempfile::tempdir().unwrap();
    let exts = [
        pax("SCHILY.xattr.user.note", "hi"),
        pax("SCHILY.xattr.trusted.overlay.opaque", "y"),
    ]
    .concat();
    let layer = tar(&[
        (".wh.gone", REG, b"", ""),
        ("d/.wh..wh..opq", REG, b"", ""),
        ("d/.wh..wh.plnk", REG, b"", ""),
        ("PaxHeaders/e", EntryType::XHeader, &exts, ""),
        ("e/", DIR, b"", ""),
    ]);
    unpack_layer(&layer[..], tmp.path(), &UnpackLimits::default()).unwrap();
    let gone = lstat(&tmp.path().join("gone"));
    assert!(gone.file_type().is_char_device() && gone.rdev() == 0);
    assert!(!tmp.path().join(".wh.gone").exists());
    assert_eq!(
        xattr(&tmp.path().join("d"), OPAQUE_XATTR).as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(fs::read_dir(tmp.path().join("d")).unwrap().count(), 0);
    let e = tmp.path().join("e");
    assert_eq!(xattr(&e, "user.note").as_deref(), Some(&b"hi"[..]));
    assert_eq!(xattr(&e, OPAQUE_XATTR), None);
}

fn lower() -> Vec<u8> {
    tar(&[
        ("keep", REG, b"k", ""),
        ("gone", REG, b"g", ""),
        ("d/old", REG, b"o", ""),
        ("lnk", SYM, b"", "keep"),
    ])
}

fn upper() -> Vec<u8> {
    tar(&[
        (".wh.gone", REG, b"", ""),
        ("d/.wh..wh..opq", REG, b"", ""),
        ("d/new", REG, b"n", ""),
        ("lnk", REG, b"f", ""),
    ])
}

#[test]
fn apply_layer_dir_over_rootfs() {
    let tmp = tempfile::tempdir().unwrap();
    let (rootfs, layer) = (tmp.path().join("rootfs"), tmp.path().join("layer"));
    fs::create_dir_all(&rootfs).unwrap();
    fs::create_dir_all(&layer).unwrap();
    unpack_layer(&lower()[..], &rootfs, &UnpackLimits::default()).unwrap();
    unpack_layer(&upper()[..], &layer, &UnpackLimits::default()).unwrap();
    symlink("keep", layer.join("s")).unwrap();
    apply_layer_dir(&layer, &rootfs).unwrap();
    assert_eq!(fs::read(rootfs.join("keep")).unwrap(), b"k");
    assert!(fs::symlink_metadata(rootfs.join("gone")).is_err());
    assert!(fs::symlink_metadata(rootfs.join("d/old")).is_err());
    assert_eq!(fs::read(rootfs.join("lnk")).unwrap(), b"f");
    assert_eq!(fs::read_link(rootfs.join("s")).unwrap(), Path::new("keep"));
    let m = lstat(&rootfs.join("d/new"));
    assert_eq!(
        (m.mode() & 0o7777, m.uid(), m.mtime()),
        (0o640, 1000, 1_600_000_000)
    );
    assert_eq!(xattr(&rootfs.join("d"), OPAQUE_XATTR), None);
}

#[test]
fn overlay_mount_honours_whiteouts() {
    let supported = fs::read_to_string("/proc/filesystems").is_ok_and(|s| s.contains("overlay"));
    if !supported {
        eprintln!("overlayfs not available; skipping");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let p = |s: &str| tmp.path().join(s);
    for d in ["lower", "upper", "up", "work", "merged"] {
        fs::create_dir(p(d)).unwrap();
    }
    unpack_layer(&lower()[..], &p("lower"), &UnpackLimits::default()).unwrap();
    unpack_layer(&upper()[..], &p("upper"), &UnpackLimits::default()).unwrap();
    let opts = format!(
        "lowerdir={}:{},upperdir={},workdir={}",
        p("upper").display(),
        p("lower").display(),
        p("up").display(),
        p("work").display()
    );
    let flags = nix::mount::MsFlags::empty();
    if let Err(e) = nix::mount::mount(
        Some("overlay"),
        &p("merged"),
        Some("overlay"),
        flags,
        Some(opts.as_str()),
    ) {
        eprintln!("overlay mount failed ({e}); skipping");
        return;
    }
    let seen = (
        fs::read(p("merged/keep")).ok(),
        p("merged/gone").exists(),
        p("merged/d/old").exists(),
        fs::read(p("merged/d/new")).ok(),
    );
    nix::mount::umount(&p("merged")).unwrap();
    assert_eq!(
        seen,
        (Some(b"k".to_vec()), false, false, Some(b"n".to_vec()))
    );
}
