//! Real game servers' container images, built locally from Debian's
//! packages and tagged with the image name the community egg lists, so
//! that tests run the real game from its egg without pulling from a
//! registry.
//!
//! - [`minetest`] is `ghcr.io/parkervcp/games:minetest` (the image
//!   `egg-pterodactyl-minetest.json` lists): Debian 12's `minetest` (whose
//!   binary the egg runs as `minetest --server`) and `minetest-server`,
//!   with `minetest_game`.
//! - [`debian_installer`] is `ghcr.io/parkervcp/installers:debian`, the
//!   install container of that egg (and of many others).
//!
//! Each image is a root file system made by `mmdebstrap` from Debian's
//! package registry (the one outside service the tests may reach), then
//! `podman import`ed with the egg convention: working directory
//! `/home/container`, games on `PATH`. It is built once per machine, under
//! a file lock so concurrent test processes build it once, and labelled
//! with what it was built from; an image of that name without the label
//! (or with another recipe) is rebuilt, never trusted.
//!
//! A machine without `mmdebstrap` fails these tests naming the package;
//! they never pass silently.

use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::podman::podman;

/// The label naming how an image was built.
const RECIPE_LABEL: &str = "org.ctrl-alt-play.test-image-recipe";

/// A recipe: the Debian packages of an image.
struct Recipe {
    image: &'static str,
    packages: &'static [&'static str],
}

impl Recipe {
    /// The label value: the suite and the packages.
    fn id(&self) -> String {
        format!("debian-bookworm:{}", self.packages.join(","))
    }

    fn built(&self) -> bool {
        let output = podman()
            .args(["image", "inspect", "--format"])
            .arg(format!("{{{{index .Labels \"{RECIPE_LABEL}\"}}}}"))
            .arg(self.image)
            .stderr(Stdio::null())
            .output();
        output.is_ok_and(|o| {
            o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == self.id()
        })
    }

    fn build(&self) {
        crate::require_program(
            "mmdebstrap",
            "the real-game tests build their images from Debian's packages (apt-get install mmdebstrap; .ci/run installs it)",
        );
        let dir = tempfile::tempdir().expect("a directory for the root file system");
        let archive = dir.path().join("rootfs.tar");
        let output = Command::new("mmdebstrap")
            .args(["--variant=apt", "--quiet"])
            .arg(format!("--include={}", self.packages.join(",")))
            .args([
                "--dpkgopt=path-exclude=/usr/share/doc/*",
                "--dpkgopt=path-exclude=/usr/share/man/*",
                "--dpkgopt=path-exclude=/usr/share/locale/*",
                "--customize-hook=mkdir -p \"$1/home/container\" \"$1/mnt/server\" \"$1/mnt/install\"",
                "bookworm",
            ])
            .arg(&archive)
            .arg("http://deb.debian.org/debian")
            .output()
            .expect("running mmdebstrap");
        assert!(
            output.status.success(),
            "mmdebstrap for {} failed: {}",
            self.image,
            String::from_utf8_lossy(&output.stderr)
        );
        let status = podman()
            .arg("import")
            .args([
                "--change",
                "ENV PATH=/usr/local/bin:/usr/games:/usr/bin:/bin",
                "--change",
                "WORKDIR /home/container",
                "--change",
            ])
            .arg(format!("LABEL {RECIPE_LABEL}={}", self.id()))
            .arg(&archive)
            .arg(self.image)
            .stdout(Stdio::null())
            .status()
            .expect("running podman import");
        assert!(status.success(), "podman import of {} failed", self.image);
    }

    fn ensure(&self) {
        let lock_path = std::env::temp_dir().join("cap-game-images.lock");
        let lock = std::fs::File::create(&lock_path).expect("creating the image lock");
        lock.lock().expect("locking the image lock");
        if !self.built() {
            self.build();
            assert!(
                self.built(),
                "{} has no recipe label after its build",
                self.image
            );
        }
        drop(lock);
    }
}

/// Builds (once per machine) and returns `ghcr.io/parkervcp/games:minetest`
/// from Debian's `minetest` and `minetest-server`.
///
/// # Panics
///
/// Without Podman or mmdebstrap, or when the build fails.
pub fn minetest() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    let recipe = Recipe {
        image: "ghcr.io/parkervcp/games:minetest",
        packages: &["minetest", "minetest-server"],
    };
    BUILT.get_or_init(|| recipe.ensure());
    recipe.image
}

/// Builds (once per machine) and returns `ghcr.io/parkervcp/installers:debian`
/// (the install container the community eggs name): Debian 12 with `bash`
/// (the eggs' entrypoint), `curl`, `ca-certificates`, `unzip` and `jq`, the
/// tools their install scripts use.
///
/// # Panics
///
/// Without Podman or mmdebstrap, or when the build fails.
pub fn debian_installer() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    let recipe = Recipe {
        image: "ghcr.io/parkervcp/installers:debian",
        packages: &["bash", "curl", "ca-certificates", "unzip", "jq"],
    };
    BUILT.get_or_init(|| recipe.ensure());
    recipe.image
}

/// Minetest's connection handshake against `127.0.0.1:port`: a reliable
/// packet (seq 65500) holding an empty original packet, as a client opens
/// with. A Minetest server answers with a control packet giving the client
/// its peer id; returns the answer, or `None` when nothing answers within
/// half a second.
pub fn minetest_handshake(port: u16) -> Option<Vec<u8>> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").ok()?;
    socket
        .set_read_timeout(Some(std::time::Duration::from_millis(500)))
        .ok()?;
    socket
        .send_to(
            &[0x4f, 0x45, 0x74, 0x03, 0, 0, 0, 0x03, 0xff, 0xdc, 0x01],
            ("127.0.0.1", port),
        )
        .ok()?;
    let mut buffer = [0u8; 1024];
    let (len, _) = socket.recv_from(&mut buffer).ok()?;
    Some(buffer[..len].to_vec())
}

/// Whether `answer` is a Minetest server's reply to [`minetest_handshake`]:
/// the protocol id, a reliable packet, a control packet setting the peer id.
pub fn is_minetest_answer(answer: &[u8]) -> bool {
    answer.len() >= 12
        && answer[..4] == [0x4f, 0x45, 0x74, 0x03]
        && answer[7] == 0x03
        && answer[10..12] == [0x00, 0x01]
}

/// A port free on loopback for both TCP and UDP when asked (games listen on
/// both).
pub fn free_tcp_and_udp_port() -> u16 {
    loop {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("a TCP port");
        let port = tcp.local_addr().expect("its address").port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
