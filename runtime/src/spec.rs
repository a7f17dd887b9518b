//! A container config, an image's defaults and a root filesystem made into an OCI runtime
//! spec with the defaults Docker users rely on.

use std::collections::HashMap;
use std::path::{Component, Path};

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxDeviceType,
    LinuxMemoryBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder,
    LinuxResourcesBuilder, Mount, MountBuilder, PosixRlimitBuilder, PosixRlimitType,
    ProcessBuilder, RootBuilder, Spec, UserBuilder,
};

use crate::config::{ContainerConfig, Mount as CfgMount, NetworkMode};
use crate::defaults::{self, DEFAULT_CAPS};
use crate::error::RuntimeError;
use crate::etc::EtcFiles;
use crate::user;

/// The command a container runs: Docker's merge of entrypoint, cmd and arguments.
pub fn command(cfg: &ContainerConfig) -> Result<Vec<String>, RuntimeError> {
    let args = match &cfg.entrypoint {
        // --entrypoint replaces the image's, and its Cmd with it.
        Some(ep) => ep.iter().chain(&cfg.args).cloned().collect::<Vec<_>>(),
        None => {
            let cmd = if cfg.args.is_empty() {
                &cfg.image.cmd
            } else {
                &cfg.args
            };
            cfg.image.entrypoint.iter().chain(cmd).cloned().collect()
        }
    };
    if args.first().is_none_or(|a| a.is_empty()) {
        return Err(RuntimeError::NoCommand);
    }
    Ok(args)
}

/// The environment: the image's, then the caller's over it (same key replaces), with
/// PATH, HOSTNAME and HOME filled in as Docker does.
pub fn environment(cfg: &ContainerConfig, hostname: &str, home: &str) -> Vec<String> {
    let mut env: Vec<String> = Vec::new();
    let key = |kv: &str| {
        kv.split_once('=')
            .map(|(k, _)| k.to_string())
            .unwrap_or_else(|| kv.to_string())
    };
    for kv in cfg.image.env.iter().chain(&cfg.env) {
        let k = key(kv);
        env.retain(|e| key(e) != k);
        env.push(kv.clone());
    }
    let has = |env: &[String], k: &str| env.iter().any(|e| key(e) == k);
    if !has(&env, "PATH") {
        env.insert(0, defaults::DEFAULT_PATH.to_string());
    }
    if !has(&env, "HOSTNAME") {
        env.push(format!("HOSTNAME={hostname}"));
    }
    if !has(&env, "HOME") {
        env.push(format!("HOME={home}"));
    }
    env
}

/// Docker's default capabilities with `--cap-add` and `--cap-drop` applied; names are
/// accepted with or without `CAP_`, in any case, and `ALL`.
pub fn capabilities(cfg: &ContainerConfig) -> Result<Vec<String>, RuntimeError> {
    let norm = |c: &str| -> Result<String, RuntimeError> {
        let up = c.to_ascii_uppercase();
        let name = if up.starts_with("CAP_") {
            up
        } else {
            format!("CAP_{up}")
        };
        if name == "CAP_ALL" || defaults::ALL_CAPS.contains(&name.as_str()) {
            Ok(name)
        } else {
            Err(RuntimeError::Capability(c.to_string()))
        }
    };
    let add = cfg
        .cap_add
        .iter()
        .map(|c| norm(c))
        .collect::<Result<Vec<_>, _>>()?;
    let drop = cfg
        .cap_drop
        .iter()
        .map(|c| norm(c))
        .collect::<Result<Vec<_>, _>>()?;
    let mut caps: Vec<String> = if add.iter().any(|c| c == "CAP_ALL") {
        defaults::ALL_CAPS.iter().map(|c| c.to_string()).collect()
    } else {
        DEFAULT_CAPS
            .iter()
            .map(|c| c.to_string())
            .chain(add)
            .collect()
    };
    if drop.iter().any(|c| c == "CAP_ALL") {
        caps.clear();
    }
    caps.retain(|c| !drop.contains(c));
    caps.sort();
    caps.dedup();
    Ok(caps)
}

fn check_target(target: &str) -> Result<(), RuntimeError> {
    let p = Path::new(target);
    if !p.is_absolute() || p.components().any(|c| c == Component::ParentDir) {
        return Err(RuntimeError::MountTarget(target.to_string()));
    }
    Ok(())
}

