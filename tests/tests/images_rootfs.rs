//! Root filesystems from images, through the images library in-process: whiteouts,
//! opaque directories, links, overlay and copy snapshots, and garbage collection that
//! spares what a snapshot uses.

use std::path::Path;

use covey_images::{ErrorKind, ImageOptions, ImageService, Reference, SnapshotMode};
use covey_tests::{fixtures, Registry};

fn service(root: &Path, mode: SnapshotMode) -> ImageService {
    ImageService::open(
        root,
        ImageOptions {
            snapshots: mode,
            ..Default::default()
        },
    )
    .unwrap()
}

fn mounted(path: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .any(|l| l.split(' ').nth(4) == Some(path.to_str().unwrap()))
}

fn check_layers_rootfs(rootfs: &Path) {
    let read =
        |p: &str| std::fs::read_to_string(rootfs.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    assert_eq!(read("data/keep.txt"), "keep");
    assert_eq!(read("data/hard.txt"), "keep");
    assert_eq!(read("data/link"), "keep");
    assert_eq!(
        std::fs::read_link(rootfs.join("data/abs")).unwrap(),
        Path::new("/data/keep.txt")
    );
    assert_eq!(read("data/dir/new.txt"), "new");
    assert_eq!(read("etc/layers-version"), "4");
    assert!(
        !rootfs.join("data/gone.txt").exists(),
        "whiteout did not hide gone.txt"
    );
    assert!(
        !rootfs.join("data/dir/old.txt").exists(),
        "opaque dir did not hide old.txt"
    );
    assert!(rootfs.join("bin/busybox").is_file());
}

async fn rootfs_roundtrip(mode: SnapshotMode, layout: &str, skopeo: &[&str]) {
    let reg = Registry::start(&format!("rootfs-{mode:?}")).unwrap();
    let name: Reference = reg
        .push_with(layout, "layers", skopeo)
        .unwrap()
        .parse()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let images = service(dir.path(), mode);
    assert_eq!(images.snapshot_mode(), mode);
    images.pull(&name, None, None, &|_| {}).await.unwrap();

    let snap = images
        .prepare_snapshot("c1", &name.to_string())
        .await
        .unwrap();
    check_layers_rootfs(&snap.rootfs);
    assert_eq!(mounted(&snap.rootfs), mode == SnapshotMode::Overlay);
    // Writes land in the container's own layer, never in the image's.
    std::fs::write(snap.rootfs.join("data/keep.txt"), "changed").unwrap();
    std::fs::remove_file(snap.rootfs.join("etc/layers-version")).unwrap();
    let again = images
        .prepare_snapshot("c2", &name.to_string())
        .await
        .unwrap();
    check_layers_rootfs(&again.rootfs);

    let err = images.remove(&name.to_string(), false).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    for id in ["c1", "c2"] {
        images.remove_snapshot(id).await.unwrap();
    }
    assert!(!mounted(&snap.rootfs) && !snap.rootfs.exists());
    images.remove(&name.to_string(), false).await.unwrap();
    assert_eq!(
        std::fs::read_dir(dir.path().join("layers/sha256"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlay_snapshot_applies_whiteouts() {
    rootfs_roundtrip(SnapshotMode::Overlay, "layers", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_snapshot_applies_whiteouts_of_zstd_layers() {
    rootfs_roundtrip(SnapshotMode::Copy, "layers-zstd", &[]).await;
}

/// The same image pushed as a Docker schema 2 manifest, as Docker Hub serves most images.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_schema2_image_unpacks_the_same() {
    rootfs_roundtrip(SnapshotMode::Overlay, "layers", &["--format", "v2s2"]).await;
}

/// A `docker save` tarball loads through the same path as a pull, and its root filesystem
/// runs: busybox's shell, chrooted into the snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saved_tarball_loads_and_its_rootfs_runs() {
    let dir = tempfile::tempdir().unwrap();
    let images = service(dir.path(), SnapshotMode::Auto);
    let file = std::fs::File::open(fixtures().join("busybox-save.tar")).unwrap();
    let loaded = images.load(file, &|_| {}).await.unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(
        loaded[0].names,
        vec!["docker.io/covey-test/saved:latest".to_string()]
    );

    let snap = images
        .prepare_snapshot("run1", "covey-test/saved")
        .await
        .unwrap();
    let out = std::process::Command::new("chroot")
        .arg(&snap.rootfs)
        .args(["/bin/sh", "-c", "echo hello from $(uname -s) as $(id -un)"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "hello from Linux as root",
        "{out:?}"
    );
    images.remove_snapshot("run1").await.unwrap();
}
