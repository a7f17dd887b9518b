//! How nodes talk to each other: QUIC with mutual TLS under the cluster CA.
//! - [`tls`]: the TLS configurations, and who a peer is.
//! - [`frame`]: the frames on a stream, pure protocol.
//! - [`endpoint`]: the endpoint that calls other nodes and serves them ([`Transport`]).
pub mod endpoint;
pub mod frame;
pub mod tls;

pub use endpoint::{code, BoxFuture, Error, Handler, Peer, Transport};
