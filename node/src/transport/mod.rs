//! How nodes talk to each other: QUIC with mutual TLS under the cluster CA.
pub mod tls;
