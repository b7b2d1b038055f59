//! Running install plans in a server directory.
//!
//! - **Downloads** stream into a temporary file beside the destination
//!   while hashing; only a file whose sha256 matches is renamed over the
//!   destination, so a mismatch (or a broken connection) leaves the
//!   previous file as it was.
//! - **Scripts** run with their interpreter in the server directory, in a
//!   process group of their own with a cleared environment (`PATH`, `HOME`
//!   and the script's variables), as the servers' unprivileged user when
//!   the Agent has one ([`crate::isolation`]) and with a process limit
//!   ([`crate::limits`]), and the whole group is killed at the time limit.
//!   Output goes to the server's install log.
//! - **Files and config edits** are written atomically (temp file + rename).
//! - Every path is confined to the server directory ([`crate::paths`]).

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use cap_protocol::{Download, InstallPlan, InstallStep, Script, WriteFile};
use futures::StreamExt;
use sha2::{Digest, Sha256};

use crate::config_edit::{self, ConfigEditError};
use crate::isolation::RunAs;
use crate::paths::{PathEscape, confined};

/// An install step failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// A path left the server directory.
    #[error(transparent)]
    Path(#[from] PathEscape),
    /// A download could not be fetched.
    #[error("downloading {url}: {message}")]
    Download {
        /// The URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// A download's sha256 did not match; the destination is untouched.
    #[error("{destination}: sha256 {actual} does not match the expected {expected}")]
    ChecksumMismatch {
        /// The destination path.
        destination: String,
        /// The plan's sha256.
        expected: String,
        /// The downloaded file's sha256.
        actual: String,
    },
    /// A download exceeded the size limit.
    #[error("downloading {url}: larger than {limit} bytes")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit.
        limit: u64,
    },
    /// A script exited unsuccessfully.
    #[error("install script ({interpreter}) exited with {status}{}", last_words(.last_output))]
    ScriptFailed {
        /// The interpreter.
        interpreter: String,
        /// The exit status.
        status: String,
        /// The last line it printed, if any (what failed, as a rule).
        last_output: Option<String>,
    },
    /// A script ran past its time limit and was killed.
    #[error("install script ({interpreter}) ran longer than {secs} s and was killed")]
    ScriptTimedOut {
        /// The interpreter.
        interpreter: String,
        /// The limit.
        secs: u32,
    },
    /// A config edit failed.
    #[error(transparent)]
    ConfigEdit(#[from] ConfigEditError),
    /// Reading or writing a file failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
}

impl InstallError {
    /// A stable code for command results.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Path(_) => "path-escape",
            Self::Download { .. } => "download-failed",
            Self::ChecksumMismatch { .. } => "checksum-mismatch",
            Self::TooLarge { .. } => "download-too-large",
            Self::ScriptFailed { .. } => "script-failed",
            Self::ScriptTimedOut { .. } => "script-timed-out",
            Self::ConfigEdit(_) => "config-edit-failed",
            Self::Io { .. } => "io-error",
        }
    }
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> InstallError {
    let context = context.into();
    move |source| InstallError::Io { context, source }
}

/// Writes `bytes` to `path` through a temporary file in the same directory
/// and a rename, so readers see the old or the new file, never half.
///
/// # Errors
///
/// I/O errors; `path` is unchanged then.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: Option<u32>) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    temp.write_all(bytes)?;
    temp.as_file().sync_all()?;
    let mode = match mode {
        Some(mode) => mode,
        None => std::fs::metadata(path).map_or(0o644, |m| m.permissions().mode() & 0o7777),
    };
    temp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode & 0o7777))?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Runs install plans.
#[derive(Debug, Clone)]
pub struct Installer {
    client: reqwest::Client,
    max_download_bytes: u64,
    run_as: Option<RunAs>,
}

