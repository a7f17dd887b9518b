//! create + start + wait + delete of `/bin/true`, with covey's runtime in-process and with
//! `runc run` and `crun run` on the same bundle (same spec, same rootfs), in one run.
//! Prints the median of each and the ratios. Run as root: `cargo bench -p covey-runtime`.
//!
//! This process is single-threaded, as the runtime helper is, so libcontainer's clone is
//! safe here.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use covey_runtime::{spec, ContainerConfig, ImageDefaults, Runtime, Stdio};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

const RUNS: usize = 40;

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("lifecycle bench: needs root; skipped");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let rootfs = busybox_rootfs(dir.path());
    let runtime = Runtime::new(&dir.path().join("runtime")).expect("runtime");
    let cfg = ContainerConfig {
        image: ImageDefaults {
            cmd: vec!["/bin/true".into()],
            ..Default::default()
        },
        ..Default::default()
    };
    let bundle = |id: &str| -> PathBuf {
        let b = runtime.container_dir(id).expect("bundle dir");
        let etc = covey_runtime::etc::write(&b, id, &cfg).expect("etc files");
        let spec = spec::build(id, &cfg, &rootfs, &etc).expect("spec");
        runtime.write_bundle(id, &spec).expect("bundle");
        b
    };

    let mut deletes = Vec::new();
    let covey = measure(|i| {
        let id = format!("covey-bench-{i}");
        bundle(&id);
        let t = Instant::now();
        let pid = runtime
            .create_from_bundle(&id, Stdio::default(), None)
            .expect("create");
        runtime.start(&id).expect("start");
        waitpid(Pid::from_raw(pid), None).expect("wait");
        let took = t.elapsed();
        let t = Instant::now();
        runtime.delete(&id, true).expect("delete");
        deletes.push(t.elapsed());
        runtime.remove_bundle(&id).expect("remove bundle");
        Ok(took)
    });
    report(
        "covey create+start+wait (libcontainer, in-process)",
        &covey,
        None,
    );
    report(
        "covey delete (cgroup and state removal; the daemon does it at rm, off the run's path)",
        &Ok(deletes.clone()),
        None,
    );
    let with_delete = covey
        .as_ref()
        .map(|c| {
            c.iter()
                .zip(&deletes)
                .map(|(a, b)| *a + *b)
                .collect::<Vec<_>>()
        })
        .map_err(Clone::clone);
    report(
        "covey create+start+wait+delete (what `runc run` does)",
        &with_delete,
        None,
    );
    for tool in ["runc", "crun"] {
        let state = dir.path().join(format!("{tool}-state"));
        let times = measure(|i| {
            let id = format!("{tool}-bench-{i}");
            let b = bundle(&id);
            let t = Instant::now();
            let out = Command::new(tool)
                .arg("--root")
                .arg(&state)
                .args(["run", "--bundle"])
                .arg(&b)
                .arg(&id)
                .output()
                .map_err(|e| format!("{tool}: {e}"))?;
            let took = t.elapsed();
            let _ = runtime.remove_bundle(&id);
            if !out.status.success() {
                return Err(format!(
                    "{tool} run failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            Ok(took)
        });
        let name = format!("{tool} run (create+start+wait+delete)");
        report(&name, &times, with_delete.as_ref().ok().map(|c| median(c)));
    }
}

fn measure(mut f: impl FnMut(usize) -> Result<Duration, String>) -> Result<Vec<Duration>, String> {
    (0..RUNS).map(&mut f).collect()
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[v.len() / 2]
}

fn report(name: &str, times: &Result<Vec<Duration>, String>, covey: Option<Duration>) {
    match (times, covey) {
        (Ok(t), Some(c)) => {
            let m = median(t);
            println!(
                "{name}: median {:.2} ms over {RUNS} runs; {name}/covey = {:.1}x",
                ms(m),
                ms(m) / ms(c)
            );
        }
        (Ok(t), None) => println!("{name}: median {:.2} ms over {RUNS} runs", ms(median(t))),
        (Err(e), _) => println!("{name}: cannot run here: {e}"),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A root filesystem of Debian's static busybox: `/bin/busybox` and `/bin/true`.
fn busybox_rootfs(dir: &Path) -> PathBuf {
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).expect("rootfs");
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
        .expect("/bin/busybox (Debian's busybox-static)");
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/true")).expect("symlink");
    for d in ["proc", "dev", "sys", "etc", "tmp"] {
        std::fs::create_dir_all(rootfs.join(d)).expect("rootfs dir");
    }
    rootfs
}
