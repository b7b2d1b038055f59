//! Pulling a URL into a server's directory.
//!
//! The rules are those of plugin HTTP ([`cap_runtime::capabilities::http`]):
//! the Agent resolves the host itself and refuses the pull (`pull-refused`)
//! when any of its addresses is loopback, private, link-local or otherwise
//! not public ([`is_special`]), unless the admin's `allowed_hosts` (the
//! plugin grant syntax, [`HostPattern`]) names the URL's host. The
//! connection is pinned to the checked addresses, no proxy is used, and
//! redirects are followed by hand, each one checked like the first, at
//! most [`MAX_PULL_REDIRECTS`] of them. Whether pulls are allowed at all
//! (the game type's and the admin's switch) is the Panel's decision: it
//! does not send a pull it does not allow.
//!
//! The body is written to a hidden `.cap-pull-<random>.part` beside the
//! target and renamed into place when complete; it is bounded by the disk
//! limit and [`MAX_PULL_BYTES`], and removed when either is crossed or the
//! download fails. The target must not exist.

use std::net::SocketAddr;
use std::time::Duration;

use cap_fs_ext::{FollowSymlinks, OpenOptionsFollowExt};
use cap_protocol::files::{FileEntry, FileError, FileErrorCode};
use cap_runtime::capabilities::http::{HostPattern, is_special};
use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt};
use rustix::fs::RenameFlags;
use tokio::io::AsyncWriteExt;

use super::ServerFiles;
use super::error::{self, io_error};
use super::path::{RelPath, printable};

/// The most bytes one pull writes when the disk limit allows more (or
/// there is none): 8 GiB.
pub const MAX_PULL_BYTES: u64 = 8 * 1024 * 1024 * 1024;

/// The most redirects a pull follows, each checked like the first URL.
pub const MAX_PULL_REDIRECTS: usize = 5;

/// How long connecting may take.
pub const PULL_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the server may send nothing before the pull fails; there is
/// no limit on the whole download, which may be large and slow.
pub const PULL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

impl ServerFiles {
    /// Downloads `url` (http or https) into the directory `directory` as
    /// `file_name` (by default the URL's last path segment). `allowed_hosts`
    /// are the admin's exceptions to the public-address rule. Returns the
    /// new file's entry. See the module docs for the rules.
    ///
    /// Short blocking calls (opening, renaming) run on the calling task;
    /// the disk usage walk runs on the blocking pool.
    ///
    /// # Errors
    ///
    /// `pull-refused` (scheme, non-public address, bad `allowed_hosts`),
    /// `pull-failed` (resolution, connection, a non-2xx answer, too many
    /// redirects), `disk-limit`, `already-exists`, `read-only`, `denied`,
    /// `invalid-path`, `not-found` (the directory), `outside-server`, `io`.
    pub async fn pull(
        &self,
        url: &str,
        directory: &str,
        file_name: Option<&str>,
        allowed_hosts: &[String],
    ) -> Result<FileEntry, FileError> {
        self.writable(directory)?;
        let refused = |why: String| FileError::at(FileErrorCode::PullRefused, url, why);
        let allow = allowed_hosts
            .iter()
            .map(|entry| HostPattern::parse(entry))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| refused(format!("the allowed host {e}")))?;
        let mut current = url::Url::parse(url)
            .map_err(|e| refused(format!("`{}` is not a valid URL: {e}", printable(url))))?;
        check_scheme(&current, url)?;
        let name = match file_name {
            Some(name) => RelPath::parse_name(name)?,
            None => name_from_url(&current),
        };

        let dir_rel = RelPath::parse(directory)?;
        self.deny(&dir_rel, true, directory)?;
        let dir = self.open_dir(&dir_rel, directory)?;
        let dir_resolved = self.canonical(&dir_rel, directory)?;
        self.deny(&dir_resolved, true, directory)?;
        let target = dir_rel.join(&name);
        let shown = target.display();
        self.deny(&target, false, &shown)?;
        self.deny(&dir_resolved.join(&name), false, &shown)?;
        match dir.symlink_metadata(&name) {
            Ok(_) => return Err(error::exists(&shown)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(&e, &shown)),
        }
        let bound = self
            .headroom_async(&shown)
            .await?
            .map_or(MAX_PULL_BYTES, |room| room.min(MAX_PULL_BYTES));
        let over = |shown: &str| {
            if bound < MAX_PULL_BYTES {
                error::disk_limit(shown, self.scope.disk_mb)
            } else {
                FileError::at(
                    FileErrorCode::PullFailed,
                    url,
                    format!(
                        "`{}` is larger than the {MAX_PULL_BYTES} bytes a pull may write",
                        printable(url)
                    ),
                )
            }
        };

