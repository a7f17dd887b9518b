//! Pulls over bad links and from bad registries: a connection cut mid-blob resumes with
//! only the missing bytes fetched again; a blob whose bytes do not match its digest is
//! refused and nothing of it is kept.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use covey_tests::{files_under, fixtures, Daemon, Registry};

/// A TCP proxy to `upstream` that counts the bytes it passes back to the client and cuts
/// the first connection that has passed more than `cut_after` of them.
struct CuttingProxy {
    port: u16,
    downstream: Arc<AtomicU64>,
    cut: Arc<AtomicBool>,
}

impl CuttingProxy {
    fn start(upstream: u16, cut_after: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (downstream, cut) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (down, cut2) = (downstream.clone(), cut.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let (mut c_read, mut s_write) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c_read, &mut s_write);
                    let _ = s_write.shutdown(Shutdown::Write);
                });
                let (down, cut) = (down.clone(), cut2.clone());
                std::thread::spawn(move || {
                    let (mut server, mut client) = (server, client);
                    let mut buf = [0u8; 16 * 1024];
                    let mut passed = 0u64;
                    loop {
                        let n = match server.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if passed + n as u64 > cut_after && !cut.swap(true, Ordering::SeqCst) {
                            let keep = (cut_after - passed) as usize;
                            let _ = client.write_all(&buf[..keep]);
                            down.fetch_add(keep as u64, Ordering::SeqCst);
                            let _ = client.shutdown(Shutdown::Both);
                            let _ = server.shutdown(Shutdown::Both);
                            return;
                        }
                        if client.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        passed += n as u64;
                        down.fetch_add(n as u64, Ordering::SeqCst);
                    }
                    let _ = client.shutdown(Shutdown::Write);
                });
            }
        });
        Self {
            port,
            downstream,
            cut,
        }
    }
}

/// The busybox fixture's one layer: its digest (hex) and size.
fn busybox_layer() -> (String, u64) {
    let layout = fixtures().join("oci/busybox");
    let read = |hex: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap())
            .unwrap()
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest = read(
        index["manifests"][0]["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:"),
    );
    let layer = &manifest["layers"][0];
    (
        layer["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:")
            .to_string(),
        layer["size"].as_u64().unwrap(),
    )
}

#[test]
fn cut_connection_resumes_with_only_missing_bytes() {
    let reg = Registry::start("resume").unwrap();
    reg.push("busybox", "busybox").unwrap();
    let (_, layer_size) = busybox_layer();
    assert!(
        layer_size > 600_000,
        "the layer must be large enough to cut mid-way"
    );
    let cut_at = 400_000;
    let proxy = CuttingProxy::start(reg.port, cut_at);
    let node = Daemon::start("resume", &[]).unwrap();

    node.covey_ok(&[
        "image",
        "pull",
        &format!("127.0.0.1:{}/busybox", proxy.port),
    ]);
    assert!(
        proxy.cut.load(Ordering::SeqCst),
        "the proxy never cut a connection"
    );
    assert!(node.log().contains("resuming"), "{}", node.log());
    // Manifests, config and headers are a few kB; starting over would cost another 400 kB.
    let total = proxy.downstream.load(Ordering::SeqCst);
    assert!(
        total >= layer_size && total < layer_size + 64_000,
        "{total} bytes passed for a {layer_size} byte layer"
    );
    assert!(node.covey_ok(&["image", "ls"]).contains("/busybox"));
}

#[test]
fn blob_that_does_not_match_its_digest_is_refused_and_not_kept() {
    let reg = Registry::start("digest").unwrap();
    let image = reg.push("busybox", "busybox").unwrap();
    let (hex, size) = busybox_layer();
    let path = reg.blob_path(&hex);
    let mut bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len() as u64, size);
    bytes[size as usize / 2] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();

    let node = Daemon::start("digest", &[]).unwrap();
    let err = node.covey_err(&["image", "pull", &image]);
    assert!(
        err.contains("failed verification") && err.contains(&hex),
        "{err}"
    );
    let images = node.data().join("images");
    let kept: Vec<_> = files_under(&images.join("blobs"))
        .into_iter()
        .chain(files_under(&images.join("ingest")))
        .filter(|p| p.to_string_lossy().contains(&hex))
        .collect();
    assert!(kept.is_empty(), "kept {kept:?}");
    assert!(files_under(&images.join("layers/sha256")).is_empty());
    assert!(node.covey_ok(&["image", "ls", "-q"]).trim().is_empty());
}
