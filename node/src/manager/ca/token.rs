//! Join tokens in Swarm's form: `SWMTKN-1-<CA digest>-<secret>`, and the dashboard's
//! token, covey's own: `CVYDSH-1-<secret>`.

use std::fmt;
use std::str::FromStr;

use super::{random_base36, CaDigest, Error, Result, RootCa, ID_LEN};

const PREFIX: &str = "SWMTKN";
const VERSION: &str = "1";
const DASHBOARD_PREFIX: &str = "CVYDSH";

/// A new dashboard token, what logs a browser in to the managers' dashboard. Only a
/// credential, nothing to pin, so a bare secret.
pub fn new_dashboard_token() -> String {
    format!("{DASHBOARD_PREFIX}-{VERSION}-{}", random_base36())
}

/// Whether two secrets are equal, compared in constant time (their lengths are not
/// secret).
pub fn secrets_match(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// A join token: the digest that pins the cluster's CA for a joining node, and the secret
/// that admits it (one secret per role). Its `Display` is the token as `swarm join` takes
/// it.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    ca_digest: CaDigest,
    secret: String,
}

impl JoinToken {
    /// A new token for `ca`, with a fresh random secret.
    pub fn generate(ca: &RootCa) -> JoinToken {
        JoinToken {
            ca_digest: ca.digest(),
            secret: random_base36(),
        }
    }

    /// The digest of the CA certificate this token pins.
    pub fn ca_digest(&self) -> CaDigest {
        self.ca_digest
    }

    /// Whether `other` carries this token's secret, compared in constant time. The CA
    /// digest is not compared: the joining node checked it against the server's chain.
    pub fn matches(&self, other: &JoinToken) -> bool {
        secrets_match(self.secret.as_bytes(), other.secret.as_bytes())
    }
}

impl fmt::Display for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}-{VERSION}-{}-{}", self.ca_digest, self.secret)
    }
}

/// Shows the digest only: the secret is a credential.
impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinToken")
            .field("ca_digest", &self.ca_digest)
            .finish_non_exhaustive()
    }
}

impl FromStr for JoinToken {
    type Err = Error;

    fn from_str(s: &str) -> Result<JoinToken> {
        let parts: Vec<&str> = s.trim().split('-').collect();
        let [prefix, version, digest, secret] = parts[..] else {
            return Err(Error::InvalidToken(
                "expected 4 parts separated by '-' (SWMTKN-1-<digest>-<secret>)",
            ));
        };
        if prefix != PREFIX {
            return Err(Error::InvalidToken("it does not start with SWMTKN"));
        }
        if version != VERSION {
            return Err(Error::InvalidToken("unsupported version (expected 1)"));
        }
        if digest.len() != super::DIGEST_LEN {
            return Err(Error::InvalidToken(
                "the CA digest is not 50 characters long",
            ));
        }
        let ca_digest = CaDigest::from_base36(digest).ok_or(Error::InvalidToken(
            "the CA digest is not a base36 SHA-256 digest",
        ))?;
        if secret.len() != ID_LEN {
            return Err(Error::InvalidToken("the secret is not 25 characters long"));
        }
        if !secret
            .bytes()
            .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
        {
            return Err(Error::InvalidToken(
                "the secret has characters outside [0-9a-z]",
            ));
        }
        Ok(JoinToken {
            ca_digest,
            secret: secret.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(token: &str) -> String {
        match token.parse::<JoinToken>() {
            Err(e) => e.to_string(),
            Ok(t) => panic!("{token} parsed as {t:?}"),
        }
    }

    #[test]
    fn dashboard_tokens_are_new_each_time_and_compared_whole() {
        let (a, b) = (new_dashboard_token(), new_dashboard_token());
        assert!(a.starts_with("CVYDSH-1-") && a.len() == "CVYDSH-1-".len() + ID_LEN);
        assert_ne!(a, b);
        assert!(secrets_match(a.as_bytes(), a.clone().as_bytes()));
        assert!(!secrets_match(a.as_bytes(), b.as_bytes()));
        assert!(!secrets_match(a.as_bytes(), &a.as_bytes()[..a.len() - 1]));
    }

    #[test]
    fn tokens_round_trip() {
        let ca = RootCa::generate("cluster").unwrap();
        let token = JoinToken::generate(&ca);
        let text = token.to_string();
        assert!(text.starts_with("SWMTKN-1-"));
        assert_eq!(text.len(), "SWMTKN-1-".len() + 50 + 1 + 25);
        let parsed: JoinToken = text.parse().unwrap();
        assert_eq!(parsed, token);
        assert_eq!(parsed.ca_digest(), ca.digest());
        assert!(parsed.matches(&token));
        assert!(!format!("{token:?}").contains(&token.secret));
    }

    #[test]
    fn secrets_are_compared() {
        let ca = RootCa::generate("cluster").unwrap();
        let a = JoinToken::generate(&ca);
        let b = JoinToken::generate(&ca);
        assert!(!a.matches(&b));
        let short = JoinToken {
            secret: a.secret[1..].to_owned(),
            ..a.clone()
        };
        assert!(!a.matches(&short));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let ca = RootCa::generate("cluster").unwrap();
        let good = JoinToken::generate(&ca).to_string();
        let digest = ca.digest().to_string();
        let secret = &good[good.len() - 25..];

        let cases = [
            ("", "4 parts"),
            ("SWMTKN-1-abc", "4 parts"),
            (&format!("{good}-extra"), "4 parts"),
            (&format!("SWMTKM-1-{digest}-{secret}"), "SWMTKN"),
            (&format!("SWMTKN-2-{digest}-{secret}"), "version"),
            (
                &format!("SWMTKN-1-{}-{secret}", &digest[1..]),
                "50 characters",
            ),
            (&format!("SWMTKN-1-{}-{secret}", "Z".repeat(50)), "base36"),
            (&format!("SWMTKN-1-{}-{secret}", "z".repeat(50)), "base36"),
            (
                &format!("SWMTKN-1-{digest}-{}", &secret[1..]),
                "25 characters",
            ),
            (&format!("SWMTKN-1-{digest}-{}", "A".repeat(25)), "[0-9a-z]"),
        ];
        for (token, expected) in cases {
            let message = refusal(token);
            assert!(message.starts_with("invalid join token: "), "{message}");
            assert!(message.contains(expected), "{token}: {message}");
        }
    }
}
