//! `cap plugin`: bad input gets one clear line and a non-zero exit, never a
//! panic; good input packs, inspects and scaffolds.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::cap_binary;

fn cap(args: &[&str]) -> Output {
    Command::new(cap_binary())
        .args(args)
        .env("CAP_LOG", "off")
        .output()
        .expect("running cap")
}

/// `cap plugin pack <dir> -o <out> --wasm <wasm>`.
fn pack(dir: &str, out: &str, wasm: &str) -> Output {
    cap(&["plugin", "pack", dir, "-o", out, "--wasm", wasm])
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a failure with exactly one `error:` line containing `needle`.
fn fails_with(o: &Output, needle: &str) {
    let err = stderr(o);
    assert!(
        !o.status.success(),
        "expected failure, stdout: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line, got: {err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains(needle), "expected {needle:?} in {err}");
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write");
    path.display().to_string()
}

#[test]
fn inspecting_garbage_bytes_says_it_is_not_webassembly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(dir.path(), "garbage.wasm", b"this is not wasm at all");
    fails_with(
        &cap(&["plugin", "inspect", &file]),
        "not a WebAssembly binary",
    );
}

#[test]
fn inspecting_a_core_module_says_to_build_a_component() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        dir.path(),
        "core.wasm",
        &wat::parse_str("(module)").expect("wat"),
    );
    fails_with(
        &cap(&["plugin", "inspect", &file]),
        "core WebAssembly module, not a component",
    );
}

#[test]
fn inspecting_a_component_with_a_foreign_import_names_the_import() {
    let dir = tempfile::tempdir().expect("tempdir");
    let component = wat::parse_str(
        r#"(component (@custom "ctrl-alt-play:api-version" "0.1.0") (import "acme:evil/steal@1.0.0" (instance)))"#,
    )
    .expect("wat");
    let file = write(dir.path(), "foreign.wasm", &component);
    fails_with(
        &cap(&["plugin", "inspect", &file]),
        "imports `acme:evil/steal@1.0.0`",
    );
}

#[test]
fn inspecting_an_unsupported_api_version_names_the_supported_range() {
    let dir = tempfile::tempdir().expect("tempdir");
    let component = wat::parse_str(r#"(component (@custom "ctrl-alt-play:api-version" "2.0.0"))"#)
        .expect("wat");
    let file = write(dir.path(), "future.wasm", &component);
    fails_with(
        &cap(&["plugin", "inspect", &file]),
        &format!(
            "targets plugin API 2.0.0, but this host supports {}",
            cap_runtime::api_version::SUPPORTED
        ),
    );
}

#[test]
fn inspecting_a_100_mb_file_is_refused_by_size_before_reading() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("huge.wasm");
    let file = std::fs::File::create(&path).expect("create");
    file.set_len(100 * 1024 * 1024 + 1).expect("sparse file");
    fails_with(
        &cap(&["plugin", "inspect", &path.display().to_string()]),
        "the limit is",
    );
}

#[test]
fn inspecting_a_missing_file_names_it() {
    fails_with(
        &cap(&["plugin", "inspect", "/nonexistent/plugin.cap"]),
        "/nonexistent/plugin.cap",
    );
}

#[test]
fn packing_with_a_broken_manifest_names_the_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "plugin.toml", b"[plugin]\nid = \"Bad Id\"\nname = \"x\"\nversion = \"1.0.0\"\nkinds = [\"hooks\"]\napi = \"0.1.0\"\n[hooks]\nbefore = [\"server.create\"]\n");
    let wasm = cap_e2e::example_plugins().join("adversarial.wasm");
    let out = dir.path().join("out.cap");
    let o = pack(
        &dir.path().display().to_string(),
        &out.display().to_string(),
        &wasm.display().to_string(),
    );
    fails_with(&o, "plugin.id");
    assert!(!out.exists(), "nothing is written on failure");
}