fn bind(source: &Path, target: &str, read_only: bool) -> Result<Mount, RuntimeError> {
    let mut options = vec!["rbind".to_string(), "rprivate".to_string()];
    options.push(if read_only { "ro" } else { "rw" }.to_string());
    Ok(MountBuilder::default()
        .destination(target)
        .typ("bind")
        .source(source)
        .options(options)
        .build()?)
}

/// Builds the spec for container `id` on `rootfs`. `etc` are its own `/etc` files.
pub fn build(
    id: &str,
    cfg: &ContainerConfig,
    rootfs: &Path,
    etc: &EtcFiles,
) -> Result<Spec, RuntimeError> {
    let hostname = cfg
        .hostname
        .clone()
        .unwrap_or_else(|| id.chars().take(12).collect());
    let user_spec = cfg.user.clone().unwrap_or_else(|| cfg.image.user.clone());
    let resolved = user::resolve(rootfs, &user_spec)?;
    let args = command(cfg)?;
    let cwd = cfg
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .or_else(|| Some(cfg.image.working_dir.clone()).filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".into());
    if !cwd.starts_with('/') {
        return Err(RuntimeError::Resource {
            what: "working directory",
            value: format!("{cwd:?} is not absolute"),
        });
    }
    let cap_names = capabilities(cfg)?;
    let caps: Vec<Capability> = cap_names
        .iter()
        .map(|c| {
            c.trim_start_matches("CAP_")
                .parse::<Capability>()
                .map_err(|_| RuntimeError::Capability(c.clone()))
        })
        .collect::<Result<_, _>>()?;
    let caps: std::collections::HashSet<Capability> = caps.into_iter().collect();
    let mut cap_set = oci_spec::runtime::LinuxCapabilities::default();
    cap_set.set_bounding(Some(caps.clone()));
    cap_set.set_effective(Some(caps.clone()));
    cap_set.set_permitted(Some(caps.clone()));
    cap_set.set_inheritable(None);
    cap_set.set_ambient(None);

    let process = ProcessBuilder::default()
        .args(args)
        .env(environment(cfg, &hostname, &resolved.home))
        .cwd(cwd)
        .user(
            UserBuilder::default()
                .uid(resolved.uid)
                .gid(resolved.gid)
                .additional_gids(resolved.additional_gids.clone())
                .build()?,
        )
        .capabilities(cap_set)
        .rlimits(vec![PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitNofile)
            .soft(nofile_limit())
            .hard(nofile_limit())
            .build()?])
        .build()?;

    // The OCI defaults (/proc, /dev, /dev/pts, /dev/shm, /dev/mqueue, /sys, cgroups), then
    // the container's /etc files, then the caller's mounts, which may cover any of them.
    let mut mounts: Vec<Mount> = Spec::default().mounts().clone().unwrap_or_default();
    mounts.push(bind(&etc.hostname, "/etc/hostname", false)?);
    mounts.push(bind(&etc.hosts, "/etc/hosts", false)?);
    mounts.push(bind(&etc.resolv_conf, "/etc/resolv.conf", false)?);
    for m in &cfg.mounts {
        mounts.push(match m {
            CfgMount::Bind {
                source,
                target,
                read_only,
            } => {
                check_target(target)?;
                bind(source, target, *read_only)?
            }
            CfgMount::Tmpfs {
                target,
                size_bytes,
                mode,
            } => {
                check_target(target)?;
                let mut options = vec!["nosuid".to_string(), "nodev".to_string()];
                options.extend(size_bytes.map(|s| format!("size={s}")));
                options.push(format!("mode={:o}", mode.unwrap_or(0o1777)));
                MountBuilder::default()
                    .destination(target)
                    .typ("tmpfs")
                    .source("tmpfs")
                    .options(options)
                    .build()?
            }
        });
    }

    for key in cfg.sysctls.keys() {
        if !defaults::sysctl_is_namespaced(key)
            || (key.starts_with("net.") && cfg.network == NetworkMode::Host)
        {
            return Err(RuntimeError::Sysctl(key.clone()));
        }
    }

    let mut namespaces = vec![];
    for typ in [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
    ] {
        namespaces.push(LinuxNamespaceBuilder::default().typ(typ).build()?);
    }
    // A private cgroup namespace only on cgroup v2, as Docker: on v1 and hybrid hosts the
    // container sees the host's cgroup paths.
    if crate::cgroups::version(Path::new(crate::cgroups::ROOT)) == 2 {
        namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Cgroup)
                .build()?,
        );
    }
    match &cfg.network {
        NetworkMode::Host => {}
        NetworkMode::None => namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Network)
                .build()?,
        ),
        NetworkMode::Path { path } => namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Network)
                .path(path.clone())
                .build()?,
        ),
    }

    let linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .masked_paths(
            defaults::MASKED_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        )
        .readonly_paths(
            defaults::READONLY_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        )
        // An explicit path: libcontainer's default would be a `:youki:ID` directory.
        .cgroups_path(format!("/{}/{id}", crate::cgroups::PARENT))
        .resources(resources(cfg)?)
        .seccomp(crate::seccomp::default_profile(&cap_names)?)
        .sysctl(
            cfg.sysctls
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<HashMap<_, _>>(),
        )
        .build()?;

    // no_new_privileges left unset, as Docker's default: libcontainer then loads the seccomp
    // filter before dropping capabilities, while it may still (Some(false) defers it to
    // after, where loading fails without CAP_SYS_ADMIN).
    let mut process = process;
    process.set_no_new_privileges(None);
    process.set_terminal(Some(cfg.tty));
    let mut spec = Spec::default();
    spec.set_hostname(Some(hostname))
        .set_process(Some(process))
        .set_mounts(Some(mounts))
        .set_linux(Some(linux))
        .set_root(Some(
            RootBuilder::default()
                .path(rootfs)
                .readonly(cfg.read_only_rootfs)
                .build()?,
        ));
    Ok(spec)
}

