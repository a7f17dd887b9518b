//! The root CA and the node certificates it signs.
//!
//! A node certificate says who the node is and what it may do: CN = node id, OU = role
//! (`swarm-manager` or `swarm-worker`), O = cluster id, as swarmkit writes them. Its DNS
//! SANs are the role's server name and the node id, so that TLS server name verification
//! can require a manager. Nodes are both TLS servers and clients, so certificates carry both
//! extended key usages.

use std::fmt;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use rand::RngCore;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber, SubjectPublicKeyInfo,
    PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::FromDer;
use x509_parser::x509::AttributeTypeAndValue;

use super::{CaDigest, Error, Result, Role};

/// How long a node certificate is valid: Swarm's default, 90 days.
pub const DEFAULT_CERT_VALIDITY: Duration = Duration::from_secs(90 * 24 * 60 * 60);

/// How long the root CA certificate is valid: Swarm's default, 20 years.
const CA_VALIDITY: Duration = Duration::from_secs(20 * 365 * 24 * 60 * 60);

/// How far in the past certificates start: a Raspberry Pi without a real-time clock may
/// run behind until NTP catches up.
const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

const CA_COMMON_NAME: &str = "swarm-ca";

/// The cluster's root CA: its certificate, and on managers the key that signs node
/// certificates.
pub struct RootCa {
    cert_der: CertificateDer<'static>,
    key: Option<KeyPair>,
}

/// A node's certificate (signed by the root CA) and private key, in PEM.
#[derive(Clone)]
pub struct NodeKeys {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Shows the certificate only: the key is a credential.
impl fmt::Debug for NodeKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeKeys")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// What a node certificate says about its holder: how a server learns who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCertificate {
    pub node_id: String,
    pub role: Role,
    pub cluster_id: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl RootCa {
    /// A new self-signed root CA for the cluster: ECDSA P-256, CN `swarm-ca`, O the cluster
    /// id, valid 20 years.
    pub fn generate(cluster_id: &str) -> Result<RootCa> {
        check_id("cluster id", cluster_id)?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, CA_COMMON_NAME);
        name.push(DnType::OrganizationName, cluster_id);
        params.distinguished_name = name;
        // Unconstrained path length leaves room for Swarm's root rotation, where the new
        // root is cross-signed by the old one.
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        (params.not_before, params.not_after) = validity_window(CA_VALIDITY)?;
        params.serial_number = Some(random_serial());
        let cert = params.self_signed(&key)?;
        Ok(RootCa {
            cert_der: cert.der().clone(),
            key: Some(key),
        })
    }

    /// The root CA from its certificate and, on managers, its key (which must match the
    /// certificate).
    pub fn from_pem(cert_pem: &str, key_pem: Option<&str>) -> Result<RootCa> {
        let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| Error::InvalidCertificate(format!("reading the CA PEM: {e}")))?;
        let (_, cert) = X509Certificate::from_der(&cert_der)
            .map_err(|e| Error::InvalidCertificate(e.to_string()))?;
        let is_ca = cert
            .basic_constraints()
            .map_err(|e| Error::InvalidCertificate(e.to_string()))?
            .is_some_and(|constraints| constraints.value.ca);
        if !is_ca {
            return Err(Error::InvalidCertificate(
                "the CA certificate is not a CA (basic constraints)".into(),
            ));
        }
        let key = match key_pem {
            None => None,
            Some(pem) => {
                let key = KeyPair::from_pem(pem).map_err(|e| Error::InvalidKey(e.to_string()))?;
                if key.subject_public_key_info() != cert.public_key().raw {
                    return Err(Error::InvalidKey(
                        "the key does not match the CA certificate".into(),
                    ));
                }
                Some(key)
            }
        };
        Ok(RootCa { cert_der, key })
    }

    /// The CA certificate in PEM.
    pub fn cert_pem(&self) -> String {
        pem_encode("CERTIFICATE", &self.cert_der)
    }

    /// The CA certificate in DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The CA's signing key in PEM (PKCS#8), if this node holds it.
    pub fn key_pem(&self) -> Option<String> {
        self.key.as_ref().map(KeyPair::serialize_pem)
    }

    /// Whether this node holds the CA key and can sign node certificates.
    pub fn can_sign(&self) -> bool {
        self.key.is_some()
    }

    /// The digest that join tokens carry.
    pub fn digest(&self) -> CaDigest {
        CaDigest::of(&self.cert_der)
    }

    /// A new key and certificate for a node: how the first manager gets its own.
    pub fn issue(
        &self,
        node_id: &str,
        role: Role,
        cluster_id: &str,
        validity: Duration,
    ) -> Result<NodeKeys> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert_pem = self.sign(&key, node_id, role, cluster_id, validity)?;
        Ok(NodeKeys {
            cert_pem,
            key_pem: key.serialize_pem(),
        })
    }

    /// Signs a joining node's CSR, returning the certificate in PEM. Only the CSR's key is
    /// used (once its signature proves the requester holds it): the subject, SANs and
    /// extensions all come from the arguments, never from the request.
    pub fn sign_csr(
        &self,
        csr_der: &[u8],
        node_id: &str,
        role: Role,
        cluster_id: &str,
        validity: Duration,
    ) -> Result<String> {
        let (rest, csr) = X509CertificationRequest::from_der(csr_der)
            .map_err(|e| Error::InvalidCsr(e.to_string()))?;
        if !rest.is_empty() {
            return Err(Error::InvalidCsr("trailing bytes after the request".into()));
        }
        csr.verify_signature()
            .map_err(|e| Error::InvalidCsr(format!("its signature does not verify: {e}")))?;
        let key = SubjectPublicKeyInfo::from_der(csr.certification_request_info.subject_pki.raw)
            .map_err(|e| Error::InvalidCsr(format!("reading its public key: {e}")))?;
        if key.algorithm() != &PKCS_ECDSA_P256_SHA256 {
            return Err(Error::InvalidCsr("the key is not ECDSA P-256".into()));
        }
        self.sign(&key, node_id, role, cluster_id, validity)
    }

    fn sign(
        &self,
        key: &impl PublicKeyData,
        node_id: &str,
        role: Role,
        cluster_id: &str,
        validity: Duration,
    ) -> Result<String> {
        let ca_key = self.key.as_ref().ok_or(Error::NoSigningKey)?;
        let issuer = Issuer::from_ca_cert_der(&self.cert_der, ca_key)?;
        let cert = node_params(node_id, role, cluster_id, validity)?.signed_by(key, &issuer)?;
        Ok(pem_encode("CERTIFICATE", cert.der()))
    }
}