#[test]
fn a_packed_example_plugin_inspects_with_its_manifest_and_checksum() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plugin_dir = cap_e2e::repo_root().join("example-plugins/quota-guard");
    let wasm = cap_e2e::example_plugins().join("quota_guard.wasm");
    let out = dir.path().join("quota-guard.cap");
    let o = pack(
        &plugin_dir.display().to_string(),
        &out.display().to_string(),
        &wasm.display().to_string(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let sha_file =
        std::fs::read_to_string(format!("{}.sha256", out.display())).expect("sha256 file");
    let sha = sha_file
        .split_whitespace()
        .next()
        .expect("digest")
        .to_string();
    assert_eq!(
        sha,
        cap_runtime::component::sha256_hex(&std::fs::read(&out).expect("package"))
    );

    let o = cap(&["plugin", "inspect", &out.display().to_string(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(json["format"], "package");
    assert_eq!(json["package_sha256"], sha.as_str());
    assert_eq!(json["manifest"]["plugin"]["id"], "quota-guard");
    assert_eq!(json["component"]["api_version"], "0.1.0");
    let exports = json["component"]["exports"].to_string();
    assert!(
        exports.contains("ctrl-alt-play:plugin/hooks@0.1.0"),
        "{exports}"
    );

    let o = cap(&["plugin", "inspect", &out.display().to_string()]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("capabilities:  kv; config; panel servers.read"),
        "{text}"
    );
    assert!(
        text.contains("hooks:         before [server.create, server.update]"),
        "{text}"
    );
}

#[test]
fn packing_the_same_inputs_twice_gives_the_same_checksum() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plugin_dir = cap_e2e::repo_root().join("example-plugins/test-game");
    let wasm = cap_e2e::example_plugins().join("test_game.wasm");
    let mut digests = Vec::new();
    for name in ["a.cap", "b.cap"] {
        let out = dir.path().join(name);
        let o = pack(
            &plugin_dir.display().to_string(),
            &out.display().to_string(),
            &wasm.display().to_string(),
        );
        assert!(o.status.success(), "{}", stderr(&o));
        digests.push(cap_runtime::component::sha256_hex(
            &std::fs::read(&out).expect("package"),
        ));
    }
    assert_eq!(digests[0], digests[1]);
}

#[test]
fn a_scaffolded_plugin_of_every_kind_builds_and_validates() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Share the example plugins' build cache so dependencies compile once.
    let target = cap_e2e::repo_root().join("example-plugins/target");
    for (name, kind) in [
        ("my-hooks", "hooks"),
        ("my-ui", "ui"),
        ("my-auth", "auth-provider"),
        ("my-game", "game-type"),
        ("my-catalogue", "game-catalogue"),
    ] {
        let o = cap(&[
            "plugin",
            "new",
            name,
            "--kind",
            kind,
            "--path",
            &dir.path().display().to_string(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let o = Command::new(cap_binary())
            .args([
                "plugin",
                "build",
                &dir.path().join(name).display().to_string(),
            ])
            .env("CARGO_TARGET_DIR", &target)
            .output()
            .expect("cap plugin build");
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(stdout.contains(&format!("built {name} 0.1.0")), "{stdout}");
        // New plugins target the newest API, manifest and component alike.
        assert!(
            stdout.contains(&format!("API {}", cap_runtime::api_version::LATEST)),
            "{stdout}"
        );
    }
}

#[test]
fn inspecting_a_plugin_says_which_api_version_it_targets() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, version) in [("quota-guard", "0.1.0"), ("egg-bridge", "0.2.0")] {
        let out = dir.path().join(format!("{name}.cap"));
        let wasm = cap_e2e::example_plugins().join(format!("{}.wasm", name.replace('-', "_")));
        let o = pack(
            &cap_e2e::plugin_dir(name).display().to_string(),
            &out.display().to_string(),
            &wasm.display().to_string(),
        );
        assert!(o.status.success(), "{}", stderr(&o));
        for file in [&out, &wasm] {
            let o = cap(&["plugin", "inspect", &file.display().to_string()]);
            assert!(o.status.success(), "{}", stderr(&o));
            let text = String::from_utf8_lossy(&o.stdout);
            assert!(
                text.contains(&format!("  API version:   {version}\n")),
                "{name}: {text}"
            );
        }
        let o = cap(&["plugin", "inspect", &out.display().to_string(), "--json"]);
        let json: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
        assert_eq!(json["component"]["api_version"], version, "{name}");
        assert_eq!(json["manifest"]["plugin"]["api"], version, "{name}");
    }
}

#[test]
fn scaffolding_refuses_an_invalid_name_and_an_existing_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().display().to_string();
    fails_with(
        &cap(&[
            "plugin", "new", "Bad_Name", "--kind", "hooks", "--path", &path,
        ]),
        "not a valid plugin id",
    );
    std::fs::create_dir(dir.path().join("taken")).expect("mkdir");
    fails_with(
        &cap(&["plugin", "new", "taken", "--kind", "hooks", "--path", &path]),
        "already exists",
    );
}
