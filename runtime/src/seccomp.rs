//! covey's default seccomp profile: the syscalls Docker's default profile refuses, refused
//! (EPERM) unless the container holds the capability that makes each legitimate, as
//! Docker's profile does. Written as a deny list over every ABI the CPU runs (x86 and x32
//! beside x86_64, arm beside aarch64), so a 32-bit entry point cannot slip past the names.
//! libcontainer skips names an architecture lacks.

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompBuilder, LinuxSyscallBuilder,
};

use crate::error::RuntimeError;

/// Refused whatever the capabilities.
const ALWAYS: &[&str] = &[
    "add_key",
    "bpf",
    "create_module",
    "get_kernel_syms",
    "keyctl",
    "kexec_file_load",
    "kexec_load",
    "lookup_dcookie",
    "nfsservctl",
    "open_by_handle_at",
    "perf_event_open",
    "query_module",
    "request_key",
    "sysfs",
    "_sysctl",
    "uselib",
    "userfaultfd",
    "ustat",
    "vm86",
    "vm86old",
];

/// Refused unless the container holds the capability.
const BY_CAPABILITY: &[(&str, &[&str])] = &[
    (
        "CAP_SYS_ADMIN",
        &[
            "mount",
            "umount",
            "umount2",
            "unshare",
            "setns",
            "pivot_root",
            "quotactl",
            "name_to_handle_at",
            "fanotify_init",
            "clone3",
        ],
    ),
    ("CAP_SYS_BOOT", &["reboot"]),
    (
        "CAP_SYS_MODULE",
        &["init_module", "finit_module", "delete_module"],
    ),
    ("CAP_SYS_PACCT", &["acct"]),
    (
        "CAP_SYS_PTRACE",
        &["ptrace", "process_vm_readv", "process_vm_writev", "kcmp"],
    ),
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    (
        "CAP_SYS_TIME",
        &["settimeofday", "stime", "clock_settime", "clock_adjtime"],
    ),
    ("CAP_SYS_NICE", &["mbind", "set_mempolicy", "move_pages"]),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_SYS_RESOURCE", &["swapon", "swapoff"]),
];

/// The profile for a container holding `caps` (names as `CAP_...`).
pub fn default_profile(caps: &[String]) -> Result<LinuxSeccomp, RuntimeError> {
    let mut names: Vec<String> = ALWAYS.iter().map(|s| s.to_string()).collect();
    for (cap, calls) in BY_CAPABILITY {
        if !caps.iter().any(|c| c == cap) {
            names.extend(calls.iter().map(|s| s.to_string()));
        }
    }
    names.sort();
    names.dedup();
    let deny = LinuxSyscallBuilder::default()
        .names(names)
        .action(LinuxSeccompAction::ScmpActErrno)
        .errno_ret(nix::libc::EPERM as u32)
        .build()?;
    Ok(LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActAllow)
        .architectures(architectures())
        .syscalls(vec![deny])
        .build()?)
}

fn architectures() -> Vec<Arch> {
    match std::env::consts::ARCH {
        "x86_64" => vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32],
        "aarch64" => vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm],
        "arm" => vec![Arch::ScmpArchArm],
        "x86" => vec![Arch::ScmpArchX86],
        _ => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denied(caps: &[&str]) -> Vec<String> {
        let p = default_profile(&caps.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        p.syscalls().as_ref().unwrap()[0].names().clone()
    }

    #[test]
    fn capabilities_open_their_syscalls() {
        let plain = denied(crate::defaults::DEFAULT_CAPS);
        for s in ["mount", "ptrace", "reboot", "kexec_load", "bpf", "unshare"] {
            assert!(plain.contains(&s.to_string()), "{s} should be refused");
        }
        let admin = denied(&["CAP_SYS_ADMIN", "CAP_SYS_PTRACE"]);
        assert!(!admin.contains(&"mount".to_string()) && !admin.contains(&"ptrace".to_string()));
        assert!(admin.contains(&"kexec_load".to_string()));
    }
}
