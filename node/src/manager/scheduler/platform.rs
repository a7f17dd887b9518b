//! Platform names as nodes and images give them. A node reports `uname -m` style names
//! (`x86_64`, `aarch64`, `armv7l`; Rust's `ARCH` gives `arm`), images use OCI's (`amd64`,
//! `arm64`, `arm` plus a variant). Both are brought to OCI's names before comparing.
//!
//! The service's `Platform` carries no variant, so an `armv6l` node is taken to run any
//! `arm` image; an image built only for arm/v7 fails there when pulled, not here.

use crate::manager::objects::service::Platform;

/// OCI's name for an architecture, whichever way it was written.
pub(super) fn normalize_arch(arch: &str) -> String {
    let arch = arch.trim().to_ascii_lowercase();
    match arch.as_str() {
        "x86_64" | "x86-64" | "amd64" => "amd64".into(),
        "aarch64" | "arm64" | "armv8" => "arm64".into(),
        "i386" | "i486" | "i586" | "i686" | "386" | "x86" => "386".into(),
        // armv8l is a 32-bit userland on a 64-bit core: it runs arm images.
        "arm" | "armhf" | "armel" => "arm".into(),
        a if a.starts_with("armv") => "arm".into(),
        _ => arch,
    }
}

pub(super) fn normalize_os(os: &str) -> String {
    os.trim().to_ascii_lowercase()
}

/// A platform a task's image offers; an empty field matches any node, as in swarmkit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Wanted {
    os: String,
    arch: String,
}

impl Wanted {
    pub(super) fn new(p: &Platform) -> Wanted {
        Wanted {
            os: normalize_os(&p.os),
            arch: if p.architecture.trim().is_empty() {
                String::new()
            } else {
                normalize_arch(&p.architecture)
            },
        }
    }

    /// Whether a node with this (normalised) os and architecture runs it.
    pub(super) fn runs_on(&self, os: &str, arch: &str) -> bool {
        (self.os.is_empty() || self.os == os) && (self.arch.is_empty() || self.arch == arch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_and_image_names_meet() {
        for (node, image) in [
            ("x86_64", "amd64"),
            ("aarch64", "arm64"),
            ("armv7l", "arm"),
            ("armv6l", "arm"),
            ("armhf", "arm"),
            ("arm", "arm"),
            ("i686", "386"),
            ("riscv64", "riscv64"),
        ] {
            assert_eq!(
                normalize_arch(node),
                normalize_arch(image),
                "{node} vs {image}"
            );
        }
        assert_ne!(normalize_arch("aarch64"), normalize_arch("arm"));
        let arm64 = Wanted::new(&Platform {
            architecture: "ARM64".into(),
            os: "Linux".into(),
        });
        assert!(arm64.runs_on("linux", &normalize_arch("aarch64")));
        assert!(!arm64.runs_on("linux", &normalize_arch("x86_64")));
        let any_arch = Wanted::new(&Platform {
            architecture: String::new(),
            os: "linux".into(),
        });
        assert!(any_arch.runs_on("linux", "arm"));
        assert!(!any_arch.runs_on("windows", "amd64"));
    }
}
