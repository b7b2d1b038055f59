//! The S3-compatible storage backups go to: one set of settings for the
//! Panel (`backup_storage`), the secret key sealed like every secret at
//! rest ([`crate::secrets`]), recorded as `backup-storage.*` without it.
//!
//! The Panel uses the settings itself for two things only: presigned
//! download URLs (a browser fetches the archive from the bucket directly,
//! never through the Panel) and deleting archives (so an S3 backup can be
//! deleted while its node is offline). Uploads and restores run on the
//! Agents, which get the settings with each request.

use std::time::Duration;

use cap_protocol::backups::{BackupTarget, S3Target};
use object_store::ObjectStoreExt as _;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::signer::Signer as _;
use time::OffsetDateTime;

use super::BackupsError;
use crate::db::domain::{BackupStorageConfigured, BackupStorageEvent, Empty, Null};
use crate::db::{
    Actor, Database, DbError, NewEvent, from_micros, now, on_pool, query_builder, to_micros,
};
use crate::secrets::Purpose;

#[derive(sqlx::FromRow)]
struct StorageRow {
    endpoint: String,
    region: String,
    bucket: String,
    prefix: String,
    access_key_id: String,
    secret: String,
    path_style: bool,
    updated_at: i64,
}

/// The stored settings and when they were set; `None`: backups stay on
/// the nodes.
///
/// # Errors
///
/// Database errors, and [`DbError::Sealed`] if the secret does not open.
pub async fn load(db: &Database) -> Result<Option<(S3Target, OffsetDateTime)>, DbError> {
    let row: Option<StorageRow> = on_pool!(db, |pool| {
        let mut qb = query_builder(
            pool,
            "SELECT endpoint, region, bucket, prefix, access_key_id, secret, path_style, updated_at FROM backup_storage WHERE id = 1",
        );
        qb.build_query_as::<StorageRow>()
            .fetch_optional(pool)
            .await?
    });
    let Some(row) = row else {
        return Ok(None);
    };
    let secret = db
        .sealer()?
        .open(&Purpose::backup_storage_secret(), &row.secret)?;
    Ok(Some((
        S3Target {
            endpoint: row.endpoint,
            region: row.region,
            bucket: row.bucket,
            prefix: row.prefix,
            access_key_id: row.access_key_id,
            secret_access_key: secret,
            path_style: row.path_style,
        },
        from_micros(row.updated_at)?,
    )))
}

/// Stores `target` in place of any, recording `backup-storage.configured`
/// (without the secret).
///
/// # Errors
///
/// Database errors.
pub async fn save(db: &Database, target: &S3Target, actor: &Actor) -> Result<(), DbError> {
    let sealed = db
        .sealer()?
        .seal(&Purpose::backup_storage_secret(), &target.secret_access_key);
    let at = now();
    let event = NewEvent::new(BackupStorageEvent::Configured {
        subject: Null,
        data: BackupStorageConfigured {
            endpoint: target.endpoint.clone(),
            region: target.region.clone(),
            bucket: target.bucket.clone(),
            prefix: target.prefix.clone(),
            access_key_id: target.access_key_id.clone(),
            path_style: target.path_style,
        },
    })
    .actor(actor.clone())
    .occurred_at(at);
    on_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut qb = query_builder(pool, "DELETE FROM backup_storage WHERE id = 1");
        qb.build().execute(&mut *tx).await?;
        let mut qb = query_builder(
            pool,
            "INSERT INTO backup_storage (id, endpoint, region, bucket, prefix, access_key_id, secret, path_style, updated_at) VALUES (1, ",
        );
        qb.separated(", ")
            .push_bind(&target.endpoint)
            .push_bind(&target.region)
            .push_bind(&target.bucket)
            .push_bind(&target.prefix)
            .push_bind(&target.access_key_id)
            .push_bind(&sealed)
            .push_bind(target.path_style)
            .push_bind(to_micros(at));
        qb.push(")");
        qb.build().execute(&mut *tx).await?;
        tx.record(&event).await?;
        tx.commit().await?;
    });
    Ok(())
}

/// Removes the settings (new backups stay on the nodes), recording
/// `backup-storage.cleared`; `false` if there were none.
///
/// # Errors
///
/// Database errors.
pub async fn clear(db: &Database, actor: &Actor) -> Result<bool, DbError> {
    let event = NewEvent::new(BackupStorageEvent::Cleared {
        subject: Null,
        data: Empty {},
    })
    .actor(actor.clone());
    crate::db::clear_singleton(db, "backup_storage", &event).await
}

/// What is wrong with `target`, field by field (empty when nothing).
pub fn problems(target: &S3Target) -> Vec<(&'static str, String)> {
    let mut problems = Vec::new();
    match url::Url::parse(&target.endpoint) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
        _ => problems.push((
            "endpoint",
            "must be an http or https URL, such as https://s3.eu-central-1.amazonaws.com".into(),
        )),
    }
    let text = |field: &'static str, value: &str, max: usize, problems: &mut Vec<_>| {
        if value.trim().is_empty() || value.len() > max {
            problems.push((field, format!("must be 1 to {max} characters")));
        }
    };
    text("region", &target.region, 64, &mut problems);
    text("bucket", &target.bucket, 255, &mut problems);
    text("access_key_id", &target.access_key_id, 255, &mut problems);
    text(
        "secret_access_key",
        &target.secret_access_key,
        1024,
        &mut problems,
    );
    if target.prefix.len() > 512 {
        problems.push(("prefix", "must be at most 512 characters".into()));
    }
    problems
}

fn store(target: &S3Target) -> Result<AmazonS3, BackupsError> {
    AmazonS3Builder::new()
        .with_endpoint(target.endpoint.trim_end_matches('/'))
        .with_region(&target.region)
        .with_bucket_name(&target.bucket)
        .with_access_key_id(&target.access_key_id)
        .with_secret_access_key(&target.secret_access_key)
        .with_virtual_hosted_style_request(!target.path_style)
        .with_allow_http(target.endpoint.starts_with("http://"))
        .build()
        .map_err(|e| BackupsError::Storage(e.to_string()))
}

/// A presigned `GET` URL of backup `backup_id` of `server_id`, valid for
/// `ttl`.
///
/// # Errors
///
/// [`BackupsError::Storage`] for settings that cannot sign.
pub async fn presigned_get(
    target: &S3Target,
    server_id: &str,
    backup_id: &str,
    ttl: Duration,
) -> Result<String, BackupsError> {
    let key = BackupTarget::object_key(&target.prefix, server_id, backup_id);
    let url = store(target)?
        .signed_url(
            object_store::signer::Method::GET,
            &ObjectPath::from(key),
            ttl,
        )
        .await
        .map_err(|e| BackupsError::Storage(e.to_string()))?;
    Ok(url.to_string())
}

/// Deletes the archive of backup `backup_id` of `server_id` from the
/// bucket (one already gone is fine).
///
/// # Errors
///
/// [`BackupsError::Storage`].
pub async fn delete_object(
    target: &S3Target,
    server_id: &str,
    backup_id: &str,
) -> Result<(), BackupsError> {
    let key = BackupTarget::object_key(&target.prefix, server_id, backup_id);
    match store(target)?.delete(&ObjectPath::from(key)).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(BackupsError::Storage(e.to_string())),
    }
}
