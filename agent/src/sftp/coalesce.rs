//! Sending an SFTP session's replies in batches: the reply stream the SFTP
//! server writes to flushes after every reply, one SSH packet (and, with
//! `TCP_NODELAY`, one TCP segment) per acknowledged 32 KiB write of an
//! upload. [`Coalesced`] holds small replies back while more requests are
//! already waiting to be read, and sends what it holds as soon as there is
//! none (or [`HELD_BYTES`] are waiting), as OpenSSH's `sftp-server` does
//! with its output queue. Large replies (reads) go at once, on flush.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Replies held back at most, in bytes: past this the next flush sends.
pub(super) const HELD_BYTES: usize = 16 * 1024;

/// A stream whose writes wait until its reads would wait (see the
/// [module docs](self)).
#[derive(Debug)]
pub(super) struct Coalesced<S> {
    inner: S,
    held: Vec<u8>,
    sent: usize,
}

impl<S> Coalesced<S> {
    /// `inner`, with its writes coalesced.
    pub(super) fn new(inner: S) -> Self {
        Self {
            inner,
            held: Vec::with_capacity(HELD_BYTES),
            sent: 0,
        }
    }
}

impl<S: AsyncWrite + Unpin> Coalesced<S> {
    /// Sends everything held, then flushes the inner stream.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.held.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.held[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        ready!(Pin::new(&mut self.inner).poll_flush(cx))?;
        self.held.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Coalesced<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            // A request (or more) is there: the replies can wait for it.
            Poll::Ready(Ok(())) if buf.filled().len() > before => Poll::Ready(Ok(())),
            // The end, or an error: what is held goes first, as far as it
            // can.
            Poll::Ready(done) => {
                let _ = ready!(this.poll_send(cx));
                Poll::Ready(done)
            }
            // Nothing to read now: the client waits for the replies.
            Poll::Pending => match this.poll_send(cx) {
                Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
                _ => Poll::Pending,
            },
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Coalesced<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.held.len() >= HELD_BYTES {
            ready!(this.poll_send(cx))?;
        }
        this.held.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.held.len() >= HELD_BYTES {
            this.poll_send(cx)
        } else {
            // Sent when the reads would wait (or the next flush finds
            // enough held).
            Poll::Ready(Ok(()))
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    #[tokio::test]
    async fn small_replies_wait_while_requests_are_queued_and_go_when_none_is() {
        let (near, mut far) = tokio::io::duplex(1 << 20);
        let mut coalesced = Coalesced::new(near);
        far.write_all(b"ab").await.unwrap();
        let mut request = [0u8; 1];
        coalesced.read_exact(&mut request).await.unwrap();
        coalesced.write_all(b"1").await.unwrap();
        coalesced.flush().await.unwrap();
        // A request is still queued: the reply is held.
        coalesced.read_exact(&mut request).await.unwrap();
        coalesced.write_all(b"2").await.unwrap();
        coalesced.flush().await.unwrap();
        let mut probe = [0u8; 2];
        assert!(
            tokio::time::timeout(
                std::time::Duration::from_millis(50),
                far.read_exact(&mut probe)
            )
            .await
            .is_err(),
            "nothing was sent while requests were queued"
        );
        // No request left: the next read sends both replies and waits.
        let reading = tokio::spawn(async move {
            let mut request = [0u8; 1];
            coalesced.read_exact(&mut request).await.map(|_| request[0])
        });
        far.read_exact(&mut probe).await.unwrap();
        assert_eq!(&probe, b"12");
        far.write_all(b"c").await.unwrap();
        assert_eq!(reading.await.unwrap().unwrap(), b'c');
    }

    #[tokio::test]
    async fn a_large_reply_goes_at_its_flush() {
        let (near, mut far) = tokio::io::duplex(1 << 20);
        let mut coalesced = Coalesced::new(near);
        far.write_all(b"ab").await.unwrap();
        let mut request = [0u8; 1];
        coalesced.read_exact(&mut request).await.unwrap();
        let big = vec![7u8; HELD_BYTES + 1];
        coalesced.write_all(&big).await.unwrap();
        coalesced.flush().await.unwrap();
        let mut got = vec![0u8; big.len()];
        far.read_exact(&mut got).await.unwrap();
        assert_eq!(got, big);
    }
}
