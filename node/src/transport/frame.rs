//! The frames of covey's node-to-node protocol, as mini-redis's `frame.rs`: encoding and
//! checking only; the endpoint owns the streams. Every frame is
//!
//! ```text
//! [version: u8 = 1][kind: u8][len: u32 big-endian][body: len bytes]
//! ```
//!
//! A request is one Request frame on a bidirectional stream, answered by one Response frame;
//! Raft messages are Raft frames on a unidirectional stream, one message each.
//!
//! Architecture invariant: a length from the network is checked against the caller's bound
//! before anything is allocated for the body, and the body then grows only as its bytes
//! arrive, so a peer cannot make a node reserve memory it does not send.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

/// The protocol version this node speaks.
pub const VERSION: u8 = 1;

/// The header's size: version, kind and length.
pub const HEADER_LEN: usize = 6;

/// Bound on a request from a peer without a certificate: they may only join.
pub const MAX_ANONYMOUS: usize = 64 << 10;
/// Bound on a request or a response between nodes of the cluster.
pub const MAX_REQUEST: usize = 4 << 20;
/// Bound on a Raft message: a snapshot travels in one.
pub const MAX_RAFT: usize = 64 << 20;

/// How much of a body is reserved before its bytes arrive.
const INITIAL_CAPACITY: usize = 64 << 10;

/// What a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    Request = 1,
    Response = 2,
    Raft = 3,
}

impl TryFrom<u8> for FrameKind {
    type Error = FrameError;

    fn try_from(byte: u8) -> Result<FrameKind, FrameError> {
        match byte {
            1 => Ok(FrameKind::Request),
            2 => Ok(FrameKind::Response),
            3 => Ok(FrameKind::Raft),
            other => Err(FrameError::Kind(other)),
        }
    }
}

/// One frame, as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub kind: FrameKind,
    pub body: Vec<u8>,
}

/// Why a frame was refused.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("unsupported frame version {0} (this node speaks version {VERSION})")]
    Version(u8),
    #[error("unknown frame kind {0}")]
    Kind(u8),
    #[error("frame body of {len} bytes is over the limit of {max} bytes")]
    TooLong { len: u32, max: usize },
    #[error("truncated frame: {got} of {expected} bytes")]
    Truncated { expected: u64, got: u64 },
    #[error("reading a frame: {0}")]
    Io(#[from] io::Error),
}

/// A frame of `kind` carrying `body`.
///
/// # Panics
/// If `body` is 4 GiB or more, which the header cannot say: callers bound bodies by the
/// limits above first.
pub fn encode(kind: FrameKind, body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).expect("frame bodies are bounded below 4 GiB");
    let mut frame = Vec::with_capacity(HEADER_LEN + body.len());
    frame.push(VERSION);
    frame.push(kind as u8);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(body);
    frame
}

/// Checks a header: the frame's kind and body length, refusing a body over `max_len`.
pub fn decode_header(
    header: &[u8; HEADER_LEN],
    max_len: usize,
) -> Result<(FrameKind, usize), FrameError> {
    let [version, kind, len @ ..] = *header;
    if version != VERSION {
        return Err(FrameError::Version(version));
    }
    let kind = FrameKind::try_from(kind)?;
    let len = u32::from_be_bytes(len);
    match usize::try_from(len) {
        Ok(n) if n <= max_len => Ok((kind, n)),
        _ => Err(FrameError::TooLong { len, max: max_len }),
    }
}