/// Shows the digest only: the key is a credential.
impl fmt::Debug for RootCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RootCa")
            .field("digest", &self.digest())
            .field("can_sign", &self.can_sign())
            .finish()
    }
}

/// A joining node's new key (PEM) and a certificate signing request for it (DER). The
/// request's subject is empty: the manager decides what the certificate says.
pub fn new_csr() -> Result<(String, Vec<u8>)> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    let csr = params.serialize_request(&key)?;
    Ok((key.serialize_pem(), csr.der().to_vec()))
}

impl NodeCertificate {
    /// Reads a node certificate (DER). It does not verify the signature: call it on a
    /// certificate TLS has verified against the cluster CA.
    pub fn parse(der: &[u8]) -> Result<NodeCertificate> {
        let (_, cert) =
            X509Certificate::from_der(der).map_err(|e| Error::InvalidCertificate(e.to_string()))?;
        let subject = cert.subject();
        let node_id = single(subject.iter_common_name(), "common name")?;
        let ou = single(subject.iter_organizational_unit(), "organizational unit")?;
        let role = Role::from_ou(&ou).ok_or_else(|| {
            Error::InvalidCertificate(format!("organizational unit {ou:?} is not a swarm role"))
        })?;
        let cluster_id = single(subject.iter_organization(), "organization")?;
        let time = |t: x509_parser::time::ASN1Time| {
            u64::try_from(t.timestamp())
                .ok()
                .and_then(|secs| SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs)))
                .ok_or_else(|| Error::InvalidCertificate("validity out of range".into()))
        };
        Ok(NodeCertificate {
            node_id,
            role,
            cluster_id,
            not_before: time(cert.validity().not_before)?,
            not_after: time(cert.validity().not_after)?,
        })
    }

    /// The first certificate of a PEM chain.
    pub fn from_pem(pem: &str) -> Result<NodeCertificate> {
        let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .map_err(|e| Error::InvalidCertificate(e.to_string()))?;
        NodeCertificate::parse(&block.contents)
    }

    /// Time to renew: past two thirds of its life, as swarmkit renews.
    pub fn needs_renewal(&self, now: SystemTime) -> bool {
        let life = self
            .not_after
            .duration_since(self.not_before)
            .unwrap_or_default();
        let renew_at = self.not_before + life * 2 / 3;
        now >= renew_at
    }
}

/// The one value of a subject attribute; two values would be ambiguous.
fn single<'a, 'b: 'a>(
    mut values: impl Iterator<Item = &'a AttributeTypeAndValue<'b>>,
    what: &str,
) -> Result<String> {
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(Error::InvalidCertificate(format!(
            "the subject must have exactly one {what}"
        )));
    };
    let value = value
        .as_str()
        .map_err(|e| Error::InvalidCertificate(format!("reading the {what}: {e}")))?;
    if value.is_empty() {
        return Err(Error::InvalidCertificate(format!("empty {what}")));
    }
    Ok(value.to_owned())
}

