//! A real container registry on loopback for the image-pull tests:
//! Debian's `docker-registry` (the CNCF Distribution registry the Docker
//! Hub runs), serving plain HTTP on `127.0.0.1:<free port>` from a
//! temporary storage directory, so that a pull goes through a registry's
//! whole protocol without the tests reaching beyond the machine.
//!
//! Podman pulls from it only when told it is insecure (plain HTTP): start
//! the engine with [`PodmanService::start_trusting`](crate::podman::PodmanService::start_trusting)
//! and [`Registry::address`]. [`Registry::push`] uploads a local image
//! with the `podman` the tests use.
//!
//! A machine without the registry fails these tests, naming what to
//! install; they never pass silently.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::podman::podman;

const PROGRAM: &str = "docker-registry";

/// A free TCP port on 127.0.0.1 (free when this returns: the listener
/// that found it is closed).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

/// A `docker-registry serve` process on loopback with storage of its own.
/// Killed when dropped, and its storage removed.
#[derive(Debug)]
pub struct Registry {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry on a free port and waits until its API answers.
    ///
    /// # Panics
    ///
    /// Without `docker-registry`, or when it does not answer in 30 s.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("a directory for the registry");
        let port = free_port();
        let storage = dir.path().join("storage");
        std::fs::create_dir(&storage).expect("creating the registry's storage");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\n\
                 log:\n  level: warn\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: 127.0.0.1:{port}\n",
                storage.display()
            ),
        )
        .expect("writing the registry's configuration");
        let log = std::fs::File::create(dir.path().join("registry.log"))
            .expect("creating the registry's log");
        let child = Command::new(PROGRAM)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("a second handle on the log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "starting {PROGRAM}: {e} (the image-pull tests need Debian's docker-registry: \
                     apt-get install docker-registry; .ci/run installs it)"
                )
            });
        let mut registry = Self {
            child: Some(child),
            port,
            dir,
        };
        registry.wait_ready();
        registry
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }

    /// Waits until `GET /v2/` answers 200, the Distribution API's check.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if api_answers(self.port) {
                return;
            }
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "{PROGRAM} exited with {status} before answering: {}",
                    read_log(&self.log_path())
                );
            }
            assert!(
                Instant::now() < deadline,
                "{PROGRAM} did not answer on 127.0.0.1:{} within 30 s: {}",
                self.port,
                read_log(&self.log_path())
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `127.0.0.1:<port>`, the registry part of an image reference.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Pushes the local image `local` as `<address>/<name>` (plain HTTP)
    /// and returns that reference. It is not tagged locally: an engine
    /// sharing Podman's store does not have it until it pulls it.
    ///
    /// # Panics
    ///
    /// When the push fails.
    pub fn push(&self, local: &str, name: &str) -> String {
        let reference = format!("{}/{name}", self.address());
        let output = podman()
            .args(["push", "--quiet", "--tls-verify=false", local, &reference])
            .stdin(Stdio::null())
            .output()
            .expect("running podman push");
        assert!(
            output.status.success(),
            "podman push {local} {reference} failed: {}\nregistry log: {}",
            String::from_utf8_lossy(&output.stderr),
            read_log(&self.log_path())
        );
        reference
    }

    /// Pushes `local` with one layer of its own on top (a file of random
    /// bytes) as `<address>/<name>`, then removes that image from the
    /// local store, so that a pull really downloads a layer (layers the
    /// store already holds are skipped as `Already exists`).
    ///
    /// # Panics
    ///
    /// When the build or the push fails.
    pub fn push_fresh(&self, local: &str, name: &str) -> String {
        let context = tempfile::tempdir().expect("a build context");
        let mut nonce = vec![0u8; 256 * 1024];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut random| random.read_exact(&mut nonce))
            .expect("reading /dev/urandom");
        std::fs::write(context.path().join("nonce"), nonce).expect("writing the layer's file");
        std::fs::write(
            context.path().join("Containerfile"),
            format!("FROM {local}\nCOPY nonce /nonce\n"),
        )
        .expect("writing the Containerfile");
        let tag = format!("localhost/cap-fresh-{}:latest", self.port);
        let output = podman()
            .args(["build", "--quiet", "--tag", &tag])
            .arg(context.path())
            .stdin(Stdio::null())
            .output()
            .expect("running podman build");
        assert!(
            output.status.success(),
            "podman build of {tag} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let reference = self.push(&tag, name);
        let removed = podman()
            .args(["rmi", &tag])
            .stdout(Stdio::null())
            .status()
            .expect("running podman rmi");
        assert!(removed.success(), "podman rmi {tag} failed");
        reference
    }

    /// Stops the registry: its port is closed from now on.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether `GET /v2/` on 127.0.0.1:`port` answers 200.
fn api_answers(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request =
        format!("GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
