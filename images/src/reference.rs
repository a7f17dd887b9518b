//! Image references parsed as Docker parses them: `nginx` is
//! `docker.io/library/nginx:latest`, `host:5000/a/b:tag`, `name@sha256:…`.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;

pub const DEFAULT_REGISTRY: &str = "docker.io";
pub const DEFAULT_TAG: &str = "latest";
const MAX_NAME_LEN: usize = 255;

/// A fully qualified reference: registry, repository path, and a tag, a digest or both.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    #[error("invalid reference format: {0:?} is empty")]
    Empty(String),
    #[error("invalid reference format: repository name must be lowercase: {0:?}")]
    Uppercase(String),
    #[error("invalid reference format: {0:?}: {1}")]
    Invalid(String, &'static str),
    #[error("invalid reference format: {0:?}: repository name is longer than 255 characters")]
    TooLong(String),
}

impl Reference {
    pub fn registry(&self) -> &str {
        &self.registry
    }

    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `registry/repository`, the name without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same repository at another digest.
    pub fn with_digest(&self, digest: Digest) -> Self {
        Reference {
            tag: None,
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The name Docker shows: `busybox` rather than `docker.io/library/busybox`.
    pub fn familiar_name(&self) -> String {
        if self.registry == DEFAULT_REGISTRY {
            match self.repository.strip_prefix("library/") {
                Some(short) if !short.contains('/') => short.to_string(),
                _ => self.repository.clone(),
            }
        } else {
            self.name()
        }
    }

    /// `familiar_name:tag` (the form `docker images` and `RepoTags` use), if tagged.
    pub fn familiar_tagged(&self) -> Option<String> {
        self.tag
            .as_ref()
            .map(|t| format!("{}:{t}", self.familiar_name()))
    }

    /// `familiar_name@digest`, if the reference has a digest.
    pub fn familiar_digested(&self) -> Option<String> {
        self.digest
            .as_ref()
            .map(|d| format!("{}@{d}", self.familiar_name()))
    }

    /// Parses a name with an optional tag, adding no default tag: for `docker pull NAME`
    /// with a separate tag argument, and for matching names in the local store.
    pub fn parse_name_only(s: &str) -> Result<Self, ReferenceError> {
        let mut r = parse(s)?;
        if r.tag.as_deref() == Some(DEFAULT_TAG) && !s.ends_with(":latest") {
            r.tag = None;
        }
        Ok(r)
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

fn parse(input: &str) -> Result<Reference, ReferenceError> {
    let err = |why| ReferenceError::Invalid(input.to_string(), why);
    if input.is_empty() {
        return Err(ReferenceError::Empty(input.to_string()));
    }
    let (rest, digest) = match input.split_once('@') {
        Some((rest, d)) => (
            rest,
            Some(d.parse::<Digest>().map_err(|_| err("invalid digest"))?),
        ),
        None => (input, None),
    };
    // A tag is after the last ':' only if no '/' follows it (else it was a registry port).
    let (name, tag) = match rest.rfind(':') {
        Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    if let Some(tag) = tag {
        if !valid_tag(tag) {
            return Err(err("invalid tag"));
        }
    }
    let (registry, path) = match name.split_once('/') {
        Some((first, path))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first, path.to_string())
        }
        _ => (DEFAULT_REGISTRY, name.to_string()),
    };
    let registry = if registry == "index.docker.io" || registry == "registry-1.docker.io" {
        DEFAULT_REGISTRY
    } else {
        registry
    };
    if !valid_registry(registry) {
        return Err(err("invalid registry host"));
    }
    if path.is_empty() {
        return Err(ReferenceError::Empty(input.to_string()));
    }
    if path.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(ReferenceError::Uppercase(input.to_string()));
    }
    if !path.split('/').all(valid_path_component) {
        return Err(err("invalid repository name"));
    }
    let repository = if registry == DEFAULT_REGISTRY && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    if registry.len() + 1 + repository.len() > MAX_NAME_LEN {
        return Err(ReferenceError::TooLong(input.to_string()));
    }
    let tag = match (tag, &digest) {
        (Some(t), _) => Some(t.to_string()),
        (None, None) => Some(DEFAULT_TAG.to_string()),
        (None, Some(_)) => None,
    };
    Ok(Reference {
        registry: registry.to_string(),
        repository,
        tag,
        digest,
    })
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`, the distribution spec's path component.
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b.iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

fn valid_registry(host: &str) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) if !n.ends_with(']') || host.starts_with('[') => (n, Some(p)),
        _ => (host, None),
    };
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|x| x.is_ascii_digit()) {
            return false;
        }
    }
    if let Some(v6) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|x| x.is_ascii_alphanumeric() || x == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// A stored full name (`docker.io/library/busybox:latest`, or `…@sha256:…`) as Docker
/// prints it (`busybox:latest`); anything unparsable is returned as it is.
pub fn familiar(name: &str) -> String {
    match name.parse::<Reference>() {
        Ok(r) if name.contains('@') => r.familiar_digested().unwrap_or_else(|| name.to_string()),
        Ok(r) => r.familiar_tagged().unwrap_or_else(|| name.to_string()),
        Err(_) => name.to_string(),
    }
}

/// Whether a registry host is on this machine, where plain HTTP is allowed, as dockerd does.
pub fn is_loopback_registry(registry: &str) -> bool {
    let host = match registry.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|x| x.is_ascii_digit()) => h,
        _ => registry,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Reference {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn docker_defaults() {
        assert_eq!(p("nginx").to_string(), "docker.io/library/nginx:latest");
        assert_eq!(
            p("nginx").familiar_tagged().as_deref(),
            Some("nginx:latest")
        );
        assert_eq!(p("user/app:1.2").to_string(), "docker.io/user/app:1.2");
        assert_eq!(
            p("index.docker.io/library/busybox").familiar_name(),
            "busybox"
        );
        assert_eq!(p("localhost/app").registry(), "localhost");
    }

    #[test]
    fn registries_ports_and_digests() {
        let r = p("host:5000/a/b:tag");
        assert_eq!(
            (r.registry(), r.repository(), r.tag()),
            ("host:5000", "a/b", Some("tag"))
        );
        let r = p("127.0.0.1:5000/busybox");
        assert_eq!(r.tag(), Some("latest"));
        assert_eq!(r.familiar_name(), "127.0.0.1:5000/busybox");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = p(&format!("busybox@{d}"));
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest().map(|x| x.to_string()), Some(d.clone()));
        let r = p(&format!("busybox:1@{d}"));
        assert_eq!(r.tag(), Some("1"));
        assert_eq!(p("[::1]:5000/x").registry(), "[::1]:5000");
    }

    #[test]
    fn malformed_are_refused() {
        for bad in [
            "",
            "UPPER",
            "a//b",
            "a/",
            ":tag",
            "a:",
            "a:-bad",
            "-a",
            "a@sha256:zz",
            "a b",
            "host:port/x",
            "a/..",
            "a__b___c",
        ] {
            assert!(
                bad.parse::<Reference>().is_err(),
                "{bad:?} should be refused"
            );
        }
        assert!(matches!(
            "Busybox".parse::<Reference>(),
            Err(ReferenceError::Uppercase(_))
        ));
        assert!(matches!(
            format!("x/{}", "a".repeat(300)).parse::<Reference>(),
            Err(ReferenceError::TooLong(_))
        ));
    }

    #[test]
    fn loopback() {
        assert!(is_loopback_registry("127.0.0.1:5000"));
        assert!(is_loopback_registry("localhost:5000"));
        assert!(is_loopback_registry("[::1]:5000"));
        assert!(!is_loopback_registry("registry.example.com"));
        assert!(!is_loopback_registry("10.0.0.1:5000"));
    }
}
