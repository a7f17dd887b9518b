//! The cluster's certificate authority, as swarmkit's `ca` package: the root CA that
//! managers hold, the node certificates it signs (the OU carries the node's role), and the
//! join tokens that pin the CA for a joining node.
//!
//! Identifiers and tokens use Swarm's encoding: random or digest bytes as a big-endian
//! number written in lowercase base36, left-padded with `0` to a fixed width.

mod cert;
mod token;

use std::fmt;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

pub use cert::{new_csr, NodeCertificate, NodeKeys, RootCa, DEFAULT_CERT_VALIDITY};
pub use token::{new_dashboard_token, secrets_match, JoinToken};

/// Errors of the CA: certificates, CSRs and join tokens.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid join token: {0}")]
    InvalidToken(&'static str),
    #[error("invalid certificate: {0}")]
    InvalidCertificate(String),
    #[error("invalid certificate signing request: {0}")]
    InvalidCsr(String),
    #[error("invalid key: {0}")]
    InvalidKey(String),
    #[error("invalid {0} {1:?}: expected 1 to 63 characters among a-z, 0-9 and '-'")]
    InvalidId(&'static str, String),
    #[error("invalid certificate validity: {0}")]
    InvalidValidity(String),
    #[error("this node holds the CA certificate but not its key, so it cannot sign")]
    NoSigningKey,
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A node's role in the cluster. A node certificate carries it in its OU, and as a DNS
/// SAN so that TLS server name verification checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Manager,
    Worker,
}

impl Role {
    /// The certificate OU for this role, as Swarm writes it.
    pub fn ou(self) -> &'static str {
        match self {
            Role::Manager => "swarm-manager",
            Role::Worker => "swarm-worker",
        }
    }

    /// The TLS server name that a node of this role answers to (a DNS SAN of its
    /// certificate): connect with `Role::Manager.server_name()` to require a manager.
    pub fn server_name(self) -> &'static str {
        self.ou()
    }

    /// The role whose OU is `ou`, if any.
    pub fn from_ou(ou: &str) -> Option<Role> {
        [Role::Manager, Role::Worker]
            .into_iter()
            .find(|role| role.ou() == ou)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Manager => "manager",
            Role::Worker => "worker",
        })
    }
}

/// Width of an id in base36: 36^25 > 2^128.
const ID_LEN: usize = 25;

/// A new random id for a node, cluster, service or task, like Swarm's: 128 random bits in
/// lowercase base36, 25 characters.
pub fn new_id() -> String {
    random_base36()
}

/// 128 random bits from the OS, in base36 padded to 25 characters.
fn random_base36() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    to_base36(&bytes, ID_LEN)
}

/// The SHA-256 digest of the CA certificate's DER: what a join token pins.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CaDigest([u8; 32]);

/// Width of a SHA-256 digest in base36: 36^50 > 2^256.
const DIGEST_LEN: usize = 50;

impl CaDigest {
    /// The digest of a certificate's DER.
    pub fn of(der: &[u8]) -> CaDigest {
        CaDigest(Sha256::digest(der).into())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses the 50-character base36 form.
    fn from_base36(s: &str) -> Option<CaDigest> {
        if s.len() != DIGEST_LEN {
            return None;
        }
        from_base36(s).map(CaDigest)
    }
}

impl fmt::Display for CaDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&to_base36(&self.0, DIGEST_LEN))
    }
}

impl fmt::Debug for CaDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CaDigest({self})")
    }
}

const BASE36: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// `bytes` as a big-endian number in lowercase base36, left-padded with '0' to `width`.
fn to_base36(bytes: &[u8], width: usize) -> String {
    let mut number = bytes.to_vec();
    let mut digits = Vec::new();
    while number.iter().any(|&b| b != 0) {
        // Divide the big-endian number by 36 in place; the remainder is the next digit.
        let mut remainder = 0u32;
        for byte in number.iter_mut() {
            let value = (remainder << 8) | u32::from(*byte);
            *byte = (value / 36) as u8;
            remainder = value % 36;
        }
        digits.push(BASE36[remainder as usize]);
    }
    while digits.len() < width {
        digits.push(b'0');
    }
    digits.reverse();
    digits.into_iter().map(char::from).collect()
}

/// Parses lowercase base36 into a big-endian number of `N` bytes; None on a character
/// outside `[0-9a-z]` or a value that does not fit.
fn from_base36<const N: usize>(s: &str) -> Option<[u8; N]> {
    let mut number = [0u8; N];
    for c in s.bytes() {
        let digit = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'z' => c - b'a' + 10,
            _ => return None,
        };
        // number = number * 36 + digit, from the least significant byte up.
        let mut carry = u32::from(digit);
        for byte in number.iter_mut().rev() {
            let value = u32::from(*byte) * 36 + carry;
            *byte = value as u8;
            carry = value >> 8;
        }
        if carry != 0 {
            return None;
        }
    }
    Some(number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base36_round_trips() {
        let max = [0xffu8; 32];
        let encoded = to_base36(&max, DIGEST_LEN);
        assert_eq!(encoded.len(), DIGEST_LEN);
        assert_eq!(from_base36::<32>(&encoded), Some(max));
        assert_eq!(to_base36(&[0, 0, 1, 0], 4), "0074");
        assert_eq!(from_base36::<4>("0074"), Some([0, 0, 1, 0]));
        assert_eq!(to_base36(&[0; 16], ID_LEN), "0".repeat(ID_LEN));
        // 36^50 - 1 does not fit in 256 bits.
        assert_eq!(from_base36::<32>(&"z".repeat(DIGEST_LEN)), None);
        assert_eq!(from_base36::<4>("00A4"), None);
    }

    #[test]
    fn ids_are_25_base36_characters() {
        let a = new_id();
        let b = new_id();
        assert_ne!(a, b);
        for id in [a, b] {
            assert_eq!(id.len(), ID_LEN);
            assert!(id
                .bytes()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()));
        }
    }

    #[test]
    fn roles_name_their_ou() {
        assert_eq!(Role::Manager.ou(), "swarm-manager");
        assert_eq!(Role::Worker.server_name(), "swarm-worker");
        assert_eq!(Role::from_ou("swarm-worker"), Some(Role::Worker));
        assert_eq!(Role::from_ou("swarm-admin"), None);
        assert_eq!(Role::Manager.to_string(), "manager");
        assert_eq!(serde_json::to_string(&Role::Worker).unwrap(), "\"worker\"");
        let role: Role = serde_json::from_str("\"manager\"").unwrap();
        assert_eq!(role, Role::Manager);
    }
}
