//! A real container engine for the container tests: Podman's Docker
//! Engine API service, started by the test on a socket of its own, and a
//! test image built locally once per run, never pulled from a registry.
//!
//! - [`PodmanService::start`] runs `podman system service --time=0` on a
//!   socket in a temporary directory, with the settings this machine kind
//!   needs (`--runtime runc`, `--cgroup-manager cgroupfs`; crun refuses
//!   hybrid cgroups). Every test gets its own service process; they share
//!   Podman's image store. [`PodmanService::start_trusting`] gives the
//!   service a `registries.conf` of its own naming plain-HTTP registries
//!   (a [`Registry`](crate::registry::Registry) on loopback), so a test
//!   can pull without reaching beyond the machine.
//! - [`test_image`] is `localhost/cap-test-game:latest`: Debian's static
//!   busybox (`sh`, `sleep`, `dd`, …) and `cap-standin-game` with the
//!   shared libraries it links, imported with `podman import` from a root
//!   file system assembled here. It is rebuilt only when its contents
//!   change (the tag `h<sha256 prefix>` names the contents), under a file
//!   lock, so concurrent test processes build it once.
//!
//! A machine without Podman fails these tests, naming what to install;
//! they never pass silently.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// The test image's name, as the test-game plugin's manifest names it.
pub const TEST_IMAGE: &str = "localhost/cap-test-game:latest";

/// `podman` with this machine kind's global settings.
pub fn podman() -> Command {
    let mut command = Command::new("podman");
    command.args(["--runtime", "runc", "--cgroup-manager", "cgroupfs"]);
    command
}

fn require_podman() {
    crate::require_program(
        "podman",
        "the container tests need Podman and runc (apt-get install podman runc busybox-static; .ci/run installs them)",
    );
}

/// Agent instances ([`track_agent`]) whose containers go when the service
/// they ran on is dropped: (service host, instance label).
static AGENTS: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());

/// Makes the containers of Agent instance `instance` (its
/// `org.ctrl-alt-play.agent` label) go when the [`PodmanService`] at `host`
/// is dropped: a test that ends with a server running, or that fails
/// half-way, leaves no container behind to hold its ports.
pub fn track_agent(host: &str, instance: &str) {
    AGENTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push((host.to_owned(), instance.to_owned()));
}

/// Removes, forcibly, every container labelled as Agent instance
/// `instance`'s. Failures are ignored: this is cleanup.
fn remove_containers_of(instance: &str) {
    let Ok(listed) = podman()
        .args(["ps", "-aq", "--filter"])
        .arg(format!("label=org.ctrl-alt-play.agent={instance}"))
        .output()
    else {
        return;
    };
    let ids: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    if !ids.is_empty() {
        let _ = podman()
            .args(["rm", "-f", "-t", "0"])
            .args(&ids)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A Podman service answering the Docker Engine API on a socket of its own.
/// Killed when dropped (containers it started keep running: Podman has no
/// daemon, so they outlive the service, as they outlive a restart), except
/// those of the Agents [`track_agent`] named, which go with it.
#[derive(Debug)]
pub struct PodmanService {
    child: Option<Child>,
    socket: PathBuf,
    /// The `registries.conf` the service reads, when it has one of its own.
    registries: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

impl PodmanService {
    /// Starts a service and waits until its socket answers.
    ///
    /// # Panics
    ///
    /// Without Podman, or when the service does not come up in 30 s.
    pub fn start() -> Self {
        Self::start_trusting(&[])
    }

    /// Starts a service that pulls from `insecure` registries (`host:port`)
    /// over plain HTTP: it reads a `registries.conf` of its own
    /// (`CONTAINERS_REGISTRIES_CONF`) naming each as `insecure`, and no
    /// other registry. With none, the service reads the machine's.
    ///
    /// # Panics
    ///
    /// Without Podman, or when the service does not come up in 30 s.
    pub fn start_trusting(insecure: &[&str]) -> Self {
        require_podman();
        let dir = tempfile::tempdir().expect("a directory for the socket");
        let socket = dir.path().join("podman.sock");
        let registries = (!insecure.is_empty()).then(|| {
            let path = dir.path().join("registries.conf");
            let entries: String = insecure
                .iter()
                .map(|location| {
                    format!("[[registry]]\nlocation = \"{location}\"\ninsecure = true\n\n")
                })
                .collect();
            std::fs::write(&path, entries).expect("writing registries.conf");
            path
        });
        let mut service = Self {
            child: None,
            socket,
            registries,
            _dir: dir,
        };
        service.spawn();
        service
    }

    fn spawn(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
        let mut command = podman();
        if let Some(registries) = &self.registries {
            command.env("CONTAINERS_REGISTRIES_CONF", registries);
        }
        let child = command
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", self.socket.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting podman system service");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "podman system service did not answer on {} within 30 s",
            self.socket.display()
        );
    }

    /// The `--container-host` of this service (`unix:///…/podman.sock`).
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Kills the service (the engine goes away; containers keep running).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the service again on the same socket.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for PodmanService {
    fn drop(&mut self) {
        self.kill();
        let host = self.host();
        let instances: Vec<String> = {
            let mut agents = AGENTS
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let (mine, others) = agents.drain(..).partition(|(h, _)| *h == host);
            *agents = others;
            mine.into_iter().map(|(_, instance)| instance).collect()
        };
        for instance in instances {
            remove_containers_of(&instance);
        }
    }
}

/// The shared libraries `binary` links, from `ldd`.
fn linked_libraries(binary: &Path) -> Vec<PathBuf> {
    let output = Command::new("ldd")
        .arg(binary)
        .output()
        .expect("running ldd");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            line.split_whitespace()
                .find(|word| word.starts_with('/'))
                .map(PathBuf::from)
        })
        .collect()
}