/// Open files allowed: Docker's 1048576, or the daemon's own hard limit where that is lower,
/// since raising it needs CAP_SYS_RESOURCE, which a confined daemon may lack.
// rlim_t is u64 here but u32 on 32-bit ARM.
#[allow(clippy::useless_conversion)]
fn nofile_limit() -> u64 {
    const DOCKER: u64 = 1_048_576;
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(_, hard)| u64::from(hard).min(DOCKER))
        .unwrap_or(1024)
}

fn resources(cfg: &ContainerConfig) -> Result<oci_spec::runtime::LinuxResources, RuntimeError> {
    let r = &cfg.resources;
    crate::cgroups::check(Path::new(crate::cgroups::ROOT), r)?;
    let mut devices = vec![LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build()?];
    for (major, minor) in defaults::ALLOWED_CHAR_DEVICES {
        let mut d = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::C)
            .major(*major)
            .access("rwm");
        if let Some(minor) = minor {
            d = d.minor(*minor);
        }
        devices.push(d.build()?);
    }
    let mut builder = LinuxResourcesBuilder::default().devices(devices);
    if let Some(m) = r.memory_bytes {
        if m < 6 * 1024 * 1024 {
            return Err(RuntimeError::Resource {
                what: "memory limit",
                value: format!("{m} bytes: the minimum is 6MB"),
            });
        }
        builder = builder.memory(LinuxMemoryBuilder::default().limit(m).build()?);
    }
    let mut cpu = LinuxCpuBuilder::default();
    let mut has_cpu = false;
    if let Some(c) = r.cpus {
        if !(c > 0.0 && c.is_finite() && c <= 1024.0) {
            return Err(RuntimeError::Resource {
                what: "cpus",
                value: format!("{c}: expected a number of CPUs above 0"),
            });
        }
        cpu = cpu.quota((c * 100_000.0).round() as i64).period(100_000u64);
        has_cpu = true;
    }
    if let Some(s) = r.cpu_shares {
        cpu = cpu.shares(s);
        has_cpu = true;
    }
    if has_cpu {
        builder = builder.cpu(cpu.build()?);
    }
    if let Some(p) = r.pids_limit {
        builder = builder.pids(LinuxPidsBuilder::default().limit(p).build()?);
    }
    Ok(builder.build()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ImageDefaults;

    fn cfg() -> ContainerConfig {
        ContainerConfig {
            image: ImageDefaults {
                entrypoint: vec![],
                cmd: vec!["sh".into()],
                env: vec!["PATH=/bin".into(), "A=image".into()],
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn command_merges_like_docker() {
        let mut c = cfg();
        assert_eq!(command(&c).unwrap(), vec!["sh"]);
        c.args = vec!["echo".into(), "hi".into()];
        assert_eq!(command(&c).unwrap(), vec!["echo", "hi"]);
        c.image.entrypoint = vec!["/init".into()];
        assert_eq!(command(&c).unwrap(), vec!["/init", "echo", "hi"]);
        c.entrypoint = Some(vec!["/bin/other".into()]);
        c.args.clear();
        assert_eq!(command(&c).unwrap(), vec!["/bin/other"]);
        let empty = ContainerConfig::default();
        assert!(matches!(command(&empty), Err(RuntimeError::NoCommand)));
    }

    #[test]
    fn environment_overrides_and_fills() {
        let mut c = cfg();
        c.env = vec!["A=run".into(), "B=2".into()];
        let env = environment(&c, "h1", "/root");
        assert_eq!(
            env,
            vec!["PATH=/bin", "A=run", "B=2", "HOSTNAME=h1", "HOME=/root"]
        );
    }

    #[test]
    fn capabilities_add_drop_and_typos() {
        let mut c = cfg();
        c.cap_add = vec!["net_admin".into()];
        c.cap_drop = vec!["CAP_NET_RAW".into(), "mknod".into()];
        let caps = capabilities(&c).unwrap();
        assert!(caps.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(
            !caps.contains(&"CAP_NET_RAW".to_string()) && !caps.contains(&"CAP_MKNOD".to_string())
        );
        c.cap_drop = vec!["all".into()];
        c.cap_add = vec!["chown".into()];
        assert!(capabilities(&c).unwrap().is_empty());
        c.cap_add = vec!["NET_ADMINN".into()];
        assert!(matches!(capabilities(&c), Err(RuntimeError::Capability(_))));
    }

    #[test]
    fn spec_has_docker_defaults_and_limits() {
        let root = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let mut c = cfg();
        c.resources.memory_bytes = Some(64 << 20);
        c.resources.cpus = Some(1.5);
        c.resources.pids_limit = Some(20);
        c.sysctls.insert("net.ipv4.ip_forward".into(), "1".into());
        c.mounts.push(CfgMount::Tmpfs {
            target: "/scratch".into(),
            size_bytes: Some(1 << 20),
            mode: None,
        });
        let etc = crate::etc::write(state.path(), "abc", &c).unwrap();
        let spec = build("abcdef0123456789", &c, root.path(), &etc).unwrap();
        assert_eq!(spec.hostname().as_deref(), Some("abcdef012345"));
        let linux = spec.linux().as_ref().unwrap();
        assert_eq!(
            linux.cgroups_path().as_deref(),
            Some(Path::new("/covey/abcdef0123456789"))
        );
        let res = linux.resources().as_ref().unwrap();
        assert_eq!(res.memory().as_ref().unwrap().limit(), Some(64 << 20));
        assert_eq!(res.cpu().as_ref().unwrap().quota(), Some(150_000));
        assert_eq!(res.pids().as_ref().unwrap().limit(), 20);
        assert!(linux
            .masked_paths()
            .as_ref()
            .unwrap()
            .contains(&"/proc/kcore".to_string()));
        let dests: Vec<_> = spec
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| m.destination().display().to_string())
            .collect();
        for d in [
            "/proc",
            "/dev/shm",
            "/etc/hosts",
            "/etc/resolv.conf",
            "/scratch",
        ] {
            assert!(dests.contains(&d.to_string()), "{d} missing from {dests:?}");
        }
        let caps = spec
            .process()
            .as_ref()
            .unwrap()
            .capabilities()
            .as_ref()
            .unwrap();
        assert_eq!(caps.bounding().as_ref().unwrap().len(), DEFAULT_CAPS.len());
        assert!(!spec.root().as_ref().unwrap().readonly().unwrap_or(false));
    }

    #[test]
    fn bad_input_is_refused_by_name() {
        let root = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let etc = crate::etc::write(state.path(), "h", &cfg()).unwrap();
        let mut c = cfg();
        c.sysctls.insert("kernel.panic".into(), "1".into());
        assert!(matches!(
            build("x", &c, root.path(), &etc),
            Err(RuntimeError::Sysctl(_))
        ));
        let mut c = cfg();
        c.mounts.push(CfgMount::Tmpfs {
            target: "rel/../x".into(),
            size_bytes: None,
            mode: None,
        });
        assert!(matches!(
            build("x", &c, root.path(), &etc),
            Err(RuntimeError::MountTarget(_))
        ));
        let mut c = cfg();
        c.resources.memory_bytes = Some(1024);
        assert!(matches!(
            build("x", &c, root.path(), &etc),
            Err(RuntimeError::Resource { .. })
        ));
        let mut c = cfg();
        c.user = Some("nobody-here".into());
        assert!(matches!(
            build("x", &c, root.path(), &etc),
            Err(RuntimeError::User { .. })
        ));
    }
}
