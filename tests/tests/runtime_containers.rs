//! Real containers from the busybox fixture, run through the runtime crate (libcontainer):
//! exit codes, arguments, environment, user, working directory, the container's own /etc
//! files, cgroup limits, bad input, and nothing left behind after delete.
//!
//! libcontainer must not clone while another thread is busy (see runtime's container.rs):
//! these tests run one at a time, under a lock, and the image work is done between clones.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Mutex;

use covey_images::{ImageOptions, ImageService, SnapshotMode};
use covey_runtime::{spec, ContainerConfig, ImageDefaults, Runtime, Stdio};
use covey_tests::fixtures;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

struct Node {
    _dir: tempfile::TempDir,
    images: ImageService,
    runtime: Runtime,
    tokio: tokio::runtime::Runtime,
    image: ImageDefaults,
}

impl Node {
    fn new() -> Self {
        // libcontainer explains its failures only in its logs: COVEY_TEST_LOG=debug shows them.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("COVEY_TEST_LOG")
                    .unwrap_or_else(|_| "error".into()),
            )
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().unwrap();
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let images = ImageService::open(
            &dir.path().join("images"),
            ImageOptions {
                snapshots: SnapshotMode::Overlay,
                ..Default::default()
            },
        )
        .unwrap();
        let file = std::fs::File::open(fixtures().join("busybox-save.tar")).unwrap();
        let loaded = tokio.block_on(images.load(file, &|_| {})).unwrap();
        let config: serde_json::Value =
            serde_json::from_slice(&images.config(&loaded[0].image).unwrap()).unwrap();
        let runtime = Runtime::new(&dir.path().join("runtime")).unwrap();
        Node {
            image: ImageDefaults::from_image_config(&config),
            _dir: dir,
            images,
            runtime,
            tokio,
        }
    }

    fn config(&self, args: &[&str]) -> ContainerConfig {
        ContainerConfig {
            image: self.image.clone(),
            args: args.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    /// Creates container `id` from the image and returns its init's pid and its stdout.
    fn create(
        &self,
        id: &str,
        cfg: &ContainerConfig,
    ) -> Result<(i32, OwnedFd), covey_runtime::RuntimeError> {
        let snap = self
            .tokio
            .block_on(self.images.prepare_snapshot(id, "covey-test/saved"))
            .unwrap();
        let dir = self.runtime.container_dir(id)?;
        let hostname = cfg
            .hostname
            .clone()
            .unwrap_or_else(|| id.chars().take(12).collect());
        let etc = covey_runtime::etc::write(&dir, &hostname, cfg)?;
        let spec = spec::build(id, cfg, &snap.rootfs, &etc)?;
        let (read, write) = nix::unistd::pipe().unwrap();
        let stderr = write.try_clone().unwrap();
        let pid = self.runtime.create(
            id,
            &spec,
            Stdio {
                stdin: None,
                stdout: Some(write),
                stderr: Some(stderr),
            },
        )?;
        Ok((pid, read))
    }

    /// Runs a container to its end: its exit code and output.
    fn run(&self, id: &str, cfg: &ContainerConfig) -> (i32, String) {
        let (pid, out) = self
            .create(id, cfg)
            .unwrap_or_else(|e| panic!("create {id}: {e}"));
        self.runtime.start(id).unwrap();
        let mut text = String::new();
        std::fs::File::from(out).read_to_string(&mut text).unwrap();
        let code = match waitpid(Pid::from_raw(pid), None).unwrap() {
            WaitStatus::Exited(_, code) => code,
            WaitStatus::Signaled(_, sig, _) => 128 + sig as i32,
            other => panic!("unexpected wait status {other:?}"),
        };
        self.remove(id);
        (code, text)
    }

    fn remove(&self, id: &str) {
        self.runtime.delete(id, true).unwrap();
        self.runtime.remove_bundle(id).unwrap();
        self.tokio
            .block_on(self.images.remove_snapshot(id))
            .unwrap();
    }
}

#[test]
fn exit_codes_args_env_user_and_workdir() {
    let _one = serial();
    let node = Node::new();
    let (code, out) = node.run("exit3", &node.config(&["sh", "-c", "echo hello; exit 3"]));
    assert_eq!((code, out.as_str()), (3, "hello\n"));

    let mut cfg = node.config(&[
        "sh",
        "-c",
        "echo $FOO $(id -u):$(id -g) $(pwd) $HOME; cat /etc/hostname",
    ]);
    cfg.env = vec!["FOO=bar".into()];
    cfg.user = Some("nobody".into());
    cfg.working_dir = Some("/tmp".into());
    cfg.hostname = Some("edge-pi".into());
    let (code, out) = node.run("envuser", &cfg);
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("bar 65534:65534 /tmp "), "{out}");
    assert_eq!(lines[1], "edge-pi");

    // The container's own pid namespace, hostname and /etc/hosts; Docker's capability set.
    let (_, out) = node.run(
        "ns",
        &node.config(&[
            "sh",
            "-c",
            "echo $$; hostname; grep -c localhost /etc/hosts; grep CapEff /proc/self/status",
        ]),
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1", "{out}");
    assert_eq!(lines[1], "ns");
    assert_eq!(lines[2], "2");
    assert_eq!(
        lines[3].split_whitespace().nth(1),
        Some("00000000a80425fb"),
        "{out}"
    );
}

#[test]
fn limits_land_in_the_cgroup_and_delete_leaves_nothing() {
    let _one = serial();
    let node = Node::new();
    let mut cfg = node.config(&["sleep", "30"]);
    cfg.resources.memory_bytes = Some(64 << 20);
    cfg.resources.cpus = Some(0.5);
    cfg.resources.pids_limit = Some(32);
    let (pid, _out) = node.create("limits", &cfg).unwrap();
    let read = |p: &str| {
        std::fs::read_to_string(Path::new("/sys/fs/cgroup").join(p)).map(|s| s.trim().to_string())
    };
    // This machine's hybrid layout puts libcontainer on cgroup v1.
    assert_eq!(
        read("memory/covey/limits/memory.limit_in_bytes").unwrap(),
        (64u64 << 20).to_string()
    );
    assert_eq!(read("cpu/covey/limits/cpu.cfs_quota_us").unwrap(), "50000");
    assert_eq!(read("pids/covey/limits/pids.max").unwrap(), "32");
    node.runtime.start("limits").unwrap();
    assert_eq!(
        node.runtime.state("limits").unwrap().status,
        covey_runtime::Status::Running
    );
    node.runtime
        .kill("limits", nix::sys::signal::Signal::SIGKILL, true)
        .unwrap();
    assert!(matches!(
        waitpid(Pid::from_raw(pid), None).unwrap(),
        WaitStatus::Signaled(_, nix::sys::signal::Signal::SIGKILL, _)
    ));
    node.remove("limits");
    assert!(
        read("memory/covey/limits/memory.limit_in_bytes").is_err(),
        "cgroup left behind"
    );
    assert!(
        nix::sys::signal::kill(Pid::from_raw(pid), None).is_err(),
        "process left behind"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let left: Vec<&str> = mounts
        .lines()
        .filter(|l| l.contains("/snapshots/limits/"))
        .collect();
    assert!(left.is_empty(), "mounts left behind: {left:#?}");
}

/// A process run in a container with a terminal: the runtime sends the pty's master over
/// the console socket, and the process's output comes through it.
#[test]
fn exec_with_a_terminal() {
    use std::os::fd::{AsRawFd, FromRawFd};
    let _one = serial();
    let node = Node::new();
    let (pid, _out) = node
        .create("tty-host", &node.config(&["sleep", "30"]))
        .unwrap();
    node.runtime.start("tty-host").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let receiver = std::thread::spawn(move || -> Option<OwnedFd> {
        let (stream, _) = listener.accept().ok()?;
        let mut buf = [0u8; 64];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let msg = nix::sys::socket::recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            nix::sys::socket::MsgFlags::empty(),
        )
        .ok()?;
        let fd = msg.cmsgs().ok()?.find_map(|c| match c {
            nix::sys::socket::ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
            _ => None,
        })?;
        // SAFETY: received by SCM_RIGHTS, a new descriptor that is ours.
        Some(unsafe { OwnedFd::from_raw_fd(fd) })
    });
    let spec = covey_runtime::ExecSpec {
        args: vec![
            "sh".into(),
            "-c".into(),
            "echo from-the-terminal; tty; sleep 1".into(),
        ],
        env: vec!["PATH=/bin".into()],
        tty: true,
        ..Default::default()
    };
    let exec_pid = node
        .runtime
        .exec("tty-host", &spec, Stdio::default(), Some(&sock))
        .unwrap();
    let master = receiver.join().unwrap().expect("the terminal's master");
    let mut out = Vec::new();
    let mut file = std::fs::File::from(master);
    let mut buf = [0u8; 256];
    // Reading ends with EIO once the terminal's other side is closed.
    while let Ok(n) = file.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    assert_eq!(
        String::from_utf8_lossy(&out),
        "from-the-terminal\r\n/dev/pts/0\r\n"
    );
    let _ = waitpid(Pid::from_raw(exec_pid), None);
    node.runtime
        .kill("tty-host", nix::sys::signal::Signal::SIGKILL, true)
        .unwrap();
    let _ = waitpid(Pid::from_raw(pid), None);
    node.remove("tty-host");
}

#[test]
fn bad_input_is_named() {
    let _one = serial();
    let node = Node::new();
    let mut cfg = node.config(&["true"]);
    cfg.user = Some("ghost".into());
    let err = node.create("ghost", &cfg).unwrap_err().to_string();
    assert!(err.contains("ghost"), "{err}");
    node.tokio
        .block_on(node.images.remove_snapshot("ghost"))
        .unwrap();

    let cfg = node.config(&["/no/such/binary"]);
    let err = match node.create("nocmd", &cfg) {
        Err(e) => e.to_string(),
        Ok(_) => node
            .runtime
            .start("nocmd")
            .map(|_| String::new())
            .unwrap_or_else(|e| e.to_string()),
    };
    assert!(!err.is_empty(), "a missing command must fail");
    let _ = node.runtime.delete("nocmd", true);
    node.runtime.remove_bundle("nocmd").unwrap();
    node.tokio
        .block_on(node.images.remove_snapshot("nocmd"))
        .unwrap();
}
