//! Platforms (`linux/arm/v7`) and choosing one from a multi-platform index.

use std::fmt;
use std::str::FromStr;

#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlatformError {
    #[error(
        "invalid platform {0:?}: expected os/arch[/variant], e.g. linux/arm64 or linux/arm/v7"
    )]
    Malformed(String),
    #[error("no matching manifest for {wanted} in the manifest list entries (the image offers: {})", offered.join(", "))]
    NoMatch {
        wanted: Platform,
        offered: Vec<String>,
    },
}

impl Platform {
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        Self {
            os: os.to_string(),
            architecture: architecture.to_string(),
            variant: variant.map(str::to_string),
        }
        .normalized()
    }

    /// The platform this process runs on, named as OCI images name it.
    pub fn host() -> Self {
        let machine = nix::sys::utsname::uname()
            .map(|u| u.machine().to_string_lossy().into_owned())
            .unwrap_or_default();
        let (arch, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", Some("v8")),
            "arm" if machine.starts_with("armv6") => ("arm", Some("v6")),
            "arm" if machine.starts_with("armv5") => ("arm", Some("v5")),
            "arm" => ("arm", Some("v7")),
            "x86" => ("386", None),
            "riscv64" => ("riscv64", None),
            other => (other, None),
        };
        Self::new("linux", arch, variant)
    }

    /// OCI's normal form: arm64's default variant is v8, and some images leave it out.
    fn normalized(mut self) -> Self {
        self.architecture = match self.architecture.as_str() {
            "aarch64" => "arm64".into(),
            "x86_64" | "x86-64" => "amd64".into(),
            "armhf" => "arm".into(),
            other => other.into(),
        };
        if self.architecture == "arm64" && self.variant.as_deref() == Some("v8") {
            self.variant = None;
        }
        self
    }

    /// How well an image for `candidate` runs here: `None` if not at all, lower is better.
    /// An arm/v7 board runs v7 first, then v6 and v5, as containerd's matcher does.
    fn rank(&self, candidate: &Platform) -> Option<u8> {
        let c = candidate.clone().normalized();
        if c.os != self.os || c.architecture != self.architecture {
            return None;
        }
        if c.variant == self.variant {
            return Some(0);
        }
        if self.architecture == "arm" {
            let order = ["v8", "v7", "v6", "v5"];
            let mine = order
                .iter()
                .position(|v| Some(*v) == self.variant.as_deref())?;
            let theirs = match c.variant.as_deref() {
                None => order.iter().position(|v| *v == "v7")?,
                Some(v) => order.iter().position(|x| *x == v)?,
            };
            return (theirs >= mine).then(|| (theirs - mine) as u8);
        }
        // amd64/v2 and the like: plain amd64 hosts run them only if the variant is absent.
        c.variant.is_none().then_some(1)
    }

    /// Chooses the best of `candidates` for this platform, or says which ones exist.
    pub fn select<'a, T>(
        &self,
        candidates: impl IntoIterator<Item = (&'a Platform, T)>,
    ) -> Result<T, PlatformError> {
        let mut offered = Vec::new();
        let mut best: Option<(u8, T)> = None;
        for (p, item) in candidates {
            offered.push(p.to_string());
            if let Some(rank) = self.rank(p) {
                if best.as_ref().is_none_or(|(b, _)| rank < *b) {
                    best = Some((rank, item));
                }
            }
        }
        best.map(|(_, item)| item)
            .ok_or_else(|| PlatformError::NoMatch {
                wanted: self.clone(),
                offered,
            })
    }
}

impl FromStr for Platform {
    type Err = PlatformError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok =
            |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(|p| ok(p)) {
            return Err(PlatformError::Malformed(s.to_string()));
        }
        Ok(Self::new(
            &parts[0].to_ascii_lowercase(),
            &parts[1].to_ascii_lowercase(),
            parts.get(2).map(|v| v.to_ascii_lowercase()).as_deref(),
        ))
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn parses_and_normalizes() {
        assert_eq!(p("linux/arm64/v8"), p("linux/arm64"));
        assert_eq!(p("linux/aarch64").to_string(), "linux/arm64");
        assert_eq!(p("linux/arm/v7").variant.as_deref(), Some("v7"));
        assert!("linux".parse::<Platform>().is_err());
        assert!("linux/amd64/v2/x".parse::<Platform>().is_err());
        assert!("linux/../x".parse::<Platform>().is_err());
    }

    #[test]
    fn selects_best_and_explains_misses() {
        let offered = [
            p("linux/amd64"),
            p("linux/arm/v6"),
            p("linux/arm/v7"),
            p("linux/arm64"),
        ];
        let pick = |want: &str| p(want).select(offered.iter().map(|x| (x, x.to_string())));
        assert_eq!(pick("linux/amd64"), Ok("linux/amd64".into()));
        assert_eq!(pick("linux/arm64/v8"), Ok("linux/arm64".into()));
        assert_eq!(pick("linux/arm/v7"), Ok("linux/arm/v7".into()));
        assert_eq!(pick("linux/arm/v6"), Ok("linux/arm/v6".into()));
        let only_v6 = [p("linux/arm/v6")];
        assert!(p("linux/arm/v7")
            .select(only_v6.iter().map(|x| (x, ())))
            .is_ok());
        let only_v7 = [p("linux/arm/v7")];
        assert!(p("linux/arm/v6")
            .select(only_v7.iter().map(|x| (x, ())))
            .is_err());
        match pick("linux/riscv64") {
            Err(e @ PlatformError::NoMatch { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("linux/riscv64") && msg.contains("linux/arm/v7"),
                    "{msg}"
                );
            }
            other => panic!("expected no match, got {other:?}"),
        }
    }
}
