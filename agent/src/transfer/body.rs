//! A download's body: a file range read ahead in large chunks into
//! buffers that are used again.
//!
//! # Decisions
//!
//! - **One copy on the way out.** Each chunk is read (`pread`) straight
//!   into a buffer that becomes the body's [`Bytes`] as it is
//!   ([`Bytes::from_owner`]); when hyper has written it and drops it, the
//!   buffer goes back to the body's pool. Reading through
//!   `tokio::fs::File` into a `ReaderStream` copied every byte twice
//!   more: from the file's own buffer into the stream's, and into a
//!   fresh allocation per chunk, which the kernel had to fault in and
//!   zero.
//! - **One read ahead.** While hyper writes chunk *n* to the socket, the
//!   read of chunk *n + 1* runs on the blocking pool, so disk (or page
//!   cache) and network overlap. Only one read is ever in flight and
//!   hyper only asks for the next chunk when it has room, so a body holds
//!   a few buffers at most ([`POOL`] are kept; more are made only while
//!   hyper still holds the earlier ones).
//! - **No thread waits on a slow client.** Each read is its own
//!   blocking-pool task that ends when the chunk is read; a client that
//!   stops reading holds buffers, not threads.
//! - **No `mmap`.** Mapping the file would save the read's copy too, but a
//!   server that truncates its file while it is being downloaded would
//!   then crash the Agent with `SIGBUS`. A short read is an error here
//!   instead, and the response is cut.

use std::os::unix::fs::FileExt as _;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::Stream;

/// Bytes read per chunk.
pub(super) const CHUNK: usize = 1024 * 1024;

/// Buffers a body keeps for reuse.
const POOL: usize = 4;

/// The buffers a body reuses.
type Pool = Arc<Mutex<Vec<Vec<u8>>>>;

/// A chunk of the body: `len` bytes of `buf`, which goes back to the pool
/// when hyper drops it.
struct Chunk {
    buf: Vec<u8>,
    len: usize,
    pool: Pool,
}

impl AsRef<[u8]> for Chunk {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < POOL {
            pool.push(std::mem::take(&mut self.buf));
        }
    }
}

type Read = tokio::task::JoinHandle<std::io::Result<(Vec<u8>, usize)>>;

/// Reads `length` bytes of `file` from `start` on the blocking pool, one
/// chunk ahead of what was taken.
struct Reader {
    file: Arc<std::fs::File>,
    offset: u64,
    /// Bytes not yet asked of the file.
    unread: u64,
    pool: Pool,
    pending: Option<Read>,
}

impl Reader {
    /// Starts reading the next chunk, if any is left.
    fn read_next(&mut self) {
        if self.unread == 0 {
            return;
        }
        let want = usize::try_from(self.unread).map_or(CHUNK, |unread| unread.min(CHUNK));
        let mut buf = self
            .pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_else(|| vec![0; CHUNK]);
        let file = self.file.clone();
        let offset = self.offset;
        self.offset += want as u64;
        self.unread -= want as u64;
        self.pending = Some(tokio::task::spawn_blocking(move || {
            let mut filled = 0;
            while filled < want {
                match file.read_at(&mut buf[filled..want], offset + filled as u64) {
                    Ok(0) => {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "the file became shorter while it was being sent",
                        ));
                    }
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            Ok((buf, filled))
        }));
    }
}

/// The body of `length` bytes of `file` from `start`.
pub(super) fn file_range(
    file: std::fs::File,
    start: u64,
    length: u64,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    body(Reader {
        file: Arc::new(file),
        offset: start,
        unread: length,
        pool: Arc::default(),
        pending: None,
    })
}

fn body(mut reader: Reader) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    reader.read_next();
    futures::stream::try_unfold(reader, |mut reader| async move {
        let Some(pending) = reader.pending.take() else {
            return Ok(None);
        };
        let (buf, len) = pending.await.map_err(std::io::Error::other)??;
        reader.read_next();
        let chunk = Chunk {
            buf,
            len,
            pool: reader.pool.clone(),
        };
        Ok(Some((Bytes::from_owner(chunk), reader)))
    })
}

#[cfg(test)]
mod tests {
    use futures::TryStreamExt as _;

    use super::*;

    fn file_of(len: usize) -> (tempfile::NamedTempFile, Vec<u8>) {
        let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let file = tempfile::NamedTempFile::new().expect("a file");
        std::fs::write(file.path(), &bytes).expect("written");
        (file, bytes)
    }

    #[tokio::test]
    async fn a_range_spanning_several_chunks_arrives_whole_and_in_order() {
        let (file, bytes) = file_of(3 * CHUNK + 12_345);
        let start = 1000u64;
        let length = (bytes.len() - 1000 - 7) as u64;
        let chunks: Vec<Bytes> = file_range(file.reopen().expect("open"), start, length)
            .try_collect()
            .await
            .expect("read");
        assert!(chunks.len() >= 4, "{} chunks", chunks.len());
        let joined: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        assert_eq!(joined, bytes[1000..bytes.len() - 7]);
    }

    #[tokio::test]
    async fn an_empty_range_is_an_empty_body() {
        let (file, _) = file_of(10);
        let chunks: Vec<Bytes> = file_range(file.reopen().expect("open"), 10, 0)
            .try_collect()
            .await
            .expect("read");
        assert!(chunks.is_empty());
    }

    #[tokio::test]
    async fn a_file_cut_short_while_it_is_sent_ends_the_body_with_an_error() {
        let (file, _) = file_of(3 * CHUNK);
        let mut body = Box::pin(file_range(
            file.reopen().expect("open"),
            0,
            3 * CHUNK as u64,
        ));
        let first = body.try_next().await.expect("a chunk").expect("some");
        assert_eq!(first.len(), CHUNK);
        // The server truncates its file; the read ahead may have the
        // second chunk already, never the third.
        file.as_file()
            .set_len(CHUNK as u64 + 10)
            .expect("truncated");
        let mut failed = None;
        loop {
            match body.try_next().await {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        let error = failed.expect("the body ends with an error, not short and clean");
        assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn buffers_come_back_to_the_pool_and_are_read_into_again() {
        let (file, bytes) = file_of(8 * CHUNK);
        let pool: Pool = Arc::default();
        let mut body = Box::pin(body(Reader {
            file: Arc::new(file.reopen().expect("open")),
            offset: 0,
            unread: 8 * CHUNK as u64,
            pool: pool.clone(),
            pending: None,
        }));
        let mut buffers = std::collections::HashSet::new();
        let mut offset = 0;
        while let Some(chunk) = body.try_next().await.expect("read") {
            assert_eq!(&chunk[..], &bytes[offset..offset + chunk.len()]);
            offset += chunk.len();
            buffers.insert(chunk.as_ptr() as usize);
            drop(chunk);
        }
        assert_eq!(offset, bytes.len());
        // One chunk taken at a time and one read ahead: two buffers, used
        // in turn, for eight chunks.
        assert!(buffers.len() <= 2, "{} buffers for 8 chunks", buffers.len());
        assert!(!pool.lock().expect("pool").is_empty());
    }
}