impl Installer {
    /// An installer whose downloads time out after `timeout` and may be at
    /// most `max_download_bytes` long.
    ///
    /// # Errors
    ///
    /// The HTTP client could not be built.
    pub fn new(timeout: Duration, max_download_bytes: u64) -> Result<Self, reqwest::Error> {
        Ok(Self {
            client: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(30))
                .timeout(timeout)
                .build()?,
            max_download_bytes,
            run_as: None,
        })
    }

    /// Scripts run as `user` (and the server directory is given to it
    /// before each one).
    #[must_use]
    pub fn run_as(mut self, user: Option<RunAs>) -> Self {
        self.run_as = user;
        self
    }

    /// Runs every step of `plan` in `server_dir`, appending script output to
    /// `log`. Stops at the first failing step.
    ///
    /// # Errors
    ///
    /// The first step's [`InstallError`].
    pub async fn run(
        &self,
        server_dir: &Path,
        log: &Path,
        plan: &InstallPlan,
    ) -> Result<(), InstallError> {
        std::fs::create_dir_all(server_dir).map_err(io("creating the server directory"))?;
        for step in &plan.steps {
            match step {
                InstallStep::Download(download) => self.download(server_dir, download).await?,
                InstallStep::RunScript(script) => {
                    run_script(server_dir, log, script, self.run_as.as_ref()).await?;
                }
                InstallStep::WriteFile(file) => write_file(server_dir, file)?,
                InstallStep::EditConfig(edit) => {
                    let path = confined(server_dir, &edit.path)?;
                    config_edit::apply(&path, edit)?;
                }
            }
        }
        Ok(())
    }

    async fn download(&self, server_dir: &Path, download: &Download) -> Result<(), InstallError> {
        use std::os::unix::fs::PermissionsExt;
        let destination = confined(server_dir, &download.destination)?;
        let failed = |message: String| InstallError::Download {
            url: download.url.clone(),
            message,
        };
        let response = self
            .client
            .get(&download.url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| failed(e.to_string()))?;
        if response
            .content_length()
            .is_some_and(|len| len > self.max_download_bytes)
        {
            return Err(InstallError::TooLarge {
                url: download.url.clone(),
                limit: self.max_download_bytes,
            });
        }
        let dir = destination.parent().unwrap_or(server_dir);
        let mut temp =
            tempfile::NamedTempFile::new_in(dir).map_err(io("creating a temporary file"))?;
        let mut hasher = Sha256::new();
        let mut written = 0u64;
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| failed(e.to_string()))?;
            written = written.saturating_add(chunk.len() as u64);
            if written > self.max_download_bytes {
                return Err(InstallError::TooLarge {
                    url: download.url.clone(),
                    limit: self.max_download_bytes,
                });
            }
            hasher.update(&chunk);
            temp.write_all(&chunk).map_err(io("writing the download"))?;
        }
        let actual = hex::encode(hasher.finalize());
        if !actual.eq_ignore_ascii_case(download.sha256.trim()) {
            return Err(InstallError::ChecksumMismatch {
                destination: download.destination.clone(),
                expected: download.sha256.clone(),
                actual,
            });
        }
        temp.as_file()
            .sync_all()
            .map_err(io("syncing the download"))?;
        let mode = if download.executable { 0o755 } else { 0o644 };
        temp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(io("setting the download's mode"))?;
        temp.persist(&destination)
            .map_err(|e| io("moving the download into place")(e.error))?;
        Ok(())
    }
}

fn write_file(server_dir: &Path, file: &WriteFile) -> Result<(), InstallError> {
    let path = confined(server_dir, &file.path)?;
    write_atomically(&path, file.contents.as_bytes(), Some(file.mode))
        .map_err(io(format!("writing {}", file.path)))
}

/// The environment every process the Agent starts gets, before its own
/// variables: a cleared environment keeps the Agent's secrets out.
pub(crate) fn base_env(server_dir: &Path) -> Vec<(String, String)> {
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    vec![
        ("PATH".into(), path),
        ("HOME".into(), server_dir.display().to_string()),
        ("LANG".into(), "C.UTF-8".into()),
    ]
}

async fn run_script(
    server_dir: &Path,
    log: &Path,
    script: &Script,
    run_as: Option<&RunAs>,
) -> Result<(), InstallError> {
    let mut file = tempfile::Builder::new()
        .prefix(".cap-install-")
        .suffix(".script")
        .tempfile_in(server_dir)
        .map_err(io("writing the install script"))?;
    file.write_all(script.contents.as_bytes())
        .map_err(io("writing the install script"))?;
    if let Some(user) = run_as {
        crate::isolation::chown_tree(server_dir, user)
            .map_err(io("giving the server directory to its user"))?;
    }
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io("opening the install log"))?;
    let log_err = log_file
        .try_clone()
        .map_err(io("opening the install log"))?;
    let mut command = tokio::process::Command::new(&script.interpreter);
    command
        .arg(file.path())
        .current_dir(server_dir)
        .env_clear()
        .envs(base_env(server_dir))
        .envs(script.env.iter().map(|kv| (&kv.key, &kv.value)))
        .stdin(Stdio::null())
        .stdout(Stdio::from(log_file))
        .stderr(Stdio::from(log_err))
        .process_group(0)
        .kill_on_drop(true);
    let unlimited = cap_protocol::ServerLimits {
        memory_mb: 0,
        cpu_percent: 0,
        max_processes: 0,
        disk_mb: 0,
    };
    crate::limits::prepare(None, "install", &unlimited, run_as).apply_before_exec(&mut command);
    let mut child = command.spawn().map_err(io(format!(
        "starting the install interpreter `{}`",
        script.interpreter
    )))?;
    let limit = Duration::from_secs(u64::from(script.timeout_secs.max(1)));
    match tokio::time::timeout(limit, child.wait()).await {
        Ok(status) => {
            let status = status.map_err(io("waiting for the install script"))?;
            if status.success() {
                Ok(())
            } else {
                Err(InstallError::ScriptFailed {
                    interpreter: script.interpreter.clone(),
                    status: status.to_string(),
                    last_output: last_output_line(log),
                })
            }
        }
        Err(_) => {
            if let Some(pid) = child.id() {
                crate::signals::kill_group(pid, rustix::process::Signal::KILL);
            }
            let _ = child.wait().await;
            Err(InstallError::ScriptTimedOut {
                interpreter: script.interpreter.clone(),
                secs: script.timeout_secs,
            })
        }
    }
}

/// `": <line>"` for an error message, or nothing.
fn last_words(line: &Option<String>) -> String {
    line.as_deref()
        .map(|line| format!(": {line}"))
        .unwrap_or_default()
}

/// The last non-empty line of an install log (read from its last 4 KiB,
/// cut to 300 characters), to say in the error what failed.
pub(crate) fn last_output_line(log: &Path) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(log).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(4096))).ok()?;
    let mut tail = Vec::new();
    file.take(4096).read_to_end(&mut tail).ok()?;
    let text = String::from_utf8_lossy(&tail);
    let line = text.lines().rev().map(str::trim).find(|l| !l.is_empty())?;
    Some(line.chars().take(300).collect())
}