/// The parameters of a node certificate, all from the arguments.
fn node_params(
    node_id: &str,
    role: Role,
    cluster_id: &str,
    validity: Duration,
) -> Result<CertificateParams> {
    check_id("node id", node_id)?;
    check_id("cluster id", cluster_id)?;
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, node_id);
    name.push(DnType::OrganizationalUnitName, role.ou());
    name.push(DnType::OrganizationName, cluster_id);
    params.distinguished_name = name;
    params.subject_alt_names = [role.server_name(), node_id]
        .into_iter()
        .map(|name| name.try_into().map(SanType::DnsName))
        .collect::<Result<_, rcgen::Error>>()?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    (params.not_before, params.not_after) = validity_window(validity)?;
    params.serial_number = Some(random_serial());
    Ok(params)
}

/// Ids go into DNS SANs, so they must be DNS labels; Swarm's ids (lowercase base36) are.
fn check_id(what: &'static str, id: &str) -> Result<()> {
    let valid = (1..=63).contains(&id.len())
        && id
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidId(what, id.to_owned()))
    }
}

/// From a few minutes ago (clock skew) to `validity` from now.
fn validity_window(validity: Duration) -> Result<(OffsetDateTime, OffsetDateTime)> {
    if validity.is_zero() {
        return Err(Error::InvalidValidity("it is zero".into()));
    }
    let now = OffsetDateTime::now_utc();
    let not_after = time::Duration::try_from(validity)
        .ok()
        .and_then(|validity| now.checked_add(validity))
        .ok_or_else(|| Error::InvalidValidity(format!("{validity:?} is too long")))?;
    Ok((now - CLOCK_SKEW, not_after))
}

/// A random positive serial number of 127 bits: certificates issued for the same key must
/// still differ.
fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes[0] &= 0x7f;
    SerialNumber::from(bytes.to_vec())
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

#[cfg(test)]
mod tests {
    use x509_parser::extensions::GeneralName;

    use super::*;

    fn der_of(pem: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    }

    fn dns_sans(der: &[u8]) -> Vec<String> {
        let (_, cert) = X509Certificate::from_der(der).unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap();
        san.value
            .general_names
            .iter()
            .map(|name| match name {
                GeneralName::DNSName(name) => name.to_string(),
                other => panic!("unexpected SAN {other:?}"),
            })
            .collect()
    }

    #[test]
    fn issued_certificates_name_node_role_and_cluster() {
        let ca = RootCa::generate("cluster1").unwrap();
        for role in [Role::Manager, Role::Worker] {
            let keys = ca
                .issue("node1", role, "cluster1", DEFAULT_CERT_VALIDITY)
                .unwrap();
            let der = der_of(&keys.cert_pem);
            let cert = NodeCertificate::parse(&der).unwrap();
            assert_eq!(cert.node_id, "node1");
            assert_eq!(cert.role, role);
            assert_eq!(cert.cluster_id, "cluster1");
            let left = cert.not_after.duration_since(SystemTime::now()).unwrap();
            assert!(left > DEFAULT_CERT_VALIDITY - Duration::from_secs(60));
            assert!(left <= DEFAULT_CERT_VALIDITY);
            assert_eq!(dns_sans(&der), [role.server_name(), "node1"]);
            KeyPair::from_pem(&keys.key_pem).unwrap();
        }
    }