/// Reads one frame whose body is at most `max_len` bytes. `Ok(None)` when the stream ends
/// cleanly before a frame begins; a stream that ends inside one is truncated.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max_len: usize,
) -> Result<Option<Frame>, FrameError> {
    let mut header = [0u8; HEADER_LEN];
    let mut filled = 0;
    while filled < HEADER_LEN {
        let n = r.read(&mut header[filled..]).await?;
        if n == 0 {
            if filled == 0 {
                return Ok(None);
            }
            return Err(FrameError::Truncated {
                expected: HEADER_LEN as u64,
                got: filled as u64,
            });
        }
        filled += n;
    }
    let (kind, len) = decode_header(&header, max_len)?;
    let mut body = Vec::with_capacity(len.min(INITIAL_CAPACITY));
    let got = r.take(len as u64).read_to_end(&mut body).await?;
    if got < len {
        return Err(FrameError::Truncated {
            expected: (HEADER_LEN + len) as u64,
            got: (HEADER_LEN + got) as u64,
        });
    }
    Ok(Some(Frame { kind, body }))
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::io::ReadBuf;

    use super::*;

    async fn read(bytes: &[u8], max_len: usize) -> Result<Option<Frame>, FrameError> {
        let mut r = bytes;
        read_frame(&mut r, max_len).await
    }

    #[tokio::test]
    async fn frames_round_trip() {
        for kind in [FrameKind::Request, FrameKind::Response, FrameKind::Raft] {
            for body in [&b""[..], b"{\"join\":true}", &[0xff; 1000]] {
                let bytes = encode(kind, body);
                assert_eq!(bytes.len(), HEADER_LEN + body.len());
                let frame = read(&bytes, 1000).await.unwrap().unwrap();
                assert_eq!(frame.kind, kind);
                assert_eq!(frame.body, body);
            }
        }
        // Two frames back to back, then a clean end.
        let mut bytes = encode(FrameKind::Raft, b"one");
        bytes.extend(encode(FrameKind::Raft, b"two"));
        let mut r = &bytes[..];
        for body in [b"one", b"two"] {
            let frame = read_frame(&mut r, 10).await.unwrap().unwrap();
            assert_eq!(frame.body, body);
        }
        assert_eq!(read_frame(&mut r, 10).await.unwrap(), None);
        assert_eq!(read(b"", 10).await.unwrap(), None);
    }

    #[tokio::test]
    async fn the_header_is_checked() {
        let mut bytes = encode(FrameKind::Request, b"hello");
        bytes[0] = 2;
        let err = read(&bytes, 100).await.unwrap_err();
        assert!(matches!(err, FrameError::Version(2)), "{err}");
        assert!(err.to_string().contains("version 2"), "{err}");

        let mut bytes = encode(FrameKind::Request, b"hello");
        bytes[1] = 9;
        let err = read(&bytes, 100).await.unwrap_err();
        assert!(matches!(err, FrameError::Kind(9)), "{err}");

        let err = read(&encode(FrameKind::Request, &[0; 101]), 100)
            .await
            .unwrap_err();
        assert!(matches!(err, FrameError::TooLong { len: 101, max: 100 }));
        let message = err.to_string();
        assert!(
            message.contains("101") && message.contains("100"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn truncated_frames_are_refused() {
        let bytes = encode(FrameKind::Response, b"hello");
        for cut in 1..bytes.len() {
            let err = read(&bytes[..cut], 100).await.unwrap_err();
            match err {
                FrameError::Truncated { got, .. } => assert_eq!(got, cut as u64),
                other => panic!("cut at {cut}: {other}"),
            }
        }
    }

    /// Serves a header announcing `len` bytes, then bytes forever; counts what is read.
    struct Endless {
        header: [u8; HEADER_LEN],
        read: usize,
    }

    impl AsyncRead for Endless {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let n = if self.read < HEADER_LEN {
                let start = self.read;
                let n = buf.remaining().min(HEADER_LEN - start);
                buf.put_slice(&self.header[start..start + n]);
                n
            } else {
                let n = buf.remaining();
                buf.put_slice(&vec![0; n]);
                n
            };
            self.read += n;
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_huge_length_is_refused_before_reading_the_body() {
        let mut header = [VERSION, FrameKind::Raft as u8, 0, 0, 0, 0];
        header[2..].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            decode_header(&header, MAX_RAFT),
            Err(FrameError::TooLong { len: u32::MAX, .. })
        ));
        let mut r = Endless { header, read: 0 };
        let err = read_frame(&mut r, MAX_RAFT).await.unwrap_err();
        assert!(matches!(err, FrameError::TooLong { .. }), "{err}");
        // Nothing past the header was read, so nothing was allocated for it.
        assert_eq!(r.read, HEADER_LEN);
    }
}
