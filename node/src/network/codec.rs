//! Framing of the sync protocol: a 4-byte little-endian length, then the message in the
//! canonical encoding ([`cairn_core::encoding`]).
//!
//! The length is checked against a hard limit before anything is read or allocated
//! (btcd's 2022 wire bugs came from trusting a length prefix), and the body is read
//! through `take(len)` so a peer that announces a large frame and then trickles bytes
//! never makes us reserve the whole announced size.
//!
//! A malformed *request* is not an I/O error here: libp2p's request-response behaviour
//! silently drops inbound streams whose codec fails, so the event loop would never hear of
//! the offense. Inbound requests are therefore `Result<SyncRequest, FrameError>`, and the
//! event loop penalises the `Err`. A malformed *response* is an `InvalidData` I/O error,
//! which libp2p does report for outbound requests.

use super::protocol::{MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, SyncRequest, SyncResponse};
use cairn_core::encoding;
use futures::prelude::*;
use libp2p::StreamProtocol;
use std::io;

/// Why a frame was refused; carried inside an `io::Error` of kind `InvalidData`.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The length prefix announces more than the limit.
    #[error("frame of {len} bytes exceeds the {limit}-byte limit")]
    TooLarge {
        /// Announced length.
        len: usize,
        /// Limit for this message kind.
        limit: usize,
    },
    /// The body is not a valid encoding of the expected message.
    #[error("undecodable message: {0}")]
    Undecodable(#[from] encoding::DecodeError),
}

impl From<FrameError> for io::Error {
    fn from(e: FrameError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

/// Whether an I/O error from this codec means the remote sent something malformed (as
/// opposed to the connection failing).
pub fn is_protocol_violation(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::InvalidData
}

/// Reads one frame of at most `limit` bytes and decodes it. The outer error is the
/// transport's; the inner one is the peer's fault.
pub async fn read_frame<T, R>(io: &mut R, limit: usize) -> io::Result<Result<T, FrameError>>
where
    T: bincode::Decode<()>,
    R: AsyncRead + Unpin + Send,
{
    let mut prefix = [0u8; 4];
    io.read_exact(&mut prefix).await?;
    let len = u32::from_le_bytes(prefix) as usize;
    if len > limit {
        return Ok(Err(FrameError::TooLarge { len, limit }));
    }
    // Grow the buffer as bytes arrive instead of trusting the prefix for the capacity.
    let mut body = Vec::with_capacity(len.min(64 * 1024));
    (&mut *io).take(len as u64).read_to_end(&mut body).await?;
    if body.len() != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("frame cut short: {} of {len} bytes", body.len()),
        ));
    }
    Ok(encoding::decode(&body).map_err(FrameError::Undecodable))
}

/// Encodes `value` and writes it as one frame; refuses to send what the peer would refuse.
pub async fn write_frame<T, W>(io: &mut W, value: &T, limit: usize) -> io::Result<()>
where
    T: bincode::Encode,
    W: AsyncWrite + Unpin + Send,
{
    let body = encoding::encode(value);
    if body.len() > limit {
        return Err(FrameError::TooLarge {
            len: body.len(),
            limit,
        }
        .into());
    }
    let len = u32::try_from(body.len()).expect("limits are far below 4 GiB");
    io.write_all(&len.to_le_bytes()).await?;
    io.write_all(&body).await?;
    io.flush().await?;
    io.close().await
}

/// The request-response codec of [`super::protocol::SYNC_PROTOCOL`].
#[derive(Clone, Copy, Debug, Default)]
pub struct SyncCodec;

/// A request as read off the wire: the request, or why the bytes were not one.
pub type InboundRequest = Result<SyncRequest, FrameError>;