    #[test]
    fn csr_attributes_are_ignored() {
        let ca = RootCa::generate("cluster1").unwrap();
        // A hostile request: it asks to be a manager of another cluster, and a CA.
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![
            "swarm-manager".to_string(),
            "evil.example".to_string(),
        ])
        .unwrap();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, "evil");
        name.push(DnType::OrganizationalUnitName, "swarm-manager");
        name.push(DnType::OrganizationName, "other-cluster");
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let csr = params.serialize_request(&key).unwrap();

        let pem = ca
            .sign_csr(
                csr.der(),
                "node2",
                Role::Worker,
                "cluster1",
                DEFAULT_CERT_VALIDITY,
            )
            .unwrap();
        let der = der_of(&pem);
        let cert = NodeCertificate::parse(&der).unwrap();
        assert_eq!(cert.node_id, "node2");
        assert_eq!(cert.role, Role::Worker);
        assert_eq!(cert.cluster_id, "cluster1");
        assert_eq!(dns_sans(&der), ["swarm-worker", "node2"]);
        let (_, parsed) = X509Certificate::from_der(&der).unwrap();
        assert!(!parsed.is_ca());
        // The certificate is for the request's key.
        assert_eq!(
            parsed.public_key().raw,
            key.subject_public_key_info().as_slice()
        );
    }

    #[test]
    fn new_csrs_are_signed() {
        let ca = RootCa::generate("cluster1").unwrap();
        let (key_pem, csr) = new_csr().unwrap();
        let pem = ca
            .sign_csr(
                &csr,
                "node3",
                Role::Manager,
                "cluster1",
                DEFAULT_CERT_VALIDITY,
            )
            .unwrap();
        let key = KeyPair::from_pem(&key_pem).unwrap();
        let der = der_of(&pem);
        let (_, parsed) = X509Certificate::from_der(&der).unwrap();
        assert_eq!(
            parsed.public_key().raw,
            key.subject_public_key_info().as_slice()
        );
    }

    #[test]
    fn bad_csrs_are_refused() {
        let ca = RootCa::generate("cluster1").unwrap();
        let (_, mut csr) = new_csr().unwrap();
        let sign = |csr: &[u8]| {
            ca.sign_csr(
                csr,
                "node3",
                Role::Worker,
                "cluster1",
                DEFAULT_CERT_VALIDITY,
            )
            .unwrap_err()
            .to_string()
        };
        assert!(sign(b"garbage").starts_with("invalid certificate signing request"));
        // Corrupt the signature (the last bytes).
        let last = csr.len() - 1;
        csr[last] ^= 1;
        assert!(sign(&csr).contains("signature"), "{}", sign(&csr));
        // Another key algorithm.
        let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let other = CertificateParams::default()
            .serialize_request(&key)
            .unwrap();
        assert!(sign(other.der()).contains("P-256"));
    }

    #[test]
    fn only_a_ca_with_its_key_signs() {
        let ca = RootCa::generate("cluster1").unwrap();
        let public = RootCa::from_pem(&ca.cert_pem(), None).unwrap();
        assert!(!public.can_sign());
        assert_eq!(public.digest(), ca.digest());
        assert!(matches!(
            public.issue("node1", Role::Worker, "cluster1", DEFAULT_CERT_VALIDITY),
            Err(Error::NoSigningKey)
        ));

        let key_pem = ca.key_pem().unwrap();
        let restored = RootCa::from_pem(&ca.cert_pem(), Some(&key_pem)).unwrap();
        assert!(restored.can_sign());
        assert_eq!(restored.cert_der(), ca.cert_der());
        let keys = restored
            .issue("node1", Role::Worker, "cluster1", DEFAULT_CERT_VALIDITY)
            .unwrap();

        let other = RootCa::generate("cluster2").unwrap();
        let mismatched = RootCa::from_pem(&ca.cert_pem(), other.key_pem().as_deref());
        assert!(matches!(mismatched, Err(Error::InvalidKey(_))));
        // A node certificate is not a CA.
        assert!(RootCa::from_pem(&keys.cert_pem, None).is_err());
        assert!(RootCa::from_pem("not pem", None).is_err());
    }

    #[test]
    fn bad_arguments_are_refused() {
        let ca = RootCa::generate("cluster1").unwrap();
        let issue = |node: &str, validity| ca.issue(node, Role::Worker, "cluster1", validity);
        assert!(matches!(
            issue("Node 1", DEFAULT_CERT_VALIDITY),
            Err(Error::InvalidId(..))
        ));
        assert!(matches!(
            issue("", DEFAULT_CERT_VALIDITY),
            Err(Error::InvalidId(..))
        ));
        assert!(matches!(
            issue("node1", Duration::ZERO),
            Err(Error::InvalidValidity(_))
        ));
        assert!(matches!(
            issue("node1", Duration::MAX),
            Err(Error::InvalidValidity(_))
        ));
    }

    #[test]
    fn certificates_without_a_role_are_refused() {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, "node1");
        name.push(DnType::OrganizationalUnitName, "swarm-admin");
        name.push(DnType::OrganizationName, "cluster1");
        params.distinguished_name = name;
        let cert = params.self_signed(&key).unwrap();
        let err = NodeCertificate::parse(cert.der()).unwrap_err();
        assert!(err.to_string().contains("not a swarm role"), "{err}");

        params
            .distinguished_name
            .remove(DnType::OrganizationalUnitName);
        let cert = params.self_signed(&key).unwrap();
        let err = NodeCertificate::parse(cert.der()).unwrap_err();
        assert!(err.to_string().contains("exactly one"), "{err}");
        assert!(NodeCertificate::parse(b"garbage").is_err());
    }
}