        let failed = |why: String| FileError::at(FileErrorCode::PullFailed, url, why);
        let mut response = None;
        for _ in 0..=MAX_PULL_REDIRECTS {
            let addrs = checked_addresses(&current, &allow, url).await?;
            let mut client = reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(PULL_CONNECT_TIMEOUT)
                .read_timeout(PULL_IDLE_TIMEOUT);
            if let Some(url::Host::Domain(domain)) = current.host() {
                client = client.resolve_to_addrs(domain, &addrs);
            }
            let client = client
                .build()
                .map_err(|e| failed(format!("cannot set up the download: {e}")))?;
            let answer = client
                .get(current.clone())
                .send()
                .await
                .map_err(|e| failed(format!("fetching `{current}` failed: {e}")))?;
            let status = answer.status();
            if status.is_redirection() {
                let location = answer
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| {
                        failed(format!("`{current}` answered {status} without a Location"))
                    })?;
                current = current.join(location).map_err(|e| {
                    failed(format!("`{current}` redirected to an invalid URL: {e}"))
                })?;
                check_scheme(&current, url)?;
                continue;
            }
            if !status.is_success() {
                return Err(failed(format!("`{current}` answered {status}")));
            }
            response = Some(answer);
            break;
        }
        let mut response = response.ok_or_else(|| {
            failed(format!(
                "`{}` redirected more than {MAX_PULL_REDIRECTS} times",
                printable(url)
            ))
        })?;
        if response.content_length().is_some_and(|len| len > bound) {
            return Err(over(&shown));
        }

        let part = format!(".cap-pull-{}.part", uuid::Uuid::new_v4().simple());
        let file = dir
            .open_with(
                &part,
                OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .follow(FollowSymlinks::No)
                    .mode(0o644),
            )
            .map_err(|e| io_error(&e, &shown))?;
        let written = async {
            self.give_fd(&file, &shown)?;
            let mut out = tokio::fs::File::from_std(file.into_std());
            let mut total = 0u64;
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| failed(format!("downloading `{current}` failed: {e}")))?
            {
                total = total.saturating_add(chunk.len() as u64);
                if total > bound {
                    return Err(over(&shown));
                }
                out.write_all(&chunk)
                    .await
                    .map_err(|e| io_error(&e, &shown))?;
            }
            out.sync_all().await.map_err(|e| io_error(&e, &shown))?;
            place(&dir, &part, &name, &shown)
        }
        .await;
        self.forget_usage();
        if let Err(e) = written {
            let _ = dir.remove_file(&part);
            return Err(e);
        }
        self.stat(&shown)
    }

    /// [`headroom`](Self::headroom) on the blocking pool.
    async fn headroom_async(&self, path: &str) -> Result<Option<u64>, FileError> {
        if self.scope.disk_mb == 0 {
            return Ok(None);
        }
        let server_dir = self.server_dir.clone();
        let limit = self.scope.disk_mb.saturating_mul(1024 * 1024);
        let kept = self.usage.clone();
        let usage = tokio::task::spawn_blocking(move || super::used(kept.as_deref(), &server_dir))
            .await
            .map_err(|e| {
                FileError::at(
                    FileErrorCode::Io,
                    path,
                    format!("measuring the disk usage failed: {e}"),
                )
            })?;
        Ok(Some(limit.saturating_sub(usage)))
    }
}

/// Renames the finished download into place, never over an entry that
/// appeared meanwhile.
fn place(dir: &Dir, part: &str, name: &str, shown: &str) -> Result<(), FileError> {
    match rustix::fs::renameat_with(dir, part, dir, name, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::INVAL) => match dir.symlink_metadata(name) {
            Ok(_) => Err(error::exists(shown)),
            Err(_) => dir.rename(part, dir, name).map_err(|e| io_error(&e, shown)),
        },
        Err(e) => Err(io_error(&e.into(), shown)),
    }
}

/// Refuses URLs that are not http or https.
fn check_scheme(url: &url::Url, requested: &str) -> Result<(), FileError> {
    if matches!(url.scheme(), "http" | "https") {
        Ok(())
    } else {
        Err(FileError::at(
            FileErrorCode::PullRefused,
            requested,
            format!("`{}` is not an http or https URL", printable(url.as_str())),
        ))
    }
}

/// The addresses of `url`'s host, each public or allowed by `allow`.
async fn checked_addresses(
    url: &url::Url,
    allow: &[HostPattern],
    requested: &str,
) -> Result<Vec<SocketAddr>, FileError> {
    let port = url.port_or_known_default().unwrap_or(80);
    let host = url.host_str().unwrap_or_default().to_owned();
    let addrs: Vec<SocketAddr> = match url.host() {
        Some(url::Host::Ipv4(ip)) => vec![SocketAddr::new(ip.into(), port)],
        Some(url::Host::Ipv6(ip)) => vec![SocketAddr::new(ip.into(), port)],
        Some(url::Host::Domain(name)) => tokio::net::lookup_host((name, port))
            .await
            .map_err(|e| {
                FileError::at(
                    FileErrorCode::PullFailed,
                    requested,
                    format!("resolving `{name}` failed: {e}"),
                )
            })?
            .collect(),
        None => {
            return Err(FileError::at(
                FileErrorCode::PullRefused,
                requested,
                format!("`{}` has no host", printable(url.as_str())),
            ));
        }
    };
    if addrs.is_empty() {
        return Err(FileError::at(
            FileErrorCode::PullFailed,
            requested,
            format!("`{host}` has no address"),
        ));
    }
    let allowed = allow.iter().any(|pattern| pattern.allows(url));
    if let Some(addr) = addrs.iter().find(|addr| is_special(addr.ip()))
        && !allowed
    {
        return Err(FileError::at(
            FileErrorCode::PullRefused,
            requested,
            format!(
                "`{host}` resolves to {}, a loopback, private, link-local or otherwise non-public address; an admin must allow the host for pulls",
                addr.ip()
            ),
        ));
    }
    Ok(addrs)
}

/// The file name a URL suggests: its last path segment, percent-decoded,
/// or `download` when it has none that makes a name.
fn name_from_url(url: &url::Url) -> String {
    let segment = url
        .path_segments()
        .and_then(|mut segments| segments.next_back())
        .unwrap_or_default();
    let decoded = percent_decode(segment);
    RelPath::parse_name(&decoded).unwrap_or_else(|_| "download".to_owned())
}

/// `%XX` escapes decoded; the segment as it is when they do not make UTF-8.
fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        if let Some(byte) = escaped {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| segment.to_owned())
}