impl libp2p::request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = InboundRequest;
    type Response = SyncResponse;

    async fn read_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<InboundRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, MAX_REQUEST_BYTES).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        Ok(read_frame(io, MAX_RESPONSE_BYTES).await??)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: InboundRequest,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match req {
            Ok(request) => write_frame(io, &request, MAX_REQUEST_BYTES).await,
            Err(e) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("refusing to send a malformed request: {e}"),
            )),
        }
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: SyncResponse,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &res, MAX_RESPONSE_BYTES).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::BlockHash;
    use futures::io::Cursor;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut out = (body.len() as u32).to_le_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        futures::executor::block_on(f)
    }

    #[test]
    fn round_trip() {
        let request = SyncRequest::GetBlocks(vec![BlockHash::default(); 3]);
        let mut buf = Vec::new();
        block_on(write_frame(
            &mut Cursor::new(&mut buf),
            &request,
            MAX_REQUEST_BYTES,
        ))
        .unwrap();
        let back: SyncRequest = block_on(read_frame(&mut Cursor::new(&buf), MAX_REQUEST_BYTES))
            .unwrap()
            .unwrap();
        assert_eq!(back, request);
    }

    /// A reader that yields a length prefix and then panics if anyone asks for the body:
    /// proves the limit is checked before any read or allocation of the body.
    struct PrefixOnly {
        prefix: [u8; 4],
        pos: usize,
    }

    impl AsyncRead for PrefixOnly {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            assert!(
                self.pos < 4,
                "the body of an oversized frame must not be read"
            );
            let n = buf.len().min(4 - self.pos);
            let start = self.pos;
            buf[..n].copy_from_slice(&self.prefix[start..start + n]);
            self.pos += n;
            Poll::Ready(Ok(n))
        }
    }

    #[test]
    fn oversized_length_prefix_is_rejected_before_reading_the_body() {
        for len in [MAX_REQUEST_BYTES as u32 + 1, u32::MAX] {
            let mut reader = PrefixOnly {
                prefix: len.to_le_bytes(),
                pos: 0,
            };
            let err = block_on(read_frame::<SyncRequest, _>(&mut reader, MAX_REQUEST_BYTES))
                .unwrap()
                .unwrap_err();
            assert!(matches!(err, FrameError::TooLarge { .. }), "{err}");
        }
    }

    #[test]
    fn garbage_is_rejected_as_a_protocol_violation() {
        for body in [&b"\xff\xff\xff\xff garbage"[..], &[0x07; 100][..], &[][..]] {
            let err = block_on(read_frame::<SyncRequest, _>(
                &mut Cursor::new(frame(body)),
                MAX_REQUEST_BYTES,
            ))
            .unwrap()
            .unwrap_err();
            assert!(matches!(err, FrameError::Undecodable(_)), "{err}");
        }
        // A vector whose length prefix claims billions of entries, inside a small frame.
        let mut body = vec![2u8, 0, 0, 0]; // GetBlocks
        body.extend_from_slice(&u64::MAX.to_le_bytes());
        let err = block_on(read_frame::<SyncRequest, _>(
            &mut Cursor::new(frame(&body)),
            MAX_REQUEST_BYTES,
        ))
        .unwrap()
        .unwrap_err();
        assert!(matches!(err, FrameError::Undecodable(_)), "{err}");
        // As an I/O error (responses), it is a protocol violation.
        assert!(is_protocol_violation(&io::Error::from(err)));
    }

    #[test]
    fn truncated_frame_is_not_a_violation() {
        let mut bytes = frame(&[1, 2, 3, 4, 5]);
        bytes.truncate(6);
        let err = block_on(read_frame::<SyncRequest, _>(
            &mut Cursor::new(bytes),
            MAX_REQUEST_BYTES,
        ))
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn writer_refuses_oversized_messages() {
        let request = SyncRequest::GetBlocks(vec![BlockHash::default(); 1000]);
        let mut buf = Vec::new();
        let err = block_on(write_frame(
            &mut Cursor::new(&mut buf),
            &request,
            MAX_REQUEST_BYTES,
        ))
        .unwrap_err();
        assert!(is_protocol_violation(&err));
        assert!(buf.is_empty());
    }
}