fn busybox() -> PathBuf {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect("busybox is missing: apt-get install busybox-static (.ci/run installs it)")
}

/// Copies `from` to `root` + `at`, creating directories.
fn place(root: &Path, from: &Path, at: &Path) {
    let to = root.join(at.strip_prefix("/").unwrap_or(at));
    std::fs::create_dir_all(to.parent().expect("a parent")).expect("creating a directory");
    std::fs::copy(from, &to).unwrap_or_else(|e| panic!("copying {}: {e}", from.display()));
}

/// Builds [`TEST_IMAGE`] when its contents changed and returns its name.
///
/// # Panics
///
/// Without Podman or busybox, or when the import fails.
pub fn test_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        require_podman();
        let standin = crate::standin();
        let busybox = busybox();
        let mut files = vec![
            (busybox.clone(), PathBuf::from("/bin/busybox")),
            (
                standin.to_path_buf(),
                PathBuf::from("/usr/local/bin/cap-standin-game"),
            ),
        ];
        for library in linked_libraries(standin) {
            files.push((library.clone(), library));
        }
        let mut hasher = Sha256::new();
        for (from, at) in &files {
            hasher.update(at.to_string_lossy().as_bytes());
            hasher.update(std::fs::read(from).expect("reading an image file"));
        }
        let digest = hasher.finalize();
        let tag = format!(
            "localhost/cap-test-game:h{:x}",
            u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
        );
        let lock_path = std::env::temp_dir().join("cap-test-game-image.lock");
        let lock = std::fs::File::create(&lock_path).expect("creating the image lock");
        lock.lock().expect("locking the image lock");
        let exists = podman()
            .args(["image", "exists", &tag])
            .status()
            .is_ok_and(|s| s.success());
        if !exists {
            let root = tempfile::tempdir().expect("a root file system directory");
            for (from, at) in &files {
                place(root.path(), from, at);
            }
            for dir in ["tmp", "home/container", "mnt/server", "mnt/install"] {
                std::fs::create_dir_all(root.path().join(dir)).expect("creating a directory");
            }
            for applet in [
                "sh", "sleep", "dd", "cat", "echo", "ls", "id", "seq", "yes", "head", "grep", "wc",
                "mkdir", "rm", "touch", "true", "false", "env", "printf", "tr",
            ] {
                let link = root.path().join("bin").join(applet);
                if !link.exists() {
                    std::os::unix::fs::symlink("busybox", &link).expect("linking an applet");
                }
            }
            std::fs::create_dir_all(root.path().join("etc")).expect("creating /etc");
            std::fs::write(
                root.path().join("etc/passwd"),
                "root:x:0:0:root:/root:/bin/sh\n",
            )
            .expect("writing /etc/passwd");
            let archive = root.path().with_extension("tar");
            let packed = Command::new("tar")
                .arg("-C")
                .arg(root.path())
                .args(["-cf"])
                .arg(&archive)
                .arg(".")
                .status()
                .expect("running tar");
            assert!(
                packed.success(),
                "packing the test image's root file system failed"
            );
            let status = podman()
                .args(["import", "--change", "ENV PATH=/usr/local/bin:/bin"])
                .arg(&archive)
                .arg(&tag)
                .stdout(Stdio::null())
                .status()
                .expect("running podman import");
            let _ = std::fs::remove_file(&archive);
            assert!(status.success(), "podman import of {tag} failed");
        }
        let status = podman()
            .args(["tag", &tag, TEST_IMAGE])
            .status()
            .expect("running podman tag");
        assert!(status.success(), "podman tag {tag} {TEST_IMAGE} failed");
        drop(lock);
    });
    TEST_IMAGE
}
