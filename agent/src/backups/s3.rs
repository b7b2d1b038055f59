//! S3-compatible storage for backups, through `object_store`.
//!
//! Uploads are multipart and streamed: the archive writer (a blocking
//! task) hands chunks to [`upload`] through a bounded channel, which puts
//! them in [`PART_SIZE`] parts, [`UPLOAD_CONCURRENCY`] in flight at most.
//! The Agent's memory use is bounded by those two numbers, never by the
//! archive's size. A failed upload is aborted, so no half object is left
//! in the bucket (and the storage can reclaim the parts).

use std::time::Duration;

use bytes::Bytes;
use cap_protocol::backups::S3Target;
use futures::StreamExt as _;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt as _, RetryConfig, WriteMultipart};
use tokio::sync::mpsc;

/// The size of each uploaded part but the last (S3 wants at least 5 MiB).
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts uploaded at once.
pub const UPLOAD_CONCURRENCY: usize = 2;

/// Why the storage failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The object is not there.
    #[error("the archive {0} is not in the bucket")]
    NotFound(String),
    /// Anything else: settings, network, the storage's refusal.
    #[error("the object storage failed: {0}")]
    Failed(String),
}

fn failed(what: &str, error: impl std::fmt::Display) -> StorageError {
    StorageError::Failed(format!("{what}: {error}"))
}

/// A client for `target`.
///
/// # Errors
///
/// [`StorageError::Failed`] for settings it cannot use.
pub fn store(target: &S3Target) -> Result<AmazonS3, StorageError> {
    AmazonS3Builder::new()
        .with_endpoint(target.endpoint.trim_end_matches('/'))
        .with_region(&target.region)
        .with_bucket_name(&target.bucket)
        .with_access_key_id(&target.access_key_id)
        .with_secret_access_key(&target.secret_access_key)
        .with_virtual_hosted_style_request(!target.path_style)
        .with_allow_http(target.endpoint.starts_with("http://"))
        .with_retry(RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(60),
            ..RetryConfig::default()
        })
        .build()
        .map_err(|e| failed("the S3 settings are not usable", e))
}

/// Uploads what arrives on `chunks` as the object `key`, until the channel
/// closes; then completes the upload when `complete` says the writer
/// finished well, or aborts it.
///
/// # Errors
///
/// [`StorageError::Failed`]; the upload is aborted.
pub async fn upload(
    store: &AmazonS3,
    key: &str,
    mut chunks: mpsc::Receiver<Bytes>,
    complete: impl std::future::Future<Output = bool>,
) -> Result<(), StorageError> {
    let path = ObjectPath::from(key);
    let upload = store
        .put_multipart(&path)
        .await
        .map_err(|e| failed(&format!("starting the upload of {key}"), e))?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
    while let Some(chunk) = chunks.recv().await {
        if let Err(e) = writer.wait_for_capacity(UPLOAD_CONCURRENCY).await {
            let _ = writer.abort().await;
            return Err(failed(&format!("uploading {key}"), e));
        }
        writer.put(chunk);
    }
    if !complete.await {
        let _ = writer.abort().await;
        return Err(StorageError::Failed(
            "the archive was not finished, so its upload was aborted".into(),
        ));
    }
    writer
        .finish()
        .await
        .map(drop)
        .map_err(|e| failed(&format!("completing the upload of {key}"), e))
}

/// The object `key`: its size and its bytes as a stream.
///
/// # Errors
///
/// [`StorageError::NotFound`], [`StorageError::Failed`].
pub async fn download(
    store: &AmazonS3,
    key: &str,
) -> Result<
    (
        u64,
        impl futures::Stream<Item = std::io::Result<Bytes>> + Send + Unpin + 'static,
    ),
    StorageError,
> {
    let result = store
        .get(&ObjectPath::from(key))
        .await
        .map_err(|e| match e {
            object_store::Error::NotFound { .. } => StorageError::NotFound(key.to_owned()),
            other => failed(&format!("reading {key}"), other),
        })?;
    let size = result.meta.size;
    let stream = result
        .into_stream()
        .map(|chunk| chunk.map_err(std::io::Error::other));
    Ok((size, stream))
}

/// Removes the object `key`; one that is not there is fine.
///
/// # Errors
///
/// [`StorageError::Failed`].
pub async fn delete(store: &AmazonS3, key: &str) -> Result<(), StorageError> {
    match store.delete(&ObjectPath::from(key)).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(failed(&format!("deleting {key}"), e)),
    }
}
